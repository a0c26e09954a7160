/**
 * Blobs being written live under `<root>/partial/<pid>/<id>` until their
 * commit renames them to `<root>/<xx>/<id>`: a partial blob names the
 * process writing it. So when a worker dies its primary removes exactly that
 * worker's unfinished uploads at once, never touching a live process's
 * writes, and start-up (under the data-directory lock, before any writer
 * runs) removes every partial blob without asking the metadata store:
 * nothing under `partial/` was ever committed.
 */
import { readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { assert } from '../../util/assert.ts';

export const PARTIAL_DIRECTORY = 'partial';

/** Where process `owner` writes its partial blobs. */
export function partialDirectory(root: string, owner: number): string {
  assert(Number.isInteger(owner) && owner > 0, `invalid partial blob owner ${owner}`);
  return join(root, PARTIAL_DIRECTORY, String(owner));
}

/** Removes the partial blobs of process `owner`, which must be dead (its writes can never complete). Returns how many. */
export async function removePartialBlobs(root: string, owner: number): Promise<number> {
  const directory = partialDirectory(root, owner);
  const count = await countFiles(directory);
  await rm(directory, { recursive: true, force: true });
  return count;
}

/** Removes every process's partial blobs: only while no process writes blobs in `root` (start-up, under the lock). */
export async function removeAllPartialBlobs(root: string): Promise<number> {
  const base = join(root, PARTIAL_DIRECTORY);
  let owners: string[];
  try {
    owners = await readdir(base);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return 0;
    throw error;
  }
  let count = 0;
  for (const owner of owners) count += await countFiles(join(base, owner));
  await rm(base, { recursive: true, force: true });
  return count;
}

async function countFiles(directory: string): Promise<number> {
  try {
    return (await readdir(directory)).length;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT' || (error as NodeJS.ErrnoException).code === 'ENOTDIR') return 0;
    throw error;
  }
}
