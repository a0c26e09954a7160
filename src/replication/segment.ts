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
import { RING_BLOB_COLUMN, RING_KEY_COLUMN, RING_TABLE, type BodyRecord } from './inline-body-ring.ts';

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
export function cutSegment(db: Database.Database, from: number, changesMax = SEGMENT_CHANGES_MAX): Segment | undefined {
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
    const logged = db.prepare(`SELECT seq, tbl, pk FROM ${CHANGES_TABLE} WHERE seq > ? ORDER BY seq LIMIT ?`).raw(true).all(from, changesMax) as [number, string, string][];
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
 * A payload buffer kept from one cut to the next, for callers of
 * cutEncodedSegment that cut many (the cut benches): a fresh ~20 MB buffer
 * per segment costs its page faults and zeroing by the kernel, ~2.5 µs of
 * CPU per 4 KiB PUT against ~0.6 for copying into memory already mapped.
 * The cutter thread no longer writes payloads out (SegmentPayload): it
 * compresses them through a 4 MiB chunk, which keeps those page faults away
 * without ~21 MB resident. A payload cut with a scratch is valid until the
 * next cut with it, or until its memory is moved to another thread (then
 * the next cut allocates anew).
 */
export class PayloadScratch {
  #buffer: Buffer | undefined;

  /** `size` bytes, in the kept buffer when it fits and is not far too large (then it is replaced, so a burst's size is not kept for ever). */
  take(size: number): Buffer {
    let buffer = this.#buffer;
    // byteLength 0: its memory was transferred to another thread.
    const capacity = buffer === undefined ? 0 : buffer.buffer.byteLength;
    if (buffer === undefined || capacity < size || capacity > size * SCRATCH_SHRINK_RATIO) {
      buffer = Buffer.allocUnsafeSlow(Math.ceil(size * SCRATCH_HEADROOM));
      this.#buffer = buffer;
    }
    return buffer.subarray(0, size);
  }
}

/** Room a new scratch buffer leaves for the next segments, which grow with the PUT rate. */
const SCRATCH_HEADROOM = 1.25;
/** A kept buffer more than this many times what a cut needs is let go. */
const SCRATCH_SHRINK_RATIO = 4;

/** A segment already in encodeSegment's format: what the cutter thread ships. */
export interface EncodedSegment {
  readonly from: number;
  readonly to: number;
  readonly complete: boolean;
  readonly payload: Buffer;
  /** How it was cut (cutEncodedSegment): joined per table by SQLite, or row by row in log order (cutSegment). */
  readonly cut: 'joined' | 'in log order';
  /** Inline bodies shipped from the serving thread's records, not read back from SQLite (inline-body-ring.ts). */
  readonly bodiesFromRecords: number;
}

/**
 * A payload in encodeSegment's format not yet written out: its document and its blobs where they are (views
 * of the serving thread's ring, Buffers read from SQLite). The cutter thread compresses it through a small
 * chunk (replica-object.ts) instead of writing the whole payload into a buffer first: at a quiet run's rate
 * a segment is ~21 MB, which the cutter kept resident from one cut to the next (PayloadScratch) beside the
 * ring holding the same bodies. Valid as long as the blobs are (the ring's range until the cut answers).
 */
export class SegmentPayload {
  /** u32 length of the document, then the document. */
  readonly head: Buffer;
  readonly blobs: readonly Buffer[];
  readonly size: number;

  constructor(json: string, blobs: readonly Buffer[]) {
    const jsonBytes = Buffer.byteLength(json);
    const head = Buffer.allocUnsafe(4 + jsonBytes);
    head.writeUInt32BE(jsonBytes, 0);
    const written = head.write(json, 4);
    assert(written === jsonBytes, 'the document fills its bytes');
    let size = head.length;
    for (const blob of blobs) size += 4 + blob.length;
    this.head = head;
    this.blobs = blobs;
    this.size = size;
  }

  /** A payload already written out (the general way's, encodeSegment). */
  static of(bytes: Buffer): SegmentPayload {
    const payload = Object.create(SegmentPayload.prototype) as { head: Buffer; blobs: readonly Buffer[]; size: number };
    payload.head = bytes;
    payload.blobs = [];
    payload.size = bytes.length;
    return payload as SegmentPayload;
  }

  /** Reads the payload's bytes in order from `start`. */
  reader(start = 0): PayloadReader {
    return new PayloadReader(this, start);
  }

  /** The payload in one buffer: into `target` (exactly `size` bytes) or a new one of its own. */
  writeOut(target?: Buffer): Buffer {
    const out = target ?? Buffer.allocUnsafeSlow(this.size);
    assert(out.length === this.size, 'the payload fills its buffer');
    const written = this.reader().read(out);
    assert(written === this.size, 'the payload fills its buffer');
    return out;
  }
}

/**
 * The bytes of a SegmentPayload in order: u32 JSON length | JSON | per blob: u32 length | bytes. Pieces are
 * numbered: 0 the head, then 2j + 1 blob j's length and 2j + 2 its bytes.
 */
export class PayloadReader {
  readonly #payload: SegmentPayload;
  readonly #length = Buffer.alloc(4);
  #piece = 0;
  /** Bytes of the current piece already read. */
  #offset = 0;

  constructor(payload: SegmentPayload, start: number) {
    this.#payload = payload;
    this.#skip(start);
  }

  #pieceBytes(piece: number): Buffer {
    if (piece === 0) return this.#payload.head;
    const blob = this.#payload.blobs[(piece - 1) >> 1]!;
    if ((piece & 1) === 0) return blob;
    this.#length.writeUInt32BE(blob.length, 0);
    return this.#length;
  }

  #skip(bytes: number): void {
    const pieces = 1 + 2 * this.#payload.blobs.length;
    let left = bytes;
    while (left > 0 && this.#piece < pieces) {
      const length = this.#piece === 0 ? this.#payload.head.length : (this.#piece & 1) === 1 ? 4 : this.#payload.blobs[(this.#piece - 1) >> 1]!.length;
      if (left < length - this.#offset) {
        this.#offset += left;
        return;
      }
      left -= length - this.#offset;
      this.#piece++;
      this.#offset = 0;
    }
    assert(left === 0, 'a start within the payload');
  }

  /** Fills `out` with the next bytes (fewer at the end); returns how many. */
  read(out: Buffer): number {
    const pieces = 1 + 2 * this.#payload.blobs.length;
    let at = 0;
    while (at < out.length && this.#piece < pieces) {
      const bytes = this.#pieceBytes(this.#piece);
      const n = Math.min(bytes.length - this.#offset, out.length - at);
      // fill, not copy: a blob may be a view of the serving thread's shared ring (inline-body-ring.ts), which
      // copy() and set() read byte by byte (0.71 µs per 4 KiB, measured; fill is a memcpy: 0.23).
      if (n > 0) out.fill(n === bytes.length ? bytes : bytes.subarray(this.#offset, this.#offset + n), at, at + n);
      at += n;
      this.#offset += n;
      if (this.#offset === bytes.length) {
        this.#piece++;
        this.#offset = 0;
      }
    }
    return at;
  }
}

/** What cutting needs to know of one replicated table, and its statement (see cutEncodedSegment). */
interface TablePlan {
  readonly columns: readonly string[];
  /** Columns declared BLOB, in column order: their bytes follow the document. */
  readonly blobColumns: number;
  /**
   * [pk, the row as JSON text or null (deleted), then each BLOB column's value]. In the JSON, a BLOB
   * column's bytes are BLOB_PLACEHOLDER; a blob in a column not declared BLOB makes json_array fail.
   */
  readonly rows: Database.Statement;
  /**
   * For a table without BLOB columns: its changes in the range as the segment's JSON writes them, joined by
   * commas into one string by SQLite's group_concat (one value per table instead of a JS array and two strings
   * per row: ~2 µs of CPU per 4 KiB PUT on the cutter thread). Tables with blobs keep `rows`: numbering the
   * blobs in SQL (a window function, and a second pass for the bytes) was measured slower.
   */
  readonly joined: Database.Statement | undefined;
  /**
   * For the ring's table (inline_data, columns seq and data): [pk, the last change logged for the row in the
   * range], without touching the table; and [the row as JSON, its blob] by key, for rows whose bytes the ring
   * does not hold (inline-body-ring.ts).
   */
  readonly ringKeys: Database.Statement | undefined;
  readonly rowByKey: Database.Statement | undefined;
}

interface CutPlan {
  readonly bounds: Database.Statement;
  readonly tablesIn: Database.Statement;
  readonly tables: Map<string, TablePlan>;
  /**
   * How many changes the next joined cut may span: SEGMENT_CHANGES_MAX, or fewer after a range whose rows
   * passed SEGMENT_BYTES_MAX (a backlog, or a high rate of inline PUTs: ~4.6 KB per change at 4 KiB), so a
   * sustained backlog is cut the joined way in shorter ranges instead of failing each time and going the
   * general way at ~2-3 times the CPU. Grows back once ranges fit easily.
   */
  changesLimit: number;
}

/**
 * Stands for a blob cell in SQLite's JSON of a row, replaced by its
 * `{"blob":index}` in order. Never part of a string value: inside a JSON
 * string its quotes would be escaped.
 */
const BLOB_PLACEHOLDER = '{"blob":-1}';

/** Plans per connection (a table added since is planned on its first change). */
const plans = new WeakMap<Database.Database, CutPlan>();

function cutPlan(db: Database.Database): CutPlan {
  let plan = plans.get(db);
  if (plan === undefined) {
    plan = {
      // The segment's end: at most SEGMENT_CHANGES_MAX changes after `from`; and the last change there is.
      bounds: db.prepare(`SELECT (SELECT max(seq) FROM (SELECT seq FROM ${CHANGES_TABLE} WHERE seq > ? ORDER BY seq LIMIT ?)) AS "to", (SELECT max(seq) FROM ${CHANGES_TABLE}) AS "last"`),
      tablesIn: db.prepare(`SELECT DISTINCT tbl FROM ${CHANGES_TABLE} WHERE seq > ? AND seq <= ?`).pluck(),
      tables: new Map(),
      changesLimit: SEGMENT_CHANGES_MAX,
    };
    plans.set(db, plan);
  }
  return plan;
}

function tablePlan(db: Database.Database, plan: CutPlan, table: string): TablePlan {
  let planned = plan.tables.get(table);
  if (planned !== undefined) return planned;
  const key = replicatedTables(db).get(table);
  assert(key !== undefined, `logged change of unknown table ${table}`);
  const info = db.prepare('SELECT name, upper(type) AS type FROM pragma_table_info(?) ORDER BY cid').all(table) as { name: string; type: string }[];
  const quoted = (column: string): string => `t."${column.replaceAll('"', '""')}"`;
  const blobs = info.filter((column) => column.type === 'BLOB').map((column) => quoted(column.name));
  const cells = info.map((column) => (column.type === 'BLOB' ? `CASE WHEN typeof(${quoted(column.name)}) = 'blob' THEN json('${BLOB_PLACEHOLDER}') ELSE ${quoted(column.name)} END` : quoted(column.name)));
  // The logged keys of the range, each once, and the row each names now (LEFT JOIN: none when deleted). The
  // match is the one cutSegment's selectRow makes, `column = value` per key column, the key read from the log's JSON.
  const keys = `(SELECT DISTINCT pk FROM ${CHANGES_TABLE} WHERE seq > @from AND seq <= @to AND tbl = @table) AS c`;
  const match = key.map((column, index) => `${quoted(column)} = json_extract(c.pk, '$[${index}]')`).join(' AND ');
  const row = `CASE WHEN ${quoted(key[0]!)} IS NOT NULL THEN json_array(${cells.join(', ')}) END`;
  const source = `${keys} LEFT JOIN "${table.replaceAll('"', '""')}" AS t ON ${match}`;
  const rows = db.prepare(`SELECT c.pk, ${[row, ...blobs].join(', ')} FROM ${source}`).raw(true);
  // What cutFast's loop makes of each row, `${prefix}${pk},${row ?? 'null'}]`, the prefix a SQL string literal.
  const prefix = `'${changePrefix(table).replaceAll("'", "''")}'`;
  const joined = blobs.length > 0 ? undefined : db.prepare(`SELECT group_concat(${prefix} || c.pk || ',' || coalesce(${row}, 'null') || ']', ',') FROM ${source}`).pluck();
  // inline_data as the schema has it ([seq, data]): its bodies may come from the serving thread's records.
  const ringable = table === RING_TABLE && key.length === 1 && key[0] === RING_KEY_COLUMN && info.length === 2 && info[0]!.name === RING_KEY_COLUMN && info[1]!.name === RING_BLOB_COLUMN && info[1]!.type === 'BLOB';
  let ringKeys: Database.Statement | undefined;
  let rowByKey: Database.Statement | undefined;
  if (ringable) {
    ringKeys = db.prepare(`SELECT pk, max(seq) FROM ${CHANGES_TABLE} WHERE seq > @from AND seq <= @to AND tbl = @table GROUP BY pk`).raw(true);
    rowByKey = db.prepare(`SELECT ${row}, ${blobs[0]!} FROM "${table}" AS t WHERE ${quoted(RING_KEY_COLUMN)} = ?`).raw(true);
  }
  planned = { columns: info.map((column) => column.name), blobColumns: blobs.length, rows, joined, ringKeys, rowByKey };
  plan.tables.set(table, planned);
  return planned;
}

/** How each change of `table` starts in the segment's JSON: `["<table>",`. */
function changePrefix(table: string): string {
  return `[${JSON.stringify(table)},`;
}

/** A range whose rows pass SEGMENT_BYTES_MAX: cut again over fewer changes (cutEncodedSegment). */
class SegmentTooLargeError extends Error {
  /** The positions the range spanned. */
  readonly changes: number;
  constructor(changes: number) {
    super(`a segment of ${changes} changes passes ${SEGMENT_BYTES_MAX} bytes`);
    this.changes = changes;
  }
}

/** A joined range that stays under this share of SEGMENT_BYTES_MAX lets the next one span twice the changes. */
const CHANGES_LIMIT_GROW_BELOW = 0.4;

/**
 * The segment after `from`, cut and encoded at once: the same segment as
 * encodeSegment(cutSegment(db, from)), its changes grouped by table
 * (applySegment does not depend on their order). Per table, one statement
 * joins the keys logged in the range with their rows and has SQLite write
 * each row as JSON, so JavaScript handles a string per change instead of a
 * parsed key, a lookup and a value per column (measured on 4 KiB inline
 * PUTs: ~10 µs of CPU per PUT instead of ~25 for cutting and encoding).
 * A range whose rows pass SEGMENT_BYTES_MAX (a backlog, or a second of
 * inline PUTs at a high rate) is cut again over half the changes, in the
 * same read transaction, and the next cuts start from that shorter span
 * (CutPlan.changesLimit): a partial segment, like the general way's, but
 * joined. A single change past the bound or a blob in a column not declared
 * BLOB goes the general way, cutSegment.
 *
 * `records`: inline bodies the serving thread wrote, by inline_data row
 * (inline-body-ring.ts), all committed before this call. In a complete
 * segment, a row whose last change in the range is a record's is shipped
 * from the record, without reading the row back; every other row is read.
 */
export function cutEncodedSegment(db: Database.Database, from: number, scratch?: PayloadScratch, records?: Map<number, BodyRecord>): EncodedSegment | undefined {
  const segment = cutSegmentPayload(db, from, records);
  if (segment === undefined) return undefined;
  const { payload } = segment;
  return { ...segment, payload: payload.blobs.length === 0 && scratch === undefined ? payload.head : payload.writeOut(scratch?.take(payload.size)) };
}

/** A segment cut as cutEncodedSegment cuts it, its payload not written out (SegmentPayload). */
export type SegmentWithPayload = Omit<EncodedSegment, 'payload'> & { readonly payload: SegmentPayload };

/** cutEncodedSegment without writing the payload out: for the cutter thread, which compresses it in chunks. */
export function cutSegmentPayload(db: Database.Database, from: number, records?: Map<number, BodyRecord>): SegmentWithPayload | undefined {
  const plan = cutPlan(db);
  try {
    // One read transaction for every attempt: the shorter range is a prefix of the same snapshot's log.
    return db.transaction(() => {
      for (;;) {
        try {
          const segment = cutFast(db, plan, from, records);
          if (segment !== undefined && segment.payload.size < SEGMENT_BYTES_MAX * CHANGES_LIMIT_GROW_BELOW) {
            plan.changesLimit = Math.min(SEGMENT_CHANGES_MAX, plan.changesLimit * 2);
          }
          return segment;
        } catch (error) {
          // A single change past the bound (no table row is near it) is left to cutSegment, which ships it alone.
          if (!(error instanceof SegmentTooLargeError) || plan.changesLimit === 1) throw error;
          // Positions, not rows (a position may have no row: the change skipped at an install), so at most the limit.
          plan.changesLimit = Math.max(1, Math.floor(Math.min(plan.changesLimit, error.changes) / 2));
        }
      }
    })();
  } catch (error) {
    // SQLite's limit on a string (SQLITE_MAX_LENGTH) is far past SEGMENT_BYTES_MAX: a table's joined changes beyond it are a backlog too.
    const unfit = error instanceof SegmentTooLargeError || (error instanceof Error && /JSON cannot hold BLOB values|string or blob too big/.test(error.message));
    if (!unfit) throw error;
  }
  const segment = cutSegment(db, from);
  return segment === undefined ? undefined : { from: segment.from, to: segment.to, complete: segment.complete, payload: SegmentPayload.of(encodeSegment(segment)), cut: 'in log order', bodiesFromRecords: 0 };
}

function cutFast(db: Database.Database, plan: CutPlan, from: number, records: Map<number, BodyRecord> | undefined): SegmentWithPayload | undefined {
  const bounds = plan.bounds.get(from, plan.changesLimit) as { to: number | null; last: number | null };
  if (bounds.to === null || bounds.last === null) return undefined;
  const to = bounds.to;
  // Only a complete segment's last change of a row in the range is the row's last change up to the snapshot.
  const ring = to === bounds.last && records !== undefined && records.size > 0 ? records : undefined;
  const columns: Record<string, readonly string[]> = {};
  const changes: string[] = [];
  const blobs: Buffer[] = [];
  let bytes = 0;
  let bodiesFromRecords = 0;
  for (const table of plan.tablesIn.all(from, to) as string[]) {
    const { columns: names, blobColumns, rows, joined, ringKeys, rowByKey } = tablePlan(db, plan, table);
    columns[table] = names;
    const prefix = changePrefix(table);
    const range = { from, to, table };
    if (ring !== undefined && ringKeys !== undefined && rowByKey !== undefined) {
      for (const [pk, last] of ringKeys.all(range) as [string, number][]) {
        // The key as json_array(seq) logged it: `[<seq>]`.
        const key = Number(pk.slice(1, -1));
        assert(Number.isSafeInteger(key), 'an inline_data key is an integer');
        const record = ring.get(key);
        let encoded: string;
        if (record !== undefined && record.change === last) {
          // Its last change wrote these bytes, and nothing changed the row after (inline-body-ring.ts): the row
          // is [seq, data], as SQLite's json_array writes it, without reading it back.
          bytes += record.body.length;
          blobs.push(record.body);
          bodiesFromRecords++;
          encoded = `[${key},{"blob":${blobs.length - 1}}]`;
        } else {
          const found = rowByKey.get(key) as [string, unknown] | undefined;
          encoded = found?.[0] ?? 'null';
          const blob = found?.[1];
          if (Buffer.isBuffer(blob)) {
            bytes += blob.length;
            blobs.push(blob);
            encoded = encoded.replace(BLOB_PLACEHOLDER, () => `{"blob":${blobs.length - 1}}`);
          }
        }
        bytes += encoded.length + pk.length;
        if (bytes >= SEGMENT_BYTES_MAX) throw new SegmentTooLargeError(to - from);
        changes.push(`${prefix}${pk},${encoded}]`);
      }
      continue;
    }
    if (joined !== undefined) {
      const text = joined.get(range) as string | null;
      assert(text !== null, `a logged change of ${table} in the range`);
      bytes += text.length;
      if (bytes >= SEGMENT_BYTES_MAX) throw new SegmentTooLargeError(to - from);
      changes.push(text);
      continue;
    }
    for (const row of rows.all(range) as [string, string | null, ...unknown[]][]) {
      let encoded = row[1] ?? 'null';
      if (row[1] !== null && blobColumns > 0) {
        // The placeholders stand for the BLOB columns' blobs, in column order; a NULL or text there is in the JSON itself.
        let column = 2;
        encoded = encoded.replaceAll(BLOB_PLACEHOLDER, () => {
          let value = row[column++];
          while (!Buffer.isBuffer(value)) value = row[column++];
          assert(column <= row.length, 'a blob for every placeholder');
          bytes += value.length;
          blobs.push(value);
          return `{"blob":${blobs.length - 1}}`;
        });
      }
      bytes += encoded.length + row[0].length;
      if (bytes >= SEGMENT_BYTES_MAX) throw new SegmentTooLargeError(to - from);
      changes.push(`${prefix}${row[0]},${encoded}]`);
    }
  }
  const json = `{"format":1,"from":${from},"to":${to},"complete":${to === bounds.last},"columns":${JSON.stringify(columns)},"changes":[${changes.join(',')}]}`;
  return { from, to, complete: to === bounds.last, payload: new SegmentPayload(json, blobs), cut: 'joined', bodiesFromRecords };
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
