/**
 * S3 Object Lock, end to end (issue 12): a locked version cannot be removed
 * or have its lock weakened by any path, in either mode, with or without the
 * bypass header, by a user with or without s3:BypassGovernanceRetention, and
 * under COMPLIANCE not even by root; a delete without a version ID still adds
 * a delete marker. Also: lock-enabled buckets, their default retention, lock
 * headers carried by multipart uploads and copies, the Content-MD5 rule, the
 * errors of buckets without Object Lock (no more wrong successes), and the
 * engine's own delete path (what lifecycle uses). Method: one in-process
 * server, the AWS SDK as root and as two users made by the principals code,
 * raw signed requests where the SDK would add a checksum on its own.
 */
import {
  CompleteMultipartUploadCommand,
  CopyObjectCommand,
  CreateBucketCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  DeleteObjectsCommand,
  GetBucketVersioningCommand,
  GetObjectLegalHoldCommand,
  GetObjectLockConfigurationCommand,
  GetObjectRetentionCommand,
  HeadObjectCommand,
  PutBucketPolicyCommand,
  PutBucketVersioningCommand,
  PutObjectCommand,
  PutObjectLegalHoldCommand,
  PutObjectLockConfigurationCommand,
  PutObjectRetentionCommand,
  S3Client,
  UploadPartCommand,
} from '@aws-sdk/client-s3';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, test } from 'node:test';
import { isVersionLocked } from '../src/engine/object-lock.ts';
import { Principals } from '../src/principals/principals.ts';
import { clientFor, waitForAuth } from './helpers/principals.ts';
import { errorCode, queryString, send, signRequest, type RawResponse } from './helpers/raw.ts';
import { startTestTalus, uniqueBucket, type TestTalus } from './helpers/talus.ts';

interface Credentials {
  accessKeyId: string;
  secretAccessKey: string;
}

const FAR_FUTURE = new Date('2099-01-01T00:00:00.000Z');
const LATER_FUTURE = new Date('2099-06-01T00:00:00.000Z');

/** Resolves to the S3 error code (and checks the status) the promise rejected with. */
async function refusal(promise: Promise<unknown>, status: number): Promise<string> {
  try {
    await promise;
  } catch (error) {
    const failure = error as { name: string; $metadata?: { httpStatusCode?: number } };
    assert.equal(failure.$metadata?.httpStatusCode, status, `${failure.name}: status`);
    return failure.name;
  }
  assert.fail('expected the request to be refused');
}

async function raw(url: string, credentials: Credentials, method: string, path: string, options: { query?: Record<string, string>; headers?: Record<string, string>; body?: string } = {}): Promise<RawResponse> {
  const signed = await signRequest(url, { method, path, query: options.query ?? {}, headers: options.headers ?? {}, body: options.body ?? '', credentials });
  return send(url, method, `${path}${queryString(options.query)}`, signed, options.body);
}

describe('S3 Object Lock', { timeout: 120_000 }, () => {
  let talus: TestTalus;
  let root: S3Client;
  let owner: S3Client;
  let other: S3Client;
  let ownerCredentials: Credentials;
  let otherId: string;
  const locked = uniqueBucket('lock');

  before(async () => {
    talus = await startTestTalus();
    root = talus.client;
    let otherCredentials: Credentials;
    ({ ownerCredentials, otherCredentials, otherId } = await Principals.withDataDir(talus.dataDir, async (principals) => {
      const made = await principals.addUser('lock-owner');
      const second = await principals.addUser('lock-other');
      return { ownerCredentials: made.credentials, otherCredentials: second.credentials, otherId: second.user.canonicalId };
    }));
    owner = clientFor(talus.url, ownerCredentials);
    other = clientFor(talus.url, otherCredentials);
    assert.equal(await waitForAuth(owner, 'accepted'), 'accepted');
    assert.equal(await waitForAuth(other, 'accepted'), 'accepted');
    await owner.send(new CreateBucketCommand({ Bucket: locked, ObjectLockEnabledForBucket: true }));
  });

  after(async () => {
    owner?.destroy();
    other?.destroy();
    await talus?.stop();
  });

  /** Lets the other user write, read and delete versions and manage locks, but not bypass governance (unless asked). */
  async function grantOther(bucket: string, withBypass: boolean): Promise<void> {
    const actions = ['s3:PutObject', 's3:GetObject', 's3:GetObjectVersion', 's3:DeleteObject', 's3:DeleteObjectVersion', 's3:PutObjectRetention', 's3:GetObjectRetention', 's3:PutObjectLegalHold'];
    if (withBypass) actions.push('s3:BypassGovernanceRetention');
    const policy = { Version: '2012-10-17', Statement: [{ Effect: 'Allow', Principal: { AWS: [otherId] }, Action: actions, Resource: [`arn:aws:s3:::${bucket}/*`] }] };
    await owner.send(new PutBucketPolicyCommand({ Bucket: bucket, Policy: JSON.stringify(policy) }));
  }

  async function put(client: S3Client, key: string, lock: { mode?: 'GOVERNANCE' | 'COMPLIANCE'; until?: Date; hold?: 'ON' | 'OFF' } = {}): Promise<string> {
    const response = await client.send(new PutObjectCommand({
      Bucket: locked, Key: key, Body: `body of ${key}`, ObjectLockMode: lock.mode, ObjectLockRetainUntilDate: lock.until, ObjectLockLegalHoldStatus: lock.hold,
    }));
    assert.ok(response.VersionId !== undefined && response.VersionId !== 'null', 'a lock bucket is versioned');
    return response.VersionId;
  }

  async function stillThere(key: string, versionId: string): Promise<void> {
    const head = await root.send(new HeadObjectCommand({ Bucket: locked, Key: key, VersionId: versionId }));
    assert.equal(head.VersionId, versionId);
  }

  test('a bucket created with Object Lock is versioned for good and reports its configuration', async () => {
    assert.equal((await owner.send(new GetBucketVersioningCommand({ Bucket: locked }))).Status, 'Enabled');
    const config = await owner.send(new GetObjectLockConfigurationCommand({ Bucket: locked }));
    assert.deepEqual(config.ObjectLockConfiguration, { ObjectLockEnabled: 'Enabled' });
    for (const client of [owner, root]) {
      assert.equal(await refusal(client.send(new PutBucketVersioningCommand({ Bucket: locked, VersioningConfiguration: { Status: 'Suspended' } })), 409), 'InvalidBucketState');
    }
    assert.equal((await owner.send(new GetBucketVersioningCommand({ Bucket: locked }))).Status, 'Enabled');
    const bad = async (rule: Record<string, unknown>): Promise<string> =>
      refusal(owner.send(new PutObjectLockConfigurationCommand({ Bucket: locked, ObjectLockConfiguration: { ObjectLockEnabled: 'Enabled', Rule: { DefaultRetention: rule } } })), 400);
    assert.equal(await bad({ Mode: 'GOVERNANCE', Days: 1, Years: 1 }), 'MalformedXML');
    assert.equal(await bad({ Mode: 'GOVERNANCE', Days: 0 }), 'InvalidRetentionPeriod');
    assert.equal(await bad({ Mode: 'COMPLIANCE', Years: -1 }), 'InvalidRetentionPeriod');
    assert.equal(await bad({ Mode: 'governance', Days: 1 }), 'MalformedXML');
    assert.deepEqual((await owner.send(new GetObjectLockConfigurationCommand({ Bucket: locked }))).ObjectLockConfiguration, { ObjectLockEnabled: 'Enabled' });
  });

  test('GOVERNANCE: no delete by version, no shortening, no mode change without a permitted bypass; a plain delete adds a marker', async () => {
    await grantOther(locked, false);
    const versionId = await put(owner, 'governed', { mode: 'GOVERNANCE', until: FAR_FUTURE });
    const spare = await put(owner, 'spare');
    const head = await owner.send(new HeadObjectCommand({ Bucket: locked, Key: 'governed', VersionId: versionId }));
    assert.equal(head.ObjectLockMode, 'GOVERNANCE');
    assert.equal(head.ObjectLockRetainUntilDate?.toISOString(), FAR_FUTURE.toISOString());

    for (const [client, bypass] of [[owner, false], [other, false], [other, true]] as const) {
      assert.equal(await refusal(client.send(new DeleteObjectCommand({ Bucket: locked, Key: 'governed', VersionId: versionId, BypassGovernanceRetention: bypass })), 403), 'AccessDenied');
      const shorter = { Mode: 'GOVERNANCE' as const, RetainUntilDate: new Date(Date.now() + 86_400_000) };
      assert.equal(await refusal(client.send(new PutObjectRetentionCommand({ Bucket: locked, Key: 'governed', VersionId: versionId, Retention: shorter, BypassGovernanceRetention: bypass })), 403), 'AccessDenied');
      const stricter = { Mode: 'COMPLIANCE' as const, RetainUntilDate: FAR_FUTURE };
      assert.equal(await refusal(client.send(new PutObjectRetentionCommand({ Bucket: locked, Key: 'governed', VersionId: versionId, Retention: stricter, BypassGovernanceRetention: bypass })), 403), 'AccessDenied');
    }
    // DeleteObjects: the locked entry is an AccessDenied error, the unlocked one is deleted.
    const batch = await other.send(new DeleteObjectsCommand({ Bucket: locked, BypassGovernanceRetention: true, Delete: { Objects: [{ Key: 'governed', VersionId: versionId }, { Key: 'spare', VersionId: spare }] } }));
    assert.deepEqual(batch.Errors?.map((entry) => [entry.Key, entry.VersionId, entry.Code]), [['governed', versionId, 'AccessDenied']]);
    assert.deepEqual(batch.Deleted?.map((entry) => [entry.Key, entry.VersionId]), [['spare', spare]]);
    // Without a version ID: a delete marker on top, the locked version untouched.
    const marker = await other.send(new DeleteObjectCommand({ Bucket: locked, Key: 'governed' }));
    assert.equal(marker.DeleteMarker, true);
    await stillThere('governed', versionId);
    // Extending in the same mode needs no bypass.
    await other.send(new PutObjectRetentionCommand({ Bucket: locked, Key: 'governed', VersionId: versionId, Retention: { Mode: 'GOVERNANCE', RetainUntilDate: LATER_FUTURE } }));
    const retention = await owner.send(new GetObjectRetentionCommand({ Bucket: locked, Key: 'governed', VersionId: versionId }));
    assert.equal(retention.Retention?.RetainUntilDate?.toISOString(), LATER_FUTURE.toISOString());

    // With s3:BypassGovernanceRetention the header works: shorten, then delete.
    await grantOther(locked, true);
    const shorter = { Mode: 'GOVERNANCE' as const, RetainUntilDate: FAR_FUTURE };
    assert.equal(await refusal(other.send(new PutObjectRetentionCommand({ Bucket: locked, Key: 'governed', VersionId: versionId, Retention: shorter })), 403), 'AccessDenied');
    await other.send(new PutObjectRetentionCommand({ Bucket: locked, Key: 'governed', VersionId: versionId, Retention: shorter, BypassGovernanceRetention: true }));
    assert.equal((await owner.send(new GetObjectRetentionCommand({ Bucket: locked, Key: 'governed', VersionId: versionId }))).Retention?.RetainUntilDate?.toISOString(), FAR_FUTURE.toISOString());
    assert.equal(await refusal(other.send(new DeleteObjectCommand({ Bucket: locked, Key: 'governed', VersionId: versionId })), 403), 'AccessDenied');
    await other.send(new DeleteObjectCommand({ Bucket: locked, Key: 'governed', VersionId: versionId, BypassGovernanceRetention: true }));
    assert.equal(await refusal(root.send(new HeadObjectCommand({ Bucket: locked, Key: 'governed', VersionId: versionId })), 404), 'NotFound');

    // The bucket owner has the permission as owner; in DeleteObjects too.
    const again = await put(owner, 'governed-2', { mode: 'GOVERNANCE', until: FAR_FUTURE });
    const ownBatch = await owner.send(new DeleteObjectsCommand({ Bucket: locked, BypassGovernanceRetention: true, Delete: { Objects: [{ Key: 'governed-2', VersionId: again }] } }));
    assert.equal(ownBatch.Errors, undefined);
    assert.deepEqual(ownBatch.Deleted?.map((entry) => entry.VersionId), [again]);
  });

  test('COMPLIANCE yields to nobody, root with the bypass included, until it expires', async () => {
    const versionId = await put(owner, 'complied', { mode: 'COMPLIANCE', until: FAR_FUTURE });
    for (const client of [owner, root]) {
      assert.equal(await refusal(client.send(new DeleteObjectCommand({ Bucket: locked, Key: 'complied', VersionId: versionId, BypassGovernanceRetention: true })), 403), 'AccessDenied');
      const batch = await client.send(new DeleteObjectsCommand({ Bucket: locked, BypassGovernanceRetention: true, Delete: { Objects: [{ Key: 'complied', VersionId: versionId }] } }));
      assert.deepEqual(batch.Errors?.map((entry) => entry.Code), ['AccessDenied']);
      for (const retention of [{ Mode: 'COMPLIANCE' as const, RetainUntilDate: new Date(Date.now() + 86_400_000) }, { Mode: 'GOVERNANCE' as const, RetainUntilDate: LATER_FUTURE }]) {
        assert.equal(await refusal(client.send(new PutObjectRetentionCommand({ Bucket: locked, Key: 'complied', VersionId: versionId, Retention: retention, BypassGovernanceRetention: true })), 403), 'AccessDenied');
      }
      // An empty <Retention/> would remove it.
      const removal = await raw(talus.url, client === root ? { accessKeyId: 'TALUSTESTKEY', secretAccessKey: 'talus-test-secret-key-0123456789' } : ownerCredentials, 'PUT', `/${locked}/complied`, {
        query: { retention: '', versionId }, headers: { 'x-amz-bypass-governance-retention': 'true' }, body: '<Retention xmlns="http://s3.amazonaws.com/doc/2006-03-01/"></Retention>',
      });
      assert.equal(removal.status, 403);
    }
    await stillThere('complied', versionId);
    await owner.send(new PutObjectRetentionCommand({ Bucket: locked, Key: 'complied', VersionId: versionId, Retention: { Mode: 'COMPLIANCE', RetainUntilDate: LATER_FUTURE } }));
    assert.equal((await root.send(new HeadObjectCommand({ Bucket: locked, Key: 'complied', VersionId: versionId }))).ObjectLockRetainUntilDate?.toISOString(), LATER_FUTURE.toISOString());

    // A retention that has passed locks nothing.
    const brief = await put(owner, 'brief', { mode: 'COMPLIANCE', until: new Date(Date.now() + 2_000) });
    assert.equal(await refusal(root.send(new DeleteObjectCommand({ Bucket: locked, Key: 'brief', VersionId: brief })), 403), 'AccessDenied');
    await sleep(2_500);
    await owner.send(new DeleteObjectCommand({ Bucket: locked, Key: 'brief', VersionId: brief }));
  });

  test('a legal hold blocks deletes whatever the bypass, until it is OFF', async () => {
    const versionId = await put(owner, 'held', { hold: 'ON' });
    assert.equal((await owner.send(new GetObjectLegalHoldCommand({ Bucket: locked, Key: 'held', VersionId: versionId }))).LegalHold?.Status, 'ON');
    assert.equal((await root.send(new HeadObjectCommand({ Bucket: locked, Key: 'held' }))).ObjectLockLegalHoldStatus, 'ON');
    for (const client of [owner, root]) {
      assert.equal(await refusal(client.send(new DeleteObjectCommand({ Bucket: locked, Key: 'held', VersionId: versionId, BypassGovernanceRetention: true })), 403), 'AccessDenied');
    }
    // The engine's own delete path (lifecycle's) refuses it as well.
    await assert.rejects(talus.engine.deleteObject(locked, 'held', versionId, 'lifecycle', {}, true), { code: 'AccessDenied' });
    await stillThere('held', versionId);
    await owner.send(new PutObjectLegalHoldCommand({ Bucket: locked, Key: 'held', VersionId: versionId, LegalHold: { Status: 'OFF' } }));
    assert.equal((await owner.send(new GetObjectLegalHoldCommand({ Bucket: locked, Key: 'held', VersionId: versionId }))).LegalHold?.Status, 'OFF');
    await owner.send(new DeleteObjectCommand({ Bucket: locked, Key: 'held', VersionId: versionId }));
  });

  test('a legal hold and a delete racing: never both succeed', async () => {
    const keys = Array.from({ length: 16 }, (_, index) => `race-${index}`);
    const versions = await Promise.all(keys.map((key) => put(owner, key)));
    const outcomes = await Promise.all(keys.map(async (key, index) => {
      const versionId = versions[index]!;
      const [hold, removal] = await Promise.allSettled([
        owner.send(new PutObjectLegalHoldCommand({ Bucket: locked, Key: key, VersionId: versionId, LegalHold: { Status: 'ON' } })),
        owner.send(new DeleteObjectCommand({ Bucket: locked, Key: key, VersionId: versionId })),
      ]);
      return { key, versionId, held: hold.status === 'fulfilled', deleted: removal.status === 'fulfilled' };
    }));
    for (const outcome of outcomes) {
      assert.ok(outcome.held !== outcome.deleted, `${outcome.key}: exactly one of hold and delete wins`);
      if (outcome.held) {
        await stillThere(outcome.key, outcome.versionId);
        await owner.send(new PutObjectLegalHoldCommand({ Bucket: locked, Key: outcome.key, VersionId: outcome.versionId, LegalHold: { Status: 'OFF' } }));
      }
    }
  });

  test('default retention applies to new versions without their own; explicit settings win', async () => {
    const bucket = uniqueBucket('lock-default');
    await owner.send(new CreateBucketCommand({ Bucket: bucket, ObjectLockEnabledForBucket: true }));
    await owner.send(new PutObjectLockConfigurationCommand({ Bucket: bucket, ObjectLockConfiguration: { ObjectLockEnabled: 'Enabled', Rule: { DefaultRetention: { Mode: 'COMPLIANCE', Days: 1 } } } }));
    assert.deepEqual((await owner.send(new GetObjectLockConfigurationCommand({ Bucket: bucket }))).ObjectLockConfiguration, { ObjectLockEnabled: 'Enabled', Rule: { DefaultRetention: { Mode: 'COMPLIANCE', Days: 1 } } });
    const before = Date.now();
    const plain = await owner.send(new PutObjectCommand({ Bucket: bucket, Key: 'plain', Body: 'x' }));
    const retention = (await owner.send(new GetObjectRetentionCommand({ Bucket: bucket, Key: 'plain' }))).Retention;
    assert.equal(retention?.Mode, 'COMPLIANCE');
    const untilMs = retention?.RetainUntilDate?.getTime() ?? 0;
    assert.ok(untilMs >= before + 86_400_000 - 1_000 && untilMs <= Date.now() + 86_400_000, 'one day from creation');
    assert.equal(await refusal(root.send(new DeleteObjectCommand({ Bucket: bucket, Key: 'plain', VersionId: plain.VersionId, BypassGovernanceRetention: true })), 403), 'AccessDenied');
    await owner.send(new PutObjectCommand({ Bucket: bucket, Key: 'explicit', Body: 'x', ObjectLockMode: 'GOVERNANCE', ObjectLockRetainUntilDate: FAR_FUTURE }));
    const explicit = await owner.send(new HeadObjectCommand({ Bucket: bucket, Key: 'explicit' }));
    assert.equal(explicit.ObjectLockMode, 'GOVERNANCE');
    assert.equal(explicit.ObjectLockRetainUntilDate?.toISOString(), FAR_FUTURE.toISOString());
  });

  test('multipart uploads and copies carry their lock headers to the object they make', async () => {
    const upload = await owner.send(new CreateMultipartUploadCommand({ Bucket: locked, Key: 'multi', ObjectLockMode: 'COMPLIANCE', ObjectLockRetainUntilDate: FAR_FUTURE, ObjectLockLegalHoldStatus: 'ON' }));
    const part = await owner.send(new UploadPartCommand({ Bucket: locked, Key: 'multi', UploadId: upload.UploadId, PartNumber: 1, Body: 'part one' }));
    const done = await owner.send(new CompleteMultipartUploadCommand({ Bucket: locked, Key: 'multi', UploadId: upload.UploadId, MultipartUpload: { Parts: [{ PartNumber: 1, ETag: part.ETag }] } }));
    const head = await owner.send(new HeadObjectCommand({ Bucket: locked, Key: 'multi', VersionId: done.VersionId }));
    assert.equal(head.ObjectLockMode, 'COMPLIANCE');
    assert.equal(head.ObjectLockLegalHoldStatus, 'ON');
    assert.equal(await refusal(root.send(new DeleteObjectCommand({ Bucket: locked, Key: 'multi', VersionId: done.VersionId, BypassGovernanceRetention: true })), 403), 'AccessDenied');

    // A copy takes the lock it asks for, not its source's.
    const copy = await owner.send(new CopyObjectCommand({ Bucket: locked, Key: 'copied', CopySource: `${locked}/multi`, ObjectLockMode: 'GOVERNANCE', ObjectLockRetainUntilDate: FAR_FUTURE }));
    const copied = await owner.send(new HeadObjectCommand({ Bucket: locked, Key: 'copied', VersionId: copy.VersionId }));
    assert.equal(copied.ObjectLockMode, 'GOVERNANCE');
    assert.equal(copied.ObjectLockLegalHoldStatus, undefined);
    assert.equal(await refusal(owner.send(new DeleteObjectCommand({ Bucket: locked, Key: 'copied', VersionId: copy.VersionId })), 403), 'AccessDenied');
  });

  test('a body that gets a lock needs Content-MD5 or a checksum', async () => {
    const lockHeaders = { 'x-amz-object-lock-mode': 'GOVERNANCE', 'x-amz-object-lock-retain-until-date': FAR_FUTURE.toISOString() };
    const bare = await raw(talus.url, ownerCredentials, 'PUT', `/${locked}/md5`, { headers: lockHeaders, body: 'data' });
    assert.equal(bare.status, 400);
    assert.equal(errorCode(bare), 'InvalidRequest');
    assert.match(bare.body, /Content-MD5 OR x-amz-checksum- HTTP header is required for Put Object requests with Object Lock parameters/);
    assert.equal(await refusal(owner.send(new HeadObjectCommand({ Bucket: locked, Key: 'md5' })), 404), 'NotFound');
    const md5 = createHash('md5').update('data').digest('base64');
    assert.equal((await raw(talus.url, ownerCredentials, 'PUT', `/${locked}/md5`, { headers: { ...lockHeaders, 'content-md5': md5 }, body: 'data' })).status, 200);
    // No lock asked for and no default retention: no requirement.
    assert.equal((await raw(talus.url, ownerCredentials, 'PUT', `/${locked}/unlocked`, { body: 'data' })).status, 200);
    // A part of an upload that locks its object.
    const upload = await owner.send(new CreateMultipartUploadCommand({ Bucket: locked, Key: 'md5-multi', ObjectLockLegalHoldStatus: 'ON' }));
    const uploadId = upload.UploadId ?? '';
    const part = await raw(talus.url, ownerCredentials, 'PUT', `/${locked}/md5-multi`, { query: { partNumber: '1', uploadId }, body: 'data' });
    assert.equal(part.status, 400);
    assert.match(part.body, /required for Put Part requests with Object Lock parameters/);
    assert.equal((await raw(talus.url, ownerCredentials, 'PUT', `/${locked}/md5-multi`, { query: { partNumber: '1', uploadId }, headers: { 'content-md5': md5 }, body: 'data' })).status, 200);
  });

  test('a bucket without Object Lock refuses lock settings instead of pretending', async () => {
    const plain = uniqueBucket('nolock');
    await owner.send(new CreateBucketCommand({ Bucket: plain }));
    await owner.send(new PutObjectCommand({ Bucket: plain, Key: 'there', Body: 'x' }));
    assert.equal(await refusal(owner.send(new GetObjectLockConfigurationCommand({ Bucket: plain })), 404), 'ObjectLockConfigurationNotFoundError');
    const config = { ObjectLockEnabled: 'Enabled' as const, Rule: { DefaultRetention: { Mode: 'GOVERNANCE' as const, Days: 1 } } };
    assert.equal(await refusal(owner.send(new PutObjectLockConfigurationCommand({ Bucket: plain, ObjectLockConfiguration: config })), 409), 'InvalidBucketState');
    assert.equal(await refusal(owner.send(new PutObjectCommand({ Bucket: plain, Key: 'k', Body: 'x', ObjectLockMode: 'GOVERNANCE', ObjectLockRetainUntilDate: FAR_FUTURE })), 400), 'InvalidRequest');
    assert.equal(await refusal(owner.send(new PutObjectCommand({ Bucket: plain, Key: 'k', Body: 'x', ObjectLockLegalHoldStatus: 'ON' })), 400), 'InvalidRequest');
    assert.equal(await refusal(owner.send(new HeadObjectCommand({ Bucket: plain, Key: 'k' })), 404), 'NotFound');
    assert.equal(await refusal(owner.send(new CopyObjectCommand({ Bucket: plain, Key: 'k', CopySource: `${plain}/there`, ObjectLockLegalHoldStatus: 'ON' })), 400), 'InvalidRequest');
    assert.equal(await refusal(owner.send(new CreateMultipartUploadCommand({ Bucket: plain, Key: 'k', ObjectLockLegalHoldStatus: 'ON' })), 400), 'InvalidRequest');
    assert.equal(await refusal(owner.send(new PutObjectRetentionCommand({ Bucket: plain, Key: 'there', Retention: { Mode: 'GOVERNANCE', RetainUntilDate: FAR_FUTURE } })), 400), 'InvalidRequest');
    assert.equal(await refusal(owner.send(new GetObjectRetentionCommand({ Bucket: plain, Key: 'there' })), 400), 'InvalidRequest');
    assert.equal(await refusal(owner.send(new PutObjectLegalHoldCommand({ Bucket: plain, Key: 'there', LegalHold: { Status: 'ON' } })), 400), 'InvalidRequest');
    // A DELETE ?object-lock is not DeleteBucket.
    assert.equal((await raw(talus.url, ownerCredentials, 'DELETE', `/${plain}`, { query: { 'object-lock': '' } })).status, 501);
    // With versioning Enabled, Object Lock can be turned on afterwards (AWS since 2023; ceph/s3-tests expects it).
    await owner.send(new PutBucketVersioningCommand({ Bucket: plain, VersioningConfiguration: { Status: 'Suspended' } }));
    assert.equal(await refusal(owner.send(new PutObjectLockConfigurationCommand({ Bucket: plain, ObjectLockConfiguration: config })), 409), 'InvalidBucketState');
    await owner.send(new PutBucketVersioningCommand({ Bucket: plain, VersioningConfiguration: { Status: 'Enabled' } }));
    await owner.send(new PutObjectLockConfigurationCommand({ Bucket: plain, ObjectLockConfiguration: config }));
    assert.equal(await refusal(owner.send(new PutBucketVersioningCommand({ Bucket: plain, VersioningConfiguration: { Status: 'Suspended' } })), 409), 'InvalidBucketState');
  });

  test('authorization: strangers and anonymous get nothing; lock headers on a write need their own permissions', async () => {
    const bucket = uniqueBucket('lock-authz');
    await owner.send(new CreateBucketCommand({ Bucket: bucket, ObjectLockEnabledForBucket: true }));
    const versionId = (await owner.send(new PutObjectCommand({ Bucket: bucket, Key: 'k', Body: 'x', ObjectLockLegalHoldStatus: 'ON' }))).VersionId;
    // Another user with no grant on the bucket.
    assert.equal(await refusal(other.send(new GetObjectLockConfigurationCommand({ Bucket: bucket })), 403), 'AccessDenied');
    assert.equal(await refusal(other.send(new GetObjectLegalHoldCommand({ Bucket: bucket, Key: 'k' })), 403), 'AccessDenied');
    assert.equal(await refusal(other.send(new PutObjectLegalHoldCommand({ Bucket: bucket, Key: 'k', LegalHold: { Status: 'OFF' } })), 403), 'AccessDenied');
    // Anonymous.
    for (const query of [{ 'object-lock': '' }]) {
      assert.equal((await send(talus.url, 'GET', `/${bucket}${queryString(query)}`, {})).status, 403);
    }
    assert.equal((await send(talus.url, 'GET', `/${bucket}/k${queryString({ 'legal-hold': '' })}`, {})).status, 403);
    // root may read it; the hold stayed ON through all of that.
    assert.equal((await root.send(new GetObjectLegalHoldCommand({ Bucket: bucket, Key: 'k', VersionId: versionId }))).LegalHold?.Status, 'ON');
    // s3:PutObject alone does not let a write set a retention or a hold.
    const policy = { Version: '2012-10-17', Statement: [{ Effect: 'Allow', Principal: { AWS: [otherId] }, Action: ['s3:PutObject', 's3:GetObject'], Resource: [`arn:aws:s3:::${bucket}/*`] }] };
    await owner.send(new PutBucketPolicyCommand({ Bucket: bucket, Policy: JSON.stringify(policy) }));
    // GET/HEAD show a version's lock only to those who may read it (s3:GetObjectLegalHold here).
    assert.equal((await other.send(new HeadObjectCommand({ Bucket: bucket, Key: 'k' }))).ObjectLockLegalHoldStatus, undefined);
    assert.equal((await owner.send(new HeadObjectCommand({ Bucket: bucket, Key: 'k' }))).ObjectLockLegalHoldStatus, 'ON');
    await other.send(new PutObjectCommand({ Bucket: bucket, Key: 'by-other', Body: 'x' }));
    assert.equal(await refusal(other.send(new PutObjectCommand({ Bucket: bucket, Key: 'by-other', Body: 'x', ObjectLockMode: 'GOVERNANCE', ObjectLockRetainUntilDate: FAR_FUTURE })), 403), 'AccessDenied');
    assert.equal(await refusal(other.send(new PutObjectCommand({ Bucket: bucket, Key: 'by-other', Body: 'x', ObjectLockLegalHoldStatus: 'ON' })), 403), 'AccessDenied');
  });

  test('a locked null version (from before versioning was enabled) is never overwritten nor deleted', async () => {
    const bucket = uniqueBucket('lock-null');
    await owner.send(new CreateBucketCommand({ Bucket: bucket }));
    await owner.send(new PutBucketVersioningCommand({ Bucket: bucket, VersioningConfiguration: { Status: 'Suspended' } }));
    await owner.send(new PutObjectCommand({ Bucket: bucket, Key: 'k', Body: 'first' }));
    await owner.send(new PutBucketVersioningCommand({ Bucket: bucket, VersioningConfiguration: { Status: 'Enabled' } }));
    await owner.send(new PutObjectLockConfigurationCommand({ Bucket: bucket, ObjectLockConfiguration: { ObjectLockEnabled: 'Enabled' } }));
    await owner.send(new PutObjectLegalHoldCommand({ Bucket: bucket, Key: 'k', VersionId: 'null', LegalHold: { Status: 'ON' } }));
    assert.equal(await refusal(root.send(new DeleteObjectCommand({ Bucket: bucket, Key: 'k', VersionId: 'null', BypassGovernanceRetention: true })), 403), 'AccessDenied');
    // A write that began while versioning was suspended would commit a new null version: the store refuses to replace the locked one.
    const stale = await talus.engine.meta.getVersion(bucket, 'k', 'null');
    assert.ok(stale !== undefined);
    const { legalHold: _hold, ...unlocked } = stale;
    await assert.rejects(talus.engine.meta.commitVersion({ version: { ...unlocked, etag: 'f'.repeat(32), lastModifiedMs: Date.now() }, conditions: {} }), { code: 'AccessDenied' });
    const kept = await owner.send(new HeadObjectCommand({ Bucket: bucket, Key: 'k', VersionId: 'null' }));
    assert.equal(kept.ObjectLockLegalHoldStatus, 'ON');
    assert.equal(kept.ETag, `"${stale.etag}"`);
    await owner.send(new PutObjectLegalHoldCommand({ Bucket: bucket, Key: 'k', VersionId: 'null', LegalHold: { Status: 'OFF' } }));
    await owner.send(new DeleteObjectCommand({ Bucket: bucket, Key: 'k', VersionId: 'null' }));
  });

  test('isVersionLocked: a hold, or a retention not yet expired', () => {
    const nowMs = Date.parse('2030-01-01T00:00:00Z');
    assert.equal(isVersionLocked({}, nowMs), false);
    assert.equal(isVersionLocked({ legalHold: false }, nowMs), false);
    assert.equal(isVersionLocked({ legalHold: true }, nowMs), true);
    assert.equal(isVersionLocked({ retention: { mode: 'GOVERNANCE', retainUntilMs: nowMs + 1 } }, nowMs), true);
    assert.equal(isVersionLocked({ retention: { mode: 'COMPLIANCE', retainUntilMs: nowMs } }, nowMs), false);
  });
});
