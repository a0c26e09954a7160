/**
 * The lean S3 client (src/client) against a real Talus started in-process:
 * every operation bit-exact over keys that need URI encoding, metadata and
 * ranges, listings with prefix, delimiter and pagination, the errors a caller
 * branches on (status + S3 code), keep-alive reuse (HEAD included), and the
 * headers timeout against a server that never answers. The listing scanner
 * is also checked against the full XML parser it replaces on the hot path.
 */
import assert from 'node:assert/strict';
import { createHash, createHmac, randomBytes } from 'node:crypto';
import { createServer, type Server, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import { Readable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { parseListObjectsPageFully, scanListObjectsPage, parseListObjectsPage } from '../src/client/list-objects.ts';
import { S3Client, S3RequestError, userMetadata } from '../src/client/s3-client.ts';
import { FixedKeyHmac } from '../src/auth/signing.ts';
import { canonicalQueryString, encodeKeyPath } from '../src/client/sigv4-signer.ts';
import { ACCESS_KEY_ID, SECRET_ACCESS_KEY, startTestTalus, uniqueBucket, type TestTalus } from './helpers/talus.ts';

const ODD_KEYS = [
  'plain.txt',
  'with space',
  'ünïcödé/日本語/🙂',
  'a+b',
  '100%',
  '%41literal',
  'tilde~x',
  'dir/sub/file',
  "sub-delims!'()*$&,;=@:",
  '0012',
  'trailing/',
  '/leading-slash',
  'double//slash',
  'question?mark#hash',
];

async function readAll(body: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of body as AsyncIterable<Buffer>) chunks.push(chunk);
  return Buffer.concat(chunks);
}

function md5Hex(data: Buffer): string {
  return createHash('md5').update(data).digest('hex');
}

async function rejectsWith(promise: Promise<unknown>, status: number, code: string): Promise<void> {
  await assert.rejects(promise, (error: unknown) => {
    assert.ok(error instanceof S3RequestError, `not an S3RequestError: ${String(error)}`);
    assert.equal(error.status, status);
    assert.equal(error.code, code);
    return true;
  });
}

describe('S3Client', () => {
  let talus: TestTalus;
  let client: S3Client;
  let bucket: string;
  before(async () => {
    talus = await startTestTalus();
    client = new S3Client({ endpoint: talus.url, accessKeyId: ACCESS_KEY_ID, secretAccessKey: SECRET_ACCESS_KEY });
    bucket = uniqueBucket('client');
    await client.createBucket(bucket);
  });
  after(async () => {
    await client.close();
    await talus.stop();
  });

  test('createBucket is idempotent for the owner', async () => {
    await client.createBucket(bucket);
  });

  test('put, get, head and delete are bit-exact for keys that need encoding', async () => {
    for (const [index, key] of ODD_KEYS.entries()) {
      const body = randomBytes(index * 997);
      const { etag } = await client.putObject(bucket, key, body);
      assert.equal(etag, `"${md5Hex(body)}"`, key);
      const streamed = await client.getObjectStream(bucket, key);
      assert.deepEqual(await readAll(streamed.body), body, key);
      const counted = await client.getObject(bucket, key);
      assert.equal(counted.status, 200);
      assert.equal(counted.bytes, body.length, key);
      assert.equal(counted.headers['etag'], etag);
      const head = await client.headObject(bucket, key);
      assert.equal(head.headers['content-length'], String(body.length), key);
    }
    const listed = await client.listObjectsV2(bucket);
    assert.deepEqual([...listed.keys].sort(), [...ODD_KEYS].sort());
    for (const key of ODD_KEYS) await client.deleteObject(bucket, key);
    assert.deepEqual((await client.listObjectsV2(bucket)).keys, []);
  });

  test('a streamed body of several MiB arrives whole', async () => {
    const body = randomBytes(3 * 1024 * 1024 + 17);
    const chunks = [body.subarray(0, 1_000_000), body.subarray(1_000_000, 2_500_000), body.subarray(2_500_000)];
    const { etag } = await client.putObject(bucket, 'streamed.bin', Readable.from(chunks), { contentLength: body.length, contentType: 'application/x-test' });
    assert.equal(etag, `"${md5Hex(body)}"`);
    const got = await client.getObjectStream(bucket, 'streamed.bin');
    assert.equal(got.headers['content-type'], 'application/x-test');
    assert.deepEqual(await readAll(got.body), body);
    await assert.rejects(client.putObject(bucket, 'x', Readable.from([body])), TypeError);
  });

  test('user metadata round-trips, ASCII and UTF-8', async () => {
    const metadata = { color: 'blue', 'Mixed-Case': 'Value With  Spaces', greeting: 'grüße, 世界' };
    await client.putObject(bucket, 'meta', Buffer.from('x'), { metadata });
    const head = await client.headObject(bucket, 'meta');
    // Names come back lower-cased. The value goes as given; only its signed form has whitespace runs collapsed (as the server computes it).
    assert.deepEqual(userMetadata(head.headers), { color: 'blue', 'mixed-case': 'Value With  Spaces', greeting: 'grüße, 世界' });
    const get = await client.getObject(bucket, 'meta');
    assert.equal(userMetadata(get.headers)['greeting'], 'grüße, 世界');
  });

  test('range GET returns 206 and exactly the range', async () => {
    const body = randomBytes(1000);
    await client.putObject(bucket, 'ranged', body);
    const counted = await client.getObject(bucket, 'ranged', { range: 'bytes=10-19' });
    assert.equal(counted.status, 206);
    assert.equal(counted.bytes, 10);
    assert.equal(counted.headers['content-range'], 'bytes 10-19/1000');
    const streamed = await client.getObjectStream(bucket, 'ranged', { range: 'bytes=-5' });
    assert.deepEqual(await readAll(streamed.body), body.subarray(995));
    await rejectsWith(client.getObject(bucket, 'ranged', { range: 'bytes=5000-6000' }), 416, 'InvalidRange');
  });

  test('listObjectsV2: prefix, delimiter, start-after and pagination', async () => {
    const keys = ['list/0012', 'list/0013', 'list/a/1', 'list/a/2', 'list/b/1', 'list/c', 'other'];
    for (const key of keys) await client.putObject(bucket, key, Buffer.from(key));
    const all = await client.listObjectsV2(bucket, { prefix: 'list/' });
    assert.deepEqual(all.keys, keys.filter((key) => key.startsWith('list/')));
    assert.equal(all.isTruncated, false);
    assert.equal(all.nextContinuationToken, undefined);
    const folders = await client.listObjectsV2(bucket, { prefix: 'list/', delimiter: '/' });
    assert.deepEqual(folders.keys, ['list/0012', 'list/0013', 'list/c']);
    assert.deepEqual(folders.commonPrefixes, ['list/a/', 'list/b/']);
    assert.equal(typeof folders.keys[0], 'string');
    const after = await client.listObjectsV2(bucket, { prefix: 'list/', startAfter: 'list/a/2' });
    assert.deepEqual(after.keys, ['list/b/1', 'list/c']);
    const paged: string[] = [];
    let token: string | undefined;
    let pages = 0;
    do {
      const page = await client.listObjectsV2(bucket, { prefix: 'list/', maxKeys: 2, continuationToken: token });
      paged.push(...page.keys);
      token = page.nextContinuationToken;
      assert.equal(page.isTruncated, token !== undefined);
      pages++;
    } while (token !== undefined && pages < 10);
    assert.deepEqual(paged, all.keys);
    assert.equal(pages, 3);
    await assert.rejects(client.listObjectsV2(bucket, { maxKeys: 0 }), RangeError);
  });

  test('a wrong secret is 403 SignatureDoesNotMatch', async () => {
    const wrong = new S3Client({ endpoint: talus.url, accessKeyId: ACCESS_KEY_ID, secretAccessKey: 'not-the-secret' });
    try {
      await rejectsWith(wrong.getObject(bucket, 'meta'), 403, 'SignatureDoesNotMatch');
      await rejectsWith(wrong.putObject(bucket, 'x', Buffer.from('x')), 403, 'SignatureDoesNotMatch');
      // HEAD has no error body: the code comes from the status.
      await rejectsWith(wrong.headObject(bucket, 'meta'), 403, 'Forbidden');
    } finally {
      await wrong.close();
    }
  });

  test('a missing key is 404 NoSuchKey (NotFound for HEAD); a missing bucket NoSuchBucket', async () => {
    await rejectsWith(client.getObject(bucket, 'no/such/key'), 404, 'NoSuchKey');
    await rejectsWith(client.getObjectStream(bucket, 'no/such/key'), 404, 'NoSuchKey');
    await rejectsWith(client.headObject(bucket, 'no/such/key'), 404, 'NotFound');
    await rejectsWith(client.listObjectsV2('no-such-bucket-here'), 404, 'NoSuchBucket');
    await client.deleteObject(bucket, 'no/such/key'); // S3 answers 204 for a missing key
  });

  test('keep-alive: 400 HEADs and GETs over 4 connections open at most 4 sockets', async () => {
    await client.putObject(bucket, 'reuse', randomBytes(4096));
    const small = new S3Client({ endpoint: talus.url, accessKeyId: ACCESS_KEY_ID, secretAccessKey: SECRET_ACCESS_KEY, connections: 4 });
    let opened = 0;
    const count = (): void => {
      opened++;
    };
    talus.server.on('connection', count);
    try {
      const worker = async (): Promise<void> => {
        for (let i = 0; i < 50; i++) {
          await small.headObject(bucket, 'reuse');
          await small.getObject(bucket, 'reuse');
        }
      };
      await Promise.all([worker(), worker(), worker(), worker()]);
      assert.ok(opened >= 1 && opened <= 4, `${opened} connections for 400 requests`);
      assert.ok(small.connectionStats().connected <= 4);
    } finally {
      talus.server.off('connection', count);
      await small.close();
    }
  });

  test('headers timeout: a server that never answers fails the request in time', async () => {
    const sockets: Socket[] = [];
    const silent: Server = createServer((socket) => sockets.push(socket));
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const port = (silent.address() as AddressInfo).port;
    const stuck = new S3Client({ endpoint: `http://127.0.0.1:${port}`, accessKeyId: 'A', secretAccessKey: 'B', headersTimeoutMs: 200 });
    try {
      const started = performance.now();
      await assert.rejects(stuck.headObject('bucket', 'key'), (error: Error & { code?: string }) => error.code === 'UND_ERR_HEADERS_TIMEOUT');
      assert.ok(performance.now() - started < 2000);
    } finally {
      await stuck.close();
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => silent.close(() => resolve()));
    }
  });

  test('bad options are refused', () => {
    assert.throws(() => new S3Client({ endpoint: 'http://127.0.0.1:9000/base', accessKeyId: 'A', secretAccessKey: 'B' }), TypeError);
    assert.throws(() => new S3Client({ endpoint: 'ftp://127.0.0.1', accessKeyId: 'A', secretAccessKey: 'B' }), TypeError);
    assert.throws(() => new S3Client({ endpoint: 'http://127.0.0.1', accessKeyId: 'A', secretAccessKey: 'B', connections: 0 }), RangeError);
  });
});

describe('SigV4 encoding (client side)', () => {
  test('keys encode per segment, every byte but unreserved ones', () => {
    assert.equal(encodeKeyPath('a b/c+d'), 'a%20b/c%2Bd');
    assert.equal(encodeKeyPath("x!'()*~"), 'x%21%27%28%29%2A~');
    assert.equal(encodeKeyPath('ü'), '%C3%BC');
    assert.equal(encodeKeyPath('100%'), '100%25');
    assert.equal(encodeKeyPath('plain/path-1_2.3~'), 'plain/path-1_2.3~');
  });
  test('FixedKeyHmac equals createHmac (short, long and non-ASCII messages)', () => {
    for (let round = 0; round < 200; round++) {
      const key = randomBytes(round % 2 === 0 ? 32 : 1 + (round % 64));
      const message = round % 3 === 0 ? 'x'.repeat(round * 7) : `AWS4-HMAC-SHA256\n${round}\nü日本\n${randomBytes(round % 40).toString('hex')}`;
      assert.equal(new FixedKeyHmac(key).hex(message), createHmac('sha256', key).update(message).digest('hex'), `round ${round}`);
    }
  });
  test('query strings are sorted and encoded, undefined left out', () => {
    assert.equal(canonicalQueryString({ prefix: 'a b', 'list-type': '2', delimiter: undefined, 'max-keys': '5' }), 'list-type=2&max-keys=5&prefix=a%20b');
  });
});

describe('listing parser', () => {
  const document = (entries: string): string =>
    `<?xml version="1.0" encoding="UTF-8"?>\n<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>b</Name><Prefix></Prefix><EncodingType>url</EncodingType><IsTruncated>true</IsTruncated>${entries}<NextContinuationToken>tok&amp;en</NextContinuationToken></ListBucketResult>`;

  test('the scanner and fast-xml-parser agree', () => {
    const xml = document(
      '<Contents><Key>0012</Key><Size>1</Size></Contents>\n  <Contents>\n <Key>a+b%2Bc%20d</Key></Contents><Contents><Key>x%26y</Key></Contents><CommonPrefixes><Prefix>dir%2F/</Prefix></CommonPrefixes>',
    );
    const scanned = scanListObjectsPage(xml);
    assert.ok(scanned !== undefined);
    assert.deepEqual(scanned, parseListObjectsPageFully(xml));
    assert.deepEqual(scanned.keys, ['0012', 'a b+c d', 'x&y']);
    assert.deepEqual(scanned.commonPrefixes, ['dir//']);
    assert.equal(scanned.nextContinuationToken, 'tok&en');
    assert.equal(scanned.isTruncated, true);
  });

  test('documents the scanner may misread go to the full parser', () => {
    const withAttributes = document('<Contents a="1"><Key>k</Key></Contents>');
    assert.equal(scanListObjectsPage(withAttributes), undefined);
    assert.deepEqual(parseListObjectsPage(withAttributes).keys, ['k']);
    const withComment = document('<!-- <Contents><Key>ghost</Key></Contents> --><Contents><Key>real</Key></Contents>');
    assert.deepEqual(parseListObjectsPage(withComment).keys, ['real']);
    assert.throws(() => parseListObjectsPage('<Error><Code>x</Code></Error>'));
  });

  test('numeric character references decode alike on both paths', () => {
    const entries = '<Contents><Key>&#252;ber&#x1F600;&amp;</Key></Contents>';
    assert.deepEqual(scanListObjectsPage(document(entries))?.keys, ['über😀&']);
    assert.deepEqual(parseListObjectsPage(document(`<!-- a comment sends the page to the full parser -->${entries}`)).keys, ['über😀&']);
    assert.deepEqual(parseListObjectsPageFully(document(entries)).keys, ['über😀&']);
  });
});
