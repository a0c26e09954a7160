/**
 * aws-chunked uploads against the real server, in the forms the JS SDK never
 * sends: signed chunks (STREAMING-AWS4-HMAC-SHA256-PAYLOAD) and signed chunks
 * with a signed checksum trailer. The seed signature comes from the SDK's
 * signer, the chunks from an encoder written from the AWS documentation.
 * A tampered chunk signature, a tampered trailer and a wrong trailer checksum
 * each get their S3 error, store nothing, and leave the server healthy.
 */
import { CreateBucketCommand, GetObjectCommand, HeadObjectCommand } from '@aws-sdk/client-s3';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { computeChecksum } from '../src/util/checksum.ts';
import { CONTENT_SHA256, docSigningKey, encode, type Mode } from './helpers/aws-chunked.ts';
import { errorCode, send, signRequest, type RawResponse } from './helpers/raw.ts';
import { SECRET_ACCESS_KEY, startTestTalus, uniqueBucket, type TestTalus } from './helpers/talus.ts';

const CHUNK_BYTES = 64 * 1024;

describe('aws-chunked uploads', () => {
  let talus: TestTalus;
  let bucket: string;
  before(async () => {
    talus = await startTestTalus();
    bucket = uniqueBucket('chunk');
    await talus.client.send(new CreateBucketCommand({ Bucket: bucket }));
  });
  after(async () => {
    await talus.stop();
  });

  /** Signs the headers, encodes the body, lets `damage` alter it, and sends it. */
  async function upload(key: string, data: Buffer, mode: Mode, trailers: [string, string][], damage: (body: Buffer) => Buffer = (body) => body): Promise<RawResponse> {
    const headers: Record<string, string> = {
      'content-encoding': 'aws-chunked',
      'x-amz-content-sha256': CONTENT_SHA256[mode],
      'x-amz-decoded-content-length': String(data.length),
    };
    if (trailers.length > 0) headers['x-amz-trailer'] = trailers.map(([name]) => name).join(',');
    const signed = await signRequest(talus.url, { method: 'PUT', path: `/${bucket}/${key}`, headers });
    const seed = /Signature=([0-9a-f]{64})/.exec(signed['authorization'] ?? '')?.[1];
    assert.ok(seed !== undefined);
    const amzDate = signed['x-amz-date']!;
    const date = amzDate.slice(0, 8);
    const signing = { key: docSigningKey(SECRET_ACCESS_KEY, date, 'us-east-1'), amzDate, scope: `${date}/us-east-1/s3/aws4_request`, seed };
    const body = damage(encode(data, mode, CHUNK_BYTES, trailers, signing).body);
    return send(talus.url, 'PUT', `/${bucket}/${key}`, { ...signed, 'content-length': String(body.length) }, body);
  }

  async function assertStored(key: string, data: Buffer): Promise<void> {
    const got = await talus.client.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
    assert.ok(Buffer.from(await got.Body!.transformToByteArray()).equals(data));
  }

  async function assertAbsent(key: string): Promise<void> {
    await assert.rejects(talus.client.send(new HeadObjectCommand({ Bucket: bucket, Key: key })));
  }

  test('signed chunks upload intact', async () => {
    const data = randomBytes(300_000);
    const response = await upload('signed', data, 'signed', []);
    assert.equal(response.status, 200, response.body);
    await assertStored('signed', data);
  });

  test('signed chunks with a signed CRC32C trailer upload intact and keep the checksum', async () => {
    const data = randomBytes(200_000);
    const crc = computeChecksum('CRC32C', data).toString('base64');
    const response = await upload('trailer', data, 'signed-trailer', [['x-amz-checksum-crc32c', crc]]);
    assert.equal(response.status, 200, response.body);
    assert.equal(response.headers['x-amz-checksum-crc32c'], crc);
    await assertStored('trailer', data);
  });

  test('a tampered chunk signature is SignatureDoesNotMatch and stores nothing', async () => {
    const data = randomBytes(200_000);
    const response = await upload('tampered', data, 'signed', [], (body) => {
      const text = body.toString('latin1');
      const at = text.indexOf('chunk-signature=', text.indexOf('chunk-signature=') + 1) + 'chunk-signature='.length;
      const copy = Buffer.from(body);
      copy[at] = copy[at] === 0x30 ? 0x31 : 0x30;
      return copy;
    });
    assert.equal(response.status, 403);
    assert.equal(errorCode(response), 'SignatureDoesNotMatch');
    await assertAbsent('tampered');
  });

  test('a flipped data byte under a valid signature chain is SignatureDoesNotMatch and stores nothing', async () => {
    const data = randomBytes(200_000);
    const response = await upload('flipped', data, 'signed', [], (body) => {
      const copy = Buffer.from(body);
      copy[CHUNK_BYTES + 200] = copy[CHUNK_BYTES + 200]! ^ 0xff;
      return copy;
    });
    assert.equal(response.status, 403);
    assert.equal(errorCode(response), 'SignatureDoesNotMatch');
    await assertAbsent('flipped');
  });

  test('a correctly signed but wrong trailer checksum is BadDigest and stores nothing', async () => {
    const data = randomBytes(100_000);
    const wrong = computeChecksum('CRC32', Buffer.from('other')).toString('base64');
    const response = await upload('bad-trailer', data, 'signed-trailer', [['x-amz-checksum-crc32', wrong]]);
    assert.equal(response.status, 400);
    assert.equal(errorCode(response), 'BadDigest');
    await assertAbsent('bad-trailer');
    // Still healthy afterwards.
    const again = randomBytes(1000);
    assert.equal((await upload('after', again, 'signed', [])).status, 200);
    await assertStored('after', again);
  });
});
