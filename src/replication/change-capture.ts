/**
 * Change capture for metadata replication: which rows changed, in commit
 * order, written in the same transaction as the change itself.
 *
 * Triggers on every table of the metadata database append the primary key of
 * each inserted, updated or deleted row to `talus_replication_changes`, whose
 * AUTOINCREMENT `seq` numbers the changes in commit order (SQLite's write
 * lock serializes transactions, so a reader's snapshot always holds a prefix
 * of the numbers). Triggers rather than a hook in the store's code paths:
 * they see every writer — the batched mutations, the purge and repair
 * bookkeeping outside them, worker processes and the CLI (`talus users`) —
 * and cannot be forgotten by the next mutation someone adds. The log holds
 * keys only; the shipper reads the rows' current values when it cuts a
 * segment (see segment.ts for why that is exact).
 *
 * Installed when replication is configured, removed when it is not, so an
 * installation without replication pays nothing. Removal empties the log
 * but keeps its table, and with it SQLite's AUTOINCREMENT high-water mark:
 * change numbers never go back. And an install where capture was off (the
 * first, or after a spell without replication, whose changes no segment
 * holds) skips one number: the new timeline's first segment starts past the
 * last replica of the old one, so a restore never chains it onto the old
 * timeline across the changes made meanwhile; it needs the new snapshot.
 */
import type Database from 'better-sqlite3';
import { assert } from '../util/assert.ts';

export const CHANGES_TABLE = 'talus_replication_changes';
const TRIGGER_PREFIX = 'talus_replication_';

/** The tables whose rows replicate, with their primary key columns in key order. */
export function replicatedTables(db: Database.Database): Map<string, string[]> {
  const names = db
    .prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name != ? ORDER BY name")
    .pluck()
    .all(CHANGES_TABLE) as string[];
  const tables = new Map<string, string[]>();
  for (const name of names) {
    const columns = db.prepare(`SELECT name, pk FROM pragma_table_info(?) WHERE pk > 0 ORDER BY pk`).all(name) as { name: string; pk: number }[];
    // Every table of the schema has a primary key; one without could not be replicated row by row.
    assert(columns.length > 0, `table ${name} has no primary key`);
    tables.set(name, columns.map((column) => column.name));
  }
  return tables;
}

function quote(identifier: string): string {
  return `"${identifier.replaceAll('"', '""')}"`;
}

function keyExpression(row: 'NEW' | 'OLD', columns: readonly string[]): string {
  return `json_array(${columns.map((column) => `${row}.${quote(column)}`).join(', ')})`;
}

/** Creates the log and the triggers (idempotent; tables added since the last start get theirs). */
export function installChangeCapture(db: Database.Database): void {
  db.transaction(() => {
    const wasCapturing = capturedTriggers(db).length > 0;
    db.exec(`CREATE TABLE IF NOT EXISTS ${CHANGES_TABLE} (seq INTEGER PRIMARY KEY AUTOINCREMENT, tbl TEXT NOT NULL, pk TEXT NOT NULL)`);
    if (!wasCapturing) {
      // A break in the timeline: see the module comment. (The row exists once the table has had an AUTOINCREMENT insert.)
      const last = lastChangeNumber(db);
      db.prepare('DELETE FROM sqlite_sequence WHERE name = ?').run(CHANGES_TABLE);
      db.prepare('INSERT INTO sqlite_sequence (name, seq) VALUES (?, ?)').run(CHANGES_TABLE, last + 1);
    }
    for (const [table, columns] of replicatedTables(db)) {
      const log = (row: 'NEW' | 'OLD'): string => `INSERT INTO ${CHANGES_TABLE} (tbl, pk) VALUES ('${table}', ${keyExpression(row, columns)});`;
      const name = (op: string): string => quote(`${TRIGGER_PREFIX}${table}_${op}`);
      db.exec(`CREATE TRIGGER IF NOT EXISTS ${name('insert')} AFTER INSERT ON ${quote(table)} BEGIN ${log('NEW')} END`);
      db.exec(`CREATE TRIGGER IF NOT EXISTS ${name('delete')} AFTER DELETE ON ${quote(table)} BEGIN ${log('OLD')} END`);
      db.exec(`CREATE TRIGGER IF NOT EXISTS ${name('update')} AFTER UPDATE ON ${quote(table)} BEGIN ${log('NEW')} END`);
      // An update that changes the key removes the old key too (Talus never does; fires only if the SET names a key column).
      const changed = columns.map((column) => `OLD.${quote(column)} IS NOT NEW.${quote(column)}`).join(' OR ');
      db.exec(`CREATE TRIGGER IF NOT EXISTS ${name('rekey')} AFTER UPDATE OF ${columns.map(quote).join(', ')} ON ${quote(table)} WHEN ${changed} BEGIN ${log('OLD')} END`);
    }
  }).immediate();
}

function capturedTriggers(db: Database.Database): string[] {
  return db.prepare("SELECT name FROM sqlite_master WHERE type = 'trigger' AND name LIKE ? ESCAPE '\\'").pluck().all(`${TRIGGER_PREFIX.replaceAll('_', '\\_')}%`) as string[];
}

/**
 * Drops the triggers and empties the log: nothing is captured any more.
 * The (empty) table stays: dropping it would drop its sqlite_sequence row,
 * and the next install would number changes from 1 again, under names a
 * restore takes for the old timeline's. Does nothing where capture is off.
 */
export function removeChangeCapture(db: Database.Database): void {
  const triggers = capturedTriggers(db);
  if (triggers.length === 0) return;
  db.transaction(() => {
    for (const trigger of triggers) db.exec(`DROP TRIGGER IF EXISTS ${quote(trigger)}`);
    db.exec(`DELETE FROM ${CHANGES_TABLE}`);
  }).immediate();
}

/** The number of the last change ever logged (0 before the first): where a snapshot of this database stands. */
export function lastChangeNumber(db: Database.Database): number {
  const hasSequence = db.prepare("SELECT 1 FROM sqlite_master WHERE name = 'sqlite_sequence'").get() !== undefined;
  if (!hasSequence) return 0;
  const seq = db.prepare('SELECT seq FROM sqlite_sequence WHERE name = ?').pluck().get(CHANGES_TABLE) as number | undefined;
  return seq ?? 0;
}

/** Forgets logged changes up to `through` (they are on a quorum of backends). */
export function trimChanges(db: Database.Database, through: number): void {
  db.prepare(`DELETE FROM ${CHANGES_TABLE} WHERE seq <= ?`).run(through);
}

/** The oldest change still logged, or undefined when the log is empty. */
export function firstLoggedChange(db: Database.Database): number | undefined {
  return (db.prepare(`SELECT min(seq) FROM ${CHANGES_TABLE}`).pluck().get() as number | null) ?? undefined;
}
