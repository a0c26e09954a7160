/**
 * Regressions for bug classes other S3 servers shipped (issue 11):
 * - an unsigned-trailer upload with a bad signature (header or query) is
 *   refused, and authorization applies to it (MinIO CVE-2025-31489);
 * - conditional headers never answer before authorization (CVE-2024-36107);
 * - UploadPartCopy judges its source as CopyObject does;
 * - a key whose user claims root's canonical ID, or a key policy wider than
 *   its user's, gains nothing;
 * - keys with `..`, `\`, `%2e%2e` or NUL never reach another bucket;
 * - client-sent forwarding and made-up internal headers are ignored;
 * - captured logs never carry a secret or a signature.
 */
import Database from 'better-sqlite3';
import { SignatureV4 } from '@smithy/signature-v4';
import { Sha256 } from '@aws-crypto/sha256-js';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { request as httpRequest } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, test } from 'node:test';
import { Principals } from '../src/principals/principals.ts';
import { startTalus } from '../src/talus.ts';
import type { Logger } from '../src/util/logger.ts';
import { CONTENT_SHA256, docSigningKey, encode } from './helpers/aws-chunked.ts';
import { clientFor, waitForAuth } from './helpers/principals.ts';
import { errorCode, queryString, send, signRequest, type RawResponse } from './helpers/raw.ts';
import { ACCESS_KEY_ID, SECRET_ACCESS_KEY, startTestTalus, type TestTalus } from './helpers/talus.ts';

interface Credentials {
  accessKeyId: string;
  secretAccessKey: string;
}
const root: Credentials = { accessKeyId: ACCESS_KEY_ID, secretAccessKey: SECRET_ACCESS_KEY };

async function as(url: string, credentials: Credentials | undefined, method: string, path: string, options: { query?: Record<string, string>; headers?: Record<string, string>; body?: string } = {}): Promise<RawResponse> {
  const pathAndQuery = `${path}${queryString(options.query)}`;
  if (credentials === undefined) return send(url, method, pathAndQuery, options.headers ?? {}, options.body);
  const signed = await signRequest(url, { method, path, query: options.query ?? {}, headers: options.headers ?? {}, body: options.body ?? '', credentials });
  return send(url, method, pathAndQuery, signed, options.body);
}

/** An aws-chunked STREAMING-UNSIGNED-PAYLOAD-TRAILER upload, its seed signed with `signingSecret`. */
async function unsignedTrailerUpload(url: string, credentials: Credentials, signingSecret: string, path: string, data: Buffer): Promise<RawResponse> {
  const headers = {
    'content-encoding': 'aws-chunked',
    'x-amz-content-sha256': CONTENT_SHA256['unsigned-trailer'],
    'x-amz-decoded-content-length': String(data.length),
    'x-amz-trailer': 'x-amz-checksum-crc32',
  };
  const signed = await signRequest(url, { method: 'PUT', path, headers, credentials: { accessKeyId: credentials.accessKeyId, secretAccessKey: signingSecret } });
  const body = encode(data, 'unsigned-trailer', 64, [['x-amz-checksum-crc32', 'AAAAAA==']], undefined).body;
  return send(url, 'PUT', path, { ...signed, 'content-length': String(body.length) }, body);
}

describe('authorization regressions', { timeout: 120_000 }, () => {
  let talus: TestTalus;
  let owner: Credentials;
  let other: Credentials;
  let ownerId: string;
  let otherId: string;
  const ownerBucket = `regress-owner-${process.pid}`;
  const otherBucket = `regress-other-${process.pid}`;

  before(async () => {
    talus = await startTestTalus();
    ({ owner, other, ownerId, otherId } = await Principals.withDataDir(talus.dataDir, async (principals) => {
      const made = await principals.addUser('owner');
      const second = await principals.addUser('other');
      return { owner: made.credentials, other: second.credentials, ownerId: made.user.canonicalId, otherId: second.user.canonicalId };
    }));
    for (const credentials of [owner, other]) {
      const client = clientFor(talus.url, credentials);
      assert.equal(await waitForAuth(client, 'accepted'), 'accepted');
      client.destroy();
    }
    assert.equal((await as(talus.url, owner, 'PUT', `/${ownerBucket}`)).status, 200);
    assert.equal((await as(talus.url, owner, 'PUT', `/${ownerBucket}/secret`, { body: 'owner data' })).status, 200);
    assert.equal((await as(talus.url, other, 'PUT', `/${otherBucket}`)).status, 200);
  });
  after(async () => {
    await talus.stop();
  });

  async function ownerObject(key = 'secret'): Promise<string> {
    const response = await as(talus.url, owner, 'GET', `/${ownerBucket}/${key}`);
    return `${response.status}:${response.body}`;
  }

  test('CVE-2025-31489: an unsigned-trailer upload with a wrong signature is refused, in the header or the query', async () => {
    const data = Buffer.from('forged bytes, forged bytes');
    const forged = await unsignedTrailerUpload(talus.url, owner, 'not-the-secret-at-all-0000000000', `/${ownerBucket}/secret`, data);
    assert.equal(forged.status, 403);
    assert.equal(errorCode(forged), 'SignatureDoesNotMatch');
    // Credentials in the query string, the payload announced as an unsigned-trailer stream.
    const url = new URL(talus.url);
    const signer = new SignatureV4({ service: 's3', region: 'us-east-1', credentials: { accessKeyId: owner.accessKeyId, secretAccessKey: 'wrong-wrong-wrong-wrong-wrong-00' }, sha256: Sha256, uriEscapePath: false });
    const presigned = await signer.presign(
      { method: 'PUT', protocol: 'http:', hostname: url.hostname, port: Number(url.port), path: `/${ownerBucket}/secret`, query: {}, headers: { host: url.host, 'X-Amz-Content-Sha256': CONTENT_SHA256['unsigned-trailer'] } },
      { expiresIn: 300 },
    );
    const body = encode(data, 'unsigned-trailer', 64, [['x-amz-checksum-crc32', 'AAAAAA==']], undefined).body;
    const queryForged = await send(talus.url, 'PUT', `/${ownerBucket}/secret${queryString(presigned.query as Record<string, string>)}`, {
      host: url.host, 'content-encoding': 'aws-chunked', 'x-amz-decoded-content-length': String(data.length), 'x-amz-trailer': 'x-amz-checksum-crc32', 'content-length': String(body.length),
    }, body);
    assert.equal(queryForged.status, 403, queryForged.body);
    // A correctly signed unsigned-trailer upload by someone without write access is still refused.
    const stranger = await unsignedTrailerUpload(talus.url, other, other.secretAccessKey, `/${ownerBucket}/secret`, data);
    assert.equal(errorCode(stranger), 'AccessDenied');
    assert.equal(await ownerObject(), '200:owner data');
  });

  test('CVE-2024-36107: conditional headers answer only after authorization (GET, HEAD, copy source)', async () => {
    const head = await as(talus.url, owner, 'HEAD', `/${ownerBucket}/secret`);
    const etag = head.headers['etag'] as string;
    for (const credentials of [undefined, other]) {
      for (const method of ['GET', 'HEAD']) {
        const notModified = await as(talus.url, credentials, method, `/${ownerBucket}/secret`, { headers: { 'if-none-match': etag } });
        assert.equal(notModified.status, 403, `${method} If-None-Match`);
        const failed = await as(talus.url, credentials, method, `/${ownerBucket}/secret`, { headers: { 'if-match': '"0000"' } });
        assert.equal(failed.status, 403, `${method} If-Match`);
        const modified = await as(talus.url, credentials, method, `/${ownerBucket}/secret`, { headers: { 'if-modified-since': 'Sat, 01 Jan 2400 00:00:00 GMT' } });
        assert.equal(modified.status, 403, `${method} If-Modified-Since`);
      }
    }
    // A copy into one's own bucket from a source one may not read: 403, not 412.
    const copy = await as(talus.url, other, 'PUT', `/${otherBucket}/copied`, { headers: { 'x-amz-copy-source': `/${ownerBucket}/secret`, 'x-amz-copy-source-if-match': '"0000"' } });
    assert.equal(errorCode(copy), 'AccessDenied');
    // The owner still gets the conditional answers.
    assert.equal((await as(talus.url, owner, 'GET', `/${ownerBucket}/secret`, { headers: { 'if-none-match': etag } })).status, 304);
  });

  test('a missing key is 404 only to those who may list the bucket', async () => {
    assert.equal(errorCode(await as(talus.url, owner, 'GET', `/${ownerBucket}/nothing-here`)), 'NoSuchKey');
    assert.equal(errorCode(await as(talus.url, other, 'GET', `/${ownerBucket}/nothing-here`)), 'AccessDenied');
    assert.equal(errorCode(await as(talus.url, undefined, 'GET', `/${ownerBucket}/nothing-here`)), 'AccessDenied');
  });

  test('UploadPartCopy judges its source like CopyObject, with the caller\'s rights', async () => {
    const created = await as(talus.url, other, 'POST', `/${otherBucket}/assembled`, { query: { uploads: '' } });
    const uploadId = /<UploadId>([^<]+)<\/UploadId>/.exec(created.body)?.[1] as string;
    const partCopy = () => as(talus.url, other, 'PUT', `/${otherBucket}/assembled`, { query: { partNumber: '1', uploadId }, headers: { 'x-amz-copy-source': `/${ownerBucket}/secret` } });
    const objectCopy = () => as(talus.url, other, 'PUT', `/${otherBucket}/copied`, { headers: { 'x-amz-copy-source': `/${ownerBucket}/secret` } });
    assert.equal(errorCode(await partCopy()), 'AccessDenied');
    assert.equal(errorCode(await objectCopy()), 'AccessDenied');
    const parts = await as(talus.url, other, 'GET', `/${otherBucket}/assembled`, { query: { uploadId } });
    assert.doesNotMatch(parts.body, /<Part>/, 'no part was written');
    // The owner grants read on the object: both copies now work.
    assert.equal((await as(talus.url, owner, 'PUT', `/${ownerBucket}/secret`, { query: { acl: '' }, headers: { 'x-amz-acl': 'public-read' } })).status, 200);
    assert.equal((await partCopy()).status, 200);
    assert.equal((await objectCopy()).status, 200);
    assert.equal((await as(talus.url, owner, 'PUT', `/${ownerBucket}/secret`, { query: { acl: '' }, headers: { 'x-amz-acl': 'private' } })).status, 200);
  });

  test('metadata=true listings show metadata only to the bucket owner (a listing right is not a read right)', async () => {
    const bucket = `regress-meta-${process.pid}`;
    assert.equal((await as(talus.url, owner, 'PUT', `/${bucket}`)).status, 200);
    assert.equal((await as(talus.url, owner, 'PUT', `/${bucket}/doc`, { body: 'x', headers: { 'x-amz-meta-pin': 'owner-only-4711' } })).status, 200);
    const policy = JSON.stringify({ Version: '2012-10-17', Statement: [{ Effect: 'Allow', Principal: { AWS: otherId }, Action: 's3:ListBucket', Resource: `arn:aws:s3:::${bucket}` }] });
    assert.equal((await as(talus.url, owner, 'PUT', `/${bucket}`, { query: { policy: '' }, body: policy })).status, 204);
    const listed = await as(talus.url, other, 'GET', `/${bucket}`, { query: { 'list-type': '2', metadata: 'true' } });
    assert.equal(listed.status, 200, listed.body);
    assert.match(listed.body, /<Key>doc<\/Key>/);
    assert.ok(!listed.body.includes('owner-only-4711') && !listed.body.includes('<UserMetadata>'), listed.body);
    assert.equal((await as(talus.url, other, 'GET', `/${bucket}/doc`)).status, 403);
    const own = await as(talus.url, owner, 'GET', `/${bucket}`, { query: { 'list-type': '2', metadata: 'true' } });
    assert.match(own.body, /owner-only-4711/);
  });

  test('a key policy narrows its user and never widens it', async () => {
    const { narrow, wide } = await Principals.withDataDir(talus.dataDir, async (principals) => {
      await principals.addUser('reader', { policy: 'readonly' });
      return {
        narrow: await principals.addKey({ userName: 'owner', policy: 'readonly' }),
        wide: await principals.addKey({ userName: 'reader', policy: 'readwrite' }),
      };
    });
    // Known to the server once it stops answering InvalidAccessKeyId (a readonly key may not list buckets).
    for (const credentials of [narrow, wide]) {
      for (let attempt = 0; attempt < 60 && errorCode(await as(talus.url, credentials, 'GET', `/${ownerBucket}/secret`)) === 'InvalidAccessKeyId'; attempt++) await sleep(250);
    }
    assert.equal((await as(talus.url, narrow, 'GET', `/${ownerBucket}/secret`)).status, 200, 'the narrowed key reads');
    assert.equal(errorCode(await as(talus.url, narrow, 'PUT', `/${ownerBucket}/secret`, { body: 'overwrite' })), 'AccessDenied');
    assert.equal((await as(talus.url, wide, 'GET', `/${ownerBucket}/secret`)).status, 200, 'a readonly user reads any bucket');
    assert.equal(errorCode(await as(talus.url, wide, 'PUT', `/${ownerBucket}/secret`, { body: 'overwrite' })), 'AccessDenied');
    assert.equal(errorCode(await as(talus.url, wide, 'PUT', `/regress-wide-${process.pid}`)), 'AccessDenied');
    assert.equal(await ownerObject(), '200:owner data');
  });

  test('keys with .., \\, %2e%2e or NUL never leave their bucket', async () => {
    const attempts = [
      `/${otherBucket}/../${ownerBucket}/secret`,
      `/${otherBucket}/..%2F${ownerBucket}%2Fsecret`,
      `/${otherBucket}/%2e%2e/${ownerBucket}/secret`,
      `/${otherBucket}/%2E%2E%2F${ownerBucket}%2Fsecret`,
      `/${otherBucket}/..%5C${ownerBucket}%5Csecret`,
      `/${otherBucket}/x%00/../../${ownerBucket}/secret`,
    ];
    for (const path of attempts) {
      const put = await as(talus.url, other, 'PUT', path, { body: 'escaped' });
      assert.ok(put.status === 200 || (put.status >= 400 && put.status < 500), `${path}: ${put.status}`);
      const get = await as(talus.url, other, 'GET', path);
      assert.ok(get.status !== 200 || get.body === 'escaped', `${path} read something else: ${get.body}`);
      assert.equal(await ownerObject(), '200:owner data', path);
    }
    const listed = await as(talus.url, owner, 'GET', `/${ownerBucket}`);
    assert.deepEqual([...listed.body.matchAll(/<Key>([^<]*)<\/Key>/g)].map((match) => match[1]), ['secret']);
  });

  test('client-sent forwarding and internal-looking headers change nobody\'s rights', async () => {
    const bucket = `regress-ip-${process.pid}`;
    assert.equal((await as(talus.url, owner, 'PUT', `/${bucket}`)).status, 200);
    assert.equal((await as(talus.url, owner, 'PUT', `/${bucket}/open`, { body: 'by ip' })).status, 200);
    const policy = JSON.stringify({ Version: '2012-10-17', Statement: [{ Effect: 'Allow', Principal: '*', Action: 's3:GetObject', Resource: `arn:aws:s3:::${bucket}/*`, Condition: { IpAddress: { 'aws:SourceIp': '10.9.0.0/16' } } }] });
    assert.equal((await as(talus.url, owner, 'PUT', `/${bucket}`, { query: { policy: '' }, body: policy })).status, 204);
    const spoofed = {
      'x-forwarded-for': '10.9.1.1', 'x-real-ip': '10.9.1.1', forwarded: 'for=10.9.1.1',
      'x-talus-principal': 'root', 'x-talus-owner': ownerId, 'x-amz-meta-owner': ownerId, 'x-amz-security-token': 'root',
    };
    assert.equal(errorCode(await as(talus.url, undefined, 'GET', `/${bucket}/open`, { headers: spoofed })), 'AccessDenied');
    assert.equal(errorCode(await as(talus.url, other, 'GET', `/${bucket}/open`, { headers: spoofed })), 'AccessDenied');
    assert.equal(errorCode(await as(talus.url, other, 'PUT', `/${ownerBucket}/secret`, { headers: spoofed, body: 'x' })), 'AccessDenied');
  });

  test('a user carrying root\'s canonical ID is refused everything', async () => {
    const { credentials, rootId } = await Principals.withDataDir(talus.dataDir, async (principals) => {
      const made = await principals.addUser('impostor');
      return { credentials: made.credentials, rootId: await principals.rootCanonicalId() };
    });
    const client = clientFor(talus.url, credentials);
    assert.equal(await waitForAuth(client, 'accepted'), 'accepted');
    const ownBucket = `regress-impostor-${process.pid}`;
    assert.equal((await as(talus.url, credentials, 'PUT', `/${ownBucket}`)).status, 200);
    assert.equal((await as(talus.url, credentials, 'PUT', `/${ownBucket}/mine`, { body: 'mine' })).status, 200);
    // The store is edited behind the CLI's back, as an attacker with write access to meta.db could.
    const db = new Database(join(talus.dataDir, 'meta.db'));
    db.transaction(() => {
      db.prepare('UPDATE access_keys SET user_id = ? WHERE access_key_id = ?').run(rootId, credentials.accessKeyId);
      db.prepare("UPDATE users SET canonical_id = ? WHERE name = 'impostor'").run(rootId);
    })();
    db.close();
    const deadline = Date.now() + 15_000;
    let outcome = '';
    while (Date.now() < deadline) {
      const response = await as(talus.url, credentials, 'GET', `/${ownBucket}/mine`);
      outcome = `${response.status}:${errorCode(response) ?? ''}`;
      if (outcome !== '200:') break;
      await sleep(250);
    }
    assert.equal(outcome, '403:AccessDenied', 'once the key claims root\'s ID, even its own bucket is refused');
    assert.equal(errorCode(await as(talus.url, credentials, 'GET', `/${ownerBucket}/secret`)), 'AccessDenied');
    assert.notEqual((await as(talus.url, credentials, 'GET', '/')).status, 200);
    assert.notEqual((await as(talus.url, credentials, 'PUT', `/${ownerBucket}/secret`, { body: 'root now' })).status, 200);
    client.destroy();
    assert.equal(await ownerObject(), '200:owner data');
  });
});

describe('logs', { timeout: 60_000 }, () => {
  test('captured logs never contain a secret or a signature', async () => {
    const lines: string[] = [];
    const capture = (level: string) => (message: string, fields?: Record<string, unknown>) => { lines.push(JSON.stringify({ level, message, ...fields })); };
    const logger: Logger = { info: capture('info'), warn: capture('warn'), error: capture('error') };
    const dataDir = await mkdtemp(join(tmpdir(), 'talus-authz-logs-'));
    const talus = await startTalus({ dataDir, port: 0, address: '127.0.0.1', region: 'us-east-1', rootAccessKeyId: ACCESS_KEY_ID, rootSecretAccessKey: SECRET_ACCESS_KEY, logger });
    try {
      const user = await Principals.withDataDir(dataDir, (principals) => principals.addUser('logged'));
      const credentials = user.credentials;
      assert.equal(await waitForAuth(clientFor(talus.url, credentials), 'accepted'), 'accepted');
      const bucket = 'logs-bucket';
      assert.equal((await as(talus.url, credentials, 'PUT', `/${bucket}`)).status, 200);
      const signatures: string[] = [];
      // Refused, malformed and aborted requests: the kinds that get logged.
      for (const secret of [credentials.secretAccessKey, 'x'.repeat(40)]) {
        const signed = await signRequest(talus.url, { method: 'PUT', path: `/${bucket}/k`, headers: { 'x-amz-decoded-content-length': '100000', 'content-encoding': 'aws-chunked', 'x-amz-content-sha256': CONTENT_SHA256.signed }, credentials: { accessKeyId: credentials.accessKeyId, secretAccessKey: secret } });
        signatures.push(/Signature=([0-9a-f]{64})/.exec(signed['authorization'] ?? '')?.[1] as string);
        const amzDate = signed['x-amz-date'] as string;
        const date = amzDate.slice(0, 8);
        const body = encode(Buffer.alloc(100_000, 1), 'signed', 8192, [], { key: docSigningKey(secret, date, 'us-east-1'), amzDate, scope: `${date}/us-east-1/s3/aws4_request`, seed: signatures.at(-1) as string }).body;
        await new Promise<void>((resolve) => {
          const url = new URL(talus.url);
          const outgoing = httpRequest({ host: url.hostname, port: url.port, method: 'PUT', path: `/${bucket}/k`, headers: { ...signed, 'content-length': String(body.length) } });
          outgoing.on('error', () => resolve());
          outgoing.on('response', (response) => { response.resume(); response.on('end', resolve); });
          // Half the body, then the connection drops: an aborted upload.
          outgoing.write(body.subarray(0, body.length / 2), () => setTimeout(() => { outgoing.destroy(); resolve(); }, 100));
        });
      }
      await as(talus.url, { accessKeyId: credentials.accessKeyId, secretAccessKey: 'y'.repeat(40) }, 'GET', `/${bucket}`);
      await as(talus.url, credentials, 'PUT', `/${bucket}`, { query: { policy: '' }, body: '{"broken": ' });
      await sleep(300);
      const text = lines.join('\n');
      for (const secret of [credentials.secretAccessKey, SECRET_ACCESS_KEY, ...signatures]) assert.ok(!text.includes(secret), `a log line carries ${secret.slice(0, 6)}…`);
    } finally {
      await talus.close();
      await rm(dataDir, { recursive: true, force: true });
    }
  });
});
