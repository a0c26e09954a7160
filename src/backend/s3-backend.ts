import { once } from 'node:events';
import { PassThrough } from 'node:stream';
import { DELETE_OBJECTS_KEYS_MAX, S3Client, S3RequestError, type S3ClientOptions } from '../client/s3-client.ts';
import { assert } from '../util/assert.ts';
import { ShortReadError } from '../util/short-read-error.ts';
import { BackendObjectMissingError, BackendSizeMismatchError, isBackendKey, type Backend, type BackendReadOptions, type BackendWriter } from './backend.ts';
import { RETRY_POLICY_DEFAULT, withRetries, type RetryPolicy } from './retry.ts';
import { MULTIPART_THRESHOLD_BYTES_DEFAULT, PART_BYTES_DEFAULT } from './s3-backend-defaults.ts';

export { MULTIPART_THRESHOLD_BYTES_DEFAULT, PART_BYTES_DEFAULT };

/** Bytes queued for the socket per upload before write() waits. */
const UPLOAD_BUFFER_BYTES = 256 * 1024;
const PART_BYTES_MIN = 5 * 1024 * 1024;
const PARTS_MAX = 10_000;

export interface S3BackendOptions extends S3ClientOptions {
  readonly name: string;
  /** The backend's own bucket: Talus's objects only, never a client's. */
  readonly bucket: string;
  /** Prepended to every key, e.g. 'talus/'; default none. */
  readonly prefix?: string;
  readonly retry?: RetryPolicy;
  /** Objects above this size are uploaded in parts (default 1 GiB). */
  readonly multipartThresholdBytes?: number;
  /** Part size of those uploads (default 128 MiB, at least 5 MiB). */
  readonly partBytes?: number;
}

/**
 * Objects in a bucket of a remote S3-compatible endpoint (AWS, another
 * Talus, MinIO, s3rver, …) through the lean client: SigV4, one keep-alive
 * pool, bodies streamed both ways. Idempotent requests (reads, stats,
 * listings, deletes) are retried with backoff and jitter; an upload is not,
 * as its body cannot be replayed: a failed shard is the placement layer's to
 * repair.
 */
export class S3Backend implements Backend {
  readonly name: string;
  readonly bucket: string;
  readonly #prefix: string;
  readonly #client: S3Client;
  readonly #retry: RetryPolicy;
  readonly #multipartThresholdBytes: number;
  readonly #partBytes: number;

  constructor(options: S3BackendOptions) {
    this.name = options.name;
    this.bucket = options.bucket;
    this.#prefix = options.prefix ?? '';
    this.#retry = options.retry ?? RETRY_POLICY_DEFAULT;
    this.#multipartThresholdBytes = options.multipartThresholdBytes ?? MULTIPART_THRESHOLD_BYTES_DEFAULT;
    this.#partBytes = options.partBytes ?? PART_BYTES_DEFAULT;
    assert(Number.isSafeInteger(this.#partBytes) && this.#partBytes >= PART_BYTES_MIN, `part size ${this.#partBytes} below 5 MiB`);
    assert(Number.isSafeInteger(this.#multipartThresholdBytes) && this.#multipartThresholdBytes >= this.#partBytes, 'multipart threshold at least one part');
    this.#client = new S3Client(options);
  }

  /** Creates the backend bucket if it is not there yet; the signal gives up on an endpoint that does not answer. */
  async ensureBucket(options: { signal?: AbortSignal } = {}): Promise<void> {
    await withRetries(this.#retry, () => this.#client.createBucket(this.bucket, { signal: options.signal }), options.signal);
  }

  /**
   * Which S3 features the endpoint really honours, found by trying them on
   * a scratch key: some providers accept conditional headers and ignore them.
   */
  async probeFeatures(): Promise<{ conditionalWrites: boolean }> {
    const key = this.#key(`talus-probe/${Date.now().toString(36)}-${Math.random().toString(36).slice(2)}`);
    const body = Buffer.from('probe');
    try {
      await this.#client.putObject(this.bucket, key, body, { ifNoneMatch: '*' });
      let conditionalWrites = false;
      try {
        await this.#client.putObject(this.bucket, key, body, { ifNoneMatch: '*' });
      } catch (error) {
        if (error instanceof S3RequestError && error.status === 412) conditionalWrites = true;
        else throw error;
      }
      return { conditionalWrites };
    } finally {
      await this.#client.deleteObject(this.bucket, key).catch(() => undefined);
    }
  }

  #key(key: string): string {
    assert(isBackendKey(key), `invalid backend key ${key}`);
    return this.#prefix + key;
  }

  create(key: string, sizeBytes: number): BackendWriter {
    assert(Number.isSafeInteger(sizeBytes) && sizeBytes >= 0, `invalid size ${sizeBytes}`);
    const remoteKey = this.#key(key);
    if (sizeBytes > this.#multipartThresholdBytes) {
      assert(Math.ceil(sizeBytes / this.#partBytes) <= PARTS_MAX, `${sizeBytes} bytes need more than ${PARTS_MAX} parts of ${this.#partBytes}`);
      return new S3MultipartUpload(this.name, this.#client, this.bucket, remoteKey, key, sizeBytes, this.#partBytes);
    }
    return new S3Upload(this.name, this.#client, this.bucket, remoteKey, key, sizeBytes);
  }

  async read(key: string, start: number, end: number, options: BackendReadOptions = {}): Promise<AsyncIterable<Buffer>> {
    const { signal } = options;
    assert(start >= 0 && start <= end, `invalid range ${start}-${end}`);
    const remoteKey = this.#key(key);
    if (start === end) {
      // A zero-length range cannot be asked for; the object must still be there.
      if ((await this.stat(key)) === undefined) throw new BackendObjectMissingError(this.name, key);
      return (async function* empty() {})();
    }
    try {
      const response = await withRetries(this.#retry, () => this.#client.getObjectStream(this.bucket, remoteKey, { range: `bytes=${start}-${end - 1}`, signal }), signal);
      if (response.status !== 206) return sliceBody(response.body, start, end); // the whole object
      // Some implementations answer with more than asked (s3rver sends everything for 'bytes=0-0'): cut it to size.
      const range = /^bytes (\d+)-(\d+)\//.exec(response.headers['content-range'] ?? '');
      if (range === null || Number(range[1]) > start || Number(range[2]) < end - 1) {
        response.body.destroy();
        throw new ShortReadError(`${this.name}: asked for bytes ${start}-${end - 1} of ${key}, got ${response.headers['content-range']}`);
      }
      const first = Number(range[1]);
      return first === start && Number(range[2]) === end - 1 ? response.body : sliceBody(response.body, start - first, end - first);
    } catch (error) {
      if (isMissing(error)) throw new BackendObjectMissingError(this.name, key);
      // 416: the object is shorter than the range asked for.
      if (error instanceof S3RequestError && error.status === 416) throw new ShortReadError(`${this.name}: ${key} is shorter than bytes ${start}-${end - 1}`);
      throw error;
    }
  }

  async stat(key: string, options: { signal?: AbortSignal } = {}): Promise<number | undefined> {
    const remoteKey = this.#key(key);
    const { signal } = options;
    try {
      const response = await withRetries(this.#retry, () => this.#client.headObject(this.bucket, remoteKey, { signal }), signal);
      return Number(response.headers['content-length']);
    } catch (error) {
      if (isMissing(error)) return undefined;
      throw error;
    }
  }

  async remove(keys: readonly string[], options: { signal?: AbortSignal } = {}): Promise<void> {
    const { signal } = options;
    for (let at = 0; at < keys.length; at += DELETE_OBJECTS_KEYS_MAX) {
      const batch = keys.slice(at, at + DELETE_OBJECTS_KEYS_MAX).map((key) => this.#key(key));
      const failed = await withRetries(this.#retry, () => this.#client.deleteObjects(this.bucket, batch, { signal }), signal);
      if (failed.length > 0) throw new Error(`${this.name}: ${failed.length} of ${batch.length} deletions failed (${failed[0]!.key}: ${failed[0]!.code})`);
    }
  }

  async *list(prefix: string): AsyncIterable<string> {
    let continuationToken: string | undefined;
    do {
      const token = continuationToken;
      const page = await withRetries(this.#retry, () => this.#client.listObjectsV2(this.bucket, { prefix: this.#prefix + prefix, continuationToken: token }));
      for (const remoteKey of page.keys) {
        const key = remoteKey.slice(this.#prefix.length);
        if (isBackendKey(key)) yield key;
      }
      continuationToken = page.isTruncated ? page.nextContinuationToken : undefined;
    } while (continuationToken !== undefined);
  }

  async close(): Promise<void> {
    await this.#client.close();
  }
}

/**
 * One streaming PUT with a Content-Length, fed by write(). Each chunk is
 * copied (the caller reuses its buffers; the socket may hold ours for a
 * while) and write() waits while more than UPLOAD_BUFFER_BYTES are queued.
 */
class S3Upload implements BackendWriter {
  readonly #backend: string;
  readonly #key: string;
  readonly #sizeBytes: number;
  readonly #body = new PassThrough({ highWaterMark: UPLOAD_BUFFER_BYTES });
  /** Ends the request itself on abort: destroying a body already sent all would leave it waiting for an answer. */
  readonly #abort = new AbortController();
  readonly #response: Promise<unknown>;
  #failure: unknown;
  #written = 0;
  #state: 'open' | 'committed' | 'aborted' = 'open';

  constructor(backend: string, client: S3Client, bucket: string, remoteKey: string, key: string, sizeBytes: number) {
    this.#backend = backend;
    this.#key = key;
    this.#sizeBytes = sizeBytes;
    this.#response = client.putObject(bucket, remoteKey, this.#body, { contentLength: sizeBytes, signal: this.#abort.signal }).catch((error: unknown) => {
      this.#failure ??= error;
      this.#body.destroy();
    });
  }

  async write(chunkOrChunks: Uint8Array | readonly Uint8Array[]): Promise<void> {
    assert(this.#state === 'open', `write to ${this.#state} object`);
    const chunks = Array.isArray(chunkOrChunks) ? (chunkOrChunks as readonly Uint8Array[]) : [chunkOrChunks as Uint8Array];
    for (const chunk of chunks) {
      if (this.#failure !== undefined) throw this.#failure;
      if (this.#written + chunk.length > this.#sizeBytes) throw new BackendSizeMismatchError(this.#backend, this.#key, this.#sizeBytes, this.#written + chunk.length);
      this.#written += chunk.length;
      if (!this.#body.write(Buffer.from(chunk))) {
        await Promise.race([once(this.#body, 'drain'), this.#response.then(() => undefined)]);
      }
    }
    if (this.#failure !== undefined) throw this.#failure;
  }

  async commit(): Promise<void> {
    assert(this.#state === 'open', `commit of ${this.#state} object`);
    if (this.#written !== this.#sizeBytes) throw new BackendSizeMismatchError(this.#backend, this.#key, this.#sizeBytes, this.#written);
    this.#body.end();
    await this.#response;
    if (this.#failure !== undefined) throw this.#failure;
    this.#state = 'committed';
  }

  async abort(): Promise<void> {
    if (this.#state !== 'open') return;
    this.#state = 'aborted';
    // The request fails with its body: the endpoint never completes the object.
    this.#failure ??= new Error('upload aborted');
    this.#body.destroy(new Error('upload aborted'));
    this.#abort.abort(new Error('upload aborted'));
    await this.#response;
  }
}

/** Bytes [start, end) of a whole-object body; the rest is not read. */
async function* sliceBody(body: AsyncIterable<Buffer> & { destroy(): void }, start: number, end: number): AsyncIterable<Buffer> {
  let at = 0;
  try {
    for await (const chunk of body) {
      const from = Math.max(start - at, 0);
      const to = Math.min(end - at, chunk.length);
      at += chunk.length;
      if (to > from) yield chunk.subarray(from, to);
      if (at >= end) return;
    }
  } finally {
    body.destroy();
  }
}

/**
 * A large object as a multipart upload: each part is a streaming PUT of a
 * known length fed by write(), so nothing is buffered beyond the socket's
 * queue; parts go up one after another. Completing checks the body as well
 * as the status (a 200 carrying an <Error> is a failure); any failure aborts
 * the upload so the endpoint keeps no parts.
 */
class S3MultipartUpload implements BackendWriter {
  readonly #backend: string;
  readonly #client: S3Client;
  readonly #bucket: string;
  readonly #remoteKey: string;
  readonly #key: string;
  readonly #sizeBytes: number;
  readonly #partBytes: number;
  readonly #uploadId: Promise<string>;
  readonly #etags: string[] = [];
  #part: { body: PassThrough; etag: Promise<string>; remaining: number } | undefined;
  #written = 0;
  #failure: unknown;
  #state: 'open' | 'committed' | 'aborted' = 'open';

  constructor(backend: string, client: S3Client, bucket: string, remoteKey: string, key: string, sizeBytes: number, partBytes: number) {
    this.#backend = backend;
    this.#client = client;
    this.#bucket = bucket;
    this.#remoteKey = remoteKey;
    this.#key = key;
    this.#sizeBytes = sizeBytes;
    this.#partBytes = partBytes;
    // Not retried: a lost answer to a retried start would leave an upload nobody aborts.
    this.#uploadId = client.createMultipartUpload(bucket, remoteKey);
    this.#uploadId.catch((error: unknown) => {
      this.#failure ??= error;
    });
  }

  async write(chunkOrChunks: Uint8Array | readonly Uint8Array[]): Promise<void> {
    assert(this.#state === 'open', `write to ${this.#state} object`);
    const chunks = Array.isArray(chunkOrChunks) ? (chunkOrChunks as readonly Uint8Array[]) : [chunkOrChunks as Uint8Array];
    for (const chunk of chunks) {
      if (this.#written + chunk.length > this.#sizeBytes) throw new BackendSizeMismatchError(this.#backend, this.#key, this.#sizeBytes, this.#written + chunk.length);
      let at = 0;
      while (at < chunk.length) {
        if (this.#failure !== undefined) throw this.#failure;
        const part = this.#part ?? (await this.#startPart());
        const piece = chunk.subarray(at, at + Math.min(part.remaining, chunk.length - at));
        at += piece.length;
        this.#written += piece.length;
        part.remaining -= piece.length;
        if (!part.body.write(Buffer.from(piece))) await Promise.race([once(part.body, 'drain'), part.etag.then(() => undefined, () => undefined)]);
        if (part.remaining === 0) await this.#finishPart();
      }
    }
    if (this.#failure !== undefined) throw this.#failure;
  }

  async #startPart(): Promise<{ body: PassThrough; etag: Promise<string>; remaining: number }> {
    const uploadId = await this.#uploadId;
    // Aborted while the upload was starting: start no part (abort() has nothing to end it).
    if (this.#state !== 'open' || this.#failure !== undefined) throw this.#failure ?? new Error('upload aborted');
    const bytes = Math.min(this.#partBytes, this.#sizeBytes - this.#written);
    const body = new PassThrough({ highWaterMark: UPLOAD_BUFFER_BYTES });
    const etag = this.#client.uploadPart(this.#bucket, this.#remoteKey, uploadId, this.#etags.length + 1, body, bytes);
    etag.catch((error: unknown) => {
      this.#failure ??= error;
      body.destroy();
    });
    this.#part = { body, etag, remaining: bytes };
    return this.#part;
  }

  async #finishPart(): Promise<void> {
    const part = this.#part!;
    this.#part = undefined;
    part.body.end();
    this.#etags.push(await part.etag);
  }

  async commit(): Promise<void> {
    assert(this.#state === 'open', `commit of ${this.#state} object`);
    if (this.#written !== this.#sizeBytes) throw new BackendSizeMismatchError(this.#backend, this.#key, this.#sizeBytes, this.#written);
    try {
      if (this.#failure !== undefined) throw this.#failure;
      await this.#client.completeMultipartUpload(this.#bucket, this.#remoteKey, await this.#uploadId, this.#etags);
    } catch (error) {
      await this.abort(); // no parts left behind on the endpoint
      throw error;
    }
    this.#state = 'committed';
  }

  async abort(): Promise<void> {
    if (this.#state !== 'open') return;
    this.#state = 'aborted';
    this.#failure ??= new Error('upload aborted');
    this.#part?.body.destroy(new Error('upload aborted'));
    await this.#part?.etag.catch(() => undefined);
    const uploadId = await this.#uploadId.catch(() => undefined);
    if (uploadId !== undefined) await this.#client.abortMultipartUpload(this.#bucket, this.#remoteKey, uploadId).catch(() => undefined);
  }
}

function isMissing(error: unknown): boolean {
  return error instanceof S3RequestError && (error.status === 404 || error.code === 'NoSuchKey');
}
