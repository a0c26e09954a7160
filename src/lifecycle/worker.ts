/**
 * The lifecycle worker: walks the buckets that have a lifecycle
 * configuration and applies it — current versions past their Expiration
 * (deleted, or hidden by a delete marker when versioning is on), noncurrent
 * versions past NoncurrentDays (keeping NewerNoncurrentVersions), expired
 * object delete markers, incomplete multipart uploads past
 * DaysAfterInitiation. Every change goes through the engine's own delete and
 * abort, so the bytes reach the purge queue (placed blobs included) and
 * object lock can refuse (a refusal skips that version).
 *
 * Bounded: a pass examines at most LIFECYCLE_EXAMINED_PER_PASS versions and
 * uploads and makes at most LIFECYCLE_DELETES_PER_PASS deletes, then stops
 * where it is; the next pass resumes from that cursor (a key, a version and
 * what the walk knows of the key so far). A scan of every bucket is a cycle;
 * cycles start every `intervalMs`, passes within one follow each other after
 * a short pause.
 *
 * Crash-safe without stored state: the cursor lives in memory, and after a
 * restart the walk starts over. Every decision is re-checked against the
 * key's state right before it is acted on (a version that became current
 * again, a new PUT, a marker that is no longer alone) and against the
 * bucket's rules as stored then (a configuration removed or changed since
 * the pass began decides), so walking a key twice never deletes twice. The
 * delete itself is conditional, judged in its own transaction: on the
 * version being the one judged (ETag, size, time), and on the rule still
 * selecting it (its tags may have changed since the listing without
 * changing anything else). Runs in one process only (the primary with
 * --workers), like the purger.
 */
import type { Engine } from '../engine/engine.ts';
import type { DeleteConditions, ListedVersion } from '../meta/metadata-store.ts';
import type { BucketRecord } from '../meta/types.ts';
import { LIFECYCLE_DELETES_PER_PASS, LIFECYCLE_EXAMINED_PER_PASS, LIFECYCLE_PAGE_SIZE, LIFECYCLE_PASS_PAUSE_MS } from '../util/limits.ts';
import {
  currentExpiration,
  deleteMarkerExpired,
  hasUploadActions,
  hasVersionActions,
  lifecycleOf,
  needsTags,
  noncurrentExpired,
  uploadExpired,
  type DayScale,
  type FilterSubject,
  type LifecycleConfiguration,
} from './rules.ts';

export interface LifecycleWorkerOptions {
  scale: DayScale;
  /** Time between the starts of two scans of every bucket. */
  intervalMs: number;
  onError: (error: unknown) => void;
  /** Per-pass bounds (tests lower them). */
  examinedPerPass?: number;
  deletesPerPass?: number;
}

export interface PassReport {
  examined: number;
  /** Versions (and delete markers) removed for good. */
  versionsDeleted: number;
  /** Current versions hidden by a new delete marker (versioned buckets). */
  markersAdded: number;
  uploadsAborted: number;
  /** Due but left alone: object lock refused, or the delete failed. */
  skipped: number;
  /** True when the pass reached the end of the last bucket: the next pass starts a new scan. */
  completedScan: boolean;
}

/** What the walk knows of the key it is in, carried across pages and passes. */
interface KeyState {
  key: string;
  /** The key before this one (a restart point for the key: listing after it starts at this key). */
  previousKey: string;
  /** Last modification of the previous (newer) version: when the next one became noncurrent. */
  successorMs: number | undefined;
  /** Noncurrent versions newer than the next one that stay. */
  newerNoncurrent: number;
  /** The last version (uploads phase: upload) of the key walked that is still there: a listing marker that exists. */
  lastKeptId: string | undefined;
  listed: number;
  removed: number;
  /** The key's latest version is a delete marker: removed at the key's end if it is then alone. */
  marker: { versionId: string; lastModifiedMs: number } | undefined;
}

interface Cursor {
  bucket: string;
  phase: 'versions' | 'uploads';
  /** Listing restarts after this point. */
  keyMarker: string;
  idMarker: string;
  state: KeyState | undefined;
}

interface Budget {
  examined: number;
  deletes: number;
}

export class LifecycleWorker {
  readonly #engine: Engine;
  readonly #options: Required<LifecycleWorkerOptions>;
  #cursor: Cursor | undefined;
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<void> | undefined;
  #stopped = false;
  #scanStartedMs = 0;

  constructor(engine: Engine, options: LifecycleWorkerOptions) {
    this.#engine = engine;
    this.#options = {
      examinedPerPass: LIFECYCLE_EXAMINED_PER_PASS,
      deletesPerPass: LIFECYCLE_DELETES_PER_PASS,
      ...options,
    };
  }

  start(): void {
    this.#schedule(this.#options.intervalMs);
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    await this.#running;
  }

  #schedule(delayMs: number): void {
    if (this.#stopped) return;
    this.#timer = setTimeout(() => {
      this.#running = this.runPass()
        .then((report) => {
          // A scan that stopped on its budget goes on soon; a finished one waits for the next cycle.
          const sinceScanStart = Date.now() - this.#scanStartedMs;
          this.#schedule(report.completedScan ? Math.max(0, this.#options.intervalMs - sinceScanStart) : LIFECYCLE_PASS_PAUSE_MS);
        })
        .catch((error: unknown) => {
          this.#options.onError(error);
          this.#schedule(this.#options.intervalMs);
        })
        .finally(() => {
          this.#running = undefined;
        });
    }, delayMs);
    this.#timer.unref();
  }

  /** One bounded pass, from where the last one stopped (public for tests and maintenance commands). */
  async runPass(): Promise<PassReport> {
    const report: PassReport = { examined: 0, versionsDeleted: 0, markersAdded: 0, uploadsAborted: 0, skipped: 0, completedScan: false };
    const budget: Budget = { examined: this.#options.examinedPerPass, deletes: this.#options.deletesPerPass };
    // A store that refuses writes would fail every delete: wait for the next scan instead (readiness reports it).
    if (this.#engine.unreadyReason() !== undefined) return { ...report, completedScan: true };
    if (this.#cursor === undefined) this.#scanStartedMs = Date.now();
    const buckets = (await this.#engine.meta.listBuckets())
      .filter((bucket) => bucket.configs?.lifecycle !== undefined && (this.#cursor === undefined || bucket.name >= this.#cursor.bucket))
      .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    for (const bucket of buckets) {
      const configuration = lifecycleOf(bucket);
      if (configuration === undefined) continue;
      if (this.#cursor?.bucket !== bucket.name) this.#cursor = { bucket: bucket.name, phase: 'versions', keyMarker: '', idMarker: '', state: undefined };
      const cursor = this.#cursor;
      if (cursor.phase === 'versions') {
        if (hasVersionActions(configuration) && !(await this.#walkVersions(bucket, configuration, cursor, budget, report))) return report;
        Object.assign(cursor, { phase: 'uploads', keyMarker: '', idMarker: '', state: undefined });
      }
      if (hasUploadActions(configuration) && !(await this.#walkUploads(bucket, configuration, cursor, budget, report))) return report;
    }
    this.#cursor = undefined;
    report.completedScan = true;
    return report;
  }

  /** Walks the bucket's versions from the cursor; false when the budget ran out first (the cursor says where). */
  async #walkVersions(bucket: BucketRecord, configuration: LifecycleConfiguration, cursor: Cursor, budget: Budget, report: PassReport): Promise<boolean> {
    const withMetadata = needsTags(configuration);
    for (;;) {
      if (budget.examined <= 0 || budget.deletes <= 0) return false;
      const page = await this.#engine.meta.listVersions({
        bucket: bucket.name,
        prefix: '',
        delimiter: '',
        keyMarker: cursor.keyMarker,
        versionIdMarker: cursor.idMarker,
        limit: Math.min(LIFECYCLE_PAGE_SIZE, budget.examined),
        withMetadata,
      });
      for (const entry of page.entries) {
        const version = entry.version;
        if (version === undefined) continue;
        if (budget.examined <= 0 || budget.deletes <= 0) return false;
        if (cursor.state?.key !== version.key) {
          if (cursor.state !== undefined) await this.#finishKey(bucket, configuration, cursor.state, budget, report);
          cursor.state = { key: version.key, previousKey: cursor.state?.key ?? cursor.keyMarker, successorMs: undefined, newerNoncurrent: 0, lastKeptId: undefined, listed: 0, removed: 0, marker: undefined };
        }
        budget.examined--;
        report.examined++;
        await this.#visitVersion(bucket, configuration, cursor.state, version, entry.isLatest, budget, report);
        // Resume after the last version walked that is still there; when none is (all removed), after the previous key.
        cursor.keyMarker = cursor.state.lastKeptId === undefined ? cursor.state.previousKey : cursor.state.key;
        cursor.idMarker = cursor.state.lastKeptId ?? '';
      }
      if (!page.isTruncated) {
        if (cursor.state !== undefined) await this.#finishKey(bucket, configuration, cursor.state, budget, report);
        return true;
      }
    }
  }

  async #visitVersion(
    bucket: BucketRecord,
    configuration: LifecycleConfiguration,
    state: KeyState,
    version: ListedVersion,
    isLatest: boolean,
    budget: Budget,
    report: PassReport,
  ): Promise<void> {
    const nowMs = Date.now();
    state.listed++;
    let removed = false;
    if (isLatest) {
      if (version.isDeleteMarker) {
        state.marker = { versionId: version.versionId, lastModifiedMs: version.lastModifiedMs };
      } else {
        const expiration = currentExpiration(configuration, version, this.#options.scale);
        if (expiration !== undefined && expiration.atMs <= nowMs) {
          const outcome = await this.#expireCurrent(bucket, version, budget, report);
          // Unversioned: the object is gone. Versioned: a marker now hides it and it stays as a noncurrent version.
          removed = outcome === 'deleted';
        }
      }
    } else {
      const since = state.successorMs ?? version.lastModifiedMs;
      const newerNoncurrent = state.newerNoncurrent;
      const expiredUnder = (rules: LifecycleConfiguration) => (subject: FilterSubject): boolean =>
        noncurrentExpired(rules, subject, since, newerNoncurrent, Date.now(), this.#options.scale);
      if (expiredUnder(configuration)(version)) {
        removed = await this.#removeNoncurrent(bucket, version, expiredUnder, budget, report);
      }
      if (!removed) state.newerNoncurrent++;
    }
    state.successorMs = version.lastModifiedMs;
    if (removed) state.removed++;
    else state.lastKeptId = version.versionId;
  }

  /** At a key's end: its latest version, a delete marker, goes if it is now the only version and a rule says so. */
  async #finishKey(bucket: BucketRecord, configuration: LifecycleConfiguration, state: KeyState, budget: Budget, report: PassReport): Promise<void> {
    const marker = state.marker;
    state.marker = undefined;
    if (marker === undefined || state.listed - state.removed !== 1) return;
    if (!deleteMarkerExpired(configuration, state.key, marker.lastModifiedMs, Date.now(), this.#options.scale)) return;
    // Re-checked: still the latest, still alone (a PUT may have landed meanwhile).
    const versions = await this.#engine.meta.listVersions({ bucket: bucket.name, prefix: state.key, delimiter: '', keyMarker: '', versionIdMarker: '', limit: 2 });
    const ofKey = versions.entries.filter((entry) => entry.key === state.key && entry.version !== undefined);
    if (ofKey.length !== 1 || ofKey[0]?.version?.versionId !== marker.versionId) return;
    // Judged again on the rules as they are now: a configuration removed or changed since the pass began decides.
    const rules = await this.#rulesNow(bucket);
    if (rules === undefined || !deleteMarkerExpired(rules, state.key, marker.lastModifiedMs, Date.now(), this.#options.scale)) return;
    if (await this.#delete(bucket, state.key, marker.versionId, budget, report)) {
      report.versionsDeleted++;
      state.removed++;
      if (state.lastKeptId === marker.versionId) state.lastKeptId = undefined;
    }
  }

  async #expireCurrent(bucket: BucketRecord, version: ListedVersion, budget: Budget, report: PassReport): Promise<'deleted' | 'hidden' | 'skipped'> {
    const latest = await this.#engine.meta.getVersion(bucket.name, version.key);
    if (latest === undefined || latest.isDeleteMarker || latest.versionId !== version.versionId || latest.lastModifiedMs !== version.lastModifiedMs || latest.etag !== version.etag) {
      return 'skipped';
    }
    // Versioning as it is now (the record listed may be a moment old): off deletes, on or suspended adds a marker.
    const current = await this.#engine.meta.getBucket(bucket.name);
    // The rules as they are now too: a configuration changed since the pass began judges the delete.
    const rules = current === undefined ? undefined : lifecycleOf(current);
    if (current === undefined || rules === undefined) return 'skipped';
    // Conditional on the version still being the one judged expired, in the delete's own transaction:
    // a PUT that lands after the check above makes this a 412, skipped, not a delete of the new object;
    // so does a PutObjectTagging that took it out of the rule (tags change no ETag, size or time).
    const scale = this.#options.scale;
    const stillExpired: DeleteConditions = {
      ifMatch: version.etag,
      ifMatchLastModifiedMs: version.lastModifiedMs,
      ifMatchSizeBytes: version.sizeBytes,
      ifSelected: (subject) => (currentExpiration(rules, subject, scale)?.atMs ?? Infinity) <= Date.now(),
    };
    if (!(await this.#delete(bucket, version.key, undefined, budget, report, stillExpired))) return 'skipped';
    if (current.versioning === 'Unversioned') {
      report.versionsDeleted++;
      return 'deleted';
    }
    report.markersAdded++;
    return 'hidden';
  }

  async #removeNoncurrent(
    bucket: BucketRecord,
    version: ListedVersion,
    expiredUnder: (rules: LifecycleConfiguration) => (subject: FilterSubject) => boolean,
    budget: Budget,
    report: PassReport,
  ): Promise<boolean> {
    // Still noncurrent? (A delete of the current version may have made it current again.)
    const latest = await this.#engine.meta.getVersion(bucket.name, version.key);
    if (latest === undefined || latest.versionId === version.versionId) return false;
    // The rules as they are now, not the pass's: a configuration removed or changed meanwhile judges the delete.
    const rules = await this.#rulesNow(bucket);
    if (rules === undefined) return false;
    const stillExpired = expiredUnder(rules);
    // Checked again in the delete's transaction: a concurrent delete of the version above may have promoted this
    // one, or a PutObjectTagging may have taken it out of the rule.
    if (!(await this.#delete(bucket, version.key, version.versionId, budget, report, { ifNoncurrent: true, ifSelected: stillExpired }))) return false;
    report.versionsDeleted++;
    return true;
  }

  /** The bucket's lifecycle rules as stored now (undefined: the bucket or its configuration is gone). */
  async #rulesNow(bucket: BucketRecord): Promise<LifecycleConfiguration | undefined> {
    const current = await this.#engine.meta.getBucket(bucket.name);
    return current === undefined ? undefined : lifecycleOf(current);
  }

  async #uploadStillExpired(bucket: BucketRecord, key: string, createdMs: number): Promise<boolean> {
    const rules = await this.#rulesNow(bucket);
    return rules !== undefined && uploadExpired(rules, key, createdMs, Date.now(), this.#options.scale);
  }

  /** One delete through the engine; a refusal (object lock) or failure skips it, as does a spent budget (the next scan does it). */
  async #delete(bucket: BucketRecord, key: string, versionId: string | undefined, budget: Budget, report: PassReport, conditions: DeleteConditions = {}): Promise<boolean> {
    if (budget.deletes <= 0) return false;
    budget.deletes--;
    try {
      await this.#engine.deleteObject(bucket.name, key, versionId, bucket.ownerId, conditions);
      return true;
    } catch (error) {
      report.skipped++;
      if (!isRefusal(error)) this.#options.onError(error);
      return false;
    }
  }

  async #walkUploads(bucket: BucketRecord, configuration: LifecycleConfiguration, cursor: Cursor, budget: Budget, report: PassReport): Promise<boolean> {
    for (;;) {
      if (budget.examined <= 0 || budget.deletes <= 0) return false;
      const page = await this.#engine.meta.listUploads({
        bucket: bucket.name,
        prefix: '',
        delimiter: '',
        keyMarker: cursor.keyMarker,
        uploadIdMarker: cursor.idMarker,
        limit: Math.min(LIFECYCLE_PAGE_SIZE, budget.examined),
      });
      for (const entry of page.entries) {
        const upload = entry.upload;
        if (upload === undefined) continue;
        if (budget.examined <= 0 || budget.deletes <= 0) return false;
        if (cursor.state?.key !== upload.key) {
          cursor.state = { key: upload.key, previousKey: cursor.state?.key ?? cursor.keyMarker, successorMs: undefined, newerNoncurrent: 0, lastKeptId: undefined, listed: 0, removed: 0, marker: undefined };
        }
        budget.examined--;
        report.examined++;
        let aborted = false;
        // Judged on the pass's rules, then again on the rules as they are now (read only for an upload that is due).
        if (uploadExpired(configuration, upload.key, upload.createdMs, Date.now(), this.#options.scale) && (await this.#uploadStillExpired(bucket, upload.key, upload.createdMs))) {
          budget.deletes--;
          try {
            await this.#engine.abortMultipartUpload(bucket.name, upload.key, upload.uploadId);
            report.uploadsAborted++;
            aborted = true;
          } catch (error) {
            report.skipped++;
            if (!isRefusal(error)) this.#options.onError(error);
          }
        }
        if (!aborted) cursor.state.lastKeptId = upload.uploadId;
        cursor.keyMarker = cursor.state.lastKeptId === undefined ? cursor.state.previousKey : cursor.state.key;
        cursor.idMarker = cursor.state.lastKeptId ?? '';
      }
      if (!page.isTruncated) return true;
    }
  }
}

/** S3 answers to a delete that the worker expects now and then: gone meanwhile, or refused (object lock). */
function isRefusal(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return code === 'AccessDenied' || code === 'NoSuchKey' || code === 'NoSuchVersion' || code === 'NoSuchUpload' || code === 'NoSuchBucket' || code === 'InvalidRequest'
    || code === 'PreconditionFailed';
}
