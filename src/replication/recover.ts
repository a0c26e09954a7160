/**
 * `talus recover --scan DATA_DIR --config talus.toml`: the last resort when
 * no metadata replica survives. Rebuilds what can be rebuilt from the
 * backends alone: every object version of which an object record
 * (object-record.ts) is on a reachable backend and every blob still has
 * enough sound shards to be read.
 *
 * 1. List `talus-records/` on every reachable backend; read each record
 *    (a damaged copy is replaced by another backend's).
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
import { decodeObjectRecord, OBJECT_RECORD_BYTES_MAX, segmentsOf, type ObjectRecordPointer, type RecordedVersion, type RecordedVersionName } from './object-record.ts';

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
  const { versions, pointers, shardBlobs, unreachable } = await catalogue(options.backends, log);
  const recovered: RecordedVersion[] = [];
  const unrecoverable: { bucket: string; key: string; versionId: string; reason: string }[] = [];
  const recordedBlobs = new Set<string>();
  for (const [id, pointer] of pointers) {
    if (versions.has(id)) continue;
    const { bucket, key, versionId } = pointer.version;
    const reason = `its full record (blob ${pointer.versionBlobId}) is on no reachable backend`;
    unrecoverable.push({ bucket, key, versionId, reason });
    recordedBlobs.add(pointer.blobId);
    log(`${bucket}/${key} (version ${versionId}) not recoverable: ${reason}`);
  }
  for (const version of versions.values()) {
    for (const segment of segmentsOf(version)) recordedBlobs.add(segment.blobId);
    const reason = await unreadableBecause(version, byName);
    if (reason === undefined) recovered.push(version);
    else {
      unrecoverable.push({ bucket: version.bucket, key: version.key, versionId: version.versionId, reason });
      log(`${version.bucket}/${version.key} (version ${version.versionId}) not recoverable: ${reason}`);
    }
  }
  const unrecorded = [...shardBlobs].filter((blobId) => !recordedBlobs.has(blobId)).sort();
  if (unrecorded.length > 0) log(`${unrecorded.length} blob(s) have shards on the backends but no object record: not recovered`);
  const scratch = join(options.dataDir, 'recover-scratch');
  await rm(scratch, { recursive: true, force: true });
  await mkdir(scratch, { recursive: true });
  try {
    const databasePath = join(scratch, 'meta.db');
    const identity = { id: randomUUID(), epoch: 1 };
    const buckets = await writeDatabase(databasePath, identity, recovered);
    await install(options.dataDir, databasePath, identity, undefined);
    log(`recovered ${recovered.length} version(s) in ${buckets} bucket(s) as store ${identity.id}`);
    return {
      storeId: identity.id,
      buckets,
      versionsRecovered: recovered.length,
      versionsUnrecoverable: unrecoverable,
      unrecordedBlobs: unrecorded.length,
      unrecordedBlobIds: unrecorded.slice(0, UNRECORDED_LISTED_MAX),
      unreachableBackends: unreachable,
    };
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
}

/** Every version named by a readable record, and every blob with a shard, on the reachable backends. */
async function catalogue(
  backends: readonly Backend[],
  log: (line: string) => void,
): Promise<{ versions: Map<string, RecordedVersion>; pointers: Map<string, ObjectRecordPointer>; shardBlobs: Set<string>; unreachable: string[] }> {
  const versions = new Map<string, RecordedVersion>();
  /** One pointer record per version (any one): reports a version whose full record is gone. */
  const pointers = new Map<string, ObjectRecordPointer>();
  const shardBlobs = new Set<string>();
  const unreachable: string[] = [];
  const readRecords = new Set<string>();
  for (const backend of backends) {
    try {
      for await (const key of backend.list('')) {
        const shard = SHARD_KEY.exec(key);
        if (shard !== null) shardBlobs.add(shard[1]!);
        if (!key.startsWith(OBJECT_RECORD_PREFIX)) continue;
        const blobId = key.slice(OBJECT_RECORD_PREFIX.length);
        if (readRecords.has(blobId)) continue; // another backend's copy was read already
        try {
          const record = decodeObjectRecord(await readWhole(backend, key));
          if (record.blobId !== blobId) throw new Error(`it names blob ${record.blobId}`);
          readRecords.add(blobId);
          const id = versionKey(record.version);
          if (record.kind === 'pointer') {
            pointers.set(id, record);
            continue;
          }
          const known = versions.get(id);
          // Records of one version's blobs are written from the same row; a newer one wins if they ever differ.
          if (known === undefined || known.seq < record.version.seq) versions.set(id, record.version);
        } catch (error) {
          log(`${backend.name}: record ${key} unusable: ${error instanceof Error ? error.message : String(error)}`);
        }
      }
    } catch (error) {
      unreachable.push(backend.name);
      log(`backend ${backend.name} unreachable: ${error instanceof Error ? error.message : String(error)}`);
    }
  }
  return { versions, pointers, shardBlobs, unreachable };
}

function versionKey(version: RecordedVersionName): string {
  return JSON.stringify([version.bucket, version.key, version.versionId]);
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

/** The new database: recovered versions (commit order per key), their blobs and buckets, owned by root. Returns the bucket count. */
async function writeDatabase(databasePath: string, identity: { id: string; epoch: number }, versions: readonly RecordedVersion[]): Promise<number> {
  // The store's own constructor creates the schema and chooses root's canonical ID.
  const store = new SqliteMetadataStore(databasePath);
  await store.setStoreIdentity(identity);
  const root = await store.rootCanonicalId();
  await store.close();
  const db = new Database(databasePath);
  try {
    // Seqs of records written by different databases (before and after an earlier restore or recover) can meet;
    // restore and recover number new versions past every earlier one, and the clock breaks what ties remain.
    const ordered = [...versions].sort((a, b) => compare(a.bucket, b.bucket) || compare(a.key, b.key) || a.seq - b.seq || a.lastModifiedMs - b.lastModifiedMs);
    const buckets = new Map<string, { createdMs: number; versioned: boolean }>();
    for (const version of ordered) {
      const bucket = buckets.get(version.bucket) ?? { createdMs: version.lastModifiedMs, versioned: false };
      bucket.createdMs = Math.min(bucket.createdMs, version.lastModifiedMs);
      bucket.versioned ||= version.versionId !== NULL_VERSION_ID;
      buckets.set(version.bucket, bucket);
    }
    const insertBucket = db.prepare('INSERT INTO buckets (name, created_ms, owner_id, versioning) VALUES (?, ?, ?, ?)');
    const insertVersion = db.prepare(
      'INSERT INTO versions (bucket, key, version_id, is_latest, is_delete_marker, size_bytes, etag, last_modified_ms, owner_id, meta) VALUES (?, ?, ?, ?, 0, ?, ?, ?, ?, ?)',
    );
    const insertBlob = db.prepare('INSERT OR IGNORE INTO blobs (blob_id, backend, purge_after_ms) VALUES (?, ?, NULL)');
    db.transaction(() => {
      // New versions (these and the recovered server's) are numbered past every recorded one: their records,
      // written again under the new numbers, then sort after any record left from an older database.
      const recordedMax = versions.reduce((max, version) => Math.max(max, version.seq), 0);
      db.prepare("DELETE FROM sqlite_sequence WHERE name = 'versions'").run();
      db.prepare("INSERT INTO sqlite_sequence (name, seq) VALUES ('versions', ?)").run(recordedMax);
      for (const [name, bucket] of buckets) insertBucket.run(name, bucket.createdMs, root, bucket.versioned ? 'Enabled' : 'Unversioned');
      ordered.forEach((version, i) => {
        const next = ordered[i + 1];
        const latest = next === undefined || next.bucket !== version.bucket || next.key !== version.key;
        insertVersion.run(version.bucket, version.key, version.versionId, latest ? 1 : 0, version.sizeBytes, version.etag, version.lastModifiedMs, root, version.meta);
        for (const segment of segmentsOf(version)) insertBlob.run(segment.blobId, segment.location!);
      });
    })();
    const check = db.pragma('integrity_check', { simple: true });
    if (check !== 'ok') throw new RestoreError(`the recovered database fails SQLite's integrity check: ${String(check)}`);
    db.pragma('wal_checkpoint(TRUNCATE)');
    return buckets.size;
  } finally {
    db.close();
  }
}

/** S3's key order: bytes of UTF-8, not UTF-16 code units. */
function compare(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a), Buffer.from(b));
}
