/**
 * Small objects live inline in the metadata store: no blob file, bytes
 * committed with their version. These tests pin the boundary, every path
 * that reads or copies such bytes, the schema migration that added them, and
 * the group commit that makes small PUTs durable together.
 */
import {
  CompleteMultipartUploadCommand,
  CopyObjectCommand,
  CreateBucketCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  PutObjectCommand,
  UploadPartCommand,
  UploadPartCopyCommand,
} from '@aws-sdk/client-s3';
import Database from 'better-sqlite3';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { SCHEMA_VERSION } from '../src/meta/sqlite/schema.ts';
import { SqliteMetadataStore } from '../src/meta/sqlite/sqlite-metadata-store.ts';
import { INLINE_BYTES_MAX, MiB } from '../src/util/limits.ts';
import { countBlobFiles } from './helpers/process.ts';
import { startTestTalus, uniqueBucket, type TestTalus } from './helpers/talus.ts';

const sha256 = (data: Uint8Array): string => createHash('sha256').update(data).digest('hex');

async function blobFilesEventually(dataDir: string, expected: number, withinMs = 10_000): Promise<number> {
  const deadline = Date.now() + withinMs;
  let count = await countBlobFiles(dataDir);
  while (count !== expected && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 100));
    count = await countBlobFiles(dataDir);
  }
  return count;
}

describe('small objects kept inline', () => {
  let talus: TestTalus;
  let bucket: string;

  before(async () => {
    talus = await startTestTalus();
    bucket = uniqueBucket('inline');
    await talus.client.send(new CreateBucketCommand({ Bucket: bucket }));
  });
  after(() => talus.stop());

  const get = async (key: string, range?: string): Promise<{ bytes: Uint8Array; contentLength: number | undefined; contentRange: string | undefined }> => {
    const response = await talus.client.send(new GetObjectCommand({ Bucket: bucket, Key: key, Range: range }));
    return { bytes: await response.Body!.transformToByteArray(), contentLength: response.ContentLength, contentRange: response.ContentRange };
  };

  test('an object of INLINE_BYTES_MAX bytes writes no blob; one byte more writes one', async () => {
    const before = await countBlobFiles(talus.dataDir);
    const atLimit = randomBytes(INLINE_BYTES_MAX);
    await talus.client.send(new PutObjectCommand({ Bucket: bucket, Key: 'at-limit', Body: atLimit }));
    assert.equal(await countBlobFiles(talus.dataDir), before, 'no blob file for an inline object');
    assert.equal(sha256((await get('at-limit')).bytes), sha256(atLimit));

    const overLimit = randomBytes(INLINE_BYTES_MAX + 1);
    await talus.client.send(new PutObjectCommand({ Bucket: bucket, Key: 'over-limit', Body: overLimit }));
    assert.equal(await countBlobFiles(talus.dataDir), before + 1);
    assert.equal(sha256((await get('over-limit')).bytes), sha256(overLimit));
  });

  test('deleting or replacing an inline object removes its bytes from the store', async () => {
    const store = talus.engine.meta as SqliteMetadataStore;
    const rows = (): number => (store.database.prepare('SELECT count(*) AS n FROM inline_data').get() as { n: number }).n;
    const before = rows();
    await talus.client.send(new PutObjectCommand({ Bucket: bucket, Key: 'gone', Body: 'first' }));
    await talus.client.send(new PutObjectCommand({ Bucket: bucket, Key: 'gone', Body: 'second' }));
    assert.equal(rows(), before + 1, 'the replaced bytes went with their version');
    assert.equal(Buffer.from((await get('gone')).bytes).toString(), 'second');
    await talus.client.send(new DeleteObjectCommand({ Bucket: bucket, Key: 'gone' }));
    assert.equal(rows(), before);
  });

  test('ranges, HEAD and conditional GETs of an inline object', async () => {
    const body = randomBytes(5000);
    const put = await talus.client.send(new PutObjectCommand({ Bucket: bucket, Key: 'ranged', Body: body }));
    const part = await get('ranged', 'bytes=100-199');
    assert.deepEqual(Buffer.from(part.bytes), body.subarray(100, 200));
    assert.equal(part.contentRange, 'bytes 100-199/5000');
    const suffix = await get('ranged', 'bytes=-10');
    assert.deepEqual(Buffer.from(suffix.bytes), body.subarray(4990));
    const head = await talus.client.send(new HeadObjectCommand({ Bucket: bucket, Key: 'ranged' }));
    assert.equal(head.ContentLength, 5000);
    assert.equal(head.ETag, put.ETag);
    await assert.rejects(
      talus.client.send(new GetObjectCommand({ Bucket: bucket, Key: 'ranged', IfNoneMatch: put.ETag })),
      (error: { $metadata?: { httpStatusCode?: number } }) => error.$metadata?.httpStatusCode === 304,
    );
  });

  test('replacing inline with blob-backed bytes and back purges the blob and keeps the right bytes', async () => {
    const base = await blobFilesEventually(talus.dataDir, await countBlobFiles(talus.dataDir));
    const big = randomBytes(100_000);
    const small = randomBytes(10);
    await talus.client.send(new PutObjectCommand({ Bucket: bucket, Key: 'flip', Body: small }));
    await talus.client.send(new PutObjectCommand({ Bucket: bucket, Key: 'flip', Body: big }));
    assert.equal(sha256((await get('flip')).bytes), sha256(big));
    assert.equal(await countBlobFiles(talus.dataDir), base + 1);
    await talus.client.send(new PutObjectCommand({ Bucket: bucket, Key: 'flip', Body: small }));
    assert.equal(sha256((await get('flip')).bytes), sha256(small));
    assert.equal(await blobFilesEventually(talus.dataDir, base), base, 'the replaced blob is purged');
  });

  test('CopyObject and UploadPartCopy read inline sources', async () => {
    const body = randomBytes(3000);
    await talus.client.send(new PutObjectCommand({ Bucket: bucket, Key: 'copy-source', Body: body }));
    const before = await countBlobFiles(talus.dataDir);
    await talus.client.send(new CopyObjectCommand({ Bucket: bucket, Key: 'copy-target', CopySource: `${bucket}/copy-source` }));
    assert.equal(sha256((await get('copy-target')).bytes), sha256(body));
    assert.equal(await countBlobFiles(talus.dataDir), before, 'a small copy stays inline');

    const { UploadId } = await talus.client.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: 'assembled' }));
    const first = randomBytes(5 * MiB);
    const part1 = await talus.client.send(new UploadPartCommand({ Bucket: bucket, Key: 'assembled', UploadId, PartNumber: 1, Body: first }));
    const part2 = await talus.client.send(
      new UploadPartCopyCommand({ Bucket: bucket, Key: 'assembled', UploadId, PartNumber: 2, CopySource: `${bucket}/copy-source`, CopySourceRange: 'bytes=1000-1999' }),
    );
    await talus.client.send(
      new CompleteMultipartUploadCommand({
        Bucket: bucket,
        Key: 'assembled',
        UploadId,
        MultipartUpload: { Parts: [{ PartNumber: 1, ETag: part1.ETag }, { PartNumber: 2, ETag: part2.CopyPartResult?.ETag }] },
      }),
    );
    const assembled = await get('assembled');
    assert.equal(sha256(assembled.bytes), sha256(Buffer.concat([first, body.subarray(1000, 2000)])));
  });

  test('concurrent small PUTs share WAL fdatasyncs (group commit) and all read back', async () => {
    const store = talus.engine.meta as SqliteMetadataStore;
    const syncsBefore = store.walSyncCount;
    const bodies = Array.from({ length: 64 }, () => randomBytes(1000));
    await Promise.all(bodies.map((body, i) => talus.client.send(new PutObjectCommand({ Bucket: bucket, Key: `group/${i}`, Body: body }))));
    const syncs = store.walSyncCount - syncsBefore;
    assert.ok(syncs >= 1, 'commits were synced');
    assert.ok(syncs < bodies.length, `64 commits took ${syncs} fdatasyncs`);
    for (const [i, body] of bodies.entries()) assert.equal(sha256((await get(`group/${i}`)).bytes), sha256(body));
  });
});

describe('WAL checkpoints off the event loop', () => {
  test('sustained small writes keep the WAL small, and a clean stop removes it', { timeout: 60_000 }, async () => {
    const talus = await startTestTalus();
    const walPath = join(talus.dataDir, 'meta.db-wal');
    try {
      const bucket = uniqueBucket('wal');
      await talus.client.send(new CreateBucketCommand({ Bucket: bucket }));
      const body = randomBytes(8 * 1024);
      let largestWal = 0;
      // ~3 pages per commit: 1500 commits put ~4500 pages (18 MiB) through
      // the WAL, far below the serving connections' own 10 000-page threshold.
      for (let round = 0; round < 25; round++) {
        await Promise.all(Array.from({ length: 60 }, (_, i) => talus.client.send(new PutObjectCommand({ Bucket: bucket, Key: `k${round}-${i}`, Body: body }))));
        largestWal = Math.max(largestWal, (await stat(walPath)).size);
      }
      assert.ok(largestWal < 8 * MiB, `the WAL grew to ${largestWal} bytes`);
    } finally {
      await talus.stop();
    }
  });

  test('a stopped server leaves no WAL behind', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'talus-wal-'));
    try {
      const talus = await startTestTalus({ dataDir });
      await talus.client.send(new CreateBucketCommand({ Bucket: uniqueBucket('wal') }));
      await talus.stop();
      await assert.rejects(stat(join(dataDir, 'meta.db-wal')), { code: 'ENOENT' });
    } finally {
      await rm(dataDir, { recursive: true, force: true });
    }
  });
});

describe('metadata schema migration', () => {
  test('a version-1 database gains the inline table and keeps its rows', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'talus-migrate-'));
    try {
      const path = join(dir, 'meta.db');
      const old = new Database(path);
      old.pragma('journal_mode = WAL');
      old.exec(`
        CREATE TABLE settings (name TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
        CREATE TABLE buckets (name TEXT PRIMARY KEY, created_ms INTEGER NOT NULL, owner_id TEXT NOT NULL, versioning TEXT NOT NULL DEFAULT 'Unversioned', tags TEXT) WITHOUT ROWID;
        CREATE TABLE versions (seq INTEGER PRIMARY KEY AUTOINCREMENT, bucket TEXT NOT NULL, key TEXT NOT NULL, version_id TEXT NOT NULL, is_latest INTEGER NOT NULL, is_delete_marker INTEGER NOT NULL, size_bytes INTEGER NOT NULL, etag TEXT NOT NULL, last_modified_ms INTEGER NOT NULL, owner_id TEXT NOT NULL, meta TEXT NOT NULL);
        INSERT INTO settings VALUES ('schema_version', '1');
        INSERT INTO buckets VALUES ('old', 1, 'owner', 'Unversioned', NULL);
      `);
      old
        .prepare('INSERT INTO versions (bucket, key, version_id, is_latest, is_delete_marker, size_bytes, etag, last_modified_ms, owner_id, meta) VALUES (?, ?, ?, 1, 0, 1, ?, 1, ?, ?)')
        .run('old', 'key', 'null', 'etag', 'owner', JSON.stringify({ system: {}, userMetadata: {}, checksum: null, tags: [], parts: null, segments: [{ blobId: 'b', sizeBytes: 1 }] }));
      old.close();

      const store = new SqliteMetadataStore(path);
      const version = await store.getVersion('old', 'key');
      assert.equal(version?.segments[0]?.blobId, 'b');
      assert.equal(version?.inlineData, undefined);
      const tables = (store.database.prepare("SELECT name FROM sqlite_master WHERE type = 'table'").all() as { name: string }[]).map((table) => table.name);
      assert.ok(tables.includes('inline_data'));
      assert.equal((store.database.prepare("SELECT value FROM settings WHERE name = 'schema_version'").get() as { value: string }).value, String(SCHEMA_VERSION), 'brought up to the current version');
      await store.close();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('a database from a newer Talus is refused, not opened', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'talus-migrate-'));
    try {
      const path = join(dir, 'meta.db');
      const store = new SqliteMetadataStore(path);
      store.database.prepare("UPDATE settings SET value = '99' WHERE name = 'schema_version'").run();
      await store.close();
      assert.throws(() => new SqliteMetadataStore(path), /schema version 99/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
