import { assert } from './assert.ts';

/**
 * A process-wide bound on bytes held in memory by many independent holders
 * (request bodies on their way to disk). Per-holder bounds alone scale with
 * the number of connections; this one does not: when it is spent, holders
 * wait, their sockets stop being read, and TCP pushes back on the clients.
 *
 * Waiters are served in arrival order, so a large request cannot be starved
 * by a stream of small ones. A request for more than the whole budget is
 * granted once nothing else is held, so no single holder can wait forever.
 * Holders must only wait while everything they already hold is on its way to
 * being released (for example, written): otherwise two holders waiting for
 * each other's bytes would deadlock. A holder that keeps bytes it is not yet
 * releasing (a partly gathered batch of a slow client) subscribes to
 * `onPressure` and starts releasing them when someone has to wait.
 */
export class ByteBudget {
  readonly capacityBytes: number;
  #heldBytes = 0;
  readonly #waiters: { bytes: number; grant: () => void }[] = [];
  readonly #pressureListeners = new Set<() => void>();

  constructor(capacityBytes: number) {
    assert(Number.isSafeInteger(capacityBytes) && capacityBytes > 0, `invalid byte budget ${capacityBytes}`);
    this.capacityBytes = capacityBytes;
  }

  get heldBytes(): number {
    return this.#heldBytes;
  }

  /** Takes `bytes` now if they are free and nobody is waiting; false otherwise (then call acquire). */
  tryAcquire(bytes: number): boolean {
    assert(Number.isSafeInteger(bytes) && bytes >= 0, `invalid byte count ${bytes}`);
    if (this.#waiters.length > 0 || !this.#fits(bytes)) return false;
    this.#heldBytes += bytes;
    return true;
  }

  /** Resolves once `bytes` are held by the caller. */
  acquire(bytes: number): Promise<void> {
    if (this.tryAcquire(bytes)) return Promise.resolve();
    const granted = new Promise<void>((resolve) => this.#waiters.push({ bytes, grant: resolve }));
    // A copy: listeners usually unsubscribe while they are called.
    for (const listener of [...this.#pressureListeners]) listener();
    return granted;
  }

  /** Calls `listener` whenever a caller starts waiting; returns the unsubscribe function. */
  onPressure(listener: () => void): () => void {
    this.#pressureListeners.add(listener);
    return () => this.#pressureListeners.delete(listener);
  }

  get waiting(): number {
    return this.#waiters.length;
  }

  release(bytes: number): void {
    assert(Number.isSafeInteger(bytes) && bytes >= 0 && bytes <= this.#heldBytes, `release of ${bytes} with ${this.#heldBytes} held`);
    this.#heldBytes -= bytes;
    while (this.#waiters.length > 0 && this.#fits(this.#waiters[0]!.bytes)) {
      const waiter = this.#waiters.shift()!;
      this.#heldBytes += waiter.bytes;
      waiter.grant();
    }
  }

  #fits(bytes: number): boolean {
    return this.#heldBytes + bytes <= this.capacityBytes || this.#heldBytes === 0;
  }
}

/**
 * Bytes every writer of the process together holds in memory: blob writers'
 * gathered and in-flight batches (blob/fs) and the MD5 batches of long bodies
 * (util/hash-thread.ts). Without it the sum grew with the connections (4096
 * uploads: ~12 GiB in blob writers; 2000 stalled uploads: ~1 GiB in hash
 * batches). A large upload at full speed holds up to ~8 MiB (3 in its writer,
 * 5 in its hash), so 32 MiB keeps ~4 of them at full speed, more than one
 * disk takes; past that, uploads share the disk's rate anyway. Not more:
 * node holds about as much again in garbage not yet collected and in the
 * stream buffers of uploads that wait, and 2000 stalled uploads must stay
 * under 300 MiB of RSS (64 MiB measured 20-40 MiB more RSS for them than 32,
 * and no faster 8 × 64 MiB PUTs on 2 cores).
 */
export const WRITE_BUFFER_BYTES_MAX = 32 * 1024 * 1024;

/** The process's write budget (one per process: each worker of --workers has its own). */
export const processWriteBudget = new ByteBudget(WRITE_BUFFER_BYTES_MAX);
