import { S3Error } from '../util/s3-error.ts';

/** HTTP conditional request headers, already parsed by the front. Dates in ms, etags unquoted ('*' allowed). */
export interface ReadConditions {
  ifMatch?: string[];
  ifNoneMatch?: string[];
  ifModifiedSinceMs?: number;
  ifUnmodifiedSinceMs?: number;
}

/**
 * Evaluates GET/HEAD preconditions in the order RFC 9110 §13.2.2 gives (as S3
 * does): If-Match, else If-Unmodified-Since → 412; If-None-Match, else
 * If-Modified-Since → 304. `notModifiedCode` lets CopyObject's
 * x-amz-copy-source-if-* turn the 304 cases into 412 as S3 does.
 */
export function checkReadConditions(
  conditions: ReadConditions,
  etag: string,
  lastModifiedMs: number,
  notModified: 'NotModified' | 'PreconditionFailed' = 'NotModified',
): void {
  if (conditions.ifMatch === undefined && conditions.ifNoneMatch === undefined && conditions.ifModifiedSinceMs === undefined && conditions.ifUnmodifiedSinceMs === undefined) return;
  // A 304 still describes the representation (RFC 9110 §15.4.5).
  const notModifiedHeaders: Record<string, string> = notModified === 'NotModified' ? { etag: `"${etag}"`, 'last-modified': new Date(lastModifiedMs).toUTCString() } : {};
  const modifiedSeconds = Math.floor(lastModifiedMs / 1000);
  if (conditions.ifMatch !== undefined) {
    if (!matchesAny(conditions.ifMatch, etag)) throw new S3Error('PreconditionFailed', undefined, { Condition: 'If-Match' });
  } else if (conditions.ifUnmodifiedSinceMs !== undefined) {
    if (modifiedSeconds > Math.floor(conditions.ifUnmodifiedSinceMs / 1000)) {
      throw new S3Error('PreconditionFailed', undefined, { Condition: 'If-Unmodified-Since' });
    }
  }
  if (conditions.ifNoneMatch !== undefined) {
    if (matchesAny(conditions.ifNoneMatch, etag)) throw new S3Error(notModified, undefined, notModified === 'PreconditionFailed' ? { Condition: 'If-None-Match' } : {}, notModifiedHeaders);
  } else if (conditions.ifModifiedSinceMs !== undefined) {
    if (modifiedSeconds <= Math.floor(conditions.ifModifiedSinceMs / 1000)) {
      throw new S3Error(notModified, undefined, notModified === 'PreconditionFailed' ? { Condition: 'If-Modified-Since' } : {}, notModifiedHeaders);
    }
  }
}

function matchesAny(candidates: string[], etag: string): boolean {
  return candidates.some((candidate) => candidate === '*' || candidate === etag);
}
