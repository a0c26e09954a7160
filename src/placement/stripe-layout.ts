import { crc32c } from '@node-rs/crc32';
import { SHARD_BYTES_MULTIPLE, shardBytesForStripe } from '../erasure/index.ts';
import { assert } from '../util/assert.ts';

/**
 * The shard format of a blob spread over k + m shards — erasure coding, or
 * k = 1 for replicas (every "parity" shard a copy).
 *
 * The blob is cut into stripes of k · blockBytes data bytes; stripe s is cut
 * into k data blocks, which the codec extends by m parity blocks, and shard i
 * stores block i of every stripe in order, each block followed by a 4-byte
 * checksum (a frame). The last stripe may be shorter: its blocks are
 * ceil(rest / k) bytes rounded up to 8 (the codec's multiple), zero-padded.
 * So a range read needs only the frames of the stripes it covers, at offsets
 * computed from the layout alone, and each frame can be verified on its own.
 *
 * Version 1: the frames start at byte 0; each checksum is CRC32C over the
 * block continued over the stripe and shard numbers (big-endian u32 each):
 * a block read from the wrong offset or the wrong shard fails it as surely
 * as a flipped bit — but a well-formed shard of another blob passes.
 *
 * Version 2 binds every frame to its blob. The CRC32C starts from the blob's
 * identity CRC (CRC32C of format version, k, m, block size, blob size and
 * blob ID: see identityBytes) instead of from zero, then runs over the block,
 * stripe and shard numbers as in version 1 — so a frame of any other blob,
 * or of this blob under another geometry, fails its checksum, at no cost per
 * frame. And each shard starts with a header (SHARD_HEADER_*) naming its
 * blob, geometry and shard index, for a scan that must make sense of shards
 * without the metadata; reads never need it (frame offsets just start after
 * it), a deep scrub checks it.
 *
 * Changing any of this changes stored data: test/fixtures/stripe-format.json
 * (version 1) and stripe-format-v2.json pin it.
 */
export type ShardFormatVersion = 1 | 2;
/** The version new blobs are written in. */
export const SHARD_FORMAT_VERSION: ShardFormatVersion = 2;
export const SHARD_FORMAT_VERSIONS: readonly ShardFormatVersion[] = [1, 2];
export const FRAME_CHECKSUM_BYTES = 4;

/**
 * The version 2 shard header, big-endian:
 *
 *     0   4  magic "TLSH"
 *     4   1  format version (2)
 *     5   1  shard index
 *     6   1  data shards k
 *     7   1  parity shards m
 *     8   4  block bytes
 *    12   8  blob size in bytes
 *    20   1  blob ID length L, then L bytes of blob ID (ASCII)
 *  21+L   4  optional field length R, then R bytes (empty in every shard
 *            written so far; readers skip it — see docs/PLACEMENT.md)
 * 25+L+R  4  CRC32C of every header byte before it
 *
 * The header's length is recorded in the blob's location, so frame offsets
 * stay computable from the location alone whatever the optional field holds.
 */
export const SHARD_HEADER_MAGIC = Buffer.from('TLSH', 'latin1');
/** Header bytes besides the blob ID and the optional field. */
export const SHARD_HEADER_FIXED_BYTES = 29;
const BLOB_ID_BYTES_MAX = 255;
/** k and m are single bytes in the header (configurations allow far fewer). */
const SHARDS_PER_KIND_MAX = 255;

export interface StripeGeometry {
  readonly dataShards: number;
  /** Parity shards (erasure) or further copies (replicas, where dataShards is 1). */
  readonly parityShards: number;
  /** Bytes of each block of a full stripe; a multiple of 8. */
  readonly blockBytes: number;
  readonly sizeBytes: number;
}

/**
 * Which format a layout's shards are in and, from version 2 on, which blob
 * they belong to. `headerBytes` is the recorded header length (the optional
 * field included); without it, the header with an empty optional field.
 */
export type ShardFormat = { readonly version: 1 } | { readonly version: 2; readonly blobId: string; readonly headerBytes?: number };

/** Version 1, bound to no blob: what layouts built from geometry alone (tests, benchmarks) use. */
export const UNBOUND_V1_FORMAT: ShardFormat = Object.freeze({ version: 1 });

/** What a shard's header says it is. */
export interface ShardHeader extends StripeGeometry {
  readonly formatVersion: ShardFormatVersion;
  readonly shard: number;
  readonly blobId: string;
  /** The optional field's bytes (empty so far). */
  readonly optional: Buffer;
  /** Bytes of the whole header. */
  readonly headerBytes: number;
}

export class ShardHeaderError extends Error {
  override name = 'ShardHeaderError';
}

export class StripeLayout implements StripeGeometry {
  readonly dataShards: number;
  readonly parityShards: number;
  readonly blockBytes: number;
  readonly sizeBytes: number;
  readonly stripeCount: number;
  readonly formatVersion: ShardFormatVersion;
  /** The blob the shards belong to (version 2 on). */
  readonly blobId: string | undefined;
  /** Bytes before the first frame of every shard: the header (0 in version 1). */
  readonly headerBytes: number;
  readonly #fullStripes: number;
  readonly #tailBlockBytes: number;
  /** Where every frame's CRC32C starts: the blob's identity CRC (0, plain CRC32C, in version 1). */
  readonly #seed: number;

  constructor(geometry: StripeGeometry, format: ShardFormat = UNBOUND_V1_FORMAT) {
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
    this.formatVersion = format.version;
    if (format.version === 1) {
      this.blobId = undefined;
      this.headerBytes = 0;
      this.#seed = 0;
    } else {
      assert(dataShards <= SHARDS_PER_KIND_MAX && parityShards <= SHARDS_PER_KIND_MAX && blockBytes <= 0xffff_ffff, 'geometry fits the shard header');
      assert(format.blobId.length >= 1 && format.blobId.length <= BLOB_ID_BYTES_MAX && /^[\x21-\x7e]+$/.test(format.blobId), `blob ID ${format.blobId}`);
      const minimal = SHARD_HEADER_FIXED_BYTES + format.blobId.length;
      const headerBytes = format.headerBytes ?? minimal;
      assert(Number.isInteger(headerBytes) && headerBytes >= minimal, `header of ${headerBytes} bytes for blob ${format.blobId}`);
      this.blobId = format.blobId;
      this.headerBytes = headerBytes;
      this.#seed = crc32c(identityBytes(geometry, format.blobId));
    }
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

  /** Where stripe `stripe`'s frame starts in every shard (after the header); stripeCount gives a shard's length. */
  frameOffset(stripe: number): number {
    assert(Number.isInteger(stripe) && stripe >= 0 && stripe <= this.stripeCount, `stripe ${stripe} of ${this.stripeCount}`);
    const full = Math.min(stripe, this.#fullStripes);
    const offset = this.headerBytes + full * (this.blockBytes + FRAME_CHECKSUM_BYTES);
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

  /** The checksum that follows block `shard` of stripe `stripe`. */
  frameChecksum(block: Uint8Array, stripe: number, shard: number): number {
    const position = Buffer.allocUnsafe(8);
    position.writeUInt32BE(stripe, 0);
    position.writeUInt32BE(shard, 4);
    return crc32c(position, crc32c(asBuffer(block), this.#seed));
  }

  encodeFrameChecksum(block: Uint8Array, stripe: number, shard: number): Buffer {
    const trailer = Buffer.allocUnsafe(FRAME_CHECKSUM_BYTES);
    trailer.writeUInt32BE(this.frameChecksum(block, stripe, shard), 0);
    return trailer;
  }

  /**
   * The bytes shard `shard` starts with: its header (empty in version 1).
   * Written with an empty optional field; a layout recorded with a longer
   * header cannot write one (its optional field is not known here).
   */
  shardHeader(shard: number): Buffer {
    assert(Number.isInteger(shard) && shard >= 0 && shard < this.shardCount, `shard ${shard} of ${this.shardCount}`);
    if (this.formatVersion === 1) return Buffer.alloc(0);
    const blobId = this.blobId!;
    assert(this.headerBytes === SHARD_HEADER_FIXED_BYTES + blobId.length, `blob ${blobId}: rewriting a header with an optional field is not supported`);
    const header = Buffer.alloc(this.headerBytes);
    SHARD_HEADER_MAGIC.copy(header, 0);
    header.writeUInt8(this.formatVersion, 4);
    header.writeUInt8(shard, 5);
    header.writeUInt8(this.dataShards, 6);
    header.writeUInt8(this.parityShards, 7);
    header.writeUInt32BE(this.blockBytes, 8);
    header.writeBigUInt64BE(BigInt(this.sizeBytes), 12);
    header.writeUInt8(blobId.length, 20);
    header.write(blobId, 21, 'latin1');
    header.writeUInt32BE(0, 21 + blobId.length);
    header.writeUInt32BE(crc32c(header.subarray(0, this.headerBytes - 4)), this.headerBytes - 4);
    return header;
  }

  /**
   * Checks the first headerBytes of shard `shard` against this layout:
   * undefined when the header is this shard's; else why not — `foreign` when
   * it is a sound header of another blob, shard or geometry.
   */
  checkShardHeader(bytes: Uint8Array, shard: number): { reason: 'foreign' | 'corrupt'; detail: string } | undefined {
    if (this.formatVersion === 1) return undefined;
    let header: ShardHeader;
    try {
      header = parseShardHeader(bytes);
    } catch (error) {
      return { reason: 'corrupt', detail: error instanceof Error ? error.message : String(error) };
    }
    const mine = header.blobId === this.blobId && header.shard === shard && header.formatVersion === this.formatVersion;
    const sameGeometry = header.dataShards === this.dataShards && header.parityShards === this.parityShards && header.blockBytes === this.blockBytes && header.sizeBytes === this.sizeBytes;
    if (mine && sameGeometry && header.headerBytes === this.headerBytes) return undefined;
    return { reason: 'foreign', detail: `it holds ${describeHeader(header)}` };
  }

  #checkStripe(stripe: number): void {
    assert(Number.isInteger(stripe) && stripe >= 0 && stripe < this.stripeCount, `stripe ${stripe} of ${this.stripeCount}`);
  }
}

/**
 * Reads a version 2 shard header from the start of a shard (`bytes` may run
 * on into the frames). Throws ShardHeaderError when the bytes are not a
 * sound header, or end before it does.
 */
export function parseShardHeader(bytes: Uint8Array): ShardHeader {
  const buffer = asBuffer(bytes);
  const need = (length: number): void => {
    if (buffer.length < length) throw new ShardHeaderError(`shard header cut short: ${buffer.length} of at least ${length} bytes`);
  };
  need(21);
  if (!buffer.subarray(0, 4).equals(SHARD_HEADER_MAGIC)) throw new ShardHeaderError('no shard header (wrong magic)');
  const formatVersion = buffer.readUInt8(4);
  if (formatVersion !== 2) throw new ShardHeaderError(`shard header of unknown format version ${formatVersion}`);
  const idBytes = buffer.readUInt8(20);
  need(25 + idBytes);
  const optionalBytes = buffer.readUInt32BE(21 + idBytes);
  const headerBytes = SHARD_HEADER_FIXED_BYTES + idBytes + optionalBytes;
  need(headerBytes);
  if (crc32c(buffer.subarray(0, headerBytes - 4)) !== buffer.readUInt32BE(headerBytes - 4)) throw new ShardHeaderError('shard header checksum mismatch');
  const sizeBytes = buffer.readBigUInt64BE(12);
  if (sizeBytes > BigInt(Number.MAX_SAFE_INTEGER)) throw new ShardHeaderError(`shard header of a blob of ${sizeBytes} bytes`);
  return {
    formatVersion,
    shard: buffer.readUInt8(5),
    dataShards: buffer.readUInt8(6),
    parityShards: buffer.readUInt8(7),
    blockBytes: buffer.readUInt32BE(8),
    sizeBytes: Number(sizeBytes),
    blobId: buffer.toString('latin1', 21, 21 + idBytes),
    optional: Buffer.from(buffer.subarray(25 + idBytes, 25 + idBytes + optionalBytes)),
    headerBytes,
  };
}

export function describeHeader(header: ShardHeader): string {
  return `shard ${header.shard} of blob ${header.blobId} (${header.dataShards}+${header.parityShards}, ${header.blockBytes}-byte blocks, ${header.sizeBytes} bytes)`;
}

/** What a version 2 frame checksum is seeded with: everything that makes a blob's shards its own. */
function identityBytes(geometry: StripeGeometry, blobId: string): Buffer {
  const bytes = Buffer.alloc(16 + blobId.length);
  bytes.writeUInt8(2, 0);
  bytes.writeUInt8(geometry.dataShards, 1);
  bytes.writeUInt8(geometry.parityShards, 2);
  bytes.writeUInt32BE(geometry.blockBytes, 3);
  bytes.writeBigUInt64BE(BigInt(geometry.sizeBytes), 7);
  bytes.writeUInt8(blobId.length, 15);
  bytes.write(blobId, 16, 'latin1');
  return bytes;
}

function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}
