/**
 * CancelHeal stops the background healing pass too (issue 13: "heal and
 * purge queues: status, start, cancel"), not only the one StartHeal began.
 * Five objects are stored on an S3 backend 300 ms away each way (a proxy in
 * front of a second Talus), by a server that does not heal; a server started
 * afresh on the same data directory begins its background scan at its first
 * tick, and checking each blob there takes at least 600 ms. While
 * GetHealStatus shows the background pass scanning, CancelHeal answers
 * cancelled: the scan ends before its last blob (its log line says so), the
 * next scan waits for its interval, and a StartHeal afterwards still scans
 * every blob. With nothing in progress CancelHeal answers false.
 */
import { CreateBucketCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { AdminClient } from '../src/admin/client.ts';
import { parseConfig } from '../src/config/config.ts';
import { startTalus, type RunningTalus } from '../src/talus.ts';
import { silentLogger, type Logger } from '../src/util/logger.ts';
import { ACCESS_KEY_ID, SECRET_ACCESS_KEY, makeClient } from './helpers/talus.ts';

const ROOT = { accessKeyId: ACCESS_KEY_ID, secretAccessKey: SECRET_ACCESS_KEY };
const OBJECTS = 5;
const HOUR_MS = 3_600_000;

/** A TCP proxy that delays every chunk by delayMs each way. */
async function delayingProxy(target: URL, delayMs: number): Promise<{ url: string; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  const relay = (from: Socket, to: Socket): void => {
    from.on('data', (chunk) => setTimeout(() => to.writable && to.write(chunk), delayMs));
    from.on('end', () => setTimeout(() => to.end(), delayMs));
    from.on('error', () => to.destroy());
  };
  const server: Server = createServer((client) => {
    const upstream = connect(Number(target.port), target.hostname);
    for (const socket of [client, upstream]) {
      sockets.add(socket);
      socket.on('close', () => sockets.delete(socket));
    }
    relay(client, upstream);
    relay(upstream, client);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  return {
    url: `http://127.0.0.1:${port}`,
    close: () => new Promise((resolve) => {
      for (const socket of sockets) socket.destroy();
      server.close(() => resolve());
    }),
  };
}

async function eventually(what: string, check: () => Promise<boolean>, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

interface HealStatus {
  pass: { state: string; scan?: { blobsChecked: number } } | null;
  background: { running: boolean; phase?: string; nextScanMs: number; cancelledMs?: number } | null;
}

test('CancelHeal stops the background healing pass at its next blob; the next scan waits for its interval', { timeout: 120_000 }, async () => {
  const root = await mkdtemp(join(tmpdir(), 'talus-heal-cancel-'));
  const started: RunningTalus[] = [];
  const start = async (options: Parameters<typeof startTalus>[0]): Promise<RunningTalus> => {
    const talus = await startTalus({ port: 0, address: '127.0.0.1', rootAccessKeyId: ACCESS_KEY_ID, rootSecretAccessKey: SECRET_ACCESS_KEY, logger: silentLogger, ...options });
    started.push(talus);
    return talus;
  };
  let proxy: { close(): Promise<void> } | undefined;
  try {
    const shards = await start({ dataDir: join(root, 'shards') });
    const slow = await delayingProxy(new URL(shards.url), 300);
    proxy = slow;
    const config = parseConfig(`[backends.slow]\ntype = "s3"\nendpoint = "${slow.url}"\nbucket = "shards"\naccess_key_id = "${ACCESS_KEY_ID}"\nsecret_access_key = "${SECRET_ACCESS_KEY}"\n\n[placements.far]\ntype = "single"\nbackend = "slow"\n\n[buckets]\nfar = "far"\n`, { source: 'test', baseDirectory: root });
    const dataDir = join(root, 'data');

    // Above the inline limit (16 KiB): each object is a blob on the slow backend.
    const writer = await start({ dataDir, config, healInBackground: false });
    const s3 = makeClient(writer.url);
    await s3.send(new CreateBucketCommand({ Bucket: 'far' }));
    for (let index = 0; index < OBJECTS; index++) await s3.send(new PutObjectCommand({ Bucket: 'far', Key: `k${index}`, Body: Buffer.alloc(40_000, index) }));
    s3.destroy();
    await writer.close();
    started.pop();

    const logged: Array<[string, Record<string, unknown>]> = [];
    const logger: Logger = { ...silentLogger, info: (message, fields = {}) => logged.push([message, fields]) };
    const healer = await start({ dataDir, config, admin: { port: 0, address: '127.0.0.1' }, healFirstScanDelayMs: 0, logger });
    const admin = new AdminClient({ endpoint: healer.adminUrl!, ...ROOT });
    const status = (): Promise<HealStatus> => admin.call<HealStatus>('GetHealStatus');

    await eventually('the background scan', async () => (await status()).background?.phase === 'scan');
    assert.deepEqual(await admin.call('CancelHeal'), { cancelled: true });
    await eventually('the scan to end', async () => logged.some(([message]) => message.startsWith('healing scan')));
    const [message, fields] = logged.find(([line]) => line.startsWith('healing scan'))!;
    assert.equal(message, 'healing scan cancelled');
    assert.ok(Number(fields['blobsChecked']) < OBJECTS, `stopped before its last blob: ${JSON.stringify(fields)}`);
    const after = await status();
    assert.equal(after.pass, null, 'no pass was asked for');
    assert.ok(after.background !== null && after.background.cancelledMs !== undefined);
    assert.ok(after.background.nextScanMs > Date.now() + 5 * HOUR_MS, 'the next scan waits for its interval');
    assert.notEqual(after.background.phase, 'scan');

    // Healing still works: a pass asked for scans every blob; with nothing in progress there is nothing to cancel.
    assert.deepEqual(await admin.call('StartHeal', {}), { started: true });
    await eventually('the pass asked for', async () => (await status()).pass?.state === 'done');
    assert.equal((await status()).pass?.scan?.blobsChecked, OBJECTS);
    assert.deepEqual(await admin.call('CancelHeal'), { cancelled: false });
  } finally {
    for (const talus of started.reverse()) await talus.close();
    await proxy?.close();
    await rm(root, { recursive: true, force: true });
  }
});
