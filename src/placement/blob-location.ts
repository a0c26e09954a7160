import { assert } from '../util/assert.ts';
import { SHARD_FORMAT_VERSION, SHARD_HEADER_FIXED_BYTES, StripeLayout, type ShardFormatVersion, type StripeGeometry } from './stripe-layout.ts';

/**
 * Where a placed blob lives, as recorded with it in the metadata store (the
 * `location` of its segments and its blobs row): the shard format version,
 * the geometry, the size, the header length (version 2) and the backend of
 * every shard in shard order. Shard i of blob B is object `B.i` on its
 * backend. Recorded once when the blob is committed and never changed:
 * healing rewrites missing shards in place (in the blob's own format),
 * re-placing writes a new blob.
 */
export interface BlobLocation extends StripeGeometry {
  /** The shard format the blob was written in: version 1 before shards were bound to their blob. */
  readonly formatVersion: ShardFormatVersion;
  /** Bytes of every shard's header (0 in version 1). */
  readonly headerBytes: number;
  /** Backend name per shard. */
  readonly backends: readonly string[];
}

interface Encoded {
  v: number;
  k: number;
  m: number;
  b: number;
  n: number;
  /** Header bytes; version 2 on. */
  h?: number;
  on: string[];
}

/** The location of a new blob, in the current shard format. */
export function newBlobLocation(blobId: string, geometry: StripeGeometry, backends: readonly string[]): BlobLocation {
  const { dataShards, parityShards, blockBytes, sizeBytes } = geometry;
  return { formatVersion: SHARD_FORMAT_VERSION, headerBytes: SHARD_HEADER_FIXED_BYTES + blobId.length, dataShards, parityShards, blockBytes, sizeBytes, backends };
}

export function encodeLocation(location: BlobLocation): string {
  assert(location.backends.length === location.dataShards + location.parityShards, 'a backend per shard');
  const encoded: Encoded = { v: location.formatVersion, k: location.dataShards, m: location.parityShards, b: location.blockBytes, n: location.sizeBytes, on: [...location.backends] };
  if (location.formatVersion >= 2) encoded.h = location.headerBytes;
  else assert(location.headerBytes === 0, 'version 1 shards have no header');
  return JSON.stringify(encoded);
}

/** Parsed locations by their text: a hot object is read often, its location parsed once. */
const parsed = new Map<string, BlobLocation>();
const PARSED_MAX = 4096;

export function decodeLocation(text: string): BlobLocation {
  const known = parsed.get(text);
  if (known !== undefined) return known;
  const value = JSON.parse(text) as Partial<Encoded>;
  // Written by us: anything else is corrupt metadata, not input to be forgiving about.
  assert(value.v === 1 || value.v === 2, `blob location of an unknown shard format: ${text}`);
  assert(Number.isInteger(value.k) && Number.isInteger(value.m) && Number.isInteger(value.b) && Number.isSafeInteger(value.n), `malformed blob location: ${text}`);
  assert(Array.isArray(value.on) && value.on.length === value.k! + value.m! && value.on.every((name) => typeof name === 'string'), `malformed blob location: ${text}`);
  assert(value.v === 1 ? value.h === undefined : Number.isInteger(value.h) && value.h! > SHARD_HEADER_FIXED_BYTES, `malformed blob location: ${text}`);
  const location: BlobLocation = Object.freeze({
    formatVersion: value.v,
    headerBytes: value.h ?? 0,
    dataShards: value.k!,
    parityShards: value.m!,
    blockBytes: value.b!,
    sizeBytes: value.n!,
    backends: Object.freeze([...value.on!]),
  });
  if (parsed.size >= PARSED_MAX) parsed.delete(parsed.keys().next().value!);
  parsed.set(text, location);
  return location;
}

/** The layout of blob `blobId`'s shards: its geometry, in its format, bound to it from version 2 on. */
export function stripeLayoutOf(blobId: string, location: BlobLocation): StripeLayout {
  return new StripeLayout(location, location.formatVersion === 1 ? { version: 1 } : { version: location.formatVersion, blobId, headerBytes: location.headerBytes });
}

export function shardKey(blobId: string, shard: number): string {
  return `${blobId}.${shard}`;
}

/** Where the object record of blob `blobId` lives on each backend holding its shards (src/replication/object-record.ts). */
/**
 * What a purge-queue entry names in place of a backend RemoveBackend took
 * away by force (it was unreachable): no shard is removed there. Never a
 * backend's name (those start with a letter or digit).
 */
export const REMOVED_BACKEND = '-';

export const OBJECT_RECORD_PREFIX = 'talus-records/';

export function objectRecordKey(blobId: string): string {
  return `${OBJECT_RECORD_PREFIX}${blobId}`;
}
