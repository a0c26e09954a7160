// npm run build: compiles src/ into dist/ and records the sources' fingerprint
// (taken before compiling, so an edit made meanwhile makes dist/ stale) in
// dist/BUILT. With --if-possible (npm's prepare) it skips quietly when
// TypeScript is not installed, e.g. `npm ci --omit=dev`: bin/talus.js then
// runs the sources through tsx.
import { spawnSync } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { sourceFingerprint } from '../bin/source-fingerprint.js';

const root = fileURLToPath(new URL('..', import.meta.url));
const require = createRequire(import.meta.url);
let tsc;
try {
  // The package's exports hide bin/; its package.json is exported.
  const manifest = require.resolve('typescript/package.json');
  tsc = join(dirname(manifest), require(manifest).bin.tsc);
} catch {
  if (process.argv.includes('--if-possible')) {
    process.stderr.write('talus: TypeScript is not installed; not building dist/ (bin/talus.js runs the sources)\n');
    process.exit(0);
  }
  throw new Error('npm run build needs the typescript devDependency');
}
const fingerprint = sourceFingerprint(`${root}src`);
rmSync(`${root}dist/BUILT`, { force: true });
const result = spawnSync(process.execPath, [tsc, '-p', `${root}tsconfig.build.json`], { stdio: 'inherit' });
if (result.status !== 0) process.exit(result.status ?? 1);
mkdirSync(`${root}dist`, { recursive: true });
writeFileSync(`${root}dist/BUILT`, `${fingerprint}\n`);
