/**
 * Reader leases: a reader that must keep reading an old state while pack
 * runs stores a lease (`lease/<id>`, its TID and expiry); pack lowers its
 * boundary to the oldest TID an unexpired lease holds.
 *
 * The race between a lease being taken and a pack setting its boundary is
 * settled on the pack object, with compare-and-swap on both sides: the
 * reader writes its lease, then changes the pack object (a fresh
 * `leaseMark`) with putIfMatch, checking the boundary it read is not past
 * its TID; pack reads the pack object, lists the leases, and writes its new
 * boundary with putIfMatch against what it read before listing. Whichever
 * swap comes second fails and looks again: either pack sees the lease, or
 * the reader sees the boundary (TooOldError).
 */
import { randomUUID } from 'node:crypto';
import type { CommitLog, PackState } from './commit-log.ts';
import { TooOldError } from './errors.ts';

/** Leases last this long unless asked otherwise: long enough to read through a pack, short enough that a dead reader does not hold pack back for long. */
export const DEFAULT_LEASE_MS = 60_000;

export class ReaderLease {
  /** The oldest TID pack keeps readable while the lease is held. */
  readonly tid: number;
  readonly #log: CommitLog;
  readonly #id = randomUUID();
  #expires = 0;
  #released = false;

  private constructor(log: CommitLog, tid: number) {
    this.#log = log;
    this.tid = tid;
  }

  /** Takes a lease on `tid`; TooOldError if a pack boundary is already past it. */
  static async acquire(log: CommitLog, tid: number, ttlMs: number): Promise<ReaderLease> {
    const lease = new ReaderLease(log, tid);
    await lease.renew(ttlMs);
    return lease;
  }

  /** When the lease lapses (pack ignores it from then on) unless renewed. */
  get expires(): Date {
    return new Date(this.#expires);
  }

  /** Extends the lease to `ttlMs` from now; TooOldError if it had lapsed and a pack passed its TID meanwhile. */
  async renew(ttlMs = DEFAULT_LEASE_MS): Promise<void> {
    if (this.#released) throw new Error('the lease was released');
    if (!(ttlMs > 0)) throw new RangeError(`a lease's time to live is a positive number of milliseconds, not ${ttlMs}`);
    const expires = Date.now() + ttlMs;
    await this.#log.writeLease(this.#id, { tid: this.tid, expires });
    for (;;) {
      const current = await this.#log.readPackState();
      if (current !== undefined && current.state.beforeTid > this.tid) {
        await this.release();
        throw new TooOldError(this.tid, current.state.beforeTid);
      }
      const marked: PackState = { ...(current?.state ?? { beforeTid: 0, cursor: 0 }), leaseMark: randomUUID() };
      if ((await this.#log.writePackState(marked, current?.etag)) !== false) break;
    }
    this.#expires = expires;
  }

  /** Lets pack pass the lease's TID. */
  async release(): Promise<void> {
    this.#released = true;
    await this.#log.deleteLease(this.#id);
  }
}
