/**
 * The Reed–Solomon codec (src/erasure). Goal: any m lost shards of a stripe
 * come back bit-exact, and the shard format never changes silently.
 * Method:
 * - one conformance suite run against each implementation (native addon,
 *   portable TypeScript): for seeded random data, several shard lengths and
 *   buffer layouts, encode, then for *every* set of up to m missing shards
 *   (filled with garbage first) reconstruct and compare with the original;
 * - the two implementations against each other: same bit matrices for all
 *   144 geometries, same parity bytes, each rebuilding the other's stripes;
 * - known answers from test/fixtures/erasure-kat.json (written once by
 *   scripts/generate-erasure-kat.ts), checked against both;
 * - invalid calls: too few shards, wrong counts and lengths, overlaps.
 * The native suite skips, saying why, when the addon did not load; with
 * TALUS_REQUIRE_NATIVE_RS=1 a missing addon fails the run instead.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { describe, test } from 'node:test';
import {
  allocateShards,
  createErasureCodec,
  DATA_SHARDS_MAX,
  ErasureCodecError,
  nativeErasureStatus,
  PARITY_SHARDS_MAX,
  SHARD_BYTES_MAX,
  shardBytesForStripe,
  type ErasureCodec,
  type ErasureImplementation,
} from '../src/erasure/index.ts';
import { buildCodingMatrices } from '../src/erasure/matrix.ts';
import { loadNativeBinding } from '../src/erasure/native-binding.ts';
import { PortableErasureCodec, REBUILD_PLAN_CACHE_ENTRIES_MAX } from '../src/erasure/portable-codec.ts';

const native = nativeErasureStatus();
const NATIVE_SKIP = native.available ? false : `native Reed–Solomon addon unavailable (${native.reason}); set TALUS_REQUIRE_NATIVE_RS=1 to make this fail`;
const IMPLEMENTATIONS: readonly { name: ErasureImplementation; skip: string | false }[] = [
  { name: 'portable', skip: false },
  { name: 'native', skip: NATIVE_SKIP },
];

type Geometry = readonly [dataShards: number, parityShards: number];
/** Every missing set is tried on these. */
const EXHAUSTIVE_GEOMETRIES: readonly Geometry[] = [[1, 1], [2, 1], [1, 3], [3, 2], [4, 2], [6, 3], [8, 4]];
/** Small lengths: byte lanes (8: chunks of 1–4 bytes), odd chunk sizes (136), word lanes (2048). */
const SMALL_SHARD_BYTES = [8, 136, 2048] as const;
const SEEDS = [1, 0x5eed] as const;
type Layout = 'contiguous' | 'separate' | 'offset';
const LAYOUTS: readonly Layout[] = ['contiguous', 'separate', 'offset'];

/** mulberry32: a seeded PRNG, so a failure names a seed that reproduces it. */
function prng(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  };
}

function fillRandom(bytes: Uint8Array, next: () => number): void {
  for (let i = 0; i < bytes.length; i++) bytes[i] = next() & 255;
}

/**
 * k + m shards in one of three layouts: end to end (the native fast path),
 * each in its own ArrayBuffer (native stages a copy), or at odd byte offsets
 * inside a Buffer (portable falls back to byte lanes).
 */
function makeShards(count: number, shardBytes: number, layout: Layout): Uint8Array[] {
  if (layout === 'contiguous') {
    const memory = new ArrayBuffer(count * shardBytes);
    return Array.from({ length: count }, (_, i) => new Uint8Array(memory, i * shardBytes, shardBytes));
  }
  if (layout === 'separate') return Array.from({ length: count }, () => new Uint8Array(shardBytes));
  return Array.from({ length: count }, (_, i) => Buffer.alloc(shardBytes + 4).subarray(1 + (i % 3), 1 + (i % 3) + shardBytes));
}

/** All subsets of [0, n) with 1..maxSize elements, ascending. */
function subsetsUpTo(n: number, maxSize: number): number[][] {
  const result: number[][] = [];
  const extend = (start: number, current: number[]): void => {
    for (let i = start; i < n; i++) {
      const next = [...current, i];
      result.push(next);
      if (next.length < maxSize) extend(i + 1, next);
    }
  };
  extend(0, []);
  return result;
}

function randomSubset(n: number, size: number, next: () => number): number[] {
  const indices = Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = next() % (i + 1);
    [indices[i], indices[j]] = [indices[j]!, indices[i]!];
  }
  return indices.slice(0, size).sort((a, b) => a - b);
}

function assertSameBytes(actual: Uint8Array, expected: Uint8Array, label: string): void {
  assert.ok(Buffer.compare(actual, expected) === 0, `${label}: bytes differ`);
}

interface EncodedStripe {
  readonly shards: Uint8Array[];
  /** Copies of every shard after encoding. */
  readonly expected: Uint8Array[];
}

async function encodeRandomStripe(codec: ErasureCodec, shardBytes: number, layout: Layout, seed: number): Promise<EncodedStripe> {
  const k = codec.dataShards;
  const shards = makeShards(k + codec.parityShards, shardBytes, layout);
  const next = prng(seed);
  for (const shard of shards) fillRandom(shard, next); // parity starts as garbage too
  await codec.encode(shards.slice(0, k), shards.slice(k));
  return { shards, expected: shards.map((shard) => shard.slice()) };
}

/** Wipes `missing` with garbage, rebuilds, and checks every shard (rebuilt and untouched) against the original. */
async function loseAndRebuild(codec: ErasureCodec, stripe: EncodedStripe, missing: readonly number[], next: () => number, label: string): Promise<void> {
  for (const index of missing) fillRandom(stripe.shards[index]!, next);
  const present = stripe.shards.map((_, i) => !missing.includes(i));
  await codec.reconstruct(stripe.shards, present);
  stripe.shards.forEach((shard, i) => assertSameBytes(shard, stripe.expected[i]!, `${label}, missing [${missing.join(',')}], shard ${i}`));
}

test('native addon loads when required (TALUS_REQUIRE_NATIVE_RS=1)', (t) => {
  if (native.available) return;
  if (process.env['TALUS_REQUIRE_NATIVE_RS'] === '1') assert.fail(`TALUS_REQUIRE_NATIVE_RS=1 but ${native.reason}`);
  t.skip(NATIVE_SKIP || 'native addon unavailable');
});

for (const implementation of IMPLEMENTATIONS) {
  describe(`erasure codec: ${implementation.name}`, { skip: implementation.skip }, () => {
    const codecFor = (k: number, m: number): ErasureCodec => createErasureCodec(k, m, { implementation: implementation.name });

    test('reports its geometry and implementation', () => {
      const codec = codecFor(4, 2);
      assert.equal(codec.dataShards, 4);
      assert.equal(codec.parityShards, 2);
      assert.equal(codec.implementation, implementation.name);
    });

    test('rebuilds every set of up to m missing shards (seeded random data, small shards, all layouts)', async () => {
      for (const [k, m] of EXHAUSTIVE_GEOMETRIES) {
        const codec = codecFor(k, m);
        const subsets = subsetsUpTo(k + m, m);
        for (const seed of SEEDS) {
          for (const [sizeIndex, shardBytes] of SMALL_SHARD_BYTES.entries()) {
            const layout = LAYOUTS[(sizeIndex + seed) % LAYOUTS.length]!;
            const label = `${k}+${m} ${shardBytes} B ${layout} seed ${seed}`;
            const stripe = await encodeRandomStripe(codec, shardBytes, layout, seed);
            const next = prng(seed ^ 0xbad);
            for (const missing of subsets) await loseAndRebuild(codec, stripe, missing, next, label);
          }
        }
      }
    });

    test('rebuilds stripe-sized shards (1 MiB stripes: chunk halving, every layout)', async () => {
      const next = prng(42);
      for (const [k, m, sampled] of [[4, 2, 0], [8, 4, 24], [3, 2, 0]] as const) {
        const codec = codecFor(k, m);
        const shardBytes = shardBytesForStripe(1024 * 1024, k);
        const all = subsetsUpTo(k + m, m);
        // The worst cases first (all parity lost, then m data shards lost), then a seeded sample of the rest.
        const missingSets = sampled === 0 ? all : [
          Array.from({ length: m }, (_, r) => k + r),
          Array.from({ length: m }, (_, i) => i),
          ...Array.from({ length: sampled }, () => randomSubset(k + m, 1 + (next() % m), next)),
        ];
        for (const layout of LAYOUTS) {
          const stripe = await encodeRandomStripe(codec, shardBytes, layout, 7);
          for (const missing of missingSets) await loseAndRebuild(codec, stripe, missing, next, `${k}+${m} ${shardBytes} B ${layout}`);
        }
      }
    });

    test('rebuilds random missing sets on the wide geometries (w = 8)', async () => {
      const next = prng(99);
      for (const [k, m] of [[16, 4], [24, 6], [13, 5], [24, 1]] as const) {
        const codec = codecFor(k, m);
        for (const shardBytes of [8, 64, 4096]) {
          const stripe = await encodeRandomStripe(codec, shardBytes, 'contiguous', k * 100 + m);
          for (let round = 0; round < 20; round++) {
            await loseAndRebuild(codec, stripe, randomSubset(k + m, 1 + (next() % m), next), next, `${k}+${m} ${shardBytes} B`);
          }
        }
      }
    });

    test('matches the known-answer vectors in test/fixtures/erasure-kat.json', async () => {
      const fixture = readKatFixture();
      assert.ok(fixture.cases.length >= 3, 'the fixture has cases');
      for (const { dataShards, parityShards, shardBytes, parity } of fixture.cases) {
        const codec = codecFor(dataShards, parityShards);
        const { data, parity: output } = allocateShards(dataShards, parityShards, shardBytes);
        data.forEach((shard, j) => shard.forEach((_, i) => (shard[i] = katByte(j * shardBytes + i))));
        await codec.encode(data, output);
        assert.equal(output.length, parity.length);
        output.forEach((shard, r) => {
          const label = `${dataShards}+${parityShards} at ${shardBytes} B, parity ${r}`;
          assert.equal(Buffer.from(shard.subarray(0, 16)).toString('hex'), parity[r]!.head, `${label}: first bytes`);
          assert.equal(createHash('sha256').update(shard).digest('hex'), parity[r]!.sha256, `${label}: SHA-256`);
        });
      }
    });

    test('serves concurrent calls on one codec', async () => {
      const codec = codecFor(6, 3);
      const stripes = await Promise.all(Array.from({ length: 16 }, (_, i) => encodeRandomStripe(codec, 64 * 1024, LAYOUTS[i % 3]!, 1000 + i)));
      const next = prng(5);
      await Promise.all(stripes.map((stripe, i) => loseAndRebuild(codec, stripe, randomSubset(9, 1 + (i % 3), next), next, `stripe ${i}`)));
    });

    test('reconstruct with nothing missing changes nothing', async () => {
      const codec = codecFor(4, 2);
      const stripe = await encodeRandomStripe(codec, 64, 'separate', 3);
      await codec.reconstruct(stripe.shards, stripe.shards.map(() => true));
      stripe.shards.forEach((shard, i) => assertSameBytes(shard, stripe.expected[i]!, `shard ${i}`));
    });

    test('refuses to rebuild from fewer than k shards', async () => {
      const codec = codecFor(4, 2);
      const stripe = await encodeRandomStripe(codec, 64, 'contiguous', 3);
      const present = [false, true, false, true, false, true];
      await assert.rejects(codec.reconstruct(stripe.shards, present), (error: unknown) => {
        assert.ok(error instanceof ErasureCodecError);
        assert.equal(error.code, 'ErasureShardsInsufficient');
        assert.match(error.message, /3 of 6 shards present, 4\+2 needs at least 4 \(missing: 0, 2, 4\)/);
        return true;
      });
      stripe.shards.forEach((shard, i) => assertSameBytes(shard, stripe.expected[i]!, `shard ${i} after the refusal`));
    });

    test('refuses wrong shard counts, lengths, flags and overlapping buffers', async () => {
      const codec = codecFor(4, 2);
      const shards = (bytes: number, count = 6): Uint8Array[] => Array.from({ length: count }, () => new Uint8Array(bytes));
      const invalid = (pattern: RegExp) => (error: unknown): boolean => {
        assert.ok(error instanceof ErasureCodecError, `expected ErasureCodecError, got ${String(error)}`);
        assert.equal(error.code, 'ErasureShardsInvalid');
        assert.match(error.message, pattern);
        return true;
      };
      await assert.rejects(codec.encode(shards(64, 3), shards(64, 2)), invalid(/expected 4 data shards, got 3/));
      await assert.rejects(codec.encode(shards(64, 4), shards(64, 3)), invalid(/expected 2 parity shards, got 3/));
      await assert.rejects(codec.encode(shards(60, 4), shards(60, 2)), invalid(/multiple of 8 .* got 60/));
      await assert.rejects(codec.encode(shards(0, 4), shards(0, 2)), invalid(/positive multiple of 8/));
      await assert.rejects(codec.encode([...shards(64, 3), new Uint8Array(72)], shards(64, 2)), invalid(/data shard 3 has 72 bytes, shard 0 has 64/));
      await assert.rejects(codec.encode(shards(64, 4), shards(72, 2)), invalid(/parity shards have 72 bytes, data shards 64/));
      await assert.rejects(codec.encode(shards(SHARD_BYTES_MAX + 8, 1).concat(shards(64, 3)), shards(64, 2)), invalid(/up to 16777216 bytes/));
      const overlapping = new Uint8Array(64 * 6);
      const views = Array.from({ length: 6 }, (_, i) => overlapping.subarray(i * 56, i * 56 + 64));
      await assert.rejects(codec.encode(views.slice(0, 4), views.slice(4)), invalid(/shards 0 and 1 overlap/));
      await assert.rejects(codec.reconstruct(shards(64), [true, true, true, true, true]), invalid(/present has 5 flags, expected 6/));
      const notBoolean = [true, true, true, true, true, 1] as unknown as boolean[];
      await assert.rejects(codec.reconstruct(shards(64), notBoolean), invalid(/present\[5\] is not a boolean/));
      await assert.rejects(codec.reconstruct(shards(64, 5), [true, true, true, true, true]), invalid(/expected 6 stripe shards, got 5/));
    });
  });
}

describe('erasure codec: native and portable agree', { skip: NATIVE_SKIP }, () => {
  test('the addon builds the same bit matrix as the portable code for all 144 geometries', () => {
    const { binding } = loadNativeBinding();
    assert.ok(binding !== null, 'the native addon loaded');
    for (let k = 1; k <= DATA_SHARDS_MAX; k++) {
      for (let m = 1; m <= PARITY_SHARDS_MAX; m++) {
        const context: Uint8Array = binding.create(k, m);
        const { field, encoding } = buildCodingMatrices(k, m);
        assert.deepEqual([...context.subarray(0, 3)], [field.width, k, m], `${k}+${m} context header`);
        assertSameBytes(context.subarray(3), encoding, `${k}+${m} bit matrix`);
      }
    }
  });

  test('identical parity on random inputs, every geometry', async () => {
    const next = prng(2024);
    for (let k = 1; k <= DATA_SHARDS_MAX; k++) {
      for (let m = 1; m <= PARITY_SHARDS_MAX; m++) {
        const shardBytes = 8 * (1 + (next() % 1024));
        const layout = LAYOUTS[next() % LAYOUTS.length]!;
        const nativeStripe = await encodeRandomStripe(createErasureCodec(k, m, { implementation: 'native' }), shardBytes, layout, k * 7 + m);
        const portableStripe = await encodeRandomStripe(createErasureCodec(k, m, { implementation: 'portable' }), shardBytes, layout, k * 7 + m);
        for (let r = k; r < k + m; r++) assertSameBytes(portableStripe.shards[r]!, nativeStripe.shards[r]!, `${k}+${m} ${shardBytes} B parity ${r - k}`);
      }
    }
  });

  test('each rebuilds stripes the other encoded', async () => {
    const next = prng(77);
    for (const [k, m] of [[4, 2], [8, 4], [16, 4]] as const) {
      const nativeCodec = createErasureCodec(k, m, { implementation: 'native' });
      const portableCodec = createErasureCodec(k, m, { implementation: 'portable' });
      const shardBytes = shardBytesForStripe(1024 * 1024, k);
      for (const [encoder, rebuilder] of [[nativeCodec, portableCodec], [portableCodec, nativeCodec]] as const) {
        const stripe = await encodeRandomStripe(encoder, shardBytes, 'contiguous', k);
        await loseAndRebuild(rebuilder, stripe, randomSubset(k + m, m, next), next, `${encoder.implementation} → ${rebuilder.implementation} ${k}+${m}`);
      }
    }
  });

  test("'auto' picks the native codec when it loaded", () => {
    assert.equal(createErasureCodec(4, 2).implementation, 'native');
  });
});

describe('erasure codec: factory and limits', () => {
  test('rejects geometries outside 1..24 data and 1..6 parity shards', () => {
    for (const [k, m] of [[0, 2], [25, 2], [4, 0], [4, 7], [2.5, 1], [Number.NaN, 1]] as const) {
      for (const implementation of ['portable', 'auto'] as const) {
        assert.throws(() => createErasureCodec(k, m, { implementation }), (error: unknown) => {
          assert.ok(error instanceof ErasureCodecError);
          assert.equal(error.code, 'ErasureGeometryInvalid');
          return true;
        });
      }
    }
  });

  test('shard lengths for a stripe are padded to a multiple of 8', () => {
    assert.equal(shardBytesForStripe(1024 * 1024, 4), 262_144);
    assert.equal(shardBytesForStripe(1024 * 1024, 3), 349_528);
    assert.equal(shardBytesForStripe(1, 8), 8);
    assert.equal(shardBytesForStripe(17, 2), 16);
  });

  test('allocateShards lays the shards end to end in one buffer', () => {
    const { shards, data, parity } = allocateShards(3, 2, 16);
    assert.equal(shards.length, 5);
    assert.deepEqual(shards.slice(0, 3), data);
    assert.deepEqual(shards.slice(3), parity);
    shards.forEach((shard, i) => {
      assert.equal(shard.buffer, shards[0]!.buffer);
      assert.equal(shard.byteOffset, i * 16);
    });
  });

  test(`the portable codec keeps at most ${REBUILD_PLAN_CACHE_ENTRIES_MAX} rebuild plans`, async () => {
    const codec = new PortableErasureCodec(8, 4);
    const stripe = await encodeRandomStripe(codec, 64, 'contiguous', 11);
    const next = prng(12);
    for (const missing of subsetsUpTo(12, 2)) {
      await loseAndRebuild(codec, stripe, missing, next, 'cache');
      assert.ok(codec.rebuildPlanCacheSize <= REBUILD_PLAN_CACHE_ENTRIES_MAX);
    }
    assert.equal(codec.rebuildPlanCacheSize, REBUILD_PLAN_CACHE_ENTRIES_MAX);
  });
});

interface KatFixture {
  readonly pattern: string;
  readonly cases: readonly {
    readonly dataShards: number;
    readonly parityShards: number;
    readonly shardBytes: number;
    readonly parity: readonly { readonly sha256: string; readonly head: string }[];
  }[];
}

function readKatFixture(): KatFixture {
  return JSON.parse(readFileSync(new URL('./fixtures/erasure-kat.json', import.meta.url), 'utf8')) as KatFixture;
}

/** The fixture's data pattern (its `pattern` field; the generator script has the same function). */
function katByte(g: number): number {
  return ((g * 31 + 7) ^ (Math.imul(g, 0x9e3779b1) >>> 24)) & 255;
}
