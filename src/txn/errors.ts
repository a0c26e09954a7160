/** The typed errors of talus/txn. */

/** commit() lost to a transaction that committed first (or, serializable, changed what this one read). */
export class ConflictError extends Error {
  override name = 'ConflictError';
  /** The records that conflicted, sorted. */
  readonly oids: readonly string[];
  /** The transaction this one's snapshot was taken at. */
  readonly snapshotTid: number;

  constructor(oids: readonly string[], snapshotTid: number) {
    super(`conflict on ${oids.map((oid) => JSON.stringify(oid)).join(', ')}: changed after snapshot ${snapshotTid}`);
    this.oids = [...oids].sort();
    this.snapshotTid = snapshotTid;
  }
}

/**
 * The storage kept failing while a commit's log entry was being written, so
 * whether it committed is not known. Its write ID settles it later:
 * `store.findWrite(writeId)`.
 */
export class CommitOutcomeUnknownError extends Error {
  override name = 'CommitOutcomeUnknownError';
  readonly writeId: string;
  constructor(writeId: string, options?: { cause?: unknown }) {
    super(`the outcome of commit ${writeId} is unknown (storage kept failing); look it up with findWrite()`, options);
    this.writeId = writeId;
  }
}

/**
 * The writer was fenced: a newer writer epoch was published in the log (by a
 * store opened with `fence: true`, by fence(), or by collectGarbage()) after
 * this commit's work began, so it is not published; its data may already be
 * collected. A store opened with `fence: true` stays fenced (open a new one);
 * another store's next transaction runs in the new epoch.
 */
export class FencedError extends Error {
  override name = 'FencedError';
  /** The epoch the refused work began in. */
  readonly epoch: number;
  /** The newer epoch in the log that fenced it. */
  readonly fencedBy: number;
  constructor(epoch: number, fencedBy: number) {
    super(`writer epoch ${epoch} is fenced: the log moved on to epoch ${fencedBy}`);
    this.epoch = epoch;
    this.fencedBy = fencedBy;
  }
}

/** The storage does not honour conditional writes, so no log on it can be safe. */
export class UnsupportedStorageError extends Error {
  override name = 'UnsupportedStorageError';
}

/** poll() or a snapshot read asked about transactions that pack already dropped. */
export class TooOldError extends Error {
  override name = 'TooOldError';
  readonly tid: number;
  readonly oldestTid: number;
  constructor(tid: number, oldestTid: number) {
    super(`transaction ${tid} is older than the oldest one kept (${oldestTid})`);
    this.tid = tid;
    this.oldestTid = oldestTid;
  }
}

/** The log holds an object that is not a commit entry this version understands. */
export class CorruptLogError extends Error {
  override name = 'CorruptLogError';
}
