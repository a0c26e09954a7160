/**
 * Multipart uploads. Each part is its own durable blob, recorded when it
 * arrives. Completing writes metadata only: the new version's segments are
 * the parts' blobs, in order, so no byte is copied again.
 */
import { createHash } from 'node:crypto';
import type { Acl } from '../authz/index.ts';
import type { BucketRecord, ObjectChecksum, ObjectLockState, ObjectVersion, PartRecord, Segment, UploadRecord } from '../meta/types.ts';
import type { ChecksumAlgorithm, ChecksumType } from '../util/checksum.ts';
import { combineCrc, compositeChecksum, supportsFullObject } from '../util/checksum.ts';
import { newUploadId } from '../util/ids.ts';
import { PART_BYTES_MAX, PART_BYTES_MIN, PART_NUMBER_MAX } from '../util/limits.ts';
import { S3Error } from '../util/s3-error.ts';
import { discardAfterFailedCommit, guardedCommit, writeBlob } from './blob-write.ts';
import { checkReadConditions } from './conditions.ts';
import type { EngineContext } from './context.ts';
import { checkWriteLock, lockAtCommit } from './object-lock.ts';
import { checkCopySize, findCopySource, requireBucket, shownVersionId, throwUnlessCommitted, verifyChecksum, versionIdFor, writtenVersionId } from './objects.ts';
import { resolveRange } from './range.ts';
import { versionChunks } from './segment-read.ts';
import type { ChecksumRequest, CopySource, ObjectAttributes, WriteBody, WriteResult } from './types.ts';
import type { CommitConditions } from '../meta/metadata-store.ts';
import { judgeQuotaUpFront } from '../meta/quota.ts';

export interface CreateUploadInput {
  bucket: string;
  key: string;
  ownerId: string;
  acl?: Acl | undefined;
  attributes: ObjectAttributes;
  checksumAlgorithm: ChecksumAlgorithm | undefined;
  checksumType: ChecksumType | undefined;
  /** x-amz-object-lock-* for the completed object; undefined: none sent. */
  lock?: ObjectLockState | undefined;
}

export async function createMultipartUpload(context: EngineContext, input: CreateUploadInput): Promise<UploadRecord> {
  const bucket = await requireBucket(context, input.bucket);
  checkWriteLock(bucket, { requested: input.lock, bodyChecked: undefined }, 'Create Multipart Upload');
  let checksumType = input.checksumType ?? null;
  if (input.checksumAlgorithm !== undefined && checksumType === null) {
    // S3's default: CRC64NVME exists only as a full-object checksum, the others default to composite.
    checksumType = input.checksumAlgorithm === 'CRC64NVME' ? 'FULL_OBJECT' : 'COMPOSITE';
  }
  if (checksumType !== null && input.checksumAlgorithm === undefined) {
    throw new S3Error('InvalidRequest', 'The x-amz-checksum-type header can only be used with the x-amz-checksum-algorithm header.');
  }
  if (checksumType === 'FULL_OBJECT' && input.checksumAlgorithm !== undefined && !supportsFullObject(input.checksumAlgorithm)) {
    throw new S3Error('InvalidRequest', `The FULL_OBJECT checksum type cannot be used with the ${input.checksumAlgorithm.toLowerCase()} checksum algorithm.`);
  }
  if (checksumType === 'COMPOSITE' && input.checksumAlgorithm === 'CRC64NVME') {
    throw new S3Error('InvalidRequest', 'The COMPOSITE checksum type cannot be used with the crc64nvme checksum algorithm.');
  }
  const record: UploadRecord = {
    uploadId: newUploadId(),
    bucket: input.bucket,
    key: input.key,
    createdMs: Date.now(),
    ownerId: input.ownerId,
    system: input.attributes.system,
    userMetadata: input.attributes.userMetadata,
    tags: input.attributes.tags,
    checksumAlgorithm: input.checksumAlgorithm ?? null,
    checksumType,
    ...(input.acl === undefined ? {} : { acl: input.acl }),
    ...(input.lock?.retention === undefined ? {} : { retention: input.lock.retention }),
    ...(input.lock?.legalHold === undefined ? {} : { legalHold: input.lock.legalHold }),
  };
  await context.meta.createUpload(record);
  return record;
}

export async function requireUpload(context: EngineContext, bucket: string, key: string, uploadId: string): Promise<UploadRecord> {
  return (await requireBucketAndUpload(context, bucket, key, uploadId)).upload;
}

/** The bucket (NoSuchBucket) and the upload in it (NoSuchUpload), each read once. */
async function requireBucketAndUpload(context: EngineContext, bucketName: string, key: string, uploadId: string): Promise<{ bucket: BucketRecord; upload: UploadRecord }> {
  const bucket = await requireBucket(context, bucketName);
  const upload = await context.meta.getUpload(bucketName, key, uploadId);
  if (upload === undefined) throw new S3Error('NoSuchUpload', undefined, { UploadId: uploadId });
  return { bucket, upload };
}

export function checkPartNumber(partNumber: number): void {
  if (!Number.isInteger(partNumber) || partNumber < 1 || partNumber > PART_NUMBER_MAX) {
    throw new S3Error('InvalidArgument', `Part number must be an integer between 1 and ${PART_NUMBER_MAX}, inclusive`, {
      ArgumentName: 'partNumber',
      ArgumentValue: String(partNumber),
    });
  }
}

export interface UploadPartInput {
  bucket: string;
  key: string;
  uploadId: string;
  partNumber: number;
  body: WriteBody;
  contentMd5: Buffer | undefined;
  checksum: ChecksumRequest | undefined;
}

/** Stores one part; returns it with the algorithm its checksum was computed with (the request's, else the upload's). */
export async function uploadPart(context: EngineContext, input: UploadPartInput): Promise<{ part: PartRecord; checksumAlgorithm: ChecksumAlgorithm | undefined }> {
  checkPartNumber(input.partNumber);
  const { bucket, upload } = await requireBucketAndUpload(context, input.bucket, input.key, input.uploadId);
  const uploadLock = upload.retention === undefined && upload.legalHold === undefined ? undefined : { retention: upload.retention, legalHold: upload.legalHold };
  // A part larger than the whole quota can never fit: refused before it is read. Others are judged as they are
  // recorded (putPart counts parts against the bucket's quota, in its transaction).
  judgeQuotaUpFront(input.bucket, bucket.quota, input.body.declaredBytes);
  checkWriteLock(bucket, { requested: uploadLock, bodyChecked: input.contentMd5 !== undefined || input.checksum?.expected !== undefined || input.checksum?.fromTrailer === true }, 'Put Part');
  if (input.checksum !== undefined && upload.checksumAlgorithm !== null && input.checksum.algorithm !== upload.checksumAlgorithm) {
    throw new S3Error('InvalidRequest', `Checksum Type mismatch occurred, expected checksum Type: ${upload.checksumAlgorithm.toLowerCase()}, actual checksum Type: ${input.checksum.algorithm.toLowerCase()}`);
  }
  const checksumRequest: ChecksumRequest | undefined = input.checksum ??
    (upload.checksumAlgorithm === null ? undefined : { algorithm: upload.checksumAlgorithm, expected: undefined, fromTrailer: false });
  const written = await writeBlob(context.blobs, input.body.stream, {
    bucket: input.bucket,
    checksumAlgorithm: checksumRequest?.algorithm,
    sizeBytesMax: PART_BYTES_MAX,
    inlineBytesMax: 0,
    declaredBytes: input.body.declaredBytes,
  });
  try {
    if (input.contentMd5 !== undefined && !input.contentMd5.equals(written.md5)) throw new S3Error('BadDigest');
    const checksum = verifyChecksum(checksumRequest, written, input.body);
    const part = await recordPart(context, input.uploadId, input.partNumber, written.segments, written.sizeBytes, written.md5, checksum);
    return { part, checksumAlgorithm: checksumRequest?.algorithm };
  } catch (error) {
    await discardAfterFailedCommit(written, error);
    throw error;
  }
}

async function recordPart(
  context: EngineContext,
  uploadId: string,
  partNumber: number,
  segments: Segment[],
  sizeBytes: number,
  md5: Buffer,
  checksum: ObjectChecksum | null,
): Promise<PartRecord> {
  // An empty part still needs a blob identity so the part table stays uniform.
  const blobId = segments[0]?.blobId ?? '';
  const part: PartRecord = {
    uploadId,
    partNumber,
    sizeBytes,
    etag: md5.toString('hex'),
    lastModifiedMs: Date.now(),
    checksum: checksum?.value ?? null,
    blobId,
    ...(segments[0]?.location === undefined ? {} : { location: segments[0].location }),
  };
  if (!(await guardedCommit(context.blobs, segments, () => context.meta.putPart(part)))) throw new S3Error('NoSuchUpload', undefined, { UploadId: uploadId });
  return part;
}

export interface UploadPartCopyInput {
  bucket: string;
  key: string;
  uploadId: string;
  partNumber: number;
  source: CopySource;
}

export async function uploadPartCopy(
  context: EngineContext,
  input: UploadPartCopyInput,
): Promise<{ part: PartRecord; sourceVersionId: string | undefined; checksumAlgorithm: ChecksumAlgorithm | undefined }> {
  checkPartNumber(input.partNumber);
  const upload = await requireUpload(context, input.bucket, input.key, input.uploadId);
  const sourceBucket = await requireBucket(context, input.source.bucket);
  const source = await findCopySource(context, sourceBucket, input.source.key, input.source.versionId, input.source.gate);
  checkReadConditions(input.source.conditions, source.etag, source.lastModifiedMs, 'PreconditionFailed');
  let start = 0;
  let end = source.sizeBytes;
  if (input.source.range !== undefined) {
    const range = /^bytes=(\d+)-(\d+)$/.exec(input.source.range);
    if (range === null || Number(range[2]) < Number(range[1])) {
      throw new S3Error('InvalidArgument', 'The x-amz-copy-source-range value must be of the form bytes=first-last where first and last are the zero-based offsets of the first and last bytes to copy');
    }
    if (Number(range[2]) >= source.sizeBytes) {
      throw new S3Error('InvalidRange', `The requested range is not satisfiable`);
    }
    const resolved = resolveRange(input.source.range, source.sizeBytes);
    if (resolved !== undefined) ({ start, end } = resolved);
  }
  checkCopySize(end - start, PART_BYTES_MAX);
  const body = versionChunks(context.blobs, context.leases, source, start, end);
  const algorithm = upload.checksumAlgorithm ?? undefined;
  const written = await writeBlob(context.blobs, body, { bucket: input.bucket, checksumAlgorithm: algorithm, sizeBytesMax: PART_BYTES_MAX, inlineBytesMax: 0, declaredBytes: end - start });
  try {
    const checksum = algorithm === undefined || written.checksum === undefined
      ? null
      : { algorithm, value: written.checksum.toString('base64'), type: 'FULL_OBJECT' as const };
    const part = await recordPart(context, input.uploadId, input.partNumber, written.segments, written.sizeBytes, written.md5, checksum);
    return { part, sourceVersionId: shownVersionId(sourceBucket, source.versionId), checksumAlgorithm: algorithm };
  } catch (error) {
    await discardAfterFailedCommit(written, error);
    throw error;
  }
}

export interface CompletePartInput {
  partNumber: number;
  etag: string;
  checksum: string | undefined;
}

export interface CompleteUploadInput {
  bucket: string;
  key: string;
  uploadId: string;
  parts: CompletePartInput[];
  conditions: CommitConditions;
  /** A whole-object checksum the client sent with the request, to verify against. */
  expectedChecksum: { algorithm: ChecksumAlgorithm; value: string } | undefined;
  checksumType: ChecksumType | undefined;
}

export async function completeMultipartUpload(context: EngineContext, request: CompleteUploadInput): Promise<WriteResult> {
  const startedMs = Date.now();
  const input = { ...request, parts: lastListedParts(request.parts) };
  const bucket = await requireBucket(context, input.bucket);
  const upload = await context.meta.getUpload(input.bucket, input.key, input.uploadId);
  if (upload === undefined) return repeatedCompletion(context, bucket, input);
  if (input.parts.length === 0) throw new S3Error('MalformedXML', 'You must specify at least one part');
  const stored = new Map((await context.meta.listParts(input.uploadId, 0, PART_NUMBER_MAX)).map((part) => [part.partNumber, part]));
  const chosen = chooseParts(input.parts, stored);
  const checksum = completeChecksum(upload, chosen, input);
  const md5 = createHash('md5');
  for (const part of chosen) md5.update(Buffer.from(part.etag, 'hex'));
  const version: ObjectVersion = {
    bucket: input.bucket,
    key: input.key,
    versionId: versionIdFor(bucket),
    isDeleteMarker: false,
    lastModifiedMs: Date.now(),
    sizeBytes: chosen.reduce((sum, part) => sum + part.sizeBytes, 0),
    etag: `${md5.digest('hex')}-${chosen.length}`,
    ownerId: upload.ownerId,
    ...(upload.acl === undefined ? {} : { acl: upload.acl }),
    system: upload.system,
    userMetadata: upload.userMetadata,
    checksum,
    tags: upload.tags,
    parts: chosen.map((part) => ({
      partNumber: part.partNumber,
      sizeBytes: part.sizeBytes,
      etag: part.etag,
      ...(part.checksum === null ? {} : { checksum: part.checksum }),
    })),
    segments: chosen.filter((part) => part.sizeBytes > 0).map((part): Segment => (part.location === undefined ? { blobId: part.blobId, sizeBytes: part.sizeBytes } : { blobId: part.blobId, sizeBytes: part.sizeBytes, location: part.location })),
    completedUploadId: input.uploadId,
  };
  const lockFor = lockAtCommit(bucket, { retention: upload.retention, legalHold: upload.legalHold }, version.lastModifiedMs);
  const outcome = await context.meta.commitVersion({ version, conditions: input.conditions, completesUploadId: input.uploadId, lockFor });
  throwUnlessCommitted(outcome, input.bucket, input.key, startedMs);
  return { etag: version.etag, versionId: writtenVersionId(bucket, version.versionId), checksum, version, bucket };
}

/**
 * A part number listed several times in a row keeps its last entry, as Ceph
 * RGW does (ceph/s3-tests test_multipart_resend_first_finishes_last: a part
 * sent twice at once is listed once per answer, and the upload that finished
 * last is the part the store kept, since putPart replaces in commit order).
 * Part numbers that go down stay in the list: chooseParts refuses them.
 */
function lastListedParts(parts: CompletePartInput[]): CompletePartInput[] {
  const kept: CompletePartInput[] = [];
  for (const part of parts) {
    if (kept.at(-1)?.partNumber === part.partNumber) kept[kept.length - 1] = part;
    else kept.push(part);
  }
  return kept;
}

/**
 * A CompleteMultipartUpload retried after it succeeded (the client lost the
 * answer) gets the same answer again, as long as the object it made is still
 * the current version; otherwise the upload is simply gone.
 */
async function repeatedCompletion(context: EngineContext, bucket: BucketRecord, input: CompleteUploadInput): Promise<WriteResult> {
  const current = await context.meta.getVersion(input.bucket, input.key);
  const sameParts = current?.parts?.length === input.parts.length &&
    current.parts.every((part, index) => part.partNumber === input.parts[index]?.partNumber && part.etag === input.parts[index]?.etag);
  if (current === undefined || current.isDeleteMarker || current.completedUploadId !== input.uploadId || !sameParts) {
    throw new S3Error('NoSuchUpload', undefined, { UploadId: input.uploadId });
  }
  return { etag: current.etag, versionId: writtenVersionId(bucket, current.versionId), checksum: current.checksum, version: current, bucket };
}

/** Validates the client's part list against what was uploaded (order, existence, ETags, sizes). */
function chooseParts(requested: CompletePartInput[], stored: Map<number, PartRecord>): PartRecord[] {
  const chosen: PartRecord[] = [];
  let previous = 0;
  for (const entry of requested) {
    if (entry.partNumber <= previous) throw new S3Error('InvalidPartOrder');
    previous = entry.partNumber;
    const part = stored.get(entry.partNumber);
    if (part === undefined || part.etag !== entry.etag) {
      throw new S3Error('InvalidPart', undefined, { PartNumber: String(entry.partNumber), ETag: entry.etag });
    }
    chosen.push(part);
  }
  for (let i = 0; i < chosen.length - 1; i++) {
    const part = chosen[i]!;
    if (part.sizeBytes < PART_BYTES_MIN) {
      throw new S3Error('EntityTooSmall', undefined, {
        ProposedSize: String(part.sizeBytes),
        MinSizeAllowed: String(PART_BYTES_MIN),
        PartNumber: String(part.partNumber),
        ETag: part.etag,
      });
    }
  }
  return chosen;
}

function completeChecksum(upload: UploadRecord, parts: PartRecord[], input: CompleteUploadInput): ObjectChecksum | null {
  const algorithm = upload.checksumAlgorithm;
  if (algorithm === null) return null;
  const type = upload.checksumType ?? 'COMPOSITE';
  if (input.checksumType !== undefined && input.checksumType !== type) {
    throw new S3Error('InvalidRequest', `The upload was created using the ${type} checksum mode. The complete request must use the same checksum mode.`);
  }
  const digests: Buffer[] = [];
  parts.forEach((part, index) => {
    const sent = input.parts[index]?.checksum;
    if (part.checksum === null) throw new S3Error('InvalidRequest', `The upload was created using a ${algorithm.toLowerCase()} checksum. Part ${part.partNumber} has no checksum.`);
    if (sent !== undefined && sent !== part.checksum) {
      throw new S3Error('InvalidPart', undefined, { PartNumber: String(part.partNumber) });
    }
    digests.push(Buffer.from(part.checksum, 'base64'));
  });
  let value: string;
  if (type === 'FULL_OBJECT') {
    const crc = algorithm === 'CRC32' || algorithm === 'CRC32C' || algorithm === 'CRC64NVME' ? algorithm : undefined;
    if (crc === undefined) throw new S3Error('InvalidRequest', 'FULL_OBJECT checksums need a CRC algorithm.');
    value = combineCrc(crc, parts.map((part, index) => ({ digest: digests[index]!, sizeBytes: part.sizeBytes }))).toString('base64');
  } else {
    value = compositeChecksum(algorithm, digests).toString('base64');
  }
  if (input.expectedChecksum !== undefined) {
    const expected = input.expectedChecksum.value.replace(/-\d+$/, '');
    if (input.expectedChecksum.algorithm !== algorithm || expected !== value) {
      throw new S3Error('BadDigest', `The ${algorithm} you specified did not match the calculated checksum.`);
    }
  }
  return { algorithm, value, type };
}

export async function abortMultipartUpload(context: EngineContext, bucket: string, key: string, uploadId: string): Promise<void> {
  await requireBucket(context, bucket);
  if (!(await context.meta.abortUpload(bucket, key, uploadId))) throw new S3Error('NoSuchUpload', undefined, { UploadId: uploadId });
}
