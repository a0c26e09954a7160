/**
 * Object records: their format is pinned by a fixture; the writer records
 * each committed placed version on every backend of its shards (and nothing
 * for inline versions), and a purge removes a blob's record with its shards.
 */
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
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
import { decodeObjectRecord, encodeObjectRecord, ObjectRecordError, segmentsOf } from '../src/replication/object-record.ts';
import { ObjectRecordWriter } from '../src/replication/record-writer.ts';
import { silentLogger } from '../src/util/logger.ts';

const FIXTURE = new URL('./fixtures/object-record-v1.json', import.meta.url);

test('object record format 1 is pinned: the fixture decodes, and encodes back byte for byte', async () => {
  const bytes = await readFile(FIXTURE);
  const record = decodeObjectRecord(bytes);
  assert.ok(record.kind !== 'pointer');
  assert.equal(record.blobId, '0mhx2k3b7fedcba9876543210fedc');
  assert.equal(record.version.bucket, 'photos');
  assert.equal(record.version.key, 'año/2026 ☃.jpg');
  assert.equal(record.version.versionId, 'Zm9vYmFyYmF6cXV4MTIzNDU2Nzg5MDEyMzQ1Njc4OTA');
  assert.equal(record.version.sizeBytes, 5243880);
  assert.equal(record.version.etag, '"00112233445566778899aabbccddeeff-2"');
  assert.equal(record.version.seq, 42);
  assert.deepEqual(
    segmentsOf(record.version).map((segment) => [segment.blobId, segment.sizeBytes]),
    [['0mhx2k3a70123456789abcdef0123', 5242880], ['0mhx2k3b7fedcba9876543210fedc', 1000]],
  );
  assert.deepEqual(encodeObjectRecord(record), bytes);
  // Damaged or foreign content is refused, not guessed at.
  assert.throws(() => decodeObjectRecord(bytes.subarray(0, bytes.length - 2)), ObjectRecordError);
  assert.throws(() => decodeObjectRecord(Buffer.from(bytes.toString().replace('"v":1', '"v":9'))), /format 9/);
  assert.throws(() => decodeObjectRecord(Buffer.from(bytes.toString().replace('"blobId":"0mhx2k3b7', '"blobId":"1mhx2k3b7'))), ObjectRecordError);
});

test('the writer records placed versions on every backend of their shards; a purge removes the record', async () => {
  const root = await mkdtemp(join(tmpdir(), 'talus-records-'));
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
    const blob = store.create({ bucket: 'b', sizeBytes: 20_000 });
    await blob.write(Buffer.alloc(20_000, 7));
    await blob.commit();

    const databasePath = join(root, 'meta.db');
    const meta = new SqliteMetadataStore(databasePath);
    await meta.setStoreIdentity({ id: '00000000-0000-4000-8000-000000000001', epoch: 1 });
    await meta.close();
    const db = new Database(databasePath);
    const insert = db.prepare(
      'INSERT INTO versions (bucket, key, version_id, is_latest, is_delete_marker, size_bytes, etag, last_modified_ms, owner_id, meta) VALUES (?, ?, ?, 1, ?, ?, ?, 1, ?, ?)',
    );
    const document = (segments: unknown[]): string => JSON.stringify({ system: {}, userMetadata: {}, checksum: null, tags: [], parts: null, segments });
    insert.run('b', 'inline', 'null', 0, 10, '"e1"', 'o', document([]));
    insert.run('b', 'marker', 'v2', 1, 0, '', 'o', document([]));
    insert.run('b', 'placed', 'null', 0, 20_000, '"e2"', 'o', document([{ blobId: blob.id, sizeBytes: 20_000, location: blob.location }]));
    db.close();

    writer = new ObjectRecordWriter({ databasePath, backends: byName, logger: silentLogger });
    await writer.flush();
    assert.equal(writer.recorded, 1, 'only the placed version has a record');
    for (const backend of backends) {
      const keys = [...backend.objects().keys()].filter((key) => key.startsWith('talus-records/'));
      assert.deepEqual(keys, [objectRecordKey(blob.id)], backend.name);
      const record = decodeObjectRecord(Buffer.from(backend.objects().get(objectRecordKey(blob.id))!));
      assert.ok(record.kind !== 'pointer');
      assert.equal(record.version.key, 'placed');
      assert.equal(record.version.etag, '"e2"');
    }
    // The position survives a restart of the writer: nothing is written again.
    await writer.stop();
    writer = new ObjectRecordWriter({ databasePath, backends: byName, logger: silentLogger });
    await writer.flush();
    assert.equal(writer.recorded, 0);

    assert.equal((await store.removeMany([{ blobId: blob.id, location: blob.location }])).size, 0);
    for (const backend of backends) assert.equal(backend.objects().size, 0, `${backend.name}: shards and record removed`);
  } finally {
    await writer?.stop();
    await rm(root, { recursive: true, force: true });
  }
});
