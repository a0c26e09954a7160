/**
 * Writes test/fixtures/erasure-kat.json, the known-answer vectors that pin
 * the erasure shard format: for fixed data, the SHA-256 (and first 16 bytes)
 * of every parity shard. Run once, by hand, when the format is meant to
 * change (it never should: stored stripes depend on it):
 *   node --import tsx scripts/generate-erasure-kat.ts
 * Needs the native addon, and checks the portable codec agrees before writing.
 * The test only reads the file.
 */
import { createHash } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { allocateShards, createErasureCodec, shardBytesForStripe } from '../src/erasure/index.ts';

const OUTPUT = new URL('../test/fixtures/erasure-kat.json', import.meta.url);
const GEOMETRIES: readonly (readonly [number, number])[] = [[1, 1], [2, 1], [3, 2], [4, 2], [6, 3], [8, 4], [12, 4], [16, 4], [24, 6]];
const STRIPE_BYTES = 1024 * 1024;
const SMALL_SHARD_BYTES = 392;
const PATTERN = 'byte g of the data region (data shard j, byte i: g = j * shardBytes + i) is ((g * 31 + 7) ^ (imul(g, 0x9E3779B1) >>> 24)) & 255';

/** Must stay identical to katByte() in test/erasure-codec.test.ts (the fixture's `pattern`). */
function katByte(g: number): number {
  return ((g * 31 + 7) ^ (Math.imul(g, 0x9e3779b1) >>> 24)) & 255;
}

async function parityOf(implementation: 'native' | 'portable', k: number, m: number, shardBytes: number): Promise<Uint8Array[]> {
  const codec = createErasureCodec(k, m, { implementation });
  const { data, parity } = allocateShards(k, m, shardBytes);
  data.forEach((shard, j) => shard.forEach((_, i) => (shard[i] = katByte(j * shardBytes + i))));
  await codec.encode(data, parity);
  return parity;
}

const cases = [];
for (const [k, m] of GEOMETRIES) {
  for (const shardBytes of [SMALL_SHARD_BYTES, shardBytesForStripe(STRIPE_BYTES, k)]) {
    const native = await parityOf('native', k, m, shardBytes);
    const portable = await parityOf('portable', k, m, shardBytes);
    native.forEach((shard, r) => {
      if (Buffer.compare(shard, portable[r]!) !== 0) throw new Error(`portable parity ${r} differs from native for ${k}+${m} at ${shardBytes} bytes`);
    });
    cases.push({
      dataShards: k,
      parityShards: m,
      shardBytes,
      parity: native.map((shard) => ({
        sha256: createHash('sha256').update(shard).digest('hex'),
        head: Buffer.from(shard.subarray(0, 16)).toString('hex'),
      })),
    });
  }
}
const fixture = {
  description: 'Erasure shard format known answers: SHA-256 and first 16 bytes of each parity shard for fixed data. Written by scripts/generate-erasure-kat.ts from @ronomon/reed-solomon 6.0.0, portable codec checked equal.',
  pattern: PATTERN,
  cases,
};
writeFileSync(OUTPUT, `${JSON.stringify(fixture, null, 2)}\n`);
console.log(`wrote ${cases.length} cases to ${OUTPUT.pathname}`);
