import { assert } from '../../util/assert.ts';
import type { ObjectVersion } from '../types.ts';

/**
 * Bounds, sized for the server's memory budget (issue 3: < 200 MiB RSS):
 * measured, an entry costs ~360 B of heap plus ~1.4x its inline bytes in
 * external memory, so the full cache is ~13 MiB resident. Four times these
 * bounds added ~50 MiB to the server in the benchmark suite's full mode.
 */
export const LATEST_VERSIONS_MAX = 4096;
/** Inline object bytes kept across all entries. */
export const LATEST_VERSIONS_INLINE_BYTES_MAX = 8 * 1024 * 1024;

/**
 * The latest version of recently read keys. A GET or HEAD reads the latest
 * version of its key; from SQLite that is ~15 µs (the WAL-index read lock is
 * two fcntl calls and a getpid per statement in this VM, then the row's JSON
 * document), from here well under one.
 *
 * Correct because every change this process makes to a key's versions goes
 * through the owning store, which forgets the key inside the same
 * synchronous transaction that changes it: no read can run in between, so a
 * read after the change misses and fetches the new state. With several
 * processes on one database (`--workers`), the store also asks SQLite before
 * every lookup whether another connection committed since the last one
 * (`PRAGMA data_version`) and empties this cache if so.
 *
 * Cached versions are frozen: they are shared by every reader.
 */
export class LatestVersions {
  readonly #entries = new Map<string, ObjectVersion>();
  #inlineBytes = 0;

  get(bucket: string, key: string): ObjectVersion | undefined {
    return this.#entries.get(entryKey(bucket, key));
  }

  remember(version: ObjectVersion): ObjectVersion {
    const inlineBytes = version.inlineData?.length ?? 0;
    if (inlineBytes > LATEST_VERSIONS_INLINE_BYTES_MAX / 64) return version;
    const name = entryKey(version.bucket, version.key);
    this.#drop(name);
    while (this.#entries.size >= LATEST_VERSIONS_MAX || this.#inlineBytes + inlineBytes > LATEST_VERSIONS_INLINE_BYTES_MAX) {
      const oldest = this.#entries.keys().next();
      assert(oldest.done !== true, 'an over-full cache has entries');
      this.#drop(oldest.value);
    }
    const frozen = deepFreeze(version);
    this.#entries.set(name, frozen);
    this.#inlineBytes += inlineBytes;
    return frozen;
  }

  forget(bucket: string, key: string): void {
    this.#drop(entryKey(bucket, key));
  }

  clear(): void {
    this.#entries.clear();
    this.#inlineBytes = 0;
  }

  get size(): number {
    return this.#entries.size;
  }

  #drop(name: string): void {
    const entry = this.#entries.get(name);
    if (entry === undefined) return;
    this.#entries.delete(name);
    this.#inlineBytes -= entry.inlineData?.length ?? 0;
    assert(this.#inlineBytes >= 0, 'inline bytes are counted once per entry');
  }
}

/** Bucket names hold no newline, so this is unambiguous. */
function entryKey(bucket: string, key: string): string {
  return `${bucket}\n${key}`;
}

function deepFreeze<T>(value: T): T {
  if (typeof value !== 'object' || value === null || Object.isFrozen(value) || Buffer.isBuffer(value)) return value;
  for (const field of Object.values(value)) deepFreeze(field);
  return Object.freeze(value);
}
