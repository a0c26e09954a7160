/**
 * --workers syncs, round 7b: a send to a worker that just died does not end
 * the primary; a starting worker that hangs holds neither a bucket change
 * nor the shutdown.
 */
import assert from 'node:assert/strict';
import cluster, { type Worker } from 'node:cluster';
import { randomBytes } from 'node:crypto';
import { readFile, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { AdminClient } from '../src/admin/client.ts';
import { SYNC_TIMEOUT_MS, WorkerPool } from '../src/cluster.ts';
import { startTalus } from '../src/talus.ts';
import type { Logger } from '../src/util/logger.ts';
import { freePort, startServerProcess } from './helpers/process.ts';
import { signedRequest } from './helpers/raw.ts';
import { ACCESS_KEY_ID, SECRET_ACCESS_KEY } from './helpers/talus.ts';

/** The PIDs of a process's children (its worker processes). */
async function childrenOf(pid: number): Promise<number[]> {
  const text = await readFile(`/proc/${pid}/task/${pid}/children`, 'utf8');
  return text.trim().split(/\s+/).filter((word) => word !== '').map(Number);
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

test('a sync sent to a worker that died a moment ago (EPIPE) settles; the primary survives', { timeout: 60_000 }, async () => {
  const dataDir = await mkdtemp(join(tmpdir(), 'talus-workers-epipe-'));
  const logger: Logger = { info: () => undefined, warn: () => undefined, error: () => undefined };
  // A data directory as a server leaves it (the root key, the database).
  await (await startTalus({ dataDir, port: 0, address: '127.0.0.1', logger, rootAccessKeyId: ACCESS_KEY_ID, rootSecretAccessKey: SECRET_ACCESS_KEY })).close();
  const pool = new WorkerPool({ dataDir, port: 0, address: '127.0.0.1', domain: undefined, region: 'us-east-1', consoleSourceKey: randomBytes(32).toString('base64') }, 2, logger);
  try {
    await pool.start();
    const pid = Object.values(cluster.workers ?? {}).find((worker) => worker !== undefined && !worker.isDead())!.process.pid!;
    process.kill(pid, 'SIGKILL');
    // The primary is busy while the worker dies: it has not yet seen the exit, and its channel still looks connected.
    const endMs = Date.now() + 300;
    while (Date.now() < endMs);
    // Without an 'error' listener the failed send is an uncaught error: this test process would die here.
    await pool.forgetBuckets();
    await pool.leasedByWorkers(['x']);
  } finally {
    await pool.stop(1_000);
    await rm(dataDir, { recursive: true, force: true });
  }
});

test('a bucket change through a worker does not wait for a worker that is starting (it caches no bucket record before it is ready)', { timeout: 90_000 }, async () => {
  const dataDir = await mkdtemp(join(tmpdir(), 'talus-workers-bucket-starting-'));
  const errors: string[] = [];
  const logger: Logger = { info: () => undefined, warn: () => undefined, error: (message) => errors.push(message) };
  const talus = await startTalus({ dataDir, port: 0, address: '127.0.0.1', workers: 2, logger, rootAccessKeyId: ACCESS_KEY_ID, rootSecretAccessKey: SECRET_ACCESS_KEY });
  const credentials = { accessKeyId: ACCESS_KEY_ID, secretAccessKey: SECRET_ACCESS_KEY };
  let hung: number | undefined;
  try {
    assert.equal((await signedRequest(talus.url, { method: 'PUT', path: '/bwait', credentials })).status, 200);
    const replacement = new Promise<Worker>((resolve) => cluster.once('fork', resolve));
    Object.values(cluster.workers ?? {}).find((worker) => worker !== undefined && !worker.isDead())!.process.kill('SIGKILL');
    hung = (await replacement).process.pid!;
    process.kill(hung, 'SIGSTOP'); // a start that hangs
    const tagging = '<Tagging><TagSet><Tag><Key>a</Key><Value>b</Value></Tag></TagSet></Tagging>';
    const startedMs = Date.now();
    const change = await signedRequest(talus.url, { method: 'PUT', path: '/bwait', query: { tagging: '' }, body: tagging, credentials });
    const tookMs = Date.now() - startedMs;
    assert.equal(change.status, 204, change.body);
    // Waited for, the hung start held the change until the changing worker gave up (2 x SYNC_TIMEOUT_MS),
    // or until the hung worker was killed as late (SYNC_TIMEOUT_MS).
    assert.ok(tookMs < SYNC_TIMEOUT_MS, `the change answered after ${tookMs} ms`);
    assert.equal(alive(hung), true, 'the starting worker was killed');
    assert.ok(!errors.some((line) => line.includes('killing them')), errors.join('; '));
  } finally {
    if (hung !== undefined && alive(hung)) process.kill(hung, 'SIGCONT');
    await talus.close();
    await rm(dataDir, { recursive: true, force: true });
  }
});

test('a key change waits SYNC_TIMEOUT_MS at most for a starting worker that hangs, then kills it as late (not a failed start)', { timeout: 90_000 }, async () => {
  const dataDir = await mkdtemp(join(tmpdir(), 'talus-workers-key-starting-'));
  const errors: string[] = [];
  const logger: Logger = { info: () => undefined, warn: () => undefined, error: (message, fields) => errors.push(`${message} ${JSON.stringify(fields)}`) };
  const talus = await startTalus({
    dataDir, port: 0, address: '127.0.0.1', workers: 2, logger,
    rootAccessKeyId: ACCESS_KEY_ID, rootSecretAccessKey: SECRET_ACCESS_KEY,
    admin: { port: 0, address: '127.0.0.1' },
  });
  let hung: number | undefined;
  try {
    const admin = new AdminClient({ endpoint: talus.adminUrl!, accessKeyId: ACCESS_KEY_ID, secretAccessKey: SECRET_ACCESS_KEY });
    const user = await admin.call<{ accessKeyId: string }>('CreateUser', { name: 'carol', policy: 'readwrite' });
    const replacement = new Promise<Worker>((resolve) => cluster.once('fork', resolve));
    Object.values(cluster.workers ?? {}).find((worker) => worker !== undefined && !worker.isDead())!.process.kill('SIGKILL');
    hung = (await replacement).process.pid!;
    process.kill(hung, 'SIGSTOP'); // a start that hangs
    const startedMs = Date.now();
    await admin.call('UpdateKey', { accessKeyId: user.accessKeyId, enabled: false });
    const tookMs = Date.now() - startedMs;
    // Before: the change waited for the start's own timeout, 30 s.
    assert.ok(tookMs < 3 * SYNC_TIMEOUT_MS, `the change answered after ${tookMs} ms`);
    assert.equal(alive(hung), false, 'the hung starting worker was killed');
    assert.ok(errors.some((line) => line.includes('killing them') && line.includes(String(hung))), errors.join('; '));
    // Killed for lateness: not counted as a failed start (the one before it, the SIGKILL above, was).
    assert.ok(errors.some((line) => line.includes('worker exited; starting another') && line.includes(`"pid":${hung}`) && line.includes('"failedStartsInARow":1')), errors.join('; '));
  } finally {
    if (hung !== undefined && alive(hung)) process.kill(hung, 'SIGKILL');
    await talus.close();
    await rm(dataDir, { recursive: true, force: true });
  }
});

test('SIGTERM while a key change waits for a starting worker that hangs: the primary exits promptly', { timeout: 120_000 }, async () => {
  const dataDir = await mkdtemp(join(tmpdir(), 'talus-workers-term-starting-'));
  const adminPort = await freePort();
  const server = await startServerProcess(dataDir, undefined, ['--workers', '2', '--console-address', `127.0.0.1:${adminPort}`]);
  const admin = new AdminClient({ endpoint: `http://127.0.0.1:${adminPort}`, accessKeyId: ACCESS_KEY_ID, secretAccessKey: SECRET_ACCESS_KEY });
  let hung: number | undefined;
  try {
    const user = await admin.call<{ accessKeyId: string }>('CreateUser', { name: 'carol', policy: 'readwrite' });
    const before = await childrenOf(server.child.pid!);
    process.kill(before[0]!, 'SIGKILL');
    for (let i = 0; i < 2_000 && hung === undefined; i++) {
      hung = (await childrenOf(server.child.pid!)).find((pid) => !before.includes(pid));
      if (hung === undefined) await new Promise((resolve) => setTimeout(resolve, 5));
    }
    assert.ok(hung !== undefined, 'no replacement was started');
    process.kill(hung, 'SIGSTOP'); // a start that hangs
    const change = admin.call('UpdateKey', { accessKeyId: user.accessKeyId, enabled: false }).then(() => 'answered', (error: unknown) => String(error));
    await new Promise((resolve) => setTimeout(resolve, 500));
    const termMs = Date.now();
    server.child.kill('SIGTERM');
    const exit = await server.exited;
    const tookMs = Date.now() - termMs;
    // Before: the admin listener drained the change, which waited WORKER_START_TIMEOUT_MS (30 s) for the hung start.
    assert.ok(tookMs < 15_000, `the primary exited ${tookMs} ms after SIGTERM`);
    assert.equal(exit.code, 0, server.output());
    // Killed at once, the starting worker answers the change by its exit.
    assert.equal(await change, 'answered');
  } finally {
    if (hung !== undefined && alive(hung)) process.kill(hung, 'SIGKILL');
    if (server.child.exitCode === null && server.child.signalCode === null) await server.stop();
    await rm(dataDir, { recursive: true, force: true });
  }
});
