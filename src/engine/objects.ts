/**
 * Object operations: PUT, GET/HEAD, DELETE, COPY. Each runs its data part
 * first (stream, hash, fsync a blob) and then one metadata commit, the single
 * moment the new version becomes visible. A failure before the commit
 * discards the blob; a failed condition at the commit discards it too.
 */
import { isUnconditional } from '../meta/conditions.ts';
import type { CommitOutcome, DeleteConditions } from '../meta/metadata-store.ts';
import { judgeQuotaUpFront } from '../meta/quota.ts';
import { NULL_VERSION_ID, type BucketRecord, type ObjectChecksum, type ObjectVersion } from '../meta/types.ts';
import { checksumHeaderName, isValidChecksumValue } from '../util/checksum.ts';
import { newVersionId } from '../util/ids.ts';
import { INLINE_BYTES_MAX, PUT_OBJECT_BYTES_MAX } from '../util/limits.ts';
import { S3Error } from '../util/s3-error.ts';
import { discardAfterFailedCommit, guardedCommit, writeBlob, type WrittenBlob } from './blob-write.ts';
import { checkReadConditions } from './conditions.ts';
import type { EngineContext } from './context.ts';
import { checkWriteLock, deletionGuard, lockAtCommit } from './object-lock.ts';
import { resolveRange } from './range.ts';
import { openVersion, versionChunks } from './segment-read.ts';
import type {
  ChecksumRequest,
  CopyObjectInput,
  CopyResult,
  DeleteResult,
  GetObjectInput,
  GetObjectResult,
  PutObjectInput,
  ReadGate,
  WriteBody,
  WriteResult,
} from './types.ts';

export async function requireBucket(context: EngineContext, name: string): Promise<BucketRecord> {
  const bucket = await context.meta.getBucket(name);
  if (bucket === undefined) throw new S3Error('NoSuchBucket', undefined, { BucketName: name });
  return bucket;
}

/** The version ID a new write gets: fresh when versioning is on, else the null version. */
export function versionIdFor(bucket: BucketRecord): string {
  return bucket.versioning === 'Enabled' ? newVersionId() : NULL_VERSION_ID;
}

export function shownVersionId(bucket: BucketRecord, versionId: string): string | undefined {
  return bucket.versioning === 'Unversioned' ? undefined : versionId;
}

/** A write answers with its version ID only while versioning is on; S3 sends none for null versions of suspended buckets. */
export function writtenVersionId(bucket: BucketRecord, versionId: string): string | undefined {
  return bucket.versioning === 'Enabled' ? versionId : undefined;
}

export async function putObject(context: EngineContext, input: PutObjectInput): Promise<WriteResult> {
  const startedMs = Date.now();
  const bucket = await requireBucket(context, input.bucket);
  checkWriteLock(bucket, { requested: input.lock, bodyChecked: input.contentMd5 !== undefined || input.checksum?.expected !== undefined || input.checksum?.fromTrailer === true }, 'Put Object');
  // A body no state of the bucket could hold is refused before it is read; the commit judges the rest.
  judgeQuotaUpFront(input.bucket, bucket.quota, input.body.declaredBytes);
  const written = await writeBlob(context.blobs, input.body.stream, {
    bucket: input.bucket,
    checksumAlgorithm: input.checksum?.algorithm,
    sizeBytesMax: PUT_OBJECT_BYTES_MAX,
    inlineBytesMax: INLINE_BYTES_MAX,
    declaredBytes: input.body.declaredBytes,
  });
  try {
    if (input.contentMd5 !== undefined && !input.contentMd5.equals(written.md5)) throw new S3Error('BadDigest');
    const checksum = verifyChecksum(input.checksum, written, input.body);
    const version: ObjectVersion = {
      bucket: input.bucket,
      key: input.key,
      versionId: versionIdFor(bucket),
      isDeleteMarker: false,
      lastModifiedMs: Date.now(),
      sizeBytes: written.sizeBytes,
      etag: written.md5.toString('hex'),
      ownerId: input.ownerId,
      ...(input.acl === undefined ? {} : { acl: input.acl }),
      system: input.attributes.system,
      userMetadata: input.attributes.userMetadata,
      checksum,
      tags: input.attributes.tags,
      parts: null,
      segments: written.segments,
      ...(written.inlineData === undefined ? {} : { inlineData: written.inlineData }),
    };
    const lockFor = lockAtCommit(bucket, input.lock, version.lastModifiedMs);
    throwUnlessCommitted(await guardedCommit(context.blobs, version.segments, () => context.meta.commitVersion({ version, conditions: input.conditions, lockFor })), input.bucket, input.key, startedMs);
    return { etag: version.etag, versionId: writtenVersionId(bucket, version.versionId), checksum, version, bucket };
  } catch (error) {
    await discardAfterFailedCommit(written, error);
    throw error;
  }
}

/** Compares the computed checksum with the one the client sent (header or trailer). */
export function verifyChecksum(request: ChecksumRequest | undefined, written: WrittenBlob, body: WriteBody): ObjectChecksum | null {
  if (request === undefined || written.checksum === undefined) return null;
  const actual = written.checksum.toString('base64');
  let expected = request.expected;
  if (request.fromTrailer) {
    expected = body.trailers.get(checksumHeaderName(request.algorithm));
    if (expected === undefined) throw new S3Error('InvalidRequest', `The ${checksumHeaderName(request.algorithm)} trailer was announced but not sent.`);
    if (!isValidChecksumValue(request.algorithm, expected)) {
      throw new S3Error('InvalidRequest', `Value for ${checksumHeaderName(request.algorithm)} trailing header is invalid.`);
    }
  }
  if (expected !== undefined && expected !== actual) {
    throw new S3Error('BadDigest', `The ${request.algorithm} you specified did not match the calculated checksum.`);
  }
  return { algorithm: request.algorithm, value: actual, type: 'FULL_OBJECT' };
}

/**
 * Commit outcomes as S3 errors. A precondition that failed because of a
 * version written while this request was in flight (after `startedMs`) is
 * S3's 409 ConditionalRequestConflict ("a conflicting operation occurred
 * during the upload": fetch the ETag and retry); one that failed on what was
 * already there when the request began is 412. Either way exactly one of
 * concurrent conditional writers commits: the check is inside the commit.
 */
export function throwUnlessCommitted(
  outcome: CommitOutcome,
  bucket: string,
  key: string,
  startedMs?: number,
): asserts outcome is Extract<CommitOutcome, { status: 'committed' }> {
  switch (outcome.status) {
    case 'committed':
      return;
    case 'precondition-failed':
      // Strictly later: a version written in the millisecond this request began may have been acknowledged before it.
      if (startedMs !== undefined && outcome.currentModifiedMs !== undefined && outcome.currentModifiedMs > startedMs) {
        throw new S3Error('ConditionalRequestConflict');
      }
      throw new S3Error('PreconditionFailed');
    case 'no-such-key':
      throw new S3Error('NoSuchKey', undefined, { Key: key });
    case 'no-such-bucket':
      throw new S3Error('NoSuchBucket', undefined, { BucketName: bucket });
    case 'no-such-upload':
      throw new S3Error('NoSuchUpload');
    case 'invalid-part':
      throw new S3Error('InvalidPart');
  }
}

/** The version a copy reads from: a delete marker named by version ID cannot be a copy source (400, not 405). */
export async function findCopySource(context: EngineContext, bucket: BucketRecord, key: string, versionId: string | undefined, gate?: ReadGate): Promise<ObjectVersion> {
  try {
    return await findVersion(context, bucket, key, versionId, gate);
  } catch (error) {
    if (error instanceof S3Error && error.code === 'MethodNotAllowed') {
      throw new S3Error('InvalidRequest', 'The source of a copy request may not specifically refer to a delete marker by version id.');
    }
    throw error;
  }
}

/** Refuses a copy source larger than one request may write, before any byte is read. */
export function checkCopySize(sizeBytes: number, sizeBytesMax: number): void {
  if (sizeBytes > sizeBytesMax) {
    throw new S3Error('InvalidRequest', `The specified copy source is larger than the maximum allowable size for a copy source: ${sizeBytesMax}`);
  }
}

/** Looks up the version a GET/HEAD/copy addresses, with S3's errors for missing keys, versions and delete markers. */
export async function findVersion(
  context: EngineContext,
  bucket: BucketRecord,
  key: string,
  versionId: string | undefined,
  gate?: ReadGate,
): Promise<ObjectVersion> {
  const version = await context.meta.getVersion(bucket.name, key, versionId);
  // The caller's right to read comes first: what follows (404, 405, conditions) would tell a stranger something.
  if (gate !== undefined) gate(bucket, version === undefined || version.isDeleteMarker ? undefined : version);
  if (version === undefined) {
    if (versionId !== undefined) throw new S3Error('NoSuchVersion', undefined, { Key: key, VersionId: versionId });
    throw new S3Error('NoSuchKey', undefined, { Key: key }, { 'x-amz-delete-marker': 'false' });
  }
  if (version.isDeleteMarker) {
    const headers = { 'x-amz-delete-marker': 'true', 'x-amz-version-id': version.versionId };
    if (versionId !== undefined) throw new S3Error('MethodNotAllowed', 'The specified method is not allowed against this resource.', {}, headers);
    throw new S3Error('NoSuchKey', undefined, { Key: key }, headers);
  }
  return version;
}

export async function getObject(context: EngineContext, input: GetObjectInput): Promise<GetObjectResult> {
  const bucket = await requireBucket(context, input.bucket);
  const version = await findVersion(context, bucket, input.key, input.versionId, input.gate);
  checkReadConditions(input.conditions, version.etag, version.lastModifiedMs);
  const range = input.partNumber === undefined ? resolveRange(input.range, version.sizeBytes) : partRange(version, input.partNumber);
  const start = range?.start ?? 0;
  const end = range?.end ?? version.sizeBytes;
  return {
    version,
    bucket,
    range,
    showVersionId: bucket.versioning !== 'Unversioned',
    partsCount: input.partNumber === undefined ? undefined : (version.parts?.length ?? 1),
    open: () => openVersion(context.blobs, context.leases, version, start, end),
  };
}

function partRange(version: ObjectVersion, partNumber: number): { start: number; end: number } | undefined {
  if (version.parts === null) {
    if (partNumber !== 1) throw new S3Error('InvalidPart', 'The requested partnumber is not satisfiable', { PartNumberRequested: String(partNumber) });
    // The whole object is its only part; an empty one has no byte range to show.
    return version.sizeBytes === 0 ? undefined : { start: 0, end: version.sizeBytes };
  }
  let start = 0;
  for (const part of version.parts) {
    if (part.partNumber === partNumber) return { start, end: start + part.sizeBytes };
    start += part.sizeBytes;
  }
  throw new S3Error('InvalidPart', 'The requested partnumber is not satisfiable', { PartNumberRequested: String(partNumber) });
}

/**
 * Deletes a key (a delete marker when versioning is on) or one version.
 * `conditions` (If-Match, x-amz-if-match-last-modified-time,
 * x-amz-if-match-size) are judged in the delete's own transaction against
 * the current version, or the named one: a mismatch is 412; a key with no
 * current version is 404 NoSuchKey, as S3 answers conditional deletes; a
 * named version that is already gone is deleted, whatever they say.
 * A version under Object Lock is refused (AccessDenied) in the same
 * transaction; `bypassGovernance` (x-amz-bypass-governance-retention from a
 * caller allowed it, src/engine/object-lock.ts) lifts GOVERNANCE retention only.
 */
export async function deleteObject(
  context: EngineContext,
  bucketName: string,
  key: string,
  versionId: string | undefined,
  ownerId: string,
  conditions: DeleteConditions = {},
  bypassGovernance = false,
): Promise<DeleteResult> {
  const bucket = await requireBucket(context, bucketName);
  if (versionId !== undefined) {
    const outcome = await context.meta.deleteVersionIf(bucketName, key, versionId, conditions, deletionGuard(bypassGovernance));
    if (outcome.status === 'precondition-failed') throw new S3Error('PreconditionFailed');
    return { versionId, deleteMarker: outcome.status === 'deleted' && outcome.removed.isDeleteMarker };
  }
  if (bucket.versioning === 'Unversioned') {
    const outcome = await context.meta.deleteVersionIf(bucketName, key, NULL_VERSION_ID, conditions, deletionGuard(bypassGovernance));
    if (outcome.status === 'precondition-failed') throw new S3Error('PreconditionFailed');
    if (outcome.status === 'no-such-key' && !isUnconditional(conditions)) throw new S3Error('NoSuchKey', undefined, { Key: key });
    return { versionId: undefined, deleteMarker: false };
  }
  const marker: ObjectVersion = {
    bucket: bucketName,
    key,
    versionId: versionIdFor(bucket),
    isDeleteMarker: true,
    lastModifiedMs: Date.now(),
    sizeBytes: 0,
    etag: '',
    ownerId,
    system: {},
    userMetadata: {},
    checksum: null,
    tags: [],
    parts: null,
    segments: [],
  };
  throwUnlessCommitted(await context.meta.commitVersion({ version: marker, conditions }), bucketName, key);
  return { versionId: marker.versionId, deleteMarker: true };
}

export async function copyObject(context: EngineContext, input: CopyObjectInput): Promise<CopyResult> {
  const startedMs = Date.now();
  const sourceBucket = await requireBucket(context, input.source.bucket);
  const source = await findCopySource(context, sourceBucket, input.source.key, input.source.versionId, input.source.gate);
  checkReadConditions(input.source.conditions, source.etag, source.lastModifiedMs, 'PreconditionFailed');
  checkCopySize(source.sizeBytes, PUT_OBJECT_BYTES_MAX);
  const targetBucket = await requireBucket(context, input.bucket);
  checkWriteLock(targetBucket, { requested: input.lock, bodyChecked: undefined }, 'Copy Object');
  judgeQuotaUpFront(input.bucket, targetBucket.quota, source.sizeBytes);
  const sameObject = input.source.bucket === input.bucket && input.source.key === input.key;
  if (sameObject && input.metadataDirective === 'COPY' && input.source.versionId === undefined && input.checksumAlgorithm === undefined) {
    throw new S3Error(
      'InvalidRequest',
      'This copy request is illegal because it is trying to copy an object to itself without changing the object\'s metadata, storage class, website redirect location or encryption attributes.',
    );
  }
  const checksumAlgorithm = input.checksumAlgorithm ?? source.checksum?.algorithm;
  const body = versionChunks(context.blobs, context.leases, source, 0, source.sizeBytes);
  const written = await writeBlob(context.blobs, body, {
    bucket: input.bucket,
    checksumAlgorithm,
    sizeBytesMax: PUT_OBJECT_BYTES_MAX,
    inlineBytesMax: INLINE_BYTES_MAX,
    declaredBytes: source.sizeBytes,
  });
  try {
    const attributes = input.metadataDirective === 'COPY'
      ? { system: source.system, userMetadata: source.userMetadata }
      : { system: input.attributes.system, userMetadata: input.attributes.userMetadata };
    const checksum: ObjectChecksum | null = written.checksum === undefined || checksumAlgorithm === undefined
      ? null
      : { algorithm: checksumAlgorithm, value: written.checksum.toString('base64'), type: 'FULL_OBJECT' };
    const version: ObjectVersion = {
      bucket: input.bucket,
      key: input.key,
      versionId: versionIdFor(targetBucket),
      isDeleteMarker: false,
      lastModifiedMs: Date.now(),
      sizeBytes: written.sizeBytes,
      etag: written.md5.toString('hex'),
      ownerId: input.ownerId,
      ...(input.acl === undefined ? {} : { acl: input.acl }),
      ...attributes,
      checksum,
      tags: input.taggingDirective === 'COPY' ? source.tags : input.attributes.tags,
      parts: null,
      segments: written.segments,
      ...(written.inlineData === undefined ? {} : { inlineData: written.inlineData }),
    };
    // A copy takes the lock it asks for (or the target bucket's default), never the source's, as AWS.
    const lockFor = lockAtCommit(targetBucket, input.lock, version.lastModifiedMs);
    throwUnlessCommitted(await guardedCommit(context.blobs, version.segments, () => context.meta.commitVersion({ version, conditions: input.conditions, lockFor })), input.bucket, input.key, startedMs);
    return {
      etag: version.etag,
      versionId: writtenVersionId(targetBucket, version.versionId),
      sourceVersionId: shownVersionId(sourceBucket, source.versionId),
      checksum,
      version,
      bucket: targetBucket,
    };
  } catch (error) {
    await discardAfterFailedCommit(written, error);
    throw error;
  }
}
