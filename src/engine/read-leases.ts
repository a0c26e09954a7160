import { assert } from '../util/assert.ts';

/**
 * Blobs being streamed to a client right now. The purger skips a leased blob
 * and retries later, so replacing or deleting an object never cuts short a GET
 * that is still sending the old bytes.
 */
export class ReadLeases {
  readonly #counts = new Map<string, number>();

  acquire(blobIds: readonly string[]): void {
    for (const id of blobIds) this.#counts.set(id, (this.#counts.get(id) ?? 0) + 1);
  }

  release(blobIds: readonly string[]): void {
    for (const id of blobIds) {
      const count = this.#counts.get(id);
      assert(count !== undefined && count > 0, `release of unleased blob ${id}`);
      if (count === 1) this.#counts.delete(id);
      else this.#counts.set(id, count - 1);
    }
  }

  isLeased(blobId: string): boolean {
    return this.#counts.has(blobId);
  }

  get size(): number {
    return this.#counts.size;
  }
}
