import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createCrcCombiner } from './crc-combine.ts';

/**
 * Bit-at-a-time reflected CRC with init == xorout == ~0: slow, but written
 * straight from the definition, so it checks the combiner independently of
 * the libraries checksum.ts uses.
 */
function referenceCrc(data: Uint8Array, reflectedPoly: bigint, width: 32 | 64): bigint {
  const mask = (1n << BigInt(width)) - 1n;
  let reg = mask;
  for (const byte of data) {
    reg ^= BigInt(byte);
    for (let i = 0; i < 8; i++) reg = reg & 1n ? (reg >> 1n) ^ reflectedPoly : reg >> 1n;
  }
  return reg ^ mask;
}

const SPECS = [
  { name: 'CRC-32', poly: 0xedb88320n, width: 32, check: 0xcbf43926n },
  { name: 'CRC-32C', poly: 0x82f63b78n, width: 32, check: 0xe3069283n },
  { name: 'CRC-64/NVME', poly: 0x9a6c9329ac4bc9b5n, width: 64, check: 0xae8b14860a799888n },
] as const;

for (const spec of SPECS) {
  const combiner = createCrcCombiner(spec.poly, spec.width);
  const crc = (data: Uint8Array): bigint => referenceCrc(data, spec.poly, spec.width);

  test(`${spec.name}: reference CRC matches the catalogue check value`, () => {
    assert.equal(crc(Buffer.from('123456789')), spec.check);
    assert.equal(crc(Buffer.alloc(0)), 0n);
  });

  test(`${spec.name}: combine(A, B) equals the CRC of A‖B for every split`, () => {
    const data = randomBytes(300);
    for (let cut = 0; cut <= data.length; cut++) {
      const a = data.subarray(0, cut);
      const b = data.subarray(cut);
      assert.equal(combiner.combine(crc(a), crc(b), b.length), crc(data), `cut at ${cut}`);
    }
  });

  test(`${spec.name}: combine is consistent across lengths beyond 2^32`, () => {
    // Associativity needs x^(8b)·x^(8c) == x^(8(b+c)), which exercises the
    // square-and-multiply for lengths that overflow 32-bit integers.
    const mask = (1n << BigInt(spec.width)) - 1n;
    const rand = (): bigint => BigInt(`0x${randomBytes(8).toString('hex')}`) & mask;
    const lengths = [2 ** 32, 2 ** 32 + 1, 2 ** 40 + 12345, 2 ** 53 - 1, 5 * 2 ** 30, 7];
    for (const lenB of lengths) {
      for (const lenC of lengths) {
        if (lenB + lenC > Number.MAX_SAFE_INTEGER) continue;
        const [a, b, c] = [rand(), rand(), rand()];
        const left = combiner.combine(combiner.combine(a, b, lenB), c, lenC);
        const right = combiner.combine(a, combiner.combine(b, c, lenC), lenB + lenC);
        assert.equal(left, right, `lenB=${lenB} lenC=${lenC}`);
      }
    }
  });

  test(`${spec.name}: 4 GiB + 1 MiB of zeros, by doubling vs by 4097 sequential parts`, () => {
    const mib = 2 ** 20;
    const zerosMib = crcOfZeros(mib);
    let doubled = zerosMib;
    for (let len = mib; len < 2 ** 32; len *= 2) doubled = combiner.combine(doubled, doubled, len);
    const viaLargePart = combiner.combine(zerosMib, doubled, 2 ** 32);

    let sequential = 0n;
    for (let i = 0; i < 4097; i++) sequential = combiner.combine(sequential, zerosMib, mib);
    assert.equal(viaLargePart, sequential);
  });

  /** The reference is too slow for 1 MiB, so build it from 1 KiB by combining. */
  function crcOfZeros(length: number): bigint {
    const kib = crc(new Uint8Array(1024));
    let result = 0n;
    for (let done = 0; done < length; done += 1024) result = combiner.combine(result, kib, 1024);
    return result;
  }

  test(`${spec.name}: rejects negative or fractional lengths`, () => {
    assert.throws(() => combiner.combine(0n, 0n, -1), RangeError);
    assert.throws(() => combiner.combine(0n, 0n, 1.5), RangeError);
  });
}
