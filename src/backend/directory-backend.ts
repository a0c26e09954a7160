import { randomBytes } from 'node:crypto';
import { open as openCallback } from 'node:fs';
import { mkdir, open, readdir, rename, rm, stat, unlink, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { crc32 } from '@node-rs/crc32';
import { FILE_READ_CHUNK_BYTES, FileRangeStream } from '../blob/fs/file-range-stream.ts';
import { assert } from '../util/assert.ts';
import { WriteBehind, writevFully } from '../util/file-writes.ts';
import { BackendObjectMissingError, BackendSizeMismatchError, isBackendKey, type Backend, type BackendReadOptions, type BackendWriter } from './backend.ts';

const FANOUT_DIRECTORIES = 256;
const WRITE_BEHIND_BYTES = 8 * 1024 * 1024;
const READ_CHUNK_BYTES_MAX = 4 * 1024 * 1024 + 64;
/** Objects being written: renamed into place by commit, so a crash leaves only these behind. */
const PARTIAL_SUFFIX = '.partial';

/**
 * Objects as files in a local directory (one disk of a server, or a mount):
 * `<root>/<xx>/<key with '/' as '~'>`, xx from a hash of the key so no
 * directory holds more than ~1/256 of the objects. A file appears under its
 * name only once complete and fsynced (written as `<name>.<random>.partial`,
 * then renamed, then the directory fsynced), so readers never see a torn object.
 */
export class DirectoryBackend implements Backend {
  readonly name: string;
  readonly root: string;

  private constructor(name: string, root: string) {
    this.name = name;
    this.root = root;
  }

  static async open(name: string, root: string): Promise<DirectoryBackend> {
    await mkdir(root, { recursive: true });
    await Promise.all(Array.from({ length: FANOUT_DIRECTORIES }, (_, i) => mkdir(join(root, fanoutName(i)), { recursive: true })));
    return new DirectoryBackend(name, root);
  }

  /** The file that holds `key` (tests damage shards through it). */
  path(key: string): string {
    assert(isBackendKey(key), `invalid backend key ${key}`);
    return join(this.root, fanoutName(crc32(key) % FANOUT_DIRECTORIES), key.replaceAll('/', '~'));
  }

  create(key: string, sizeBytes: number): BackendWriter {
    assert(Number.isSafeInteger(sizeBytes) && sizeBytes >= 0, `invalid size ${sizeBytes}`);
    return new DirectoryWriter(this.name, key, this.path(key), sizeBytes);
  }

  async read(key: string, start: number, end: number, options: BackendReadOptions = {}): Promise<AsyncIterable<Buffer>> {
    const { signal } = options;
    assert(start >= 0 && start <= end, `invalid range ${start}-${end}`);
    let fd: number;
    try {
      fd = await openDescriptor(this.path(key));
    } catch (error) {
      if (isNotFound(error)) throw new BackendObjectMissingError(this.name, key);
      throw error;
    }
    const stream = new FileRangeStream(fd, start, end, Math.min(options.chunkBytes ?? FILE_READ_CHUNK_BYTES, READ_CHUNK_BYTES_MAX));
    if (signal !== undefined) {
      if (signal.aborted) stream.destroy();
      else signal.addEventListener('abort', () => stream.destroy(), { once: true });
    }
    return stream;
  }

  async stat(key: string): Promise<number | undefined> {
    try {
      return (await stat(this.path(key))).size;
    } catch (error) {
      if (isNotFound(error)) return undefined;
      throw error;
    }
  }

  async remove(keys: readonly string[]): Promise<void> {
    await Promise.all(
      keys.map(async (key) => {
        try {
          await unlink(this.path(key));
        } catch (error) {
          if (!isNotFound(error)) throw error;
        }
      }),
    );
  }

  async *list(prefix: string): AsyncIterable<string> {
    for (let i = 0; i < FANOUT_DIRECTORIES; i++) {
      for (const name of await readdir(join(this.root, fanoutName(i)))) {
        if (name.endsWith(PARTIAL_SUFFIX)) continue;
        const key = name.replaceAll('~', '/');
        if (key.startsWith(prefix) && isBackendKey(key)) yield key;
      }
    }
  }

  async discardIncomplete(beforeMs: number): Promise<number> {
    let removed = 0;
    for (let i = 0; i < FANOUT_DIRECTORIES; i++) {
      const directory = join(this.root, fanoutName(i));
      for (const name of await readdir(directory)) {
        if (!name.endsWith(PARTIAL_SUFFIX)) continue;
        const path = join(directory, name);
        const info = await stat(path).catch(() => undefined);
        if (info === undefined || info.mtimeMs >= beforeMs) continue;
        await rm(path, { force: true });
        removed++;
      }
    }
    return removed;
  }

  async close(): Promise<void> {}
}

/** Sequential writes, each finished before write() resolves (callers reuse their buffers). */
class DirectoryWriter implements BackendWriter {
  readonly #backend: string;
  readonly #key: string;
  readonly #path: string;
  readonly #sizeBytes: number;
  /**
   * Its own file until commit: a repair rewriting a key while the original
   * write still runs must not share (and truncate) that write's file. Both
   * hold the same bytes; the last rename wins.
   */
  readonly #partialPath: string;
  #handle: Promise<FileHandle> | undefined;
  #written = 0;
  readonly #writeBehind = new WriteBehind(WRITE_BEHIND_BYTES);
  #state: 'open' | 'committed' | 'aborted' = 'open';

  constructor(backend: string, key: string, path: string, sizeBytes: number) {
    this.#backend = backend;
    this.#key = key;
    this.#path = path;
    this.#sizeBytes = sizeBytes;
    this.#partialPath = `${path}.${randomBytes(6).toString('hex')}${PARTIAL_SUFFIX}`;
  }

  #file(): Promise<FileHandle> {
    this.#handle ??= open(this.#partialPath, 'wx');
    return this.#handle;
  }

  async write(chunkOrChunks: Uint8Array | readonly Uint8Array[]): Promise<void> {
    assert(this.#state === 'open', `write to ${this.#state} object`);
    if (this.#writeBehind.failure !== undefined) throw this.#writeBehind.failure;
    const chunks = Array.isArray(chunkOrChunks) ? (chunkOrChunks as readonly Uint8Array[]) : [chunkOrChunks as Uint8Array];
    const bytes = chunks.reduce((sum, chunk) => sum + chunk.length, 0);
    if (this.#written + bytes > this.#sizeBytes) throw new BackendSizeMismatchError(this.#backend, this.#key, this.#sizeBytes, this.#written + bytes);
    const handle = await this.#file();
    await writevFully(handle, chunks, this.#written);
    this.#writeBehind.wrote(handle, this.#written, this.#written + bytes);
    this.#written += bytes;
  }

  async commit(): Promise<void> {
    assert(this.#state === 'open', `commit of ${this.#state} object`);
    if (this.#written !== this.#sizeBytes) throw new BackendSizeMismatchError(this.#backend, this.#key, this.#sizeBytes, this.#written);
    const handle = await this.#file();
    await this.#writeBehind.settled();
    if (this.#writeBehind.failure !== undefined) throw this.#writeBehind.failure;
    await handle.sync();
    await handle.close();
    this.#handle = undefined;
    await rename(this.#partialPath, this.#path);
    const directory = await open(join(this.#path, '..'), 'r');
    try {
      await directory.sync();
    } finally {
      await directory.close();
    }
    this.#state = 'committed';
  }

  async abort(): Promise<void> {
    if (this.#state !== 'open') return;
    this.#state = 'aborted';
    await this.#writeBehind.settled();
    if (this.#handle === undefined) return;
    try {
      await (await this.#handle).close();
    } catch {
      // open failed, or already closed: nothing to close
    }
    await rm(this.#partialPath, { force: true });
  }
}

const openDescriptor = promisify((path: string, callback: (error: NodeJS.ErrnoException | null, fd: number) => void) => openCallback(path, 'r', callback));

function fanoutName(i: number): string {
  return i.toString(16).padStart(2, '0');
}

function isNotFound(error: unknown): boolean {
  return typeof error === 'object' && error !== null && (error as { code?: unknown }).code === 'ENOENT';
}
