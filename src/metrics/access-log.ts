/**
 * The opt-in access log (`--access-log FILE`, `-` for stdout): one JSON line
 * per request — request ID, operation, bucket, key, status, bytes, duration,
 * principal, access key ID, remote address. Never headers, never a query
 * string (presigned URLs carry signatures), never a secret.
 *
 * Writing never holds a request back: lines gather in memory and go to the
 * stream in batches (at ACCESS_LOG_BATCH_BYTES, or ACCESS_LOG_FLUSH_MS after
 * the first line of a batch): a write per request costs a thread-pool write
 * and a system call each, which at thousands of requests a second was most of
 * the log's cost (the bench suite's observability-4k-get). The last
 * ACCESS_LOG_FLUSH_MS of lines can be lost in a crash, as a buffered log's
 * are. While more than ACCESS_LOG_BUFFER_BYTES_MAX wait for the disk, lines
 * are dropped and counted (the next line written says how many), so a slow
 * disk cannot grow memory without bound.
 */
import { createWriteStream, type WriteStream } from 'node:fs';
import type { ObservedRequest } from './observed-request.ts';

export const ACCESS_LOG_BUFFER_BYTES_MAX = 8 * 1024 * 1024;
/** A batch goes to the stream once it holds this much (one write of a few hundred lines). */
export const ACCESS_LOG_BATCH_BYTES = 64 * 1024;
/** ... or this long after its first line, so a quiet server's lines still reach the file promptly. */
export const ACCESS_LOG_FLUSH_MS = 100;

export class AccessLog {
  readonly #stream: NodeJS.WritableStream & { writableLength: number };
  readonly #owned: WriteStream | undefined;
  #dropped = 0;
  #batch: string[] = [];
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
    const entry: Record<string, unknown> = {
      time: new Date().toISOString(),
      requestId: request.requestId,
      operation: request.operation,
      bucket: request.bucket,
      key: request.key,
      status: request.status,
      bytesIn: request.bytesIn,
      bytesOut: request.bytesOut,
      durationMs: Math.round((request.finishedMs - request.startedMs) * 1000) / 1000,
      principal: request.principal,
      remoteAddress: request.remoteAddress,
    };
    if (request.accessKeyId !== undefined) entry['accessKeyId'] = request.accessKeyId;
    if (request.errorCode !== undefined) entry['errorCode'] = request.errorCode;
    if (this.#dropped > 0) {
      entry['droppedBefore'] = this.#dropped;
      this.#dropped = 0;
    }
    const line = `${JSON.stringify(entry)}\n`;
    this.#batch.push(line);
    this.#batchBytes += line.length;
    if (this.#batchBytes >= ACCESS_LOG_BATCH_BYTES) this.#flush();
    else if (this.#flushTimer === undefined) this.#flushTimer = setTimeout(() => this.#flush(), ACCESS_LOG_FLUSH_MS).unref();
  }

  #flush(): void {
    if (this.#flushTimer !== undefined) clearTimeout(this.#flushTimer);
    this.#flushTimer = undefined;
    if (this.#batch.length === 0) return;
    const text = this.#batch.join('');
    this.#batch = [];
    this.#batchBytes = 0;
    this.#stream.write(text);
  }

  close(): Promise<void> {
    this.#flush();
    const owned = this.#owned;
    if (owned === undefined) return Promise.resolve();
    return new Promise((resolve) => owned.end(() => resolve()));
  }
}
