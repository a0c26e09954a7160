/**
 * ChecksumType (FULL_OBJECT or COMPOSITE) in every answer that carries a
 * checksum (issue 12): PutObject, CopyObject, CreateMultipartUpload,
 * ListParts, CompleteMultipartUpload, GET/HEAD with checksum mode (the whole
 * object, and one part with ?partNumber), GetObjectAttributes. Multipart
 * uploads take x-amz-checksum-type: FULL_OBJECT for the CRCs (combined from
 * the parts' CRCs), COMPOSITE for all but CRC64NVME.
 */
import {
  CompleteMultipartUploadCommand,
  CopyObjectCommand,
  CreateBucketCommand,
  CreateMultipartUploadCommand,
  GetObjectAttributesCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListPartsCommand,
  PutObjectCommand,
  S3ServiceException,
  UploadPartCommand,
  UploadPartCopyCommand,
  type ChecksumAlgorithm as SdkChecksumAlgorithm,
  type ChecksumType,
} from '@aws-sdk/client-s3';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { combineCrc, compositeChecksum, computeChecksum, type ChecksumAlgorithm, type CrcAlgorithm } from '../src/util/checksum.ts';
import { startTestTalus, uniqueBucket, type TestTalus } from './helpers/talus.ts';

const MiB = 1024 * 1024;
type ChecksumField = 'ChecksumCRC32' | 'ChecksumCRC32C' | 'ChecksumCRC64NVME' | 'ChecksumSHA1' | 'ChecksumSHA256';
const field = (algorithm: ChecksumAlgorithm): ChecksumField => `Checksum${algorithm}` as ChecksumField;
const base64 = (algorithm: ChecksumAlgorithm, data: Buffer): string => computeChecksum(algorithm, data).toString('base64');

/** Each multipart flavour S3 has: the CRCs as FULL_OBJECT, and every algorithm but CRC64NVME as COMPOSITE. */
const MULTIPART_CASES: { algorithm: ChecksumAlgorithm; type: ChecksumType }[] = [
  { algorithm: 'CRC32', type: 'FULL_OBJECT' },
  { algorithm: 'CRC32C', type: 'FULL_OBJECT' },
  { algorithm: 'CRC64NVME', type: 'FULL_OBJECT' },
  { algorithm: 'CRC32', type: 'COMPOSITE' },
  { algorithm: 'SHA1', type: 'COMPOSITE' },
  { algorithm: 'SHA256', type: 'COMPOSITE' },
];

describe('ChecksumType in every answer with a checksum', { timeout: 120_000 }, () => {
  let talus: TestTalus;
  let bucket: string;
  // Two parts: the first at S3's minimum part size, the last small.
  const parts = [randomBytes(5 * MiB), randomBytes(100_000)];
  const whole = Buffer.concat(parts);

  before(async () => {
    talus = await startTestTalus();
    bucket = uniqueBucket('cktype');
    await talus.client.send(new CreateBucketCommand({ Bucket: bucket }));
  });
  after(async () => {
    await talus.stop();
  });

  test('PutObject, HEAD and GET with checksum mode, GetObjectAttributes, CopyObject: FULL_OBJECT', async () => {
    const client = talus.client;
    for (const algorithm of ['CRC32', 'CRC32C', 'CRC64NVME', 'SHA1', 'SHA256'] as const) {
      const key = `single/${algorithm}`;
      const data = randomBytes(30_000);
      const put = await client.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: data, ChecksumAlgorithm: algorithm as SdkChecksumAlgorithm }));
      assert.equal(put[field(algorithm)], base64(algorithm, data));
      assert.equal(put.ChecksumType, 'FULL_OBJECT');
      const head = await client.send(new HeadObjectCommand({ Bucket: bucket, Key: key, ChecksumMode: 'ENABLED' }));
      assert.equal(head.ChecksumType, 'FULL_OBJECT');
      // An object not uploaded in parts is its own part 1.
      const part = await client.send(new GetObjectCommand({ Bucket: bucket, Key: key, PartNumber: 1, ChecksumMode: 'ENABLED' }));
      await part.Body!.transformToByteArray();
      assert.equal(part[field(algorithm)], base64(algorithm, data));
      assert.equal(part.ChecksumType, 'FULL_OBJECT');
      const attributes = await client.send(new GetObjectAttributesCommand({ Bucket: bucket, Key: key, ObjectAttributes: ['Checksum'] }));
      assert.equal(attributes.Checksum?.ChecksumType, 'FULL_OBJECT');
      assert.equal(attributes.Checksum?.[field(algorithm)], base64(algorithm, data));
      const copy = await client.send(new CopyObjectCommand({ Bucket: bucket, Key: `${key}-copy`, CopySource: `${bucket}/${key}` }));
      assert.equal(copy.CopyObjectResult?.ChecksumType, 'FULL_OBJECT');
      assert.equal(copy.CopyObjectResult?.[field(algorithm)], base64(algorithm, data));
    }
  });

  for (const { algorithm, type } of MULTIPART_CASES) {
    test(`multipart ${algorithm} ${type}: create, list, complete, HEAD, GET of each part, attributes`, async () => {
      const client = talus.client;
      const key = `multi/${algorithm}-${type}`;
      const created = await client.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: key, ChecksumAlgorithm: algorithm as SdkChecksumAlgorithm, ChecksumType: type }));
      assert.equal(created.ChecksumAlgorithm, algorithm);
      assert.equal(created.ChecksumType, type);
      const uploaded = [];
      for (const [index, data] of parts.entries()) {
        const part = await client.send(new UploadPartCommand({ Bucket: bucket, Key: key, UploadId: created.UploadId, PartNumber: index + 1, Body: data, ChecksumAlgorithm: algorithm as SdkChecksumAlgorithm }));
        assert.equal(part[field(algorithm)], base64(algorithm, data));
        uploaded.push({ PartNumber: index + 1, ETag: part.ETag!, [field(algorithm)]: part[field(algorithm)] });
      }
      const listed = await client.send(new ListPartsCommand({ Bucket: bucket, Key: key, UploadId: created.UploadId }));
      assert.equal(listed.ChecksumAlgorithm, algorithm);
      assert.equal(listed.ChecksumType, type);

      const digests = parts.map((data) => computeChecksum(algorithm, data));
      const expected = type === 'FULL_OBJECT'
        ? combineCrc(algorithm as CrcAlgorithm, parts.map((data, index) => ({ digest: digests[index]!, sizeBytes: data.length }))).toString('base64')
        : `${compositeChecksum(algorithm, digests).toString('base64')}-${parts.length}`;
      if (type === 'FULL_OBJECT') assert.equal(expected, base64(algorithm, whole), 'a FULL_OBJECT checksum is the whole object\'s');

      const completed = await client.send(new CompleteMultipartUploadCommand({ Bucket: bucket, Key: key, UploadId: created.UploadId, MultipartUpload: { Parts: uploaded } }));
      assert.equal(completed.ChecksumType, type);
      assert.equal(completed[field(algorithm)], expected);
      const head = await client.send(new HeadObjectCommand({ Bucket: bucket, Key: key, ChecksumMode: 'ENABLED' }));
      assert.equal(head.ChecksumType, type);
      assert.equal(head[field(algorithm)], expected);
      for (const [index, data] of parts.entries()) {
        const part = await client.send(new GetObjectCommand({ Bucket: bucket, Key: key, PartNumber: index + 1, ChecksumMode: 'ENABLED' }));
        assert.deepEqual(Buffer.from(await part.Body!.transformToByteArray()), data);
        assert.equal(part.ChecksumType, type, `part ${index + 1}`);
        assert.equal(part[field(algorithm)], base64(algorithm, data), `part ${index + 1}`);
      }
      const attributes = await client.send(new GetObjectAttributesCommand({ Bucket: bucket, Key: key, ObjectAttributes: ['Checksum', 'ObjectParts'] }));
      assert.equal(attributes.Checksum?.ChecksumType, type);
      assert.equal(attributes.Checksum?.[field(algorithm)], expected);
      assert.deepEqual(attributes.ObjectParts?.Parts?.map((part) => part[field(algorithm)]), digests.map((digest) => digest.toString('base64')));
    });
  }

  test('UploadPartCopy answers the copied part\'s checksum, and the object gets its FULL_OBJECT CRC', async () => {
    const client = talus.client;
    await client.send(new PutObjectCommand({ Bucket: bucket, Key: 'copy-source', Body: parts[0] }));
    const key = 'multi/part-copy';
    const created = await client.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: key, ChecksumAlgorithm: 'CRC32C', ChecksumType: 'FULL_OBJECT' }));
    const copied = await client.send(new UploadPartCopyCommand({ Bucket: bucket, Key: key, UploadId: created.UploadId, PartNumber: 1, CopySource: `${bucket}/copy-source` }));
    assert.equal(copied.CopyPartResult?.ChecksumCRC32C, base64('CRC32C', parts[0]!));
    const last = await client.send(new UploadPartCommand({ Bucket: bucket, Key: key, UploadId: created.UploadId, PartNumber: 2, Body: parts[1], ChecksumAlgorithm: 'CRC32C' }));
    const completed = await client.send(new CompleteMultipartUploadCommand({
      Bucket: bucket,
      Key: key,
      UploadId: created.UploadId,
      MultipartUpload: { Parts: [{ PartNumber: 1, ETag: copied.CopyPartResult!.ETag! }, { PartNumber: 2, ETag: last.ETag! }] },
    }));
    assert.equal(completed.ChecksumType, 'FULL_OBJECT');
    assert.equal(completed.ChecksumCRC32C, base64('CRC32C', whole));
  });

  test('CreateMultipartUpload defaults and refusals', async () => {
    const client = talus.client;
    // Without x-amz-checksum-type: COMPOSITE, except CRC64NVME, which S3 has only as FULL_OBJECT.
    for (const [algorithm, type] of [['CRC32', 'COMPOSITE'], ['SHA256', 'COMPOSITE'], ['CRC64NVME', 'FULL_OBJECT']] as const) {
      const created = await client.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: `defaults/${algorithm}`, ChecksumAlgorithm: algorithm }));
      assert.equal(created.ChecksumType, type, algorithm);
    }
    const refused = async (input: { ChecksumAlgorithm?: SdkChecksumAlgorithm; ChecksumType: ChecksumType }): Promise<string> => {
      try {
        await client.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: 'refused', ...input }));
      } catch (error) {
        if (error instanceof S3ServiceException) return `${error.$metadata.httpStatusCode} ${error.name}`;
        throw error;
      }
      return 'created';
    };
    assert.equal(await refused({ ChecksumAlgorithm: 'SHA256', ChecksumType: 'FULL_OBJECT' }), '400 InvalidRequest');
    assert.equal(await refused({ ChecksumAlgorithm: 'CRC64NVME', ChecksumType: 'COMPOSITE' }), '400 InvalidRequest');
    assert.equal(await refused({ ChecksumType: 'FULL_OBJECT' }), '400 InvalidRequest');
  });
});
