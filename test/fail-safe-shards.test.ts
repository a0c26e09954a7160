/**
 * Shards bound to their blob (issue 10, item 3). A real server over HTTP,
 * erasure 2+1 and replicas 3 over three directory backends, shards assigned
 * in priority order so that shard i of every blob is on disk i: a shard file
 * of another object of the same size, copied over one of this object's
 * (a backend restored from the wrong snapshot, a misrouting proxy), is well
 * formed for its stripe and shard numbers. It must be excluded like a
 * corrupt one: rebuilt from the others, queued for repair, 503 when fewer
 * than k good shards remain — never wrong bytes, and the healer never
 * rebuilds from it. Blobs written in shard format 1 stay readable.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { copyFile, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { request as httpRequest } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, test } from 'node:test';
import Database from 'better-sqlite3';
import { CreateBucketCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { DirectoryBackend } from '../src/backend/directory-backend.ts';
import { parseConfig, type TalusConfig } from '../src/config/config.ts';
import { createErasureCodec } from '../src/erasure/index.ts';
import { decodeLocation, shardKey, type BlobLocation } from '../src/placement/blob-location.ts';
import { StripeLayout } from '../src/placement/stripe-layout.ts';
import { StripedBlobWriter } from '../src/placement/striped-writer.ts';
import { signRequest } from './helpers/raw.ts';
import { startTestTalus, type TestTalus } from './helpers/talus.ts';

const DISKS = 3;
/** Above the inline limit (16 KiB), many 8 KiB stripes (4 KiB blocks): ranges cross stripes. */
const SIZE = 100_003;
const RANGES: readonly (readonly [number, number])[] = [
  [0, 0],
  [5000, 30_000],
  [SIZE - 10, SIZE - 1],
];

function configText(): string {
  return [
    ...Array.from({ length: DISKS }, (_, i) => `[backends.disk${i}]\ntype = "directory"\npath = "disk${i}"\n`),
    '[placements.ec]',
    'type = "erasure"',
    'data_shards = 2',
    'parity_shards = 1',
    'backends = ["disk0", "disk1", "disk2"]',
    'assignment = "priority"',
    'block_size = "4KiB"',
    '[placements.copies]',
    'type = "replica"',
    'copies = 3',
    'backends = ["disk0", "disk1", "disk2"]',
    'assignment = "priority"',
    'block_size = "4KiB"',
    '[defaults]',
    'placement = "ec"',
    '[buckets]',
    'copies = "copies"',
  ].join('\n');
}

interface Answer {
  status: number;
  body: Buffer;
}

/** A signed GET, the body as bytes (the SDK would retry a 503). */
async function get(talus: TestTalus, bucket: string, key: string, range?: readonly [number, number]): Promise<Answer> {
  const path = `/${bucket}/${key}`;
  const headers = await signRequest(talus.url, { method: 'GET', path, headers: range === undefined ? {} : { range: `bytes=${range[0]}-${range[1]}` } });
  const url = new URL(talus.url);
  return new Promise((resolve, reject) => {
    const outgoing = httpRequest({ host: url.hostname, port: url.port, method: 'GET', path, headers, agent: false }, (response) => {
      const chunks: Buffer[] = [];
      response.on('data', (chunk: Buffer) => chunks.push(chunk));
      response.on('end', () => resolve({ status: response.statusCode ?? 0, body: Buffer.concat(chunks) }));
      response.on('error', reject);
    });
    outgoing.on('error', reject);
    outgoing.end();
  });
}

/** Whole and ranged GETs answer 200 with exactly `data`'s bytes. */
async function assertReadsBack(talus: TestTalus, bucket: string, key: string, data: Buffer): Promise<void> {
  const whole = await get(talus, bucket, key);
  assert.equal(whole.status, 200, `${key}: ${whole.body.toString('utf8', 0, 300)}`);
  assert.ok(whole.body.equals(data), `${key}: the object's own bytes`);
  for (const range of RANGES) {
    const part = await get(talus, bucket, key, range);
    assert.equal(part.status, 206, `${key} bytes=${range.join('-')}`);
    assert.ok(part.body.equals(data.subarray(range[0], range[1] + 1)), `${key} bytes=${range.join('-')}: the object's own bytes`);
  }
}

/** Whole and ranged GETs answer 503, and no byte of an object. */
async function assertUnavailable(talus: TestTalus, bucket: string, key: string): Promise<void> {
  for (const range of [undefined, ...RANGES]) {
    const answer = await get(talus, bucket, key, range);
    assert.equal(answer.status, 503, `${key} ${range === undefined ? 'whole' : `bytes=${range.join('-')}`}: answered ${answer.status}`);
    assert.match(answer.body.toString('utf8'), /<Code>ServiceUnavailable<\/Code>/);
  }
}

describe('foreign shards, erasure 2+1 and replicas over three directories', () => {
  let root: string;
  let talus: TestTalus;
  let disks: DirectoryBackend[];

  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'talus-foreign-'));
    const config = parseConfig(configText(), { source: 'test.toml', baseDirectory: root });
    talus = await startTestTalus({ dataDir: join(root, 'data'), config, healInBackground: false });
    disks = await Promise.all(Array.from({ length: DISKS }, (_, i) => DirectoryBackend.open(`disk${i}`, join(root, `disk${i}`))));
    await talus.client.send(new CreateBucketCommand({ Bucket: 'erasure' }));
    await talus.client.send(new CreateBucketCommand({ Bucket: 'copies' }));
    // Reads try the fastest backends first: disk2 the slowest, so they start with shards 0 and 1 (those the tests swap).
    await talus.placement!.store.health.probeAll();
    talus.placement!.store.health.reportSuccess('disk2', 60_000);
  });

  after(async () => {
    await talus?.stop();
    await rm(root, { recursive: true, force: true });
  });

  /** Puts an object and waits until all three of its shards are in place (a write is acknowledged at its quorum). */
  async function put(bucket: string, key: string): Promise<Buffer> {
    const data = randomBytes(SIZE);
    await talus.client.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: data }));
    const { blobId } = await blobOf(bucket, key);
    for (let i = 0; i < 250; i++) {
      const sizes = await Promise.all(disks.map((disk, shard) => disk.stat(shardKey(blobId, shard))));
      if (sizes.every((size) => size !== undefined)) return data;
      await sleep(20);
    }
    throw new Error(`the shards of ${bucket}/${key} never all arrived`);
  }

  async function blobOf(bucket: string, key: string): Promise<{ blobId: string; location: BlobLocation }> {
    const version = await talus.engine.meta.getVersion(bucket, key);
    const segment = version!.segments[0]!;
    return { blobId: segment.blobId, location: decodeLocation(segment.location!) };
  }

  /** The file of shard `shard` of the object's blob (on disk `shard`: priority assignment). */
  async function shardFile(bucket: string, key: string, shard: number): Promise<string> {
    const { blobId, location } = await blobOf(bucket, key);
    assert.equal(location.backends[shard], `disk${shard}`);
    return disks[shard]!.path(shardKey(blobId, shard));
  }

  /** Copies the other object's shard file over this one's, on the same backend. */
  async function swapIn(bucket: string, key: string, other: string, shard: number): Promise<void> {
    await copyFile(await shardFile(bucket, other, shard), await shardFile(bucket, key, shard));
  }

  async function queuedRepairs(blobId: string): Promise<{ shard: number; reason: string }[]> {
    const summary = await talus.engine.meta.repairSummary(1000);
    return summary.sample.filter((entry) => entry.blobId === blobId).map(({ shard, reason }) => ({ shard, reason }));
  }

  async function waitForRepairs(blobId: string, count: number): Promise<{ shard: number; reason: string }[]> {
    for (let i = 0; i < 100; i++) {
      const repairs = await queuedRepairs(blobId);
      if (repairs.length >= count) return repairs.sort((a, b) => a.shard - b.shard);
      await sleep(20);
    }
    return queuedRepairs(blobId);
  }

  test('one foreign shard: whole and ranged reads rebuild the object from parity, the shard is queued and repaired from the good ones', async () => {
    const a = await put('erasure', 'a');
    const b = await put('erasure', 'b');
    const { blobId } = await blobOf('erasure', 'a');
    const own = await readFile(await shardFile('erasure', 'a', 0));
    await swapIn('erasure', 'a', 'b', 0);

    await assertReadsBack(talus, 'erasure', 'a', a);
    assert.deepEqual(await waitForRepairs(blobId, 1), [{ shard: 0, reason: 'foreign on read' }]);
    await assertReadsBack(talus, 'erasure', 'b', b);

    const report = await talus.placement!.healer.repairDue();
    assert.deepEqual({ rebuilt: report.shardsRebuilt, failures: report.failures }, { rebuilt: 1, failures: 0 });
    assert.ok((await readFile(await shardFile('erasure', 'a', 0))).equals(own), 'the shard has its own bytes again');
    assert.deepEqual(await queuedRepairs(blobId), []);
    await assertReadsBack(talus, 'erasure', 'a', a);
  });

  test('two foreign shards: 503 for whole and ranged reads, never the other object bytes; the healer rebuilds nothing from them', async () => {
    const c = await put('erasure', 'c');
    const d = await put('erasure', 'd');
    const { blobId, location } = await blobOf('erasure', 'c');
    const files = await Promise.all([0, 1, 2].map((shard) => shardFile('erasure', 'c', shard)));
    const own = await Promise.all(files.map((file) => readFile(file)));
    await swapIn('erasure', 'c', 'd', 0);
    await swapIn('erasure', 'c', 'd', 1);
    const swapped = await Promise.all(files.map((file) => readFile(file)));

    await assertUnavailable(talus, 'erasure', 'c');
    await assertReadsBack(talus, 'erasure', 'd', d);
    const queued = await waitForRepairs(blobId, 2);
    assert.deepEqual(queued, [
      { shard: 0, reason: 'foreign on read' },
      { shard: 1, reason: 'foreign on read' },
    ]);

    // The one good shard queued too (say a write had missed it): the healer must not "repair" it from the foreign ones.
    await talus.engine.meta.recordRepairs([{ blobId, shard: 2, reason: 'test: write failed' }]);
    const repaired = await talus.placement!.healer.repairDue();
    assert.equal(repaired.shardsRebuilt, 0);
    assert.ok(repaired.failures >= 1);
    const scanned = await talus.placement!.healer.scan({ deep: true });
    assert.equal(scanned.shardsRebuilt, 0);
    for (const [shard, file] of files.entries()) assert.ok((await readFile(file)).equals(swapped[shard]!), `shard ${shard} untouched by the healer`);
    assert.equal(location.backends.length, 3);

    // Put back, the object reads again: nothing about it was changed meanwhile.
    for (const [shard, file] of files.entries()) await writeFile(file, own[shard]!);
    await assertReadsBack(talus, 'erasure', 'c', c);
  });

  test('replicas: foreign copies are skipped for the good one; with every copy foreign, 503', async () => {
    const e = await put('copies', 'e');
    await put('copies', 'f');
    const { blobId, location } = await blobOf('copies', 'e');
    assert.deepEqual([location.dataShards, location.parityShards], [1, 2]);
    await swapIn('copies', 'e', 'f', 0);
    await swapIn('copies', 'e', 'f', 1);

    await assertReadsBack(talus, 'copies', 'e', e);
    assert.deepEqual(await waitForRepairs(blobId, 2), [
      { shard: 0, reason: 'foreign on read' },
      { shard: 1, reason: 'foreign on read' },
    ]);

    await swapIn('copies', 'e', 'f', 2);
    await assertUnavailable(talus, 'copies', 'e');
  });
});

describe('blobs written in shard format 1 stay readable', () => {
  let root: string;
  let config: TalusConfig;

  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'talus-format1-'));
    config = parseConfig(configText(), { source: 'test.toml', baseDirectory: root });
  });

  after(async () => {
    await rm(root, { recursive: true, force: true });
  });

  test('an object whose blob is in format 1 (no header, unbound frames) reads back whole and ranged next to new ones, which are format 2', async () => {
    const dataDir = join(root, 'data');
    let talus = await startTestTalus({ dataDir, config, healInBackground: false });
    const old = randomBytes(SIZE);
    const oldCopies = randomBytes(SIZE);
    try {
      await talus.client.send(new CreateBucketCommand({ Bucket: 'erasure' }));
      await talus.client.send(new CreateBucketCommand({ Bucket: 'copies' }));
      await talus.client.send(new PutObjectCommand({ Bucket: 'erasure', Key: 'old', Body: old }));
      await talus.client.send(new PutObjectCommand({ Bucket: 'copies', Key: 'old', Body: oldCopies }));
    } finally {
      await talus.stop();
    }

    // Rewrite both blobs as a Talus before format 2 wrote them: format 1 shards (the geometry-only layout), location version 1.
    const disks = await Promise.all(Array.from({ length: DISKS }, (_, i) => DirectoryBackend.open(`disk${i}`, join(root, `disk${i}`))));
    const db = new Database(join(dataDir, 'meta.db'));
    try {
      for (const [bucket, data] of [
        ['erasure', old],
        ['copies', oldCopies],
      ] as const) {
        const row = db.prepare("SELECT seq, meta FROM versions WHERE bucket = ? AND key = 'old'").get(bucket) as { seq: number; meta: string };
        const meta = JSON.parse(row.meta) as { segments: { blobId: string; location: string }[] };
        const segment = meta.segments[0]!;
        const location = decodeLocation(segment.location);
        const layout = new StripeLayout(location);
        assert.equal(layout.headerBytes, 0, 'a geometry-only layout is format 1');
        const writer = new StripedBlobWriter({
          layout,
          targets: location.backends.map((name, shard) => ({ backend: disks[Number(name.slice(4))]!, key: shardKey(segment.blobId, shard) })),
          codec: location.dataShards === 1 ? undefined : createErasureCodec(location.dataShards, location.parityShards),
          writeQuorum: layout.shardCount,
        });
        await writer.write(data);
        await (await writer.commit()).settled;
        const v1 = JSON.stringify({ v: 1, k: location.dataShards, m: location.parityShards, b: location.blockBytes, n: location.sizeBytes, on: location.backends });
        segment.location = v1;
        db.prepare('UPDATE versions SET meta = ? WHERE seq = ?').run(JSON.stringify(meta), row.seq);
        db.prepare('UPDATE blobs SET backend = ? WHERE blob_id = ?').run(v1, segment.blobId);
      }
    } finally {
      db.close();
      await Promise.all(disks.map((disk) => disk.close()));
    }

    talus = await startTestTalus({ dataDir, config, healInBackground: false });
    try {
      await assertReadsBack(talus, 'erasure', 'old', old);
      await assertReadsBack(talus, 'copies', 'old', oldCopies);
      const fresh = randomBytes(SIZE);
      await talus.client.send(new PutObjectCommand({ Bucket: 'erasure', Key: 'new', Body: fresh }));
      await assertReadsBack(talus, 'erasure', 'new', fresh);
      const formats = new Map<string, number>();
      for (const key of ['old', 'new']) formats.set(key, JSON.parse((await talus.engine.meta.getVersion('erasure', key))!.segments[0]!.location!).v);
      assert.deepEqual(Object.fromEntries(formats), { old: 1, new: 2 });
      // A deep scrub checks each blob by its own format's rules: nothing to rebuild.
      const scanned = await talus.placement!.healer.scan({ deep: true });
      assert.deepEqual({ rebuilt: scanned.shardsRebuilt, failures: scanned.failures }, { rebuilt: 0, failures: 0 });
      assert.equal((await talus.engine.meta.repairSummary(10)).pending, 0);
    } finally {
      await talus.stop();
    }
  });
});
