/**
 * The real AWS SDK for JavaScript against a loopback stub server that only
 * verifies: whatever the SDK chooses to send (signed hashes, aws-chunked with
 * trailing checksums, multipart, presigned URLs) must verify and decode.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Readable } from 'node:stream';
import { GetObjectCommand, ListObjectsV2Command, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import { computeChecksum } from '../util/checksum.ts';
import { isS3Error } from '../util/s3-error.ts';
import { verifyRequest, type SecretLookup } from './index.ts';

const AKID = 'AKIDSDKEXAMPLE';
const SECRET = 'sdk/Secret+Key/EXAMPLE';
const lookup: SecretLookup = (id) => (id === AKID ? SECRET : undefined);

interface Seen {
  method: string;
  contentSha256: string | undefined;
  body: Buffer;
  trailers: Map<string, string>;
}

const seen: Seen[] = [];
const objects = new Map<string, Buffer>();
let server: Server;
let endpoint: string;

async function handle(request: IncomingMessage, response: ServerResponse): Promise<void> {
  const url = request.url ?? '/';
  const queryStart = url.indexOf('?');
  const rawPath = queryStart === -1 ? url : url.slice(0, queryStart);
  const rawQuery = queryStart === -1 ? '' : url.slice(queryStart + 1);
  try {
    const verified = verifyRequest({ method: request.method ?? 'GET', rawPath, rawQuery, headers: request.headers, body: request }, lookup);
    const chunks: Buffer[] = [];
    for await (const chunk of verified.body) chunks.push(chunk as Buffer);
    const body = Buffer.concat(chunks);
    seen.push({ method: request.method ?? '', contentSha256: request.headers['x-amz-content-sha256'] as string | undefined, body, trailers: verified.trailers });
    const query = new URLSearchParams(rawQuery);
    if (request.method === 'PUT') {
      if (query.has('uploadId')) objects.set(`${rawPath}#${query.get('partNumber')}`, body);
      else objects.set(rawPath, body);
      response.writeHead(200, { etag: '"0123456789abcdef0123456789abcdef"' }).end();
    } else if (request.method === 'POST' && query.has('uploads')) {
      response.writeHead(200, { 'content-type': 'application/xml' }).end('<InitiateMultipartUploadResult><Bucket>b</Bucket><Key>k</Key><UploadId>up1</UploadId></InitiateMultipartUploadResult>');
    } else if (request.method === 'POST' && query.has('uploadId')) {
      response.writeHead(200, { 'content-type': 'application/xml' }).end('<CompleteMultipartUploadResult><ETag>"x-2"</ETag></CompleteMultipartUploadResult>');
    } else if (request.method === 'GET' && query.get('list-type') === '2') {
      response.writeHead(200, { 'content-type': 'application/xml' }).end(`<ListBucketResult><Name>b</Name><Prefix>${query.get('prefix') ?? ''}</Prefix><KeyCount>0</KeyCount><MaxKeys>1000</MaxKeys><IsTruncated>false</IsTruncated></ListBucketResult>`);
    } else {
      const stored = objects.get(rawPath);
      if (stored === undefined) response.writeHead(404, { 'content-type': 'application/xml' }).end('<Error><Code>NoSuchKey</Code><Message>none</Message></Error>');
      else response.writeHead(200, { 'content-length': String(stored.length) }).end(stored);
    }
  } catch (error) {
    const code = isS3Error(error) ? error.code : 'InternalError';
    const status = isS3Error(error) ? error.status : 500;
    response.writeHead(status, { 'content-type': 'application/xml', connection: 'close' }).end(`<Error><Code>${code}</Code><Message>${String((error as Error).message)}</Message></Error>`);
  }
}

function client(secret = SECRET): S3Client {
  return new S3Client({ endpoint, region: 'us-east-1', forcePathStyle: true, maxAttempts: 1, credentials: { accessKeyId: AKID, secretAccessKey: secret } });
}

before(async () => {
  server = createServer((request, response) => void handle(request, response));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

after(async () => {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
});

const KEY = "dir/ünïcode key+plus (1)!*'~.txt";

test('PutObject with a buffer body verifies', async () => {
  const s3 = client();
  const body = randomBytes(10_000);
  seen.length = 0;
  await s3.send(new PutObjectCommand({ Bucket: 'b', Key: KEY, Body: body, Metadata: { note: 'a  b' } }));
  assert.equal(seen.length, 1);
  assert.ok(seen[0]?.body.equals(body));
  s3.destroy();
});

test('PutObject with a stream body (aws-chunked with a trailing checksum) verifies and decodes', async () => {
  const s3 = client();
  const body = randomBytes(300_000);
  seen.length = 0;
  await s3.send(new PutObjectCommand({ Bucket: 'b', Key: 'streamed', Body: Readable.from([body.subarray(0, 100_000), body.subarray(100_000)]), ContentLength: body.length, ChecksumAlgorithm: 'CRC32' }));
  const request = seen[0];
  assert.ok(request !== undefined);
  assert.ok(request.body.equals(body), 'decoded body differs');
  // The SDK sends STREAMING-UNSIGNED-PAYLOAD-TRAILER here; the trailer must be the CRC32 of what we decoded.
  assert.equal(request.contentSha256, 'STREAMING-UNSIGNED-PAYLOAD-TRAILER');
  assert.equal(request.trailers.get('x-amz-checksum-crc32'), computeChecksum('CRC32', body).toString('base64'));
  s3.destroy();
});

test('multipart Upload from lib-storage verifies every part', async () => {
  const s3 = client();
  const body = randomBytes(5 * 1024 * 1024 + 12_345);
  seen.length = 0;
  await new Upload({ client: s3, params: { Bucket: 'b', Key: 'multi', Body: Readable.from([body]) }, partSize: 5 * 1024 * 1024, queueSize: 2 }).done();
  const parts = seen.filter((request) => request.method === 'PUT');
  assert.equal(parts.length, 2);
  assert.equal(parts.reduce((sum, part) => sum + part.body.length, 0), body.length);
  s3.destroy();
});

test('GetObject and ListObjectsV2 with awkward prefixes verify', async () => {
  const s3 = client();
  const body = Buffer.from('read me');
  await s3.send(new PutObjectCommand({ Bucket: 'b', Key: KEY, Body: body }));
  const got = await s3.send(new GetObjectCommand({ Bucket: 'b', Key: KEY }));
  assert.equal(await got.Body?.transformToString(), 'read me');
  await s3.send(new ListObjectsV2Command({ Bucket: 'b', Prefix: "a b+c/ü!*'()", Delimiter: '/', StartAfter: 'x=y&z' }));
  s3.destroy();
});

test('a wrong secret is refused with SignatureDoesNotMatch', async () => {
  const s3 = client('not the secret');
  await assert.rejects(s3.send(new GetObjectCommand({ Bucket: 'b', Key: KEY })), (error: Error) => error.name === 'SignatureDoesNotMatch');
  s3.destroy();
});

test('presigned GET and PUT URLs from getSignedUrl verify when fetched', async () => {
  const s3 = client();
  const putUrl = await getSignedUrl(s3, new PutObjectCommand({ Bucket: 'b', Key: 'presigned/ü b+c.txt' }), { expiresIn: 300 });
  const put = await fetch(putUrl, { method: 'PUT', body: 'via presigned url' });
  assert.equal(put.status, 200, await put.text());
  const getUrl = await getSignedUrl(s3, new GetObjectCommand({ Bucket: 'b', Key: 'presigned/ü b+c.txt', ResponseContentType: 'text/plain; charset=utf-8' }), { expiresIn: 300 });
  const get = await fetch(getUrl);
  assert.equal(get.status, 200);
  assert.equal(await get.text(), 'via presigned url');
  const tampered = await fetch(getUrl.replace('ResponseContentType', 'response-content-type').replace('text%2Fplain', 'text%2Fhtml'));
  assert.equal(tampered.status, 403);
  s3.destroy();
});
