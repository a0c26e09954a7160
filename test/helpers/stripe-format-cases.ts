/**
 * The cases that pin the shard formats (src/placement/stripe-layout.ts): fixed
 * data written through StripedBlobWriter into memory backends. Shared by the
 * test and by scripts/generate-stripe-format.ts, which wrote the fixtures once
 * (version 1: stripe-format.json; version 2: stripe-format-v2.json).
 */
import { createHash } from 'node:crypto';
import { MemoryBackend } from '../../src/backend/memory-backend.ts';
import { createErasureCodec, type ErasureImplementation } from '../../src/erasure/index.ts';
import { StripeLayout, type ShardFormatVersion } from '../../src/placement/stripe-layout.ts';
import { StripedBlobWriter } from '../../src/placement/striped-writer.ts';

export interface StripeFormatCase {
  name: string;
  dataShards: number;
  parityShards: number;
  blockBytes: number;
  sizeBytes: number;
  /** Version 2 on: the blob the shards are bound to. */
  blobId?: string;
}

export const STRIPE_FORMAT_CASES: StripeFormatCase[] = [
  { name: 'erasure 4+2, 4 KiB blocks, short last stripe', dataShards: 4, parityShards: 2, blockBytes: 4096, sizeBytes: 40_000 },
  { name: 'erasure 8+4, 1 KiB blocks', dataShards: 8, parityShards: 4, blockBytes: 1024, sizeBytes: 12_345 },
  { name: 'erasure 2+1, one byte', dataShards: 2, parityShards: 1, blockBytes: 4096, sizeBytes: 1 },
  { name: 'replica 3, 512-byte blocks', dataShards: 1, parityShards: 2, blockBytes: 512, sizeBytes: 1500 },
];

/** Version 2: the same geometries bound to fixed blob IDs (of the shape newBlobId makes), and an empty blob (headers alone). */
export const STRIPE_FORMAT_V2_CASES: StripeFormatCase[] = [
  ...STRIPE_FORMAT_CASES.map((testCase, i) => ({ ...testCase, blobId: `0mi9k2x3a${'0123456789abcdef0123'.slice(i)}${'f'.repeat(i)}` })),
  { name: 'erasure 2+1, empty', dataShards: 2, parityShards: 1, blockBytes: 4096, sizeBytes: 0, blobId: '0mi9k2x3affffffffffffffffffff' },
];

export interface StripeFormatResult {
  shardBytes: number;
  /** SHA-256 of every shard object, data shards first. */
  shardSha256: string[];
}

export function formatCaseData(sizeBytes: number): Buffer {
  const data = Buffer.allocUnsafe(sizeBytes);
  for (let i = 0; i < sizeBytes; i++) data[i] = (i * 131 + 17) & 0xff;
  return data;
}

export function formatCaseLayout(testCase: StripeFormatCase, version: ShardFormatVersion): StripeLayout {
  if (version === 1) return new StripeLayout(testCase, { version: 1 });
  return new StripeLayout(testCase, { version, blobId: testCase.blobId! });
}

/** The shard objects of a case, data shards first. */
export async function writeFormatShards(testCase: StripeFormatCase, implementation: ErasureImplementation, version: ShardFormatVersion): Promise<Buffer[]> {
  const layout = formatCaseLayout(testCase, version);
  const backends = Array.from({ length: layout.shardCount }, (_, i) => new MemoryBackend(`m${i}`));
  const targets = backends.map((backend) => ({ backend, key: 'blob' }));
  const codec = testCase.dataShards === 1 ? undefined : createErasureCodec(testCase.dataShards, testCase.parityShards, { implementation });
  const writer = new StripedBlobWriter({ layout, targets, codec, writeQuorum: layout.shardCount });
  const data = formatCaseData(testCase.sizeBytes);
  for (let at = 0; at < data.length; at += 1000) await writer.write(data.subarray(at, at + 1000));
  await (await writer.commit()).settled;
  return backends.map((backend) => Buffer.from(backend.objects().get('blob')!));
}

export async function writeFormatCase(testCase: StripeFormatCase, implementation: ErasureImplementation, version: ShardFormatVersion = 1): Promise<StripeFormatResult> {
  const shards = await writeFormatShards(testCase, implementation, version);
  return {
    shardBytes: formatCaseLayout(testCase, version).shardBytes,
    shardSha256: shards.map((shard) => createHash('sha256').update(shard).digest('hex')),
  };
}
