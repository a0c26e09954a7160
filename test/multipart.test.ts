/**
 * Multipart uploads with the AWS SDK: the whole life cycle, the S3 ETag
 * formula, part-number GETs, UploadPartCopy with a range, listing uploads and
 * parts, and the errors (InvalidPart, InvalidPartOrder, EntityTooSmall,
 * NoSuchUpload). Also checks that completing copies no bytes: the object's
 * blobs on disk are the parts' blobs.
 */
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateBucketCommand,
  CreateMultipartUploadCommand,
  GetObjectAttributesCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  ListPartsCommand,
  PutObjectCommand,
  UploadPartCommand,
  UploadPartCopyCommand,
} from '@aws-sdk/client-s3';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { startTestTalus, uniqueBucket, type TestTalus } from './helpers/talus.ts';

const MiB = 1024 * 1024;

async function countBlobs(dataDir: string): Promise<number> {
  let count = 0;
  for (const directory of await readdir(join(dataDir, 'blobs'))) count += (await readdir(join(dataDir, 'blobs', directory))).length;
  return count;
}

describe('multipart uploads', () => {
  let talus: TestTalus;
  let bucket: string;
  before(async () => {
    talus = await startTestTalus();
    bucket = uniqueBucket();
    await talus.client.send(new CreateBucketCommand({ Bucket: bucket }));
  });
  after(async () => {
    await talus.stop();
  });

  async function upload(key: string, parts: Buffer[]): Promise<{ uploadId: string; etags: string[] }> {
    const created = await talus.client.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: key, ContentType: 'application/x-mp', Metadata: { m: 'p' } }));
    const uploadId = created.UploadId!;
    const etags: string[] = [];
    for (const [index, body] of parts.entries()) {
      const part = await talus.client.send(new UploadPartCommand({ Bucket: bucket, Key: key, UploadId: uploadId, PartNumber: index + 1, Body: body }));
      etags.push(part.ETag!);
    }
    return { uploadId, etags };
  }

  test('upload, list parts, complete: ETag formula, bytes, metadata, part GETs, no byte copied', async () => {
    const parts = [randomBytes(5 * MiB), randomBytes(5 * MiB), randomBytes(1234)];
    const { uploadId, etags } = await upload('mp/object', parts);
    const listed = await talus.client.send(new ListPartsCommand({ Bucket: bucket, Key: 'mp/object', UploadId: uploadId }));
    assert.deepEqual(listed.Parts?.map((part) => part.PartNumber), [1, 2, 3]);
    assert.deepEqual(listed.Parts?.map((part) => part.Size), [5 * MiB, 5 * MiB, 1234]);
    const uploads = await talus.client.send(new ListMultipartUploadsCommand({ Bucket: bucket }));
    assert.ok(uploads.Uploads?.some((entry) => entry.UploadId === uploadId && entry.Key === 'mp/object'));
    const blobsBefore = await countBlobs(talus.dataDir);
    const completed = await talus.client.send(
      new CompleteMultipartUploadCommand({ Bucket: bucket, Key: 'mp/object', UploadId: uploadId, MultipartUpload: { Parts: etags.map((ETag, i) => ({ ETag, PartNumber: i + 1 })) } }),
    );
    assert.equal(await countBlobs(talus.dataDir), blobsBefore, 'completing wrote no new blob');
    const expected = createHash('md5').update(Buffer.concat(parts.map((part) => createHash('md5').update(part).digest()))).digest('hex');
    assert.equal(completed.ETag, `"${expected}-3"`);
    const got = await talus.client.send(new GetObjectCommand({ Bucket: bucket, Key: 'mp/object' }));
    assert.equal(got.ETag, `"${expected}-3"`);
    assert.equal(got.ContentType, 'application/x-mp');
    assert.deepEqual(got.Metadata, { m: 'p' });
    assert.ok(Buffer.from(await got.Body!.transformToByteArray()).equals(Buffer.concat(parts)));
    const second = await talus.client.send(new GetObjectCommand({ Bucket: bucket, Key: 'mp/object', PartNumber: 2 }));
    assert.equal(second.PartsCount, 3);
    assert.equal(second.ContentLength, 5 * MiB);
    assert.ok(Buffer.from(await second.Body!.transformToByteArray()).equals(parts[1]!));
    const head = await talus.client.send(new HeadObjectCommand({ Bucket: bucket, Key: 'mp/object', PartNumber: 3 }));
    assert.equal(head.ContentLength, 1234);
    // A range across the part boundary.
    const ranged = await talus.client.send(new GetObjectCommand({ Bucket: bucket, Key: 'mp/object', Range: `bytes=${5 * MiB - 10}-${5 * MiB + 9}` }));
    assert.ok(Buffer.from(await ranged.Body!.transformToByteArray()).equals(Buffer.concat(parts).subarray(5 * MiB - 10, 5 * MiB + 10)));
    await assert.rejects(talus.client.send(new ListPartsCommand({ Bucket: bucket, Key: 'mp/object', UploadId: uploadId })), { name: 'NoSuchUpload' });
  });

  test('GetObjectAttributes: size, ETag, storage class and paginated parts', async () => {
    const parts = [randomBytes(5 * MiB), randomBytes(5 * MiB), randomBytes(7)];
    const { uploadId, etags } = await upload('mp/attributes', parts);
    const completed = await talus.client.send(
      new CompleteMultipartUploadCommand({ Bucket: bucket, Key: 'mp/attributes', UploadId: uploadId, MultipartUpload: { Parts: etags.map((ETag, i) => ({ ETag, PartNumber: i + 1 })) } }),
    );
    const attributes = await talus.client.send(
      new GetObjectAttributesCommand({ Bucket: bucket, Key: 'mp/attributes', ObjectAttributes: ['ETag', 'ObjectParts', 'StorageClass', 'ObjectSize'], MaxParts: 1, PartNumberMarker: '1' }),
    );
    assert.equal(attributes.ObjectSize, 10 * MiB + 7);
    assert.equal(`"${attributes.ETag}"`, completed.ETag);
    assert.equal(attributes.StorageClass, 'STANDARD');
    assert.equal(attributes.ObjectParts?.TotalPartsCount, 3);
    assert.equal(attributes.ObjectParts?.IsTruncated, true);
    assert.equal(attributes.ObjectParts?.NextPartNumberMarker, '2');
    assert.deepEqual(attributes.ObjectParts?.Parts?.map((part) => [part.PartNumber, part.Size]), [[2, 5 * MiB]]);
    await assert.rejects(
      talus.client.send(new GetObjectAttributesCommand({ Bucket: bucket, Key: 'mp/absent', ObjectAttributes: ['ETag'] })),
      { name: 'NoSuchKey' },
    );
  });

  test('a part under 5 MiB that is not the last answers EntityTooSmall', async () => {
    const { uploadId, etags } = await upload('mp/small', [randomBytes(1024), randomBytes(1024)]);
    await assert.rejects(
      talus.client.send(new CompleteMultipartUploadCommand({ Bucket: bucket, Key: 'mp/small', UploadId: uploadId, MultipartUpload: { Parts: etags.map((ETag, i) => ({ ETag, PartNumber: i + 1 })) } })),
      { name: 'EntityTooSmall' },
    );
    await assert.rejects(talus.client.send(new HeadObjectCommand({ Bucket: bucket, Key: 'mp/small' })));
  });

  test('wrong ETags, unknown parts and bad order answer InvalidPart / InvalidPartOrder', async () => {
    const { uploadId, etags } = await upload('mp/bad', [randomBytes(5 * MiB), randomBytes(10)]);
    const complete = (Parts: { ETag: string; PartNumber: number }[]) =>
      talus.client.send(new CompleteMultipartUploadCommand({ Bucket: bucket, Key: 'mp/bad', UploadId: uploadId, MultipartUpload: { Parts } }));
    await assert.rejects(complete([{ ETag: '"00000000000000000000000000000000"', PartNumber: 1 }]), { name: 'InvalidPart' });
    await assert.rejects(complete([{ ETag: etags[0]!, PartNumber: 7 }]), { name: 'InvalidPart' });
    await assert.rejects(complete([{ ETag: etags[1]!, PartNumber: 2 }, { ETag: etags[0]!, PartNumber: 1 }]), { name: 'InvalidPartOrder' });
    // Completing with only the first part is allowed (a single last part may be any size).
    await complete([{ ETag: etags[0]!, PartNumber: 1 }]);
    const head = await talus.client.send(new HeadObjectCommand({ Bucket: bucket, Key: 'mp/bad' }));
    assert.equal(head.ContentLength, 5 * MiB);
  });

  test('abort removes the upload; later calls answer NoSuchUpload', async () => {
    const { uploadId } = await upload('mp/abort', [randomBytes(100)]);
    await talus.client.send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: 'mp/abort', UploadId: uploadId }));
    await assert.rejects(talus.client.send(new UploadPartCommand({ Bucket: bucket, Key: 'mp/abort', UploadId: uploadId, PartNumber: 2, Body: 'x' })), { name: 'NoSuchUpload' });
    await assert.rejects(talus.client.send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: 'mp/abort', UploadId: uploadId })), { name: 'NoSuchUpload' });
  });

  test('UploadPartCopy copies a range of another object', async () => {
    const source = randomBytes(6 * MiB);
    await talus.client.send(new PutObjectCommand({ Bucket: bucket, Key: 'mp/source', Body: source }));
    const created = await talus.client.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: 'mp/copied' }));
    const first = await talus.client.send(
      new UploadPartCopyCommand({ Bucket: bucket, Key: 'mp/copied', UploadId: created.UploadId, PartNumber: 1, CopySource: `${bucket}/mp/source`, CopySourceRange: `bytes=0-${5 * MiB - 1}` }),
    );
    const second = await talus.client.send(
      new UploadPartCopyCommand({ Bucket: bucket, Key: 'mp/copied', UploadId: created.UploadId, PartNumber: 2, CopySource: `${bucket}/mp/source`, CopySourceRange: `bytes=${5 * MiB}-${6 * MiB - 1}` }),
    );
    await talus.client.send(
      new CompleteMultipartUploadCommand({
        Bucket: bucket,
        Key: 'mp/copied',
        UploadId: created.UploadId,
        MultipartUpload: { Parts: [{ ETag: first.CopyPartResult!.ETag!, PartNumber: 1 }, { ETag: second.CopyPartResult!.ETag!, PartNumber: 2 }] },
      }),
    );
    const got = await talus.client.send(new GetObjectCommand({ Bucket: bucket, Key: 'mp/copied' }));
    assert.ok(Buffer.from(await got.Body!.transformToByteArray()).equals(source));
  });

  test('If-None-Match * on CompleteMultipartUpload refuses to overwrite', async () => {
    await talus.client.send(new PutObjectCommand({ Bucket: bucket, Key: 'mp/exists', Body: 'present' }));
    const { uploadId, etags } = await upload('mp/exists', [randomBytes(10)]);
    await assert.rejects(
      talus.client.send(new CompleteMultipartUploadCommand({ Bucket: bucket, Key: 'mp/exists', UploadId: uploadId, IfNoneMatch: '*', MultipartUpload: { Parts: [{ ETag: etags[0]!, PartNumber: 1 }] } })),
      (error: Error & { $metadata?: { httpStatusCode?: number } }) => error.$metadata?.httpStatusCode === 412,
    );
    const got = await talus.client.send(new GetObjectCommand({ Bucket: bucket, Key: 'mp/exists' }));
    assert.equal(await got.Body!.transformToString(), 'present');
  });
});
