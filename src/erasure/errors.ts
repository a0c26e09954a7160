/**
 * The codec's typed errors. Callers branch on `code`, never on the message;
 * the message names the numbers involved so a log line explains itself.
 */
export type ErasureCodecErrorCode =
  /** k or m outside what the code supports. */
  | 'ErasureGeometryInvalid'
  /** Wrong shard count, unequal or unaligned lengths, overlapping buffers. */
  | 'ErasureShardsInvalid'
  /** Fewer than k shards survive: the stripe cannot be rebuilt. */
  | 'ErasureShardsInsufficient'
  /** The native codec was asked for by name but its addon did not load. */
  | 'ErasureNativeUnavailable';

export class ErasureCodecError extends Error {
  override name = 'ErasureCodecError';
  constructor(
    readonly code: ErasureCodecErrorCode,
    message: string,
  ) {
    super(message);
  }
}
