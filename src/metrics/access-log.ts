/**
 * The opt-in access log (`--access-log FILE`, `-` for stdout): one JSON line
 * per request — time, operation, bucket, caller (principal, remote address,
 * access key ID), status, bytes, request ID, key, duration (the order is
 * docs/ADMIN.md's). Never headers, never a query
 * string (presigned URLs carry signatures), never a secret.
 *
 * Writing never holds a request back: each line is encoded at once into a
 * batch buffer, which is written when full (ACCESS_LOG_BATCH_BYTES) or
 * ACCESS_LOG_FLUSH_MS after its first line: a write per request costs a
 * thread-pool write and a system call each. The batch is bytes outside the
 * JavaScript heap, not strings: lines kept as strings until the write
 * survived the young generation's collections and were copied by them (the
 * GC helper threads' CPU went from 3.2 to 7.2 µs per GET with the log on,
 * 2026-12-06; docs/PERFORMANCE.md). The last ACCESS_LOG_FLUSH_MS of lines can
 * be lost in a crash, as a buffered log's are. While more than
 * ACCESS_LOG_BUFFER_BYTES_MAX wait for the disk, lines are dropped and
 * counted as they are (the next line written says how many, or a line of its
 * own once the buffer has room again or the log closes), so a slow disk
 * cannot grow memory without bound; a batch the file or stream refuses (a
 * full disk) is dropped and counted the same way. The file always ends on a
 * line boundary: a line cut by a short write that is not completed is taken
 * back out (or, failing that, the next write starts with a newline).
 *
 * A file is written with fs.write on its descriptor, one batch at a time
 * (FileSink), not through a fs.WriteStream: node's Writable code is the
 * code every HTTP response's socket goes through, and the log's stream was
 * a second kind of stream in it (its optimized code saw both;
 * docs/PERFORMANCE.md, "Metrics and logs, round 4").
 */
import { close as closeFile, fstat, ftruncate, openSync, write as writeFile } from 'node:fs';
import { putRequestId } from '../util/ids.ts';
import type { ObservedRequest } from './observed-request.ts';

export const ACCESS_LOG_BUFFER_BYTES_MAX = 8 * 1024 * 1024;
/** A batch goes to the stream once it holds this much (one write of a few hundred lines). */
export const ACCESS_LOG_BATCH_BYTES = 64 * 1024;
/** ... or this long after its first line, so a quiet server's lines still reach the file promptly. */
export const ACCESS_LOG_FLUSH_MS = 100;
/**
 * Requests are kept (the front's ObservedRequest, its time and drop count)
 * and their lines encoded this many at a time, in one loop: one line
 * encoded between two requests ran ~4× slower than in a loop (2.5 against
 * 0.6 µs, its code and constants out of the caches by then;
 * docs/PERFORMANCE.md, "Metrics and logs, round 4"). Few, so the requests
 * and their strings are still in the CPU's caches when encoded: at 64 (~8 ms
 * of requests at 8 000 GET/s, ~1 MiB of allocation later) reading them back
 * was ~0.25 µs of the loop's self time per line; at 8 the log's JavaScript
 * measured ~0.1 µs per GET less in perf (docs/PERFORMANCE.md, "Metrics and
 * logs, round 7").
 */
export const ACCESS_LOG_ENCODE_LINES = 8;
/** A newline alone: what ends a line cut in the file when it cannot be taken back. */
const NEWLINE_ALONE = Buffer.from('\n');
/** A string field takes at most 6 bytes per UTF-16 code unit (\u001f), plus its quotes. */
const JSON_BYTES_PER_UNIT_MAX = 6;
/** Everything of a line but its string fields: names, punctuation, time, numbers (each at most ~24 characters). */
const LINE_FIXED_BYTES_MAX = 512;

/**
 * Written batch buffers kept for the next batches: a new 64 KiB buffer per
 * batch (~40 a second at 10 000 GET/s) outlived young-generation
 * collections while it filled and was written, and its promoted ArrayBuffer
 * held its 64 KiB until a full collection: the log's server ran a
 * mark-compact every 3–10 s where a server without a log ran one in the
 * minute measured (docs/PERFORMANCE.md, "Metrics and logs, round 5"). Two are in use
 * in the steady state (one filling, one being written); more wait only
 * behind a slow disk, and those beyond this many are left to the GC.
 */
export const ACCESS_LOG_SPARE_BATCHES = 4;

/** Where batches go: a file by its descriptor, or a stream (stdout). */
interface BatchSink {
  /** Bytes handed over and not yet written. */
  readonly pendingBytes: number;
  /**
   * Writes the first `length` bytes of `batch` (not copied: the caller lets
   * go of it until `written`), whole lines; then calls `written(batch)`,
   * whether the write succeeded or not. Bytes it could not write are handed
   * to the sink's `onLost` (read at once: the batch is reused) before that.
   */
  write(batch: Buffer, length: number, written?: (batch: Buffer) => void): void;
  close(): Promise<void>;
}

export class AccessLog {
  readonly #sink: BatchSink;
  /** Lines dropped and not yet told by a line written. */
  #dropped = 0;
  #droppedLines = 0;
  /** The batch being filled; after each write, a spare one (or a new one), as the sink keeps the one it was given until written. */
  #batch: Buffer = Buffer.allocUnsafeSlow(ACCESS_LOG_BATCH_BYTES);
  /** Batches written and free again, at most ACCESS_LOG_SPARE_BATCHES. */
  readonly #spareBatches: Buffer[] = [];
  readonly #recycle = (batch: Buffer): void => {
    if (this.#spareBatches.length < ACCESS_LOG_SPARE_BATCHES) this.#spareBatches.push(batch);
  };
  #batchBytes = 0;
  readonly #encoder = new LineEncoder();
  #flushTimer: NodeJS.Timeout | undefined;
  /** Requests whose lines are not encoded yet, with the time of their write (ms) and the lines dropped before each. */
  readonly #pending: (ObservedRequest | undefined)[] = new Array<ObservedRequest | undefined>(ACCESS_LOG_ENCODE_LINES).fill(undefined);
  readonly #pendingTimesMs = new Float64Array(ACCESS_LOG_ENCODE_LINES);
  readonly #pendingDropped = new Float64Array(ACCESS_LOG_ENCODE_LINES);
  #pendingCount = 0;
  /** After close(): a late request (a handler that outlived the shutdown) writes nothing; its descriptor may already be another file's. */
  #closed = false;

  /**
   * `-` writes to stdout; anything else is a file, appended to (created 0640), opened now so a bad path fails the start.
   * sharedFile: other processes append to the same file (`--workers`), so a cut line is never truncated away (it could cut theirs).
   */
  constructor(destination: string, options: { sharedFile?: boolean } = {}) {
    const lost = (bytes: Buffer): void => {
      const { requests, told } = linesTold(bytes);
      this.#countDropped(requests, told);
    };
    this.#sink = destination === '-'
      ? new StreamSink(process.stdout, lost)
      : new FileSink(openSync(destination, 'a', 0o640), lost, options.sharedFile === true);
  }

  /** Lines dropped since the log was opened (a full buffer, a write the file or stream refused), counted as they are dropped. */
  get droppedLines(): number {
    return this.#droppedLines;
  }

  /**
   * Counts lines dropped now. The next request's line says how many
   * (`droppedBefore`); if none is written within ACCESS_LOG_FLUSH_MS of the
   * buffer having room again (or before close), a line of its own does:
   * `{"time":…,"droppedBefore":N}`. `untold`: what is to be told again (a
   * lost line's own request and the drops it told of, counted before).
   */
  #countDropped(lines: number, untold = lines): void {
    this.#dropped += untold;
    this.#droppedLines += lines;
    if (this.#flushTimer === undefined && !this.#closed) this.#flushTimer = setTimeout(() => this.#flush(), ACCESS_LOG_FLUSH_MS).unref();
  }

  /** Keeps `request` (which nobody changes after: the front builds one per request) until its line is encoded, at most ACCESS_LOG_FLUSH_MS. */
  write(request: ObservedRequest): void {
    if (this.#closed) return;
    if (this.#sink.pendingBytes + this.#batchBytes > ACCESS_LOG_BUFFER_BYTES_MAX) {
      this.#countDropped(1);
      return;
    }
    const index = this.#pendingCount++;
    this.#pending[index] = request;
    this.#pendingTimesMs[index] = Date.now();
    this.#pendingDropped[index] = this.#dropped;
    this.#dropped = 0;
    if (this.#pendingCount === ACCESS_LOG_ENCODE_LINES) this.#encodePending();
    if (this.#flushTimer === undefined) this.#flushTimer = setTimeout(() => this.#flush(), ACCESS_LOG_FLUSH_MS).unref();
  }

  /** The pending requests' lines into the batch (a full batch goes to the sink first), in their order. */
  #encodePending(): void {
    const count = this.#pendingCount;
    this.#pendingCount = 0;
    for (let index = 0; index < count; index++) {
      const request = this.#pending[index]!;
      this.#pending[index] = undefined;
      const dropped = this.#pendingDropped[index]!;
      const bytesMax = lineBytesMax(request);
      if (this.#batchBytes + bytesMax > this.#batch.length) this.#writeBatch();
      if (bytesMax > this.#batch.length) {
        // A line that might not fit a batch (a key of thousands of characters to escape): a write of its own.
        const line = Buffer.from(`${formatLine(request, dropped, this.#pendingTimesMs[index])}\n`);
        this.#sink.write(line, line.length);
        continue;
      }
      this.#batchBytes = this.#encoder.encode(this.#batch, this.#batchBytes, request, dropped, this.#pendingTimesMs[index]!);
    }
  }

  #flush(closing = false): void {
    if (this.#flushTimer !== undefined) clearTimeout(this.#flushTimer);
    this.#flushTimer = undefined;
    this.#encodePending();
    if (this.#dropped > 0) {
      // Lines dropped after the last line written, and no request since to tell: told now if the buffer has room
      // again (or the log closes), or looked at again later (while it is full, more may be dropped: one count).
      if (closing || this.#sink.pendingBytes + this.#batchBytes <= ACCESS_LOG_BUFFER_BYTES_MAX) this.#writeDroppedLine();
      else this.#flushTimer = setTimeout(() => this.#flush(), ACCESS_LOG_FLUSH_MS).unref();
    }
    this.#writeBatch();
  }

  /** `{"time":…,"droppedBefore":N}`: the count of lines dropped with no request line after them to tell it. */
  #writeDroppedLine(): void {
    const line = Buffer.from(`${JSON.stringify({ time: new Date().toISOString(), droppedBefore: this.#dropped })}\n`);
    this.#dropped = 0;
    if (this.#batchBytes + line.length > this.#batch.length) this.#writeBatch();
    this.#batchBytes += line.copy(this.#batch, this.#batchBytes);
  }

  #writeBatch(): void {
    if (this.#batchBytes === 0) return;
    const full = this.#batch;
    const length = this.#batchBytes;
    this.#batch = this.#spareBatches.pop() ?? Buffer.allocUnsafeSlow(ACCESS_LOG_BATCH_BYTES);
    this.#batchBytes = 0;
    this.#sink.write(full, length, this.#recycle);
  }

  close(): Promise<void> {
    this.#flush(true);
    this.#closed = true;
    return this.#sink.close();
  }
}

/**
 * Appends batches to a file descriptor with fs.write, one write in flight at
 * a time, in order. A failed write (ENOSPC, EIO) gives up its batch's lines
 * not yet in the file and counts them (the next line says how many); the
 * rest carry on. A short write's rest is written next; if that fails, the
 * line it cut is truncated away, so no later line is glued to half of it.
 */
class FileSink implements BatchSink {
  readonly #fd: number;
  /** Batches to write, in order: `offset` moves past what a short write wrote. */
  readonly #queue: { batch: Buffer; offset: number; length: number; written: ((batch: Buffer) => void) | undefined }[] = [];
  #pendingBytes = 0;
  #writing = false;
  readonly #onLost: (bytes: Buffer) => void;
  /** The file ends in part of a line (a cut write that could not be taken back): the next write is a newline first. */
  #lineCut = false;
  #closing: Promise<void> | undefined;
  #drained: (() => void) | undefined;

  /** Other processes append to this file: its end may be theirs, never truncated. */
  readonly #shared: boolean;

  /** onLost: given the lines a failed write gave up. */
  constructor(fd: number, onLost: (bytes: Buffer) => void, shared: boolean) {
    this.#fd = fd;
    this.#onLost = onLost;
    this.#shared = shared;
  }

  get pendingBytes(): number {
    return this.#pendingBytes;
  }

  write(batch: Buffer, length: number, written?: (batch: Buffer) => void): void {
    // Closed (or closing): the descriptor is, or soon will be, reused by another file. The batch is
    // handed back all the same, as the interface promises (the closed log never fills it again).
    if (this.#closing !== undefined) {
      written?.(batch);
      return;
    }
    this.#pendingBytes += length;
    this.#queue.push({ batch, offset: 0, length, written });
    if (!this.#writing) this.#next();
  }

  #next(): void {
    const head = this.#queue[0];
    if (head === undefined) {
      this.#writing = false;
      this.#drained?.();
      return;
    }
    this.#writing = true;
    if (this.#lineCut) {
      // The file ends in part of a line that could not be taken back: this batch starts on a line of its own.
      writeFile(this.#fd, NEWLINE_ALONE, 0, 1, null, (error) => {
        if (error === null) this.#lineCut = false;
        else this.#give(head, 0);
        this.#next();
      });
      return;
    }
    writeFile(this.#fd, head.batch, head.offset, head.length - head.offset, null, (error, written) => {
      if (error === null && head.offset + written < head.length) {
        // A short write to a regular file (rare: a signal, a nearly full disk): the rest goes next.
        this.#pendingBytes -= written;
        head.offset += written;
        this.#next();
      } else if (error === null) {
        this.#give(head, head.length);
        this.#next();
      } else if (head.offset === 0) {
        this.#give(head, 0);
        this.#next();
      } else {
        // A short write, then a failed one: the lines written whole stay; the rest are lost, and the one
        // cut in two is taken back out of the file, so no later line is glued to half of it.
        const whole = head.batch.lastIndexOf(NEWLINE, head.offset - 1) + 1;
        this.#give(head, whole);
        this.#takeBack(head.offset - whole, () => this.#next());
      }
    });
  }

  /** Done with `head`: its first `kept` bytes are in the file (whole lines), the rest lost (told now). */
  #give(head: { batch: Buffer; offset: number; length: number; written: ((batch: Buffer) => void) | undefined }, kept: number): void {
    this.#queue.shift();
    this.#pendingBytes -= head.length - head.offset;
    if (kept < head.length) this.#onLost(head.batch.subarray(kept, head.length));
    head.written?.(head.batch);
  }

  /**
   * Cuts the last `bytes` bytes (part of a line) off the file; if the file
   * will not be truncated, or other processes append to it too (their
   * lines may follow the cut), the next write starts with a newline instead.
   */
  #takeBack(bytes: number, then: () => void): void {
    if (bytes === 0) return then();
    if (this.#shared) {
      this.#lineCut = true;
      return then();
    }
    fstat(this.#fd, (statError, stats) => {
      if (statError !== null || stats.size < bytes) {
        this.#lineCut = true;
        return then();
      }
      ftruncate(this.#fd, stats.size - bytes, (truncateError) => {
        if (truncateError !== null) this.#lineCut = true;
        then();
      });
    });
  }

  close(): Promise<void> {
    return (this.#closing ??= new Promise<void>((resolve) => {
      if (!this.#writing) resolve();
      else this.#drained = resolve;
    })
      // Still ending in part of a line (nothing came after the cut): one last try to end it.
      .then(() => new Promise<void>((resolve) => (this.#lineCut ? writeFile(this.#fd, NEWLINE_ALONE, 0, 1, null, () => resolve()) : resolve())))
      .then(() => new Promise<void>((resolve) => closeFile(this.#fd, () => resolve()))));
  }
}

/** Stdout: a stream of node's (a pipe, a terminal or a file, as the process was given). */
class StreamSink implements BatchSink {
  readonly #stream: NodeJS.WritableStream & { writableLength: number };
  readonly #onLost: (bytes: Buffer) => void;

  /** onLost: given the lines of a write the stream failed. */
  constructor(stream: NodeJS.WritableStream & { writableLength: number }, onLost: (bytes: Buffer) => void) {
    this.#stream = stream;
    this.#onLost = onLost;
    // Without a listener a write error (EPIPE when the reader exits, ENOSPC) would be thrown and end the server;
    // each failed write's callback still gets the error, and counts its lines as lost.
    // (Not only when it has none: a listener a pipe() put there removes itself on the first error.)
    if (!streamsWithErrorListener.has(stream)) {
      streamsWithErrorListener.add(stream);
      stream.on('error', () => {});
    }
  }

  get pendingBytes(): number {
    return this.#stream.writableLength;
  }

  write(batch: Buffer, length: number, written?: (batch: Buffer) => void): void {
    // The stream keeps the bytes it was given until they are written: the batch is free again only then.
    this.#stream.write(batch.subarray(0, length), (error) => {
      if (error !== null && error !== undefined) this.#onLost(batch.subarray(0, length));
      written?.(batch);
    });
  }

  /** Waits (at most STREAM_CLOSE_WAIT_MS) for what the stream still holds to be written: the process may exit right after. */
  close(): Promise<void> {
    if (this.#stream.writableLength === 0) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        resolve();
      };
      const timer = setTimeout(done, STREAM_CLOSE_WAIT_MS);
      // Writes complete in order: this empty one's callback runs once everything before it is written (or failed).
      this.#stream.write(Buffer.alloc(0), done);
    });
  }
}

/** Streams StreamSink has given its error listener (one each, however many logs write to them). */
const streamsWithErrorListener = new WeakSet<NodeJS.WritableStream>();

/** How long closing a stdout log waits for a slow reader before the process may exit and lose the rest. */
const STREAM_CLOSE_WAIT_MS = 2_000;

/**
 * What lost `bytes` (whole lines of the log) held: `requests`, the requests'
 * lines, and `told`, those plus the lines dropped before them
 * (`droppedBefore`), untold again once their line is lost. Read only when a
 * write failed.
 */
export function linesTold(bytes: Buffer): { requests: number; told: number } {
  let requests = 0;
  let told = 0;
  for (const line of bytes.toString('utf8').split('\n')) {
    if (line === '') continue;
    let entry: { requestId?: unknown; droppedBefore?: unknown };
    try {
      entry = JSON.parse(line) as typeof entry;
    } catch {
      // Not a line this log wrote (it writes only JSON): counted as one request's, never thrown in a write's callback.
      entry = { requestId: '' };
    }
    if (entry.requestId !== undefined) requests++;
    told += (entry.requestId === undefined ? 0 : 1) + (typeof entry.droppedBefore === 'number' ? entry.droppedBefore : 0);
  }
  return { requests, told };
}

/**
 * One request's line without its newline: exactly what JSON.stringify gives
 * for the entry object { time, operation, bucket, principal, remoteAddress,
 * accessKeyId?, status, bytesIn, bytesOut, requestId, key, durationMs,
 * errorCode?, droppedBefore? } (test/observability-access-log.test.ts
 * compares the two), without building that object. The fields are in the
 * order that lets LineEncoder copy the ones that repeat from line to line as
 * two runs (see there). What encodeLine writes byte by byte; used for the
 * rare line that may not fit a batch.
 */
export function formatLine(request: ObservedRequest, droppedBefore = 0, nowMs = Date.now()): string {
  let line = `{"time":"${isoTime(nowMs)}","operation":${jsonString(request.operation)},"bucket":${jsonString(request.bucket)},` +
    `"principal":${jsonString(request.principal)},"remoteAddress":${jsonString(request.remoteAddress)}`;
  if (request.accessKeyId !== undefined) line += `,"accessKeyId":${jsonString(request.accessKeyId)}`;
  line += `,"status":${jsonNumber(request.status)},"bytesIn":${jsonNumber(request.bytesIn)},"bytesOut":${jsonNumber(request.bytesOut)}` +
    `,"requestId":${jsonString(request.requestId)},"key":${jsonString(request.key)},` +
    `"durationMs":${jsonNumber(Math.round((request.finishedMs - request.startedMs) * 1000) / 1000)}`;
  if (request.errorCode !== undefined) line += `,"errorCode":${jsonString(request.errorCode)}`;
  if (droppedBefore > 0) line += `,"droppedBefore":${droppedBefore}`;
  return `${line}}`;
}

/**
 * Writes the line of formatLine, with its newline, into `target` at `offset`
 * and returns where it ends; `target` has lineBytesMax(request) bytes free
 * there. `nowMs` is the time of the line (Date.now() when the request was
 * written). The module's LineEncoder (AccessLog has its own).
 */
export function encodeLine(target: Buffer, offset: number, request: ObservedRequest, droppedBefore = 0, nowMs = Date.now()): number {
  return sharedEncoder.encode(target, offset, request, droppedBefore, nowMs);
}

/**
 * Encodes lines byte by byte, without a string per line (strings built per
 * line and turned into bytes were most of the log's cost: their allocation
 * and the collections it brought). Plain ASCII strings and whole numbers are
 * copied digit by digit; anything else (a character to escape, non-ASCII)
 * goes through JSON.stringify and UTF-8, as formatLine does.
 *
 * Most of a line repeats the line before, in two runs kept as bytes:
 * - the head, `{"time":"…","operation":…,"bucket":…,"principal":…,
 *   "remoteAddress":…[,"accessKeyId":…]`: the time's second, the route and
 *   the caller, the same from line to line while one client reads one
 *   bucket, and new at least once a second; its
 *   milliseconds are the line's it was encoded for, and a copy gets the new
 *   line's written over them;
 * - the numbers, `,"status":…,"bytesIn":…,"bytesOut":…,"requestId":`, which
 *   change whenever object sizes do: kept apart, so that a change re-encodes
 *   ~50 bytes, not the head.
 * Each is kept with the values it was encoded from and copied whole (one
 * TypedArray set, a memmove) while the next line's are equal, or encoded in
 * place and kept again. What varies per request (request ID, key, duration)
 * is encoded each time; the request ID from the request's number when the
 * front gave it (putRequestId), not from its string. The fields are in the
 * order that makes these two runs: with the fields in the order a reader
 * would list them (four kept parts and a constant, five copies) a line cost
 * ~3.64 k instructions in a loop; ~3.45 k this way. Writing the ID from its
 * number took a line from ~3.2 k to ~2.6 k (round 13's loop, whose requests
 * are built as the front builds them; docs/PERFORMANCE.md, "Metrics and
 * logs", rounds 5, 11, 12 and 13). The bytes are formatLine's (test/observability-access-log.test.ts).
 */
export class LineEncoder {
  /**
   * `{"time":"YYYY-MM-DDTHH:mm:ss.mmmZ","operation":…,"bucket":…,"principal":…,"remoteAddress":…[,"accessKeyId":…]`
   * for the second starting at #headSecondStartMs and these values; its milliseconds (3 bytes at
   * #millisecondsAt) are those of the line it was encoded for.
   */
  #head: Uint8Array = EMPTY_PART;
  #millisecondsAt = 0;
  #headSecondStartMs = Number.NaN;
  // null until the first line: no request's values equal them, so an empty first part is never copied.
  #operation: string | null = null;
  #bucket: string | null = null;
  #principal: string | null = null;
  #remoteAddress: string | null = null;
  #accessKeyId: string | undefined | null = null;
  /** `,"status":…,"bytesIn":…,"bytesOut":…,"requestId":` of these numbers. */
  #numbers: Uint8Array = EMPTY_PART;
  #status = Number.NaN;
  #bytesIn = Number.NaN;
  #bytesOut = Number.NaN;
  /** `{"time":"YYYY-MM-DDTHH:mm:ss.` of the second starting at #secondStartMs: made once a second, not once a head. */
  #secondText = '';
  #secondStartMs = Number.NaN;

  /** What encodeLine does. */
  encode(target: Buffer, offset: number, request: ObservedRequest, droppedBefore: number, nowMs: number): number {
    const secondStartMs = Math.floor(nowMs / 1000) * 1000;
    let at: number;
    if (
      secondStartMs === this.#headSecondStartMs && request.operation === this.#operation && request.bucket === this.#bucket &&
      request.principal === this.#principal && request.remoteAddress === this.#remoteAddress && request.accessKeyId === this.#accessKeyId
    ) {
      target.set(this.#head, offset);
      putThreeDigits(target, offset + this.#millisecondsAt, nowMs - secondStartMs);
      at = offset + this.#head.length;
    } else {
      at = this.#encodeHead(target, offset, request, nowMs, secondStartMs);
    }
    if (request.status === this.#status && request.bytesIn === this.#bytesIn && request.bytesOut === this.#bytesOut) {
      target.set(this.#numbers, at);
      at += this.#numbers.length;
    } else {
      at = this.#encodeNumbers(target, at, request);
    }
    at = request.requestNumber === undefined ? putJsonString(target, at, request.requestId) : putQuotedRequestId(target, at, request.requestNumber);
    at = putKeyName(target, at);
    at = putJsonString(target, at, request.key);
    at = putDurationName(target, at);
    at = putMilliseconds(target, at, request.finishedMs - request.startedMs);
    if (request.errorCode !== undefined) {
      at = putAscii(target, at, ',"errorCode":');
      at = putJsonString(target, at, request.errorCode);
    }
    if (droppedBefore > 0) {
      at = putAscii(target, at, ',"droppedBefore":');
      at = putNumber(target, at, droppedBefore);
    }
    target[at] = CLOSE_BRACE;
    target[at + 1] = NEWLINE;
    return at + 2;
  }

  /** The head, encoded at `start` and kept with its second and values; returns its end. */
  #encodeHead(target: Buffer, start: number, request: ObservedRequest, nowMs: number, secondStartMs: number): number {
    if (secondStartMs !== this.#secondStartMs) {
      this.#secondText = `{"time":"${isoSecondPrefix(secondStartMs)}`;
      this.#secondStartMs = secondStartMs;
    }
    let at = putAscii(target, start, this.#secondText);
    this.#millisecondsAt = at - start;
    at = putThreeDigits(target, at, nowMs - secondStartMs);
    at = putAscii(target, at, 'Z","operation":');
    at = putJsonString(target, at, request.operation);
    at = putAscii(target, at, ',"bucket":');
    at = putJsonString(target, at, request.bucket);
    at = putAscii(target, at, ',"principal":');
    at = putJsonString(target, at, request.principal);
    at = putAscii(target, at, ',"remoteAddress":');
    at = putJsonString(target, at, request.remoteAddress);
    if (request.accessKeyId !== undefined) {
      at = putAscii(target, at, ',"accessKeyId":');
      at = putJsonString(target, at, request.accessKeyId);
    }
    this.#head = copyOf(target, start, at);
    this.#headSecondStartMs = secondStartMs;
    this.#operation = request.operation;
    this.#bucket = request.bucket;
    this.#principal = request.principal;
    this.#remoteAddress = request.remoteAddress;
    this.#accessKeyId = request.accessKeyId;
    return at;
  }

  /** The numbers' run, encoded at `start` and kept with its values; returns its end. */
  #encodeNumbers(target: Buffer, start: number, request: ObservedRequest): number {
    let at = putAscii(target, start, ',"status":');
    at = putNumber(target, at, request.status);
    at = putAscii(target, at, ',"bytesIn":');
    at = putNumber(target, at, request.bytesIn);
    at = putAscii(target, at, ',"bytesOut":');
    at = putNumber(target, at, request.bytesOut);
    at = putAscii(target, at, ',"requestId":');
    this.#numbers = copyOf(target, start, at);
    this.#status = request.status;
    this.#bytesIn = request.bytesIn;
    this.#bytesOut = request.bytesOut;
    return at;
  }
}

const EMPTY_PART = new Uint8Array(0);
const sharedEncoder = new LineEncoder();

/** A copy of target's bytes from start to end (not a view, as Buffer's slice gives: the batch they were encoded into is reused). */
function copyOf(target: Uint8Array, start: number, end: number): Uint8Array {
  const part = new Uint8Array(end - start);
  part.set(target.subarray(start, end));
  return part;
}

/** 0–999 as three digits (the milliseconds of an ISO time). */
function putThreeDigits(target: Uint8Array, offset: number, value: number): number {
  const hundreds = Math.floor(value / 100);
  const tens = Math.floor(value / 10) - hundreds * 10;
  target[offset] = DIGIT_ZERO + hundreds;
  target[offset + 1] = DIGIT_ZERO + tens;
  target[offset + 2] = DIGIT_ZERO + (value - hundreds * 100 - tens * 10);
  return offset + 3;
}

/** The most bytes encodeLine can write for `request`. */
export function lineBytesMax(request: ObservedRequest): number {
  const units = request.requestId.length + request.operation.length + request.bucket.length + request.key.length + request.principal.length +
    request.remoteAddress.length + (request.accessKeyId?.length ?? 0) + (request.errorCode?.length ?? 0);
  return LINE_FIXED_BYTES_MAX + JSON_BYTES_PER_UNIT_MAX * units;
}

const QUOTE = 0x22;
const COMMA = 0x2c;
const COLON = 0x3a;
const BACKSLASH = 0x5c;
const CLOSE_BRACE = 0x7d;
const NEWLINE = 0x0a;
const DOT = 0x2e;
const DIGIT_ZERO = 0x30;
/** Durations are written digit by digit below this many microseconds (31 years); larger ones as JavaScript writes them. */
const MICROSECONDS_DIGITS_MAX = 1e15;

/** Text known to be plain ASCII (names, punctuation, digits). */
function putAscii(target: Uint8Array, offset: number, text: string): number {
  for (let i = 0; i < text.length; i++) target[offset + i] = text.charCodeAt(i);
  return offset + text.length;
}

/*
 * The two names between fields that change with every line, `,"key":` and
 * `,"durationMs":`, are written one constant byte at a time. A byte stored
 * into the batch costs ~13 instructions; copying them from an array in a
 * loop cost ~30 a byte (a load and a store, each with its checks), and a
 * TypedArray set ~240 a call (callgrind, counted in a loop of lines;
 * docs/PERFORMANCE.md, "Metrics and logs, round 12").
 */

/** The request ID of request number `number` (requestIdOf), quoted. */
function putQuotedRequestId(target: Buffer, at: number, number: number): number {
  target[at] = QUOTE;
  at = putRequestId(target, at + 1, number);
  target[at] = QUOTE;
  return at + 1;
}

/** `,"key":` */
function putKeyName(target: Buffer, at: number): number {
  target[at] = COMMA;
  target[at + 1] = QUOTE;
  target[at + 2] = 0x6b; // k
  target[at + 3] = 0x65; // e
  target[at + 4] = 0x79; // y
  target[at + 5] = QUOTE;
  target[at + 6] = COLON;
  return at + 7;
}

/** `,"durationMs":` */
function putDurationName(target: Buffer, at: number): number {
  target[at] = COMMA;
  target[at + 1] = QUOTE;
  target[at + 2] = 0x64; // d
  target[at + 3] = 0x75; // u
  target[at + 4] = 0x72; // r
  target[at + 5] = 0x61; // a
  target[at + 6] = 0x74; // t
  target[at + 7] = 0x69; // i
  target[at + 8] = 0x6f; // o
  target[at + 9] = 0x6e; // n
  target[at + 10] = 0x4d; // M
  target[at + 11] = 0x73; // s
  target[at + 12] = QUOTE;
  target[at + 13] = COLON;
  return at + 14;
}

/** `text` as a JSON string: printable ASCII without quote or backslash byte by byte; anything else as JSON.stringify writes it, in UTF-8. */
function putJsonString(target: Buffer, offset: number, text: string): number {
  target[offset] = QUOTE;
  let at = offset + 1;
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code < 0x20 || code > 0x7e || code === QUOTE || code === BACKSLASH) return offset + target.write(JSON.stringify(text), offset);
    target[at++] = code;
  }
  target[at] = QUOTE;
  return at + 1;
}

/** A number as JSON.stringify writes it: whole non-negative ones digit by digit. */
function putNumber(target: Buffer, offset: number, value: number): number {
  if (!Number.isSafeInteger(value) || value < 0) return putAscii(target, offset, jsonNumber(value));
  return putDigits(target, offset, value);
}

function putDigits(target: Buffer, offset: number, value: number): number {
  let digits = 1;
  for (let rest = value; rest >= 10; rest = Math.floor(rest / 10)) digits++;
  let rest = value;
  for (let i = digits - 1; i >= 0; i--) {
    const quotient = Math.floor(rest / 10);
    target[offset + i] = DIGIT_ZERO + (rest - quotient * 10);
    rest = quotient;
  }
  return offset + digits;
}

/**
 * `milliseconds` rounded to the microsecond, as formatLine writes
 * Math.round(ms * 1000) / 1000: the whole part, and the fraction's digits
 * without trailing zeros (the shortest decimal that reads back as that
 * double, which is what JavaScript writes).
 */
function putMilliseconds(target: Buffer, offset: number, milliseconds: number): number {
  const microseconds = Math.round(milliseconds * 1000);
  if (!(microseconds >= 0 && microseconds < MICROSECONDS_DIGITS_MAX)) return putAscii(target, offset, jsonNumber(microseconds / 1000));
  const whole = Math.floor(microseconds / 1000);
  let fraction = microseconds - whole * 1000;
  let at = putDigits(target, offset, whole);
  if (fraction === 0) return at;
  target[at++] = DOT;
  for (let place = 100; fraction > 0; place /= 10) {
    const digit = Math.floor(fraction / place);
    target[at++] = DIGIT_ZERO + digit;
    fraction -= digit * place;
  }
  return at;
}

/** What JSON.stringify escapes in a string: quote, backslash, control characters, and (unpaired) surrogates. */
const NEEDS_ESCAPING = /["\\\u0000-\u001f\ud800-\udfff]/;

/** JSON.stringify(text), without its work for the common string that needs no escaping. */
function jsonString(text: string): string {
  return NEEDS_ESCAPING.test(text) ? JSON.stringify(text) : `"${text}"`;
}

/** JSON.stringify(value) for a number (null for NaN and the infinities, as JSON has neither). */
function jsonNumber(value: number): string {
  return Number.isFinite(value) ? `${value}` : 'null';
}

/** Where the second isoSecondPrefix last formatted starts (ms), and its "YYYY-MM-DDTHH:mm:ss.". */
let isoSecondStartMs = Number.NaN;
let isoSecondText = '';
/** "000Z" … "999Z": the milliseconds' part of an ISO time. */
const ISO_MILLISECONDS = Array.from({ length: 1000 }, (_, ms) => `${String(ms).padStart(3, '0')}Z`);

/**
 * The first 20 characters of new Date(ms).toISOString() for an integer ms,
 * made once a second instead of once a line; the rest is
 * ISO_MILLISECONDS[ms - isoSecondStartMs] (isoSecondStartMs is ms's second after this call).
 */
function isoSecondPrefix(ms: number): string {
  const secondStartMs = Math.floor(ms / 1000) * 1000;
  if (secondStartMs !== isoSecondStartMs) {
    isoSecondText = new Date(secondStartMs).toISOString().slice(0, 20);
    isoSecondStartMs = secondStartMs;
  }
  return isoSecondText;
}

/** new Date(ms).toISOString() for an integer ms. */
function isoTime(ms: number): string {
  return isoSecondPrefix(ms) + ISO_MILLISECONDS[ms - isoSecondStartMs]!;
}
