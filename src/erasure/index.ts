/** The erasure codec's public surface; everything else in src/erasure is internal. */
export { createErasureCodec, nativeErasureStatus } from './codec.ts';
export type { ErasureCodec, ErasureCodecOptions, ErasureImplementation } from './codec.ts';
export { ErasureCodecError } from './errors.ts';
export type { ErasureCodecErrorCode } from './errors.ts';
export {
  allocateShards,
  DATA_SHARDS_MAX,
  PARITY_SHARDS_MAX,
  SHARD_BYTES_MAX,
  SHARD_BYTES_MULTIPLE,
  shardBytesForStripe,
} from './shards.ts';
export type { ShardSet } from './shards.ts';
