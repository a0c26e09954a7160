/**
 * Bad input gets a precise S3 error and changes nothing. Raw HTTP requests,
 * signed with the SDK's own signer where a valid signature is needed, send
 * what a well-behaved SDK never would: malformed XML, wrong and expired
 * signatures, wrong payload hashes, oversized headers, truncated bodies.
 * After each, the key is absent and the server still answers.
 */
import { CreateBucketCommand, DeleteObjectCommand, GetObjectCommand, HeadObjectCommand, ListBucketsCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { connect } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { errorCode, send, signRequest, signedRequest } from './helpers/raw.ts';
import { startTestTalus, uniqueBucket, type TestTalus } from './helpers/talus.ts';

describe('bad input', () => {
  let talus: TestTalus;
  let bucket: string;
  before(async () => {
    talus = await startTestTalus();
    bucket = uniqueBucket('bad');
    await talus.client.send(new CreateBucketCommand({ Bucket: bucket }));
  });
  after(async () => {
    await talus.stop();
  });

  async function assertAbsent(key: string): Promise<void> {
    await assert.rejects(talus.client.send(new HeadObjectCommand({ Bucket: bucket, Key: key })), (error: Error & { $metadata?: { httpStatusCode?: number } }) => {
      assert.equal(error.$metadata?.httpStatusCode, 404, `${key} must not exist`);
      return true;
    });
  }

  async function assertHealthy(): Promise<void> {
    const listed = await talus.client.send(new ListBucketsCommand({}));
    assert.ok(listed.Buckets?.some((entry) => entry.Name === bucket));
  }

  test('malformed XML bodies answer MalformedXML', async () => {
    const cases: [string, Record<string, string>, string][] = [
      ['POST', { delete: '' }, '<Delete><Object><Key>a</Key></Object>'],
      ['POST', { delete: '' }, 'not xml at all'],
      ['POST', { delete: '' }, '<Delete></Delete>'],
      ['PUT', { versioning: '' }, '<VersioningConfiguration><Status>Maybe</Status></VersioningConfiguration>'],
      ['PUT', { tagging: '' }, '<Tagging><TagSet><Tag><Key>a</Key></Tag'],
    ];
    for (const [method, query, body] of cases) {
      const headers = { 'content-md5': createHash('md5').update(body).digest('base64') };
      const response = await signedRequest(talus.url, { method, path: `/${bucket}`, query, headers, body });
      assert.equal(response.status, 400, `${method} ${JSON.stringify(query)} ${body}`);
      assert.equal(errorCode(response), 'MalformedXML', body);
      assert.match(response.body, /<RequestId>[0-9A-F]+<\/RequestId>/);
      assert.match(response.body, new RegExp(`<Resource>/${bucket}</Resource>`));
    }
    await assertHealthy();
  });

  test('a document that is not UTF-8 is refused (MalformedXML, MalformedPolicy), never stored with replacement characters', async () => {
    // "café" in Latin-1: the é is the lone byte 0xE9, not valid UTF-8.
    const latin1 = (text: string) => Buffer.from(text, 'latin1');
    const cases: [Record<string, string>, Buffer, string][] = [
      [{ tagging: '' }, latin1('<Tagging><TagSet><Tag><Key>caf\u00e9</Key><Value>v</Value></Tag></TagSet></Tagging>'), 'MalformedXML'],
      [{ policy: '' }, latin1(`{"Version":"2012-10-17","Statement":[{"Sid":"caf\u00e9","Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::${bucket}/*"}]}`), 'MalformedPolicy'],
    ];
    for (const [query, body, code] of cases) {
      const headers = { 'content-md5': createHash('md5').update(body).digest('base64') };
      const response = await signedRequest(talus.url, { method: 'PUT', path: `/${bucket}`, query, headers, body });
      assert.equal(response.status, 400, JSON.stringify(query));
      assert.equal(errorCode(response), code);
    }
    // Nothing was stored.
    assert.equal(errorCode(await signedRequest(talus.url, { method: 'GET', path: `/${bucket}`, query: { tagging: '' } })), 'NoSuchTagSet');
    assert.equal(errorCode(await signedRequest(talus.url, { method: 'GET', path: `/${bucket}`, query: { policy: '' } })), 'NoSuchBucketPolicy');
  });

  test('a wrong secret answers SignatureDoesNotMatch; an unknown key InvalidAccessKeyId; anonymous AccessDenied', async () => {
    const wrongSecret = await signedRequest(talus.url, {
      method: 'PUT', path: `/${bucket}/sig`, body: 'x', credentials: { accessKeyId: 'TALUSTESTKEY', secretAccessKey: 'wrong' },
    });
    assert.equal(wrongSecret.status, 403);
    assert.equal(errorCode(wrongSecret), 'SignatureDoesNotMatch');
    const unknown = await signedRequest(talus.url, { method: 'PUT', path: `/${bucket}/sig`, body: 'x', credentials: { accessKeyId: 'NOSUCHKEY', secretAccessKey: 'x' } });
    assert.equal(unknown.status, 403);
    assert.equal(errorCode(unknown), 'InvalidAccessKeyId');
    const anonymous = await send(talus.url, 'PUT', `/${bucket}/sig`, { 'content-length': '1' }, 'x');
    assert.equal(anonymous.status, 403);
    assert.equal(errorCode(anonymous), 'AccessDenied');
    await assertAbsent('sig');
  });

  test('a tampered request (path changed after signing) answers SignatureDoesNotMatch', async () => {
    const headers = await signRequest(talus.url, { method: 'PUT', path: `/${bucket}/signed-key`, body: 'x' });
    const response = await send(talus.url, 'PUT', `/${bucket}/other-key`, headers, 'x');
    assert.equal(errorCode(response), 'SignatureDoesNotMatch');
    await assertAbsent('other-key');
    await assertAbsent('signed-key');
  });

  test('a request signed 20 minutes ago answers RequestTimeTooSkewed', async () => {
    const response = await signedRequest(talus.url, { method: 'PUT', path: `/${bucket}/skew`, body: 'x', signingDate: new Date(Date.now() - 20 * 60_000) });
    assert.equal(response.status, 403);
    assert.equal(errorCode(response), 'RequestTimeTooSkewed');
    await assertAbsent('skew');
  });

  test('a body that does not match the signed payload hash answers XAmzContentSHA256Mismatch', async () => {
    const headers = await signRequest(talus.url, { method: 'PUT', path: `/${bucket}/hash`, body: 'the signed body' });
    const response = await send(talus.url, 'PUT', `/${bucket}/hash`, { ...headers, 'content-length': '15' }, 'another body!!!');
    assert.equal(response.status, 400);
    assert.equal(errorCode(response), 'XAmzContentSHA256Mismatch');
    await assertAbsent('hash');
    await assertHealthy();
  });

  test('an empty body signed as a non-empty one answers XAmzContentSHA256Mismatch', async () => {
    const headers = await signRequest(talus.url, { method: 'PUT', path: `/${bucket}/empty-hash`, body: 'the signed body' });
    const response = await send(talus.url, 'PUT', `/${bucket}/empty-hash`, { ...headers, 'content-length': '0' }, '');
    assert.equal(response.status, 400);
    assert.equal(errorCode(response), 'XAmzContentSHA256Mismatch');
    await assertAbsent('empty-hash');
    await assertHealthy();
  });

  test('oversized headers answer 400 RequestHeaderSectionTooLarge', async () => {
    const headers = await signRequest(talus.url, { method: 'GET', path: `/${bucket}/huge`, headers: { 'x-amz-meta-huge': 'h'.repeat(20_000) } });
    const response = await send(talus.url, 'GET', `/${bucket}/huge`, headers);
    assert.equal(response.status, 400);
    assert.equal(errorCode(response), 'RequestHeaderSectionTooLarge');
    await assertHealthy();
  });

  test('a truncated body (client hangs up early) stores nothing', async () => {
    const body = Buffer.alloc(100_000, 7);
    const headers = await signRequest(talus.url, { method: 'PUT', path: `/${bucket}/truncated`, body, unsignedPayload: true });
    const url = new URL(talus.url);
    await new Promise<void>((resolve) => {
      const socket = connect(Number(url.port), url.hostname, () => {
        const head = Object.entries({ ...headers, 'content-length': String(body.length) }).map(([name, value]) => `${name}: ${value}`).join('\r\n');
        socket.write(`PUT /${bucket}/truncated HTTP/1.1\r\n${head}\r\n\r\n`);
        socket.write(body.subarray(0, 40_000), () => setTimeout(() => socket.destroy(), 100));
      });
      socket.on('close', () => resolve());
      socket.on('error', () => resolve());
    });
    await new Promise((resolve) => setTimeout(resolve, 200));
    await assertAbsent('truncated');
    await assertHealthy();
  });

  test('a Content-Length larger than 5 GiB is refused before any byte is stored', async () => {
    const headers = await signRequest(talus.url, { method: 'PUT', path: `/${bucket}/too-big`, unsignedPayload: true, headers: { 'content-length': String(6 * 1024 ** 3) } });
    const url = new URL(talus.url);
    const response = await new Promise<string>((resolve) => {
      const socket = connect(Number(url.port), url.hostname, () => {
        const head = Object.entries(headers).map(([name, value]) => `${name}: ${value}`).join('\r\n');
        socket.write(`PUT /${bucket}/too-big HTTP/1.1\r\n${head}\r\n\r\n`);
      });
      let text = '';
      socket.on('data', (chunk) => {
        text += chunk.toString();
        if (text.includes('</Error>')) socket.destroy();
      });
      socket.on('close', () => resolve(text));
      socket.on('error', () => resolve(text));
    });
    assert.match(response, /^HTTP\/1\.1 400/);
    assert.match(response, /<Code>EntityTooLarge<\/Code>/);
    await assertAbsent('too-big');
  });

  test('every response carries x-amz-request-id; HEAD errors have no body', async () => {
    const head = await signedRequest(talus.url, { method: 'HEAD', path: `/${bucket}/no-such-key` });
    assert.equal(head.status, 404);
    assert.equal(head.body, '');
    assert.match(String(head.headers['x-amz-request-id']), /^[0-9A-F]{16}$/);
    const get = await signedRequest(talus.url, { method: 'GET', path: `/${bucket}/no-such-key` });
    assert.equal(errorCode(get), 'NoSuchKey');
    assert.match(get.body, new RegExp(`<RequestId>${String(get.headers['x-amz-request-id'])}</RequestId>`));
    assert.match(get.body, /<Message>[^<]+<\/Message>/);
    const ok = await signedRequest(talus.url, { method: 'GET', path: '/' });
    assert.equal(ok.status, 200);
    assert.match(String(ok.headers['x-amz-request-id']), /^[0-9A-F]{16}$/);
  });

  test('a response-* override that is not a valid header value is InvalidArgument and leaks no read lease', async () => {
    // Larger than INLINE_BYTES_MAX, so the object lives in a blob that a GET leases.
    await talus.client.send(new PutObjectCommand({ Bucket: bucket, Key: 'override-leak', Body: Buffer.alloc(64 * 1024, 1) }));
    const response = await signedRequest(talus.url, { method: 'GET', path: `/${bucket}/override-leak`, query: { 'response-content-type': 'text/plain\n' } });
    assert.equal(response.status, 400);
    assert.equal(errorCode(response), 'InvalidArgument');
    assert.equal(response.headers['etag'], undefined, 'no object headers on the error');
    // The object's blob must be purgeable once deleted: a leaked lease would keep it.
    await talus.client.send(new DeleteObjectCommand({ Bucket: bucket, Key: 'override-leak' }));
    assert.ok((await talus.engine.purgeNow(Date.now() + 60_000)) >= 1);
  });

  test('a body the operation ignores closes the connection instead of stalling the next request', async () => {
    const body = Buffer.alloc(256 * 1024, 1);
    const headers = await signRequest(talus.url, { method: 'DELETE', path: `/${bucket}/ignored-body`, unsignedPayload: true, headers: { 'content-length': String(body.length) } });
    const url = new URL(talus.url);
    const started = Date.now();
    const text = await new Promise<string>((resolve) => {
      const socket = connect(Number(url.port), url.hostname, () => {
        const head = Object.entries(headers).map(([name, value]) => `${name}: ${value}`).join('\r\n');
        socket.write(`DELETE /${bucket}/ignored-body HTTP/1.1\r\n${head}\r\n\r\n`);
        socket.write(body);
      });
      let received = '';
      socket.on('data', (chunk) => (received += chunk.toString('latin1')));
      socket.on('close', () => resolve(received));
      socket.on('error', () => resolve(received));
    });
    assert.match(text, /^HTTP\/1\.1 204/);
    assert.match(text, /connection: close/i);
    assert.ok(Date.now() - started < 10_000, 'the server closed the connection promptly');
  });

  test('unsupported operations answer 501 NotImplemented, never a wrong success', async () => {
    for (const query of [{ logging: '' }, { website: '' }, { replication: '' }, { notification: '' }] as Record<string, string>[]) {
      const response = await signedRequest(talus.url, { method: 'GET', path: `/${bucket}`, query });
      assert.equal(response.status, 501, JSON.stringify(query));
      assert.equal(errorCode(response), 'NotImplemented');
    }
  });

  test('invalid range, part number and max-keys values answer precise errors', async () => {
    await talus.client.send(new PutObjectCommand({ Bucket: bucket, Key: 'small', Body: 'abc' }));
    await assert.rejects(talus.client.send(new GetObjectCommand({ Bucket: bucket, Key: 'small', Range: 'bytes=5-9' })), { name: 'InvalidRange' });
    const partNumber = await signedRequest(talus.url, { method: 'GET', path: `/${bucket}/small`, query: { partNumber: '0' } });
    assert.equal(errorCode(partNumber), 'InvalidArgument');
    const maxKeys = await signedRequest(talus.url, { method: 'GET', path: `/${bucket}`, query: { 'list-type': '2', 'max-keys': 'lots' } });
    assert.equal(errorCode(maxKeys), 'InvalidArgument');
    const badToken = await signedRequest(talus.url, { method: 'GET', path: `/${bucket}`, query: { 'list-type': '2', 'continuation-token': '!!' } });
    assert.equal(errorCode(badToken), 'InvalidArgument');
  });
});
