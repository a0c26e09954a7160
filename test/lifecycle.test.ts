/**
 * The server as an operator runs it: a SIGTERM while an upload is streaming
 * lets that upload finish (200) before the process exits with code 0, and
 * the object is there after a restart. Also virtual-host-style addressing
 * with --domain, through the same signed request path.
 */
import { CreateBucketCommand, GetObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { test } from 'node:test';
import { startServerProcess } from './helpers/process.ts';
import { send, signRequest } from './helpers/raw.ts';
import { makeClient } from './helpers/talus.ts';
import { startTalus } from '../src/talus.ts';
import { silentLogger } from '../src/util/logger.ts';

test('SIGTERM lets an in-flight upload finish, exits 0, and the object survives a restart', { timeout: 120_000 }, async () => {
  const dataDir = await mkdtemp(join(tmpdir(), 'talus-shutdown-'));
  const server = await startServerProcess(dataDir);
  try {
    const client = makeClient(server.url);
    await client.send(new CreateBucketCommand({ Bucket: 'shutdown' }));
    client.destroy();
    const body = randomBytes(4 * 1024 * 1024);
    const headers = await signRequest(server.url, { method: 'PUT', path: '/shutdown/slow', unsignedPayload: true, headers: { 'content-length': String(body.length) } });
    const url = new URL(server.url);
    const status = new Promise<number>((resolve, reject) => {
      const outgoing = request({ host: url.hostname, port: url.port, method: 'PUT', path: '/shutdown/slow', headers }, (response) => {
        response.resume();
        response.on('end', () => resolve(response.statusCode ?? 0));
      });
      outgoing.on('error', reject);
      // Send the body in 16 slices over ~1.6 s; SIGTERM arrives in the middle.
      void (async () => {
        for (let slice = 0; slice < 16; slice++) {
          outgoing.write(body.subarray(slice * body.length / 16, (slice + 1) * body.length / 16));
          await sleep(100);
        }
        outgoing.end();
      })();
    });
    await sleep(400);
    server.child.kill('SIGTERM');
    assert.equal(await status, 200, 'the in-flight upload was acknowledged');
    assert.deepEqual(await server.exited, { code: 0, signal: null });
    const restarted = await startServerProcess(dataDir);
    try {
      const again = makeClient(restarted.url);
      const got = await again.send(new GetObjectCommand({ Bucket: 'shutdown', Key: 'slow' }));
      assert.ok(Buffer.from(await got.Body!.transformToByteArray()).equals(body));
      again.destroy();
    } finally {
      await restarted.stop();
    }
  } finally {
    if (server.child.exitCode === null) await server.kill9();
    await rm(dataDir, { recursive: true, force: true });
  }
});

test('a second server on the same data directory is refused; stray files in the blob store are ignored', async () => {
  const dataDir = await mkdtemp(join(tmpdir(), 'talus-lock-'));
  const credentials = { rootAccessKeyId: 'TALUSTESTKEY', rootSecretAccessKey: 'talus-test-secret-key-0123456789' };
  const first = await startTalus({ dataDir, port: 0, address: '127.0.0.1', logger: silentLogger, ...credentials });
  try {
    await assert.rejects(startTalus({ dataDir, port: 0, address: '127.0.0.1', logger: silentLogger, ...credentials }), { name: 'DataDirectoryLockedError' });
  } finally {
    await first.close();
  }
  await writeFile(join(dataDir, 'blobs', '00', '.nfs000000000123'), 'not a blob');
  const second = await startTalus({ dataDir, port: 0, address: '127.0.0.1', logger: silentLogger, ...credentials });
  await second.close();
  await rm(dataDir, { recursive: true, force: true });
});

test('virtual-host-style requests (bucket in the Host header) reach the same bucket', async () => {
  const dataDir = await mkdtemp(join(tmpdir(), 'talus-vhost-'));
  const talus = await startTalus({
    dataDir, port: 0, address: '127.0.0.1', domain: 's3.talus.test', logger: silentLogger,
    rootAccessKeyId: 'TALUSTESTKEY', rootSecretAccessKey: 'talus-test-secret-key-0123456789',
  });
  const path = makeClient(talus.url);
  try {
    await path.send(new CreateBucketCommand({ Bucket: 'vhost' }));
    await path.send(new PutObjectCommand({ Bucket: 'vhost', Key: 'dir/a b.txt', Body: 'virtual' }));
    const host = `vhost.s3.talus.test:${talus.port}`;
    const headers = await signRequest(talus.url, { method: 'GET', path: '/dir/a%20b.txt', headers: { host } });
    const response = await send(talus.url, 'GET', '/dir/a%20b.txt', headers);
    assert.equal(response.status, 200);
    assert.equal(response.body, 'virtual');
    const listHeaders = await signRequest(talus.url, { method: 'GET', path: '/', query: { 'list-type': '2' }, headers: { host } });
    const listed = await send(talus.url, 'GET', '/?list-type=2', listHeaders);
    assert.match(listed.body, /<Key>dir\/a b\.txt<\/Key>/);
  } finally {
    path.destroy();
    await talus.close();
    await rm(dataDir, { recursive: true, force: true });
  }
});

