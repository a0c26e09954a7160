/**
 * Object records of many-part versions stay linear in the part count: one
 * full record per version, a small pointer record for each other blob
 * (before: a full record under every blob, each listing every part, so a
 * version of N parts cost N² — 1,000 parts, 300 MiB and seconds of
 * event-loop stall; the gateway could be killed for memory and redo the
 * batch at every start). `recover --scan` rebuilds versions from the new
 * form, still reads the old one, and reports a version whose full record is
 * gone instead of inventing it.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import Database from 'better-sqlite3';
import type { Backend } from '../src/backend/backend.ts';
import { MemoryBackend } from '../src/backend/memory-backend.ts';
import { FsBlobStore } from '../src/blob/fs/fs-blob-store.ts';
import { SqliteMetadataStore } from '../src/meta/sqlite/sqlite-metadata-store.ts';
import { BackendHealth } from '../src/placement/backend-health.ts';
import { objectRecordKey } from '../src/placement/blob-location.ts';
import { PlacedBlobStore } from '../src/placement/placed-blob-store.ts';
import { decodeObjectRecord, encodeObjectRecord, type RecordedVersion } from '../src/replication/object-record.ts';
import { ObjectRecordWriter } from '../src/replication/record-writer.ts';
import { recoverFromScan } from '../src/replication/recover.ts';
import { silentLogger } from '../src/util/logger.ts';

const PARTS = 200;
const PART_BYTES = 1000;

test('a version of 200 parts gets records growing linearly; recover --scan rebuilds it, old-form records too', { timeout: 120_000 }, async () => {
  const root = await mkdtemp(join(tmpdir(), 'talus-record-size-'));
  let writer: ObjectRecordWriter | undefined;
  try {
    const backends = [new MemoryBackend('m0'), new MemoryBackend('m1'), new MemoryBackend('m2')];
    const byName = new Map<string, Backend>(backends.map((backend) => [backend.name, backend]));
    const store = new PlacedBlobStore({
      local: await FsBlobStore.open(join(root, 'blobs')),
      backends: byName,
      config: {
        backends: [],
        placements: [{ name: 'ec', type: 'erasure', dataShards: 2, parityShards: 1, backends: ['m0', 'm1', 'm2'], assignment: 'priority', writeQuorum: 3, blockBytes: 4096 }],
        defaultPlacement: 'ec',
        buckets: new Map(),
      },
      health: new BackendHealth(byName),
      repairs: { recordRepairs: async () => undefined },
    });
    const placedVersion = async (parts: number): Promise<{ segments: { blobId: string; sizeBytes: number; location: string }[]; meta: string }> => {
      const segments: { blobId: string; sizeBytes: number; location: string }[] = [];
      for (let i = 0; i < parts; i++) {
        const blob = store.create({ bucket: 'b', sizeBytes: PART_BYTES });
        await blob.write(Buffer.alloc(PART_BYTES, i));
        await blob.commit();
        segments.push({ blobId: blob.id, sizeBytes: PART_BYTES, location: blob.location! });
      }
      const partList = segments.map((_, i) => ({ partNumber: i + 1, sizeBytes: PART_BYTES, etag: '"0123456789abcdef0123456789abcdef"' }));
      return { segments, meta: JSON.stringify({ system: {}, userMetadata: {}, checksum: null, tags: [], parts: partList, segments }) };
    };
    const many = await placedVersion(PARTS);
    const single = await placedVersion(1);
    const orphaned = await placedVersion(3);

    const databasePath = join(root, 'meta.db');
    const meta = new SqliteMetadataStore(databasePath);
    await meta.setStoreIdentity({ id: '00000000-0000-4000-8000-000000000002', epoch: 1 });
    await meta.close();
    const db = new Database(databasePath);
    const insert = db.prepare(
      'INSERT INTO versions (bucket, key, version_id, is_latest, is_delete_marker, size_bytes, etag, last_modified_ms, owner_id, meta) VALUES (?, ?, ?, 1, 0, ?, ?, 1, ?, ?)',
    );
    insert.run('b', 'many', 'null', PARTS * PART_BYTES, '"e-200"', 'o', many.meta);
    insert.run('b', 'single', 'null', PART_BYTES, '"e1"', 'o', single.meta);
    insert.run('b', 'orphaned', 'null', 3 * PART_BYTES, '"e-3"', 'o', orphaned.meta);
    db.close();

    // Record uploads in flight are bounded, whatever the part count (before: every blob of up to 16 versions at once).
    let inFlight = 0;
    let inFlightMax = 0;
    for (const backend of backends) {
      const create = backend.create.bind(backend);
      backend.create = (key, sizeBytes) => {
        const created = create(key, sizeBytes);
        if (!key.startsWith('talus-records/')) return created;
        inFlightMax = Math.max(inFlightMax, ++inFlight);
        return {
          write: (chunk) => created.write(chunk),
          commit: async () => {
            await new Promise((resolve) => setImmediate(resolve));
            await created.commit();
            inFlight--;
          },
          abort: async () => created.abort(),
        };
      };
    }
    writer = new ObjectRecordWriter({ databasePath, backends: byName, logger: silentLogger });
    await writer.flush();
    assert.equal(writer.recorded, 3);
    assert.ok(inFlightMax <= 32 * backends.length, `${inFlightMax} record uploads in flight at once`);
    const recordBytes = (blobIds: readonly string[]): number =>
      backends.reduce((sum, backend) => sum + blobIds.reduce((bytes, blobId) => bytes + (backend.objects().get(objectRecordKey(blobId))?.length ?? 0), 0), 0);
    const manyBytes = recordBytes(many.segments.map((segment) => segment.blobId));
    // Linear: the full record (the document once, on the three backends of its blob) and small pointers.
    // A full record under every blob, as before, was PARTS times the document: ~200 × 45 KB here.
    assert.ok(manyBytes < 3 * (many.meta.length + 1024) + 3 * PARTS * 512, `${manyBytes} bytes of records for ${PARTS} parts of a ${many.meta.length}-byte document`);
    const kinds = many.segments.map((segment) => decodeObjectRecord(Buffer.from(backends[0]!.objects().get(objectRecordKey(segment.blobId))!)).kind ?? 'full');
    assert.deepEqual(kinds, ['full', ...Array<string>(PARTS - 1).fill('pointer')]);

    // 'single' gets records in the old form (a full record under every blob, as Talus before pointer records wrote them).
    const old = await placedVersion(4);
    const oldVersion: RecordedVersion = { bucket: 'b', key: 'old-form', versionId: 'null', sizeBytes: 4 * PART_BYTES, etag: '"e-4"', lastModifiedMs: 1, ownerId: 'o', meta: old.meta, seq: 9 };
    for (const segment of old.segments) {
      for (const backend of backends) {
        const body = encodeObjectRecord({ blobId: segment.blobId, version: oldVersion });
        const created = backend.create(objectRecordKey(segment.blobId), body.length);
        await created.write(body);
        await created.commit();
      }
    }
    // Two versions of one key with the same seq (records of two databases, before and after a restore): the later
    // by the clock is latest. Blob IDs sort by creation, so the listing meets the later version first.
    const tie = [await placedVersion(1), await placedVersion(1)];
    for (const [i, { segments, meta: document }] of tie.entries()) {
      const version: RecordedVersion = { bucket: 'b', key: 'tie', versionId: `v${i}`, sizeBytes: PART_BYTES, etag: '"t"', lastModifiedMs: 20 - i, ownerId: 'o', meta: document, seq: 5 };
      for (const backend of backends) {
        const body = encodeObjectRecord({ blobId: segments[0]!.blobId, version });
        const created = backend.create(objectRecordKey(segments[0]!.blobId), body.length);
        await created.write(body);
        await created.commit();
      }
    }
    // 'orphaned' loses its full record everywhere: its pointers remain.
    for (const backend of backends) await backend.remove([objectRecordKey(orphaned.segments[0]!.blobId)]);

    const dataDir = join(root, 'recovered');
    const report = await recoverFromScan({ dataDir, backends });
    assert.equal(report.versionsRecovered, 5);
    assert.deepEqual(
      report.versionsUnrecoverable.map((version) => [version.key, version.reason]),
      [['orphaned', `its full record (blob ${orphaned.segments[0]!.blobId}) is on no reachable backend`]],
    );
    const recovered = new Database(join(dataDir, 'meta.db'), { readonly: true });
    try {
      const rows = recovered.prepare("SELECT key, size_bytes AS size, meta FROM versions WHERE key != 'tie' ORDER BY key").all() as { key: string; size: number; meta: string }[];
      assert.deepEqual(rows.map((row) => [row.key, row.size]), [['many', PARTS * PART_BYTES], ['old-form', 4 * PART_BYTES], ['single', PART_BYTES]]);
      assert.equal(recovered.prepare("SELECT version_id FROM versions WHERE key = 'tie' AND is_latest = 1").pluck().get(), 'v0', 'the later of two versions with one seq is latest');
      // Versions are numbered past every recorded seq: the records written again for them sort after any left from before.
      assert.ok((recovered.prepare('SELECT min(seq) FROM versions').pluck().get() as number) > 9);
      assert.equal(rows[0]!.meta, many.meta, 'the many-part version comes back whole, every segment and part');
      assert.equal(rows[1]!.meta, old.meta);
      assert.equal(recovered.prepare('SELECT count(*) FROM blobs').pluck().get(), PARTS + 4 + 1 + 2);
    } finally {
      recovered.close();
    }
  } finally {
    await writer?.stop();
    await rm(root, { recursive: true, force: true });
  }
});
