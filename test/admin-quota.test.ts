/**
 * Bucket quotas as their users meet them: SetBucketQuota / GetBucketQuota
 * on the admin API with their authorization matrix (anonymous, a plain key,
 * a scoped token, an expired token, root), and the S3 writes a quota
 * refuses — PutObject, UploadPart, CompleteMultipartUpload, CopyObject, POST Object —
 * each answered 400 XMinioAdminBucketQuotaExceeded with nothing changed;
 * overwrites counted by their difference, deletes and versions counted as
 * Garage and MinIO count them, and 20 concurrent PUTs of which exactly those
 * that fit succeed. Real HTTP on loopback, the AWS SDK, one server.
 */
import {
  CompleteMultipartUploadCommand,
  CopyObjectCommand,
  CreateBucketCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  ListPartsCommand,
  PutBucketVersioningCommand,
  PutObjectCommand,
  S3ServiceException,
  UploadPartCommand,
  type S3Client,
} from '@aws-sdk/client-s3';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { chromium } from 'playwright-core';
import { AdminApiError, AdminClient } from '../src/admin/client.ts';
import { ADMIN_PATH_PREFIX } from '../src/admin/paths.ts';
import { startTalus, type RunningTalus } from '../src/talus.ts';
import { silentLogger } from '../src/util/logger.ts';
import { ACCESS_KEY_ID, SECRET_ACCESS_KEY, makeClient } from './helpers/talus.ts';

type Credentials = { accessKeyId: string; secretAccessKey: string };
type QuotaAnswer = { maxBytes: number | null; maxObjects: number | null; usedBytes: number | null; usedObjects: number | null };
const ROOT: Credentials = { accessKeyId: ACCESS_KEY_ID, secretAccessKey: SECRET_ACCESS_KEY };
const QUOTA_CODE = 'XMinioAdminBucketQuotaExceeded';
const MiB = 1024 * 1024;
const CHROMIUM = '/usr/bin/chromium';

async function outcome(call: Promise<unknown>): Promise<string> {
  try {
    await call;
    return 'ok';
  } catch (error) {
    if (error instanceof AdminApiError) return error.code;
    if (error instanceof S3ServiceException) return `${error.$metadata.httpStatusCode} ${error.name}`;
    throw error;
  }
}

const refused = `400 ${QUOTA_CODE}`;

/** A POST Object form signed by root (SigV4 policy), its file last, as a browser sends it. */
async function postObject(url: string, bucket: string, key: string, bytes: number): Promise<{ status: number; body: string }> {
  const amzDate = new Date().toISOString().replace(/[-:]/g, '').replace(/\.\d{3}/, '');
  const credential = `${ROOT.accessKeyId}/${amzDate.slice(0, 8)}/us-east-1/s3/aws4_request`;
  const conditions = [{ bucket }, ['starts-with', '$key', ''], { 'x-amz-algorithm': 'AWS4-HMAC-SHA256' }, { 'x-amz-credential': credential }, { 'x-amz-date': amzDate }];
  const policy = Buffer.from(JSON.stringify({ expiration: new Date(Date.now() + 3_600_000).toISOString(), conditions })).toString('base64');
  let signingKey: Buffer | string = `AWS4${ROOT.secretAccessKey}`;
  for (const part of [amzDate.slice(0, 8), 'us-east-1', 's3', 'aws4_request']) signingKey = createHmac('sha256', signingKey).update(part).digest();
  const form = new FormData();
  for (const [name, value] of [['key', key], ['x-amz-algorithm', 'AWS4-HMAC-SHA256'], ['x-amz-credential', credential], ['x-amz-date', amzDate], ['policy', policy],
    ['x-amz-signature', createHmac('sha256', signingKey).update(policy).digest('hex')]]) form.append(name!, value!);
  form.append('file', new Blob([Buffer.alloc(bytes, 5)]), 'upload.bin');
  const response = await fetch(`${url}/${bucket}`, { method: 'POST', body: form });
  return { status: response.status, body: await response.text() };
}

describe('bucket quotas', () => {
  let dataDir: string;
  let talus: RunningTalus;
  let root: AdminClient;
  let s3: S3Client;

  before(async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'talus-quota-'));
    talus = await startTalus({
      dataDir, port: 0, address: '127.0.0.1', rootAccessKeyId: ROOT.accessKeyId, rootSecretAccessKey: ROOT.secretAccessKey,
      logger: silentLogger, admin: { port: 0, address: '127.0.0.1' },
    });
    root = new AdminClient({ endpoint: talus.adminUrl!, ...ROOT });
    s3 = makeClient(talus.url);
  });
  after(async () => {
    s3.destroy();
    await talus.close();
    await rm(dataDir, { recursive: true, force: true });
  });

  const quotaOf = (bucket: string): Promise<QuotaAnswer> => root.call<QuotaAnswer>('GetBucketQuota', { bucket });
  const put = (bucket: string, key: string, bytes: number): Promise<string> => outcome(s3.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: Buffer.alloc(bytes, 7) })));
  const exists = async (bucket: string, key: string): Promise<boolean> => (await outcome(s3.send(new HeadObjectCommand({ Bucket: bucket, Key: key })))) === 'ok';

  test('authorization: anonymous, a plain key, a scoped token, an expired token are refused; root sets and reads; a refused set changes nothing', async () => {
    await s3.send(new CreateBucketCommand({ Bucket: 'authz-quota' }));
    const adminUrl = talus.adminUrl!;
    const plain = await root.call<Credentials>('CreateUser', { name: 'plain' });
    const readwrite = await root.call<Credentials>('CreateUser', { name: 'rw', policy: 'readwrite' });
    const scoped = await root.call<{ token: string }>('CreateToken', { name: 'quota-reader', scope: ['GetBucketQuota'], expiresInSeconds: 600 });
    const expiring = await root.call<{ token: string }>('CreateToken', { name: 'brief', scope: ['*'], expiresInSeconds: 1 });
    const asToken = (token: string): AdminClient => new AdminClient({ endpoint: adminUrl, token });
    const setInput = { bucket: 'authz-quota', maxBytes: 1 };
    await new Promise((resolve) => setTimeout(resolve, 1_200)); // the expiring token is past its second

    for (const operation of ['SetBucketQuota', 'GetBucketQuota']) {
      const input = operation === 'SetBucketQuota' ? setInput : { bucket: 'authz-quota' };
      const anonymous = await fetch(`${adminUrl}${ADMIN_PATH_PREFIX}${operation}`, { method: 'POST', body: JSON.stringify(input), headers: { 'content-type': 'application/json' } });
      assert.equal(anonymous.status, 401, operation);
      assert.equal(await outcome(new AdminClient({ endpoint: adminUrl, ...plain }).call(operation, input)), 'AccessDenied', operation);
      assert.equal(await outcome(new AdminClient({ endpoint: adminUrl, ...readwrite }).call(operation, input)), 'AccessDenied', operation);
      assert.equal(await outcome(asToken(expiring.token).call(operation, input)), 'InvalidToken', operation);
    }
    assert.equal(await outcome(asToken(scoped.token).call('SetBucketQuota', setInput)), 'AccessDenied', 'a token scoped to GetBucketQuota cannot set one');
    assert.deepEqual(await asToken(scoped.token).call('GetBucketQuota', { bucket: 'authz-quota' }), { maxBytes: null, maxObjects: null, usedBytes: null, usedObjects: null });
    assert.equal(await put('authz-quota', 'after-refusals', 10), 'ok', 'no refused SetBucketQuota took effect');

    // A user granted exactly admin:SetBucketQuota may set one and not read it.
    const operator = await root.call<Credentials>('CreateUser', { name: 'quota-operator', policy: JSON.stringify({ Version: '2012-10-17', Statement: [{ Effect: 'Allow', Action: 'admin:SetBucketQuota', Resource: '*' }] }) });
    const operatorClient = new AdminClient({ endpoint: adminUrl, ...operator });
    assert.deepEqual(await operatorClient.call('SetBucketQuota', { bucket: 'authz-quota', maxObjects: 5 }), { maxBytes: null, maxObjects: 5, usedBytes: 10, usedObjects: 1 });
    assert.equal(await outcome(operatorClient.call('GetBucketQuota', { bucket: 'authz-quota' })), 'AccessDenied');

    assert.equal(await outcome(root.call('GetBucketQuota', { bucket: 'no-such-bucket-here' })), 'NotFound');
    assert.equal(await outcome(root.call('SetBucketQuota', { bucket: 'no-such-bucket-here', maxBytes: 1 })), 'NotFound');
    assert.equal(await outcome(root.call('SetBucketQuota', { bucket: 'authz-quota', maxBytes: -1 })), 'InvalidRequest');
    assert.equal(await outcome(root.call('SetBucketQuota', { bucket: 'authz-quota', maxBytes: 1.5 })), 'InvalidRequest');
    assert.equal(await outcome(root.call('SetBucketQuota', { bucket: 'authz-quota', maxBytes: '10' })), 'InvalidRequest');
    assert.deepEqual(await quotaOf('authz-quota'), { maxBytes: null, maxObjects: 5, usedBytes: 10, usedObjects: 1 }, 'bad input changed nothing');
  });

  test('PutObject past the byte quota is refused before anything is kept; overwrites count their difference, deletes free; clearing allows', async () => {
    const bucket = 'bytes-quota';
    await s3.send(new CreateBucketCommand({ Bucket: bucket }));
    assert.equal(await put(bucket, 'before', 3000), 'ok');
    // Set on a bucket that already holds data: it is counted.
    assert.deepEqual(await root.call('SetBucketQuota', { bucket, maxBytes: 10_000 }), { maxBytes: 10_000, maxObjects: null, usedBytes: 3000, usedObjects: 1 });
    const listed = await root.call<{ buckets: { name: string; quota: unknown }[] }>('ListBuckets');
    assert.deepEqual(listed.buckets.find((entry) => entry.name === bucket)?.quota, { maxBytes: 10_000, maxObjects: null });

    assert.equal(await put(bucket, 'a', 6000), 'ok');
    assert.equal(await put(bucket, 'b', 1001), refused, '3000 + 6000 + 1001 > 10000');
    assert.equal(await exists(bucket, 'b'), false);
    assert.equal(await put(bucket, 'b', 1000), 'ok', 'exactly the quota fits');
    assert.deepEqual(await quotaOf(bucket), { maxBytes: 10_000, maxObjects: null, usedBytes: 10_000, usedObjects: 3 });

    // An overwrite counts new − replaced: shrinking always passes, growing past the quota does not.
    assert.equal(await put(bucket, 'a', 5000), 'ok');
    assert.equal(await put(bucket, 'a', 7000), refused);
    assert.equal((await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: 'a' }))).ContentLength, 5000, 'the refused overwrite kept the old object');
    assert.equal(await put(bucket, 'a', 6000), 'ok');
    assert.equal(await put(bucket, 'too-big', 10_001), refused, 'larger than the whole quota: refused up front');
    const posted = await postObject(talus.url, bucket, 'posted', 1);
    assert.equal(posted.status, 400, posted.body);
    assert.match(posted.body, new RegExp(`<Code>${QUOTA_CODE}</Code>`));
    assert.equal(await exists(bucket, 'posted'), false, 'a POST Object form past the quota stored nothing');
    assert.deepEqual(await quotaOf(bucket), { maxBytes: 10_000, maxObjects: null, usedBytes: 10_000, usedObjects: 3 });

    await s3.send(new DeleteObjectCommand({ Bucket: bucket, Key: 'a' }));
    assert.deepEqual(await quotaOf(bucket), { maxBytes: 10_000, maxObjects: null, usedBytes: 4000, usedObjects: 2 });
    assert.equal(await put(bucket, 'c', 5000), 'ok', 'the delete freed its bytes');
    assert.equal((await postObject(talus.url, bucket, 'posted', 1000)).status, 204, 'a form that fits is stored');

    // Lowered below what the bucket holds: writes that grow it are refused, deletes still work.
    await root.call('SetBucketQuota', { bucket, maxBytes: 100 });
    assert.equal(await put(bucket, 'd', 1), refused);
    await s3.send(new DeleteObjectCommand({ Bucket: bucket, Key: 'c' }));
    assert.equal((await quotaOf(bucket)).usedBytes, 5000, 'before, b and posted');

    assert.deepEqual(await root.call('SetBucketQuota', { bucket }), { maxBytes: null, maxObjects: null, usedBytes: null, usedObjects: null }, 'no limit given clears the quota');
    assert.equal(await put(bucket, 'd', 20_000), 'ok');
    const keys = (await s3.send(new ListObjectsV2Command({ Bucket: bucket }))).Contents?.map((entry) => entry.Key);
    assert.deepEqual(keys, ['b', 'before', 'd', 'posted']);
  });

  test('the object-count quota; a versioned bucket counts every version, delete markers none', async () => {
    const bucket = 'count-quota';
    await s3.send(new CreateBucketCommand({ Bucket: bucket }));
    await root.call('SetBucketQuota', { bucket, maxObjects: 2 });
    assert.equal(await put(bucket, 'x', 10), 'ok');
    assert.equal(await put(bucket, 'y', 10), 'ok');
    assert.equal(await put(bucket, 'z', 10), refused);
    assert.equal(await put(bucket, 'x', 20), 'ok', 'an overwrite of an unversioned key adds no object');

    await s3.send(new PutBucketVersioningCommand({ Bucket: bucket, VersioningConfiguration: { Status: 'Enabled' } }));
    await s3.send(new DeleteObjectCommand({ Bucket: bucket, Key: 'y' }));
    assert.deepEqual(await quotaOf(bucket), { maxBytes: null, maxObjects: 2, usedBytes: 30, usedObjects: 2 }, 'a delete marker holds nothing; the version under it still counts');
    assert.equal(await put(bucket, 'x', 10), refused, 'a new version of x would be a third version');
    const versions = await root.call<{ buckets: { versions: number; deleteMarkers: number }[] }>('GetStorageStats', { bucket });
    assert.deepEqual([versions.buckets[0]!.versions, versions.buckets[0]!.deleteMarkers], [2, 1]);
    await root.call('SetBucketQuota', { bucket, maxObjects: 3 });
    assert.equal(await put(bucket, 'x', 10), 'ok');
    assert.deepEqual(await quotaOf(bucket), { maxBytes: null, maxObjects: 3, usedBytes: 40, usedObjects: 3 });
  });

  test('UploadPart past the byte quota and CompleteMultipartUpload past the object quota are refused, the upload stays completable; CopyObject into the bucket too', async () => {
    const bucket = 'multipart-quota';
    await s3.send(new CreateBucketCommand({ Bucket: bucket }));
    await root.call('SetBucketQuota', { bucket, maxBytes: 6 * MiB, maxObjects: 1 });
    assert.equal(await put(bucket, 'first', 1 * MiB), 'ok');
    const { UploadId } = await s3.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: 'big' }));
    const uploadPart = (partNumber: number, bytes: number) => s3.send(new UploadPartCommand({ Bucket: bucket, Key: 'big', UploadId, PartNumber: partNumber, Body: Buffer.alloc(bytes, partNumber) }));
    const part1 = await uploadPart(1, 5 * MiB);
    // Parts count as they arrive: the one that passes the limit is refused.
    assert.equal(await outcome(uploadPart(2, 1)), refused, '1 MiB + 5 MiB + 1 byte > 6 MiB');
    assert.deepEqual(await quotaOf(bucket), { maxBytes: 6 * MiB, maxObjects: 1, usedBytes: 6 * MiB, usedObjects: 1 });
    const complete = (parts: { PartNumber: number; ETag: string | undefined }[]): Promise<string> =>
      outcome(s3.send(new CompleteMultipartUploadCommand({ Bucket: bucket, Key: 'big', UploadId, MultipartUpload: { Parts: parts } })));
    assert.equal(await complete([{ PartNumber: 1, ETag: part1.ETag }]), refused, 'a second object > 1 object');
    assert.equal(await exists(bucket, 'big'), false);
    assert.equal((await s3.send(new ListPartsCommand({ Bucket: bucket, Key: 'big', UploadId }))).Parts?.length, 1, 'the refused completion consumed nothing');
    assert.deepEqual(await quotaOf(bucket), { maxBytes: 6 * MiB, maxObjects: 1, usedBytes: 6 * MiB, usedObjects: 1 });
    await root.call('SetBucketQuota', { bucket, maxBytes: 8 * MiB });
    const part2 = await uploadPart(2, 2 * MiB);
    assert.equal(await complete([{ PartNumber: 1, ETag: part1.ETag }, { PartNumber: 2, ETag: part2.ETag }]), 'ok');
    assert.equal((await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: 'big' }))).ContentLength, 7 * MiB);
    assert.deepEqual(await quotaOf(bucket), { maxBytes: 8 * MiB, maxObjects: null, usedBytes: 8 * MiB, usedObjects: 2 }, 'the parts became the object, counted once');
    await s3.send(new DeleteObjectCommand({ Bucket: bucket, Key: 'first' }));
    const other = await s3.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: 'other' }));
    assert.equal(await outcome(s3.send(new UploadPartCommand({ Bucket: bucket, Key: 'other', UploadId: other.UploadId, PartNumber: 1, Body: Buffer.alloc(8 * MiB + 1) }))), refused,
      'a part larger than the whole quota is refused before it is read');

    // CopyObject from a bucket without a quota into this one.
    await s3.send(new CreateBucketCommand({ Bucket: 'copy-source' }));
    await s3.send(new PutObjectCommand({ Bucket: 'copy-source', Key: 'src', Body: Buffer.alloc(2 * MiB, 3) }));
    const copy = (): Promise<string> => outcome(s3.send(new CopyObjectCommand({ Bucket: bucket, Key: 'copied', CopySource: 'copy-source/src' })));
    assert.equal(await copy(), refused, '7 MiB + 2 MiB > 8 MiB');
    assert.equal(await exists(bucket, 'copied'), false);
    await root.call('SetBucketQuota', { bucket, maxBytes: 9 * MiB });
    assert.equal(await copy(), 'ok');
    assert.deepEqual(await quotaOf(bucket), { maxBytes: 9 * MiB, maxObjects: null, usedBytes: 9 * MiB, usedObjects: 2 });
  });

  test('the console: the bucket page reads and sets the quota through a session, as the browser does', async () => {
    const source = await (await fetch(`${talus.adminUrl!}/console/ui/objects.js`)).text();
    for (const operation of ['GetBucketQuota', 'SetBucketQuota']) assert.ok(source.includes(`'${operation}'`), `objects.js calls ${operation}`);
    await s3.send(new CreateBucketCommand({ Bucket: 'console-quota' }));
    const login = await fetch(`${talus.adminUrl!}/console/api/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(ROOT) });
    assert.equal(login.status, 200);
    const cookie = login.headers.get('set-cookie')!.split(';')[0]!;
    const { csrfToken } = await login.json() as { csrfToken: string };
    const viaConsole = async (operation: string, input: object, csrf = csrfToken): Promise<{ status: number; body: unknown }> => {
      const response = await fetch(`${talus.adminUrl!}/console/api/admin/${operation}`, {
        method: 'POST', headers: { 'content-type': 'application/json', cookie, 'x-talus-csrf': csrf }, body: JSON.stringify(input),
      });
      return { status: response.status, body: await response.json() };
    };
    assert.equal((await viaConsole('SetBucketQuota', { bucket: 'console-quota', maxBytes: 5 }, 'not-the-token')).status, 403, 'a change needs the CSRF token');
    assert.deepEqual(await viaConsole('SetBucketQuota', { bucket: 'console-quota', maxBytes: 5, maxObjects: null }), { status: 200, body: { maxBytes: 5, maxObjects: null, usedBytes: 0, usedObjects: 0 } });
    assert.equal(await put('console-quota', 'six', 6), refused);
    assert.deepEqual(await viaConsole('SetBucketQuota', { bucket: 'console-quota' }), { status: 200, body: { maxBytes: null, maxObjects: null, usedBytes: null, usedObjects: null } });
    assert.equal(await put('console-quota', 'six', 6), 'ok');
  });

  test('the console in a real browser: the bucket page sets, shows and clears the quota', { timeout: 120_000, skip: existsSync(CHROMIUM) ? false : `${CHROMIUM} is missing` }, async () => {
    await s3.send(new CreateBucketCommand({ Bucket: 'browser-quota' }));
    assert.equal(await put('browser-quota', 'first', 100), 'ok');
    const userDataDir = await mkdtemp(join(tmpdir(), 'talus-quota-chromium-'));
    const context = await chromium.launchPersistentContext(userDataDir, {
      executablePath: CHROMIUM, headless: true, args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
    });
    try {
      const page = context.pages()[0] ?? (await context.newPage());
      const pageErrors: string[] = [];
      page.on('pageerror', (error) => pageErrors.push(String(error)));
      await page.goto(`${talus.adminUrl!}/console/`);
      await page.getByLabel('Access key').fill(ROOT.accessKeyId);
      await page.getByLabel('Secret key').fill(ROOT.secretAccessKey);
      await page.getByRole('button', { name: 'Log in' }).click();
      await page.getByTestId('principal').waitFor();
      await page.goto(`${talus.adminUrl!}/console/#/b/browser-quota/`);
      const state = page.getByTestId('quota-state');
      await state.waitFor();
      assert.equal(await state.textContent(), 'none');
      await page.getByLabel('Quota: maximum bytes').fill('150');
      await page.getByRole('button', { name: 'Set quota' }).click();
      await page.getByRole('button', { name: 'Clear quota' }).waitFor();
      assert.equal(await state.textContent(), '100 B of 150 B, 1 of unlimited versions');
      assert.equal(await put('browser-quota', 'second', 100), refused);
      await page.getByRole('button', { name: 'Clear quota' }).click();
      await page.getByRole('button', { name: 'Clear quota' }).waitFor({ state: 'detached' });
      assert.equal(await state.textContent(), 'none');
      assert.equal(await put('browser-quota', 'second', 100), 'ok');
      assert.deepEqual(pageErrors, []);
    } finally {
      await context.close();
      await rm(userDataDir, { recursive: true, force: true });
    }
  });

  test('20 concurrent PUTs of which 10 fit: exactly 10 succeed, the rest are refused, the total never exceeds', async () => {
    const bucket = 'race-quota';
    await s3.send(new CreateBucketCommand({ Bucket: bucket }));
    await root.call('SetBucketQuota', { bucket, maxBytes: 10 * 1000 });
    const results = await Promise.all(Array.from({ length: 20 }, (_, index) => put(bucket, `k${index}`, 1000)));
    assert.equal(results.filter((result) => result === 'ok').length, 10, results.join(', '));
    assert.equal(results.filter((result) => result === refused).length, 10, results.join(', '));
    const listed = (await s3.send(new ListObjectsV2Command({ Bucket: bucket }))).Contents ?? [];
    assert.equal(listed.length, 10);
    assert.deepEqual(await quotaOf(bucket), { maxBytes: 10_000, maxObjects: null, usedBytes: 10_000, usedObjects: 10 });
  });
});
