/**
 * The store's objects under its prefix, and the commit entry's format.
 *
 *   <prefix>log/<tid, 16 digits>   one commit entry per transaction ID, created
 *                                  with putIfAbsent: one writer wins each number
 *   <prefix>data/<writeId>/<n>     a record too large to inline, written before
 *                                  the entry that names it
 *   <prefix>head                   the head hint, {"tid": n}: a lower bound of
 *                                  the log's head, moved forward with putIfMatch
 *   <prefix>checkpoint/<tid>       the index of every revision up to <tid>, so
 *                                  open reads a bounded number of entries
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
  /** Set when pack rewrote the entry without the revisions not current at this TID: reads before it are gone. */
  packed?: number;
}

export function logKey(prefix: string, tid: number): string {
  return `${prefix}log/${String(tid).padStart(TID_DIGITS, '0')}`;
}
export function dataKey(prefix: string, writeId: string, n: number): string {
  return `${prefix}data/${writeId}/${n}`;
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
