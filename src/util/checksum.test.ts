import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes, randomInt } from 'node:crypto';
import {
  CHECKSUM_ALGORITHMS,
  checksumDigestBytes,
  checksumHeaderName,
  combineCrc,
  compositeChecksum,
  computeChecksum,
  createChecksumHasher,
  isValidChecksumValue,
  parseChecksumAlgorithm,
  supportsFullObject,
  type ChecksumAlgorithm,
  type CrcAlgorithm,
} from './checksum.ts';
import { AssertionError } from './assert.ts';

const CRC_ALGORITHMS: readonly CrcAlgorithm[] = ['CRC32', 'CRC32C', 'CRC64NVME'];

// Catalogue check values (reveng CRC catalogue) and FIPS 180 digests, in the
// big-endian byte order S3 puts on the wire.
const VECTORS: Record<ChecksumAlgorithm, { empty: string; check: string }> = {
  CRC32: { empty: '00000000', check: 'cbf43926' },
  CRC32C: { empty: '00000000', check: 'e3069283' },
  CRC64NVME: { empty: '0000000000000000', check: 'ae8b14860a799888' },
  SHA1: {
    empty: 'da39a3ee5e6b4b0d3255bfef95601890afd80709',
    check: 'f7c3bc1d808e04732adf679965ccc34ca7ae3441',
  },
  SHA256: {
    empty: 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855',
    check: '15e2b0d3c33891ebb0f1ef609ec419420c20e320ce94c65fbc8c3312448eb225',
  },
};

const hex = (algorithm: ChecksumAlgorithm, data: string | Buffer): string =>
  computeChecksum(algorithm, Buffer.from(data)).toString('hex');

/** Splits data into random chunks, empty and 1-byte ones included. */
function randomChunks(data: Buffer): Buffer[] {
  const chunks: Buffer[] = [];
  let offset = 0;
  while (offset < data.length) {
    const roll = randomInt(10);
    const size = roll === 0 ? 0 : roll === 1 ? 1 : randomInt(1, 70_000);
    chunks.push(data.subarray(offset, offset + size));
    offset += size;
  }
  return chunks;
}

test('known-answer vectors: empty input and "123456789"', () => {
  for (const algorithm of CHECKSUM_ALGORITHMS) {
    assert.equal(hex(algorithm, ''), VECTORS[algorithm].empty, `${algorithm} empty`);
    assert.equal(hex(algorithm, '123456789'), VECTORS[algorithm].check, `${algorithm} check`);
  }
});

test('CRC32 of "hello world" is DUoRhQ== as S3 shows it', () => {
  assert.equal(computeChecksum('CRC32', Buffer.from('hello world')).toString('base64'), 'DUoRhQ==');
});

test('a hasher with no update() digests the empty input', () => {
  for (const algorithm of CHECKSUM_ALGORITHMS) {
    assert.equal(createChecksumHasher(algorithm).digest().toString('hex'), VECTORS[algorithm].empty);
  }
});

test('digest lengths match checksumDigestBytes', () => {
  const expected = { CRC32: 4, CRC32C: 4, CRC64NVME: 8, SHA1: 20, SHA256: 32 };
  for (const algorithm of CHECKSUM_ALGORITHMS) {
    assert.equal(checksumDigestBytes(algorithm), expected[algorithm]);
    assert.equal(computeChecksum(algorithm, randomBytes(100)).length, expected[algorithm]);
  }
});

test('streaming in random chunk splits equals one-shot', () => {
  const data = randomBytes(1_000_003);
  for (const algorithm of CHECKSUM_ALGORITHMS) {
    const oneShot = computeChecksum(algorithm, data);
    for (let round = 0; round < 3; round++) {
      const hasher = createChecksumHasher(algorithm);
      for (const chunk of randomChunks(data)) hasher.update(chunk);
      assert.deepEqual(hasher.digest(), oneShot, `${algorithm} round ${round}`);
    }
  }
});

test('interleaved CRC64NVME hashers do not disturb each other', () => {
  // They share one WebAssembly instance, so this guards the state switching.
  const inputs = [randomBytes(200_000), randomBytes(150_001), randomBytes(7)];
  const hashers = inputs.map(() => createChecksumHasher('CRC64NVME'));
  const chunkLists = inputs.map(randomChunks);
  const longest = Math.max(...chunkLists.map((c) => c.length));
  for (let i = 0; i < longest; i++) {
    chunkLists.forEach((chunks, h) => {
      const chunk = chunks[i];
      if (chunk) hashers[h]!.update(chunk);
    });
  }
  // Digest in a different order from creation, with a fresh hasher in between.
  const digests = [2, 0, 1].map((h) => {
    assert.equal(computeChecksum('CRC64NVME', Buffer.from('123456789')).toString('hex'), VECTORS.CRC64NVME.check);
    return { h, digest: hashers[h]!.digest() };
  });
  for (const { h, digest } of digests) {
    assert.deepEqual(digest, computeChecksum('CRC64NVME', inputs[h]!), `hasher ${h}`);
  }
});

test('digest() twice or update() after digest() is a bug', () => {
  for (const algorithm of CHECKSUM_ALGORITHMS) {
    const hasher = createChecksumHasher(algorithm);
    hasher.digest();
    assert.throws(() => hasher.digest(), AssertionError);
    assert.throws(() => hasher.update(Buffer.from('x')), AssertionError);
  }
});

test('parseChecksumAlgorithm is case-insensitive and rejects unknown names', () => {
  assert.equal(parseChecksumAlgorithm('crc32'), 'CRC32');
  assert.equal(parseChecksumAlgorithm('Crc32c'), 'CRC32C');
  assert.equal(parseChecksumAlgorithm('CRC64NVME'), 'CRC64NVME');
  assert.equal(parseChecksumAlgorithm('crc64nvme'), 'CRC64NVME');
  assert.equal(parseChecksumAlgorithm('sha1'), 'SHA1');
  assert.equal(parseChecksumAlgorithm('sha256'), 'SHA256');
  for (const bad of ['', 'md5', 'CRC64', 'SHA-256', ' crc32', 'crc32 ']) {
    assert.equal(parseChecksumAlgorithm(bad), undefined, JSON.stringify(bad));
  }
});

test('checksumHeaderName', () => {
  assert.equal(checksumHeaderName('CRC64NVME'), 'x-amz-checksum-crc64nvme');
  assert.equal(checksumHeaderName('CRC32C'), 'x-amz-checksum-crc32c');
  assert.equal(checksumHeaderName('SHA256'), 'x-amz-checksum-sha256');
});

test('supportsFullObject is true for the CRCs only', () => {
  assert.deepEqual(CHECKSUM_ALGORITHMS.filter(supportsFullObject), ['CRC32', 'CRC32C', 'CRC64NVME']);
});

test('isValidChecksumValue accepts exact-length canonical base64', () => {
  for (const algorithm of CHECKSUM_ALGORITHMS) {
    const value = computeChecksum(algorithm, randomBytes(10)).toString('base64');
    assert.ok(isValidChecksumValue(algorithm, value), `${algorithm} ${value}`);
  }
  assert.ok(isValidChecksumValue('CRC32', 'DUoRhQ=='));
});

test('isValidChecksumValue rejects wrong lengths and non-base64', () => {
  const cases: [ChecksumAlgorithm, string][] = [
    ['CRC64NVME', 'DUoRhQ=='], // 4 bytes, needs 8
    ['CRC32', 'rosUhgp5mIg='], // 8 bytes, needs 4
    ['CRC32', ''],
    ['CRC32', 'DUoRhQ'], // missing padding
    ['CRC32', 'DUoRhQ='],
    ['CRC32', 'DUoRhQ==='],
    ['CRC32', 'DUoR hQ=='],
    ['CRC32', ' DUoRhQ=='],
    ['CRC32', 'DUoRhQ==\n'],
    ['CRC32', 'DUoRhR=='], // non-zero padding bits: not canonical
    ['CRC32', 'DUo*hQ=='],
    ['CRC32', '-_-_-w=='], // base64url alphabet
    ['SHA256', computeChecksum('SHA1', Buffer.alloc(0)).toString('base64')],
    ['SHA1', computeChecksum('SHA256', Buffer.alloc(0)).toString('base64')],
    ['SHA256', computeChecksum('SHA256', Buffer.alloc(0)).toString('hex')],
  ];
  for (const [algorithm, value] of cases) {
    assert.equal(isValidChecksumValue(algorithm, value), false, `${algorithm} ${JSON.stringify(value)}`);
  }
});

test('compositeChecksum hashes the concatenated binary part digests', () => {
  const parts = [Buffer.from('part one'), Buffer.from('part two'), randomBytes(5000)];
  // Hand computation with node:crypto directly, independent of the hasher.
  const sha256Parts = parts.map((p) => createHash('sha256').update(p).digest());
  const expected = createHash('sha256').update(Buffer.concat(sha256Parts)).digest();
  assert.deepEqual(compositeChecksum('SHA256', sha256Parts), expected);

  // CRC32 of two known digests: cbf43926 ‖ 0d4a1185 as 8 raw bytes.
  const crcParts = [Buffer.from('cbf43926', 'hex'), Buffer.from('0d4a1185', 'hex')];
  const concat = Buffer.from('cbf439260d4a1185', 'hex');
  assert.deepEqual(compositeChecksum('CRC32', crcParts), computeChecksum('CRC32', concat));

  for (const algorithm of CHECKSUM_ALGORITHMS) {
    const digests = parts.map((p) => computeChecksum(algorithm, p));
    assert.deepEqual(
      compositeChecksum(algorithm, digests),
      computeChecksum(algorithm, Buffer.concat(digests)),
      algorithm,
    );
  }
});

test('compositeChecksum rejects a part digest of the wrong length', () => {
  assert.throws(() => compositeChecksum('CRC32', [Buffer.alloc(8)]), AssertionError);
});

test('combineCrc over random splits of random data equals the CRC of the whole', () => {
  const data = randomBytes(6 * 1024 * 1024 + 17);
  for (const algorithm of CRC_ALGORITHMS) {
    const whole = computeChecksum(algorithm, data);
    for (let round = 0; round < 3; round++) {
      const parts = randomChunks(data).map((chunk) => ({
        digest: computeChecksum(algorithm, chunk),
        sizeBytes: chunk.length,
      }));
      assert.deepEqual(combineCrc(algorithm, parts), whole, `${algorithm} round ${round}, ${parts.length} parts`);
    }
  }
});

test('combineCrc with multi-MiB parts, empty parts and 1-byte parts', () => {
  const sizes = [0, 5 * 1024 * 1024, 1, 0, 1, 3 * 1024 * 1024 + 1, 0];
  const data = randomBytes(sizes.reduce((a, b) => a + b, 0));
  for (const algorithm of CRC_ALGORITHMS) {
    let offset = 0;
    const parts = sizes.map((size) => {
      const chunk = data.subarray(offset, (offset += size));
      return { digest: computeChecksum(algorithm, chunk), sizeBytes: size };
    });
    assert.deepEqual(combineCrc(algorithm, parts), computeChecksum(algorithm, data), algorithm);
  }
});

test('combineCrc of no parts is the CRC of the empty object; one part is itself', () => {
  for (const algorithm of CRC_ALGORITHMS) {
    assert.deepEqual(combineCrc(algorithm, []), computeChecksum(algorithm, Buffer.alloc(0)));
    const digest = computeChecksum(algorithm, Buffer.from('123456789'));
    assert.deepEqual(combineCrc(algorithm, [{ digest, sizeBytes: 9 }]), digest);
  }
});

test('combineCrc of 10 000 parts is fast (no data re-read)', () => {
  for (const algorithm of CRC_ALGORITHMS) {
    const parts = Array.from({ length: 10_000 }, () => ({
      digest: randomBytes(checksumDigestBytes(algorithm)),
      sizeBytes: 5 * 1024 ** 3, // 5 GiB each: lengths well past 2^32
    }));
    const start = performance.now();
    combineCrc(algorithm, parts);
    const ms = performance.now() - start;
    assert.ok(ms < 2000, `${algorithm} took ${ms.toFixed(0)} ms`);
  }
});

test('combineCrc rejects bad digests and sizes', () => {
  assert.throws(() => combineCrc('CRC64NVME', [{ digest: Buffer.alloc(4), sizeBytes: 1 }]), AssertionError);
  assert.throws(() => combineCrc('CRC32', [{ digest: Buffer.alloc(4), sizeBytes: -1 }]), RangeError);
});
