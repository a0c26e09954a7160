/**
 * The store's memory of latest versions: every way a key's latest version
 * changes is seen by the next read, also when another connection (another
 * worker process) made the change; what it hands out cannot be changed by a
 * reader, and it stays within its bounds.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import type { ObjectVersion } from '../types.ts';
import { LATEST_VERSIONS_INLINE_BYTES_MAX, LATEST_VERSIONS_MAX, LatestVersions } from './latest-versions.ts';
import { SqliteMetadataStore } from './sqlite-metadata-store.ts';

function version(key: string, versionId: string, etag: string, options: { deleteMarker?: boolean; inline?: Buffer } = {}): ObjectVersion {
  return {
    bucket: 'b', key, versionId, isDeleteMarker: options.deleteMarker === true, lastModifiedMs: Date.now(),
    sizeBytes: options.inline?.length ?? 0, etag, ownerId: 'o', system: { contentType: 'text/plain' }, userMetadata: { a: '1' },
    checksum: null, tags: [], parts: null, segments: [],
    ...(options.inline === undefined ? {} : { inlineData: options.inline }),
  };
}

async function withStore(run: (store: SqliteMetadataStore) => Promise<void>): Promise<void> {
  const directory = await mkdtemp(join(tmpdir(), 'talus-latest-'));
  const store = new SqliteMetadataStore(join(directory, 'meta.db'), { soleWriter: true });
  try {
    await store.createBucket({ name: 'b', createdMs: 0, ownerId: 'o', versioning: 'Enabled', tags: null });
    await run(store);
  } finally {
    await store.close();
    await rm(directory, { recursive: true, force: true });
  }
}

test('reads after each kind of change see the change', async () => {
  await withStore(async (store) => {
    await store.commitVersion({ version: version('k', 'v1', 'e1', { inline: Buffer.from('one') }), conditions: {} });
    assert.equal((await store.getVersion('b', 'k'))?.etag, 'e1');
    assert.equal(store.cachedLatestVersions, 1);
    assert.equal(await store.getVersion('b', 'k'), await store.getVersion('b', 'k'), 'a repeated read is served from memory');

    // A new version.
    await store.commitVersion({ version: version('k', 'v2', 'e2', { inline: Buffer.from('two') }), conditions: {} });
    const second = await store.getVersion('b', 'k');
    assert.equal(second?.etag, 'e2');
    assert.equal(second?.inlineData?.toString(), 'two');

    // Tags of the latest version.
    await store.setVersionTags('b', 'k', 'v2', [{ key: 't', value: 'x' }]);
    assert.deepEqual((await store.getVersion('b', 'k'))?.tags, [{ key: 't', value: 'x' }]);

    // A delete marker on top, then deleting it promotes v2 again.
    await store.commitVersion({ version: version('k', 'm3', '', { deleteMarker: true }), conditions: {} });
    assert.equal((await store.getVersion('b', 'k'))?.isDeleteMarker, true);
    await store.deleteVersion('b', 'k', 'm3');
    assert.equal((await store.getVersion('b', 'k'))?.versionId, 'v2');

    // Deleting every version leaves nothing.
    await store.deleteVersion('b', 'k', 'v2');
    await store.deleteVersion('b', 'k', 'v1');
    assert.equal(await store.getVersion('b', 'k'), undefined);
  });
});

test('a rejected conditional write leaves what reads see unchanged', async () => {
  await withStore(async (store) => {
    await store.commitVersion({ version: version('k', 'v1', 'e1'), conditions: {} });
    assert.equal((await store.getVersion('b', 'k'))?.etag, 'e1');
    const outcome = await store.commitVersion({ version: version('k', 'v2', 'e2'), conditions: { ifMatch: 'other' } });
    assert.equal(outcome.status, 'precondition-failed');
    assert.equal((await store.getVersion('b', 'k'))?.etag, 'e1');
  });
});

test('a read between a queued write and its commit cannot leave a stale entry', async () => {
  await withStore(async (store) => {
    await store.commitVersion({ version: version('k', 'v1', 'e1'), conditions: {} });
    const committing = store.commitVersion({ version: version('k', 'v2', 'e2'), conditions: {} });
    // Queued for this turn's batch, not yet run: the read sees (and caches) v1.
    assert.equal((await store.getVersion('b', 'k'))?.etag, 'e1');
    await committing;
    assert.equal((await store.getVersion('b', 'k'))?.etag, 'e2');
  });
});

test('versions handed out are frozen, so no reader can change what the next one gets', async () => {
  await withStore(async (store) => {
    await store.commitVersion({ version: version('k', 'v1', 'e1'), conditions: {} });
    const read = (await store.getVersion('b', 'k'))!;
    assert.throws(() => {
      (read as { etag: string }).etag = 'changed';
    }, TypeError);
    assert.throws(() => {
      (read.userMetadata as Record<string, string>)['a'] = 'changed';
    }, TypeError);
    assert.throws(() => read.tags.push({ key: 'x', value: 'y' }), TypeError);
    assert.equal((await store.getVersion('b', 'k'))?.userMetadata['a'], '1');
  });
});

test('stores sharing a database (--workers) see each other\'s commits through their caches', async () => {
  const directory = await mkdtemp(join(tmpdir(), 'talus-latest-'));
  // Two connections to one file, as two worker processes have.
  const first = new SqliteMetadataStore(join(directory, 'meta.db'));
  const second = new SqliteMetadataStore(join(directory, 'meta.db'));
  try {
    await first.createBucket({ name: 'b', createdMs: 0, ownerId: 'o', versioning: 'Enabled', tags: null });
    await first.commitVersion({ version: version('k', 'v1', 'e1'), conditions: {} });
    assert.equal((await second.getVersion('b', 'k'))?.etag, 'e1');
    assert.equal((await second.getVersion('b', 'k'))?.etag, 'e1');
    assert.equal(second.cachedLatestVersions, 1, 'a store that shares its database still keeps latest versions');
    await first.commitVersion({ version: version('k', 'v2', 'e2'), conditions: {} });
    assert.equal((await second.getVersion('b', 'k'))?.etag, 'e2', 'the other connection\'s commit empties the cache');
    await first.deleteVersionIf('b', 'k', 'v2', {});
    assert.equal((await second.getVersion('b', 'k'))?.etag, 'e1', 'and so does its delete');
    // Its own commits it forgets in their transaction, as a sole writer does.
    await second.commitVersion({ version: version('k', 'v3', 'e3'), conditions: {} });
    assert.equal((await second.getVersion('b', 'k'))?.etag, 'e3');
    assert.equal((await first.getVersion('b', 'k'))?.etag, 'e3');
  } finally {
    await first.close();
    await second.close();
    await rm(directory, { recursive: true, force: true });
  }
});

test('the memory is bounded by entries and by inline bytes', () => {
  const latest = new LatestVersions();
  for (let i = 0; i < LATEST_VERSIONS_MAX + 100; i++) latest.remember(version(`k${i}`, 'v', 'e'));
  assert.equal(latest.size, LATEST_VERSIONS_MAX);
  assert.equal(latest.get('b', 'k0'), undefined, 'the oldest went first');
  assert.ok(latest.get('b', `k${LATEST_VERSIONS_MAX + 99}`) !== undefined);

  latest.clear();
  const inline = Buffer.alloc(16 * 1024);
  const fits = LATEST_VERSIONS_INLINE_BYTES_MAX / inline.length;
  for (let i = 0; i < fits + 50; i++) latest.remember(version(`i${i}`, 'v', 'e', { inline }));
  assert.equal(latest.size, fits);
  // Re-remembering a key replaces its entry instead of counting its bytes twice.
  for (let i = 0; i < 10; i++) latest.remember(version('same', 'v', 'e', { inline }));
  assert.equal(latest.size, fits);
});
