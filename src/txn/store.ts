/**
 * TxnStore: a transactional record store whose only storage is an
 * ObjectStorage. See docs/TXN.md for the protocol and its guarantees.
 */
import { randomUUID } from 'node:crypto';
import { setTimeout as delay } from 'node:timers/promises';
import type { ObjectStorage } from '../storage/object-storage.ts';
import { CommitLog, readAll, type PackState } from './commit-log.ts';
import { CommitOutcomeUnknownError, ConflictError, CorruptLogError, FencedError, TooOldError } from './errors.ts';
import { dataKey, dataPrefix, FORMAT_VERSION, INLINE_LIMIT_BYTES, parseDataKey, type CommitEntry, type StoredRevision } from './format.ts';
import { DEFAULT_LEASE_MS, ReaderLease } from './lease.ts';
import { MvccIndex, type Revision } from './mvcc-index.ts';
import { assert } from '../util/assert.ts';
import { Transaction, type CommitRequest, type Isolation, type TransactionHost } from './transaction.ts';

export interface OpenStoreOptions {
  /** Keys of the store start with this (e.g. 'db/'); default ''. */
  prefix?: string;
  /** Default isolation of begin(); default 'snapshot'. */
  isolation?: Isolation;
  /** Commit transactions that are waiting together in one log entry; default true. */
  groupCommit?: boolean;
  /** Most transactions in one log entry; default 64. */
  maxGroup?: number;
  /** Write a checkpoint of the index every this many TIDs; default 256. */
  checkpointEvery?: number;
  /** Move the head hint forward every this many TIDs; default 16. */
  hintEvery?: number;
  /**
   * Claim a new writer epoch on open and publish it in the log (SlateDB's
   * writer fencing): every store opened before, in any process, can no longer
   * publish work begun before; this store is fenced for good, in turn, by the
   * next one opened with `fence: true` (its commits then throw FencedError).
   * Default false: the store follows the log's newest epoch.
   */
  fence?: boolean;
  /** Tests only: create log entries with a plain put, as a broken protocol would. Never use. */
  unsafeUnconditionalCreate?: boolean;
}

export interface LoadedRevision {
  data: Buffer | undefined;
  /** The TID that wrote this revision (ZODB's serial). */
  tid: number;
  /** The TID of the next revision, if any (ZODB's end of validity). */
  nextTid: number | undefined;
}

export interface HistoryItem {
  tid: number;
  /** Bytes of the revision; undefined for a deletion. */
  size: number | undefined;
  deleted: boolean;
}

export interface TransactionRecord {
  tid: number;
  time: string;
  txns: { writeId: string; meta: Record<string, string> | undefined; oids: string[] }[];
}

export interface PackProgress {
  /** The boundary of the pack in progress (a larger one given earlier wins over a smaller one). */
  beforeTid: number;
  /** The next log entry to compact. */
  cursor: number;
  /** Whether every entry before the boundary is compacted; call pack again until it is. */
  done: boolean;
  /** Revisions dropped by this call. */
  dropped: number;
}

export interface GarbageReport {
  /** The epoch collectGarbage published before looking: data of older epochs not in the log can never be published. */
  epoch: number;
  /** Orphaned data objects deleted. */
  deleted: number;
  /** Orphans left for a later run because they are younger than the grace period. */
  young: number;
}

export interface PackOptions {
  /** Log entries one call compacts at most; default 256. */
  maxEntries?: number;
  /**
   * A reachability pack (ZODB's referencesf): the records a record's bytes
   * refer to. With it, records that no root reaches at `beforeTid` (nor any
   * revision after it) lose their revisions at or before `beforeTid`.
   */
  references?: (oid: string, data: Buffer) => Iterable<string>;
  /** The roots of reachability; default ['root']. Records written after beforeTid are roots too. */
  roots?: readonly string[];
}

export interface Snapshot {
  readonly tid: number;
  get(oid: string): Promise<Buffer | undefined>;
}

/** Tries at settling an unknown outcome, or reading the log forward, before giving up. */
const COMMIT_ATTEMPTS = 8;
const RETRY_BASE_MS = 20;
/** Log entries one pack() call compacts at most: a call's work (requests, time) is bounded. */
const PACK_ENTRIES_PER_CALL = 256;
/**
 * collectGarbage leaves orphaned data younger than this: fencing already
 * guarantees no fenced writer publishes it, the grace period is defence in
 * depth (a storage whose listing or clocks run behind) and keeps the data of
 * a commit that just lost around for whoever debugs it.
 */
const GC_GRACE_MS = 10 * 60_000;
/** Data objects deleted per deleteMany call. */
const GC_DELETE_BATCH = 500;

interface Waiting {
  request: CommitRequest;
  stored: [string, StoredRevision][];
  /** The writer epoch the work began in (its data objects are keyed by it); refused if the log is past it. */
  epoch: number;
  /** The member that publishes a new epoch (an entry of its own, with no writes). */
  fence?: true;
  resolve(tid: number): void;
  reject(error: unknown): void;
}

export async function openStore(storage: ObjectStorage, options: OpenStoreOptions = {}): Promise<TxnStore> {
  const prefix = options.prefix ?? '';
  const log = new CommitLog(storage, prefix, { unsafeUnconditionalCreate: options.unsafeUnconditionalCreate === true });
  await log.probeConditionalWrites();
  let index = new MvccIndex();
  // The pack state first: it says which checkpoints still describe the log.
  const pack = await log.readPackState();
  const hint = await log.readHint();
  const checkpointTid = hint?.hint.checkpoint;
  // A checkpoint older than pack's boundary holds revisions whose later deletion pack may have dropped from the
  // log: starting from it would bring deleted records back. Replay from entry 1 instead (pack rewrites entries in
  // TID order, so every prefix of a packed log is consistent) until a checkpoint at or after the boundary exists.
  if (checkpointTid !== undefined && (pack === undefined || checkpointTid >= pack.state.beforeTid)) {
    const snapshot = await log.readCheckpoint(checkpointTid);
    if (snapshot !== undefined) index = MvccIndex.fromSnapshot(snapshot);
  }
  if (pack !== undefined) {
    // A pack's boundary holds from the moment its state is written, before it dropped anything.
    index.oldest = Math.max(index.oldest, pack.state.beforeTid);
    // A checkpoint written before a reachability pack still has the unreachable records it drops.
    for (const oid of pack.state.unreachable ?? []) index.forget(oid, pack.state.beforeTid);
  }
  const store = new TxnStore(log, index, options);
  await store.refresh();
  if (options.fence === true) await store.fence({ exclusive: true });
  return store;
}

export class TxnStore {
  readonly storage: ObjectStorage;
  readonly prefix: string;
  readonly #log: CommitLog;
  readonly #index: MvccIndex;
  readonly #isolation: Isolation;
  readonly #groupCommit: boolean;
  readonly #maxGroup: number;
  readonly #checkpointEvery: number;
  readonly #hintEvery: number;
  readonly #queue: Waiting[] = [];
  #committing = false;
  #running: Promise<number> | undefined;
  #queued: Promise<number> | undefined;
  readonly #background = new Set<Promise<void>>();
  readonly #host: TransactionHost;
  /** The epoch this store claimed with `fence: true`: it never follows a newer one. */
  #claimed: number | undefined;

  constructor(log: CommitLog, index: MvccIndex, options: OpenStoreOptions) {
    this.#log = log;
    this.storage = log.storage;
    this.prefix = log.prefix;
    this.#index = index;
    this.#isolation = options.isolation ?? 'snapshot';
    this.#groupCommit = options.groupCommit ?? true;
    this.#maxGroup = options.maxGroup ?? 64;
    this.#checkpointEvery = options.checkpointEvery ?? 256;
    this.#hintEvery = options.hintEvery ?? 16;
    this.#host = {
      loadAt: (oid, tid) => this.#loadAt(oid, tid),
      commit: (request) => this.#commit(request),
      changedSince: async (oids, tid) => {
        await this.refresh();
        return this.#changedSince(oids, tid, new Set());
      },
    };
  }

  /** A transaction over the newest state in the log (read forward first). */
  async begin(options: { isolation?: Isolation } = {}): Promise<Transaction> {
    const head = await this.refresh();
    return new Transaction(this.#host, head, options.isolation ?? this.#isolation);
  }

  /** Reads the log forward from what this process knows; resolves with the head. Concurrent calls share reads. */
  refresh(): Promise<number> {
    if (this.#queued !== undefined) return this.#queued;
    if (this.#running !== undefined) {
      // The running read may have passed the end before a newer entry appeared: a caller now needs a read that starts now.
      const queued = this.#running.catch(() => 0).then(() => {
        this.#queued = undefined;
        return this.#startRead();
      });
      this.#queued = queued;
      return queued;
    }
    return this.#startRead();
  }

  #startRead(): Promise<number> {
    const running = (async () => {
      try {
        for (;;) {
          const entry = await this.#log.read(this.#index.head + 1);
          if (entry === undefined) return this.#index.head;
          this.#index.apply(entry);
        }
      } finally {
        this.#running = undefined;
      }
    })();
    this.#running = running;
    return running;
  }

  /** The newest TID (ZODB's lastTransaction). */
  async lastTransaction(): Promise<number> {
    return this.refresh();
  }

  /** The head as found from the head hint and probes, without reading entries: a bounded number of requests. */
  async probeHead(): Promise<number> {
    const hint = await this.#log.readHint();
    return this.#log.findHead(Math.max(hint?.hint.tid ?? 0, this.#index.head));
  }

  /** The database as it was at `tid`: reads are exact and never change. */
  at(tid: number): Snapshot {
    this.#checkTid(tid);
    return { tid, get: (oid) => this.#loadAt(oid, tid) };
  }

  /** The current revision (ZODB's load). */
  async load(oid: string): Promise<LoadedRevision | undefined> {
    const head = await this.refresh();
    return this.loadBefore(oid, head + 1);
  }

  /** The revision current just before `tid` (ZODB's loadBefore); undefined if the record did not exist then. */
  async loadBefore(oid: string, tid: number): Promise<LoadedRevision | undefined> {
    if (tid - 1 > this.#index.head) await this.refresh();
    this.#checkTid(tid - 1);
    const revision = this.#index.revisionAt(oid, tid - 1);
    if (revision === undefined) return undefined;
    return { data: await this.#read(revision, tid - 1), tid: revision.tid, nextTid: this.#index.nextRevisionAfter(oid, revision.tid)?.tid };
  }

  /** The revision written by exactly `tid` (ZODB's loadSerial); throws if there is none. */
  async loadSerial(oid: string, tid: number): Promise<Buffer | undefined> {
    if (tid > this.#index.head) await this.refresh();
    const revision = this.#index.revisions(oid).find((candidate) => candidate.tid === tid);
    if (revision === undefined) {
      if (tid < this.#index.oldest) throw new TooOldError(tid, this.#index.oldest);
      throw new Error(`record ${JSON.stringify(oid)} has no revision at ${tid}`);
    }
    if (this.#index.dropsAt(oid, revision, this.#index.oldest)) throw new TooOldError(tid, this.#index.oldest);
    return this.#read(revision, tid);
  }

  /** Every revision of `oid`, newest first (ZODB's history). */
  async history(oid: string): Promise<HistoryItem[]> {
    await this.refresh();
    return [...this.#index.revisions(oid)].filter((revision) => !this.#index.dropsAt(oid, revision, this.#index.oldest)).reverse().map(({ tid, stored }) => ({
      tid,
      deleted: 'x' in stored,
      size: 'd' in stored ? Buffer.from(stored.d, 'base64').length : 'k' in stored ? stored.n : undefined,
    }));
  }

  /** The records changed after `sinceTid`, up to the head (for invalidating caches); TooOldError if pack dropped what is needed. */
  async poll(sinceTid: number): Promise<{ tid: number; changed: string[] }> {
    const head = await this.refresh();
    this.#checkTid(sinceTid);
    const changed = new Set<string>();
    for (let tid = sinceTid + 1; tid <= head; tid++) for (const oid of this.#index.changesOf(tid) ?? []) changed.add(oid);
    return { tid: head, changed: [...changed].sort() };
  }

  /** The TID that committed the transaction with this write ID, if it is in the log (settles CommitOutcomeUnknownError). */
  async findWrite(writeId: string): Promise<number | undefined> {
    await this.refresh();
    return this.#index.tidOfWrite(writeId);
  }

  /** The transactions from `fromTid` to `toTid` (inclusive), read from the log in order (ZODB's iterator). */
  async *transactions(fromTid = 1, toTid?: number): AsyncGenerator<TransactionRecord> {
    const last = toTid ?? (await this.refresh());
    for (let tid = Math.max(1, fromTid); tid <= last; tid++) {
      const entry = await this.#log.read(tid);
      if (entry === undefined) throw new CorruptLogError(`log entry ${tid} is missing below the head ${last}`);
      yield { tid, time: entry.time, txns: entry.txns.map((txn) => ({ writeId: txn.id, meta: txn.meta, oids: txn.writes.map(([oid]) => oid) })) };
    }
  }

  /**
   * Drops the revisions no state at or after `beforeTid` needs: those
   * replaced at or before it, and deletions before it (with their data
   * objects). Bounded: compacts at most `maxEntries` log entries per call;
   * call again until `done`. Resumable: the boundary and a cursor are stored
   * (`pack`) before anything is deleted, so a crashed pack is continued by the
   * next call, in any process. Log entries are rewritten (with putIfMatch),
   * never deleted, so no TID ever becomes free again for a stalled writer.
   * Readers of states before the boundary get TooOldError, never other data;
   * writers whose snapshot is before it get ConflictError.
   */
  async pack(beforeTid: number, options: PackOptions = {}): Promise<PackProgress> {
    const maxEntries = options.maxEntries ?? PACK_ENTRIES_PER_CALL;
    const head = await this.refresh();
    if (!Number.isSafeInteger(beforeTid) || beforeTid < 1 || beforeTid > head) throw new RangeError(`pack: ${beforeTid} is not a TID of this log (1 to ${head})`);
    let state: PackState;
    let stateEtag: string;
    for (;;) {
      const current = await this.#log.readPackState();
      if (current !== undefined && current.state.beforeTid >= beforeTid) {
        state = current.state;
        stateEtag = current.etag;
        break;
      }
      // Never past a reader's lease: the boundary stops at the oldest leased TID.
      const leased = await this.#log.oldestLeasedTid(Date.now());
      const boundary = Math.min(beforeTid, leased ?? beforeTid);
      if (current !== undefined && current.state.beforeTid >= boundary) {
        state = current.state;
        stateEtag = current.etag;
        break;
      }
      if (boundary < 1) return { beforeTid: boundary, cursor: 1, done: true, dropped: 0 };
      // A new, later boundary: durable before anything is dropped; compaction starts over from the first entry.
      // Written against the pack object as read before listing the leases: a lease taken since changed it, so this fails and looks again.
      const next: PackState = { beforeTid: boundary, cursor: 1 };
      if (options.references !== undefined) next.unreachable = await this.#unreachable(boundary, options.references, options.roots ?? ['root']);
      const etag = await this.#log.writePackState(next, current?.etag);
      if (etag !== false) {
        state = next;
        stateEtag = etag;
        break;
      }
    }
    this.#index.oldest = Math.max(this.#index.oldest, state.beforeTid);
    const unreachable = new Set(state.unreachable);
    // This process reads what a process opening the packed log will: no revision of an unreachable record up to the boundary.
    for (const oid of unreachable) this.#index.forget(oid, state.beforeTid);
    // A reachability pack also rewrites the entry at the boundary (an unreachable record's revision current there goes).
    const last = unreachable.size > 0 ? state.beforeTid : state.beforeTid - 1;
    let cursor = state.cursor;
    const end = Math.min(last + 1, cursor + maxEntries);
    let dropped = 0;
    for (; cursor < end; cursor++) {
      for (;;) {
        const read = await this.#log.readVersioned(cursor);
        if (read === undefined) throw new CorruptLogError(`log entry ${cursor} is missing below the head ${head}`);
        const { entry, etag } = read;
        const dataKeys: string[] = [];
        const gone = new Set(entry.gone);
        let count = 0;
        const txns = entry.txns.map((txn) => ({
          ...txn,
          writes: txn.writes.filter(([oid, stored]) => {
            const unreached = unreachable.has(oid) && entry.tid <= state.beforeTid;
            const drop = unreached || this.#index.dropsAt(oid, { tid: entry.tid, stored }, state.beforeTid);
            if (drop) {
              count++;
              if ('k' in stored) dataKeys.push(this.prefix + stored.k);
              // A dropped deletion (or unreachable record) stays known as an end: see CommitEntry.gone.
              if (unreached || 'x' in stored) gone.add(oid);
            }
            return !drop;
          }),
        }));
        if (count === 0) break;
        // The data first: a reader of the entry as it was who wants dropped data finds the boundary and gets TooOldError.
        if (dataKeys.length > 0) {
          const failed = await this.storage.deleteMany(dataKeys);
          if (failed.length > 0) throw new Error(`pack: could not delete ${failed.length} data objects (${failed[0]!.code}); call pack again`);
        }
        if (await this.#log.rewrite({ ...entry, txns, packed: state.beforeTid, ...(gone.size === 0 ? {} : { gone: [...gone].sort() }) }, etag)) {
          dropped += count;
          break;
        }
        // Another pack rewrote it meanwhile: look again.
      }
    }
    if (cursor > state.cursor) await this.#saveCursor(state, stateEtag, cursor);
    const done = cursor > last;
    if (done) await this.#checkpointAfterPack(state.beforeTid);
    return { beforeTid: state.beforeTid, cursor, done, dropped };
  }

  /**
   * Stores a checkpoint at or after a finished pack's boundary and points the
   * hint at it: stores opened later start from it rather than replaying the
   * whole log (openStore ignores checkpoints older than the boundary). Written
   * only after every entry is rewritten, and of the packed log's index (without
   * the dropped revisions; forget() took the unreachable records out), so a
   * crash at any step leaves either no usable checkpoint (replay) or an exact one.
   */
  async #checkpointAfterPack(beforeTid: number): Promise<void> {
    const hint = await this.#log.readHint();
    if ((hint?.hint.checkpoint ?? 0) >= beforeTid) return;
    const snapshot = this.#index.snapshot(beforeTid);
    assert(snapshot.tid >= beforeTid, `pack's checkpoint at ${snapshot.tid} is before its boundary ${beforeTid}`);
    await this.#log.writeCheckpoint(snapshot);
    await this.#log.advanceHint({ tid: snapshot.tid, checkpoint: snapshot.tid });
  }

  /** Stores how far this call got, unless another pack got as far or set a new boundary (a lease's mark is no reason to give up). */
  async #saveCursor(state: PackState, etag: string, cursor: number): Promise<void> {
    let expected: { state: PackState; etag: string } | undefined = { state, etag };
    while (expected !== undefined && expected.state.beforeTid === state.beforeTid && expected.state.cursor < cursor) {
      if ((await this.#log.writePackState({ ...expected.state, cursor }, expected.etag)) !== false) return;
      expected = await this.#log.readPackState();
    }
  }

  /**
   * A lease on the state at `tid` (default: the head): pack keeps every state
   * from `tid` on readable until the lease is released or lapses (renew() it
   * within `ttlMs`, default 60 s). TooOldError if a pack already passed `tid`.
   */
  async lease(tid?: number, options: { ttlMs?: number } = {}): Promise<ReaderLease> {
    const head = await this.refresh();
    const leased = tid ?? head;
    this.#checkTid(leased);
    if (leased > head) throw new RangeError(`lease: ${leased} is past the head ${head}`);
    return ReaderLease.acquire(this.#log, leased, options.ttlMs ?? DEFAULT_LEASE_MS);
  }

  /**
   * The records no root reaches at `beforeTid` (ZODB's pack with
   * referencesf). Records written after `beforeTid` are roots too, and every
   * revision kept (the one current at `beforeTid` and all later ones) lends
   * its references, so no state at or after the boundary reaches a dropped
   * record. Reads every reached record once: the mark phase is the one part
   * of pack whose work grows with the database, done by the call that sets
   * the boundary.
   */
  async #unreachable(beforeTid: number, references: NonNullable<PackOptions['references']>, roots: readonly string[]): Promise<string[]> {
    const pending = [...roots];
    for (const oid of this.#index.oids()) if (this.#index.changedAfter(oid, beforeTid)) pending.push(oid);
    const reached = new Set<string>();
    while (pending.length > 0) {
      const oid = pending.pop()!;
      if (reached.has(oid)) continue;
      reached.add(oid);
      for (const revision of this.#index.revisions(oid)) {
        const next = this.#index.nextRevisionAfter(oid, revision.tid);
        if (next !== undefined && next.tid <= beforeTid) continue; // replaced by the boundary: no kept state has it
        const data = await this.#read(revision, Math.max(revision.tid, beforeTid));
        if (data === undefined) continue;
        for (const target of references(oid, data)) if (!reached.has(target)) pending.push(target);
      }
    }
    return [...this.#index.oids()].filter((oid) => !reached.has(oid)).sort();
  }

  /** The writer epoch this store's commits begin in: the one it claimed, or the log's newest. */
  get epoch(): number {
    return this.#claimed ?? this.#index.epoch;
  }

  /**
   * Claims a new writer epoch and publishes it as a log entry of its own;
   * resolves with the epoch once the entry is in the log. From then on no
   * commit begun in an older epoch, in any process, is published (it throws
   * FencedError): a stalled writer that wakes up finds its TID taken, reads
   * forward, meets the new epoch and stops. `exclusive` (what `fence: true`
   * does at open): this store keeps the epoch and is fenced for good by the
   * next one claimed; otherwise it follows the log's newest epoch.
   */
  async fence(options: { exclusive?: boolean } = {}): Promise<number> {
    const head = await this.refresh();
    // A fenced exclusive store does not come back by itself (nor through collectGarbage): open a new one.
    if (this.#claimed !== undefined && this.#claimed < this.#index.epoch) throw new FencedError(this.#claimed, this.#index.epoch);
    const epoch = await this.#log.claimEpoch(Math.max(this.#index.epoch, this.#claimed ?? 0));
    if (options.exclusive === true || this.#claimed !== undefined) this.#claimed = epoch; // an exclusive store keeps holding the newest epoch
    const request: CommitRequest = { writeId: randomUUID(), snapshotTid: head, writes: new Map(), mustBeCurrent: new Set(), meta: { fence: String(epoch) } };
    await this.#enqueue({ request, stored: [], epoch, fence: true });
    return epoch;
  }

  /**
   * Deletes orphaned data objects: those written by commits that lost, were
   * fenced, or died before their entry. It first fences (a durable boundary:
   * a new epoch published in the log), so a data object of an older epoch
   * that no entry names can never be named by one; then it lists `data/` and
   * deletes those orphans older than `graceMs` (default 10 minutes).
   * Commits in flight in any process when it fences throw FencedError.
   */
  async collectGarbage(options: { graceMs?: number } = {}): Promise<GarbageReport> {
    const graceMs = options.graceMs ?? GC_GRACE_MS;
    const epoch = await this.fence();
    await this.refresh();
    const now = Date.now();
    const root = dataPrefix(this.prefix);
    const orphans: string[] = [];
    let young = 0;
    for await (const page of this.storage.list(root)) {
      for (const object of page.objects) {
        const parsed = parseDataKey(object.key.slice(root.length));
        if (parsed === undefined || parsed.epoch >= epoch || this.#index.tidOfWrite(parsed.writeId) !== undefined) continue;
        if (now - object.lastModified.getTime() < graceMs) young++;
        else orphans.push(object.key);
      }
    }
    for (let i = 0; i < orphans.length; i += GC_DELETE_BATCH) {
      const failed = await this.storage.deleteMany(orphans.slice(i, i + GC_DELETE_BATCH));
      if (failed.length > 0) throw new Error(`collectGarbage: could not delete ${failed.length} data objects (${failed[0]!.code}); run it again`);
    }
    return { epoch, deleted: orphans.length, young };
  }

  /** The oldest TID whose state can still be read (pack's boundary, as far as this process knows). */
  get oldestTid(): number {
    return this.#index.oldest;
  }

  /** Waits for background hint and checkpoint writes. The storage is the caller's to close. */
  async close(): Promise<void> {
    await Promise.allSettled([...this.#background]);
  }

  #checkTid(tid: number): void {
    if (!Number.isSafeInteger(tid) || tid < 0) throw new RangeError(`not a TID: ${tid}`);
    if (tid < this.#index.oldest) throw new TooOldError(tid, this.#index.oldest);
  }

  async #loadAt(oid: string, tid: number): Promise<Buffer | undefined> {
    if (tid > this.#index.head) await this.refresh();
    this.#checkTid(tid);
    const revision = this.#index.revisionAt(oid, tid);
    return revision === undefined ? undefined : this.#read(revision, tid);
  }

  /** The bytes of a revision read for the state at `atTid`. */
  async #read(revision: Revision, atTid: number): Promise<Buffer | undefined> {
    const stored = revision.stored;
    if ('x' in stored) return undefined;
    if ('d' in stored) return Buffer.from(stored.d, 'base64');
    const bytes = await readAll(this.storage, this.prefix + stored.k);
    if (bytes !== undefined) return bytes;
    // Gone: a pack that began after this process last looked dropped it (never what a state at or after its boundary needs).
    const pack = await this.#log.readPackState();
    if (pack !== undefined) this.#index.oldest = Math.max(this.#index.oldest, pack.state.beforeTid);
    if (atTid < this.#index.oldest) throw new TooOldError(atTid, this.#index.oldest);
    throw new CorruptLogError(`the data of a revision at ${revision.tid} (${stored.k}) is missing`);
  }

  #changedSince(oids: Iterable<string>, tid: number, alsoWritten: ReadonlySet<string>): string[] {
    const conflicts = new Set<string>();
    for (const oid of oids) if (alsoWritten.has(oid) || this.#index.changedAfter(oid, tid)) conflicts.add(oid);
    return [...conflicts].sort();
  }

  async #commit(request: CommitRequest): Promise<number> {
    if (request.writes.size === 0) {
      // Read-only: serializable at its snapshot; only checkCurrent's records need a look at the newest state.
      if (request.mustBeCurrent.size > 0) {
        await this.refresh();
        const conflicts = this.#changedSince(request.mustBeCurrent, request.snapshotTid, new Set());
        if (conflicts.length > 0) throw new ConflictError(conflicts, request.snapshotTid);
      }
      return request.snapshotTid;
    }
    const epoch = this.epoch;
    if (epoch < this.#index.epoch) throw new FencedError(epoch, this.#index.epoch);
    // Record data before the entry that names it: large values are objects of their own, keyed by the epoch and write ID.
    const stored: [string, StoredRevision][] = [];
    const uploads: Promise<unknown>[] = [];
    let n = 0;
    for (const [oid, bytes] of request.writes) {
      if (bytes === null) stored.push([oid, { x: 1 }]);
      else if (bytes.length <= INLINE_LIMIT_BYTES) stored.push([oid, { d: bytes.toString('base64') }]);
      else {
        const relative = dataKey('', epoch, request.writeId, n++);
        uploads.push(this.storage.put(this.prefix + relative, bytes));
        stored.push([oid, { k: relative, n: bytes.length }]);
      }
    }
    await Promise.all(uploads);
    return this.#enqueue({ request, stored, epoch });
  }

  #enqueue(member: Omit<Waiting, 'resolve' | 'reject'>): Promise<number> {
    return new Promise<number>((resolve, reject) => {
      this.#queue.push({ ...member, resolve, reject });
      if (!this.#committing) void this.#drain();
    });
  }

  async #drain(): Promise<void> {
    this.#committing = true;
    try {
      while (this.#queue.length > 0) {
        // A fence goes alone, so the commits queued before it are published in their epoch, not refused by it.
        const fenceAt = this.#queue.findIndex((member) => member.fence === true);
        const size = fenceAt === 0 ? 1 : Math.min(fenceAt === -1 ? Infinity : fenceAt, this.#groupCommit ? this.#maxGroup : 1);
        const group = this.#queue.splice(0, size);
        await this.#commitGroup(group);
      }
    } finally {
      this.#committing = false;
    }
  }

  /** Commits a group in one log entry; settles every member (never throws). */
  async #commitGroup(group: Waiting[]): Promise<void> {
    let members = group;
    let entry: CommitEntry | undefined;
    let failures = 0;
    let ambiguous = false;
    let lastError: unknown;
    while (members.length > 0) {
      // A member whose write ID is in the log committed (an attempt whose answer was lost landed).
      members = members.filter((member) => {
        const tid = this.#index.tidOfWrite(member.request.writeId);
        if (tid !== undefined) member.resolve(tid);
        return tid === undefined;
      });
      if (members.length === 0) return;
      if (entry === undefined) {
        // First committer wins: a member loses to any commit after its snapshot, and to earlier members of its group.
        // Epochs never go back along the log: work begun before the newest epoch (a fence) is refused.
        const logEpoch = Math.max(this.#index.epoch, ...members.map((member) => member.epoch));
        const accepted: Waiting[] = [];
        const written = new Set<string>();
        for (const member of members) {
          const { request } = member;
          if (member.epoch < logEpoch) {
            member.reject(new FencedError(member.epoch, logEpoch));
            continue;
          }
          // A snapshot older than pack's boundary cannot be validated (pack dropped what it would compare with): fenced.
          const conflicts =
            request.snapshotTid < this.#index.oldest
              ? [...new Set([...request.writes.keys(), ...request.mustBeCurrent])].sort()
              : this.#changedSince([...request.writes.keys(), ...request.mustBeCurrent], request.snapshotTid, written);
          if (conflicts.length > 0) {
            member.reject(new ConflictError(conflicts, request.snapshotTid));
            continue;
          }
          accepted.push(member);
          for (const oid of request.writes.keys()) written.add(oid);
        }
        members = accepted;
        if (members.length === 0) return;
        entry = {
          v: FORMAT_VERSION,
          tid: this.#index.head + 1,
          time: new Date().toISOString(),
          ...(logEpoch === 0 ? {} : { epoch: logEpoch }),
          ...(members.some((member) => member.fence === true) ? { fence: true as const } : {}),
          txns: members.map(({ request, stored }) => ({ id: request.writeId, ...(request.meta === undefined ? {} : { meta: request.meta }), writes: stored })),
        };
      }
      try {
        const outcome = await this.#log.create(entry);
        if (outcome === 'created') {
          this.#index.apply(entry);
          for (const member of members) member.resolve(entry.tid);
          this.#afterCommit(entry.tid);
          return;
        }
        // Another writer has this TID: read forward (its entry may be ours, from an attempt whose answer was lost).
        entry = undefined;
        await this.refresh();
        continue;
      } catch (error) {
        // The answer is unknown (or reading forward failed): the entry may or may not be there.
        lastError = error;
        ambiguous ||= entry !== undefined;
        if (++failures >= COMMIT_ATTEMPTS) break;
        await delay(RETRY_BASE_MS * 2 ** Math.min(failures, 6) * (0.5 + Math.random()));
        try {
          if (entry !== undefined) {
            const found = await this.#log.read(entry.tid);
            if (found === undefined) continue; // not there: the same entry again, at the same TID (idempotent by write ID)
          }
          entry = undefined;
          await this.refresh();
        } catch (readError) {
          lastError = readError;
        }
      }
    }
    for (const member of members) member.reject(ambiguous ? new CommitOutcomeUnknownError(member.request.writeId, { cause: lastError }) : lastError);
  }

  #afterCommit(tid: number): void {
    const tasks: Promise<void>[] = [];
    if (tid % this.#checkpointEvery === 0 && this.#index.head === tid) {
      const snapshot = this.#index.snapshot();
      tasks.push(this.#log.writeCheckpoint(snapshot).then(() => this.#log.advanceHint({ tid, checkpoint: tid })));
    } else if (tid % this.#hintEvery === 0) {
      tasks.push(this.#log.advanceHint({ tid }));
    }
    for (const task of tasks) {
      const settled = task.catch(() => undefined).finally(() => this.#background.delete(settled));
      this.#background.add(settled);
    }
  }
}
