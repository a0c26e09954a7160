import { closeSync, open as openCallback } from 'node:fs';
import { mkdir, open, readdir, rename, rm, unlink, type FileHandle } from 'node:fs/promises';
import { promisify } from 'node:util';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { assert } from '../../util/assert.ts';
import { processWriteBudget, type ByteBudget } from '../../util/byte-budget.ts';
import { WriteBehind, writevFully } from '../../util/file-writes.ts';
import { newBlobId } from '../../util/ids.ts';
import { storageError } from '../../util/s3-error.ts';
import { BlobNotFoundError, type BlobRef, type BlobStore, type BlobWriter } from '../blob-store.ts';
import { FileRangeStream } from './file-range-stream.ts';
import { partialDirectory } from './partial-blobs.ts';

const WRITE_BATCH_BYTES = 1024 * 1024;
/** writev takes at most IOV_MAX (1024) buffers. */
const WRITE_BATCH_CHUNKS_MAX = 512;
const WRITES_IN_FLIGHT_MAX = 2;
const WRITE_BEHIND_BYTES = 8 * 1024 * 1024;
const FANOUT_DIRECTORIES = 256;
const BLOB_ID_PATTERN = /^[0-9a-z]{9}[0-9a-f]{20}$/;

/**
 * Blobs as files under `<root>/<xx>/<id>`, where xx is the blob ID's last two
 * hex digits (random), so no directory grows past ~1/256 of the blobs.
 * A blob is written under `<root>/partial/<pid>/` and renamed into place by
 * its commit, so unfinished uploads name the process writing them
 * (partial-blobs.ts). Durability: the file is fsynced, renamed, and then its
 * directory fsynced, so a committed blob survives a crash before the
 * metadata commit makes it visible.
 */
export class FsBlobStore implements BlobStore {
  readonly #root: string;
  readonly #writeBudget: ByteBudget;
  readonly #partialDirectory: string;

  private constructor(root: string, writeBudget: ByteBudget) {
    this.#root = root;
    this.#writeBudget = writeBudget;
    this.#partialDirectory = partialDirectory(root, process.pid);
  }

  static async open(root: string, options: { writeBudget?: ByteBudget } = {}): Promise<FsBlobStore> {
    await mkdir(root, { recursive: true });
    await Promise.all(
      Array.from({ length: FANOUT_DIRECTORIES }, (_, i) => mkdir(join(root, fanoutName(i)), { recursive: true })),
    );
    await mkdir(partialDirectory(root, process.pid), { recursive: true });
    return new FsBlobStore(root, options.writeBudget ?? processWriteBudget);
  }

  path(id: string): string {
    assert(BLOB_ID_PATTERN.test(id), `invalid blob id ${id}`);
    return join(this.#root, id.slice(-2), id);
  }

  create(): BlobWriter {
    const id = newBlobId();
    return new FsBlobWriter(id, join(this.#partialDirectory, id), this.path(id), join(this.#root, id.slice(-2)), this.#writeBudget);
  }

  async read(blob: BlobRef, start: number, end: number): Promise<Readable> {
    assert(blob.location === undefined, `blob ${blob.blobId} is not a local one`);
    const id = blob.blobId;
    assert(start >= 0 && end >= start, `invalid blob range ${start}-${end}`);
    const path = this.path(id);
    let fd: number;
    try {
      fd = await openDescriptor(path);
    } catch (error) {
      if (isNotFound(error)) throw new BlobNotFoundError(id);
      throw error;
    }
    // The file is open: a purge that unlinks it now cannot cut this read short.
    if (end === start) {
      closeSync(fd);
      return Readable.from([]);
    }
    // A stream over the descriptor (callback reads: measurably cheaper per
    // chunk than FileHandle's promise-based stream) that can also pipe
    // itself into a response with reused buffers (DirectBody).
    return new FileRangeStream(fd, start, end);
  }

  async remove(blob: BlobRef): Promise<void> {
    assert(blob.location === undefined, `blob ${blob.blobId} is not a local one`);
    try {
      await unlink(this.path(blob.blobId));
    } catch (error) {
      if (!isNotFound(error)) throw error;
    }
  }

  async *list(): AsyncIterable<string> {
    for (let i = 0; i < FANOUT_DIRECTORIES; i++) {
      const entries = await readdir(join(this.#root, fanoutName(i)));
      // Other files (editor backups, NFS debris) are not ours to judge: skip them.
      for (const name of entries) if (BLOB_ID_PATTERN.test(name)) yield name;
    }
  }

  async close(): Promise<void> {}
}

/**
 * Chunks are gathered (not copied: socket chunks are often 16-64 KiB, and
 * every write is a trip through libuv's thread pool) until about
 * WRITE_BATCH_BYTES, then written with one writev at their file offset. Up
 * to WRITES_IN_FLIGHT_MAX batches are written at once, so the caller hashes
 * the next chunks while earlier ones reach the disk. Memory per writer: at
 * most (WRITES_IN_FLIGHT_MAX + 1) batches; for all writers together, the
 * store's write budget, held from write() until the bytes are written.
 */
class FsBlobWriter implements BlobWriter {
  readonly id: string;
  readonly location = undefined;
  /** Where the bytes are written; renamed to #path by the commit. */
  readonly #partialPath: string;
  readonly #path: string;
  readonly #directory: string;
  readonly #budget: ByteBudget;
  /** Set while gathered bytes sit unwritten: others waiting for the budget make us write them. */
  #unsubscribePressure: (() => void) | undefined;
  #handle: Promise<FileHandle> | undefined;
  /** Bytes handed to write() so far; the gathered batch starts at #flushedBytes. */
  #sizeBytes = 0;
  #flushedBytes = 0;
  #gathered: Buffer[] = [];
  #gatheredBytes = 0;
  readonly #inFlight = new Set<Promise<void>>();
  #failure: unknown;
  readonly #writeBehind = new WriteBehind(WRITE_BEHIND_BYTES);
  #state: 'open' | 'committed' | 'aborted' = 'open';

  constructor(id: string, partialPath: string, path: string, directory: string, budget: ByteBudget) {
    this.id = id;
    this.#partialPath = partialPath;
    this.#path = path;
    this.#directory = directory;
    this.#budget = budget;
  }

  #file(): Promise<FileHandle> {
    // Opened lazily so a request that fails before its first byte creates no file.
    this.#handle ??= open(this.#partialPath, 'wx');
    return this.#handle;
  }

  async write(chunk: Buffer): Promise<void> {
    assert(this.#state === 'open', `write to ${this.#state} blob`);
    this.#failure ??= this.#writeBehind.failure;
    if (this.#failure !== undefined) throw this.#failure;
    if (chunk.length === 0) return;
    if (!this.#budget.tryAcquire(chunk.length)) {
      // Wait holding only bytes on their way to disk (see ByteBudget).
      this.#startWrite();
      await this.#budget.acquire(chunk.length);
      if (this.#state !== 'open' || this.#failure !== undefined) {
        this.#budget.release(chunk.length);
        if (this.#failure !== undefined) throw this.#failure;
        return;
      }
    }
    if (this.#gatheredBytes === 0) this.#unsubscribePressure = this.#budget.onPressure(() => this.#startWrite());
    this.#gathered.push(chunk);
    this.#gatheredBytes += chunk.length;
    this.#sizeBytes += chunk.length;
    if (this.#gatheredBytes >= WRITE_BATCH_BYTES || this.#gathered.length >= WRITE_BATCH_CHUNKS_MAX) await this.#flushGathered();
  }

  /** Starts writing the gathered chunks; waits only while too many writes are in flight. */
  async #flushGathered(): Promise<void> {
    this.#startWrite();
    while (this.#inFlight.size >= WRITES_IN_FLIGHT_MAX) await Promise.race(this.#inFlight);
    if (this.#failure !== undefined) throw this.#failure;
  }

  /** Moves the gathered chunks into a write of their own, without waiting for it. */
  #startWrite(): void {
    if (this.#gatheredBytes === 0) return;
    this.#stopListening();
    const chunks = this.#gathered;
    const bytes = this.#gatheredBytes;
    const position = this.#flushedBytes;
    this.#flushedBytes += bytes;
    this.#gathered = [];
    this.#gatheredBytes = 0;
    const write = this.#writeAt(chunks, position).catch((error: unknown) => {
      // ENOSPC, EACCES and the like answer as what they are (503), not as a 500.
      this.#failure ??= storageError(error);
    });
    this.#inFlight.add(write);
    void write.finally(() => {
      this.#inFlight.delete(write);
      this.#budget.release(bytes);
    });
  }

  #stopListening(): void {
    this.#unsubscribePressure?.();
    this.#unsubscribePressure = undefined;
  }

  async #writeAt(chunks: Buffer[], position: number): Promise<void> {
    const handle = await this.#file();
    await writevFully(handle, chunks, position);
    this.#writeBehind.wrote(handle, position, position + chunks.reduce((sum, chunk) => sum + chunk.length, 0));
  }

  async commit(): Promise<number> {
    try {
      return await this.#commit();
    } catch (error) {
      throw storageError(error);
    }
  }

  async #commit(): Promise<number> {
    assert(this.#state === 'open', `commit of ${this.#state} blob`);
    await this.#flushGathered();
    await Promise.all(this.#inFlight);
    if (this.#failure !== undefined) throw this.#failure;
    assert(this.#flushedBytes === this.#sizeBytes, 'every byte written');
    const handle = await this.#file();
    await this.#writeBehind.settled();
    this.#failure ??= this.#writeBehind.failure;
    if (this.#failure !== undefined) throw this.#failure;
    await handle.sync();
    await handle.close();
    await rename(this.#partialPath, this.#path);
    this.#state = 'committed';
    await syncDirectory(this.#directory);
    return this.#sizeBytes;
  }

  async abort(): Promise<void> {
    if (this.#state === 'aborted') return;
    this.#state = 'aborted';
    this.#stopListening();
    this.#budget.release(this.#gatheredBytes);
    this.#gathered = [];
    this.#gatheredBytes = 0;
    await Promise.all(this.#inFlight);
    await this.#writeBehind.settled();
    if (this.#handle === undefined) return;
    try {
      const handle = await this.#handle;
      await handle.close().catch(() => undefined);
    } catch {
      // open itself failed: nothing to close
    }
    // Wherever a commit (finished or still running) left it: the ID is fresh, so neither path is anyone else's.
    await rm(this.#partialPath, { force: true });
    await rm(this.#path, { force: true });
  }
}

async function syncDirectory(directory: string): Promise<void> {
  const handle = await open(directory, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

const openDescriptor = promisify((path: string, callback: (error: NodeJS.ErrnoException | null, fd: number) => void) => openCallback(path, 'r', callback));

function fanoutName(i: number): string {
  return i.toString(16).padStart(2, '0');
}

function isNotFound(error: unknown): boolean {
  return typeof error === 'object' && error !== null && (error as { code?: unknown }).code === 'ENOENT';
}
