/**
 * Metadata replication at the unit level: a real SQLite store, its changes
 * shipped as segments to three in-memory backends, and restores from them —
 * exact when every replica is there, using another backend's copy when one
 * is damaged, and never silently wrong when a segment is missing or damaged
 * everywhere: refused, or (--partial) stopped at the last complete point.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import Database from 'better-sqlite3';
import { MemoryBackend } from '../src/backend/memory-backend.ts';
import type { Backend } from '../src/backend/backend.ts';
import type { ReplicationConfig } from '../src/config/config.ts';
import { SqliteMetadataStore } from '../src/meta/sqlite/sqlite-metadata-store.ts';
import { REPLICA_PREFIX, parseReplicaKey } from '../src/replication/replica-names.ts';
import { MetadataReplicator } from '../src/replication/replicator.ts';
import { downloadSegmentObject } from '../src/replication/replica-object.ts';
import { SEGMENT_CHANGES_MAX } from '../src/replication/segment.ts';
import { restoreMetadata, RestoreError } from '../src/replication/restore.ts';
import { silentLogger } from '../src/util/logger.ts';

const STORE_ID = '0f0e0d0c-0b0a-4900-8800-070605040302';

/** Every replicated table's rows, in a comparable form (the change log and the identity settings aside). */
function dump(path: string): string {
  const db = new Database(path, { readonly: true });
  try {
    const tables = db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name != 'talus_replication_changes' ORDER BY name").pluck().all() as string[];
    const out: Record<string, unknown[]> = {};
    for (const table of tables) {
      const rows = db.prepare(`SELECT * FROM "${table}" ORDER BY 1, 2`).all() as Record<string, unknown>[];
      out[table] = rows
        .filter((row) => !(table === 'settings' && row['name'] === 'store_epoch'))
        .map((row) => Object.fromEntries(Object.entries(row).map(([k, v]) => [k, Buffer.isBuffer(v) ? v.toString('base64') : v])));
    }
    return JSON.stringify(out);
  } finally {
    db.close();
  }
}

async function keysOf(backend: Backend): Promise<string[]> {
  const keys: string[] = [];
  for await (const key of backend.list(REPLICA_PREFIX)) keys.push(key);
  return keys.sort();
}

async function readObject(backend: Backend, key: string): Promise<Buffer> {
  const size = (await backend.stat(key))!;
  const chunks: Buffer[] = [];
  for await (const chunk of await backend.read(key, 0, size)) chunks.push(chunk);
  return Buffer.concat(chunks);
}

async function replaceObject(backend: Backend, key: string, bytes: Buffer): Promise<void> {
  const writer = backend.create(key, bytes.length);
  await writer.write(bytes);
  await writer.commit();
}

describe('segments: ordering and verification', () => {
  let root: string;
  const backends = [new MemoryBackend('m0'), new MemoryBackend('m1'), new MemoryBackend('m2')];
  const key = randomBytes(32);
  const config: ReplicationConfig = { backends: ['m0', 'm1', 'm2'], lagMs: 60_000, snapshotIntervalMs: 3_600_000, writeQuorum: 2, key, mode: 'async' };
  /** The database's rows after each shipped segment, by the segment's end position. */
  const states = new Map<number, string>();
  let segmentKeys: string[] = [];
  let databasePath: string;

  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'talus-repl-unit-'));
    databasePath = join(root, 'meta.db');
    const meta = new SqliteMetadataStore(databasePath);
    await meta.setStoreIdentity({ id: STORE_ID, epoch: 3 });
    await meta.createBucket({ name: 'b', createdMs: 1, ownerId: 'o', versioning: 'Enabled', tags: null });
    const replicator = new MetadataReplicator({ databasePath, scratchDirectory: join(root, 'scratch'), targets: backends, storeId: STORE_ID, epoch: 3, config, logger: silentLogger });
    await replicator.snapshotNow();
    for (let round = 0; round < 4; round++) {
      for (let i = 0; i < 5; i++) {
        await meta.commitVersion({
          version: {
            bucket: 'b', key: `k${i}`, versionId: `v${round}-${i}`, isDeleteMarker: false, sizeBytes: 3, etag: `"e${round}"`,
            lastModifiedMs: round, ownerId: 'o', segments: [], metadata: {}, inlineData: Buffer.from([round, i, 7]),
          } as never,
          conditions: {},
        });
      }
      if (round === 2) await meta.deleteVersion('b', 'k0', 'v1-0');
      await replicator.shipNow();
      states.set(replicator.status.shippedPosition, dump(databasePath));
    }
    await replicator.stop(0);
    await meta.close();
    segmentKeys = (await keysOf(backends[0]!)).filter((name) => parseReplicaKey(name)?.kind === 'segment');
    assert.equal(segmentKeys.length, 4);
  });

  after(async () => {
    await rm(root, { recursive: true, force: true });
  });

  const restoreInto = async (name: string, options: { partial?: boolean; key?: Buffer } = {}) => {
    const dataDir = join(root, name);
    const report = await restoreMetadata({ dataDir, backends, key: options.key ?? key, partial: options.partial ?? false });
    return { dataDir, report };
  };

  test('a restore replays the snapshot and every segment in order: the exact database', async () => {
    const before = await keysOf(backends[0]!);
    const { dataDir, report } = await restoreInto('all');
    assert.equal(report.segmentsApplied, 4);
    // Restore only reads the backends.
    assert.deepEqual(await keysOf(backends[0]!), before);
    // The restored store numbers its changes from a new range, past every replica's.
    const restored = new Database(join(dataDir, 'meta.db'), { readonly: true });
    try {
      assert.equal(restored.prepare("SELECT seq FROM sqlite_sequence WHERE name = 'talus_replication_changes'").pluck().get(), parseReplicaKey(segmentKeys.at(-1)!)!.to + 2 ** 40);
    } finally {
      restored.close();
    }
    assert.equal(dump(join(dataDir, 'meta.db')), dump(databasePath));
  });

  test('a segment damaged on one backend is read from another', async () => {
    const target = segmentKeys[1]!;
    const original = await readObject(backends[0]!, target);
    const damaged = Buffer.from(original);
    damaged[damaged.length - 40]! ^= 0xff;
    await replaceObject(backends[0]!, target, damaged);
    try {
      const { dataDir, report } = await restoreInto('one-damaged');
      assert.equal(report.segmentsApplied, 4);
      assert.equal(dump(join(dataDir, 'meta.db')), dump(databasePath));
    } finally {
      await replaceObject(backends[0]!, target, original);
    }
  });

  test('a segment damaged everywhere: refused; --partial stops at the last complete point, exactly', async () => {
    const target = segmentKeys[2]!;
    const originals = await Promise.all(backends.map((backend) => readObject(backend, target)));
    for (const backend of backends) {
      const damaged = Buffer.from(originals[0]!);
      damaged[damaged.length - 40]! ^= 0x01;
      await replaceObject(backend, target, damaged);
    }
    try {
      await assert.rejects(restoreInto('refused'), (error: unknown) => error instanceof RestoreError && /could not be used/.test(error.message));
      const { dataDir, report } = await restoreInto('partial', { partial: true });
      assert.equal(report.segmentsApplied, 2);
      const end = parseReplicaKey(segmentKeys[1]!)!.to;
      assert.equal(report.position, end);
      assert.equal(dump(join(dataDir, 'meta.db')), states.get(end));
    } finally {
      for (const [i, backend] of backends.entries()) await replaceObject(backend, target, originals[i]!);
    }
  });

  test('a segment missing everywhere: refused, never skipped', async () => {
    const target = segmentKeys[1]!;
    const originals = await Promise.all(backends.map((backend) => readObject(backend, target)));
    for (const backend of backends) await backend.remove([target]);
    try {
      await assert.rejects(restoreInto('missing'), RestoreError);
      const { dataDir, report } = await restoreInto('missing-partial', { partial: true });
      assert.equal(report.segmentsApplied, 1);
      assert.equal(dump(join(dataDir, 'meta.db')), states.get(parseReplicaKey(segmentKeys[0]!)!.to));
    } finally {
      for (const [i, backend] of backends.entries()) await replaceObject(backend, target, originals[i]!);
    }
  });

  test('the wrong key reads nothing', async () => {
    await assert.rejects(restoreInto('wrong-key', { key: randomBytes(32) }), RestoreError);
  });

  test('a snapshot on a quorum deletes the replicas it supersedes', async () => {
    const meta = new SqliteMetadataStore(databasePath);
    const replicator = new MetadataReplicator({ databasePath, scratchDirectory: join(root, 'scratch'), targets: backends, storeId: STORE_ID, epoch: 4, config, logger: silentLogger });
    try {
      await meta.createBucket({ name: 'later', createdMs: 2, ownerId: 'o', versioning: 'Unversioned', tags: null });
      await replicator.shipNow();
      const position = await replicator.snapshotNow();
      for (const backend of backends) {
        const names = (await keysOf(backend)).map((name) => parseReplicaKey(name)!);
        assert.deepEqual(names.map((name) => [name.kind, name.epoch, name.to]), [['snapshot', 4, position]]);
      }
    } finally {
      await replicator.stop(0);
      await meta.close();
    }
    const { dataDir, report } = await restoreInto('after-compaction');
    assert.equal(report.segmentsApplied, 0);
    assert.equal(dump(join(dataDir, 'meta.db')), dump(databasePath));
  });
});

describe('segments cut short by a backlog', () => {
  test('are marked partial, and a restore never ends on one', async () => {
    const root = await mkdtemp(join(tmpdir(), 'talus-repl-partial-'));
    const backends = [new MemoryBackend('p0'), new MemoryBackend('p1')];
    const config: ReplicationConfig = { backends: ['p0', 'p1'], lagMs: 60_000, snapshotIntervalMs: 3_600_000, writeQuorum: 2, key: undefined, mode: 'async' };
    const databasePath = join(root, 'meta.db');
    try {
      const meta = new SqliteMetadataStore(databasePath);
      await meta.setStoreIdentity({ id: STORE_ID, epoch: 1 });
      const replicator = new MetadataReplicator({ databasePath, scratchDirectory: join(root, 'scratch'), targets: backends, storeId: STORE_ID, epoch: 1, config, logger: silentLogger });
      await replicator.snapshotNow();
      const atSnapshot = dump(databasePath);
      // One transaction of more changes than a segment holds (SEGMENT_CHANGES_MAX).
      const insert = meta.database.prepare('INSERT INTO settings (name, value) VALUES (?, ?)');
      meta.database.transaction(() => {
        for (let i = 0; i < SEGMENT_CHANGES_MAX + 500; i++) insert.run(`bulk-${i}`, String(i));
      })();
      await replicator.shipNow();
      await replicator.stop(0);
      await meta.close();
      const segments = (await keysOf(backends[0]!)).map((name) => parseReplicaKey(name)!).filter((name) => name.kind === 'segment');
      assert.equal(segments.length, 2);
      const { header } = await downloadSegmentObject(backends[0]!, segments[0]!.key, undefined, {});
      assert.equal(header.complete, false);
      // The name says so too: a complete segment of the same range (a later round's) never overwrites it, nor it the complete one.
      assert.match(segments[0]!.key, /-partial$/);
      assert.equal(segments[0]!.partial, true);
      assert.equal(segments[1]!.partial, undefined);
      const completeBody = await readObject(backends[0]!, segments[1]!.key);
      const misnamed = segments[1]!.key + '-partial';
      await replaceObject(backends[0]!, misnamed, completeBody);
      await assert.rejects(downloadSegmentObject(backends[0]!, misnamed, undefined, { complete: false }), /header says complete = true/);
      await backends[0]!.remove([misnamed]);

      // Whole: exact.
      const whole = await restoreMetadata({ dataDir: join(root, 'whole'), backends, key: undefined });
      assert.equal(whole.segmentsApplied, 2);
      assert.equal(dump(join(root, 'whole', 'meta.db')), dump(databasePath));
      // Without the complete segment after it, the partial one is not applied: the snapshot's state, exactly.
      for (const backend of backends) await backend.remove([segments[1]!.key]);
      await assert.rejects(restoreMetadata({ dataDir: join(root, 'refused'), backends, key: undefined }), RestoreError);
      const partial = await restoreMetadata({ dataDir: join(root, 'partial'), backends, key: undefined, partial: true });
      assert.equal(partial.segmentsApplied, 0);
      assert.equal(dump(join(root, 'partial', 'meta.db')), atSnapshot);
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });
});
