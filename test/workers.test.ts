/**
 * Talus with several worker processes on one data directory: requests are
 * spread over the workers, writes stay serialized across them, bucket
 * settings reach every worker, the purger respects reads streaming in any
 * worker, and a worker that dies is replaced.
 */
import {
  CompleteMultipartUploadCommand,
  CreateBucketCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  ListObjectVersionsCommand,
  PutBucketVersioningCommand,
  PutObjectCommand,
  S3Client,
  UploadPartCommand,
} from '@aws-sdk/client-s3';
import assert from 'node:assert/strict';
import cluster from 'node:cluster';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { Agent, request as httpRequest, type IncomingMessage } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, test } from 'node:test';
import { startTalus, type RunningTalus } from '../src/talus.ts';
import { silentLogger } from '../src/util/logger.ts';
import { countBlobFiles, withTimeout } from './helpers/process.ts';
import { signedRequest, signRequest } from './helpers/raw.ts';
import { ACCESS_KEY_ID, SECRET_ACCESS_KEY } from './helpers/talus.ts';

const MiB = 1024 * 1024;
const sha256 = (data: Uint8Array): string => createHash('sha256').update(data).digest('hex');

/** An SDK client that opens a new connection per request, so node:cluster spreads requests over workers. */
function freshConnectionClient(url: string): S3Client {
  return new S3Client({
    endpoint: url,
    region: 'us-east-1',
    forcePathStyle: true,
    credentials: { accessKeyId: ACCESS_KEY_ID, secretAccessKey: SECRET_ACCESS_KEY },
    maxAttempts: 1,
    requestHandler: { httpAgent: new Agent({ keepAlive: false }) },
  });
}

async function blobFilesEventually(dataDir: string, expected: number, withinMs: number): Promise<number> {
  const deadline = Date.now() + withinMs;
  let count = await countBlobFiles(dataDir);
  while (count !== expected && Date.now() < deadline) {
    await sleep(100);
    count = await countBlobFiles(dataDir);
  }
  return count;
}

describe('several worker processes', { timeout: 120_000 }, () => {
  let dataDir: string;
  let talus: RunningTalus;
  let client: S3Client;

  before(async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'talus-workers-'));
    talus = await startTalus({
      dataDir,
      port: 0,
      address: '127.0.0.1',
      workers: 2,
      rootAccessKeyId: ACCESS_KEY_ID,
      rootSecretAccessKey: SECRET_ACCESS_KEY,
      logger: silentLogger,
    });
    client = freshConnectionClient(talus.url);
  });

  after(async () => {
    client.destroy();
    await talus.close();
    await rm(dataDir, { recursive: true, force: true });
  });

  test('requests are served by both workers on one port', async () => {
    assert.equal(talus.workers, 2);
    assert.equal(talus.server, undefined, 'the primary serves no HTTP itself');
    const prefixes = new Set<string>();
    for (let i = 0; i < 20; i++) {
      const response = await signedRequest(talus.url, { method: 'GET', path: '/' });
      assert.equal(response.status, 200);
      // A request ID starts with a per-process prefix.
      prefixes.add(String(response.headers['x-amz-request-id']).slice(0, 6));
    }
    assert.equal(prefixes.size, 2, `request IDs came from ${prefixes.size} process(es)`);
  });

  test('conditional creates racing through both workers: exactly one wins', async () => {
    const bucket = 'workers-race';
    await client.send(new CreateBucketCommand({ Bucket: bucket }));
    const outcomes = await Promise.all(
      Array.from({ length: 40 }, (_, i) =>
        client.send(new PutObjectCommand({ Bucket: bucket, Key: 'only-once', Body: `writer ${i}`, IfNoneMatch: '*' })).then(
          () => 200,
          (error: { $metadata?: { httpStatusCode?: number } }) => error.$metadata?.httpStatusCode ?? 0,
        ),
      ),
    );
    assert.equal(outcomes.filter((status) => status === 200).length, 1, `outcomes: ${outcomes.join(',')}`);
    assert.ok(outcomes.every((status) => status === 200 || status === 412 || status === 409), `outcomes: ${outcomes.join(',')}`);
  });

  test('enabling versioning through one worker reaches the other', async () => {
    const bucket = 'workers-versioning';
    await client.send(new CreateBucketCommand({ Bucket: bucket }));
    // Both workers look the bucket up (and cache it) before its settings change.
    for (let i = 0; i < 4; i++) await client.send(new PutObjectCommand({ Bucket: bucket, Key: 'warm', Body: 'x' }));
    await client.send(new PutBucketVersioningCommand({ Bucket: bucket, VersioningConfiguration: { Status: 'Enabled' } }));
    await sleep(200);
    for (let i = 0; i < 6; i++) await client.send(new PutObjectCommand({ Bucket: bucket, Key: 'versioned', Body: `v${i}` }));
    const listed = await client.send(new ListObjectVersionsCommand({ Bucket: bucket, Prefix: 'versioned' }));
    assert.equal(listed.Versions?.length, 6, 'every PUT after enabling versioning kept its own version');
    assert.ok(listed.Versions?.every((version) => version.VersionId !== 'null'));
  });

  test('the purger in the primary leaves blobs alone while a worker streams them', async () => {
    // Two parts, so the GET opens the second blob only after the object is
    // deleted and the purge grace has passed: only the cross-process lease
    // keeps it.
    const bucket = 'workers-lease';
    await client.send(new CreateBucketCommand({ Bucket: bucket }));
    const key = 'two-parts';
    const parts = [randomBytes(5 * MiB), randomBytes(5 * MiB)];
    const { UploadId } = await client.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: key }));
    const etags: string[] = [];
    for (const [i, body] of parts.entries()) {
      etags.push((await client.send(new UploadPartCommand({ Bucket: bucket, Key: key, UploadId, PartNumber: i + 1, Body: body }))).ETag!);
    }
    await client.send(
      new CompleteMultipartUploadCommand({ Bucket: bucket, Key: key, UploadId, MultipartUpload: { Parts: etags.map((ETag, i) => ({ ETag, PartNumber: i + 1 })) } }),
    );
    const blobsBefore = await countBlobFiles(dataDir);

    const path = `/${bucket}/${key}`;
    const headers = await signRequest(talus.url, { method: 'GET', path });
    const url = new URL(talus.url);
    const response = await withTimeout(
      new Promise<IncomingMessage>((resolve, reject) => {
        const outgoing = httpRequest({ host: url.hostname, port: url.port, method: 'GET', path, headers, agent: false }, resolve);
        outgoing.on('error', reject);
        outgoing.end();
      }),
      10_000,
      'GET response headers',
    );
    assert.equal(response.statusCode, 200);
    response.pause();
    await client.send(new DeleteObjectCommand({ Bucket: bucket, Key: key }));
    // Past the 2 s grace and several purger ticks.
    await sleep(4_000);
    assert.equal(await countBlobFiles(dataDir), blobsBefore, 'no blob of the object being read was purged');

    const chunks: Buffer[] = [];
    response.on('data', (chunk: Buffer) => chunks.push(chunk));
    response.resume();
    await withTimeout(new Promise<void>((resolve, reject) => {
      response.on('end', () => resolve());
      response.on('error', reject);
      response.on('close', () => (response.complete ? resolve() : reject(new Error(`GET cut after ${Buffer.concat(chunks).length} bytes`))));
    }), 30_000, 'slow GET');
    assert.equal(sha256(Buffer.concat(chunks)), sha256(Buffer.concat(parts)));
    assert.equal(await blobFilesEventually(dataDir, blobsBefore - 2, 10_000), blobsBefore - 2, 'purged once the GET ended');
  });

  test('a worker killed with SIGKILL is replaced and service continues', async () => {
    const bucket = 'workers-kill';
    await client.send(new CreateBucketCommand({ Bucket: bucket }));
    const victim = Object.values(cluster.workers ?? {})[0];
    assert.ok(victim?.process.pid !== undefined);
    victim.process.kill('SIGKILL');
    await sleep(300);
    // Meanwhile the other worker serves.
    for (let i = 0; i < 6; i++) await client.send(new PutObjectCommand({ Bucket: bucket, Key: `k${i}`, Body: 'x' }));
    const deadline = Date.now() + 20_000;
    let prefixes = new Set<string>();
    while (Date.now() < deadline) {
      prefixes = new Set<string>();
      for (let i = 0; i < 10; i++) prefixes.add(String((await signedRequest(talus.url, { method: 'GET', path: '/' })).headers['x-amz-request-id']).slice(0, 6));
      if (prefixes.size === 2) break;
      await sleep(250);
    }
    assert.equal(prefixes.size, 2, 'a replacement worker serves again');
    assert.equal(Object.keys(cluster.workers ?? {}).length, 2);
  });
});
