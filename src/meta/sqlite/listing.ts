/**
 * Listings over the SQLite indexes. A delimiter listing never walks the keys
 * under a common prefix: when it meets one, it emits the prefix and seeks
 * straight past it (prefixSuccessor), so its cost grows with the number of
 * entries returned, not with the number of keys in the bucket.
 */
import type Database from 'better-sqlite3';
import type {
  ListedMetadata,
  ListedVersion,
  ListEntry,
  ListRequest,
  ListResult,
  ListUploadsRequest,
  ListUploadsResult,
  ListVersionsRequest,
  ListVersionsResult,
  VersionListEntry,
} from '../metadata-store.ts';
import { commonPrefixOf, compareKeys, prefixSuccessor } from '../key-order.ts';
import { LISTED_VERSION_COLUMNS, rowToListedVersion, rowToUpload, type ListedVersionRow, type UploadRow } from './rows.ts';

const BATCH_ROWS_MAX = 1000;

/**
 * A listing with metadata (`withMetadata`) reads the checksum and four more
 * fields (system, user metadata, tags, ACL) out of the version's JSON
 * document in one json_extract: several paths parse the document once and
 * hand back one small JSON array, so the cost is one parse in SQLite and one
 * JSON.parse here per row, and the segments and parts never leave SQLite.
 * Plain listings run the unchanged query.
 */
const LISTED_COLUMNS_WITH_METADATA =
  "seq, bucket, key, version_id, is_latest, is_delete_marker, size_bytes, etag, last_modified_ms, owner_id, json_extract(meta, '$.checksum', '$.system', '$.userMetadata', '$.tags', '$.acl') AS listed_metadata";

interface ListedVersionWithMetadataRow extends Omit<ListedVersionRow, 'checksum'> {
  listed_metadata: string;
}

function columnsFor(withMetadata: boolean | undefined): string {
  return withMetadata === true ? LISTED_COLUMNS_WITH_METADATA : LISTED_VERSION_COLUMNS;
}

function listedVersionOf(row: ListedVersionRow | ListedVersionWithMetadataRow): ListedVersion {
  if (!('listed_metadata' in row)) return rowToListedVersion(row);
  const [checksum, system, userMetadata, tags, acl] = JSON.parse(row.listed_metadata) as [
    ListedVersion['checksum'],
    ListedMetadata['system'] | null,
    ListedMetadata['userMetadata'] | null,
    ListedMetadata['tags'] | null,
    ListedMetadata['acl'] | null,
  ];
  // One object literal with every field: adding fields to a finished object
  // one by one took V8 off its fast path and was half of a metadata page's
  // time. Delete markers carry empty metadata; documents written before a
  // field existed lack it. The ACL decides who may read the version, so who
  // sees its metadata in the listing.
  return {
    bucket: row.bucket,
    key: row.key,
    versionId: row.version_id,
    isDeleteMarker: row.is_delete_marker === 1,
    lastModifiedMs: row.last_modified_ms,
    sizeBytes: row.size_bytes,
    etag: row.etag,
    ownerId: row.owner_id,
    checksum,
    system: system ?? {},
    userMetadata: userMetadata ?? {},
    tags: tags ?? [],
    acl: acl ?? undefined,
  };
}

interface Cursor {
  key: string;
  inclusive: boolean;
}

/** Rows of one source in key order, starting at a cursor; read lazily so a seek stops reading at once. */
type FetchRows<Row> = (cursor: Cursor, limit: number) => Iterable<Row>;

interface WalkOptions<Row, Entry> {
  prefix: string;
  delimiter: string;
  /** Where to start, before prefix clamping. */
  start: Cursor;
  /** Rows to emit before starting at `start` (the rest of a key the previous page stopped inside). */
  leading: Row[];
  limit: number;
  fetch: FetchRows<Row>;
  keyOf(row: Row): string;
  entryOf(row: Row): Entry;
  prefixEntry(prefix: string): Entry;
}

/** Returns up to limit entries, plus whether more exist. */
function walk<Row, Entry>(options: WalkOptions<Row, Entry>): { entries: Entry[]; isTruncated: boolean } {
  const { prefix, delimiter, limit } = options;
  const entries: Entry[] = [];
  for (const row of options.leading) {
    if (entries.length > limit) break;
    entries.push(options.entryOf(row));
  }
  let cursor: Cursor | undefined = clampToPrefix(options.start, prefix, delimiter);
  while (cursor !== undefined && entries.length <= limit) {
    const batchRows = Math.min(BATCH_ROWS_MAX, limit + 2 - entries.length);
    let next: Cursor | undefined;
    let rowsSeen = 0;
    let done = false;
    for (const row of options.fetch(cursor, batchRows)) {
      rowsSeen++;
      const key = options.keyOf(row);
      if (!key.startsWith(prefix)) {
        done = true;
        break;
      }
      const common = commonPrefixOf(key, prefix, delimiter);
      if (common !== undefined) {
        entries.push(options.prefixEntry(common));
        const after = prefixSuccessor(common);
        next = after === undefined ? undefined : { key: after, inclusive: true };
        done = after === undefined;
        break;
      }
      entries.push(options.entryOf(row));
      if (entries.length > limit) break;
      next = { key, inclusive: false };
    }
    if (done || entries.length > limit || next === undefined) break;
    if (!next.inclusive && rowsSeen < batchRows) break;
    cursor = next;
  }
  return { entries: entries.slice(0, limit), isTruncated: entries.length > limit };
}

/**
 * Starts at the prefix when the marker is before it; skips a whole common
 * prefix when the marker is one (continuation tokens point at the last entry
 * returned, which may be a common prefix).
 */
function clampToPrefix(start: Cursor, prefix: string, delimiter: string): Cursor | undefined {
  if (compareKeys(start.key, prefix) < 0) return { key: prefix, inclusive: true };
  if (start.key.startsWith(prefix) && commonPrefixOf(start.key, prefix, delimiter) === start.key) {
    const after = prefixSuccessor(start.key);
    return after === undefined ? undefined : { key: after, inclusive: true };
  }
  return start;
}

export function listKeys(db: Database.Database, request: ListRequest): ListResult {
  const columns = columnsFor(request.withMetadata);
  const after = db.prepare(
    `SELECT ${columns} FROM versions WHERE bucket = ? AND key > ? AND is_latest = 1 AND is_delete_marker = 0 ORDER BY key LIMIT ?`,
  );
  const from = db.prepare(
    `SELECT ${columns} FROM versions WHERE bucket = ? AND key >= ? AND is_latest = 1 AND is_delete_marker = 0 ORDER BY key LIMIT ?`,
  );
  const result = walk<ListedVersionRow | ListedVersionWithMetadataRow, ListEntry>({
    prefix: request.prefix,
    delimiter: request.delimiter,
    start: { key: request.after, inclusive: request.after === '' },
    leading: [],
    limit: request.limit,
    fetch: (cursor, limit) => (cursor.inclusive ? from : after).iterate(request.bucket, cursor.key, limit) as Iterable<ListedVersionRow | ListedVersionWithMetadataRow>,
    keyOf: (row) => row.key,
    entryOf: (row) => ({ key: row.key, version: listedVersionOf(row) }),
    prefixEntry: (key) => ({ key }),
  });
  return result;
}

export function listVersions(db: Database.Database, request: ListVersionsRequest): ListVersionsResult {
  const columns = columnsFor(request.withMetadata);
  const after = db.prepare(`SELECT ${columns} FROM versions WHERE bucket = ? AND key > ? ORDER BY key, seq DESC LIMIT ?`);
  const from = db.prepare(`SELECT ${columns} FROM versions WHERE bucket = ? AND key >= ? ORDER BY key, seq DESC LIMIT ?`);
  let leading: (ListedVersionRow | ListedVersionWithMetadataRow)[] = [];
  let start: Cursor = { key: request.keyMarker, inclusive: request.keyMarker === '' };
  if (request.keyMarker !== '' && request.versionIdMarker !== '') {
    const marker = db
      .prepare('SELECT seq FROM versions WHERE bucket = ? AND key = ? AND version_id = ?')
      .get(request.bucket, request.keyMarker, request.versionIdMarker) as { seq: number } | undefined;
    if (marker !== undefined) {
      leading = db
        .prepare(`SELECT ${columns} FROM versions WHERE bucket = ? AND key = ? AND seq < ? ORDER BY seq DESC LIMIT ?`)
        .all(request.bucket, request.keyMarker, marker.seq, request.limit + 1) as (ListedVersionRow | ListedVersionWithMetadataRow)[];
    }
  }
  const result = walk<ListedVersionRow | ListedVersionWithMetadataRow, VersionListEntry>({
    prefix: request.prefix,
    delimiter: request.delimiter,
    start,
    leading,
    limit: request.limit,
    fetch: (cursor, limit) => (cursor.inclusive ? from : after).iterate(request.bucket, cursor.key, limit) as Iterable<ListedVersionRow | ListedVersionWithMetadataRow>,
    keyOf: (row) => row.key,
    entryOf: (row) => ({ key: row.key, version: listedVersionOf(row), isLatest: row.is_latest === 1 }),
    prefixEntry: (key) => ({ key, isLatest: false }),
  });
  return result;
}

export function listUploads(db: Database.Database, request: ListUploadsRequest): ListUploadsResult {
  const after = db.prepare('SELECT * FROM uploads WHERE bucket = ? AND key > ? ORDER BY key, created_ms, upload_id LIMIT ?');
  const from = db.prepare('SELECT * FROM uploads WHERE bucket = ? AND key >= ? ORDER BY key, created_ms, upload_id LIMIT ?');
  let leading: UploadRow[] = [];
  if (request.keyMarker !== '' && request.uploadIdMarker !== '') {
    const marker = db
      .prepare('SELECT created_ms, upload_id FROM uploads WHERE bucket = ? AND key = ? AND upload_id = ?')
      .get(request.bucket, request.keyMarker, request.uploadIdMarker) as { created_ms: number; upload_id: string } | undefined;
    if (marker !== undefined) {
      leading = db
        .prepare(
          'SELECT * FROM uploads WHERE bucket = ? AND key = ? AND (created_ms > ? OR (created_ms = ? AND upload_id > ?)) ORDER BY created_ms, upload_id LIMIT ?',
        )
        .all(request.bucket, request.keyMarker, marker.created_ms, marker.created_ms, marker.upload_id, request.limit + 1) as UploadRow[];
    }
  }
  return walk<UploadRow, { key: string; upload?: ReturnType<typeof rowToUpload> }>({
    prefix: request.prefix,
    delimiter: request.delimiter,
    start: { key: request.keyMarker, inclusive: request.keyMarker === '' },
    leading,
    limit: request.limit,
    fetch: (cursor, limit) => (cursor.inclusive ? from : after).iterate(request.bucket, cursor.key, limit) as Iterable<UploadRow>,
    keyOf: (row) => row.key,
    entryOf: (row) => ({ key: row.key, upload: rowToUpload(row) }),
    prefixEntry: (key) => ({ key }),
  });
}
