import { crc32c } from '@node-rs/crc32';
import { SHARD_BYTES_MULTIPLE, shardBytesForStripe } from '../erasure/index.ts';
import { assert } from '../util/assert.ts';

/**
 * The shard format (version 1) of a blob spread over k + m shards — erasure
 * coding, or k = 1 for replicas (every "parity" shard a copy).
 *
 * The blob is cut into stripes of k · blockBytes data bytes; stripe s is cut
 * into k data blocks, which the codec extends by m parity blocks, and shard i
 * stores block i of every stripe in order, each block followed by a 4-byte
 * checksum (a frame). The last stripe may be shorter: its blocks are
 * ceil(rest / k) bytes rounded up to 8 (the codec's multiple), zero-padded.
 * So a range read needs only the frames of the stripes it covers, at offsets
 * computed from the layout alone, and each frame can be verified on its own.
 *
 * The checksum is CRC32C over the block continued over the stripe and shard
 * numbers (big-endian u32 each): a block read from the wrong offset or the
 * wrong shard fails it as surely as a flipped bit.
 *
 * Changing any of this changes stored data: test/fixtures/stripe-format.json
 * pins it.
 */
export const SHARD_FORMAT_VERSION = 1;
export const FRAME_CHECKSUM_BYTES = 4;

export interface StripeGeometry {
  readonly dataShards: number;
  /** Parity shards (erasure) or further copies (replicas, where dataShards is 1). */
  readonly parityShards: number;
  /** Bytes of each block of a full stripe; a multiple of 8. */
  readonly blockBytes: number;
  readonly sizeBytes: number;
}

export class StripeLayout implements StripeGeometry {
  readonly dataShards: number;
  readonly parityShards: number;
  readonly blockBytes: number;
  readonly sizeBytes: number;
  readonly stripeCount: number;
  readonly #fullStripes: number;
  readonly #tailBlockBytes: number;

  constructor(geometry: StripeGeometry) {
    const { dataShards, parityShards, blockBytes, sizeBytes } = geometry;
    assert(Number.isInteger(dataShards) && dataShards >= 1, `data shards ${dataShards}`);
    assert(Number.isInteger(parityShards) && parityShards >= 0, `parity shards ${parityShards}`);
    assert(Number.isInteger(blockBytes) && blockBytes > 0 && blockBytes % SHARD_BYTES_MULTIPLE === 0, `block bytes ${blockBytes}`);
    assert(Number.isSafeInteger(sizeBytes) && sizeBytes >= 0, `size ${sizeBytes}`);
    this.dataShards = dataShards;
    this.parityShards = parityShards;
    this.blockBytes = blockBytes;
    this.sizeBytes = sizeBytes;
    const stripeDataBytes = dataShards * blockBytes;
    this.#fullStripes = Math.floor(sizeBytes / stripeDataBytes);
    const tail = sizeBytes - this.#fullStripes * stripeDataBytes;
    this.#tailBlockBytes = tail === 0 ? 0 : shardBytesForStripe(tail, dataShards);
    this.stripeCount = this.#fullStripes + (tail === 0 ? 0 : 1);
  }

  get shardCount(): number {
    return this.dataShards + this.parityShards;
  }

  /** Data bytes a full stripe holds. */
  get stripeDataBytes(): number {
    return this.dataShards * this.blockBytes;
  }

  /** Bytes of each block of stripe `stripe`. */
  blockBytesOf(stripe: number): number {
    this.#checkStripe(stripe);
    return stripe < this.#fullStripes ? this.blockBytes : this.#tailBlockBytes;
  }

  /** Blob bytes stripe `stripe` holds (less than k blocks for the last one). */
  dataBytesOf(stripe: number): number {
    this.#checkStripe(stripe);
    return Math.min(this.stripeDataBytes, this.sizeBytes - stripe * this.stripeDataBytes);
  }

  /** Where stripe `stripe`'s frame starts in every shard; stripeCount gives a shard's length. */
  frameOffset(stripe: number): number {
    assert(Number.isInteger(stripe) && stripe >= 0 && stripe <= this.stripeCount, `stripe ${stripe} of ${this.stripeCount}`);
    const full = Math.min(stripe, this.#fullStripes);
    const offset = full * (this.blockBytes + FRAME_CHECKSUM_BYTES);
    return stripe > this.#fullStripes ? offset + this.#tailBlockBytes + FRAME_CHECKSUM_BYTES : offset;
  }

  /** Bytes every shard of this blob holds. */
  get shardBytes(): number {
    return this.frameOffset(this.stripeCount);
  }

  /** The stripe holding blob byte `offset`. */
  stripeOf(offset: number): number {
    assert(Number.isSafeInteger(offset) && offset >= 0 && offset < this.sizeBytes, `offset ${offset} of ${this.sizeBytes}`);
    return Math.floor(offset / this.stripeDataBytes);
  }

  #checkStripe(stripe: number): void {
    assert(Number.isInteger(stripe) && stripe >= 0 && stripe < this.stripeCount, `stripe ${stripe} of ${this.stripeCount}`);
  }
}

/** The checksum that follows block `shard` of stripe `stripe`. */
export function frameChecksum(block: Uint8Array, stripe: number, shard: number): number {
  const position = Buffer.allocUnsafe(8);
  position.writeUInt32BE(stripe, 0);
  position.writeUInt32BE(shard, 4);
  return crc32c(position, crc32c(asBuffer(block)));
}

export function encodeFrameChecksum(block: Uint8Array, stripe: number, shard: number): Buffer {
  const trailer = Buffer.allocUnsafe(FRAME_CHECKSUM_BYTES);
  trailer.writeUInt32BE(frameChecksum(block, stripe, shard), 0);
  return trailer;
}

function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}
