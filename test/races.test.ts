/**
 * Concurrency: conditional creates racing for one key, readers racing
 * writers, replaced bytes being reclaimed, and a slow reader outliving the
 * version it reads. Each test runs its own in-process Talus with a fresh data
 * directory, so blob files on disk can be counted per test.
 */
import {
  CreateBucketCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  PutObjectCommand,
  S3Client,
} from '@aws-sdk/client-s3';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, describe, test } from 'node:test';
import { countBlobFiles, withTimeout } from './helpers/process.ts';
import { signRequest } from './helpers/raw.ts';
import { ACCESS_KEY_ID, SECRET_ACCESS_KEY, startTestTalus, uniqueBucket, type TestTalus } from './helpers/talus.ts';

const KiB = 1024;
const MiB = 1024 * KiB;
/** Purge grace is 2 s and the purger ticks every second. */
const PURGE_WAIT_MS = 3_500;

type SdkError = Error & { $metadata?: { httpStatusCode?: number } };

function sha256(data: Buffer | Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

function md5Hex(data: Buffer | Uint8Array): string {
  return createHash('md5').update(data).digest('hex');
}

/** Like the shared client, but without retries, so a race's outcome is what the server answered the first time. */
function noRetryClient(url: string): S3Client {
  return new S3Client({
    endpoint: url,
    region: 'us-east-1',
    forcePathStyle: true,
    credentials: { accessKeyId: ACCESS_KEY_ID, secretAccessKey: SECRET_ACCESS_KEY },
    maxAttempts: 1,
    requestHandler: { connectionTimeout: 5_000, requestTimeout: 60_000 },
  });
}

async function getBody(client: S3Client, bucket: string, key: string): Promise<{ body: Buffer; etag: string | undefined; contentLength: number | undefined }> {
  const response = await client.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
  const body = Buffer.from(await response.Body!.transformToByteArray());
  return { body, etag: response.ETag, contentLength: response.ContentLength };
}

/** Polls until the blob file count equals `expected` or the deadline passes; returns the last count. */
async function blobCountEventually(dataDir: string, expected: number, withinMs: number): Promise<number> {
  const deadline = Date.now() + withinMs;
  let count = await countBlobFiles(dataDir);
  while (count !== expected && Date.now() < deadline) {
    await sleep(100);
    count = await countBlobFiles(dataDir);
  }
  return count;
}

describe('races', () => {
  let talus: TestTalus | undefined;
  let client: S3Client | undefined;

  async function start(): Promise<{ talus: TestTalus; client: S3Client; bucket: string }> {
    talus = await startTestTalus();
    client = noRetryClient(talus.url);
    const bucket = uniqueBucket('race');
    await client.send(new CreateBucketCommand({ Bucket: bucket }));
    return { talus, client, bucket };
  }

  afterEach(async () => {
    client?.destroy();
    client = undefined;
    await talus?.stop();
    talus = undefined;
  });

  test('50 concurrent PutObject If-None-Match: * to one key: exactly one wins, 49 get 412 or 409, the winner is stored', { timeout: 60_000 }, async () => {
    // Goal: a conditional create is atomic. Method: fire 50 PUTs with distinct
    // 64 KiB bodies at once, all with If-None-Match: *, then count outcomes and
    // read the key back. The losers' bytes must also be gone from disk.
    const { talus, client, bucket } = await start();
    const key = 'contended/object';
    const bodies = Array.from({ length: 50 }, () => randomBytes(64 * KiB));
    const outcomes = await withTimeout(
      Promise.allSettled(bodies.map((body) => client.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: body, IfNoneMatch: '*' })))),
      45_000,
      'conditional PUTs did not finish',
    );
    const winners = outcomes.flatMap((outcome, index) => (outcome.status === 'fulfilled' ? [{ index, etag: outcome.value.ETag }] : []));
    const losers = outcomes.flatMap((outcome) => (outcome.status === 'rejected' ? [outcome.reason as SdkError] : []));
    assert.equal(winners.length, 1, `exactly one PUT succeeds; got ${winners.length}`);
    const unexpected = losers
      // 409 ConditionalRequestConflict: the winner committed while this PUT was uploading (S3's answer for that, issue 12).
      .filter((error) => !(error.$metadata?.httpStatusCode === 412 && error.name === 'PreconditionFailed') && !(error.$metadata?.httpStatusCode === 409 && error.name === 'ConditionalRequestConflict'))
      .map((error) => `${error.name} (HTTP ${error.$metadata?.httpStatusCode}): ${error.message}`);
    assert.deepEqual(unexpected, [], 'every losing PUT fails with 412 PreconditionFailed or 409 ConditionalRequestConflict');
    assert.equal(losers.length, 49);

    const winner = winners[0]!;
    const stored = await getBody(client, bucket, key);
    assert.equal(sha256(stored.body), sha256(bodies[winner.index]!), 'the stored body is the winner\'s');
    assert.equal(stored.etag, winner.etag, 'the stored ETag is the winner\'s');
    // Losers discard their blob before answering: only the winner's file remains.
    assert.equal(await countBlobFiles(talus.dataDir), 1, 'blob files on disk after the race');
  });

  test('readers racing 8 overwriting writers always get one complete body that was written', { timeout: 60_000 }, async (t) => {
    // Goal: a GET never sees a torn or mixed object while the key is being
    // replaced. Method: 8 writers PUT distinct 1 MiB bodies to one key in a
    // loop for ~3 s while 4 readers GET it in a loop; every body a reader gets
    // must be 1 MiB, hash to a body some writer sent, and match its ETag.
    const { talus, client, bucket } = await start();
    const key = 'hot/object';
    const sizeBytes = MiB;
    const written = new Set<string>();
    const first = randomBytes(sizeBytes);
    written.add(sha256(first));
    await client.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: first }));

    const deadline = Date.now() + 3_000;
    const problems: string[] = [];
    let puts = 0;
    let gets = 0;
    const seen = new Set<string>();
    const writer = async (): Promise<void> => {
      while (Date.now() < deadline) {
        const body = randomBytes(sizeBytes);
        // Recorded before sending: a reader may see it before our 200 arrives.
        written.add(sha256(body));
        try {
          await client.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: body }));
          puts++;
        } catch (error) {
          problems.push(`PUT failed: ${(error as Error).name} ${(error as Error).message}`);
        }
      }
    };
    let writersDone = false;
    const reader = async (): Promise<void> => {
      while (!writersDone) {
        try {
          const { body, etag, contentLength } = await getBody(client, bucket, key);
          gets++;
          const hash = sha256(body);
          seen.add(hash);
          if (body.length !== sizeBytes) problems.push(`GET returned ${body.length} bytes (Content-Length ${contentLength}), expected ${sizeBytes}`);
          else if (!written.has(hash)) problems.push(`GET returned a ${body.length}-byte body no writer sent (sha ${hash.slice(0, 12)})`);
          if (etag !== `"${md5Hex(body)}"`) problems.push(`GET ETag ${etag} does not match the body it came with (md5 ${md5Hex(body)})`);
        } catch (error) {
          problems.push(`GET failed: ${(error as Error).name} ${(error as Error).message}`);
        }
      }
    };
    const writers = Array.from({ length: 8 }, writer);
    const readers = Array.from({ length: 4 }, reader);
    await withTimeout(Promise.all(writers), 45_000, 'writers did not finish');
    writersDone = true;
    await withTimeout(Promise.all(readers), 30_000, 'readers did not finish');

    t.diagnostic(`${puts} PUTs, ${gets} GETs, ${seen.size} distinct bodies seen by readers`);
    assert.deepEqual(problems.slice(0, 20), [], `${problems.length} problems`);
    assert.ok(puts >= 8, `writers completed ${puts} PUTs`);
    assert.ok(gets >= 4, `readers completed ${gets} GETs`);
    assert.ok(seen.size >= 2, `readers saw ${seen.size} distinct versions; the race never happened`);
    const last = await getBody(client, bucket, key);
    assert.ok(written.has(sha256(last.body)), 'the final body is one that was written');
    // Every replaced version's blob goes once its readers are gone.
    assert.equal(await blobCountEventually(talus.dataDir, 1, PURGE_WAIT_MS + 2_000), 1, 'blob files left after the overwrites settle');
  });

  test('replaced bytes are reclaimed: 50 overwrites leave one blob file', { timeout: 60_000 }, async () => {
    // Goal: overwriting does not leak storage. Method: overwrite one key 50
    // times, then wait (bounded) for the purger: blob files under
    // DATA_DIR/blobs must come down to the current one.
    const { talus, client, bucket } = await start();
    const key = 'overwritten/object';
    let last = Buffer.alloc(0);
    for (let i = 0; i < 50; i++) {
      last = randomBytes(32 * KiB + i);
      await client.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: last }));
    }
    // The purge is due after the grace period; poll with a generous deadline so a loaded machine does not fail the test.
    assert.equal(await blobCountEventually(talus.dataDir, 1, PURGE_WAIT_MS * 3), 1, 'blob files on disk after 50 overwrites');
    const stored = await getBody(client, bucket, key);
    assert.equal(sha256(stored.body), sha256(last), 'the key holds the last body');
  });

  test('a slow GET outlives an overwrite and a delete of its object and still gets every original byte', { timeout: 60_000 }, async () => {
    // Goal: replacing or deleting an object never cuts short a GET that is
    // already streaming it. Method: PUT 16 MiB, start a signed GET and stop
    // reading after the first chunk; overwrite the key, then delete it; keep
    // the reader paused past the purge grace and a purger tick; then read the
    // rest slowly. The bytes must be the original ones, complete. Meanwhile
    // the overwriting blob (deleted, unread) must be purged while the read
    // one stays; once the GET ends, the read one must go too.
    const { talus, client, bucket } = await start();
    const key = 'slow/object';
    const original = randomBytes(16 * MiB);
    await client.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: original }));

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
    assert.equal(response.headers['content-length'], String(original.length));
    const chunks: Buffer[] = [];
    let received = 0;
    let ended = false;
    let streamError: Error | undefined;
    const done = new Promise<void>((resolve) => {
      response.on('end', () => {
        ended = true;
        resolve();
      });
      response.on('error', (error) => {
        streamError = error;
        resolve();
      });
      response.on('close', () => resolve());
    });
    // Take one chunk, then stop reading.
    await withTimeout(
      new Promise<void>((resolve) => {
        response.once('data', (chunk: Buffer) => {
          response.pause();
          chunks.push(chunk);
          received += chunk.length;
          resolve();
        });
      }),
      10_000,
      'first chunk of the GET',
    );
    assert.ok(received < original.length, 'the GET is still mid-stream');

    const replacement = randomBytes(MiB);
    await client.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: replacement }));
    await client.send(new DeleteObjectCommand({ Bucket: bucket, Key: key }));
    await assert.rejects(client.send(new GetObjectCommand({ Bucket: bucket, Key: key })), (error: SdkError) => error.$metadata?.httpStatusCode === 404);

    // While the reader is paused: the replacement's blob (unread) is purged, the original (leased) stays.
    const whilePaused = await blobCountEventually(talus.dataDir, 1, PURGE_WAIT_MS + 2_000);
    assert.equal(whilePaused, 1, 'blob files while the slow GET is paused: only the one being read');

    // Resume, slowly: a short pause after every MiB.
    let sinceSleep = 0;
    response.on('data', (chunk: Buffer) => {
      chunks.push(chunk);
      received += chunk.length;
      sinceSleep += chunk.length;
      if (sinceSleep >= MiB) {
        sinceSleep = 0;
        response.pause();
        setTimeout(() => response.resume(), 20);
      }
    });
    response.resume();
    await withTimeout(done, 30_000, `slow GET did not finish (received ${received} of ${original.length} bytes)`);
    assert.equal(streamError, undefined, `the GET stream failed after ${received} bytes: ${streamError?.message}`);
    assert.ok(ended, `the GET ended early, after ${received} of ${original.length} bytes`);
    const body = Buffer.concat(chunks);
    assert.equal(body.length, original.length, 'bytes received');
    assert.equal(sha256(body), sha256(original), 'the slow GET got the original bytes');

    // With the GET over, nothing holds the original any more.
    assert.equal(await blobCountEventually(talus.dataDir, 0, PURGE_WAIT_MS * 3), 0, 'blob files after the slow GET ended');
  });
});
