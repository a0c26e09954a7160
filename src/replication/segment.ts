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

/** A column value as SQLite returns it; blobs travel as base64. */
type CellValue = string | number | null | { readonly base64: string };
export type RowImage = Readonly<Record<string, CellValue>>;

export interface SegmentChange {
  readonly table: string;
  readonly key: readonly (string | number)[];
  /** The row at `to`; null: deleted. */
  readonly row: RowImage | null;
}

export interface Segment {
  readonly from: number;
  readonly to: number;
  readonly changes: readonly SegmentChange[];
  /** False when cut short: the database state after it is exact only once a later complete segment is applied. */
  readonly complete: boolean;
}

/** Bounds one segment, so cutting one holds the event loop for milliseconds, not seconds; more wait for the next. */
export const SEGMENT_CHANGES_MAX = 20_000;
export const SEGMENT_BYTES_MAX = 32 * 1024 * 1024;

function encodeCell(value: unknown): CellValue {
  if (value === null || typeof value === 'string' || typeof value === 'number') return value;
  if (Buffer.isBuffer(value)) return { base64: value.toString('base64') };
  if (typeof value === 'bigint') return Number(value);
  throw new Error(`cannot replicate a value of type ${typeof value}`);
}

function decodeCell(value: CellValue): string | number | null | Buffer {
  if (value === null || typeof value === 'string' || typeof value === 'number') return value;
  return Buffer.from(value.base64, 'base64');
}

/**
 * Cuts the segment after position `from` (undefined when nothing is logged
 * after it). Runs in one read transaction: the rows read are those of the
 * last position included.
 */
export function cutSegment(db: Database.Database, from: number): Segment | undefined {
  const tables = replicatedTables(db);
  const select = new Map<string, Database.Statement>();
  const selectRow = (table: string): Database.Statement => {
    let statement = select.get(table);
    if (statement === undefined) {
      const columns = tables.get(table);
      assert(columns !== undefined, `logged change of unknown table ${table}`);
      statement = db.prepare(`SELECT * FROM "${table}" WHERE ${columns.map((column) => `"${column}" = ?`).join(' AND ')}`);
      select.set(table, statement);
    }
    return statement;
  };
  return db.transaction((): Segment | undefined => {
    const logged = db.prepare(`SELECT seq, tbl, pk FROM ${CHANGES_TABLE} WHERE seq > ? ORDER BY seq LIMIT ?`).all(from, SEGMENT_CHANGES_MAX) as { seq: number; tbl: string; pk: string }[];
    if (logged.length === 0) return undefined;
    const last = db.prepare(`SELECT max(seq) FROM ${CHANGES_TABLE}`).pluck().get() as number;
    let to = from;
    let bytes = 0;
    const seen = new Set<string>();
    const changes: SegmentChange[] = [];
    for (const entry of logged) {
      if (bytes >= SEGMENT_BYTES_MAX) break;
      to = entry.seq;
      const id = `${entry.tbl}\u0000${entry.pk}`;
      if (seen.has(id)) continue;
      seen.add(id);
      const key = JSON.parse(entry.pk) as (string | number)[];
      const found = selectRow(entry.tbl).get(...key) as Record<string, unknown> | undefined;
      let row: RowImage | null = null;
      if (found !== undefined) {
        const image: Record<string, CellValue> = {};
        for (const [column, value] of Object.entries(found)) {
          image[column] = encodeCell(value);
          bytes += typeof value === 'string' || Buffer.isBuffer(value) ? value.length : 8;
        }
        row = image;
      }
      changes.push({ table: entry.tbl, key, row });
    }
    return { from, to, changes, complete: to === last };
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
  db.transaction(() => {
    for (const change of segment.changes) {
      if (change.row !== null) continue;
      const columns = tables.get(change.table);
      if (columns === undefined) throw new Error(`segment ${segment.from}-${segment.to} changes table ${change.table}, which the snapshot does not have`);
      db.prepare(`DELETE FROM "${change.table}" WHERE ${columns.map((column) => `"${column}" = ?`).join(' AND ')}`).run(...change.key);
    }
    for (const change of segment.changes) {
      if (change.row === null) continue;
      if (!tables.has(change.table)) throw new Error(`segment ${segment.from}-${segment.to} changes table ${change.table}, which the snapshot does not have`);
      const columns = Object.keys(change.row);
      db.prepare(`INSERT OR REPLACE INTO "${change.table}" (${columns.map((column) => `"${column}"`).join(', ')}) VALUES (${columns.map(() => '?').join(', ')})`).run(
        ...columns.map((column) => decodeCell(change.row![column]!)),
      );
    }
  })();
}

export function encodeSegment(segment: Segment): Buffer {
  return Buffer.from(JSON.stringify({ format: 1, from: segment.from, to: segment.to, complete: segment.complete, changes: segment.changes.map((change) => [change.table, change.key, change.row]) }));
}

export function decodeSegment(bytes: Buffer): Segment {
  const document = JSON.parse(bytes.toString('utf8')) as { format: number; from: number; to: number; complete: boolean; changes: [string, (string | number)[], RowImage | null][] };
  if (document.format !== 1) throw new Error(`segment format ${document.format} is not known to this Talus`);
  return { from: document.from, to: document.to, complete: document.complete === true, changes: document.changes.map(([table, key, row]) => ({ table, key, row })) };
}
