/**
 * Conditional writes and deletes (issue 12): If-None-Match and If-Match on
 * PutObject, CompleteMultipartUpload and CopyObject's destination; If-Match,
 * x-amz-if-match-last-modified-time and x-amz-if-match-size on DeleteObject
 * and on DeleteObjects entries. Every condition succeeds and fails once per
 * operation, a failure changes nothing (no version, no blob file left), and
 * concurrent conditional writers (in one process and across two workers)
 * have exactly one winner.
 */
import {
  CompleteMultipartUploadCommand,
  CopyObjectCommand,
  CreateBucketCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectVersionsCommand,
  PutBucketVersioningCommand,
  PutObjectCommand,
  S3Client,
  S3ServiceException,
  UploadPartCommand,
} from '@aws-sdk/client-s3';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { Agent, request as httpRequest, type ClientRequest } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { startTalus, type RunningTalus } from '../src/talus.ts';
import { silentLogger } from '../src/util/logger.ts';
import { countBlobFiles } from './helpers/process.ts';
import { queryString, send, signedRequest, signRequest, type RawResponse } from './helpers/raw.ts';
import { Principals } from '../src/principals/principals.ts';
import { clientFor, waitForAuth } from './helpers/principals.ts';
import { ACCESS_KEY_ID, SECRET_ACCESS_KEY, startTestTalus, uniqueBucket, type TestTalus } from './helpers/talus.ts';

/** Larger than INLINE_BYTES_MAX, so a body is a blob file whose fate can be counted. */
const BLOB_BYTES = 20 * 1024;
const RACERS = 50;

const body = (fill: string, bytes = BLOB_BYTES): Buffer => Buffer.alloc(bytes, fill);
const unquote = (etag: string | undefined): string => (etag ?? '').replaceAll('"', '');

/** The S3 error a call failed with, as "status Code" (throws if it succeeded). */
async function failure(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (error) {
    if (error instanceof S3ServiceException) return `${error.$metadata.httpStatusCode} ${error.name}`;
    throw error;
  }
  assert.fail('expected the request to fail');
}

/** "200" or "status Code" for each call, settled together. */
async function outcomes(calls: Promise<unknown>[]): Promise<string[]> {
  return Promise.all(calls.map((call) => call.then(() => '200', (error: unknown) => {
    if (error instanceof S3ServiceException) return `${error.$metadata.httpStatusCode} ${error.name}`;
    throw error;
  })));
}

function tally(results: readonly string[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const result of results) counts[result] = (counts[result] ?? 0) + 1;
  return counts;
}

/** A lost race is 412 (the condition no longer held) or 409 (it was changed while this request was in flight). */
function assertOneWinner(results: readonly string[], losers: readonly string[] = ['412 PreconditionFailed', '409 ConditionalRequestConflict']): void {
  const counts = tally(results);
  assert.equal(counts['200'], 1, `exactly one winner: ${JSON.stringify(counts)}`);
  for (const result of results) if (result !== '200') assert.ok(losers.includes(result), `unexpected outcome ${result}: ${JSON.stringify(counts)}`);
}

async function text(client: S3Client, bucket: string, key: string): Promise<string> {
  const response = await client.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
  return response.Body!.transformToString();
}

async function versionsOf(client: S3Client, bucket: string): Promise<string[]> {
  const listed = await client.send(new ListObjectVersionsCommand({ Bucket: bucket }));
  return [...(listed.Versions ?? []).map((v) => `${v.Key}:${v.VersionId}:${v.ETag}`), ...(listed.DeleteMarkers ?? []).map((m) => `${m.Key}:${m.VersionId}:marker`)].sort();
}

/** A signed PUT whose body is sent in two halves: `started` once the first half was sent, `finish()` sends the rest. */
function slowUpload(
  url: string,
  bucket: string,
  key: string,
  extraHeaders: Record<string, string>,
  data: Buffer,
  query: Record<string, string> = {},
): { started: Promise<void>; finish(): Promise<RawResponse> } {
  const target = new URL(url);
  let outgoing: ClientRequest | undefined;
  let answered: Promise<RawResponse> | undefined;
  const started = (async () => {
    const path = `/${bucket}/${key}`;
    const headers = await signRequest(url, { method: 'PUT', path, query, headers: { ...extraHeaders, 'content-length': String(data.length) }, unsignedPayload: true });
    answered = new Promise<RawResponse>((resolve, reject) => {
      outgoing = httpRequest({ host: target.hostname, port: target.port, method: 'PUT', path: `${path}${queryString(query)}`, headers, agent: false }, (response) => {
        const chunks: Buffer[] = [];
        response.on('data', (chunk: Buffer) => chunks.push(chunk));
        response.on('end', () => resolve({ status: response.statusCode ?? 0, headers: response.headers, body: Buffer.concat(chunks).toString('utf8') }));
      });
      outgoing.on('error', reject);
    });
    await new Promise<void>((resolve) => outgoing!.write(data.subarray(0, data.length / 2), () => resolve()));
    // Long enough for the server to have begun the upload (its start is what the conflict is judged from).
    await sleep(200);
  })();
  return {
    started,
    async finish() {
      await started;
      outgoing!.end(data.subarray(data.length / 2));
      return answered!;
    },
  };
}

describe('conditional writes', { timeout: 120_000 }, () => {
  let talus: TestTalus;
  let client: S3Client;

  before(async () => {
    talus = await startTestTalus();
    client = new S3Client({ endpoint: talus.url, region: 'us-east-1', forcePathStyle: true, maxAttempts: 1, credentials: { accessKeyId: ACCESS_KEY_ID, secretAccessKey: SECRET_ACCESS_KEY } });
  });
  after(async () => {
    client.destroy();
    await talus.stop();
  });

  async function newBucket(versioned = false): Promise<string> {
    const bucket = uniqueBucket('cond');
    await client.send(new CreateBucketCommand({ Bucket: bucket }));
    if (versioned) await client.send(new PutBucketVersioningCommand({ Bucket: bucket, VersioningConfiguration: { Status: 'Enabled' } }));
    return bucket;
  }

  /** Blob files once every queued purge is done: the bytes live versions and uploads hold, plus any leaked. */
  async function liveBlobFiles(): Promise<number> {
    await talus.engine.purgeNow(Date.now() + 3_600_000);
    return countBlobFiles(talus.dataDir);
  }

  /** Runs `attempt`, which must fail with `expected`, and checks that it changed no version and left no blob file. */
  async function failsChangingNothing(bucket: string, expected: string, attempt: () => Promise<unknown>): Promise<void> {
    const versions = await versionsOf(client, bucket);
    const files = await liveBlobFiles();
    assert.equal(await failure(attempt()), expected);
    assert.deepEqual(await versionsOf(client, bucket), versions);
    assert.equal(await liveBlobFiles(), files);
  }

  test('PutObject: If-None-Match * or an ETag, If-Match an ETag or *', async () => {
    const bucket = await newBucket();
    const put = (fill: string, conditions: { IfMatch?: string; IfNoneMatch?: string }) =>
      client.send(new PutObjectCommand({ Bucket: bucket, Key: 'k', Body: body(fill), ...conditions }));
    // No object yet: If-Match (an ETag or *) is 404 NoSuchKey, as S3 answers it.
    await failsChangingNothing(bucket, '404 NoSuchKey', () => put('a', { IfMatch: '*' }));
    await failsChangingNothing(bucket, '404 NoSuchKey', () => put('a', { IfMatch: '"0123"' }));
    const first = unquote((await put('a', { IfNoneMatch: '*' })).ETag);
    await failsChangingNothing(bucket, '412 PreconditionFailed', () => put('b', { IfNoneMatch: '*' }));
    await failsChangingNothing(bucket, '412 PreconditionFailed', () => put('b', { IfNoneMatch: `"${first}"` }));
    await failsChangingNothing(bucket, '412 PreconditionFailed', () => put('b', { IfMatch: '"0123"' }));
    assert.equal(await text(client, bucket, 'k'), 'a'.repeat(BLOB_BYTES));
    const second = unquote((await put('b', { IfMatch: `"${first}"` })).ETag);
    await failsChangingNothing(bucket, '412 PreconditionFailed', () => put('c', { IfMatch: `"${first}"` }));
    await put('c', { IfNoneMatch: `"${first}"` });
    await put('d', { IfMatch: '*' });
    assert.notEqual(first, second);
    assert.equal(await text(client, bucket, 'k'), 'd'.repeat(BLOB_BYTES));
  });

  test('only the current version counts: a delete marker is none (If-Match 404, If-None-Match * writes), an older ETag matches nothing', async () => {
    const bucket = await newBucket(true);
    const etag = unquote((await client.send(new PutObjectCommand({ Bucket: bucket, Key: 'k', Body: 'one' }))).ETag);
    await client.send(new DeleteObjectCommand({ Bucket: bucket, Key: 'k' }));
    await failsChangingNothing(bucket, '404 NoSuchKey', () => client.send(new PutObjectCommand({ Bucket: bucket, Key: 'k', Body: 'two', IfMatch: etag })));
    await client.send(new PutObjectCommand({ Bucket: bucket, Key: 'k', Body: 'three', IfNoneMatch: '*' }));
    assert.equal(await text(client, bucket, 'k'), 'three');
    // Only the current version counts: the first version's ETag no longer matches anything.
    await client.send(new PutObjectCommand({ Bucket: bucket, Key: 'k', Body: 'four', IfNoneMatch: etag }));
    assert.equal(await text(client, bucket, 'k'), 'four');
  });

  test('CompleteMultipartUpload: conditions on the destination; a failed one keeps the upload', async () => {
    const bucket = await newBucket();
    const upload = async (fill: string) => {
      const { UploadId } = await client.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: 'k' }));
      const part = await client.send(new UploadPartCommand({ Bucket: bucket, Key: 'k', UploadId, PartNumber: 1, Body: body(fill) }));
      return { UploadId: UploadId!, MultipartUpload: { Parts: [{ PartNumber: 1, ETag: part.ETag! }] } };
    };
    const complete = (started: { UploadId: string; MultipartUpload: { Parts: { PartNumber: number; ETag: string }[] } }, conditions: { IfMatch?: string; IfNoneMatch?: string }) =>
      client.send(new CompleteMultipartUploadCommand({ Bucket: bucket, Key: 'k', ...started, ...conditions }));

    const missing = await upload('x');
    await failsChangingNothing(bucket, '404 NoSuchKey', () => complete(missing, { IfMatch: '*' }));
    const first = unquote((await complete(missing, { IfNoneMatch: '*' })).ETag);
    const refused = await upload('y');
    await failsChangingNothing(bucket, '412 PreconditionFailed', () => complete(refused, { IfNoneMatch: '*' }));
    await failsChangingNothing(bucket, '412 PreconditionFailed', () => complete(refused, { IfMatch: '"0123-1"' }));
    // The refused upload is still there, and completes once its condition holds.
    const uploads = await client.send(new ListMultipartUploadsCommand({ Bucket: bucket }));
    assert.deepEqual(uploads.Uploads?.map((u) => u.UploadId), [refused.UploadId]);
    await complete(refused, { IfMatch: `"${first}"` });
    assert.equal(await text(client, bucket, 'k'), 'y'.repeat(BLOB_BYTES));
    await complete(await upload('z'), { IfMatch: '*' });
    assert.equal(await text(client, bucket, 'k'), 'z'.repeat(BLOB_BYTES));
  });

  test('CopyObject: the conditions apply to the destination', async () => {
    const bucket = await newBucket();
    await client.send(new PutObjectCommand({ Bucket: bucket, Key: 'source', Body: body('s') }));
    const copy = (conditions: { IfMatch?: string; IfNoneMatch?: string }) =>
      client.send(new CopyObjectCommand({ Bucket: bucket, Key: 'target', CopySource: `${bucket}/source`, ...conditions }));
    await failsChangingNothing(bucket, '404 NoSuchKey', () => copy({ IfMatch: '*' }));
    await copy({ IfNoneMatch: '*' });
    await failsChangingNothing(bucket, '412 PreconditionFailed', () => copy({ IfNoneMatch: '*' }));
    await client.send(new PutObjectCommand({ Bucket: bucket, Key: 'target', Body: 'changed' }));
    const current = unquote((await client.send(new HeadObjectCommand({ Bucket: bucket, Key: 'target' }))).ETag);
    await failsChangingNothing(bucket, '412 PreconditionFailed', () => copy({ IfMatch: '"0123"' }));
    await copy({ IfMatch: `"${current}"` });
    assert.equal(await text(client, bucket, 'target'), 's'.repeat(BLOB_BYTES));
    await client.send(new PutObjectCommand({ Bucket: bucket, Key: 'target', Body: 'changed again' }));
    await copy({ IfMatch: '*' });
    assert.equal(await text(client, bucket, 'target'), 's'.repeat(BLOB_BYTES));
  });

  test('DeleteObject: If-Match, x-amz-if-match-last-modified-time and x-amz-if-match-size', async () => {
    for (const versioned of [false, true]) {
      const bucket = await newBucket(versioned);
      const put = await client.send(new PutObjectCommand({ Bucket: bucket, Key: 'k', Body: body('a') }));
      const head = await client.send(new HeadObjectCommand({ Bucket: bucket, Key: 'k' }));
      const etag = unquote(put.ETag);
      const remove = (conditions: { IfMatch?: string; IfMatchLastModifiedTime?: Date; IfMatchSize?: number }) =>
        client.send(new DeleteObjectCommand({ Bucket: bucket, Key: 'k', ...conditions }));
      await failsChangingNothing(bucket, '412 PreconditionFailed', () => remove({ IfMatch: '"0123"' }));
      await failsChangingNothing(bucket, '412 PreconditionFailed', () => remove({ IfMatchSize: BLOB_BYTES + 1 }));
      await failsChangingNothing(bucket, '412 PreconditionFailed', () => remove({ IfMatchLastModifiedTime: new Date('2015-01-01T00:00:00Z') }));
      await failsChangingNothing(bucket, '412 PreconditionFailed', () => remove({ IfMatch: etag, IfMatchSize: 1 }));
      const removed = await remove({ IfMatch: `"${etag}"`, IfMatchSize: BLOB_BYTES, IfMatchLastModifiedTime: head.LastModified! });
      assert.equal(removed.DeleteMarker, versioned ? true : undefined);
      // Nothing current left (absent, or a delete marker): S3 answers conditional deletes 404 NoSuchKey.
      await failsChangingNothing(bucket, '404 NoSuchKey', () => remove({ IfMatch: '*' }));
      await failsChangingNothing(bucket, '404 NoSuchKey', () => remove({ IfMatch: etag }));
      await client.send(new PutObjectCommand({ Bucket: bucket, Key: 'k', Body: 'again' }));
      await remove({ IfMatch: '*' });
    }
  });

  test('DeleteObject of a version: the conditions judge that version', async () => {
    const bucket = await newBucket(true);
    const older = await client.send(new PutObjectCommand({ Bucket: bucket, Key: 'k', Body: 'older' }));
    await client.send(new PutObjectCommand({ Bucket: bucket, Key: 'k', Body: 'newer' }));
    const remove = (IfMatch: string) => client.send(new DeleteObjectCommand({ Bucket: bucket, Key: 'k', VersionId: older.VersionId, IfMatch }));
    await failsChangingNothing(bucket, '412 PreconditionFailed', () => remove('"0123"'));
    await remove(older.ETag!);
    assert.equal((await versionsOf(client, bucket)).length, 1);
    // Gone for good: deleting it again is done, whatever the condition.
    await remove('"0123"');
  });

  test('DeleteObjects: <ETag>, <LastModifiedTime> and <Size> per entry', async () => {
    const bucket = await newBucket();
    const etags: Record<string, string> = {};
    for (const key of ['a', 'b', 'c', 'd']) etags[key] = (await client.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: body(key) }))).ETag!;
    const modified = (await client.send(new HeadObjectCommand({ Bucket: bucket, Key: 'c' }))).LastModified!;
    const result = await client.send(new DeleteObjectsCommand({
      Bucket: bucket,
      Delete: {
        Objects: [
          { Key: 'a', ETag: etags['a'] },
          { Key: 'b', ETag: '"0123"' },
          { Key: 'c', LastModifiedTime: modified, Size: BLOB_BYTES },
          { Key: 'd', Size: 1 },
          { Key: 'missing', ETag: '"0123"' },
        ],
      },
    }));
    assert.deepEqual(result.Deleted?.map((entry) => entry.Key).sort(), ['a', 'c']);
    assert.deepEqual(result.Errors?.map((entry) => `${entry.Key} ${entry.Code}`).sort(), ['b PreconditionFailed', 'd PreconditionFailed', 'missing NoSuchKey']);
    assert.deepEqual((await versionsOf(client, bucket)).map((entry) => entry.split(':')[0]), ['b', 'd']);
  });

  test('bad condition values are refused before anything is stored', async () => {
    const bucket = await newBucket();
    await client.send(new PutObjectCommand({ Bucket: bucket, Key: 'k', Body: 'x' }));
    const refused: Record<string, string>[] = [{ 'x-amz-if-match-size': '-1' }, { 'x-amz-if-match-last-modified-time': 'yesterday' }, { 'if-match': '""' }];
    for (const headers of refused) {
      const response = await signedRequest(talus.url, { method: 'DELETE', path: `/${bucket}/k`, headers });
      assert.equal(response.status, 400, JSON.stringify(headers));
      assert.match(response.body, /<Code>InvalidArgument<\/Code>/);
    }
    assert.equal(await text(client, bucket, 'k'), 'x');
  });

  test('a condition broken while the upload was in flight is 409 ConditionalRequestConflict, and nothing is written', async () => {
    const bucket = await newBucket();
    const etag = (await client.send(new PutObjectCommand({ Bucket: bucket, Key: 'k', Body: 'original' }))).ETag!;
    for (const [key, condition] of [['k', { 'if-match': etag }], ['fresh', { 'if-none-match': '*' }]] as const) {
      const files = await liveBlobFiles();
      // The slow upload's condition holds when it starts; another write changes the key before its body ends.
      const slow = slowUpload(talus.url, bucket, key, condition, body('s'));
      await slow.started;
      await client.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: 'meanwhile' }));
      const answer = await slow.finish();
      assert.equal(answer.status, 409, answer.body);
      assert.match(answer.body, /<Code>ConditionalRequestConflict<\/Code>/);
      assert.equal(await text(client, bucket, key), 'meanwhile');
      // Only "meanwhile" was added (inline, no file); the slow upload's blob is gone.
      assert.equal(await liveBlobFiles(), files);
      // Retried now, the condition fails at once: 412.
      assert.equal(await failure(client.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: 'retry', IfMatch: etag, ...(key === 'fresh' ? { IfMatch: undefined, IfNoneMatch: '*' } : {}) }))), '412 PreconditionFailed');
    }
  });

  test(`${RACERS} concurrent If-Match writers of one ETag: one wins, the losers leave no blob`, async () => {
    const bucket = await newBucket();
    const etag = (await client.send(new PutObjectCommand({ Bucket: bucket, Key: 'k', Body: body('0') }))).ETag!;
    const files = await liveBlobFiles();
    const fills = Array.from({ length: RACERS }, (_, index) => String.fromCharCode(65 + (index % 26)) + index);
    const results = await outcomes(fills.map((fill) => client.send(new PutObjectCommand({ Bucket: bucket, Key: 'k', Body: Buffer.from(fill.repeat(BLOB_BYTES / 2)), IfMatch: etag }))));
    assertOneWinner(results);
    const winner = fills[results.indexOf('200')]!;
    assert.equal(await text(client, bucket, 'k'), winner.repeat(BLOB_BYTES / 2));
    // The winner's blob replaced the original's; no loser's blob stayed.
    assert.equal(await liveBlobFiles(), files);
  });

  test(`${RACERS} concurrent If-None-Match: * creates: one wins`, async () => {
    const bucket = await newBucket(true);
    const results = await outcomes(Array.from({ length: RACERS }, (_, index) =>
      client.send(new PutObjectCommand({ Bucket: bucket, Key: 'k', Body: `writer ${index}`, IfNoneMatch: '*' }))));
    assertOneWinner(results);
    assert.equal((await versionsOf(client, bucket)).length, 1);
    assert.equal(await text(client, bucket, 'k'), `writer ${results.indexOf('200')}`);
  });

  test(`${RACERS} concurrent If-Match deletes and writes of one ETag: one wins`, async () => {
    const bucket = await newBucket(true);
    const etag = (await client.send(new PutObjectCommand({ Bucket: bucket, Key: 'k', Body: 'original' }))).ETag!;
    const calls = Array.from({ length: RACERS }, (_, index) => index % 2 === 0
      ? client.send(new DeleteObjectCommand({ Bucket: bucket, Key: 'k', IfMatch: etag }))
      : client.send(new PutObjectCommand({ Bucket: bucket, Key: 'k', Body: `writer ${index}`, IfMatch: etag })));
    const results = await outcomes(calls);
    // A loser finds another ETag (412, or 409 when it was written while the loser was in flight) or, after the delete won, no current version (404).
    assertOneWinner(results, ['412 PreconditionFailed', '409 ConditionalRequestConflict', '404 NoSuchKey']);
    assert.equal((await versionsOf(client, bucket)).length, 2, 'the original and exactly one new version or delete marker');
  });
});

describe('conditional writes across two worker processes', { timeout: 120_000 }, () => {
  let dataDir: string;
  let talus: RunningTalus;
  let client: S3Client;

  before(async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'talus-cond-workers-'));
    talus = await startTalus({ dataDir, port: 0, address: '127.0.0.1', workers: 2, rootAccessKeyId: ACCESS_KEY_ID, rootSecretAccessKey: SECRET_ACCESS_KEY, logger: silentLogger });
    // A connection per request, so node:cluster spreads the racers over both workers.
    client = new S3Client({
      endpoint: talus.url,
      region: 'us-east-1',
      forcePathStyle: true,
      maxAttempts: 1,
      credentials: { accessKeyId: ACCESS_KEY_ID, secretAccessKey: SECRET_ACCESS_KEY },
      requestHandler: { httpAgent: new Agent({ keepAlive: false }) },
    });
  });
  after(async () => {
    client.destroy();
    await talus.close();
    await rm(dataDir, { recursive: true, force: true });
  });

  test(`${RACERS} racers each: If-None-Match: * creates, If-Match writers, If-Match deletes and writes: one winner each`, async () => {
    const bucket = uniqueBucket('condw');
    await client.send(new CreateBucketCommand({ Bucket: bucket }));
    const creates = await outcomes(Array.from({ length: RACERS }, (_, index) =>
      client.send(new PutObjectCommand({ Bucket: bucket, Key: 'k', Body: `creator ${index}`, IfNoneMatch: '*' }))));
    assertOneWinner(creates);
    const etag = (await client.send(new HeadObjectCommand({ Bucket: bucket, Key: 'k' }))).ETag!;
    const writes = await outcomes(Array.from({ length: RACERS }, (_, index) =>
      client.send(new PutObjectCommand({ Bucket: bucket, Key: 'k', Body: `writer ${index}`, IfMatch: etag }))));
    assertOneWinner(writes);
    assert.equal(await text(client, bucket, 'k'), `writer ${writes.indexOf('200')}`);
    // Conditional deletes and writes of one ETag, spread over both processes.
    const current = (await client.send(new HeadObjectCommand({ Bucket: bucket, Key: 'k' }))).ETag!;
    const mixed = await outcomes(Array.from({ length: RACERS }, (_, index) => index % 2 === 0
      ? client.send(new DeleteObjectCommand({ Bucket: bucket, Key: 'k', IfMatch: current }))
      : client.send(new PutObjectCommand({ Bucket: bucket, Key: 'k', Body: `last ${index}`, IfMatch: current }))));
    assertOneWinner(mixed, ['412 PreconditionFailed', '409 ConditionalRequestConflict', '404 NoSuchKey']);
  });
});

describe('what ceph/s3-tests expects besides: a part sent twice, and ?torrent', { timeout: 120_000 }, () => {
  let talus: TestTalus;
  let client: S3Client;

  before(async () => {
    talus = await startTestTalus();
    client = talus.client;
  });
  after(async () => {
    await talus.stop();
  });

  test('a part uploaded twice at once: the upload that finished last is the part, listed last wins', async () => {
    const bucket = uniqueBucket('resend');
    await client.send(new CreateBucketCommand({ Bucket: bucket }));
    const { UploadId } = await client.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: 'k' }));
    // A starts first and finishes last; B starts during A's body and finishes first.
    const first = slowUpload(talus.url, bucket, 'k', {}, body('A'), { partNumber: '1', uploadId: UploadId! });
    await first.started;
    const second = await client.send(new UploadPartCommand({ Bucket: bucket, Key: 'k', UploadId, PartNumber: 1, Body: body('B') }));
    const answer = await first.finish();
    assert.equal(answer.status, 200, answer.body);
    const etagA = String(answer.headers['etag']);
    // Listed in the order the answers came (B, then A), as test_multipart_resend_first_finishes_last does.
    const complete = (etags: string[]) => client.send(new CompleteMultipartUploadCommand({
      Bucket: bucket, Key: 'k', UploadId, MultipartUpload: { Parts: etags.map((ETag) => ({ PartNumber: 1, ETag })) },
    }));
    assert.equal(await failure(complete([etagA, second.ETag!])), '400 InvalidPart');
    await complete([second.ETag!, etagA]);
    assert.equal(await text(client, bucket, 'k'), 'A'.repeat(BLOB_BYTES));
  });

  test('GET ?torrent: 404 NoSuchKey to whoever may read the object, 403 to others; elsewhere 501', async () => {
    const { owner, other } = await Principals.withDataDir(talus.dataDir, async (principals) => ({
      owner: (await principals.addUser('torrent-owner')).credentials,
      other: (await principals.addUser('torrent-other')).credentials,
    }));
    const ownerClient = clientFor(talus.url, owner);
    assert.equal(await waitForAuth(ownerClient, 'accepted'), 'accepted');
    const bucket = uniqueBucket('torrent');
    await ownerClient.send(new CreateBucketCommand({ Bucket: bucket }));
    await ownerClient.send(new PutObjectCommand({ Bucket: bucket, Key: 'movie', Body: 'frames' }));
    const torrent = (credentials: { accessKeyId: string; secretAccessKey: string } | undefined, key = 'movie') => credentials === undefined
      ? send(talus.url, 'GET', `/${bucket}/${key}?torrent`, {})
      : signedRequest(talus.url, { method: 'GET', path: `/${bucket}/${key}`, query: { torrent: '' }, credentials });
    const codeOf = (response: RawResponse) => `${response.status} ${/<Code>(\w+)<\/Code>/.exec(response.body)?.[1]}`;
    assert.equal(codeOf(await torrent(undefined)), '403 AccessDenied');
    assert.equal(codeOf(await torrent(other)), '403 AccessDenied');
    assert.equal(codeOf(await torrent(owner)), '404 NoSuchKey');
    assert.equal(codeOf(await torrent({ accessKeyId: ACCESS_KEY_ID, secretAccessKey: SECRET_ACCESS_KEY })), '404 NoSuchKey');
    assert.equal(codeOf(await torrent(owner, 'missing')), '404 NoSuchKey');
    // A bucket's torrent, or a PUT of one, is not implemented (never a listing or a write).
    assert.equal(codeOf(await signedRequest(talus.url, { method: 'GET', path: `/${bucket}`, query: { torrent: '' }, credentials: owner })), '501 NotImplemented');
    assert.equal(codeOf(await signedRequest(talus.url, { method: 'PUT', path: `/${bucket}/movie`, query: { torrent: '' }, body: 'x', credentials: owner })), '501 NotImplemented');
    assert.equal(await text(ownerClient, bucket, 'movie'), 'frames');
    ownerClient.destroy();
  });
});
