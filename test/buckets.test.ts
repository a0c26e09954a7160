/**
 * Bucket operations over real HTTP with @aws-sdk/client-s3 at default
 * settings: create (naming rules, already owned), head, list, location,
 * delete (not empty), versioning configuration, bucket tagging.
 */
import {
  CreateBucketCommand,
  DeleteBucketCommand,
  DeleteBucketTaggingCommand,
  GetBucketLocationCommand,
  GetBucketTaggingCommand,
  GetBucketVersioningCommand,
  HeadBucketCommand,
  ListBucketsCommand,
  PutBucketTaggingCommand,
  PutBucketVersioningCommand,
  PutObjectCommand,
  DeleteObjectCommand,
  HeadObjectCommand,
} from '@aws-sdk/client-s3';
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startTestTalus, uniqueBucket, type TestTalus } from './helpers/talus.ts';

describe('buckets', () => {
  let talus: TestTalus;
  before(async () => {
    talus = await startTestTalus();
  });
  after(async () => {
    await talus.stop();
  });

  test('create, head, list, location and delete', async () => {
    const bucket = uniqueBucket();
    await talus.client.send(new CreateBucketCommand({ Bucket: bucket }));
    await talus.client.send(new HeadBucketCommand({ Bucket: bucket }));
    const listed = await talus.client.send(new ListBucketsCommand({}));
    assert.ok(listed.Buckets?.some((entry) => entry.Name === bucket));
    assert.ok(listed.Buckets?.find((entry) => entry.Name === bucket)?.CreationDate instanceof Date);
    const location = await talus.client.send(new GetBucketLocationCommand({ Bucket: bucket }));
    assert.equal(location.LocationConstraint ?? '', '');
    await talus.client.send(new DeleteBucketCommand({ Bucket: bucket }));
    await assert.rejects(talus.client.send(new HeadBucketCommand({ Bucket: bucket })), (error: Error & { $metadata?: { httpStatusCode?: number } }) => {
      assert.equal(error.$metadata?.httpStatusCode, 404);
      return true;
    });
  });

  test('re-creating an owned bucket: 200 in us-east-1 (contents kept), BucketAlreadyOwnedByYou elsewhere', async () => {
    const bucket = uniqueBucket();
    await talus.client.send(new CreateBucketCommand({ Bucket: bucket }));
    await talus.client.send(new PutObjectCommand({ Bucket: bucket, Key: 'kept', Body: 'x' }));
    await talus.client.send(new CreateBucketCommand({ Bucket: bucket }));
    await talus.client.send(new HeadObjectCommand({ Bucket: bucket, Key: 'kept' }));
    const regional = await startTestTalus({ region: 'eu-central-1' });
    try {
      await regional.client.send(new CreateBucketCommand({ Bucket: bucket, CreateBucketConfiguration: { LocationConstraint: 'eu-central-1' } }));
      await assert.rejects(
        regional.client.send(new CreateBucketCommand({ Bucket: bucket, CreateBucketConfiguration: { LocationConstraint: 'eu-central-1' } })),
        { name: 'BucketAlreadyOwnedByYou' },
      );
    } finally {
      await regional.stop();
    }
  });

  test('ListBuckets pages with max-buckets and a continuation token', async () => {
    const isolated = await startTestTalus();
    try {
      const names = ['page-a', 'page-b', 'page-c'].map((name) => `${name}-${process.pid}`);
      for (const name of names) await isolated.client.send(new CreateBucketCommand({ Bucket: name }));
      const first = await isolated.client.send(new ListBucketsCommand({ MaxBuckets: 2 }));
      assert.deepEqual(first.Buckets?.map((entry) => entry.Name), names.slice(0, 2));
      assert.ok(first.ContinuationToken);
      const second = await isolated.client.send(new ListBucketsCommand({ MaxBuckets: 2, ContinuationToken: first.ContinuationToken }));
      assert.deepEqual(second.Buckets?.map((entry) => entry.Name), names.slice(2));
      assert.equal(second.ContinuationToken, undefined);
    } finally {
      await isolated.stop();
    }
  });

  test('invalid bucket names answer InvalidBucketName and create nothing', async () => {
    for (const name of ['ab', 'UPPER-case', 'under_score', '-leading', 'trailing-', 'a..b', '192.168.5.4', 'x'.repeat(64), 'xn--punycode']) {
      await assert.rejects(talus.client.send(new CreateBucketCommand({ Bucket: name })), (error: Error) => {
        assert.equal(error.name, 'InvalidBucketName', name);
        return true;
      });
    }
    const listed = await talus.client.send(new ListBucketsCommand({}));
    assert.ok(!listed.Buckets?.some((entry) => entry.Name === 'ab'));
  });

  test('deleting a non-empty bucket answers BucketNotEmpty', async () => {
    const bucket = uniqueBucket();
    await talus.client.send(new CreateBucketCommand({ Bucket: bucket }));
    await talus.client.send(new PutObjectCommand({ Bucket: bucket, Key: 'k', Body: 'x' }));
    await assert.rejects(talus.client.send(new DeleteBucketCommand({ Bucket: bucket })), { name: 'BucketNotEmpty' });
    await talus.client.send(new DeleteObjectCommand({ Bucket: bucket, Key: 'k' }));
    await talus.client.send(new DeleteBucketCommand({ Bucket: bucket }));
  });

  test('deleting a missing bucket answers NoSuchBucket', async () => {
    await assert.rejects(talus.client.send(new DeleteBucketCommand({ Bucket: uniqueBucket('missing') })), { name: 'NoSuchBucket' });
  });

  test('versioning configuration round-trips', async () => {
    const bucket = uniqueBucket();
    await talus.client.send(new CreateBucketCommand({ Bucket: bucket }));
    const initial = await talus.client.send(new GetBucketVersioningCommand({ Bucket: bucket }));
    assert.equal(initial.Status, undefined);
    await talus.client.send(new PutBucketVersioningCommand({ Bucket: bucket, VersioningConfiguration: { Status: 'Enabled' } }));
    assert.equal((await talus.client.send(new GetBucketVersioningCommand({ Bucket: bucket }))).Status, 'Enabled');
    await talus.client.send(new PutBucketVersioningCommand({ Bucket: bucket, VersioningConfiguration: { Status: 'Suspended' } }));
    assert.equal((await talus.client.send(new GetBucketVersioningCommand({ Bucket: bucket }))).Status, 'Suspended');
  });

  test('bucket tagging: put, get, delete, NoSuchTagSet', async () => {
    const bucket = uniqueBucket();
    await talus.client.send(new CreateBucketCommand({ Bucket: bucket }));
    await assert.rejects(talus.client.send(new GetBucketTaggingCommand({ Bucket: bucket })), { name: 'NoSuchTagSet' });
    await talus.client.send(new PutBucketTaggingCommand({ Bucket: bucket, Tagging: { TagSet: [{ Key: 'team', Value: 'storage' }, { Key: 'env', Value: '' }] } }));
    const tags = await talus.client.send(new GetBucketTaggingCommand({ Bucket: bucket }));
    assert.deepEqual(tags.TagSet, [{ Key: 'env', Value: '' }, { Key: 'team', Value: 'storage' }], 'tag sets come back ordered by key');
    await talus.client.send(new DeleteBucketTaggingCommand({ Bucket: bucket }));
    await assert.rejects(talus.client.send(new GetBucketTaggingCommand({ Bucket: bucket })), { name: 'NoSuchTagSet' });
  });
});
