/**
 * Small PUT bodies (at most the inline limit, length known) are gathered
 * from 'data' events into one buffer (src/util/gather-body.ts). What a
 * client sees must not change: truncated uploads, bodies that contradict
 * their signed hash or Content-MD5 leave nothing behind, and bodies at and
 * just past the inline limit read back byte for byte.
 */
import { CreateBucketCommand, GetObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { connect } from 'node:net';
import { after, before, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { INLINE_BYTES_MAX } from '../src/util/limits.ts';
import { errorCode, send, signRequest, signedRequest } from './helpers/raw.ts';
import { startTestTalus, uniqueBucket, type TestTalus } from './helpers/talus.ts';

let talus: TestTalus;
const bucket = uniqueBucket('small-body');

before(async () => {
  talus = await startTestTalus();
  await talus.client.send(new CreateBucketCommand({ Bucket: bucket }));
});
after(async () => talus.stop());

async function status(key: string): Promise<number> {
  return (await signedRequest(talus.url, { method: 'HEAD', path: `/${bucket}/${key}` })).status;
}

test('a 4 KiB upload whose client goes away mid-body creates nothing, and the server serves on', async () => {
  const body = randomBytes(4096);
  const path = `/${bucket}/truncated`;
  const headers = await signRequest(talus.url, { method: 'PUT', path, headers: { 'content-length': String(body.length) }, unsignedPayload: true });
  const url = new URL(talus.url);
  const socket = connect(Number(url.port), url.hostname);
  await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
  socket.on('error', () => undefined);
  socket.write(`PUT ${path} HTTP/1.1\r\n${Object.entries(headers).map(([name, value]) => `${name}: ${value}`).join('\r\n')}\r\n\r\n`);
  socket.write(body.subarray(0, 2048));
  await sleep(100);
  socket.destroy();
  await sleep(200);
  assert.equal(await status('truncated'), 404);
  await talus.client.send(new PutObjectCommand({ Bucket: bucket, Key: 'after-truncated', Body: body }));
  const read = await talus.client.send(new GetObjectCommand({ Bucket: bucket, Key: 'after-truncated' }));
  assert.deepEqual(Buffer.from(await read.Body!.transformToByteArray()), body);
});

test('a 4 KiB body that is not the one its signed SHA-256 names is refused and stores nothing', async () => {
  const signedBody = randomBytes(4096);
  const path = `/${bucket}/tampered`;
  const headers = await signRequest(talus.url, { method: 'PUT', path, headers: { 'content-length': '4096' }, body: signedBody });
  const response = await send(talus.url, 'PUT', path, headers, randomBytes(4096));
  assert.equal(response.status, 400);
  assert.equal(errorCode(response), 'XAmzContentSHA256Mismatch');
  assert.equal(await status('tampered'), 404);
});

test('a 4 KiB body with a wrong Content-MD5 is BadDigest and stores nothing', async () => {
  const body = randomBytes(4096);
  const wrongMd5 = createHash('md5').update('something else').digest('base64');
  const response = await signedRequest(talus.url, { method: 'PUT', path: `/${bucket}/bad-md5`, headers: { 'content-length': '4096', 'content-md5': wrongMd5 }, body });
  assert.equal(response.status, 400);
  assert.equal(errorCode(response), 'BadDigest');
  assert.equal(await status('bad-md5'), 404);
});

test('bodies of 0 bytes, the inline limit and one byte past it read back as written', async () => {
  for (const size of [0, 1, INLINE_BYTES_MAX, INLINE_BYTES_MAX + 1]) {
    const body = randomBytes(size);
    const put = await talus.client.send(new PutObjectCommand({ Bucket: bucket, Key: `size-${size}`, Body: body }));
    assert.equal(put.ETag, `"${createHash('md5').update(body).digest('hex')}"`);
    const read = await talus.client.send(new GetObjectCommand({ Bucket: bucket, Key: `size-${size}` }));
    assert.deepEqual(Buffer.from(await read.Body!.transformToByteArray()), body, `size ${size}`);
  }
});
