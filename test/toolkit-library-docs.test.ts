/**
 * docs/LIBRARY-server-scan.md cannot rot: each example block equals its file
 * under docs/examples (which the tests run), the scan example prints what
 * the doc says, and the package's `talus/server` and `talus/scan` exports
 * resolve, after `npm run build`, to working modules with type declarations.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { EXAMPLES, PUBLIC_SOURCES, runExample } from './helpers/examples.ts';
import { PROJECT_ROOT } from './helpers/process.ts';

const DOC = join(PROJECT_ROOT, 'docs', 'LIBRARY-server-scan.md');

test('every example block in the doc is its file under docs/examples, verbatim', async () => {
  const doc = await readFile(DOC, 'utf8');
  const blocks = [...doc.matchAll(/<!-- example: (\S+) -->\n```\w*\n([\s\S]*?)```\n/g)];
  assert.ok(blocks.length >= 4, `found ${blocks.length} example blocks`);
  for (const [, path, block] of blocks) {
    assert.equal(block, await readFile(join(PROJECT_ROOT, path!), 'utf8'), `${path} differs from its block in the doc`);
  }
});

test('the talus/scan example runs and prints what the doc shows', async () => {
  const run = await runExample('scan-library.example.ts', { 'talus/scan': PUBLIC_SOURCES['talus/scan']!, 'talus/server': PUBLIC_SOURCES['talus/server']! });
  assert.equal(run.code, 0, run.stderr);
  const doc = await readFile(DOC, 'utf8');
  const shown = /It prints:\n\n```\n([\s\S]*?)```/.exec(doc)?.[1];
  assert.equal(run.stdout, shown);
  assert.ok(existsSync(join(EXAMPLES, 'scan-library.example.ts')));
});

test('after the build, talus/server and talus/scan resolve through the exports map, with .d.ts', { timeout: 180_000 }, async () => {
  const manifest = JSON.parse(await readFile(join(PROJECT_ROOT, 'package.json'), 'utf8')) as { exports: Record<string, { types: string; default: string }> };
  const run = (args: string[]): Promise<{ code: number; output: string }> =>
    new Promise((resolve) => {
      execFile(process.execPath, args, { cwd: PROJECT_ROOT, timeout: 120_000 }, (error, stdout, stderr) => resolve({ code: error === null ? 0 : 1, output: stdout + stderr }));
    });
  const build = await run([join(PROJECT_ROOT, 'scripts', 'build.mjs')]);
  assert.equal(build.code, 0, build.output);
  for (const entry of ['./server', './scan']) {
    assert.ok(existsSync(join(PROJECT_ROOT, manifest.exports[entry]!.types)), `${entry} types`);
    assert.ok(existsSync(join(PROJECT_ROOT, manifest.exports[entry]!.default)), `${entry} module`);
  }
  const script = `
    const { startServer } = await import('talus/server');
    const { scanObjects } = await import('talus/scan');
    const s3 = await startServer();
    const seen = [];
    try {
      await fetch(s3.endpoint); // answers (403 without a signature)
      for await (const o of scanObjects({ endpoint: s3.endpoint, bucket: 'none-such', credentials: s3 })) seen.push(o);
    } catch (error) { seen.push(String(error.message)); }
    await s3.close();
    console.log(JSON.stringify(seen));`;
  const imported = await run(['--input-type=module', '-e', script]);
  assert.equal(imported.code, 0, imported.output);
  assert.match(imported.output, /NoSuchBucket/);
});
