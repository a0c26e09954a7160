/**
 * The shard format is stored data: these known answers (written once by
 * scripts/generate-stripe-format.ts) fail if blocks, padding, frame
 * checksums or parity change, with either codec.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { nativeErasureStatus } from '../src/erasure/index.ts';
import { SHARD_FORMAT_VERSION } from '../src/placement/stripe-layout.ts';
import { writeFormatCase, type StripeFormatCase, type StripeFormatResult } from './helpers/stripe-format-cases.ts';

const fixture = JSON.parse(readFileSync(new URL('./fixtures/stripe-format.json', import.meta.url), 'utf8')) as {
  formatVersion: number;
  cases: (StripeFormatCase & StripeFormatResult)[];
};

test('the fixture is for the current shard format version', () => {
  assert.equal(fixture.formatVersion, SHARD_FORMAT_VERSION);
  assert.ok(fixture.cases.length >= 4);
});

for (const implementation of ['portable', 'native'] as const) {
  test(`shard objects match the known answers (${implementation} codec)`, async (t) => {
    if (implementation === 'native' && !nativeErasureStatus().available) return t.skip('native Reed–Solomon addon not loaded');
    for (const { shardBytes, shardSha256, ...testCase } of fixture.cases) {
      const got = await writeFormatCase(testCase, implementation);
      assert.deepEqual(got, { shardBytes, shardSha256 }, testCase.name);
    }
  });
}
