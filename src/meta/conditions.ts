/**
 * Judges a write's or delete's preconditions against the key's current
 * version. Pure, so every MetadataStore calls it from inside the transaction
 * that makes the change: the check and the change are one atomic step.
 */
import type { CommitConditions } from './metadata-store.ts';
import type { ObjectVersion } from './types.ts';

/** What the conditions look at: the current (non-delete-marker) version, if any. */
export interface ConditionSubject {
  etag: string;
  sizeBytes: number;
  lastModifiedMs: number;
  /** The whole version (its document parsed): read only when `ifSelected` is given. */
  readVersion: () => ObjectVersion;
}

export type ConditionVerdict = 'holds' | 'precondition-failed' | 'no-such-key';

/**
 * The If-Match family needs a current version (404 NoSuchKey without one, as
 * S3 answers); If-None-Match fails on a current version it names. Times are
 * compared to the second, the precision of Last-Modified.
 */
export function judgeConditions(conditions: CommitConditions, current: ConditionSubject | undefined): ConditionVerdict {
  if (current === undefined) {
    const needsCurrent = conditions.ifMatch !== undefined || conditions.ifMatchLastModifiedMs !== undefined || conditions.ifMatchSizeBytes !== undefined ||
      conditions.ifSelected !== undefined;
    return needsCurrent ? 'no-such-key' : 'holds';
  }
  if (conditions.ifNoneMatchStar === true) return 'precondition-failed';
  if (conditions.ifNoneMatch !== undefined && conditions.ifNoneMatch.some((etag) => etag === '*' || etag === current.etag)) return 'precondition-failed';
  if (conditions.ifMatch !== undefined && conditions.ifMatch !== '*' && conditions.ifMatch !== current.etag) return 'precondition-failed';
  if (conditions.ifMatchSizeBytes !== undefined && conditions.ifMatchSizeBytes !== current.sizeBytes) return 'precondition-failed';
  if (conditions.ifMatchLastModifiedMs !== undefined && Math.floor(conditions.ifMatchLastModifiedMs / 1000) !== Math.floor(current.lastModifiedMs / 1000)) {
    return 'precondition-failed';
  }
  if (conditions.ifSelected !== undefined && !conditions.ifSelected(current.readVersion())) return 'precondition-failed';
  return 'holds';
}

/** True when no condition is given (the common, unconditional write). */
export function isUnconditional(conditions: CommitConditions): boolean {
  return conditions.ifNoneMatchStar !== true && conditions.ifNoneMatch === undefined && conditions.ifMatch === undefined &&
    conditions.ifMatchLastModifiedMs === undefined && conditions.ifMatchSizeBytes === undefined && conditions.ifSelected === undefined;
}
