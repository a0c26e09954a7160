import { randomBytes } from 'node:crypto';
import Database from 'better-sqlite3';
import { assert } from '../../util/assert.ts';
import { PURGE_GRACE_MS } from '../../util/limits.ts';
import { withoutBackend } from '../released-backend.ts';
import { S3Error, storageError } from '../../util/s3-error.ts';
import {
  CommitOutcomeUnknownError,
  MetadataUnavailableError,
  type BucketUsage,
  type PurgeQueueSummary,
  type BucketGuard,
  type VersionGuard,
  type CommitOutcome,
  type CommitRequest,
  type DeleteConditions,
  type DeleteOutcome,
  type ListRequest,
  type ListResult,
  type ListUploadsRequest,
  type ListUploadsResult,
  type ListVersionsRequest,
  type ListVersionsResult,
  type KeysPageRenderer,
  type PageRenderer,
  type PageRendering,
  type RenderedPage,
  type MetadataStore,
  type PlacedBlob,
  type PurgeEntry,
  type RepairEntry,
  type RepairSummary,
} from '../metadata-store.ts';
import { LatestVersions } from './latest-versions.ts';
import type { Acl } from '../../authz/index.ts';
import type {
  AccessKeyRecord,
  BucketAccessSettings,
  BucketConfigKind,
  BucketConfigs,
  BucketQuota,
  BucketQuotaUsage,
  BucketRecord,
  ObjectLockState,
  ObjectVersion,
  PartRecord,
  Segment,
  Tag,
  UnsealedAccessKey,
  UploadRecord,
  UserRecord,
  VersioningState,
} from '../types.ts';
import { isLockedAt, NULL_VERSION_ID, setLockState } from '../types.ts';
import { keysResult, listKeys, listKeysPageWithin, listShownKeysInto, listUploads, listVersions, listVersionsPageWithin, versionsResult } from './listing.ts';
import { LISTING_ON_EVENT_LOOP_STEPS_MAX, ListingThreads } from './listing-threads.ts';
import { MIGRATIONS, PAGE_CACHE_KIB_MAX, SCHEMA, SCHEMA_VERSION } from './schema.ts';
import { SERVING_AUTOCHECKPOINT_PAGES } from './wal-checkpointer.ts';
import { WalSync } from './wal-sync.ts';
import type { InlineDataTap } from '../../replication/inline-body-ring.ts';
import { OpenFileIdentity } from './file-identity.ts';
import { rowToUpload, rowToVersion, uploadMeta, versionMeta, type UploadRow, type VersionRow } from './rows.ts';
import { judgeConditions, type ConditionSubject } from '../conditions.ts';
import { commitDelta, judgeQuota, rowQuota, rowQuotaUsage, usageOf, type QuotaColumns, type UsageDelta } from '../quota.ts';

export const LOCAL_BACKEND = 'local';
/** How long a write waits for another process's write lock before failing. */
const WRITE_LOCK_WAIT_MS_MAX = 5_000;
/** Mutations one COMMIT holds at most; more wait for the next. */
const MUTATIONS_PER_COMMIT_MAX = 256;
/** Far above what CONNECTIONS_MAX requests can have pending. */
const MUTATIONS_PENDING_MAX = 65_536;
/** Reads in WAL mode wait only in rare cases (another connection recovering the WAL). */
const READ_BUSY_TIMEOUT_MS = 5_000;

const BUCKET_CACHE_MAX = 10_000;
/** Versions bucketUsage counts per step (about 25 ms of one core): the longest it holds the event loop. */
const USAGE_STEP_VERSIONS = 50_000;
/** countBlobsOnBackend's step: each blob's location is parsed (json_each), about 1 µs, so a step holds requests some 50 ms. */
const BLOB_SCAN_STEP = 50_000;
/** A blob whose recorded location (JSON, placement/blob-location.ts: shard backends under "on") names @backend. */
const BLOBS_ON_BACKEND = "SELECT count(*) AS blobs FROM blobs WHERE blob_id > @after AND backend != @local AND EXISTS (SELECT 1 FROM json_each(blobs.backend, '$.on') WHERE value = @backend)";
const USAGE_SUMS = `SELECT count(*) FILTER (WHERE is_latest = 1 AND is_delete_marker = 0) AS objects,
        count(*) FILTER (WHERE is_delete_marker = 0) AS versions,
        count(*) FILTER (WHERE is_delete_marker = 1) AS delete_markers,
        coalesce(sum(size_bytes) FILTER (WHERE is_delete_marker = 0), 0) AS bytes
   FROM versions WHERE bucket = @bucket AND key > @after`;

/** A mutation waiting for its batch; settled once the batch is committed and durable, or refused. */
interface PendingMutation {
  mutation: () => unknown;
  resolve(value: unknown): void;
  reject(error: unknown): void;
}

function isBusy(error: unknown): boolean {
  return error instanceof Database.SqliteError && error.code.startsWith('SQLITE_BUSY');
}

/**
 * The embedded metadata store on SQLite (better-sqlite3). Every call runs
 * synchronously on the event loop, which is what makes it the serialized
 * control part: mutations run one after another, in the order they were
 * asked for, batched into transactions (see #mutate). A mutation's promise
 * resolves once its transaction is on disk: the WAL is fdatasynced off the
 * event loop, once for all commits in flight (WalSync).
 */
export class SqliteMetadataStore implements MetadataStore {
  readonly #db: Database.Database;
  readonly #statements: ReturnType<typeof prepareStatements>;
  /**
   * Bucket records by name. Every request reads its bucket first, and a
   * SQLite read costs several syscalls (locks on the WAL index); buckets
   * change rarely and only through this store, which forgets an entry in the
   * same transaction that changes it. Bounded: cleared when full.
   */
  readonly #buckets = new Map<string, BucketRecord>();
  /** Absent for an in-memory database (tests), which has no WAL to sync. */
  readonly #wal: WalSync | undefined;
  /** The database file and its WAL as opened (absent in memory): a store whose files left their paths refuses writes. */
  readonly #files: OpenFileIdentity[] = [];
  /** Set once for good: why this store refuses every mutation. */
  #unusable: MetadataUnavailableError | undefined;
  readonly #onUnusable: (reason: string) => void;
  /** Latest versions of recently read keys (see LatestVersions). */
  readonly #latest: LatestVersions;
  /**
   * With other processes writing the same database (`--workers`): SQLite's
   * `PRAGMA data_version`, which changes when another connection committed.
   * Read before every cached lookup (~4 us, the WAL-index read lock; a row
   * read with its JSON is ~15); a change empties #latest. Absent when this
   * store is the only writer.
   */
  readonly #dataVersion: Database.Statement | undefined;
  #seenDataVersion = -1;
  /**
   * The cached bucket records are as fresh as the database: this store is
   * its only writer (`soleWriter`), and every change to a bucket row forgets
   * the cached record inside the transaction that makes it, so no read can
   * come between (a batch rolled back leaves at most a record forgotten,
   * never a stale one: records are cached only from committed rows, by
   * getBucket, which never runs inside a batch). Commits then take what they
   * need of a cached bucket from the record instead of reading its row
   * (#bucketForCommit). With --workers another process may have changed
   * the bucket a moment ago: its row is read, as always.
   */
  readonly #bucketCacheFresh: boolean;
  /** Listings off the event loop (listing-threads.ts); absent: listed on this connection. */
  readonly #listingThreads: ListingThreads | undefined;
  /**
   * With listing threads, a listing is first tried here, on the event loop,
   * within this many rows and seeks (LISTING_ON_EVENT_LOOP_STEPS_MAX); 0:
   * every listing goes to a thread.
   */
  readonly #eventLoopListingStepsMax: number;
  /** The listing threads' page renderers, loaded here too for the pages listed on the event loop. */
  #eventLoopRenderer: { renderPage: PageRenderer; renderKeysPage: KeysPageRenderer } | undefined;

  readonly #onBucketsChanged: () => void | Promise<void>;
  readonly #busyTimeoutNone: Database.Statement;
  readonly #busyTimeoutForReads: Database.Statement;
  readonly #beginImmediate: Database.Statement;
  readonly #commitStatement: Database.Statement;
  readonly #rollbackStatement: Database.Statement;
  /** Each mutation of a batch runs inside one (see #runInSavepoint). */
  readonly #savepoint: Database.Statement;
  readonly #releaseSavepoint: Database.Statement;
  readonly #rollbackToSavepoint: Database.Statement;
  /** Mutations waiting for the next batch commit, in arrival order; `resolve` once committed and durable. */
  #pending: PendingMutation[] = [];
  #closing: Promise<void> | undefined;
  /**
   * Metadata replication's quorum mode (src/replication/replicator.ts):
   * called right after each batch commits; the batch's mutations are
   * acknowledged only once its promise resolves (their changes are on a
   * write quorum of backends). Absent: acknowledged once durable locally.
   */
  #commitBarrier: (() => Promise<void>) | undefined;
  /**
   * Metadata replication (src/replication/inline-body-ring.ts): told of
   * every inline body this connection writes, so the segment cutter need not
   * read it back; its records become visible when their batch commits.
   */
  #inlineDataTap: InlineDataTap | undefined;
  #flushTimer: NodeJS.Immediate | NodeJS.Timeout | undefined;
  #lockWaitStartedMs: number | undefined;
  #lockWaitAttempts = 0;

  /**
   * @param onBucketsChanged called after this store deleted a bucket or changed
   *   its settings, so other processes on the same database can drop their
   *   cached copies; the change's call resolves only once a promise it
   *   returns does (--workers: every other worker dropped them).
   * @param soleWriter no other connection writes versions to this database
   *   (one server process owns the data directory): the latest versions kept
   *   in memory are then trusted without asking SQLite whether another
   *   connection committed since.
   * @param listingThreads list on this many threads with their own read-only
   *   connections (a server; LISTING_THREADS_DEFAULT), not on the event loop.
   *   Ignored for an in-memory database, which no other connection can open.
   * @param listingRendererUrl the module whose `renderPage` renders pages on
   *   the listing threads (the S3 front's LISTING_RENDERER_URL); without it
   *   listRendered answers undefined and callers render.
   * @param listingOnEventLoopStepsMax with listing threads, listings of at
   *   most this many rows and seeks are answered on the event loop
   *   (default LISTING_ON_EVENT_LOOP_STEPS_MAX; 0: all on the threads).
   */
  constructor(
    path: string,
    options: {
      onBucketsChanged?: () => void | Promise<void>;
      soleWriter?: boolean;
      onUnusable?: (reason: string) => void;
      listingThreads?: number;
      onListingThreadError?: (error: unknown) => void;
      listingRendererUrl?: string;
      listingOnEventLoopStepsMax?: number;
    } = {},
  ) {
    this.#onBucketsChanged = options.onBucketsChanged ?? (() => undefined);
    this.#onUnusable = options.onUnusable ?? (() => undefined);
    this.#latest = new LatestVersions();
    this.#db = new Database(path);
    this.#db.pragma('journal_mode = WAL');
    // Durability comes from WalSync, which does FULL's fsync off the event loop.
    this.#db.pragma('synchronous = NORMAL');
    this.#db.pragma(`busy_timeout = ${READ_BUSY_TIMEOUT_MS}`);
    // Checkpoints belong to WalCheckpointer's thread; this is only a safety net.
    this.#db.pragma(`wal_autocheckpoint = ${SERVING_AUTOCHECKPOINT_PAGES}`);
    this.#db.pragma('foreign_keys = OFF');
    this.#db.pragma(`cache_size = -${PAGE_CACHE_KIB_MAX}`);
    // A statement that fires triggers (metadata replication's change capture,
    // src/replication/change-capture.ts) needs a statement journal; in a temp
    // file it cost ~45 us per mutation here, in memory ~7 us. Talus makes no
    // other use of temporary storage worth a file (its queries sort by index).
    this.#db.pragma('temp_store = MEMORY');
    try {
      this.#db.exec(SCHEMA);
      this.#migrate();
      this.#statements = prepareStatements(this.#db);
      this.#busyTimeoutNone = this.#db.prepare('PRAGMA busy_timeout = 0');
      this.#beginImmediate = this.#db.prepare('BEGIN IMMEDIATE');
      this.#commitStatement = this.#db.prepare('COMMIT');
      this.#rollbackStatement = this.#db.prepare('ROLLBACK');
      this.#savepoint = this.#db.prepare('SAVEPOINT mutation');
      this.#releaseSavepoint = this.#db.prepare('RELEASE mutation');
      this.#rollbackToSavepoint = this.#db.prepare('ROLLBACK TO mutation');
      this.#busyTimeoutForReads = this.#db.prepare(`PRAGMA busy_timeout = ${READ_BUSY_TIMEOUT_MS}`);
      this.#dataVersion = options.soleWriter !== true && path !== ':memory:' ? this.#db.prepare('PRAGMA data_version').pluck() : undefined;
      this.#bucketCacheFresh = options.soleWriter === true;
      if (path !== ':memory:') {
        this.#files.push(new OpenFileIdentity(path), new OpenFileIdentity(`${path}-wal`));
      }
      // After every WAL sync, before any commit it covers is acknowledged: a
      // sync into a deleted or replaced database made nothing durable.
      this.#wal = path === ':memory:' ? undefined : new WalSync(`${path}-wal`, () => this.#filesProblem());
      // After the schema exists: the threads open the database read-only.
      const threads = options.listingThreads ?? 0;
      this.#listingThreads = path === ':memory:' || threads === 0 ? undefined : new ListingThreads(path, threads, options.onListingThreadError ?? (() => undefined), options.listingRendererUrl);
      this.#eventLoopListingStepsMax = this.#listingThreads === undefined ? 0 : (options.listingOnEventLoopStepsMax ?? LISTING_ON_EVENT_LOOP_STEPS_MAX);
      assert(Number.isInteger(this.#eventLoopListingStepsMax) && this.#eventLoopListingStepsMax >= 0, 'listing steps on the event loop: an integer, 0 or more');
      const rendererUrl = options.listingRendererUrl;
      if (this.#eventLoopListingStepsMax > 0 && rendererUrl !== undefined) {
        // Already loaded by the S3 front that named it: this resolves at once, from the module cache.
        void import(rendererUrl).then(
          (module: { renderPage: PageRenderer; renderKeysPage: KeysPageRenderer }) => (this.#eventLoopRenderer = module),
          (error: unknown) => (options.onListingThreadError ?? (() => undefined))(error),
        );
      }
    } catch (error) {
      for (const file of this.#files) file.close();
      this.#db.close();
      throw error;
    }
  }

  #migrate(): void {
    const select = this.#db.prepare("SELECT value FROM settings WHERE name = 'schema_version'");
    const update = this.#db.prepare("INSERT OR REPLACE INTO settings (name, value) VALUES ('schema_version', ?)");
    this.#db.transaction(() => {
      const row = select.get() as { value: string } | undefined;
      // A fresh database was just created by SCHEMA at the current version.
      const found = row === undefined ? SCHEMA_VERSION : Number(row.value);
      if (!Number.isInteger(found) || found > SCHEMA_VERSION) {
        throw new Error(`the metadata store has schema version ${row?.value}; this Talus knows up to ${SCHEMA_VERSION}`);
      }
      for (const migration of MIGRATIONS) {
        if (migration.toVersion <= found) continue;
        if (migration.alreadyApplied !== undefined && this.#db.prepare(migration.alreadyApplied).get() !== undefined) continue;
        this.#db.exec(migration.sql);
      }
      // Only when it changes: opening must not need to write (a full disk must not stop a start-up).
      if (row === undefined || found !== SCHEMA_VERSION) update.run(String(SCHEMA_VERSION));
      // Chosen once, with the database (or its upgrade to principals): root's ID for ownership and ACLs.
      if (this.#db.prepare(`SELECT 1 FROM settings WHERE name = '${ROOT_CANONICAL_ID_SETTING}'`).get() === undefined) {
        this.#db.prepare('INSERT INTO settings (name, value) VALUES (?, ?)').run(ROOT_CANONICAL_ID_SETTING, randomBytes(32).toString('hex'));
      }
    }).immediate();
  }

  /**
   * Runs one mutation and resolves once it is committed and durable.
   *
   * Mutations requested during one turn of the event loop commit together:
   * one BEGIN IMMEDIATE ... COMMIT holds them in arrival order, each inside
   * its own savepoint (#runInSavepoint), so one that throws is rolled back
   * alone. A COMMIT writes every page it touched to the WAL; shared pages
   * (index leaves, the sequence table) are written once per batch instead
   * of once per request. Then WalSync makes them durable with one fdatasync
   * for all, and the batch answers its mutations (#acknowledge).
   */
  #mutate<T>(mutation: () => T): Promise<T> {
    assert(this.#pending.length < MUTATIONS_PENDING_MAX, 'pending mutations are bounded by the requests in flight');
    // One promise per mutation, settled by its batch (#acknowledge): no
    // promise chain or async function of its own (profiled, issue 17).
    const outcome = new Promise<T>((resolve, reject) => {
      this.#pending.push({ mutation, resolve: resolve as (value: unknown) => void, reject });
    });
    this.#scheduleFlush(0);
    return outcome;
  }

  /**
   * Runs one mutation of a batch inside a savepoint, so that one that throws
   * is rolled back alone. What `this.#db.transaction(mutation)()` did, with
   * statements prepared once: better-sqlite3 builds four wrapper functions
   * and their properties for every transaction() call, ~2.8 KB of garbage
   * per PUT (sampling heap profile, issue 17).
   */
  #runInSavepoint(mutation: () => unknown): unknown {
    this.#savepoint.run();
    const tapMark = this.#inlineDataTap?.mark();
    try {
      const value = mutation();
      // What better-sqlite3's transaction() refused: statements after an await would run outside the batch and its durability wait.
      assert(typeof (value as { then?: unknown } | null | undefined)?.then !== 'function', 'a batched mutation is synchronous');
      this.#releaseSavepoint.run();
      return value;
    } catch (error) {
      // First: the mutation's bodies are not to be shipped whatever happens below (a failed ROLLBACK TO included).
      if (tapMark !== undefined) this.#inlineDataTap?.rewind(tapMark);
      // Some errors (disk full, I/O) end the whole transaction: no savepoint is left to undo.
      if (this.#db.inTransaction) {
        this.#rollbackToSavepoint.run();
        this.#releaseSavepoint.run();
      }
      throw error;
    }
  }

  /**
   * Answers a committed batch's mutations once its WAL frames are durable
   * (and, with metadata replication in quorum mode, replicated): one wait
   * for the whole batch. Committed and visible by now, so a failure of
   * either is an unknown outcome (503), never a rejection of the write.
   */
  #acknowledge(entries: readonly PendingMutation[], values: readonly unknown[], ticket: number | undefined, replicated: Promise<void> | undefined): void {
    const durable = ticket === undefined ? undefined : this.#wal!.durable(ticket);
    const settled = replicated === undefined ? durable : durable === undefined ? replicated : durable.then(() => replicated);
    const resolveAll = (): void => {
      for (const [i, entry] of entries.entries()) entry.resolve(values[i]);
    };
    if (settled === undefined) {
      resolveAll();
      return;
    }
    settled.then(resolveAll, (error: unknown) => {
      for (const entry of entries) entry.reject(new CommitOutcomeUnknownError(error));
    });
  }

  /** See #inlineDataTap; set by the process that replicates this database, before it writes. */
  setInlineDataTap(tap: InlineDataTap | undefined): void {
    this.#inlineDataTap = tap;
  }

  /** See #commitBarrier; set by the process that replicates this database. */
  setCommitBarrier(barrier: (() => Promise<void>) | undefined): void {
    this.#commitBarrier = barrier;
  }

  #scheduleFlush(delayMs: number): void {
    if (this.#flushTimer !== undefined) return;
    const flush = (): void => {
      this.#flushTimer = undefined;
      this.#flush();
    };
    this.#flushTimer = delayMs === 0 ? setImmediate(flush) : setTimeout(flush, delayMs);
  }

  #flush(): void {
    if (this.#pending.length === 0) return;
    // After a failed fdatasync the kernel may have dropped WAL pages: fail
    // closed, before any later mutation commits (and becomes visible)
    // without ever being durable.
    // Likewise once the database was found deleted or replaced under us:
    // its commits would be lost on restart. The files are looked at after
    // every WAL sync (WalSync's verify), before any commit it covers is
    // acknowledged, not here: one look per sync, however many batches it covers.
    const refusal = this.#refusal(false);
    if (refusal !== undefined) {
      for (const entry of this.#pending.splice(0)) entry.reject(refusal);
      return;
    }
    // BEGIN IMMEDIATE takes the write lock up front: a deferred transaction
    // that read first could fail outright (SQLITE_BUSY_SNAPSHOT) when another
    // process sharing the database wrote in between. SQLite's own busy
    // handler would sleep on the event loop while another process holds the
    // lock; instead, fail at once and retry asynchronously.
    this.#busyTimeoutNone.run();
    try {
      this.#beginImmediate.run();
    } catch (error) {
      this.#busyTimeoutForReads.run();
      this.#lockWaitStartedMs ??= Date.now();
      if (isBusy(error) && Date.now() - this.#lockWaitStartedMs <= WRITE_LOCK_WAIT_MS_MAX) {
        // Write transactions last tens of microseconds: retry on the next
        // turn of the event loop first, then back off a little.
        this.#lockWaitAttempts++;
        this.#scheduleFlush(this.#lockWaitAttempts < 8 ? 0 : Math.min(this.#lockWaitAttempts - 7, 10));
        return;
      }
      this.#lockWaitStartedMs = undefined;
      this.#lockWaitAttempts = 0;
      for (const entry of this.#pending.splice(0)) entry.reject(storageError(error));
      return;
    }
    this.#busyTimeoutForReads.run();
    this.#lockWaitStartedMs = undefined;
    this.#lockWaitAttempts = 0;
    const batch = this.#pending.splice(0, MUTATIONS_PER_COMMIT_MAX);
    const outcomes: ({ ok: true; value: unknown } | { ok: false; error: unknown })[] = [];
    let aborted: unknown;
    for (const entry of batch) {
      try {
        outcomes.push({ ok: true, value: this.#runInSavepoint(entry.mutation) });
      } catch (error) {
        outcomes.push({ ok: false, error });
        // Some errors (disk full, I/O) make SQLite roll back the whole
        // transaction: then nothing of this batch was kept, and the rest must
        // not run outside a transaction.
        if (!this.#db.inTransaction) {
          aborted = error;
          break;
        }
      }
    }
    try {
      if (aborted !== undefined) throw aborted;
      this.#commitStatement.run();
    } catch (error) {
      if (this.#db.inTransaction) this.#rollbackStatement.run();
      this.#inlineDataTap?.abort();
      // SQLITE_FULL rolled the batch back: a retryable 503, nothing committed.
      for (const entry of batch) entry.reject(storageError(error));
      if (this.#pending.length > 0) this.#scheduleFlush(0);
      return;
    }
    this.#inlineDataTap?.publish();
    const ticket = this.#wal?.commitWritten();
    const replicated = this.#commitBarrier?.();
    // Handled here too: a batch whose mutations all failed awaits it nowhere.
    replicated?.catch(() => undefined);
    const committed: PendingMutation[] = [];
    const values: unknown[] = [];
    for (const [i, entry] of batch.entries()) {
      const outcome = outcomes[i]!;
      if (!outcome.ok) {
        // Rolled back alone: refused now, durable or not.
        entry.reject(storageError(outcome.error));
        continue;
      }
      committed.push(entry);
      values.push(outcome.value);
    }
    if (committed.length > 0) this.#acknowledge(committed, values, ticket, replicated);
    if (this.#pending.length > 0) this.#scheduleFlush(0);
  }

  /** What the files at the store's paths say: undefined while they are the ones it has open. */
  #filesProblem(): string | undefined {
    for (const file of this.#files) {
      const problem = file.problem();
      if (problem !== undefined) return problem;
    }
    return undefined;
  }

  /**
   * The standing refusal: a failed WAL sync, or files found gone (`look`:
   * look at them now; the readiness probe and the purger's once-a-second
   * pass do, so an idle server notices too). Sticky: a restart clears it.
   */
  #refusal(look = true): MetadataUnavailableError | undefined {
    if (this.#unusable !== undefined) return this.#unusable;
    const walFailure = this.#wal?.failure;
    const reason = walFailure?.message ?? (look ? this.#filesProblem() : undefined);
    if (reason === undefined) return undefined;
    this.#unusable = new MetadataUnavailableError(reason);
    this.#onUnusable(reason);
    return this.#unusable;
  }

  /** For transactions outside the batched path (purge and repair bookkeeping). */
  #assertUsable(): void {
    const refusal = this.#refusal();
    if (refusal !== undefined) throw refusal;
  }

  unusableReason(): string | undefined {
    return this.#refusal()?.reason;
  }

  /** How many WAL fdatasyncs ran (group commit makes this lower than the commit count). */
  get walSyncCount(): number {
    return this.#wal?.syncCount ?? 0;
  }

  /** The database handle, for the listing helpers and tests. */
  get database(): Database.Database {
    return this.#db;
  }

  /**
   * The store's identity and epoch (see data-dir-identity.ts), recorded in
   * `settings`; undefined for a database created before they existed, or
   * just now.
   */
  async storeIdentity(): Promise<StoreIdentity | undefined> {
    const id = this.#statements.getSetting.get('store_id') as { value: string } | undefined;
    const epoch = this.#statements.getSetting.get('store_epoch') as { value: string } | undefined;
    if (id === undefined || epoch === undefined) return undefined;
    return { id: id.value, epoch: Number(epoch.value) };
  }

  /** Records the identity and epoch, durably. */
  async setStoreIdentity(identity: StoreIdentity): Promise<void> {
    await this.#mutate(() => {
      this.#statements.putSetting.run('store_id', identity.id);
      this.#statements.putSetting.run('store_epoch', String(identity.epoch));
    });
  }

  /** True when the database holds no bucket and no blob: a new database, or one that lost its contents. */
  async holdsNothing(): Promise<boolean> {
    return this.#statements.anyBucket.get() === undefined && this.#statements.anyBlob.get() === undefined;
  }

  async rootCanonicalId(): Promise<string> {
    const row = this.#statements.getSetting.get(ROOT_CANONICAL_ID_SETTING) as { value: string } | undefined;
    assert(row !== undefined, 'the root canonical ID is chosen when the store opens');
    return row.value;
  }

  async putAccessKey(record: AccessKeyRecord): Promise<void> {
    await this.#mutate(() => this.#putAccessKeyNow(record));
  }

  #putAccessKeyNow(record: AccessKeyRecord): void {
    this.#statements.putAccessKey.run(
      record.accessKeyId,
      record.createdMs,
      Buffer.from(record.sealedSecret),
      record.userId,
      record.policy,
      record.expiresMs,
      record.enabled ? 1 : 0,
    );
  }

  async listAccessKeys(): Promise<AccessKeyRecord[]> {
    return (this.#statements.listAccessKeys.all() as AccessKeyRow[]).map(rowToAccessKey);
  }

  async updateAccessKey(accessKeyId: string, changes: { enabled?: boolean; policy?: string | null }): Promise<boolean> {
    return this.#mutate(() => {
      if (this.#statements.getAccessKey.get(accessKeyId) === undefined) return false;
      if (changes.enabled !== undefined) this.#statements.setAccessKeyEnabled.run(changes.enabled ? 1 : 0, accessKeyId);
      if (changes.policy !== undefined) this.#statements.setAccessKeyPolicy.run(changes.policy, accessKeyId);
      return true;
    });
  }

  async deleteAccessKey(accessKeyId: string): Promise<boolean> {
    return (await this.#mutate(() => this.#statements.deleteAccessKey.run(accessKeyId))).changes === 1;
  }

  async listUnsealedAccessKeys(): Promise<UnsealedAccessKey[]> {
    const rows = this.#statements.unsealedAccessKeys.all() as { access_key_id: string; secret_access_key: string }[];
    return rows.map((row) => ({ accessKeyId: row.access_key_id, secretAccessKey: row.secret_access_key }));
  }

  async sealAccessKeySecrets(sealed: readonly { accessKeyId: string; sealedSecret: Uint8Array }[]): Promise<void> {
    if (sealed.length === 0) return;
    // secure_delete: the cells that held plain text are overwritten with
    // zeros instead of left in free space of the rewritten pages.
    this.#db.pragma('secure_delete = ON');
    try {
      await this.#mutate(() => {
        for (const entry of sealed) this.#statements.sealAccessKey.run(Buffer.from(entry.sealedSecret), entry.accessKeyId);
      });
    } finally {
      this.#db.pragma('secure_delete = OFF');
    }
    // The WAL still holds the old page images until it starts over: copy the
    // new ones into the database file and empty it. Best effort (another
    // connection reading may hold it back); the next checkpoint that resets
    // the WAL overwrites those frames anyway.
    try {
      this.#db.pragma('wal_checkpoint(TRUNCATE)');
    } catch {
      // a busy database: see above
    }
  }

  async secretKeyCheck(): Promise<Uint8Array | undefined> {
    const row = this.#statements.getSetting.get(SECRET_KEY_CHECK_SETTING) as { value: string } | undefined;
    return row === undefined ? undefined : Buffer.from(row.value, 'base64');
  }

  async setSecretKeyCheck(check: Uint8Array): Promise<void> {
    await this.#mutate(() => this.#statements.putSetting.run(SECRET_KEY_CHECK_SETTING, Buffer.from(check).toString('base64')));
  }

  async listSettings(prefix: string): Promise<{ name: string; value: string }[]> {
    return this.#statements.listSettings.all(prefix, prefix) as { name: string; value: string }[];
  }

  async getSetting(name: string): Promise<string | undefined> {
    return (this.#statements.getSetting.get(name) as { value: string } | undefined)?.value;
  }

  async putSetting(name: string, value: string): Promise<void> {
    await this.#mutate(() => this.#statements.putSetting.run(name, value));
  }

  async putSettingIf(name: string, value: string, expected: string | undefined): Promise<boolean> {
    const result = await this.#mutate(() => (expected === undefined
      ? this.#statements.insertSettingIfAbsent.run(name, value)
      : this.#statements.replaceSettingIf.run(value, name, expected)));
    return result.changes === 1;
  }

  async deleteSetting(name: string): Promise<boolean> {
    return (await this.#mutate(() => this.#statements.deleteSetting.run(name))).changes === 1;
  }

  async createUser(user: UserRecord, firstKey: AccessKeyRecord): Promise<'created' | 'name-taken' | 'email-taken'> {
    assert(firstKey.userId === user.canonicalId, 'a user\'s first key is its own');
    return this.#mutate(() => {
      if (this.#statements.userByName.get(user.name) !== undefined) return 'name-taken';
      if (user.email !== null && this.#statements.userByEmail.get(user.email) !== undefined) return 'email-taken';
      this.#statements.insertUser.run(user.canonicalId, user.name, user.email, user.policy, user.createdMs);
      this.#putAccessKeyNow(firstKey);
      return 'created';
    });
  }

  async listUsers(): Promise<UserRecord[]> {
    const rows = this.#statements.listUsers.all() as { canonical_id: string; name: string; email: string | null; policy: string | null; created_ms: number }[];
    return rows.map((row) => ({ canonicalId: row.canonical_id, name: row.name, email: row.email, policy: row.policy, createdMs: row.created_ms }));
  }

  async setUserPolicy(canonicalId: string, policy: string | null): Promise<boolean> {
    return (await this.#mutate(() => this.#statements.setUserPolicy.run(policy, canonicalId))).changes === 1;
  }

  async deleteUser(canonicalId: string): Promise<'deleted' | 'owns-buckets' | 'missing'> {
    return this.#mutate(() => {
      if (this.#statements.userById.get(canonicalId) === undefined) return 'missing';
      if (this.#statements.bucketOwnedByUser.get(canonicalId, canonicalId) !== undefined) return 'owns-buckets';
      this.#statements.deleteUserKeys.run(canonicalId);
      this.#statements.deleteUser.run(canonicalId);
      return 'deleted';
    });
  }

  async createBucket(record: BucketRecord): Promise<'created' | 'exists'> {
    const result = await this.#mutate(() =>
      this.#statements.insertBucket.run(
        record.name,
        record.createdMs,
        record.ownerId,
        record.versioning,
        serializeTags(record.tags),
        serializeAccess(record.access ?? null),
        record.configs?.cors ?? null,
        record.configs?.lifecycle ?? null,
        record.configs?.objectLock ?? null,
      ),
    );
    return result.changes === 1 ? 'created' : 'exists';
  }

  async getBucket(name: string): Promise<BucketRecord | undefined> {
    const cached = this.#buckets.get(name);
    if (cached !== undefined) return cached;
    const row = this.#statements.getBucket.get(name) as BucketRow | undefined;
    if (row === undefined) return undefined;
    const record = rowToBucket(row);
    if (this.#buckets.size >= BUCKET_CACHE_MAX) this.#buckets.clear();
    this.#buckets.set(name, record);
    return record;
  }

  /** Forgets cached bucket records, e.g. when another process changed buckets. */
  forgetBuckets(): void {
    this.#buckets.clear();
  }

  async listBuckets(): Promise<BucketRecord[]> {
    return (this.#statements.listBuckets.all() as BucketRow[]).map(rowToBucket);
  }

  async deleteBucket(name: string): Promise<'deleted' | 'not-empty' | 'missing'> {
    const outcome = await this.#mutate((): 'deleted' | 'not-empty' | 'missing' => {
      // Forgotten when the row changes, not before: a lookup in between would cache it again.
      this.#buckets.delete(name);
      this.#latest.clear();
      if (this.#statements.getBucket.get(name) === undefined) return 'missing';
      if (this.#statements.anyVersionInBucket.get(name) !== undefined) return 'not-empty';
      const uploads = this.#statements.uploadIdsInBucket.all(name) as { upload_id: string }[];
      const nowMs = Date.now();
      for (const { upload_id } of uploads) this.#dropUpload(upload_id, nowMs, new Set());
      this.#statements.deleteBucket.run(name);
      return 'deleted';
    });
    if (outcome === 'deleted') await this.#onBucketsChanged();
    return outcome;
  }

  async setBucketVersioning(name: string, state: VersioningState, guard?: BucketGuard): Promise<boolean> {
    const changed = (await this.#mutate(() => {
      this.#buckets.delete(name);
      if (guard !== undefined) this.#guardBucket(name, guard);
      return this.#statements.setVersioning.run(state, name);
    })).changes === 1;
    if (changed) await this.#onBucketsChanged();
    return changed;
  }

  async setBucketAccess(name: string, access: BucketAccessSettings | null): Promise<boolean> {
    const changed = (await this.#mutate(() => {
      this.#buckets.delete(name);
      return this.#statements.setBucketAccess.run(serializeAccess(access), name);
    })).changes === 1;
    if (changed) await this.#onBucketsChanged();
    return changed;
  }

  async setBucketConfig(name: string, kind: BucketConfigKind, document: string | null, guard?: BucketGuard): Promise<boolean> {
    const statement = this.#statements.setBucketConfig[kind];
    const changed = (await this.#mutate(() => {
      this.#buckets.delete(name);
      if (guard !== undefined) this.#guardBucket(name, guard);
      return statement.run(document, name);
    })).changes === 1;
    if (changed) await this.#onBucketsChanged();
    return changed;
  }

  async setBucketQuota(name: string, quota: BucketQuota | null): Promise<boolean> {
    const s = this.#statements;
    const changed = await this.#mutate((): boolean => {
      this.#buckets.delete(name);
      const row = s.getBucket.get(name) as BucketRow | undefined;
      if (row === undefined) return false;
      if (quota === null) s.setQuota.run(null, null, null, null, name);
      else if (row.quota_bytes_used !== null) s.setQuotaLimits.run(quota.maxBytes, quota.maxObjects, name);
      else {
        // Counted in this transaction, so no commit or delete can fall between the count and the first one counted.
        // One aggregate over the bucket's versions (~0.5 µs each) on the event loop: paid once, when a quota is first set.
        const held = s.quotaUsageCount.get(name) as { objects: number; bytes: number };
        // Parts of incomplete uploads count too (released when their upload ends).
        const parts = s.quotaPartsCount.get(name) as { bytes: number };
        s.setQuota.run(quota.maxBytes, quota.maxObjects, held.bytes + parts.bytes, held.objects, name);
      }
      return true;
    });
    if (changed) await this.#onBucketsChanged();
    return changed;
  }

  async bucketQuota(name: string): Promise<BucketQuotaUsage | undefined> {
    const row = this.#statements.getQuota.get(name) as QuotaColumns | undefined;
    return row === undefined ? undefined : rowQuotaUsage(row);
  }

  /** Runs a bucket guard on the row as this transaction sees it (a missing bucket is left to the UPDATE: no change). */
  #guardBucket(name: string, guard: BucketGuard): void {
    const row = this.#statements.getBucket.get(name) as BucketRow | undefined;
    if (row !== undefined) guard(rowToBucket(row));
  }

  async setBucketTags(name: string, tags: Tag[] | null): Promise<boolean> {
    const changed = (await this.#mutate(() => {
      this.#buckets.delete(name);
      return this.#statements.setBucketTags.run(serializeTags(tags), name);
    })).changes === 1;
    if (changed) await this.#onBucketsChanged();
    return changed;
  }

  async getVersion(bucket: string, key: string, versionId?: string): Promise<ObjectVersion | undefined> {
    if (versionId !== undefined) {
      const row = this.#statements.readVersionById.get(bucket, key, versionId) as VersionRow | undefined;
      return row === undefined ? undefined : rowToVersion(row);
    }
    if (this.#dataVersion !== undefined) this.#forgetIfOthersCommitted(this.#dataVersion);
    const cached = this.#latest.get(bucket, key);
    if (cached !== undefined) return cached;
    const row = this.#statements.readLatest.get(bucket, key) as VersionRow | undefined;
    return row === undefined ? undefined : this.#latest.remember(rowToVersion(row));
  }

  /**
   * Empties the latest versions if another connection committed since the
   * last look. A row read after this check is at least as new as the check,
   * and a commit after it changes the version seen by the next check: a
   * cached version is never older than the last commit any process
   * acknowledged before the lookup began (read-after-write across workers).
   */
  #forgetIfOthersCommitted(dataVersion: Database.Statement): void {
    const version = dataVersion.get() as number;
    if (version === this.#seenDataVersion) return;
    this.#seenDataVersion = version;
    this.#latest.clear();
  }

  /** How many latest versions are held in memory (0 when the store does not cache them). */
  get cachedLatestVersions(): number {
    return this.#latest.size;
  }

  async commitVersion(request: CommitRequest): Promise<CommitOutcome> {
    return this.#mutate((): CommitOutcome => this.#commit(request, Date.now()));
  }

  #commit(request: CommitRequest, nowMs: number): CommitOutcome {
    const { version, conditions } = request;
    const s = this.#statements;
    // Inside the transaction that changes the key: no read can come between.
    this.#latest.forget(version.bucket, version.key);
    const bucket = this.#bucketForCommit(version.bucket);
    if (bucket === undefined) return { status: 'no-such-bucket' };
    const latest = s.getLatest.get(version.bucket, version.key) as VersionRow | undefined;
    const current = latest !== undefined && latest.is_delete_marker === 0 ? latest : undefined;
    const verdict = judgeConditions(conditions, current === undefined ? undefined : subjectOf(current));
    if (verdict === 'no-such-key') return { status: 'no-such-key' };
    if (verdict === 'precondition-failed') return { status: 'precondition-failed', ...(current === undefined ? {} : { currentModifiedMs: current.last_modified_ms }) };
    if (request.lockFor !== undefined) setLockState(version, request.lockFor(bucket.objectLock));
    const keep = new Set(version.segments.map((segment) => segment.blobId));
    /** What the completed upload's parts held, every one (those left out of the object are released with it). */
    let partsBytes = 0;
    if (request.completesUploadId !== undefined) {
      if (s.getUploadById.get(request.completesUploadId) === undefined) return { status: 'no-such-upload' };
      // A part replaced after the caller listed the parts has its old blob queued for purge.
      for (const segment of version.segments) {
        const blob = s.getBlobState.get(segment.blobId) as { purge_after_ms: number | null } | undefined;
        if (blob === undefined || blob.purge_after_ms !== null) return { status: 'invalid-part' };
      }
      partsBytes = this.#dropUpload(request.completesUploadId, nowMs, keep);
    }
    let replaced: ObjectVersion | null = null;
    // Every key with versions has exactly one latest (each insert demotes it first, each delete of it
    // promotes the next), so the latest row already answers the common cases without another statement:
    // none means the key has no versions at all, and a latest null version is the row being replaced.
    // (Were a null version ever found without a latest, the insert below would fail on versions_by_id,
    // never commit two.) Two statements fewer for an unversioned PUT (profiled, issue 17).
    let stillLatest = latest;
    /** The latest row when it is the null version this one (without blobs) replaces: rewritten in place (see below). */
    let rewrite: number | undefined;
    if (version.versionId === NULL_VERSION_ID && latest !== undefined) {
      const old = latest.version_id === NULL_VERSION_ID ? latest : s.getVersionById.get(version.bucket, version.key, NULL_VERSION_ID) as VersionRow | undefined;
      if (old !== undefined) {
        replaced = rowToVersion(old);
        // Object Lock: a locked version is never overwritten (versioning may have been suspended when this write began).
        if (isLockedAt(replaced, nowMs)) throw new S3Error('AccessDenied', 'Access Denied because object protected by object lock.');
        this.#queuePurge(replaced.segments, nowMs, keep);
        // In place only for a version without blobs (inline bytes, a delete marker): the object-record writer
        // (src/replication/record-writer.ts) records versions with blobs by seq order, past its last position,
        // so one that kept an old seq would never get a record, and `talus recover --scan` would bring back the
        // replaced content (review finding). Versions with blobs take a new seq, as before.
        if (old.seq === latest.seq && version.segments.length === 0) rewrite = old.seq;
        else this.#deleteVersionRow(old.seq);
        if (old.seq === latest.seq) stillLatest = undefined;
      }
    }
    // Only a bucket with a quota counts (no statement for the others); a refusal rolls this savepoint back whole.
    const usage = bucket.usage;
    if (usage !== undefined) {
      // A completion's parts were counted as they arrived: their bytes become the object's, net.
      const delta = commitDelta(version, replaced);
      delta.bytes -= partsBytes;
      judgeQuota(version.bucket, usage, delta);
      this.#chargeQuota(version.bucket, delta);
    }
    if (stillLatest !== undefined) s.demoteLatest.run(version.bucket, version.key);
    for (const segment of version.segments) s.recordBlob.run(segment.blobId, segment.location ?? LOCAL_BACKEND);
    if (rewrite !== undefined) {
      // The overwrite of a latest null version (every PUT to an unversioned bucket's existing key): its row keeps
      // its place (bucket, key, version ID and seq, the newest of the key's, as a latest's always is) and takes
      // the new columns; no index changes. A delete and an insert moved every index entry and the inline bytes'
      // overflow pages (profiled, issue 17).
      const changes = s.rewriteVersion.run(version.isDeleteMarker ? 1 : 0, version.sizeBytes, version.etag, version.lastModifiedMs, version.ownerId, versionMeta(version), rewrite).changes;
      assert(changes === 1, 'the latest row read in this transaction is there');
      this.#replaceInlineData(rewrite, version.inlineData);
      return { status: 'committed', replaced };
    }
    const inserted = s.insertVersion.run(
      version.bucket, version.key, version.versionId, 1, version.isDeleteMarker ? 1 : 0,
      version.sizeBytes, version.etag, version.lastModifiedMs, version.ownerId, versionMeta(version),
    );
    if (version.inlineData !== undefined) {
      s.insertInlineData.run(inserted.lastInsertRowid, version.inlineData);
      this.#inlineDataTap?.written(Number(inserted.lastInsertRowid), version.inlineData);
    }
    return { status: 'committed', replaced };
  }

  /**
   * What a commit needs of its bucket, as this transaction sees it: its
   * Object Lock configuration and its quota with the usage counted so far.
   * A fresh cached record of a bucket without a quota answers without a
   * statement (see #bucketCacheFresh; the usage counters of a bucket with a
   * quota change with every commit and live only in its row).
   */
  #bucketForCommit(name: string): { objectLock: string | undefined; usage: BucketQuotaUsage | undefined } | undefined {
    const cached = this.#bucketCacheFresh ? this.#buckets.get(name) : undefined;
    if (cached !== undefined && cached.quota === undefined) return { objectLock: cached.configs?.objectLock, usage: undefined };
    const row = this.#statements.getBucket.get(name) as BucketRow | undefined;
    return row === undefined ? undefined : { objectLock: row.object_lock ?? undefined, usage: rowQuotaUsage(row) };
  }

  async deleteVersion(bucket: string, key: string, versionId: string, guard?: VersionGuard): Promise<ObjectVersion | undefined> {
    const outcome = await this.deleteVersionIf(bucket, key, versionId, {}, guard);
    return outcome.status === 'deleted' ? outcome.removed : undefined;
  }

  async deleteVersionIf(bucket: string, key: string, versionId: string, conditions: DeleteConditions, guard?: VersionGuard): Promise<DeleteOutcome> {
    return this.#mutate((): DeleteOutcome => {
      const s = this.#statements;
      this.#latest.forget(bucket, key);
      const row = s.getVersionById.get(bucket, key, versionId) as VersionRow | undefined;
      if (row === undefined) return { status: 'no-such-key' };
      // Judged in the transaction that deletes: nothing can change the version in between.
      if (judgeConditions(conditions, subjectOf(row)) !== 'holds') return { status: 'precondition-failed' };
      if (conditions.ifNoncurrent === true && row.is_latest === 1) return { status: 'precondition-failed' };
      const version = rowToVersion(row);
      // Before anything changes: a refusal throws and this savepoint is rolled back alone.
      guard?.(version);
      this.#deleteVersionRow(row.seq);
      const freed = usageOf(version);
      // One UPDATE that changes no row in a bucket without a quota. Skipping it (and newestRemaining) for a
      // fresh cached record of an unversioned bucket without a quota saved nothing measurable (issue 17).
      if (freed.objects > 0) this.#chargeQuota(bucket, { bytes: -freed.bytes, objects: -freed.objects });
      this.#queuePurge(version.segments, Date.now(), new Set());
      if (row.is_latest === 1) {
        const next = s.newestRemaining.get(bucket, key) as { seq: number } | undefined;
        if (next !== undefined) s.promote.run(next.seq);
      }
      return { status: 'deleted', removed: version };
    });
  }

  async updateVersionLock(bucket: string, key: string, versionId: string, update: (current: ObjectVersion) => ObjectLockState): Promise<boolean> {
    return this.#mutate((): boolean => {
      this.#latest.forget(bucket, key);
      const row = this.#statements.getVersionById.get(bucket, key, versionId) as VersionRow | undefined;
      if (row === undefined) return false;
      const version = rowToVersion(row);
      const next = update(version);
      if (next.retention === undefined) delete version.retention;
      else version.retention = next.retention;
      if (next.legalHold === undefined) delete version.legalHold;
      else version.legalHold = next.legalHold;
      this.#statements.updateVersionMeta.run(versionMeta(version), row.seq);
      return true;
    });
  }

  async setVersionAcl(bucket: string, key: string, versionId: string, acl: Acl | undefined): Promise<boolean> {
    return this.#mutate((): boolean => {
      this.#latest.forget(bucket, key);
      const row = this.#statements.getVersionById.get(bucket, key, versionId) as VersionRow | undefined;
      if (row === undefined) return false;
      const version = rowToVersion(row);
      if (acl === undefined) delete version.acl;
      else version.acl = acl;
      this.#statements.updateVersionMeta.run(versionMeta(version), row.seq);
      return true;
    });
  }

  async setVersionTags(bucket: string, key: string, versionId: string, tags: Tag[]): Promise<boolean> {
    return this.#mutate((): boolean => {
      this.#latest.forget(bucket, key);
      const row = this.#statements.getVersionById.get(bucket, key, versionId) as VersionRow | undefined;
      if (row === undefined) return false;
      const version = rowToVersion(row);
      version.tags = tags;
      this.#statements.updateVersionMeta.run(versionMeta(version), row.seq);
      return true;
    });
  }

  async replaceSegment(bucket: string, key: string, versionId: string, oldBlobId: string, replacement: Segment): Promise<boolean> {
    return this.#mutate((): boolean => {
      this.#latest.forget(bucket, key);
      const s = this.#statements;
      const row = s.getVersionById.get(bucket, key, versionId) as VersionRow | undefined;
      if (row === undefined) return false;
      const version = rowToVersion(row);
      const index = version.segments.findIndex((segment) => segment.blobId === oldBlobId);
      if (index === -1) return false;
      const old = version.segments[index]!;
      assert(old.sizeBytes === replacement.sizeBytes, 'a replacement holds the same bytes');
      version.segments[index] = replacement;
      s.updateVersionMeta.run(versionMeta(version), row.seq);
      s.recordBlob.run(replacement.blobId, replacement.location ?? LOCAL_BACKEND);
      this.#queuePurge([old], Date.now(), new Set([replacement.blobId]));
      return true;
    });
  }

  /**
   * A listing answered here on the event loop when it takes at most
   * #eventLoopListingStepsMax rows and seeks, else undefined (and it goes to
   * a thread): a small page costs less than the hand-off to a thread and
   * back (see LISTING_ON_EVENT_LOOP_STEPS_MAX).
   */
  #listedOnEventLoop<T>(list: (stepsMax: number) => T | undefined): T | undefined {
    return this.#eventLoopListingStepsMax === 0 ? undefined : list(this.#eventLoopListingStepsMax);
  }

  async list(request: ListRequest): Promise<ListResult> {
    const page = this.#listedOnEventLoop((stepsMax) => listKeysPageWithin(this.#db, request, stepsMax)) ?? (await this.#listingThreads?.run('keys', request));
    return page === undefined ? listKeys(this.#db, request) : keysResult(request, page);
  }

  async listVersions(request: ListVersionsRequest): Promise<ListVersionsResult> {
    const page = this.#listedOnEventLoop((stepsMax) => listVersionsPageWithin(this.#db, request, stepsMax)) ?? (await this.#listingThreads?.run('versions', request));
    return page === undefined ? listVersions(this.#db, request) : versionsResult(request, page);
  }

  /**
   * Rendered where it is read: here when small (#listedOnEventLoop), else
   * on a listing thread when one is ready (listing-threads.ts); undefined:
   * the caller lists and renders.
   */
  async listRendered(request: ListRequest, rendering: PageRendering): Promise<RenderedPage | undefined> {
    const renderer = this.#eventLoopRenderer;
    if (renderer !== undefined) {
      const page = renderer.renderKeysPage(rendering);
      const walked = this.#listedOnEventLoop((stepsMax) => listShownKeysInto(this.#db, request, rendering.owners, stepsMax, (entry) => page.add(entry)));
      if (walked !== undefined) return page.finish(walked.isTruncated);
    }
    return this.#listingThreads?.runRendered('keys', request, rendering);
  }

  async listVersionsRendered(request: ListVersionsRequest, rendering: PageRendering): Promise<RenderedPage | undefined> {
    const renderer = this.#eventLoopRenderer;
    if (renderer !== undefined) {
      const page = this.#listedOnEventLoop((stepsMax) => listVersionsPageWithin(this.#db, request, stepsMax));
      if (page !== undefined) return renderer.renderPage({ kind: 'versions', result: versionsResult(request, page) }, rendering);
    }
    return this.#listingThreads?.runRendered('versions', request, rendering);
  }

  async createUpload(record: UploadRecord): Promise<void> {
    await this.#mutate(() =>
      this.#statements.insertUpload.run(record.uploadId, record.bucket, record.key, record.createdMs, record.ownerId, uploadMeta(record)),
    );
  }

  async getUpload(bucket: string, key: string, uploadId: string): Promise<UploadRecord | undefined> {
    const row = this.#statements.getUploadById.get(uploadId) as UploadRow | undefined;
    if (row === undefined || row.bucket !== bucket || row.key !== key) return undefined;
    return rowToUpload(row);
  }

  async putPart(part: PartRecord): Promise<boolean> {
    return this.#mutate((): boolean => {
      const s = this.#statements;
      // The upload and its bucket's quota in one statement: a bucket without a quota pays nothing more.
      const upload = s.getUploadAndQuota.get(part.uploadId) as (UploadRow & QuotaColumns) | undefined;
      if (upload === undefined) return false;
      const old = s.getPart.get(part.uploadId, part.partNumber) as { blob_id: string; size_bytes: number } | undefined;
      const usage = rowQuotaUsage(upload);
      if (usage !== undefined) {
        // Parts count as they arrive (as MinIO checks each part), judged here so concurrent parts cannot both pass;
        // a replaced part's bytes are released by the same change.
        const delta = { bytes: part.sizeBytes - (old?.size_bytes ?? 0), objects: 0 };
        judgeQuota(upload.bucket, usage, delta);
        this.#chargeQuota(upload.bucket, delta);
      }
      const nowMs = Date.now();
      if (old !== undefined) this.#queuePurge([{ blobId: old.blob_id, sizeBytes: 0 }], nowMs, new Set([part.blobId]));
      if (part.blobId !== '') s.recordBlob.run(part.blobId, part.location ?? LOCAL_BACKEND);
      s.upsertPart.run(part.uploadId, part.partNumber, part.sizeBytes, part.etag, part.lastModifiedMs, part.checksum, part.blobId);
      return true;
    });
  }

  async listParts(uploadId: string, afterPartNumber: number, limit: number): Promise<PartRecord[]> {
    const rows = this.#statements.listParts.all(uploadId, afterPartNumber, limit) as (PartRow & { backend: string | null })[];
    return rows.map((row) => ({
      ...(row.backend === null || row.backend === LOCAL_BACKEND ? {} : { location: row.backend }),
      uploadId: row.upload_id,
      partNumber: row.part_number,
      sizeBytes: row.size_bytes,
      etag: row.etag,
      lastModifiedMs: row.last_modified_ms,
      checksum: row.checksum,
      blobId: row.blob_id,
    }));
  }

  async abortUpload(bucket: string, key: string, uploadId: string): Promise<boolean> {
    return this.#mutate((): boolean => {
      const row = this.#statements.getUploadAndQuota.get(uploadId) as (UploadRow & QuotaColumns) | undefined;
      if (row === undefined || row.bucket !== bucket || row.key !== key) return false;
      const partsBytes = this.#dropUpload(uploadId, Date.now(), new Set());
      // Its parts' bytes were counted as they arrived.
      if (rowQuotaUsage(row) !== undefined) this.#chargeQuota(bucket, { bytes: -partsBytes, objects: 0 });
      return true;
    });
  }

  async listUploads(request: ListUploadsRequest): Promise<ListUploadsResult> {
    return (await this.#listingThreads?.run('uploads', request)) ?? listUploads(this.#db, request);
  }

  /** The listing threads, for tests; undefined when this store lists on its own connection. */
  get listingThreads(): ListingThreads | undefined {
    return this.#listingThreads;
  }

  async isBlobKnown(blobId: string): Promise<boolean> {
    return this.#statements.getBlob.get(blobId) !== undefined;
  }

  async takePurgeBatch(nowMs: number, limit: number): Promise<PurgeEntry[]> {
    // A store that lost its database deletes nothing: the blobs may be all a restore has left.
    if (this.#refusal() !== undefined) return [];
    const rows = this.#statements.purgeDue.all(nowMs, limit) as { blob_id: string; backend: string }[];
    return rows.map((row) => (row.backend === LOCAL_BACKEND ? { blobId: row.blob_id } : { blobId: row.blob_id, location: row.backend }));
  }

  async completePurge(blobIds: string[]): Promise<void> {
    this.#assertUsable();
    this.#db.transaction(() => {
      for (const blobId of blobIds) {
        // Repairs of a blob gone for good have nothing left to do.
        if (this.#statements.forgetPurgedBlob.run(blobId).changes > 0) this.#statements.forgetRepairs.run(blobId);
      }
    }).immediate();
  }

  async postponePurge(blobIds: string[], untilMs: number): Promise<void> {
    this.#assertUsable();
    this.#db.transaction(() => {
      for (const blobId of blobIds) this.#statements.postponePurge.run(untilMs, blobId);
    }).immediate();
  }

  async recordRepairs(requests: readonly { blobId: string; shard: number; reason: string }[]): Promise<void> {
    if (requests.length === 0) return;
    const nowMs = Date.now();
    // Through the batched path: a repair is acknowledged only once durable.
    await this.#mutate(() => {
      for (const request of requests) this.#statements.recordRepair.run(request.blobId, request.shard, request.reason, nowMs, nowMs);
    });
  }

  async takeRepairs(nowMs: number, limit: number): Promise<RepairEntry[]> {
    if (this.#refusal() !== undefined) return [];
    return (this.#statements.repairsDue.all(nowMs, limit) as RepairRow[]).map(repairEntry);
  }

  async completeRepairs(entries: readonly { blobId: string; shard: number }[]): Promise<void> {
    this.#assertUsable();
    this.#db.transaction(() => {
      for (const entry of entries) this.#statements.completeRepair.run(entry.blobId, entry.shard);
    }).immediate();
  }

  async postponeRepairs(entries: readonly { blobId: string; shard: number }[], untilMs: number): Promise<void> {
    this.#assertUsable();
    this.#db.transaction(() => {
      for (const entry of entries) this.#statements.postponeRepair.run(untilMs, entry.blobId, entry.shard);
    }).immediate();
  }

  async repairSummary(sampleMax: number): Promise<RepairSummary> {
    const counts = this.#statements.repairCounts.get(LOCAL_BACKEND) as { pending: number; unreferenced: number; oldest: number | null };
    const sample = (this.#statements.repairsOldest.all(sampleMax) as RepairRow[]).map(repairEntry);
    return { pending: counts.pending, unreferenced: counts.unreferenced, oldestRecordedMs: counts.oldest ?? undefined, sample };
  }

  async forgetRepairs(blobIds: readonly string[]): Promise<void> {
    this.#assertUsable();
    this.#db.transaction(() => {
      for (const blobId of blobIds) this.#statements.forgetRepairs.run(blobId);
    }).immediate();
  }

  async listPlacedBlobs(afterBlobId: string, limit: number): Promise<PlacedBlob[]> {
    const rows = this.#statements.placedBlobs.all(LOCAL_BACKEND, afterBlobId, limit) as { blob_id: string; backend: string }[];
    return rows.map((row) => ({ blobId: row.blob_id, location: row.backend }));
  }

  /**
   * In steps of about USAGE_STEP_VERSIONS versions (whole keys), yielding to
   * the event loop between them: better-sqlite3 runs a query synchronously,
   * about 0.5 µs per version, so one query over a bucket of ten million
   * would hold every request for seconds. Each step is consistent; writes
   * between steps may or may not be counted.
   */
  async bucketUsage(bucket: string): Promise<BucketUsage> {
    const usage: BucketUsage = { objects: 0, versions: 0, deleteMarkers: 0, bytes: 0, incompleteUploads: 0 };
    let after = '';
    for (;;) {
      // The key USAGE_STEP_VERSIONS versions on: the step ends with it (all its versions), or runs to the bucket's end.
      const boundary = this.#statements.usageStepEnd.get({ bucket, after, step: USAGE_STEP_VERSIONS }) as { key: string } | undefined;
      const row = (boundary === undefined ? this.#statements.usageTail.get({ bucket, after }) : this.#statements.usageStep.get({ bucket, after, until: boundary.key })) as { objects: number; versions: number; delete_markers: number; bytes: number };
      usage.objects += row.objects;
      usage.versions += row.versions;
      usage.deleteMarkers += row.delete_markers;
      usage.bytes += row.bytes;
      if (boundary === undefined) break;
      after = boundary.key;
      await new Promise((resolve) => setImmediate(resolve));
    }
    usage.incompleteUploads = (this.#statements.uploadCount.get(bucket) as { uploads: number }).uploads;
    return usage;
  }

  async purgeQueueSummary(): Promise<PurgeQueueSummary> {
    const row = this.#statements.purgeQueueSummary.get() as { blobs: number; oldest: number | null };
    return { blobs: row.blobs, oldestDueMs: row.oldest ?? undefined };
  }

  /** In steps of BLOB_SCAN_STEP blobs, yielding to the event loop between them, as bucketUsage does. */
  async countBlobsOnBackend(backend: string): Promise<number> {
    let count = 0;
    let after = '';
    for (;;) {
      const boundary = this.#statements.blobScanStepEnd.get({ after, step: BLOB_SCAN_STEP }) as { blob_id: string } | undefined;
      const row = (boundary === undefined
        ? this.#statements.blobsOnBackendTail.get({ after, backend, local: LOCAL_BACKEND })
        : this.#statements.blobsOnBackendStep.get({ after, until: boundary.blob_id, backend, local: LOCAL_BACKEND })) as { blobs: number };
      count += row.blobs;
      if (boundary === undefined) return count;
      after = boundary.blob_id;
      await new Promise((resolve) => setImmediate(resolve));
    }
  }

  async sampleBlobsOnBackend(backend: string, limit: number): Promise<PlacedBlob[]> {
    const rows = this.#statements.liveBlobsOnBackendSample.all({ backend, local: LOCAL_BACKEND, limit }) as { blob_id: string; backend: string }[];
    return rows.map((row) => ({ blobId: row.blob_id, location: row.backend }));
  }

  /** One transaction: a scan of every placed blob's location (rare, forced: not stepped as countBlobsOnBackend is). */
  async releaseBackendFromPurgeQueue(backend: string, gone: string): Promise<{ live: number; released: number }> {
    this.#assertUsable();
    return this.#db.transaction(() => {
      const s = this.#statements;
      const live = (s.liveBlobsOnBackend.get({ backend, local: LOCAL_BACKEND }) as { blobs: number }).blobs;
      if (live > 0) return { live, released: 0 };
      const queued = s.purgeQueuedOnBackend.all({ backend, local: LOCAL_BACKEND }) as { blob_id: string; backend: string }[];
      for (const row of queued) s.setBlobLocation.run(withoutBackend(row.backend, backend, gone), row.blob_id);
      return { live: 0, released: queued.length };
    }).immediate();
  }

  /** Idempotent: a second call waits for the first (closing the files twice would fail with EBADF). */
  close(): Promise<void> {
    return (this.#closing ??= this.#closeOnce());
  }

  async #closeOnce(): Promise<void> {
    // Mutations already asked for still commit (a flush is scheduled while any wait).
    while (this.#pending.length > 0) await new Promise((resolve) => setTimeout(resolve, 1));
    // Their connections first: the last connection to close checkpoints and removes the WAL.
    await this.#listingThreads?.stop();
    await this.#wal?.close();
    for (const file of this.#files) file.close();
    this.#db.close();
  }

  /** Moves a bucket's quota counters by `delta`; changes nothing in a bucket without a quota. */
  #chargeQuota(bucket: string, delta: UsageDelta): void {
    if (delta.bytes === 0 && delta.objects === 0) return;
    this.#statements.chargeQuota.run(delta.bytes, delta.objects, bucket);
  }

  /** Sets (or, with none, removes) the inline bytes of the version row `seq`. */
  #replaceInlineData(seq: number, data: Buffer | undefined): void {
    const s = this.#statements;
    if (data === undefined) s.deleteInlineData.run(seq);
    else {
      if (s.updateInlineData.run(data, seq).changes === 0) s.insertInlineData.run(seq, data);
      this.#inlineDataTap?.written(seq, data);
    }
  }

  /** A version and its inline bytes go together. */
  #deleteVersionRow(seq: number): void {
    this.#statements.deleteVersionBySeq.run(seq);
    this.#statements.deleteInlineData.run(seq);
  }

  /** Removes an upload and its parts; queues every part blob not in `keep` for purge. Returns the parts' bytes. */
  #dropUpload(uploadId: string, nowMs: number, keep: Set<string>): number {
    const s = this.#statements;
    const parts = s.partBlobs.all(uploadId) as { blob_id: string; size_bytes: number }[];
    this.#queuePurge(parts.map((part) => ({ blobId: part.blob_id, sizeBytes: 0 })), nowMs, keep);
    s.deleteParts.run(uploadId);
    s.deleteUpload.run(uploadId);
    return parts.reduce((sum, part) => sum + part.size_bytes, 0);
  }

  /**
   * Queues blobs for removal after a grace period, so that a GET that looked
   * the old version up a moment ago can still open its bytes.
   */
  #queuePurge(segments: readonly Segment[], nowMs: number, keep: Set<string>): void {
    for (const segment of segments) {
      // Empty parts have no blob.
      if (segment.blobId === '' || keep.has(segment.blobId)) continue;
      const changes = this.#statements.queuePurge.run(nowMs + PURGE_GRACE_MS, segment.blobId).changes;
      assert(changes <= 1, 'blob ids are unique');
    }
  }
}

export interface StoreIdentity {
  /** Random, set when the store is created (or first opened by a Talus that records it). */
  id: string;
  /** Incremented by every start-up of the owning server. */
  epoch: number;
}

interface BucketRow extends QuotaColumns {
  name: string;
  created_ms: number;
  owner_id: string;
  versioning: VersioningState;
  tags: string | null;
  access: string | null;
  cors: string | null;
  lifecycle: string | null;
  object_lock: string | null;
}

interface RepairRow {
  blob_id: string;
  shard: number;
  reason: string;
  recorded_ms: number;
  attempts: number;
  backend: string | null;
  purge_after_ms: number | null;
}

/** What preconditions look at, read from the row's columns (the JSON document only parsed if `ifSelected` asks for it). */
function subjectOf(row: VersionRow): ConditionSubject {
  return { etag: row.etag, sizeBytes: row.size_bytes, lastModifiedMs: row.last_modified_ms, readVersion: () => rowToVersion(row) };
}

function repairEntry(row: RepairRow): RepairEntry {
  // A blob queued for purge or forgotten has nothing left to repair.
  const live = row.backend !== null && row.backend !== LOCAL_BACKEND && row.purge_after_ms === null;
  return { blobId: row.blob_id, shard: row.shard, reason: row.reason, recordedMs: row.recorded_ms, attempts: row.attempts, location: live ? row.backend! : undefined };
}

interface PartRow {
  upload_id: string;
  part_number: number;
  size_bytes: number;
  etag: string;
  last_modified_ms: number;
  checksum: string | null;
  blob_id: string;
}

const ROOT_CANONICAL_ID_SETTING = 'root_canonical_id';
const SECRET_KEY_CHECK_SETTING = 'secret_key_check';

interface AccessKeyRow {
  access_key_id: string;
  created_ms: number;
  sealed_secret: Buffer;
  user_id: string | null;
  policy: string | null;
  expires_ms: number | null;
  enabled: number;
}

function rowToAccessKey(row: AccessKeyRow): AccessKeyRecord {
  return {
    accessKeyId: row.access_key_id,
    userId: row.user_id,
    sealedSecret: row.sealed_secret,
    policy: row.policy,
    expiresMs: row.expires_ms,
    enabled: row.enabled === 1,
    createdMs: row.created_ms,
  };
}

/** Frozen: records are shared through the bucket cache. */
function rowToBucket(row: BucketRow): BucketRecord {
  return Object.freeze({
    name: row.name,
    createdMs: row.created_ms,
    ownerId: row.owner_id,
    versioning: row.versioning,
    tags: row.tags === null ? null : Object.freeze(JSON.parse(row.tags) as Tag[]) as Tag[],
    access: row.access === null ? null : Object.freeze(JSON.parse(row.access) as BucketAccessSettings),
    configs: rowToConfigs(row),
    ...quotaField(row),
  });
}

function quotaField(row: BucketRow): { quota?: BucketRecord['quota'] } {
  const quota = rowQuota(row);
  return quota === undefined ? {} : { quota };
}

function rowToConfigs(row: BucketRow): BucketConfigs {
  const configs: { -readonly [kind in BucketConfigKind]?: string } = {};
  if (row.cors !== null) configs.cors = row.cors;
  if (row.lifecycle !== null) configs.lifecycle = row.lifecycle;
  if (row.object_lock !== null) configs.objectLock = row.object_lock;
  return Object.freeze(configs);
}

function serializeAccess(access: BucketAccessSettings | null): string | null {
  return access === null ? null : JSON.stringify(access);
}

function serializeTags(tags: Tag[] | null): string | null {
  return tags === null ? null : JSON.stringify(tags);
}

function prepareStatements(db: Database.Database) {
  return {
    getSetting: db.prepare('SELECT value FROM settings WHERE name = ?'),
    putSetting: db.prepare('INSERT OR REPLACE INTO settings (name, value) VALUES (?, ?)'),
    // substr, not LIKE: a prefix's _ and % are plain characters.
    listSettings: db.prepare('SELECT name, value FROM settings WHERE substr(name, 1, length(?)) = ? ORDER BY name'),
    deleteSetting: db.prepare('DELETE FROM settings WHERE name = ?'),
    insertSettingIfAbsent: db.prepare('INSERT INTO settings (name, value) VALUES (?, ?) ON CONFLICT (name) DO NOTHING'),
    replaceSettingIf: db.prepare('UPDATE settings SET value = ? WHERE name = ? AND value = ?'),
    anyBucket: db.prepare('SELECT 1 FROM buckets LIMIT 1'),
    anyBlob: db.prepare('SELECT 1 FROM blobs LIMIT 1'),
    // secret_access_key is the version 2 plain-text column: never written with a secret any more.
    putAccessKey: db.prepare(
      "INSERT OR REPLACE INTO access_keys (access_key_id, secret_access_key, created_ms, sealed_secret, user_id, policy, expires_ms, enabled) VALUES (?, '', ?, ?, ?, ?, ?, ?)",
    ),
    listAccessKeys: db.prepare(
      'SELECT access_key_id, created_ms, sealed_secret, user_id, policy, expires_ms, enabled FROM access_keys WHERE sealed_secret IS NOT NULL ORDER BY created_ms, access_key_id',
    ),
    getAccessKey: db.prepare('SELECT 1 FROM access_keys WHERE access_key_id = ?'),
    setAccessKeyEnabled: db.prepare('UPDATE access_keys SET enabled = ? WHERE access_key_id = ?'),
    setAccessKeyPolicy: db.prepare('UPDATE access_keys SET policy = ? WHERE access_key_id = ?'),
    deleteAccessKey: db.prepare('DELETE FROM access_keys WHERE access_key_id = ?'),
    unsealedAccessKeys: db.prepare('SELECT access_key_id, secret_access_key FROM access_keys WHERE sealed_secret IS NULL ORDER BY created_ms'),
    sealAccessKey: db.prepare("UPDATE access_keys SET sealed_secret = ?, secret_access_key = '' WHERE access_key_id = ?"),
    insertUser: db.prepare('INSERT INTO users (canonical_id, name, email, policy, created_ms) VALUES (?, ?, ?, ?, ?)'),
    userByName: db.prepare('SELECT 1 FROM users WHERE name = ?'),
    userByEmail: db.prepare('SELECT 1 FROM users WHERE lower(email) = lower(?)'),
    userById: db.prepare('SELECT 1 FROM users WHERE canonical_id = ?'),
    listUsers: db.prepare('SELECT * FROM users ORDER BY name'),
    setUserPolicy: db.prepare('UPDATE users SET policy = ? WHERE canonical_id = ?'),
    deleteUser: db.prepare('DELETE FROM users WHERE canonical_id = ?'),
    deleteUserKeys: db.prepare('DELETE FROM access_keys WHERE user_id = ?'),
    // Buckets record their creator's canonical ID, or (before principals) the access key ID that created them.
    bucketOwnedByUser: db.prepare(
      'SELECT 1 FROM buckets WHERE owner_id = ? OR owner_id IN (SELECT access_key_id FROM access_keys WHERE user_id = ?) LIMIT 1',
    ),
    insertBucket: db.prepare(
      'INSERT OR IGNORE INTO buckets (name, created_ms, owner_id, versioning, tags, access, cors, lifecycle, object_lock) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)',
    ),
    getBucket: db.prepare('SELECT * FROM buckets WHERE name = ?'),
    listBuckets: db.prepare('SELECT * FROM buckets ORDER BY name'),
    deleteBucket: db.prepare('DELETE FROM buckets WHERE name = ?'),
    anyVersionInBucket: db.prepare('SELECT 1 FROM versions WHERE bucket = ? LIMIT 1'),
    uploadIdsInBucket: db.prepare('SELECT upload_id FROM uploads WHERE bucket = ?'),
    setVersioning: db.prepare('UPDATE buckets SET versioning = ? WHERE name = ?'),
    setBucketTags: db.prepare('UPDATE buckets SET tags = ? WHERE name = ?'),
    setBucketAccess: db.prepare('UPDATE buckets SET access = ? WHERE name = ?'),
    setBucketConfig: {
      cors: db.prepare('UPDATE buckets SET cors = ? WHERE name = ?'),
      lifecycle: db.prepare('UPDATE buckets SET lifecycle = ? WHERE name = ?'),
      objectLock: db.prepare('UPDATE buckets SET object_lock = ? WHERE name = ?'),
    },
    getLatest: db.prepare('SELECT * FROM versions WHERE bucket = ? AND key = ? AND is_latest = 1'),
    getVersionById: db.prepare('SELECT * FROM versions WHERE bucket = ? AND key = ? AND version_id = ?'),
    // What GET reads: the version and, for small objects, its bytes.
    readLatest: db.prepare(
      'SELECT v.*, d.data AS inline_data FROM versions v LEFT JOIN inline_data d ON d.seq = v.seq WHERE v.bucket = ? AND v.key = ? AND v.is_latest = 1',
    ),
    readVersionById: db.prepare(
      'SELECT v.*, d.data AS inline_data FROM versions v LEFT JOIN inline_data d ON d.seq = v.seq WHERE v.bucket = ? AND v.key = ? AND v.version_id = ?',
    ),
    insertInlineData: db.prepare('INSERT INTO inline_data (seq, data) VALUES (?, ?)'),
    updateInlineData: db.prepare('UPDATE inline_data SET data = ? WHERE seq = ?'),
    rewriteVersion: db.prepare('UPDATE versions SET is_delete_marker = ?, size_bytes = ?, etag = ?, last_modified_ms = ?, owner_id = ?, meta = ? WHERE seq = ?'),
    demoteLatest: db.prepare('UPDATE versions SET is_latest = 0 WHERE bucket = ? AND key = ? AND is_latest = 1'),
    insertVersion: db.prepare(
      'INSERT INTO versions (bucket, key, version_id, is_latest, is_delete_marker, size_bytes, etag, last_modified_ms, owner_id, meta) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)',
    ),
    deleteVersionBySeq: db.prepare('DELETE FROM versions WHERE seq = ?'),
    deleteInlineData: db.prepare('DELETE FROM inline_data WHERE seq = ?'),
    newestRemaining: db.prepare('SELECT seq FROM versions WHERE bucket = ? AND key = ? ORDER BY seq DESC LIMIT 1'),
    promote: db.prepare('UPDATE versions SET is_latest = 1 WHERE seq = ?'),
    updateVersionMeta: db.prepare('UPDATE versions SET meta = ? WHERE seq = ?'),
    insertUpload: db.prepare('INSERT INTO uploads (upload_id, bucket, key, created_ms, owner_id, meta) VALUES (?, ?, ?, ?, ?, ?)'),
    getUploadById: db.prepare('SELECT * FROM uploads WHERE upload_id = ?'),
    deleteUpload: db.prepare('DELETE FROM uploads WHERE upload_id = ?'),
    getPart: db.prepare('SELECT blob_id, size_bytes FROM parts WHERE upload_id = ? AND part_number = ?'),
    // An upload with its bucket's quota columns (parts count against the quota).
    getUploadAndQuota: db.prepare(
      'SELECT u.*, b.quota_bytes_max, b.quota_objects_max, b.quota_bytes_used, b.quota_objects_used FROM uploads u JOIN buckets b ON b.name = u.bucket WHERE u.upload_id = ?',
    ),
    upsertPart: db.prepare(
      'INSERT OR REPLACE INTO parts (upload_id, part_number, size_bytes, etag, last_modified_ms, checksum, blob_id) VALUES (?, ?, ?, ?, ?, ?, ?)',
    ),
    // A part's blob row says where its bytes live (the parts table predates placement).
    listParts: db.prepare(
      'SELECT parts.*, blobs.backend FROM parts LEFT JOIN blobs ON blobs.blob_id = parts.blob_id WHERE upload_id = ? AND part_number > ? ORDER BY part_number LIMIT ?',
    ),
    partBlobs: db.prepare('SELECT blob_id, size_bytes FROM parts WHERE upload_id = ?'),
    deleteParts: db.prepare('DELETE FROM parts WHERE upload_id = ?'),
    recordBlob: db.prepare('INSERT INTO blobs (blob_id, backend, purge_after_ms) VALUES (?, ?, NULL) ON CONFLICT (blob_id) DO UPDATE SET purge_after_ms = NULL'),
    getBlob: db.prepare('SELECT 1 FROM blobs WHERE blob_id = ?'),
    getBlobState: db.prepare('SELECT purge_after_ms FROM blobs WHERE blob_id = ?'),
    queuePurge: db.prepare('UPDATE blobs SET purge_after_ms = ? WHERE blob_id = ?'),
    purgeDue: db.prepare('SELECT blob_id, backend FROM blobs WHERE purge_after_ms IS NOT NULL AND purge_after_ms <= ? ORDER BY purge_after_ms LIMIT ?'),
    postponePurge: db.prepare('UPDATE blobs SET purge_after_ms = ? WHERE blob_id = ? AND purge_after_ms IS NOT NULL'),
    recordRepair: db.prepare(
      'INSERT INTO repairs (blob_id, shard, reason, recorded_ms, attempts, due_ms) VALUES (?, ?, ?, ?, 0, ?) ON CONFLICT (blob_id, shard) DO UPDATE SET reason = excluded.reason',
    ),
    repairsDue: db.prepare(
      'SELECT repairs.*, blobs.backend, blobs.purge_after_ms FROM repairs LEFT JOIN blobs ON blobs.blob_id = repairs.blob_id WHERE due_ms <= ? ORDER BY due_ms LIMIT ?',
    ),
    repairsOldest: db.prepare(
      'SELECT repairs.*, blobs.backend, blobs.purge_after_ms FROM repairs LEFT JOIN blobs ON blobs.blob_id = repairs.blob_id ORDER BY recorded_ms LIMIT ?',
    ),
    repairCounts: db.prepare(
      `SELECT count(*) FILTER (WHERE live) AS pending, count(*) FILTER (WHERE NOT live) AS unreferenced, min(recorded_ms) FILTER (WHERE live) AS oldest
       FROM (SELECT repairs.recorded_ms, (blobs.backend IS NOT NULL AND blobs.backend != ? AND blobs.purge_after_ms IS NULL) AS live
             FROM repairs LEFT JOIN blobs ON blobs.blob_id = repairs.blob_id)`,
    ),
    forgetRepairs: db.prepare('DELETE FROM repairs WHERE blob_id = ?'),
    completeRepair: db.prepare('DELETE FROM repairs WHERE blob_id = ? AND shard = ?'),
    postponeRepair: db.prepare('UPDATE repairs SET attempts = attempts + 1, due_ms = ? WHERE blob_id = ? AND shard = ?'),
    // bucketUsage's steps: ranges of versions_by_key, summed as they are walked (nothing held but the totals).
    usageStepEnd: db.prepare('SELECT key FROM versions WHERE bucket = @bucket AND key > @after ORDER BY key LIMIT 1 OFFSET @step'),
    usageStep: db.prepare(`${USAGE_SUMS} AND key <= @until`),
    usageTail: db.prepare(USAGE_SUMS),
    uploadCount: db.prepare('SELECT count(*) AS uploads FROM uploads WHERE bucket = ?'),
    // Bucket quotas (src/meta/quota.ts): counters exist only while a quota is set.
    quotaUsageCount: db.prepare(
      'SELECT count(*) AS objects, coalesce(sum(size_bytes), 0) AS bytes FROM versions WHERE bucket = ? AND is_delete_marker = 0',
    ),
    quotaPartsCount: db.prepare(
      'SELECT coalesce(sum(p.size_bytes), 0) AS bytes FROM parts p JOIN uploads u ON u.upload_id = p.upload_id WHERE u.bucket = ?',
    ),
    setQuota: db.prepare('UPDATE buckets SET quota_bytes_max = ?, quota_objects_max = ?, quota_bytes_used = ?, quota_objects_used = ? WHERE name = ?'),
    setQuotaLimits: db.prepare('UPDATE buckets SET quota_bytes_max = ?, quota_objects_max = ? WHERE name = ?'),
    getQuota: db.prepare('SELECT quota_bytes_max, quota_objects_max, quota_bytes_used, quota_objects_used FROM buckets WHERE name = ?'),
    chargeQuota: db.prepare(
      'UPDATE buckets SET quota_bytes_used = quota_bytes_used + ?, quota_objects_used = quota_objects_used + ? WHERE name = ? AND quota_bytes_used IS NOT NULL',
    ),
    purgeQueueSummary: db.prepare('SELECT count(*) AS blobs, min(purge_after_ms) AS oldest FROM blobs WHERE purge_after_ms IS NOT NULL'),
    placedBlobs: db.prepare('SELECT blob_id, backend FROM blobs WHERE backend != ? AND purge_after_ms IS NULL AND blob_id > ? ORDER BY blob_id LIMIT ?'),
    blobScanStepEnd: db.prepare('SELECT blob_id FROM blobs WHERE blob_id > @after ORDER BY blob_id LIMIT 1 OFFSET @step'),
    blobsOnBackendStep: db.prepare(`${BLOBS_ON_BACKEND} AND blob_id <= @until`),
    blobsOnBackendTail: db.prepare(BLOBS_ON_BACKEND),
    liveBlobsOnBackend: db.prepare("SELECT count(*) AS blobs FROM blobs WHERE backend != @local AND purge_after_ms IS NULL AND EXISTS (SELECT 1 FROM json_each(blobs.backend, '$.on') WHERE value = @backend)"),
    purgeQueuedOnBackend: db.prepare("SELECT blob_id, backend FROM blobs WHERE backend != @local AND purge_after_ms IS NOT NULL AND EXISTS (SELECT 1 FROM json_each(blobs.backend, '$.on') WHERE value = @backend)"),
    liveBlobsOnBackendSample: db.prepare("SELECT blob_id, backend FROM blobs WHERE backend != @local AND purge_after_ms IS NULL AND EXISTS (SELECT 1 FROM json_each(blobs.backend, '$.on') WHERE value = @backend) LIMIT @limit"),
    setBlobLocation: db.prepare('UPDATE blobs SET backend = ? WHERE blob_id = ?'),
    forgetPurgedBlob: db.prepare('DELETE FROM blobs WHERE blob_id = ? AND purge_after_ms IS NOT NULL'),
  };
}
