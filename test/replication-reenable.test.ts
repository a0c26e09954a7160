/**
 * Replication turned off for a while, then on again. Change numbers never
 * go back (before: dropping the log table reset SQLite's AUTOINCREMENT, the
 * new timeline was numbered from 1, and a restore silently returned the
 * state from before replication was turned off). The new timeline does not
 * chain onto the old one across the changes made while it was off: until
 * its snapshot is on the backends, restore refuses; after, it returns
 * everything. And a restore counts replicas of a newer epoch as newer
 * whatever their numbers (a timeline renumbered from 1 by an older Talus).
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import Database from 'better-sqlite3';
import { MemoryBackend } from '../src/backend/memory-backend.ts';
import type { ReplicationConfig } from '../src/config/config.ts';
import { SqliteMetadataStore } from '../src/meta/sqlite/sqlite-metadata-store.ts';
import { CHANGES_TABLE, lastChangeNumber, removeChangeCapture } from '../src/replication/change-capture.ts';
import { MetadataReplicator } from '../src/replication/replicator.ts';
import { restoreMetadata, RestoreError } from '../src/replication/restore.ts';
import { silentLogger } from '../src/util/logger.ts';

const STORE_ID = '0f0e0d0c-0b0a-4900-8800-070605040302';
const CONFIG = { backends: ['m0', 'm1', 'm2'], lagMs: 60_000, snapshotIntervalMs: 3_600_000, writeQuorum: 2, key: undefined, mode: 'async' } as unknown as ReplicationConfig;

async function scenario(root: string, whileOff: (db: Database.Database) => void): Promise<{ backends: MemoryBackend[]; meta: SqliteMetadataStore; before: number; second: MetadataReplicator }> {
  const databasePath = join(root, 'meta.db');
  const backends = [new MemoryBackend('m0'), new MemoryBackend('m1'), new MemoryBackend('m2')];
  const meta = new SqliteMetadataStore(databasePath);
  await meta.setStoreIdentity({ id: STORE_ID, epoch: 1 });
  const bucket = (name: string): Promise<unknown> => meta.createBucket({ name, createdMs: 1, ownerId: 'o', versioning: 'Enabled', tags: null });
  const replicator = (epoch: number): MetadataReplicator =>
    new MetadataReplicator({ databasePath, scratchDirectory: join(root, 'scratch'), targets: backends, storeId: STORE_ID, epoch, config: CONFIG, logger: silentLogger, readConnection: meta.database });
  const first = replicator(1);
  for (let i = 0; i < 5; i++) await bucket(`old-${i}`);
  await first.snapshotNow();
  for (let i = 0; i < 20; i++) await bucket(`old-more-${i}`);
  await first.shipNow();
  const before = lastChangeNumber(meta.database);
  await first.stop();
  // A start without [replication] (openReplication removes the capture), and a write meanwhile.
  removeChangeCapture(meta.database);
  whileOff(meta.database);
  await bucket('made-while-off');
  // Replication configured again: a later start, epoch 2, whose first snapshot is not on the backends yet.
  const second = replicator(2);
  await bucket('made-after-reenable');
  await second.shipNow();
  return { backends, meta, before, second };
}

async function restoredBuckets(backends: MemoryBackend[]): Promise<string[]> {
  const target = await mkdtemp(join(tmpdir(), 'talus-reenable-restore-'));
  try {
    await restoreMetadata({ dataDir: target, backends, key: undefined });
    const restored = new Database(join(target, 'meta.db'), { readonly: true });
    try {
      // Versions committed after the restore are numbered past any the old server committed (recover --scan orders by them).
      assert.ok((restored.prepare("SELECT seq FROM sqlite_sequence WHERE name = 'versions'").pluck().get() as number) >= 2 ** 40);
      return restored.prepare('SELECT name FROM buckets ORDER BY name').pluck().all() as string[];
    } finally {
      restored.close();
    }
  } finally {
    await rm(target, { recursive: true, force: true });
  }
}

test('replication off then on: numbers go on, restore refuses until the new snapshot, then returns everything', { timeout: 60_000 }, async () => {
  const root = await mkdtemp(join(tmpdir(), 'talus-reenable-'));
  try {
    const { backends, meta, before, second } = await scenario(root, () => undefined);
    assert.ok(lastChangeNumber(meta.database) > before, `change numbers go on after ${before}, not from 1 (now ${lastChangeNumber(meta.database)})`);
    await assert.rejects(restoredBuckets(backends), RestoreError, 'the new timeline is not chained onto the old one across the changes made while off');
    await second.snapshotNow();
    const names = await restoredBuckets(backends);
    assert.ok(names.includes('made-while-off') && names.includes('made-after-reenable'), names.join(' '));
    await second.stop();
    await meta.close();
  } finally {
    await rm(root, { recursive: true, force: true });
  }
});

test('a newer epoch numbered from 1 again (an older Talus dropped the log) is not silently ignored by restore', { timeout: 60_000 }, async () => {
  const root = await mkdtemp(join(tmpdir(), 'talus-reenable-'));
  try {
    const { backends, meta, before, second } = await scenario(root, (db) => db.exec(`DROP TABLE ${CHANGES_TABLE}`));
    assert.ok(lastChangeNumber(meta.database) < before, 'the simulated older Talus numbered from 1 again');
    await assert.rejects(restoredBuckets(backends), /could not be used/);
    await second.stop();
    await meta.close();
  } finally {
    await rm(root, { recursive: true, force: true });
  }
});
