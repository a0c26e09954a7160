/**
 * A Talus server with erasure 4+2 over six local-directory backends, driven
 * by the AWS SDK: objects (single PUT, multipart, copies) read back
 * bit-exact, ranges included, with any two backends gone; a flipped byte in
 * a shard is served around, reported, queued and repaired to the original
 * bytes; deleted objects' shards are purged from every backend.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, test } from 'node:test';
import Database from 'better-sqlite3';
import {
  CompleteMultipartUploadCommand,
  CopyObjectCommand,
  CreateBucketCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  PutObjectCommand,
  UploadPartCommand,
} from '@aws-sdk/client-s3';
import { parseConfig } from '../src/config/config.ts';
import { decodeLocation } from '../src/placement/blob-location.ts';
import { CLI, PROJECT_ROOT } from './helpers/process.ts';
import { startTestTalus, type TestTalus } from './helpers/talus.ts';

const run = promisify(execFile);
const sha256 = (data: Uint8Array): string => createHash('sha256').update(data).digest('hex');
const BACKENDS = 6;

describe('a server with erasure 4+2 over six directories', () => {
  let root: string;
  let talus: TestTalus;
  const objects = new Map<string, Buffer>();

  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'talus-placed-'));
    const toml = [
      ...Array.from({ length: BACKENDS }, (_, i) => `[backends.disk${i}]\ntype = "directory"\npath = "disk${i}"\n`),
      '[placements.ec]',
      'type = "erasure"',
      'data_shards = 4',
      'parity_shards = 2',
      `backends = [${Array.from({ length: BACKENDS }, (_, i) => `"disk${i}"`).join(', ')}]`,
      'block_size = "64KiB"',
      '[defaults]',
      'placement = "ec"',
    ].join('\n');
    const config = parseConfig(toml, { source: 'test.toml', baseDirectory: root });
    await writeFile(join(root, 'talus.toml'), toml);
    // Healing is driven by the tests (talus heal, the healer), not by the background loop racing them.
    talus = await startTestTalus({ dataDir: join(root, 'data'), config, healInBackground: false });
    await talus.client.send(new CreateBucketCommand({ Bucket: 'photos' }));
    for (const [key, size] of [
      ['small', 1000],
      ['one-stripe', 200_000],
      ['large', 3 * 1024 * 1024 + 12_345],
    ] as const) {
      const body = randomBytes(size);
      await talus.client.send(new PutObjectCommand({ Bucket: 'photos', Key: key, Body: body }));
      objects.set(key, body);
    }
    // Multipart: every part is encoded as it arrives; completing writes metadata only.
    const upload = await talus.client.send(new CreateMultipartUploadCommand({ Bucket: 'photos', Key: 'multipart' }));
    const parts = [randomBytes(5 * 1024 * 1024), randomBytes(777_777)];
    const etags: string[] = [];
    for (const [i, part] of parts.entries()) {
      const answer = await talus.client.send(new UploadPartCommand({ Bucket: 'photos', Key: 'multipart', UploadId: upload.UploadId, PartNumber: i + 1, Body: part }));
      etags.push(answer.ETag!);
    }
    await talus.client.send(
      new CompleteMultipartUploadCommand({
        Bucket: 'photos',
        Key: 'multipart',
        UploadId: upload.UploadId,
        MultipartUpload: { Parts: etags.map((ETag, i) => ({ ETag, PartNumber: i + 1 })) },
      }),
    );
    objects.set('multipart', Buffer.concat(parts));
    await talus.client.send(new CopyObjectCommand({ Bucket: 'photos', Key: 'copy', CopySource: 'photos/large' }));
    objects.set('copy', objects.get('large')!);
  });

  after(async () => {
    await talus?.stop();
    await rm(root, { recursive: true, force: true });
  });

  async function get(key: string, range?: string): Promise<Buffer> {
    const answer = await talus.client.send(new GetObjectCommand({ Bucket: 'photos', Key: key, Range: range }));
    return Buffer.from(await answer.Body!.transformToByteArray());
  }

  async function checkAll(label: string): Promise<void> {
    for (const [key, data] of objects) {
      assert.equal(sha256(await get(key)), sha256(data), `${label}: ${key}`);
      for (const [start, end] of [
        [0, 0],
        [data.length - 1, data.length - 1],
        [65_530, 65_540],
        [Math.floor(data.length / 3), Math.floor(data.length / 2)],
      ] as const) {
        if (end >= data.length) continue;
        assert.ok((await get(key, `bytes=${start}-${end}`)).equals(data.subarray(start, end + 1)), `${label}: ${key} bytes=${start}-${end}`);
      }
    }
  }

  function placedBlobs(): { blobId: string; location: string }[] {
    const db = new Database(join(root, 'data', 'meta.db'), { readonly: true, fileMustExist: true });
    try {
      return db.prepare("SELECT blob_id AS blobId, backend AS location FROM blobs WHERE backend != 'local' AND purge_after_ms IS NULL").all() as { blobId: string; location: string }[];
    } finally {
      db.close();
    }
  }

  async function shardFiles(disk: number): Promise<string[]> {
    const files: string[] = [];
    const base = join(root, `disk${disk}`);
    for (const fanout of await readdir(base)) for (const name of await readdir(join(base, fanout))) files.push(join(base, fanout, name));
    return files;
  }

  test('every object reads back bit-exact, ranges included; bytes are on the backends, not in the data directory', async () => {
    await checkAll('all backends');
    const blobs = placedBlobs();
    assert.ok(blobs.length >= 5, `${blobs.length} placed blobs`);
    for (const blob of blobs) {
      const location = decodeLocation(blob.location);
      assert.equal(location.dataShards, 4);
      assert.equal(new Set(location.backends).size, 6, 'each shard on its own backend');
    }
    for (let disk = 0; disk < BACKENDS; disk++) assert.equal((await shardFiles(disk)).length, blobs.length, `disk${disk} holds a shard of every blob`);
    const localBlobs = (await readdir(join(root, 'data', 'blobs'), { recursive: true, withFileTypes: true })).filter((entry) => entry.isFile());
    assert.equal(localBlobs.length, 0, 'no bytes in the local blob store');
  });

  test('any two backends gone — a directory moved away, or its files deleted — and every object still reads back', async () => {
    for (const [a, b] of [
      [0, 1],
      [2, 5],
      [3, 4],
      [0, 5],
    ] as const) {
      const saved = new Map<string, Buffer>();
      await rename(join(root, `disk${a}`), join(root, `away${a}`));
      for (const file of await shardFiles(b)) {
        saved.set(file, await readFile(file));
        await rm(file);
      }
      try {
        await checkAll(`disk${a} and disk${b} gone`);
      } finally {
        await rename(join(root, `away${a}`), join(root, `disk${a}`));
        for (const [file, bytes] of saved) await writeFile(file, bytes);
      }
    }
    // The reads reported the shards they could not get; the healer rewrites them (the same bytes).
    const queued = await talus.engine.meta.repairSummary(100);
    assert.ok(queued.pending > 0 && queued.sample.every((entry) => /^(missing|unreadable) on read$/.test(entry.reason)), JSON.stringify(queued.sample[0]));
    const before = await Promise.all(Array.from({ length: BACKENDS }, async (_, disk) => Promise.all((await shardFiles(disk)).map(async (file) => [file, sha256(await readFile(file))]))));
    const report = await talus.placement!.healer.repairDue();
    assert.equal(report.failures, 0);
    assert.equal(report.shardsRebuilt, queued.pending);
    assert.equal((await talus.engine.meta.repairSummary(1)).pending, 0);
    const afterRepair = await Promise.all(Array.from({ length: BACKENDS }, async (_, disk) => Promise.all((await shardFiles(disk)).map(async (file) => [file, sha256(await readFile(file))]))));
    assert.deepEqual(afterRepair, before, 'rebuilt shards are byte-identical to what they replaced');
  });

  test('a flipped byte is served around, queued for repair, and repaired to the original bytes', async () => {
    const data = objects.get('large')!;
    // The shard of 'large' on disk1: the blob whose size is the object's.
    const blob = placedBlobs().find((candidate) => decodeLocation(candidate.location).sizeBytes === data.length)!;
    const location = decodeLocation(blob.location);
    const shard = location.backends.indexOf('disk1');
    const file = (await shardFiles(1)).find((path) => path.endsWith(`${blob.blobId}.${shard}`))!;
    const original = await readFile(file);
    const damaged = Buffer.from(original);
    damaged[1000] = damaged[1000]! ^ 0xff;
    await writeFile(file, damaged);

    // Read every copy of it (the object and its copy share no blob, but read both anyway).
    assert.equal(sha256(await get('large')), sha256(data));
    const summary = await talus.engine.meta.repairSummary(10);
    // Shard reads prefer data shards: a damaged parity shard is only seen when a data shard is missing.
    if (shard < 4) assert.ok(summary.sample.some((entry) => entry.blobId === blob.blobId && entry.shard === shard && entry.reason.startsWith('corrupt')), JSON.stringify(summary));
    // talus heal, from another process while the server runs: the queued repair, then a deep scan (which finds a parity shard's damage too).
    const heal = await run(process.execPath, ['--import', 'tsx', CLI, 'heal', join(root, 'data'), '--config', join(root, 'talus.toml'), '--deep'], { cwd: PROJECT_ROOT });
    const rebuilt = [...heal.stdout.matchAll(/(\d+) shards rebuilt, 0 failed/g)].reduce((sum, match) => sum + Number(match[1]), 0);
    assert.equal(rebuilt, 1, heal.stdout);
    assert.match(heal.stdout, /re-placement: left to the running server/);
    assert.ok((await readFile(file)).equals(original), 'the shard has its original bytes again');
    assert.equal((await talus.engine.meta.repairSummary(10)).pending, 0);
    assert.equal(sha256(await get('large')), sha256(data));
  });

  test('a lost shard file is found by the scan and rebuilt', async () => {
    const files = await shardFiles(4);
    const victim = files[0]!;
    const original = await readFile(victim);
    await rm(victim);
    const report = await talus.placement!.healer.scan();
    assert.ok(report.shardsRebuilt >= 1);
    assert.ok((await readFile(victim)).equals(original));
  });

  test('healing passes stop at the next blob once told to (shutdown)', async () => {
    const stopped = AbortSignal.abort();
    assert.deepEqual(await talus.placement!.healer.scan({ signal: stopped }), { blobsChecked: 0, shardsRebuilt: 0, failures: 0 });
    assert.deepEqual(await talus.placement!.healer.replaceAll({ signal: stopped }), { blobsChecked: 0, blobsMoved: 0, failures: 0 });
    assert.ok((await talus.placement!.healer.scan()).blobsChecked >= 5, 'without the signal the scan sees every blob');
  });

  test('deleting an object purges its shards from every backend', async () => {
    const before = await Promise.all(Array.from({ length: BACKENDS }, (_, disk) => shardFiles(disk)));
    await talus.client.send(new DeleteObjectCommand({ Bucket: 'photos', Key: 'one-stripe' }));
    objects.delete('one-stripe');
    await talus.engine.purgeNow(Date.now() + 60_000);
    for (let disk = 0; disk < BACKENDS; disk++) {
      const now = await shardFiles(disk);
      assert.equal(now.length, before[disk]!.length - 1, `disk${disk} lost exactly one shard file`);
    }
    for (const file of (await shardFiles(0)).slice(0, 1)) assert.ok((await stat(file)).size > 0);
    await checkAll('after the delete');
  });
});
