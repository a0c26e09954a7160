/**
 * Histories of transactions against talus/txn and a checker that verifies
 * them against the log: snapshot isolation with first-committer-wins, no lost
 * updates, every acknowledged commit in the log as acknowledged.
 *
 * The workload is read-modify-write of counters: a record's value is
 * {"n": count, "by": "<writer>:<i>"}; a transaction reads some records and
 * writes each with n + 1, so in a correct history a record's final n is the
 * number of committed writes to it.
 */
import type { TxnStore } from '../../src/txn/store.ts';

export interface CounterValue {
  n: number;
  by: string;
}

export interface TxnEvent {
  writer: string;
  writeId: string;
  snapshot: number;
  /** What each read returned (null: no record). */
  reads: Record<string, CounterValue | null>;
  writes: Record<string, CounterValue>;
  outcome: { commit: number } | { conflict: string[] } | { error: string };
}

/** The log as the truth: every committed revision of every record, and each write ID's TID and writes. */
export interface LogTruth {
  head: number;
  revisions: Map<string, { tid: number; value: CounterValue | null }[]>;
  byWriteId: Map<string, { tid: number; writes: Record<string, CounterValue | null> }>;
}

export async function readLogTruth(store: TxnStore): Promise<LogTruth> {
  const head = await store.lastTransaction();
  const revisions = new Map<string, { tid: number; value: CounterValue | null }[]>();
  const byWriteId = new Map<string, { tid: number; writes: Record<string, CounterValue | null> }>();
  for await (const record of store.transactions(1, head)) {
    for (const txn of record.txns) {
      const writes: Record<string, CounterValue | null> = {};
      for (const oid of txn.oids) {
        const bytes = await store.loadSerial(oid, record.tid);
        const value = bytes === undefined ? null : (JSON.parse(bytes.toString('utf8')) as CounterValue);
        writes[oid] = value;
        let list = revisions.get(oid);
        if (list === undefined) revisions.set(oid, (list = []));
        list.push({ tid: record.tid, value });
      }
      byWriteId.set(txn.writeId, { tid: record.tid, writes });
    }
  }
  return { head, revisions, byWriteId };
}

function valueAt(truth: LogTruth, oid: string, tid: number): CounterValue | null {
  let value: CounterValue | null = null;
  for (const revision of truth.revisions.get(oid) ?? []) if (revision.tid <= tid) value = revision.value;
  return value;
}

/**
 * The violations of snapshot isolation with first-committer-wins in
 * `events` (empty when the history is correct); with `serializable`, also
 * of serializability in TID order. `complete`: every
 * transaction that reached the log is in `events` (false when a writer was
 * killed and its last commit may be unacknowledged).
 */
export function checkHistory(events: readonly TxnEvent[], truth: LogTruth, options: { complete?: boolean; serializable?: boolean } = {}): string[] {
  const problems: string[] = [];
  const known = new Set(events.map((event) => event.writeId));
  for (const event of events) {
    const name = `${event.writer} ${event.writeId.slice(0, 8)} (snapshot ${event.snapshot})`;
    // Reads come from the snapshot, exactly.
    for (const [oid, read] of Object.entries(event.reads)) {
      const expected = valueAt(truth, oid, event.snapshot);
      if (JSON.stringify(read) !== JSON.stringify(expected)) problems.push(`${name} read ${oid} = ${JSON.stringify(read)} but at its snapshot it was ${JSON.stringify(expected)}`);
    }
    const logged = truth.byWriteId.get(event.writeId);
    if ('commit' in event.outcome) {
      const tid = event.outcome.commit;
      // An acknowledged commit is in the log, at its TID, with its writes.
      if (logged === undefined) {
        problems.push(`${name} was acknowledged at ${tid} but is not in the log (acknowledged commit lost)`);
        continue;
      }
      if (logged.tid !== tid) problems.push(`${name} was acknowledged at ${tid} but the log has it at ${logged.tid}`);
      if (JSON.stringify(sorted(logged.writes)) !== JSON.stringify(sorted(event.writes))) problems.push(`${name}: the log's writes differ from the acknowledged ones`);
      if (tid <= event.snapshot) problems.push(`${name} committed at ${tid}, not after its snapshot`);
      // Serializable: the history is equivalent to running the transactions one by one in TID order, so
      // everything a committed transaction read was still current just before its TID (nothing in between
      // changed it; members of one entry never read what an earlier member of it wrote).
      if (options.serializable === true) {
        for (const [oid, read] of Object.entries(event.reads)) {
          const current = valueAt(truth, oid, tid - 1);
          if (JSON.stringify(read) !== JSON.stringify(current)) problems.push(`${name} read ${oid} = ${JSON.stringify(read)}, but it was ${JSON.stringify(current)} before its commit at ${tid} (not serializable)`);
        }
      }
      // First committer wins: nobody else wrote its records between its snapshot and its commit.
      for (const oid of Object.keys(event.writes)) {
        for (const revision of truth.revisions.get(oid) ?? []) {
          if (revision.tid > event.snapshot && revision.tid < tid) problems.push(`${name} wrote ${oid} at ${tid} over a write at ${revision.tid} after its snapshot (first committer did not win)`);
        }
        // No lost update: the revision it replaced is the one it read.
        if (oid in event.reads) {
          const before = valueAt(truth, oid, tid - 1);
          if (JSON.stringify(before) !== JSON.stringify(event.reads[oid])) problems.push(`${name} replaced ${oid} = ${JSON.stringify(before)}, not the ${JSON.stringify(event.reads[oid])} it read (lost update)`);
        }
      }
    } else if ('conflict' in event.outcome) {
      if (logged !== undefined) problems.push(`${name} was reported a conflict but is in the log at ${logged.tid}`);
      // A conflict is genuine: a named record changed after the snapshot.
      const genuine = event.outcome.conflict.some((oid) => (truth.revisions.get(oid) ?? []).some((revision) => revision.tid > event.snapshot));
      if (!genuine) problems.push(`${name} was reported a conflict on ${event.outcome.conflict.join(', ')}, which did not change after its snapshot`);
    }
  }
  if (options.complete !== false) {
    for (const [writeId, logged] of truth.byWriteId) if (!known.has(writeId)) problems.push(`the log has a transaction ${writeId.slice(0, 8)} at ${logged.tid} that no writer made`);
  }
  // Counters: the final value of each record counts its committed writes (no lost update).
  for (const [oid, revisions] of truth.revisions) {
    const final = revisions[revisions.length - 1]?.value;
    if (final !== null && final !== undefined && final.n !== revisions.length) problems.push(`${oid} ends at n = ${final.n} after ${revisions.length} committed writes (lost update)`);
  }
  return problems;
}

function sorted(record: Record<string, unknown>): [string, unknown][] {
  return Object.entries(record).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
}
