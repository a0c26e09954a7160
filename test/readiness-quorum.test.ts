/**
 * Readiness follows the write quorum (issue 13: "ready answers 503 while the
 * metadata store or a write quorum is missing"). A placement, erasure 2+1
 * with a write quorum of 2, over one directory and two S3 backends — a real
 * Talus behind two TCP proxies that can be switched off (connections refused)
 * and on again. With one remote backend down the quorum holds and both
 * readiness probes (`/minio/health/ready` on the S3 listener, `/health/ready`
 * on the admin listener) answer 200; with both down they answer 503 (and a
 * PUT large enough to be placed is refused with 503 alike); with them back, 200 again — without a
 * restart. Liveness stays 200 throughout.
 */
import { CreateBucketCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { parseConfig } from '../src/config/config.ts';
import { startTalus } from '../src/talus.ts';
import { silentLogger } from '../src/util/logger.ts';
import { switchableProxy } from './helpers/switchable-proxy.ts';
import { ACCESS_KEY_ID, SECRET_ACCESS_KEY, startTestTalus } from './helpers/talus.ts';

async function until(what: string, condition: () => Promise<boolean>, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

test('ready answers 503 while a placement\'s write quorum is missing, and 200 again once it is back', { timeout: 120_000 }, async () => {
  const root = await mkdtemp(join(tmpdir(), 'talus-readiness-'));
  await mkdir(join(root, 'd0'));
  const store = await startTestTalus();
  const storePort = (store.server.address() as { port: number }).port;
  const proxies = [await switchableProxy(storePort), await switchableProxy(storePort)];
  const remote = (name: string, port: number): string =>
    `[backends.${name}]\ntype = "s3"\nendpoint = "http://127.0.0.1:${port}"\nbucket = "shards-${name}"\naccess_key_id = "${ACCESS_KEY_ID}"\nsecret_access_key = "${SECRET_ACCESS_KEY}"\n`;
  const config = {
    ...parseConfig(
      `${remote('ra', proxies[0]!.port)}${remote('rb', proxies[1]!.port)}[backends.d0]\ntype = "directory"\npath = "${join(root, 'd0')}"\n` +
        '[placements.geo]\ntype = "erasure"\ndata_shards = 2\nparity_shards = 1\nwrite_quorum = 2\nbackends = ["ra", "rb", "d0"]\n[buckets]\nplaced = "geo"\n',
      { source: 'test', baseDirectory: root },
    ),
    // Probed often: the test waits for probes. A switched-off proxy refuses at once, so no deadline is waited out; the deadlines are generous so a loaded machine marks no backend down by mistake.
    health: { probeIntervalMs: 100, deadlineMinMs: 2_000, deadlineMaxMs: 5_000 },
  };
  const talus = await startTalus({
    dataDir: join(root, 'data'), port: 0, address: '127.0.0.1', rootAccessKeyId: ACCESS_KEY_ID, rootSecretAccessKey: SECRET_ACCESS_KEY,
    admin: { port: 0, address: '127.0.0.1' }, config, healInBackground: false, logger: silentLogger,
  });
  const s3 = new S3Client({ endpoint: talus.url, region: 'us-east-1', forcePathStyle: true, credentials: { accessKeyId: ACCESS_KEY_ID, secretAccessKey: SECRET_ACCESS_KEY } });
  const probe = async (url: string): Promise<number> => {
    const response = await fetch(url);
    await response.arrayBuffer();
    return response.status;
  };
  const readiness = async (): Promise<[number, number]> => [await probe(`${talus.url}/minio/health/ready`), await probe(`${talus.adminUrl}/health/ready`)];
  const liveness = async (): Promise<[number, number]> => [await probe(`${talus.url}/minio/health/live`), await probe(`${talus.adminUrl}/health/live`)];
  const upCount = (): number => talus.placement!.backendStatus().filter((status) => status.state === 'up').length;
  try {
    await until('every backend up', async () => upCount() === 3);
    assert.deepEqual(await readiness(), [200, 200]);
    await s3.send(new CreateBucketCommand({ Bucket: 'placed' }));
    await s3.send(new PutObjectCommand({ Bucket: 'placed', Key: 'before', Body: 'written with every backend up' }));

    // One remote backend down: 2 of 3 reachable, the quorum of 2 holds.
    proxies[0]!.on = false;
    await until('ra down', async () => talus.placement!.backendStatus().find((status) => status.name === 'ra')?.state === 'down');
    assert.deepEqual(await readiness(), [200, 200]);

    // Both down: 1 of 3 reachable, below the quorum: not ready (writes are refused alike), still live.
    proxies[1]!.on = false;
    await until('rb down', async () => talus.placement!.backendStatus().find((status) => status.name === 'rb')?.state === 'down');
    assert.deepEqual(await readiness(), [503, 503]);
    assert.deepEqual(await liveness(), [200, 200]);
    await assert.rejects(s3.send(new PutObjectCommand({ Bucket: 'placed', Key: 'refused', Body: Buffer.alloc(1024 * 1024, 7) })), (error: { $metadata?: { httpStatusCode?: number } }) => error.$metadata?.httpStatusCode === 503);

    // Back: probes see them answer, and readiness follows without a restart.
    proxies[0]!.on = true;
    proxies[1]!.on = true;
    await until('ready again', async () => (await readiness()).every((status) => status === 200));
    await s3.send(new PutObjectCommand({ Bucket: 'placed', Key: 'after', Body: 'written with the quorum back' }));
  } finally {
    s3.destroy();
    await talus.close();
    await Promise.all(proxies.map((proxy) => proxy.close()));
    await store.stop();
    await rm(root, { recursive: true, force: true });
  }
});
