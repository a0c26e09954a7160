/**
 * Admin operations on bucket quotas (Garage's model: a size and an object
 * count limit, each optional). The limits are enforced by the metadata
 * stores inside each commit's transaction (src/meta/quota.ts); these only
 * set them and read them back with what the bucket holds.
 */
import type { BucketQuotaUsage } from '../meta/types.ts';
import { operation } from './define.ts';

const BUCKET = { type: 'string', description: 'The bucket.', required: true, maxLength: 63 } as const;
/** Counters are exact integers in JavaScript numbers and SQLite/PostgreSQL 64-bit integers. */
const QUOTA_LIMIT_MAX = Number.MAX_SAFE_INTEGER;

export const QUOTA_OPERATIONS = {
  SetBucketQuota: operation({
    summary: 'Sets the bucket\'s hard quota: writes that would take it past maxBytes or maxObjects are refused (S3 error XMinioAdminBucketQuotaExceeded, 400). Null or absent limits are unlimited; neither clears the quota.',
    input: {
      bucket: BUCKET,
      maxBytes: { type: 'integer|null', description: 'Bytes the bucket\'s versions may hold (every version that is not a delete marker, as written); null or absent: unlimited.', minimum: 0, maximum: QUOTA_LIMIT_MAX },
      maxObjects: { type: 'integer|null', description: 'Versions (not delete markers) the bucket may hold; null or absent: unlimited.', minimum: 0, maximum: QUOTA_LIMIT_MAX },
    },
    output: '{ maxBytes, maxObjects, usedBytes, usedObjects } (all null when the quota was cleared)',
    async handler(context, input) {
      await context.engine.setBucketQuota(input.bucket, { maxBytes: input.maxBytes ?? null, maxObjects: input.maxObjects ?? null });
      return quotaView(await context.engine.getBucketQuota(input.bucket));
    },
  }),
  GetBucketQuota: operation({
    summary: 'The bucket\'s quota and what it holds against it (null limits and usage when it has none).',
    input: { bucket: BUCKET },
    output: '{ maxBytes, maxObjects, usedBytes, usedObjects }',
    async handler(context, input) {
      return quotaView(await context.engine.getBucketQuota(input.bucket));
    },
  }),
};

/** One shape with or without a quota, so callers read the same fields. */
function quotaView(quota: BucketQuotaUsage | null): BucketQuotaUsage | Record<keyof BucketQuotaUsage, null> {
  return quota ?? { maxBytes: null, maxObjects: null, usedBytes: null, usedObjects: null };
}
