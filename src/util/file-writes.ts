import type { FileHandle } from 'node:fs/promises';

/** Writes every chunk at `position` onwards, however short each writev comes back. */
export async function writevFully(handle: FileHandle, chunks: readonly Uint8Array[], position: number): Promise<void> {
  let pending = chunks.filter((chunk) => chunk.length > 0);
  let at = position;
  while (pending.length > 0) {
    const { bytesWritten } = await handle.writev(pending, at);
    at += bytesWritten;
    pending = skipBytes(pending, bytesWritten);
  }
}

/** The chunks left after a short writev wrote `bytes` of them. */
function skipBytes(chunks: Uint8Array[], bytes: number): Uint8Array[] {
  let skipped = bytes;
  let index = 0;
  while (index < chunks.length && skipped >= chunks[index]!.length) skipped -= chunks[index++]!.length;
  const rest = chunks.slice(index);
  if (skipped > 0) rest[0] = rest[0]!.subarray(skipped);
  return rest;
}

/**
 * Write-behind for one file being written: every `everyBytes` a datasync
 * starts in the background, so the fsync that makes the file durable finds
 * little left to flush. A failed datasync must fail the file: Linux reports
 * a writeback error once per file, so the final fsync could succeed over
 * lost pages.
 */
export class WriteBehind {
  readonly #everyBytes: number;
  #syncing: Promise<void> | undefined;
  #failure: unknown;

  constructor(everyBytes: number) {
    this.#everyBytes = everyBytes;
  }

  /** The first failed datasync, if any. */
  get failure(): unknown {
    return this.#failure;
  }

  /** After bytes [from, to) were written: starts a datasync when that crossed a boundary and none is running. */
  wrote(handle: FileHandle, from: number, to: number): void {
    if (Math.floor(to / this.#everyBytes) === Math.floor(from / this.#everyBytes) || this.#syncing !== undefined) return;
    this.#syncing = handle.datasync().then(
      () => {
        this.#syncing = undefined;
      },
      (error: unknown) => {
        this.#failure ??= error;
        this.#syncing = undefined;
      },
    );
  }

  /** Waits for a datasync in flight; never rejects (see `failure`). */
  async settled(): Promise<void> {
    await this.#syncing;
  }
}
