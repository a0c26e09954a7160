/**
 * talus/server: the in-process server for test suites. It is the real server
 * (startTalus), on an ephemeral port; memory mode is a tmpfs directory removed
 * on close; a given directory keeps its objects and credentials. The
 * documented examples for node:test, Vitest and Jest run here (the last two
 * with the frameworks' few functions mapped onto node:test, since neither is
 * installed).
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { GetObjectCommand, PutObjectCommand, CreateBucketCommand } from '@aws-sdk/client-s3';
import { startServer } from '../src/public/server.ts';
import { EXAMPLES, PUBLIC_SOURCES, SHIMS, runExample, runNode } from './helpers/examples.ts';
import { makeClient } from './helpers/talus.ts';

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

test('the node:test example runs', async () => {
  const run = await runNode(join(EXAMPLES, 'server-node-test.test.ts'), { test: true });
  assert.equal(run.code, 0, run.stdout + run.stderr);
  assert.match(run.stdout, /# pass 1/);
});

test('the Vitest example runs (vitest mapped onto node:test)', async () => {
  const run = await runExample('server-vitest.test.example.ts', { vitest: join(SHIMS, 'vitest.ts'), 'talus/server': PUBLIC_SOURCES['talus/server']! }, { test: true });
  assert.equal(run.code, 0, run.stdout + run.stderr);
  assert.match(run.stdout, /# pass 1/);
});

test('the Jest example runs (Jest globals mapped onto node:test)', async () => {
  const run = await runExample('server-jest.test.example.mjs', { 'talus/server': PUBLIC_SOURCES['talus/server']! }, { test: true, imports: [join(SHIMS, 'jest-globals.ts')] });
  assert.equal(run.code, 0, run.stdout + run.stderr);
  assert.match(run.stdout, /# pass 1/);
});
