/** Inputs and results of engine operations: S3 semantics, no HTTP. */
import type { CommitConditions } from '../meta/metadata-store.ts';
import type { Acl } from '../authz/index.ts';
import type { BucketRecord, ObjectChecksum, ObjectLockState, ObjectVersion, SystemMetadata, Tag } from '../meta/types.ts';
import type { ChecksumAlgorithm } from '../util/checksum.ts';
import type { ReadConditions } from './conditions.ts';
import type { Readable } from 'node:stream';

/** A request body as the auth layer hands it over: verified bytes, and trailers known once they end. */
export interface WriteBody {
  stream: AsyncIterable<Buffer>;
  trailers: ReadonlyMap<string, string>;
  /** The decoded length the request announced, if it did (chunked uploads may not). */
  declaredBytes?: number | undefined;
}

export interface ObjectAttributes {
  system: SystemMetadata;
  userMetadata: Record<string, string>;
  tags: Tag[];
}

/** A checksum the client asked for: its value comes in a header, in the trailer, or not at all (compute and store). */
export interface ChecksumRequest {
  algorithm: ChecksumAlgorithm;
  expected: string | undefined;
  fromTrailer: boolean;
}

export interface PutObjectInput {
  bucket: string;
  key: string;
  ownerId: string;
  /** The new version's ACL; absent: private to its owner. */
  acl?: Acl | undefined;
  body: WriteBody;
  attributes: ObjectAttributes;
  contentMd5: Buffer | undefined;
  checksum: ChecksumRequest | undefined;
  conditions: CommitConditions;
  /** x-amz-object-lock-* of the request (src/engine/object-lock.ts); undefined: none sent. */
  lock?: ObjectLockState | undefined;
}

export interface WriteResult {
  etag: string;
  /** Undefined for buckets that never had versioning enabled. */
  versionId: string | undefined;
  checksum: ObjectChecksum | null;
  version: ObjectVersion;
  /** The bucket as the write found it: its configurations answer response headers (x-amz-expiration) without another lookup. */
  bucket: BucketRecord;
}

export interface GetObjectInput {
  bucket: string;
  key: string;
  versionId: string | undefined;
  range: string | undefined;
  partNumber: number | undefined;
  conditions: ReadConditions;
  gate?: ReadGate;
}

export interface GetObjectResult {
  version: ObjectVersion;
  /** The bucket as the read found it (see WriteResult.bucket). */
  bucket: BucketRecord;
  /** Present when a Range or partNumber selected part of the object. */
  range: { start: number; end: number } | undefined;
  /** Whether the bucket has (ever had) versioning, so the version ID is shown. */
  showVersionId: boolean;
  partsCount: number | undefined;
  /** Opens the body: the bytes themselves, synchronously, for small (inline) objects, else a stream; HEAD never calls it. */
  open(): Buffer | Promise<Readable>;
}

export interface DeleteResult {
  versionId: string | undefined;
  deleteMarker: boolean;
}

/**
 * Decides whether the caller may read a version, once it is found and before
 * any conditional header is evaluated (a 304 or 412 must tell nothing to
 * someone who may not read it). `version` is undefined when the key has no
 * version (or its latest is a delete marker). Throws to refuse.
 */
export type ReadGate = (bucket: BucketRecord, version: ObjectVersion | undefined) => void;

export interface CopySource {
  bucket: string;
  key: string;
  versionId: string | undefined;
  conditions: ReadConditions;
  range?: string;
  /** The caller's right to read the source (src/s3/access.ts). */
  gate?: ReadGate;
}

export interface CopyObjectInput {
  source: CopySource;
  bucket: string;
  key: string;
  ownerId: string;
  acl?: Acl | undefined;
  metadataDirective: 'COPY' | 'REPLACE';
  taggingDirective: 'COPY' | 'REPLACE';
  /** Used when the directive is REPLACE. */
  attributes: ObjectAttributes;
  checksumAlgorithm: ChecksumAlgorithm | undefined;
  conditions: CommitConditions;
  /** x-amz-object-lock-* for the new version; undefined: none sent. */
  lock?: ObjectLockState | undefined;
}

export interface CopyResult extends WriteResult {
  sourceVersionId: string | undefined;
}
