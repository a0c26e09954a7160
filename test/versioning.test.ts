/**
 * Versioning with the AWS SDK: version IDs on PUT/GET/HEAD/DELETE/Copy,
 * delete markers, ListObjectVersions with markers, the null version of
 * unversioned and suspended buckets, and permanent deletes of versions.
 */
import {
  CopyObjectCommand,
  CreateBucketCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectVersionsCommand,
  ListObjectsV2Command,
  PutBucketVersioningCommand,
  PutObjectCommand,
} from '@aws-sdk/client-s3';
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startTestTalus, uniqueBucket, type TestTalus } from './helpers/talus.ts';

describe('versioning', () => {
  let talus: TestTalus;
  before(async () => {
    talus = await startTestTalus();
  });
  after(async () => {
    await talus.stop();
  });

  async function newBucket(status?: 'Enabled' | 'Suspended'): Promise<string> {
    const bucket = uniqueBucket('ver');
    await talus.client.send(new CreateBucketCommand({ Bucket: bucket }));
    if (status !== undefined) await talus.client.send(new PutBucketVersioningCommand({ Bucket: bucket, VersioningConfiguration: { Status: status } }));
    return bucket;
  }

  async function text(bucket: string, key: string, versionId?: string): Promise<string> {
    const got = await talus.client.send(new GetObjectCommand({ Bucket: bucket, Key: key, VersionId: versionId }));
    return got.Body!.transformToString();
  }

  test('unversioned buckets return no version ID', async () => {
    const bucket = await newBucket();
    const put = await talus.client.send(new PutObjectCommand({ Bucket: bucket, Key: 'k', Body: 'x' }));
    assert.equal(put.VersionId, undefined);
    const head = await talus.client.send(new HeadObjectCommand({ Bucket: bucket, Key: 'k' }));
    assert.equal(head.VersionId, undefined);
    assert.equal(await text(bucket, 'k', 'null'), 'x');
  });

  test('enabled: every PUT is a version; GET by ID; delete marker hides; deleting the marker restores', async () => {
    const bucket = await newBucket('Enabled');
    const v1 = (await talus.client.send(new PutObjectCommand({ Bucket: bucket, Key: 'doc', Body: 'one' }))).VersionId!;
    const v2 = (await talus.client.send(new PutObjectCommand({ Bucket: bucket, Key: 'doc', Body: 'two' }))).VersionId!;
    assert.ok(v1 && v2 && v1 !== v2);
    assert.equal(await text(bucket, 'doc'), 'two');
    assert.equal(await text(bucket, 'doc', v1), 'one');
    const head = await talus.client.send(new HeadObjectCommand({ Bucket: bucket, Key: 'doc', VersionId: v1 }));
    assert.equal(head.VersionId, v1);
    const deleted = await talus.client.send(new DeleteObjectCommand({ Bucket: bucket, Key: 'doc' }));
    assert.equal(deleted.DeleteMarker, true);
    const marker = deleted.VersionId!;
    await assert.rejects(talus.client.send(new GetObjectCommand({ Bucket: bucket, Key: 'doc' })), { name: 'NoSuchKey' });
    await assert.rejects(talus.client.send(new GetObjectCommand({ Bucket: bucket, Key: 'doc', VersionId: marker })), (error: Error & { $metadata?: { httpStatusCode?: number } }) => {
      assert.equal(error.$metadata?.httpStatusCode, 405);
      return true;
    });
    const listed = await talus.client.send(new ListObjectsV2Command({ Bucket: bucket }));
    assert.equal(listed.KeyCount, 0);
    const versions = await talus.client.send(new ListObjectVersionsCommand({ Bucket: bucket }));
    assert.deepEqual(versions.Versions?.map((v) => [v.VersionId, v.IsLatest]), [[v2, false], [v1, false]]);
    assert.deepEqual(versions.DeleteMarkers?.map((m) => [m.VersionId, m.IsLatest]), [[marker, true]]);
    await talus.client.send(new DeleteObjectCommand({ Bucket: bucket, Key: 'doc', VersionId: marker }));
    assert.equal(await text(bucket, 'doc'), 'two');
    await talus.client.send(new DeleteObjectCommand({ Bucket: bucket, Key: 'doc', VersionId: v2 }));
    assert.equal(await text(bucket, 'doc'), 'one');
    await assert.rejects(talus.client.send(new GetObjectCommand({ Bucket: bucket, Key: 'doc', VersionId: v2 })), { name: 'NoSuchVersion' });
  });

  test('ListObjectVersions pages with key and version-id markers', async () => {
    const bucket = await newBucket('Enabled');
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) ids.push((await talus.client.send(new PutObjectCommand({ Bucket: bucket, Key: 'a', Body: `a${i}` }))).VersionId!);
    ids.push((await talus.client.send(new PutObjectCommand({ Bucket: bucket, Key: 'b', Body: 'b' }))).VersionId!);
    const seen: string[] = [];
    let keyMarker: string | undefined;
    let versionIdMarker: string | undefined;
    for (let page = 0; page < 10; page++) {
      const result = await talus.client.send(new ListObjectVersionsCommand({ Bucket: bucket, MaxKeys: 2, KeyMarker: keyMarker, VersionIdMarker: versionIdMarker }));
      for (const version of result.Versions ?? []) seen.push(`${version.Key}:${version.VersionId}`);
      if (!result.IsTruncated) break;
      keyMarker = result.NextKeyMarker;
      versionIdMarker = result.NextVersionIdMarker;
    }
    assert.deepEqual(seen, [`a:${ids[2]}`, `a:${ids[1]}`, `a:${ids[0]}`, `b:${ids[3]}`]);
  });

  test('suspended: writes replace the null version and keep older versions', async () => {
    const bucket = await newBucket('Enabled');
    const v1 = (await talus.client.send(new PutObjectCommand({ Bucket: bucket, Key: 's', Body: 'versioned' }))).VersionId!;
    await talus.client.send(new PutBucketVersioningCommand({ Bucket: bucket, VersioningConfiguration: { Status: 'Suspended' } }));
    const n1 = await talus.client.send(new PutObjectCommand({ Bucket: bucket, Key: 's', Body: 'null-1' }));
    assert.equal(n1.VersionId, undefined, 'S3 shows no version ID for writes to a suspended bucket');
    await talus.client.send(new PutObjectCommand({ Bucket: bucket, Key: 's', Body: 'null-2' }));
    const versions = await talus.client.send(new ListObjectVersionsCommand({ Bucket: bucket }));
    assert.deepEqual(versions.Versions?.map((v) => v.VersionId), ['null', v1]);
    assert.equal(await text(bucket, 's'), 'null-2');
    assert.equal(await text(bucket, 's', 'null'), 'null-2');
    assert.equal(await text(bucket, 's', v1), 'versioned');
    const marker = await talus.client.send(new DeleteObjectCommand({ Bucket: bucket, Key: 's' }));
    assert.equal(marker.VersionId, 'null');
    assert.equal(marker.DeleteMarker, true);
    const after = await talus.client.send(new ListObjectVersionsCommand({ Bucket: bucket }));
    assert.deepEqual(after.Versions?.map((v) => v.VersionId), [v1]);
    assert.deepEqual(after.DeleteMarkers?.map((m) => m.VersionId), ['null']);
  });

  test('copy from a specific version reports both version IDs', async () => {
    const bucket = await newBucket('Enabled');
    const v1 = (await talus.client.send(new PutObjectCommand({ Bucket: bucket, Key: 'src', Body: 'old' }))).VersionId!;
    await talus.client.send(new PutObjectCommand({ Bucket: bucket, Key: 'src', Body: 'new' }));
    const copied = await talus.client.send(new CopyObjectCommand({ Bucket: bucket, Key: 'dst', CopySource: `${bucket}/src?versionId=${v1}` }));
    assert.equal(copied.CopySourceVersionId, v1);
    assert.ok(copied.VersionId);
    assert.equal(await text(bucket, 'dst'), 'old');
    const marker = (await talus.client.send(new DeleteObjectCommand({ Bucket: bucket, Key: 'src' }))).VersionId!;
    await assert.rejects(
      talus.client.send(new CopyObjectCommand({ Bucket: bucket, Key: 'dst2', CopySource: `${bucket}/src?versionId=${marker}` })),
      (error: Error & { $metadata?: { httpStatusCode?: number } }) => error.name === 'InvalidRequest' && error.$metadata?.httpStatusCode === 400,
    );
  });
});
