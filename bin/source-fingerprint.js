// The fingerprint of the sources dist/ is compiled from: every non-test .ts
// file under src/ with its size and modification time. `npm run build`
// records it (taken before compiling) in dist/BUILT; bin/talus.js runs dist/
// only while the sources still have that exact fingerprint. Equality, not
// "newer than": an edit during a build, or sources laid down with old
// modification times (rsync -a, tar), must not be served from a stale dist/.
import { createHash } from 'node:crypto';
import { readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';

export function sourceFingerprint(sourceRoot) {
  const entries = [];
  const walk = (directory) => {
    for (const entry of readdirSync(directory, { withFileTypes: true })) {
      const path = join(directory, entry.name);
      if (entry.isDirectory()) walk(path);
      else if (entry.name.endsWith('.ts') && !entry.name.endsWith('.test.ts')) {
        const stat = statSync(path);
        entries.push(`${relative(sourceRoot, path)}\t${stat.size}\t${stat.mtimeMs}`);
      }
    }
  };
  walk(sourceRoot);
  entries.sort();
  return createHash('sha256').update(entries.join('\n')).digest('hex');
}
