/**
 * Fail closed on lost metadata. A metadata database deleted or replaced
 * under a running server must not keep taking writes (they would be lost on
 * restart): writes answer 503, the readiness probe 503, reads go on. A
 * start-up whose database does not belong with the blobs (missing, empty,
 * another store's) refuses, naming what it found, and deletes no blob file;
 * an operator can adopt the database explicitly, and the blobs it does not
 * know are set aside, not deleted. A data directory from before store
 * identities starts as before.
 */
import { CreateBucketCommand, GetObjectCommand, PutObjectCommand, S3Client, type S3ServiceException } from '@aws-sdk/client-s3';
import Database from 'better-sqlite3';
import assert from 'node:assert/strict';
import { mkdtemp, readdir, rename, rm, stat, unlink, writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { startTalus } from '../src/talus.ts';
import { silentLogger } from '../src/util/logger.ts';
import { listBlobFiles } from './helpers/process.ts';
import { ACCESS_KEY_ID, SECRET_ACCESS_KEY, startTestTalus, type TestTalus } from './helpers/talus.ts';

const BIG = Buffer.alloc(64 * 1024, 9); // past the inline limit: a blob file
const SMALL = Buffer.from('small and inline');

/** One attempt per request: a retried 503 would only make the test slower. */
function oneShotClient(url: string): S3Client {
  return new S3Client({
    endpoint: url,
    region: 'us-east-1',
    forcePathStyle: true,
    credentials: { accessKeyId: ACCESS_KEY_ID, secretAccessKey: SECRET_ACCESS_KEY },
    maxAttempts: 1,
  });
}

async function statusOf(promise: Promise<unknown>): Promise<number> {
  try {
    await promise;
    return 200;
  } catch (error) {
    return (error as S3ServiceException).$metadata?.httpStatusCode ?? -1;
  }
}

function probe(url: string, path: string, headers: Record<string, string> = {}): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(`${url}${path}`, { headers }, (response) => {
      response.resume();
      resolve(response.statusCode ?? -1);
    });
    req.on('error', reject);
    req.end();
  });
}

async function bodyOf(client: S3Client, bucket: string, key: string): Promise<Buffer> {
  const response = await client.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
  return Buffer.from(await response.Body!.transformToByteArray());
}

/** A data directory with a bucket, a blob-backed object and an inline one; left stopped, its blob files listed. */
async function populatedDirectory(): Promise<{ dataDir: string; blobs: string[] }> {
  const dataDir = await mkdtemp(join(tmpdir(), 'talus-failsafe-meta-'));
  const talus = await startTestTalus({ dataDir });
  await talus.client.send(new CreateBucketCommand({ Bucket: 'fail-safe' }));
  await talus.client.send(new PutObjectCommand({ Bucket: 'fail-safe', Key: 'big', Body: BIG }));
  await talus.client.send(new PutObjectCommand({ Bucket: 'fail-safe', Key: 'small', Body: SMALL }));
  await talus.stop();
  const blobs = await listBlobFiles(dataDir);
  assert.equal(blobs.length, 1, 'the big object has a blob file');
  return { dataDir, blobs };
}

/** The store marker beside the blobs (an empty directory named for the store's identity and epoch). */
async function markerOf(dataDir: string): Promise<string | undefined> {
  const name = (await readdir(join(dataDir, 'blobs'))).find((entry) => entry.startsWith('talus-store.'));
  return name === undefined ? undefined : join(dataDir, 'blobs', name);
}

async function startRefused(dataDir: string, pattern: RegExp): Promise<void> {
  await assert.rejects(startTestTalus({ dataDir }), (error: Error) => {
    assert.match(error.message, /Refusing to start/);
    assert.match(error.message, pattern);
    assert.match(error.message, /Nothing was deleted/);
    assert.match(error.message, /--adopt-metadata/);
    return true;
  });
}

async function underRunningServer(lose: (dataDir: string) => Promise<void>): Promise<void> {
  const talus: TestTalus = await startTestTalus();
  const client = oneShotClient(talus.url);
  try {
    await client.send(new CreateBucketCommand({ Bucket: 'fail-safe' }));
    await client.send(new PutObjectCommand({ Bucket: 'fail-safe', Key: 'big', Body: BIG }));
    await client.send(new PutObjectCommand({ Bucket: 'fail-safe', Key: 'small', Body: SMALL }));
    assert.equal(await probe(talus.url, '/minio/health/ready'), 200);
    assert.equal(await probe(talus.url, '/minio/health/live'), 200);
    const blobsBefore = await listBlobFiles(talus.dataDir);

    await lose(talus.dataDir);

    // No write is acknowledged into a database that a restart will not find.
    assert.equal(await statusOf(client.send(new PutObjectCommand({ Bucket: 'fail-safe', Key: 'after', Body: SMALL }))), 503);
    assert.equal(await statusOf(client.send(new PutObjectCommand({ Bucket: 'fail-safe', Key: 'after-big', Body: BIG }))), 503);
    assert.equal(await statusOf(client.send(new PutObjectCommand({ Bucket: 'fail-safe', Key: 'big', Body: SMALL }))), 503);
    assert.equal(await statusOf(client.send(new CreateBucketCommand({ Bucket: 'fail-safe-other' }))), 503);
    assert.equal(await probe(talus.url, '/minio/health/ready'), 503);
    assert.equal(await probe(talus.url, '/minio/health/live'), 200);
    // Reads still serve what the server has.
    assert.ok((await bodyOf(client, 'fail-safe', 'big')).equals(BIG));
    assert.ok((await bodyOf(client, 'fail-safe', 'small')).equals(SMALL));
    // Nor does it purge: the blobs may be all a restore has left (purger ticks every second).
    await new Promise((resolve) => setTimeout(resolve, 2_500));
    assert.deepEqual((await listBlobFiles(talus.dataDir)).filter((name) => blobsBefore.includes(name)), blobsBefore);
  } finally {
    client.destroy();
    await talus.stop();
  }
}

test('meta.db deleted under a running server: writes 503, ready 503, reads and blobs kept', async () => {
  await underRunningServer((dataDir) => unlink(join(dataDir, 'meta.db')));
});

test('meta.db replaced by another database under a running server: writes 503, ready 503', async () => {
  await underRunningServer(async (dataDir) => {
    const other = join(dataDir, 'other.db');
    const db = new Database(other);
    db.exec('CREATE TABLE t (x)');
    db.close();
    await rename(other, join(dataDir, 'meta.db'));
  });
});

test('a signed request to a bucket named "minio" is not a health probe', async () => {
  const talus = await startTestTalus();
  const client = oneShotClient(talus.url);
  try {
    // Signed: an S3 request for bucket "minio", key "health/ready" (no such bucket).
    assert.equal(await statusOf(client.send(new GetObjectCommand({ Bucket: 'minio', Key: 'health/ready' }))), 404);
    assert.equal(await probe(talus.url, '/minio/health/ready'), 200);
  } finally {
    client.destroy();
    await talus.stop();
  }
});

test('restart on a missing database with blobs present refuses and deletes nothing', async () => {
  const { dataDir, blobs } = await populatedDirectory();
  try {
    await unlink(join(dataDir, 'meta.db'));
    await startRefused(dataDir, /meta\.db is missing or empty/);
    assert.deepEqual(await listBlobFiles(dataDir), blobs, 'every blob file is still there');
    await assert.rejects(stat(join(dataDir, 'meta.db')), 'no empty database was created');

    // Also without the marker (a data directory from before markers, its database lost).
    await rm((await markerOf(dataDir))!, { recursive: true });
    await startRefused(dataDir, /blob files exist/);
    assert.deepEqual(await listBlobFiles(dataDir), blobs, 'every blob file is still there');
  } finally {
    await rm(dataDir, { recursive: true, force: true });
  }
});

test('restart on an empty database, or another store\'s, with blobs present refuses and deletes nothing', async () => {
  const { dataDir, blobs } = await populatedDirectory();
  const otherDir = await mkdtemp(join(tmpdir(), 'talus-failsafe-other-'));
  try {
    // A zero-length file (a botched restore).
    await writeFile(join(dataDir, 'meta.db'), '');
    await startRefused(dataDir, /meta\.db is missing or empty/);
    assert.deepEqual(await listBlobFiles(dataDir), blobs);

    // Another data directory's (empty) database.
    await (await startTestTalus({ dataDir: otherDir })).stop();
    await rename(join(otherDir, 'meta.db'), join(dataDir, 'meta.db'));
    await startRefused(dataDir, /belongs to store .* but the blobs belong to store/);
    assert.deepEqual(await listBlobFiles(dataDir), blobs);
  } finally {
    await rm(dataDir, { recursive: true, force: true });
    await rm(otherDir, { recursive: true, force: true });
  }
});

test('restart on an older copy of the database refuses', async () => {
  const { dataDir, blobs } = await populatedDirectory();
  const backup = join(tmpdir(), `talus-failsafe-backup-${process.pid}.db`);
  try {
    const db = new Database(join(dataDir, 'meta.db'));
    await db.backup(backup);
    db.close();
    // Another start-up, then the old copy comes back.
    await (await startTestTalus({ dataDir })).stop();
    await rename(backup, join(dataDir, 'meta.db'));
    await startRefused(dataDir, /older than the blobs/);
    assert.deepEqual(await listBlobFiles(dataDir), blobs);
  } finally {
    await rm(dataDir, { recursive: true, force: true });
    await rm(backup, { force: true });
  }
});

test('--adopt-metadata accepts the database and sets unknown blobs aside instead of deleting them', async () => {
  const { dataDir, blobs } = await populatedDirectory();
  try {
    await unlink(join(dataDir, 'meta.db'));
    const talus = await startTalus({
      dataDir,
      port: 0,
      address: '127.0.0.1',
      rootAccessKeyId: ACCESS_KEY_ID,
      rootSecretAccessKey: SECRET_ACCESS_KEY,
      logger: silentLogger,
      adoptMetadata: true,
    });
    await talus.close();
    assert.deepEqual((await readdir(join(dataDir, 'lost+found'))).sort(), blobs.map((name) => name.split('/')[1]).sort());
    assert.deepEqual(await listBlobFiles(dataDir), []);
    // The adopted database and the blobs agree from now on: a plain start works.
    await (await startTestTalus({ dataDir })).stop();
  } finally {
    await rm(dataDir, { recursive: true, force: true });
  }
});

test('a data directory from before store identities (no marker) still starts, and gets one', async () => {
  const { dataDir } = await populatedDirectory();
  try {
    await rm((await markerOf(dataDir))!, { recursive: true });
    const db = new Database(join(dataDir, 'meta.db'));
    db.exec("DELETE FROM settings WHERE name IN ('store_id', 'store_epoch')");
    db.close();
    const talus = await startTestTalus({ dataDir });
    try {
      assert.ok((await bodyOf(talus.client, 'fail-safe', 'big')).equals(BIG));
      assert.ok((await bodyOf(talus.client, 'fail-safe', 'small')).equals(SMALL));
    } finally {
      await talus.stop();
    }
    assert.match((await markerOf(dataDir)) ?? '', /talus-store\.[0-9a-f-]{36}\.epoch-1$/, 'it got an identity');
  } finally {
    await rm(dataDir, { recursive: true, force: true });
  }
});
