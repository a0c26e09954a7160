import { assert } from '../util/assert.ts';
import { SHARD_FORMAT_VERSION, StripeLayout } from './stripe-layout.ts';

/**
 * Where a placed blob lives, as recorded with it in the metadata store (the
 * `location` of its segments and its blobs row): the shard format version,
 * the geometry, the size, and the backend of every shard in shard order.
 * Shard i of blob B is object `B.i` on its backend. Recorded once when the
 * blob is committed and never changed: healing rewrites missing shards in
 * place, re-placing writes a new blob.
 */
export interface BlobLocation {
  readonly dataShards: number;
  readonly parityShards: number;
  readonly blockBytes: number;
  readonly sizeBytes: number;
  /** Backend name per shard. */
  readonly backends: readonly string[];
}

interface Encoded {
  v: number;
  k: number;
  m: number;
  b: number;
  n: number;
  on: string[];
}

export function encodeLocation(location: BlobLocation): string {
  assert(location.backends.length === location.dataShards + location.parityShards, 'a backend per shard');
  const encoded: Encoded = { v: SHARD_FORMAT_VERSION, k: location.dataShards, m: location.parityShards, b: location.blockBytes, n: location.sizeBytes, on: [...location.backends] };
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
  assert(value.v === SHARD_FORMAT_VERSION, `blob location of an unknown shard format: ${text}`);
  assert(Number.isInteger(value.k) && Number.isInteger(value.m) && Number.isInteger(value.b) && Number.isSafeInteger(value.n), `malformed blob location: ${text}`);
  assert(Array.isArray(value.on) && value.on.length === value.k! + value.m! && value.on.every((name) => typeof name === 'string'), `malformed blob location: ${text}`);
  const location: BlobLocation = Object.freeze({ dataShards: value.k!, parityShards: value.m!, blockBytes: value.b!, sizeBytes: value.n!, backends: Object.freeze([...value.on!]) });
  if (parsed.size >= PARSED_MAX) parsed.delete(parsed.keys().next().value!);
  parsed.set(text, location);
  return location;
}

export function stripeLayoutOf(location: BlobLocation): StripeLayout {
  return new StripeLayout(location);
}

export function shardKey(blobId: string, shard: number): string {
  return `${blobId}.${shard}`;
}
