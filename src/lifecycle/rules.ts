/**
 * Lifecycle rules: the validated configuration a bucket stores (its
 * `lifecycle` config document, written by src/s3/lifecycle.ts), read once per
 * bucket record, and the pure decisions made from it — which rules apply to
 * an object, when its current version expires (the x-amz-expiration header
 * and the worker agree on it), when a noncurrent version or an incomplete
 * upload is due. No I/O here; src/lifecycle/worker.ts acts on the decisions.
 */
import type { BucketRecord, Tag } from '../meta/types.ts';

/** How a rule chose its objects, kept so GetBucketLifecycleConfiguration answers in the form it was given. */
export type FilterForm = 'legacy-prefix' | 'empty' | 'prefix' | 'tag' | 'and' | 'size-greater' | 'size-less';

export interface LifecycleFilter {
  form: FilterForm;
  prefix: string;
  /** Every tag must be on the object with this value. */
  tags: Tag[];
  /** The object's size must be strictly greater than this. */
  sizeGreaterThan?: number;
  /** The object's size must be strictly less than this. */
  sizeLessThan?: number;
}

export interface LifecycleRule {
  id: string;
  enabled: boolean;
  filter: LifecycleFilter;
  expiration?: {
    days?: number;
    /** Midnight UTC of the Date element. */
    dateMs?: number;
    expiredObjectDeleteMarker?: boolean;
  };
  noncurrentVersionExpiration?: { noncurrentDays: number; newerNoncurrentVersions?: number };
  abortIncompleteMultipartUpload?: { daysAfterInitiation: number };
}

export interface LifecycleConfiguration {
  rules: LifecycleRule[];
}

/** What a rule's filter looks at: an object version's key, tags and size. */
export interface FilterSubject {
  key: string;
  tags?: readonly Tag[] | undefined;
  sizeBytes: number;
}

export const REAL_DAY_MS = 86_400_000;

/**
 * The length of a lifecycle "day". AWS counts whole days and rounds a due
 * time up to the next midnight UTC; with a test time scale
 * (TALUS_LIFECYCLE_DAY_SECONDS, as Ceph's rgw_lc_debug_interval) a day is
 * that many seconds and nothing is rounded.
 */
export interface DayScale {
  dayMs: number;
  /** True when dayMs is the real day: due times round up to midnight UTC. */
  calendar: boolean;
}

export const CALENDAR_DAYS: DayScale = { dayMs: REAL_DAY_MS, calendar: true };

export function dayScale(daySeconds: number | undefined): DayScale {
  if (daySeconds === undefined) return CALENDAR_DAYS;
  if (!(daySeconds > 0) || !Number.isFinite(daySeconds)) throw new Error(`invalid lifecycle day length: ${daySeconds} seconds`);
  return { dayMs: daySeconds * 1000, calendar: false };
}

/** When something that started at `startMs` is `days` days old, under `scale`. */
export function dueMs(startMs: number, days: number, scale: DayScale): number {
  const due = startMs + days * scale.dayMs;
  return scale.calendar ? Math.ceil(due / REAL_DAY_MS) * REAL_DAY_MS : due;
}

const parsedConfigs = new WeakMap<BucketRecord, LifecycleConfiguration | null>();

/**
 * The bucket's lifecycle configuration, parsed once per bucket record (the
 * store replaces a record whenever the bucket changes, so the cache never
 * goes stale); undefined when it has none. A GET of a bucket without one
 * costs a property read.
 */
export function lifecycleOf(bucket: BucketRecord): LifecycleConfiguration | undefined {
  const document = bucket.configs?.lifecycle;
  if (document === undefined) return undefined;
  let parsed = parsedConfigs.get(bucket);
  if (parsed === undefined) {
    parsed = readDocument(document);
    parsedConfigs.set(bucket, parsed);
  }
  return parsed ?? undefined;
}

/** The stored document; null for one this version cannot read (treated as no configuration, never as "expire everything"). */
function readDocument(document: string): LifecycleConfiguration | null {
  try {
    const value = JSON.parse(document) as unknown;
    if (typeof value !== 'object' || value === null || !Array.isArray((value as { rules?: unknown }).rules)) return null;
    return value as LifecycleConfiguration;
  } catch {
    return null;
  }
}

export function serializeConfiguration(configuration: LifecycleConfiguration): string {
  return JSON.stringify(configuration);
}

export function matchesPrefix(filter: LifecycleFilter, key: string): boolean {
  return key.startsWith(filter.prefix);
}

/** Whether the rule's filter selects this object version (prefix, every tag, size bounds). */
export function matchesObject(filter: LifecycleFilter, subject: FilterSubject): boolean {
  if (!subject.key.startsWith(filter.prefix)) return false;
  if (filter.sizeGreaterThan !== undefined && !(subject.sizeBytes > filter.sizeGreaterThan)) return false;
  if (filter.sizeLessThan !== undefined && !(subject.sizeBytes < filter.sizeLessThan)) return false;
  for (const wanted of filter.tags) {
    if (!(subject.tags ?? []).some((tag) => tag.key === wanted.key && tag.value === wanted.value)) return false;
  }
  return true;
}

/** True when the rules need an object's tags (the worker then lists with metadata). */
export function needsTags(configuration: LifecycleConfiguration): boolean {
  return configuration.rules.some((rule) => rule.enabled && rule.filter.tags.length > 0);
}

/**
 * When the current version expires by the bucket's rules and which rule
 * expires it first: the earliest of the enabled Expiration Days/Date rules
 * whose filter selects it; undefined when none does.
 */
export function currentExpiration(configuration: LifecycleConfiguration, subject: FilterSubject & { lastModifiedMs: number }, scale: DayScale): { atMs: number; ruleId: string } | undefined {
  let earliest: { atMs: number; ruleId: string } | undefined;
  for (const rule of configuration.rules) {
    const expiration = rule.expiration;
    if (!rule.enabled || expiration === undefined) continue;
    let atMs: number | undefined;
    if (expiration.days !== undefined) atMs = dueMs(subject.lastModifiedMs, expiration.days, scale);
    else if (expiration.dateMs !== undefined) atMs = expiration.dateMs;
    if (atMs === undefined || !matchesObject(rule.filter, subject)) continue;
    if (earliest === undefined || atMs < earliest.atMs) earliest = { atMs, ruleId: rule.id };
  }
  return earliest;
}

/**
 * Whether a noncurrent version is due for permanent deletion: it has been
 * noncurrent (since `noncurrentSinceMs`, its successor's creation) for the
 * rule's NoncurrentDays, and at least NewerNoncurrentVersions noncurrent
 * versions newer than it are kept.
 */
export function noncurrentExpired(
  configuration: LifecycleConfiguration,
  subject: FilterSubject,
  noncurrentSinceMs: number,
  newerNoncurrent: number,
  nowMs: number,
  scale: DayScale,
): boolean {
  return configuration.rules.some((rule) => {
    const action = rule.noncurrentVersionExpiration;
    if (!rule.enabled || action === undefined || !matchesObject(rule.filter, subject)) return false;
    if (newerNoncurrent < (action.newerNoncurrentVersions ?? 0)) return false;
    return dueMs(noncurrentSinceMs, action.noncurrentDays, scale) <= nowMs;
  });
}

/**
 * Whether a delete marker that is its key's only version goes: a rule with
 * ExpiredObjectDeleteMarker selects it, or an Expiration Days rule does and
 * the marker is that old (AWS removes expired object delete markers under
 * Days rules too). A marker is judged by the whole filter as a version with
 * no tags and no bytes: a tag filter never selects one (AWS refuses
 * ExpiredObjectDeleteMarker beside tags; a tag-filtered Days rule expires
 * tagged objects, not the markers of deleted ones), ObjectSizeGreaterThan
 * never does.
 */
export function deleteMarkerExpired(configuration: LifecycleConfiguration, key: string, lastModifiedMs: number, nowMs: number, scale: DayScale): boolean {
  const marker: FilterSubject = { key, tags: [], sizeBytes: 0 };
  return configuration.rules.some((rule) => {
    const expiration = rule.expiration;
    if (!rule.enabled || expiration === undefined || !matchesObject(rule.filter, marker)) return false;
    if (expiration.expiredObjectDeleteMarker === true) return true;
    return expiration.days !== undefined && dueMs(lastModifiedMs, expiration.days, scale) <= nowMs;
  });
}

/** Whether an incomplete multipart upload is due to be aborted (its key against the rule's prefix). */
export function uploadExpired(configuration: LifecycleConfiguration, key: string, createdMs: number, nowMs: number, scale: DayScale): boolean {
  return configuration.rules.some((rule) => {
    const action = rule.abortIncompleteMultipartUpload;
    if (!rule.enabled || action === undefined || !matchesPrefix(rule.filter, key)) return false;
    return dueMs(createdMs, action.daysAfterInitiation, scale) <= nowMs;
  });
}

/** Which of the worker's phases the configuration needs. */
export function hasVersionActions(configuration: LifecycleConfiguration): boolean {
  return configuration.rules.some((rule) => rule.enabled && (rule.expiration !== undefined || rule.noncurrentVersionExpiration !== undefined));
}

export function hasUploadActions(configuration: LifecycleConfiguration): boolean {
  return configuration.rules.some((rule) => rule.enabled && rule.abortIncompleteMultipartUpload !== undefined);
}
