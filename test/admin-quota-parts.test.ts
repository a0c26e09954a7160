/**
 * Parts of multipart uploads count against their bucket's quota as they
 * arrive (MinIO checks the quota on each part): incomplete uploads cannot
 * hold more than the quota allows; the part that passes the limit is refused
 * with the quota error; an abort (S3's, or lifecycle's
 * AbortIncompleteMultipartUpload) frees its parts; a completion turns its
 * parts into the object, counted once, and releases the parts it left out;
 * a replaced part counts its difference; concurrent parts that each fit but
 * together do not cannot all pass. Real HTTP on loopback, the AWS SDK, one
 * server.
 */
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateBucketCommand,
  CreateMultipartUploadCommand,
  PutBucketLifecycleConfigurationCommand,
  PutObjectCommand,
  S3ServiceException,
  UploadPartCommand,
  type S3Client,
} from '@aws-sdk/client-s3';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { AdminClient } from '../src/admin/client.ts';
import { dayScale } from '../src/lifecycle/rules.ts';
import { LifecycleWorker } from '../src/lifecycle/worker.ts';
import { startTalus, type RunningTalus } from '../src/talus.ts';
import { silentLogger } from '../src/util/logger.ts';
import { ACCESS_KEY_ID, SECRET_ACCESS_KEY, makeClient, uniqueBucket } from './helpers/talus.ts';

type QuotaAnswer = { maxBytes: number | null; maxObjects: number | null; usedBytes: number | null; usedObjects: number | null };
const QUOTA_CODE = 'XMinioAdminBucketQuotaExceeded';
const MiB = 1024 * 1024;

async function outcome(call: Promise<unknown>): Promise<string> {
  try {
    await call;
    return 'ok';
  } catch (error) {
    if (error instanceof S3ServiceException) return `${error.$metadata.httpStatusCode} ${error.name}`;
    throw error;
  }
}

const refused = `400 ${QUOTA_CODE}`;

describe('bucket quotas and upload parts', { timeout: 120_000 }, () => {
  let dataDir: string;
  let talus: RunningTalus;
  let root: AdminClient;
  let s3: S3Client;

  before(async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'talus-quota-parts-'));
    talus = await startTalus({
      dataDir, port: 0, address: '127.0.0.1', rootAccessKeyId: ACCESS_KEY_ID, rootSecretAccessKey: SECRET_ACCESS_KEY,
      logger: silentLogger, admin: { port: 0, address: '127.0.0.1' }, lifecycle: { daySeconds: 1000 },
    });
    root = new AdminClient({ endpoint: talus.adminUrl!, accessKeyId: ACCESS_KEY_ID, secretAccessKey: SECRET_ACCESS_KEY });
    s3 = makeClient(talus.url);
  });
  after(async () => {
    s3.destroy();
    await talus.close();
    await rm(dataDir, { recursive: true, force: true });
  });

  const usedBytes = async (bucket: string): Promise<number | null> => (await root.call<QuotaAnswer>('GetBucketQuota', { bucket })).usedBytes;
  const bucketWithQuota = async (maxBytes: number): Promise<string> => {
    const bucket = uniqueBucket('qparts');
    await s3.send(new CreateBucketCommand({ Bucket: bucket }));
    await root.call('SetBucketQuota', { bucket, maxBytes });
    return bucket;
  };
  const startUpload = async (bucket: string, key: string): Promise<string> => (await s3.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: key }))).UploadId!;
  const uploadPart = (bucket: string, key: string, uploadId: string, partNumber: number, bytes: number) =>
    s3.send(new UploadPartCommand({ Bucket: bucket, Key: key, UploadId: uploadId, PartNumber: partNumber, Body: Buffer.alloc(bytes, partNumber) }));

  test('incomplete uploads hold no more than the quota: the part that passes it is refused; an abort frees its parts', async () => {
    const bucket = await bucketWithQuota(6 * MiB);
    const first = await startUpload(bucket, 'k0');
    assert.equal(await outcome(uploadPart(bucket, 'k0', first, 1, 5 * MiB)), 'ok');
    assert.equal(await outcome(uploadPart(bucket, 'k0', first, 2, 5 * MiB)), refused, '10 MiB > 6 MiB');
    const second = await startUpload(bucket, 'k1');
    assert.equal(await outcome(uploadPart(bucket, 'k1', second, 1, 5 * MiB)), refused, 'another upload is bounded by the same quota');
    assert.equal(await outcome(uploadPart(bucket, 'k1', second, 1, 1 * MiB)), 'ok');
    assert.equal(await usedBytes(bucket), 6 * MiB, 'GetBucketQuota counts parts in flight');
    // Nothing fits any more, not even one byte, in a PUT or a part.
    assert.equal(await outcome(s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'small', Body: 'x' }))), refused);
    assert.equal(await outcome(uploadPart(bucket, 'k1', second, 2, 1)), refused);
    await s3.send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: 'k0', UploadId: first }));
    assert.equal(await usedBytes(bucket), 1 * MiB, 'the abort freed its part');
    assert.equal(await outcome(uploadPart(bucket, 'k1', second, 2, 5 * MiB)), 'ok');
    assert.equal(await usedBytes(bucket), 6 * MiB);
  });

  test('a replaced part counts its difference; a completion leaves the object\'s size counted, once, and releases parts it left out', async () => {
    const bucket = await bucketWithQuota(20 * MiB);
    const uploadId = await startUpload(bucket, 'obj');
    const part1 = await uploadPart(bucket, 'obj', uploadId, 1, 5 * MiB);
    await uploadPart(bucket, 'obj', uploadId, 2, 8 * MiB);
    await uploadPart(bucket, 'obj', uploadId, 3, 4 * MiB);
    assert.equal(await usedBytes(bucket), 17 * MiB);
    // Part 2 sent again, smaller: its old bytes are released by the replacement.
    const part2 = await uploadPart(bucket, 'obj', uploadId, 2, 3 * MiB);
    assert.equal(await usedBytes(bucket), 12 * MiB);
    // Completed with parts 1 and 2 only: part 3 is not in the object and no longer counts.
    await s3.send(new CompleteMultipartUploadCommand({
      Bucket: bucket, Key: 'obj', UploadId: uploadId,
      MultipartUpload: { Parts: [{ PartNumber: 1, ETag: part1.ETag }, { PartNumber: 2, ETag: part2.ETag }] },
    }));
    assert.deepEqual(await root.call<QuotaAnswer>('GetBucketQuota', { bucket }), { maxBytes: 20 * MiB, maxObjects: null, usedBytes: 8 * MiB, usedObjects: 1 });
  });

  test('concurrent parts that each fit but together do not: exactly those that fit pass', async () => {
    const bucket = await bucketWithQuota(3 * MiB);
    const uploads = await Promise.all([0, 1, 2, 3, 4, 5].map((n) => startUpload(bucket, `race${n}`)));
    const outcomes = await Promise.all(uploads.map((uploadId, n) => outcome(uploadPart(bucket, `race${n}`, uploadId, 1, 1 * MiB))));
    assert.equal(outcomes.filter((answer) => answer === 'ok').length, 3, outcomes.join(', '));
    assert.equal(outcomes.filter((answer) => answer === refused).length, 3, outcomes.join(', '));
    assert.equal(await usedBytes(bucket), 3 * MiB);
  });

  test('lifecycle\'s AbortIncompleteMultipartUpload frees the parts it aborts', async () => {
    const bucket = await bucketWithQuota(6 * MiB);
    await s3.send(new PutBucketLifecycleConfigurationCommand({
      Bucket: bucket,
      LifecycleConfiguration: { Rules: [{ ID: 'stale', Filter: { Prefix: '' }, Status: 'Enabled', AbortIncompleteMultipartUpload: { DaysAfterInitiation: 1 } }] },
    }));
    const uploadId = await startUpload(bucket, 'stale');
    await uploadPart(bucket, 'stale', uploadId, 1, 5 * MiB);
    assert.equal(await usedBytes(bucket), 5 * MiB);
    await sleep(20);
    // A worker with a 1 ms day on the server's engine (the server's own has a 1000-second day: nothing due).
    const worker = new LifecycleWorker(talus.engine, { scale: dayScale(0.001), intervalMs: 3_600_000, onError: (error) => assert.fail(String(error)) });
    for (let passes = 0; !(await worker.runPass()).completedScan; passes++) assert.ok(passes < 100, 'the scan ends');
    assert.equal(await usedBytes(bucket), 0);
    assert.equal(await outcome(s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'fits', Body: Buffer.alloc(6 * MiB) }))), 'ok');
  });
});
