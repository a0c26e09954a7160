/**
 * When the disk reports a failed sync, Talus fails closed: the request that
 * hit it gets an error, no later write is acknowledged (or even committed)
 * without being durable, and no visible version ever points at bytes that
 * were deleted. The failures are injected into node:fs in this process
 * (Talus runs in-process here), once each, then the disk is "healthy" again.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { open } from 'node:fs/promises';
import { syncBuiltinESMExports } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { CreateBucketCommand, GetObjectCommand, HeadObjectCommand, PutObjectCommand, type S3ServiceException } from '@aws-sdk/client-s3';
import { WalCheckpointer } from '../src/meta/sqlite/wal-checkpointer.ts';
import { listBlobFiles, withTimeout } from './helpers/process.ts';
import { startTestTalus, uniqueBucket, type TestTalus } from './helpers/talus.ts';

const eio = (): NodeJS.ErrnoException => Object.assign(new Error('EIO: i/o error, injected'), { code: 'EIO', errno: -5 });

async function statusOf(promise: Promise<unknown>): Promise<number> {
  try {
    await promise;
    return 200;
  } catch (error) {
    return (error as S3ServiceException).$metadata?.httpStatusCode ?? -1;
  }
}

async function bodyOf(talus: TestTalus, bucket: string, key: string): Promise<Buffer> {
  const response = await talus.client.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
  return Buffer.from(await response.Body!.transformToByteArray());
}

describe('a failed fdatasync of the metadata WAL', () => {
  let talus: TestTalus;
  const bucket = uniqueBucket('walfail');
  const realFdatasync = fs.fdatasync;

  before(async () => {
    talus = await startTestTalus();
    await talus.client.send(new CreateBucketCommand({ Bucket: bucket }));
  });
  after(async () => {
    (fs as { fdatasync: typeof fs.fdatasync }).fdatasync = realFdatasync;
    syncBuiltinESMExports();
    await talus.stop();
  });

  test('fails its PUT, keeps every visible version readable, and refuses later writes', async () => {
    const first = Buffer.alloc(100_000, 1);
    const second = Buffer.alloc(100_000, 2);
    await talus.client.send(new PutObjectCommand({ Bucket: bucket, Key: 'k', Body: first }));

    let injected = 0;
    (fs as { fdatasync: typeof fs.fdatasync }).fdatasync = ((fd: number, callback: (error: NodeJS.ErrnoException | null) => void) => {
      injected++;
      realFdatasync(fd, () => callback(eio()));
    }) as typeof fs.fdatasync;
    syncBuiltinESMExports();
    // 503: the outcome is unknown and the server refuses writes from now on; a client retries elsewhere.
    assert.equal(await statusOf(talus.client.send(new PutObjectCommand({ Bucket: bucket, Key: 'k', Body: second }))), 503);
    assert.equal(injected, 1, 'the failure came from the WAL sync');
    (fs as { fdatasync: typeof fs.fdatasync }).fdatasync = realFdatasync;
    syncBuiltinESMExports();

    // The failed PUT's transaction ran, so either version may be visible;
    // whichever it is must read back whole: its bytes were not deleted.
    const visible = await bodyOf(talus, bucket, 'k');
    assert.ok(visible.equals(first) || visible.equals(second), 'k reads back as one of its two versions');

    // The disk is fine again, but the kernel may have dropped WAL pages: no
    // later write may commit, let alone be acknowledged.
    assert.equal(await statusOf(talus.client.send(new PutObjectCommand({ Bucket: bucket, Key: 'k2', Body: Buffer.alloc(10, 3) }))), 503);
    assert.equal(await statusOf(talus.client.send(new HeadObjectCommand({ Bucket: bucket, Key: 'k2' }))), 404);
    assert.ok((await bodyOf(talus, bucket, 'k')).equals(visible), 'reads keep working');
  });
});

describe('a failed write-behind datasync of a blob', () => {
  let talus: TestTalus;
  const bucket = uniqueBucket('blobfail');
  let restore: (() => void) | undefined;

  before(async () => {
    talus = await startTestTalus();
    await talus.client.send(new CreateBucketCommand({ Bucket: bucket }));
  });
  after(async () => {
    restore?.();
    await talus.stop();
  });

  test('fails the upload instead of crashing the process or committing the blob', async () => {
    // FileHandle is not exported; its prototype is reachable through any handle.
    const probe = await open(join(tmpdir(), `talus-probe-${process.pid}`), 'w');
    const prototype = Object.getPrototypeOf(probe) as { datasync(): Promise<void> };
    await probe.close();
    await fs.promises.rm(join(tmpdir(), `talus-probe-${process.pid}`), { force: true });
    const realDatasync = prototype.datasync;
    let injected = 0;
    prototype.datasync = async function (this: unknown): Promise<void> {
      injected++;
      await realDatasync.call(this);
      throw eio();
    };
    restore = () => {
      prototype.datasync = realDatasync;
    };

    const blobsBefore = (await listBlobFiles(talus.dataDir)).length;
    // Past WRITE_BEHIND_BYTES (8 MiB), so the writer starts a datasync while the body still streams.
    const body = Buffer.alloc(20 * 1024 * 1024, 7);
    assert.equal(await statusOf(talus.client.send(new PutObjectCommand({ Bucket: bucket, Key: 'big', Body: body }))), 500);
    restore();
    assert.ok(injected >= 1, 'the write-behind datasync ran');
    assert.equal(await statusOf(talus.client.send(new HeadObjectCommand({ Bucket: bucket, Key: 'big' }))), 404);
    assert.equal((await listBlobFiles(talus.dataDir)).length, blobsBefore, 'the failed blob was removed');

    // The same process still serves, and a healthy upload works.
    await talus.client.send(new PutObjectCommand({ Bucket: bucket, Key: 'big', Body: body }));
    assert.ok((await bodyOf(talus, bucket, 'big')).equals(body));
  });
});

test('stopping a WAL checkpointer whose thread already died resolves', async () => {
  const errors: unknown[] = [];
  const checkpointer = new WalCheckpointer(join(tmpdir(), `talus-no-such-dir-${process.pid}`, 'meta.db'), (error) => errors.push(error));
  await withTimeout(
    (async () => {
      while (errors.length === 0) await new Promise((resolve) => setTimeout(resolve, 20));
    })(),
    10_000,
    'the thread reports that it cannot open its database',
  );
  await withTimeout(checkpointer.stop(), 5_000, 'stop() of a dead checkpointer');
});
