/**
 * The PostgreSQL schema: the SQLite store's tables (src/meta/sqlite/schema.ts)
 * with the same columns and meanings, so rows map to records through the same
 * code (../sqlite/rows.ts). Differences that matter:
 *
 * - Keys, bucket names and upload IDs are `text COLLATE "C"` in a UTF8 database: C
 *   collation compares the UTF-8 bytes, which is S3's key order and what
 *   SQLite's BINARY collation gives (key-order.ts). The store refuses a
 *   database whose encoding is not UTF8.
 * - `versions_one_latest` makes two latest versions of one key impossible:
 *   a second line behind the per-key lock of conditional commits.
 * - Listings with a delimiter run server-side (talus_entries_*: PL/pgSQL
 *   that walks the key index and seeks past each common prefix), so a page
 *   is one round trip however many prefixes it rolls up.
 * - Booleans stay smallint and times bigint milliseconds, as in SQLite.
 */
export const SCHEMA_VERSION = 6;

/**
 * Steps from an older schema, run on open under the schema lock (the tables
 * SCHEMA creates are already in their newest shape). 6: bucket quotas
 * (src/meta/quota.ts; NULL: no quota, nothing counted).
 */
export const MIGRATIONS: readonly { toVersion: number; sql: string }[] = [
  {
    toVersion: 6,
    sql: `
      ALTER TABLE buckets ADD COLUMN IF NOT EXISTS quota_bytes_max bigint;
      ALTER TABLE buckets ADD COLUMN IF NOT EXISTS quota_objects_max bigint;
      ALTER TABLE buckets ADD COLUMN IF NOT EXISTS quota_bytes_used bigint;
      ALTER TABLE buckets ADD COLUMN IF NOT EXISTS quota_objects_used bigint;
    `,
  },
];

/** The oldest schema open() brings up to SCHEMA_VERSION. */
export const SCHEMA_VERSION_MIGRATABLE_MIN = 5;

/** Serializes schema creation between nodes starting at once (any constant; key locks use hashes of bucket/key). */
export const SCHEMA_LOCK_ID = 0x7461_6c75_7300_0001n; // "talus\0\0\1"

export const SCHEMA = `
CREATE TABLE IF NOT EXISTS settings (
  name text PRIMARY KEY,
  value text NOT NULL
);

CREATE TABLE IF NOT EXISTS access_keys (
  access_key_id text PRIMARY KEY,
  secret_access_key text NOT NULL DEFAULT '',
  created_ms bigint NOT NULL,
  sealed_secret bytea,
  user_id text,
  policy text,
  expires_ms bigint,
  enabled smallint NOT NULL DEFAULT 1
);

CREATE TABLE IF NOT EXISTS users (
  canonical_id text PRIMARY KEY,
  name text NOT NULL UNIQUE,
  email text,
  policy text,
  created_ms bigint NOT NULL
);

CREATE TABLE IF NOT EXISTS buckets (
  name text COLLATE "C" PRIMARY KEY,
  created_ms bigint NOT NULL,
  owner_id text NOT NULL,
  versioning text NOT NULL DEFAULT 'Unversioned',
  tags text,
  access text,
  cors text,
  lifecycle text,
  object_lock text,
  quota_bytes_max bigint,
  quota_objects_max bigint,
  quota_bytes_used bigint,
  quota_objects_used bigint
);

CREATE TABLE IF NOT EXISTS versions (
  seq bigserial PRIMARY KEY,
  bucket text COLLATE "C" NOT NULL,
  key text COLLATE "C" NOT NULL,
  version_id text NOT NULL,
  is_latest smallint NOT NULL,
  is_delete_marker smallint NOT NULL,
  size_bytes bigint NOT NULL,
  etag text NOT NULL,
  last_modified_ms bigint NOT NULL,
  owner_id text NOT NULL,
  meta text NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS versions_by_id ON versions (bucket, key, version_id);
CREATE INDEX IF NOT EXISTS versions_by_key ON versions (bucket, key, seq DESC);
CREATE INDEX IF NOT EXISTS versions_visible ON versions (bucket, key) WHERE is_latest = 1 AND is_delete_marker = 0;
CREATE UNIQUE INDEX IF NOT EXISTS versions_one_latest ON versions (bucket, key) WHERE is_latest = 1;

CREATE TABLE IF NOT EXISTS inline_data (
  seq bigint PRIMARY KEY,
  data bytea NOT NULL
);

CREATE TABLE IF NOT EXISTS uploads (
  upload_id text COLLATE "C" PRIMARY KEY,
  bucket text COLLATE "C" NOT NULL,
  key text COLLATE "C" NOT NULL,
  created_ms bigint NOT NULL,
  owner_id text NOT NULL,
  meta text NOT NULL
);
CREATE INDEX IF NOT EXISTS uploads_by_key ON uploads (bucket, key, created_ms, upload_id);
-- Upload listings order (and page past a marker) by upload_id as SQLite does, by bytes: a database created
-- before upload_id had COLLATE "C" gets it here, once (the ALTER rebuilds the uploads indexes, so not every start).
DO $alter$
BEGIN
  IF (SELECT attcollation FROM pg_attribute WHERE attrelid = to_regclass('uploads') AND attname = 'upload_id') <> '"C"'::regcollation THEN
    ALTER TABLE uploads ALTER COLUMN upload_id TYPE text COLLATE "C";
  END IF;
END
$alter$;

CREATE TABLE IF NOT EXISTS parts (
  upload_id text NOT NULL,
  part_number integer NOT NULL,
  size_bytes bigint NOT NULL,
  etag text NOT NULL,
  last_modified_ms bigint NOT NULL,
  checksum text,
  blob_id text NOT NULL,
  PRIMARY KEY (upload_id, part_number)
);

CREATE TABLE IF NOT EXISTS blobs (
  blob_id text COLLATE "C" PRIMARY KEY,
  backend text NOT NULL,
  purge_after_ms bigint
);
CREATE INDEX IF NOT EXISTS blobs_purge ON blobs (purge_after_ms) WHERE purge_after_ms IS NOT NULL;

CREATE TABLE IF NOT EXISTS repairs (
  blob_id text NOT NULL,
  shard integer NOT NULL,
  reason text NOT NULL,
  recorded_ms bigint NOT NULL,
  attempts integer NOT NULL DEFAULT 0,
  due_ms bigint NOT NULL,
  PRIMARY KEY (blob_id, shard)
);
CREATE INDEX IF NOT EXISTS repairs_due ON repairs (due_ms);

-- The smallest text greater than every text starting with p (key-order.ts's
-- prefixSuccessor): the last code point below U+10FFFF plus one, skipping
-- the surrogates; NULL when there is none.
CREATE OR REPLACE FUNCTION talus_key_successor(p text) RETURNS text
LANGUAGE plpgsql IMMUTABLE STRICT AS $fn$
DECLARE
  s text := p;
  c integer;
BEGIN
  WHILE length(s) > 0 LOOP
    c := ascii(right(s, 1));
    s := left(s, -1);
    IF c < 1114111 THEN
      RETURN s || chr(CASE WHEN c = 55295 THEN 57344 ELSE c + 1 END);
    END IF;
  END LOOP;
  RETURN NULL;
END
$fn$;

${entriesFunction('visible', 'versions', 'AND t.is_latest = 1 AND t.is_delete_marker = 0')}
${entriesFunction('versions', 'versions', '')}
${entriesFunction('uploads', 'uploads', '')}
`;

/**
 * talus_entries_<name>(bucket, prefix, delimiter, start, inclusive, max):
 * the next `max` distinct entries of a listing in key order — keys, and the
 * common prefixes they roll up into — from `start` on. One index probe per
 * entry: a key's probe continues just after it (text holds no NUL, so
 * key || chr(1) is the smallest text after key, past all its versions), a
 * common prefix's seeks past every key under it (talus_key_successor), as
 * src/meta/sqlite/listing.ts's walk does in SQLite; so its cost grows with
 * the entries returned, not the keys under them. The caller clamps `start`
 * to the prefix. Measured on 200k keys (1000 entries of which half common
 * prefixes): a probe per entry 74 ms per page, a recursive CTE of the same
 * probes 55 ms, a FOR loop over index scans restarted at each prefix 243 ms
 * (loaded 2-core machine, ±30 %); the probes stay here for one readable
 * mechanism, and listings without a delimiter skip it (one range scan).
 */
function entriesFunction(name: string, table: string, filter: string): string {
  return `
CREATE OR REPLACE FUNCTION talus_entries_${name}(p_bucket text, p_prefix text, p_delimiter text, p_start text, p_inclusive boolean, p_max integer)
RETURNS TABLE (entry_key text, is_prefix boolean)
LANGUAGE plpgsql STABLE AS $fn$
DECLARE
  v_from text := CASE WHEN p_inclusive THEN p_start ELSE p_start || chr(1) END;
  v_key text;
  v_count integer := 0;
  v_at integer;
BEGIN
  WHILE v_count < p_max LOOP
    SELECT t.key INTO v_key FROM ${table} t WHERE t.bucket = p_bucket AND t.key >= v_from ${filter} ORDER BY t.key LIMIT 1;
    IF NOT FOUND OR NOT starts_with(v_key, p_prefix) THEN RETURN; END IF;
    v_at := CASE WHEN p_delimiter = '' THEN 0 ELSE strpos(substr(v_key, length(p_prefix) + 1), p_delimiter) END;
    IF v_at > 0 THEN
      entry_key := left(v_key, length(p_prefix) + v_at - 1 + length(p_delimiter));
      is_prefix := true;
      v_from := talus_key_successor(entry_key);
    ELSE
      entry_key := v_key;
      is_prefix := false;
      v_from := v_key || chr(1);
    END IF;
    RETURN NEXT;
    v_count := v_count + 1;
    IF v_from IS NULL THEN RETURN; END IF;
  END LOOP;
END
$fn$;`;
}
