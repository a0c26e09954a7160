/**
 * Several access keys, kept in the metadata store: a key added with
 * `talus keys add` (here its function, on the live data directory) signs
 * requests within a few seconds without a restart; unknown keys are refused;
 * each key lists the buckets it created.
 */
import { CreateBucketCommand, ListBucketsCommand, type ListBucketsCommandOutput } from '@aws-sdk/client-s3';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, test } from 'node:test';
import { addAccessKey, listAccessKeyIds } from '../src/talus.ts';
import { ACCESS_KEY_ID, makeClient, startTestTalus, uniqueBucket, type TestTalus } from './helpers/talus.ts';

describe('access keys', () => {
  let talus: TestTalus;
  before(async () => {
    talus = await startTestTalus();
  });
  after(async () => {
    await talus.stop();
  });

  test('a key added to the running server works within seconds and is root\'s: it lists root\'s buckets and its own', async () => {
    const rootBucket = uniqueBucket('root');
    await talus.client.send(new CreateBucketCommand({ Bucket: rootBucket }));
    const credentials = await addAccessKey(talus.dataDir);
    assert.deepEqual((await listAccessKeyIds(talus.dataDir)).sort(), [ACCESS_KEY_ID, credentials.accessKeyId].sort());
    const client = makeClient(talus.url, credentials);
    let listed: ListBucketsCommandOutput | undefined;
    for (let attempt = 0; attempt < 50 && listed === undefined; attempt++) {
      try {
        listed = await client.send(new ListBucketsCommand({}));
      } catch (error) {
        assert.equal((error as Error).name, 'InvalidAccessKeyId');
        await sleep(200);
      }
    }
    assert.ok(listed, 'the new key was accepted within 10 s');
    // `talus keys add` without --user adds one of root's keys: the same account, so root's buckets are its own (issue 11).
    assert.ok(listed.Buckets?.some((bucket) => bucket.Name === rootBucket), "root's buckets are listed for root's second key");
    const ownBucket = uniqueBucket('second');
    await client.send(new CreateBucketCommand({ Bucket: ownBucket }));
    const own = await client.send(new ListBucketsCommand({}));
    assert.deepEqual(own.Buckets?.map((bucket) => bucket.Name).filter((name) => name === ownBucket || name === rootBucket).sort(), [ownBucket, rootBucket].sort());
    client.destroy();
  });
});
