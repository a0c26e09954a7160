/**
 * Per-backend errors and degraded reads in /metrics (issue 13: "per backend:
 * up, latency, errors; … degraded reads"). Erasure 2+1 over a remote S3
 * backend (a real Talus behind a TCP proxy that can be switched off) holding
 * data shard 0, and two directories. While every backend answers, reads are
 * whole and nothing fails: talus_backend_errors_total is 0 for each backend
 * and talus_degraded_reads_total 0 (a parity shard read because its backend
 * is faster is no degraded read). With the remote backend down, its errors
 * count up (its failed probes), the directories' stay 0, and a GET — served
 * right, rebuilt from parity — counts exactly one degraded read.
 */
import { CreateBucketCommand, GetObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { parseConfig } from '../src/config/config.ts';
import { startTalus } from '../src/talus.ts';
import { silentLogger } from '../src/util/logger.ts';
import { switchableProxy } from './helpers/switchable-proxy.ts';
import { ACCESS_KEY_ID, SECRET_ACCESS_KEY, startTestTalus } from './helpers/talus.ts';

async function until(what: string, condition: () => Promise<boolean> | boolean, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

test('talus_backend_errors_total and talus_degraded_reads_total count failed backend requests and reads rebuilt without a data shard', { timeout: 120_000 }, async () => {
  const root = await mkdtemp(join(tmpdir(), 'talus-metrics-backends-'));
  for (const disk of ['d0', 'd1']) await mkdir(join(root, disk));
  const store = await startTestTalus();
  const proxy = await switchableProxy((store.server.address() as { port: number }).port);
  const config = {
    ...parseConfig(
      `[backends.remote]\ntype = "s3"\nendpoint = "http://127.0.0.1:${proxy.port}"\nbucket = "shards"\naccess_key_id = "${ACCESS_KEY_ID}"\nsecret_access_key = "${SECRET_ACCESS_KEY}"\n` +
        `[backends.d0]\ntype = "directory"\npath = "${join(root, 'd0')}"\n[backends.d1]\ntype = "directory"\npath = "${join(root, 'd1')}"\n` +
        '[placements.geo]\ntype = "erasure"\ndata_shards = 2\nparity_shards = 1\nbackends = ["remote", "d0", "d1"]\nassignment = "priority"\nblock_size = "64KiB"\n[buckets]\nplaced = "geo"\n',
      { source: 'test', baseDirectory: root },
    ),
    health: { probeIntervalMs: 100, deadlineMinMs: 2_000, deadlineMaxMs: 5_000 },
  };
  const talus = await startTalus({
    dataDir: join(root, 'data'), port: 0, address: '127.0.0.1', rootAccessKeyId: ACCESS_KEY_ID, rootSecretAccessKey: SECRET_ACCESS_KEY,
    admin: { port: 0, address: '127.0.0.1' }, metrics: { public: true }, config, healInBackground: false, logger: silentLogger,
  });
  const s3 = new S3Client({ endpoint: talus.url, region: 'us-east-1', forcePathStyle: true, credentials: { accessKeyId: ACCESS_KEY_ID, secretAccessKey: SECRET_ACCESS_KEY } });
  const scrape = async (): Promise<Map<string, number>> => {
    const values = new Map<string, number>();
    for (const line of (await (await fetch(`${talus.adminUrl}/metrics`)).text()).split('\n')) {
      if (line === '' || line.startsWith('#')) continue;
      const space = line.lastIndexOf(' ');
      values.set(line.slice(0, space), Number(line.slice(space + 1)));
    }
    return values;
  };
  const state = (name: string): string | undefined => talus.placement!.backendStatus().find((status) => status.name === name)?.state;
  const body = randomBytes(512 * 1024);
  const get = async (): Promise<Buffer> => Buffer.from(await (await s3.send(new GetObjectCommand({ Bucket: 'placed', Key: 'striped' }))).Body!.transformToByteArray());
  try {
    await until('every backend up', () => ['remote', 'd0', 'd1'].every((name) => state(name) === 'up'));
    await s3.send(new CreateBucketCommand({ Bucket: 'placed' }));
    await s3.send(new PutObjectCommand({ Bucket: 'placed', Key: 'striped', Body: body }));
    for (let i = 0; i < 3; i++) assert.ok((await get()).equals(body));
    let metrics = await scrape();
    // Every series is there from the start. A loaded machine can make a healthy backend miss a probe's deadline,
    // so what follows is judged as growth from here, not from zero.
    const errorsBefore = new Map(['remote', 'd0', 'd1'].map((name) => [name, metrics.get(`talus_backend_errors_total{backend="${name}"}`)]));
    for (const [name, errors] of errorsBefore) assert.ok(errors !== undefined, `${name}'s series`);
    const degradedBefore = metrics.get('talus_degraded_reads_total');
    assert.ok(degradedBefore !== undefined);

    // The remote backend (data shard 0) goes down: its probes fail, the read is rebuilt from parity.
    proxy.on = false;
    await until('remote down', () => state('remote') === 'down');
    assert.ok((await get()).equals(body), 'the bytes, rebuilt from d0 and d1');
    metrics = await scrape();
    const remoteErrors = metrics.get('talus_backend_errors_total{backend="remote"}')!;
    assert.ok(remoteErrors > errorsBefore.get('remote')!, `remote's errors grew: ${errorsBefore.get('remote')} -> ${remoteErrors}`);
    assert.equal(metrics.get('talus_backend_errors_total{backend="d0"}'), errorsBefore.get('d0'), 'd0 had no new error');
    assert.equal(metrics.get('talus_backend_errors_total{backend="d1"}'), errorsBefore.get('d1'), 'd1 had no new error');
    assert.equal(metrics.get('talus_degraded_reads_total'), degradedBefore + 1, 'one read, counted once however many stripes it rebuilt');
    // Counters only grow: a later scrape keeps the read.
    assert.equal((await scrape()).get('talus_degraded_reads_total'), degradedBefore + 1);
  } finally {
    s3.destroy();
    await talus.close();
    await proxy.close();
    await store.stop();
    await rm(root, { recursive: true, force: true });
  }
});
