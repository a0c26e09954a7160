/**
 * ObjectStorage over an S3 endpoint (AWS, Talus, MinIO, R2, s3rver, …)
 * through the lean client (src/client): SigV4, one keep-alive pool, timeouts,
 * bodies streamed. Requests that can be repeated safely — reads, heads,
 * listings, deletes, unconditional puts and parts whose body is in memory —
 * are retried with exponential backoff and full jitter (backend/retry.ts,
 * shared with the S3 backend). Conditional writes are not: a retry after a
 * lost success would report the caller's own write as a conflict.
 */
import { Readable } from 'node:stream';
import { RETRY_POLICY_DEFAULT, withRetries, type RetryPolicy } from '../backend/retry.ts';
import { S3Client, S3RequestError, userMetadata, type ObjectResponse, type S3ClientOptions } from '../client/s3-client.ts';
import {
  AlreadyExistsError,
  InvalidRangeError,
  NoSuchUploadError,
  NotFoundError,
  PreconditionFailedError,
  StorageError,
  type CompleteOptions,
  type DeleteManyError,
  type GetOptions,
  type GetResult,
  type ListOptions,
  type ListPage,
  type MultipartOptions,
  type MultipartUpload,
  type ObjectInfo,
  type ObjectStorage,
  type PutOptions,
  type PutResult,
  type StorageBody,
  type UploadedPart,
} from './object-storage.ts';
import { BufferedMultipartWriter } from './multipart-writer.ts';
import { DEFAULT_CONTENT_TYPE, DELETE_BATCH_KEYS, bodyBuffer, bodyChunks, checkKey, checkPageSize, checkPartNumber, normalizeMetadata, quoteEtag } from './storage-rules.ts';
import { deleteError } from './memory-storage.ts';

export interface S3StorageOptions extends S3ClientOptions {
  bucket: string;
  /** Prepended to every key ('logs/' keeps the storage's keys under logs/); default none. */
  prefix?: string;
  retry?: RetryPolicy;
}

type Condition = { kind: 'none' } | { kind: 'absent' } | { kind: 'match'; etag: string };

export class S3Storage implements ObjectStorage {
  readonly bucket: string;
  readonly prefix: string;
  readonly client: S3Client;
  readonly #retry: RetryPolicy;

  constructor(options: S3StorageOptions) {
    if (options.bucket === '' || options.bucket.includes('/')) throw new TypeError(`invalid bucket ${JSON.stringify(options.bucket)}`);
    this.bucket = options.bucket;
    this.prefix = options.prefix ?? '';
    this.#retry = options.retry ?? RETRY_POLICY_DEFAULT;
    this.client = new S3Client(options);
  }

  #key(key: string): string {
    checkKey(key);
    return this.prefix + key;
  }

  put(key: string, body: StorageBody, options: PutOptions = {}): Promise<PutResult> {
    return this.#write(key, body, options, { kind: 'none' });
  }

  putIfAbsent(key: string, body: StorageBody, options: PutOptions = {}): Promise<PutResult> {
    return this.#write(key, body, options, { kind: 'absent' });
  }

  putIfMatch(key: string, body: StorageBody, etag: string, options: PutOptions = {}): Promise<PutResult> {
    return this.#write(key, body, options, { kind: 'match', etag: quoteEtag(etag) });
  }

  async #write(key: string, body: StorageBody, options: PutOptions, condition: Condition): Promise<PutResult> {
    const remoteKey = this.#key(key);
    const metadata = normalizeMetadata(options.metadata);
    const buffer = bodyBuffer(body);
    if (buffer === undefined && options.size === undefined) return this.#writeUnsized(key, body, options, condition);
    const request = {
      ...(options.size === undefined ? {} : { contentLength: options.size }),
      contentType: options.contentType ?? DEFAULT_CONTENT_TYPE,
      metadata,
      ...(condition.kind === 'absent' ? { ifNoneMatch: '*' } : condition.kind === 'match' ? { ifMatch: condition.etag } : {}),
      ...(options.signal === undefined ? {} : { signal: options.signal }),
    };
    try {
      if (buffer !== undefined && condition.kind === 'none') return await withRetries(this.#retry, () => this.client.putObject(this.bucket, remoteKey, buffer, request), options.signal);
      const stream = buffer ?? (body instanceof Readable ? body : Readable.from(bodyChunks(body)));
      return await this.client.putObject(this.bucket, remoteKey, stream, request);
    } catch (error) {
      throw mapError(error, key, condition);
    }
  }

  /** A stream of unknown length: one put if it fits a part, else a multipart upload (BufferedMultipartWriter). */
  async #writeUnsized(key: string, body: StorageBody, options: PutOptions, condition: Condition): Promise<PutResult> {
    const writer = new BufferedMultipartWriter(this, key, {
      ...(options.contentType === undefined ? {} : { contentType: options.contentType }),
      ...(options.metadata === undefined ? {} : { metadata: options.metadata }),
      ...(condition.kind === 'absent' ? { ifNoneMatch: '*' as const } : condition.kind === 'match' ? { ifMatch: condition.etag } : {}),
    });
    const { pipeline } = await import('node:stream/promises');
    await pipeline(Readable.from(bodyChunks(body)), writer, ...(options.signal === undefined ? [] : [{ signal: options.signal }]));
    return writer.result;
  }

  async get(key: string, options: GetOptions = {}): Promise<GetResult> {
    const remoteKey = this.#key(key);
    const range = options.range;
    if (range !== undefined && (!Number.isSafeInteger(range.start) || range.start < 0 || (range.end !== undefined && (!Number.isSafeInteger(range.end) || range.end <= range.start)))) {
      throw new RangeError(`invalid range ${range.start}-${range.end}: want 0 <= start < end`);
    }
    const header = range === undefined ? undefined : `bytes=${range.start}-${range.end === undefined ? '' : range.end - 1}`;
    let response: ObjectResponse & { body: Readable };
    try {
      response = await withRetries(this.#retry, () => this.client.getObjectStream(this.bucket, remoteKey, { ...(header === undefined ? {} : { range: header }), ...(options.signal === undefined ? {} : { signal: options.signal }) }), options.signal);
    } catch (error) {
      throw mapError(error, key, { kind: 'none' });
    }
    const contentRange = /^bytes (\d+)-(\d+)\/(\d+)$/.exec(response.headers['content-range'] ?? '');
    if (response.status === 206 && contentRange !== null) {
      const first = Number(contentRange[1]);
      const last = Number(contentRange[2]);
      const size = Number(contentRange[3]);
      const start = range?.start ?? 0;
      const end = Math.min(range?.end ?? size, size);
      const info = infoFrom(key, response.headers, size);
      // Some servers answer with more than asked (s3rver does for some ranges): cut it to size.
      if (first !== start || last !== end - 1) {
        if (first > start || last < end - 1) {
          response.body.destroy();
          throw new StorageError('InternalError', `asked for bytes ${start}-${end - 1} of ${key}, got ${response.headers['content-range']}`, key);
        }
        return { body: Readable.from(slice(response.body, start - first, end - first)), info, range: { start, end } };
      }
      return { body: response.body, info, range: { start, end } };
    }
    const size = Number(response.headers['content-length'] ?? 0);
    const info = infoFrom(key, response.headers, size);
    if (range === undefined) return { body: response.body, info, range: { start: 0, end: size } };
    // A 200 to a ranged request: the whole object came (S3 does this for an empty object).
    if (range.start >= size) {
      response.body.destroy();
      throw new InvalidRangeError(key, `range starts at ${range.start}, past the end of ${JSON.stringify(key)} (${size} bytes)`);
    }
    const end = Math.min(range.end ?? size, size);
    return { body: Readable.from(slice(response.body, range.start, end)), info, range: { start: range.start, end } };
  }

  async head(key: string, options: { signal?: AbortSignal } = {}): Promise<ObjectInfo> {
    const remoteKey = this.#key(key);
    try {
      const response = await withRetries(this.#retry, () => this.client.headObject(this.bucket, remoteKey, options), options.signal);
      return infoFrom(key, response.headers, Number(response.headers['content-length'] ?? 0));
    } catch (error) {
      throw mapError(error, key, { kind: 'none' });
    }
  }

  async *list(prefix = '', options: ListOptions = {}): AsyncIterable<ListPage> {
    const pageSize = checkPageSize(options);
    let continuationToken: string | undefined;
    const strip = (remote: string): string => remote.slice(this.prefix.length);
    do {
      const token = continuationToken;
      const page = await withRetries(
        this.#retry,
        () =>
          this.client.listObjectsV2Entries(this.bucket, {
            prefix: this.prefix + prefix,
            maxKeys: pageSize,
            ...(options.delimiter === undefined ? {} : { delimiter: options.delimiter }),
            ...(token === undefined && options.startAfter !== undefined ? { startAfter: this.prefix + options.startAfter } : {}),
            ...(token === undefined ? {} : { continuationToken: token }),
            ...(options.signal === undefined ? {} : { signal: options.signal }),
          }),
        options.signal,
      );
      const out: ListPage = {
        objects: page.objects.map((object) => ({ key: strip(object.key), size: object.size, etag: object.etag, lastModified: object.lastModified })),
        commonPrefixes: page.commonPrefixes.map(strip),
      };
      if (out.objects.length > 0 || out.commonPrefixes.length > 0) yield out;
      continuationToken = page.isTruncated ? page.nextContinuationToken : undefined;
    } while (continuationToken !== undefined);
  }

  async delete(key: string): Promise<void> {
    const remoteKey = this.#key(key);
    try {
      await withRetries(this.#retry, () => this.client.deleteObject(this.bucket, remoteKey));
    } catch (error) {
      throw mapError(error, key, { kind: 'none' });
    }
  }

  async deleteMany(keys: readonly string[]): Promise<DeleteManyError[]> {
    const errors: DeleteManyError[] = [];
    const valid: string[] = [];
    for (const key of keys) {
      try {
        checkKey(key);
        valid.push(key);
      } catch (error) {
        errors.push(deleteError(key, error));
      }
    }
    for (let at = 0; at < valid.length; at += DELETE_BATCH_KEYS) {
      const batch = valid.slice(at, at + DELETE_BATCH_KEYS);
      try {
        const failed = await withRetries(this.#retry, () => this.client.deleteObjects(this.bucket, batch.map((key) => this.prefix + key)));
        for (const failure of failed) errors.push({ key: failure.key.slice(this.prefix.length), code: failure.code, message: failure.message });
      } catch (error) {
        // The whole request failed: every key of the batch is reported, none silently dropped.
        for (const key of batch) errors.push(deleteError(key, error));
      }
    }
    return errors;
  }

  async createMultipartUpload(key: string, options: MultipartOptions = {}): Promise<MultipartUpload> {
    const remoteKey = this.#key(key);
    const metadata = normalizeMetadata(options.metadata);
    try {
      // Not retried: a lost answer to a retried start would leave an upload nobody knows of.
      const uploadId = await this.client.createMultipartUpload(this.bucket, remoteKey, { contentType: options.contentType ?? DEFAULT_CONTENT_TYPE, metadata });
      return this.resumeMultipartUpload(key, uploadId);
    } catch (error) {
      throw mapError(error, key, { kind: 'none' });
    }
  }

  resumeMultipartUpload(key: string, uploadId: string): MultipartUpload {
    const remoteKey = this.#key(key);
    const { client, bucket } = this;
    const retry = this.#retry;
    const failure = (error: unknown, condition: Condition = { kind: 'none' }): Error =>
      error instanceof S3RequestError && error.code === 'NoSuchUpload' ? new NoSuchUploadError(key, uploadId, { cause: error }) : mapError(error, key, condition);
    return {
      key,
      uploadId,
      async uploadPart(partNumber, body, options = {}): Promise<UploadedPart> {
        checkPartNumber(partNumber);
        let buffer = bodyBuffer(body);
        if (buffer === undefined && options.size === undefined) {
          // A part of unknown length is gathered first (S3 wants each part's length up front).
          const chunks: Buffer[] = [];
          for await (const chunk of bodyChunks(body)) chunks.push(chunk);
          buffer = Buffer.concat(chunks);
        }
        try {
          if (buffer !== undefined) {
            const bytes = buffer;
            const etag = await withRetries(retry, () => client.uploadPart(bucket, remoteKey, uploadId, partNumber, bytes, bytes.length), options.signal);
            return { partNumber, etag, size: bytes.length };
          }
          const stream = body instanceof Readable ? body : Readable.from(bodyChunks(body));
          const etag = await client.uploadPart(bucket, remoteKey, uploadId, partNumber, stream, options.size!);
          return { partNumber, etag, size: options.size! };
        } catch (error) {
          throw failure(error);
        }
      },
      async listParts(): Promise<UploadedPart[]> {
        try {
          return await withRetries(retry, () => client.listParts(bucket, remoteKey, uploadId));
        } catch (error) {
          throw failure(error);
        }
      },
      async complete(parts, options: CompleteOptions = {}): Promise<PutResult> {
        const condition: Condition = options.ifNoneMatch === '*' ? { kind: 'absent' } : options.ifMatch !== undefined ? { kind: 'match', etag: quoteEtag(options.ifMatch) } : { kind: 'none' };
        try {
          return await client.completeMultipartUpload(bucket, remoteKey, uploadId, parts.map((part) => ({ partNumber: part.partNumber, etag: quoteEtag(part.etag) })), {
            ...(options.ifNoneMatch === undefined ? {} : { ifNoneMatch: options.ifNoneMatch }),
            ...(condition.kind === 'match' ? { ifMatch: condition.etag } : {}),
          });
        } catch (error) {
          throw failure(error, condition);
        }
      },
      async abort(): Promise<void> {
        try {
          await withRetries(retry, () => client.abortMultipartUpload(bucket, remoteKey, uploadId));
        } catch (error) {
          if (error instanceof S3RequestError && error.code === 'NoSuchUpload') return;
          throw failure(error);
        }
      },
    };
  }

  async close(): Promise<void> {
    await this.client.close();
  }
}

function infoFrom(key: string, headers: Record<string, string>, size: number): ObjectInfo {
  const lastModified = headers['last-modified'];
  return {
    key,
    size,
    etag: headers['etag'] ?? '',
    lastModified: lastModified === undefined ? new Date(0) : new Date(lastModified),
    contentType: headers['content-type'] ?? DEFAULT_CONTENT_TYPE,
    metadata: userMetadata(headers),
  };
}

/** The typed error for an S3 answer. */
function mapError(error: unknown, key: string, condition: Condition): Error {
  if (!(error instanceof S3RequestError)) return error instanceof Error ? error : new Error(String(error));
  const options = { cause: error };
  // S3 answers a write with If-Match with 404 NoSuchKey when the key is not there: the condition failed.
  if (condition.kind === 'match' && error.status === 404 && error.code !== 'NoSuchBucket' && error.code !== 'NoSuchUpload') return new PreconditionFailedError(key, undefined, options);
  if (error.status === 404 && (error.code === 'NoSuchKey' || error.code === 'NotFound')) return new NotFoundError(key, options);
  // 409 ConditionalRequestConflict: S3 (and Talus) say the key changed while the conditional write was in flight; the condition lost.
  if (error.status === 412 || error.code === 'PreconditionFailed' || error.code === 'ConditionalRequestConflict') {
    return condition.kind === 'absent' ? new AlreadyExistsError(key, options) : new PreconditionFailedError(key, undefined, options);
  }
  if (error.status === 416) return new InvalidRangeError(key, error.message, options);
  return new StorageError(error.code, error.message, key, options);
}

/** Bytes [start, end) of a body that holds more; the rest is not read. */
async function* slice(body: Readable, start: number, end: number): AsyncIterable<Buffer> {
  let at = 0;
  try {
    for await (const chunk of body as AsyncIterable<Buffer>) {
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
