/**
 * Shard buffers: the sizes a codec accepts, a contiguous layout that lets the
 * native codec work without copying, and the argument checks both codecs
 * share, so they reject exactly the same calls with the same errors.
 */
import { MiB } from '../util/limits.ts';
import { assert } from '../util/assert.ts';
import { ErasureCodecError } from './errors.ts';
import { DATA_SHARDS_MAX, PARITY_SHARDS_MAX } from './parameters.ts';

export { DATA_SHARDS_MAX, PARITY_SHARDS_MAX };

/**
 * Every shard length must be a multiple of this. The native library refuses
 * other lengths (its shards are cut into w ≤ 8 equal chunks and it XORs in
 * 64-bit words), and the portable codec keeps the same rule so a stripe that
 * one accepts the other accepts too. The striping layer pads each shard block
 * up to it with zeros (`shardBytesForStripe`).
 */
export const SHARD_BYTES_MULTIPLE = 8;
/**
 * Largest shard accepted. Stripes are 1–4 MiB, so shards are at most 4 MiB
 * (k = 1); the bound keeps k · shard well below the native 2^32 byte limit.
 */
export const SHARD_BYTES_MAX = 16 * MiB;

assert(SHARD_BYTES_MAX % SHARD_BYTES_MULTIPLE === 0, 'the largest shard is an aligned length');
assert(DATA_SHARDS_MAX * SHARD_BYTES_MAX < 2 ** 32, 'the data region fits the native 32-bit sizes');
assert(DATA_SHARDS_MAX + PARITY_SHARDS_MAX < 31, 'shard sets fit in a 31-bit mask');

/** Bytes per shard for a stripe of `stripeBytes` cut into `dataShards` blocks: ceil(stripe / k) rounded up to the multiple. */
export function shardBytesForStripe(stripeBytes: number, dataShards: number): number {
  assert(Number.isSafeInteger(stripeBytes) && stripeBytes > 0, `stripe bytes ${stripeBytes} must be a positive integer`);
  assert(Number.isSafeInteger(dataShards) && dataShards >= 1, `data shards ${dataShards} must be a positive integer`);
  const blockBytes = Math.ceil(stripeBytes / dataShards);
  return Math.ceil(blockBytes / SHARD_BYTES_MULTIPLE) * SHARD_BYTES_MULTIPLE;
}

export interface ShardSet {
  /** All k + m shards, data first: `shards[i]` for i < k is data shard i. */
  readonly shards: Uint8Array[];
  readonly data: Uint8Array[];
  readonly parity: Uint8Array[];
}

/**
 * k + m zeroed shards laid end to end in one ArrayBuffer. This is the layout
 * the native library takes natively (one data region, one parity region), so
 * shards from here never need a copy; shards from anywhere else still work.
 */
export function allocateShards(dataShards: number, parityShards: number, shardBytes: number): ShardSet {
  validateGeometry(dataShards, parityShards);
  validateShardBytes(shardBytes);
  const memory = new ArrayBuffer((dataShards + parityShards) * shardBytes);
  const shards = Array.from({ length: dataShards + parityShards }, (_, i) => new Uint8Array(memory, i * shardBytes, shardBytes));
  return { shards, data: shards.slice(0, dataShards), parity: shards.slice(dataShards) };
}

export function validateGeometry(dataShards: number, parityShards: number): void {
  if (!Number.isInteger(dataShards) || dataShards < 1 || dataShards > DATA_SHARDS_MAX) {
    throw new ErasureCodecError('ErasureGeometryInvalid', `data shards must be an integer in [1, ${DATA_SHARDS_MAX}], got ${dataShards}`);
  }
  if (!Number.isInteger(parityShards) || parityShards < 1 || parityShards > PARITY_SHARDS_MAX) {
    throw new ErasureCodecError('ErasureGeometryInvalid', `parity shards must be an integer in [1, ${PARITY_SHARDS_MAX}], got ${parityShards}`);
  }
}

function validateShardBytes(shardBytes: number): void {
  if (!Number.isInteger(shardBytes) || shardBytes <= 0 || shardBytes > SHARD_BYTES_MAX || shardBytes % SHARD_BYTES_MULTIPLE !== 0) {
    throw new ErasureCodecError(
      'ErasureShardsInvalid',
      `shard length must be a positive multiple of ${SHARD_BYTES_MULTIPLE} up to ${SHARD_BYTES_MAX} bytes, got ${shardBytes}`,
    );
  }
}

/**
 * Checks a call's shard buffers: the expected count of Uint8Arrays, one
 * common valid length, and no two shards sharing bytes (a rebuilt shard
 * written over a source would corrupt the stripe silently). Returns the length.
 */
export function validateShards(shards: readonly Uint8Array[], count: number, what: string): number {
  if (shards.length !== count) {
    throw new ErasureCodecError('ErasureShardsInvalid', `expected ${count} ${what} shards, got ${shards.length}`);
  }
  const first = shards[0];
  if (!(first instanceof Uint8Array)) throw new ErasureCodecError('ErasureShardsInvalid', `${what} shard 0 is not a Uint8Array`);
  const shardBytes = first.byteLength;
  validateShardBytes(shardBytes);
  shards.forEach((shard, index) => {
    if (!(shard instanceof Uint8Array)) throw new ErasureCodecError('ErasureShardsInvalid', `${what} shard ${index} is not a Uint8Array`);
    if (shard.byteLength !== shardBytes) {
      throw new ErasureCodecError('ErasureShardsInvalid', `${what} shard ${index} has ${shard.byteLength} bytes, shard 0 has ${shardBytes}`);
    }
  });
  return shardBytes;
}

/** Throws if any two of the shards share bytes. O(n²) over ≤ 30 shards: nothing next to the data work. */
export function validateDisjoint(shards: readonly Uint8Array[]): void {
  for (let a = 0; a < shards.length; a++) {
    for (let b = a + 1; b < shards.length; b++) {
      const first = shards[a]!;
      const second = shards[b]!;
      if (first.buffer !== second.buffer) continue;
      const overlaps = first.byteOffset < second.byteOffset + second.byteLength && second.byteOffset < first.byteOffset + first.byteLength;
      if (overlaps) throw new ErasureCodecError('ErasureShardsInvalid', `shards ${a} and ${b} overlap in memory`);
    }
  }
}

/**
 * Checks `present` against k + m shards and returns the missing indices,
 * ascending. Fewer than k present is the one operating error here: the
 * placement layer lost too many shards of this stripe.
 */
export function missingShards(present: readonly boolean[], dataShards: number, parityShards: number): number[] {
  const total = dataShards + parityShards;
  if (present.length !== total) {
    throw new ErasureCodecError('ErasureShardsInvalid', `present has ${present.length} flags, expected ${total}`);
  }
  const missing: number[] = [];
  present.forEach((flag, index) => {
    if (typeof flag !== 'boolean') throw new ErasureCodecError('ErasureShardsInvalid', `present[${index}] is not a boolean`);
    if (!flag) missing.push(index);
  });
  if (missing.length > parityShards) {
    throw new ErasureCodecError(
      'ErasureShardsInsufficient',
      `${total - missing.length} of ${total} shards present, ${dataShards}+${parityShards} needs at least ${dataShards} (missing: ${missing.join(', ')})`,
    );
  }
  return missing;
}

/** True when the shards lie end to end in one ArrayBuffer, in order (a region the native library takes as is). */
export function isContiguous(shards: readonly Uint8Array[]): boolean {
  const first = shards[0]!;
  return shards.every((shard, i) => shard.buffer === first.buffer && shard.byteOffset === first.byteOffset + i * first.byteLength);
}
