/**
 * A bucket's default retention is decided when the version commits, not when
 * its request began: a PUT whose body is still streaming while
 * PutObjectLockConfiguration sets a default retention gets that retention,
 * whether the bucket was lock-enabled already or the configuration enables
 * Object Lock on a versioned bucket as it sets the default.
 *
 * Method: a raw signed PUT (unsigned payload, no Content-MD5: allowed while
 * the bucket has no default retention) sends half its body, waits until the
 * server has certainly read the bucket and started storing, then the
 * configuration is set through the SDK, then the rest of the body goes;
 * GetObjectRetention on the version written must answer the default.
 */
import {
  CreateBucketCommand,
  GetObjectRetentionCommand,
  PutBucketVersioningCommand,
  PutObjectLockConfigurationCommand,
} from '@aws-sdk/client-s3';
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { signRequest } from './helpers/raw.ts';
import { startTestTalus, uniqueBucket, type TestTalus } from './helpers/talus.ts';

const DAY_MS = 86_400_000;

/** A PUT that sends half its body, awaits `between`, then sends the rest; resolves to its status and version ID. */
async function slowPut(baseUrl: string, path: string, body: Buffer, between: () => Promise<void>): Promise<{ status: number; versionId: string | undefined; body: string }> {
  const headers = await signRequest(baseUrl, { method: 'PUT', path, unsignedPayload: true, headers: { 'content-length': String(body.length) } });
  const url = new URL(baseUrl);
  return new Promise((resolve, reject) => {
    const outgoing = request({ host: url.hostname, port: url.port, method: 'PUT', path, headers }, (response) => {
      const chunks: Buffer[] = [];
      response.on('data', (chunk: Buffer) => chunks.push(chunk));
      response.on('end', () => resolve({ status: response.statusCode ?? 0, versionId: response.headers['x-amz-version-id'] as string | undefined, body: Buffer.concat(chunks).toString() }));
    });
    outgoing.on('error', reject);
    outgoing.write(body.subarray(0, body.length / 2));
    void (async () => {
      // Long enough for the server to have read the bucket and started writing the blob.
      await sleep(300);
      await between();
      outgoing.end(body.subarray(body.length / 2));
    })().catch(reject);
  });
}

describe('default retention decided at commit', { timeout: 60_000 }, () => {
  let talus: TestTalus;
  before(async () => {
    talus = await startTestTalus();
  });
  after(async () => {
    await talus.stop();
  });

  for (const start of ['lock-enabled', 'versioned'] as const) {
    test(`a PUT streaming while a default retention is set gets it (bucket ${start} when the PUT began)`, async () => {
      const bucket = uniqueBucket('fixlock');
      await talus.client.send(new CreateBucketCommand({ Bucket: bucket, ...(start === 'lock-enabled' ? { ObjectLockEnabledForBucket: true } : {}) }));
      if (start === 'versioned') await talus.client.send(new PutBucketVersioningCommand({ Bucket: bucket, VersioningConfiguration: { Status: 'Enabled' } }));
      const before = Date.now();
      const put = await slowPut(talus.url, `/${bucket}/slow`, Buffer.alloc(256 * 1024, 1), async () => {
        await talus.client.send(new PutObjectLockConfigurationCommand({
          Bucket: bucket,
          ObjectLockConfiguration: { ObjectLockEnabled: 'Enabled', Rule: { DefaultRetention: { Mode: 'GOVERNANCE', Days: 1 } } },
        }));
      });
      assert.equal(put.status, 200, put.body);
      assert.ok(put.versionId !== undefined);
      const retention = await talus.client.send(new GetObjectRetentionCommand({ Bucket: bucket, Key: 'slow', VersionId: put.versionId }));
      assert.equal(retention.Retention?.Mode, 'GOVERNANCE');
      const until = retention.Retention?.RetainUntilDate?.getTime() ?? 0;
      assert.ok(until >= before + DAY_MS - 1000 && until <= Date.now() + DAY_MS + 1000, `retained until ${new Date(until).toISOString()}`);
    });
  }
});
