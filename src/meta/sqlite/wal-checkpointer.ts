import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';

/**
 * Checkpoints the WAL from a worker thread with its own connection, so the
 * event loop never copies pages into the database file or waits for its
 * fsyncs. Left to itself, SQLite checkpoints inside whichever COMMIT pushes
 * the WAL past 1000 pages: measured here, that made an average small-object
 * commit cost ~125 us on the event loop instead of ~75 us, with stalls of
 * several milliseconds. Serving connections keep a far larger automatic
 * threshold (SERVING_AUTOCHECKPOINT_PAGES) only as a safety net in case this
 * thread falls behind or dies.
 *
 * PASSIVE checkpoints never block readers or writers; once one has copied
 * every frame, the next writer starts the WAL over from its beginning. That
 * writer rewrites the WAL header with new salts and must fsync it before its
 * first frame (SQLite does so even with synchronous=NORMAL: a frame of the
 * new log reaching the disk before its header could let a stale frame of
 * the old log be replayed after a power loss). Left to a serving commit,
 * that fsync blocked the event loop for 0.2-30 ms, several times a second
 * under a write load (strace). So after a checkpoint that copied every
 * frame, this thread restarts the log itself with a commit of its own that
 * rewrites the database's user_version with the value it has (a page write
 * that changes nothing and no replicated row), taking the header's fsync on
 * this thread. Best effort: if a serving commit or a reader gets there first,
 * SQLite restarts the log as before.
 */
export class WalCheckpointer {
  readonly #databasePath: string;
  readonly #driverPath: string;
  readonly #onError: (error: unknown) => void;
  #worker!: Worker;
  /** Settles when the current thread has ended, however it ended (a thread that died before stop() must not make stop() wait for ever). */
  #exited!: Promise<void>;
  #stopped = false;
  #restartTimer: NodeJS.Timeout | undefined;
  #restarts = 0;

  constructor(databasePath: string, onError: (error: unknown) => void) {
    // The thread runs plain JavaScript (no TypeScript loader in threads); it
    // finds better-sqlite3 by the path this module resolves.
    this.#driverPath = createRequire(import.meta.url).resolve('better-sqlite3');
    this.#databasePath = databasePath;
    this.#onError = onError;
    this.#spawn();
  }

  #spawn(): void {
    const worker = new Worker(THREAD_SOURCE, {
      eval: true,
      workerData: { driverPath: this.#driverPath, databasePath: this.#databasePath, intervalMs: CHECKPOINT_INTERVAL_MS },
    });
    this.#worker = worker;
    this.#exited = new Promise<void>((resolve) => worker.once('exit', () => resolve()));
    worker.on('error', (error) => {
      if (!this.#stopped) this.#onError(error);
    });
    // A checkpoint that failed (a full disk: SQLITE_FULL) is reported and retried at the next interval.
    worker.on('message', (message: { checkpointFailed?: string }) => {
      if (!this.#stopped && message.checkpointFailed !== undefined) this.#onError(new Error(`WAL checkpoint failed: ${message.checkpointFailed}`));
    });
    // A thread that died anyway (it could not open its database, say) is
    // started again with backoff: left dead, the WAL would grow until the
    // serving connections' safety net checkpoints on the event loop.
    void this.#exited.then(() => {
      if (this.#stopped) return;
      const delayMs = Math.min(RESTART_DELAY_MS_MAX, RESTART_DELAY_MS * 2 ** Math.min(this.#restarts, 10));
      this.#restarts++;
      this.#restartTimer = setTimeout(() => {
        this.#restartTimer = undefined;
        if (!this.#stopped) this.#spawn();
      }, delayMs);
      this.#restartTimer.unref();
    });
    worker.unref();
  }

  /** How many times the thread was started again after it died. */
  get restarts(): number {
    return this.#restarts;
  }

  /** Closes the thread's connection (so the server's own close can checkpoint and remove the WAL) and ends the thread. */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    if (this.#restartTimer !== undefined) clearTimeout(this.#restartTimer);
    this.#worker.postMessage('stop');
    const worker = this.#worker;
    const timer = setTimeout(() => void worker.terminate(), STOP_TIMEOUT_MS);
    await this.#exited;
    clearTimeout(timer);
  }
}

/** Backoff for starting a dead checkpointer thread again: 1 s, doubling, at most a minute. */
const RESTART_DELAY_MS = 1_000;
const RESTART_DELAY_MS_MAX = 60_000;
/** How often the thread looks at the WAL: it holds at most this long's worth of commits beyond the database. */
const CHECKPOINT_INTERVAL_MS = 100;
const STOP_TIMEOUT_MS = 5_000;
/** Serving connections checkpoint by themselves only past this (about 40 MiB of WAL). */
export const SERVING_AUTOCHECKPOINT_PAGES = 10_000;

const THREAD_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const { statSync } = require('node:fs');
const Database = require(workerData.driverPath);
const db = new Database(workerData.databasePath);
db.pragma('busy_timeout = 5000');
db.pragma('synchronous = NORMAL');
db.pragma('wal_autocheckpoint = 0');
const walPath = workerData.databasePath + '-wal';
const readUserVersion = db.prepare('PRAGMA user_version').pluck();
const restartLog = db.transaction(() => {
  // The same value: a write of page 1 that changes nothing (user_version is not used by the store).
  db.pragma('user_version = ' + Number(readUserVersion.get()));
});
let lastChange = 0;
let lastFailure = '';
const timer = setInterval(() => {
  let changed = 0;
  try { changed = statSync(walPath).mtimeMs; } catch { return; }
  // Frames were appended since the last look: copy them. An idle database
  // costs one stat per interval and no checkpoint at all.
  if (changed === lastChange) return;
  try {
    const [result] = db.pragma('wal_checkpoint(PASSIVE)');
    lastChange = changed;
    // Every frame copied: the next commit restarts the log; make it this one (see the class comment).
    if (result.busy === 0 && result.log > 0 && result.checkpointed === result.log) {
      try {
        restartLog.immediate();
        // Its own frame is no reason to look again: an idle database stays idle.
        lastChange = statSync(walPath).mtimeMs;
      } catch {
        // Busy past the timeout, or the disk is full: the next serving commit restarts the log as before.
      }
    }
  } catch (error) {
    // SQLITE_FULL on a full disk, say: uncaught, this would end the thread
    // for good. Report it (once per kind) and try again next interval.
    const text = String(error && error.message || error);
    if (text !== lastFailure) parentPort.postMessage({ checkpointFailed: text });
    lastFailure = text;
    return;
  }
  lastFailure = '';
}, workerData.intervalMs);
parentPort.once('message', () => {
  clearInterval(timer);
  db.close();
  parentPort.close();
});
`;
