#!/usr/bin/env node
// Runs the compiled `dist/` when it is at least as new as every source file
// (`npm run build`, run by `npm ci`/`npm install` through `prepare`), and the
// TypeScript sources through tsx's loader otherwise, so an edit is never
// served stale. dist/ saves the loader: ~40 MiB of RSS per process (its
// esbuild service is a child process) and most of the start-up time.
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));

function mtimeMs(path) {
  try {
    return statSync(path).mtimeMs;
  } catch {
    return -1;
  }
}

function newestSourceMs(directory) {
  let newest = -1;
  let entries;
  try {
    entries = readdirSync(directory, { withFileTypes: true });
  } catch {
    return newest;
  }
  for (const entry of entries) {
    const path = join(directory, entry.name);
    if (entry.isDirectory()) newest = Math.max(newest, newestSourceMs(path));
    else if (entry.name.endsWith('.ts')) newest = Math.max(newest, mtimeMs(path));
  }
  return newest;
}

const builtMs = mtimeMs(join(root, 'dist', 'BUILT'));
if (builtMs >= 0 && builtMs >= newestSourceMs(join(root, 'src'))) {
  await import('../dist/cli.js');
} else {
  const { register } = await import('tsx/esm/api');
  register();
  await import('../src/cli.ts');
}
