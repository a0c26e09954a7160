/**
 * What restore and recover install into a data directory: the secret key
 * copy is owner-only and never replaces a key already there; a position
 * the object-record writer left for the database that was there is removed
 * (the store ID stays the same across a restore, so the writer would take
 * it for the new database's and skip its versions up to it).
 */
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import Database from 'better-sqlite3';
import { install, RestoreError } from '../src/replication/restore.ts';

const IDENTITY = { id: '00000000-0000-4000-8000-000000000003', epoch: 2 };

async function scratchDatabase(root: string, name: string): Promise<string> {
  await mkdir(join(root, 'scratch'), { recursive: true });
  const path = join(root, 'scratch', name);
  new Database(path).close();
  return path;
}

test('the secret key is copied owner-only and never over an existing one; a stale record position is removed', async () => {
  const root = await mkdtemp(join(tmpdir(), 'talus-install-'));
  try {
    const keyFile = join(root, 'key');
    await writeFile(keyFile, 'k'.repeat(64), { mode: 0o644 });
    const dataDir = join(root, 'data');
    await mkdir(dataDir);
    await writeFile(join(dataDir, 'object-records.position'), JSON.stringify({ storeId: IDENTITY.id, seq: 1000 }));
    await install(dataDir, await scratchDatabase(root, 'a.db'), IDENTITY, keyFile);
    assert.equal((await stat(join(dataDir, 'talus.secret-key'))).mode & 0o777, 0o600);
    assert.equal(await readFile(join(dataDir, 'talus.secret-key'), 'utf8'), 'k'.repeat(64));
    await assert.rejects(stat(join(dataDir, 'object-records.position')), { code: 'ENOENT' });

    const other = join(root, 'data-with-key');
    await mkdir(other);
    await writeFile(join(other, 'talus.secret-key'), 'mine', { mode: 0o600 });
    await assert.rejects(install(other, await scratchDatabase(root, 'b.db'), IDENTITY, keyFile), (error: unknown) => error instanceof RestoreError && /does not replace a secret key/.test(error.message));
    assert.equal(await readFile(join(other, 'talus.secret-key'), 'utf8'), 'mine');
  } finally {
    await rm(root, { recursive: true, force: true });
  }
});
