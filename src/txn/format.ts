/**
 * The store's objects under its prefix, and the commit entry's format.
 *
 *   <prefix>log/<tid, 16 digits>   one commit entry per transaction ID, created
 *                                  with putIfAbsent: one writer wins each number
 *   <prefix>data/<epoch>/<writeId>/<n>
 *                                  a record too large to inline, written before
 *                                  the entry that names it, under the writer's
 *                                  epoch (so GC can tell fenced writers' orphans)
 *   <prefix>epoch                  the newest writer epoch claimed, {"epoch": e},
 *                                  moved forward with putIfAbsent / putIfMatch
 *   <prefix>head                   the head hint, {"tid": n}: a lower bound of
 *                                  the log's head, moved forward with putIfMatch
 *   <prefix>checkpoint/<tid>       the index of every revision up to <tid>, so
 *                                  open reads a bounded number of entries
 *   <prefix>lease/<random>         a reader lease, {"tid": t, "expires": ms}: pack
 *                                  keeps every state from t on until it expires
 *   <prefix>probe/<random>         the conditional-write probe of open
 *   <prefix>pack                   pack's durable boundary and cursor,
 *                                  {"beforeTid": b, "cursor": c}, written
 *                                  before pack deletes anything
 *
 * Transaction IDs are 1, 2, 3, … with no holes: a writer only creates entry
 * n + 1 after reading entry n, so "n + 1 is missing" means n is the head.
 */
import { CorruptLogError } from './errors.ts';

export const FORMAT_VERSION = 1;
/** Records up to this size travel inside the commit entry (one PUT per commit); larger ones are objects of their own. */
export const INLINE_LIMIT_BYTES = 16 * 1024;
const TID_DIGITS = 16;

/** A revision as the log stores it: inline bytes, a data object, or a deletion. */
export type StoredRevision = { d: string } | { k: string; n: number } | { x: 1 };

export interface EntryTransaction {
  /** Unique per commit attempt: how a writer recognizes its own entry after a lost answer. */
  id: string;
  meta?: Record<string, string>;
  writes: [oid: string, revision: StoredRevision][];
}

/** One log entry: the transactions committed together at one TID (group commit). */
export interface CommitEntry {
  v: number;
  tid: number;
  time: string;
  txns: EntryTransaction[];
  /**
   * The writer epoch of the entry (absent: 0). Epochs never decrease along the
   * log: an entry is only built by a writer that has read every entry before
   * it, and a writer refuses to publish work begun under an older epoch than
   * the log's (FencedError).
   */
  epoch?: number;
  /** Set on the entry that publishes a new epoch (fence()); it commits no transaction. */
  fence?: true;
  /** Set when pack rewrote the entry without the revisions not current at this TID: reads before it are gone. */
  packed?: number;
  /**
   * Set by pack: records whose revision here it dropped and that no longer
   * exist as of this TID (a deletion before the boundary, or a record no root
   * reaches). A reader that read an earlier entry of such a record before pack
   * rewrote that entry (a lagging store, or one that started from an older
   * checkpoint) forgets its revisions up to this TID on applying this entry,
   * rather than keep a revision the dropped deletion had ended.
   */
  gone?: string[];
}

export function logKey(prefix: string, tid: number): string {
  return `${prefix}log/${String(tid).padStart(TID_DIGITS, '0')}`;
}
export function dataKey(prefix: string, epoch: number, writeId: string, n: number): string {
  return `${prefix}data/${epoch}/${writeId}/${n}`;
}
export function dataPrefix(prefix: string): string {
  return `${prefix}data/`;
}
/**
 * The epoch and write ID of a data object's key relative to dataPrefix
 * (`<epoch>/<writeId>/<n>`, or `<writeId>/<n>` from before epochs: epoch 0).
 */
export function parseDataKey(relative: string): { epoch: number; writeId: string } | undefined {
  const parts = relative.split('/');
  if (parts.length === 3 && /^\d+$/.test(parts[0]!)) return { epoch: Number(parts[0]), writeId: parts[1]! };
  if (parts.length === 2) return { epoch: 0, writeId: parts[0]! };
  return undefined;
}
export function leasePrefix(prefix: string): string {
  return `${prefix}lease/`;
}
export function leaseKey(prefix: string, id: string): string {
  return `${leasePrefix(prefix)}${id}`;
}
export function epochKey(prefix: string): string {
  return `${prefix}epoch`;
}
export function headKey(prefix: string): string {
  return `${prefix}head`;
}
export function packKey(prefix: string): string {
  return `${prefix}pack`;
}
export function checkpointKey(prefix: string, tid: number): string {
  return `${prefix}checkpoint/${String(tid).padStart(TID_DIGITS, '0')}`;
}

export function encodeEntry(entry: CommitEntry): Buffer {
  return Buffer.from(JSON.stringify(entry));
}

export function decodeEntry(bytes: Buffer, expectedTid: number): CommitEntry {
  let parsed: unknown;
  try {
    parsed = JSON.parse(bytes.toString('utf8'));
  } catch (error) {
    throw new CorruptLogError(`log entry ${expectedTid} is not JSON`, { cause: error });
  }
  const entry = parsed as Partial<CommitEntry>;
  if (typeof entry !== 'object' || entry === null || entry.v !== FORMAT_VERSION || entry.tid !== expectedTid || !Array.isArray(entry.txns)) {
    throw new CorruptLogError(`log entry ${expectedTid} is not a version ${FORMAT_VERSION} commit entry for that TID`);
  }
  return entry as CommitEntry;
}
