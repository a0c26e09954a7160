/**
 * The in-memory index of the log: for every record, its revisions in TID
 * order; for every TID, the records it changed and the write IDs it holds.
 * Built from the log (entries applied strictly in order) and never from
 * anything else, so two processes that read the same log agree.
 */
import { assert } from '../util/assert.ts';
import type { CommitEntry, StoredRevision } from './format.ts';

export interface Revision {
  tid: number;
  stored: StoredRevision;
}

export interface IndexSnapshot {
  tid: number;
  oldest?: number;
  epoch?: number;
  records: [oid: string, revisions: Revision[]][];
  changes: [tid: number, oids: string[]][];
  writeIds: [writeId: string, tid: number][];
}

export class MvccIndex {
  /** The last TID applied: the head as far as this process knows. */
  head = 0;
  /** The oldest TID whose state is still exact here: pack dropped what was older (0: nothing dropped). */
  oldest = 0;
  /** The newest writer epoch in the log up to head (entries without one: 0). */
  epoch = 0;
  readonly #records = new Map<string, Revision[]>();
  readonly #changes = new Map<number, string[]>();
  readonly #writeIds = new Map<string, number>();

  /** Applies the entry at head + 1; an entry at or below head was applied already and is ignored. */
  apply(entry: CommitEntry): boolean {
    if (entry.tid <= this.head) return false;
    assert(entry.tid === this.head + 1, `log entry ${entry.tid} applied after ${this.head}`);
    if (entry.packed !== undefined) this.oldest = Math.max(this.oldest, entry.packed);
    this.epoch = Math.max(this.epoch, entry.epoch ?? 0);
    // Revisions this index may hold from entries read before pack rewrote them: their record is gone here.
    for (const oid of entry.gone ?? []) this.forget(oid, entry.tid);
    const changed: string[] = [];
    for (const txn of entry.txns) {
      this.#writeIds.set(txn.id, entry.tid);
      for (const [oid, stored] of txn.writes) {
        let revisions = this.#records.get(oid);
        if (revisions === undefined) this.#records.set(oid, (revisions = []));
        revisions.push({ tid: entry.tid, stored });
        changed.push(oid);
      }
    }
    this.#changes.set(entry.tid, changed);
    this.head = entry.tid;
    return true;
  }

  /** The revision of `oid` current at `tid` (the last one at or before it), if any. */
  revisionAt(oid: string, tid: number): Revision | undefined {
    const revisions = this.#records.get(oid);
    if (revisions === undefined) return undefined;
    // Binary search for the last revision with revision.tid <= tid.
    let low = 0;
    let high = revisions.length;
    while (low < high) {
      const mid = (low + high) >>> 1;
      if (revisions[mid]!.tid <= tid) low = mid + 1;
      else high = mid;
    }
    return low === 0 ? undefined : revisions[low - 1];
  }

  /** The revision after `tid` of `oid`, if any (ZODB's end of validity). */
  nextRevisionAfter(oid: string, tid: number): Revision | undefined {
    const revisions = this.#records.get(oid);
    return revisions?.find((revision) => revision.tid > tid);
  }

  /**
   * Whether pack(beforeTid) drops this revision: a deletion older than
   * beforeTid (nothing at or after beforeTid can need it), or a revision
   * replaced at or before beforeTid.
   */
  dropsAt(oid: string, revision: Revision, beforeTid: number): boolean {
    if (revision.tid >= beforeTid) return false;
    if ('x' in revision.stored) return true;
    const next = this.nextRevisionAfter(oid, revision.tid);
    return next !== undefined && next.tid <= beforeTid;
  }

  /**
   * Forgets the revisions of `oid` at or before `tid` (a reachability pack
   * dropped them from the log), so this process reads what a process that
   * opens the packed log reads.
   */
  forget(oid: string, tid: number): void {
    const revisions = this.#records.get(oid);
    if (revisions === undefined) return;
    const kept = revisions.filter((revision) => revision.tid > tid);
    if (kept.length === 0) this.#records.delete(oid);
    else this.#records.set(oid, kept);
  }

  revisions(oid: string): readonly Revision[] {
    return this.#records.get(oid) ?? [];
  }

  /** Whether `oid` changed in a transaction after `tid` (up to head). */
  changedAfter(oid: string, tid: number): boolean {
    const revisions = this.#records.get(oid);
    return revisions !== undefined && revisions.length > 0 && revisions[revisions.length - 1]!.tid > tid;
  }

  changesOf(tid: number): readonly string[] | undefined {
    return this.#changes.get(tid);
  }

  tidOfWrite(writeId: string): number | undefined {
    return this.#writeIds.get(writeId);
  }

  oids(): IterableIterator<string> {
    return this.#records.keys();
  }

  /**
   * The index as a checkpoint. With `packedBefore` (a finished pack's
   * boundary), without the revisions that pack dropped from the log: the
   * index a store replaying the packed log builds, not this process's, which
   * may still hold them.
   */
  snapshot(packedBefore?: number): IndexSnapshot {
    const records: [string, Revision[]][] = [];
    for (const [oid, revisions] of this.#records) {
      const kept = packedBefore === undefined ? [...revisions] : revisions.filter((revision) => !this.dropsAt(oid, revision, packedBefore));
      if (kept.length > 0) records.push([oid, kept]);
    }
    return {
      tid: this.head,
      oldest: Math.max(this.oldest, packedBefore ?? 0),
      epoch: this.epoch,
      records,
      changes: [...this.#changes],
      writeIds: [...this.#writeIds],
    };
  }

  static fromSnapshot(snapshot: IndexSnapshot): MvccIndex {
    const index = new MvccIndex();
    index.head = snapshot.tid;
    index.oldest = snapshot.oldest ?? 0;
    index.epoch = snapshot.epoch ?? 0;
    for (const [oid, revisions] of snapshot.records) index.#records.set(oid, revisions);
    for (const [tid, oids] of snapshot.changes) index.#changes.set(tid, oids);
    for (const [writeId, tid] of snapshot.writeIds) index.#writeIds.set(writeId, tid);
    return index;
  }
}
