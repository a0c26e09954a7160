/**
 * Bucket lifecycle against a real server, with a lifecycle "day" of one
 * second (TALUS_LIFECYCLE_DAY_SECONDS, as Ceph's rgw_lc_debug_interval):
 * the configuration's round trip and AWS's validation errors, who may set
 * it, the x-amz-expiration header, and the worker actually expiring —
 * current versions (deleted, or hidden by one delete marker), noncurrent
 * versions beyond NewerNoncurrentVersions, expired object delete markers,
 * incomplete uploads with their bytes purged — by prefix, tag and size; its
 * bounded passes resuming where they stopped; a restart between passes; and
 * with --workers 2 the work done once.
 */
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CopyObjectCommand,
  CreateBucketCommand,
  CreateMultipartUploadCommand,
  DeleteBucketLifecycleCommand,
  DeleteObjectCommand,
  GetBucketLifecycleConfigurationCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  ListObjectVersionsCommand,
  PutBucketLifecycleConfigurationCommand,
  PutBucketVersioningCommand,
  PutObjectCommand,
  type PutObjectCommandInput,
  UploadPartCommand,
  type LifecycleRule,
  type S3Client,
} from '@aws-sdk/client-s3';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseConfig, type TalusConfig } from '../src/config/config.ts';
import { LifecycleWorker } from '../src/lifecycle/worker.ts';
import { dayScale } from '../src/lifecycle/rules.ts';
import { Principals, type Credentials } from '../src/principals/principals.ts';
import { startTalus, type RunningTalus } from '../src/talus.ts';
import { silentLogger } from '../src/util/logger.ts';
import { clientFor, waitForAuth } from './helpers/principals.ts';
import { listBlobFiles, startServerProcess } from './helpers/process.ts';
import { errorCode, send, signedRequest } from './helpers/raw.ts';
import { ACCESS_KEY_ID, SECRET_ACCESS_KEY, makeClient, uniqueBucket } from './helpers/talus.ts';

const DAY_SECONDS = 1;
/** How long the worker may take to act on something due (scans run every 200 ms here; the machine is loaded). */
const ACT_WITHIN_MS = 20_000;

async function startLifecycleTalus(dataDir: string, daySeconds = DAY_SECONDS, config?: TalusConfig): Promise<RunningTalus & { client: S3Client }> {
  const talus = await startTalus({
    dataDir,
    ...(config === undefined ? {} : { config }),
    port: 0,
    address: '127.0.0.1',
    rootAccessKeyId: ACCESS_KEY_ID,
    rootSecretAccessKey: SECRET_ACCESS_KEY,
    logger: silentLogger,
    lifecycle: { daySeconds },
  });
  return { ...talus, client: makeClient(talus.url) };
}

async function eventually(what: string, check: () => Promise<boolean>, withinMs = ACT_WITHIN_MS): Promise<void> {
  const deadline = Date.now() + withinMs;
  while (!(await check())) {
    if (Date.now() > deadline) assert.fail(`not within ${withinMs} ms: ${what}`);
    await sleep(100);
  }
}

async function keys(client: S3Client, bucket: string): Promise<string[]> {
  const listed = await client.send(new ListObjectsV2Command({ Bucket: bucket }));
  return (listed.Contents ?? []).map((object) => object.Key ?? '').sort();
}

async function versions(client: S3Client, bucket: string): Promise<{ versions: number; markers: number }> {
  const listed = await client.send(new ListObjectVersionsCommand({ Bucket: bucket }));
  return { versions: listed.Versions?.length ?? 0, markers: listed.DeleteMarkers?.length ?? 0 };
}

async function putLifecycle(client: S3Client, bucket: string, rules: LifecycleRule[]): Promise<void> {
  await client.send(new PutBucketLifecycleConfigurationCommand({ Bucket: bucket, LifecycleConfiguration: { Rules: rules } }));
}

function lifecycleXml(rules: string): string {
  return `<LifecycleConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/">${rules}</LifecycleConfiguration>`;
}

describe('bucket lifecycle', { timeout: 240_000 }, () => {
  let dataDir: string;
  let talus: RunningTalus & { client: S3Client };
  let client: S3Client;

  before(async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'talus-lifecycle-'));
    talus = await startLifecycleTalus(dataDir);
    client = talus.client;
  });
  after(async () => {
    client.destroy();
    await talus.close();
    await rm(dataDir, { recursive: true, force: true });
  });

  async function newBucket(versioned = false): Promise<string> {
    const bucket = uniqueBucket('lc');
    await client.send(new CreateBucketCommand({ Bucket: bucket }));
    if (versioned) await client.send(new PutBucketVersioningCommand({ Bucket: bucket, VersioningConfiguration: { Status: 'Enabled' } }));
    return bucket;
  }

  test('a configuration reads back as it was written, in each filter form; Delete removes it', async () => {
    const bucket = await newBucket();
    await assert.rejects(client.send(new GetBucketLifecycleConfigurationCommand({ Bucket: bucket })), { name: 'NoSuchLifecycleConfiguration' });
    const rules: LifecycleRule[] = [
      { ID: 'legacy', Prefix: 'logs/', Status: 'Enabled', Expiration: { Days: 30 } },
      { ID: 'prefix', Filter: { Prefix: 'tmp/' }, Status: 'Disabled', Expiration: { Date: new Date('2030-01-01T00:00:00Z') } },
      { ID: 'tag', Filter: { Tag: { Key: 'class', Value: 'scratch' } }, Status: 'Enabled', NoncurrentVersionExpiration: { NoncurrentDays: 3, NewerNoncurrentVersions: 2 } },
      {
        ID: 'and',
        Filter: { And: { Prefix: 'a/', Tags: [{ Key: 'k', Value: 'v' }], ObjectSizeGreaterThan: 10, ObjectSizeLessThan: 1000 } },
        Status: 'Enabled',
        Expiration: { Days: 7 },
      },
      { ID: 'size', Filter: { ObjectSizeGreaterThan: 5000 }, Status: 'Enabled', Expiration: { Days: 1 } },
      { ID: 'markers', Filter: {}, Status: 'Enabled', Expiration: { ExpiredObjectDeleteMarker: true }, AbortIncompleteMultipartUpload: { DaysAfterInitiation: 2 } },
    ];
    await putLifecycle(client, bucket, rules);
    const read = await client.send(new GetBucketLifecycleConfigurationCommand({ Bucket: bucket }));
    assert.deepEqual(read.Rules, rules);
    // A rule without an ID gets one.
    await putLifecycle(client, bucket, [{ Prefix: '', Status: 'Enabled', Expiration: { Days: 1 } }]);
    const generated = await client.send(new GetBucketLifecycleConfigurationCommand({ Bucket: bucket }));
    assert.ok((generated.Rules?.[0]?.ID ?? '').length > 0);
    assert.equal((await client.send(new DeleteBucketLifecycleCommand({ Bucket: bucket }))).$metadata.httpStatusCode, 204);
    await assert.rejects(client.send(new GetBucketLifecycleConfigurationCommand({ Bucket: bucket })), { name: 'NoSuchLifecycleConfiguration' });
    // Deleting what is not there is still 204, as AWS answers.
    assert.equal((await client.send(new DeleteBucketLifecycleCommand({ Bucket: bucket }))).$metadata.httpStatusCode, 204);
  });

  test('invalid configurations answer AWS\'s errors and change nothing', async () => {
    const bucket = await newBucket();
    await putLifecycle(client, bucket, [{ ID: 'kept', Prefix: 'x/', Status: 'Enabled', Expiration: { Days: 9 } }]);
    const rule = (inner: string, id = 'r'): string => `<Rule><ID>${id}</ID><Filter><Prefix>p/</Prefix></Filter><Status>Enabled</Status>${inner}</Rule>`;
    const cases: [string, string, number, string][] = [
      ['Days 0', lifecycleXml(rule('<Expiration><Days>0</Days></Expiration>')), 400, 'InvalidArgument'],
      ['negative NoncurrentDays', lifecycleXml(rule('<NoncurrentVersionExpiration><NoncurrentDays>-1</NoncurrentDays></NoncurrentVersionExpiration>')), 400, 'InvalidArgument'],
      ['duplicate IDs', lifecycleXml(rule('<Expiration><Days>1</Days></Expiration>') + rule('<Expiration><Days>2</Days></Expiration>')), 400, 'InvalidArgument'],
      ['ID of 256 characters', lifecycleXml(rule('<Expiration><Days>1</Days></Expiration>', 'a'.repeat(256))), 400, 'InvalidArgument'],
      ['Status in lower case', lifecycleXml('<Rule><ID>r</ID><Prefix>p/</Prefix><Status>enabled</Status><Expiration><Days>1</Days></Expiration></Rule>'), 400, 'MalformedXML'],
      ['Date not at midnight', lifecycleXml(rule('<Expiration><Date>2030-01-01T10:00:00Z</Date></Expiration>')), 400, 'InvalidArgument'],
      ['Days and Date together', lifecycleXml(rule('<Expiration><Days>1</Days><Date>2030-01-01T00:00:00Z</Date></Expiration>')), 400, 'MalformedXML'],
      ['Filter with Prefix and Tag', lifecycleXml('<Rule><ID>r</ID><Filter><Prefix>p</Prefix><Tag><Key>k</Key><Value>v</Value></Tag></Filter><Status>Enabled</Status><Expiration><Days>1</Days></Expiration></Rule>'), 400, 'MalformedXML'],
      ['Prefix and Filter together', lifecycleXml('<Rule><ID>r</ID><Prefix>p</Prefix><Filter></Filter><Status>Enabled</Status><Expiration><Days>1</Days></Expiration></Rule>'), 400, 'MalformedXML'],
      ['no action', lifecycleXml(rule('')), 400, 'InvalidRequest'],
      ['no rule', lifecycleXml(''), 400, 'MalformedXML'],
      ['not XML', 'nonsense', 400, 'MalformedXML'],
      ['a transition with a bad date', lifecycleXml(rule('<Transition><Date>1970-08-22T19:08:21Z</Date><StorageClass>GLACIER</StorageClass></Transition>')), 400, 'InvalidArgument'],
      ['a transition (one storage class: never a pretended success)', lifecycleXml(rule('<Transition><Days>30</Days><StorageClass>GLACIER</StorageClass></Transition>')), 501, 'NotImplemented'],
      ['1001 rules', lifecycleXml(Array.from({ length: 1001 }, (_, index) => rule('<Expiration><Days>1</Days></Expiration>', `r${index}`)).join('')), 400, 'InvalidArgument'],
    ];
    for (const [what, body, status, code] of cases) {
      const response = await signedRequest(talus.url, { method: 'PUT', path: `/${bucket}`, query: { lifecycle: '' }, body });
      assert.equal(response.status, status, `${what}: ${response.body}`);
      assert.equal(errorCode(response), code, what);
    }
    const read = await client.send(new GetBucketLifecycleConfigurationCommand({ Bucket: bucket }));
    assert.deepEqual(read.Rules?.map((kept) => kept.ID), ['kept']);
    // On an object the sub-resource does not exist.
    const onObject = await signedRequest(talus.url, { method: 'GET', path: `/${bucket}/key`, query: { lifecycle: '' } });
    assert.equal(onObject.status, 501);
  });

  test('only the owner (and root) may read or change it; others and anonymous get AccessDenied', async () => {
    const { owner, other } = await Principals.withDataDir(dataDir, async (principals) => ({
      owner: (await principals.addUser(`lc-owner-${Date.now()}`)).credentials,
      other: (await principals.addUser(`lc-other-${Date.now()}`)).credentials,
    }));
    for (const credentials of [owner, other]) {
      const probe = clientFor(talus.url, credentials);
      assert.equal(await waitForAuth(probe, 'accepted'), 'accepted');
      probe.destroy();
    }
    const ownerClient = clientFor(talus.url, owner);
    const bucket = uniqueBucket('lc-authz');
    await ownerClient.send(new CreateBucketCommand({ Bucket: bucket }));
    const body = lifecycleXml('<Rule><ID>r</ID><Prefix>p/</Prefix><Status>Enabled</Status><Expiration><Days>5</Days></Expiration></Rule>');
    const as = async (credentials: Credentials | undefined, method: string): Promise<number> => {
      const request = { method, path: `/${bucket}`, query: { lifecycle: '' }, ...(method === 'PUT' ? { body } : {}) };
      if (credentials === undefined) return (await send(talus.url, method, `/${bucket}?lifecycle`, {}, request.body)).status;
      return (await signedRequest(talus.url, { ...request, credentials })).status;
    };
    const root = { accessKeyId: ACCESS_KEY_ID, secretAccessKey: SECRET_ACCESS_KEY };
    for (const method of ['PUT', 'GET', 'DELETE']) {
      assert.equal(await as(undefined, method), 403, `anonymous ${method}`);
      assert.equal(await as(other, method), 403, `another user ${method}`);
    }
    assert.equal(await as(owner, 'PUT'), 200);
    assert.equal(await as(owner, 'GET'), 200);
    assert.equal(await as(root, 'GET'), 200);
    assert.equal(await as(owner, 'DELETE'), 204);
    assert.equal(await as(root, 'PUT'), 200);
    ownerClient.destroy();
  });

  test('x-amz-expiration on PUT, GET and HEAD names the rule and the midnight UTC after Days, only where a rule applies', async () => {
    const bucket = await newBucket();
    const plain = await client.send(new PutObjectCommand({ Bucket: bucket, Key: 'h/before', Body: 'x' }));
    assert.equal(plain.Expiration, undefined, 'no lifecycle, no header');
    // A long day here: the header speaks in calendar days whatever the time scale.
    await putLifecycle(client, bucket, [{ ID: 'rule-h', Filter: { Prefix: 'h/' }, Status: 'Enabled', Expiration: { Days: 3 } }]);
    const put = await client.send(new PutObjectCommand({ Bucket: bucket, Key: 'h/one', Body: 'x' }));
    const head = await client.send(new HeadObjectCommand({ Bucket: bucket, Key: 'h/one' }));
    const get = await client.send(new GetObjectCommand({ Bucket: bucket, Key: 'h/one' }));
    await get.Body?.transformToString();
    const lastModified = head.LastModified!.getTime();
    const expected = new Date(Math.ceil((lastModified + 3 * 86_400_000) / 86_400_000) * 86_400_000).toUTCString();
    for (const [what, header] of [['PUT', put.Expiration], ['HEAD', head.Expiration], ['GET', get.Expiration]] as const) {
      assert.equal(header, `expiry-date="${expected}", rule-id="rule-h"`, what);
    }
    // CopyObject and CompleteMultipartUpload answer it too (AWS does), for the version they wrote.
    const copied = await client.send(new CopyObjectCommand({ Bucket: bucket, Key: 'h/copy', CopySource: `${bucket}/h/one` }));
    assert.match(copied.Expiration ?? '', /^expiry-date=".+", rule-id="rule-h"$/);
    const upload = await client.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: 'h/parts' }));
    const part = await client.send(new UploadPartCommand({ Bucket: bucket, Key: 'h/parts', UploadId: upload.UploadId, PartNumber: 1, Body: 'p' }));
    const completed = await client.send(new CompleteMultipartUploadCommand({
      Bucket: bucket, Key: 'h/parts', UploadId: upload.UploadId, MultipartUpload: { Parts: [{ PartNumber: 1, ETag: part.ETag }] },
    }));
    assert.match(completed.Expiration ?? '', /^expiry-date=".+", rule-id="rule-h"$/);
    const other = await client.send(new PutObjectCommand({ Bucket: bucket, Key: 'other', Body: 'x' }));
    assert.equal(other.Expiration, undefined, 'a key no rule selects');
    assert.equal((await client.send(new HeadObjectCommand({ Bucket: bucket, Key: 'other' }))).Expiration, undefined);
    await client.send(new DeleteBucketLifecycleCommand({ Bucket: bucket }));
  });

  test('current versions past Expiration are deleted, selected by prefix, tag and size; the rest stay', async () => {
    const bucket = await newBucket();
    for (const key of ['expire/a', 'expire/b', 'keep/a']) await client.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: 'x' }));
    await client.send(new PutObjectCommand({ Bucket: bucket, Key: 'tagged', Body: 'x', Tagging: 'class=scratch&other=1' }));
    await client.send(new PutObjectCommand({ Bucket: bucket, Key: 'tagged-other', Body: 'x', Tagging: 'class=gold' }));
    await client.send(new PutObjectCommand({ Bucket: bucket, Key: 'big', Body: Buffer.alloc(3000) }));
    await client.send(new PutObjectCommand({ Bucket: bucket, Key: 'small', Body: Buffer.alloc(1000) }));
    await putLifecycle(client, bucket, [
      { ID: 'prefix', Filter: { Prefix: 'expire/' }, Status: 'Enabled', Expiration: { Days: 1 } },
      { ID: 'tag', Filter: { Tag: { Key: 'class', Value: 'scratch' } }, Status: 'Enabled', Expiration: { Days: 1 } },
      { ID: 'size', Filter: { ObjectSizeGreaterThan: 2000 }, Status: 'Enabled', Expiration: { Days: 1 } },
      { ID: 'disabled', Filter: { Prefix: 'keep/' }, Status: 'Disabled', Expiration: { Days: 1 } },
      { ID: 'later', Filter: { Prefix: 'small' }, Status: 'Enabled', Expiration: { Days: 1000 } },
    ]);
    await eventually('expired objects are gone', async () => (await keys(client, bucket)).join() === 'keep/a,small,tagged-other');
  });

  test('versioned: an expired current version gets exactly one delete marker; noncurrent versions go beyond NewerNoncurrentVersions', async () => {
    const bucket = await newBucket(true);
    await client.send(new PutObjectCommand({ Bucket: bucket, Key: 'current/a', Body: 'x' }));
    for (let index = 0; index < 6; index++) await client.send(new PutObjectCommand({ Bucket: bucket, Key: 'many', Body: `v${index}` }));
    await putLifecycle(client, bucket, [
      { ID: 'current', Filter: { Prefix: 'current/' }, Status: 'Enabled', Expiration: { Days: 1 } },
      { ID: 'noncurrent', Filter: { Prefix: 'many' }, Status: 'Enabled', NoncurrentVersionExpiration: { NoncurrentDays: 1, NewerNoncurrentVersions: 2 } },
    ]);
    await eventually('the expired current version is hidden and old noncurrent versions are gone', async () => {
      const listed = await client.send(new ListObjectVersionsCommand({ Bucket: bucket }));
      const many = (listed.Versions ?? []).filter((version) => version.Key === 'many');
      return (listed.DeleteMarkers ?? []).length === 1 && many.length === 3;
    });
    // Several more scans: still one marker (no marker on a marker), the hidden version kept, 'many' untouched.
    await sleep(1500);
    const listed = await client.send(new ListObjectVersionsCommand({ Bucket: bucket }));
    assert.equal(listed.DeleteMarkers?.length, 1);
    assert.equal(listed.DeleteMarkers?.[0]?.Key, 'current/a');
    assert.deepEqual((listed.Versions ?? []).map((version) => version.Key).sort(), ['current/a', 'many', 'many', 'many']);
    const current = await client.send(new GetObjectCommand({ Bucket: bucket, Key: 'many' }));
    assert.equal(await current.Body?.transformToString(), 'v5');
  });

  test('object lock: noncurrent versions under retention or a legal hold are skipped; unlocked ones still expire', async () => {
    const bucket = uniqueBucket('lclock');
    await client.send(new CreateBucketCommand({ Bucket: bucket, ObjectLockEnabledForBucket: true }));
    const put = (key: string, body: string, lock: Partial<PutObjectCommandInput> = {}) =>
      client.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: body, ContentMD5: createHash('md5').update(body).digest('base64'), ...lock }));
    // Retention in real days (object lock does not follow the lifecycle time scale): locked for the whole test.
    const retainUntil = new Date(Date.now() + 24 * 3600 * 1000);
    const retained = await put('retained', 'old', { ObjectLockMode: 'GOVERNANCE', ObjectLockRetainUntilDate: retainUntil });
    const held = await put('held', 'old', { ObjectLockLegalHoldStatus: 'ON' });
    const free = await put('free', 'old');
    for (const key of ['retained', 'held', 'free']) await put(key, 'new');
    await putLifecycle(client, bucket, [{ ID: 'noncurrent', Filter: { Prefix: '' }, Status: 'Enabled', NoncurrentVersionExpiration: { NoncurrentDays: 1 } }]);
    const versionIds = async () => (await client.send(new ListObjectVersionsCommand({ Bucket: bucket }))).Versions?.map((version) => version.VersionId) ?? [];
    await eventually('the unlocked noncurrent version expires', async () => !(await versionIds()).includes(free.VersionId));
    await sleep(1500);
    const left = await versionIds();
    assert.ok(left.includes(retained.VersionId), 'a version under retention stays');
    assert.ok(left.includes(held.VersionId), 'a version under a legal hold stays');
    assert.equal(left.length, 5, 'three current versions and the two locked noncurrent ones');
  });

  test('an expired object delete marker (the only version left) is removed, after its noncurrent version expired', async () => {
    const bucket = await newBucket(true);
    await client.send(new PutObjectCommand({ Bucket: bucket, Key: 'gone', Body: 'x' }));
    await client.send(new DeleteObjectCommand({ Bucket: bucket, Key: 'gone' }));
    await client.send(new PutObjectCommand({ Bucket: bucket, Key: 'alive', Body: 'x' }));
    await putLifecycle(client, bucket, [
      { ID: 'markers', Filter: { Prefix: '' }, Status: 'Enabled', Expiration: { ExpiredObjectDeleteMarker: true } },
      { ID: 'noncurrent', Filter: { Prefix: '' }, Status: 'Enabled', NoncurrentVersionExpiration: { NoncurrentDays: 1 } },
    ]);
    await eventually('the key has no version left', async () => {
      const state = await versions(client, bucket);
      return state.markers === 0 && state.versions === 1;
    });
    assert.deepEqual(await keys(client, bucket), ['alive']);
  });

  test('incomplete multipart uploads are aborted after DaysAfterInitiation and their parts\' bytes purged', async () => {
    const bucket = await newBucket();
    const blobsBefore = new Set(await listBlobFiles(dataDir));
    const stale = await client.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: 'uploads/stale' }));
    await client.send(new UploadPartCommand({ Bucket: bucket, Key: 'uploads/stale', UploadId: stale.UploadId, PartNumber: 1, Body: Buffer.alloc(64 * 1024, 1) }));
    const other = await client.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: 'elsewhere/kept' }));
    const partBlobs = (await listBlobFiles(dataDir)).filter((file) => !blobsBefore.has(file));
    assert.equal(partBlobs.length, 1, 'the part is one blob on disk');
    await putLifecycle(client, bucket, [{ ID: 'abort', Filter: { Prefix: 'uploads/' }, Status: 'Enabled', AbortIncompleteMultipartUpload: { DaysAfterInitiation: 1 } }]);
    await eventually('the stale upload is aborted', async () => {
      const uploads = await client.send(new ListMultipartUploadsCommand({ Bucket: bucket }));
      return (uploads.Uploads ?? []).map((upload) => upload.Key).join() === 'elsewhere/kept';
    });
    await eventually('its part\'s blob is purged', async () => !(await listBlobFiles(dataDir)).includes(partBlobs[0]!));
    await client.send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: 'elsewhere/kept', UploadId: other.UploadId }));
  });

  test('a pass is bounded and the next one resumes where it stopped', async () => {
    const bucket = await newBucket(true);
    // Twelve keys of three versions each: 36 versions, 24 of them noncurrent.
    for (let index = 0; index < 12; index++) {
      for (let version = 0; version < 3; version++) await client.send(new PutObjectCommand({ Bucket: bucket, Key: `bounded/${String(index).padStart(2, '0')}`, Body: `${version}` }));
    }
    // A rule this server's own worker does not act on soon (NoncurrentDays 1000); a second worker with a
    // tiny day length and small budgets does, pass by pass.
    await putLifecycle(client, bucket, [{ ID: 'noncurrent', Filter: { Prefix: 'bounded/' }, Status: 'Enabled', NoncurrentVersionExpiration: { NoncurrentDays: 1000 } }]);
    await sleep(1100);
    const worker = new LifecycleWorker(talus.engine, { scale: dayScale(0.001), intervalMs: 3_600_000, onError: (error) => assert.fail(String(error)), examinedPerPass: 7, deletesPerPass: 3 });
    let passes = 0;
    let deleted = 0;
    for (;;) {
      const report = await worker.runPass();
      passes++;
      assert.ok(report.examined <= 7, `examined ${report.examined}`);
      assert.ok(report.versionsDeleted <= 3, `deleted ${report.versionsDeleted}`);
      deleted += report.versionsDeleted;
      if (report.completedScan && report.versionsDeleted === 0) break;
      assert.ok(passes < 100, 'the walk makes progress');
    }
    // This worker walks every bucket of the server: the 24 here, perhaps a few due in other tests' buckets.
    assert.ok(deleted >= 24, `${deleted} deleted`);
    assert.ok(passes >= 8, `${passes} passes`);
    const state = await versions(client, bucket);
    assert.deepEqual(state, { versions: 12, markers: 0 });
  });
});

describe('lifecycle across restarts and processes', { timeout: 180_000 }, () => {
  test('the configuration and the work survive a restart between passes', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'talus-lifecycle-restart-'));
    try {
      const bucket = uniqueBucket('lc-restart');
      // A two-second day: nothing is due before the restart.
      let talus = await startLifecycleTalus(dataDir, 2);
      await talus.client.send(new CreateBucketCommand({ Bucket: bucket }));
      await talus.client.send(new PutObjectCommand({ Bucket: bucket, Key: 'old/a', Body: 'x' }));
      await talus.client.send(new PutObjectCommand({ Bucket: bucket, Key: 'keep', Body: 'x' }));
      await putLifecycle(talus.client, bucket, [{ ID: 'old', Filter: { Prefix: 'old/' }, Status: 'Enabled', Expiration: { Days: 1 } }]);
      assert.deepEqual(await keys(talus.client, bucket), ['keep', 'old/a']);
      talus.client.destroy();
      await talus.close();
      talus = await startLifecycleTalus(dataDir, 2);
      await eventually('the expired object is gone after the restart', async () => (await keys(talus.client, bucket)).join() === 'keep');
      talus.client.destroy();
      await talus.close();
    } finally {
      await rm(dataDir, { recursive: true, force: true });
    }
  });

  test('with a placement, an expired object\'s shards are removed from the backends', async () => {
    const root = await mkdtemp(join(tmpdir(), 'talus-lifecycle-placed-'));
    const filesUnder = async (directory: string): Promise<number> =>
      (await readdir(directory, { recursive: true, withFileTypes: true }).catch(() => [])).filter((entry) => entry.isFile()).length;
    try {
      const toml = [
        '[backends.disk0]', 'type = "directory"', 'path = "disk0"',
        '[backends.disk1]', 'type = "directory"', 'path = "disk1"',
        '[placements.mirror]', 'type = "replica"', 'copies = 2', 'backends = ["disk0", "disk1"]',
        '[defaults]', 'placement = "mirror"',
      ].join('\n');
      const talus = await startLifecycleTalus(join(root, 'data'), DAY_SECONDS, parseConfig(toml, { source: 'test.toml', baseDirectory: root }));
      try {
        const bucket = uniqueBucket('lc-placed');
        await talus.client.send(new CreateBucketCommand({ Bucket: bucket }));
        await talus.client.send(new PutObjectCommand({ Bucket: bucket, Key: 'placed/big', Body: Buffer.alloc(200_000, 7) }));
        assert.ok((await filesUnder(join(root, 'disk0'))) > 0 && (await filesUnder(join(root, 'disk1'))) > 0, 'the object is on both backends');
        await putLifecycle(talus.client, bucket, [{ ID: 'placed', Filter: { Prefix: 'placed/' }, Status: 'Enabled', Expiration: { Days: 1 } }]);
        await eventually('the object is gone and its shards purged', async () =>
          (await keys(talus.client, bucket)).length === 0 && (await filesUnder(join(root, 'disk0'))) === 0 && (await filesUnder(join(root, 'disk1'))) === 0);
      } finally {
        talus.client.destroy();
        await talus.close();
      }
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });

  test('with --workers 2 the work happens once: one delete marker per expired object', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'talus-lifecycle-workers-'));
    const previous = process.env['TALUS_LIFECYCLE_DAY_SECONDS'];
    process.env['TALUS_LIFECYCLE_DAY_SECONDS'] = String(DAY_SECONDS);
    const server = await startServerProcess(dataDir, undefined, ['--workers', '2']).finally(() => {
      if (previous === undefined) delete process.env['TALUS_LIFECYCLE_DAY_SECONDS'];
      else process.env['TALUS_LIFECYCLE_DAY_SECONDS'] = previous;
    });
    const client = makeClient(server.url);
    try {
      const bucket = uniqueBucket('lc-workers');
      await client.send(new CreateBucketCommand({ Bucket: bucket }));
      await client.send(new PutBucketVersioningCommand({ Bucket: bucket, VersioningConfiguration: { Status: 'Enabled' } }));
      for (let index = 0; index < 5; index++) await client.send(new PutObjectCommand({ Bucket: bucket, Key: `k${index}`, Body: 'x' }));
      await putLifecycle(client, bucket, [{ ID: 'all', Filter: {}, Status: 'Enabled', Expiration: { Days: 1 } }]);
      await eventually('every object is hidden by a marker', async () => (await versions(client, bucket)).markers === 5);
      await sleep(2000);
      assert.deepEqual(await versions(client, bucket), { versions: 5, markers: 5 });
    } finally {
      client.destroy();
      await server.stop();
      await rm(dataDir, { recursive: true, force: true });
    }
  });
});
