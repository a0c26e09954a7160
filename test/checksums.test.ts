/**
 * Additional checksums end to end with the AWS SDK: the SDK's default (CRC32
 * in an aws-chunked trailer), each algorithm by header, wrong values refused
 * with BadDigest and nothing stored, checksums returned with checksum mode,
 * and multipart COMPOSITE and FULL_OBJECT checksums computed from the parts.
 */
import {
  ListObjectsV2Command,
  ListObjectVersionsCommand,
  CompleteMultipartUploadCommand,
  CreateBucketCommand,
  CreateMultipartUploadCommand,
  GetObjectCommand,
  HeadObjectCommand,
  PutObjectCommand,
  UploadPartCommand,
  type ChecksumAlgorithm as SdkChecksumAlgorithm,
} from '@aws-sdk/client-s3';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { combineCrc, compositeChecksum, computeChecksum, type ChecksumAlgorithm } from '../src/util/checksum.ts';
import { errorCode, signedRequest } from './helpers/raw.ts';
import { startTestTalus, uniqueBucket, type TestTalus } from './helpers/talus.ts';

const MiB = 1024 * 1024;
const ALGORITHMS: ChecksumAlgorithm[] = ['CRC32', 'CRC32C', 'CRC64NVME', 'SHA1', 'SHA256'];

function sdkField(algorithm: ChecksumAlgorithm): 'ChecksumCRC32' | 'ChecksumCRC32C' | 'ChecksumCRC64NVME' | 'ChecksumSHA1' | 'ChecksumSHA256' {
  return `Checksum${algorithm}` as const;
}

describe('checksums', () => {
  let talus: TestTalus;
  let bucket: string;
  before(async () => {
    talus = await startTestTalus();
    bucket = uniqueBucket('sum');
    await talus.client.send(new CreateBucketCommand({ Bucket: bucket }));
  });
  after(async () => {
    await talus.stop();
  });

  test('listings name each object\'s checksum algorithm and type', async () => {
    await talus.client.send(new PutObjectCommand({ Bucket: bucket, Key: 'listed/sha256', Body: 'a', ChecksumAlgorithm: 'SHA256' }));
    await talus.client.send(new PutObjectCommand({ Bucket: bucket, Key: 'listed/crc32c', Body: randomBytes(40_000), ChecksumAlgorithm: 'CRC32C' }));
    const listed = await talus.client.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: 'listed/' }));
    const byKey = new Map(listed.Contents?.map((entry) => [entry.Key, entry]));
    assert.deepEqual(byKey.get('listed/sha256')?.ChecksumAlgorithm, ['SHA256']);
    assert.deepEqual(byKey.get('listed/crc32c')?.ChecksumAlgorithm, ['CRC32C']);
    assert.equal(byKey.get('listed/crc32c')?.ChecksumType, 'FULL_OBJECT');
    const versions = await talus.client.send(new ListObjectVersionsCommand({ Bucket: bucket, Prefix: 'listed/' }));
    assert.equal(versions.Versions?.length, 2);
  });

  test('the SDK default upload (CRC32 trailer) is verified, stored and returned', async () => {
    const body = randomBytes(300_000);
    const put = await talus.client.send(new PutObjectCommand({ Bucket: bucket, Key: 'default', Body: body }));
    const expected = computeChecksum('CRC32', body).toString('base64');
    assert.equal(put.ChecksumCRC32, expected);
    const head = await talus.client.send(new HeadObjectCommand({ Bucket: bucket, Key: 'default', ChecksumMode: 'ENABLED' }));
    assert.equal(head.ChecksumCRC32, expected);
  });

  for (const algorithm of ALGORITHMS) {
    test(`${algorithm}: verified on PUT, returned with checksum mode, BadDigest when wrong`, async () => {
      const body = randomBytes(70_000);
      const expected = computeChecksum(algorithm, body).toString('base64');
      await talus.client.send(new PutObjectCommand({ Bucket: bucket, Key: `alg/${algorithm}`, Body: body, ChecksumAlgorithm: algorithm as SdkChecksumAlgorithm }));
      const got = await talus.client.send(new GetObjectCommand({ Bucket: bucket, Key: `alg/${algorithm}`, ChecksumMode: 'ENABLED' }));
      assert.equal(got[sdkField(algorithm)], expected);
      assert.ok(Buffer.from(await got.Body!.transformToByteArray()).equals(body));
      const wrong = computeChecksum(algorithm, Buffer.from('something else')).toString('base64');
      const response = await signedRequest(talus.url, {
        method: 'PUT',
        path: `/${bucket}/alg/${algorithm}-wrong`,
        body,
        headers: { [`x-amz-checksum-${algorithm.toLowerCase()}`]: wrong },
      });
      assert.equal(response.status, 400);
      assert.equal(errorCode(response), 'BadDigest');
      await assert.rejects(talus.client.send(new HeadObjectCommand({ Bucket: bucket, Key: `alg/${algorithm}-wrong` })));
    });
  }

  test('a malformed checksum value answers BadDigest', async () => {
    const response = await signedRequest(talus.url, { method: 'PUT', path: `/${bucket}/malformed`, body: 'x', headers: { 'x-amz-checksum-crc32': 'not-base64!' } });
    assert.equal(response.status, 400);
    assert.equal(errorCode(response), 'BadDigest');
  });

  async function multipart(key: string, algorithm: ChecksumAlgorithm, type: 'COMPOSITE' | 'FULL_OBJECT', parts: Buffer[]) {
    const created = await talus.client.send(
      new CreateMultipartUploadCommand({ Bucket: bucket, Key: key, ChecksumAlgorithm: algorithm as SdkChecksumAlgorithm, ChecksumType: type }),
    );
    const completed: { PartNumber: number; ETag: string; [field: string]: unknown }[] = [];
    for (const [index, body] of parts.entries()) {
      const part = await talus.client.send(
        new UploadPartCommand({ Bucket: bucket, Key: key, UploadId: created.UploadId, PartNumber: index + 1, Body: body, ChecksumAlgorithm: algorithm as SdkChecksumAlgorithm }),
      );
      assert.equal(part[sdkField(algorithm)], computeChecksum(algorithm, body).toString('base64'));
      completed.push({ PartNumber: index + 1, ETag: part.ETag!, [sdkField(algorithm)]: part[sdkField(algorithm)] });
    }
    return talus.client.send(
      new CompleteMultipartUploadCommand({ Bucket: bucket, Key: key, UploadId: created.UploadId, ChecksumType: type, MultipartUpload: { Parts: completed } }),
    );
  }

  test('multipart COMPOSITE checksum is the checksum of the part checksums, with the part count', async () => {
    const parts = [randomBytes(5 * MiB), randomBytes(1000)];
    const result = await multipart('mp/composite', 'SHA256', 'COMPOSITE', parts);
    const expected = compositeChecksum('SHA256', parts.map((part) => computeChecksum('SHA256', part))).toString('base64');
    assert.equal(result.ChecksumSHA256, `${expected}-2`);
    const head = await talus.client.send(new HeadObjectCommand({ Bucket: bucket, Key: 'mp/composite', ChecksumMode: 'ENABLED' }));
    assert.equal(head.ChecksumSHA256, `${expected}-2`);
  });

  test("a part sent without a checksum gets the upload's algorithm, and the answer names it", async () => {
    const created = await talus.client.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: 'mp/implicit', ChecksumAlgorithm: 'CRC32C' }));
    const body = randomBytes(1000);
    const response = await signedRequest(talus.url, {
      method: 'PUT', path: `/${bucket}/mp/implicit`, query: { partNumber: '1', uploadId: created.UploadId! }, body,
    });
    assert.equal(response.status, 200, response.body);
    assert.equal(response.headers['x-amz-checksum-crc32c'], computeChecksum('CRC32C', body).toString('base64'));
  });

  for (const algorithm of ['CRC32', 'CRC32C', 'CRC64NVME'] as const) {
    test(`multipart FULL_OBJECT ${algorithm} equals the checksum of the whole object`, async () => {
      const parts = [randomBytes(5 * MiB), randomBytes(5 * MiB + 3), randomBytes(17)];
      const result = await multipart(`mp/full-${algorithm}`, algorithm, 'FULL_OBJECT', parts);
      const whole = computeChecksum(algorithm, Buffer.concat(parts)).toString('base64');
      assert.equal(result[sdkField(algorithm)], whole);
      assert.equal(
        combineCrc(algorithm, parts.map((part) => ({ digest: computeChecksum(algorithm, part), sizeBytes: part.length }))).toString('base64'),
        whole,
      );
      const head = await talus.client.send(new HeadObjectCommand({ Bucket: bucket, Key: `mp/full-${algorithm}`, ChecksumMode: 'ENABLED' }));
      assert.equal(head[sdkField(algorithm)], whole);
      assert.equal(head.ChecksumType, 'FULL_OBJECT');
    });
  }
});
