/**
 * Hung and lost backends (issue 10, items 7 and 8): erasure 2+1 over two
 * local directories and one remote S3 backend that misbehaves for real —
 * a TCP server on loopback that accepts connections and never answers, or
 * a proxy in front of a real Talus that answers a ranged GET's headers and
 * then never sends its body.
 *
 * - Start-up does not wait on the hung backend; it is probed in the
 *   background and marked down by its first timeout.
 * - PUTs are acknowledged at the write quorum without the hung backend; once
 *   it is down nothing is sent to it, and its shards are queued for repair.
 * - A GET whose shard stalls is served by a hedged read of the parity shard,
 *   with the right bytes; the stall then counts against the backend.
 * - With one of three backends down, 2+1 PUTs succeed under the default quorum.
 *
 * Deadlines are kept short through the configuration ([health] deadline_min,
 * deadline_max, probe_interval), never by waiting out the defaults.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer as createHttpServer, request as httpRequest, type Server as HttpServer } from 'node:http';
import { createServer as createTcpServer, type AddressInfo, type Server as TcpServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, test } from 'node:test';
import { CreateBucketCommand, GetObjectCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { MemoryBackend } from '../src/backend/memory-backend.ts';
import { FsBlobStore } from '../src/blob/fs/fs-blob-store.ts';
import { HEALTH_DEFAULT, parseConfig, type HealthConfig, type TalusConfig } from '../src/config/config.ts';
import { BackendHealth } from '../src/placement/backend-health.ts';
import { decodeLocation } from '../src/placement/blob-location.ts';
import { PlacedBlobStore, type RepairRequest } from '../src/placement/placed-blob-store.ts';
import { S3Error } from '../src/util/s3-error.ts';
import { freePort } from './helpers/process.ts';
import { ACCESS_KEY_ID, SECRET_ACCESS_KEY, startTestTalus, type TestTalus } from './helpers/talus.ts';

const sha256 = (data: Uint8Array): string => createHash('sha256').update(data).digest('hex');

/** Where the old code took minutes (3.5–4 to start, 120 s per read): far above what the new code needs on a loaded machine. */
const START_BOUND_MS = 20_000;
const READ_BOUND_MS = 10_000;

async function get(client: S3Client, bucket: string, key: string, range?: string): Promise<Buffer> {
  const answer = await client.send(new GetObjectCommand({ Bucket: bucket, Key: key, Range: range }));
  return Buffer.from(await answer.Body!.transformToByteArray());
}

function s3BackendToml(name: string, port: number, bucket = 'talus-shards'): string {
  return [
    `[backends.${name}]`,
    'type = "s3"',
    `endpoint = "http://127.0.0.1:${port}"`,
    `bucket = "${bucket}"`,
    `access_key_id = "${ACCESS_KEY_ID}"`,
    `secret_access_key = "${SECRET_ACCESS_KEY}"`,
    '',
  ].join('\n');
}

/**
 * Erasure 2+1 over `remote` and two directories, in that priority order
 * (while all are up, the remote holds data shard 0); `writeQuorum` unset
 * leaves the default, which one test is about. `health` is added as an
 * object (not as TOML) so the same test runs against code without the
 * [health] table, and fails there for the behaviour, not for the setting.
 */
function gatewayConfig(root: string, remoteToml: string, health: HealthConfig, writeQuorum?: number, moreToml = ''): TalusConfig {
  const toml = [
    remoteToml,
    `[backends.d0]\ntype = "directory"\npath = "${join(root, 'd0')}"\n`,
    `[backends.d1]\ntype = "directory"\npath = "${join(root, 'd1')}"\n`,
    '[placements.geo]',
    'type = "erasure"',
    'data_shards = 2',
    'parity_shards = 1',
    'backends = ["remote", "d0", "d1"]',
    ...(writeQuorum === undefined ? [] : [`write_quorum = ${writeQuorum}`]),
    'assignment = "priority"',
    'block_size = "64KiB"',
    '[defaults]',
    'placement = "geo"',
    moreToml,
  ].join('\n');
  return { ...parseConfig(toml, { source: 'gateway.toml', baseDirectory: root }), health };
}

async function until(what: string, condition: () => boolean | Promise<boolean>, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

/** Accepts TCP connections and never reads or answers: a hung endpoint, as a dead NAT or a wedged process looks. */
async function startBlackhole(): Promise<{ port: number; accepted: () => number; close: () => Promise<void> }> {
  const sockets = new Set<Socket>();
  let accepted = 0;
  const server: TcpServer = createTcpServer((socket) => {
    accepted++;
    sockets.add(socket);
    socket.on('error', () => undefined);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    accepted: () => accepted,
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/**
 * An HTTP proxy to a real S3 endpoint, answering after `delayMs` (a farther
 * region); in 'stall-range-body' mode a ranged GET gets its status and
 * headers, then nothing.
 */
async function startProxy(upstreamPort: number, delayMs = 0): Promise<{ port: number; setMode: (mode: 'pass' | 'stall-range-body') => void; stalled: () => number; close: () => Promise<void> }> {
  let mode: 'pass' | 'stall-range-body' = 'pass';
  let stalled = 0;
  const server: HttpServer = createHttpServer((req, res) => {
    const upstream = httpRequest({ host: '127.0.0.1', port: upstreamPort, method: req.method, path: req.url, headers: req.headers }, async (answer) => {
      if (delayMs > 0) await sleep(delayMs);
      res.writeHead(answer.statusCode ?? 502, answer.headers);
      if (mode === 'stall-range-body' && req.method === 'GET' && req.headers.range !== undefined) {
        stalled++;
        res.flushHeaders();
        answer.destroy(); // the body never comes; the client's socket stays open
        return;
      }
      answer.pipe(res);
    });
    upstream.on('error', () => res.destroy());
    req.pipe(upstream);
  });
  server.requestTimeout = 0;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    setMode: (next) => {
      mode = next;
    },
    stalled: () => stalled,
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

describe('a blackholed remote backend (accepts, never answers) in erasure 2+1', () => {
  let root: string;
  let blackhole: Awaited<ReturnType<typeof startBlackhole>>;
  let gateway: TestTalus | undefined;
  const objects = new Map<string, Buffer>();

  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'talus-failsafe-backends-'));
    blackhole = await startBlackhole();
  });

  after(async () => {
    await blackhole.close(); // first: whatever still waits on it fails at once
    await gateway?.stop();
    await rm(root, { recursive: true, force: true });
  });

  test('the server starts without waiting on it; the first timeout marks it down; PUTs succeed at the quorum and queue its shards for repair; GETs return the right bytes', async () => {
    // The quorum explicit (k): this test is about the hung backend, not the default quorum.
    // Bucket "strict" wants every shard durable before its 200.
    const strict = '[placements.strict]\ntype = "erasure"\ndata_shards = 2\nparity_shards = 1\nbackends = ["remote", "d0", "d1"]\nwrite_quorum = 3\n[buckets]\nstrict = "strict"';
    const config = gatewayConfig(root, s3BackendToml('remote', blackhole.port), { probeIntervalMs: 1_000, deadlineMinMs: 300, deadlineMaxMs: 1_500 }, 2, strict);
    const started = Date.now();
    const starting = startTestTalus({ dataDir: join(root, 'gateway'), config, healInBackground: false });
    const giveUp = new AbortController();
    const bound = sleep(START_BOUND_MS, 'too slow' as const, { signal: giveUp.signal }).catch(() => 'too slow' as const);
    const first = await Promise.race([starting, bound]);
    giveUp.abort();
    assert.notEqual(first, 'too slow', `the server did not start within ${START_BOUND_MS} ms with a hung backend`);
    gateway = first as TestTalus;
    const startMs = Date.now() - started;
    const health = gateway.placement!.store.health;
    assert.ok(startMs < START_BOUND_MS, `started in ${startMs} ms`);

    await gateway.client.send(new CreateBucketCommand({ Bucket: 'bkt' }));
    const put = async (key: string, size: number): Promise<void> => {
      const body = randomBytes(size);
      await gateway!.client.send(new PutObjectCommand({ Bucket: 'bkt', Key: key, Body: body }));
      objects.set(key, body);
    };
    await put('first', 300_000);
    // The probe (or the first PUT's shard) timed out: the backend is down, with the timeout as its error.
    await until('the hung backend marked down', () => health.state('remote') === 'down');
    const status = health.snapshot().find((entry) => entry.name === 'remote')!;
    assert.match(status.lastError ?? '', /did not answer within|no progress|no answer/, JSON.stringify(status));
    assert.equal(health.state('d0'), 'up');
    assert.equal(health.state('d1'), 'up');

    // Later PUTs: nothing is sent to the down backend (its shard is skipped, not waited for).
    const acceptedBefore = blackhole.accepted();
    for (let i = 0; i < 4; i++) await put(`later-${i}`, 100_000 + i * 70_000);
    const placed = await gateway.engine.meta.listPlacedBlobs('', 100);
    assert.equal(placed.length, objects.size);
    // Every blob's shard on the hung backend is queued for repair (the first PUT's once its shard is given up,
    // which may be after its acknowledgement); those of the later PUTs were never sent.
    await until('a repair for every blob', async () => (await gateway!.engine.meta.repairSummary(100)).pending === objects.size);
    const summary = await gateway.engine.meta.repairSummary(100);
    for (const entry of summary.sample) {
      const location = decodeLocation(entry.location!);
      assert.equal(location.backends[entry.shard], 'remote', `blob ${entry.blobId}: the shard queued is the hung backend's`);
    }
    const skipped = summary.sample.filter((entry) => /not written: backend remote is down/.test(entry.reason));
    assert.ok(skipped.length >= 4, `later PUTs skip the down backend: ${JSON.stringify(summary.sample.map((entry) => entry.reason))}`);
    // Probes go on (a connection now and then); the PUTs themselves opened none.
    assert.ok(blackhole.accepted() - acceptedBefore <= 8, `${blackhole.accepted() - acceptedBefore} connections during 4 PUTs`);

    for (const [key, data] of objects) {
      const readStarted = Date.now();
      assert.equal(sha256(await get(gateway.client, 'bkt', key)), sha256(data), key);
      assert.equal(sha256(await get(gateway.client, 'bkt', key, 'bytes=70000-150000')), sha256(data.subarray(70_000, 150_001)), `${key} range`);
      assert.ok(Date.now() - readStarted < READ_BOUND_MS, `${key} read in ${Date.now() - readStarted} ms`);
    }

    // A quorum that needs the down backend: 503 at once, every time, instead of waiting for it again.
    await gateway.client.send(new CreateBucketCommand({ Bucket: 'strict' }));
    for (let i = 0; i < 2; i++) {
      const putStarted = Date.now();
      await assert.rejects(gateway.client.send(new PutObjectCommand({ Bucket: 'strict', Key: 'k', Body: randomBytes(100_000) })), (error: { $metadata?: { httpStatusCode?: number } }) => {
        assert.equal(error.$metadata?.httpStatusCode, 503, String(error));
        return true;
      });
      assert.ok(Date.now() - putStarted < READ_BOUND_MS, `refused after ${Date.now() - putStarted} ms`);
    }

    // Purging (last: it removes a live blob's shards): the hung backend is given up at deadline_max, and its shard
    // waits for a retry, instead of holding the purge for the remote client's timeouts and retries.
    const removing = Date.now();
    const retryAt = await gateway.placement!.store.removeMany([placed[0]!]);
    assert.ok(Date.now() - removing < READ_BOUND_MS, `removal gave up after ${Date.now() - removing} ms`);
    assert.ok(retryAt.has(placed[0]!.blobId), 'the hung backend\'s shard waits for a retry');
  });
});

describe('a remote backend that answers a GET\'s headers and then stalls its body', () => {
  let root: string;
  let upstream: TestTalus;
  /** Three regions through proxies to one real Talus: near (r0, the fastest, which will stall) and two farther ones. */
  const proxies: Awaited<ReturnType<typeof startProxy>>[] = [];
  let gateway: TestTalus;

  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'talus-failsafe-stall-'));
    upstream = await startTestTalus({ dataDir: join(root, 'upstream'), port: await freePort() });
    for (const delayMs of [0, 40, 40]) proxies.push(await startProxy(upstream.port, delayMs));
    const toml = [
      ...proxies.map((proxy, i) => s3BackendToml(`r${i}`, proxy.port, `shards-r${i}`)),
      '[placements.geo]',
      'type = "erasure"',
      'data_shards = 2',
      'parity_shards = 1',
      'backends = ["r0", "r1", "r2"]',
      'write_quorum = 2',
      'assignment = "priority"',
      'block_size = "64KiB"',
      '[defaults]',
      'placement = "geo"',
    ].join('\n');
    // Probes every minute: once a timeout marks the backend down, it stays down for the test to see.
    const config = { ...parseConfig(toml, { source: 'gateway.toml', baseDirectory: root }), health: { probeIntervalMs: 60_000, deadlineMinMs: 500, deadlineMaxMs: 3_000 } };
    gateway = await startTestTalus({ dataDir: join(root, 'gateway'), config, healInBackground: false });
    const health = gateway.placement!.store.health;
    await until('every region probed up', () => ['r0', 'r1', 'r2'].every((name) => health.state(name) === 'up'));
  });

  after(async () => {
    for (const proxy of proxies) await proxy.close();
    await gateway?.stop();
    await upstream?.stop();
    await rm(root, { recursive: true, force: true });
  });

  test('a GET needing the stalled shard is served by a hedged read of another shard, with the right bytes; the stall then marks the backend down and queues a repair', async () => {
    const health = gateway.placement!.store.health;
    await gateway.client.send(new CreateBucketCommand({ Bucket: 'bkt' }));
    const data = randomBytes(600_000 + 123);
    await gateway.client.send(new PutObjectCommand({ Bucket: 'bkt', Key: 'k', Body: data }));
    const [blob] = await gateway.engine.meta.listPlacedBlobs('', 10);
    assert.equal(decodeLocation(blob!.location).backends[0], 'r0', 'the nearest region holds data shard 0: reads ask it first');
    assert.equal((await gateway.engine.meta.repairSummary(10)).pending, 0, 'all three shards were written');
    assert.equal(sha256(await get(gateway.client, 'bkt', 'k')), sha256(data), 'read while every region answers');

    proxies[0]!.setMode('stall-range-body');
    const started = Date.now();
    assert.equal(sha256(await get(gateway.client, 'bkt', 'k')), sha256(data));
    const elapsedMs = Date.now() - started;
    assert.ok(proxies[0]!.stalled() >= 1, 'the read did ask the stalled region');
    assert.ok(elapsedMs < READ_BOUND_MS, `served in ${elapsedMs} ms around a stalled shard`);

    // The stalled read timed out in the background: the region is down and its shard queued.
    await until('the stalled region marked down', () => health.state('r0') === 'down');
    await until('a repair queued', async () => (await gateway.engine.meta.repairSummary(10)).pending > 0);
    const summary = await gateway.engine.meta.repairSummary(10);
    assert.deepEqual(summary.sample.map((entry) => [entry.shard, entry.reason]), [[0, 'timeout on read']]);
    // Down, it is not asked again: the next read does not stall on it.
    const stalledBefore = proxies[0]!.stalled();
    assert.ok((await get(gateway.client, 'bkt', 'k', 'bytes=1000-300000')).equals(data.subarray(1000, 300_001)));
    assert.equal(proxies[0]!.stalled(), stalledBefore, 'a down backend is read last');
  });
});

describe('one of three backends down', () => {
  let root: string;
  let gateway: TestTalus;

  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'talus-failsafe-down-'));
  });

  after(async () => {
    await gateway?.stop();
    await rm(root, { recursive: true, force: true });
  });

  test('the default write quorum keeps writes going with one backend down (2+1 acknowledges at 2; two copies at 1)', async () => {
    // Nothing listens on the remote's port: connections are refused, as for a region that is down.
    const config = gatewayConfig(root, s3BackendToml('remote', await freePort()), { probeIntervalMs: 1_000, deadlineMinMs: 300, deadlineMaxMs: 1_500 });
    gateway = await startTestTalus({ dataDir: join(root, 'gateway'), config, healInBackground: false });
    await gateway.client.send(new CreateBucketCommand({ Bucket: 'bkt' }));
    const bodies = [randomBytes(200_000), randomBytes(1_000_003), randomBytes(70_000)];
    for (const [i, body] of bodies.entries()) await gateway.client.send(new PutObjectCommand({ Bucket: 'bkt', Key: `k${i}`, Body: body }));
    for (const [i, body] of bodies.entries()) assert.equal(sha256(await get(gateway.client, 'bkt', `k${i}`)), sha256(body));
    const summary = await gateway.engine.meta.repairSummary(10);
    assert.equal(summary.pending, bodies.length, 'each object\'s shard on the down backend is queued for repair');
    const parsed = parseConfig(
      `[backends.a]\ntype = "directory"\npath = "a"\n[backends.b]\ntype = "directory"\npath = "b"\n[backends.c]\ntype = "directory"\npath = "c"\n` +
        `[placements.ec]\ntype = "erasure"\ndata_shards = 2\nparity_shards = 1\nbackends = ["a", "b", "c"]\n` +
        `[placements.pair]\ntype = "replica"\ncopies = 2\nbackends = ["a", "b"]\n`,
      { source: 't.toml', baseDirectory: root },
    );
    assert.deepEqual(parsed.placements.map((placement) => [placement.name, 'writeQuorum' in placement ? placement.writeQuorum : undefined]), [['ec', 2], ['pair', 1]]);
  });
});

test('[health] sets the probe interval and the deadline bounds; mistakes are refused with the key named', () => {
  const parse = (text: string): TalusConfig => parseConfig(text, { source: 't.toml', baseDirectory: '/etc/talus' });
  assert.deepEqual(parse('').health, HEALTH_DEFAULT);
  assert.deepEqual(HEALTH_DEFAULT, { probeIntervalMs: 10_000, deadlineMinMs: 2_000, deadlineMaxMs: 30_000 });
  assert.deepEqual(parse('[health]\nprobe_interval = "1.5s"\ndeadline_min = 250\ndeadline_max = "1min"').health, { probeIntervalMs: 1_500, deadlineMinMs: 250, deadlineMaxMs: 60_000 });
  for (const [text, error] of [
    ['[health]\ndeadline_min = "5s"\ndeadline_max = "1s"', /\[health\] deadline_max: must be at least deadline_min/],
    ['[health]\ndeadline_min = "soon"', /\[health\] deadline_min: must be a duration/],
    ['[health]\nprobe_interval = "1ms"', /\[health\] probe_interval: must be from 50 ms/],
    ['[health]\ntimeout = "1s"', /\[health\] timeout: unknown setting/],
  ] as const) {
    assert.throws(() => parse(text), error);
  }
});

test('a read left with a hung shard and no spare fails with 503 at the deadline instead of waiting forever', { timeout: 30_000 }, async () => {
  const root = await mkdtemp(join(tmpdir(), 'talus-failsafe-nospare-'));
  try {
    const backends = ['m0', 'm1', 'm2'].map((name) => new MemoryBackend(name));
    const byName = new Map(backends.map((backend) => [backend.name, backend]));
    const repairs: RepairRequest[] = [];
    const store = new PlacedBlobStore({
      local: await FsBlobStore.open(join(root, 'local')),
      backends: byName,
      config: {
        backends: [],
        placements: [{ name: 'p', type: 'erasure', dataShards: 2, parityShards: 1, backends: ['m0', 'm1', 'm2'], assignment: 'priority', writeQuorum: 3, blockBytes: 4096 }],
        defaultPlacement: 'p',
        buckets: new Map(),
      },
      health: new BackendHealth(byName, { deadlineMinMs: 200, deadlineMaxMs: 500 }),
      repairs: { recordRepairs: async (requests) => void repairs.push(...requests) },
    });
    const data = randomBytes(20_000);
    const writer = store.create({ bucket: 'bkt', sizeBytes: data.length });
    await writer.write(data);
    await writer.commit();
    backends[1]!.objects().delete(`${writer.id}.1`); // shard 1 lost
    backends[0]!.read = () => new Promise(() => undefined); // shard 0's backend accepts the read and never answers
    const started = Date.now();
    await assert.rejects(store.read({ blobId: writer.id, location: writer.location }, 0, data.length), (error: unknown) => error instanceof S3Error && error.code === 'ServiceUnavailable');
    assert.ok(Date.now() - started < READ_BOUND_MS, `failed after ${Date.now() - started} ms`);
    assert.equal(store.health.state('m0'), 'down', 'the timeout counts against the backend');
    await until('repairs recorded', () => repairs.length >= 2);
    assert.deepEqual(repairs.map((repair) => [repair.shard, repair.reason]).sort(), [[0, 'timeout on read'], [1, 'missing on read']]);
    await store.close();
  } finally {
    await rm(root, { recursive: true, force: true });
  }
});
