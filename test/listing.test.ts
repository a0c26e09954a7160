/**
 * Listings with the AWS SDK: ListObjects v1 and v2 with prefix, delimiter,
 * max-keys, marker / start-after, continuation tokens (also after the key
 * they point at is deleted), fetch-owner and encoding-type=url; and that a
 * delimiter listing does not walk the keys under a common prefix.
 */
import {
  CreateBucketCommand,
  DeleteObjectCommand,
  ListObjectsCommand,
  ListObjectsV2Command,
  PutObjectCommand,
} from '@aws-sdk/client-s3';
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { SqliteMetadataStore } from '../src/meta/sqlite/sqlite-metadata-store.ts';
import type { ObjectVersion } from '../src/meta/types.ts';
import { startTestTalus, uniqueBucket, type TestTalus } from './helpers/talus.ts';

const KEYS = ['a', 'a/b', 'a/c/d', 'b/1', 'b/2', 'b/3', 'c', 'd/x/y', 'e+f', 'e f', 'zz'];

describe('listing', () => {
  let talus: TestTalus;
  let bucket: string;
  before(async () => {
    talus = await startTestTalus();
    bucket = uniqueBucket();
    await talus.client.send(new CreateBucketCommand({ Bucket: bucket }));
    for (const key of KEYS) await talus.client.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: key }));
  });
  after(async () => {
    await talus.stop();
  });

  test('v2 lists every key in UTF-8 order', async () => {
    const result = await talus.client.send(new ListObjectsV2Command({ Bucket: bucket }));
    assert.deepEqual(result.Contents?.map((entry) => entry.Key), [...KEYS].sort((x, y) => Buffer.compare(Buffer.from(x), Buffer.from(y))));
    assert.equal(result.KeyCount, KEYS.length);
    assert.equal(result.IsTruncated, false);
    assert.equal(result.Contents?.[0]?.Size, 1);
    assert.equal(result.Contents?.[0]?.Owner, undefined);
  });

  test('v2 with delimiter rolls keys into common prefixes', async () => {
    const result = await talus.client.send(new ListObjectsV2Command({ Bucket: bucket, Delimiter: '/' }));
    assert.deepEqual(result.Contents?.map((entry) => entry.Key), ['a', 'c', 'e f', 'e+f', 'zz']);
    assert.deepEqual(result.CommonPrefixes?.map((entry) => entry.Prefix), ['a/', 'b/', 'd/']);
    assert.equal(result.KeyCount, 8);
    const nested = await talus.client.send(new ListObjectsV2Command({ Bucket: bucket, Delimiter: '/', Prefix: 'a/' }));
    assert.deepEqual(nested.Contents?.map((entry) => entry.Key), ['a/b']);
    assert.deepEqual(nested.CommonPrefixes?.map((entry) => entry.Prefix), ['a/c/']);
  });

  test('v2 pages with continuation tokens through prefixes and keys', async () => {
    const seen: string[] = [];
    let token: string | undefined;
    let pages = 0;
    do {
      const page = await talus.client.send(new ListObjectsV2Command({ Bucket: bucket, Delimiter: '/', MaxKeys: 2, ContinuationToken: token }));
      for (const entry of page.Contents ?? []) seen.push(entry.Key!);
      for (const entry of page.CommonPrefixes ?? []) seen.push(entry.Prefix!);
      token = page.NextContinuationToken;
      assert.equal(page.IsTruncated, token !== undefined);
      pages++;
    } while (token !== undefined && pages < 20);
    assert.deepEqual(seen.sort(), ['a', 'a/', 'b/', 'c', 'd/', 'e f', 'e+f', 'zz'].sort());
    assert.equal(pages, 4);
  });

  test('a continuation token survives deletion of the key it points at', async () => {
    const scratch = uniqueBucket('tok');
    await talus.client.send(new CreateBucketCommand({ Bucket: scratch }));
    for (const key of ['k1', 'k2', 'k3', 'k4']) await talus.client.send(new PutObjectCommand({ Bucket: scratch, Key: key, Body: key }));
    const first = await talus.client.send(new ListObjectsV2Command({ Bucket: scratch, MaxKeys: 2 }));
    assert.deepEqual(first.Contents?.map((entry) => entry.Key), ['k1', 'k2']);
    await talus.client.send(new DeleteObjectCommand({ Bucket: scratch, Key: 'k2' }));
    const second = await talus.client.send(new ListObjectsV2Command({ Bucket: scratch, MaxKeys: 2, ContinuationToken: first.NextContinuationToken }));
    assert.deepEqual(second.Contents?.map((entry) => entry.Key), ['k3', 'k4']);
  });

  test('v2 start-after, prefix, max-keys 0 and fetch-owner', async () => {
    const after = await talus.client.send(new ListObjectsV2Command({ Bucket: bucket, StartAfter: 'b/2' }));
    assert.deepEqual(after.Contents?.map((entry) => entry.Key), ['b/3', 'c', 'd/x/y', 'e f', 'e+f', 'zz']);
    const prefixed = await talus.client.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: 'b/' }));
    assert.deepEqual(prefixed.Contents?.map((entry) => entry.Key), ['b/1', 'b/2', 'b/3']);
    const none = await talus.client.send(new ListObjectsV2Command({ Bucket: bucket, MaxKeys: 0 }));
    assert.equal(none.KeyCount, 0);
    assert.equal(none.IsTruncated, false);
    const owned = await talus.client.send(new ListObjectsV2Command({ Bucket: bucket, FetchOwner: true, MaxKeys: 1 }));
    assert.ok(owned.Contents?.[0]?.Owner?.ID);
  });

  test('v1 with marker, delimiter and NextMarker', async () => {
    const page = await talus.client.send(new ListObjectsCommand({ Bucket: bucket, Delimiter: '/', MaxKeys: 3 }));
    assert.deepEqual(page.Contents?.map((entry) => entry.Key), ['a']);
    assert.deepEqual(page.CommonPrefixes?.map((entry) => entry.Prefix), ['a/', 'b/']);
    assert.equal(page.IsTruncated, true);
    assert.equal(page.NextMarker, 'b/');
    const next = await talus.client.send(new ListObjectsCommand({ Bucket: bucket, Delimiter: '/', Marker: page.NextMarker }));
    assert.deepEqual(next.Contents?.map((entry) => entry.Key), ['c', 'e f', 'e+f', 'zz']);
    assert.deepEqual(next.CommonPrefixes?.map((entry) => entry.Prefix), ['d/']);
    const marked = await talus.client.send(new ListObjectsCommand({ Bucket: bucket, Marker: 'c' }));
    assert.deepEqual(marked.Contents?.map((entry) => entry.Key), ['d/x/y', 'e f', 'e+f', 'zz']);
    assert.ok(marked.Contents?.[0]?.Owner?.ID);
  });

  test('encoding-type=url round-trips keys through the SDK', async () => {
    const result = await talus.client.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: 'e', EncodingType: 'url' }));
    assert.deepEqual(result.Contents?.map((entry) => decodeURIComponent(entry.Key!)), ['e f', 'e+f']);
  });

  test('a delimiter listing seeks past common prefixes instead of walking their keys', async () => {
    // Counts rows the store reads: a bucket with 2000 keys under one prefix
    // and one key after it must list both entries in a handful of row reads.
    const store = new SqliteMetadataStore(':memory:');
    await store.createBucket({ name: 'b', createdMs: 0, ownerId: 'o', versioning: 'Unversioned', tags: null });
    const version = (key: string): ObjectVersion => ({
      bucket: 'b', key, versionId: 'null', isDeleteMarker: false, lastModifiedMs: 0, sizeBytes: 0, etag: 'e', ownerId: 'o',
      system: {}, userMetadata: {}, checksum: null, tags: [], parts: null, segments: [],
    });
    for (let i = 0; i < 2000; i++) await store.commitVersion({ version: version(`dir/${String(i).padStart(5, '0')}`), conditions: {} });
    await store.commitVersion({ version: version('zfile'), conditions: {} });
    let rowsRead = 0;
    const database = store.database;
    const originalPrepare = database.prepare.bind(database);
    (database as { prepare: typeof database.prepare }).prepare = ((source: string) => {
      const statement = originalPrepare(source);
      const iterate = statement.iterate.bind(statement);
      (statement as { iterate: typeof statement.iterate }).iterate = (function* (...parameters: unknown[]) {
        for (const row of iterate(...parameters)) {
          rowsRead++;
          yield row;
        }
      }) as typeof statement.iterate;
      return statement;
    }) as typeof database.prepare;
    const result = await store.list({ bucket: 'b', prefix: '', delimiter: '/', after: '', limit: 1000 });
    assert.deepEqual(result.entries.map((entry) => entry.key), ['dir/', 'zfile']);
    assert.ok(rowsRead <= 4, `read ${rowsRead} rows`);
    await store.close();
  });
});
