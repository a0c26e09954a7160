/**
 * Fail closed: with --workers, a change to keys answers only once every
 * worker reloaded them. A worker that cannot confirm (here: stopped with
 * SIGSTOP) is killed after SYNC_TIMEOUT_MS instead of being left to accept
 * the disabled key when it wakes; its replacement reads the keys afresh.
 */
import assert from 'node:assert/strict';
import cluster, { Worker } from 'node:cluster';
import { readFile, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { AdminClient } from '../src/admin/client.ts';
import { SYNC_TIMEOUT_MS } from '../src/cluster.ts';
import { startTalus } from '../src/talus.ts';
import type { Logger } from '../src/util/logger.ts';
import { freePort, startServerProcess } from './helpers/process.ts';
import { Agent, request as httpRequest } from 'node:http';
import { errorCode, queryString, signRequest, signedRequest, type RawRequest, type RawResponse } from './helpers/raw.ts';
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

test('a worker that does not confirm a key change is killed; the key is refused by every worker after the answer', { timeout: 120_000 }, async () => {
  const dataDir = await mkdtemp(join(tmpdir(), 'talus-workers-sync-'));
  const adminPort = await freePort();
  const server = await startServerProcess(dataDir, undefined, ['--workers', '2', '--console-address', `127.0.0.1:${adminPort}`]);
  const admin = new AdminClient({ endpoint: `http://127.0.0.1:${adminPort}`, accessKeyId: ACCESS_KEY_ID, secretAccessKey: SECRET_ACCESS_KEY });
  let stopped: number | undefined;
  try {
    const user = await admin.call<{ accessKeyId: string; secretAccessKey: string }>('CreateUser', { name: 'carol', policy: 'readwrite' });
    const credentials = { accessKeyId: user.accessKeyId, secretAccessKey: user.secretAccessKey };
    const workers = await childrenOf(server.child.pid!);
    assert.equal(workers.length, 2, `worker processes: ${workers.join(', ')}`);
    stopped = workers[0]!;
    process.kill(stopped, 'SIGSTOP');
    const startedMs = Date.now();
    await admin.call('UpdateKey', { accessKeyId: credentials.accessKeyId, enabled: false });
    const tookMs = Date.now() - startedMs;
    assert.ok(tookMs >= SYNC_TIMEOUT_MS - 500, `the change answered after ${tookMs} ms, before the stopped worker's time was up`);
    assert.equal(alive(stopped), false, 'the stopped worker was killed');
    assert.match(server.output(), /workers did not apply a change in time; killing them/);
    // Killed for lateness, not a failed start: it does not bring the pool nearer to giving up.
    assert.match(server.output(), /worker exited; starting another.*"failedStartsInARow":0/);
    // Fresh connections go to the live worker and, once it listens, the replacement: none accepts the key.
    for (let i = 0; i < 12; i++) {
      const answer = await signedRequest(server.url, { method: 'GET', path: '/', credentials });
      assert.equal(answer.status, 403, answer.body);
      assert.equal(errorCode(answer), 'InvalidAccessKeyId');
    }
    stopped = undefined;
  } finally {
    if (stopped !== undefined && alive(stopped)) process.kill(stopped, 'SIGCONT');
    await server.stop();
    await rm(dataDir, { recursive: true, force: true });
  }
});

test('a primary whose event loop stalls past SYNC_TIMEOUT_MS during a key change kills no worker that answered in time', { timeout: 120_000 }, async () => {
  const dataDir = await mkdtemp(join(tmpdir(), 'talus-workers-stall-'));
  const errors: string[] = [];
  const logger: Logger = { info: () => undefined, warn: () => undefined, error: (message, fields) => errors.push(`${message} ${JSON.stringify(fields)}`) };
  const talus = await startTalus({
    dataDir, port: 0, address: '127.0.0.1', workers: 2, logger,
    rootAccessKeyId: ACCESS_KEY_ID, rootSecretAccessKey: SECRET_ACCESS_KEY,
    admin: { port: 0, address: '127.0.0.1' },
  });
  const killed: (number | undefined)[] = [];
  const onExit = (worker: Worker, _code: number, signal: string): void => {
    if (signal === 'SIGKILL') killed.push(worker.process.pid);
  };
  cluster.on('exit', onExit);
  const originalSend = Worker.prototype.send;
  try {
    const admin = new AdminClient({ endpoint: talus.adminUrl!, accessKeyId: ACCESS_KEY_ID, secretAccessKey: SECRET_ACCESS_KEY });
    const user = await admin.call<{ accessKeyId: string; secretAccessKey: string }>('CreateUser', { name: 'carol', policy: 'readwrite' });
    // Once the primary sent the reload, its event loop blocks past the timeout
    // (synchronous work, GC, a loaded machine) while the workers' answers queue up.
    let stalled = false;
    Worker.prototype.send = function (this: Worker, ...args: Parameters<Worker['send']>) {
      const sent = originalSend.apply(this, args);
      if ((args[0] as { kind?: string }).kind === 'reload-principals' && !stalled) {
        stalled = true;
        // Restored now: a change that hung could not leak the patch into later tests.
        Worker.prototype.send = originalSend;
        setImmediate(() => {
          const endMs = Date.now() + SYNC_TIMEOUT_MS + 1_000;
          while (Date.now() < endMs);
        });
      }
      return sent;
    } as Worker['send'];
    await admin.call('UpdateKey', { accessKeyId: user.accessKeyId, enabled: false });
    assert.equal(stalled, true);
    // A kill would show within moments of the answer.
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    assert.deepEqual(killed, [], `workers killed: ${errors.join('; ')}`);
    assert.ok(!errors.some((line) => line.includes('killing them')), errors.join('; '));
    const refused = await signedRequest(talus.url, { method: 'GET', path: '/', credentials: { accessKeyId: user.accessKeyId, secretAccessKey: user.secretAccessKey } });
    assert.equal(errorCode(refused), 'InvalidAccessKeyId');
  } finally {
    Worker.prototype.send = originalSend;
    cluster.off('exit', onExit);
    await talus.close();
    await rm(dataDir, { recursive: true, force: true });
  }
});

/** A signed request on `agent`'s one kept-alive connection: it reaches its worker without the primary (which deals out new connections). */
async function signedOn(agent: Agent, baseUrl: string, raw: RawRequest): Promise<RawResponse> {
  const url = new URL(baseUrl);
  const headers = await signRequest(baseUrl, raw);
  return new Promise((resolve, reject) => {
    const outgoing = httpRequest({ host: url.hostname, port: url.port, method: raw.method, path: `${raw.path}${queryString(raw.query)}`, headers, agent }, (response) => {
      const chunks: Buffer[] = [];
      response.on('data', (chunk: Buffer) => chunks.push(chunk));
      response.on('end', () => resolve({ status: response.statusCode ?? 0, headers: response.headers, body: Buffer.concat(chunks).toString('utf8') }));
      response.on('error', reject);
    });
    outgoing.on('error', reject);
    outgoing.end(typeof raw.body === 'string' ? raw.body : undefined);
  });
}

test('a bucket change through a worker answers even while the primary is stopped (its confirmation is waited for 2 x SYNC_TIMEOUT_MS at most)', { timeout: 120_000 }, async () => {
  const dataDir = await mkdtemp(join(tmpdir(), 'talus-workers-primary-stopped-'));
  const server = await startServerProcess(dataDir, undefined, ['--workers', '2']);
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  const primary = server.child.pid!;
  let stopped = false;
  try {
    assert.equal((await signedOn(agent, server.url, { method: 'PUT', path: '/tagged' })).status, 200);
    process.kill(primary, 'SIGSTOP');
    stopped = true;
    const tagging = '<Tagging><TagSet><Tag><Key>a</Key><Value>b</Value></Tag></TagSet></Tagging>';
    const change = signedOn(agent, server.url, { method: 'PUT', path: '/tagged', query: { tagging: '' }, body: tagging });
    const outcome = await Promise.race([change, new Promise<'hangs'>((resolve) => setTimeout(() => resolve('hangs'), 4 * SYNC_TIMEOUT_MS))]);
    assert.ok(outcome !== 'hangs', 'the bucket change waited on the stopped primary with no bound');
    assert.ok(outcome.status === 200 || outcome.status === 204, outcome.body);
    process.kill(primary, 'SIGCONT');
    stopped = false;
    // The change holds (it was committed), and the primary passes the notice on once it runs again.
    const read = await signedOn(agent, server.url, { method: 'GET', path: '/tagged', query: { tagging: '' } });
    assert.equal(read.status, 200, read.body);
    assert.match(read.body, /<Key>a<\/Key>/);
    assert.match(server.output(), /the primary did not confirm a bucket change in time; answering it anyway/);
  } finally {
    if (stopped) process.kill(primary, 'SIGCONT');
    agent.destroy();
    await server.stop();
    await rm(dataDir, { recursive: true, force: true });
  }
});

test('a key change made while a replacement worker starts answers only once that worker, too, reloaded its keys', { timeout: 120_000 }, async () => {
  const dataDir = await mkdtemp(join(tmpdir(), 'talus-workers-starting-'));
  const logger: Logger = { info: () => undefined, warn: () => undefined, error: () => undefined };
  const talus = await startTalus({
    dataDir, port: 0, address: '127.0.0.1', workers: 2, logger,
    rootAccessKeyId: ACCESS_KEY_ID, rootSecretAccessKey: SECRET_ACCESS_KEY,
    admin: { port: 0, address: '127.0.0.1' },
  });
  try {
    const admin = new AdminClient({ endpoint: talus.adminUrl!, accessKeyId: ACCESS_KEY_ID, secretAccessKey: SECRET_ACCESS_KEY });
    const user = await admin.call<{ accessKeyId: string; secretAccessKey: string }>('CreateUser', { name: 'carol', policy: 'readwrite' });
    const replacement = new Promise<Worker>((resolve) => cluster.once('fork', resolve));
    Object.values(cluster.workers ?? {}).find((worker) => worker !== undefined && !worker.isDead())!.process.kill('SIGKILL');
    const starting = await replacement;
    // The replacement is forked (it may read the keys before the change) and not yet ready.
    let readyMs: number | undefined;
    let askedToReload = false;
    starting.on('message', (message: { kind: string }) => {
      if (message.kind === 'ready') readyMs = Date.now();
    });
    const originalSend = starting.send.bind(starting);
    starting.send = ((...args: Parameters<Worker['send']>) => {
      if ((args[0] as { kind?: string; id?: number }).kind === 'reload-principals') askedToReload = true;
      return originalSend(...args);
    }) as Worker['send'];
    assert.equal(readyMs, undefined);
    await admin.call('UpdateKey', { accessKeyId: user.accessKeyId, enabled: false });
    const answeredMs = Date.now();
    assert.ok(readyMs !== undefined && readyMs <= answeredMs, 'the change answered before the starting worker was ready');
    assert.equal(askedToReload, true, 'the starting worker was asked to reload the keys');
    // Fresh connections go to both workers in turn: neither accepts the key.
    for (let i = 0; i < 6; i++) {
      const answer = await signedRequest(talus.url, { method: 'GET', path: '/', credentials: { accessKeyId: user.accessKeyId, secretAccessKey: user.secretAccessKey } });
      assert.equal(errorCode(answer), 'InvalidAccessKeyId');
    }
  } finally {
    await talus.close();
    await rm(dataDir, { recursive: true, force: true });
  }
});
