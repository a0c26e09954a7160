/**
 * Listings over the SQLite indexes. A delimiter listing never walks the keys
 * under a common prefix: when it meets one, it emits the prefix and seeks
 * straight past it (prefixSuccessor), so its cost grows with the number of
 * entries returned, not with the number of keys in the bucket. Runs of
 * common prefixes are hopped with key-only seeks on a covering index (one
 * B-tree descent, ~1 µs), and full rows are read only for the keys listed.
 *
 * A listing runs in one read transaction: one snapshot for the whole page,
 * and SQLite takes the WAL read lock once instead of once per statement
 * (a few syscalls each, the larger part of a seek's cost here).
 *
 * These functions take any connection: the store's own, or a listing
 * thread's read-only one (listing-threads.ts).
 */
import type Database from 'better-sqlite3';
import type {
  ListedContents,
  ListedContentsResult,
  ListedMetadata,
  ListedVersion,
  ListRequest,
  ListResult,
  ListUploadsRequest,
  ListUploadsResult,
  ListVersionsRequest,
  ListVersionsResult,
  VersionListEntry,
} from '../metadata-store.ts';
import { commonPrefixOf, compareKeys, prefixSuccessor } from '../key-order.ts';
import type { ObjectChecksum } from '../types.ts';
import type { ChecksumAlgorithm, ChecksumType } from '../../util/checksum.ts';
import { assert } from '../../util/assert.ts';
import { rowToUpload, type UploadRow } from './rows.ts';

/** Rows one statement reads at most: a full page and the one row that tells whether it is truncated. */
const BATCH_ROWS_MAX = 1001;
/** A delimiter listing's first batch of packed rows, and its first after each common prefix (see walkShownKeys). */
const DELIMITER_BATCH_ROWS_FIRST = 8;
/**
 * A delimiter listing's largest batch. A batch is read whole, so the rows of
 * it that fall under a common prefix met part-way were built for nothing,
 * each reading its whole document (and parsing it when it holds a checksum:
 * ~27 ms for a 10 000-part object). 64 bounds that waste at 63 rows per
 * prefix met, while a page of 1000 listed keys still takes ~20 statements
 * (review of listing round 5: 300 prefixed multipart objects cost 26-34 ms
 * per page with batches up to 1001, 1.9-2.9 ms before the round).
 */
const DELIMITER_BATCH_ROWS_MAX = 64;

/**
 * A listed version as SQLite hands it over: an array (better-sqlite3's raw
 * mode), not an object with named fields, and only the columns a listing
 * shows; the last one is the checksum's JSON, or with metadata the JSON
 * array of checksum, system, user metadata, tags and ACL. Building an
 * object per row with eleven named columns was half of a 1000-key page's
 * time in the store.
 */
export type ListedRow = [
  key: string,
  versionId: string,
  isLatest: number,
  isDeleteMarker: number,
  sizeBytes: number,
  etag: string,
  lastModifiedMs: number,
  ownerId: string,
  document: string | null,
];

const LISTED_COLUMNS = 'key, version_id, is_latest, is_delete_marker, size_bytes, etag, last_modified_ms, owner_id';

/**
 * A listing with metadata (`withMetadata`) reads the checksum and four more
 * fields (system, user metadata, tags, ACL) out of the version's JSON
 * document in one json_extract: several paths parse the document once and
 * hand back one small JSON array, so the cost is one parse in SQLite and one
 * JSON.parse here per row, and the segments and parts never leave SQLite.
 */
function columnsFor(withMetadata: boolean | undefined, guarded: boolean): string {
  return withMetadata === true
    ? `${LISTED_COLUMNS}, ${guardedDocument(`json_extract(meta, '$.checksum', '$.system', '$.userMetadata', '$.tags', '$.acl')`, guarded)}`
    : `${LISTED_COLUMNS}, ${guardedDocument(`json_extract(meta, '$.checksum')`, guarded)}`;
}

/**
 * A listing tried on the event loop (a finite stepsMax) never parses a large
 * version document there: SQLite parses the whole JSON document to extract
 * the checksum, ~27 ms for a 10 000-part object's ~1 MB (measured), and a
 * walk counts rows, not bytes. Its statements answer OVERSIZED_DOCUMENT
 * instead for a document longer than this (octet_length: no parse), and
 * the walk gives up: a thread lists it. Small
 * objects' documents are a few hundred bytes (user metadata, up to 2 KiB,
 * makes some longer: those list on the thread too).
 */
const EVENT_LOOP_DOCUMENT_BYTES_MAX = 1024;
const OVERSIZED_DOCUMENT = -1;

function listedRowOversized(row: ListedRow): boolean {
  return (row[8] as unknown) === OVERSIZED_DOCUMENT;
}

function guardedDocument(expression: string, guarded: boolean): string {
  return guarded ? `CASE WHEN octet_length(meta) > ${EVENT_LOOP_DOCUMENT_BYTES_MAX} THEN ${OVERSIZED_DOCUMENT} ELSE ${expression} END` : expression;
}

function listedVersionOf(bucket: string, row: ListedRow, withMetadata: boolean | undefined): ListedVersion {
  const document = row[8];
  if (withMetadata !== true) {
    return {
      bucket,
      key: row[0],
      versionId: row[1],
      isDeleteMarker: row[3] === 1,
      lastModifiedMs: row[6],
      sizeBytes: row[4],
      etag: row[5],
      ownerId: row[7],
      checksum: document === null ? null : (JSON.parse(document) as ObjectChecksum),
    };
  }
  const [checksum, system, userMetadata, tags, acl] = JSON.parse(document ?? '[]') as [
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
    bucket,
    key: row[0],
    versionId: row[1],
    isDeleteMarker: row[3] === 1,
    lastModifiedMs: row[6],
    sizeBytes: row[4],
    etag: row[5],
    ownerId: row[7],
    checksum: checksum ?? null,
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

/** The first key at or after `key` in the same source (a key-only seek on a covering index), or undefined. */
type SeekKey = (key: string) => string | undefined;

interface WalkOptions<Row, Entry> {
  prefix: string;
  delimiter: string;
  /** Where to start, before prefix clamping. */
  start: Cursor;
  /** Rows to emit before starting at `start` (the rest of a key the previous page stopped inside). */
  leading: Row[];
  limit: number;
  fetch: FetchRows<Row>;
  seek: SeekKey;
  keyOf(row: Row): string;
  entryOf(row: Row): Entry;
  prefixEntry(prefix: string): Entry;
  /**
   * Rows read and seeks made (leading rows included) after which the walk
   * gives up and answers undefined: a listing tried on the event loop
   * (LISTING_ON_EVENT_LOOP_STEPS_MAX). Infinity: never.
   */
  stepsMax: number;
  /**
   * Whether more than `rows` rows of this source lie under the prefix from
   * the key `from` on (key-only, on a covering index): lets a walk whose
   * steps are its rows give up before it reads them.
   */
  holdsMoreThan(from: string, rows: number): boolean;
  /** Where the page's entries go as they are found (rendered at once); absent: the walk returns them. */
  sink?: (entry: Entry) => void;
  /**
   * Rows one statement reads at most: `first`, doubled after each batch read
   * through without meeting a common prefix, up to `max`, and `first` again
   * after one (whose batch's remaining rows were read for nothing). Default:
   * BATCH_ROWS_MAX throughout. (Rendered pages' rows are packed strings, ~100
   * bytes each: a whole page's batch costs the listing thread's small young
   * generation little, where arrays of columns made it read 128 at a time.)
   */
  batchRows?: { first: number; max: number };
  /** A row the walk must not take (a guarded statement's OVERSIZED_DOCUMENT): it gives up, as when out of steps. */
  oversized?: (row: Row) => boolean;
}

/**
 * The entries a walk found: up to `limit` are kept (or handed to the sink),
 * and one more is counted, never kept: it only says the page is truncated.
 */
class PageEntries<Entry> {
  readonly kept: Entry[] = [];
  count = 0;
  readonly #limit: number;
  readonly #sink: ((entry: Entry) => void) | undefined;

  constructor(limit: number, sink: ((entry: Entry) => void) | undefined) {
    this.#limit = limit;
    this.#sink = sink;
  }

  push(entry: Entry): void {
    if (++this.count > this.#limit) return;
    if (this.#sink === undefined) this.kept.push(entry);
    else this.#sink(entry);
  }
}

/** The steps a walk took so far, and how many it may take. */
interface Steps {
  taken: number;
  readonly max: number;
}

/** Returns up to limit entries, plus whether more exist; undefined when it would take more than stepsMax steps. */
function walk<Row, Entry>(options: WalkOptions<Row, Entry>): { entries: Entry[]; isTruncated: boolean } | undefined {
  const { prefix, delimiter, limit } = options;
  const steps: Steps = { taken: options.leading.length, max: options.stepsMax };
  if (steps.taken > steps.max || (options.oversized !== undefined && options.leading.some(options.oversized))) return undefined;
  const entries = new PageEntries<Entry>(limit, options.sink);
  for (const row of options.leading) {
    if (entries.count > limit) break;
    entries.push(options.entryOf(row));
  }
  let cursor: Cursor | undefined = clampToPrefix(options.start, prefix, delimiter);
  // Without a delimiter every row read is an entry, and such a walk takes
  // min(rows needed, rows there + 1) steps (+1: the row past the prefix that
  // shows it ended): one that would take more steps than are left is known
  // before any row is read. (The count includes the cursor's own key,
  // inclusive or not: one row too many at most, only ever towards giving up.)
  const rowsNeeded = limit + 1 - entries.count;
  const stepsLeft = steps.max - steps.taken;
  if (delimiter === '' && cursor !== undefined && rowsNeeded > stepsLeft && stepsLeft >= 1 && options.holdsMoreThan(cursor.key, stepsLeft - 1)) return undefined;
  // A delimiter listing whose first row is a key listed itself is most
  // likely made of such rows: it gives up at once when more keys lie ahead
  // than steps are left, rather than after reading them. (Common prefixes
  // further on could have kept it small: then a thread lists it, for the
  // cost of the hand-off.)
  let checkFirstRow = delimiter !== '' && steps.max !== Infinity;
  const successorOf = commonPrefixSuccessor(delimiter);
  let batchRowsNext = options.batchRows?.first ?? BATCH_ROWS_MAX;
  while (cursor !== undefined && entries.count <= limit) {
    // Never more rows in one batch than the steps left (+1, to know it ran out): a whole-batch read stays within them too.
    const batchRows = Math.min(batchRowsNext, limit + 2 - entries.count, steps.max - steps.taken + 1);
    let next: Cursor | undefined;
    let rowsSeen = 0;
    let done = false;
    let common: string | undefined;
    for (const row of options.fetch(cursor, batchRows)) {
      // Returning ends the iteration: the statement is reset, the read transaction ends with the walk.
      if (++steps.taken > steps.max || options.oversized?.(row) === true) return undefined;
      rowsSeen++;
      const key = options.keyOf(row);
      if (!key.startsWith(prefix)) {
        done = true;
        break;
      }
      common = commonPrefixOf(key, prefix, delimiter);
      if (checkFirstRow) {
        checkFirstRow = false;
        if (common === undefined && options.holdsMoreThan(key, steps.max - steps.taken)) return undefined;
      }
      if (common !== undefined) break;
      entries.push(options.entryOf(row));
      if (entries.count > limit) break;
      next = { key, inclusive: false };
    }
    if (options.batchRows !== undefined) batchRowsNext = common === undefined ? Math.min(batchRowsNext * 2, options.batchRows.max) : options.batchRows.first;
    if (common !== undefined) {
      // A common prefix: emit it and every one right after it from key-only
      // seeks, and go back to reading rows at the first key that is listed itself.
      const skipped = skipCommonPrefixes(options, entries, common, successorOf, steps);
      if (skipped === OUT_OF_STEPS) return undefined;
      next = skipped;
      done = next === undefined;
    }
    if (done || entries.count > limit || next === undefined) break;
    if (!next.inclusive && rowsSeen < batchRows) break;
    cursor = next;
  }
  return { entries: entries.kept, isTruncated: entries.count > limit };
}

const OUT_OF_STEPS = Symbol('out of steps');

/**
 * Emits `common` and the common prefixes that follow it, one key-only seek
 * each; returns the cursor at the next key that is not under a common prefix,
 * or undefined when the prefix's keys are exhausted (or the page is full);
 * OUT_OF_STEPS when the walk's steps ran out.
 */
function skipCommonPrefixes<Row, Entry>(
  options: WalkOptions<Row, Entry>,
  entries: PageEntries<Entry>,
  first: string,
  successorOf: (common: string) => string | undefined,
  steps: Steps,
): Cursor | undefined | typeof OUT_OF_STEPS {
  const { prefix, delimiter, limit } = options;
  let common: string | undefined = first;
  while (common !== undefined) {
    entries.push(options.prefixEntry(common));
    if (entries.count > limit) return undefined;
    const after = successorOf(common);
    if (after === undefined) return undefined;
    if (++steps.taken > steps.max) return OUT_OF_STEPS;
    const key = options.seek(after);
    if (key === undefined || !key.startsWith(prefix)) return undefined;
    common = commonPrefixOf(key, prefix, delimiter);
    if (common === undefined) return { key, inclusive: true };
  }
  return undefined;
}

/**
 * prefixSuccessor of the common prefixes of one walk, which all end with the
 * delimiter: the prefix without the delimiter's last code point, then that
 * code point's successor, computed once per walk (prefixSuccessor splits
 * each prefix into code points: a fifth of a seek's cost, ~0.2 µs). A
 * delimiter ending with U+10FFFF, which has no successor, takes
 * prefixSuccessor itself.
 */
export function commonPrefixSuccessor(delimiter: string): (common: string) => string | undefined {
  if (delimiter === '') return prefixSuccessor;
  const lastUnit = delimiter.charCodeAt(delimiter.length - 1);
  const units = delimiter.length >= 2 && lastUnit >= 0xdc00 && lastUnit <= 0xdfff && isHighSurrogate(delimiter.charCodeAt(delimiter.length - 2)) ? 2 : 1;
  const last = delimiter.codePointAt(delimiter.length - units)!;
  if (last === 0x10ffff) return prefixSuccessor;
  // As prefixSuccessor: the surrogate range cannot appear in valid UTF-8.
  const next = String.fromCodePoint(last === 0xd7ff ? 0xe000 : last + 1);
  return (common) => {
    assert(common.endsWith(delimiter), 'a common prefix ends with its delimiter');
    return common.slice(0, common.length - units) + next;
  };
}

function isHighSurrogate(unit: number): boolean {
  return unit >= 0xd800 && unit <= 0xdbff;
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

/**
 * The listing statements of one connection, prepared once: compiling one
 * costs ~20 µs, more than a whole small listing's seeks.
 */
interface ListingStatements {
  readonly keysAfter: Database.Statement;
  readonly keysFrom: Database.Statement;
  readonly visibleKeyFrom: Database.Statement;
  readonly versionsAfter: Database.Statement;
  readonly versionsFrom: Database.Statement;
  readonly versionKeyFrom: Database.Statement;
  readonly versionMarker: Database.Statement;
  readonly versionsLeading: Database.Statement;
  readonly uploadsAfter: Database.Statement;
  readonly uploadsFrom: Database.Statement;
  readonly uploadKeyFrom: Database.Statement;
  readonly uploadMarker: Database.Statement;
  readonly uploadsLeading: Database.Statement;
  /** A row beyond the first N (OFFSET N) under an upper bound, or with none: see WalkOptions.holdsMoreThan. */
  readonly visibleKeysBeyond: Database.Statement;
  readonly visibleKeysBeyondUnbounded: Database.Statement;
  readonly versionKeysBeyond: Database.Statement;
  readonly versionKeysBeyondUnbounded: Database.Statement;
  readonly begin: Database.Statement;
  readonly commit: Database.Statement;
}

/** Per connection, for plain listings and for listings with metadata, each also guarded (see guardedDocument). */
const statementCache = new WeakMap<Database.Database, Map<string, ListingStatements>>();

function statementsFor(db: Database.Database, withMetadata: boolean | undefined, guarded = false): ListingStatements {
  let cached = statementCache.get(db);
  if (cached === undefined) {
    cached = new Map();
    statementCache.set(db, cached);
  }
  const kind = `${withMetadata === true ? 'withMetadata' : 'plain'}${guarded ? ', guarded' : ''}`;
  let statements = cached.get(kind);
  if (statements === undefined) {
    statements = prepareListingStatements(db, columnsFor(withMetadata, guarded));
    cached.set(kind, statements);
  }
  return statements;
}

function prepareListingStatements(db: Database.Database, columns: string): ListingStatements {
  const visible = 'bucket = ? AND is_latest = 1 AND is_delete_marker = 0';
  return {
    keysAfter: db.prepare(`SELECT ${columns} FROM versions WHERE ${visible} AND key > ? ORDER BY key LIMIT ?`).raw(true),
    keysFrom: db.prepare(`SELECT ${columns} FROM versions WHERE ${visible} AND key >= ? ORDER BY key LIMIT ?`).raw(true),
    // Only columns of the partial index versions_visible: SQLite never reads the table.
    visibleKeyFrom: db.prepare(`SELECT key FROM versions WHERE ${visible} AND key >= ? ORDER BY key LIMIT 1`).pluck(),
    versionsAfter: db.prepare(`SELECT ${columns} FROM versions WHERE bucket = ? AND key > ? ORDER BY key, seq DESC LIMIT ?`).raw(true),
    versionsFrom: db.prepare(`SELECT ${columns} FROM versions WHERE bucket = ? AND key >= ? ORDER BY key, seq DESC LIMIT ?`).raw(true),
    versionKeyFrom: db.prepare('SELECT key FROM versions WHERE bucket = ? AND key >= ? ORDER BY key LIMIT 1').pluck(),
    versionMarker: db.prepare('SELECT seq FROM versions WHERE bucket = ? AND key = ? AND version_id = ?'),
    versionsLeading: db.prepare(`SELECT ${columns} FROM versions WHERE bucket = ? AND key = ? AND seq < ? ORDER BY seq DESC LIMIT ?`).raw(true),
    uploadsAfter: db.prepare('SELECT * FROM uploads WHERE bucket = ? AND key > ? ORDER BY key, created_ms, upload_id LIMIT ?'),
    uploadsFrom: db.prepare('SELECT * FROM uploads WHERE bucket = ? AND key >= ? ORDER BY key, created_ms, upload_id LIMIT ?'),
    uploadKeyFrom: db.prepare('SELECT key FROM uploads WHERE bucket = ? AND key >= ? ORDER BY key LIMIT 1').pluck(),
    uploadMarker: db.prepare('SELECT created_ms, upload_id FROM uploads WHERE bucket = ? AND key = ? AND upload_id = ?'),
    uploadsLeading: db.prepare(
      'SELECT * FROM uploads WHERE bucket = ? AND key = ? AND (created_ms > ? OR (created_ms = ? AND upload_id > ?)) ORDER BY created_ms, upload_id LIMIT ?',
    ),
    // Key-only: they step through the covering index (versions_visible, versions_by_key) without reading rows.
    visibleKeysBeyond: db.prepare(`SELECT 1 FROM versions WHERE ${visible} AND key >= ? AND key < ? ORDER BY key LIMIT 1 OFFSET ?`).pluck(),
    visibleKeysBeyondUnbounded: db.prepare(`SELECT 1 FROM versions WHERE ${visible} AND key >= ? ORDER BY key LIMIT 1 OFFSET ?`).pluck(),
    versionKeysBeyond: db.prepare('SELECT 1 FROM versions WHERE bucket = ? AND key >= ? AND key < ? ORDER BY key, seq DESC LIMIT 1 OFFSET ?').pluck(),
    versionKeysBeyondUnbounded: db.prepare('SELECT 1 FROM versions WHERE bucket = ? AND key >= ? ORDER BY key, seq DESC LIMIT 1 OFFSET ?').pluck(),
    begin: db.prepare('BEGIN'),
    commit: db.prepare('COMMIT'),
  };
}

/**
 * Runs `read` in one read transaction (deferred: it takes no write lock).
 * Inside a transaction already (never on the listing paths), it just runs.
 */
function inReadTransaction<T>(db: Database.Database, s: ListingStatements, read: () => T): T {
  if (db.inTransaction) return read();
  s.begin.run();
  try {
    return read();
  } finally {
    if (db.inTransaction) s.commit.run();
  }
}

/**
 * A page as the walk finds it: each entry a listed row as SQLite gave it or a
 * common prefix (a string). This is what a listing thread posts back: arrays
 * of strings and numbers cost about a quarter of the structured clone that
 * the finished entries (objects with named fields) cost, on both sides, and
 * the event loop builds the entries from them in less time than it took to
 * receive the objects.
 */
export interface ListingPage {
  entries: (ListedRow | string)[];
  isTruncated: boolean;
}

/** holdsMoreThan over the visible keys (ListObjects) or all versions (ListObjectVersions) under the prefix. */
function holdsMoreThan(s: ListingStatements, kind: 'keys' | 'versions', bucket: string, prefix: string): (from: string, rows: number) => boolean {
  const below = prefix === '' ? undefined : prefixSuccessor(prefix);
  const [bounded, unbounded] = kind === 'keys' ? [s.visibleKeysBeyond, s.visibleKeysBeyondUnbounded] : [s.versionKeysBeyond, s.versionKeysBeyondUnbounded];
  return (from, rows) => (below === undefined ? unbounded.get(bucket, from, rows) : bounded.get(bucket, from, below, rows)) !== undefined;
}

export function listKeysPage(db: Database.Database, request: ListRequest): ListingPage {
  const page = listKeysPageWithin(db, request, Infinity);
  assert(page !== undefined, 'a walk without a step limit always ends');
  return page;
}

/** listKeysPage, or undefined once it would take more than `stepsMax` rows and seeks (see WalkOptions.stepsMax). */
export function listKeysPageWithin(db: Database.Database, request: ListRequest, stepsMax: number): ListingPage | undefined {
  const s = statementsFor(db, request.withMetadata, stepsMax !== Infinity);
  return inReadTransaction(db, s, () =>
    walk<ListedRow, ListedRow | string>({
      prefix: request.prefix,
      delimiter: request.delimiter,
      start: { key: request.after, inclusive: request.after === '' },
      leading: [],
      limit: request.limit,
      fetch: (cursor, limit) => (cursor.inclusive ? s.keysFrom : s.keysAfter).iterate(request.bucket, cursor.key, limit) as Iterable<ListedRow>,
      seek: (key) => s.visibleKeyFrom.get(request.bucket, key) as string | undefined,
      keyOf: (row) => row[0],
      entryOf: (row) => row,
      prefixEntry: (key) => key,
      stepsMax,
      holdsMoreThan: holdsMoreThan(s, 'keys', request.bucket, request.prefix),
      oversized: listedRowOversized,
    }),
  );
}

export function keysResult(request: ListRequest, page: ListingPage): ListResult {
  return {
    entries: page.entries.map((entry) => (typeof entry === 'string' ? { key: entry } : { key: entry[0], version: listedVersionOf(request.bucket, entry, request.withMetadata) })),
    isTruncated: page.isTruncated,
  };
}

/**
 * A key listing to be rendered (listing-thread.ts): only the columns a
 * ListObjects entry shows, the owner only when the page shows owners, as
 * [key, size, etag, last-modified, checksum, owner?]: the shape of a packed
 * row's fallback (PACKED_FALLBACK).
 */
type ShownRow = [key: string, sizeBytes: number, etag: string, lastModifiedMs: number, checksum: string | null, ownerId?: string];

/**
 * The checksum's algorithm and type, space-separated, or NULL without one: a
 * listing shows only these two, and splitting them costs a fraction of a
 * JSON.parse of the whole checksum per row (~1 µs, 1 ms a page).
 */
const SHOWN_CHECKSUM = "(meta ->> '$.checksum.algorithm') || ' ' || (meta ->> '$.checksum.type')";

/**
 * SHOWN_CHECKSUM, '' without one, for a packed row. A document in which no
 * "checksum" key holds an object has no checksum to show: documents are
 * JSON.stringify's text (rows.ts versionMeta: no whitespace, so an object
 * value is written `"checksum":{`), and instr() finds that out without
 * SQLite parsing the document (~70 µs of a 1000-key page of objects without
 * checksums). Any other document, a part's checksum included, is parsed as
 * before.
 */
const PACKED_CHECKSUM = `CASE WHEN instr(meta, '"checksum":{') = 0 THEN '' ELSE ifnull(${SHOWN_CHECKSUM}, '') END`;

/**
 * A rendered key listing reads each row as one string that SQLite builds,
 * `size,last-modified,checksum,etag,[owner,]key`, with pluck(), not as an
 * array of five or six values: better-sqlite3 spends ~0.1 µs per value and
 * per row array, and SQLite's own concatenation a fraction of that (the SQL
 * of a page of 1000 rows: ~880 → ~530 µs, docs/PERFORMANCE.md "Listing,
 * round 5"). The key comes last, so it may hold any character;
 * size and last-modified are integers, the checksum's algorithm and type
 * names without commas. An ETag or owner that holds a comma (Talus writes
 * neither: hex ETags, canonical IDs) comes as PACKED_FALLBACK instead: a JSON
 * array, ShownRow, which begins with '[' where a packed row begins with a digit.
 */
function packedShownColumn(owners: boolean): string {
  const packed = `size_bytes || ',' || last_modified_ms || ',' || ${PACKED_CHECKSUM} || ',' || etag || ','${owners ? " || owner_id || ','" : ''} || key`;
  const plain = owners ? "instr(etag, ',') = 0 AND instr(owner_id, ',') = 0" : "instr(etag, ',') = 0";
  return `CASE WHEN ${plain} THEN ${packed} ELSE json_array(key, size_bytes, etag, last_modified_ms, ${SHOWN_CHECKSUM}${owners ? ', owner_id' : ''}) END`;
}

const PACKED_FALLBACK = 0x5b; // '['

function shownChecksumOf(text: string | null): ListedContents['checksum'] {
  if (text === null || text === '') return null;
  const space = text.indexOf(' ');
  return { algorithm: text.slice(0, space) as ChecksumAlgorithm, type: text.slice(space + 1) as ChecksumType };
}

/** A packed row (packedShownColumn) as the entry it lists. */
function shownEntryOfPacked(packed: string, owners: boolean): ShownEntry {
  if (packed.charCodeAt(0) === PACKED_FALLBACK) return shownEntryOf(JSON.parse(packed) as ShownRow);
  const sizeEnd = packed.indexOf(',');
  const modifiedEnd = packed.indexOf(',', sizeEnd + 1);
  const checksumEnd = packed.indexOf(',', modifiedEnd + 1);
  const etagEnd = packed.indexOf(',', checksumEnd + 1);
  const ownerEnd = owners ? packed.indexOf(',', etagEnd + 1) : etagEnd;
  assert(sizeEnd > 0 && modifiedEnd > sizeEnd && checksumEnd > modifiedEnd && etagEnd > checksumEnd && ownerEnd >= etagEnd, 'a packed listing row has its fields');
  const key = packed.slice(ownerEnd + 1);
  const version: ListedContents = {
    key,
    sizeBytes: Number(packed.slice(0, sizeEnd)),
    etag: packed.slice(checksumEnd + 1, etagEnd),
    lastModifiedMs: Number(packed.slice(sizeEnd + 1, modifiedEnd)),
    checksum: checksumEnd === modifiedEnd + 1 ? null : shownChecksumOf(packed.slice(modifiedEnd + 1, checksumEnd)),
    ownerId: owners ? packed.slice(etagEnd + 1, ownerEnd) : '',
  };
  return { key, version };
}

interface ShownStatements {
  readonly after: Database.Statement;
  readonly from: Database.Statement;
  /** As after/from, below an upper bound (the prefix's successor): read whole with all(), never past the prefix. */
  readonly afterBelow: Database.Statement;
  readonly fromBelow: Database.Statement;
}

const shownStatementCache = new WeakMap<Database.Database, Map<string, ShownStatements>>();

function shownStatementsFor(db: Database.Database, owners: boolean, guarded: boolean): ShownStatements {
  let cached = shownStatementCache.get(db);
  if (cached === undefined) {
    cached = new Map();
    shownStatementCache.set(db, cached);
  }
  const kind = `${owners ? 'withOwners' : 'plain'}${guarded ? ', guarded' : ''}`;
  const found = cached.get(kind);
  if (found !== undefined) return found;
  const column = guardedDocument(packedShownColumn(owners), guarded);
  const visible = 'bucket = ? AND is_latest = 1 AND is_delete_marker = 0';
  const prepare = (): ShownStatements => ({
    after: db.prepare(`SELECT ${column} FROM versions WHERE ${visible} AND key > ? ORDER BY key LIMIT ?`).pluck(),
    from: db.prepare(`SELECT ${column} FROM versions WHERE ${visible} AND key >= ? ORDER BY key LIMIT ?`).pluck(),
    afterBelow: db.prepare(`SELECT ${column} FROM versions WHERE ${visible} AND key > ? AND key < ? ORDER BY key LIMIT ?`).pluck(),
    fromBelow: db.prepare(`SELECT ${column} FROM versions WHERE ${visible} AND key >= ? AND key < ? ORDER BY key LIMIT ?`).pluck(),
  });
  const statements = prepare();
  cached.set(kind, statements);
  return statements;
}

/**
 * A key listing to be rendered, each entry handed to `add` as it is read (a
 * page rendered as it is read: KeysPageRenderer); whether the page is
 * truncated, or undefined once it would take more than `stepsMax` rows and
 * seeks (see WalkOptions.stepsMax: then what `add` got is to be thrown away).
 */
export function listShownKeysInto(db: Database.Database, request: ListRequest, owners: boolean, stepsMax: number, add: (entry: ShownEntry) => void): { isTruncated: boolean } | undefined {
  assert(request.withMetadata !== true, 'a listing with metadata is not rendered where it is read');
  const page = walkShownKeys(db, request, owners, stepsMax, add);
  return page === undefined ? undefined : { isTruncated: page.isTruncated };
}

type ShownEntry = ListedContentsResult['entries'][number];

function shownEntryOf(row: ShownRow): ShownEntry {
  const version: ListedContents = { key: row[0], sizeBytes: row[1], etag: row[2], lastModifiedMs: row[3], checksum: shownChecksumOf(row[4]), ownerId: row[5] ?? '' };
  return { key: row[0], version };
}

/**
 * Packed rows (or OVERSIZED_DOCUMENT) as entries, each parsed once: the walk
 * asks for a row's key, then for its entry. A batch's rows stay strings
 * until then (~100 bytes each), so a whole page's batch costs the thread's
 * small young generation little, and an entry lives only until it is rendered.
 */
class PackedRows {
  #row: string | number | undefined;
  #entry: ShownEntry | undefined;
  readonly #owners: boolean;

  constructor(owners: boolean) {
    this.#owners = owners;
  }

  entryOf(row: string | number): ShownEntry {
    if (row !== this.#row) {
      this.#row = row;
      this.#entry = shownEntryOfPacked(row as string, this.#owners);
    }
    return this.#entry!;
  }
}

function walkShownKeys(db: Database.Database, request: ListRequest, owners: boolean, stepsMax: number, sink: (entry: ShownEntry) => void): ListedContentsResult | undefined {
  const s = statementsFor(db, false);
  const shown = shownStatementsFor(db, owners, stepsMax !== Infinity);
  // Batches are read whole (all() costs ~0.3 ms less per 1000 rows than
  // stepping an iterator), bounded by the prefix's successor so they never
  // read keys past it. Without a delimiter nothing ends a batch early but the
  // prefix's end: one batch holds the page. With one, a common prefix ends a
  // batch and the rest of it was read for nothing, so batches start small and
  // grow while none is met (a 1000-key page in 8 statements, ~0.2 ms less
  // than stepping an iterator; a run of common prefixes reads one batch of
  // DELIMITER_BATCH_ROWS_FIRST before its key-only seeks).
  const below = request.prefix === '' ? undefined : prefixSuccessor(request.prefix);
  const fetch: FetchRows<string | number> = (cursor, limit) => {
    if (below === undefined) return (cursor.inclusive ? shown.from : shown.after).all(request.bucket, cursor.key, limit) as (string | number)[];
    return (cursor.inclusive ? shown.fromBelow : shown.afterBelow).all(request.bucket, cursor.key, below, limit) as (string | number)[];
  };
  const rows = new PackedRows(owners);
  return inReadTransaction(db, s, () =>
    walk<string | number, ShownEntry>({
      prefix: request.prefix,
      delimiter: request.delimiter,
      start: { key: request.after, inclusive: request.after === '' },
      leading: [],
      limit: request.limit,
      fetch,
      seek: (key) => s.visibleKeyFrom.get(request.bucket, key) as string | undefined,
      keyOf: (row) => rows.entryOf(row).key,
      entryOf: (row) => rows.entryOf(row),
      prefixEntry: (key) => ({ key }),
      stepsMax,
      holdsMoreThan: holdsMoreThan(s, 'keys', request.bucket, request.prefix),
      oversized: (row) => row === OVERSIZED_DOCUMENT,
      sink,
      batchRows: request.delimiter === '' ? undefined : { first: DELIMITER_BATCH_ROWS_FIRST, max: DELIMITER_BATCH_ROWS_MAX },
    }),
  );
}

export function listKeys(db: Database.Database, request: ListRequest): ListResult {
  return keysResult(request, listKeysPage(db, request));
}

export function listVersionsPage(db: Database.Database, request: ListVersionsRequest): ListingPage {
  const page = listVersionsPageWithin(db, request, Infinity);
  assert(page !== undefined, 'a walk without a step limit always ends');
  return page;
}

/** listVersionsPage, or undefined once it would take more than `stepsMax` rows and seeks (see WalkOptions.stepsMax). */
export function listVersionsPageWithin(db: Database.Database, request: ListVersionsRequest, stepsMax: number): ListingPage | undefined {
  const s = statementsFor(db, request.withMetadata, stepsMax !== Infinity);
  return inReadTransaction(db, s, () => {
    let leading: ListedRow[] = [];
    const start: Cursor = { key: request.keyMarker, inclusive: request.keyMarker === '' };
    if (request.keyMarker !== '' && request.versionIdMarker !== '') {
      const marker = s.versionMarker.get(request.bucket, request.keyMarker, request.versionIdMarker) as { seq: number } | undefined;
      // Never more than the steps allow (+1, to know they would not do).
      if (marker !== undefined) leading = s.versionsLeading.all(request.bucket, request.keyMarker, marker.seq, Math.min(request.limit + 1, stepsMax + 1)) as ListedRow[];
    }
    return walk<ListedRow, ListedRow | string>({
      prefix: request.prefix,
      delimiter: request.delimiter,
      start,
      leading,
      limit: request.limit,
      fetch: (cursor, limit) => (cursor.inclusive ? s.versionsFrom : s.versionsAfter).iterate(request.bucket, cursor.key, limit) as Iterable<ListedRow>,
      seek: (key) => s.versionKeyFrom.get(request.bucket, key) as string | undefined,
      keyOf: (row) => row[0],
      entryOf: (row) => row,
      prefixEntry: (key) => key,
      stepsMax,
      holdsMoreThan: holdsMoreThan(s, 'versions', request.bucket, request.prefix),
      oversized: listedRowOversized,
    });
  });
}

export function versionsResult(request: ListVersionsRequest, page: ListingPage): ListVersionsResult {
  return {
    entries: page.entries.map((entry): VersionListEntry =>
      typeof entry === 'string'
        ? { key: entry, isLatest: false }
        : { key: entry[0], version: listedVersionOf(request.bucket, entry, request.withMetadata), isLatest: entry[2] === 1 },
    ),
    isTruncated: page.isTruncated,
  };
}

export function listVersions(db: Database.Database, request: ListVersionsRequest): ListVersionsResult {
  return versionsResult(request, listVersionsPage(db, request));
}

export function listUploads(db: Database.Database, request: ListUploadsRequest): ListUploadsResult {
  const s = statementsFor(db, false);
  return inReadTransaction(db, s, () => {
    let leading: UploadRow[] = [];
    if (request.keyMarker !== '' && request.uploadIdMarker !== '') {
      const marker = s.uploadMarker.get(request.bucket, request.keyMarker, request.uploadIdMarker) as { created_ms: number; upload_id: string } | undefined;
      if (marker !== undefined) {
        leading = s.uploadsLeading.all(request.bucket, request.keyMarker, marker.created_ms, marker.created_ms, marker.upload_id, request.limit + 1) as UploadRow[];
      }
    }
    const page = walk<UploadRow, { key: string; upload?: ReturnType<typeof rowToUpload> }>({
      prefix: request.prefix,
      delimiter: request.delimiter,
      start: { key: request.keyMarker, inclusive: request.keyMarker === '' },
      leading,
      limit: request.limit,
      fetch: (cursor, limit) => (cursor.inclusive ? s.uploadsFrom : s.uploadsAfter).iterate(request.bucket, cursor.key, limit) as Iterable<UploadRow>,
      seek: (key) => s.uploadKeyFrom.get(request.bucket, key) as string | undefined,
      keyOf: (row) => row.key,
      entryOf: (row) => ({ key: row.key, upload: rowToUpload(row) }),
      prefixEntry: (key) => ({ key }),
      stepsMax: Infinity,
      holdsMoreThan: () => true,
    });
    assert(page !== undefined, 'a walk without a step limit always ends');
    return page;
  });
}
