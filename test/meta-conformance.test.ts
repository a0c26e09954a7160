/**
 * The metadata store's rules, run on both implementations: the embedded
 * SQLite store and the PostgreSQL one (a private PostgreSQL for this file,
 * a fresh database per case). Conditional commits, null-version
 * replacement, delete-marker promotion, uploads and the purge queue; and
 * listings — keys in mixed case, punctuation and non-ASCII (including
 * characters beyond U+FFFF, where UTF-16 order and byte order differ) list
 * identically on both, in S3's byte order, page by page.
 * Bucket quotas: counted when set, judged and kept by every commit and
 * delete; a schema 5 database opens and gains them.
 * PostgreSQL only: several stores on one database (several nodes) give a
 * conditional commit exactly one winner and hand each purge entry to one,
 * and let exactly the commits that fit a quota through.
 */
import Database from 'better-sqlite3';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import postgres from 'postgres';
import { compareKeys } from '../src/meta/key-order.ts';
import type { ListEntry, MetadataStore } from '../src/meta/metadata-store.ts';
import { PostgresMetadataStore } from '../src/meta/postgres/postgres-metadata-store.ts';
import { SqliteMetadataStore } from '../src/meta/sqlite/sqlite-metadata-store.ts';
import type { ObjectVersion, UploadRecord } from '../src/meta/types.ts';
import { PURGE_GRACE_MS } from '../src/util/limits.ts';
import { isS3Error } from '../src/util/s3-error.ts';
import { postgresUnavailable, startTestPostgres, type TestPostgres } from './helpers/postgres.ts';

function version(key: string, versionId: string, blobId: string | null, etag = 'e'): ObjectVersion {
  return {
    bucket: 'b', key, versionId, isDeleteMarker: blobId === null && etag === '', lastModifiedMs: Date.now(), sizeBytes: blobId === null ? 0 : 1,
    etag, ownerId: 'o', system: {}, userMetadata: {}, checksum: null, tags: [], parts: null,
    segments: blobId === null ? [] : [{ blobId, sizeBytes: 1 }],
  };
}

function sized(key: string, versionId: string, blobId: string, sizeBytes: number): ObjectVersion {
  return { ...version(key, versionId, blobId), sizeBytes, segments: [{ blobId, sizeBytes }] };
}

/** A refusal for the quota, and nothing else. */
function isQuotaRefusal(error: unknown): boolean {
  return isS3Error(error) && error.code === 'XMinioAdminBucketQuotaExceeded';
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

/**
 * A fresh, empty database on the private server: one per case, so cases never see each other's rows. Its
 * default collation is ICU's en-US and its character class C.UTF-8, as in most deployments (not the
 * server's C): whatever must order or fold as SQLite does has to say so (COLLATE "C"), or a case shows it.
 */
async function freshDatabaseUrl(): Promise<string> {
  assert.ok(pg !== undefined && admin !== undefined);
  const name = `case_${++databases}`;
  await admin.unsafe(`CREATE DATABASE ${name} TEMPLATE template0 ENCODING 'UTF8' LOCALE 'C.UTF-8' LOCALE_PROVIDER icu ICU_LOCALE 'en-US'`);
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

    test('ifSelected is judged on the whole version in the transaction: tags changed without the ETag fail it', async () => {
      const store = await freshStore(backend);
      await store.setBucketVersioning('b', 'Enabled');
      await store.commitVersion({ version: { ...version('k', 'v1', 'b1'), tags: [{ key: 'class', value: 'scratch' }] }, conditions: {} });
      await store.commitVersion({ version: { ...version('k', 'v2', 'b2'), tags: [{ key: 'class', value: 'scratch' }] }, conditions: {} });
      const scratch = (subject: ObjectVersion): boolean => subject.tags.some((tag) => tag.value === 'scratch');
      await store.setVersionTags('b', 'k', 'v1', [{ key: 'class', value: 'gold' }]);
      await store.setVersionTags('b', 'k', 'v2', [{ key: 'class', value: 'gold' }]);
      assert.deepEqual(await store.deleteVersionIf('b', 'k', 'v1', { ifSelected: scratch }), { status: 'precondition-failed' });
      const marker = version('k', 'm1', null, '');
      assert.equal((await store.commitVersion({ version: marker, conditions: { ifMatch: 'e', ifSelected: scratch } })).status, 'precondition-failed');
      assert.equal((await store.getVersion('b', 'k'))?.versionId, 'v2', 'no marker was added');
      await store.setVersionTags('b', 'k', 'v1', [{ key: 'class', value: 'scratch' }]);
      assert.equal((await store.deleteVersionIf('b', 'k', 'v1', { ifSelected: scratch })).status, 'deleted');
      assert.equal((await store.commitVersion({ version: version('none', 'v3', 'b3'), conditions: { ifSelected: () => true } })).status, 'no-such-key');
      await store.close();
    });

    test('lockFor decides the version\'s lock from the bucket\'s objectLock document as the commit sees it', async () => {
      const store = await freshStore(backend);
      await store.setBucketVersioning('b', 'Enabled');
      const seen: (string | undefined)[] = [];
      const retention = { mode: 'GOVERNANCE' as const, retainUntilMs: Date.now() + 60_000 };
      const lockFor = (document: string | undefined) => {
        seen.push(document);
        return document === undefined ? { legalHold: false } : { retention };
      };
      await store.commitVersion({ version: version('k', 'v1', 'b1'), conditions: {}, lockFor });
      await store.setBucketConfig('b', 'objectLock', '{"enabled":true}');
      await store.commitVersion({ version: { ...version('k', 'v2', 'b2'), legalHold: true }, conditions: {}, lockFor });
      assert.deepEqual(seen, [undefined, '{"enabled":true}']);
      const first = await store.getVersion('b', 'k', 'v1');
      assert.equal(first?.legalHold, false);
      assert.equal(first?.retention, undefined);
      const second = await store.getVersion('b', 'k', 'v2');
      assert.deepEqual(second?.retention, retention);
      assert.equal(second?.legalHold, undefined, 'what lockFor returns replaces the lock the version came with');
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

    test('sampleBlobsOnBackend and releaseBackendFromPurgeQueue (RemoveBackend force): live blobs block, purge-queue entries stop naming the backend', async () => {
      const store = await freshStore(backend);
      await store.setBucketVersioning('b', 'Enabled');
      const placed = (key: string, versionId: string, blobId: string, backends: string[]): ObjectVersion => {
        const location = JSON.stringify({ v: 2, k: 2, m: backends.length - 2, b: 65536, n: 1, h: 40, on: backends });
        return { ...version(key, versionId, blobId), segments: [{ blobId, sizeBytes: 1, location }] };
      };
      await store.commitVersion({ version: placed('x', 'v1', 'p1', ['a', 'b', 'c']), conditions: {} });
      await store.commitVersion({ version: placed('y', 'v2', 'p2', ['b', 'a', 'd']), conditions: {} });
      assert.deepEqual((await store.sampleBlobsOnBackend('c', 3)).map((blob) => blob.blobId), ['p1']);
      assert.equal((await store.sampleBlobsOnBackend('a', 1)).length, 1);
      assert.deepEqual(await store.releaseBackendFromPurgeQueue('c', '-'), { live: 1, released: 0 });
      await store.deleteVersion('b', 'x', 'v1');
      assert.deepEqual(await store.sampleBlobsOnBackend('c', 3), [], 'queued for purge: not live');
      assert.deepEqual(await store.releaseBackendFromPurgeQueue('c', '-'), { live: 0, released: 1 });
      assert.equal(await store.countBlobsOnBackend('c'), 0);
      assert.equal(await store.countBlobsOnBackend('a'), 2, 'the other backends of the entry stay named');
      const due = await store.takePurgeBatch(Date.now() + PURGE_GRACE_MS + 1, 10);
      assert.deepEqual(due.map((entry) => JSON.parse(entry.location ?? '{}').on), [['a', 'b', '-']]);
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

    test('emails are unique with ASCII letters folded only (SQLite\'s lower()), whatever PostgreSQL\'s locale', async () => {
      const store = await backend.open();
      const key = (id: string, userId: string) => ({ accessKeyId: id, userId, sealedSecret: Buffer.from(`sealed-${id}`), policy: null, expiresMs: null, enabled: true, createdMs: Date.now() });
      const user = (n: number, email: string) => ({ canonicalId: String(n).repeat(64), name: `user${n}`, email, policy: null, createdMs: Date.now() });
      assert.equal(await store.createUser(user(1, 'ÉLODIE@example.com'), key('K1', user(1, '').canonicalId)), 'created');
      assert.equal(await store.createUser(user(2, 'élodie@example.com'), key('K2', user(2, '').canonicalId)), 'created');
      assert.equal(await store.createUser(user(3, 'Élodie@EXAMPLE.COM'), key('K3', user(3, '').canonicalId)), 'email-taken');
      assert.deepEqual((await store.listUsers()).map((record) => record.email).sort(), ['ÉLODIE@example.com', 'élodie@example.com']);
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

    test('bucket quotas: counted when set, judged and kept by commits and deletes, refusals change nothing, cleared to nothing', async () => {
      const store = await freshStore(backend);
      await store.commitVersion({ version: sized('k1', 'null', 'blob-k1', 10), conditions: {} });
      assert.equal(await store.setBucketQuota('missing', { maxBytes: 1, maxObjects: null }), false);
      assert.equal(await store.bucketQuota('b'), undefined);
      assert.ok(await store.setBucketQuota('b', { maxBytes: 30, maxObjects: 3 }));
      assert.deepEqual(await store.bucketQuota('b'), { maxBytes: 30, maxObjects: 3, usedBytes: 10, usedObjects: 1 });
      assert.deepEqual((await store.getBucket('b'))?.quota, { maxBytes: 30, maxObjects: 3 });

      assert.equal((await store.commitVersion({ version: sized('k2', 'null', 'blob-k2', 20), conditions: {} })).status, 'committed');
      await assert.rejects(store.commitVersion({ version: sized('k3', 'null', 'blob-k3', 1), conditions: {} }), isQuotaRefusal);
      assert.equal(await store.getVersion('b', 'k3'), undefined);
      assert.equal(await store.isBlobKnown('blob-k3'), false);
      // An overwrite counts its difference; a delete frees what it removes.
      assert.equal((await store.commitVersion({ version: sized('k2', 'null', 'blob-k2b', 5), conditions: {} })).status, 'committed');
      assert.deepEqual(await store.bucketQuota('b'), { maxBytes: 30, maxObjects: 3, usedBytes: 15, usedObjects: 2 });
      await store.deleteVersion('b', 'k1', 'null');
      assert.deepEqual(await store.bucketQuota('b'), { maxBytes: 30, maxObjects: 3, usedBytes: 5, usedObjects: 1 });

      // A part past the quota is refused as it is recorded; a completion past it leaves the upload as it was.
      await store.createUpload(upload('u1', 'big'));
      const part1 = { uploadId: 'u1', partNumber: 1, sizeBytes: 26, etag: 'p1', lastModifiedMs: 0, checksum: null, blobId: 'part-1' };
      await assert.rejects(store.putPart(part1), isQuotaRefusal);
      assert.equal((await store.listParts('u1', 0, 10)).length, 0);
      assert.ok(await store.setBucketQuota('b', { maxBytes: 31, maxObjects: 1 }));
      assert.ok(await store.putPart(part1));
      assert.deepEqual(await store.bucketQuota('b'), { maxBytes: 31, maxObjects: 1, usedBytes: 31, usedObjects: 1 });
      const completion = { ...sized('big', 'null', 'part-1', 26), completedUploadId: 'u1' };
      await assert.rejects(store.commitVersion({ version: completion, conditions: {}, completesUploadId: 'u1' }), isQuotaRefusal);
      assert.equal((await store.getUpload('b', 'big', 'u1'))?.uploadId, 'u1');
      assert.equal((await store.listParts('u1', 0, 10)).length, 1);
      assert.deepEqual(await store.bucketQuota('b'), { maxBytes: 31, maxObjects: 1, usedBytes: 31, usedObjects: 1 });
      // Raising a limit keeps the counters; the completed upload's part turns into the object's bytes.
      assert.ok(await store.setBucketQuota('b', { maxBytes: 31, maxObjects: null }));
      assert.equal((await store.commitVersion({ version: completion, conditions: {}, completesUploadId: 'u1' })).status, 'committed');
      assert.deepEqual(await store.bucketQuota('b'), { maxBytes: 31, maxObjects: null, usedBytes: 31, usedObjects: 2 });

      assert.ok(await store.setBucketQuota('b', null));
      assert.equal(await store.bucketQuota('b'), undefined);
      assert.equal((await store.getBucket('b'))?.quota, undefined);
      assert.equal((await store.commitVersion({ version: sized('k4', 'null', 'blob-k4', 1000), conditions: {} })).status, 'committed');
      // Set again: counted afresh from what the bucket holds.
      assert.ok(await store.setBucketQuota('b', { maxBytes: null, maxObjects: 10 }));
      assert.deepEqual(await store.bucketQuota('b'), { maxBytes: null, maxObjects: 10, usedBytes: 1031, usedObjects: 3 });
      await store.close();
    });

    test('bucket quotas count parts as they arrive: replaced, aborted, completed (unused ones released), counted when set, judged under concurrency', async () => {
      const store = await freshStore(backend);
      const part = (uploadId: string, partNumber: number, sizeBytes: number, blobId: string) =>
        ({ uploadId, partNumber, sizeBytes, etag: `e-${blobId}`, lastModifiedMs: 0, checksum: null, blobId });
      const used = async () => (await store.bucketQuota('b'))?.usedBytes;
      assert.ok(await store.setBucketQuota('b', { maxBytes: 10, maxObjects: null }));
      await store.createUpload(upload('u', 'k'));
      assert.ok(await store.putPart(part('u', 1, 4, 'p1')));
      assert.ok(await store.putPart(part('u', 2, 4, 'p2')));
      assert.equal(await used(), 8);
      // A replacement counts its difference: up to the limit, not past it.
      assert.ok(await store.putPart(part('u', 2, 6, 'p2b')));
      assert.equal(await used(), 10);
      await assert.rejects(store.putPart(part('u', 3, 1, 'p3')), isQuotaRefusal);
      assert.deepEqual((await store.listParts('u', 0, 10)).map((listed) => listed.blobId), ['p1', 'p2b']);
      assert.ok(await store.putPart(part('u', 2, 2, 'p2c')));
      assert.ok(await store.putPart(part('u', 3, 1, 'p3')));
      assert.equal(await used(), 7);
      // Completed with parts 1 and 2: the object's 6 bytes stay counted, part 3 (unused) is released.
      const object = { ...sized('k', 'null', 'p1', 6), segments: [{ blobId: 'p1', sizeBytes: 4 }, { blobId: 'p2c', sizeBytes: 2 }], completedUploadId: 'u' };
      assert.equal((await store.commitVersion({ version: object, conditions: {}, completesUploadId: 'u' })).status, 'committed');
      assert.deepEqual(await store.bucketQuota('b'), { maxBytes: 10, maxObjects: null, usedBytes: 6, usedObjects: 1 });
      // An abort frees its parts.
      await store.createUpload(upload('u2', 'k2'));
      assert.ok(await store.putPart(part('u2', 1, 3, 'q1')));
      assert.equal(await used(), 9);
      assert.ok(await store.abortUpload('b', 'k2', 'u2'));
      assert.equal(await used(), 6);
      // A quota set while parts are in flight counts them, and their abort then frees what was counted.
      assert.ok(await store.setBucketQuota('b', null));
      await store.createUpload(upload('u3', 'k3'));
      assert.ok(await store.putPart(part('u3', 1, 5, 'r1')));
      assert.ok(await store.setBucketQuota('b', { maxBytes: 16, maxObjects: null }));
      assert.equal(await used(), 11);
      assert.ok(await store.abortUpload('b', 'k3', 'u3'));
      assert.equal(await used(), 6);
      // Concurrent parts that each fit but together do not: exactly as many pass as fit.
      await store.createUpload(upload('u4', 'k4'));
      const outcomes = await Promise.allSettled([1, 2, 3, 4, 5].map((n) => store.putPart(part('u4', n, 3, `s${n}`))));
      assert.equal(outcomes.filter((outcome) => outcome.status === 'fulfilled').length, 3);
      for (const outcome of outcomes) if (outcome.status === 'rejected') assert.ok(isQuotaRefusal(outcome.reason));
      assert.equal(await used(), 15);
      assert.equal((await store.listParts('u4', 0, 10)).length, 3);
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

    test('listings with metadata carry each version\'s ACL (the listing judges who may see its metadata)', async () => {
      const store = await freshStore(backend);
      const acl = { owner: { id: 'o' }, grants: [{ grantee: { type: 'Group' as const, uri: 'http://acs.amazonaws.com/groups/global/AllUsers' }, permission: 'READ' as const }] };
      await store.setBucketVersioning('b', 'Enabled');
      await store.commitVersion({ version: { ...version('k', 'v1', 'blob-acl'), userMetadata: { a: '1' }, acl } as ObjectVersion, conditions: {} });
      await store.commitVersion({ version: version('plain', 'v1', 'blob-plain'), conditions: {} });
      const keys = await store.list({ bucket: 'b', prefix: '', delimiter: '', after: '', limit: 10, withMetadata: true });
      assert.deepEqual(keys.entries.map((entry) => [entry.key, entry.version?.acl]), [['k', acl], ['plain', undefined]]);
      const rolled = await store.list({ bucket: 'b', prefix: '', delimiter: '/', after: '', limit: 10, withMetadata: true });
      assert.deepEqual(rolled.entries.map((entry) => [entry.key, entry.version?.acl]), [['k', acl], ['plain', undefined]]);
      const versions = await store.listVersions({ bucket: 'b', prefix: '', delimiter: '/', keyMarker: '', versionIdMarker: '', limit: 10, withMetadata: true });
      assert.deepEqual(versions.entries.map((entry) => [entry.key, entry.version?.acl]), [['k', acl], ['plain', undefined]]);
      await store.close();
    });

    test('uploads of one key started in the same millisecond list in byte order of their IDs, page by page', async () => {
      const store = await freshStore(backend);
      const ids = ['B', 'a', 'Z', '_x', '-y', 'b', 'A-1', 'a_0'];
      for (const id of ids) await store.createUpload(upload(id, 'k', 5));
      const expected = [...ids].sort(compareKeys);
      const seen: string[] = [];
      let uploadIdMarker = '';
      for (let pages = 0; pages < ids.length + 1; pages++) {
        const page = await store.listUploads({ bucket: 'b', prefix: '', delimiter: '', keyMarker: uploadIdMarker === '' ? '' : 'k', uploadIdMarker, limit: 3 });
        seen.push(...page.entries.map((entry) => entry.upload!.uploadId));
        if (!page.isTruncated) break;
        uploadIdMarker = seen.at(-1)!;
      }
      assert.deepEqual(seen, expected);
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

test('a schema 5 SQLite database opens at the current schema and takes quotas', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'talus-meta-v5-'));
  try {
    const path = join(dir, 'meta.db');
    let store = new SqliteMetadataStore(path);
    await store.createBucket({ name: 'b', createdMs: 0, ownerId: 'o', versioning: 'Unversioned', tags: null });
    await store.commitVersion({ version: sized('old', 'null', 'blob-old', 7), conditions: {} });
    await store.close();
    const db = new Database(path);
    for (const column of ['quota_bytes_max', 'quota_objects_max', 'quota_bytes_used', 'quota_objects_used']) db.exec(`ALTER TABLE buckets DROP COLUMN ${column}`);
    db.exec("UPDATE settings SET value = '5' WHERE name = 'schema_version'");
    db.close();
    store = new SqliteMetadataStore(path);
    assert.ok(await store.setBucketQuota('b', { maxBytes: 10, maxObjects: null }));
    assert.deepEqual(await store.bucketQuota('b'), { maxBytes: 10, maxObjects: null, usedBytes: 7, usedObjects: 1 });
    await assert.rejects(store.commitVersion({ version: sized('new', 'null', 'blob-new', 4), conditions: {} }), isQuotaRefusal);
    await store.close();
    const check = new Database(path, { readonly: true });
    assert.equal((check.prepare("SELECT value FROM settings WHERE name = 'schema_version'").get() as { value: string }).value, '6');
    check.close();
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

describe('several PostgreSQL stores on one database (several nodes)', { skip: pgSkip }, () => {
  test('a schema 5 database opens at the current schema and takes quotas', async () => {
    const url = await freshDatabaseUrl();
    let store = await PostgresMetadataStore.open(url, { connections: 2 });
    await store.createBucket({ name: 'b', createdMs: 0, ownerId: 'o', versioning: 'Unversioned', tags: null });
    await store.commitVersion({ version: sized('old', 'null', 'blob-old', 7), conditions: {} });
    await store.sql.unsafe(`ALTER TABLE buckets DROP COLUMN quota_bytes_max, DROP COLUMN quota_objects_max, DROP COLUMN quota_bytes_used, DROP COLUMN quota_objects_used;
                            UPDATE settings SET value = '5' WHERE name = 'schema_version'`);
    await store.close();
    store = await PostgresMetadataStore.open(url, { connections: 2 });
    assert.ok(await store.setBucketQuota('b', { maxBytes: 10, maxObjects: null }));
    assert.deepEqual(await store.bucketQuota('b'), { maxBytes: 10, maxObjects: null, usedBytes: 7, usedObjects: 1 });
    const [row] = await store.sql<{ value: string }[]>`SELECT value FROM settings WHERE name = 'schema_version'`;
    assert.equal(row?.value, '6');
    await store.close();
  });

  test('20 concurrent commits over 4 stores into a quota that fits 10: exactly 10 commit; counters stay exact while a quota is set during writes', async () => {
    const url = await freshDatabaseUrl();
    const stores = await Promise.all([0, 1, 2, 3].map(() => PostgresMetadataStore.open(url, { connections: 8 })));
    await stores[0]!.createBucket({ name: 'b', createdMs: 0, ownerId: 'o', versioning: 'Unversioned', tags: null });
    await stores[0]!.setBucketQuota('b', { maxBytes: 100, maxObjects: null });
    const results = await Promise.allSettled(Array.from({ length: 20 }, (_, i) =>
      stores[i % 4]!.commitVersion({ version: sized(`k${i}`, 'null', `blob-${i}`, 10), conditions: {} })));
    assert.equal(results.filter((result) => result.status === 'fulfilled').length, 10);
    assert.ok(results.every((result) => result.status === 'fulfilled' || isQuotaRefusal(result.reason)));
    assert.deepEqual(await stores[1]!.bucketQuota('b'), { maxBytes: 100, maxObjects: null, usedBytes: 100, usedObjects: 10 });
    assert.equal((await stores[2]!.bucketUsage('b')).bytes, 100);

    // Cleared, then set again while commits and deletes run on every store: the count and the commits never miss each other.
    await stores[0]!.setBucketQuota('b', null);
    const writes = Array.from({ length: 40 }, (_, i) => i % 4 === 0
      ? stores[i % 4]!.deleteVersion('b', `k${i % 20}`, 'null')
      : stores[i % 4]!.commitVersion({ version: sized(`w${i}`, 'null', `wblob-${i}`, i), conditions: {} }));
    await new Promise((resolve) => setTimeout(resolve, 5));
    await stores[3]!.setBucketQuota('b', { maxBytes: null, maxObjects: 1000 });
    await Promise.all(writes);
    const usage = await stores[0]!.bucketUsage('b');
    assert.deepEqual(await stores[0]!.bucketQuota('b'), { maxBytes: null, maxObjects: 1000, usedBytes: usage.bytes, usedObjects: usage.versions });
    await Promise.all(stores.map((store) => store.close()));
  });

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
