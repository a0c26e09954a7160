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

  test('creating a bucket twice answers BucketAlreadyOwnedByYou', async () => {
    const bucket = uniqueBucket();
    await talus.client.send(new CreateBucketCommand({ Bucket: bucket }));
    await assert.rejects(talus.client.send(new CreateBucketCommand({ Bucket: bucket })), { name: 'BucketAlreadyOwnedByYou' });
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
    assert.deepEqual(tags.TagSet, [{ Key: 'team', Value: 'storage' }, { Key: 'env', Value: '' }]);
    await talus.client.send(new DeleteBucketTaggingCommand({ Bucket: bucket }));
    await assert.rejects(talus.client.send(new GetBucketTaggingCommand({ Bucket: bucket })), { name: 'NoSuchTagSet' });
  });
});
