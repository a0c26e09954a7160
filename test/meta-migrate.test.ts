/**
 * `talus migrate DATA_DIR --to postgres://…`: a single-node installation
 * (objects on a directory backend, small ones inline, versions, a completed
 * multipart upload, one in progress, a user) moves to PostgreSQL; every
 * table is verified by count and checksum; a node started with --meta on the
 * same backends then serves every object, version and the user's key. A
 * database that is not empty, and a data directory with blobs of its own
 * (the local placement), are refused and nothing is copied.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import {
  CompleteMultipartUploadCommand,
  CreateBucketCommand,
  CreateMultipartUploadCommand,
  GetObjectCommand,
  ListBucketsCommand,
  ListObjectVersionsCommand,
  ListMultipartUploadsCommand,
  PutBucketVersioningCommand,
  PutObjectCommand,
  UploadPartCommand,
} from '@aws-sdk/client-s3';
import postgres from 'postgres';
import { parseConfig } from '../src/config/config.ts';
import { migrateToPostgres, VERIFY_BATCH_ROWS } from '../src/meta/postgres/migrate.ts';
import { SqliteMetadataStore } from '../src/meta/sqlite/sqlite-metadata-store.ts';
import { Principals } from '../src/principals/principals.ts';
import { startTalus } from '../src/talus.ts';
import { silentLogger } from '../src/util/logger.ts';
import { postgresUnavailable, startTestPostgres, type TestPostgres } from './helpers/postgres.ts';
import { CLI, PROJECT_ROOT } from './helpers/process.ts';
import { ACCESS_KEY_ID, SECRET_ACCESS_KEY, makeClient, startTestTalus } from './helpers/talus.ts';

const skip = await postgresUnavailable();
if (skip !== undefined) console.log(`# skipped: ${skip}`);
let root: string;
let pg: TestPostgres | undefined;

before(async () => {
  if (skip !== undefined) return;
  root = await mkdtemp(join(tmpdir(), 'talus-migrate-'));
  pg = await startTestPostgres();
});

after(async () => {
  await pg?.stop();
  if (root !== undefined) await rm(root, { recursive: true, force: true });
});

async function body(response: { Body?: { transformToByteArray(): Promise<Uint8Array> } }): Promise<Buffer> {
  return Buffer.from(await response.Body!.transformToByteArray());
}

test('a data directory migrates to PostgreSQL, verified, and a --meta node serves all of it', { skip }, async () => {
  const toml = ['[backends.shared]', 'type = "directory"', `path = "${join(root, 'shared')}"`, '[placements.one]', 'type = "single"', 'backend = "shared"', '[defaults]', 'placement = "one"'].join('\n');
  const config = parseConfig(toml, { source: 'test.toml', baseDirectory: root });
  const dataDir = join(root, 'single');
  const single = await startTestTalus({ dataDir, config, healInBackground: false });
  const client = single.client;
  const objects = new Map<string, Buffer>([['small', Buffer.from('inline bytes')], ['dir/large', randomBytes(200_000)], ['ключ/ü 😀', randomBytes(50)]]);
  await client.send(new CreateBucketCommand({ Bucket: 'data' }));
  for (const [key, bytes] of objects) await client.send(new PutObjectCommand({ Bucket: 'data', Key: key, Body: bytes }));
  await client.send(new CreateBucketCommand({ Bucket: 'versioned' }));
  await client.send(new PutBucketVersioningCommand({ Bucket: 'versioned', VersioningConfiguration: { Status: 'Enabled' } }));
  const versionIds: string[] = [];
  for (const text of ['one', 'two', 'three']) versionIds.push((await client.send(new PutObjectCommand({ Bucket: 'versioned', Key: 'v', Body: text }))).VersionId!);
  const part = randomBytes(5 * 1024 * 1024);
  const { UploadId } = await client.send(new CreateMultipartUploadCommand({ Bucket: 'data', Key: 'multi' }));
  const { ETag } = await client.send(new UploadPartCommand({ Bucket: 'data', Key: 'multi', UploadId, PartNumber: 1, Body: part }));
  await client.send(new CompleteMultipartUploadCommand({ Bucket: 'data', Key: 'multi', UploadId, MultipartUpload: { Parts: [{ ETag, PartNumber: 1 }] } }));
  const pending = (await client.send(new CreateMultipartUploadCommand({ Bucket: 'data', Key: 'pending' }))).UploadId;
  const alice = await Principals.withDataDir(dataDir, (principals) => principals.addUser('alice'));
  await single.stop();

  const reports = await migrateToPostgres(dataDir, pg!.url);
  const rows = Object.fromEntries(reports.map((report) => [report.table, report.rows]));
  assert.equal(rows['buckets'], 2);
  assert.equal(rows['versions'], 3 + 3 + 1);
  assert.equal(rows['uploads'], 1);
  assert.equal(rows['users'], 1);
  assert.ok(rows['inline_data']! >= 5 && rows['blobs']! >= 2, JSON.stringify(rows));

  // Once: a database with rows is refused, and keeps what it had.
  await assert.rejects(migrateToPostgres(dataDir, pg!.url), /not empty/);

  const node = await startTalus({ dataDir, port: 0, address: '127.0.0.1', config, metaUrl: pg!.url, rootAccessKeyId: ACCESS_KEY_ID, rootSecretAccessKey: SECRET_ACCESS_KEY, logger: silentLogger, healInBackground: false });
  const nodeClient = makeClient(node.url);
  try {
    for (const [key, bytes] of objects) assert.ok((await body(await nodeClient.send(new GetObjectCommand({ Bucket: 'data', Key: key })))).equals(bytes), key);
    assert.ok((await body(await nodeClient.send(new GetObjectCommand({ Bucket: 'data', Key: 'multi' })))).equals(part));
    const versions = await nodeClient.send(new ListObjectVersionsCommand({ Bucket: 'versioned' }));
    assert.deepEqual(versions.Versions?.map((version) => version.VersionId), [...versionIds].reverse());
    assert.equal((await body(await nodeClient.send(new GetObjectCommand({ Bucket: 'versioned', Key: 'v', VersionId: versionIds[0] })))).toString(), 'one');
    assert.deepEqual((await nodeClient.send(new ListMultipartUploadsCommand({ Bucket: 'data' }))).Uploads?.map((upload) => upload.UploadId), [pending]);
    // The user's key opens with the same secret key; new versions continue after the copied ones.
    const aliceClient = makeClient(node.url, alice.credentials);
    assert.deepEqual((await aliceClient.send(new ListBucketsCommand({}))).Buckets ?? [], []);
    aliceClient.destroy();
    await nodeClient.send(new PutObjectCommand({ Bucket: 'versioned', Key: 'v', Body: 'four' }));
    assert.equal((await body(await nodeClient.send(new GetObjectCommand({ Bucket: 'versioned', Key: 'v' })))).toString(), 'four');
  } finally {
    nodeClient.destroy();
    await node.close();
  }
});

test('a data directory with blobs of its own (the local placement) is refused, and nothing is copied', { skip }, async () => {
  const local = await startTestTalus({ dataDir: join(root, 'local') });
  await local.client.send(new CreateBucketCommand({ Bucket: 'bkt' }));
  await local.client.send(new PutObjectCommand({ Bucket: 'bkt', Key: 'large', Body: randomBytes(100_000) }));
  await local.stop();
  const admin = postgres(pg!.url, { max: 1, onnotice: () => undefined });
  try {
    await admin`CREATE DATABASE second`;
    const url = pg!.url.replace(/\/talus$/, '/second');
    await assert.rejects(migrateToPostgres(join(root, 'local'), url), /blobs in its data directory/);
    const target = postgres(url, { max: 1, onnotice: () => undefined });
    assert.equal((await target`SELECT to_regclass('versions') AS t`)[0]?.['t'], null, 'no schema was created');
    await target.end();
  } finally {
    await admin.end();
  }
});

test('tables with more rows than one verification batch migrate and verify (read back by cursor, a batch at a time)', { skip }, async () => {
  const dataDir = join(root, 'many-rows');
  await mkdir(dataDir, { recursive: true });
  const rows = VERIFY_BATCH_ROWS * 2 + 500;
  const source = new SqliteMetadataStore(join(dataDir, 'meta.db'));
  const insertBlob = source.database.prepare("INSERT INTO blobs (blob_id, backend, purge_after_ms) VALUES (?, 'shared', ?)");
  const insertRepair = source.database.prepare('INSERT INTO repairs (blob_id, shard, reason, recorded_ms, attempts, due_ms) VALUES (?, ?, ?, ?, 0, ?)');
  source.database.transaction(() => {
    for (let i = 0; i < rows; i++) {
      insertBlob.run(`blob-${i}`, i % 3 === 0 ? i : null);
      insertRepair.run(`blob-${i}`, i % 6, 'missing', i, i + 1);
    }
  })();
  await source.close();
  const admin = postgres(pg!.url, { max: 1, onnotice: () => undefined });
  try {
    await admin`CREATE DATABASE many_rows`;
    const url = pg!.url.replace(/\/talus$/, '/many_rows');
    const reports = Object.fromEntries((await migrateToPostgres(dataDir, url)).map((report) => [report.table, report.rows]));
    assert.equal(reports['blobs'], rows);
    assert.equal(reports['repairs'], rows);
    const target = postgres(url, { max: 1, onnotice: () => undefined });
    assert.deepEqual((await target`SELECT count(*)::int AS n, count(purge_after_ms)::int AS purging FROM blobs`)[0], { n: rows, purging: Math.ceil(rows / 3) });
    await target.end();
  } finally {
    await admin.end();
  }
});

test('talus migrate of a table larger than its heap: the copy and its verification stream, the process never holds the table', { skip, timeout: 180_000 }, async () => {
  const dataDir = join(root, 'large-table');
  await mkdir(dataDir, { recursive: true });
  // 80 MB of text in one table, for a process whose heap is limited to 48 MB.
  const rows = 16_000;
  const reason = 'r'.repeat(5_000);
  const source = new SqliteMetadataStore(join(dataDir, 'meta.db'));
  const insertRepair = source.database.prepare('INSERT INTO repairs (blob_id, shard, reason, recorded_ms, attempts, due_ms) VALUES (?, 0, ?, 0, 0, 0)');
  source.database.transaction(() => {
    for (let i = 0; i < rows; i++) insertRepair.run(`blob-${i}`, `${i}:${reason}`);
  })();
  await source.close();
  const admin = postgres(pg!.url, { max: 1, onnotice: () => undefined });
  try {
    await admin`CREATE DATABASE large_table`;
    const url = pg!.url.replace(/\/talus$/, '/large_table');
    const result = await new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
      execFile(process.execPath, ['--max-old-space-size=48', '--import', 'tsx', CLI, 'migrate', dataDir, '--to', url], { cwd: PROJECT_ROOT, maxBuffer: 16 * 1024 * 1024 }, (error, stdout, stderr) => {
        resolve({ code: error === null ? 0 : typeof error.code === 'number' ? error.code : null, stdout, stderr: stderr.slice(-2000) });
      });
    });
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, new RegExp(`repairs\\s+${rows} rows`));
    assert.match(result.stdout, /verified/);
  } finally {
    await admin.end();
  }
});
