/**
 * Lifecycle decisions that must hold at the moment of the delete, not only
 * when the worker judged the version: a version re-tagged out of a
 * tag-filtered rule between the worker's check and its delete stays (tags
 * change no ETag, size or time, so only re-judging the rule inside the
 * delete's transaction can tell); and a lone delete marker is judged by the
 * rule's whole filter (a marker has no tags: a tag-filtered Days rule never
 * removes one); and a configuration removed while the worker is at a
 * delete (of a current version, a noncurrent one, a lone delete marker) or
 * an upload's abort is honoured.
 *
 * Method: a real server whose own worker has nothing due (a 1000-second
 * lifecycle day), and a second LifecycleWorker on the same engine with a
 * 1 ms day, run pass by pass. For the race, that worker's view of the
 * metadata store re-tags the object through the S3 API at the exact point
 * between the worker's check and its delete (its getBucket call there).
 */
import {
  CreateBucketCommand,
  CreateMultipartUploadCommand,
  DeleteBucketLifecycleCommand,
  DeleteObjectCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectVersionsCommand,
  PutBucketLifecycleConfigurationCommand,
  PutBucketVersioningCommand,
  PutObjectCommand,
  PutObjectTaggingCommand,
  type LifecycleRule,
  type S3Client,
} from '@aws-sdk/client-s3';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Engine } from '../src/engine/engine.ts';
import { dayScale } from '../src/lifecycle/rules.ts';
import { LifecycleWorker } from '../src/lifecycle/worker.ts';
import type { MetadataStore } from '../src/meta/metadata-store.ts';
import { startTalus, type RunningTalus } from '../src/talus.ts';
import { silentLogger } from '../src/util/logger.ts';
import { ACCESS_KEY_ID, SECRET_ACCESS_KEY, makeClient, uniqueBucket } from './helpers/talus.ts';

/**
 * The engine as the worker sees it, with `before` run each time the worker
 * calls the store's `method` (getBucket unless named), given the call's arguments.
 */
function engineWithHook(engine: Engine, before: (...args: unknown[]) => Promise<void>, method: keyof MetadataStore = 'getBucket'): Engine {
  const meta = new Proxy(engine.meta, {
    get(target, property) {
      const value = Reflect.get(target, property, target) as unknown;
      if (typeof value !== 'function') return value;
      const bound = (value as (...args: unknown[]) => unknown).bind(target);
      if (property !== method) return bound;
      return async (...args: unknown[]) => {
        await before(...args);
        return bound(...args);
      };
    },
  }) as MetadataStore;
  return {
    meta,
    unreadyReason: () => engine.unreadyReason(),
    deleteObject: engine.deleteObject.bind(engine),
    abortMultipartUpload: engine.abortMultipartUpload.bind(engine),
  } as unknown as Engine;
}

describe('lifecycle fixes', { timeout: 120_000 }, () => {
  let dataDir: string;
  let talus: RunningTalus;
  let client: S3Client;

  before(async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'talus-fixes-lifecycle-'));
    talus = await startTalus({
      dataDir, port: 0, address: '127.0.0.1', rootAccessKeyId: ACCESS_KEY_ID, rootSecretAccessKey: SECRET_ACCESS_KEY, logger: silentLogger,
      lifecycle: { daySeconds: 1000 },
    });
    client = makeClient(talus.url);
  });
  after(async () => {
    client.destroy();
    await talus.close();
    await rm(dataDir, { recursive: true, force: true });
  });

  async function bucketWithRules(rules: LifecycleRule[], versioned: boolean): Promise<string> {
    const bucket = uniqueBucket('fixlc');
    await client.send(new CreateBucketCommand({ Bucket: bucket }));
    if (versioned) await client.send(new PutBucketVersioningCommand({ Bucket: bucket, VersioningConfiguration: { Status: 'Enabled' } }));
    await client.send(new PutBucketLifecycleConfigurationCommand({ Bucket: bucket, LifecycleConfiguration: { Rules: rules } }));
    return bucket;
  }

  /** Runs a fast worker's passes until a scan completes (it walks every bucket of the server). */
  async function scan(engine: Engine): Promise<void> {
    const worker = new LifecycleWorker(engine, { scale: dayScale(0.001), intervalMs: 3_600_000, onError: (error) => assert.fail(String(error)) });
    for (let passes = 0; !(await worker.runPass()).completedScan; passes++) assert.ok(passes < 100, 'the scan ends');
  }

  const scratchRule: LifecycleRule = { ID: 'scratch', Filter: { Tag: { Key: 'class', Value: 'scratch' } }, Status: 'Enabled', Expiration: { Days: 1 } };

  for (const versioned of [false, true]) {
    test(`a version re-tagged out of the rule between the worker's check and its delete stays (${versioned ? 'versioned' : 'unversioned'})`, async () => {
      const bucket = await bucketWithRules([scratchRule], versioned);
      await client.send(new PutObjectCommand({ Bucket: bucket, Key: 'doc', Body: 'precious', Tagging: 'class=scratch' }));
      await sleep(20);
      let retagged = 0;
      await scan(engineWithHook(talus.engine, async () => {
        if (retagged++ > 0) return;
        await client.send(new PutObjectTaggingCommand({ Bucket: bucket, Key: 'doc', Tagging: { TagSet: [{ Key: 'class', Value: 'gold' }] } }));
      }));
      assert.ok(retagged > 0, 'the worker judged the object expired and reached its delete');
      const head = await client.send(new HeadObjectCommand({ Bucket: bucket, Key: 'doc' }));
      assert.equal(head.ContentLength, 8, 'the re-tagged object is still current');
      const listed = await client.send(new ListObjectVersionsCommand({ Bucket: bucket }));
      assert.equal(listed.DeleteMarkers?.length ?? 0, 0, 'no delete marker hides it');
    });
  }

  test('a configuration removed while the worker is at a delete is honoured: the object stays', async () => {
    const bucket = await bucketWithRules([scratchRule], false);
    await client.send(new PutObjectCommand({ Bucket: bucket, Key: 'doc', Body: 'precious', Tagging: 'class=scratch' }));
    await sleep(20);
    let removed = 0;
    await scan(engineWithHook(talus.engine, async () => {
      if (removed++ > 0) return;
      await client.send(new DeleteBucketLifecycleCommand({ Bucket: bucket }));
    }));
    assert.ok(removed > 0, 'the worker reached its delete');
    assert.equal((await client.send(new HeadObjectCommand({ Bucket: bucket, Key: 'doc' }))).ContentLength, 8);
  });

  test('a configuration removed while the worker is at a noncurrent version\'s delete is honoured: the version stays', async () => {
    const bucket = await bucketWithRules([{ ID: 'old', Filter: { Prefix: '' }, Status: 'Enabled', NoncurrentVersionExpiration: { NoncurrentDays: 1 } }], true);
    await client.send(new PutObjectCommand({ Bucket: bucket, Key: 'doc', Body: 'first' }));
    await client.send(new PutObjectCommand({ Bucket: bucket, Key: 'doc', Body: 'second' }));
    await sleep(20);
    let removed = 0;
    // The worker's last look before the delete: is the version still noncurrent?
    await scan(engineWithHook(talus.engine, async (name, key) => {
      if (name !== bucket || key !== 'doc' || removed++ > 0) return;
      await client.send(new DeleteBucketLifecycleCommand({ Bucket: bucket }));
    }, 'getVersion'));
    assert.ok(removed > 0, 'the worker reached its delete');
    const listed = await client.send(new ListObjectVersionsCommand({ Bucket: bucket }));
    assert.equal(listed.Versions?.length, 2, 'the noncurrent version is still there');
  });

  test('a configuration removed while the worker is at an expired delete marker is honoured: the marker stays', async () => {
    const bucket = await bucketWithRules([{ ID: 'markers', Filter: { Prefix: '' }, Status: 'Enabled', Expiration: { ExpiredObjectDeleteMarker: true } }], true);
    await client.send(new DeleteObjectCommand({ Bucket: bucket, Key: 'lone' }));
    await sleep(20);
    let removed = 0;
    // The worker's re-check that the marker is still alone, right before its delete.
    await scan(engineWithHook(talus.engine, async (query) => {
      const { bucket: name, prefix } = query as { bucket: string; prefix: string };
      if (name !== bucket || prefix !== 'lone' || removed++ > 0) return;
      await client.send(new DeleteBucketLifecycleCommand({ Bucket: bucket }));
    }, 'listVersions'));
    assert.ok(removed > 0, 'the worker reached its delete');
    const listed = await client.send(new ListObjectVersionsCommand({ Bucket: bucket }));
    assert.deepEqual((listed.DeleteMarkers ?? []).map((marker) => marker.Key), ['lone']);
  });

  test('a configuration removed while the worker is at an upload\'s abort is honoured: the upload stays', async () => {
    const bucket = await bucketWithRules([{ ID: 'uploads', Filter: { Prefix: '' }, Status: 'Enabled', AbortIncompleteMultipartUpload: { DaysAfterInitiation: 1 } }], false);
    const { UploadId } = await client.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: 'pending' }));
    await sleep(20);
    let removed = 0;
    // Between the worker's judgement and its abort: its read of the bucket's rules (made nowhere else for uploads).
    await scan(engineWithHook(talus.engine, async (name) => {
      if (name !== bucket || removed++ > 0) return;
      await client.send(new DeleteBucketLifecycleCommand({ Bucket: bucket }));
    }));
    assert.ok(removed > 0, 'the worker reached its abort');
    const uploads = await client.send(new ListMultipartUploadsCommand({ Bucket: bucket }));
    assert.deepEqual((uploads.Uploads ?? []).map((upload) => upload.UploadId), [UploadId]);
  });

  test('a tag-filtered Days rule removes no lone delete marker; a prefix rule does', async () => {
    const bucket = await bucketWithRules([
      scratchRule,
      { ID: 'markers', Filter: { Prefix: 'gone/' }, Status: 'Enabled', Expiration: { ExpiredObjectDeleteMarker: true } },
    ], true);
    await client.send(new DeleteObjectCommand({ Bucket: bucket, Key: 'kept-marker' }));
    await client.send(new DeleteObjectCommand({ Bucket: bucket, Key: 'gone/marker' }));
    await sleep(20);
    await scan(talus.engine);
    const listed = await client.send(new ListObjectVersionsCommand({ Bucket: bucket }));
    assert.deepEqual((listed.DeleteMarkers ?? []).map((marker) => marker.Key), ['kept-marker']);
  });
});
