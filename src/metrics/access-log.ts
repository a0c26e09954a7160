/**
 * The opt-in access log (`--access-log FILE`, `-` for stdout): one JSON line
 * per request — request ID, operation, bucket, key, status, bytes, duration,
 * principal, access key ID, remote address. Never headers, never a query
 * string (presigned URLs carry signatures), never a secret.
 *
 * Writing never holds a request back: each line is encoded at once into a
 * batch buffer, which goes to the stream when full (ACCESS_LOG_BATCH_BYTES)
 * or ACCESS_LOG_FLUSH_MS after its first line: a stream write per request
 * costs a thread-pool write and a system call each. The batch is bytes
 * outside the JavaScript heap, not strings: lines kept as strings until the
 * write survived the young generation's collections and were copied by them
 * (~7 µs more CPU per GET with the log on, measured by thread, 2026-12-06;
 * docs/PERFORMANCE.md). The last ACCESS_LOG_FLUSH_MS of lines can be lost in
 * a crash, as a buffered log's are. While more than
 * ACCESS_LOG_BUFFER_BYTES_MAX wait for the disk, lines are dropped and
 * counted (the next line written says how many), so a slow disk cannot grow
 * memory without bound.
 */
import { createWriteStream, type WriteStream } from 'node:fs';
import type { ObservedRequest } from './observed-request.ts';

export const ACCESS_LOG_BUFFER_BYTES_MAX = 8 * 1024 * 1024;
/** A batch goes to the stream once it holds this much (one write of a few hundred lines). */
export const ACCESS_LOG_BATCH_BYTES = 64 * 1024;
/** ... or this long after its first line, so a quiet server's lines still reach the file promptly. */
export const ACCESS_LOG_FLUSH_MS = 100;
/** UTF-8 takes at most 3 bytes per UTF-16 code unit (a surrogate pair: 4 bytes for 2 units). */
const UTF8_BYTES_PER_UNIT_MAX = 3;

export class AccessLog {
  readonly #stream: NodeJS.WritableStream & { writableLength: number };
  readonly #owned: WriteStream | undefined;
  #dropped = 0;
  /** The batch being filled: a new buffer after each write, as the stream keeps the one it was given. */
  #batch = Buffer.allocUnsafeSlow(ACCESS_LOG_BATCH_BYTES);
  #batchBytes = 0;
  #flushTimer: NodeJS.Timeout | undefined;

  /** `-` writes to stdout; anything else is a file, appended to. */
  constructor(destination: string) {
    if (destination === '-') {
      this.#stream = process.stdout;
      this.#owned = undefined;
    } else {
      this.#owned = createWriteStream(destination, { flags: 'a', mode: 0o640 });
      this.#stream = this.#owned;
    }
  }

  write(request: ObservedRequest): void {
    if (this.#stream.writableLength + this.#batchBytes > ACCESS_LOG_BUFFER_BYTES_MAX) {
      this.#dropped++;
      return;
    }
    const line = `${formatLine(request, this.#dropped)}\n`;
    this.#dropped = 0;
    if (this.#batchBytes + line.length * UTF8_BYTES_PER_UNIT_MAX > this.#batch.length) this.#flush();
    if (line.length * UTF8_BYTES_PER_UNIT_MAX > this.#batch.length) {
      // A line longer than a batch (a key of thousands of characters): a write of its own.
      this.#stream.write(line);
      return;
    }
    this.#batchBytes += this.#batch.write(line, this.#batchBytes);
    if (this.#flushTimer === undefined) this.#flushTimer = setTimeout(() => this.#flush(), ACCESS_LOG_FLUSH_MS).unref();
  }

  #flush(): void {
    if (this.#flushTimer !== undefined) clearTimeout(this.#flushTimer);
    this.#flushTimer = undefined;
    if (this.#batchBytes === 0) return;
    const full = this.#batch.subarray(0, this.#batchBytes);
    this.#batch = Buffer.allocUnsafeSlow(ACCESS_LOG_BATCH_BYTES);
    this.#batchBytes = 0;
    this.#stream.write(full);
  }

  close(): Promise<void> {
    this.#flush();
    const owned = this.#owned;
    if (owned === undefined) return Promise.resolve();
    return new Promise((resolve) => owned.end(() => resolve()));
  }
}

/**
 * One request's line without its newline: exactly what JSON.stringify gives
 * for the entry object { time, requestId, operation, bucket, key, status,
 * bytesIn, bytesOut, durationMs, principal, remoteAddress, accessKeyId?,
 * errorCode?, droppedBefore? } (test/observability-access-log.test.ts compares the two).
 * Building that object and stringifying it, with a Date per line, cost ~8 µs
 * of CPU per GET in a profiled server (the bench suite's observability-4k-get,
 * 2026-12-06); a template over strings checked by one regular expression
 * each costs a fraction of it.
 */
export function formatLine(request: ObservedRequest, droppedBefore = 0): string {
  let line = `{"time":"${isoTime(Date.now())}","requestId":${jsonString(request.requestId)},"operation":${jsonString(request.operation)},` +
    `"bucket":${jsonString(request.bucket)},"key":${jsonString(request.key)},"status":${jsonNumber(request.status)},` +
    `"bytesIn":${jsonNumber(request.bytesIn)},"bytesOut":${jsonNumber(request.bytesOut)},` +
    `"durationMs":${jsonNumber(Math.round((request.finishedMs - request.startedMs) * 1000) / 1000)},` +
    `"principal":${jsonString(request.principal)},"remoteAddress":${jsonString(request.remoteAddress)}`;
  if (request.accessKeyId !== undefined) line += `,"accessKeyId":${jsonString(request.accessKeyId)}`;
  if (request.errorCode !== undefined) line += `,"errorCode":${jsonString(request.errorCode)}`;
  if (droppedBefore > 0) line += `,"droppedBefore":${droppedBefore}`;
  return `${line}}`;
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

/** "YYYY-MM-DDTHH:mm:ss." of the second isoTime last formatted, and where that second starts (ms). */
let isoSecondStartMs = Number.NaN;
let isoSecondPrefix = '';
/** "000Z" … "999Z": the milliseconds' part of an ISO time. */
const ISO_MILLISECONDS = Array.from({ length: 1000 }, (_, ms) => `${String(ms).padStart(3, '0')}Z`);

/** new Date(ms).toISOString() for an integer ms, with the Date made once a second instead of once a line. */
function isoTime(ms: number): string {
  const secondStartMs = Math.floor(ms / 1000) * 1000;
  if (secondStartMs !== isoSecondStartMs) {
    isoSecondPrefix = new Date(secondStartMs).toISOString().slice(0, 20);
    isoSecondStartMs = secondStartMs;
  }
  return isoSecondPrefix + ISO_MILLISECONDS[ms - secondStartMs]!;
}
