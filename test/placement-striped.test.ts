/**
 * Striped blobs over real local-directory backends: every object reads back
 * bit-exact, ranges included, with any m shards gone; a flipped byte is
 * caught by its frame checksum and the right bytes are served anyway; writes
 * are acknowledged at the quorum and give up on lost or hung backends.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, open, readFile, rm, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Backend, BackendWriter } from '../src/backend/backend.ts';
import { DirectoryBackend } from '../src/backend/directory-backend.ts';
import { MemoryBackend } from '../src/backend/memory-backend.ts';
import { createErasureCodec } from '../src/erasure/index.ts';
import { openStripedRead, ShardsUnavailableError, type ShardDamage } from '../src/placement/striped-reader.ts';
import { StripeLayout } from '../src/placement/stripe-layout.ts';
import { ShardLagError, StripedBlobWriter, WriteQuorumError, type ShardTarget } from '../src/placement/striped-writer.ts';

const sha256 = (data: Uint8Array): string => createHash('sha256').update(data).digest('hex');

async function collect(body: AsyncIterable<Buffer>): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of body) chunks.push(chunk);
  return Buffer.concat(chunks);
}

/** Writes `data` in chunks of varying sizes, as a socket would hand them over. */
async function writeAll(writer: StripedBlobWriter, data: Buffer): Promise<void> {
  let at = 0;
  for (let i = 0; at < data.length; i++) {
    const size = [1, 4093, 65536, 300_000, 17][i % 5]!;
    await writer.write(data.subarray(at, at + size));
    at += size;
  }
}

function subsets(n: number, size: number): number[][] {
  if (size === 0) return [[]];
  const result: number[][] = [];
  for (let first = 0; first < n; first++) for (const rest of subsets(n, size - 1)) if (rest.every((x) => x > first)) result.push([first, ...rest]);
  return result;
}

describe('erasure 4+2 over six local directories', () => {
  let root: string;
  let backends: DirectoryBackend[];
  const codec = createErasureCodec(4, 2);
  const sizes = [1, 4095, 4096 * 4, 4096 * 4 + 1, 100_003, 1024 * 1024 + 17];
  const blobs: { layout: StripeLayout; targets: ShardTarget[]; data: Buffer }[] = [];

  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'talus-striped-'));
    backends = await Promise.all(Array.from({ length: 6 }, (_, i) => DirectoryBackend.open(`disk${i}`, join(root, `disk${i}`))));
    for (const [n, size] of sizes.entries()) {
      // Small blocks: many stripes and a short last one even for small blobs.
      const layout = new StripeLayout({ dataShards: 4, parityShards: 2, blockBytes: 4096, sizeBytes: size });
      const targets = backends.map((backend, shard) => ({ backend, key: `blob${n}.${shard}` }));
      const data = randomBytes(size);
      const writer = new StripedBlobWriter({ layout, targets, codec, writeQuorum: 5 });
      await writeAll(writer, data);
      const result = await writer.commit();
      assert.ok(result.committedShards.length >= 5);
      const outcomes = await result.settled;
      assert.ok(outcomes.every((outcome) => outcome.committed));
      blobs.push({ layout, targets, data });
    }
  });

  after(async () => {
    await rm(root, { recursive: true, force: true });
  });

  test('whole blobs and ranges read back bit-exact', async () => {
    for (const { layout, targets, data } of blobs) {
      assert.equal(sha256(await collect(await openStripedRead({ layout, targets, codec, start: 0, end: data.length }))), sha256(data));
      for (const [start, end] of ranges(data.length)) {
        const got = await collect(await openStripedRead({ layout, targets, codec, start, end }));
        assert.deepEqual(got, data.subarray(start, end), `range ${start}-${end} of ${data.length}`);
      }
    }
  });

  test('any two shards deleted or unreadable: still bit-exact, ranges included, and the damage is reported', async () => {
    const { layout, targets, data } = blobs.at(-1)!;
    for (const lost of subsets(6, 2)) {
      const saved = new Map<number, Buffer>();
      for (const shard of lost) {
        const path = backends[shard]!.path(targets[shard]!.key);
        saved.set(shard, await readFile(path));
        if (shard % 2 === 0) await unlink(path);
        else await writeFile(path, Buffer.alloc(0)); // present but empty: every read is short
      }
      try {
        const damage: ShardDamage[] = [];
        const got = await collect(await openStripedRead({ layout, targets, codec, start: 0, end: data.length, onDamage: (entry) => damage.push(entry) }));
        assert.equal(sha256(got), sha256(data), `lost ${lost}`);
        const damaged = [...new Set(damage.map((entry) => entry.shard))].sort();
        // Parity shards are read only to stand in for a data shard, so a lost parity shard may go unnoticed;
        // every lost data shard is reported, and nothing that was intact.
        for (const shard of lost.filter((shard) => shard < 4)) assert.ok(damaged.includes(shard), `shard ${shard} of ${lost} reported`);
        for (const shard of damaged) assert.ok(lost.includes(shard), `intact shard ${shard} reported damaged (lost ${lost})`);
        for (const [start, end] of ranges(data.length)) {
          assert.deepEqual(await collect(await openStripedRead({ layout, targets, codec, start, end })), data.subarray(start, end), `lost ${lost}, range ${start}-${end}`);
        }
      } finally {
        for (const [shard, bytes] of saved) await writeFile(backends[shard]!.path(targets[shard]!.key), bytes);
      }
    }
  });

  test('a flipped byte fails its frame checksum; the right bytes are served and the shard is reported corrupt', async () => {
    const { layout, targets, data } = blobs.at(-1)!;
    const path = backends[1]!.path(targets[1]!.key);
    const original = await readFile(path);
    const damaged = Buffer.from(original);
    const offset = layout.frameOffset(3) + 100; // inside stripe 3's block
    damaged[offset] = damaged[offset]! ^ 0x40;
    await writeFile(path, damaged);
    try {
      const damage: ShardDamage[] = [];
      const got = await collect(await openStripedRead({ layout, targets, codec, start: 0, end: data.length, onDamage: (entry) => damage.push(entry) }));
      assert.equal(sha256(got), sha256(data));
      assert.deepEqual(
        damage.map(({ shard, stripe, reason }) => ({ shard, stripe, reason })),
        [{ shard: 1, stripe: 3, reason: 'corrupt' }],
      );
    } finally {
      await writeFile(path, original);
    }
  });

  test('three shards gone: the read fails before its first byte with the shards named', async () => {
    const { layout, targets, data } = blobs.at(-1)!;
    const saved: [string, Buffer][] = [];
    for (const shard of [0, 2, 5]) {
      const path = backends[shard]!.path(targets[shard]!.key);
      saved.push([path, await readFile(path)]);
      await unlink(path);
    }
    try {
      await assert.rejects(openStripedRead({ layout, targets, codec, start: 0, end: data.length }), (error: unknown) => {
        assert.ok(error instanceof ShardsUnavailableError);
        assert.deepEqual(error.damage.map((entry) => entry.shard).sort(), [0, 2, 5]);
        return true;
      });
    } finally {
      for (const [path, bytes] of saved) await writeFile(path, bytes);
    }
  });

  test('shard files hold exactly the frames of the layout', async () => {
    const { layout, targets } = blobs.at(-1)!;
    for (const [shard, target] of targets.entries()) {
      const handle = await open(backends[shard]!.path(target.key), 'r');
      try {
        assert.equal((await handle.stat()).size, layout.shardBytes);
      } finally {
        await handle.close();
      }
    }
  });
});

test('replica 3 (one data shard, two copies) survives the loss of any two copies', async () => {
  const backends = Array.from({ length: 3 }, (_, i) => new MemoryBackend(`m${i}`));
  const layout = new StripeLayout({ dataShards: 1, parityShards: 2, blockBytes: 8192, sizeBytes: 50_001 });
  const targets = backends.map((backend) => ({ backend, key: 'blob.r' }));
  const data = randomBytes(50_001);
  const writer = new StripedBlobWriter({ layout, targets, codec: undefined, writeQuorum: 2 });
  await writeAll(writer, data);
  await (await writer.commit()).settled;
  for (const lost of subsets(3, 2)) {
    for (const shard of lost) backends[shard]!.setDown(true);
    try {
      assert.equal(sha256(await collect(await openStripedRead({ layout, targets, codec: undefined, start: 0, end: data.length }))), sha256(data));
      assert.deepEqual(await collect(await openStripedRead({ layout, targets, codec: undefined, start: 8000, end: 8200 })), data.subarray(8000, 8200));
    } finally {
      for (const shard of lost) backends[shard]!.setDown(false);
    }
  }
});

describe('write quorum', () => {
  const codec = createErasureCodec(4, 2);
  const data = randomBytes(300_000);
  const layoutFor = (): StripeLayout => new StripeLayout({ dataShards: 4, parityShards: 2, blockBytes: 16_384, sizeBytes: data.length });

  test('one backend down: acknowledged at k+1, the lost shard reported for repair, the blob readable', async () => {
    const backends = Array.from({ length: 6 }, (_, i) => new MemoryBackend(`m${i}`));
    backends[3]!.setDown(true);
    const layout = layoutFor();
    const targets = backends.map((backend, shard) => ({ backend, key: `b.${shard}` }));
    const writer = new StripedBlobWriter({ layout, targets, codec, writeQuorum: 5 });
    await writeAll(writer, data);
    const result = await writer.commit();
    assert.deepEqual([...result.committedShards].sort(), [0, 1, 2, 4, 5]);
    const outcomes = await result.settled;
    assert.deepEqual(outcomes.filter((outcome) => !outcome.committed).map((outcome) => outcome.shard), [3]);
    backends[3]!.setDown(false);
    assert.equal(backends[3]!.objects().size, 0);
    assert.equal(sha256(await collect(await openStripedRead({ layout, targets, codec, start: 0, end: data.length }))), sha256(data));
  });

  test('two backends down with a quorum of k+1: the write fails and leaves nothing behind', async () => {
    const backends = Array.from({ length: 6 }, (_, i) => new MemoryBackend(`m${i}`));
    backends[0]!.setDown(true);
    backends[5]!.setDown(true);
    const targets = backends.map((backend, shard) => ({ backend, key: `b.${shard}` }));
    const writer = new StripedBlobWriter({ layout: layoutFor(), targets, codec, writeQuorum: 5 });
    await assert.rejects(
      (async () => {
        await writeAll(writer, data);
        await writer.commit();
      })(),
      WriteQuorumError,
    );
    for (const backend of backends) {
      backend.setDown(false);
      assert.equal(backend.objects().size, 0, `${backend.name} keeps nothing`);
    }
  });

  test('a hung backend is given up after the lag allowance instead of holding the upload', async () => {
    const backends: Backend[] = Array.from({ length: 6 }, (_, i) => new MemoryBackend(`m${i}`));
    backends[2] = new HungBackend('hung');
    const targets = backends.map((backend, shard) => ({ backend, key: `b.${shard}` }));
    const layout = layoutFor();
    const writer = new StripedBlobWriter({ layout, targets, codec, writeQuorum: 5, shardLagMs: 200 });
    const started = Date.now();
    await writeAll(writer, data);
    const result = await writer.commit();
    assert.ok(Date.now() - started < 5_000, 'not held by the hung backend');
    assert.ok(!result.committedShards.includes(2));
    const outcomes = await result.settled;
    assert.ok(outcomes[2]!.error instanceof ShardLagError);
    assert.equal(sha256(await collect(await openStripedRead({ layout, targets, codec, start: 0, end: data.length }))), sha256(data));
  });
});

/** A backend whose writes never finish, like a remote endpoint that stopped answering. */
class HungBackend extends MemoryBackend {
  override create(): BackendWriter {
    return {
      write: () => new Promise<void>(() => undefined),
      commit: () => new Promise<void>(() => undefined),
      abort: async () => undefined,
    };
  }
}

/** Ranges at the edges of blocks and stripes, and a few random ones. */
function ranges(size: number): [number, number][] {
  const result: [number, number][] = [
    [0, 1],
    [size - 1, size],
    [0, size],
  ];
  for (const edge of [4095, 4096, 4097, 16_383, 16_384, 16_385, 40_000]) if (edge < size) result.push([edge, Math.min(size, edge + 5000)]);
  for (let i = 0; i < 4; i++) {
    const start = Math.floor(Math.random() * size);
    result.push([start, start + Math.floor(Math.random() * (size - start)) + 1]);
  }
  return result.filter(([start, end]) => start < end && end <= size);
}

test('frames reach each shard in stripe order even when a later stripe encodes first', async () => {
  // A short last stripe encodes faster than a full one; here the first stripe's encode is made slow on purpose.
  const real = createErasureCodec(2, 1);
  let calls = 0;
  const slowFirst = {
    dataShards: 2,
    parityShards: 1,
    implementation: real.implementation,
    async encode(data: readonly Uint8Array[], parity: Uint8Array[]) {
      if (calls++ === 0) await new Promise((resolve) => setTimeout(resolve, 100));
      return real.encode(data, parity);
    },
    reconstruct: (shards: Uint8Array[], present: readonly boolean[]) => real.reconstruct(shards, present),
  };
  const backends = Array.from({ length: 3 }, (_, i) => new MemoryBackend(`m${i}`));
  const layout = new StripeLayout({ dataShards: 2, parityShards: 1, blockBytes: 4096, sizeBytes: 8192 + 1000 });
  const targets = backends.map((backend, shard) => ({ backend, key: `b.${shard}` }));
  const data = randomBytes(layout.sizeBytes);
  const writer = new StripedBlobWriter({ layout, targets, codec: slowFirst, writeQuorum: 3 });
  await writer.write(data);
  await (await writer.commit()).settled;
  assert.equal(calls, 2);
  const damage: ShardDamage[] = [];
  const got = await collect(await openStripedRead({ layout, targets, codec: real, start: 0, end: data.length, onDamage: (entry) => damage.push(entry) }));
  assert.deepEqual(damage, []);
  assert.ok(got.equals(data));
});
