/**
 * The metadata store on PostgreSQL (`talus server --meta postgres://…`),
 * shared by several Talus nodes. Same interface and semantics as the SQLite
 * store; what differs is how mutations are serialized:
 *
 * - SQLite runs every transaction on the event loop, one after another.
 *   Here each mutation is its own transaction on a pooled connection, and
 *   transactions of many nodes run concurrently (READ COMMITTED). A
 *   check-then-write (conditional commits, promotions, deletes of a key's
 *   versions) first takes a per-key transaction lock,
 *   pg_advisory_xact_lock(hash of bucket/key): the second writer waits for
 *   the first to commit and its statements, each with a fresh snapshot,
 *   then see the first one's version. Without it both would read "no
 *   current version" and both win. The unique index versions_one_latest is
 *   a second line: two latest versions of a key cannot commit.
 * - Rows that several statements of a mutation depend on are locked where
 *   they are read: an upload (FOR UPDATE) by its parts and its completion;
 *   a bucket by a transaction lock on its name, shared by every commit into
 *   it and exclusive for DeleteBucket, so that DeleteBucket cannot
 *   empty-check and drop it under a commit in flight (a lock in memory, not
 *   a row lock every commit would write into the bucket's row).
 * - Background work is claimed, not just read: takePurgeBatch and
 *   takeRepairs lock due rows with FOR UPDATE SKIP LOCKED and move their due
 *   time a lease ahead in the same statement, so each entry goes to one node
 *   at a time; a node that dies holding a claim frees it when the lease ends.
 * - A commit is durable when PostgreSQL acknowledges it (synchronous_commit,
 *   on by default). A connection lost while a mutation was in flight leaves
 *   its outcome unknown: CommitOutcomeUnknownError, so the engine keeps the
 *   bytes it references.
 * - Bucket records are cached for BUCKET_CACHE_TTL_MS: another node's
 *   change to a bucket's settings takes up to that long to be seen here (S3
 *   itself lets bucket settings take a moment to propagate); writes re-check
 *   the bucket inside their transaction.
 */
import { randomBytes } from 'node:crypto';
import postgres from 'postgres';
import { assert } from '../../util/assert.ts';
import { S3Error } from '../../util/s3-error.ts';
import { withoutBackend } from '../released-backend.ts';
import { PURGE_GRACE_MS } from '../../util/limits.ts';
import {
  CommitOutcomeUnknownError,
  type BucketGuard,
  type BucketUsage,
  type CommitConditions,
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
  type MetadataStore,
  type PlacedBlob,
  type PurgeEntry,
  type PurgeQueueSummary,
  type RepairEntry,
  type RepairSummary,
  type VersionGuard,
} from '../metadata-store.ts';
import { type ConditionVerdict, judgeConditions } from '../conditions.ts';
import type { Acl } from '../../authz/index.ts';
import type {
  AccessKeyRecord,
  BucketAccessSettings,
  BucketConfigKind,
  BucketConfigs,
  BucketQuota,
  BucketQuotaUsage,
  BucketRecord,
  ObjectVersion,
  PartRecord,
  Segment,
  Tag,
  UnsealedAccessKey,
  UploadRecord,
  UserRecord,
  VersioningState,
  ObjectLockState,
} from '../types.ts';
import { NULL_VERSION_ID, isLockedAt, setLockState } from '../types.ts';
import { rowToUpload, rowToVersion, uploadMeta, versionMeta, type UploadRow, type VersionRow } from '../sqlite/rows.ts';
import { listKeys, listUploads, listVersions } from './listing.ts';
import { commitDelta, judgeQuota, rowQuota, rowQuotaUsage, usageOf, type QuotaColumns } from '../quota.ts';
import { MIGRATIONS, SCHEMA, SCHEMA_LOCK_ID, SCHEMA_VERSION, SCHEMA_VERSION_MIGRATABLE_MIN } from './schema.ts';

export const LOCAL_BACKEND = 'local';

/** The conditions judged on a version row (undefined: none, or a delete marker). */
function judgeRow(conditions: CommitConditions, current: VersionRow | undefined): ConditionVerdict {
  return judgeConditions(conditions, current === undefined ? undefined : {
    etag: current.etag, sizeBytes: current.size_bytes, lastModifiedMs: current.last_modified_ms, readVersion: () => rowToVersion(current),
  });
}

/** Connections per node: enough to keep a node's requests pipelined, few enough for many nodes on one server (max_connections 100 by default). */
const POOL_CONNECTIONS_MAX = 16;
/** How long another node's change to a bucket's settings may go unseen here. */
const BUCKET_CACHE_TTL_MS = 1_000;
const BUCKET_CACHE_MAX = 10_000;
/**
 * A claimed purge or repair is not handed to another node for this long; a
 * node that dies mid-claim delays those entries by at most this much. Far
 * above a pass's duration (a batch of removals with backend deadlines).
 */
export const CLAIM_LEASE_MS = 60_000;
/** Principals change rarely: one lock serializes their check-then-write (unique names, emails, bucket ownership). */
const PRINCIPALS_LOCK_ID = 0x7461_6c75_7300_0002n;
/** A session idle inside a transaction this long is ended by PostgreSQL, releasing its locks (see open()). */
export const IDLE_IN_TRANSACTION_TIMEOUT_MS = 5_000;
/** How long after a lost connection the readiness probe reports the store unusable (unless a query succeeded since). */
const CONNECTION_PROBLEM_REPORT_MS = 5_000;

/** Connection-level failures: the server may or may not have committed what was in flight. */
const CONNECTION_ERROR_CODES = new Set(['CONNECTION_CLOSED', 'CONNECTION_ENDED', 'CONNECTION_DESTROYED', 'CONNECT_TIMEOUT', 'ECONNRESET', 'ECONNREFUSED', 'EPIPE', 'ETIMEDOUT', '57P01', '57P02', '57P03']);
/** SQLSTATE class 08, connection exception (08000, 08003 connection_does_not_exist, 08006 connection_failure, …). */
const CONNECTION_EXCEPTION_CLASS = '08';

/**
 * A read outside a transaction lost its connection (a terminated backend,
 * a failover, a network cut): nothing changed, and the same read on the
 * next connection may well succeed. 503 ServiceUnavailable, as a write cut
 * the same way answers (CommitOutcomeUnknownError), so the AWS SDKs retry
 * it with backoff instead of failing on a 500 InternalError.
 */
export class MetadataConnectionLostError extends S3Error {
  constructor(cause: unknown) {
    super('ServiceUnavailable', `The metadata store lost its connection to PostgreSQL during the read; retry. (${cause instanceof Error ? cause.message : String(cause)})`);
    this.name = 'MetadataConnectionLostError';
    this.cause = cause;
  }
}

type Sql = postgres.Sql<{ bigint: number }>;
type Tx = postgres.TransactionSql<{ bigint: number }>;

/** deadlock_detected and serialization_failure: nothing was committed, and running the mutation again is safe. */
const RETRYABLE_CODES = new Set(['40P01', '40001']);
const MUTATION_ATTEMPTS_MAX = 3;

function isRetryable(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' && RETRYABLE_CODES.has(code);
}

function isConnectionError(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' && (CONNECTION_ERROR_CODES.has(code) || code.startsWith(CONNECTION_EXCEPTION_CLASS));
}

export interface PostgresStoreOptions {
  /** Called after this store deleted a bucket or changed its settings (as the SQLite store's option). */
  onBucketsChanged?: () => void;
  /** Connections in this process's pool. */
  connections?: number;
  /** How long replaced and deleted blobs wait in the purge queue (default PURGE_GRACE_MS, as SQLite). */
  purgeGraceMs?: number;
}

export class PostgresMetadataStore implements MetadataStore {
  readonly #sql: Sql;
  readonly #onBucketsChanged: () => void;
  readonly #buckets = new Map<string, { record: BucketRecord; untilMs: number }>();
  #connectionProblem: { reason: string; atMs: number } | undefined;
  readonly #purgeGraceMs: number;
  #closing: Promise<void> | undefined;

  private constructor(sql: Sql, options: PostgresStoreOptions) {
    this.#sql = sql;
    this.#purgeGraceMs = options.purgeGraceMs ?? PURGE_GRACE_MS;
    this.#onBucketsChanged = options.onBucketsChanged ?? (() => undefined);
  }

  /** Connects, creates or checks the schema (one node at a time), and chooses root's canonical ID once per database. */
  static async open(url: string, options: PostgresStoreOptions = {}): Promise<PostgresMetadataStore> {
    const sql: Sql = postgres(url, {
      max: options.connections ?? POOL_CONNECTIONS_MAX,
      onnotice: () => undefined,
      connection: {
        application_name: 'talus',
        // A node cut off in the middle of a transaction (a partition, a frozen process) holds its key locks until
        // PostgreSQL ends the session: this bounds how long the other nodes wait for that key. Talus's
        // transactions are milliseconds long and never wait on anything but the database inside.
        idle_in_transaction_session_timeout: IDLE_IN_TRANSACTION_TIMEOUT_MS,
      },
      // Milliseconds and byte counts are far below 2^53.
      types: { bigint: { to: 20, from: [20], serialize: (value: number) => String(value), parse: (text: string) => Number(text) } },
    });
    try {
      const [encoding] = await sql<{ server_encoding: string }[]>`SHOW server_encoding`;
      if (encoding?.server_encoding !== 'UTF8') {
        throw new Error(`the PostgreSQL database has encoding ${encoding?.server_encoding}; Talus needs UTF8 (keys are compared as UTF-8 bytes)`);
      }
      await sql.begin(async (tx) => {
        await tx`SELECT pg_advisory_xact_lock(${SCHEMA_LOCK_ID.toString()}::bigint)`;
        const [table] = await tx`SELECT to_regclass('settings') IS NOT NULL AS exists`;
        const found = table?.['exists'] === true ? await tx<{ value: string }[]>`SELECT value FROM settings WHERE name = 'schema_version'` : [];
        const version = found[0] === undefined ? SCHEMA_VERSION : Number(found[0].value);
        if (!Number.isInteger(version) || version < SCHEMA_VERSION_MIGRATABLE_MIN || version > SCHEMA_VERSION) {
          throw new Error(`the PostgreSQL metadata store has schema version ${found[0]?.value}; this Talus knows ${SCHEMA_VERSION_MIGRATABLE_MIN} to ${SCHEMA_VERSION}`);
        }
        await tx.unsafe(SCHEMA);
        for (const migration of MIGRATIONS) if (migration.toVersion > version) await tx.unsafe(migration.sql);
        await tx`INSERT INTO settings (name, value) VALUES ('schema_version', ${String(SCHEMA_VERSION)}) ON CONFLICT (name) DO UPDATE SET value = excluded.value WHERE settings.value <> excluded.value`;
        await tx`INSERT INTO settings (name, value) VALUES (${ROOT_CANONICAL_ID_SETTING}, ${randomBytes(32).toString('hex')}) ON CONFLICT (name) DO NOTHING`;
      });
    } catch (error) {
      await sql.end({ timeout: 1 });
      throw error;
    }
    return new PostgresMetadataStore(sql, options);
  }

  /** The connection pool, for `talus migrate` and tests. */
  get sql(): Sql {
    return this.#sql;
  }

  /**
   * Runs a query outside a transaction, noting a lost connection for the
   * readiness probe. A lost connection is a MetadataConnectionLostError
   * (503): nothing was written, and the request may be retried.
   */
  async #read<T>(query: (sql: Sql) => Promise<T>): Promise<T> {
    try {
      const result = await query(this.#sql);
      this.#connectionProblem = undefined;
      return result;
    } catch (error) {
      if (!isConnectionError(error)) throw error;
      this.#connectionProblem = { reason: `lost the connection to PostgreSQL: ${String(error)}`, atMs: Date.now() };
      throw new MetadataConnectionLostError(error);
    }
  }

  /**
   * Runs one mutation as one transaction. Resolves once PostgreSQL
   * acknowledged the commit (then it is durable). A lost connection leaves
   * the outcome unknown: CommitOutcomeUnknownError, never a plain failure
   * whose caller would delete bytes a committed version references.
   */
  async #mutate<T>(mutation: (tx: Tx) => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      try {
        const result = (await this.#sql.begin((tx) => mutation(tx))) as T;
        this.#connectionProblem = undefined;
        return result;
      } catch (error) {
        if (isConnectionError(error)) {
          this.#connectionProblem = { reason: `lost the connection to PostgreSQL: ${String(error)}`, atMs: Date.now() };
          throw new CommitOutcomeUnknownError(error);
        }
        // PostgreSQL rolled the transaction back whole (two mutations locked the same blob rows in opposite orders): run it again.
        if (isRetryable(error) && attempt < MUTATION_ATTEMPTS_MAX) continue;
        throw error;
      }
    }
  }

  /** When a blob unreferenced now may be purged. */
  #purgeDueMs(): number {
    return Date.now() + this.#purgeGraceMs;
  }

  /** Serializes every check-then-write on one key, across all nodes, until the transaction ends. */
  async #lockKey(tx: Tx, bucket: string, key: string): Promise<void> {
    await tx`SELECT pg_advisory_xact_lock(hashtextextended(${keyLockName(bucket, key)}, 0))`;
  }

  unusableReason(): string | undefined {
    const problem = this.#connectionProblem;
    return problem !== undefined && Date.now() - problem.atMs < CONNECTION_PROBLEM_REPORT_MS ? problem.reason : undefined;
  }

  async rootCanonicalId(): Promise<string> {
    const [row] = await this.#read((sql) => sql<{ value: string }[]>`SELECT value FROM settings WHERE name = ${ROOT_CANONICAL_ID_SETTING}`);
    assert(row !== undefined, 'the root canonical ID is chosen when the store opens');
    return row.value;
  }

  async putAccessKey(record: AccessKeyRecord): Promise<void> {
    await this.#mutate((tx) => putAccessKey(tx, record));
  }

  async listAccessKeys(): Promise<AccessKeyRecord[]> {
    const rows = await this.#read((sql) => sql<AccessKeyRow[]>`
      SELECT access_key_id, created_ms, sealed_secret, user_id, policy, expires_ms, enabled FROM access_keys
       WHERE sealed_secret IS NOT NULL ORDER BY created_ms, access_key_id`);
    return rows.map(rowToAccessKey);
  }

  async updateAccessKey(accessKeyId: string, changes: { enabled?: boolean; policy?: string | null }): Promise<boolean> {
    return this.#mutate(async (tx) => {
      const found = await tx`SELECT 1 FROM access_keys WHERE access_key_id = ${accessKeyId} FOR UPDATE`;
      if (found.length === 0) return false;
      if (changes.enabled !== undefined) await tx`UPDATE access_keys SET enabled = ${changes.enabled ? 1 : 0} WHERE access_key_id = ${accessKeyId}`;
      if (changes.policy !== undefined) await tx`UPDATE access_keys SET policy = ${changes.policy} WHERE access_key_id = ${accessKeyId}`;
      return true;
    });
  }

  async deleteAccessKey(accessKeyId: string): Promise<boolean> {
    return (await this.#mutate((tx) => tx`DELETE FROM access_keys WHERE access_key_id = ${accessKeyId}`)).count === 1;
  }

  async listUnsealedAccessKeys(): Promise<UnsealedAccessKey[]> {
    const rows = await this.#read((sql) => sql<{ access_key_id: string; secret_access_key: string }[]>`
      SELECT access_key_id, secret_access_key FROM access_keys WHERE sealed_secret IS NULL ORDER BY created_ms`);
    return rows.map((row) => ({ accessKeyId: row.access_key_id, secretAccessKey: row.secret_access_key }));
  }

  /** PostgreSQL databases are created by Talus versions that seal secrets (and by `talus migrate`, which copies sealed ones). */
  async sealAccessKeySecrets(sealed: readonly { accessKeyId: string; sealedSecret: Uint8Array }[]): Promise<void> {
    if (sealed.length === 0) return;
    await this.#mutate(async (tx) => {
      for (const entry of sealed) await tx`UPDATE access_keys SET sealed_secret = ${Buffer.from(entry.sealedSecret)}, secret_access_key = '' WHERE access_key_id = ${entry.accessKeyId}`;
    });
  }

  async secretKeyCheck(): Promise<Uint8Array | undefined> {
    const [row] = await this.#read((sql) => sql<{ value: string }[]>`SELECT value FROM settings WHERE name = ${SECRET_KEY_CHECK_SETTING}`);
    return row === undefined ? undefined : Buffer.from(row.value, 'base64');
  }

  async setSecretKeyCheck(check: Uint8Array): Promise<void> {
    const value = Buffer.from(check).toString('base64');
    await this.#mutate((tx) => tx`INSERT INTO settings (name, value) VALUES (${SECRET_KEY_CHECK_SETTING}, ${value}) ON CONFLICT (name) DO UPDATE SET value = excluded.value`);
  }

  async listSettings(prefix: string): Promise<{ name: string; value: string }[]> {
    return this.#read((sql) => sql<{ name: string; value: string }[]>`SELECT name, value FROM settings WHERE starts_with(name, ${prefix}) ORDER BY name COLLATE "C"`);
  }

  async getSetting(name: string): Promise<string | undefined> {
    const [row] = await this.#read((sql) => sql<{ value: string }[]>`SELECT value FROM settings WHERE name = ${name}`);
    return row?.value;
  }

  async putSetting(name: string, value: string): Promise<void> {
    await this.#mutate((tx) => tx`INSERT INTO settings (name, value) VALUES (${name}, ${value}) ON CONFLICT (name) DO UPDATE SET value = excluded.value`);
  }

  async putSettingIf(name: string, value: string, expected: string | undefined): Promise<boolean> {
    // One statement each: the row lock of the UPDATE (or the unique index of the INSERT) decides between two nodes.
    const result = expected === undefined
      ? await this.#mutate((tx) => tx`INSERT INTO settings (name, value) VALUES (${name}, ${value}) ON CONFLICT (name) DO NOTHING`)
      : await this.#mutate((tx) => tx`UPDATE settings SET value = ${value} WHERE name = ${name} AND value = ${expected}`);
    return result.count === 1;
  }

  async deleteSetting(name: string): Promise<boolean> {
    return (await this.#mutate((tx) => tx`DELETE FROM settings WHERE name = ${name}`)).count === 1;
  }

  async createUser(user: UserRecord, firstKey: AccessKeyRecord): Promise<'created' | 'name-taken' | 'email-taken'> {
    assert(firstKey.userId === user.canonicalId, 'a user\'s first key is its own');
    return this.#mutate(async (tx) => {
      await tx`SELECT pg_advisory_xact_lock(${PRINCIPALS_LOCK_ID.toString()}::bigint)`;
      if ((await tx`SELECT 1 FROM users WHERE name = ${user.name}`).length > 0) return 'name-taken';
      // lower() under the C collation folds ASCII letters only, as SQLite's lower() does: both stores judge the same emails equal, whatever the database's locale.
      if (user.email !== null && (await tx`SELECT 1 FROM users WHERE lower(email COLLATE "C") = lower(${user.email} COLLATE "C")`).length > 0) return 'email-taken';
      await tx`INSERT INTO users (canonical_id, name, email, policy, created_ms) VALUES (${user.canonicalId}, ${user.name}, ${user.email}, ${user.policy}, ${user.createdMs})`;
      await putAccessKey(tx, firstKey);
      return 'created';
    });
  }

  async listUsers(): Promise<UserRecord[]> {
    const rows = await this.#read((sql) => sql<{ canonical_id: string; name: string; email: string | null; policy: string | null; created_ms: number }[]>`
      SELECT * FROM users ORDER BY name COLLATE "C"`);
    return rows.map((row) => ({ canonicalId: row.canonical_id, name: row.name, email: row.email, policy: row.policy, createdMs: row.created_ms }));
  }

  async setUserPolicy(canonicalId: string, policy: string | null): Promise<boolean> {
    return (await this.#mutate((tx) => tx`UPDATE users SET policy = ${policy} WHERE canonical_id = ${canonicalId}`)).count === 1;
  }

  async deleteUser(canonicalId: string): Promise<'deleted' | 'owns-buckets' | 'missing'> {
    return this.#mutate(async (tx) => {
      await tx`SELECT pg_advisory_xact_lock(${PRINCIPALS_LOCK_ID.toString()}::bigint)`;
      if ((await tx`SELECT 1 FROM users WHERE canonical_id = ${canonicalId}`).length === 0) return 'missing';
      const owned = await tx`
        SELECT 1 FROM buckets WHERE owner_id = ${canonicalId} OR owner_id IN (SELECT access_key_id FROM access_keys WHERE user_id = ${canonicalId}) LIMIT 1`;
      if (owned.length > 0) return 'owns-buckets';
      await tx`DELETE FROM access_keys WHERE user_id = ${canonicalId}`;
      await tx`DELETE FROM users WHERE canonical_id = ${canonicalId}`;
      return 'deleted';
    });
  }

  async createBucket(record: BucketRecord): Promise<'created' | 'exists'> {
    const result = await this.#mutate((tx) => tx`
      INSERT INTO buckets (name, created_ms, owner_id, versioning, tags, access, cors, lifecycle, object_lock)
      VALUES (${record.name}, ${record.createdMs}, ${record.ownerId}, ${record.versioning}, ${serializeTags(record.tags)}, ${serializeAccess(record.access ?? null)},
              ${record.configs?.cors ?? null}, ${record.configs?.lifecycle ?? null}, ${record.configs?.objectLock ?? null})
      ON CONFLICT (name) DO NOTHING`);
    this.#buckets.delete(record.name);
    return result.count === 1 ? 'created' : 'exists';
  }

  async getBucket(name: string): Promise<BucketRecord | undefined> {
    const nowMs = Date.now();
    const cached = this.#buckets.get(name);
    if (cached !== undefined && cached.untilMs > nowMs) return cached.record;
    const [row] = await this.#read((sql) => sql<BucketRow[]>`SELECT * FROM buckets WHERE name = ${name}`);
    if (row === undefined) {
      this.#buckets.delete(name);
      return undefined;
    }
    // The same frozen object while unchanged: the front caches what it compiles per record (a WeakMap).
    const record = cached !== undefined && sameBucket(cached.record, row) ? cached.record : rowToBucket(row);
    if (this.#buckets.size >= BUCKET_CACHE_MAX) this.#buckets.clear();
    this.#buckets.set(name, { record, untilMs: nowMs + BUCKET_CACHE_TTL_MS });
    return record;
  }

  /** Forgets cached bucket records (the SQLite store's counterpart; here they also expire by themselves). */
  forgetBuckets(): void {
    this.#buckets.clear();
  }

  async listBuckets(): Promise<BucketRecord[]> {
    return (await this.#read((sql) => sql<BucketRow[]>`SELECT * FROM buckets ORDER BY name`)).map(rowToBucket);
  }

  async deleteBucket(name: string): Promise<'deleted' | 'not-empty' | 'missing'> {
    const outcome = await this.#mutate(async (tx): Promise<'deleted' | 'not-empty' | 'missing'> => {
      // Exclusive: waits for commits into the bucket in flight (they hold it shared) and keeps new ones out until we are done.
      await tx`SELECT pg_advisory_xact_lock(hashtextextended(${bucketLockName(name)}, 0))`;
      if ((await tx`SELECT 1 FROM buckets WHERE name = ${name}`).length === 0) return 'missing';
      if ((await tx`SELECT 1 FROM versions WHERE bucket = ${name} LIMIT 1`).length > 0) return 'not-empty';
      const uploads = await tx<{ upload_id: string }[]>`SELECT upload_id FROM uploads WHERE bucket = ${name} FOR UPDATE`;
      for (const { upload_id } of uploads) await dropUpload(tx, upload_id, this.#purgeDueMs(), new Set());
      await tx`DELETE FROM buckets WHERE name = ${name}`;
      return 'deleted';
    });
    this.#buckets.delete(name);
    if (outcome === 'deleted') this.#onBucketsChanged();
    return outcome;
  }

  /** `guard` runs on the bucket as this transaction sees it (locked against other changes until the end), and may refuse by throwing. */
  async #updateBucket(name: string, update: (tx: Tx) => Promise<postgres.RowList<postgres.Row[]>>, guard?: BucketGuard): Promise<boolean> {
    const changed = (await this.#mutate(async (tx) => {
      if (guard !== undefined) {
        const [row] = await tx<BucketRow[]>`SELECT * FROM buckets WHERE name = ${name} FOR UPDATE`;
        if (row !== undefined) guard(rowToBucket(row));
      }
      return update(tx);
    })).count === 1;
    this.#buckets.delete(name);
    if (changed) this.#onBucketsChanged();
    return changed;
  }

  setBucketVersioning(name: string, state: VersioningState, guard?: BucketGuard): Promise<boolean> {
    return this.#updateBucket(name, (tx) => tx`UPDATE buckets SET versioning = ${state} WHERE name = ${name}`, guard);
  }

  setBucketTags(name: string, tags: Tag[] | null): Promise<boolean> {
    return this.#updateBucket(name, (tx) => tx`UPDATE buckets SET tags = ${serializeTags(tags)} WHERE name = ${name}`);
  }

  setBucketAccess(name: string, access: BucketAccessSettings | null): Promise<boolean> {
    return this.#updateBucket(name, (tx) => tx`UPDATE buckets SET access = ${serializeAccess(access)} WHERE name = ${name}`);
  }

  setBucketConfig(name: string, kind: BucketConfigKind, document: string | null, guard?: BucketGuard): Promise<boolean> {
    const column = { cors: 'cors', lifecycle: 'lifecycle', objectLock: 'object_lock' }[kind];
    return this.#updateBucket(name, (tx) => tx`UPDATE buckets SET ${tx(column)} = ${document} WHERE name = ${name}`, guard);
  }

  async getVersion(bucket: string, key: string, versionId?: string): Promise<ObjectVersion | undefined> {
    const [row] = await this.#read((sql) =>
      versionId === undefined
        ? sql<VersionRow[]>`SELECT v.*, d.data AS inline_data FROM versions v LEFT JOIN inline_data d ON d.seq = v.seq WHERE v.bucket = ${bucket} AND v.key = ${key} AND v.is_latest = 1`
        : sql<VersionRow[]>`SELECT v.*, d.data AS inline_data FROM versions v LEFT JOIN inline_data d ON d.seq = v.seq WHERE v.bucket = ${bucket} AND v.key = ${key} AND v.version_id = ${versionId}`,
    );
    return row === undefined ? undefined : rowToVersion(row);
  }

  async commitVersion(request: CommitRequest): Promise<CommitOutcome> {
    return this.#mutate((tx) => this.#commit(tx, request));
  }

  /**
   * A commit is a few round trips, not one per statement: the driver
   * pipelines what is sent together on the transaction's connection, and
   * PostgreSQL runs it in order. First the locks and the reads (each read
   * runs after the locks are granted, with a snapshot taken then, so it sees
   * the previous holder's commit); then, the conditions checked, the writes.
   */
  async #commit(tx: Tx, request: CommitRequest): Promise<CommitOutcome> {
    const { version, conditions } = request;
    const { bucket, key } = version;
    const replacesNull = version.versionId === NULL_VERSION_ID;
    const [, bucketRows, latestRows, nullRows] = await Promise.all([
      // The bucket's shared lock keeps DeleteBucket (exclusive) from dropping it between our check and our commit.
      tx`SELECT pg_advisory_xact_lock_shared(hashtextextended(${bucketLockName(bucket)}, 0)), pg_advisory_xact_lock(hashtextextended(${keyLockName(bucket, key)}, 0))`,
      tx<(QuotaColumns & { object_lock: string | null })[]>`SELECT ${tx(COMMIT_BUCKET_COLUMNS)} FROM buckets WHERE name = ${bucket}`,
      tx<VersionRow[]>`SELECT * FROM versions WHERE bucket = ${bucket} AND key = ${key} AND is_latest = 1`,
      replacesNull ? tx<VersionRow[]>`SELECT * FROM versions WHERE bucket = ${bucket} AND key = ${key} AND version_id = ${NULL_VERSION_ID}` : Promise.resolve([] as VersionRow[]),
    ]);
    if (bucketRows.length === 0) return { status: 'no-such-bucket' };
    const latest = latestRows[0];
    const current = latest !== undefined && latest.is_delete_marker === 0 ? latest : undefined;
    const verdict = judgeRow(conditions, current);
    if (verdict === 'no-such-key') return { status: 'no-such-key' };
    if (verdict === 'precondition-failed') {
      // When the version that failed the condition was written (the S3 front may answer with it).
      const failed = { status: 'precondition-failed' as const, ...(current === undefined ? {} : { currentModifiedMs: current.last_modified_ms }) };
      return failed;
    }
    if (request.lockFor !== undefined) setLockState(version, request.lockFor(bucketRows[0]?.object_lock ?? undefined));
    const keep = new Set(version.segments.map((segment) => segment.blobId));
    /** What the completed upload's parts held, every one (those left out of the object are released with it). */
    let partsBytes = 0;
    if (request.completesUploadId !== undefined) {
      if ((await tx`SELECT 1 FROM uploads WHERE upload_id = ${request.completesUploadId} FOR UPDATE`).length === 0) return { status: 'no-such-upload' };
      // A part replaced after the caller listed the parts has its old blob queued for purge.
      const blobIds = version.segments.map((segment) => segment.blobId);
      const live = await tx<{ blob_id: string }[]>`SELECT blob_id FROM blobs WHERE blob_id = ANY(${blobIds}) AND purge_after_ms IS NULL`;
      if (new Set(live.map((row) => row.blob_id)).size !== new Set(blobIds).size) return { status: 'invalid-part' };
      partsBytes = await dropUpload(tx, request.completesUploadId, this.#purgeDueMs(), keep);
    }
    const old = nullRows[0];
    const replaced = old === undefined ? null : rowToVersion(old);
    // Object Lock: a locked version is never overwritten (versioning may have been suspended when this write began).
    if (replaced !== null && isLockedAt(replaced, Date.now())) throw new S3Error('AccessDenied', 'Access Denied because object protected by object lock.');
    // Only a bucket with a quota counts (its row read above; no statement for the others).
    // A completion's parts were counted as they arrived: their bytes become the object's, net.
    if (rowQuotaUsage(bucketRows[0]!) !== undefined) {
      const delta = commitDelta(version, replaced);
      delta.bytes -= partsBytes;
      await this.#chargeQuota(tx, bucket, delta);
    }
    const insert = version.inlineData === undefined
      ? tx`
        INSERT INTO versions (bucket, key, version_id, is_latest, is_delete_marker, size_bytes, etag, last_modified_ms, owner_id, meta)
        VALUES (${bucket}, ${key}, ${version.versionId}, 1, ${version.isDeleteMarker ? 1 : 0}, ${version.sizeBytes}, ${version.etag},
                ${version.lastModifiedMs}, ${version.ownerId}, ${versionMeta(version)})`
      : tx`
        WITH inserted AS (
          INSERT INTO versions (bucket, key, version_id, is_latest, is_delete_marker, size_bytes, etag, last_modified_ms, owner_id, meta)
          VALUES (${bucket}, ${key}, ${version.versionId}, 1, ${version.isDeleteMarker ? 1 : 0}, ${version.sizeBytes}, ${version.etag},
                  ${version.lastModifiedMs}, ${version.ownerId}, ${versionMeta(version)})
          RETURNING seq)
        INSERT INTO inline_data (seq, data) SELECT seq, ${version.inlineData} FROM inserted`;
    // In this order (each call sends its one statement at once): the replaced null version goes before the new one arrives.
    await Promise.all([
      ...(replaced === null ? [] : [queuePurge(tx, replaced.segments, this.#purgeDueMs(), keep), deleteVersionRow(tx, old!.seq)]),
      tx`UPDATE versions SET is_latest = 0 WHERE bucket = ${bucket} AND key = ${key} AND is_latest = 1`,
      ...version.segments.map((segment) => recordBlob(tx, segment.blobId, segment.location)),
      insert,
    ]);
    return { status: 'committed', replaced };
  }

  /**
   * Judges and moves a bucket's quota counters under its row lock: a
   * concurrent commit into the bucket waits here for this transaction and
   * then reads what it counted, so two writes that each fit cannot both pass.
   */
  async #chargeQuota(tx: Tx, bucket: string, delta: { bytes: number; objects: number }): Promise<void> {
    if (delta.bytes === 0 && delta.objects === 0) return;
    const [row] = await tx<QuotaColumns[]>`SELECT ${tx(QUOTA_COLUMNS)} FROM buckets WHERE name = ${bucket} FOR UPDATE`;
    const usage = row === undefined ? undefined : rowQuotaUsage(row);
    if (usage === undefined) return;
    judgeQuota(bucket, usage, delta);
    await tx`UPDATE buckets SET quota_bytes_used = quota_bytes_used + ${delta.bytes}, quota_objects_used = quota_objects_used + ${delta.objects} WHERE name = ${bucket}`;
  }

  async setBucketQuota(name: string, quota: BucketQuota | null): Promise<boolean> {
    const changed = await this.#mutate(async (tx): Promise<boolean> => {
      // Exclusive: waits for the commits and deletes into the bucket in flight (they hold it shared), so the
      // count below sees every one of them, and every later one sees the quota and keeps the counters.
      await tx`SELECT pg_advisory_xact_lock(hashtextextended(${bucketLockName(name)}, 0))`;
      const [row] = await tx<QuotaColumns[]>`SELECT ${tx(QUOTA_COLUMNS)} FROM buckets WHERE name = ${name} FOR UPDATE`;
      if (row === undefined) return false;
      if (quota === null) {
        await tx`UPDATE buckets SET quota_bytes_max = NULL, quota_objects_max = NULL, quota_bytes_used = NULL, quota_objects_used = NULL WHERE name = ${name}`;
      } else if (row.quota_bytes_used !== null) {
        await tx`UPDATE buckets SET quota_bytes_max = ${quota.maxBytes}, quota_objects_max = ${quota.maxObjects} WHERE name = ${name}`;
      } else {
        await tx`
          UPDATE buckets SET quota_bytes_max = ${quota.maxBytes}, quota_objects_max = ${quota.maxObjects},
                 quota_bytes_used = held.bytes, quota_objects_used = held.objects
            FROM (SELECT count(*) AS objects,
                         coalesce(sum(size_bytes), 0)
                         -- Parts of incomplete uploads count too (released when their upload ends).
                         + (SELECT coalesce(sum(p.size_bytes), 0) FROM parts p JOIN uploads u ON u.upload_id = p.upload_id WHERE u.bucket = ${name}) AS bytes
                    FROM versions WHERE bucket = ${name} AND is_delete_marker = 0) held
           WHERE name = ${name}`;
      }
      return true;
    });
    this.#buckets.delete(name);
    if (changed) this.#onBucketsChanged();
    return changed;
  }

  async bucketQuota(name: string): Promise<BucketQuotaUsage | undefined> {
    const [row] = await this.#read((sql) => sql<QuotaColumns[]>`SELECT ${sql(QUOTA_COLUMNS)} FROM buckets WHERE name = ${name}`);
    return row === undefined ? undefined : rowQuotaUsage(row);
  }

  async deleteVersion(bucket: string, key: string, versionId: string, guard?: VersionGuard): Promise<ObjectVersion | undefined> {
    const outcome = await this.deleteVersionIf(bucket, key, versionId, {}, guard);
    return outcome.status === 'deleted' ? outcome.removed : undefined;
  }

  /** deleteVersion when `conditions` hold for that version, judged under the key's lock (before `guard`, which may refuse by throwing). */
  async deleteVersionIf(bucket: string, key: string, versionId: string, conditions: DeleteConditions, guard?: VersionGuard): Promise<DeleteOutcome> {
    return this.#mutate(async (tx): Promise<DeleteOutcome> => {
      // The bucket's shared lock (as a commit's): SetBucketQuota's count cannot fall between this delete and its counters.
      await tx`SELECT pg_advisory_xact_lock_shared(hashtextextended(${bucketLockName(bucket)}, 0)), pg_advisory_xact_lock(hashtextextended(${keyLockName(bucket, key)}, 0))`;
      const [row] = await tx<VersionRow[]>`SELECT * FROM versions WHERE bucket = ${bucket} AND key = ${key} AND version_id = ${versionId}`;
      if (row === undefined) return { status: 'no-such-key' };
      if (judgeRow(conditions, row) !== 'holds') return { status: 'precondition-failed' };
      if (conditions.ifNoncurrent === true && row.is_latest === 1) return { status: 'precondition-failed' };
      const version = rowToVersion(row);
      guard?.(version);
      const freed = usageOf(version);
      await Promise.all([
        deleteVersionRow(tx, row.seq),
        // Sent with the delete, one round trip; it changes no row in a bucket without a quota.
        ...(freed.objects === 0 ? [] : [tx`
          UPDATE buckets SET quota_bytes_used = quota_bytes_used - ${freed.bytes}, quota_objects_used = quota_objects_used - ${freed.objects}
           WHERE name = ${bucket} AND quota_bytes_used IS NOT NULL`]),
      ]);
      await queuePurge(tx, version.segments, this.#purgeDueMs(), new Set());
      if (row.is_latest === 1) {
        await tx`UPDATE versions SET is_latest = 1 WHERE seq = (SELECT seq FROM versions WHERE bucket = ${bucket} AND key = ${key} ORDER BY seq DESC LIMIT 1)`;
      }
      return { status: 'deleted', removed: version };
    });
  }

  /** Replaces a version's Object Lock state with what `update` makes of it, read under the key's lock; `update` throws to refuse. */
  updateVersionLock(bucket: string, key: string, versionId: string, update: (current: ObjectVersion) => ObjectLockState): Promise<boolean> {
    return this.#editVersion(bucket, key, versionId, async (_tx, version) => {
      const next = update(version);
      if (next.retention === undefined) delete version.retention;
      else version.retention = next.retention;
      if (next.legalHold === undefined) delete version.legalHold;
      else version.legalHold = next.legalHold;
      return true;
    });
  }

  /** Reads a version under its key's lock, lets `change` edit it, and writes its document back; false if it is gone or `change` refuses. */
  async #editVersion(bucket: string, key: string, versionId: string, change: (tx: Tx, version: ObjectVersion) => Promise<boolean>): Promise<boolean> {
    return this.#mutate(async (tx) => {
      await this.#lockKey(tx, bucket, key);
      const [row] = await tx<VersionRow[]>`SELECT * FROM versions WHERE bucket = ${bucket} AND key = ${key} AND version_id = ${versionId}`;
      if (row === undefined) return false;
      const version = rowToVersion(row);
      if (!(await change(tx, version))) return false;
      await tx`UPDATE versions SET meta = ${versionMeta(version)} WHERE seq = ${row.seq}`;
      return true;
    });
  }

  setVersionAcl(bucket: string, key: string, versionId: string, acl: Acl | undefined): Promise<boolean> {
    return this.#editVersion(bucket, key, versionId, async (_tx, version) => {
      if (acl === undefined) delete version.acl;
      else version.acl = acl;
      return true;
    });
  }

  setVersionTags(bucket: string, key: string, versionId: string, tags: Tag[]): Promise<boolean> {
    return this.#editVersion(bucket, key, versionId, async (_tx, version) => {
      version.tags = tags;
      return true;
    });
  }

  replaceSegment(bucket: string, key: string, versionId: string, oldBlobId: string, replacement: Segment): Promise<boolean> {
    return this.#editVersion(bucket, key, versionId, async (tx, version) => {
      const index = version.segments.findIndex((segment) => segment.blobId === oldBlobId);
      if (index === -1) return false;
      const old = version.segments[index]!;
      assert(old.sizeBytes === replacement.sizeBytes, 'a replacement holds the same bytes');
      version.segments[index] = replacement;
      await recordBlob(tx, replacement.blobId, replacement.location);
      await queuePurge(tx, [old], this.#purgeDueMs(), new Set([replacement.blobId]));
      return true;
    });
  }

  list(request: ListRequest): Promise<ListResult> {
    return this.#read((sql) => listKeys(sql, request));
  }

  listVersions(request: ListVersionsRequest): Promise<ListVersionsResult> {
    return this.#read((sql) => listVersions(sql, request));
  }

  async createUpload(record: UploadRecord): Promise<void> {
    await this.#mutate((tx) => tx`
      INSERT INTO uploads (upload_id, bucket, key, created_ms, owner_id, meta)
      VALUES (${record.uploadId}, ${record.bucket}, ${record.key}, ${record.createdMs}, ${record.ownerId}, ${uploadMeta(record)})`);
  }

  async getUpload(bucket: string, key: string, uploadId: string): Promise<UploadRecord | undefined> {
    const [row] = await this.#read((sql) => sql<UploadRow[]>`SELECT * FROM uploads WHERE upload_id = ${uploadId}`);
    if (row === undefined || row.bucket !== bucket || row.key !== key) return undefined;
    return rowToUpload(row);
  }

  async putPart(part: PartRecord): Promise<boolean> {
    return this.#mutate(async (tx) => {
      // Sent together (one round trip): the bucket's shared lock first (as a commit's, so SetBucketQuota's count
      // cannot fall between this part and its counters, and DeleteBucket's lock order is kept: bucket, then upload),
      // then the upload, locked: a completion or abort on another node waits for this part, or this part for it.
      const [, [upload]] = await Promise.all([
        // bucketLockName(the upload's bucket), built in SQL: the bucket is known only from the upload's row.
        tx`SELECT pg_advisory_xact_lock_shared(hashtextextended(${bucketLockName('')} || bucket, 0)) FROM uploads WHERE upload_id = ${part.uploadId}`,
        tx<(QuotaColumns & { bucket: string })[]>`
          SELECT u.bucket, ${tx(QUOTA_COLUMNS.map((column) => `b.${column}`))} FROM uploads u JOIN buckets b ON b.name = u.bucket
           WHERE u.upload_id = ${part.uploadId} FOR UPDATE OF u`,
      ]);
      if (upload === undefined) return false;
      const [old] = await tx<{ blob_id: string; size_bytes: number }[]>`SELECT blob_id, size_bytes FROM parts WHERE upload_id = ${part.uploadId} AND part_number = ${part.partNumber}`;
      // Parts count as they arrive (as MinIO checks each part), judged under the bucket row's lock so concurrent parts
      // cannot both pass; a replaced part's bytes are released by the same change. Nothing more for a bucket without a quota.
      if (rowQuotaUsage(upload) !== undefined) await this.#chargeQuota(tx, upload.bucket, { bytes: part.sizeBytes - (old?.size_bytes ?? 0), objects: 0 });
      if (old !== undefined) await queuePurge(tx, [{ blobId: old.blob_id, sizeBytes: 0 }], this.#purgeDueMs(), new Set([part.blobId]));
      if (part.blobId !== '') await recordBlob(tx, part.blobId, part.location);
      await tx`
        INSERT INTO parts (upload_id, part_number, size_bytes, etag, last_modified_ms, checksum, blob_id)
        VALUES (${part.uploadId}, ${part.partNumber}, ${part.sizeBytes}, ${part.etag}, ${part.lastModifiedMs}, ${part.checksum}, ${part.blobId})
        ON CONFLICT (upload_id, part_number) DO UPDATE SET size_bytes = excluded.size_bytes, etag = excluded.etag,
          last_modified_ms = excluded.last_modified_ms, checksum = excluded.checksum, blob_id = excluded.blob_id`;
      return true;
    });
  }

  async listParts(uploadId: string, afterPartNumber: number, limit: number): Promise<PartRecord[]> {
    const rows = await this.#read((sql) => sql<(PartRow & { backend: string | null })[]>`
      SELECT parts.*, blobs.backend FROM parts LEFT JOIN blobs ON blobs.blob_id = parts.blob_id
       WHERE upload_id = ${uploadId} AND part_number > ${afterPartNumber} ORDER BY part_number LIMIT ${limit}`);
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
    return this.#mutate(async (tx) => {
      // The bucket's shared lock first (see putPart), then the upload, locked, with its bucket's quota columns.
      const [, [row]] = await Promise.all([
        tx`SELECT pg_advisory_xact_lock_shared(hashtextextended(${bucketLockName(bucket)}, 0))`,
        tx<(UploadRow & QuotaColumns)[]>`
          SELECT u.*, ${tx(QUOTA_COLUMNS.map((column) => `b.${column}`))} FROM uploads u JOIN buckets b ON b.name = u.bucket
           WHERE u.upload_id = ${uploadId} FOR UPDATE OF u`,
      ]);
      if (row === undefined || row.bucket !== bucket || row.key !== key) return false;
      const partsBytes = await dropUpload(tx, uploadId, this.#purgeDueMs(), new Set());
      // Its parts' bytes were counted as they arrived.
      if (rowQuotaUsage(row) !== undefined && partsBytes > 0) {
        await tx`UPDATE buckets SET quota_bytes_used = quota_bytes_used - ${partsBytes} WHERE name = ${bucket} AND quota_bytes_used IS NOT NULL`;
      }
      return true;
    });
  }

  listUploads(request: ListUploadsRequest): Promise<ListUploadsResult> {
    return this.#read((sql) => listUploads(sql, request));
  }

  async isBlobKnown(blobId: string): Promise<boolean> {
    return (await this.#read((sql) => sql`SELECT 1 FROM blobs WHERE blob_id = ${blobId}`)).length > 0;
  }

  /**
   * Claims due purge entries for this node: locked with SKIP LOCKED (another
   * node's claim in progress is passed over, not waited for) and moved a
   * lease ahead in the same statement, so no other node takes them while
   * this one removes their bytes.
   */
  async takePurgeBatch(nowMs: number, limit: number): Promise<PurgeEntry[]> {
    const rows = await this.#mutate((tx) => tx<{ blob_id: string; backend: string }[]>`
      UPDATE blobs SET purge_after_ms = ${nowMs + CLAIM_LEASE_MS}
       WHERE blob_id IN (
         SELECT blob_id FROM blobs WHERE purge_after_ms IS NOT NULL AND purge_after_ms <= ${nowMs}
          ORDER BY purge_after_ms LIMIT ${limit} FOR UPDATE SKIP LOCKED)
      RETURNING blob_id, backend, purge_after_ms`);
    return rows.map((row) => (row.backend === LOCAL_BACKEND ? { blobId: row.blob_id } : { blobId: row.blob_id, location: row.backend }));
  }

  async completePurge(blobIds: string[]): Promise<void> {
    if (blobIds.length === 0) return;
    await this.#mutate(async (tx) => {
      const gone = await tx<{ blob_id: string }[]>`DELETE FROM blobs WHERE blob_id = ANY(${blobIds}) AND purge_after_ms IS NOT NULL RETURNING blob_id`;
      // Repairs of a blob gone for good have nothing left to do.
      if (gone.length > 0) await tx`DELETE FROM repairs WHERE blob_id = ANY(${gone.map((row) => row.blob_id)})`;
    });
  }

  async postponePurge(blobIds: string[], untilMs: number): Promise<void> {
    if (blobIds.length === 0) return;
    await this.#mutate((tx) => tx`UPDATE blobs SET purge_after_ms = ${untilMs} WHERE blob_id = ANY(${blobIds}) AND purge_after_ms IS NOT NULL`);
  }

  async recordRepairs(requests: readonly { blobId: string; shard: number; reason: string }[]): Promise<void> {
    if (requests.length === 0) return;
    const nowMs = Date.now();
    await this.#mutate(async (tx) => {
      for (const request of requests) {
        await tx`
          INSERT INTO repairs (blob_id, shard, reason, recorded_ms, attempts, due_ms) VALUES (${request.blobId}, ${request.shard}, ${request.reason}, ${nowMs}, 0, ${nowMs})
          ON CONFLICT (blob_id, shard) DO UPDATE SET reason = excluded.reason`;
      }
    });
  }

  /** Claims due repairs for this node, as takePurgeBatch claims purges. */
  async takeRepairs(nowMs: number, limit: number): Promise<RepairEntry[]> {
    const rows = await this.#mutate((tx) => tx<RepairRow[]>`
      WITH claimed AS (
        UPDATE repairs SET due_ms = ${nowMs + CLAIM_LEASE_MS}
         WHERE (blob_id, shard) IN (SELECT blob_id, shard FROM repairs WHERE due_ms <= ${nowMs} ORDER BY due_ms LIMIT ${limit} FOR UPDATE SKIP LOCKED)
        RETURNING *)
      SELECT claimed.*, blobs.backend, blobs.purge_after_ms FROM claimed LEFT JOIN blobs ON blobs.blob_id = claimed.blob_id
       ORDER BY claimed.recorded_ms`);
    return rows.map(repairEntry);
  }

  async completeRepairs(entries: readonly { blobId: string; shard: number }[]): Promise<void> {
    if (entries.length === 0) return;
    await this.#mutate(async (tx) => {
      for (const entry of entries) await tx`DELETE FROM repairs WHERE blob_id = ${entry.blobId} AND shard = ${entry.shard}`;
    });
  }

  async postponeRepairs(entries: readonly { blobId: string; shard: number }[], untilMs: number): Promise<void> {
    if (entries.length === 0) return;
    await this.#mutate(async (tx) => {
      for (const entry of entries) await tx`UPDATE repairs SET attempts = attempts + 1, due_ms = ${untilMs} WHERE blob_id = ${entry.blobId} AND shard = ${entry.shard}`;
    });
  }

  /** One aggregate over the bucket's versions (PostgreSQL runs it off the event loop; sum(bigint) is numeric, hence the cast). */
  async bucketUsage(bucket: string): Promise<BucketUsage> {
    const [row] = await this.#read((sql) => sql<{ objects: number; versions: number; delete_markers: number; bytes: number; uploads: number }[]>`
      SELECT count(*) FILTER (WHERE is_latest = 1 AND is_delete_marker = 0) AS objects,
             count(*) FILTER (WHERE is_delete_marker = 0) AS versions,
             count(*) FILTER (WHERE is_delete_marker = 1) AS delete_markers,
             coalesce(sum(size_bytes) FILTER (WHERE is_delete_marker = 0), 0)::bigint AS bytes,
             (SELECT count(*) FROM uploads WHERE bucket = ${bucket}) AS uploads
        FROM versions WHERE bucket = ${bucket}`);
    assert(row !== undefined, 'an aggregate returns one row');
    return { objects: row.objects, versions: row.versions, deleteMarkers: row.delete_markers, bytes: row.bytes, incompleteUploads: row.uploads };
  }

  async purgeQueueSummary(): Promise<PurgeQueueSummary> {
    const [row] = await this.#read((sql) => sql<{ blobs: number; oldest: number | null }[]>`
      SELECT count(*) AS blobs, min(purge_after_ms) AS oldest FROM blobs WHERE purge_after_ms IS NOT NULL`);
    assert(row !== undefined, 'an aggregate returns one row');
    return { blobs: row.blobs, oldestDueMs: row.oldest ?? undefined };
  }

  async repairSummary(sampleMax: number): Promise<RepairSummary> {
    const [counts] = await this.#read((sql) => sql<{ pending: number; unreferenced: number; oldest: number | null }[]>`
      SELECT count(*) FILTER (WHERE live) AS pending, count(*) FILTER (WHERE NOT live) AS unreferenced, min(recorded_ms) FILTER (WHERE live) AS oldest
        FROM (SELECT repairs.recorded_ms, (blobs.backend IS NOT NULL AND blobs.backend != ${LOCAL_BACKEND} AND blobs.purge_after_ms IS NULL) AS live
                FROM repairs LEFT JOIN blobs ON blobs.blob_id = repairs.blob_id) r`);
    const sample = await this.#read((sql) => sql<RepairRow[]>`
      SELECT repairs.*, blobs.backend, blobs.purge_after_ms FROM repairs LEFT JOIN blobs ON blobs.blob_id = repairs.blob_id ORDER BY recorded_ms LIMIT ${sampleMax}`);
    assert(counts !== undefined, 'an aggregate returns one row');
    return { pending: counts.pending, unreferenced: counts.unreferenced, oldestRecordedMs: counts.oldest ?? undefined, sample: sample.map(repairEntry) };
  }

  async forgetRepairs(blobIds: readonly string[]): Promise<void> {
    if (blobIds.length === 0) return;
    await this.#mutate((tx) => tx`DELETE FROM repairs WHERE blob_id = ANY(${[...blobIds]})`);
  }

  async listPlacedBlobs(afterBlobId: string, limit: number): Promise<PlacedBlob[]> {
    const rows = await this.#read((sql) => sql<{ blob_id: string; backend: string }[]>`
      SELECT blob_id, backend FROM blobs WHERE backend != ${LOCAL_BACKEND} AND purge_after_ms IS NULL AND blob_id > ${afterBlobId} ORDER BY blob_id LIMIT ${limit}`);
    return rows.map((row) => ({ blobId: row.blob_id, location: row.backend }));
  }

  async countBlobsOnBackend(backend: string): Promise<number> {
    // A location is JSON text (placement/blob-location.ts) with the shards' backends under "on".
    const [row] = await this.#read((sql) => sql<{ blobs: number }[]>`
      SELECT count(*) AS blobs FROM blobs WHERE backend != ${LOCAL_BACKEND} AND jsonb_exists(backend::jsonb -> 'on', ${backend})`);
    assert(row !== undefined, 'an aggregate returns one row');
    return row.blobs;
  }

  async sampleBlobsOnBackend(backend: string, limit: number): Promise<PlacedBlob[]> {
    const rows = await this.#read((sql) => sql<{ blob_id: string; backend: string }[]>`
      SELECT blob_id, backend FROM blobs WHERE backend != ${LOCAL_BACKEND} AND purge_after_ms IS NULL AND jsonb_exists(backend::jsonb -> 'on', ${backend}) LIMIT ${limit}`);
    return rows.map((row) => ({ blobId: row.blob_id, location: row.backend }));
  }

  async releaseBackendFromPurgeQueue(backend: string, gone: string): Promise<{ live: number; released: number }> {
    return this.#mutate(async (tx) => {
      const [row] = await tx<{ blobs: number }[]>`
        SELECT count(*)::int AS blobs FROM blobs WHERE backend != ${LOCAL_BACKEND} AND purge_after_ms IS NULL AND jsonb_exists(backend::jsonb -> 'on', ${backend})`;
      assert(row !== undefined, 'an aggregate returns one row');
      if (row.blobs > 0) return { live: row.blobs, released: 0 };
      const queued = await tx<{ blob_id: string; backend: string }[]>`
        SELECT blob_id, backend FROM blobs WHERE backend != ${LOCAL_BACKEND} AND purge_after_ms IS NOT NULL AND jsonb_exists(backend::jsonb -> 'on', ${backend}) FOR UPDATE`;
      for (const blob of queued) await tx`UPDATE blobs SET backend = ${withoutBackend(blob.backend, backend, gone)} WHERE blob_id = ${blob.blob_id}`;
      return { live: 0, released: queued.length };
    });
  }

  /** Idempotent: a second call waits for the first. */
  close(): Promise<void> {
    return (this.#closing ??= this.#sql.end({ timeout: 5 }));
  }
}

/** Bucket names hold no '/', so bucket/key names one key; a hash collision only serializes two keys. */
function keyLockName(bucket: string, key: string): string {
  return `${bucket}/${key}`;
}

/** Holds no '/': never a key's lock name. */
function bucketLockName(bucket: string): string {
  return `bucket:${bucket}`;
}

async function putAccessKey(tx: Tx, record: AccessKeyRecord): Promise<void> {
  // secret_access_key is the SQLite store's version 2 plain-text column: never written with a secret.
  await tx`
    INSERT INTO access_keys (access_key_id, secret_access_key, created_ms, sealed_secret, user_id, policy, expires_ms, enabled)
    VALUES (${record.accessKeyId}, '', ${record.createdMs}, ${Buffer.from(record.sealedSecret)}, ${record.userId}, ${record.policy}, ${record.expiresMs}, ${record.enabled ? 1 : 0})
    ON CONFLICT (access_key_id) DO UPDATE SET secret_access_key = '', created_ms = excluded.created_ms, sealed_secret = excluded.sealed_secret,
      user_id = excluded.user_id, policy = excluded.policy, expires_ms = excluded.expires_ms, enabled = excluded.enabled`;
}

async function recordBlob(tx: Tx, blobId: string, location: string | undefined): Promise<void> {
  await tx`INSERT INTO blobs (blob_id, backend, purge_after_ms) VALUES (${blobId}, ${location ?? LOCAL_BACKEND}, NULL) ON CONFLICT (blob_id) DO UPDATE SET purge_after_ms = NULL`;
}

/** One statement (a commit pipelines it with others, in order): a version and its inline bytes go together. */
async function deleteVersionRow(tx: Tx, seq: number): Promise<void> {
  await tx`WITH version AS (DELETE FROM versions WHERE seq = ${seq}) DELETE FROM inline_data WHERE seq = ${seq}`;
}

/**
 * Removes an upload and its parts (the caller holds the upload's row lock); queues every part blob not in `keep` for
 * purge. Returns the parts' bytes.
 */
async function dropUpload(tx: Tx, uploadId: string, purgeDueMs: number, keep: Set<string>): Promise<number> {
  const parts = await tx<{ blob_id: string; size_bytes: number }[]>`DELETE FROM parts WHERE upload_id = ${uploadId} RETURNING blob_id, size_bytes`;
  await queuePurge(tx, parts.map((part) => ({ blobId: part.blob_id, sizeBytes: 0 })), purgeDueMs, keep);
  await tx`DELETE FROM uploads WHERE upload_id = ${uploadId}`;
  return parts.reduce((sum, part) => sum + Number(part.size_bytes), 0);
}

/** Queues blobs for removal after the grace period (a GET that looked the old version up a moment ago can still open its bytes). */
async function queuePurge(tx: Tx, segments: readonly Segment[], dueMs: number, keep: Set<string>): Promise<void> {
  const blobIds = segments.map((segment) => segment.blobId).filter((blobId) => blobId !== '' && !keep.has(blobId));
  if (blobIds.length === 0) return;
  await tx`UPDATE blobs SET purge_after_ms = ${dueMs} WHERE blob_id = ANY(${blobIds})`;
}

/** The quota columns of a bucket row (src/meta/quota.ts). */
const QUOTA_COLUMNS = ['quota_bytes_max', 'quota_objects_max', 'quota_bytes_used', 'quota_objects_used'] as const;
/** The bucket row's columns a commit reads: its quota and its object lock configuration (default retention is applied in the commit). */
const COMMIT_BUCKET_COLUMNS = [...QUOTA_COLUMNS, 'object_lock'] as const;

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

function repairEntry(row: RepairRow): RepairEntry {
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

function sameBucket(record: BucketRecord, row: BucketRow): boolean {
  const fresh = rowToBucket(row);
  return JSON.stringify(fresh) === JSON.stringify(record);
}

/** Frozen: records are shared through the bucket cache. */
function rowToBucket(row: BucketRow): BucketRecord {
  return Object.freeze({
    name: row.name,
    createdMs: row.created_ms,
    ownerId: row.owner_id,
    versioning: row.versioning,
    tags: row.tags === null ? null : (Object.freeze(JSON.parse(row.tags) as Tag[]) as Tag[]),
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
