/**
 * Placements with --workers 2: both worker processes write and read erasure
 * 2+1 shards on the same directories; the primary purges them.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { Agent } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { CreateBucketCommand, DeleteObjectCommand, GetObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { parseConfig } from '../src/config/config.ts';
import { startTalus } from '../src/talus.ts';
import { silentLogger } from '../src/util/logger.ts';
import { ACCESS_KEY_ID, SECRET_ACCESS_KEY } from './helpers/talus.ts';

const sha256 = (data: Uint8Array): string => createHash('sha256').update(data).digest('hex');

async function shardFiles(directory: string): Promise<number> {
  return (await readdir(directory, { recursive: true, withFileTypes: true })).filter((entry) => entry.isFile()).length;
}

test('two workers store, read and delete placed objects', { timeout: 120_000 }, async () => {
  const root = await mkdtemp(join(tmpdir(), 'talus-placed-workers-'));
  const toml = `${['a', 'b', 'c'].map((name) => `[backends.${name}]\ntype = "directory"\npath = "${name}"\n`).join('')}[placements.ec]\ntype = "erasure"\ndata_shards = 2\nparity_shards = 1\nbackends = ["a", "b", "c"]\n[defaults]\nplacement = "ec"\n`;
  const talus = await startTalus({
    dataDir: join(root, 'data'),
    port: 0,
    address: '127.0.0.1',
    workers: 2,
    rootAccessKeyId: ACCESS_KEY_ID,
    rootSecretAccessKey: SECRET_ACCESS_KEY,
    logger: silentLogger,
    config: parseConfig(toml, { source: 'workers.toml', baseDirectory: root }),
  });
  // A new connection per request, so the kernel spreads them over both workers.
  const client = new S3Client({
    endpoint: talus.url,
    region: 'us-east-1',
    forcePathStyle: true,
    credentials: { accessKeyId: ACCESS_KEY_ID, secretAccessKey: SECRET_ACCESS_KEY },
    requestHandler: { httpAgent: new Agent({ keepAlive: false }) },
  });
  try {
    await client.send(new CreateBucketCommand({ Bucket: 'spread' }));
    const bodies = Array.from({ length: 12 }, (_, i) => randomBytes(70_000 + i * 1000));
    const served = new Set<string>();
    for (const [i, body] of bodies.entries()) {
      const answer = await client.send(new PutObjectCommand({ Bucket: 'spread', Key: `k${i}`, Body: body }));
      served.add(answer.$metadata.requestId!.slice(0, 6));
    }
    assert.equal(served.size, 2, 'both workers took writes');
    for (const [i, body] of bodies.entries()) {
      const answer = await client.send(new GetObjectCommand({ Bucket: 'spread', Key: `k${i}` }));
      assert.equal(sha256(await answer.Body!.transformToByteArray()), sha256(body), `k${i}`);
    }
    for (const name of ['a', 'b', 'c']) assert.equal(await shardFiles(join(root, name)), bodies.length, `backend ${name}`);
    assert.equal(await shardFiles(join(root, 'data', 'blobs')), 0);
    for (let i = 0; i < 4; i++) await client.send(new DeleteObjectCommand({ Bucket: 'spread', Key: `k${i}` }));
    await talus.engine.purgeNow(Date.now() + 60_000);
    for (const name of ['a', 'b', 'c']) assert.equal(await shardFiles(join(root, name)), bodies.length - 4, `backend ${name} after the purge`);
  } finally {
    client.destroy();
    await talus.close();
    await rm(root, { recursive: true, force: true });
  }
});
