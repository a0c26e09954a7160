/**
 * The embedded schema. `versions` holds every version and delete marker of
 * every key; `is_latest` marks the one a plain GET sees, and the partial index
 * `versions_visible` is what ListObjects walks. `blobs` is the reference set
 * of all bytes: a row with purge_after_ms set is queued for removal (the
 * durable purge queue), a blob file with no row is garbage from a crash.
 * Small objects keep their bytes in `inline_data`, keyed by their version's
 * seq, instead of a blob: apart from `versions`, so its rows stay small and
 * a listing walks densely packed pages. `repairs` is the durable queue of
 * placed blobs' shards to rewrite (a write that missed them, a read that
 * found them missing or corrupt); a database without it gets it on open.
 * `users` and `access_keys` are the principals (src/principals/): a key with
 * a NULL user_id is root's; its secret is in `sealed_secret`, encrypted under
 * a key kept outside the database. `secret_access_key` is the plain-text
 * column of version 2 databases: empty once start-up has sealed it.
 * `buckets.access` holds a bucket's access settings (policy text, ACL,
 * ownership controls, public access block) as one JSON document;
 * `cors`, `lifecycle` and `object_lock` its other configurations, one JSON
 * document per column so that setting one never overwrites another.
 * `quota_*` are a bucket's hard quota (src/meta/quota.ts): its limits and,
 * only while it has one, the usage counters every commit and delete of its
 * versions keeps in the same transaction (NULL: no quota, nothing counted).
 */
export const SCHEMA_VERSION = 6;

export const SCHEMA = `
CREATE TABLE IF NOT EXISTS settings (
  name TEXT PRIMARY KEY,
  value TEXT NOT NULL
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS access_keys (
  access_key_id TEXT PRIMARY KEY,
  secret_access_key TEXT NOT NULL,
  created_ms INTEGER NOT NULL,
  sealed_secret BLOB,
  user_id TEXT,
  policy TEXT,
  expires_ms INTEGER,
  enabled INTEGER NOT NULL DEFAULT 1
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS users (
  canonical_id TEXT PRIMARY KEY,
  name TEXT NOT NULL UNIQUE,
  email TEXT,
  policy TEXT,
  created_ms INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS buckets (
  name TEXT PRIMARY KEY,
  created_ms INTEGER NOT NULL,
  owner_id TEXT NOT NULL,
  versioning TEXT NOT NULL DEFAULT 'Unversioned',
  tags TEXT,
  access TEXT,
  cors TEXT,
  lifecycle TEXT,
  object_lock TEXT,
  quota_bytes_max INTEGER,
  quota_objects_max INTEGER,
  quota_bytes_used INTEGER,
  quota_objects_used INTEGER
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS versions (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  bucket TEXT NOT NULL,
  key TEXT NOT NULL,
  version_id TEXT NOT NULL,
  is_latest INTEGER NOT NULL,
  is_delete_marker INTEGER NOT NULL,
  size_bytes INTEGER NOT NULL,
  etag TEXT NOT NULL,
  last_modified_ms INTEGER NOT NULL,
  owner_id TEXT NOT NULL,
  meta TEXT NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS versions_by_id ON versions (bucket, key, version_id);
CREATE INDEX IF NOT EXISTS versions_by_key ON versions (bucket, key, seq DESC);
CREATE INDEX IF NOT EXISTS versions_visible ON versions (bucket, key)
  WHERE is_latest = 1 AND is_delete_marker = 0;

CREATE TABLE IF NOT EXISTS inline_data (
  seq INTEGER PRIMARY KEY,
  data BLOB NOT NULL
);

CREATE TABLE IF NOT EXISTS uploads (
  upload_id TEXT PRIMARY KEY,
  bucket TEXT NOT NULL,
  key TEXT NOT NULL,
  created_ms INTEGER NOT NULL,
  owner_id TEXT NOT NULL,
  meta TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS uploads_by_key ON uploads (bucket, key, created_ms, upload_id);

CREATE TABLE IF NOT EXISTS parts (
  upload_id TEXT NOT NULL,
  part_number INTEGER NOT NULL,
  size_bytes INTEGER NOT NULL,
  etag TEXT NOT NULL,
  last_modified_ms INTEGER NOT NULL,
  checksum TEXT,
  blob_id TEXT NOT NULL,
  PRIMARY KEY (upload_id, part_number)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS blobs (
  blob_id TEXT PRIMARY KEY,
  backend TEXT NOT NULL,
  purge_after_ms INTEGER
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS blobs_purge ON blobs (purge_after_ms) WHERE purge_after_ms IS NOT NULL;

CREATE TABLE IF NOT EXISTS repairs (
  blob_id TEXT NOT NULL,
  shard INTEGER NOT NULL,
  reason TEXT NOT NULL,
  recorded_ms INTEGER NOT NULL,
  attempts INTEGER NOT NULL DEFAULT 0,
  due_ms INTEGER NOT NULL,
  PRIMARY KEY (blob_id, shard)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS repairs_due ON repairs (due_ms);
`;

/**
 * Brings a database created by an older Talus up to SCHEMA_VERSION. Tables
 * added by a version are created by SCHEMA itself (IF NOT EXISTS); steps
 * here change existing tables.
 */
export const MIGRATIONS: readonly {
  toVersion: number;
  sql: string;
  /**
   * A query that returns a row when the step's change is already there: the
   * table did not exist, so SCHEMA just created it in its newest shape (an
   * old database that never had it), and altering it again would fail.
   */
  alreadyApplied?: string;
}[] = [
  {
    // Principals: every existing key becomes one of root's (user_id NULL),
    // enabled, without policy or expiry. Its plain-text secret stays in
    // secret_access_key until start-up seals it (that needs the secret key,
    // which SQL does not have: src/principals/secret-key.ts).
    toVersion: 3,
    alreadyApplied: "SELECT 1 FROM pragma_table_info('access_keys') WHERE name = 'sealed_secret'",
    sql: `
      ALTER TABLE access_keys ADD COLUMN sealed_secret BLOB;
      ALTER TABLE access_keys ADD COLUMN user_id TEXT;
      ALTER TABLE access_keys ADD COLUMN policy TEXT;
      ALTER TABLE access_keys ADD COLUMN expires_ms INTEGER;
      ALTER TABLE access_keys ADD COLUMN enabled INTEGER NOT NULL DEFAULT 1;
    `,
  },
  {
    // Access control: a bucket's policy, ACL, ownership controls and public
    // access block, one JSON document (NULL: private to its owner, nothing
    // set). Versions and uploads keep their ACL in their meta document, so
    // they need no step. Owners recorded as access key IDs stay as they are:
    // the front maps them to the key's account (PrincipalCache.canonicalIdOfKey).
    toVersion: 4,
    alreadyApplied: "SELECT 1 FROM pragma_table_info('buckets') WHERE name = 'access'",
    sql: `ALTER TABLE buckets ADD COLUMN access TEXT;`,
  },
  {
    // Bucket configurations: CORS, lifecycle and object lock (NULL: not set).
    toVersion: 5,
    alreadyApplied: "SELECT 1 FROM pragma_table_info('buckets') WHERE name = 'object_lock'",
    sql: `
      ALTER TABLE buckets ADD COLUMN cors TEXT;
      ALTER TABLE buckets ADD COLUMN lifecycle TEXT;
      ALTER TABLE buckets ADD COLUMN object_lock TEXT;
    `,
  },
  {
    // Bucket quotas: no bucket has one yet, so no counter needs counting (NULL: no quota).
    // A version bump, not just columns: a Talus that does not keep the counters must not write here.
    toVersion: 6,
    alreadyApplied: "SELECT 1 FROM pragma_table_info('buckets') WHERE name = 'quota_bytes_used'",
    sql: `
      ALTER TABLE buckets ADD COLUMN quota_bytes_max INTEGER;
      ALTER TABLE buckets ADD COLUMN quota_objects_max INTEGER;
      ALTER TABLE buckets ADD COLUMN quota_bytes_used INTEGER;
      ALTER TABLE buckets ADD COLUMN quota_objects_used INTEGER;
    `,
  },
];

/**
 * SQLite's own page cache per connection (the serving one and each listing
 * thread's), in KiB. better-sqlite3
 * builds SQLite with 16 MB (SQLITE_DEFAULT_CACHE_SIZE=-16000), which listings
 * of a large bucket fill and then keep for the process's life: scanning a
 * 200k-key table three times in 1000-key pages grew RSS by 33 MiB at the
 * default and by 20 MiB at 4 MiB, in the same time (the kernel's page cache
 * still holds the file; a miss is one pread of a 4 KiB page, ~40 per page of
 * 1000 keys). Hot keys are served from LatestVersions anyway.
 */
export const PAGE_CACHE_KIB_MAX = 4096;
