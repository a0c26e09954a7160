/**
 * A transaction: reads from one snapshot (the log's head when it began),
 * buffers its writes, and commits them all in one log entry or none.
 */
import { randomUUID } from 'node:crypto';
import { ConflictError } from './errors.ts';

export type Isolation = 'snapshot' | 'serializable';

/** What a transaction needs from its store. */
export interface TransactionHost {
  loadAt(oid: string, tid: number): Promise<Buffer | undefined>;
  commit(request: CommitRequest): Promise<number>;
  /** The records among `oids` that changed after `tid`, as far as the store knows now (after reading the log forward). */
  changedSince(oids: Iterable<string>, tid: number): Promise<string[]>;
}

/** A transaction handed to the committer. */
export interface CommitRequest {
  writeId: string;
  snapshotTid: number;
  writes: ReadonlyMap<string, Buffer | null>;
  /** Records whose value must not have changed since the snapshot: checkCurrent's, and every read when serializable. */
  mustBeCurrent: ReadonlySet<string>;
  meta: Record<string, string> | undefined;
}

type State = 'active' | 'committing' | 'committed' | 'aborted';

export class Transaction {
  /** The TID whose state this transaction reads. */
  readonly snapshotTid: number;
  /** Unique per transaction: the log entry that commits it carries it. */
  readonly writeId: string;
  readonly isolation: Isolation;
  readonly #host: TransactionHost;
  readonly #writes = new Map<string, Buffer | null>();
  readonly #reads = new Set<string>();
  readonly #checks = new Set<string>();
  #meta: Record<string, string> | undefined;
  #state: State = 'active';

  constructor(host: TransactionHost, snapshotTid: number, isolation: Isolation) {
    this.#host = host;
    this.snapshotTid = snapshotTid;
    this.isolation = isolation;
    this.writeId = randomUUID();
  }

  get state(): State {
    return this.#state;
  }

  /** The record as of the snapshot, with this transaction's own writes applied; undefined if there is none. */
  async get(oid: string): Promise<Buffer | undefined> {
    this.#assertActive();
    checkOid(oid);
    const own = this.#writes.get(oid);
    if (own !== undefined) return own === null ? undefined : Buffer.from(own);
    this.#reads.add(oid);
    return this.#host.loadAt(oid, this.snapshotTid);
  }

  put(oid: string, bytes: Uint8Array | string): void {
    this.#assertActive();
    checkOid(oid);
    this.#writes.set(oid, typeof bytes === 'string' ? Buffer.from(bytes) : Buffer.from(bytes));
  }

  delete(oid: string): void {
    this.#assertActive();
    checkOid(oid);
    this.#writes.set(oid, null);
  }

  /** Commit only if `oid` is unchanged since the snapshot, even in snapshot isolation (ZODB's checkCurrentSerialInTransaction). */
  checkCurrent(oid: string): void {
    this.#assertActive();
    checkOid(oid);
    this.#checks.add(oid);
  }

  /** Free-form text stored with the commit (ZODB's user, description, extension). */
  setMeta(meta: Record<string, string>): void {
    this.#assertActive();
    this.#meta = { ...meta };
  }

  /**
   * Fails early with ConflictError if a transaction that committed since the
   * snapshot already decided this one's fate (ZODB's tpc_vote). commit() checks
   * again: a vote that passes does not reserve anything.
   */
  async vote(): Promise<void> {
    this.#assertActive();
    const conflicts = await this.#host.changedSince(new Set([...this.#writes.keys(), ...this.#mustBeCurrent()]), this.snapshotTid);
    if (conflicts.length > 0) throw new ConflictError(conflicts, this.snapshotTid);
  }

  /** Commits; resolves with the TID of the log entry that holds it, or rejects with ConflictError. */
  async commit(): Promise<number> {
    this.#assertActive();
    this.#state = 'committing';
    try {
      const tid = await this.#host.commit({
        writeId: this.writeId,
        snapshotTid: this.snapshotTid,
        writes: this.#writes,
        mustBeCurrent: this.#mustBeCurrent(),
        meta: this.#meta,
      });
      this.#state = 'committed';
      return tid;
    } catch (error) {
      this.#state = 'aborted';
      throw error;
    }
  }

  /** Drops the buffered writes; nothing was published. */
  abort(): void {
    if (this.#state === 'active') this.#state = 'aborted';
  }

  #mustBeCurrent(): Set<string> {
    return this.isolation === 'serializable' ? new Set([...this.#reads, ...this.#checks]) : new Set(this.#checks);
  }

  #assertActive(): void {
    if (this.#state !== 'active') throw new Error(`the transaction is ${this.#state}`);
  }
}

function checkOid(oid: string): void {
  if (typeof oid !== 'string' || oid.length === 0) throw new TypeError('a record ID is a non-empty string');
}
