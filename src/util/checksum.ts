/**
 * S3 additional checksums (x-amz-checksum-*): streaming hashers, header
 * names, value validation and the two multipart flavours (COMPOSITE and
 * FULL_OBJECT).
 *
 * Implementations were chosen by measured throughput (bench/checksum.bench.ts):
 * CRC32/CRC32C from @node-rs/crc32 (native, SIMD), CRC64/NVME from hash-wasm
 * (WebAssembly, ~3x the pure-JS @aws-sdk/crc64-nvme), SHA from node:crypto.
 *
 * Every digest is the big-endian byte string S3 base64-encodes on the wire.
 */
import { createHash } from 'node:crypto';
import { crc32, crc32c } from '@node-rs/crc32';
import { createCRC64, type IHasher } from 'hash-wasm';
import { assert } from './assert.ts';
import { createCrcCombiner, type CrcCombiner } from './crc-combine.ts';

export type ChecksumAlgorithm = 'CRC32' | 'CRC32C' | 'CRC64NVME' | 'SHA1' | 'SHA256';
export type CrcAlgorithm = 'CRC32' | 'CRC32C' | 'CRC64NVME';
export type ChecksumType = 'FULL_OBJECT' | 'COMPOSITE';

export const CHECKSUM_ALGORITHMS: readonly ChecksumAlgorithm[] = Object.freeze([
  'CRC32',
  'CRC32C',
  'CRC64NVME',
  'SHA1',
  'SHA256',
]);

/** Streaming hasher: any number of update() calls, then digest() exactly once. */
export interface ChecksumHasher {
  update(chunk: Buffer): void;
  digest(): Buffer;
}

const DIGEST_BYTES: Readonly<Record<ChecksumAlgorithm, number>> = {
  CRC32: 4,
  CRC32C: 4,
  CRC64NVME: 8,
  SHA1: 20,
  SHA256: 32,
};

/** CRC-64/NVME polynomial 0xAD93D23594C93659, reflected, as hash-wasm wants it. */
export const CRC64_NVME_POLY_HEX = '9a6c9329ac4bc9b5';

// Reflected polynomials; all three CRCs have init == xorout == ~0, which the
// combine identity relies on.
const COMBINERS: Readonly<Record<CrcAlgorithm, CrcCombiner>> = {
  CRC32: createCrcCombiner(0xedb88320n, 32),
  CRC32C: createCrcCombiner(0x82f63b78n, 32),
  CRC64NVME: createCrcCombiner(0x9a6c9329ac4bc9b5n, 64),
};

export function parseChecksumAlgorithm(value: string): ChecksumAlgorithm | undefined {
  const upper = value.toUpperCase();
  return (CHECKSUM_ALGORITHMS as readonly string[]).includes(upper)
    ? (upper as ChecksumAlgorithm)
    : undefined;
}

export function checksumHeaderName(algorithm: ChecksumAlgorithm): string {
  return `x-amz-checksum-${algorithm.toLowerCase()}`;
}

export function checksumDigestBytes(algorithm: ChecksumAlgorithm): number {
  return DIGEST_BYTES[algorithm];
}

export function supportsFullObject(algorithm: ChecksumAlgorithm): algorithm is CrcAlgorithm {
  return algorithm === 'CRC32' || algorithm === 'CRC32C' || algorithm === 'CRC64NVME';
}

/**
 * Strict: canonical padded standard base64 only. Buffer.from(…, 'base64')
 * silently skips junk and accepts base64url, so the value must survive a
 * decode/encode round trip unchanged.
 */
export function isValidChecksumValue(algorithm: ChecksumAlgorithm, base64: string): boolean {
  const bytes = Buffer.from(base64, 'base64');
  return bytes.length === DIGEST_BYTES[algorithm] && bytes.toString('base64') === base64;
}

export function createChecksumHasher(algorithm: ChecksumAlgorithm): ChecksumHasher {
  switch (algorithm) {
    case 'CRC32':
      return onceOnly(crc32Hasher(crc32));
    case 'CRC32C':
      return onceOnly(crc32Hasher(crc32c));
    case 'CRC64NVME':
      return onceOnly(crc64NvmeHasher());
    case 'SHA1':
      return onceOnly(nodeHasher('sha1'));
    case 'SHA256':
      return onceOnly(nodeHasher('sha256'));
  }
}

/** The checksum of a whole buffer in one call. */
export function computeChecksum(algorithm: ChecksumAlgorithm, data: Buffer): Buffer {
  const hasher = createChecksumHasher(algorithm);
  hasher.update(data);
  return hasher.digest();
}

/**
 * Multipart COMPOSITE checksum: the algorithm applied to the concatenated
 * binary part digests. Returned raw; S3 shows it as base64 + '-' + partCount.
 */
export function compositeChecksum(algorithm: ChecksumAlgorithm, partDigests: readonly Buffer[]): Buffer {
  const hasher = createChecksumHasher(algorithm);
  for (const digest of partDigests) {
    assertDigestLength(algorithm, digest);
    hasher.update(digest);
  }
  return hasher.digest();
}

/**
 * Multipart FULL_OBJECT checksum: the CRC of the whole object from each
 * part's CRC and length, O(parts · log size), without re-reading data.
 * Zero parts yields the CRC of the empty object.
 */
export function combineCrc(
  algorithm: CrcAlgorithm,
  parts: readonly { digest: Buffer; sizeBytes: number }[],
): Buffer {
  const combiner = COMBINERS[algorithm];
  let crc = 0n; // CRC of the empty string when init == xorout
  for (const part of parts) {
    assertDigestLength(algorithm, part.digest);
    crc = combiner.combine(crc, readDigest(part.digest), part.sizeBytes);
  }
  return writeDigest(crc, DIGEST_BYTES[algorithm]);
}

function assertDigestLength(algorithm: ChecksumAlgorithm, digest: Buffer): void {
  // Part digests come from our own metadata, already validated on upload, so
  // a wrong length is a bug rather than a client error.
  assert(
    digest.length === DIGEST_BYTES[algorithm],
    `${algorithm} digest must be ${DIGEST_BYTES[algorithm]} bytes, got ${digest.length}`,
  );
}

function readDigest(digest: Buffer): bigint {
  return digest.length === 8 ? digest.readBigUInt64BE(0) : BigInt(digest.readUInt32BE(0));
}

function writeDigest(value: bigint, bytes: number): Buffer {
  const out = Buffer.alloc(bytes);
  if (bytes === 8) out.writeBigUInt64BE(value);
  else out.writeUInt32BE(Number(value));
  return out;
}

/** Turns a second digest() or an update() after digest() into a loud bug. */
function onceOnly(inner: ChecksumHasher): ChecksumHasher {
  let done = false;
  return {
    update(chunk) {
      assert(!done, 'checksum update() after digest()');
      inner.update(chunk);
    },
    digest() {
      assert(!done, 'checksum digest() called twice');
      done = true;
      return inner.digest();
    },
  };
}

type Crc32Fn = (input: Uint8Array, initialState?: number) => number;

/** @node-rs/crc32 takes the previous finalised CRC as its running state. */
function crc32Hasher(fn: Crc32Fn): ChecksumHasher {
  let state = 0;
  return {
    update(chunk) {
      state = fn(chunk, state);
    },
    digest() {
      return writeDigest(BigInt(state >>> 0), 4);
    },
  };
}

function nodeHasher(name: 'sha1' | 'sha256'): ChecksumHasher {
  const hash = createHash(name);
  return {
    update(chunk) {
      hash.update(chunk);
    },
    digest() {
      return hash.digest();
    },
  };
}

// hash-wasm only creates instances asynchronously, while this API is
// synchronous; so one instance is created at load and shared. Each hasher
// keeps its own 8-byte CRC state and the instance switches state only when a
// different hasher touches it (save/load), which is rare for sequential
// streams and cheap when it happens.
const crc64Engine: IHasher = await createCRC64(CRC64_NVME_POLY_HEX);

interface Crc64Slot {
  saved: Uint8Array | undefined;
}

let crc64Owner: Crc64Slot | undefined;

function acquireCrc64(slot: Crc64Slot): void {
  if (crc64Owner === slot) return;
  if (crc64Owner !== undefined) crc64Owner.saved = crc64Engine.save();
  if (slot.saved === undefined) crc64Engine.init();
  else crc64Engine.load(slot.saved);
  crc64Owner = slot;
}

function crc64NvmeHasher(): ChecksumHasher {
  const slot: Crc64Slot = { saved: undefined };
  return {
    update(chunk) {
      acquireCrc64(slot);
      crc64Engine.update(chunk);
    },
    digest() {
      acquireCrc64(slot);
      // digest() ends the engine's session, so nobody owns it afterwards.
      crc64Owner = undefined;
      return Buffer.from(crc64Engine.digest('binary'));
    },
  };
}
