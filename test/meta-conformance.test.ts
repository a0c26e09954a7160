/**
 * The metadata store's rules, run on both implementations: the embedded
 * SQLite store and the PostgreSQL one (a private PostgreSQL for this file,
 * a fresh database per case). Conditional commits, null-version
 * replacement, delete-marker promotion, uploads and the purge queue; and
 * listings — keys in mixed case, punctuation and non-ASCII (including
 * characters beyond U+FFFF, where UTF-16 order and byte order differ) list
 * identically on both, in S3's byte order, page by page.
 * PostgreSQL only: several stores on one database (several nodes) give a
 * conditional commit exactly one winner and hand each purge entry to one.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import postgres from 'postgres';
import { compareKeys } from '../src/meta/key-order.ts';
import type { ListEntry, MetadataStore } from '../src/meta/metadata-store.ts';
import { PostgresMetadataStore } from '../src/meta/postgres/postgres-metadata-store.ts';
import { SqliteMetadataStore } from '../src/meta/sqlite/sqlite-metadata-store.ts';
import type { ObjectVersion, UploadRecord } from '../src/meta/types.ts';
import { PURGE_GRACE_MS } from '../src/util/limits.ts';
import { postgresUnavailable, startTestPostgres, type TestPostgres } from './helpers/postgres.ts';

function version(key: string, versionId: string, blobId: string | null, etag = 'e'): ObjectVersion {
  return {
    bucket: 'b', key, versionId, isDeleteMarker: blobId === null && etag === '', lastModifiedMs: Date.now(), sizeBytes: blobId === null ? 0 : 1,
    etag, ownerId: 'o', system: {}, userMetadata: {}, checksum: null, tags: [], parts: null,
    segments: blobId === null ? [] : [{ blobId, sizeBytes: 1 }],
  };
}

function upload(uploadId: string, key: string, createdMs = 0): UploadRecord {
  return { uploadId, bucket: 'b', key, createdMs, ownerId: 'o', system: {}, userMetadata: {}, tags: [], checksumAlgorithm: null, checksumType: null };
}

/** Keys whose byte order differs from naive orders: case, punctuation below and above letters, Latin-1, CJK, astral (UTF-16 sorts it before U+FFxx, bytes after). */
const TRICKY_KEYS = [
  'A', 'a', 'B', 'b', 'Z/1', 'a/b', 'a/b/c', 'a-b', 'a.b', 'a_b', 'a~b', 'a b', 'a!b', 'a+b', 'a=b', 'a%2Fb',
  'dir/', 'dir/x', 'dir/y/z', 'dir//double', 'dir0', 'dir.', 'é', 'e\u0301', 'ü/x', 'ß', 'Ω', '中文/键', '中文键',
  '\uffee', '😀', '😀/x', '𝄞', '\u007f', 'x\u00a0y', 'key with spaces/', '~', '__', '[', '`',
];

interface Backend {
  name: string;
  open(): Promise<MetadataStore>;
}

let pg: TestPostgres | undefined;
let admin: postgres.Sql | undefined;
let databases = 0;
const pgSkip = await postgresUnavailable();
if (pgSkip !== undefined) console.log(`# PostgreSQL cases skipped: ${pgSkip}`);

before(async () => {
  if (pgSkip !== undefined) return;
  pg = await startTestPostgres();
  admin = postgres(pg.url, { max: 1, onnotice: () => undefined });
});

after(async () => {
  await admin?.end({ timeout: 1 });
  await pg?.stop();
});

/** A fresh, empty database on the private server: one per case, so cases never see each other's rows. */
async function freshDatabaseUrl(): Promise<string> {
  assert.ok(pg !== undefined && admin !== undefined);
  const name = `case_${++databases}`;
  await admin.unsafe(`CREATE DATABASE ${name}`);
  return pg.url.replace(/\/talus$/, `/${name}`);
}

const backends: Backend[] = [
  { name: 'sqlite', open: async () => new SqliteMetadataStore(':memory:') },
  { name: 'postgres', open: async () => PostgresMetadataStore.open(await freshDatabaseUrl(), { connections: 4 }) },
];

async function freshStore(backend: Backend): Promise<MetadataStore> {
  const store = await backend.open();
  await store.createBucket({ name: 'b', createdMs: 0, ownerId: 'o', versioning: 'Unversioned', tags: null });
  return store;
}

/** Every page of a listing, following continuation as the S3 front does (after = last entry's key). */
async function listAll(store: MetadataStore, prefix: string, delimiter: string, pageSize: number): Promise<string[]> {
  const seen: string[] = [];
  let afterKey = '';
  for (let pages = 0; pages < 1000; pages++) {
    const page = await store.list({ bucket: 'b', prefix, delimiter, after: afterKey, limit: pageSize });
    assert.ok(page.entries.length <= pageSize);
    seen.push(...page.entries.map((entry: ListEntry) => (entry.version === undefined ? `P:${entry.key}` : entry.key)));
    if (!page.isTruncated) return seen;
    afterKey = page.entries.at(-1)!.key;
  }
  throw new Error('listing did not end');
}

/** What S3 lists: keys under the prefix in byte order, those with the delimiter after it rolled up once. */
function expectedListing(keys: readonly string[], prefix: string, delimiter: string): string[] {
  const out: string[] = [];
  for (const key of [...keys].sort(compareKeys)) {
    if (!key.startsWith(prefix)) continue;
    const at = delimiter === '' ? -1 : key.indexOf(delimiter, prefix.length);
    const entry = at === -1 ? key : `P:${key.slice(0, at + delimiter.length)}`;
    if (out.at(-1) !== entry) out.push(entry);
  }
  return out;
}

for (const backend of backends) {
  describe(`metadata store: ${backend.name}`, { skip: backend.name === 'postgres' ? pgSkip : undefined }, () => {
    test('conditional commits: If-None-Match * and If-Match', async () => {
      const store = await freshStore(backend);
      assert.equal((await store.commitVersion({ version: version('k', 'null', 'blob1', 'etag1'), conditions: { ifNoneMatchStar: true } })).status, 'committed');
      assert.equal((await store.commitVersion({ version: version('k', 'null', 'blob2'), conditions: { ifNoneMatchStar: true } })).status, 'precondition-failed');
      assert.equal((await store.commitVersion({ version: version('k', 'null', 'blob3'), conditions: { ifMatch: 'other' } })).status, 'precondition-failed');
      assert.equal((await store.commitVersion({ version: version('missing', 'null', 'blob4'), conditions: { ifMatch: 'etag1' } })).status, 'no-such-key');
      assert.equal((await store.commitVersion({ version: version('k', 'null', 'blob5', 'etag5'), conditions: { ifMatch: 'etag1' } })).status, 'committed');
      assert.equal((await store.getVersion('b', 'k'))?.etag, 'etag5');
      for (const blob of ['blob2', 'blob3', 'blob4']) assert.equal(await store.isBlobKnown(blob), false, blob);
      // A delete marker is no current version: If-None-Match * succeeds over it.
      await store.commitVersion({ version: version('k', 'm1', null, ''), conditions: {} });
      assert.equal((await store.commitVersion({ version: version('k', 'v2', 'blob6', 'e6'), conditions: { ifNoneMatchStar: true } })).status, 'committed');
      assert.equal((await store.commitVersion({ version: version('k', 'v3', 'x'), conditions: {} }).then(() => store.commitVersion({ version: version('nob', 'null', 'y'), conditions: {} }))).status, 'committed');
      const missingBucket = { ...version('k', 'null', 'z'), bucket: 'nope' };
      assert.equal((await store.commitVersion({ version: missingBucket, conditions: {} })).status, 'no-such-bucket');
      await store.close();
    });

    test('deleteVersionIf with ifNoncurrent spares the latest version and deletes a noncurrent one', async () => {
      const store = await freshStore(backend);
      await store.setBucketVersioning('b', 'Enabled');
      await store.commitVersion({ version: version('k', 'v1', 'b1'), conditions: {} });
      await store.commitVersion({ version: version('k', 'v2', 'b2'), conditions: {} });
      assert.deepEqual(await store.deleteVersionIf('b', 'k', 'v2', { ifNoncurrent: true }), { status: 'precondition-failed' });
      assert.equal((await store.deleteVersionIf('b', 'k', 'v1', { ifNoncurrent: true })).status, 'deleted');
      assert.equal((await store.getVersion('b', 'k'))?.versionId, 'v2', 'the latest stays');
      await store.close();
    });

    test('bucketUsage and purgeQueueSummary count the same on every store', async () => {
      const store = await freshStore(backend);
      await store.setBucketVersioning('b', 'Enabled');
      await store.commitVersion({ version: version('a', 'v1', 'a1'), conditions: {} });
      await store.commitVersion({ version: version('a', 'v2', 'a2'), conditions: {} });
      await store.commitVersion({ version: version('gone', 'v3', 'g1'), conditions: {} });
      await store.commitVersion({ version: version('gone', 'm1', null, ''), conditions: {} });
      // Each non-marker version is one byte (version() above); the marker is none.
      assert.deepEqual(await store.bucketUsage('b'), { objects: 1, versions: 3, deleteMarkers: 1, bytes: 3, incompleteUploads: 0 });
      assert.deepEqual(await store.bucketUsage('nope'), { objects: 0, versions: 0, deleteMarkers: 0, bytes: 0, incompleteUploads: 0 });
      await store.deleteVersion('b', 'a', 'v1');
      const purge = await store.purgeQueueSummary();
      assert.equal(purge.blobs, 1, 'the deleted version\'s blob waits for purge');
      assert.ok(purge.oldestDueMs !== undefined && purge.oldestDueMs > Date.now());
      await store.close();
    });

    test('countBlobsOnBackend counts blobs whose location names the backend, live or queued for purge, on every store', async () => {
      const store = await freshStore(backend);
      await store.setBucketVersioning('b', 'Enabled');
      const placed = (key: string, versionId: string, blobId: string, backends: string[]): ObjectVersion => {
        const location = JSON.stringify({ v: 2, k: 2, m: backends.length - 2, b: 65536, n: 1, h: 40, on: backends });
        return { ...version(key, versionId, blobId), segments: [{ blobId, sizeBytes: 1, location }] };
      };
      await store.commitVersion({ version: placed('x', 'v1', 'p1', ['a', 'b', 'c']), conditions: {} });
      await store.commitVersion({ version: placed('y', 'v2', 'p2', ['b', 'a', 'd']), conditions: {} });
      await store.commitVersion({ version: version('z', 'v3', 'local1'), conditions: {} });
      assert.deepEqual(await Promise.all(['a', 'b', 'c', 'd', 'cc', 'local'].map((name) => store.countBlobsOnBackend(name))), [2, 2, 1, 1, 0, 0]);
      await store.deleteVersion('b', 'x', 'v1');
      assert.equal(await store.countBlobsOnBackend('c'), 1, 'queued for purge: its shards are still there');
      const due = await store.takePurgeBatch(Date.now() + PURGE_GRACE_MS + 1, 10);
      await store.completePurge(due.map((entry) => entry.blobId));
      assert.equal(await store.countBlobsOnBackend('c'), 0);
      assert.equal(await store.countBlobsOnBackend('a'), 1);
      await store.close();
    });

    test('replacing the null version queues its blob for purge after the grace period', async () => {
      const store = await freshStore(backend);
      await store.commitVersion({ version: version('k', 'null', 'old'), conditions: {} });
      const outcome = await store.commitVersion({ version: version('k', 'null', 'new'), conditions: {} });
      assert.equal(outcome.status === 'committed' ? outcome.replaced?.segments[0]?.blobId : outcome.status, 'old');
      assert.deepEqual(await store.takePurgeBatch(Date.now(), 10), []);
      const due = await store.takePurgeBatch(Date.now() + PURGE_GRACE_MS + 1, 10);
      assert.deepEqual(due.map((entry) => entry.blobId), ['old']);
      await store.completePurge(['old']);
      assert.equal(await store.isBlobKnown('old'), false);
      assert.equal(await store.isBlobKnown('new'), true);
      await store.close();
    });

    test('versioned keys: deleting the latest promotes the next newest; a bucket with versions is not empty', async () => {
      const store = await freshStore(backend);
      await store.commitVersion({ version: version('k', 'v1', 'b1', 'e1'), conditions: {} });
      await store.commitVersion({ version: version('k', 'v2', 'b2', 'e2'), conditions: {} });
      await store.commitVersion({ version: version('k', 'm3', null, ''), conditions: {} });
      assert.equal((await store.getVersion('b', 'k'))?.isDeleteMarker, true);
      assert.equal((await store.list({ bucket: 'b', prefix: '', delimiter: '', after: '', limit: 10 })).entries.length, 0);
      const versions = await store.listVersions({ bucket: 'b', prefix: '', delimiter: '', keyMarker: '', versionIdMarker: '', limit: 10 });
      assert.deepEqual(versions.entries.map((entry) => [entry.version?.versionId, entry.isLatest]), [['m3', true], ['v2', false], ['v1', false]]);
      await store.deleteVersion('b', 'k', 'm3');
      assert.equal((await store.getVersion('b', 'k'))?.versionId, 'v2');
      await store.deleteVersion('b', 'k', 'v2');
      assert.equal((await store.getVersion('b', 'k'))?.versionId, 'v1');
      assert.equal(await store.deleteBucket('b'), 'not-empty');
      await store.deleteVersion('b', 'k', 'v1');
      assert.equal(await store.deleteBucket('b'), 'deleted');
      assert.equal(await store.getBucket('b'), undefined);
      await store.close();
    });

    test('small objects keep their bytes in the store; tags and ACLs edit one version', async () => {
      const store = await freshStore(backend);
      const small = { ...version('s', 'null', null, 'es'), segments: [], sizeBytes: 5, inlineData: Buffer.from('hello') };
      await store.commitVersion({ version: small, conditions: {} });
      assert.equal((await store.getVersion('b', 's'))?.inlineData?.toString(), 'hello');
      assert.ok(await store.setVersionTags('b', 's', 'null', [{ key: 't', value: 'v' }]));
      assert.deepEqual((await store.getVersion('b', 's', 'null'))?.tags, [{ key: 't', value: 'v' }]);
      assert.equal(await store.setVersionTags('b', 's', 'missing', []), false);
      await store.close();
    });

    test('completing an upload consumes it, keeps used parts and purges the rest', async () => {
      const store = await freshStore(backend);
      await store.createUpload(upload('u', 'k'));
      for (const [partNumber, blobId] of [[1, 'p1'], [2, 'p2'], [3, 'p3']] as const) {
        assert.ok(await store.putPart({ uploadId: 'u', partNumber, sizeBytes: 1, etag: 'e', lastModifiedMs: 0, checksum: null, blobId }));
      }
      await store.putPart({ uploadId: 'u', partNumber: 2, sizeBytes: 1, etag: 'e', lastModifiedMs: 0, checksum: null, blobId: 'p2b' });
      assert.deepEqual((await store.listParts('u', 0, 10)).map((part) => part.blobId), ['p1', 'p2b', 'p3']);
      const object = version('k', 'null', 'p1');
      object.segments = [{ blobId: 'p1', sizeBytes: 1 }, { blobId: 'p2b', sizeBytes: 1 }];
      assert.equal((await store.commitVersion({ version: object, conditions: {}, completesUploadId: 'u' })).status, 'committed');
      assert.equal(await store.getUpload('b', 'k', 'u'), undefined);
      const due = (await store.takePurgeBatch(Date.now() + PURGE_GRACE_MS + 1, 10)).map((entry) => entry.blobId).sort();
      assert.deepEqual(due, ['p2', 'p3']);
      assert.equal((await store.commitVersion({ version: object, conditions: {}, completesUploadId: 'u' })).status, 'no-such-upload');
      assert.equal(await store.putPart({ uploadId: 'u', partNumber: 4, sizeBytes: 1, etag: 'e', lastModifiedMs: 0, checksum: null, blobId: 'p4' }), false);
      await store.close();
    });

    test('a postponed purge entry moves behind the others', async () => {
      const store = await freshStore(backend);
      await store.commitVersion({ version: version('a', 'null', 'blob-a'), conditions: {} });
      await store.commitVersion({ version: version('b', 'null', 'blob-b'), conditions: {} });
      await store.deleteVersion('b', 'a', 'null');
      await new Promise((resolve) => setTimeout(resolve, 5));
      await store.deleteVersion('b', 'b', 'null');
      const due = Date.now() + PURGE_GRACE_MS + 1;
      assert.deepEqual((await store.takePurgeBatch(due, 1)).map((entry) => entry.blobId), ['blob-a']);
      await store.postponePurge(['blob-a'], due + 10_000);
      assert.deepEqual((await store.takePurgeBatch(due, 10)).map((entry) => entry.blobId), ['blob-b']);
      // PostgreSQL's claim moved blob-b a lease ahead; both are due again by then.
      assert.deepEqual((await store.takePurgeBatch(due + 120_000, 10)).map((entry) => entry.blobId).sort(), ['blob-a', 'blob-b']);
      await store.close();
    });

    test('a failing commit leaves no trace', async () => {
      const store = await freshStore(backend);
      await store.commitVersion({ version: version('taken', 'v1', 'blob-old', 'old'), conditions: {} });
      await assert.rejects(store.commitVersion({ version: version('taken', 'v1', 'blob-clash', 'clash'), conditions: {} }));
      assert.equal((await store.getVersion('b', 'taken'))?.etag, 'old');
      assert.equal(await store.isBlobKnown('blob-clash'), false);
      await store.close();
    });

    test('principals: users, keys and the secret key check', async () => {
      const store = await backend.open();
      const root = await store.rootCanonicalId();
      assert.match(root, /^[0-9a-f]{64}$/);
      const key = (id: string, userId: string | null) => ({ accessKeyId: id, userId, sealedSecret: Buffer.from(`sealed-${id}`), policy: null, expiresMs: null, enabled: true, createdMs: Date.now() });
      await store.putAccessKey(key('ROOTKEY', null));
      const user = { canonicalId: 'c'.repeat(64), name: 'alice', email: 'Alice@example.com', policy: null, createdMs: Date.now() };
      assert.equal(await store.createUser(user, key('ALICEKEY', user.canonicalId)), 'created');
      assert.equal(await store.createUser({ ...user, canonicalId: 'd'.repeat(64) }, key('K2', 'd'.repeat(64))), 'name-taken');
      assert.equal(await store.createUser({ ...user, canonicalId: 'd'.repeat(64), name: 'bob', email: 'alice@EXAMPLE.com' }, key('K2', 'd'.repeat(64))), 'email-taken');
      const sealed = (await store.listAccessKeys()).map((record) => [record.accessKeyId, Buffer.from(record.sealedSecret).toString(), record.enabled]);
      assert.deepEqual(sealed.sort(), [['ALICEKEY', 'sealed-ALICEKEY', true], ['ROOTKEY', 'sealed-ROOTKEY', true]]);
      assert.ok(await store.updateAccessKey('ALICEKEY', { enabled: false, policy: 'readonly' }));
      const alice = (await store.listAccessKeys()).find((record) => record.accessKeyId === 'ALICEKEY');
      assert.deepEqual([alice?.enabled, alice?.policy], [false, 'readonly']);
      await store.createBucket({ name: 'alices', createdMs: 0, ownerId: user.canonicalId, versioning: 'Unversioned', tags: null });
      assert.equal(await store.deleteUser(user.canonicalId), 'owns-buckets');
      assert.equal(await store.deleteBucket('alices'), 'deleted');
      assert.equal(await store.deleteUser(user.canonicalId), 'deleted');
      assert.deepEqual((await store.listAccessKeys()).map((record) => record.accessKeyId), ['ROOTKEY']);
      await store.setSecretKeyCheck(Buffer.from([1, 2, 3]));
      assert.deepEqual([...(await store.secretKeyCheck())!], [1, 2, 3]);
      await store.close();
    });

    test('bucket settings: versioning, tags, access and configurations', async () => {
      const store = await freshStore(backend);
      assert.ok(await store.setBucketVersioning('b', 'Enabled'));
      assert.ok(await store.setBucketConfig('b', 'cors', '{"rules":[]}'));
      assert.ok(await store.setBucketConfig('b', 'lifecycle', '{"l":1}'));
      assert.ok(await store.setBucketTags('b', [{ key: 'k', value: 'v' }]));
      assert.ok(await store.setBucketAccess('b', { policy: '{}' }));
      const record = await store.getBucket('b');
      assert.deepEqual([record?.versioning, record?.configs, record?.tags, record?.access], ['Enabled', { cors: '{"rules":[]}', lifecycle: '{"l":1}' }, [{ key: 'k', value: 'v' }], { policy: '{}' }]);
      assert.equal(await store.createBucket({ name: 'b', createdMs: 0, ownerId: 'x', versioning: 'Unversioned', tags: null }), 'exists');
      assert.equal(await store.setBucketVersioning('missing', 'Enabled'), false);
      await store.close();
    });

    test('keys in mixed case, punctuation and non-ASCII list in byte order, page by page, with and without a delimiter', async () => {
      const store = await freshStore(backend);
      for (const [i, key] of TRICKY_KEYS.entries()) await store.commitVersion({ version: version(key, 'null', `blob-${i}`), conditions: {} });
      // A deleted key is not listed.
      await store.commitVersion({ version: version('gone', 'null', 'blob-gone'), conditions: {} });
      await store.deleteVersion('b', 'gone', 'null');
      for (const [prefix, delimiter] of [['', ''], ['', '/'], ['a', '/'], ['dir/', '/'], ['', 'b'], ['中文', '/'], ['😀', '/'], ['d', '.'], ['', '//']] as const) {
        const expected = expectedListing(TRICKY_KEYS, prefix, delimiter);
        for (const pageSize of [1, 3, 1000]) {
          assert.deepEqual(await listAll(store, prefix, delimiter, pageSize), expected, `prefix ${JSON.stringify(prefix)} delimiter ${JSON.stringify(delimiter)} page ${pageSize}`);
        }
      }
      // Listing with metadata reads the documents' fields.
      const withMetadata = await store.list({ bucket: 'b', prefix: 'a', delimiter: '', after: '', limit: 2, withMetadata: true });
      assert.deepEqual(withMetadata.entries.map((entry) => [entry.key, entry.version?.userMetadata, entry.version?.checksum]), [['a', {}, null], ['a b', {}, null]]);
      await store.close();
    });

    test('version and upload listings: markers inside a key, common prefixes, byte order', async () => {
      const store = await freshStore(backend);
      await store.setBucketVersioning('b', 'Enabled');
      const keys = ['x/1', 'x/2', 'é', 'E', '😀', '\uffee'];
      for (const key of keys) for (const v of [1, 2, 3]) await store.commitVersion({ version: version(key, `${key}-v${v}`, `b-${key}-${v}`), conditions: {} });
      const all: string[] = [];
      let keyMarker = '';
      let versionIdMarker = '';
      for (;;) {
        const page = await store.listVersions({ bucket: 'b', prefix: '', delimiter: '/', keyMarker, versionIdMarker, limit: 2 });
        all.push(...page.entries.map((entry) => entry.version?.versionId ?? `P:${entry.key}`));
        if (!page.isTruncated) break;
        const last = page.entries.at(-1)!;
        keyMarker = last.key;
        versionIdMarker = last.version?.versionId ?? '';
      }
      const expected: string[] = [];
      for (const key of [...keys].sort(compareKeys)) {
        if (key.startsWith('x/')) {
          if (!expected.includes('P:x/')) expected.push('P:x/');
        } else expected.push(`${key}-v3`, `${key}-v2`, `${key}-v1`);
      }
      assert.deepEqual(all, expected);
      for (const [i, key] of ['k/a', 'k/b', 'K', 'ü'].entries()) await store.createUpload(upload(`u${i}`, key, i));
      await store.createUpload(upload('u9', 'K', 9));
      const uploads = await store.listUploads({ bucket: 'b', prefix: '', delimiter: '/', keyMarker: '', uploadIdMarker: '', limit: 10 });
      assert.deepEqual(uploads.entries.map((entry) => entry.upload?.uploadId ?? `P:${entry.key}`), ['u2', 'u9', 'P:k/', 'u3']);
      const afterMarker = await store.listUploads({ bucket: 'b', prefix: '', delimiter: '', keyMarker: 'K', uploadIdMarker: 'u2', limit: 2 });
      assert.deepEqual([afterMarker.entries.map((entry) => entry.upload?.uploadId), afterMarker.isTruncated], [['u9', 'u0'], true]);
      await store.close();
    });
  });
}

describe('several PostgreSQL stores on one database (several nodes)', { skip: pgSkip }, () => {
  test('32 concurrent If-None-Match: * commits of one key over 4 stores: exactly one wins; the same for If-Match', async () => {
    const url = await freshDatabaseUrl();
    const stores = await Promise.all([0, 1, 2, 3].map(() => PostgresMetadataStore.open(url, { connections: 8 })));
    await stores[0]!.createBucket({ name: 'b', createdMs: 0, ownerId: 'o', versioning: 'Enabled', tags: null });
    const outcomes = await Promise.all(Array.from({ length: 32 }, (_, i) =>
      stores[i % 4]!.commitVersion({ version: version('race', `v${i}`, `blob-${i}`, `etag-${i}`), conditions: { ifNoneMatchStar: true } })));
    const winners = outcomes.filter((outcome) => outcome.status === 'committed');
    assert.equal(winners.length, 1, JSON.stringify(outcomes.map((outcome) => outcome.status)));
    const current = (await stores[1]!.getVersion('b', 'race'))!;
    const matched = await Promise.all(Array.from({ length: 32 }, (_, i) =>
      stores[i % 4]!.commitVersion({ version: version('race', `m${i}`, `mblob-${i}`, `metag-${i}`), conditions: { ifMatch: current.etag } })));
    assert.equal(matched.filter((outcome) => outcome.status === 'committed').length, 1);
    const versions = await stores[2]!.listVersions({ bucket: 'b', prefix: '', delimiter: '', keyMarker: '', versionIdMarker: '', limit: 100 });
    assert.equal(versions.entries.length, 2);
    assert.equal(versions.entries.filter((entry) => entry.isLatest).length, 1);
    // Losers' blobs were never recorded (reclaim removes their bytes).
    const known = await Promise.all(Array.from({ length: 32 }, (_, i) => stores[0]!.isBlobKnown(`blob-${i}`)));
    assert.equal(known.filter(Boolean).length, 1);
    await Promise.all(stores.map((store) => store.close()));
  });

  test('purge entries and repairs are claimed by one store at a time', async () => {
    const url = await freshDatabaseUrl();
    const stores = await Promise.all([0, 1, 2].map(() => PostgresMetadataStore.open(url, { connections: 4 })));
    const [first] = stores;
    await first!.createBucket({ name: 'b', createdMs: 0, ownerId: 'o', versioning: 'Unversioned', tags: null });
    for (let i = 0; i < 60; i++) {
      await first!.commitVersion({ version: version(`k${i}`, 'null', `blob-${i}`), conditions: {} });
      await first!.deleteVersion('b', `k${i}`, 'null');
    }
    const due = Date.now() + PURGE_GRACE_MS + 1;
    const batches = await Promise.all(stores.flatMap((store) => [store.takePurgeBatch(due, 15), store.takePurgeBatch(due, 15)]));
    const taken = batches.flat().map((entry) => entry.blobId);
    assert.equal(new Set(taken).size, taken.length, 'no entry handed out twice');
    assert.equal(taken.length, 60);
    assert.deepEqual(await first!.takePurgeBatch(due, 100), [], 'claimed entries wait for their lease');
    await first!.recordRepairs(Array.from({ length: 10 }, (_, shard) => ({ blobId: 'placed', shard, reason: 'test' })));
    const repairs = await Promise.all(stores.map((store) => store.takeRepairs(Date.now() + 1, 4)));
    const shards = repairs.flat().map((entry) => entry.shard);
    assert.equal(new Set(shards).size, shards.length);
    assert.equal(shards.length, 10);
    await Promise.all(stores.map((store) => store.close()));
  });
});
