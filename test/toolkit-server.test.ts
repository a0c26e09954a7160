/**
 * talus/server: the in-process server for test suites. It is the real server
 * (startTalus), on an ephemeral port; memory mode is a tmpfs directory removed
 * on close; a given directory keeps its objects and credentials. The
 * documented examples for node:test, Vitest and Jest run here (the last two
 * with the frameworks' few functions mapped onto node:test, since neither is
 * installed).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { GetObjectCommand, PutObjectCommand, CreateBucketCommand } from '@aws-sdk/client-s3';
import { startServer } from '../src/public/server.ts';
import { makeClient } from './helpers/talus.ts';
import { PROJECT_ROOT } from './helpers/process.ts';

const EXAMPLES = join(PROJECT_ROOT, 'docs', 'examples');
const SHIMS = join(PROJECT_ROOT, 'test', 'fixtures', 'framework-shims');

test('memory mode: a real S3 endpoint on an ephemeral port, its store gone after close', async () => {
  const s3 = await startServer({ memory: true, port: 0 });
  assert.match(s3.endpoint, /^http:\/\/127\.0\.0\.1:\d+$/);
  assert.notEqual(s3.port, 0);
  if (existsSync('/dev/shm')) assert.ok(s3.dir.startsWith('/dev/shm/'), s3.dir);
  assert.ok(existsSync(join(s3.dir, 'meta.db')));
  const client = makeClient(s3.endpoint, { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey });
  try {
    await client.send(new CreateBucketCommand({ Bucket: 'bkt' }));
    await client.send(new PutObjectCommand({ Bucket: 'bkt', Key: 'k', Body: 'hello' }));
    const got = await client.send(new GetObjectCommand({ Bucket: 'bkt', Key: 'k' }));
    assert.equal(await got.Body?.transformToString(), 'hello');
  } finally {
    client.destroy();
    await Promise.all([s3.close(), s3.close()]); // idempotent
  }
  assert.equal(existsSync(s3.dir), false);
  await assert.rejects(fetch(`${s3.endpoint}/bkt/k`), 'the port no longer answers');
});

test('a given directory keeps objects and credentials across restarts', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'talus-server-dir-'));
  try {
    const first = await startServer({ dir, accessKeyId: 'EXAMPLEKEY', secretAccessKey: 'example-secret-0123456789' });
    assert.equal(first.accessKeyId, 'EXAMPLEKEY');
    const client = makeClient(first.endpoint, { accessKeyId: first.accessKeyId, secretAccessKey: first.secretAccessKey });
    try {
      await client.send(new CreateBucketCommand({ Bucket: 'kept' }));
      await client.send(new PutObjectCommand({ Bucket: 'kept', Key: 'k', Body: 'still here' }));
    } finally {
      client.destroy();
      await first.close();
    }
    assert.ok(existsSync(join(dir, 'meta.db')), 'close keeps a given directory');

    const second = await startServer({ dir });
    assert.equal(second.accessKeyId, 'EXAMPLEKEY', 'the stored credentials');
    const again = makeClient(second.endpoint, { accessKeyId: second.accessKeyId, secretAccessKey: second.secretAccessKey });
    try {
      const got = await again.send(new GetObjectCommand({ Bucket: 'kept', Key: 'k' }));
      assert.equal(await got.Body?.transformToString(), 'still here');
    } finally {
      again.destroy();
      await second.close();
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('bad options are refused before anything starts', async () => {
  await assert.rejects(startServer({ dir: '/tmp/x', memory: true }), TypeError);
  await assert.rejects(startServer({ accessKeyId: 'only-half' }), TypeError);
});

function runNodeTest(file: string, imports: readonly string[] = []): { status: number | null; output: string } {
  const args = ['--import', 'tsx', ...imports.flatMap((path) => ['--import', path]), '--test', '--test-reporter=tap', file];
  // Without the parent's NODE_TEST_CONTEXT, or the child would report to this runner instead of running its file.
  const { NODE_TEST_CONTEXT: _parent, ...env } = process.env;
  const result = spawnSync(process.execPath, args, { cwd: PROJECT_ROOT, env, encoding: 'utf8', timeout: 120_000 });
  return { status: result.status, output: `${result.stdout}\n${result.stderr}` };
}

test('the node:test example runs', () => {
  const run = runNodeTest(join(EXAMPLES, 'server-node-test.test.ts'));
  assert.equal(run.status, 0, run.output);
  assert.match(run.output, /# pass 1/);
});

/** Copies an example next to the project's node_modules with its package imports pointed at the sources and shims. */
async function runRewrittenExample(name: string, rewrites: Record<string, string>, imports: readonly string[] = []): Promise<{ status: number | null; output: string }> {
  let source = await readFile(join(EXAMPLES, name), 'utf8');
  for (const [from, to] of Object.entries(rewrites)) {
    assert.ok(source.includes(`from '${from}'`), `${name} imports ${from}`);
    source = source.replaceAll(`from '${from}'`, `from '${to}'`);
  }
  const scratch = await mkdtemp(join(PROJECT_ROOT, 'test', '.example-'));
  try {
    const file = join(scratch, name.replace('.example', ''));
    await writeFile(file, source);
    return runNodeTest(file, imports);
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
}

test('the Vitest example runs (vitest mapped onto node:test)', async () => {
  const run = await runRewrittenExample('server-vitest.test.example.ts', {
    vitest: join(SHIMS, 'vitest.ts'),
    'talus/server': join(PROJECT_ROOT, 'src', 'public', 'server.ts'),
  });
  assert.equal(run.status, 0, run.output);
  assert.match(run.output, /# pass 1/);
});

test('the Jest example runs (Jest globals mapped onto node:test)', async () => {
  const run = await runRewrittenExample(
    'server-jest.test.example.mjs',
    { 'talus/server': join(PROJECT_ROOT, 'src', 'public', 'server.ts') },
    [join(SHIMS, 'jest-globals.ts')],
  );
  assert.equal(run.status, 0, run.output);
  assert.match(run.output, /# pass 1/);
});
