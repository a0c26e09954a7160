/**
 * S3 Object Lock in the engine: what a bucket's lock configuration says, which
 * versions are locked, and the checks every path that removes or re-locks a
 * version runs. The checks run inside the metadata transaction that makes the
 * change (as guards), so no concurrent request can slip between check and
 * change; every delete path — DeleteObject, DeleteObjects, lifecycle — goes
 * through `deleteObject` and so through `deletionGuard`.
 * https://docs.aws.amazon.com/AmazonS3/latest/userguide/object-lock.html
 */
import type { BucketGuard, VersionGuard } from '../meta/metadata-store.ts';
import { isLockedAt, type BucketRecord, type ObjectLockState, type ObjectRetention, type ObjectVersion, type RetentionMode, type VersioningState } from '../meta/types.ts';
import { assert } from '../util/assert.ts';
import { S3Error } from '../util/s3-error.ts';
import type { EngineContext } from './context.ts';
import { findVersion, requireBucket, shownVersionId } from './objects.ts';

const DAY_MS = 86_400_000;
/** AWS bounds a default retention period at 100 years (36,500 days). */
export const DEFAULT_RETENTION_DAYS_MAX = 36_500;
export const DEFAULT_RETENTION_YEARS_MAX = 100;

/** A bucket's default retention rule: exactly one of days and years, a positive integer. */
export interface DefaultRetention {
  mode: RetentionMode;
  days?: number;
  years?: number;
}

/** The bucket's `objectLock` configuration document (BucketRecord.configs.objectLock), as JSON. */
export interface BucketObjectLock {
  enabled: true;
  defaultRetention?: DefaultRetention;
}

/** Parsed documents per cached bucket record (records are replaced on every change): one parse per load, not per request. */
const parsed = new WeakMap<BucketRecord, BucketObjectLock | null>();

/** The bucket's lock configuration; undefined when Object Lock is not enabled on it. */
export function bucketObjectLock(bucket: BucketRecord): BucketObjectLock | undefined {
  let config = parsed.get(bucket);
  if (config === undefined) {
    const document = bucket.configs?.objectLock;
    config = document === undefined ? null : parseDocument(document);
    parsed.set(bucket, config);
  }
  return config ?? undefined;
}

function parseDocument(document: string): BucketObjectLock {
  const config = JSON.parse(document) as BucketObjectLock;
  assert(config.enabled === true, 'a stored object lock document enables object lock');
  const rule = config.defaultRetention;
  if (rule !== undefined) assert((rule.days === undefined) !== (rule.years === undefined), 'a default retention has days or years');
  return config;
}

export function objectLockDocument(config: BucketObjectLock): string {
  const rule = config.defaultRetention;
  if (rule !== undefined) {
    assert((rule.days === undefined) !== (rule.years === undefined), 'a default retention has days or years, not both');
    assert(Number.isInteger(rule.days ?? rule.years) && (rule.days ?? rule.years ?? 0) > 0, 'a default retention period is a positive integer');
  }
  return JSON.stringify(config);
}

/** Locked: a legal hold is on, or a retention has not expired yet. What every delete path refuses. */
export function isVersionLocked(version: Pick<ObjectVersion, 'retention' | 'legalHold'>, nowMs: number): boolean {
  return isLockedAt(version, nowMs);
}

function lockedError(): S3Error {
  return new S3Error('AccessDenied', 'Access Denied because object protected by object lock.');
}

/**
 * Refuses to remove a locked version: a legal hold always, COMPLIANCE
 * retention always (root included), GOVERNANCE retention unless the caller
 * asked for the bypass and may use it (`bypassGovernance`, decided by
 * authorization). Judged at the moment of the transaction.
 */
export function deletionGuard(bypassGovernance: boolean): VersionGuard {
  return (version) => {
    const nowMs = Date.now();
    if (!isVersionLocked(version, nowMs)) return;
    if (version.legalHold === true) throw lockedError();
    if (version.retention?.mode === 'GOVERNANCE' && bypassGovernance) return;
    throw lockedError();
  };
}

/**
 * PutObjectRetention on a version that has `current`: an unexpired retention
 * may only be kept or extended in the same mode; anything else (shorter,
 * another mode, removed) needs the governance bypass, and is refused outright
 * under COMPLIANCE.
 */
export function checkRetentionChange(current: ObjectRetention | undefined, next: ObjectRetention | undefined, bypassGovernance: boolean, nowMs: number): void {
  if (current === undefined || current.retainUntilMs <= nowMs) return;
  if (next !== undefined && next.mode === current.mode && next.retainUntilMs >= current.retainUntilMs) return;
  if (current.mode === 'GOVERNANCE' && bypassGovernance) return;
  throw lockedError();
}

/** PutBucketVersioning: a lock-enabled bucket keeps versioning on (checked in the transaction that would change it). */
export function versioningGuard(state: VersioningState): BucketGuard {
  return (bucket) => {
    if (state !== 'Enabled' && bucketObjectLock(bucket) !== undefined) {
      throw new S3Error('InvalidBucketState', 'An Object Lock configuration is present on this bucket, so the versioning state cannot be changed.');
    }
  };
}

/** PutObjectLockConfiguration: on a lock-enabled bucket, or one whose versioning is Enabled (which it then enables, as AWS does). */
export const lockConfigurationGuard: BucketGuard = (bucket) => {
  if (bucketObjectLock(bucket) === undefined && bucket.versioning !== 'Enabled') {
    throw new S3Error('InvalidBucketState', 'Versioning must be \'Enabled\' on the bucket to apply a Object Lock configuration');
  }
};

/** What a request asked for a new version's lock, and whether its body carries an integrity check. */
export interface WriteLockRequest {
  /** The x-amz-object-lock-* headers; undefined when none was sent. */
  requested: ObjectLockState | undefined;
  /** Content-MD5 or an x-amz-checksum-* value (header or trailer) came with the body; undefined: the write has no body (copy). */
  bodyChecked: boolean | undefined;
}

/**
 * Validates a write's lock request against its bucket before any byte is
 * stored: lock headers need a lock-enabled bucket, and a body that gets a
 * lock (asked for, or the bucket's default retention) needs Content-MD5 or
 * a checksum, as AWS requires. `operation` names the request in AWS's
 * message ('Put Object', 'Put Part').
 */
export function checkWriteLock(bucket: BucketRecord, request: WriteLockRequest, operation: string): void {
  const config = bucketObjectLock(bucket);
  if (request.requested !== undefined && config === undefined) throw new S3Error('InvalidRequest', 'Bucket is missing ObjectLockConfiguration');
  if (config === undefined || request.bodyChecked !== false) return;
  if (request.requested !== undefined || config.defaultRetention !== undefined) {
    throw new S3Error('InvalidRequest', `Content-MD5 OR x-amz-checksum- HTTP header is required for ${operation} requests with Object Lock parameters`);
  }
}

/**
 * The lock a new version gets: what the request asked for, else the
 * bucket's default retention counted from the version's creation.
 * Empty for buckets without Object Lock.
 */
export function newVersionLock(bucket: BucketRecord, requested: ObjectLockState | undefined, createdMs: number): ObjectLockState {
  return lockUnder(bucketObjectLock(bucket), requested, createdMs);
}

/**
 * A commit's `lockFor` (CommitRequest): the new version's lock, decided again
 * in the commit's transaction from the bucket's lock document as it is then.
 * Unchanged since `bucket` was read (nearly always), it is the lock computed
 * now, for the cost of a string compare; changed (a default retention set or
 * removed, or lock enabled on a versioned bucket, while the body streamed), it
 * is computed from the new document.
 */
export function lockAtCommit(bucket: BucketRecord, requested: ObjectLockState | undefined, createdMs: number): (objectLockDocument: string | undefined) => ObjectLockState {
  const known = bucket.configs?.objectLock;
  const atStart = newVersionLock(bucket, requested, createdMs);
  return (document) => (document === known ? atStart : lockUnder(document === undefined ? undefined : parseDocument(document), requested, createdMs));
}

function lockUnder(config: BucketObjectLock | undefined, requested: ObjectLockState | undefined, createdMs: number): ObjectLockState {
  if (config === undefined) return {};
  const lock: ObjectLockState = {};
  if (requested?.legalHold !== undefined) lock.legalHold = requested.legalHold;
  if (requested?.retention !== undefined) lock.retention = requested.retention;
  else if (config.defaultRetention !== undefined) lock.retention = defaultRetentionFrom(config.defaultRetention, createdMs);
  return lock;
}

function defaultRetentionFrom(rule: DefaultRetention, createdMs: number): ObjectRetention {
  if (rule.days !== undefined) return { mode: rule.mode, retainUntilMs: createdMs + rule.days * DAY_MS };
  const until = new Date(createdMs);
  until.setUTCFullYear(until.getUTCFullYear() + (rule.years ?? 0));
  return { mode: rule.mode, retainUntilMs: until.getTime() };
}

// Put/GetObjectRetention and Put/GetObjectLegalHold

async function lockedVersion(context: EngineContext, bucketName: string, key: string, versionId: string | undefined): Promise<{ bucket: BucketRecord; version: ObjectVersion }> {
  const bucket = await requireBucket(context, bucketName);
  if (bucketObjectLock(bucket) === undefined) throw new S3Error('InvalidRequest', 'Bucket is missing Object Lock Configuration');
  return { bucket, version: await findVersion(context, bucket, key, versionId) };
}

/** The addressed version's lock state (GetObjectRetention, GetObjectLegalHold). */
export async function getObjectLock(context: EngineContext, bucketName: string, key: string, versionId: string | undefined): Promise<ObjectLockState & { versionId: string | undefined }> {
  const { bucket, version } = await lockedVersion(context, bucketName, key, versionId);
  return { retention: version.retention, legalHold: version.legalHold, versionId: shownVersionId(bucket, version.versionId) };
}

/** PutObjectRetention: `retention` undefined removes it; the change is judged against the version's lock in the same transaction. */
export async function setObjectRetention(
  context: EngineContext,
  bucketName: string,
  key: string,
  versionId: string | undefined,
  retention: ObjectRetention | undefined,
  bypassGovernance: boolean,
): Promise<string | undefined> {
  const { bucket, version } = await lockedVersion(context, bucketName, key, versionId);
  const updated = await context.meta.updateVersionLock(bucketName, key, version.versionId, (current) => {
    checkRetentionChange(current.retention, retention, bypassGovernance, Date.now());
    return { retention, legalHold: current.legalHold };
  });
  if (!updated) throw new S3Error('NoSuchVersion', undefined, { Key: key, VersionId: version.versionId });
  return shownVersionId(bucket, version.versionId);
}

/** PutObjectLegalHold: ON or OFF, whoever may put it (no retention rule applies to holds). */
export async function setObjectLegalHold(context: EngineContext, bucketName: string, key: string, versionId: string | undefined, on: boolean): Promise<string | undefined> {
  const { bucket, version } = await lockedVersion(context, bucketName, key, versionId);
  const updated = await context.meta.updateVersionLock(bucketName, key, version.versionId, (current) => ({ retention: current.retention, legalHold: on }));
  if (!updated) throw new S3Error('NoSuchVersion', undefined, { Key: key, VersionId: version.versionId });
  return shownVersionId(bucket, version.versionId);
}
