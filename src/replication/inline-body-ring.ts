/**
 * Inline object bodies handed from the serving thread to the segment
 * cutter, so that cutting a segment need not read them back from SQLite.
 *
 * Reading each 4 KiB body back from the WAL on the cutter's connection (its
 * table page and overflow page per row, a Buffer per body, the GC and malloc
 * arena those Buffers bring) was about half of the cutter's CPU per small
 * PUT (docs/PERFORMANCE.md, "Metadata replication, round 5" and "round 6").
 * The serving thread has every body in hand when it writes it: it copies it
 * into chunks of memory of its own (a memcpy: ~0.1 µs per 4 KiB; into a
 * SharedArrayBuffer V8 copies ~15 times slower, measured), which move to the
 * cutter thread with each cut request (transferred, not copied) and come
 * back with its reply for reuse. The segment's format does not change: only
 * where its blob bytes are read from.
 *
 * Exactness. A record is (row `seq` of inline_data, the change number the
 * capture trigger logged for this very write, the bytes written). The cutter
 * uses a record only when that change number is the last change logged for
 * the row in a complete segment (segment.ts): then no later write (by this
 * process, a worker process, the CLI) touched the row up to the cutter's
 * snapshot, so the row holds exactly these bytes. Any other case (a record
 * missing: dropped when the chunks were full, written by another process,
 * committed after the cut was requested; a later change; a partial segment)
 * reads the row from SQLite as before. Records of writes that did not commit
 * are never handed over: a batch's records are kept only once its COMMIT
 * succeeded, a mutation's are taken back when its savepoint is rolled back,
 * and a cut is requested from the event loop, never inside a batch. Every
 * record handed over was committed before the cut's read transaction began.
 *
 * Records are 8-aligned in a chunk:
 *
 *   u32 body length | u32 0 | f64 seq | f64 change | body | padding
 */
import { assert } from '../util/assert.ts';

/** The table whose blobs travel this way, and its key and blob columns (schema.ts). */
export const RING_TABLE = 'inline_data';
export const RING_KEY_COLUMN = 'seq';
export const RING_BLOB_COLUMN = 'data';

/** One chunk of records: a few hundred 4 KiB bodies. */
export const CHUNK_BYTES = 1024 * 1024;
/**
 * Bodies collected between two cuts at most: a lag's worth at a quiet run's rate (~5 000 4 KiB PUTs per
 * second: ~22 MB) with headroom. Past it, records are dropped and the cutter reads those rows from SQLite:
 * more CPU, never a wrong byte.
 */
export const COLLECTED_BYTES_MAX = 32 * 1024 * 1024;
/** Chunks kept for reuse once the cutter gives them back (fresh ones cost page faults). */
const SPARE_CHUNKS_MAX = COLLECTED_BYTES_MAX / CHUNK_BYTES;

const HEADER_BYTES = 24;

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

/** Chunks on their way to the cutter: each holds records up to its length. */
export interface BodyChunks {
  readonly buffers: ArrayBuffer[];
  readonly lengths: number[];
}

/**
 * The serving thread's side. `changeNumber` reads, on the store's connection and inside its transaction,
 * the number the capture trigger just logged (sqlite_sequence of the change log).
 */
export class InlineBodyCollector implements InlineDataTap {
  readonly #changeNumber: () => number;
  /** Full chunks, then the one being filled (its records end at #used). */
  #chunks: Uint8Array[] = [];
  /** The last chunk's, for the records' headers (one per chunk, not one per record). */
  #view: DataView | undefined;
  #used = 0;
  /** Where the last committed batch's records end: [chunks, bytes used in the last]. */
  #published: [number, number] = [0, 0];
  #spare: ArrayBuffer[] = [];
  /** Records not kept because COLLECTED_BYTES_MAX was reached (the cutter read those rows from SQLite). */
  dropped = 0;

  constructor(changeNumber: () => number) {
    this.#changeNumber = changeNumber;
  }

  written(seq: number, data: Uint8Array): void {
    const size = aligned(HEADER_BYTES + data.length);
    let chunk = this.#chunks.at(-1);
    if (chunk === undefined || this.#used + size > chunk.length) {
      if (size > CHUNK_BYTES || (this.#chunks.length + 1) * CHUNK_BYTES > COLLECTED_BYTES_MAX) {
        this.dropped++;
        return;
      }
      if (chunk !== undefined) this.#chunks[this.#chunks.length - 1] = chunk.subarray(0, this.#used);
      chunk = new Uint8Array(this.#spare.pop() ?? new ArrayBuffer(CHUNK_BYTES));
      this.#chunks.push(chunk);
      this.#view = new DataView(chunk.buffer);
      this.#used = 0;
    }
    const view = this.#view!;
    const at = this.#used;
    view.setUint32(at, data.length);
    view.setUint32(at + 4, 0);
    view.setFloat64(at + 8, seq);
    view.setFloat64(at + 16, this.#changeNumber());
    chunk.set(data, at + HEADER_BYTES);
    this.#used += size;
  }

  /** A position: chunk count and bytes used in the last, in one number. */
  mark(): number {
    return this.#chunks.length * (CHUNK_BYTES + 1) + this.#used;
  }

  rewind(mark: number): void {
    this.#restore(Math.floor(mark / (CHUNK_BYTES + 1)), mark % (CHUNK_BYTES + 1));
  }

  publish(): void {
    this.#published = [this.#chunks.length, this.#used];
  }

  abort(): void {
    this.#restore(...this.#published);
  }

  #restore(chunks: number, used: number): void {
    while (this.#chunks.length > chunks) this.#spare.push(this.#chunks.pop()!.buffer as ArrayBuffer);
    const last = this.#chunks.at(-1);
    // A chunk closed since the mark is open again, to its whole size.
    if (last !== undefined && last.length !== CHUNK_BYTES) this.#chunks[this.#chunks.length - 1] = new Uint8Array(last.buffer, 0, CHUNK_BYTES);
    this.#view = last === undefined ? undefined : new DataView(last.buffer);
    this.#used = used;
  }

  /**
   * The records kept so far, to transfer with a cut request (from the event loop, between batches: every
   * record is committed). Undefined when there are none.
   */
  handOver(): BodyChunks | undefined {
    assert(this.#published[0] === this.#chunks.length && this.#published[1] === this.#used, 'no batch is being written');
    if (this.#chunks.length === 0) return undefined;
    const chunks: BodyChunks = { buffers: [], lengths: [] };
    for (const [index, chunk] of this.#chunks.entries()) {
      chunks.buffers.push(chunk.buffer as ArrayBuffer);
      chunks.lengths.push(index === this.#chunks.length - 1 ? this.#used : chunk.length);
    }
    this.#chunks = [];
    this.#view = undefined;
    this.#used = 0;
    this.#published = [0, 0];
    return chunks;
  }

  /** Chunks the cutter is done with. */
  giveBack(buffers: readonly ArrayBuffer[]): void {
    for (const buffer of buffers) if (this.#spare.length < SPARE_CHUNKS_MAX && buffer.byteLength === CHUNK_BYTES) this.#spare.push(buffer);
  }
}

/** A record as the cutter finds it: the body is a view of its chunk, valid until the chunks go back. */
export interface BodyRecord {
  readonly change: number;
  readonly body: Buffer;
}

/**
 * The records of handed-over chunks, by row (the last record of a row wins: an earlier one's change is
 * older, so it could never be the row's last).
 */
export function bodyRecords(chunks: BodyChunks): Map<number, BodyRecord> {
  const records = new Map<number, BodyRecord>();
  for (const [index, buffer] of chunks.buffers.entries()) {
    const end = chunks.lengths[index]!;
    const view = new DataView(buffer);
    let at = 0;
    while (at < end) {
      const length = view.getUint32(at);
      records.set(view.getFloat64(at + 8), { change: view.getFloat64(at + 16), body: Buffer.from(buffer, at + HEADER_BYTES, length) });
      at += aligned(HEADER_BYTES + length);
    }
    assert(at === end, 'records fill their chunk');
  }
  return records;
}
