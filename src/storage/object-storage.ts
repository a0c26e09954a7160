/**
 * `ObjectStorage`: one interface over a directory, memory and any S3
 * endpoint, with S3's semantics (keys of up to 1024 UTF-8 bytes listed in
 * byte order, whole-object atomic writes, conditional writes, ranged reads,
 * multipart uploads), so code written and tested against memory or a
 * directory behaves the same against S3.
 *
 * ETags are S3's: a quoted hex MD5 of the bytes for a single PUT, and
 * `"<md5 of the parts' MD5s>-<parts>"` for a completed multipart upload.
 */
import type { Readable } from 'node:stream';

/** What put and uploadPart accept. A stream's length need not be known. */
export type StorageBody = Buffer | Uint8Array | string | Readable | AsyncIterable<Uint8Array>;

export interface PutOptions {
  /** Default application/octet-stream. */
  contentType?: string;
  /** User metadata; names are lower-cased (as S3 does), values are UTF-8 text. */
  metadata?: Record<string, string>;
  /** The body's length, when a stream's is known (lets S3 stream it as one PUT). */
  size?: number;
  signal?: AbortSignal;
}

export interface PutResult {
  etag: string;
}

export interface ObjectInfo {
  key: string;
  /** The whole object's size, also for a ranged get. */
  size: number;
  etag: string;
  lastModified: Date;
  contentType: string;
  metadata: Record<string, string>;
}

/** Bytes [start, end) of an object; `end` past the object's size reads to its end. */
export interface ByteRange {
  start: number;
  end?: number;
}

export interface GetOptions {
  range?: ByteRange;
  signal?: AbortSignal;
}

export interface GetResult {
  /** The bytes: consume or destroy it. */
  body: Readable;
  info: ObjectInfo;
  /** The bytes [start, end) the body holds. */
  range: { start: number; end: number };
}

export interface ListOptions {
  /** Only keys after this one (in UTF-8 byte order). */
  startAfter?: string;
  /** Roll keys up into common prefixes at the first delimiter after the prefix ('/' for "directories"). */
  delimiter?: string;
  /** Entries (objects plus common prefixes) per page, 1 to 1000; default 1000. */
  pageSize?: number;
  signal?: AbortSignal;
}

export interface ListedObject {
  key: string;
  size: number;
  etag: string;
  lastModified: Date;
}

export interface ListPage {
  objects: ListedObject[];
  commonPrefixes: string[];
}

export interface DeleteManyError {
  key: string;
  code: string;
  message: string;
}

export interface MultipartOptions {
  contentType?: string;
  metadata?: Record<string, string>;
}

export interface UploadedPart {
  partNumber: number;
  etag: string;
  size: number;
}

/** `ifNoneMatch: '*'` creates the object only if the key is free; `ifMatch` replaces only that version. */
export interface CompleteOptions {
  ifNoneMatch?: '*';
  ifMatch?: string;
}

/**
 * A multipart upload: parts 1..10000 of at least 5 MiB each except the last,
 * put together by `complete` into one object in one atomic step.
 */
export interface MultipartUpload {
  readonly key: string;
  readonly uploadId: string;
  /** Uploads (or replaces) part `partNumber`; `size` is required for streams by some stores (S3). */
  uploadPart(partNumber: number, body: StorageBody, options?: { size?: number; signal?: AbortSignal }): Promise<UploadedPart>;
  listParts(): Promise<UploadedPart[]>;
  /** Assembles the given parts, in ascending part order, into the object. */
  complete(parts: readonly { partNumber: number; etag: string }[], options?: CompleteOptions): Promise<PutResult>;
  /** Drops the upload and its parts; an upload already gone is no error. */
  abort(): Promise<void>;
}

export interface ObjectStorage {
  /** Creates or replaces `key` atomically: readers see the old object or the new one, never a mix. */
  put(key: string, body: StorageBody, options?: PutOptions): Promise<PutResult>;
  /** Creates `key` only if it does not exist; else AlreadyExistsError. */
  putIfAbsent(key: string, body: StorageBody, options?: PutOptions): Promise<PutResult>;
  /** Replaces `key` only if its current ETag is `etag`; else PreconditionFailedError (also when it is missing). */
  putIfMatch(key: string, body: StorageBody, etag: string, options?: PutOptions): Promise<PutResult>;
  /** The object's bytes (NotFoundError, InvalidRangeError when `range.start` is at or past its end). */
  get(key: string, options?: GetOptions): Promise<GetResult>;
  /** Size, ETag, last-modified, content type, user metadata (NotFoundError). */
  head(key: string, options?: { signal?: AbortSignal }): Promise<ObjectInfo>;
  /** Pages of keys starting with `prefix`, in UTF-8 byte order. */
  list(prefix?: string, options?: ListOptions): AsyncIterable<ListPage>;
  /** Removes `key`; a missing key is no error (as in S3). */
  delete(key: string): Promise<void>;
  /** Removes many keys, 1000 per request; returns the keys that could not be removed. */
  deleteMany(keys: readonly string[]): Promise<DeleteManyError[]>;
  createMultipartUpload(key: string, options?: MultipartOptions): Promise<MultipartUpload>;
  /** Resumes an upload started earlier (by this process or another). */
  resumeMultipartUpload(key: string, uploadId: string): MultipartUpload;
  /** Releases connections and handles; pending operations finish first. */
  close(): Promise<void>;
}

/** Every error an ObjectStorage throws for a reason of S3's has a `code` as S3 names it. */
export class StorageError extends Error {
  override name = 'StorageError';
  readonly code: string;
  readonly key: string | undefined;

  constructor(code: string, message: string, key?: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.key = key;
  }
}

export class NotFoundError extends StorageError {
  override name = 'NotFoundError';
  constructor(key: string, options?: { cause?: unknown }) {
    super('NoSuchKey', `no object ${JSON.stringify(key)}`, key, options);
  }
}

export class AlreadyExistsError extends StorageError {
  override name = 'AlreadyExistsError';
  constructor(key: string, options?: { cause?: unknown }) {
    super('AlreadyExists', `${JSON.stringify(key)} already exists`, key, options);
  }
}

export class PreconditionFailedError extends StorageError {
  override name = 'PreconditionFailedError';
  constructor(key: string, message = `${JSON.stringify(key)} does not match the condition`, options?: { cause?: unknown }) {
    super('PreconditionFailed', message, key, options);
  }
}

export class InvalidKeyError extends StorageError {
  override name = 'InvalidKeyError';
  constructor(key: string, reason: string) {
    super('InvalidKey', `invalid key ${JSON.stringify(key)}: ${reason}`, key);
  }
}

export class InvalidRangeError extends StorageError {
  override name = 'InvalidRangeError';
  constructor(key: string, message: string, options?: { cause?: unknown }) {
    super('InvalidRange', message, key, options);
  }
}

export class NoSuchUploadError extends StorageError {
  override name = 'NoSuchUploadError';
  constructor(key: string, uploadId: string, options?: { cause?: unknown }) {
    super('NoSuchUpload', `no upload ${uploadId} for ${JSON.stringify(key)}`, key, options);
  }
}
