/**
 * POST Object and Object Lock: the x-amz-object-lock-mode,
 * -retain-until-date and -legal-hold form fields mean what PutObject's
 * headers mean — validated, applied to the version, and allowed only with
 * s3:PutObjectRetention / s3:PutObjectLegalHold besides s3:PutObject; a
 * locked upload (asked for, or the bucket's default retention) needs an
 * integrity check, here the Content-MD5 form field (verified) or an
 * x-amz-checksum-* field, as PutObject needs the header. Also: a refused
 * form is answered at once and its connection closed, without the server
 * reading the rest of a large body.
 *
 * Method: forms built by hand and POSTed over raw HTTP to an in-process
 * server; anonymous forms on a bucket whose policy grants exactly the
 * actions each case needs, and one root-signed form whose policy names the
 * lock fields.
 */
import {
  CreateBucketCommand,
  GetObjectLegalHoldCommand,
  GetObjectRetentionCommand,
  PutBucketPolicyCommand,
  PutObjectLockConfigurationCommand,
} from '@aws-sdk/client-s3';
import assert from 'node:assert/strict';
import { createHash, createHmac } from 'node:crypto';
import { request as httpRequest } from 'node:http';
import { connect } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { errorCode, signedRequest, type RawResponse } from './helpers/raw.ts';
import { ACCESS_KEY_ID, SECRET_ACCESS_KEY, startTestTalus, uniqueBucket, type TestTalus } from './helpers/talus.ts';

type Fields = [string, string][];
const BOUNDARY = '----TalusFixesBoundary';
const RETAIN_UNTIL = '2099-01-01T00:00:00.000Z';

function formBody(fields: Fields, content: string): Buffer {
  const parts = fields.map(([name, value]) => `--${BOUNDARY}\r\nContent-Disposition: form-data; name="${name}"\r\n\r\n${value}\r\n`);
  const file = `--${BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="f.txt"\r\nContent-Type: text/plain\r\n\r\n${content}\r\n--${BOUNDARY}--\r\n`;
  return Buffer.from(parts.join('') + file);
}

function postForm(url: string, path: string, fields: Fields, content: string): Promise<RawResponse> {
  const body = formBody(fields, content);
  const target = new URL(url);
  return new Promise((resolve, reject) => {
    const outgoing = httpRequest(
      { host: target.hostname, port: target.port, method: 'POST', path, agent: false, headers: { 'content-type': `multipart/form-data; boundary=${BOUNDARY}`, 'content-length': String(body.length) } },
      (response) => {
        const chunks: Buffer[] = [];
        response.on('data', (chunk: Buffer) => chunks.push(chunk));
        response.on('end', () => resolve({ status: response.statusCode ?? 0, headers: response.headers, body: Buffer.concat(chunks).toString('utf8') }));
      },
    );
    outgoing.on('error', reject);
    outgoing.end(body);
  });
}

/** SigV4 fields of a root-signed policy (the conditions naming them added). */
function signedFields(conditions: unknown[]): Fields {
  const amzDate = new Date().toISOString().replace(/[-:]/g, '').replace(/\.\d{3}/, '');
  const credential = `${ACCESS_KEY_ID}/${amzDate.slice(0, 8)}/us-east-1/s3/aws4_request`;
  const all = [...conditions, { 'x-amz-algorithm': 'AWS4-HMAC-SHA256' }, { 'x-amz-credential': credential }, { 'x-amz-date': amzDate }];
  const encoded = Buffer.from(JSON.stringify({ expiration: new Date(Date.now() + 3_600_000).toISOString(), conditions: all })).toString('base64');
  let key: Buffer | string = `AWS4${SECRET_ACCESS_KEY}`;
  for (const part of [amzDate.slice(0, 8), 'us-east-1', 's3', 'aws4_request']) key = createHmac('sha256', key).update(part).digest();
  const signature = createHmac('sha256', key).update(encoded).digest('hex');
  return [['x-amz-algorithm', 'AWS4-HMAC-SHA256'], ['x-amz-credential', credential], ['x-amz-date', amzDate], ['policy', encoded], ['x-amz-signature', signature]];
}

const md5 = (text: string): string => createHash('md5').update(text).digest('base64');

describe('POST Object with Object Lock', { timeout: 120_000 }, () => {
  let talus: TestTalus;
  before(async () => {
    talus = await startTestTalus();
  });
  after(async () => {
    await talus.stop();
  });

  async function lockBucket(anonymousActions: string[]): Promise<string> {
    const bucket = uniqueBucket('fixpost');
    await talus.client.send(new CreateBucketCommand({ Bucket: bucket, ObjectLockEnabledForBucket: true }));
    const policy = { Version: '2012-10-17', Statement: [{ Effect: 'Allow', Principal: '*', Action: anonymousActions, Resource: `arn:aws:s3:::${bucket}/*` }] };
    await talus.client.send(new PutBucketPolicyCommand({ Bucket: bucket, Policy: JSON.stringify(policy) }));
    return bucket;
  }

  async function versionIdOf(response: RawResponse): Promise<string> {
    const versionId = response.headers['x-amz-version-id'];
    assert.equal(typeof versionId, 'string');
    return versionId as string;
  }

  test('lock fields are applied, with Content-MD5, when the caller holds s3:PutObjectRetention and s3:PutObjectLegalHold', async () => {
    const bucket = await lockBucket(['s3:PutObject', 's3:PutObjectRetention', 's3:PutObjectLegalHold']);
    const fields: Fields = [
      ['key', 'locked.txt'], ['x-amz-object-lock-mode', 'GOVERNANCE'], ['x-amz-object-lock-retain-until-date', RETAIN_UNTIL],
      ['x-amz-object-lock-legal-hold', 'ON'], ['Content-MD5', md5('keep me')],
    ];
    const response = await postForm(talus.url, `/${bucket}`, fields, 'keep me');
    assert.equal(response.status, 204, response.body);
    const versionId = await versionIdOf(response);
    const retention = await talus.client.send(new GetObjectRetentionCommand({ Bucket: bucket, Key: 'locked.txt', VersionId: versionId }));
    assert.equal(retention.Retention?.Mode, 'GOVERNANCE');
    assert.equal(retention.Retention?.RetainUntilDate?.toISOString(), RETAIN_UNTIL);
    const hold = await talus.client.send(new GetObjectLegalHoldCommand({ Bucket: bucket, Key: 'locked.txt', VersionId: versionId }));
    assert.equal(hold.LegalHold?.Status, 'ON');
    // A locked version cannot be deleted.
    const deleted = await signedRequest(talus.url, { method: 'DELETE', path: `/${bucket}/locked.txt`, query: { versionId } });
    assert.equal(deleted.status, 403);
  });

  test('each lock field needs its own permission besides s3:PutObject', async () => {
    const bucket = await lockBucket(['s3:PutObject']);
    const retention = await postForm(talus.url, `/${bucket}`, [
      ['key', 'r.txt'], ['x-amz-object-lock-mode', 'COMPLIANCE'], ['x-amz-object-lock-retain-until-date', RETAIN_UNTIL], ['Content-MD5', md5('x')],
    ], 'x');
    assert.equal(retention.status, 403, retention.body);
    assert.equal(errorCode(retention), 'AccessDenied');
    const hold = await postForm(talus.url, `/${bucket}`, [['key', 'h.txt'], ['x-amz-object-lock-legal-hold', 'ON'], ['Content-MD5', md5('x')]], 'x');
    assert.equal(hold.status, 403, hold.body);
    for (const key of ['r.txt', 'h.txt']) assert.equal((await signedRequest(talus.url, { method: 'HEAD', path: `/${bucket}/${key}` })).status, 404, key);
  });

  test('a locked upload needs Content-MD5 or a checksum field; a wrong Content-MD5 is BadDigest; bad lock values are refused', async () => {
    const bucket = await lockBucket(['s3:PutObject', 's3:PutObjectRetention', 's3:PutObjectLegalHold']);
    const unchecked = await postForm(talus.url, `/${bucket}`, [['key', 'a.txt'], ['x-amz-object-lock-legal-hold', 'ON']], 'x');
    assert.equal(unchecked.status, 400, unchecked.body);
    assert.equal(errorCode(unchecked), 'InvalidRequest');
    const wrong = await postForm(talus.url, `/${bucket}`, [['key', 'b.txt'], ['x-amz-object-lock-legal-hold', 'ON'], ['Content-MD5', md5('other')]], 'x');
    assert.equal(errorCode(wrong), 'BadDigest');
    const badMode = await postForm(talus.url, `/${bucket}`, [
      ['key', 'c.txt'], ['x-amz-object-lock-mode', 'FOREVER'], ['x-amz-object-lock-retain-until-date', RETAIN_UNTIL], ['Content-MD5', md5('x')],
    ], 'x');
    assert.equal(errorCode(badMode), 'InvalidArgument');
    const checksum = createHash('sha256').update('x').digest('base64');
    const withChecksum = await postForm(talus.url, `/${bucket}`, [['key', 'd.txt'], ['x-amz-object-lock-legal-hold', 'ON'], ['x-amz-checksum-sha256', checksum]], 'x');
    assert.equal(withChecksum.status, 204, withChecksum.body);
    // The bucket's default retention makes every upload a locked one.
    await talus.client.send(new PutObjectLockConfigurationCommand({
      Bucket: bucket, ObjectLockConfiguration: { ObjectLockEnabled: 'Enabled', Rule: { DefaultRetention: { Mode: 'GOVERNANCE', Days: 1 } } },
    }));
    assert.equal(errorCode(await postForm(talus.url, `/${bucket}`, [['key', 'e.txt']], 'x')), 'InvalidRequest');
    const defaulted = await postForm(talus.url, `/${bucket}`, [['key', 'f.txt'], ['Content-MD5', md5('x')]], 'x');
    assert.equal(defaulted.status, 204, defaulted.body);
    const retention = await talus.client.send(new GetObjectRetentionCommand({ Bucket: bucket, Key: 'f.txt', VersionId: await versionIdOf(defaulted) }));
    assert.equal(retention.Retention?.Mode, 'GOVERNANCE');
  });

  test('a signed form\'s lock fields must be named by its policy, and then apply', async () => {
    const bucket = uniqueBucket('fixpost-signed');
    await talus.client.send(new CreateBucketCommand({ Bucket: bucket, ObjectLockEnabledForBucket: true }));
    const lockFields: Fields = [['x-amz-object-lock-legal-hold', 'ON'], ['Content-MD5', md5('signed')]];
    const unnamed = await postForm(talus.url, `/${bucket}`, [['key', 's.txt'], ...lockFields, ...signedFields([{ bucket }, { key: 's.txt' }, ['starts-with', '$Content-MD5', '']])], 'signed');
    assert.equal(unnamed.status, 403, unnamed.body);
    const conditions = [{ bucket }, { key: 's.txt' }, { 'x-amz-object-lock-legal-hold': 'ON' }, ['starts-with', '$Content-MD5', '']];
    const named = await postForm(talus.url, `/${bucket}`, [['key', 's.txt'], ...lockFields, ...signedFields(conditions)], 'signed');
    assert.equal(named.status, 204, named.body);
    const hold = await talus.client.send(new GetObjectLegalHoldCommand({ Bucket: bucket, Key: 's.txt', VersionId: await versionIdOf(named) }));
    assert.equal(hold.LegalHold?.Status, 'ON');
  });

  test('a refused form is answered with Connection: close and its connection closed long before a large body ends', async () => {
    const bucket = await lockBucket(['s3:PutObject']);
    await talus.client.send(new PutObjectLockConfigurationCommand({
      Bucket: bucket, ObjectLockConfiguration: { ObjectLockEnabled: 'Enabled', Rule: { DefaultRetention: { Mode: 'GOVERNANCE', Days: 1 } } },
    }));
    const url = new URL(talus.url);
    const head = `--${BOUNDARY}\r\nContent-Disposition: form-data; name="key"\r\n\r\nbig\r\n--${BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="f"\r\n\r\n`;
    const declaredBytes = 1024 * 1024 * 1024;
    const socket = connect(Number(url.port), url.hostname);
    let response = '';
    let closed = false;
    socket.on('data', (data: Buffer) => (response += data.toString('latin1')));
    socket.on('close', () => (closed = true));
    socket.on('error', () => undefined);
    socket.write(`POST /${bucket} HTTP/1.1\r\nHost: ${url.host}\r\nContent-Type: multipart/form-data; boundary=${BOUNDARY}\r\nContent-Length: ${head.length + declaredBytes}\r\n\r\n${head}`);
    const block = Buffer.alloc(1024 * 1024, 'a');
    let sent = 0;
    const deadline = Date.now() + 30_000;
    while (!closed && sent < declaredBytes && Date.now() < deadline) {
      if (!socket.write(block)) await new Promise((resume) => socket.once('drain', resume).once('close', resume));
      sent += block.length;
    }
    socket.destroy();
    assert.ok(closed, 'the server closed the connection');
    assert.ok(sent < 256 * 1024 * 1024, `${sent} bytes were sent before the close`);
    assert.match(response, /^HTTP\/1\.1 400 /);
    assert.match(response, /\r\nconnection: close\r\n/i);
    assert.match(response, /<Code>InvalidRequest<\/Code>/);
  });
});
