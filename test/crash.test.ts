/**
 * Crash durability: kill -9 in the middle of concurrent writes, restart on the
 * same data directory, and check that what comes back is exactly what the
 * server promised.
 *
 * Method: Talus runs as a child process. Several workers stream PutObject
 * bodies (0 B to 8 MiB) and a few multipart uploads (5 MiB parts) over a fixed
 * set of keys, overwriting each other, while a log records for every attempt
 * its body's sha256, when it started (when a commit first became possible)
 * and whether a 200 came back. Some attempts are meant never to be visible:
 * PUTs with a wrong Content-MD5 and multipart uploads that are never
 * completed, all to "ghost" keys. After a random 1-3 s the server gets
 * SIGKILL; it is restarted on the same directory and every key is read back.
 * A key's body must be, bit for bit, one that was acknowledged or in flight
 * at the kill, and not older than an acknowledged PUT that completed before
 * a later acknowledged PUT started (the server committed them in that order);
 * ghost keys must be absent. Then, after the purge grace period, the server is
 * stopped cleanly and the blob files on disk must match the blobs the
 * metadata references, one for one. The cycle runs three times on one data
 * directory, each cycle's read-back becoming the next one's baseline.
 */
import {
  CompleteMultipartUploadCommand,
  CreateBucketCommand,
  CreateMultipartUploadCommand,
  GetObjectCommand,
  PutObjectCommand,
  S3Client,
  UploadPartCommand,
} from '@aws-sdk/client-s3';
import Database from 'better-sqlite3';
import assert from 'node:assert/strict';
import { createHash, randomBytes, randomInt } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { test } from 'node:test';
import { listBlobFiles, startServerProcess, withTimeout, type ServerProcess } from './helpers/process.ts';
import { ACCESS_KEY_ID, SECRET_ACCESS_KEY } from './helpers/talus.ts';

const KiB = 1024;
const MiB = 1024 * KiB;
const CYCLES = 3;
const WORKERS = 6;
const KEYS = Array.from({ length: 12 }, (_, i) => `durable/key-${String(i).padStart(2, '0')}`);
const GHOST_KEYS = Array.from({ length: 4 }, (_, i) => `ghost/key-${i}`);
const PUT_SIZES = [0, 1, 777, 64 * KiB, 256 * KiB + 13, MiB, 3 * MiB + 5, 5 * MiB, 8 * MiB];
const ABSENT = 'absent';
/** Purge grace is 2 s and the purger ticks every second. */
const PURGE_WAIT_MS = 3_500;

type SdkError = Error & { $metadata?: { httpStatusCode?: number } };

interface Attempt {
  id: number;
  cycle: number;
  key: string;
  kind: 'put' | 'multipart' | 'baseline';
  sizeBytes: number;
  sha256: string;
  /** Clock value when the request that can commit it was sent; undefined if it was never sent. */
  commitFrom: number | undefined;
  /** Clock value when the 200 arrived. */
  ackedAt: number | undefined;
  /** What ended it other than a 200. */
  failure: string | undefined;
  failedAt: number | undefined;
}

/** A logical clock: JavaScript runs one callback at a time, so the order of ticks is the order the test saw events in. */
let clock = 0;
const tick = (): number => ++clock;

function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

function md5Base64(data: Buffer): string {
  return createHash('md5').update(data).digest('base64');
}

function streamOf(body: Buffer): Readable {
  const chunkBytes = 256 * KiB;
  return Readable.from(
    (function* () {
      for (let offset = 0; offset < body.length; offset += chunkBytes) yield body.subarray(offset, offset + chunkBytes);
    })(),
  );
}

function clientFor(url: string): S3Client {
  return new S3Client({
    endpoint: url,
    region: 'us-east-1',
    forcePathStyle: true,
    credentials: { accessKeyId: ACCESS_KEY_ID, secretAccessKey: SECRET_ACCESS_KEY },
    // A retry after the kill would blur which attempt was in flight when.
    maxAttempts: 1,
    requestHandler: { connectionTimeout: 5_000, requestTimeout: 60_000 },
    // The SDK warns on the console for every streaming request the kill cuts off.
    logger: { trace() {}, debug() {}, info() {}, warn() {}, error() {} },
  });
}

function pick<T>(items: readonly T[]): T {
  return items[randomInt(items.length)]!;
}

class Workload {
  readonly attempts: Attempt[] = [];
  /** HTTP error responses that arrived before the kill and were not provoked on purpose. */
  readonly unexpected: string[] = [];
  killedAt: number | undefined;
  #nextId = 0;

  constructor(readonly cycle: number, readonly client: S3Client, readonly bucket: string) {}

  #attempt(key: string, kind: Attempt['kind'], body: Buffer): Attempt {
    const attempt: Attempt = {
      id: this.#nextId++,
      cycle: this.cycle,
      key,
      kind,
      sizeBytes: body.length,
      sha256: sha256(body),
      commitFrom: undefined,
      ackedAt: undefined,
      failure: undefined,
      failedAt: undefined,
    };
    this.attempts.push(attempt);
    return attempt;
  }

  #failed(attempt: Attempt | undefined, what: string, error: unknown, expectedStatus?: number): void {
    const status = (error as SdkError).$metadata?.httpStatusCode;
    const description = `${what}: ${(error as Error).name} ${(error as Error).message}${status === undefined ? '' : ` (HTTP ${status})`}`;
    if (attempt !== undefined) {
      attempt.failure = description;
      attempt.failedAt = tick();
    }
    if (this.killedAt === undefined && status !== expectedStatus) this.unexpected.push(description);
  }

  async worker(): Promise<void> {
    while (this.killedAt === undefined) {
      const roll = randomInt(100);
      if (roll < 78) await this.#put(pick(KEYS));
      else if (roll < 90) await this.#multipart(pick(KEYS));
      else if (roll < 95) await this.#badDigestPut(pick(GHOST_KEYS));
      else await this.#abandonedMultipart(pick(GHOST_KEYS));
    }
  }

  async #put(key: string): Promise<void> {
    const body = randomBytes(pick(PUT_SIZES));
    const attempt = this.#attempt(key, 'put', body);
    attempt.commitFrom = tick();
    try {
      await this.client.send(
        new PutObjectCommand({ Bucket: this.bucket, Key: key, Body: streamOf(body), ContentLength: body.length }),
      );
      attempt.ackedAt = tick();
    } catch (error) {
      this.#failed(attempt, `PUT ${key}`, error);
    }
  }

  async #multipart(key: string): Promise<void> {
    const parts = [randomBytes(5 * MiB), randomBytes(randomInt(1, 3 * MiB))];
    const attempt = this.#attempt(key, 'multipart', Buffer.concat(parts));
    try {
      const { UploadId } = await this.client.send(new CreateMultipartUploadCommand({ Bucket: this.bucket, Key: key }));
      const completed: { PartNumber: number; ETag: string }[] = [];
      for (const [index, part] of parts.entries()) {
        if (this.killedAt !== undefined) return;
        const { ETag } = await this.client.send(
          new UploadPartCommand({ Bucket: this.bucket, Key: key, UploadId, PartNumber: index + 1, Body: part }),
        );
        completed.push({ PartNumber: index + 1, ETag: ETag! });
      }
      if (this.killedAt !== undefined) return;
      attempt.commitFrom = tick();
      await this.client.send(
        new CompleteMultipartUploadCommand({ Bucket: this.bucket, Key: key, UploadId, MultipartUpload: { Parts: completed } }),
      );
      attempt.ackedAt = tick();
    } catch (error) {
      this.#failed(attempt, `multipart ${key}`, error);
    }
  }

  /** A PUT the server must refuse (Content-MD5 of other bytes): never visible. */
  async #badDigestPut(key: string): Promise<void> {
    const body = randomBytes(randomInt(1, 256 * KiB));
    try {
      await this.client.send(
        new PutObjectCommand({ Bucket: this.bucket, Key: key, Body: body, ContentMD5: md5Base64(randomBytes(16)) }),
      );
      if (this.killedAt === undefined) this.unexpected.push(`PUT ${key} with a wrong Content-MD5 got 200`);
    } catch (error) {
      this.#failed(undefined, `bad-digest PUT ${key}`, error, 400);
    }
  }

  /** Parts uploaded but never completed: never visible, yet their blobs stay referenced by the upload. */
  async #abandonedMultipart(key: string): Promise<void> {
    try {
      const { UploadId } = await this.client.send(new CreateMultipartUploadCommand({ Bucket: this.bucket, Key: key }));
      await this.client.send(
        new UploadPartCommand({ Bucket: this.bucket, Key: key, UploadId, PartNumber: 1, Body: randomBytes(5 * MiB) }),
      );
    } catch (error) {
      this.#failed(undefined, `abandoned multipart ${key}`, error);
    }
  }
}

/**
 * Which bodies a key may hold after the crash. A candidate is the previous
 * baseline (or absence) or an attempt whose committing request was sent:
 * acknowledged, or cut off by the kill (it may or may not have committed).
 * A candidate is ruled out when some acknowledged attempt was sent after the
 * candidate's 200 arrived: that one committed later and must win.
 * (Attempts that got an HTTP error before the kill are reported separately as
 * unexpected; they stay candidates here so one bug does not hide another.)
 */
function allowedBodies(key: string, baseline: Attempt, attempts: readonly Attempt[]): Map<string, Attempt[]> {
  const mine = attempts.filter((attempt) => attempt.key === key && attempt.commitFrom !== undefined);
  const acked = mine.filter((attempt) => attempt.ackedAt !== undefined);
  const allowed = new Map<string, Attempt[]>();
  for (const candidate of [baseline, ...mine]) {
    const end = candidate.ackedAt;
    if (end !== undefined && acked.some((later) => later.commitFrom! > end)) continue;
    allowed.set(candidate.sha256, [...(allowed.get(candidate.sha256) ?? []), candidate]);
  }
  return allowed;
}

function describeAttempt(attempt: Attempt): string {
  const state = attempt.ackedAt !== undefined
    ? `acked@${attempt.ackedAt}`
    : attempt.failure !== undefined
      ? `failed@${attempt.failedAt} (${attempt.failure})`
      : 'never finished';
  return `#${attempt.id} c${attempt.cycle} ${attempt.kind} ${attempt.sizeBytes} B sha ${attempt.sha256.slice(0, 12)} commitFrom@${attempt.commitFrom} ${state}`;
}

async function readKey(client: S3Client, bucket: string, key: string): Promise<{ sha256: string; sizeBytes: number }> {
  try {
    const response = await client.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
    const body = Buffer.from(await response.Body!.transformToByteArray());
    return { sha256: sha256(body), sizeBytes: body.length };
  } catch (error) {
    if ((error as SdkError).$metadata?.httpStatusCode === 404 && (error as Error).name === 'NoSuchKey') return { sha256: ABSENT, sizeBytes: 0 };
    throw error;
  }
}

function metadataBlobs(dataDir: string): { ids: string[]; count: number; integrity: string } {
  const db = new Database(join(dataDir, 'meta.db'), { readonly: true, fileMustExist: true });
  try {
    const count = (db.prepare('SELECT count(*) AS n FROM blobs').get() as { n: number }).n;
    const ids = (db.prepare('SELECT blob_id FROM blobs ORDER BY blob_id').all() as { blob_id: string }[]).map((row) => row.blob_id);
    const integrity = (db.pragma('integrity_check', { simple: true }) as string);
    return { ids, count, integrity };
  } finally {
    db.close();
  }
}

test('kill -9 during concurrent PUTs and multipart uploads loses no acknowledged write, exposes no partial one, leaks no blob', { timeout: 300_000 }, async (t) => {
  const dataDir = await mkdtemp(join(tmpdir(), 'talus-crash-'));
  const bucket = 'crash-test';
  let server: ServerProcess | undefined;
  const restart = async (port: number): Promise<ServerProcess> => {
    // Same port as before if it is still free, else any.
    server = await startServerProcess(dataDir, port).catch(() => startServerProcess(dataDir));
    return server;
  };
  // Baseline per key: what it held at the last verified read (absent at first).
  const baseline = new Map<string, Attempt>();
  const baselineOf = (key: string, sha: string, cycle: number): Attempt => ({
    id: -1, cycle, key, kind: 'baseline', sizeBytes: 0, sha256: sha, commitFrom: 0, ackedAt: tick(), failure: undefined, failedAt: undefined,
  });
  for (const key of [...KEYS, ...GHOST_KEYS]) baseline.set(key, baselineOf(key, ABSENT, 0));
  const cycleSummaries: string[] = [];
  try {
    let running = (server = await startServerProcess(dataDir));
    const setup = clientFor(running.url);
    await setup.send(new CreateBucketCommand({ Bucket: bucket }));
    setup.destroy();

    for (let cycle = 1; cycle <= CYCLES; cycle++) {
      // Write until the kill.
      const client = clientFor(running.url);
      const workload = new Workload(cycle, client, bucket);
      const workers = Array.from({ length: WORKERS }, () => workload.worker());
      await sleep(randomInt(1_000, 3_001));
      workload.killedAt = tick();
      await running.kill9();
      const filesAtKill = (await listBlobFiles(dataDir)).length;
      await withTimeout(Promise.all(workers), 90_000, `cycle ${cycle}: workers did not finish after the kill`);
      client.destroy();
      const acked = workload.attempts.filter((attempt) => attempt.ackedAt !== undefined).length;
      const inFlight = workload.attempts.filter((attempt) => attempt.ackedAt === undefined && attempt.commitFrom !== undefined).length;
      cycleSummaries.push(`cycle ${cycle}: ${workload.attempts.length} attempts, ${acked} acked, ${inFlight} in flight at the kill, ${filesAtKill} blob files at the kill`);
      assert.deepEqual(workload.unexpected, [], `cycle ${cycle}: HTTP errors before the kill`);
      assert.ok(acked > 0, `cycle ${cycle}: no PUT was acknowledged before the kill; the test exercised nothing`);

      // Restart on the same directory and read every key back.
      running = await restart(running.port);
      const reader = clientFor(running.url);
      const problems: string[] = [];
      for (const key of [...KEYS, ...GHOST_KEYS]) {
        const allowed = allowedBodies(key, baseline.get(key)!, workload.attempts);
        let got: { sha256: string; sizeBytes: number };
        try {
          got = await readKey(reader, bucket, key);
        } catch (error) {
          problems.push(`${key}: GET failed: ${(error as Error).name} ${(error as Error).message}`);
          continue;
        }
        if (GHOST_KEYS.includes(key) && got.sha256 !== ABSENT) problems.push(`${key}: never written successfully, yet GET returned ${got.sizeBytes} B`);
        if (!allowed.has(got.sha256)) {
          const history = [baseline.get(key)!, ...workload.attempts.filter((attempt) => attempt.key === key)].map(describeAttempt);
          problems.push(
            `${key}: GET returned ${got.sha256 === ABSENT ? 'NoSuchKey' : `${got.sizeBytes} B sha ${got.sha256.slice(0, 12)}`}, ` +
              `allowed: [${[...allowed.keys()].map((sha) => sha.slice(0, 12)).join(', ')}]; kill@${workload.killedAt}; history:\n    ${history.join('\n    ')}`,
          );
        }
        baseline.set(key, baselineOf(key, got.sha256, cycle));
      }
      reader.destroy();
      assert.deepEqual(problems, [], `cycle ${cycle}: keys whose state after the crash is not one the server promised`);

      // No leak: after the purge grace, files on disk are exactly the blobs the metadata references.
      await sleep(PURGE_WAIT_MS);
      await running.stop();
      const files = (await listBlobFiles(dataDir)).map((path) => path.split('/').pop()!);
      const meta = metadataBlobs(dataDir);
      assert.equal(meta.integrity, 'ok', `cycle ${cycle}: SQLite integrity_check`);
      assert.equal(files.length, meta.count, `cycle ${cycle}: blob files on disk vs rows in the blobs table`);
      assert.deepEqual(files.sort(), meta.ids, `cycle ${cycle}: blob files on disk vs blob ids in the blobs table`);
      cycleSummaries[cycleSummaries.length - 1] += `, ${files.length} blobs on disk after restart`;
      if (cycle < CYCLES) running = await restart(running.port);
    }
  } finally {
    for (const summary of cycleSummaries) t.diagnostic(summary);
    if (server !== undefined) await server.kill9().catch(() => undefined);
    await rm(dataDir, { recursive: true, force: true });
  }
});
