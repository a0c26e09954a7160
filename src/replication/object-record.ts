/**
 * Object records: the last-resort map from a placed blob back to the object
 * version it belongs to, for `talus recover --scan` when no metadata
 * replica survives (docs/PLACEMENT.md, "Last resort").
 *
 * A shard's header names its blob and geometry, not the object. So after a
 * version commits, a small JSON object `talus-records/<blobId>` is written
 * to every backend holding a shard of one of its blobs (record-writer.ts,
 * off the acknowledgement path), and removed with the blob's shards when
 * the blob is purged (PlacedBlobStore.removeMany). Two kinds:
 *
 * - The full record (format 1), under the version's first placed blob: the
 *   whole version as the metadata store had it — bucket, key, version ID,
 *   size, ETag, checksum, content type and user metadata, the parts, and
 *   every segment's blob and location (geometry and the backend of each
 *   shard) — enough to rebuild the version, multipart ones included.
 * - A pointer record (format 2), under each of the version's other blobs:
 *   the version's names and seq and the blob holding its full record. A
 *   full record under every blob would make a version of N parts cost N
 *   copies of an N-segment document: records growing with the square of the
 *   part count (10,000 parts: gigabytes). Talus before pointer records did
 *   write a full record under every blob; recover reads those alike.
 *
 * No shard format change: shards of every format get records alike. The
 * full format is pinned by test/fixtures/object-record-v1.json.
 */
import { assert } from '../util/assert.ts';

export const OBJECT_RECORD_FORMAT = 'talus-object-record';
export const OBJECT_RECORD_VERSION = 1;
/** The format number of pointer records. */
export const OBJECT_RECORD_POINTER_VERSION = 2;
/** Records are at most this large: a version's metadata document is bounded well below it (2 KiB of user metadata, 10,000 parts). */
export const OBJECT_RECORD_BYTES_MAX = 8 * 1024 * 1024;

/** One object version as its record holds it: the `versions` row of the metadata database, its document verbatim. */
export interface RecordedVersion {
  readonly bucket: string;
  readonly key: string;
  readonly versionId: string;
  readonly sizeBytes: number;
  readonly etag: string;
  readonly lastModifiedMs: number;
  readonly ownerId: string;
  /** The metadata document (JSON text: system and user metadata, checksum, tags, parts, segments…), as stored. */
  readonly meta: string;
  /** The row's commit order in the database it came from: orders the versions of one key on recovery. */
  readonly seq: number;
}

/** A full record: the whole version, stored under one of its blobs. */
export interface ObjectRecord {
  readonly kind?: 'full';
  /** The blob this record is stored under (one of the version's segments). */
  readonly blobId: string;
  readonly version: RecordedVersion;
}

/** What a pointer record names of its version: enough to report it when its full record is gone. */
export interface RecordedVersionName {
  readonly bucket: string;
  readonly key: string;
  readonly versionId: string;
  readonly seq: number;
}

/** A pointer record: the blob `blobId` belongs to the version whose full record is under `versionBlobId`. */
export interface ObjectRecordPointer {
  readonly kind: 'pointer';
  readonly blobId: string;
  readonly versionBlobId: string;
  readonly version: RecordedVersionName;
}

/** A segment of a recorded version: its blob and where it lives (absent: the local blob store). */
export interface RecordedSegment {
  readonly blobId: string;
  readonly sizeBytes: number;
  readonly location?: string;
}

export class ObjectRecordError extends Error {
  override name = 'ObjectRecordError';
}

/** A full record. `segments`: the version's, when the caller parsed them already (a document is parsed once per version). */
export function encodeObjectRecord(record: ObjectRecord, segments: readonly RecordedSegment[] = segmentsOf(record.version)): Buffer {
  const { version } = record;
  assert(segments.some((segment) => segment.blobId === record.blobId), `blob ${record.blobId} is a segment of the version it records`);
  return Buffer.from(
    JSON.stringify({
      format: OBJECT_RECORD_FORMAT,
      v: OBJECT_RECORD_VERSION,
      blobId: record.blobId,
      version: {
        bucket: version.bucket,
        key: version.key,
        versionId: version.versionId,
        sizeBytes: version.sizeBytes,
        etag: version.etag,
        lastModifiedMs: version.lastModifiedMs,
        ownerId: version.ownerId,
        seq: version.seq,
        meta: version.meta,
      },
    }),
  );
}

/** A pointer record: a few hundred bytes whatever the version's part count. */
export function encodeObjectRecordPointer(record: Omit<ObjectRecordPointer, 'kind'>): Buffer {
  assert(record.blobId !== record.versionBlobId, 'a pointer record points at another blob');
  const { version } = record;
  return Buffer.from(
    JSON.stringify({
      format: OBJECT_RECORD_FORMAT,
      v: OBJECT_RECORD_POINTER_VERSION,
      blobId: record.blobId,
      versionBlobId: record.versionBlobId,
      version: { bucket: version.bucket, key: version.key, versionId: version.versionId, seq: version.seq },
    }),
  );
}

/** A record read back from a backend: anything malformed is refused (it may be damaged; another backend's copy may not be). */
export function decodeObjectRecord(bytes: Buffer): ObjectRecord | ObjectRecordPointer {
  let value: unknown;
  try {
    value = JSON.parse(bytes.toString('utf8'));
  } catch (error) {
    throw new ObjectRecordError(`not JSON: ${error instanceof Error ? error.message : String(error)}`);
  }
  const record = value as { format?: unknown; v?: unknown; blobId?: unknown; version?: Record<string, unknown> };
  if (record.format !== OBJECT_RECORD_FORMAT) throw new ObjectRecordError('not an object record');
  if (record.v === OBJECT_RECORD_POINTER_VERSION) return decodePointer(record);
  if (record.v !== OBJECT_RECORD_VERSION) throw new ObjectRecordError(`object record format ${String(record.v)} is not known to this Talus`);
  const version = record.version;
  if (typeof record.blobId !== 'string' || typeof version !== 'object' || version === null) throw new ObjectRecordError('malformed object record');
  for (const field of ['bucket', 'key', 'versionId', 'etag', 'ownerId', 'meta'] as const) {
    if (typeof version[field] !== 'string') throw new ObjectRecordError(`malformed object record: ${field}`);
  }
  for (const field of ['sizeBytes', 'lastModifiedMs', 'seq'] as const) {
    if (!Number.isSafeInteger(version[field])) throw new ObjectRecordError(`malformed object record: ${field}`);
  }
  const decoded: ObjectRecord = {
    blobId: record.blobId,
    version: {
      bucket: version.bucket as string,
      key: version.key as string,
      versionId: version.versionId as string,
      sizeBytes: version.sizeBytes as number,
      etag: version.etag as string,
      lastModifiedMs: version.lastModifiedMs as number,
      ownerId: version.ownerId as string,
      seq: version.seq as number,
      meta: version.meta as string,
    },
  };
  let segments: RecordedSegment[];
  try {
    segments = segmentsOf(decoded.version);
  } catch (error) {
    throw new ObjectRecordError(`malformed object record: ${error instanceof Error ? error.message : String(error)}`);
  }
  if (!segments.some((segment) => segment.blobId === decoded.blobId)) throw new ObjectRecordError(`the record of blob ${decoded.blobId} names a version without it`);
  return decoded;
}

function decodePointer(record: { blobId?: unknown; versionBlobId?: unknown; version?: Record<string, unknown> }): ObjectRecordPointer {
  const version = record.version;
  if (typeof record.blobId !== 'string' || typeof record.versionBlobId !== 'string' || record.blobId === record.versionBlobId) throw new ObjectRecordError('malformed pointer record');
  if (typeof version !== 'object' || version === null) throw new ObjectRecordError('malformed pointer record');
  for (const field of ['bucket', 'key', 'versionId'] as const) {
    if (typeof version[field] !== 'string') throw new ObjectRecordError(`malformed pointer record: ${field}`);
  }
  if (!Number.isSafeInteger(version.seq)) throw new ObjectRecordError('malformed pointer record: seq');
  return {
    kind: 'pointer',
    blobId: record.blobId,
    versionBlobId: record.versionBlobId,
    version: { bucket: version.bucket as string, key: version.key as string, versionId: version.versionId as string, seq: version.seq as number },
  };
}

/** The segments (blobs, in order) of a recorded version, from its metadata document. */
export function segmentsOf(version: RecordedVersion): RecordedSegment[] {
  const document = JSON.parse(version.meta) as { segments?: unknown };
  if (!Array.isArray(document.segments)) throw new Error('metadata document without segments');
  return document.segments.map((segment: unknown) => {
    const { blobId, sizeBytes, location } = segment as Partial<RecordedSegment>;
    if (typeof blobId !== 'string' || !Number.isSafeInteger(sizeBytes) || (location !== undefined && typeof location !== 'string')) throw new Error('malformed segment');
    return location === undefined ? { blobId, sizeBytes: sizeBytes! } : { blobId, sizeBytes: sizeBytes!, location };
  });
}
