/**
 * `talus migrate DATA_DIR --to postgres://…`: moves a single-node
 * installation's metadata into an empty PostgreSQL database, table by table
 * in one transaction, then verifies it: every table's row count and an
 * order-independent checksum of its rows must be equal on both sides, or
 * the transaction is rolled back and nothing is left in PostgreSQL.
 *
 * Only metadata moves. Blobs in DATA_DIR/blobs (the local placement) are
 * not copied, and a node started with --meta refuses the local placement:
 * an installation with local objects must re-place them on shared backends
 * first (the placement configuration and `talus heal`'s re-placement), which
 * this command checks and refuses otherwise.
 */
import { createHash } from 'node:crypto';
import { stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import type postgres from 'postgres';
import { lockDataDirectory } from '../../data-dir-lock.ts';
import { SqliteMetadataStore } from '../sqlite/sqlite-metadata-store.ts';
import { PostgresMetadataStore } from './postgres-metadata-store.ts';

/** Tables in the order they are copied, with the columns that identify a row. */
const TABLES = ['settings', 'access_keys', 'users', 'buckets', 'versions', 'inline_data', 'uploads', 'parts', 'blobs', 'repairs'] as const;
const COPY_BATCH_ROWS = 500;
/**
 * Rows the verification reads back from PostgreSQL per cursor fetch: the
 * copied table is checksummed a batch at a time (a table may be far larger
 * than memory), as the SQLite side is read a row at a time.
 */
export const VERIFY_BATCH_ROWS = 1000;

export interface TableReport {
  table: string;
  rows: number;
  checksum: string;
}

/** Thrown when the target is not empty, the source is not ready, or verification fails. */
export class MigrationError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'MigrationError';
  }
}

type Row = Record<string, unknown>;

/**
 * One row's digest over its columns in a fixed order, values in a form
 * both drivers agree on (numbers, text, bytes as base64, NULL); summed
 * modulo 2^64 over the table, so the order rows are read in does not matter.
 */
class TableChecksum {
  #sum = 0n;
  rows = 0;
  add(row: Row, columns: readonly string[]): void {
    const values = columns.map((column) => {
      const value = row[column];
      return Buffer.isBuffer(value) || value instanceof Uint8Array ? `b64:${Buffer.from(value).toString('base64')}` : value ?? null;
    });
    const digest = createHash('sha256').update(JSON.stringify(values)).digest();
    this.#sum = (this.#sum + digest.readBigUInt64BE(0)) & 0xffff_ffff_ffff_ffffn;
    this.rows++;
  }
  get value(): string {
    return this.#sum.toString(16).padStart(16, '0');
  }
}

export async function migrateToPostgres(dataDir: string, url: string): Promise<TableReport[]> {
  const directory = resolve(dataDir);
  const database = join(directory, 'meta.db');
  if (!(await stat(database).then((stats) => stats.size > 0, () => false))) throw new MigrationError(`${directory} is not a Talus data directory (no ${database})`);
  // No server may write while we copy.
  const lock = await lockDataDirectory(directory);
  const source = new SqliteMetadataStore(database);
  let target: PostgresMetadataStore | undefined;
  try {
    if ((await source.listUnsealedAccessKeys()).length > 0) throw new MigrationError('the data directory still holds plain-text secrets: start its server once (it seals them), stop it, then migrate');
    const [local] = source.database.prepare("SELECT blob_id FROM blobs WHERE backend = 'local' LIMIT 1").all() as { blob_id: string }[];
    if (local !== undefined) throw new MigrationError(`${directory} holds blobs in its data directory (the local placement, e.g. ${local.blob_id}); a scale-out node serves only blobs on shared backends: re-place them first (docs/SCALE-OUT.md)`);
    target = await PostgresMetadataStore.open(url);
    const sql = target.sql;
    return await sql.begin(async (tx) => {
      for (const table of TABLES) {
        if (table === 'settings') continue; // written by open(): replaced below
        const [row] = await tx.unsafe(`SELECT 1 FROM ${table} LIMIT 1`);
        if (row !== undefined) throw new MigrationError(`the PostgreSQL database is not empty (table ${table} has rows): migrate into a new database`);
      }
      await tx`DELETE FROM settings`;
      const reports: TableReport[] = [];
      for (const table of TABLES) {
        const statement = source.database.prepare(`SELECT * FROM ${table}`);
        const columns = statement.columns().map((column) => column.name);
        const expected = new TableChecksum();
        let batch: Row[] = [];
        const flush = async (): Promise<void> => {
          if (batch.length === 0) return;
          await tx`INSERT INTO ${tx(table)} ${tx(batch as postgres.Row[], columns)}`;
          batch = [];
        };
        for (const row of statement.iterate() as Iterable<Row>) {
          expected.add(row, columns);
          batch.push(row);
          if (batch.length >= COPY_BATCH_ROWS) await flush();
        }
        await flush();
        const copied = new TableChecksum();
        await tx.unsafe<Row[]>(`SELECT ${columns.map((column) => `"${column}"`).join(', ')} FROM ${table}`).cursor(VERIFY_BATCH_ROWS, (rows) => {
          for (const row of rows) copied.add(row, columns);
        });
        if (copied.rows !== expected.rows || copied.value !== expected.value) {
          throw new MigrationError(`verification failed for ${table}: ${expected.rows} rows (checksum ${expected.value}) in SQLite, ${copied.rows} (${copied.value}) in PostgreSQL; nothing was kept`);
        }
        reports.push({ table, rows: copied.rows, checksum: copied.value });
      }
      // New versions continue after the copied ones.
      await tx`SELECT setval(pg_get_serial_sequence('versions', 'seq'), GREATEST((SELECT max(seq) FROM versions), 1))`;
      return reports;
    });
  } finally {
    await target?.close();
    await source.close();
    await lock.release();
  }
}

export async function migrateCommand(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({ args, allowPositionals: true, options: { to: { type: 'string' } } });
  const [dataDir] = positionals;
  if (dataDir === undefined || values.to === undefined || !/^postgres(ql)?:\/\//.test(values.to)) {
    process.stderr.write('Usage: talus migrate DATA_DIR --to postgres://USER@HOST:PORT/DATABASE   (the server stopped; the database new and empty)\n');
    return 2;
  }
  const reports = await migrateToPostgres(dataDir, values.to);
  for (const report of reports) process.stdout.write(`${report.table.padEnd(12)} ${String(report.rows).padStart(10)} rows  checksum ${report.checksum}\n`);
  process.stdout.write('verified: every table has the same rows in PostgreSQL\n');
  return 0;
}
