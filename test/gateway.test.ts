/**
 * Talus as a multi-region gateway: three Talus servers on loopback are its
 * remote backends, the gateway stores erasure 2+1 over them. One backend
 * stops: reads and writes go on at the quorum. It comes back: healing makes
 * the objects written meanwhile fully redundant again (proved by then losing
 * another backend). And s3rver, a third-party implementation, as a backend.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { CreateBucketCommand, GetObjectCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { S3Backend } from '../src/backend/s3-backend.ts';
import { parseConfig } from '../src/config/config.ts';
import { decodeLocation, shardKey, stripeLayoutOf } from '../src/placement/blob-location.ts';
import { freePort } from './helpers/process.ts';
import { ACCESS_KEY_ID, SECRET_ACCESS_KEY, startTestTalus, type TestTalus } from './helpers/talus.ts';

const sha256 = (data: Uint8Array): string => createHash('sha256').update(data).digest('hex');

async function get(client: S3Client, bucket: string, key: string, range?: string): Promise<Buffer> {
  const answer = await client.send(new GetObjectCommand({ Bucket: bucket, Key: key, Range: range }));
  return Buffer.from(await answer.Body!.transformToByteArray());
}

function s3BackendToml(name: string, port: number, options: { accessKeyId?: string; secretAccessKey?: string } = {}): string {
  return [
    `[backends.${name}]`,
    'type = "s3"',
    `endpoint = "http://127.0.0.1:${port}"`,
    'bucket = "talus-shards"',
    `access_key_id = "${options.accessKeyId ?? ACCESS_KEY_ID}"`,
    `secret_access_key = "${options.secretAccessKey ?? SECRET_ACCESS_KEY}"`,
    '',
  ].join('\n');
}

describe('gateway on erasure 2+1 over three remote Talus servers', () => {
  let root: string;
  const regions: { port: number; dataDir: string; talus: TestTalus | undefined }[] = [];
  let gateway: TestTalus;
  const objects = new Map<string, Buffer>();

  const startRegion = async (i: number): Promise<void> => {
    regions[i]!.talus = await startTestTalus({ dataDir: regions[i]!.dataDir, port: regions[i]!.port });
  };

  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'talus-gateway-'));
    for (let i = 0; i < 3; i++) {
      regions.push({ port: await freePort(), dataDir: join(root, `region${i}`), talus: undefined });
      await startRegion(i);
    }
    const toml = [
      ...regions.map((region, i) => s3BackendToml(`region${i}`, region.port)),
      '[placements.geo]',
      'type = "erasure"',
      'data_shards = 2',
      'parity_shards = 1',
      'backends = ["region0", "region1", "region2"]',
      // Acknowledge at k shards: with one region down every write still lands twice.
      'write_quorum = 2',
      'block_size = "64KiB"',
      '[defaults]',
      'placement = "geo"',
    ].join('\n');
    gateway = await startTestTalus({ dataDir: join(root, 'gateway'), config: parseConfig(toml, { source: 'gateway.toml', baseDirectory: root }), healInBackground: false });
    await gateway.client.send(new CreateBucketCommand({ Bucket: 'global' }));
    for (const [key, size] of [
      ['before-1', 300_000],
      ['before-2', 2 * 1024 * 1024 + 3],
    ] as const) {
      const body = randomBytes(size);
      await gateway.client.send(new PutObjectCommand({ Bucket: 'global', Key: key, Body: body }));
      objects.set(key, body);
    }
  });

  after(async () => {
    await gateway?.stop();
    for (const region of regions) await region.talus?.stop();
    await rm(root, { recursive: true, force: true });
  });

  /** Which regions hold each shard of `key`'s blob, straight from the regions' own buckets. */
  async function shardsPresent(key: string): Promise<boolean[]> {
    const size = objects.get(key)!.length;
    const placed = await gateway.engine.meta.listPlacedBlobs('', 1000);
    const blob = placed.find((candidate) => decodeLocation(candidate.location).sizeBytes === size)!;
    const location = decodeLocation(blob.location);
    return Promise.all(
      location.backends.map(async (name, shard) => {
        const region = regions[Number(name.slice('region'.length))]!;
        const backend = new S3Backend({ name, endpoint: `http://127.0.0.1:${region.port}`, accessKeyId: ACCESS_KEY_ID, secretAccessKey: SECRET_ACCESS_KEY, bucket: 'talus-shards' });
        try {
          return (await backend.stat(shardKey(blob.blobId, shard))) === stripeLayoutOf(blob.blobId, location).shardBytes;
        } finally {
          await backend.close();
        }
      }),
    );
  }

  test('one region down: reads and writes continue; back up: healing makes new objects fully redundant', async () => {
    await regions[2]!.talus!.stop();
    regions[2]!.talus = undefined;

    for (const [key, data] of objects) assert.equal(sha256(await get(gateway.client, 'global', key)), sha256(data), `${key} with region2 down`);
    const during = randomBytes(1024 * 1024 + 77);
    await gateway.client.send(new PutObjectCommand({ Bucket: 'global', Key: 'during', Body: during }));
    objects.set('during', during);
    assert.ok((await get(gateway.client, 'global', 'during', 'bytes=100000-200000')).equals(during.subarray(100_000, 200_001)));
    const queued = await gateway.engine.meta.repairSummary(100);
    assert.ok(queued.pending >= 1, 'the missed shard is queued for repair');
    // While the region is still down a repair waits: no rebuild (which would read the whole object) is tried.
    // (Reads with region2 down may queue more repairs in the meantime: a read records the damage it met after answering.)
    const waiting = await gateway.placement!.healer.repairDue({ includeNotDue: true });
    assert.ok(waiting.blobsChecked >= queued.pending, JSON.stringify(waiting));
    assert.deepEqual({ shardsRebuilt: waiting.shardsRebuilt, failures: waiting.failures }, { shardsRebuilt: 0, failures: 0 });

    await startRegion(2);
    const report = await gateway.placement!.healer.repairDue({ includeNotDue: true });
    assert.equal(report.failures, 0);
    assert.ok(report.shardsRebuilt >= 1);
    assert.equal((await gateway.engine.meta.repairSummary(1)).pending, 0);
    assert.deepEqual(await shardsPresent('during'), [true, true, true], 'every shard of the object written during the outage');

    // Fully redundant: lose another region, everything still reads.
    await regions[0]!.talus!.stop();
    regions[0]!.talus = undefined;
    try {
      for (const [key, data] of objects) assert.equal(sha256(await get(gateway.client, 'global', key)), sha256(data), `${key} with region0 down`);
    } finally {
      await startRegion(0);
    }
  });

  test('two regions down: a write fails with 503 and changes nothing; reads fail with 503', async () => {
    await regions[0]!.talus!.stop();
    await regions[1]!.talus!.stop();
    regions[0]!.talus = undefined;
    regions[1]!.talus = undefined;
    try {
      await assert.rejects(gateway.client.send(new PutObjectCommand({ Bucket: 'global', Key: 'before-1', Body: randomBytes(100_000) })), (error: { $metadata?: { httpStatusCode?: number } }) => {
        assert.equal(error.$metadata?.httpStatusCode, 503, String(error));
        return true;
      });
      await assert.rejects(get(gateway.client, 'global', 'before-1'), (error: { $metadata?: { httpStatusCode?: number } }) => error.$metadata?.httpStatusCode === 503);
    } finally {
      await startRegion(0);
      await startRegion(1);
    }
    // The failed overwrite changed nothing.
    assert.equal(sha256(await get(gateway.client, 'global', 'before-1')), sha256(objects.get('before-1')!));
  });
});

describe('s3rver (a third-party S3 implementation) as a backend', () => {
  interface S3rverInstance {
    run(): Promise<AddressInfo>;
    close(): Promise<void>;
  }
  type S3rverConstructor = new (options: { port: number; address: string; directory: string; silent: boolean }) => S3rverInstance;
  let root: string;
  let s3rver: S3rverInstance;
  let gateway: TestTalus;

  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'talus-s3rver-gw-'));
    const S3rver = createRequire(import.meta.url)('s3rver') as S3rverConstructor;
    s3rver = new S3rver({ port: 0, address: '127.0.0.1', directory: join(root, 's3rver'), silent: true });
    const { port } = await s3rver.run();
    const toml = [
      s3BackendToml('peer', port, { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' }),
      '[backends.disk]',
      'type = "directory"',
      'path = "disk"',
      '[placements.pair]',
      'type = "replica"',
      'copies = 2',
      'backends = ["peer", "disk"]',
      'assignment = "priority"',
      '[buckets]',
      'mirrored = "pair"',
    ].join('\n');
    gateway = await startTestTalus({ dataDir: join(root, 'gateway'), config: parseConfig(toml, { source: 'pair.toml', baseDirectory: root }) });
  });

  after(async () => {
    await gateway?.stop();
    await s3rver?.close().catch(() => undefined);
    await rm(root, { recursive: true, force: true });
  });

  test('replica 2 over s3rver and a directory: bytes land on both, and read back from either alone', async () => {
    await gateway.client.send(new CreateBucketCommand({ Bucket: 'mirrored' }));
    const body = randomBytes(700_000);
    await gateway.client.send(new PutObjectCommand({ Bucket: 'mirrored', Key: 'k', Body: body }));
    const [blob] = await gateway.engine.meta.listPlacedBlobs('', 10);
    const location = decodeLocation(blob!.location);
    assert.deepEqual([...location.backends], ['peer', 'disk'], 'priority order');
    assert.ok((await get(gateway.client, 'mirrored', 'k', 'bytes=5-70000')).equals(body.subarray(5, 70_001)));
    await s3rver.close();
    assert.equal(sha256(await get(gateway.client, 'mirrored', 'k')), sha256(body), 'from the directory alone');
  });
});
