/**
 * POST Object (issue 12): browser-style multipart/form-data uploads built by
 * hand, with a SigV4 POST policy signed here from first principles; then every
 * condition violated once (nothing is stored each time); ${filename};
 * success_action_status and success_action_redirect; anonymous forms with and
 * without a bucket policy; metadata, tagging and ACL fields; a large file
 * streamed through.
 */
import { GetObjectCommand, GetObjectTaggingCommand, HeadObjectCommand, PutBucketPolicyCommand } from '@aws-sdk/client-s3';
import assert from 'node:assert/strict';
import { createHash, createHmac } from 'node:crypto';
import { request as httpRequest } from 'node:http';
import { after, before, describe, test } from 'node:test';
import { Principals } from '../src/principals/principals.ts';
import { clientFor, waitForAuth } from './helpers/principals.ts';
import { errorCode, send, signedRequest, type RawResponse } from './helpers/raw.ts';
import { ACCESS_KEY_ID, SECRET_ACCESS_KEY, startTestTalus, uniqueBucket, type TestTalus } from './helpers/talus.ts';

interface Credentials {
  accessKeyId: string;
  secretAccessKey: string;
}
const ROOT: Credentials = { accessKeyId: ACCESS_KEY_ID, secretAccessKey: SECRET_ACCESS_KEY };
type Fields = [string, string][];

/** The SigV4 fields of a form: the policy (with the conditions naming them added) and its signature. */
function signedFields(policy: { expiration: string; conditions: unknown[] }, credentials: Credentials = ROOT, now = new Date()): Fields {
  const amzDate = now.toISOString().replace(/[-:]/g, '').replace(/\.\d{3}/, '');
  const scopeDate = amzDate.slice(0, 8);
  const credential = `${credentials.accessKeyId}/${scopeDate}/us-east-1/s3/aws4_request`;
  const conditions = [...policy.conditions, { 'x-amz-algorithm': 'AWS4-HMAC-SHA256' }, { 'x-amz-credential': credential }, { 'x-amz-date': amzDate }];
  const encoded = Buffer.from(JSON.stringify({ expiration: policy.expiration, conditions })).toString('base64');
  let key: Buffer | string = `AWS4${credentials.secretAccessKey}`;
  for (const part of [scopeDate, 'us-east-1', 's3', 'aws4_request']) key = createHmac('sha256', key).update(part).digest();
  const signature = createHmac('sha256', key).update(encoded).digest('hex');
  return [['x-amz-algorithm', 'AWS4-HMAC-SHA256'], ['x-amz-credential', credential], ['x-amz-date', amzDate], ['policy', encoded], ['x-amz-signature', signature]];
}

function inOneHour(): string {
  return new Date(Date.now() + 3_600_000).toISOString();
}

const BOUNDARY = '----TalusFormBoundary7MA4YWxkTrZu0gW';

function fieldPart(name: string, value: string): Buffer {
  return Buffer.from(`--${BOUNDARY}\r\nContent-Disposition: form-data; name="${name}"\r\n\r\n${value}\r\n`);
}
function fileHead(filename: string, contentType = 'application/octet-stream'): Buffer {
  return Buffer.from(`--${BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="${filename}"\r\nContent-Type: ${contentType}\r\n\r\n`);
}

/** POSTs a form: fields, then the file (bytes, or `sizeBytes` generated as it is sent), then fields after it. */
function postForm(url: string, path: string, fields: Fields, file: { filename?: string; content?: Buffer | string; sizeBytes?: number }, after: Fields = []): Promise<RawResponse> {
  const head = Buffer.concat([...fields.map(([name, value]) => fieldPart(name, value)), fileHead(file.filename ?? 'upload.bin')]);
  const content = file.content === undefined ? undefined : Buffer.from(file.content);
  const fileBytes = content?.length ?? file.sizeBytes ?? 0;
  const tail = Buffer.concat([Buffer.from('\r\n'), ...after.map(([name, value]) => fieldPart(name, value)), Buffer.from(`--${BOUNDARY}--\r\n`)]);
  const target = new URL(url);
  return new Promise((resolve, reject) => {
    const outgoing = httpRequest(
      {
        host: target.hostname,
        port: target.port,
        method: 'POST',
        path,
        agent: false,
        headers: { 'content-type': `multipart/form-data; boundary=${BOUNDARY}`, 'content-length': String(head.length + fileBytes + tail.length) },
      },
      (response) => {
        const chunks: Buffer[] = [];
        response.on('data', (chunk: Buffer) => chunks.push(chunk));
        response.on('end', () => resolve({ status: response.statusCode ?? 0, headers: response.headers, body: Buffer.concat(chunks).toString('utf8') }));
      },
    );
    // The server may answer (and close) before a refused file is all sent.
    outgoing.on('error', (error: NodeJS.ErrnoException) => (error.code === 'EPIPE' || error.code === 'ECONNRESET' ? undefined : reject(error)));
    void (async () => {
      outgoing.write(head);
      if (content !== undefined) outgoing.write(content);
      else {
        const block = Buffer.alloc(1024 * 1024, 'talus ');
        for (let sent = 0; sent < fileBytes; sent += block.length) {
          if (!outgoing.write(block.subarray(0, Math.min(block.length, fileBytes - sent)))) await new Promise((drained) => outgoing.once('drain', drained));
          if (outgoing.destroyed) return;
        }
      }
      outgoing.end(tail);
    })();
  });
}

describe('POST Object', { timeout: 180_000 }, () => {
  let talus: TestTalus;
  let other: Credentials;
  const bucket = uniqueBucket('post');
  const elsewhere = uniqueBucket('post-other');

  function basePolicy(extra: unknown[] = [], target = bucket): { expiration: string; conditions: unknown[] } {
    return { expiration: inOneHour(), conditions: [{ bucket: target }, ['starts-with', '$key', 'uploads/'], ['starts-with', '$Content-Type', 'text/'], ['content-length-range', 1, 1024], ...extra] };
  }

  async function exists(key: string, name = bucket): Promise<boolean> {
    const response = await signedRequest(talus.url, { method: 'HEAD', path: `/${name}/${key}` });
    return response.status === 200;
  }

  async function body(key: string): Promise<string> {
    return (await talus.client.send(new GetObjectCommand({ Bucket: bucket, Key: key }))).Body!.transformToString();
  }

  before(async () => {
    talus = await startTestTalus();
    other = await Principals.withDataDir(talus.dataDir, async (principals) => (await principals.addUser('post-other')).credentials);
    const otherClient = clientFor(talus.url, other);
    assert.equal(await waitForAuth(otherClient, 'accepted'), 'accepted');
    otherClient.destroy();
    for (const name of [bucket, elsewhere]) assert.equal((await signedRequest(talus.url, { method: 'PUT', path: `/${name}` })).status, 200);
  });
  after(async () => {
    await talus.stop();
  });

  test('a browser-style form with a correct policy stores the file with its metadata, tagging and ACL', async () => {
    const policy = basePolicy([{ acl: 'public-read' }, ['starts-with', '$x-amz-meta-note', ''], ['eq', '$tagging', '<Tagging><TagSet><Tag><Key>k</Key><Value>v</Value></Tag></TagSet></Tagging>'], ['starts-with', '$Cache-Control', '']]);
    const fields: Fields = [
      ['key', 'uploads/first.txt'],
      ['Content-Type', 'text/plain'],
      ['acl', 'public-read'],
      ['x-amz-meta-note', 'from a form'],
      ['tagging', '<Tagging><TagSet><Tag><Key>k</Key><Value>v</Value></Tag></TagSet></Tagging>'],
      ['Cache-Control', 'max-age=60'],
      ...signedFields(policy),
    ];
    const response = await postForm(talus.url, `/${bucket}`, fields, { content: 'hello from the form' }, [['x-amz-meta-late', 'ignored']]);
    assert.equal(response.status, 204, response.body);
    assert.match(String(response.headers['etag']), /^"[0-9a-f]{32}"$/);
    const head = await talus.client.send(new HeadObjectCommand({ Bucket: bucket, Key: 'uploads/first.txt' }));
    assert.equal(head.ContentType, 'text/plain');
    assert.equal(head.CacheControl, 'max-age=60');
    assert.deepEqual(head.Metadata, { note: 'from a form' });
    assert.equal(await body('uploads/first.txt'), 'hello from the form');
    const tagging = await talus.client.send(new GetObjectTaggingCommand({ Bucket: bucket, Key: 'uploads/first.txt' }));
    assert.deepEqual(tagging.TagSet, [{ Key: 'k', Value: 'v' }]);
    // public-read: anyone may read it.
    const anonymous = await send(talus.url, 'GET', `/${bucket}/uploads/first.txt`, {});
    assert.equal(anonymous.status, 200);
    assert.equal(anonymous.body, 'hello from the form');
  });

  test('every violated condition refuses the upload and stores nothing', async () => {
    const good = (key: string): Fields => [['key', key], ['Content-Type', 'text/plain']];
    const cases: { what: string; path?: string; fields: Fields; content?: string; status: number; code: string }[] = [
      { what: 'expired', fields: [...good('uploads/expired'), ...signedFields({ ...basePolicy(), expiration: new Date(Date.now() - 1000).toISOString() })], status: 403, code: 'AccessDenied' },
      {
        what: 'wrong signature',
        fields: [...good('uploads/forged'), ...signedFields(basePolicy(), { accessKeyId: ACCESS_KEY_ID, secretAccessKey: 'not-the-secret-not-the-secret-00' })],
        status: 403,
        code: 'SignatureDoesNotMatch',
      },
      { what: 'eq', fields: [...good('uploads/eq'), ['acl', 'public-read'], ...signedFields(basePolicy([['eq', '$acl', 'private']]))], status: 403, code: 'AccessDenied' },
      { what: 'starts-with', fields: [['key', 'elsewhere/x'], ['Content-Type', 'text/plain'], ...signedFields(basePolicy())], status: 403, code: 'AccessDenied' },
      { what: 'starts-with on a Content-Type list', fields: [['key', 'uploads/types'], ['Content-Type', 'text/plain, image/png'], ...signedFields(basePolicy())], status: 403, code: 'AccessDenied' },
      { what: 'too large', fields: [...good('uploads/large'), ...signedFields(basePolicy())], content: 'x'.repeat(1025), status: 400, code: 'EntityTooLarge' },
      { what: 'too small', fields: [...good('uploads/small'), ...signedFields(basePolicy())], content: '', status: 400, code: 'EntityTooSmall' },
      { what: 'extra field', fields: [...good('uploads/extra'), ['x-amz-meta-sneaky', 'yes'], ...signedFields(basePolicy())], status: 403, code: 'AccessDenied' },
      { what: 'policy for another bucket', path: `/${elsewhere}`, fields: [...good('uploads/moved'), ...signedFields(basePolicy())], status: 403, code: 'AccessDenied' },
      { what: 'bucket field naming another bucket', fields: [...good('uploads/field'), ['bucket', elsewhere], ...signedFields(basePolicy([], elsewhere))], status: 403, code: 'AccessDenied' },
      { what: 'no signature', fields: [...good('uploads/unsigned'), ...signedFields(basePolicy()).filter(([name]) => name !== 'x-amz-signature')], status: 400, code: 'InvalidArgument' },
      { what: 'malformed expiration', fields: [...good('uploads/date'), ...signedFields({ ...basePolicy(), expiration: '2030-01-01 00:00:00' })], status: 400, code: 'InvalidPolicyDocument' },
      { what: 'no key', fields: [['Content-Type', 'text/plain'], ...signedFields(basePolicy())], status: 400, code: 'InvalidArgument' },
    ];
    for (const { what, path, fields, content, status, code } of cases) {
      const response = await postForm(talus.url, path ?? `/${bucket}`, fields, { content: content ?? 'data' });
      assert.equal(response.status, status, `${what}: ${response.body}`);
      assert.equal(errorCode(response), code, what);
      const key = fields.find(([name]) => name === 'key')?.[1];
      if (key !== undefined) {
        assert.equal(await exists(key), false, what);
        assert.equal(await exists(key, elsewhere), false, what);
      }
    }
    const extra = await postForm(talus.url, `/${bucket}`, [['key', 'uploads/x'], ['Content-Type', 'text/plain'], ['x-amz-meta-sneaky', 'y'], ...signedFields(basePolicy())], { content: 'data' });
    assert.match(extra.body, /Extra input fields: x-amz-meta-sneaky/);
  });

  test('a form cut short, or not multipart at all, is MalformedPOSTRequest and stores nothing', async () => {
    const fields: Fields = [['key', 'uploads/cut'], ['Content-Type', 'text/plain'], ...signedFields(basePolicy())];
    const cut = Buffer.concat([...fields.map(([name, value]) => fieldPart(name, value)), fileHead('cut.txt'), Buffer.from('no closing boundary')]);
    const headers = { 'content-type': `multipart/form-data; boundary=${BOUNDARY}`, 'content-length': String(cut.length) };
    const response = await send(talus.url, 'POST', `/${bucket}`, headers, cut);
    assert.equal(response.status, 400, response.body);
    assert.equal(errorCode(response), 'MalformedPOSTRequest');
    assert.equal(await exists('uploads/cut'), false);
    const noBoundary = await send(talus.url, 'POST', `/${bucket}`, { 'content-type': 'multipart/form-data', 'content-length': '4' }, 'oops');
    assert.equal(errorCode(noBoundary), 'MalformedPOSTRequest');
    const noFile = Buffer.concat([fieldPart('key', 'uploads/nofile'), Buffer.from(`--${BOUNDARY}--\r\n`)]);
    const withoutFile = await send(talus.url, 'POST', `/${bucket}`, { 'content-type': `multipart/form-data; boundary=${BOUNDARY}`, 'content-length': String(noFile.length) }, noFile);
    assert.equal(withoutFile.status, 400);
    assert.equal(errorCode(withoutFile), 'InvalidArgument');
  });

  test('${filename}, success_action_status and success_action_redirect', async () => {
    const policy = basePolicy([['starts-with', '$success_action_status', ''], ['starts-with', '$success_action_redirect', '']]);
    const named = await postForm(talus.url, `/${bucket}`, [['key', 'uploads/${filename}'], ['Content-Type', 'text/csv'], ['success_action_status', '201'], ...signedFields(policy)], { filename: 'report.csv', content: 'a,b' });
    assert.equal(named.status, 201, named.body);
    assert.match(named.body, /<PostResponse><Location>[^<]+\/uploads\/report\.csv<\/Location><Bucket>[^<]+<\/Bucket><Key>uploads\/report\.csv<\/Key><ETag>&quot;[0-9a-f]{32}&quot;<\/ETag><\/PostResponse>/);
    assert.equal(await body('uploads/report.csv'), 'a,b');
    const ok = await postForm(talus.url, `/${bucket}`, [['key', 'uploads/ok'], ['Content-Type', 'text/plain'], ['success_action_status', '200'], ...signedFields(policy)], { content: 'ok' });
    assert.equal(ok.status, 200);
    const other = await postForm(talus.url, `/${bucket}`, [['key', 'uploads/404'], ['Content-Type', 'text/plain'], ['success_action_status', '404'], ...signedFields(policy)], { content: 'x' });
    assert.equal(other.status, 204);
    const redirected = await postForm(talus.url, `/${bucket}`, [['key', 'uploads/r'], ['Content-Type', 'text/plain'], ['success_action_redirect', 'https://app.example/done?from=form'], ...signedFields(policy)], { content: 'r' });
    assert.equal(redirected.status, 303);
    const etag = (await talus.client.send(new HeadObjectCommand({ Bucket: bucket, Key: 'uploads/r' }))).ETag!;
    assert.equal(redirected.headers['location'], `https://app.example/done?from=form&bucket=${bucket}&key=uploads%2Fr&etag=${encodeURIComponent(etag)}`);
  });

  test('anonymous forms: refused without a grant, stored where the bucket policy allows PutObject', async () => {
    const name = uniqueBucket('post-anon');
    assert.equal((await signedRequest(talus.url, { method: 'PUT', path: `/${name}` })).status, 200);
    const refused = await postForm(talus.url, `/${name}`, [['key', 'drop/a.txt']], { content: 'anon' });
    assert.equal(refused.status, 403);
    assert.equal(errorCode(refused), 'AccessDenied');
    assert.equal(await exists('drop/a.txt', name), false);
    const policy = { Version: '2012-10-17', Statement: [{ Effect: 'Allow', Principal: '*', Action: 's3:PutObject', Resource: `arn:aws:s3:::${name}/drop/*` }] };
    await talus.client.send(new PutBucketPolicyCommand({ Bucket: name, Policy: JSON.stringify(policy) }));
    const stored = await postForm(talus.url, `/${name}`, [['key', 'drop/a.txt'], ['Content-Type', 'text/plain']], { content: 'anon' });
    assert.equal(stored.status, 204, stored.body);
    assert.equal(await exists('drop/a.txt', name), true);
    const outside = await postForm(talus.url, `/${name}`, [['key', 'other/a.txt']], { content: 'anon' });
    assert.equal(outside.status, 403);
  });

  test('a signed form is judged as its signer: another user may not write the owner\'s bucket, only its own', async () => {
    const response = await postForm(talus.url, `/${bucket}`, [['key', 'uploads/intruder'], ['Content-Type', 'text/plain'], ...signedFields(basePolicy(), other)], { content: 'x' });
    assert.equal(response.status, 403);
    assert.equal(errorCode(response), 'AccessDenied');
    assert.equal(await exists('uploads/intruder'), false);
    // The same user may write its own bucket; the object is its own.
    const own = uniqueBucket('post-own');
    assert.equal((await signedRequest(talus.url, { method: 'PUT', path: `/${own}`, credentials: other })).status, 200);
    const stored = await postForm(talus.url, `/${own}`, [['key', 'uploads/mine'], ['Content-Type', 'text/plain'], ...signedFields(basePolicy([], own), other)], { content: 'mine' });
    assert.equal(stored.status, 204, stored.body);
    const read = await signedRequest(talus.url, { method: 'GET', path: `/${own}/uploads/mine`, query: { acl: '' }, credentials: other });
    assert.equal(read.status, 200, 'the signer owns the object it posted');
  });

  test('a large file streams through; one over content-length-range stops and stores nothing', async () => {
    const sizeBytes = 24 * 1024 * 1024;
    const policy = { expiration: inOneHour(), conditions: [{ bucket }, ['starts-with', '$key', 'big/'], ['content-length-range', 0, 32 * 1024 * 1024]] };
    const stored = await postForm(talus.url, `/${bucket}`, [['key', 'big/file'], ...signedFields(policy)], { sizeBytes });
    assert.equal(stored.status, 204, stored.body);
    const expected = createHash('md5');
    const block = Buffer.alloc(1024 * 1024, 'talus ');
    for (let sent = 0; sent < sizeBytes; sent += block.length) expected.update(block);
    const got = await talus.client.send(new GetObjectCommand({ Bucket: bucket, Key: 'big/file' }));
    assert.equal(got.ContentLength, sizeBytes);
    const actual = createHash('md5');
    for await (const chunk of got.Body as AsyncIterable<Buffer>) actual.update(chunk);
    assert.equal(actual.digest('hex'), expected.digest('hex'));

    const small = { expiration: inOneHour(), conditions: [{ bucket }, ['starts-with', '$key', 'big/'], ['content-length-range', 0, 1024 * 1024]] };
    const refused = await postForm(talus.url, `/${bucket}`, [['key', 'big/refused'], ...signedFields(small)], { sizeBytes: 8 * 1024 * 1024 });
    assert.equal(refused.status, 400);
    assert.equal(errorCode(refused), 'EntityTooLarge');
    assert.equal(await exists('big/refused'), false);
  });
});
