/**
 * BufferedMultipartWriter over memory, a directory and a real Talus: equal
 * parts but the last, bounded concurrency and memory, one put for a small
 * stream, conditional completion, and abort on error or destroy leaving
 * neither an object nor an upload.
 */
import { strict as assert } from 'node:assert';
import { ListMultipartUploadsCommand } from '@aws-sdk/client-s3';
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, test } from 'node:test';
import { S3Client } from '../src/client/s3-client.ts';
import { listAll, readAll } from '../src/storage/conformance.ts';
import { FileStorage } from '../src/storage/file-storage.ts';
import { MemoryStorage } from '../src/storage/memory-storage.ts';
import { BufferedMultipartWriter } from '../src/storage/multipart-writer.ts';
import { AlreadyExistsError, NotFoundError, type MultipartUpload, type ObjectStorage } from '../src/storage/object-storage.ts';
import { S3Storage } from '../src/storage/s3-storage.ts';
import { ACCESS_KEY_ID, SECRET_ACCESS_KEY, startTestTalus, type TestTalus } from './helpers/talus.ts';
import { PROJECT_ROOT } from './helpers/process.ts';
import { mebibyte } from './fixtures/writer-data.ts';

const MiB = 1024 * 1024;

/** Wraps a storage to watch its multipart traffic: part sizes, parts in flight, uploads started; parts can be slowed or failed. */
class WatchedStorage {
  readonly partSizes: number[] = [];
  uploadsStarted = 0;
  puts = 0;
  inFlight = 0;
  inFlightPeak = 0;
  partDelayMs = 0;
  failPart: number | undefined;

  constructor(readonly inner: ObjectStorage) {}

  storage(): ObjectStorage {
    const watch = this;
    const inner = this.inner;
    return Object.assign(Object.create(inner) as ObjectStorage, {
      put: (...args: Parameters<ObjectStorage['put']>) => {
        watch.puts++;
        return inner.put(...args);
      },
      putIfAbsent: (...args: Parameters<ObjectStorage['putIfAbsent']>) => {
        watch.puts++;
        return inner.putIfAbsent(...args);
      },
      createMultipartUpload: async (...args: Parameters<ObjectStorage['createMultipartUpload']>): Promise<MultipartUpload> => {
        watch.uploadsStarted++;
        const upload = await inner.createMultipartUpload(...args);
        return {
          key: upload.key,
          uploadId: upload.uploadId,
          listParts: () => upload.listParts(),
          complete: (parts, options) => upload.complete(parts, options),
          abort: () => upload.abort(),
          uploadPart: async (partNumber, body, options) => {
            watch.inFlight++;
            watch.inFlightPeak = Math.max(watch.inFlightPeak, watch.inFlight);
            try {
              await sleep(watch.partDelayMs);
              if (partNumber === watch.failPart) throw new Error(`part ${partNumber} failed`);
              const part = await upload.uploadPart(partNumber, body, options);
              watch.partSizes[partNumber - 1] = part.size;
              return part;
            } finally {
              watch.inFlight--;
            }
          },
        };
      },
    });
  }
}

/** A stream of `total` random bytes in chunks of awkward sizes, and its SHA-256. */
function source(total: number): { stream: Readable; sha256: string } {
  const bytes = randomBytes(total);
  const chunks: Buffer[] = [];
  for (let at = 0, size = 1; at < total; at += size, size = (size * 7 + 65_537) % 300_001) chunks.push(bytes.subarray(at, at + size));
  return { stream: Readable.from(chunks), sha256: createHash('sha256').update(bytes).digest('hex') };
}

async function sha256Of(storage: ObjectStorage, key: string): Promise<string> {
  return createHash('sha256').update(await readAll((await storage.get(key)).body)).digest('hex');
}

describe('BufferedMultipartWriter', () => {
  test('parts of exactly partSize but the last, at most `concurrency` in flight, memory within partSize x (concurrency + 1)', async () => {
    const memory = new MemoryStorage();
    const watched = new WatchedStorage(memory);
    watched.partDelayMs = 30;
    const { stream, sha256 } = source(17 * MiB + 123);
    const writer = new BufferedMultipartWriter(watched.storage(), 'big', { partSize: 5 * MiB, concurrency: 2 });
    await pipeline(stream, writer);
    const { etag } = await writer.result;
    assert.deepEqual(watched.partSizes, [5 * MiB, 5 * MiB, 5 * MiB, 2 * MiB + 123]);
    assert.match(etag, /-4"$/);
    assert.equal(await sha256Of(memory, 'big'), sha256);
    assert.equal(watched.inFlightPeak, 2);
    assert.ok(writer.stats.bufferedBytesPeak <= 5 * MiB * 3, `buffered ${writer.stats.bufferedBytesPeak}`);
    assert.deepEqual(memory.pendingUploads(), []);
  });

  test('a stream within one part is one put, no upload; the default part size is 8 MiB', async () => {
    const memory = new MemoryStorage();
    const watched = new WatchedStorage(memory);
    for (const size of [0, 1000, 8 * MiB]) {
      const { stream, sha256 } = source(size);
      const writer = new BufferedMultipartWriter(watched.storage(), `small-${size}`);
      await pipeline(stream, writer);
      assert.equal(await sha256Of(memory, `small-${size}`), sha256);
    }
    assert.equal(watched.uploadsStarted, 0);
    assert.equal(watched.puts, 3);
    const { stream } = source(8 * MiB + 1);
    await pipeline(stream, new BufferedMultipartWriter(watched.storage(), 'just-over'));
    assert.equal(watched.uploadsStarted, 1);
    assert.deepEqual(watched.partSizes, [8 * MiB, 1]);
    assert.throws(() => new BufferedMultipartWriter(memory, 'x', { partSize: 5 * MiB - 1 }), RangeError);
  });

  test('ifNoneMatch: completes only if the key is free, else fails and leaves the object and no upload', async () => {
    const memory = new MemoryStorage();
    const { etag } = await memory.put('taken', 'first');
    for (const size of [100, 11 * MiB]) {
      const writer = new BufferedMultipartWriter(memory, 'taken', { partSize: 5 * MiB, ifNoneMatch: '*' });
      await assert.rejects(pipeline(source(size).stream, writer), AlreadyExistsError);
      await assert.rejects(writer.result, AlreadyExistsError);
      assert.equal((await memory.head('taken')).etag, etag);
    }
    assert.deepEqual(memory.pendingUploads(), []);
    const fresh = new BufferedMultipartWriter(memory, 'free', { partSize: 5 * MiB, ifNoneMatch: '*' });
    await pipeline(source(11 * MiB).stream, fresh);
    assert.equal((await memory.head('free')).size, 11 * MiB);
  });

  test('a failed part fails the stream and aborts the upload', async () => {
    const memory = new MemoryStorage();
    const watched = new WatchedStorage(memory);
    watched.failPart = 2;
    const writer = new BufferedMultipartWriter(watched.storage(), 'failing', { partSize: 5 * MiB });
    await assert.rejects(pipeline(source(16 * MiB).stream, writer), /part 2 failed/);
    await assert.rejects(memory.head('failing'), NotFoundError);
    assert.deepEqual(memory.pendingUploads(), []);
  });

  test('destroy() mid-stream aborts: no object, no upload (memory and a directory)', async () => {
    const root = await mkdtemp(join(tmpdir(), 'talus-writer-'));
    try {
      const files = new FileStorage(root);
      const memory = new MemoryStorage();
      for (const storage of [memory, files]) {
        const writer = new BufferedMultipartWriter(storage, 'destroyed', { partSize: 5 * MiB });
        writer.write(randomBytes(12 * MiB));
        await sleep(50);
        const closed = new Promise((resolve) => writer.once('close', resolve));
        writer.destroy();
        await closed;
        await assert.rejects(writer.result);
        await assert.rejects(storage.head('destroyed'), NotFoundError);
      }
      assert.deepEqual(memory.pendingUploads(), []);
      assert.deepEqual(await files.pendingUploads(), []);
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });
});

describe('BufferedMultipartWriter against Talus', () => {
  let talus: TestTalus;
  let storage: S3Storage;

  before(async () => {
    talus = await startTestTalus();
    const admin = new S3Client({ endpoint: talus.url, accessKeyId: ACCESS_KEY_ID, secretAccessKey: SECRET_ACCESS_KEY });
    await admin.createBucket('writer');
    await admin.close();
    storage = new S3Storage({ endpoint: talus.url, bucket: 'writer', accessKeyId: ACCESS_KEY_ID, secretAccessKey: SECRET_ACCESS_KEY });
  });
  after(async () => {
    await storage?.close();
    await talus?.stop();
  });

  test('a 13 MiB stream becomes one object of three parts', async () => {
    const { stream, sha256 } = source(13 * MiB);
    const writer = new BufferedMultipartWriter(storage, 'streamed', { partSize: 5 * MiB, concurrency: 3, contentType: 'application/x-log', metadata: { origin: 'writer' } });
    await pipeline(stream, writer);
    assert.match((await writer.result).etag, /-3"$/);
    assert.equal(await sha256Of(storage, 'streamed'), sha256);
    const info = await storage.head('streamed');
    assert.equal(info.contentType, 'application/x-log');
    assert.deepEqual(info.metadata, { origin: 'writer' });
  });

  test('resume after a crash: a writer killed mid-upload (SIGKILL) is continued by another process from its last recorded part', async () => {
    const totalMiB = 23;
    const child = spawn(process.execPath, ['--import', 'tsx', join(PROJECT_ROOT, 'test', 'fixtures', 'writer-crash.ts'), talus.url, 'writer', 'resumed', 'resumed.upload-state', String(totalMiB)], { cwd: PROJECT_ROOT, stdio: 'ignore' });
    const exited = new Promise((resolve) => child.once('exit', resolve));
    // Wait until the side object records two parts, then kill the writer without warning.
    const deadline = Date.now() + 60_000;
    for (;;) {
      assert.ok(Date.now() < deadline, 'the writer recorded two parts in time');
      const state = await storage.get('resumed.upload-state').then((got) => readAll(got.body)).catch(() => undefined);
      if (state !== undefined && (JSON.parse(state.toString()) as { parts: unknown[] }).parts.length >= 2) break;
      await sleep(50);
    }
    child.kill('SIGKILL');
    await exited;
    await assert.rejects(storage.head('resumed'), NotFoundError, 'no object yet');

    const { writer, offset } = await BufferedMultipartWriter.resume(storage, 'resumed', { partSize: 5 * MiB, stateKey: 'resumed.upload-state' });
    assert.ok(offset >= 10 * MiB && offset % (5 * MiB) === 0, `resumes at ${offset}`);
    async function* rest(): AsyncIterable<Buffer> {
      for (let i = offset / MiB; i < totalMiB; i++) yield mebibyte(i);
    }
    await pipeline(Readable.from(rest()), writer);
    const { etag } = await writer.result;
    assert.match(etag, /-5"$/, 'five parts of 5 MiB, the last 3 MiB');
    assert.equal(writer.stats.parts, 5 - offset / (5 * MiB), 'parts already uploaded are not uploaded again');
    const expected = createHash('sha256');
    for (let i = 0; i < totalMiB; i++) expected.update(mebibyte(i));
    assert.equal(await sha256Of(storage, 'resumed'), expected.digest('hex'));
    await assert.rejects(storage.head('resumed.upload-state'), NotFoundError, 'the side object is gone');
    const uploads = await talus.client.send(new ListMultipartUploadsCommand({ Bucket: 'writer' }));
    assert.deepEqual(uploads.Uploads ?? [], []);
  });

  test('destroy() mid-upload leaves no object and no multipart upload on the server', async () => {
    const writer = new BufferedMultipartWriter(storage, 'abandoned', { partSize: 5 * MiB });
    writer.write(randomBytes(11 * MiB));
    await sleep(200);
    const closed = new Promise((resolve) => writer.once('close', resolve));
    writer.once('error', () => undefined); // the stream reports the reason it was destroyed with, as every Writable does
    writer.destroy(new Error('the producer gave up'));
    await closed;
    await assert.rejects(writer.result, /the producer gave up/);
    await assert.rejects(storage.head('abandoned'), NotFoundError);
    assert.deepEqual((await listAll(storage, '')).keys.filter((key) => key === 'abandoned'), []);
    const uploads = await talus.client.send(new ListMultipartUploadsCommand({ Bucket: 'writer' }));
    assert.deepEqual(uploads.Uploads ?? [], []);
  });
});
