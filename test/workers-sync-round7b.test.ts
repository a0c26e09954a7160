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
