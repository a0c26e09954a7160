/**
 * The commit log on an ObjectStorage: reading entries, creating the next one
 * (putIfAbsent, so exactly one writer wins each TID), the head hint and
 * checkpoints. Nothing here lists the storage.
 */
import { randomUUID } from 'node:crypto';
import { AlreadyExistsError, NotFoundError, PreconditionFailedError, type ObjectStorage } from '../storage/object-storage.ts';
import { UnsupportedStorageError } from './errors.ts';
import { checkpointKey, decodeEntry, encodeEntry, epochKey, headKey, leaseKey, leasePrefix, logKey, packKey, type CommitEntry } from './format.ts';
import type { IndexSnapshot } from './mvcc-index.ts';

export type CreateOutcome = 'created' | 'taken';

export interface HeadHint {
  tid: number;
  /** The TID of the newest checkpoint, if any. */
  checkpoint?: number;
}

/** Pack's durable state: the boundary (reads before it are gone) and how far its rewriting got. */
export interface PackState {
  beforeTid: number;
  /** The next log entry to compact; at beforeTid, the pack is done. */
  cursor: number;
  /**
   * Records unreachable from the roots at beforeTid (a reachability pack):
   * their revisions at or before beforeTid are dropped too. Computed once, by
   * the call that wrote the boundary, so a resumed pack drops the same ones.
   */
  unreachable?: string[];
  /**
   * Changed (to a fresh random value) by every reader lease taken, so a pack
   * that listed the leases before it can only write its boundary if no lease
   * was taken since (its putIfMatch fails otherwise, and it looks again).
   */
  leaseMark?: string;
}

/** A reader lease as stored: pack keeps every state from `tid` on while `expires` (ms since the epoch) is ahead. */
export interface StoredLease {
  tid: number;
  expires: number;
}

export async function readAll(storage: ObjectStorage, key: string): Promise<Buffer | undefined> {
  try {
    const { body } = await storage.get(key);
    const chunks: Buffer[] = [];
    for await (const chunk of body) chunks.push(chunk as Buffer);
    return Buffer.concat(chunks);
  } catch (error) {
    if (error instanceof NotFoundError) return undefined;
    throw error;
  }
}

export class CommitLog {
  readonly storage: ObjectStorage;
  readonly prefix: string;
  /** Tests only: create entries with a plain put, as a broken protocol would. */
  readonly #unconditional: boolean;

  constructor(storage: ObjectStorage, prefix: string, options: { unsafeUnconditionalCreate?: boolean } = {}) {
    this.storage = storage;
    this.prefix = prefix;
    this.#unconditional = options.unsafeUnconditionalCreate === true;
  }

  async read(tid: number): Promise<CommitEntry | undefined> {
    const bytes = await readAll(this.storage, logKey(this.prefix, tid));
    return bytes === undefined ? undefined : decodeEntry(bytes, tid);
  }

  /** The entry and its ETag, for a rewrite that must not overwrite another's. */
  async readVersioned(tid: number): Promise<{ entry: CommitEntry; etag: string } | undefined> {
    try {
      const { body, info } = await this.storage.get(logKey(this.prefix, tid));
      const chunks: Buffer[] = [];
      for await (const chunk of body) chunks.push(chunk as Buffer);
      return { entry: decodeEntry(Buffer.concat(chunks), tid), etag: info.etag };
    } catch (error) {
      if (error instanceof NotFoundError) return undefined;
      throw error;
    }
  }

  /** Replaces an entry with its packed form, only if it is still the version read; false if it changed. */
  async rewrite(entry: CommitEntry, etag: string): Promise<boolean> {
    try {
      await this.storage.putIfMatch(logKey(this.prefix, entry.tid), encodeEntry(entry), etag, { contentType: 'application/json' });
      return true;
    } catch (error) {
      if (error instanceof PreconditionFailedError) return false;
      throw error;
    }
  }

  async readPackState(): Promise<{ state: PackState; etag: string } | undefined> {
    try {
      const { body, info } = await this.storage.get(packKey(this.prefix));
      const chunks: Buffer[] = [];
      for await (const chunk of body) chunks.push(chunk as Buffer);
      return { state: JSON.parse(Buffer.concat(chunks).toString('utf8')) as PackState, etag: info.etag };
    } catch (error) {
      if (error instanceof NotFoundError) return undefined;
      throw error;
    }
  }

  /** Writes pack's state if it is still the version read (undefined: absent); false if another pack changed it. */
  async writePackState(state: PackState, etag: string | undefined): Promise<string | false> {
    try {
      const body = JSON.stringify(state);
      const options = { contentType: 'application/json' };
      const result = etag === undefined ? await this.storage.putIfAbsent(packKey(this.prefix), body, options) : await this.storage.putIfMatch(packKey(this.prefix), body, etag, options);
      return result.etag;
    } catch (error) {
      if (error instanceof AlreadyExistsError || error instanceof PreconditionFailedError) return false;
      throw error;
    }
  }

  /**
   * Claims a writer epoch no one else has: one above both the epoch object's
   * and `atLeast` (the log's newest), moved with putIfAbsent / putIfMatch so
   * two claimants never get the same number.
   */
  async claimEpoch(atLeast: number): Promise<number> {
    for (;;) {
      let current: { epoch: number; etag: string } | undefined;
      try {
        const { body, info } = await this.storage.get(epochKey(this.prefix));
        const chunks: Buffer[] = [];
        for await (const chunk of body) chunks.push(chunk as Buffer);
        current = { epoch: (JSON.parse(Buffer.concat(chunks).toString('utf8')) as { epoch: number }).epoch, etag: info.etag };
      } catch (error) {
        if (!(error instanceof NotFoundError)) throw error;
      }
      const epoch = Math.max(current?.epoch ?? 0, atLeast) + 1;
      const body = JSON.stringify({ epoch });
      const options = { contentType: 'application/json' };
      try {
        if (current === undefined) await this.storage.putIfAbsent(epochKey(this.prefix), body, options);
        else await this.storage.putIfMatch(epochKey(this.prefix), body, current.etag, options);
        return epoch;
      } catch (error) {
        if (error instanceof AlreadyExistsError || error instanceof PreconditionFailedError) continue; // another claimant: read again
        throw error;
      }
    }
  }

  async writeLease(id: string, lease: StoredLease): Promise<void> {
    await this.storage.put(leaseKey(this.prefix, id), JSON.stringify(lease), { contentType: 'application/json' });
  }

  async deleteLease(id: string): Promise<void> {
    await this.storage.delete(leaseKey(this.prefix, id));
  }

  /** The oldest TID an unexpired reader lease holds (expired leases are deleted on the way), if any. */
  async oldestLeasedTid(now: number): Promise<number | undefined> {
    let oldest: number | undefined;
    const expired: string[] = [];
    for await (const page of this.storage.list(leasePrefix(this.prefix))) {
      for (const object of page.objects) {
        const bytes = await readAll(this.storage, object.key);
        if (bytes === undefined) continue; // released meanwhile
        const lease = JSON.parse(bytes.toString('utf8')) as StoredLease;
        if (lease.expires <= now) expired.push(object.key);
        else oldest = Math.min(oldest ?? lease.tid, lease.tid);
      }
    }
    if (expired.length > 0) await this.storage.deleteMany(expired).catch(() => undefined); // tidiness only
    return oldest;
  }

  async exists(tid: number): Promise<boolean> {
    if (tid <= 0) return true;
    try {
      await this.storage.head(logKey(this.prefix, tid));
      return true;
    } catch (error) {
      if (error instanceof NotFoundError) return false;
      throw error;
    }
  }

  /**
   * Creates the entry at entry.tid unless a writer got there first.
   * Other errors (a timeout, a dropped connection) leave the outcome unknown:
   * the caller settles it by reading the entry back.
   */
  async create(entry: CommitEntry): Promise<CreateOutcome> {
    const key = logKey(this.prefix, entry.tid);
    const body = encodeEntry(entry);
    if (this.#unconditional) {
      await this.storage.put(key, body, { contentType: 'application/json' });
      return 'created';
    }
    try {
      await this.storage.putIfAbsent(key, body, { contentType: 'application/json' });
      return 'created';
    } catch (error) {
      if (error instanceof AlreadyExistsError) return 'taken';
      throw error;
    }
  }

  async readHint(): Promise<{ hint: HeadHint; etag: string } | undefined> {
    try {
      const { body, info } = await this.storage.get(headKey(this.prefix));
      const chunks: Buffer[] = [];
      for await (const chunk of body) chunks.push(chunk as Buffer);
      const parsed = JSON.parse(Buffer.concat(chunks).toString('utf8')) as HeadHint;
      return { hint: parsed, etag: info.etag };
    } catch (error) {
      if (error instanceof NotFoundError) return undefined;
      throw error;
    }
  }

  /**
   * Moves the hint forward to `hint` unless it is already there or past it.
   * Best effort: a hint that lags only costs readers a few probes.
   */
  async advanceHint(hint: HeadHint): Promise<void> {
    for (let attempt = 0; attempt < HINT_ATTEMPTS; attempt++) {
      const current = await this.readHint();
      if (current !== undefined && current.hint.tid >= hint.tid && (current.hint.checkpoint ?? 0) >= (hint.checkpoint ?? 0)) return;
      const merged: HeadHint = {
        tid: Math.max(hint.tid, current?.hint.tid ?? 0),
        ...(hint.checkpoint ?? current?.hint.checkpoint) === undefined ? {} : { checkpoint: Math.max(hint.checkpoint ?? 0, current?.hint.checkpoint ?? 0) },
      };
      const body = JSON.stringify(merged);
      try {
        if (current === undefined) await this.storage.putIfAbsent(headKey(this.prefix), body, { contentType: 'application/json' });
        else await this.storage.putIfMatch(headKey(this.prefix), body, current.etag, { contentType: 'application/json' });
        return;
      } catch (error) {
        if (error instanceof AlreadyExistsError || error instanceof PreconditionFailedError) continue;
        throw error;
      }
    }
  }

  /**
   * The log's head, from a known lower bound: probes forward by doubling
   * steps until an entry is missing, then bisects (the log has no holes).
   * Costs O(log lag) HEAD requests.
   */
  async findHead(atLeast: number): Promise<number> {
    let low = atLeast; // exists
    let step = 1;
    let high = low + step; // unknown
    while (await this.exists(high)) {
      low = high;
      step *= 2;
      high = low + step;
    }
    // low exists, high does not.
    while (high - low > 1) {
      const mid = Math.floor((low + high) / 2);
      if (await this.exists(mid)) low = mid;
      else high = mid;
    }
    return low;
  }

  async writeCheckpoint(snapshot: IndexSnapshot): Promise<void> {
    await this.storage.put(checkpointKey(this.prefix, snapshot.tid), JSON.stringify(snapshot), { contentType: 'application/json' });
  }

  async readCheckpoint(tid: number): Promise<IndexSnapshot | undefined> {
    const bytes = await readAll(this.storage, checkpointKey(this.prefix, tid));
    return bytes === undefined ? undefined : (JSON.parse(bytes.toString('utf8')) as IndexSnapshot);
  }

  /**
   * Refuses a storage that ignores conditional writes (s3rver does): the
   * second putIfAbsent of a probe key must fail, and so must a putIfMatch
   * with a wrong ETag.
   */
  async probeConditionalWrites(): Promise<void> {
    const key = `${this.prefix}probe/${randomUUID()}`;
    try {
      await this.storage.putIfAbsent(key, 'first');
      let refused = false;
      try {
        await this.storage.putIfAbsent(key, 'second');
      } catch (error) {
        if (!(error instanceof AlreadyExistsError)) throw error;
        refused = true;
      }
      if (!refused) throw new UnsupportedStorageError('the storage ignores putIfAbsent (If-None-Match: *): a second create of the same key succeeded, so it cannot hold a transaction log');
      refused = false;
      try {
        await this.storage.putIfMatch(key, 'third', '"00000000000000000000000000000000"');
      } catch (error) {
        if (!(error instanceof PreconditionFailedError)) throw error;
        refused = true;
      }
      if (!refused) throw new UnsupportedStorageError('the storage ignores putIfMatch (If-Match): a put with a wrong ETag succeeded, so it cannot hold a transaction log');
    } finally {
      await this.storage.delete(key).catch(() => undefined);
    }
  }
}

/** Hint updates racing other writers: after this many lost races, leave it to them. */
const HINT_ATTEMPTS = 3;
