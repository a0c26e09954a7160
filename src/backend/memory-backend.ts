import { assert } from '../util/assert.ts';
import { BackendObjectMissingError, BackendSizeMismatchError, isBackendKey, type Backend, type BackendWriter } from './backend.ts';

/** Bytes handed out per chunk by read(), like a socket or a file would. */
const READ_CHUNK_BYTES = 64 * 1024;

/**
 * Objects in a Map: for tests, and for trying placements without disks.
 * Failure injection (`setDown`) makes every call fail as a lost backend would.
 */
export class MemoryBackend implements Backend {
  readonly name: string;
  readonly #objects = new Map<string, Buffer>();
  #down = false;

  constructor(name: string) {
    this.name = name;
  }

  /** While down, every call rejects (a backend that cannot be reached). */
  setDown(down: boolean): void {
    this.#down = down;
  }

  /** Direct access for tests that damage stored bytes. */
  objects(): Map<string, Buffer> {
    return this.#objects;
  }

  #checkUp(): void {
    if (this.#down) throw new Error(`${this.name}: backend is down`);
  }

  create(key: string, sizeBytes: number): BackendWriter {
    assert(isBackendKey(key), `invalid backend key ${key}`);
    assert(Number.isSafeInteger(sizeBytes) && sizeBytes >= 0, `invalid size ${sizeBytes}`);
    const chunks: Buffer[] = [];
    let written = 0;
    let state: 'open' | 'committed' | 'aborted' = 'open';
    return {
      write: async (chunkOrChunks) => {
        this.#checkUp();
        assert(state === 'open', `write to ${state} object`);
        for (const chunk of Array.isArray(chunkOrChunks) ? (chunkOrChunks as readonly Uint8Array[]) : [chunkOrChunks as Uint8Array]) {
          written += chunk.length;
          if (written > sizeBytes) throw new BackendSizeMismatchError(this.name, key, sizeBytes, written);
          chunks.push(Buffer.from(chunk)); // a copy: the caller reuses its chunk
        }
      },
      commit: async () => {
        this.#checkUp();
        assert(state === 'open', `commit of ${state} object`);
        if (written !== sizeBytes) throw new BackendSizeMismatchError(this.name, key, sizeBytes, written);
        this.#objects.set(key, Buffer.concat(chunks, written));
        state = 'committed';
      },
      abort: async () => {
        if (state === 'open') state = 'aborted';
      },
    };
  }

  async read(key: string, start: number, end: number): Promise<AsyncIterable<Buffer>> {
    this.#checkUp();
    const object = this.#objects.get(key);
    if (object === undefined) throw new BackendObjectMissingError(this.name, key);
    assert(start >= 0 && start <= end, `invalid range ${start}-${end}`);
    const bytes = object.subarray(Math.min(start, object.length), Math.min(end, object.length));
    return (async function* chunks() {
      for (let at = 0; at < bytes.length; at += READ_CHUNK_BYTES) yield bytes.subarray(at, at + READ_CHUNK_BYTES);
    })();
  }

  async stat(key: string): Promise<number | undefined> {
    this.#checkUp();
    return this.#objects.get(key)?.length;
  }

  async remove(keys: readonly string[]): Promise<void> {
    this.#checkUp();
    for (const key of keys) this.#objects.delete(key);
  }

  async *list(prefix: string): AsyncIterable<string> {
    this.#checkUp();
    for (const key of [...this.#objects.keys()]) if (key.startsWith(prefix)) yield key;
  }

  async close(): Promise<void> {}
}
