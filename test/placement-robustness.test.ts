/**
 * Placed reads and writes when things go wrong around them: a client that
 * leaves mid-GET (no damage reported, no descriptor leaked), a read never
 * consumed, a truncated shard (short, not a down backend), a failed version
 * commit while a backend is down (the client still gets the real error), and
 * backends that hang (the upload fails instead of waiting forever).
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readdir, rm, truncate } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, test } from 'node:test';
import type { Backend, BackendWriter } from '../src/backend/backend.ts';
import { DirectoryBackend } from '../src/backend/directory-backend.ts';
import { MemoryBackend } from '../src/backend/memory-backend.ts';
import { FsBlobStore } from '../src/blob/fs/fs-blob-store.ts';
import { discardAfterFailedCommit, writeBlob } from '../src/engine/blob-write.ts';
import { createErasureCodec } from '../src/erasure/index.ts';
import { BackendHealth } from '../src/placement/backend-health.ts';
import { decodeLocation, stripeLayoutOf } from '../src/placement/blob-location.ts';
import { PlacedBlobStore, type RepairRequest } from '../src/placement/placed-blob-store.ts';
import { openStripedRead, type ShardDamage } from '../src/placement/striped-reader.ts';
import { StripeLayout } from '../src/placement/stripe-layout.ts';
import { StripedBlobWriter, WriteQuorumError } from '../src/placement/striped-writer.ts';
import { S3Error } from '../src/util/s3-error.ts';

const openDescriptors = async (): Promise<number> => (await readdir('/proc/self/fd')).length;

function placedStore(root: string, backends: Backend[], placement: { dataShards: number; parityShards: number; writeQuorum: number }, repairs: RepairRequest[]): Promise<PlacedBlobStore> {
  const byName = new Map(backends.map((backend) => [backend.name, backend]));
  return FsBlobStore.open(join(root, 'local')).then(
    (local) =>
      new PlacedBlobStore({
        local,
        backends: byName,
        config: {
          backends: [],
          placements: [{ name: 'p', type: 'erasure', ...placement, backends: backends.map((backend) => backend.name), assignment: 'priority', blockBytes: 64 * 1024 }],
          defaultPlacement: 'p',
          buckets: new Map(),
        },
        health: new BackendHealth(byName),
        repairs: { recordRepairs: async (requests) => void repairs.push(...requests) },
      }),
  );
}

describe('reads that end early or find short shards', () => {
  let root: string;
  let backends: DirectoryBackend[];
  let store: PlacedBlobStore;
  const repairs: RepairRequest[] = [];
  let blob: { blobId: string; location: string | undefined };
  const data = randomBytes(40 * 64 * 1024);

  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'talus-robust-'));
    backends = await Promise.all(Array.from({ length: 6 }, (_, i) => DirectoryBackend.open(`disk${i}`, join(root, `disk${i}`))));
    store = await placedStore(root, backends, { dataShards: 4, parityShards: 2, writeQuorum: 6 }, repairs);
    const writer = store.create({ bucket: 'b', sizeBytes: data.length });
    await writer.write(data);
    await writer.commit();
    blob = { blobId: writer.id, location: writer.location };
    await store.health.probeAll();
  });

  after(async () => {
    await store.close();
    await rm(root, { recursive: true, force: true });
  });

  test('a client leaving mid-GET: no shard reported damaged, no backend marked down, no descriptor left open', async () => {
    const before = await openDescriptors();
    for (let i = 0; i < 20; i++) {
      const body = await store.read(blob, 0, data.length);
      for await (const _chunk of body) break; // the first chunk; the read-ahead of the next stripe is running
      body.destroy();
    }
    await sleep(300);
    assert.deepEqual(repairs, []);
    assert.ok(store.health.snapshot().every((status) => status.state === 'up'), JSON.stringify(store.health.snapshot()));
    assert.ok((await openDescriptors()) - before <= 2, `${(await openDescriptors()) - before} descriptors left open`);
  });

  test('a read opened and destroyed before its first byte closes its shards', async () => {
    const before = await openDescriptors();
    for (let i = 0; i < 10; i++) (await store.read(blob, 0, data.length)).destroy();
    await sleep(300);
    assert.ok((await openDescriptors()) - before <= 2, `${(await openDescriptors()) - before} descriptors left open`);
  });

  test('a truncated shard is short, not a sign that its backend is down', async () => {
    const layout = stripeLayoutOf(blob.blobId, decodeLocation(blob.location!));
    await truncate(backends[0]!.path(`${blob.blobId}.0`), layout.frameOffset(5) + 10);
    const damage: ShardDamage[] = [];
    const targets = backends.map((backend, shard) => ({ backend, key: `${blob.blobId}.${shard}` }));
    const chunks: Buffer[] = [];
    for await (const chunk of await openStripedRead({ layout, targets, codec: createErasureCodec(4, 2), start: 0, end: data.length, onDamage: (entry) => damage.push(entry) })) chunks.push(chunk);
    assert.ok(Buffer.concat(chunks).equals(data));
    assert.deepEqual(damage.map(({ shard, stripe, reason }) => ({ shard, stripe, reason })), [{ shard: 0, stripe: 5, reason: 'short' }]);
    // Reads prefer the backends that answered fastest: rank the parity disks last, so this read needs shard 0.
    for (const name of ['disk4', 'disk5']) store.health.reportSuccess(name, 60_000);
    const read = await store.read(blob, 0, data.length);
    await new Promise<void>((resolve, reject) => read.on('end', resolve).on('error', reject).resume());
    for (let waitedMs = 0; waitedMs < 5_000 && !repairs.some((repair) => repair.shard === 0); waitedMs += 50) await sleep(50);
    assert.equal(store.health.state('disk0'), 'up');
    assert.ok(repairs.some((repair) => repair.shard === 0 && repair.reason === 'short on read'), JSON.stringify(repairs));
  });
});

test('a version commit failing while a backend is down: the client still gets the real error', async () => {
  const root = await mkdtemp(join(tmpdir(), 'talus-robust-abort-'));
  try {
    const backends = Array.from({ length: 6 }, (_, i) => new MemoryBackend(`m${i}`));
    const store = await placedStore(root, backends, { dataShards: 4, parityShards: 2, writeQuorum: 5 }, []);
    const body = randomBytes(200_000);
    const written = await writeBlob(store, [body], { bucket: 'b', checksumAlgorithm: undefined, sizeBytesMax: 1e9, inlineBytesMax: 16 * 1024, declaredBytes: body.length });
    backends[5]!.setDown(true);
    const original = new S3Error('PreconditionFailed');
    await discardAfterFailedCommit(written, original); // what a handler does before rethrowing `original`: must not throw
    await sleep(50);
    assert.deepEqual(backends.slice(0, 5).map((backend) => backend.objects().size), [0, 0, 0, 0, 0], 'the reachable shards are removed');
  } finally {
    await rm(root, { recursive: true, force: true });
  }
});

test('backends that hang: the upload fails after the stall allowance instead of waiting forever', async () => {
  const hung = (name: string): Backend =>
    Object.assign(new MemoryBackend(name), {
      create: (): BackendWriter => ({ write: () => new Promise<void>(() => undefined), commit: () => new Promise<void>(() => undefined), abort: async () => undefined }),
    });
  const failing = new MemoryBackend('failing');
  failing.setDown(true);
  // 2+1 with a quorum of 2: one shard fails at once, one hangs — no quorum, and nothing to measure a lag against.
  const backends: Backend[] = [new MemoryBackend('ok'), hung('hung'), failing];
  const layout = new StripeLayout({ dataShards: 2, parityShards: 1, blockBytes: 4096, sizeBytes: 20_000 });
  const writer = new StripedBlobWriter({ layout, targets: backends.map((backend, shard) => ({ backend, key: `b.${shard}` })), codec: createErasureCodec(2, 1), writeQuorum: 2, shardStallMs: 300 });
  const started = Date.now();
  await assert.rejects(
    (async () => {
      await writer.write(randomBytes(20_000));
      await writer.commit();
    })(),
    WriteQuorumError,
  );
  assert.ok(Date.now() - started < 5_000);
});

test('a backend known to be down is not written to while the quorum allows; it is repaired later, and used again once up', async () => {
  const root = await mkdtemp(join(tmpdir(), 'talus-robust-skip-'));
  try {
    class CountingBackend extends MemoryBackend {
      creates = 0;
      override create(key: string, sizeBytes: number): BackendWriter {
        this.creates++;
        return super.create(key, sizeBytes);
      }
    }
    const backends = Array.from({ length: 6 }, (_, i) => new CountingBackend(`m${i}`));
    const repairs: RepairRequest[] = [];
    const store = await placedStore(root, backends, { dataShards: 4, parityShards: 2, writeQuorum: 5 }, repairs);
    backends[3]!.setDown(true);
    await store.health.probeAll();
    assert.equal(store.health.state('m3'), 'down');
    const write = async (): Promise<void> => {
      const writer = store.create({ bucket: 'b', sizeBytes: 100_000 });
      await writer.write(randomBytes(100_000));
      await writer.commit();
    };
    await write();
    await sleep(50);
    assert.equal(backends[3]!.creates, 0, 'nothing was sent to the down backend');
    // Healthy backends come first: the down one got the last shard.
    assert.deepEqual(repairs.map((repair) => [repair.shard, repair.reason]), [[5, 'write failed: not written: backend m3 is down']]);
    assert.match(store.health.snapshot().find((status) => status.name === 'm3')!.lastError!, /m3: backend is down/, 'the probe error is kept');
    backends[3]!.setDown(false);
    await store.health.probeAll();
    await write();
    assert.equal(backends[3]!.creates, 1, 'written to again once it is up');
  } finally {
    await rm(root, { recursive: true, force: true });
  }
});
