/**
 * The shard formats are stored data: these known answers (written once per
 * version by scripts/generate-stripe-format.ts) fail if blocks, padding,
 * headers, frame checksums or parity change, with either codec. Version 1
 * stays pinned: blobs written before version 2 must keep reading.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { nativeErasureStatus } from '../src/erasure/index.ts';
import { FRAME_CHECKSUM_BYTES, parseShardHeader, SHARD_FORMAT_VERSION, SHARD_FORMAT_VERSIONS, StripeLayout, type ShardFormatVersion } from '../src/placement/stripe-layout.ts';
import { formatCaseLayout, writeFormatCase, writeFormatShards, type StripeFormatCase, type StripeFormatResult } from './helpers/stripe-format-cases.ts';

interface Fixture {
  formatVersion: ShardFormatVersion;
  cases: (StripeFormatCase & StripeFormatResult)[];
}
const load = (file: string): Fixture => JSON.parse(readFileSync(new URL(`./fixtures/${file}`, import.meta.url), 'utf8')) as Fixture;
const fixtures: Fixture[] = [load('stripe-format.json'), load('stripe-format-v2.json')];

test('every shard format version is pinned, and new blobs are written in the newest', () => {
  assert.deepEqual(
    fixtures.map((fixture) => fixture.formatVersion),
    SHARD_FORMAT_VERSIONS,
  );
  assert.equal(SHARD_FORMAT_VERSION, 2);
  for (const fixture of fixtures) assert.ok(fixture.cases.length >= 4);
});

for (const fixture of fixtures) {
  for (const implementation of ['portable', 'native'] as const) {
    test(`version ${fixture.formatVersion}: shard objects match the known answers (${implementation} codec)`, async (t) => {
      if (implementation === 'native' && !nativeErasureStatus().available) return t.skip('native Reed–Solomon addon not loaded');
      for (const { shardBytes, shardSha256, ...testCase } of fixture.cases) {
        const got = await writeFormatCase(testCase, implementation, fixture.formatVersion);
        assert.deepEqual(got, { shardBytes, shardSha256 }, testCase.name);
      }
    });
  }
}

/** Every frame of a shard, checked against a layout: true when all verify. */
function framesVerify(shard: Buffer, index: number, layout: StripeLayout): boolean {
  for (let stripe = 0; stripe < layout.stripeCount; stripe++) {
    const at = layout.frameOffset(stripe);
    const blockBytes = layout.blockBytesOf(stripe);
    if (at + blockBytes + FRAME_CHECKSUM_BYTES > shard.length) return false;
    if (layout.frameChecksum(shard.subarray(at, at + blockBytes), stripe, index) !== shard.readUInt32BE(at + blockBytes)) return false;
  }
  return true;
}

test('version 2: each shard starts with a header naming its blob, geometry and index', async () => {
  for (const testCase of load('stripe-format-v2.json').cases) {
    const shards = await writeFormatShards(testCase, 'portable', 2);
    const layout = formatCaseLayout(testCase, 2);
    for (const [index, shard] of shards.entries()) {
      const header = parseShardHeader(shard);
      assert.deepEqual(
        { ...header, optional: header.optional.length },
        {
          formatVersion: 2,
          shard: index,
          dataShards: testCase.dataShards,
          parityShards: testCase.parityShards,
          blockBytes: testCase.blockBytes,
          sizeBytes: testCase.sizeBytes,
          blobId: testCase.blobId,
          optional: 0,
          headerBytes: 29 + testCase.blobId!.length,
        },
        testCase.name,
      );
      assert.equal(layout.frameOffset(0), header.headerBytes, 'frames start right after the header');
      assert.equal(layout.checkShardHeader(shard, index), undefined);
      assert.equal(layout.checkShardHeader(shard, (index + 1) % shards.length)?.reason, 'foreign');
      const flipped = Buffer.from(shard);
      flipped[22] = flipped[22]! ^ 1;
      assert.equal(layout.checkShardHeader(flipped, index)?.reason, 'corrupt', 'the header has its own checksum');
    }
  }
});

test('version 2: frames verify only for their own blob and geometry', async () => {
  const testCase = load('stripe-format-v2.json').cases[0]!;
  const shards = await writeFormatShards(testCase, 'portable', 2);
  const own = formatCaseLayout(testCase, 2);
  const otherBlob = new StripeLayout(testCase, { version: 2, blobId: `${testCase.blobId!.slice(0, -1)}9` });
  const otherSize = new StripeLayout({ ...testCase, sizeBytes: testCase.sizeBytes - 1 }, { version: 2, blobId: testCase.blobId! });
  const unbound = new StripeLayout(testCase, { version: 1 });
  for (const [index, shard] of shards.entries()) {
    assert.ok(framesVerify(shard, index, own), `shard ${index} verifies as written`);
    assert.ok(!framesVerify(shard, index, otherBlob), `shard ${index} fails for another blob ID`);
    assert.ok(!framesVerify(shard, index, otherSize), `shard ${index} fails for another size`);
    // Read as version 1 (no header, unseeded): not a single frame passes.
    assert.ok(!framesVerify(shard.subarray(own.headerBytes), index, unbound), `shard ${index} fails as version 1`);
  }
  // Version 1 binds no blob: the reason for version 2.
  const v1 = await writeFormatShards(testCase, 'portable', 1);
  assert.ok(framesVerify(v1[0]!, 0, unbound));
});
