/**
 * Metadata replication, round 7 (docs/PERFORMANCE.md "Metadata replication,
 * round 7"): the segment cutter no longer writes each segment's payload out
 * whole before compressing it (~21 MB kept resident at a quiet run's rate,
 * beside the ring holding the same bodies); it compresses the document and
 * the bodies where they are through one 4 MiB chunk. The replica object's
 * bytes are those one input gives, byte for byte; and the inline body ring
 * may be far smaller than a burst: what it drops is read from SQLite, and
 * the segment is the one a cut reading every row from SQLite gives. The
 * ring is smaller (24 MiB), and one filling up starts a round before the lag.
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
import { bodyRecords, InlineBodyCollector, type BodyRecord } from '../src/replication/inline-body-ring.ts';
import { downloadSegmentObject, encodeSegmentObjectParts, REPLICATION_KEY_BYTES, SEGMENT_COMPRESSION_CHUNK_BYTES, uploadObject } from '../src/replication/replica-object.ts';
import { MetadataReplicator } from '../src/replication/replicator.ts';
import { restoreMetadata } from '../src/replication/restore.ts';
import { cutSegmentPayload, SegmentPayload } from '../src/replication/segment.ts';
import { silentLogger } from '../src/util/logger.ts';

const STORE_ID = '6f0e0d0c-0b0a-4900-8800-070605040307';

let root: string;

before(async () => {
  root = await mkdtemp(join(tmpdir(), 'talus-repl-round7-'));
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

function putter(meta: SqliteMetadataStore, bucket: string): (key: string, body: Buffer) => Promise<string> {
  return async (key, body) => {
    const outcome = await meta.commitVersion({
      version: {
        bucket, key, versionId: 'null', isDeleteMarker: false, lastModifiedMs: 2, sizeBytes: body.length, etag: '"e"', ownerId: 'o',
        system: { contentType: 'application/octet-stream' }, userMetadata: {}, checksum: null, tags: [], parts: null, segments: [], inlineData: body,
      },
      conditions: {},
    });
    return outcome.status;
  };
}

/** Bodies like the load generator's: 4 KiB views at spread offsets of one random buffer (they compress). */
function loadGeneratorBodies(count: number): Buffer[] {
  const window = randomBytes(8192);
  return Array.from({ length: count }, (_, i) => {
    const at = (i * 2654435761) % 4096;
    return window.subarray(at, at + 4096);
  });
}

test('a payload compressed through the chunk is the object one input gives, byte for byte; one that does not compress is stored as it is', async () => {
  const fields = { storeId: STORE_ID, epoch: 1, from: 10, to: 20, complete: true };
  // ~3 chunks of compressible bodies (the document in front, as a cut writes it), then random bodies.
  const compressible = loadGeneratorBodies(Math.ceil((2.5 * SEGMENT_COMPRESSION_CHUNK_BYTES) / 4096));
  const incompressible = Array.from({ length: 600 }, (_, i) => randomBytes(1000 + i * 7));
  for (const [name, blobs, compression] of [['compressible', compressible, 'brotli'], ['incompressible', incompressible, 'none']] as const) {
    const json = JSON.stringify({ format: 1, from: 10, to: 20, complete: true, columns: { inline_data: ['seq', 'data'] }, changes: blobs.map((_, i) => ['inline_data', [i], [i, { blob: i }]]) });
    const payload = new SegmentPayload(json, blobs);
    const whole = payload.writeOut();
    assert.equal(whole.length, payload.size);
    // What the payload's reader gives from any start is the written-out payload's tail.
    const tail = Buffer.alloc(5000);
    assert.equal(payload.reader(payload.size - 5000).read(tail), 5000);
    assert.deepEqual(tail, whole.subarray(payload.size - 5000));
    const inChunks = await encodeSegmentObjectParts(fields, payload, undefined, Buffer.allocUnsafe(SEGMENT_COMPRESSION_CHUNK_BYTES));
    const inOne = await encodeSegmentObjectParts(fields, whole, undefined);
    // Identity is about the compression ratio and the benchmarks' comparability, not compatibility: restore decodes
    // any valid brotli stream, and bodySha256 is over whatever bytes were produced.
    assert.deepEqual(Buffer.concat(inChunks), Buffer.concat(inOne), `${name}: the same object (so the same ratio as one input)`);
    const header = JSON.parse(inChunks[0]!.subarray(12).toString('utf8')) as { compression: string; plainBytes: number };
    assert.equal(header.compression, compression, name);
    assert.equal(header.plainBytes, payload.size);
    // Encrypted too, and read back by restore's reader.
    const key = randomBytes(REPLICATION_KEY_BYTES);
    const backend = new MemoryBackend('m');
    await uploadObject(backend, `segment-${name}`, await encodeSegmentObjectParts(fields, payload, key, Buffer.allocUnsafe(SEGMENT_COMPRESSION_CHUNK_BYTES)));
    const { plain } = await downloadSegmentObject(backend, `segment-${name}`, key, { kind: 'segment', storeId: STORE_ID });
    assert.deepEqual(plain, whole, `${name}: the payload read back`);
  }
});

test('a ring far smaller than the burst: the records that fit ship, the rest is read back, and the segment is the one read from SQLite byte for byte', async () => {
  const path = join(root, 'small-ring.db');
  const meta = new SqliteMetadataStore(path);
  const installer = new Database(path);
  installChangeCapture(installer);
  installer.close();
  const reader = new Database(path, { readonly: true });
  try {
    await meta.createBucket({ name: 'b', createdMs: 1, ownerId: 'o', versioning: 'Unversioned', tags: null });
    const changeNumber = meta.database.prepare('SELECT seq FROM sqlite_sequence WHERE name = ?').pluck().bind(CHANGES_TABLE);
    // 64 KiB: ~15 records of 4 KiB, against a burst of 400 (1.6 MB), twice round.
    const collector = new InlineBodyCollector(() => changeNumber.get() as number, 64 * 1024);
    meta.setInlineDataTap(collector);
    const put = putter(meta, 'b');
    const bodies = loadGeneratorBodies(400);
    let from = lastChangeNumber(reader);
    for (let round = 0; round < 2; round++) {
      const writes: Promise<string>[] = [];
      // New keys, then overwrites of most of them (twice for some: an earlier record is never the row's last change).
      for (let i = 0; i < 400; i++) writes.push(round === 0 ? put(`k${i}`, bodies[i]!) : put(`k${i % 300}`, randomBytes(100 + i)));
      assert.deepEqual(new Set(await Promise.all(writes)), new Set(['committed']));
      const range = collector.handOver();
      assert.ok(range !== undefined);
      const records = bodyRecords(collector.memory, range);
      const withRecords = cutSegmentPayload(reader, from, records)!;
      // Records that match nothing: the same cut, every row read back from SQLite.
      const stale = new Map<number, BodyRecord>([[-1, { change: -1, body: Buffer.alloc(0) }]]);
      const readBack = cutSegmentPayload(reader, from, stale)!;
      collector.release(range.to);
      assert.ok(withRecords.bodiesFromRecords > 0, `round ${round}: records shipped`);
      assert.equal(readBack.bodiesFromRecords, 0);
      assert.equal(withRecords.to, readBack.to);
      assert.deepEqual(withRecords.payload.writeOut(), readBack.payload.writeOut(), `round ${round}: byte for byte`);
      from = withRecords.to;
    }
    assert.ok(collector.dropped > 400, 'most records did not fit');
  } finally {
    reader.close();
    await meta.close();
  }
});

test('a replicating store with a ring far smaller than its bursts ships every change, partly read back, and restores bit-exact', async () => {
  const backends = [new MemoryBackend('m0'), new MemoryBackend('m1'), new MemoryBackend('m2')];
  const config: ReplicationConfig = { backends: ['m0', 'm1', 'm2'], lagMs: 60_000, snapshotIntervalMs: 3_600_000, writeQuorum: 2, key: undefined, mode: 'async' };
  const databasePath = join(root, 'meta.db');
  const meta = new SqliteMetadataStore(databasePath);
  await meta.setStoreIdentity({ id: STORE_ID, epoch: 1 });
  await meta.createBucket({ name: 'b', createdMs: 1, ownerId: 'o', versioning: 'Unversioned', tags: null });
  const replicator = new MetadataReplicator({ databasePath, scratchDirectory: join(root, 'scratch'), targets: backends, storeId: STORE_ID, epoch: 1, config, logger: silentLogger, readConnection: meta.database, inlineRingBytes: 32 * 1024 });
  meta.setInlineDataTap(replicator.inlineDataTap);
  try {
    await replicator.snapshotNow();
    const put = putter(meta, 'b');
    let written = 0;
    for (let round = 0; round < 3; round++) {
      const bodies = loadGeneratorBodies(300);
      assert.deepEqual(new Set(await Promise.all(bodies.map((body, i) => put(`r${round}/${i}`, body)))), new Set(['committed']));
      written += bodies.length;
      await replicator.shipNow();
    }
    const status = replicator.status;
    assert.equal(status.shippedPosition, replicator.committedPosition);
    assert.ok(status.bodiesFromServingThread > 0 && status.bodiesFromServingThread < written, `some bodies handed over, the rest read back: ${status.bodiesFromServingThread} of ${written}`);
    const dataDir = join(root, 'restored');
    await restoreMetadata({ dataDir, backends, key: undefined, partial: false });
    assert.equal(dump(join(dataDir, 'meta.db')), dump(databasePath));
  } finally {
    await replicator.stop(0);
    await meta.close();
  }
});

test('deletes of inline rows in the same batches as their writes: every cut with handed-over bodies is the cut read from SQLite, byte for byte', async () => {
  const path = join(root, 'batch-random.db');
  const meta = new SqliteMetadataStore(path);
  const installer = new Database(path);
  installChangeCapture(installer);
  installer.close();
  const reader = new Database(path, { readonly: true });
  try {
    await meta.createBucket({ name: 'p', createdMs: 1, ownerId: 'o', versioning: 'Unversioned', tags: null });
    const changeNumber = meta.database.prepare('SELECT seq FROM sqlite_sequence WHERE name = ?').pluck().bind(CHANGES_TABLE);
    const collector = new InlineBodyCollector(() => changeNumber.get() as number);
    meta.setInlineDataTap(collector);
    const put = putter(meta, 'p');
    let seed = 7;
    const random = (n: number): number => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed % n;
    };
    let from = lastChangeNumber(reader);
    let fromRecords = 0;
    for (let round = 0; round < 8; round++) {
      for (let batch = 0; batch < 6; batch++) {
        // In one batch: writes, deletes of what they wrote (an untapped change of inline_data between two
        // tapped ones; a deleted version's row number may be taken again by the next insert), writes again.
        const writes: Promise<unknown>[] = [];
        for (let i = 0; i < 10; i++) {
          const key = `k${random(6)}`;
          if (random(3) === 0) writes.push(meta.deleteVersion('p', key, 'null').catch(() => undefined));
          else writes.push(put(key, randomBytes(random(3000))));
        }
        await Promise.all(writes);
      }
      const range = collector.handOver();
      const records = range === undefined ? undefined : bodyRecords(collector.memory, range);
      const withRecords = cutSegmentPayload(reader, from, records)!;
      const readBack = cutSegmentPayload(reader, from, new Map([[-1, { change: -1, body: Buffer.alloc(0) }]]))!;
      if (range !== undefined) collector.release(range.to);
      fromRecords += withRecords.bodiesFromRecords;
      assert.deepEqual(withRecords.payload.writeOut(), readBack.payload.writeOut(), `round ${round}`);
      from = withRecords.to;
    }
    assert.ok(fromRecords > 0, 'bodies were handed over');
  } finally {
    reader.close();
    await meta.close();
  }
});

test('a ring filling up before the lag is up starts a round at once, without waiting for the lag', async () => {
  const backends = [new MemoryBackend('m0'), new MemoryBackend('m1'), new MemoryBackend('m2')];
  // A lag no test waits for: only the ring's filling up can ship the burst within the test.
  const config: ReplicationConfig = { backends: ['m0', 'm1', 'm2'], lagMs: 600_000, snapshotIntervalMs: 3_600_000, writeQuorum: 2, key: undefined, mode: 'async' };
  const databasePath = join(root, 'filling.db');
  const meta = new SqliteMetadataStore(databasePath);
  await meta.setStoreIdentity({ id: STORE_ID, epoch: 1 });
  await meta.createBucket({ name: 'b', createdMs: 1, ownerId: 'o', versioning: 'Unversioned', tags: null });
  const ringBytes = 256 * 1024;
  const replicator = new MetadataReplicator({ databasePath, scratchDirectory: join(root, 'scratch-filling'), targets: backends, storeId: STORE_ID, epoch: 1, config, logger: silentLogger, readConnection: meta.database, inlineRingBytes: ringBytes });
  meta.setInlineDataTap(replicator.inlineDataTap);
  const until = async (what: string, done: () => boolean): Promise<void> => {
    const deadline = Date.now() + 60_000;
    while (!done()) {
      assert.ok(Date.now() < deadline, `timed out waiting for ${what}`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  };
  try {
    replicator.start();
    // The first round runs at start (and the first snapshot); the next one is a lag away.
    await until('the first round', () => replicator.status.snapshotPosition !== undefined && replicator.status.shippedPosition === replicator.committedPosition);
    const before = replicator.status;
    const put = putter(meta, 'b');
    // Batches of 8 PUTs of 4 KiB until the ring's early share has passed (~48 PUTs), one batch a turn.
    for (let batch = 0; (batch + 1) * 8 * 4120 <= ringBytes * 0.9; batch++) {
      const bodies = loadGeneratorBodies(8);
      assert.deepEqual(new Set(await Promise.all(bodies.map((body, i) => put(`k${batch}/${i}`, body)))), new Set(['committed']));
    }
    await until('a round before the lag', () => replicator.status.shippedPosition > before.shippedPosition);
    const status = replicator.status;
    assert.ok(status.segmentsShipped > before.segmentsShipped);
    assert.ok(status.bodiesFromServingThread > 0, 'the early round shipped the ring\'s records');
  } finally {
    await replicator.stop(0);
    await meta.close();
  }
});
