/**
 * Inline object bodies handed from the serving thread to the segment
 * cutter, so that cutting a segment need not read them back from SQLite.
 *
 * Reading each 4 KiB body back from the WAL on the cutter's connection (its
 * table page and overflow page per row, a Buffer per body, the GC and malloc
 * arena those Buffers bring) was about half of the cutter's CPU per small
 * PUT (docs/PERFORMANCE.md, "Metadata replication, round 5" and "round 6").
 * The serving thread has every body in hand when it writes it: it copies it
 * into a ring of shared memory, and the cutter copies it from there into
 * the segment's payload. The segment's format does not change: only where
 * its blob bytes are read from.
 *
 * Shared, not transferred: chunks moved between the threads with each cut
 * (tried first) arrived in each isolate as new external memory, ~20 MB a
 * second, and brought on major collections (V8's marking threads: ~7 µs of
 * CPU per PUT more, measured). The copy into shared memory is Buffer#fill
 * (a memcpy, ~0.15 µs per 4 KiB): Uint8Array#set into a SharedArrayBuffer
 * copies ~10 times slower.
 *
 * Exactness. A record is (row `seq` of inline_data, the change number the
 * capture trigger logged for this very write, the bytes written). The cutter
 * uses a record only when that change number is the last change logged for
 * the row in a complete segment (segment.ts): then no later write (by this
 * process, a worker process, the CLI) touched the row up to the cutter's
 * snapshot, so the row holds exactly these bytes. Any other case (a record
 * missing: dropped when the ring was full, written by another process,
 * committed after the cut was requested; a later change; a partial segment)
 * reads the row from SQLite as before. Records of writes that did not commit
 * are never handed over: a batch's records are kept only once its COMMIT
 * succeeded, a mutation's are taken back when its savepoint is rolled back,
 * and a cut is requested from the event loop, never inside a batch. Every
 * record handed over was committed before the cut's read transaction began.
 *
 * Positions are byte counts that only grow, all kept on the serving thread:
 * it hands the range written since the last cut to the cutter with the cut
 * request (an Atomics store before it, and a load on the cutter's side,
 * order the records' plain writes before the cutter's reads) and reuses
 * that room once the cut has answered. Records are 8-aligned:
 *
 *   u32 body length (WRAP: the rest of this lap is unused) | u32 0 | f64 seq | f64 change | body | padding
 */
import { assert } from '../util/assert.ts';

/** The table whose blobs travel this way, and its key and blob columns (schema.ts). */
export const RING_TABLE = 'inline_data';
export const RING_KEY_COLUMN = 'seq';
export const RING_BLOB_COLUMN = 'data';

/**
 * Room for the bodies written between two cuts: most of a lag's worth at a quiet run's rate (~4 500-6 000
 * 4 KiB PUTs per second: 18-25 MB). Past RING_EARLY_CUT_SHARE of it, the replicator cuts before the lag is
 * up (onFilling), so a higher rate costs more frequent segments rather than dropped records. Past the whole
 * of it, records are dropped and the cutter reads those rows from SQLite: more CPU, never a wrong byte.
 * Resident once the ring has gone round (it was 32 MiB until round 7: ~8 MiB of a replicating server's peak).
 */
export const RING_BYTES = 24 * 1024 * 1024;
/**
 * Records kept and not yet handed over past this share of the ring ask for a cut now (onFilling): the rest
 * holds what is written while that cut runs (at 25 MB a second, a quarter of 24 MiB is ~0.25 s).
 */
export const RING_EARLY_CUT_SHARE = 0.75;

const HEADER_BYTES = 24;
const WRAP = 0xffffffff;
/**
 * After the records, an Int32 the writer stores to (Atomics) before each hand-over and the cutter loads from
 * before reading: the memory model's order for the plain writes of the records, whatever the message carries.
 */
const FENCE_BYTES = 8;

function aligned(bytes: number): number {
  return (bytes + 7) & ~7;
}

/** What the store calls while it writes inline bodies (sqlite-metadata-store.ts, setInlineDataTap). */
export interface InlineDataTap {
  /** Row `seq` of inline_data now holds `data`; called right after the statement, in its transaction. */
  written(seq: number, data: Uint8Array): void;
  /** Where a mutation's savepoint begins. */
  mark(): number;
  /** The savepoint begun at `mark` was rolled back: its records are taken back. */
  rewind(mark: number): void;
  /** The batch committed: its records are kept. */
  publish(): void;
  /** The batch did not commit: its records are taken back. */
  abort(): void;
}

/** The records handed to the cutter with one cut request: positions [from, to) of the ring. */
export interface RingRange {
  readonly from: number;
  readonly to: number;
}

/**
 * The serving thread's side. `changeNumber` reads, on the store's connection and inside its transaction,
 * the number the capture trigger just logged (sqlite_sequence of the change log).
 */
export class InlineBodyCollector implements InlineDataTap {
  /** The ring, shared with the cutter thread. */
  readonly memory: SharedArrayBuffer;
  readonly #bytes: Buffer;
  readonly #view: DataView;
  readonly #capacity: number;
  readonly #changeNumber: () => number;
  readonly #fence: Int32Array;
  /** Where the next record goes. */
  #tail = 0;
  /** Where the last committed batch's records end. */
  #published = 0;
  /** Where the records handed to the cutter end. */
  #handed = 0;
  /** Before this, the room is free again (the cutter answered for it). */
  #released = 0;
  /** Records not kept because the ring was full (the cutter read those rows from SQLite). */
  dropped = 0;
  /**
   * Called after a batch is kept when the records not yet handed over pass RING_EARLY_CUT_SHARE of the ring
   * (again after every batch while they do): the replicator starts a round now rather than at the lag.
   */
  onFilling: (() => void) | undefined;

  constructor(changeNumber: () => number, bytes = RING_BYTES) {
    assert(bytes % 8 === 0 && bytes >= 4096, 'a ring is 8-aligned and holds records');
    this.memory = new SharedArrayBuffer(bytes + FENCE_BYTES);
    this.#bytes = Buffer.from(this.memory, 0, bytes);
    this.#view = new DataView(this.memory, 0, bytes);
    this.#fence = new Int32Array(this.memory, bytes, 1);
    this.#capacity = bytes;
    this.#changeNumber = changeNumber;
  }

  written(seq: number, data: Uint8Array): void {
    const size = aligned(HEADER_BYTES + data.length);
    let at = this.#tail;
    let offset = at % this.#capacity;
    const wraps = offset + size > this.#capacity;
    const end = (wraps ? at + (this.#capacity - offset) : at) + size;
    if (end - this.#released > this.#capacity) {
      this.dropped++;
      return;
    }
    if (wraps) {
      this.#view.setUint32(offset, WRAP);
      at += this.#capacity - offset;
      offset = 0;
    }
    const view = this.#view;
    view.setUint32(offset, data.length);
    view.setUint32(offset + 4, 0);
    view.setFloat64(offset + 8, seq);
    view.setFloat64(offset + 16, this.#changeNumber());
    // A memcpy (see the module comment for why not set()).
    this.#bytes.fill(data, offset + HEADER_BYTES, offset + HEADER_BYTES + data.length);
    this.#tail = end;
  }

  /** The records kept and not yet handed over pass RING_EARLY_CUT_SHARE of the ring. */
  get filling(): boolean {
    return this.#published - this.#handed > this.#capacity * RING_EARLY_CUT_SHARE;
  }

  mark(): number {
    return this.#tail;
  }

  rewind(mark: number): void {
    this.#tail = mark;
  }

  publish(): void {
    this.#published = this.#tail;
    if (this.filling) this.onFilling?.();
  }

  abort(): void {
    this.#tail = this.#published;
  }

  /**
   * The records kept since the last hand-over, for a cut request (from the event loop, between batches:
   * every record is committed). Undefined when there are none. Their room is reused after release().
   */
  handOver(): RingRange | undefined {
    assert(this.#tail === this.#published, 'no batch is being written');
    if (this.#published === this.#handed) return undefined;
    const range = { from: this.#handed, to: this.#published };
    this.#handed = this.#published;
    Atomics.add(this.#fence, 0, 1);
    return range;
  }

  /**
   * Called when every change committed so far is shipped (from the event loop, between batches): the records
   * kept are all of shipped changes, so no cut needs them and their room is free. Records committed after a
   * hand-over but before that cut's read began are shipped in its segment (read from SQLite) without ever being
   * handed over: without this they would count as waiting until the next write, and a ring past
   * RING_EARLY_CUT_SHARE would keep asking for rounds that find nothing to ship. Nothing is done while a
   * handed-over range is still with the cutter (its room is released first).
   */
  discardShipped(): void {
    assert(this.#tail === this.#published, 'no batch is being written');
    if (this.#released !== this.#handed) return;
    this.#handed = this.#published;
    this.#released = this.#published;
  }

  /** The cutter no longer reads the records before `to` (its cut answered or failed). */
  release(to: number): void {
    this.#released = Math.max(this.#released, to);
  }
}

/** A record as the cutter finds it: the body is a view of the ring, valid until the range is released. */
export interface BodyRecord {
  readonly change: number;
  readonly body: Buffer;
}

/**
 * The records of a handed-over range, by row (the last record of a row wins: an earlier one's change is
 * older, so it could never be the row's last).
 */
export function bodyRecords(memory: SharedArrayBuffer, range: RingRange): Map<number, BodyRecord> {
  const records = new Map<number, BodyRecord>();
  const capacity = memory.byteLength - FENCE_BYTES;
  Atomics.load(new Int32Array(memory, capacity, 1), 0);
  const view = new DataView(memory, 0, capacity);
  let at = range.from;
  while (at < range.to) {
    const offset = at % capacity;
    const length = view.getUint32(offset);
    if (length === WRAP) {
      at += capacity - offset;
      continue;
    }
    records.set(view.getFloat64(offset + 8), { change: view.getFloat64(offset + 16), body: Buffer.from(memory, offset + HEADER_BYTES, length) });
    at += aligned(HEADER_BYTES + length);
  }
  assert(at === range.to, 'records end where the range does');
  return records;
}
