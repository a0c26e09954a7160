/**
 * Reed–Solomon erasure coding of one stripe: k data shards protected by m
 * parity shards, any m of the k + m lost and rebuilt. Two implementations
 * share one shard format (@ronomon/reed-solomon's): the native addon when it
 * loaded, else the portable TypeScript codec. Talus issue 4.
 *
 * For the striping layer:
 * - every shard of a call has one length, a positive multiple of
 *   `SHARD_BYTES_MULTIPLE` (8) up to `SHARD_BYTES_MAX`: pad the last block of
 *   a stripe with zeros (`shardBytesForStripe`);
 * - parity depends on the shard length (the chunk layout in
 *   `xor-plan.ts`): rebuild with the length used to encode, whole shards;
 * - `allocateShards` lays a stripe out the way the native library reads it,
 *   which saves it a copy of the stripe in and out on every call;
 * - while a call is pending, its buffers belong to the codec: the native one
 *   reads and writes them from another thread, so do not touch, reuse or
 *   transfer them until the promise settles.
 */
import { ErasureCodecError } from './errors.ts';
import { loadNativeBinding } from './native-binding.ts';
import { NativeErasureCodec } from './native-codec.ts';
import { PortableErasureCodec } from './portable-codec.ts';

export type ErasureImplementation = 'native' | 'portable';

export interface ErasureCodec {
  readonly dataShards: number;
  readonly parityShards: number;
  readonly implementation: ErasureImplementation;
  /** Fills parity[0..m) from data[0..k); all buffers one length, none overlapping. */
  encode(data: readonly Uint8Array[], parity: Uint8Array[]): Promise<void>;
  /**
   * `shards` holds all k + m shards, data first; `present[i]` says whether
   * shard i holds valid bytes. Rebuilds every missing shard in place (its
   * buffer must be there, the same length) and leaves present ones untouched.
   * Throws `ErasureShardsInsufficient` when fewer than k are present.
   */
  reconstruct(shards: Uint8Array[], present: readonly boolean[]): Promise<void>;
}

export interface ErasureCodecOptions {
  /** 'auto' (the default) takes the native codec when its addon loaded. 'native' throws when it did not. */
  implementation?: ErasureImplementation | 'auto';
}

export function createErasureCodec(dataShards: number, parityShards: number, options: ErasureCodecOptions = {}): ErasureCodec {
  const implementation = options.implementation ?? 'auto';
  if (implementation === 'portable') return new PortableErasureCodec(dataShards, parityShards);
  const loaded = loadNativeBinding();
  if (loaded.binding !== null) return new NativeErasureCodec(loaded.binding, dataShards, parityShards);
  if (implementation === 'native') {
    throw new ErasureCodecError('ErasureNativeUnavailable', `the native Reed–Solomon addon is unavailable: ${loaded.reason}`);
  }
  return new PortableErasureCodec(dataShards, parityShards);
}

/** Whether the native codec can be had, and if not why (for start-up logs and tests). */
export function nativeErasureStatus(): { available: true } | { available: false; reason: string } {
  const loaded = loadNativeBinding();
  return loaded.binding !== null ? { available: true } : { available: false, reason: loaded.reason };
}
