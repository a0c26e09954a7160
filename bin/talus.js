#!/usr/bin/env node
// A plain `env node` line: `env -S` (to pass V8 flags here) is missing from
// BusyBox, so Alpine images could not start Talus. A single server's smaller
// nursery (src/cluster.ts gives workers --max-semi-space-size=4, ~20 MiB less
// resident) is for NODE_OPTIONS=--max-semi-space-size=4 (docs/PERFORMANCE.md).
// Runs the compiled dist/ when it was built from exactly the sources now in
// src/ (see source-fingerprint.js), and the TypeScript sources through tsx
// otherwise, so an edit is never served stale. dist/ saves the loader: ~40 MiB
// of RSS per process (its esbuild service is a child process) and most of
// the start-up time.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { sourceFingerprint } from './source-fingerprint.js';

const root = fileURLToPath(new URL('..', import.meta.url));

function compiledIsCurrent() {
  let built;
  try {
    built = readFileSync(new URL('../dist/BUILT', import.meta.url), 'utf8').trim();
  } catch {
    return false;
  }
  try {
    return built === sourceFingerprint(`${root}src`);
  } catch {
    // No src/ (a package that ships only dist/): dist/ is all there is.
    return true;
  }
}

if (compiledIsCurrent()) {
  await import('../dist/cli.js');
} else {
  const { register } = await import('tsx/esm/api');
  register();
  await import('../src/cli.ts');
}
