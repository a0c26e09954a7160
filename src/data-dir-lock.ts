/**
 * One server per data directory. A second instance would take the first
 * one's half-written uploads for crash debris and reclaim them, so start-up
 * takes `talus.lock` (holding the owner's PID) and refuses a live owner's
 * directory. A lock left by a killed process (its PID is gone) is taken over.
 */
import { open, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';

export class DataDirectoryLockedError extends Error {
  override name = 'DataDirectoryLockedError';
}

export interface DataDirectoryLock {
  release(): Promise<void>;
}

const LOCK_ATTEMPTS_MAX = 3;

export async function lockDataDirectory(dataDir: string): Promise<DataDirectoryLock> {
  const path = join(dataDir, 'talus.lock');
  for (let attempt = 0; attempt < LOCK_ATTEMPTS_MAX; attempt++) {
    try {
      const handle = await open(path, 'wx');
      await handle.writeFile(`${process.pid}\n`);
      await handle.close();
      return { release: () => rm(path, { force: true }) };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    }
    const owner = Number((await readFile(path, 'utf8').catch(() => '')).trim());
    if (Number.isInteger(owner) && owner > 0 && isAlive(owner)) {
      throw new DataDirectoryLockedError(`data directory ${dataDir} is in use by process ${owner}`);
    }
    await rm(path, { force: true });
  }
  throw new DataDirectoryLockedError(`could not lock data directory ${dataDir}`);
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM: the process exists but belongs to someone else.
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}
