/**
 * Removing placed blobs: one request per backend for a whole batch, and a
 * backend that is down is left alone with a growing backoff — no request is
 * sent to it until then — while the others are cleaned at once.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { MemoryBackend } from '../src/backend/memory-backend.ts';
import type { Backend } from '../src/backend/backend.ts';
import { FsBlobStore } from '../src/blob/fs/fs-blob-store.ts';
import type { BlobRef } from '../src/blob/blob-store.ts';
import { BackendHealth } from '../src/placement/backend-health.ts';
import { PlacedBlobStore, type RepairRequest } from '../src/placement/placed-blob-store.ts';

class CountingBackend extends MemoryBackend {
  removeCalls = 0;
  override async remove(keys: readonly string[]): Promise<void> {
    this.removeCalls++;
    return super.remove(keys);
  }
}

test('a batch of removals is one call per backend; a down backend backs off and is retried later', async () => {
  const root = await mkdtemp(join(tmpdir(), 'talus-purge-'));
  try {
    const backends = [new CountingBackend('m0'), new CountingBackend('m1'), new CountingBackend('m2')];
    const byName = new Map<string, Backend>(backends.map((backend) => [backend.name, backend]));
    const repairs: RepairRequest[] = [];
    const store = new PlacedBlobStore({
      local: await FsBlobStore.open(join(root, 'blobs')),
      backends: byName,
      config: {
        backends: [],
        placements: [{ name: 'r3', type: 'replica', dataShards: 1, parityShards: 2, backends: ['m0', 'm1', 'm2'], assignment: 'priority', writeQuorum: 3, blockBytes: 4096 }],
        defaultPlacement: 'r3',
        buckets: new Map(),
      },
      health: new BackendHealth(byName),
      repairs: { recordRepairs: async (requests) => void repairs.push(...requests) },
    });
    const refs: BlobRef[] = [];
    for (let i = 0; i < 5; i++) {
      const writer = store.create({ bucket: 'b', sizeBytes: 10_000 });
      await writer.write(Buffer.alloc(10_000, i));
      await writer.commit();
      refs.push({ blobId: writer.id, location: writer.location });
    }
    for (const backend of backends) assert.equal(backend.objects().size, 5);

    backends[2]!.setDown(true);
    const started = Date.now();
    const failed = await store.removeMany(refs);
    assert.deepEqual([...failed.keys()].sort(), refs.map((ref) => ref.blobId).sort(), 'every blob with a shard on the down backend is retried later');
    for (const retryAtMs of failed.values()) assert.ok(retryAtMs >= started + 1_000 && retryAtMs <= Date.now() + 1_000);
    assert.deepEqual(backends.map((backend) => backend.removeCalls), [1, 1, 1], 'one call per backend for the whole batch');
    assert.equal(backends[0]!.objects().size, 0);
    assert.equal(backends[1]!.objects().size, 0);

    // Within the backoff: no request at all to the down backend.
    await store.removeMany(refs);
    assert.equal(backends[2]!.removeCalls, 1);

    backends[2]!.setDown(false);
    await new Promise((resolve) => setTimeout(resolve, 1_100));
    assert.equal((await store.removeMany(refs)).size, 0);
    assert.equal(backends[2]!.removeCalls, 2);
    assert.equal(backends[2]!.objects().size, 0);
  } finally {
    await rm(root, { recursive: true, force: true });
  }
});
