/**
 * The WAL checkpointer restarts the log itself after a complete checkpoint,
 * so the header rewrite and its fsync happen on its thread, not inside a
 * serving commit on the event loop; and an idle database stays idle.
 */
import assert from 'node:assert/strict';
import { mkdtemp, open, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { SqliteMetadataStore } from '../src/meta/sqlite/sqlite-metadata-store.ts';
import { WalCheckpointer } from '../src/meta/sqlite/wal-checkpointer.ts';

/** The WAL header's checkpoint sequence number and salts (bytes 12-24): new whenever the log restarts. */
async function walHeaderGeneration(walPath: string): Promise<string> {
  const handle = await open(walPath, 'r');
  try {
    const header = Buffer.alloc(12);
    await handle.read(header, 0, 12, 12);
    return header.toString('hex');
  } finally {
    await handle.close();
  }
}

async function waitFor(condition: () => Promise<boolean>, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await condition()) return true;
    await sleep(50);
  }
  return condition();
}

test('after a complete checkpoint the checkpointer restarts the WAL without a serving commit, and leaves an idle WAL alone', async () => {
  const directory = await mkdtemp(join(tmpdir(), 'talus-wal-restart-'));
  const databasePath = join(directory, 'meta.db');
  const store = new SqliteMetadataStore(databasePath);
  const failures: unknown[] = [];
  const checkpointer = new WalCheckpointer(databasePath, (error) => failures.push(error));
  try {
    for (let i = 0; i < 5; i++) await store.createBucket({ name: `bucket-${i}`, createdMs: 0, ownerId: 'o', versioning: 'Unversioned', tags: null });
    const walPath = `${databasePath}-wal`;
    const afterCommits = await walHeaderGeneration(walPath);
    // No serving commit from here on: only the checkpointer can start the log over.
    assert.ok(await waitFor(async () => (await walHeaderGeneration(walPath)) !== afterCommits, 10_000), 'the WAL header was rewritten by the checkpointer');
    const restarted = await walHeaderGeneration(walPath);
    await sleep(800);
    assert.equal(await walHeaderGeneration(walPath), restarted, 'an idle WAL is not restarted again and again');
    // The commits are all there, and the store still writes after the restart.
    assert.equal((await store.listBuckets()).length, 5);
    await store.createBucket({ name: 'bucket-after', createdMs: 0, ownerId: 'o', versioning: 'Unversioned', tags: null });
    assert.equal((await store.listBuckets()).length, 6);
    assert.deepEqual(failures, []);
  } finally {
    await checkpointer.stop();
    await store.close();
    await rm(directory, { recursive: true, force: true });
  }
});
