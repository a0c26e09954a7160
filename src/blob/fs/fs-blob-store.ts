import { mkdir, open, readdir, rm, unlink, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { assert } from '../../util/assert.ts';
import { newBlobId } from '../../util/ids.ts';
import { BlobNotFoundError, type BlobStore, type BlobWriter } from '../blob-store.ts';

const READ_HIGH_WATER_MARK_BYTES = 256 * 1024;
const FANOUT_DIRECTORIES = 256;
const BLOB_ID_PATTERN = /^[0-9a-z]{9}[0-9a-f]{20}$/;

/**
 * Blobs as files under `<root>/<xx>/<id>`, where xx is the blob ID's last two
 * hex digits (random), so no directory grows past ~1/256 of the blobs.
 * Durability: the file is fsynced and then its directory, so a committed blob
 * survives a crash before the metadata commit makes it visible.
 */
export class FsBlobStore implements BlobStore {
  readonly #root: string;

  private constructor(root: string) {
    this.#root = root;
  }

  static async open(root: string): Promise<FsBlobStore> {
    await mkdir(root, { recursive: true });
    await Promise.all(
      Array.from({ length: FANOUT_DIRECTORIES }, (_, i) => mkdir(join(root, fanoutName(i)), { recursive: true })),
    );
    return new FsBlobStore(root);
  }

  path(id: string): string {
    assert(BLOB_ID_PATTERN.test(id), `invalid blob id ${id}`);
    return join(this.#root, id.slice(-2), id);
  }

  create(): BlobWriter {
    const id = newBlobId();
    return new FsBlobWriter(id, this.path(id), join(this.#root, id.slice(-2)));
  }

  async read(id: string, start: number, end: number): Promise<Readable> {
    assert(start >= 0 && end >= start, `invalid blob range ${start}-${end}`);
    let handle: FileHandle;
    try {
      handle = await open(this.path(id), 'r');
    } catch (error) {
      if (isNotFound(error)) throw new BlobNotFoundError(id);
      throw error;
    }
    // The handle is open: a purge that unlinks the file now cannot cut this read short.
    if (end === start) {
      await handle.close();
      return Readable.from([]);
    }
    return handle.createReadStream({ start, end: end - 1, highWaterMark: READ_HIGH_WATER_MARK_BYTES, autoClose: true });
  }

  async remove(id: string): Promise<void> {
    try {
      await unlink(this.path(id));
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

class FsBlobWriter implements BlobWriter {
  readonly id: string;
  readonly #path: string;
  readonly #directory: string;
  #handle: Promise<FileHandle> | undefined;
  #sizeBytes = 0;
  #state: 'open' | 'committed' | 'aborted' = 'open';

  constructor(id: string, path: string, directory: string) {
    this.id = id;
    this.#path = path;
    this.#directory = directory;
  }

  #file(): Promise<FileHandle> {
    // Opened lazily so a request that fails before its first byte creates no file.
    this.#handle ??= open(this.#path, 'wx');
    return this.#handle;
  }

  async write(chunk: Buffer): Promise<void> {
    assert(this.#state === 'open', `write to ${this.#state} blob`);
    const handle = await this.#file();
    let offset = 0;
    while (offset < chunk.length) {
      const { bytesWritten } = await handle.write(chunk, offset, chunk.length - offset, this.#sizeBytes);
      offset += bytesWritten;
      this.#sizeBytes += bytesWritten;
    }
  }

  async commit(): Promise<number> {
    assert(this.#state === 'open', `commit of ${this.#state} blob`);
    const handle = await this.#file();
    await handle.sync();
    await handle.close();
    await syncDirectory(this.#directory);
    this.#state = 'committed';
    return this.#sizeBytes;
  }

  async abort(): Promise<void> {
    if (this.#state === 'aborted') return;
    this.#state = 'aborted';
    if (this.#handle === undefined) return;
    try {
      const handle = await this.#handle;
      await handle.close().catch(() => undefined);
    } catch {
      // open itself failed: nothing to close
    }
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

function fanoutName(i: number): string {
  return i.toString(16).padStart(2, '0');
}

function isNotFound(error: unknown): boolean {
  return typeof error === 'object' && error !== null && (error as { code?: unknown }).code === 'ENOENT';
}
