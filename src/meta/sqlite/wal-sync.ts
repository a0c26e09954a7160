import { closeSync, fdatasync, fstatSync, openSync } from 'node:fs';
import { assert } from '../../util/assert.ts';

/**
 * Group commit for a SQLite database in WAL mode.
 *
 * Transactions run with synchronous=NORMAL: SQLite appends their frames to
 * the WAL with plain writes and returns without waiting for the disk, so the
 * event loop never blocks on an fsync (2-3 ms each here, which would cap a
 * writer at a few hundred commits/s and stall every other request meanwhile).
 * A caller acknowledges its commit only after `durable()` resolves: an
 * fdatasync of the WAL on libuv's thread pool that started after the
 * commit's frames were written. One fdatasync covers every transaction that
 * committed before it started, so concurrent writers share it: each commit
 * takes a ticket (`commitWritten`), and a waiter joins the fdatasync in
 * flight when that one began after its ticket, or else the next one.
 *
 * This is what synchronous=FULL does, moved off the event loop and batched.
 * Checkpoints keep their own syncs (with NORMAL, SQLite syncs the WAL before
 * a checkpoint and the database after it), so frames it recycles are already
 * in the database file. The WAL file is never replaced while this store's
 * connection is open (SQLite deletes it only when the last connection
 * closes), so syncing the descriptor opened here syncs the live WAL.
 *
 * Other connections see a commit before it is durable; a crash in that
 * window loses it together with its acknowledgement, never one without the
 * other.
 */
export class WalSync {
  readonly #fd: number;
  /** Commits written to the WAL so far (tickets), and how many of them are known durable. */
  #written = 0;
  #durableThrough = 0;
  #running = false;
  /** The tickets the running fdatasync covers: every commit written before it began. */
  #runningCovers = 0;
  #runningPromise: Promise<void> | undefined;
  /** Callers whose commits came after the running fdatasync began: they wait for the next one. */
  #next: { promise: Promise<void>; resolve(): void; reject(error: Error): void } | undefined;
  /** After a failed fdatasync the kernel may have dropped dirty pages: refuse every later commit. */
  #failure: Error | undefined;
  #closed = false;
  syncCount = 0;

  /** Asked after every successful fdatasync: a reason here means the synced files are no longer the store's (see OpenFileIdentity). */
  readonly #verify: () => string | undefined;

  constructor(walPath: string, verify: () => string | undefined = () => undefined) {
    this.#verify = verify;
    this.#fd = openSync(walPath, 'r');
    assert(fstatSync(this.#fd).isFile(), `${walPath} is not a file`);
  }

  /** Set once an fdatasync failed: from then on no commit can be made durable through this descriptor. */
  get failure(): Error | undefined {
    return this.#failure;
  }

  /** Call right after a COMMIT returned; the ticket names that commit for durable(). */
  commitWritten(): number {
    return ++this.#written;
  }

  /** Resolves once the commit with this ticket is on disk. */
  durable(ticket: number = this.#written): Promise<void> {
    if (this.#failure !== undefined) return Promise.reject(this.#failure);
    assert(!this.#closed, 'durable() after close');
    assert(ticket <= this.#written, 'a ticket is issued before it is awaited');
    if (ticket <= this.#durableThrough) return Promise.resolve();
    if (this.#running && ticket <= this.#runningCovers) return this.#runningPromise!;
    if (!this.#running) return this.#sync();
    if (this.#next === undefined) {
      let resolve!: () => void;
      let reject!: (error: Error) => void;
      const promise = new Promise<void>((res, rej) => {
        resolve = res;
        reject = rej;
      });
      this.#next = { promise, resolve, reject };
    }
    return this.#next.promise;
  }

  #sync(): Promise<void> {
    assert(!this.#running, 'one fdatasync at a time');
    this.#running = true;
    const covers = (this.#runningCovers = this.#written);
    this.#runningPromise = new Promise<void>((resolve, reject) => {
      fdatasync(this.#fd, (error) => {
        this.#running = false;
        this.#runningPromise = undefined;
        this.syncCount++;
        // A sync into a file that is no longer at its path made nothing durable
        // that a restart would find: as much a failure as an EIO.
        const lost = error === null ? this.#verify() : undefined;
        if (error === null && lost === undefined) this.#durableThrough = Math.max(this.#durableThrough, covers);
        if (error !== null) this.#failure = new Error(`fdatasync of the metadata WAL failed: ${error.message}`);
        if (lost !== undefined) this.#failure = new Error(`the metadata database is gone: ${lost}`);
        const waiting = this.#next;
        this.#next = undefined;
        if (this.#failure !== undefined) {
          reject(this.#failure);
          waiting?.reject(this.#failure);
          return;
        }
        resolve();
        if (waiting !== undefined) this.#sync().then(waiting.resolve, waiting.reject);
      });
    });
    return this.#runningPromise;
  }

  /** Waits for the sync in flight, then releases the descriptor. */
  async close(): Promise<void> {
    while (this.#running || this.#next !== undefined) await (this.#next?.promise ?? this.durable()).catch(() => undefined);
    this.#closed = true;
    closeSync(this.#fd);
  }
}
