/**
 * The metadata store's transactional rules on the embedded SQLite store:
 * conditional commits, null-version replacement, delete-marker promotion,
 * and the blob reference set with its purge queue (what reclaim relies on).
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import Database from 'better-sqlite3';
import { PURGE_GRACE_MS } from '../../util/limits.ts';
import type { ObjectVersion } from '../types.ts';
import { SqliteMetadataStore } from './sqlite-metadata-store.ts';

function version(key: string, versionId: string, blobId: string | null, etag = 'e'): ObjectVersion {
  return {
    bucket: 'b', key, versionId, isDeleteMarker: blobId === null && etag === '', lastModifiedMs: Date.now(), sizeBytes: blobId === null ? 0 : 1,
    etag, ownerId: 'o', system: {}, userMetadata: {}, checksum: null, tags: [], parts: null,
    segments: blobId === null ? [] : [{ blobId, sizeBytes: 1 }],
  };
}

async function freshStore(): Promise<SqliteMetadataStore> {
  const store = new SqliteMetadataStore(':memory:');
  await store.createBucket({ name: 'b', createdMs: 0, ownerId: 'o', versioning: 'Unversioned', tags: null });
  return store;
}

test('conditional commits: If-None-Match * and If-Match', async () => {
  const store = await freshStore();
  assert.equal((await store.commitVersion({ version: version('k', 'null', 'blob1', 'etag1'), conditions: { ifNoneMatchStar: true } })).status, 'committed');
  assert.equal((await store.commitVersion({ version: version('k', 'null', 'blob2'), conditions: { ifNoneMatchStar: true } })).status, 'precondition-failed');
  assert.equal((await store.commitVersion({ version: version('k', 'null', 'blob3'), conditions: { ifMatch: 'other' } })).status, 'precondition-failed');
  assert.equal((await store.commitVersion({ version: version('missing', 'null', 'blob4'), conditions: { ifMatch: 'etag1' } })).status, 'no-such-key');
  assert.equal((await store.commitVersion({ version: version('k', 'null', 'blob5', 'etag5'), conditions: { ifMatch: 'etag1' } })).status, 'committed');
  assert.equal((await store.getVersion('b', 'k'))?.etag, 'etag5');
  // Rejected commits never recorded their blobs: reclaim may delete them.
  for (const blob of ['blob2', 'blob3', 'blob4']) assert.equal(await store.isBlobKnown(blob), false, blob);
  await store.close();
});

test('replacing the null version queues its blob for purge after the grace period', async () => {
  const store = await freshStore();
  await store.commitVersion({ version: version('k', 'null', 'old'), conditions: {} });
  const outcome = await store.commitVersion({ version: version('k', 'null', 'new'), conditions: {} });
  assert.equal(outcome.status, 'committed');
  assert.equal(outcome.status === 'committed' ? outcome.replaced?.segments[0]?.blobId : undefined, 'old');
  assert.deepEqual(await store.takePurgeBatch(Date.now(), 10), []);
  const due = await store.takePurgeBatch(Date.now() + PURGE_GRACE_MS + 1, 10);
  assert.deepEqual(due.map((entry) => entry.blobId), ['old']);
  await store.completePurge(['old']);
  assert.equal(await store.isBlobKnown('old'), false);
  assert.equal(await store.isBlobKnown('new'), true);
  await store.close();
});

test('versioned keys: deleting the latest promotes the next newest', async () => {
  const store = await freshStore();
  await store.commitVersion({ version: version('k', 'v1', 'b1', 'e1'), conditions: {} });
  await store.commitVersion({ version: version('k', 'v2', 'b2', 'e2'), conditions: {} });
  await store.commitVersion({ version: version('k', 'm3', null, ''), conditions: {} });
  assert.equal((await store.getVersion('b', 'k'))?.isDeleteMarker, true);
  assert.equal((await store.list({ bucket: 'b', prefix: '', delimiter: '', after: '', limit: 10 })).entries.length, 0);
  await store.deleteVersion('b', 'k', 'm3');
  assert.equal((await store.getVersion('b', 'k'))?.versionId, 'v2');
  await store.deleteVersion('b', 'k', 'v2');
  assert.equal((await store.getVersion('b', 'k'))?.versionId, 'v1');
  assert.equal((await store.deleteBucket('b')), 'not-empty');
  await store.deleteVersion('b', 'k', 'v1');
  assert.equal((await store.deleteBucket('b')), 'deleted');
  await store.close();
});

test('completing an upload consumes it, keeps used parts and purges the rest', async () => {
  const store = await freshStore();
  await store.createUpload({ uploadId: 'u', bucket: 'b', key: 'k', createdMs: 0, ownerId: 'o', system: {}, userMetadata: {}, tags: [], checksumAlgorithm: null, checksumType: null });
  for (const [partNumber, blobId] of [[1, 'p1'], [2, 'p2'], [3, 'p3']] as const) {
    assert.ok(await store.putPart({ uploadId: 'u', partNumber, sizeBytes: 1, etag: 'e', lastModifiedMs: 0, checksum: null, blobId }));
  }
  // Replacing part 2 queues its first blob.
  await store.putPart({ uploadId: 'u', partNumber: 2, sizeBytes: 1, etag: 'e', lastModifiedMs: 0, checksum: null, blobId: 'p2b' });
  const object = version('k', 'null', 'p1');
  object.segments = [{ blobId: 'p1', sizeBytes: 1 }, { blobId: 'p2b', sizeBytes: 1 }];
  assert.equal((await store.commitVersion({ version: object, conditions: {}, completesUploadId: 'u' })).status, 'committed');
  assert.equal(await store.getUpload('b', 'k', 'u'), undefined);
  const due = (await store.takePurgeBatch(Date.now() + PURGE_GRACE_MS + 1, 10)).map((entry) => entry.blobId).sort();
  assert.deepEqual(due, ['p2', 'p3']);
  assert.equal((await store.commitVersion({ version: object, conditions: {}, completesUploadId: 'u' })).status, 'no-such-upload');
  await store.close();
});

test('a postponed purge entry moves behind the others', async () => {
  const store = await freshStore();
  await store.commitVersion({ version: version('a', 'null', 'blob-a'), conditions: {} });
  await store.commitVersion({ version: version('b', 'null', 'blob-b'), conditions: {} });
  await store.deleteVersion('b', 'a', 'null');
  await store.deleteVersion('b', 'b', 'null');
  const due = Date.now() + PURGE_GRACE_MS + 1;
  assert.deepEqual((await store.takePurgeBatch(due, 1)).map((entry) => entry.blobId), ['blob-a']);
  await store.postponePurge(['blob-a'], due + 10_000);
  assert.deepEqual((await store.takePurgeBatch(due, 10)).map((entry) => entry.blobId), ['blob-b']);
  assert.deepEqual((await store.takePurgeBatch(due + 10_000, 10)).map((entry) => entry.blobId).sort(), ['blob-a', 'blob-b']);
  await store.close();
});

test('mutations asked for in one turn commit together, in order, and a failing one is rolled back alone', async () => {
  const store = await freshStore();
  await store.commitVersion({ version: version('taken', 'v1', 'blob-old', 'old'), conditions: {} });
  // Same turn of the event loop: one batch. The middle one reuses an existing
  // version ID and fails on the unique index after demoting the latest.
  const [first, clash, last, conditional] = await Promise.allSettled([
    store.commitVersion({ version: version('a', 'null', 'blob-a', 'ea'), conditions: {} }),
    store.commitVersion({ version: version('taken', 'v1', 'blob-clash', 'clash'), conditions: {} }),
    store.commitVersion({ version: version('c', 'null', 'blob-c', 'ec'), conditions: {} }),
    // Sees 'a' committed just before it in the same batch.
    store.commitVersion({ version: version('a', 'null', 'blob-a2', 'ea2'), conditions: { ifMatch: 'ea' } }),
  ]);
  assert.equal(first.status, 'fulfilled');
  assert.equal(clash.status, 'rejected');
  assert.equal(last.status, 'fulfilled');
  assert.equal(conditional.status === 'fulfilled' ? conditional.value.status : conditional.status, 'committed');
  assert.equal((await store.getVersion('b', 'a'))?.etag, 'ea2');
  assert.equal((await store.getVersion('b', 'c'))?.etag, 'ec');
  // The failed one left no trace: the old version is still the latest, its blob unknown.
  assert.equal((await store.getVersion('b', 'taken'))?.etag, 'old');
  assert.equal(await store.isBlobKnown('blob-clash'), false);
  await store.close();
});

test('close is idempotent: a second (or concurrent) close waits for the first instead of failing', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'talus-close-'));
  try {
    const store = new SqliteMetadataStore(join(dir, 'meta.db'));
    await store.createBucket({ name: 'b', createdMs: 0, ownerId: 'o', versioning: 'Unversioned', tags: null });
    await Promise.all([store.close(), store.close()]);
    await store.close();
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('bucketUsage counts in steps of whole keys: a bucket over several steps, versions of one key across a step boundary', async () => {
  const directory = await mkdtemp(join(tmpdir(), 'talus-usage-'));
  const path = join(directory, 'meta.db');
  try {
    const store = new SqliteMetadataStore(path);
    await store.createBucket({ name: 'b', createdMs: 0, ownerId: 'o', versioning: 'Enabled', tags: null });
    await store.createBucket({ name: 'c', createdMs: 0, ownerId: 'o', versioning: 'Enabled', tags: null });
    await store.close();
    // Rows written directly (committing 120 000 versions one by one would take minutes): 3 versions per key, so steps cut through keys.
    const db = new Database(path);
    const insert = db.prepare(`INSERT INTO versions (bucket, key, version_id, is_latest, is_delete_marker, size_bytes, etag, last_modified_ms, owner_id, meta)
                               VALUES (?, ?, ?, ?, ?, ?, 'e', 0, 'o', '{}')`);
    const expected = { objects: 0, versions: 0, deleteMarkers: 0, bytes: 0, incompleteUploads: 0 };
    const keys = 40_001;
    db.transaction(() => {
      for (let i = 0; i < 3 * keys; i++) {
        const marker = i % 7 === 0;
        const latest = i >= 2 * keys;
        insert.run('b', `k${(i % keys).toString().padStart(6, '0')}`, `v${i}`, latest ? 1 : 0, marker ? 1 : 0, marker ? 0 : i % 100);
        if (marker) expected.deleteMarkers++;
        else {
          expected.versions++;
          expected.bytes += i % 100;
          if (latest) expected.objects++;
        }
      }
      insert.run('c', 'k000001', 'other', 1, 0, 5); // another bucket's version: not b's
    })();
    db.close();
    const reopened = new SqliteMetadataStore(path);
    assert.deepEqual(await reopened.bucketUsage('b'), expected);
    assert.deepEqual(await reopened.bucketUsage('c'), { objects: 1, versions: 1, deleteMarkers: 0, bytes: 5, incompleteUploads: 0 });
    assert.deepEqual(await reopened.bucketUsage('missing'), { objects: 0, versions: 0, deleteMarkers: 0, bytes: 0, incompleteUploads: 0 });
    await reopened.close();
  } finally {
    await rm(directory, { recursive: true, force: true });
  }
});
