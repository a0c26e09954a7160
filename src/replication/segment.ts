/**
 * A segment: the committed changes of log positions (from, to], as the
 * final values of the rows they touched.
 *
 * Cutting one reads, inside one read transaction, the keys logged in
 * (from, to] and the current value of each of those rows (or its absence).
 * Applying it to a database at any position p with from <= p <= to gives
 * exactly the database at `to`: a row changed in (from, to] gets its value
 * at `to`; a row not changed there had the same value at p and at `to`. So
 * segments are idempotent and may overlap a snapshot's position, which is
 * what lets a snapshot be taken at any moment and a failed upload be
 * superseded by a longer segment. A row changed ten times in one interval is
 * shipped once.
 *
 * The rows are read at the reader's snapshot, which may be past `to` when
 * the segment was cut short (SEGMENT_CHANGES_MAX, SEGMENT_BYTES_MAX: a
 * backlog). Such a segment is marked partial: alone it may hold a row of a
 * transaction whose other rows it lacks, so a restore never ends on one; the
 * next complete segment after it makes the state exact again (a row the
 * partial one read too new was changed after `to`, so the next one has it).
 */
import type Database from 'better-sqlite3';
import { assert } from '../util/assert.ts';
import { CHANGES_TABLE, replicatedTables } from './change-capture.ts';

/** A column value as SQLite returns it. */
export type CellValue = string | number | null | Buffer;

export interface SegmentChange {
  readonly table: string;
  readonly key: readonly (string | number)[];
  /** The row at `to`, its values in the order of the segment's `columns` of its table; null: deleted. */
  readonly row: readonly CellValue[] | null;
}

export interface Segment {
  readonly from: number;
  readonly to: number;
  /** False when cut short: the database state after it is exact only once a later complete segment is applied. */
  readonly complete: boolean;
  /** Each table's column names, as its rows' values are ordered. */
  readonly columns: Readonly<Record<string, readonly string[]>>;
  readonly changes: readonly SegmentChange[];
}

/** Bounds one segment, so cutting one holds the event loop for milliseconds, not seconds; more wait for the next. */
export const SEGMENT_CHANGES_MAX = 20_000;
export const SEGMENT_BYTES_MAX = 32 * 1024 * 1024;

function checkCell(value: unknown): CellValue {
  if (value === null || typeof value === 'string' || typeof value === 'number' || Buffer.isBuffer(value)) return value;
  if (typeof value === 'bigint') return Number(value);
  throw new Error(`cannot replicate a value of type ${typeof value}`);
}

function whereKey(columns: readonly string[]): string {
  return columns.map((column) => `"${column}" = ?`).join(' AND ');
}

/**
 * Cuts the segment after position `from` (undefined when nothing is logged
 * after it). Runs in one read transaction: the rows read are those of the
 * last position visible to it.
 */
export function cutSegment(db: Database.Database, from: number): Segment | undefined {
  const tables = replicatedTables(db);
  const selects = new Map<string, Database.Statement>();
  const columns: Record<string, readonly string[]> = {};
  const selectRow = (table: string): Database.Statement => {
    let statement = selects.get(table);
    if (statement === undefined) {
      const key = tables.get(table);
      assert(key !== undefined, `logged change of unknown table ${table}`);
      statement = db.prepare(`SELECT * FROM "${table}" WHERE ${whereKey(key)}`).raw(true);
      columns[table] = statement.columns().map((column) => column.name);
      selects.set(table, statement);
    }
    return statement;
  };
  return db.transaction((): Segment | undefined => {
    const logged = db.prepare(`SELECT seq, tbl, pk FROM ${CHANGES_TABLE} WHERE seq > ? ORDER BY seq LIMIT ?`).raw(true).all(from, SEGMENT_CHANGES_MAX) as [number, string, string][];
    if (logged.length === 0) return undefined;
    const last = db.prepare(`SELECT max(seq) FROM ${CHANGES_TABLE}`).pluck().get() as number;
    let to = from;
    let bytes = 0;
    const seen = new Set<string>();
    const changes: SegmentChange[] = [];
    for (const [seq, table, pk] of logged) {
      if (bytes >= SEGMENT_BYTES_MAX) break;
      to = seq;
      const id = `${table}\u0000${pk}`;
      if (seen.has(id)) continue;
      seen.add(id);
      const key = JSON.parse(pk) as (string | number)[];
      const found = selectRow(table).get(...key) as unknown[] | undefined;
      let row: CellValue[] | null = null;
      if (found !== undefined) {
        row = found.map(checkCell);
        for (const value of row) bytes += typeof value === 'string' || Buffer.isBuffer(value) ? value.length : 8;
      }
      changes.push({ table, key, row });
    }
    return { from, to, complete: to === last, columns, changes };
  })();
}

/**
 * Applies a segment to a database at a position p, from <= p <= to, in one
 * transaction. Deletions first: a row that takes over another's unique key
 * must not collide with it. INSERT OR REPLACE also clears a row holding a
 * unique key that a later row of this segment gives up.
 */
export function applySegment(db: Database.Database, segment: Segment): void {
  const tables = replicatedTables(db);
  const deletes = new Map<string, Database.Statement>();
  const upserts = new Map<string, Database.Statement>();
  const known = (table: string): readonly string[] => {
    const key = tables.get(table);
    if (key === undefined) throw new Error(`segment ${segment.from}-${segment.to} changes table ${table}, which the snapshot does not have`);
    return key;
  };
  db.transaction(() => {
    for (const change of segment.changes) {
      if (change.row !== null) continue;
      let statement = deletes.get(change.table);
      if (statement === undefined) {
        statement = db.prepare(`DELETE FROM "${change.table}" WHERE ${whereKey(known(change.table))}`);
        deletes.set(change.table, statement);
      }
      statement.run(...change.key);
    }
    for (const change of segment.changes) {
      if (change.row === null) continue;
      let statement = upserts.get(change.table);
      if (statement === undefined) {
        known(change.table);
        const columns = segment.columns[change.table];
        if (columns === undefined) throw new Error(`segment ${segment.from}-${segment.to} lacks the columns of ${change.table}`);
        statement = db.prepare(`INSERT OR REPLACE INTO "${change.table}" (${columns.map((column) => `"${column}"`).join(', ')}) VALUES (${columns.map(() => '?').join(', ')})`);
        upserts.set(change.table, statement);
      }
      statement.run(...change.row);
    }
  })();
}

/**
 * The payload: a JSON document of the changes in which blob cells are
 * indices into the raw bytes that follow it (u32 JSON length | JSON |
 * per blob: u32 length | bytes). Inline object bytes stay raw: as base64
 * inside JSON they cost a third more to store and most of the shipping CPU.
 */
export function encodeSegment(segment: Segment): Buffer {
  const blobs: Buffer[] = [];
  const changes = segment.changes.map((change) => [
    change.table,
    change.key,
    change.row === null
      ? null
      : change.row.map((value) => {
          if (!Buffer.isBuffer(value)) return value;
          blobs.push(value);
          return { blob: blobs.length - 1 };
        }),
  ]);
  const json = Buffer.from(JSON.stringify({ format: 1, from: segment.from, to: segment.to, complete: segment.complete, columns: segment.columns, changes }));
  const parts: Buffer[] = [u32(json.length), json];
  for (const blob of blobs) parts.push(u32(blob.length), blob);
  return Buffer.concat(parts);
}

function u32(value: number): Buffer {
  const bytes = Buffer.alloc(4);
  bytes.writeUInt32BE(value);
  return bytes;
}

type EncodedCell = string | number | null | { blob: number };

export function decodeSegment(bytes: Buffer): Segment {
  const jsonBytes = bytes.readUInt32BE(0);
  const document = JSON.parse(bytes.subarray(4, 4 + jsonBytes).toString('utf8')) as {
    format: number;
    from: number;
    to: number;
    complete: boolean;
    columns: Record<string, string[]>;
    changes: [string, (string | number)[], EncodedCell[] | null][];
  };
  if (document.format !== 1) throw new Error(`segment format ${document.format} is not known to this Talus`);
  const blobs: Buffer[] = [];
  for (let at = 4 + jsonBytes; at < bytes.length; ) {
    const length = bytes.readUInt32BE(at);
    if (at + 4 + length > bytes.length) throw new Error(`segment ${document.from}-${document.to}: truncated`);
    blobs.push(bytes.subarray(at + 4, at + 4 + length));
    at += 4 + length;
  }
  const changes = document.changes.map(([table, key, row]): SegmentChange => ({
    table,
    key,
    row:
      row === null
        ? null
        : row.map((value) => {
            if (value === null || typeof value !== 'object') return value;
            const blob = blobs[value.blob];
            if (blob === undefined) throw new Error(`segment ${document.from}-${document.to}: blob ${value.blob} missing`);
            return blob;
          }),
  }));
  return { from: document.from, to: document.to, complete: document.complete === true, columns: document.columns, changes };
}
