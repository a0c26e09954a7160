/**
 * RemoveBackend with --workers 2: the workers drop the backend before the
 * primary counts its blobs (so no worker's write in flight commits a shard
 * there afterwards), and take it back when the removal is refused — objects
 * on it keep reading through either worker.
 */
import { CompleteMultipartUploadCommand, CreateBucketCommand, CreateMultipartUploadCommand, DeleteObjectCommand, GetObjectCommand, PutObjectCommand, S3Client, UploadPartCommand } from '@aws-sdk/client-s3';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { Agent } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { AdminApiError, AdminClient } from '../src/admin/client.ts';
import { parseConfig } from '../src/config/config.ts';
import { startTalus } from '../src/talus.ts';
import { silentLogger } from '../src/util/logger.ts';
import { ACCESS_KEY_ID, SECRET_ACCESS_KEY } from './helpers/talus.ts';

const ROOT = { accessKeyId: ACCESS_KEY_ID, secretAccessKey: SECRET_ACCESS_KEY };

async function outcome(call: Promise<unknown>): Promise<string> {
  try {
    await call;
    return 'ok';
  } catch (error) {
    if (error instanceof AdminApiError) return error.message;
    throw error;
  }
}

test('with --workers 2, a refused RemoveBackend leaves the backend readable through every worker; a forced one removes it', { timeout: 180_000 }, async () => {
  const root = await mkdtemp(join(tmpdir(), 'talus-backends-workers-'));
  for (const disk of ['base', 'z']) await mkdir(join(root, disk));
  const talus = await startTalus({
    dataDir: join(root, 'data'), port: 0, address: '127.0.0.1', workers: 2, rootAccessKeyId: ROOT.accessKeyId, rootSecretAccessKey: ROOT.secretAccessKey,
    logger: silentLogger, admin: { port: 0, address: '127.0.0.1' }, healInBackground: false,
    config: parseConfig(`[backends.base]\ntype = "directory"\npath = "${join(root, 'base')}"\n[placements.basic]\ntype = "single"\nbackend = "base"\n`, { source: 'test', baseDirectory: root }),
  });
  // A new connection per request, so the kernel spreads them over both workers.
  const s3 = new S3Client({ endpoint: talus.url, region: 'us-east-1', forcePathStyle: true, credentials: ROOT, requestHandler: { httpAgent: new Agent({ keepAlive: false }) } });
  const admin = new AdminClient({ endpoint: talus.adminUrl!, ...ROOT });
  try {
    await s3.send(new CreateBucketCommand({ Bucket: 'zed' }));
    await admin.call('AddBackend', { name: 'z', type: 'directory', path: join(root, 'z') });
    await admin.call('AddPlacement', { name: 'onz', type: 'single', backends: ['z'] });
    await admin.call('SetBucketPlacement', { bucket: 'zed', placement: 'onz' });
    const body = randomBytes(50_000);
    // A part of an incomplete upload: re-placement leaves it on z.
    const upload = await s3.send(new CreateMultipartUploadCommand({ Bucket: 'zed', Key: 'big' }));
    const part = await s3.send(new UploadPartCommand({ Bucket: 'zed', Key: 'big', UploadId: upload.UploadId, PartNumber: 1, Body: body }));
    await admin.call('SetBucketPlacement', { bucket: 'zed', placement: 'basic' });
    for (;;) {
      const { pass } = await admin.call<{ pass: { state: string } | null }>('GetHealStatus');
      if (pass !== null && !['waiting', 'running'].includes(pass.state)) break;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    await admin.call('DeletePlacement', { name: 'onz' });

    assert.match(await outcome(admin.call('RemoveBackend', { name: 'z' })), /^Conflict: backend z still holds shards of 1 blob /);
    // Both workers took z back: the upload completes and its object, on z, reads through either.
    await s3.send(new CompleteMultipartUploadCommand({ Bucket: 'zed', Key: 'big', UploadId: upload.UploadId, MultipartUpload: { Parts: [{ PartNumber: 1, ETag: part.ETag }] } }));
    const served = new Set<string>();
    for (let i = 0; i < 12; i++) {
      const answer = await s3.send(new GetObjectCommand({ Bucket: 'zed', Key: 'big' }));
      assert.ok(Buffer.from(await answer.Body!.transformToByteArray()).equals(body), 'the refused removal left z readable');
      served.add(answer.$metadata.requestId!.slice(0, 6));
    }
    assert.equal(served.size, 2, 'both workers read from z');

    assert.match(await outcome(admin.call('RemoveBackend', { name: 'z', force: true })), /^Conflict: backend z still holds shards of 1 live blob/);
    await s3.send(new DeleteObjectCommand({ Bucket: 'zed', Key: 'big' }));
    assert.equal(await outcome(admin.call('RemoveBackend', { name: 'z', force: true })), 'ok');
    await s3.send(new PutObjectCommand({ Bucket: 'zed', Key: 'after', Body: body }));
    assert.ok(Buffer.from(await (await s3.send(new GetObjectCommand({ Bucket: 'zed', Key: 'after' }))).Body!.transformToByteArray()).equals(body));
  } finally {
    s3.destroy();
    await talus.close();
    await rm(root, { recursive: true, force: true });
  }
});
