/**
 * The opt-in access log (`--access-log FILE`, `-` for stdout): one JSON line
 * per request — request ID, operation, bucket, key, status, bytes, duration,
 * principal, access key ID, remote address. Never headers, never a query
 * string (presigned URLs carry signatures), never a secret.
 *
 * Writing never holds a request back: lines go to a buffered stream, and
 * while more than ACCESS_LOG_BUFFER_BYTES_MAX wait for the disk, lines are
 * dropped and counted (the next line written says how many), so a slow disk
 * cannot grow memory without bound.
 */
import { createWriteStream, type WriteStream } from 'node:fs';
import type { ObservedRequest } from './observed-request.ts';

export const ACCESS_LOG_BUFFER_BYTES_MAX = 8 * 1024 * 1024;

export class AccessLog {
  readonly #stream: NodeJS.WritableStream & { writableLength: number };
  readonly #owned: WriteStream | undefined;
  #dropped = 0;

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
    if (this.#stream.writableLength > ACCESS_LOG_BUFFER_BYTES_MAX) {
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
    this.#stream.write(`${JSON.stringify(entry)}\n`);
  }

  close(): Promise<void> {
    const owned = this.#owned;
    if (owned === undefined) return Promise.resolve();
    return new Promise((resolve) => owned.end(() => resolve()));
  }
}
