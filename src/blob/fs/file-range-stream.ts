import { close, read } from 'node:fs';
import { Readable, type Writable } from 'node:stream';
import { assert } from '../../util/assert.ts';
import type { DirectBody } from '../../util/direct-body.ts';
import { ShortReadError } from '../../util/short-read-error.ts';

export const FILE_READ_CHUNK_BYTES = 256 * 1024;
/** Buffers a piped read keeps in flight: one being read while the other is written. */
const PIPE_BUFFERS = 2;
/** Idle buffers kept for reuse across reads (8 MiB). */
const FREE_BUFFERS_MAX = 32;
const freeBuffers: Buffer[] = [];

function takeBuffer(): Buffer {
  return freeBuffers.pop() ?? Buffer.allocUnsafeSlow(FILE_READ_CHUNK_BYTES);
}

function returnBuffer(buffer: Buffer): void {
  if (freeBuffers.length < FREE_BUFFERS_MAX) freeBuffers.push(buffer);
}

function readAt(fd: number, buffer: Buffer, length: number, position: number): Promise<number> {
  return new Promise((resolve, reject) => {
    read(fd, buffer, 0, length, position, (error, bytesRead) => (error === null ? resolve(bytesRead) : reject(error)));
  });
}

/**
 * Bytes [start, end) of an open file descriptor, which it owns and closes.
 * As a Readable it reads fresh 256 KiB chunks (the consumer keeps them);
 * `pipeInto` reads into two reused buffers instead, each written to the
 * destination before it is read into again (the write callback says when the
 * socket is done with it).
 */
export class FileRangeStream extends Readable implements DirectBody {
  readonly #fd: number;
  #position: number;
  readonly #end: number;
  #piping = false;
  /** The read the thread pool is doing into one of our buffers: the descriptor stays open until it is done. */
  #reading: Promise<unknown> | undefined;
  readonly #chunkBytes: number;

  /** `chunkBytes` sizes the chunks of the Readable (a reader of fixed-size frames asks for its frame size); pipeInto keeps its pooled size. */
  constructor(fd: number, start: number, end: number, chunkBytes = FILE_READ_CHUNK_BYTES) {
    super({ highWaterMark: chunkBytes });
    assert(start >= 0 && end >= start, 'a file range is ordered');
    assert(Number.isInteger(chunkBytes) && chunkBytes > 0 && chunkBytes <= 16 * 1024 * 1024, `chunk bytes ${chunkBytes}`);
    this.#chunkBytes = chunkBytes;
    this.#fd = fd;
    this.#position = start;
    this.#end = end;
  }

  override _read(): void {
    const length = Math.min(this.#chunkBytes, this.#end - this.#position);
    if (length === 0) {
      this.push(null);
      return;
    }
    const buffer = Buffer.allocUnsafe(length);
    const reading = readAt(this.#fd, buffer, length, this.#position);
    this.#reading = reading;
    reading.then(
      (bytesRead) => {
        this.#reading = undefined;
        if (this.destroyed) return;
        if (bytesRead === 0) return void this.destroy(new ShortReadError('blob file ended before its recorded size'));
        this.#position += bytesRead;
        this.push(bytesRead === length ? buffer : buffer.subarray(0, bytesRead));
      },
      (error: Error) => {
        this.#reading = undefined;
        this.destroy(error);
      },
    );
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    // Closing under a read the pool has not started could let it read whatever file reuses the number.
    const reading = this.#reading ?? Promise.resolve();
    void reading.catch(() => undefined).then(() => close(this.#fd, () => callback(error)));
  }

  async pipeInto(destination: Writable): Promise<void> {
    assert(!this.#piping && this.readableFlowing !== true && this.readableLength === 0, 'pipeInto on an unread stream, once');
    this.#piping = true;
    if (destination.destroyed) {
      this.destroy();
      throw new Error('the response closed before the body was written');
    }
    const buffers = Array.from({ length: PIPE_BUFFERS }, takeBuffer);
    // Per buffer, the operation that holds it (a read into it, then its
    // write): it settles once neither the kernel nor the socket uses it.
    const holds: (Promise<unknown> | undefined)[] = new Array<Promise<unknown> | undefined>(PIPE_BUFFERS).fill(undefined);
    let onClose: (() => void) | undefined;
    const closedEarly = new Promise<never>((_, reject) => {
      onClose = () => reject(new Error('the response closed before the body was written'));
      destination.once('close', onClose);
    });
    closedEarly.catch(() => undefined);
    try {
      for (let turn = 0; this.#position < this.#end; turn = (turn + 1) % PIPE_BUFFERS) {
        const buffer = buffers[turn]!;
        if (holds[turn] !== undefined) await Promise.race([holds[turn], closedEarly]);
        const length = Math.min(FILE_READ_CHUNK_BYTES, this.#end - this.#position);
        const reading = readAt(this.#fd, buffer, length, this.#position);
        this.#reading = reading;
        holds[turn] = reading;
        const bytesRead = await Promise.race([reading, closedEarly]);
        this.#reading = undefined;
        if (bytesRead === 0) throw new ShortReadError('blob file ended before its recorded size');
        this.#position += bytesRead;
        const writing = new Promise<void>((resolve, reject) => {
          destination.write(buffer.subarray(0, bytesRead), (error?: Error | null) => (error === null || error === undefined ? resolve() : reject(error)));
        });
        writing.catch(() => undefined);
        holds[turn] = writing;
      }
      await Promise.race([Promise.all(holds), closedEarly]);
      await Promise.race([
        new Promise<void>((resolve) => destination.end(() => resolve())),
        closedEarly,
      ]);
    } finally {
      destination.removeListener('close', onClose!);
      // A buffer goes back to the pool only once what held it succeeded; one
      // a failed write may still be referenced by is left to the collector.
      for (const [turn, buffer] of buffers.entries()) {
        const hold = holds[turn];
        if (hold === undefined) returnBuffer(buffer);
        else hold.then(() => returnBuffer(buffer), () => undefined);
      }
      // Closes the descriptor and emits 'close' (read leases are released on it).
      this.destroy();
    }
  }
}
