/**
 * Metadata replication, round 6 (docs/PERFORMANCE.md "Metadata replication,
 * round 6"): the serving thread hands each inline body it writes to the
 * segment cutter (src/replication/inline-body-ring.ts), which ships it
 * without reading the row back from SQLite — only where that is exact. A
 * row another writer (a worker process, the CLI) changed after the serving
 * thread wrote it, a row deleted since, and a write whose savepoint or batch
 * was rolled back never ship the handed-over bytes: the restored database is
 * the source, byte for byte. The segment format does not change.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import Database from 'better-sqlite3';
import { MemoryBackend } from '../src/backend/memory-backend.ts';
import type { ReplicationConfig } from '../src/config/config.ts';
import { SqliteMetadataStore } from '../src/meta/sqlite/sqlite-metadata-store.ts';
import { CHANGES_TABLE, installChangeCapture, lastChangeNumber } from '../src/replication/change-capture.ts';
import { bodyRecords, InlineBodyCollector, RING_BYTES, type InlineDataTap } from '../src/replication/inline-body-ring.ts';
import { MetadataReplicator } from '../src/replication/replicator.ts';
import { restoreMetadata } from '../src/replication/restore.ts';
import { cutEncodedSegment, cutSegment, decodeSegment, type Segment } from '../src/replication/segment.ts';
import { silentLogger } from '../src/util/logger.ts';

const STORE_ID = '6f0e0d0c-0b0a-4900-8800-070605040306';

let root: string;

before(async () => {
  root = await mkdtemp(join(tmpdir(), 'talus-repl-round6-'));
});

after(async () => {
  await rm(root, { recursive: true, force: true });
});

/** Every replicated table's rows, comparable (the change log and the epoch aside). */
function dump(path: string): string {
  const db = new Database(path, { readonly: true });
  try {
    const tables = db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name != ? ORDER BY name").pluck().all(CHANGES_TABLE) as string[];
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

/** A segment's changes in a comparable form, sorted (the joined cut groups them by table). */
function comparable(segment: Segment): { head: unknown; changes: string[] } {
  const cell = (value: unknown): unknown => (Buffer.isBuffer(value) ? { bytes: value.toString('base64') } : value);
  return {
    head: { from: segment.from, to: segment.to, complete: segment.complete, columns: segment.columns },
    changes: segment.changes.map((change) => JSON.stringify([change.table, change.key, change.row === null ? null : change.row.map(cell)])).sort(),
  };
}

function putter(meta: SqliteMetadataStore, bucket: string): (key: string, body: Buffer, versionId?: string) => Promise<string> {
  return async (key, body, versionId = 'null') => {
    const outcome = await meta.commitVersion({
      version: {
        bucket, key, versionId, isDeleteMarker: false, lastModifiedMs: 2, sizeBytes: body.length, etag: '"e"', ownerId: 'o',
        system: { contentType: 'application/octet-stream' }, userMetadata: {}, checksum: null, tags: [], parts: null, segments: [], inlineData: body,
      },
      conditions: {},
    });
    return outcome.status;
  };
}

function seqOf(db: Database.Database, bucket: string, key: string): number {
  return db.prepare('SELECT seq FROM versions WHERE bucket = ? AND key = ? AND is_latest = 1').pluck().get(bucket, key) as number;
}

test('the serving thread\'s bodies ship where exact; a row another writer changed, or deleted, ships as SQLite has it; restore is bit-exact', async () => {
  const backends = [new MemoryBackend('m0'), new MemoryBackend('m1'), new MemoryBackend('m2')];
  const config: ReplicationConfig = { backends: ['m0', 'm1', 'm2'], lagMs: 60_000, snapshotIntervalMs: 3_600_000, writeQuorum: 2, key: undefined, mode: 'async' };
  const databasePath = join(root, 'meta.db');
  const meta = new SqliteMetadataStore(databasePath);
  await meta.setStoreIdentity({ id: STORE_ID, epoch: 1 });
  await meta.createBucket({ name: 'plain', createdMs: 1, ownerId: 'o', versioning: 'Unversioned', tags: null });
  await meta.createBucket({ name: 'versioned', createdMs: 1, ownerId: 'o', versioning: 'Enabled', tags: null });
  const replicator = new MetadataReplicator({ databasePath, scratchDirectory: join(root, 'scratch'), targets: backends, storeId: STORE_ID, epoch: 1, config, logger: silentLogger, readConnection: meta.database });
  assert.ok(replicator.inlineDataTap !== undefined, 'a replicator reading on the store\'s connection offers the tap');
  meta.setInlineDataTap(replicator.inlineDataTap);
  // Another process's connection (a --workers process, `talus users`): its writes are logged, never handed over.
  const other = new Database(databasePath);
  try {
    await replicator.snapshotNow();
    const plain = putter(meta, 'plain');
    const versioned = putter(meta, 'versioned');
    for (let i = 0; i < 40; i++) assert.equal(await plain(`new/${i}`, randomBytes(4096)), 'committed');
    // Overwrites of an unversioned key rewrite its row in place (the same seq, new bytes), twice in a round.
    for (let i = 0; i < 10; i++) assert.equal(await plain(`new/${i}`, randomBytes(3000 + i)), 'committed');
    assert.equal(await plain('new/0', randomBytes(100)), 'committed');
    for (let i = 0; i < 10; i++) assert.equal(await versioned('v', randomBytes(512 + i), `v${i}`), 'committed');
    await meta.deleteVersion('versioned', 'v', 'v3');
    // The serving thread wrote these rows last; then another writer changes one and deletes another's body.
    const foreignBytes = randomBytes(4096);
    other.prepare('UPDATE inline_data SET data = ? WHERE seq = ?').run(foreignBytes, seqOf(meta.database, 'plain', 'new/20'));
    other.prepare('DELETE FROM inline_data WHERE seq = ?').run(seqOf(meta.database, 'plain', 'new/21'));
    // And the serving thread writes a row again after the other writer: its bytes are the row's again.
    other.prepare('UPDATE inline_data SET data = ? WHERE seq = ?').run(randomBytes(10), seqOf(meta.database, 'plain', 'new/22'));
    assert.equal(await plain('new/22', randomBytes(4096)), 'committed');

    await replicator.shipNow();
    const status = replicator.status;
    assert.equal(status.shippedPosition, replicator.committedPosition);
    // 40 rows of `plain` (less the two the other writer touched last) and the 10 versions, less the one deleted.
    assert.equal(status.bodiesFromServingThread, 38 + 9);

    const dataDir = join(root, 'restored');
    await restoreMetadata({ dataDir, backends, key: undefined, partial: false });
    assert.equal(dump(join(dataDir, 'meta.db')), dump(databasePath));
    const restored = new Database(join(dataDir, 'meta.db'), { readonly: true });
    try {
      assert.deepEqual(restored.prepare('SELECT data FROM inline_data WHERE seq = ?').pluck().get(seqOf(meta.database, 'plain', 'new/20')), foreignBytes);
      assert.equal(restored.prepare('SELECT count(*) FROM inline_data WHERE seq = ?').pluck().get(seqOf(meta.database, 'plain', 'new/21')), 0);
    } finally {
      restored.close();
    }
  } finally {
    other.close();
    await replicator.stop(0);
    await meta.close();
  }
});

test('a write rolled back with its savepoint is never handed over, and the cut is the one read from SQLite', async () => {
  const path = join(root, 'rollback.db');
  const meta = new SqliteMetadataStore(path, { soleWriter: true });
  const installer = new Database(path);
  installChangeCapture(installer);
  installer.close();
  const reader = new Database(path, { readonly: true });
  try {
    await meta.createBucket({ name: 'b', createdMs: 1, ownerId: 'o', versioning: 'Unversioned', tags: null });
    const changeNumber = meta.database.prepare('SELECT seq FROM sqlite_sequence WHERE name = ?').pluck().bind(CHANGES_TABLE);
    const collector = new InlineBodyCollector(() => changeNumber.get() as number);
    const refused = randomBytes(64);
    // A tap that fails a mutation right after its body was written and handed over (as a later statement of the mutation could).
    const failing: InlineDataTap = {
      written: (seq, data) => {
        collector.written(seq, data);
        if (Buffer.compare(Buffer.from(data), refused) === 0) throw new Error('refused after the write');
      },
      mark: () => collector.mark(),
      rewind: (mark) => collector.rewind(mark),
      publish: () => collector.publish(),
      abort: () => collector.abort(),
    };
    meta.setInlineDataTap(failing);
    const put = putter(meta, 'b');
    const from = lastChangeNumber(reader);
    const kept = randomBytes(64);
    // In one batch: the kept write, then the refused overwrite of the same row, then a new row.
    const outcomes = await Promise.allSettled([put('k', kept), put('k', refused), put('other', randomBytes(64))]);
    assert.deepEqual(outcomes.map((outcome) => outcome.status), ['fulfilled', 'rejected', 'fulfilled']);
    const range = collector.handOver();
    assert.ok(range !== undefined);
    const records = bodyRecords(collector.memory, range);
    const seq = seqOf(meta.database, 'b', 'k');
    assert.deepEqual(records.get(seq)?.body, kept, 'the record of the rolled-back write was taken back');
    assert.equal(records.size, 2);
    const fast = cutEncodedSegment(reader, from, undefined, records)!;
    assert.equal(fast.bodiesFromRecords, 2);
    assert.deepEqual(comparable(decodeSegment(fast.payload)), comparable(cutSegment(reader, from)!));
  } finally {
    reader.close();
    await meta.close();
  }
});

test('the collector keeps a committed batch, takes back an aborted one, drops what does not fit, and reuses the room released', () => {
  let change = 0;
  // A small ring, so that records wrap round it.
  const ringBytes = 64 * 1024;
  const collector = new InlineBodyCollector(() => ++change, ringBytes);
  const body = (byte: number, bytes = 4096): Buffer => Buffer.alloc(bytes, byte);
  collector.written(1, body(1));
  const mark = collector.mark();
  collector.written(2, body(2));
  collector.rewind(mark);
  collector.publish();
  collector.written(3, body(3));
  collector.abort();
  let range = collector.handOver()!;
  let records = bodyRecords(collector.memory, range);
  assert.deepEqual([...records.keys()], [1]);
  assert.deepEqual(records.get(1), { change: 1, body: body(1) });
  assert.equal(collector.handOver(), undefined, 'nothing kept since');

  // The room handed over is not reused before it is released: past it, records are dropped (read back), never waited for.
  for (let seq = 10; seq < 40; seq++) collector.written(seq, body(seq));
  collector.publish();
  assert.ok(collector.dropped > 0);
  assert.deepEqual(bodyRecords(collector.memory, range).get(1)?.body, body(1), 'the range handed over is intact');
  const second = collector.handOver()!;
  records = bodyRecords(collector.memory, second);
  assert.equal(records.size + collector.dropped, 30);
  for (const [seq, record] of records) assert.deepEqual(record.body, body(seq));
  collector.release(range.to);
  collector.release(second.to);
  // Round and round the ring: every record kept reads back, across the wraps, with a rewind across one.
  const dropped = collector.dropped;
  for (let round = 0; round < 5; round++) {
    for (let seq = 0; seq < 10; seq++) collector.written(seq, body(round * 10 + seq, 1000 + seq * 500));
    const across = collector.mark();
    collector.written(99, body(99, 5000));
    collector.rewind(across);
    collector.publish();
    range = collector.handOver()!;
    records = bodyRecords(collector.memory, range);
    assert.deepEqual([...records.keys()].sort((a, b) => a - b), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    for (const [seq, record] of records) assert.deepEqual(record.body, body(round * 10 + seq, 1000 + seq * 500));
    collector.release(range.to);
  }
  assert.equal(collector.dropped, dropped);
  assert.ok(range.to > 2 * ringBytes, 'the records went round the ring');
  assert.equal(RING_BYTES % 8, 0);
});

test('random writes by the serving thread and another connection: every cut with handed-over bodies is the cut read from SQLite', async () => {
  const path = join(root, 'random.db');
  const meta = new SqliteMetadataStore(path);
  const installer = new Database(path);
  installChangeCapture(installer);
  installer.close();
  const reader = new Database(path, { readonly: true });
  const other = new Database(path);
  try {
    await meta.createBucket({ name: 'p', createdMs: 1, ownerId: 'o', versioning: 'Unversioned', tags: null });
    await meta.createBucket({ name: 'v', createdMs: 1, ownerId: 'o', versioning: 'Enabled', tags: null });
    const changeNumber = meta.database.prepare('SELECT seq FROM sqlite_sequence WHERE name = ?').pluck().bind(CHANGES_TABLE);
    const collector = new InlineBodyCollector(() => changeNumber.get() as number);
    meta.setInlineDataTap(collector);
    const plain = putter(meta, 'p');
    const versioned = putter(meta, 'v');
    let seed = 6;
    const random = (n: number): number => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed % n;
    };
    let from = lastChangeNumber(reader);
    let fromRecords = 0;
    for (let round = 0; round < 8; round++) {
      // A few batches of concurrent writes, and the other connection's between them.
      for (let batch = 0; batch < 6; batch++) {
        const writes: Promise<unknown>[] = [];
        for (let i = 0; i < 8; i++) {
          const pick = random(10);
          const body = randomBytes(random(5000));
          if (pick < 5) writes.push(plain(`k${random(30)}`, body));
          else if (pick < 8) writes.push(versioned(`k${random(5)}`, body, `r${round}b${batch}i${i}`));
          else {
            // A version and its inline bytes deleted (of those committed before this batch).
            const row = meta.database.prepare("SELECT key, version_id FROM versions WHERE bucket = 'v' ORDER BY seq LIMIT 1 OFFSET ?").get(random(20)) as { key: string; version_id: string } | undefined;
            if (row !== undefined) writes.push(meta.deleteVersion('v', row.key, row.version_id).catch(() => undefined));
          }
        }
        await Promise.all(writes);
        const seqs = other.prepare('SELECT seq FROM inline_data').pluck().all() as number[];
        if (seqs.length > 0 && random(3) === 0) {
          const seq = seqs[random(seqs.length)]!;
          if (random(2) === 0) other.prepare('UPDATE inline_data SET data = ? WHERE seq = ?').run(randomBytes(random(3000)), seq);
          else other.prepare('DELETE FROM inline_data WHERE seq = ?').run(seq);
        }
      }
      const range = collector.handOver();
      const fast = cutEncodedSegment(reader, from, undefined, range === undefined ? undefined : bodyRecords(collector.memory, range))!;
      if (range !== undefined) collector.release(range.to);
      fromRecords += fast.bodiesFromRecords;
      assert.deepEqual(comparable(decodeSegment(fast.payload)), comparable(cutSegment(reader, from, fast.to - from)!), `round ${round}`);
      from = fast.to;
    }
    assert.ok(fromRecords > 0, 'bodies were handed over');
  } finally {
    other.close();
    reader.close();
    await meta.close();
  }
});
