/**
 * The cases that pin the shard format (src/placement/stripe-layout.ts): fixed
 * data written through StripedBlobWriter into memory backends. Shared by the
 * test and by scripts/generate-stripe-format.ts, which wrote the fixture once.
 */
import { createHash } from 'node:crypto';
import { MemoryBackend } from '../../src/backend/memory-backend.ts';
import { createErasureCodec, type ErasureImplementation } from '../../src/erasure/index.ts';
import { StripeLayout } from '../../src/placement/stripe-layout.ts';
import { StripedBlobWriter } from '../../src/placement/striped-writer.ts';

export interface StripeFormatCase {
  name: string;
  dataShards: number;
  parityShards: number;
  blockBytes: number;
  sizeBytes: number;
}

export const STRIPE_FORMAT_CASES: StripeFormatCase[] = [
  { name: 'erasure 4+2, 4 KiB blocks, short last stripe', dataShards: 4, parityShards: 2, blockBytes: 4096, sizeBytes: 40_000 },
  { name: 'erasure 8+4, 1 KiB blocks', dataShards: 8, parityShards: 4, blockBytes: 1024, sizeBytes: 12_345 },
  { name: 'erasure 2+1, one byte', dataShards: 2, parityShards: 1, blockBytes: 4096, sizeBytes: 1 },
  { name: 'replica 3, 512-byte blocks', dataShards: 1, parityShards: 2, blockBytes: 512, sizeBytes: 1500 },
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

export async function writeFormatCase(testCase: StripeFormatCase, implementation: ErasureImplementation): Promise<StripeFormatResult> {
  const layout = new StripeLayout(testCase);
  const backends = Array.from({ length: layout.shardCount }, (_, i) => new MemoryBackend(`m${i}`));
  const targets = backends.map((backend) => ({ backend, key: 'blob' }));
  const codec = testCase.dataShards === 1 ? undefined : createErasureCodec(testCase.dataShards, testCase.parityShards, { implementation });
  const writer = new StripedBlobWriter({ layout, targets, codec, writeQuorum: layout.shardCount });
  const data = formatCaseData(testCase.sizeBytes);
  for (let at = 0; at < data.length; at += 1000) await writer.write(data.subarray(at, at + 1000));
  await (await writer.commit()).settled;
  return {
    shardBytes: layout.shardBytes,
    shardSha256: backends.map((backend) => createHash('sha256').update(backend.objects().get('blob')!).digest('hex')),
  };
}
