/**
 * A full disk, on a small tmpfs this test mounts itself (root only; skipped
 * with the reason otherwise): writes answer a retryable 503 SlowDown, DELETE
 * and DeleteObjects still work and reads go on, the server restarts and
 * serves while the disk is full, and once space is free writes work again
 * and the WAL checkpointer still checkpoints. Also: an unwritable blob
 * directory answers 503, not 500, and the server keeps serving.
 */
import {
  CreateBucketCommand,
  DeleteObjectCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  PutObjectCommand,
  S3Client,
  type S3ServiceException,
} from '@aws-sdk/client-s3';
import Database from 'better-sqlite3';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmod, mkdir, mkdtemp, open, rm, stat, unlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { WalCheckpointer } from '../src/meta/sqlite/wal-checkpointer.ts';
import { ACCESS_KEY_ID, SECRET_ACCESS_KEY, startTestTalus } from './helpers/talus.ts';

const MiB = 1024 * 1024;
const BUCKET = 'full-disk';

function oneShotClient(url: string): S3Client {
  return new S3Client({
    endpoint: url,
    region: 'us-east-1',
    forcePathStyle: true,
    credentials: { accessKeyId: ACCESS_KEY_ID, secretAccessKey: SECRET_ACCESS_KEY },
    maxAttempts: 1,
  });
}

async function failureOf(promise: Promise<unknown>): Promise<{ status: number; code: string }> {
  try {
    await promise;
    return { status: 200, code: '' };
  } catch (error) {
    const sdk = error as S3ServiceException;
    return { status: sdk.$metadata?.httpStatusCode ?? -1, code: sdk.name };
  }
}

async function bodyOf(client: S3Client, key: string): Promise<Buffer> {
  const response = await client.send(new GetObjectCommand({ Bucket: BUCKET, Key: key }));
  return Buffer.from(await response.Body!.transformToByteArray());
}

/** Mounts a tmpfs of `sizeMiB`; undefined (with the reason) when the machine does not allow it. */
function mountTmpfs(directory: string, sizeMiB: number): string | undefined {
  if (process.getuid?.() !== 0) return 'needs root to mount a tmpfs';
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${sizeMiB}m`, 'tmpfs', directory], { stdio: 'pipe' });
    return undefined;
  } catch (error) {
    return `mount -t tmpfs is not permitted here (${String((error as Error).message).split('\n')[0]})`;
  }
}

/** Fills the file system with `path` until ENOSPC. */
async function fill(path: string): Promise<void> {
  const handle = await open(path, 'a');
  const chunk = Buffer.alloc(256 * 1024, 1);
  try {
    for (;;) await handle.write(chunk);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOSPC') throw error;
    // The last few bytes too.
    try {
      for (;;) await handle.write(chunk.subarray(0, 512));
    } catch {
      /* full */
    }
  } finally {
    await handle.close();
  }
}

async function waitFor(what: string, check: () => Promise<boolean>, timeoutMs = 20_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

test('a full disk: 503 SlowDown for writes, deletes and reads work, restart while full, recovery', async (t) => {
  const mountPoint = await mkdtemp(join(tmpdir(), 'talus-full-'));
  const skip = mountTmpfs(mountPoint, 48);
  if (skip !== undefined) {
    await rm(mountPoint, { recursive: true, force: true });
    t.skip(skip);
    return;
  }
  const dataDir = join(mountPoint, 'data');
  const filler = join(mountPoint, 'filler');
  try {
    let talus = await startTestTalus({ dataDir });
    let client = oneShotClient(talus.url);
    try {
      await client.send(new CreateBucketCommand({ Bucket: BUCKET }));
      const objects = new Map<string, Buffer>();
      for (let i = 0; i < 6; i++) objects.set(`big-${i}`, Buffer.alloc(MiB, i + 1));
      objects.set('small', Buffer.from('small object'));
      for (const [key, body] of objects) await client.send(new PutObjectCommand({ Bucket: BUCKET, Key: key, Body: body }));

      await fill(filler);
      // A write that meets the full disk, and every write after it, is a retryable 503 SlowDown.
      assert.deepEqual(await failureOf(client.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'new-big', Body: Buffer.alloc(2 * MiB, 7) }))), { status: 503, code: 'SlowDown' });
      assert.deepEqual(await failureOf(client.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'new-small', Body: Buffer.from('x') }))), { status: 503, code: 'SlowDown' });
      // Reads go on.
      assert.ok((await bodyOf(client, 'big-0')).equals(objects.get('big-0')!));
      assert.ok((await bodyOf(client, 'small')).equals(objects.get('small')!));
      // Deletes work, so clients can free space.
      await client.send(new DeleteObjectCommand({ Bucket: BUCKET, Key: 'big-0' }));
      const deleted = await client.send(new DeleteObjectsCommand({ Bucket: BUCKET, Delete: { Objects: [{ Key: 'big-1' }, { Key: 'big-2' }] } }));
      assert.deepEqual((deleted.Deleted ?? []).map((entry) => entry.Key).sort(), ['big-1', 'big-2']);
      assert.equal(deleted.Errors, undefined);
      for (const key of ['big-0', 'big-1', 'big-2']) {
        assert.equal((await failureOf(client.send(new GetObjectCommand({ Bucket: BUCKET, Key: key })))).status, 404);
      }
    } finally {
      client.destroy();
      await talus.stop();
    }

    // Whatever the purge freed is filled again: the restart finds a full disk.
    await fill(filler);
    talus = await startTestTalus({ dataDir });
    client = oneShotClient(talus.url);
    try {
      assert.ok((await bodyOf(client, 'big-3')).equals(Buffer.alloc(MiB, 4)));
      assert.equal((await failureOf(client.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'still-full', Body: Buffer.from('x') })))).status, 503);
      await client.send(new DeleteObjectCommand({ Bucket: BUCKET, Key: 'big-3' }));

      // Space comes back: writes work again without a restart.
      await unlink(filler);
      await waitFor('writes to resume', async () => (await failureOf(client.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'after', Body: Buffer.alloc(MiB, 9) })))).status === 200);
      assert.ok((await bodyOf(client, 'after')).equals(Buffer.alloc(MiB, 9)));

      // And the checkpointer still checkpoints: after many small commits the WAL starts over from its beginning.
      const wal = join(dataDir, 'meta.db-wal');
      for (let i = 0; i < 200; i++) await client.send(new PutObjectCommand({ Bucket: BUCKET, Key: `small-${i}`, Body: Buffer.alloc(8 * 1024, i) }));
      const grown = (await stat(wal)).size;
      assert.ok(grown > 0);
      await waitFor('the WAL to be checkpointed and reused', async () => {
        await client.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'tick', Body: Buffer.from('t') }));
        // A reused WAL stops growing: the next commits overwrite its beginning.
        const before = (await stat(wal)).size;
        for (let i = 0; i < 50; i++) await client.send(new PutObjectCommand({ Bucket: BUCKET, Key: `again-${i}`, Body: Buffer.alloc(8 * 1024, i) }));
        return (await stat(wal)).size === before;
      });
    } finally {
      client.destroy();
      await talus.stop();
    }
  } finally {
    // Lazily: a failure above may have left files open; it must not hide that failure.
    execFileSync('umount', ['-l', mountPoint], { stdio: 'pipe' });
    await rm(mountPoint, { recursive: true, force: true }).catch(() => undefined);
  }
});

test('an unwritable blob directory answers 503 and the server keeps serving', async (t) => {
  const talus = await startTestTalus();
  const client = oneShotClient(talus.url);
  const blobs = join(talus.dataDir, 'blobs');
  const fanouts = Array.from({ length: 256 }, (_, i) => join(blobs, i.toString(16).padStart(2, '0')));
  // Root ignores permission bits: as root the blob directory becomes a read-only bind mount (EROFS), otherwise chmod (EACCES).
  const asRoot = process.getuid?.() === 0;
  try {
    await client.send(new CreateBucketCommand({ Bucket: BUCKET }));
    if (asRoot) {
      try {
        execFileSync('mount', ['--bind', blobs, blobs], { stdio: 'pipe' });
        execFileSync('mount', ['-o', 'remount,bind,ro', blobs], { stdio: 'pipe' });
      } catch (error) {
        t.skip(`cannot make a read-only bind mount here (${String((error as Error).message).split('\n')[0]})`);
        return;
      }
    } else {
      for (const fanout of fanouts) await chmod(fanout, 0o500);
    }
    try {
      const failure = await failureOf(client.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'big', Body: Buffer.alloc(MiB, 1) })));
      assert.deepEqual(failure, { status: 503, code: 'ServiceUnavailable' });
      // Small objects live in the metadata store and still work: the server did not crash.
      await client.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'small', Body: Buffer.from('fine') }));
      assert.ok((await bodyOf(client, 'small')).equals(Buffer.from('fine')));
    } finally {
      if (asRoot) execFileSync('umount', ['-l', blobs], { stdio: 'pipe' });
      else for (const fanout of fanouts) await chmod(fanout, 0o700);
    }
    // Writable again: uploads work again, no restart needed.
    await client.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'big', Body: Buffer.alloc(MiB, 1) }));
  } finally {
    client.destroy();
    await talus.stop();
  }
});

test('a WAL checkpointer whose thread died starts again by itself and checkpoints', async () => {
  const directory = await mkdtemp(join(tmpdir(), 'talus-checkpointer-'));
  // The database's directory does not exist yet: the thread cannot open it and dies.
  const databasePath = join(directory, 'later', 'meta.db');
  const errors: unknown[] = [];
  const checkpointer = new WalCheckpointer(databasePath, (error) => errors.push(error));
  try {
    await waitFor('the thread to fail', async () => errors.length > 0);
    await mkdir(join(directory, 'later'));
    const db = new Database(databasePath);
    db.pragma('journal_mode = WAL');
    db.pragma('wal_autocheckpoint = 0');
    db.exec('CREATE TABLE t (x BLOB)');
    const insert = db.prepare('INSERT INTO t VALUES (?)');
    const initialBytes = (await stat(databasePath)).size;
    for (let i = 0; i < 200; i++) insert.run(Buffer.alloc(4096, i));
    // Only a checkpoint copies pages into the database file (this connection never does).
    await waitFor('a restarted thread to checkpoint', async () => (await stat(databasePath)).size > initialBytes + 100 * 4096);
    assert.ok(checkpointer.restarts >= 1);
    db.close();
  } finally {
    await checkpointer.stop();
    await rm(directory, { recursive: true, force: true });
  }
});
