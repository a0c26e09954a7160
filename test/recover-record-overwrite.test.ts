/**
 * An overwrite of a placed object in an unversioned bucket gets its object
 * record, and `talus recover --scan` brings back the new content: the SQLite
 * store rewrites a replaced latest null version in place only when the new
 * version has no blobs (the record writer follows seq order; a version with
 * blobs that kept the old seq was never recorded — found in review).
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import type { Backend } from '../src/backend/backend.ts';
import { MemoryBackend } from '../src/backend/memory-backend.ts';
import { FsBlobStore } from '../src/blob/fs/fs-blob-store.ts';
import { SqliteMetadataStore } from '../src/meta/sqlite/sqlite-metadata-store.ts';
import { BackendHealth } from '../src/placement/backend-health.ts';
import { objectRecordKey } from '../src/placement/blob-location.ts';
import { PlacedBlobStore } from '../src/placement/placed-blob-store.ts';
import { ObjectRecordWriter } from '../src/replication/record-writer.ts';
import { recoverFromScan } from '../src/replication/recover.ts';
import Database from 'better-sqlite3';
import { silentLogger } from '../src/util/logger.ts';

test('overwriting a placed unversioned object records the new blob', async () => {
  const root = await mkdtemp(join(tmpdir(), 'rv-records-'));
  let writer: ObjectRecordWriter | undefined;
  const meta = new SqliteMetadataStore(join(root, 'meta.db'), { soleWriter: true });
  try {
    const backends = [new MemoryBackend('m0'), new MemoryBackend('m1'), new MemoryBackend('m2')];
    const byName = new Map<string, Backend>(backends.map((b) => [b.name, b]));
    const store = new PlacedBlobStore({
      local: await FsBlobStore.open(join(root, 'blobs')), backends: byName,
      config: { backends: [], placements: [{ name: 'ec', type: 'erasure', dataShards: 2, parityShards: 1, backends: ['m0', 'm1', 'm2'], assignment: 'priority', writeQuorum: 3, blockBytes: 4096 }], defaultPlacement: 'ec', buckets: new Map() },
      health: new BackendHealth(byName), repairs: { recordRepairs: async () => undefined },
    });
    const put = async (fill: number, etag: string) => {
      const blob = store.create({ bucket: 'b', sizeBytes: 20_000 });
      await blob.write(Buffer.alloc(20_000, fill));
      await blob.commit();
      const outcome = await meta.commitVersion({ conditions: {}, version: { bucket: 'b', key: 'k', versionId: 'null', isDeleteMarker: false, lastModifiedMs: Date.now(), sizeBytes: 20_000, etag, ownerId: 'o', system: {}, userMetadata: {}, checksum: null, tags: [], parts: null, segments: [{ blobId: blob.id, sizeBytes: 20_000, location: blob.location }] } });
      assert.equal(outcome.status, 'committed');
      return blob.id;
    };
    await meta.setStoreIdentity({ id: '00000000-0000-4000-8000-000000000001', epoch: 1 });
    await meta.createBucket({ name: 'b', createdMs: 0, ownerId: 'o', versioning: 'Unversioned', tags: null });
    writer = new ObjectRecordWriter({ databasePath: join(root, 'meta.db'), backends: byName, logger: silentLogger });
    await put(1, 'e1');
    await writer.flush();
    assert.equal(writer.recorded, 1);
    const second = await put(2, 'e2');
    await writer.flush();
    const target = join(root, 'recovered');
    const report = await recoverFromScan({ dataDir: target, backends });
    const rdb = new Database(join(target, 'meta.db'), { readonly: true });
    const rows = rdb.prepare('SELECT key, version_id, etag FROM versions').all();
    rdb.close();
    assert.deepEqual(rows, [{ key: 'k', version_id: 'null', etag: 'e2' }], `recovered ${report.versionsRecovered}, unrecorded ${report.unrecordedBlobs}`);
    const has = backends.some((b) => b.objects().has(objectRecordKey(second)));
    assert.ok(has, `no object record for the overwriting version's blob ${second} (recorded ${writer.recorded}, position ${writer.position})`);
  } finally {
    await writer?.stop();
    await meta.close();
    await rm(root, { recursive: true, force: true });
  }
});
