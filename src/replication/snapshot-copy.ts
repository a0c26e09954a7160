/**
 * A consistent copy of the live database, made off the event loop.
 *
 * `VACUUM INTO` on a connection of its own, in a worker thread: it reads
 * inside one read transaction (WAL mode: writers go on meanwhile) and writes
 * a compact, self-contained database file. Its position is the last change
 * number the copy holds (sqlite_sequence is copied with it), so no
 * coordination with writers is needed. VACUUM renumbers the rowids of tables
 * without an INTEGER PRIMARY KEY; that is harmless because segments address
 * rows by primary key (change-capture.ts). Copying tens of MiB takes well
 * under a second here; on the event loop it would stall every request.
 */
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';

const THREAD_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const Database = require(workerData.driverPath);
try {
  const db = new Database(workerData.databasePath, { readonly: true });
  db.pragma('busy_timeout = 5000');
  try {
    db.prepare('VACUUM INTO ?').run(workerData.copyPath);
  } finally {
    db.close();
  }
  parentPort.postMessage({ ok: true });
} catch (error) {
  parentPort.postMessage({ ok: false, error: String(error && error.message || error) });
}
`;

export async function copyDatabase(databasePath: string, copyPath: string): Promise<void> {
  const driverPath = createRequire(import.meta.url).resolve('better-sqlite3');
  const worker = new Worker(THREAD_SOURCE, { eval: true, workerData: { driverPath, databasePath, copyPath } });
  try {
    const answer = await new Promise<{ ok: boolean; error?: string }>((resolve, reject) => {
      worker.once('message', resolve);
      worker.once('error', reject);
      worker.once('exit', (code) => reject(new Error(`snapshot thread exited with ${code}`)));
    });
    if (!answer.ok) throw new Error(`copying the metadata database failed: ${answer.error}`);
  } finally {
    await worker.terminate();
  }
}
