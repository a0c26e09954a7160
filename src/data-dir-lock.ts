/**
 * One server per data directory. A second instance would take the first
 * one's half-written uploads for crash debris and reclaim them, and serve
 * from caches the other's writes make stale, so start-up takes a lock and
 * refuses a directory whose lock is held.
 *
 * The lock is an OS lock on an open file descriptor, not a PID in a file: a
 * PID means nothing in another PID namespace (two containers on one volume),
 * and writing one is not atomic with creating the file. SQLite takes POSIX
 * fcntl locks, so `talus.lock` is an empty SQLite database held in an
 * exclusive transaction for the life of the connection: the kernel grants it
 * to exactly one process on the host, whatever its PID namespace, and drops
 * it when that process dies, however it dies. SQLite also arbitrates between
 * connections inside one process (fcntl locks alone do not) and keeps its
 * descriptors open while a lock is held — a POSIX lock is dropped when the
 * process closes ANY descriptor of the file, so nothing else in Talus may
 * open `talus.lock`, and the file is never deleted (a process that opened
 * the old inode would lock a different file than one that created a new one).
 *
 * `talus.owner` (host, PID, start time) is written after the lock is taken,
 * to name the holder in the refusal. It is information only, never the lock.
 */
import Database from 'better-sqlite3';
import { statSync } from 'node:fs';
import { readFile, rename, rm, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { assert } from './util/assert.ts';

export class DataDirectoryLockedError extends Error {
  override name = 'DataDirectoryLockedError';
}

export interface DataDirectoryLock {
  release(): Promise<void>;
}

export const LOCK_FILE = 'talus.lock';
export const OWNER_FILE = 'talus.owner';

export interface LockOwner {
  host: string;
  pid: number;
  startedAt: string;
}

/**
 * How long taking the lock may wait out another process that is only
 * trying, too. BEGIN EXCLUSIVE takes SQLite's SHARED lock, then PENDING,
 * then EXCLUSIVE: two processes that both got SHARED would each refuse the
 * other with a busy timeout of 0, and nobody would win. With a short wait,
 * SQLite returns BUSY at once to the one that would deadlock (it drops its
 * SHARED lock when we close it) and lets the other wait for that. A real
 * holder keeps EXCLUSIVE, so a refusal costs this much and no more.
 */
const LOCK_CONTENTION_WAIT_MS = 250;

/** Locks held by this process, by path: a second lock of the same directory in-process is refused by SQLite too, this only keeps the connections reachable. */
const held = new Map<string, Database.Database>();

/** Takes the data directory's lock, or rejects with DataDirectoryLockedError naming the holder. Never waits. */
export async function lockDataDirectory(dataDir: string): Promise<DataDirectoryLock> {
  const path = join(dataDir, LOCK_FILE);
  if (held.has(path)) throw new DataDirectoryLockedError(`data directory ${dataDir} is in use by ${describeOwner(await readOwner(dataDir))}`);
  initializeLockFile(path);
  let connection: Database.Database;
  try {
    connection = new Database(path, { timeout: LOCK_CONTENTION_WAIT_MS });
  } catch (error) {
    throw new Error(`cannot open the data directory lock ${path}: ${String(error)}`);
  }
  try {
    connection.pragma('locking_mode = EXCLUSIVE');
    // In rollback-journal mode (the default) BEGIN EXCLUSIVE takes SQLite's
    // EXCLUSIVE fcntl lock at once; the transaction is never committed, so
    // the lock lasts as long as the connection: until release() or death.
    connection.exec('BEGIN EXCLUSIVE');
  } catch (error) {
    connection.close();
    const code = (error as { code?: unknown }).code;
    if (code === 'SQLITE_BUSY') throw new DataDirectoryLockedError(`data directory ${dataDir} is in use by ${describeOwner(await readOwner(dataDir))}`);
    if (code === 'SQLITE_NOTADB') {
      // Talus before the fcntl lock kept a PID in this file.
      throw new DataDirectoryLockedError(
        `${path} is the PID lock file of an older Talus: make sure no server of that version uses ${dataDir}, then delete the file`,
      );
    }
    throw error;
  }
  assert(!held.has(path), 'SQLite refuses a second lock of one file in one process');
  held.set(path, connection);
  const owner: LockOwner = { host: hostname(), pid: process.pid, startedAt: new Date().toISOString() };
  await writeOwner(dataDir, owner).catch(() => undefined);
  let released: Promise<void> | undefined;
  return {
    release: () =>
      (released ??= (async () => {
        // Before unlocking: afterwards the file may already name the next holder.
        await rm(join(dataDir, OWNER_FILE), { force: true }).catch(() => undefined);
        held.delete(path);
        connection.close();
      })()),
  };
}

/**
 * Gives a new lock file its first page. BEGIN EXCLUSIVE on an empty file
 * writes SQLite's header, which fails on a full disk; on a database that has
 * one it writes nothing, so a restart while the disk is full can still take
 * the lock. A separate short connection in the normal locking mode: racing
 * initializers are harmless (one writes, the others see it written or busy),
 * and it runs only while this process holds no lock on the file, so closing
 * it cannot drop one.
 */
function initializeLockFile(path: string): void {
  if ((statSync(path, { throwIfNoEntry: false })?.size ?? 0) > 0) return;
  let connection: Database.Database | undefined;
  try {
    connection = new Database(path, { timeout: 0 });
    if (connection.pragma('user_version', { simple: true }) === 0) connection.pragma('user_version = 1');
  } catch {
    // Busy (another process initializes or holds it) or no space: taking the lock says what it means.
  } finally {
    connection?.close();
  }
}

/** The holder the sidecar names, if it names one (it may be stale or missing: information only). */
export async function readOwner(dataDir: string): Promise<LockOwner | undefined> {
  try {
    const parsed = JSON.parse(await readFile(join(dataDir, OWNER_FILE), 'utf8')) as Partial<LockOwner>;
    if (typeof parsed.host !== 'string' || typeof parsed.pid !== 'number' || typeof parsed.startedAt !== 'string') return undefined;
    return { host: parsed.host, pid: parsed.pid, startedAt: parsed.startedAt };
  } catch {
    return undefined;
  }
}

function describeOwner(owner: LockOwner | undefined): string {
  if (owner === undefined) return 'another process (it has not said which yet)';
  return `process ${owner.pid} on host ${owner.host} (as seen in its PID namespace), started ${owner.startedAt}`;
}

async function writeOwner(dataDir: string, owner: LockOwner): Promise<void> {
  // Written whole under a temporary name, then renamed: a reader sees the old file or the new one.
  const temporary = join(dataDir, `${OWNER_FILE}.${process.pid}.tmp`);
  await writeFile(temporary, `${JSON.stringify(owner)}\n`);
  await rename(temporary, join(dataDir, OWNER_FILE));
}
