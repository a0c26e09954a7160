/**
 * `talus recover --scan DATA_DIR --config talus.toml`: the last resort when
 * no metadata replica survives. Rebuilds what can be rebuilt from the
 * backends alone: every object version of which an object record
 * (object-record.ts) is on a reachable backend and every blob still has
 * enough sound shards to be read.
 *
 * 1. List `talus-records/` on every reachable backend; read each record
 *    (a damaged copy is replaced by another backend's). What is found is
 *    staged in a scratch SQLite database beside the new one, not held in
 *    memory: a store of millions of versions recovers in bounded memory.
 * 2. Group the records by version (a multipart object has one full record
 *    and a pointer record per other part blob; Talus before pointer
 *    records wrote a full one per blob). A pointer whose version has no
 *    readable full record makes the version unrecoverable, reported. For
 *    each blob of a version,
 *    read every shard's header and check it against the recorded location
 *    (blob, shard number, geometry; version 1 shards, without a header, by
 *    their size): a blob with fewer sound shards than its data shards makes
 *    the version unrecoverable, reported and left out. Nothing is invented.
 * 3. Report the blobs whose shards are on the backends but which no record
 *    names (written before records existed, or whose record never reached
 *    a backend): their bytes are there, their names are not.
 * 4. Write a new database into the empty data directory: the versions in
 *    their recorded commit order per key (the last one latest), the blobs
 *    they reference, and their buckets with default settings (versioning
 *    Enabled when a recovered version has a version ID, else off) owned by
 *    root; a new store identity with its marker, so `talus server` starts
 *    on it. Users, keys, policies, bucket settings, delete markers, inline
 *    objects (16 KiB or less: their bytes were in the lost database) and
 *    objects stored with placement `local` are not recoverable this way.
 */
import { randomUUID } from 'node:crypto';
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { BackendObjectMissingError, type Backend } from '../backend/backend.ts';
import { NULL_VERSION_ID } from '../meta/types.ts';
import { SqliteMetadataStore } from '../meta/sqlite/sqlite-metadata-store.ts';
import { decodeLocation, OBJECT_RECORD_PREFIX, shardKey, stripeLayoutOf, type BlobLocation } from '../placement/blob-location.ts';
import { checkEmpty, install, RestoreError } from './restore.ts';
import { decodeObjectRecord, OBJECT_RECORD_BYTES_MAX, segmentsOf, type ObjectRecordPointer, type RecordedSegment, type RecordedVersion } from './object-record.ts';

/** Blob IDs of unrecorded blobs named in the report (the count is always complete). */
const UNRECORDED_LISTED_MAX = 100;
const SHARD_KEY = /^([0-9a-z]{9}[0-9a-f]{20})\.\d{1,2}$/;

export interface RecoverOptions {
  readonly dataDir: string;
  readonly backends: readonly Backend[];
  readonly log?: (line: string) => void;
}

export interface RecoverReport {
  readonly storeId: string;
  readonly buckets: number;
  readonly versionsRecovered: number;
  /** Versions with a record whose bytes cannot be read back, and why. */
  readonly versionsUnrecoverable: readonly { bucket: string; key: string; versionId: string; reason: string }[];
  /** Blobs with shards on the backends but no record: reported, not invented. */
  readonly unrecordedBlobs: number;
  readonly unrecordedBlobIds: readonly string[];
  readonly unreachableBackends: readonly string[];
}

export async function recoverFromScan(options: RecoverOptions): Promise<RecoverReport> {
  const log = options.log ?? (() => undefined);
  await checkEmpty(options.dataDir);
  const byName = new Map(options.backends.map((backend) => [backend.name, backend]));
  const scratch = join(options.dataDir, 'recover-scratch');
  await rm(scratch, { recursive: true, force: true });
  await mkdir(scratch, { recursive: true });
  const staging = new Staging(join(scratch, 'staging.db'));
  try {
    const { unreachable } = await catalogue(options.backends, staging, log);
    const unrecoverable: { bucket: string; key: string; versionId: string; reason: string }[] = [];
    for (const pointer of staging.orphanedPointers()) {
      const reason = `its full record (blob ${pointer.versionBlobId}) is on no reachable backend`;
      unrecoverable.push({ bucket: pointer.bucket, key: pointer.key, versionId: pointer.versionId, reason });
      log(`${pointer.bucket}/${pointer.key} (version ${pointer.versionId}) not recoverable: ${reason}`);
    }
    let recovered = 0;
    for (let page = staging.versionsAfter(0); page.length > 0; page = staging.versionsAfter(page.at(-1)!.id)) {
      for (const { id, version } of page) {
        const reason = await unreadableBecause(version, byName);
        if (reason === undefined) {
          staging.markReadable(id);
          recovered++;
        } else {
          unrecoverable.push({ bucket: version.bucket, key: version.key, versionId: version.versionId, reason });
          log(`${version.bucket}/${version.key} (version ${version.versionId}) not recoverable: ${reason}`);
        }
      }
    }
    const unrecorded = staging.unrecordedBlobs(UNRECORDED_LISTED_MAX);
    if (unrecorded.count > 0) log(`${unrecorded.count} blob(s) have shards on the backends but no object record: not recovered`);
    const databasePath = join(scratch, 'meta.db');
    const identity = { id: randomUUID(), epoch: 1 };
    const buckets = await writeDatabase(databasePath, identity, staging);
    staging.close();
    await install(options.dataDir, databasePath, identity, undefined);
    log(`recovered ${recovered} version(s) in ${buckets} bucket(s) as store ${identity.id}`);
    return {
      storeId: identity.id,
      buckets,
      versionsRecovered: recovered,
      versionsUnrecoverable: unrecoverable,
      unrecordedBlobs: unrecorded.count,
      unrecordedBlobIds: unrecorded.listed,
      unreachableBackends: unreachable,
    };
  } finally {
    staging.close();
    await rm(scratch, { recursive: true, force: true });
  }
}

/** Versions checked per page: bounds what the check holds in memory. */
const STAGING_PAGE = 256;

/**
 * What the scan found, staged in a scratch SQLite database rather than in
 * memory: a store of millions of versions is recovered in bounded memory,
 * and the new database is written from it in SQL (order, latest flags,
 * blobs, buckets).
 */
class Staging {
  readonly db: Database.Database;
  readonly #path: string;

  constructor(path: string) {
    this.#path = path;
    this.db = new Database(path);
    this.db.pragma('journal_mode = OFF');
    this.db.pragma('synchronous = OFF');
    this.db.exec(`
      CREATE TABLE versions (id INTEGER PRIMARY KEY, bucket TEXT NOT NULL, key TEXT NOT NULL, version_id TEXT NOT NULL, seq INTEGER NOT NULL,
        last_modified_ms INTEGER NOT NULL, size_bytes INTEGER NOT NULL, etag TEXT NOT NULL, owner_id TEXT NOT NULL, meta TEXT NOT NULL,
        readable INTEGER NOT NULL DEFAULT 0, UNIQUE (bucket, key, version_id));
      CREATE TABLE pointers (bucket TEXT NOT NULL, key TEXT NOT NULL, version_id TEXT NOT NULL, blob_id TEXT NOT NULL, version_blob_id TEXT NOT NULL,
        PRIMARY KEY (bucket, key, version_id)) WITHOUT ROWID;
      CREATE TABLE records (blob_id TEXT PRIMARY KEY) WITHOUT ROWID;
      CREATE TABLE shard_blobs (blob_id TEXT PRIMARY KEY) WITHOUT ROWID;
      CREATE TABLE recorded_blobs (blob_id TEXT PRIMARY KEY) WITHOUT ROWID;`);
  }

  get path(): string {
    return this.#path;
  }

  close(): void {
    if (this.db.open) this.db.close();
  }

  hasRecord(blobId: string): boolean {
    return this.db.prepare('SELECT 1 FROM records WHERE blob_id = ?').get(blobId) !== undefined;
  }

  addShardBlob(blobId: string): void {
    this.db.prepare('INSERT OR IGNORE INTO shard_blobs (blob_id) VALUES (?)').run(blobId);
  }

  /** A full record: the version, unless one with a higher seq is staged (records of one version's blobs are written from the same row). */
  addVersion(blobId: string, version: RecordedVersion, segments: readonly RecordedSegment[]): void {
    this.db.transaction(() => {
      this.db.prepare('INSERT OR IGNORE INTO records (blob_id) VALUES (?)').run(blobId);
      this.db
        .prepare(
          'INSERT INTO versions (bucket, key, version_id, seq, last_modified_ms, size_bytes, etag, owner_id, meta) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ' +
            'ON CONFLICT (bucket, key, version_id) DO UPDATE SET seq = excluded.seq, last_modified_ms = excluded.last_modified_ms, size_bytes = excluded.size_bytes, ' +
            'etag = excluded.etag, owner_id = excluded.owner_id, meta = excluded.meta WHERE excluded.seq > versions.seq',
        )
        .run(version.bucket, version.key, version.versionId, version.seq, version.lastModifiedMs, version.sizeBytes, version.etag, version.ownerId, version.meta);
      const recorded = this.db.prepare('INSERT OR IGNORE INTO recorded_blobs (blob_id) VALUES (?)');
      for (const segment of segments) recorded.run(segment.blobId);
    })();
  }

  addPointer(pointer: ObjectRecordPointer): void {
    const { bucket, key, versionId } = pointer.version;
    this.db.transaction(() => {
      this.db.prepare('INSERT OR IGNORE INTO records (blob_id) VALUES (?)').run(pointer.blobId);
      this.db.prepare('INSERT OR IGNORE INTO pointers (bucket, key, version_id, blob_id, version_blob_id) VALUES (?, ?, ?, ?, ?)').run(bucket, key, versionId, pointer.blobId, pointer.versionBlobId);
      this.db.prepare('INSERT OR IGNORE INTO recorded_blobs (blob_id) VALUES (?)').run(pointer.blobId);
    })();
  }

  /** Versions named by pointer records only: their full record was read from no backend. */
  orphanedPointers(): { bucket: string; key: string; versionId: string; versionBlobId: string }[] {
    return this.db
      .prepare(
        'SELECT bucket, key, version_id AS versionId, version_blob_id AS versionBlobId FROM pointers p ' +
          'WHERE NOT EXISTS (SELECT 1 FROM versions v WHERE v.bucket = p.bucket AND v.key = p.key AND v.version_id = p.version_id) ORDER BY bucket, key, version_id',
      )
      .all() as { bucket: string; key: string; versionId: string; versionBlobId: string }[];
  }

  versionsAfter(id: number): { id: number; version: RecordedVersion }[] {
    const rows = this.db
      .prepare('SELECT id, bucket, key, version_id, seq, last_modified_ms, size_bytes, etag, owner_id, meta FROM versions WHERE id > ? ORDER BY id LIMIT ?')
      .all(id, STAGING_PAGE) as { id: number; bucket: string; key: string; version_id: string; seq: number; last_modified_ms: number; size_bytes: number; etag: string; owner_id: string; meta: string }[];
    return rows.map((row) => ({
      id: row.id,
      version: { bucket: row.bucket, key: row.key, versionId: row.version_id, seq: row.seq, lastModifiedMs: row.last_modified_ms, sizeBytes: row.size_bytes, etag: row.etag, ownerId: row.owner_id, meta: row.meta },
    }));
  }

  markReadable(id: number): void {
    this.db.prepare('UPDATE versions SET readable = 1 WHERE id = ?').run(id);
  }

  /** Blobs with shards but no record: the count, and the first `listed` IDs in order. */
  unrecordedBlobs(listed: number): { count: number; listed: string[] } {
    const where = 'FROM shard_blobs s WHERE NOT EXISTS (SELECT 1 FROM recorded_blobs r WHERE r.blob_id = s.blob_id)';
    return {
      count: this.db.prepare(`SELECT count(*) ${where}`).pluck().get() as number,
      listed: this.db.prepare(`SELECT blob_id ${where} ORDER BY blob_id LIMIT ?`).pluck().all(listed) as string[],
    };
  }
}

/** Every version named by a readable record, and every blob with a shard, on the reachable backends, into the staging database. */
async function catalogue(backends: readonly Backend[], staging: Staging, log: (line: string) => void): Promise<{ unreachable: string[] }> {
  const unreachable: string[] = [];
  for (const backend of backends) {
    try {
      for await (const key of backend.list('')) {
        const shard = SHARD_KEY.exec(key);
        if (shard !== null) staging.addShardBlob(shard[1]!);
        if (!key.startsWith(OBJECT_RECORD_PREFIX)) continue;
        const blobId = key.slice(OBJECT_RECORD_PREFIX.length);
        if (staging.hasRecord(blobId)) continue; // another backend's copy was read already
        try {
          const record = decodeObjectRecord(await readWhole(backend, key));
          if (record.blobId !== blobId) throw new Error(`it names blob ${record.blobId}`);
          if (record.kind === 'pointer') staging.addPointer(record);
          else staging.addVersion(blobId, record.version, segmentsOf(record.version));
        } catch (error) {
          log(`${backend.name}: record ${key} unusable: ${error instanceof Error ? error.message : String(error)}`);
        }
      }
    } catch (error) {
      unreachable.push(backend.name);
      log(`backend ${backend.name} unreachable: ${error instanceof Error ? error.message : String(error)}`);
    }
  }
  return { unreachable };
}

async function readWhole(backend: Backend, key: string, bytes?: number): Promise<Buffer> {
  const size = bytes ?? (await backend.stat(key));
  if (size === undefined) throw new BackendObjectMissingError(backend.name, key);
  if (size > OBJECT_RECORD_BYTES_MAX) throw new Error(`${size} bytes: larger than any record`);
  const chunks: Buffer[] = [];
  for await (const chunk of await backend.read(key, 0, size)) chunks.push(chunk);
  return Buffer.concat(chunks);
}

/** Why the version's bytes cannot be read back, or undefined when every blob has enough sound shards. */
async function unreadableBecause(version: RecordedVersion, backends: ReadonlyMap<string, Backend>): Promise<string | undefined> {
  for (const segment of segmentsOf(version)) {
    if (segment.location === undefined) return `blob ${segment.blobId} was in the gateway's local blob store`;
    const location = decodeLocation(segment.location);
    const sound = await soundShards(segment.blobId, location, backends);
    if (sound < location.dataShards) return `blob ${segment.blobId}: ${sound} sound shard(s) of the ${location.dataShards} needed`;
  }
  return undefined;
}

/** Shards of the blob that are where its location says, with its header (version 2) or its length (version 1). */
async function soundShards(blobId: string, location: BlobLocation, backends: ReadonlyMap<string, Backend>): Promise<number> {
  const layout = stripeLayoutOf(blobId, location);
  const checks = location.backends.map(async (name, shard) => {
    const backend = backends.get(name);
    if (backend === undefined) return false;
    try {
      const key = shardKey(blobId, shard);
      const size = await backend.stat(key);
      if (size !== layout.shardBytes) return false;
      if (layout.headerBytes === 0) return true;
      const chunks: Buffer[] = [];
      for await (const chunk of await backend.read(key, 0, layout.headerBytes)) chunks.push(chunk);
      return layout.checkShardHeader(Buffer.concat(chunks), shard) === undefined;
    } catch {
      return false;
    }
  });
  return (await Promise.all(checks)).filter(Boolean).length;
}

/** The new database: the readable staged versions (commit order per key), their blobs and buckets, owned by root. Returns the bucket count. */
async function writeDatabase(databasePath: string, identity: { id: string; epoch: number }, staging: Staging): Promise<number> {
  // The store's own constructor creates the schema and chooses root's canonical ID.
  const store = new SqliteMetadataStore(databasePath);
  await store.setStoreIdentity(identity);
  const root = await store.rootCanonicalId();
  await store.close();
  const db = new Database(databasePath);
  try {
    db.prepare('ATTACH DATABASE ? AS staging').run(staging.path);
    const buckets = db.transaction(() => {
      // New versions (these and the recovered server's) are numbered past every recorded one: their records,
      // written again under the new numbers, then sort after any record left from an older database.
      const recordedMax = (db.prepare('SELECT max(seq) FROM staging.versions').pluck().get() as number | null) ?? 0;
      db.prepare("DELETE FROM sqlite_sequence WHERE name = 'versions'").run();
      db.prepare("INSERT INTO sqlite_sequence (name, seq) VALUES ('versions', ?)").run(recordedMax);
      const created = db
        .prepare(
          'INSERT INTO buckets (name, created_ms, owner_id, versioning) ' +
            "SELECT bucket, min(last_modified_ms), ?, CASE WHEN max(version_id != ?) THEN 'Enabled' ELSE 'Unversioned' END FROM staging.versions WHERE readable = 1 GROUP BY bucket ORDER BY bucket",
        )
        .run(root, NULL_VERSION_ID).changes;
      // In recorded commit order per key (text compares as UTF-8 bytes: S3's key order); seqs of records written by
      // different databases can meet (restore and recover number new versions past every earlier one), and the
      // clock breaks what ties remain. The last of a key is latest.
      db.prepare(
        'INSERT INTO versions (bucket, key, version_id, is_latest, is_delete_marker, size_bytes, etag, last_modified_ms, owner_id, meta) ' +
          'SELECT bucket, key, version_id, row_number() OVER (PARTITION BY bucket, key ORDER BY seq DESC, last_modified_ms DESC) = 1, 0, size_bytes, etag, last_modified_ms, ?, meta ' +
          'FROM staging.versions WHERE readable = 1 ORDER BY bucket, key, seq, last_modified_ms',
      ).run(root);
      db.prepare(
        'INSERT OR IGNORE INTO blobs (blob_id, backend, purge_after_ms) ' +
          "SELECT json_extract(segment.value, '$.blobId'), json_extract(segment.value, '$.location'), NULL FROM staging.versions v, json_each(v.meta, '$.segments') AS segment WHERE v.readable = 1",
      ).run();
      return created;
    })();
    db.exec('DETACH DATABASE staging');
    const check = db.pragma('integrity_check', { simple: true });
    if (check !== 'ok') throw new RestoreError(`the recovered database fails SQLite's integrity check: ${String(check)}`);
    db.pragma('wal_checkpoint(TRUNCATE)');
    return buckets;
  } finally {
    db.close();
  }
}
