/**
 * Listings on PostgreSQL: one round trip per page. The entries of a page
 * (keys and common prefixes) come from the server-side walk
 * talus_entries_* (schema.ts), joined in the same statement with the rows
 * each entry lists. Starting points are clamped here exactly as the SQLite
 * listing does, so both stores list identically.
 */
import type postgres from 'postgres';
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
import { rowToListedVersion, rowToUpload, type ListedVersionRow, type UploadRow } from '../sqlite/rows.ts';
import type { UploadRecord } from '../types.ts';

type Sql = postgres.Sql<{ bigint: number }>;

/** The listing columns of `versions` (aliased v); the checksum is cut out of the document by the server. */
const LISTED_COLUMNS =
  "v.seq, v.bucket, v.key, v.version_id, v.is_latest, v.is_delete_marker, v.size_bytes, v.etag, v.last_modified_ms, v.owner_id, (v.meta::json -> 'checksum')::text AS checksum";
/** As SQLite's: system, user metadata, tags and the ACL (the listing judges per version who may see its metadata). */
const LISTED_METADATA_COLUMN =
  "json_build_array(v.meta::json -> 'system', v.meta::json -> 'userMetadata', v.meta::json -> 'tags', v.meta::json -> 'acl')::text AS listed_metadata";

interface EntryRow {
  entry_key: string;
  is_prefix: boolean;
}

type ListedRow = EntryRow & ListedVersionRow & { listed_metadata?: string };

function columnsFor(withMetadata: boolean | undefined): string {
  return withMetadata === true ? `${LISTED_COLUMNS}, ${LISTED_METADATA_COLUMN}` : LISTED_COLUMNS;
}

function listedVersionOf(row: ListedVersionRow & { listed_metadata?: string | null }): ListedVersion {
  const version = rowToListedVersion(row);
  if (row.listed_metadata === undefined || row.listed_metadata === null) return version;
  const [system, userMetadata, tags, acl] = JSON.parse(row.listed_metadata) as [
    ListedMetadata['system'] | null,
    ListedMetadata['userMetadata'] | null,
    ListedMetadata['tags'] | null,
    ListedMetadata['acl'] | null,
  ];
  version.system = system ?? {};
  version.userMetadata = userMetadata ?? {};
  version.tags = tags ?? [];
  version.acl = acl ?? undefined;
  return version;
}

interface Start {
  key: string;
  inclusive: boolean;
}

/** As the SQLite walk's clampToPrefix: start at the prefix, or past a marker that is a common prefix; undefined: nothing left. */
function clamp(start: Start, prefix: string, delimiter: string): Start | undefined {
  if (compareKeys(start.key, prefix) < 0) return { key: prefix, inclusive: true };
  if (start.key.startsWith(prefix) && commonPrefixOf(start.key, prefix, delimiter) === start.key) {
    const after = prefixSuccessor(start.key);
    return after === undefined ? undefined : { key: after, inclusive: true };
  }
  return start;
}

export async function listKeys(sql: Sql, request: ListRequest): Promise<ListResult> {
  const start = clamp({ key: request.after, inclusive: request.after === '' }, request.prefix, request.delimiter);
  if (start === undefined || request.limit <= 0) return { entries: [], isTruncated: false };
  if (request.delimiter === '') return listRange(sql, request, start);
  const rows = await sql.unsafe<ListedRow[]>(
    `SELECT e.entry_key, e.is_prefix, ${columnsFor(request.withMetadata)}
       FROM talus_entries_visible($1, $2, $3, $4, $5, $6) WITH ORDINALITY AS e (entry_key, is_prefix, ord)
       LEFT JOIN versions v ON NOT e.is_prefix AND v.bucket = $1 AND v.key = e.entry_key AND v.is_latest = 1 AND v.is_delete_marker = 0
      ORDER BY e.ord`,
    [request.bucket, request.prefix, request.delimiter, start.key, start.inclusive, request.limit + 1],
    { prepare: true },
  );
  const entries: ListEntry[] = rows.map((row) => (row.is_prefix ? { key: row.entry_key } : { key: row.entry_key, version: listedVersionOf(row) }));
  return { entries: entries.slice(0, request.limit), isTruncated: entries.length > request.limit };
}

/** Without a delimiter a page is one range scan of the visible keys under the prefix. */
async function listRange(sql: Sql, request: ListRequest, start: Start): Promise<ListResult> {
  const from = start.inclusive ? start.key : `${start.key}\u0001`;
  const upper = request.prefix === '' ? undefined : prefixSuccessor(request.prefix);
  const rows = await sql.unsafe<ListedRow[]>(
    `SELECT ${columnsFor(request.withMetadata)} FROM versions v
      WHERE v.bucket = $1 AND v.key >= $2 ${upper === undefined ? '' : 'AND v.key < $4'} AND v.is_latest = 1 AND v.is_delete_marker = 0
      ORDER BY v.key LIMIT $3`,
    upper === undefined ? [request.bucket, from, request.limit + 1] : [request.bucket, from, request.limit + 1, upper],
    { prepare: true },
  );
  const entries: ListEntry[] = rows.map((row) => ({ key: row.key, version: listedVersionOf(row) }));
  return { entries: entries.slice(0, request.limit), isTruncated: entries.length > request.limit };
}

export async function listVersions(sql: Sql, request: ListVersionsRequest): Promise<ListVersionsResult> {
  const columns = columnsFor(request.withMetadata);
  const entries: VersionListEntry[] = [];
  const entryOf = (row: ListedVersionRow & { listed_metadata?: string }): VersionListEntry => ({ key: row.key, version: listedVersionOf(row), isLatest: row.is_latest === 1 });
  if (request.keyMarker !== '' && request.versionIdMarker !== '') {
    // The rest of the key the previous page stopped inside.
    const leading = await sql.unsafe<ListedVersionRow[]>(
      `SELECT ${columns} FROM versions v
        WHERE v.bucket = $1 AND v.key = $2 AND v.seq < (SELECT seq FROM versions WHERE bucket = $1 AND key = $2 AND version_id = $3)
        ORDER BY v.seq DESC LIMIT $4`,
      [request.bucket, request.keyMarker, request.versionIdMarker, request.limit + 1],
      { prepare: true },
    );
    entries.push(...leading.map(entryOf));
  }
  const start = clamp({ key: request.keyMarker, inclusive: request.keyMarker === '' }, request.prefix, request.delimiter);
  const wanted = request.limit + 1 - entries.length;
  if (start !== undefined && wanted > 0) {
    const rows = await sql.unsafe<ListedRow[]>(
      `SELECT e.entry_key, e.is_prefix, ${columns.replaceAll('v.', 'l.')}
         FROM talus_entries_versions($1, $2, $3, $4, $5, $6) WITH ORDINALITY AS e (entry_key, is_prefix, ord)
         LEFT JOIN LATERAL (
           SELECT v.* FROM versions v WHERE NOT e.is_prefix AND v.bucket = $1 AND v.key = e.entry_key ORDER BY v.seq DESC LIMIT $6
         ) l ON true
        ORDER BY e.ord, l.seq DESC
        LIMIT $6`,
      [request.bucket, request.prefix, request.delimiter, start.key, start.inclusive, wanted],
      { prepare: true },
    );
    for (const row of rows) entries.push(row.is_prefix ? { key: row.entry_key, isLatest: false } : entryOf(row));
  }
  return { entries: entries.slice(0, request.limit), isTruncated: entries.length > request.limit };
}

export async function listUploads(sql: Sql, request: ListUploadsRequest): Promise<ListUploadsResult> {
  const entries: { key: string; upload?: UploadRecord }[] = [];
  if (request.keyMarker !== '' && request.uploadIdMarker !== '') {
    const leading = await sql<UploadRow[]>`
      SELECT u.* FROM uploads u, (SELECT created_ms, upload_id FROM uploads WHERE bucket = ${request.bucket} AND key = ${request.keyMarker} AND upload_id = ${request.uploadIdMarker}) m
       WHERE u.bucket = ${request.bucket} AND u.key = ${request.keyMarker}
         AND (u.created_ms > m.created_ms OR (u.created_ms = m.created_ms AND u.upload_id > m.upload_id))
       ORDER BY u.created_ms, u.upload_id LIMIT ${request.limit + 1}`;
    entries.push(...leading.map((row) => ({ key: row.key, upload: rowToUpload(row) })));
  }
  const start = clamp({ key: request.keyMarker, inclusive: request.keyMarker === '' }, request.prefix, request.delimiter);
  const wanted = request.limit + 1 - entries.length;
  if (start !== undefined && wanted > 0) {
    const rows = await sql<(EntryRow & Partial<UploadRow>)[]>`
      SELECT e.entry_key, e.is_prefix, u.*
        FROM talus_entries_uploads(${request.bucket}, ${request.prefix}, ${request.delimiter}, ${start.key}, ${start.inclusive}, ${wanted}) WITH ORDINALITY AS e (entry_key, is_prefix, ord)
        LEFT JOIN LATERAL (
          SELECT * FROM uploads WHERE NOT e.is_prefix AND bucket = ${request.bucket} AND key = e.entry_key ORDER BY created_ms, upload_id LIMIT ${wanted}
        ) u ON true
       ORDER BY e.ord, u.created_ms, u.upload_id
       LIMIT ${wanted}`;
    for (const row of rows) entries.push(row.is_prefix ? { key: row.entry_key } : { key: row.entry_key, upload: rowToUpload(row as UploadRow) });
  }
  return { entries: entries.slice(0, request.limit), isTruncated: entries.length > request.limit };
}
