/**
 * Runs the documented examples under docs/examples: a copy next to the
 * project's node_modules with its `talus/*` (and framework) imports pointed
 * at the sources and shims, through tsx, as a child process.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { PROJECT_ROOT } from './process.ts';

export const EXAMPLES = join(PROJECT_ROOT, 'docs', 'examples');
export const SHIMS = join(PROJECT_ROOT, 'test', 'fixtures', 'framework-shims');
export const PUBLIC_SOURCES: Readonly<Record<string, string>> = {
  'talus/server': join(PROJECT_ROOT, 'src', 'public', 'server.ts'),
  'talus/scan': join(PROJECT_ROOT, 'src', 'public', 'scan.ts'),
};

export interface ExampleRun {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a file with node (tsx loaded); `test` runs it under node:test's runner (TAP on stdout). */
export function runNode(file: string, options: { imports?: readonly string[]; test?: boolean } = {}): Promise<ExampleRun> {
  const args = ['--import', 'tsx', ...(options.imports ?? []).flatMap((path) => ['--import', path]), ...(options.test === true ? ['--test', '--test-reporter=tap'] : []), file];
  // Without the parent's NODE_TEST_CONTEXT, or a child runner would report to this one instead of running its file.
  const { NODE_TEST_CONTEXT: _parent, ...env } = process.env;
  return new Promise((resolve) => {
    execFile(process.execPath, args, { cwd: PROJECT_ROOT, env, timeout: 120_000 }, (error, stdout, stderr) => {
      resolve({ code: error === null ? 0 : typeof error.code === 'number' ? error.code : 1, stdout, stderr });
    });
  });
}

/** Copies an example with its package imports rewritten (each must occur) and runs it. */
export async function runExample(name: string, rewrites: Readonly<Record<string, string>>, options: { imports?: readonly string[]; test?: boolean } = {}): Promise<ExampleRun> {
  let source = await readFile(join(EXAMPLES, name), 'utf8');
  for (const [from, to] of Object.entries(rewrites)) {
    assert.ok(source.includes(`from '${from}'`), `${name} imports ${from}`);
    source = source.replaceAll(`from '${from}'`, `from '${to}'`);
  }
  const scratch = await mkdtemp(join(PROJECT_ROOT, 'test', '.example-'));
  try {
    const file = join(scratch, name.replace('.example', ''));
    await writeFile(file, source);
    return await runNode(file, options);
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
}
