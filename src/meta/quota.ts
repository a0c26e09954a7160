/**
 * Bucket quotas, judged by the metadata stores inside the transaction that
 * commits or deletes a version (as conditions.ts judges preconditions), so
 * two writes that each fit but together do not cannot both commit: the
 * second one's transaction sees the first one's usage.
 *
 * A bucket with a quota keeps two counters in its row, maintained in the
 * same transaction as every commit and delete of its versions; a bucket
 * without one keeps none (its counters are NULL), so its writes pay nothing.
 * What counts is what Garage and MinIO count: every version that is not a
 * delete marker, current or not, at the size clients wrote; and, for bytes,
 * the parts of incomplete multipart uploads as they are recorded (MinIO
 * checks each part), released when their upload is aborted or replaced by a
 * part of the same number, and turned into the object's bytes at
 * completion (the commit's delta is the object's growth less every part of
 * the upload, so unused parts are released and nothing counts twice).
 */
import type { BucketQuota, BucketQuotaUsage } from './types.ts';
import { S3Error } from '../util/s3-error.ts';

/** A change in what a bucket holds. */
export interface UsageDelta {
  bytes: number;
  objects: number;
}

/** What one version adds to its bucket's usage (a delete marker holds nothing). */
export function usageOf(version: { isDeleteMarker: boolean; sizeBytes: number } | null | undefined): UsageDelta {
  if (version === null || version === undefined || version.isDeleteMarker) return { bytes: 0, objects: 0 };
  return { bytes: version.sizeBytes, objects: 1 };
}

/** What committing `added` in place of `replaced` (the null version it overwrites, if any) changes. */
export function commitDelta(added: { isDeleteMarker: boolean; sizeBytes: number }, replaced: { isDeleteMarker: boolean; sizeBytes: number } | null): UsageDelta {
  const plus = usageOf(added);
  const minus = usageOf(replaced);
  return { bytes: plus.bytes - minus.bytes, objects: plus.objects - minus.objects };
}

/**
 * MinIO's answer to a write past a bucket's hard quota (400
 * XMinioAdminBucketQuotaExceeded): a code of its own, so clients and scripts
 * can tell it from a denied permission (Garage answers 403 AccessDenied),
 * and a 4xx that no AWS SDK retries.
 */
export class QuotaExceededError extends S3Error {
  constructor(bucket: string, detail: string) {
    super('XMinioAdminBucketQuotaExceeded', `Bucket quota exceeded: ${detail}`, { BucketName: bucket });
    this.name = 'QuotaExceededError';
  }
}

/**
 * Refuses (throws QuotaExceededError) a change that grows a limited
 * dimension past its limit. A change that does not grow it passes even over
 * the limit (a quota lowered below what the bucket holds still lets
 * overwrites shrink it and deletes free it).
 */
export function judgeQuota(bucket: string, usage: BucketQuotaUsage, delta: UsageDelta): void {
  if (usage.maxBytes !== null && delta.bytes > 0 && usage.usedBytes + delta.bytes > usage.maxBytes) {
    throw new QuotaExceededError(bucket, `the bucket holds ${usage.usedBytes} of at most ${usage.maxBytes} bytes, and this write adds ${delta.bytes}.`);
  }
  if (usage.maxObjects !== null && delta.objects > 0 && usage.usedObjects + delta.objects > usage.maxObjects) {
    throw new QuotaExceededError(bucket, `the bucket holds ${usage.usedObjects} of at most ${usage.maxObjects} objects.`);
  }
}

/** A write of `sizeBytes` that no state of the bucket could fit: refused before its body is read. */
export function judgeQuotaUpFront(bucket: string, quota: BucketQuota | undefined, sizeBytes: number | undefined): void {
  if (quota === undefined || quota.maxBytes === null || sizeBytes === undefined || sizeBytes <= quota.maxBytes) return;
  throw new QuotaExceededError(bucket, `this write of ${sizeBytes} bytes is larger than the bucket's quota of ${quota.maxBytes} bytes.`);
}

/** The quota columns of a bucket row (both stores). */
export interface QuotaColumns {
  quota_bytes_max: number | null;
  quota_objects_max: number | null;
  /** NULL exactly when the bucket has no quota: then nothing maintains the counters. */
  quota_bytes_used: number | null;
  quota_objects_used: number | null;
}

export function rowQuota(row: QuotaColumns): BucketQuota | undefined {
  if (row.quota_bytes_used === null) return undefined;
  return Object.freeze({ maxBytes: row.quota_bytes_max, maxObjects: row.quota_objects_max });
}

export function rowQuotaUsage(row: QuotaColumns): BucketQuotaUsage | undefined {
  if (row.quota_bytes_used === null || row.quota_objects_used === null) return undefined;
  return { maxBytes: row.quota_bytes_max, maxObjects: row.quota_objects_max, usedBytes: row.quota_bytes_used, usedObjects: row.quota_objects_used };
}
