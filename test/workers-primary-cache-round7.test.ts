/**
 * With --workers, the primary reads buckets too: the admin API answers from
 * its connection, and the lifecycle worker re-reads a bucket's versioning and
 * rules there before it deletes. A bucket change made through a worker must
 * reach the primary's cached bucket records as well as the other workers':
 * otherwise the admin API shows the previous settings, and lifecycle judges
 * by versioning and rules as they were (before this fix, an object in a
 * bucket whose versioning was enabled since was never expired: the stale
 * record's decision did not hold in the delete's transaction).
 */
import { CreateBucketCommand, ListObjectVersionsCommand, PutBucketLifecycleConfigurationCommand, PutBucketPolicyCommand, PutBucketVersioningCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { AdminClient } from '../src/admin/client.ts';
import { freePort, startServerProcess, type ServerProcess } from './helpers/process.ts';
import { ACCESS_KEY_ID, SECRET_ACCESS_KEY, makeClient } from './helpers/talus.ts';

/** A lifecycle "day" in seconds for this server (its scans run every 200 ms then). */
const DAY_SECONDS = 1;
const ACT_WITHIN_MS = 20_000;

async function eventually(what: string, check: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + ACT_WITHIN_MS;
  while (!(await check())) {
    if (Date.now() > deadline) assert.fail(`not within ${ACT_WITHIN_MS} ms: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

async function versionsOf(client: S3Client, bucket: string): Promise<{ versions: string[]; markers: string[] }> {
  const listed = await client.send(new ListObjectVersionsCommand({ Bucket: bucket }));
  return { versions: (listed.Versions ?? []).map((version) => version.Key!).sort(), markers: (listed.DeleteMarkers ?? []).map((marker) => marker.Key!).sort() };
}

describe("the primary's cached buckets with --workers 2", { timeout: 120_000 }, () => {
  let dataDir: string;
  let server: ServerProcess;
  let admin: AdminClient;
  let client: S3Client;

  before(async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'talus-workers-primary-cache-'));
    const adminPort = await freePort();
    const previous = process.env['TALUS_LIFECYCLE_DAY_SECONDS'];
    process.env['TALUS_LIFECYCLE_DAY_SECONDS'] = String(DAY_SECONDS);
    server = await startServerProcess(dataDir, undefined, ['--workers', '2', '--console-address', `127.0.0.1:${adminPort}`]).finally(() => {
      if (previous === undefined) delete process.env['TALUS_LIFECYCLE_DAY_SECONDS'];
      else process.env['TALUS_LIFECYCLE_DAY_SECONDS'] = previous;
    });
    admin = new AdminClient({ endpoint: `http://127.0.0.1:${adminPort}`, accessKeyId: ACCESS_KEY_ID, secretAccessKey: SECRET_ACCESS_KEY });
    client = makeClient(server.url);
  });
  after(async () => {
    client.destroy();
    await server.stop();
    await rm(dataDir, { recursive: true, force: true });
  });

  test('a bucket policy put through a worker is what the admin API shows next', async () => {
    await client.send(new CreateBucketCommand({ Bucket: 'shown' }));
    // The primary reads (and caches) the bucket.
    assert.deepEqual(await admin.call('GetBucketPolicy', { name: 'shown' }), { policy: null });
    const policy = JSON.stringify({ Version: '2012-10-17', Statement: [{ Effect: 'Allow', Principal: '*', Action: 's3:GetObject', Resource: 'arn:aws:s3:::shown/*' }] });
    await client.send(new PutBucketPolicyCommand({ Bucket: 'shown', Policy: policy }));
    const shown = await admin.call<{ policy: string | null }>('GetBucketPolicy', { name: 'shown' });
    assert.notEqual(shown.policy, null, 'the admin API showed the policy as it was before the change');
  });

  test('lifecycle in the primary follows versioning enabled through a worker: a delete marker, the object kept', async () => {
    await client.send(new CreateBucketCommand({ Bucket: 'aging' }));
    await client.send(new PutBucketLifecycleConfigurationCommand({ Bucket: 'aging', LifecycleConfiguration: { Rules: [{ ID: 'all', Filter: {}, Status: 'Enabled', Expiration: { Days: 1 } }] } }));
    // Expired while the bucket is unversioned: deleted outright, and the primary has read (cached) the bucket to judge it.
    await client.send(new PutObjectCommand({ Bucket: 'aging', Key: 'first', Body: 'x' }));
    await eventually('the first object is deleted', async () => (await versionsOf(client, 'aging')).versions.length === 0);
    await client.send(new PutBucketVersioningCommand({ Bucket: 'aging', VersioningConfiguration: { Status: 'Enabled' } }));
    await client.send(new PutObjectCommand({ Bucket: 'aging', Key: 'second', Body: 'kept' }));
    await eventually('the second object is expired', async () => (await versionsOf(client, 'aging')).markers.length > 0 || (await versionsOf(client, 'aging')).versions.length === 0);
    assert.deepEqual(await versionsOf(client, 'aging'), { versions: ['second'], markers: ['second'] }, 'versioned now: hidden by a marker, its version kept');
  });
});
