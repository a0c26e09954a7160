/**
 * `talus server` serves from one process per core by default (issue 17,
 * "Choose the default"; the count is worker-count.ts's autoWorkerCount), and,
 * with two workers, what several processes share is right the
 * moment a change is answered: a key disabled, re-enabled or deleted, a
 * user's policy changed through the admin API (the primary's), and a
 * bucket's access settings, CORS rules or quota changed through any
 * process, hold on every
 * worker for the very next request, also on connections the workers
 * already hold open (keep-alive: no new connection passes through the
 * primary first).
 */
import assert from 'node:assert/strict';
import { Agent, request as httpRequest } from 'node:http';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { AdminClient } from '../src/admin/client.ts';
import { autoWorkerCount, readCgroupCpuLimit } from '../src/worker-count.ts';
import { freePort, startServerProcess, type ServerProcess } from './helpers/process.ts';
import { errorCode, queryString, signRequest, type RawRequest, type RawResponse } from './helpers/raw.ts';
import { ACCESS_KEY_ID, SECRET_ACCESS_KEY } from './helpers/talus.ts';

const ROOT = { accessKeyId: ACCESS_KEY_ID, secretAccessKey: SECRET_ACCESS_KEY };
/** Keep-alive connections opened per worker to find one held by each (node:cluster deals them round-robin). */
const CONNECTIONS_TRIED_PER_WORKER = 4;
/** The change-propagation tests' workers: two show any process left behind, whatever the machine's cores. */
const WORKERS = 2;
/** Rounds of change-then-request: a stale worker would show in some. */
const ROUNDS = 6;

/** One kept-alive connection (an agent with one socket) and the worker process that holds it. */
interface PinnedConnection {
  agent: Agent;
  /** The per-process prefix of the request IDs its answers carry. */
  process: string;
}

function sendOn(agent: Agent, baseUrl: string, method: string, pathAndQuery: string, headers: Record<string, string>, body?: string): Promise<RawResponse> {
  const url = new URL(baseUrl);
  return new Promise((resolve, reject) => {
    const outgoing = httpRequest({ host: url.hostname, port: url.port, method, path: pathAndQuery, headers, agent }, (response) => {
      const chunks: Buffer[] = [];
      response.on('data', (chunk: Buffer) => chunks.push(chunk));
      response.on('end', () => resolve({ status: response.statusCode ?? 0, headers: response.headers, body: Buffer.concat(chunks).toString('utf8') }));
      response.on('error', reject);
    });
    outgoing.on('error', reject);
    outgoing.end(body);
  });
}

async function signedOn(agent: Agent, baseUrl: string, raw: RawRequest): Promise<RawResponse> {
  return sendOn(agent, baseUrl, raw.method, `${raw.path}${queryString(raw.query)}`, await signRequest(baseUrl, raw), typeof raw.body === 'string' ? raw.body : undefined);
}

const processOf = (response: RawResponse): string => String(response.headers['x-amz-request-id']).slice(0, 6);

/** One kept-alive connection held by each worker process. */
async function connectionPerWorker(baseUrl: string, workers: number): Promise<PinnedConnection[]> {
  const byProcess = new Map<string, PinnedConnection>();
  const spare: Agent[] = [];
  for (let i = 0; i < CONNECTIONS_TRIED_PER_WORKER * workers && byProcess.size < workers; i++) {
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    const answer = await signedOn(agent, baseUrl, { method: 'GET', path: '/' });
    assert.equal(answer.status, 200, answer.body);
    const process = processOf(answer);
    if (byProcess.has(process)) spare.push(agent);
    else byProcess.set(process, { agent, process });
  }
  for (const agent of spare) agent.destroy();
  assert.equal(byProcess.size, workers, `connections reached ${byProcess.size} of ${workers} workers`);
  return [...byProcess.values()];
}

test('talus server without --workers serves from one process per core (within the CPU quota, at most 8), and a scrape counts them all', { timeout: 120_000 }, async () => {
  const expected = autoWorkerCount(availableParallelism(), readCgroupCpuLimit());
  const dataDir = await mkdtemp(join(tmpdir(), 'talus-workers-default-'));
  const adminPort = await freePort();
  const adminUrl = `http://127.0.0.1:${adminPort}`;
  // No --workers: the default.
  const server = await startServerProcess(dataDir, undefined, ['--console-address', `127.0.0.1:${adminPort}`, '--metrics-public'], { workersDefault: true });
  let pinned: PinnedConnection[] = [];
  try {
    const admin = new AdminClient({ endpoint: adminUrl, ...ROOT });
    if (expected < 2) {
      assert.doesNotMatch(server.output(), /worker processes/);
      return;
    }
    assert.match(server.output(), new RegExp(`\\(${expected} worker processes\\)`));
    assert.equal((await admin.call<{ workers: number }>('GetServerInfo')).workers, expected);
    pinned = await connectionPerWorker(server.url, expected);
    // Each worker answers the health probes itself.
    for (const { agent, process } of pinned) {
      for (const path of ['/minio/health/live', '/minio/health/ready']) assert.equal((await sendOn(agent, server.url, 'GET', path, {})).status, 200, `${process} ${path}`);
    }
    // Every worker answered requests; the primary's scrape adds up all of theirs.
    const scrape = await (await fetch(`${adminUrl}/metrics`)).text();
    const listBuckets = [...scrape.matchAll(/^talus_s3_requests_total\{[^}]*operation="ListBuckets"[^}]*\} (\d+)/gm)].reduce((sum, match) => sum + Number(match[1]), 0);
    assert.ok(listBuckets >= expected, `ListBuckets counted ${listBuckets} times in the scrape, expected at least ${expected}:\n${scrape.split('\n').filter((line) => line.includes('ListBuckets')).join('\n')}`);
  } finally {
    for (const connection of pinned) connection.agent.destroy();
    await server.stop();
    await rm(dataDir, { recursive: true, force: true });
  }
});

describe('with two workers, changes hold on every worker at once', { timeout: 180_000 }, () => {
  let dataDir: string;
  let server: ServerProcess;
  let admin: AdminClient;
  let pinned: PinnedConnection[] = [];

  before(async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'talus-workers-two-'));
    const adminPort = await freePort();
    server = await startServerProcess(dataDir, undefined, ['--workers', String(WORKERS), '--console-address', `127.0.0.1:${adminPort}`]);
    admin = new AdminClient({ endpoint: `http://127.0.0.1:${adminPort}`, ...ROOT });
    pinned = await connectionPerWorker(server.url, WORKERS);
  });
  after(async () => {
    for (const connection of pinned) connection.agent.destroy();
    await server?.stop();
    if (dataDir !== undefined) await rm(dataDir, { recursive: true, force: true });
  });

  test('a key disabled, enabled again or deleted through the admin API is refused or accepted by every worker at once', async () => {
    const user = await admin.call<{ accessKeyId: string; secretAccessKey: string }>('CreateUser', { name: 'alice', policy: 'readwrite' });
    const credentials = { accessKeyId: user.accessKeyId, secretAccessKey: user.secretAccessKey };
    const outcomes = async (): Promise<string[]> => Promise.all(pinned.map(async ({ agent, process }) => {
      const answer = await signedOn(agent, server.url, { method: 'GET', path: '/', credentials });
      return `${process}: ${answer.status === 200 ? 'accepted' : errorCode(answer)}`;
    }));
    const all = (outcome: string): string[] => pinned.map(({ process }) => `${process}: ${outcome}`);
    assert.deepEqual(await outcomes(), all('accepted'));
    for (let round = 0; round < ROUNDS; round++) {
      await admin.call('UpdateKey', { accessKeyId: credentials.accessKeyId, enabled: false });
      assert.deepEqual(await outcomes(), all('InvalidAccessKeyId'), `round ${round}: disabled`);
      await admin.call('UpdateKey', { accessKeyId: credentials.accessKeyId, enabled: true });
      assert.deepEqual(await outcomes(), all('accepted'), `round ${round}: enabled again`);
    }
    await admin.call('DeleteKey', { accessKeyId: credentials.accessKeyId });
    assert.deepEqual(await outcomes(), all('InvalidAccessKeyId'), 'deleted');
  });

  test("a user's policy changed through the admin API binds every worker at once", async () => {
    assert.equal((await signedOn(pinned[0]!.agent, server.url, { method: 'PUT', path: '/policies' })).status, 200);
    assert.equal((await signedOn(pinned[0]!.agent, server.url, { method: 'PUT', path: '/policies/doc', body: 'text' })).status, 200);
    const user = await admin.call<{ accessKeyId: string; secretAccessKey: string }>('CreateUser', { name: 'bob', policy: 'readonly' });
    const credentials = { accessKeyId: user.accessKeyId, secretAccessKey: user.secretAccessKey };
    const statuses = async (): Promise<number[]> => Promise.all(pinned.map(async ({ agent }) => (await signedOn(agent, server.url, { method: 'GET', path: '/policies/doc', credentials })).status));
    const all = (status: number): number[] => pinned.map(() => status);
    assert.deepEqual(await statuses(), all(200));
    for (let round = 0; round < ROUNDS; round++) {
      await admin.call('SetUserPolicy', { name: 'bob', policy: 'writeonly' });
      assert.deepEqual(await statuses(), all(403), `round ${round}: write-only`);
      await admin.call('SetUserPolicy', { name: 'bob', policy: 'readonly' });
      assert.deepEqual(await statuses(), all(200), `round ${round}: read-only again`);
    }
  });

  test('a bucket policy put or deleted through one worker holds on the others for the next request on their open connections', async () => {
    const [first, second] = pinned as [PinnedConnection, PinnedConnection];
    assert.equal((await signedOn(first.agent, server.url, { method: 'PUT', path: '/shared' })).status, 200);
    assert.equal((await signedOn(first.agent, server.url, { method: 'PUT', path: '/shared/doc', body: 'public soon' })).status, 200);
    const policy = JSON.stringify({ Version: '2012-10-17', Statement: [{ Effect: 'Allow', Principal: '*', Action: 's3:GetObject', Resource: 'arn:aws:s3:::shared/*' }] });
    const anonymous = async (): Promise<number[]> => Promise.all(pinned.map(async ({ agent }) => (await sendOn(agent, server.url, 'GET', '/shared/doc', {})).status));
    // Every worker caches the bucket and its compiled (empty) settings first.
    assert.deepEqual(await anonymous(), pinned.map(() => 403));
    for (let round = 0; round < ROUNDS; round++) {
      // Changed through one worker, then through the other.
      const changer = round % 2 === 0 ? first : second;
      const put = await signedOn(changer.agent, server.url, { method: 'PUT', path: '/shared', query: { policy: '' }, body: policy });
      assert.equal(put.status, 204, put.body);
      assert.deepEqual(await anonymous(), pinned.map(() => 200), `round ${round}: public on every worker`);
      assert.equal((await signedOn(changer.agent, server.url, { method: 'DELETE', path: '/shared', query: { policy: '' } })).status, 204);
      assert.deepEqual(await anonymous(), pinned.map(() => 403), `round ${round}: private again on every worker`);
    }
  });

  test('a bucket made public and private through the admin API holds on every worker at once', async () => {
    assert.equal((await signedOn(pinned[0]!.agent, server.url, { method: 'PUT', path: '/by-admin' })).status, 200);
    assert.equal((await signedOn(pinned[0]!.agent, server.url, { method: 'PUT', path: '/by-admin/doc', body: 'x' })).status, 200);
    const anonymous = async (): Promise<number[]> => Promise.all(pinned.map(async ({ agent }) => (await sendOn(agent, server.url, 'GET', '/by-admin/doc', {})).status));
    assert.deepEqual(await anonymous(), pinned.map(() => 403));
    for (let round = 0; round < ROUNDS; round++) {
      await admin.call('SetBucketPublicRead', { name: 'by-admin', publicRead: true });
      assert.deepEqual(await anonymous(), pinned.map(() => 200), `round ${round}: public`);
      await admin.call('SetBucketPublicRead', { name: 'by-admin', publicRead: false });
      assert.deepEqual(await anonymous(), pinned.map(() => 403), `round ${round}: private`);
    }
  });

  test('a CORS configuration put or deleted through one worker answers preflights on every worker at once', async () => {
    const [first, second] = pinned as [PinnedConnection, PinnedConnection];
    assert.equal((await signedOn(first.agent, server.url, { method: 'PUT', path: '/crossed' })).status, 200);
    const rules = '<CORSConfiguration><CORSRule><AllowedOrigin>https://app.example</AllowedOrigin><AllowedMethod>GET</AllowedMethod></CORSRule></CORSConfiguration>';
    const preflights = async (): Promise<number[]> => Promise.all(pinned.map(async ({ agent }) =>
      (await sendOn(agent, server.url, 'OPTIONS', '/crossed/doc', { origin: 'https://app.example', 'access-control-request-method': 'GET' })).status));
    assert.deepEqual(await preflights(), pinned.map(() => 403));
    for (let round = 0; round < ROUNDS; round++) {
      const changer = round % 2 === 0 ? first : second;
      assert.equal((await signedOn(changer.agent, server.url, { method: 'PUT', path: '/crossed', query: { cors: '' }, body: rules })).status, 200);
      assert.deepEqual(await preflights(), pinned.map(() => 200), `round ${round}: allowed on every worker`);
      assert.equal((await signedOn(changer.agent, server.url, { method: 'DELETE', path: '/crossed', query: { cors: '' } })).status, 204);
      assert.deepEqual(await preflights(), pinned.map(() => 403), `round ${round}: refused again on every worker`);
    }
  });

  test('a bucket quota set through the admin API counts the writes of every worker', async () => {
    assert.equal((await signedOn(pinned[0]!.agent, server.url, { method: 'PUT', path: '/limited' })).status, 200);
    // Every worker caches the bucket, without a quota, first.
    for (const { agent } of pinned) assert.equal((await signedOn(agent, server.url, { method: 'PUT', path: '/limited/warm', body: 'x' })).status, 200);
    await admin.call('SetBucketQuota', { bucket: 'limited', maxObjects: pinned.length + 1 });
    // One object is there: each worker adds one, and the last one more fills the quota.
    for (const [index, { agent }] of pinned.entries()) assert.equal((await signedOn(agent, server.url, { method: 'PUT', path: `/limited/k${index}`, body: 'x' })).status, 200);
    for (const { agent, process } of pinned) {
      const refused = await signedOn(agent, server.url, { method: 'PUT', path: '/limited/one-too-many', body: 'x' });
      assert.equal(refused.status, 400, `${process}: ${refused.body}`);
      assert.equal(errorCode(refused), 'XMinioAdminBucketQuotaExceeded');
    }
    assert.deepEqual(await admin.call('GetBucketQuota', { bucket: 'limited' }), { maxBytes: null, maxObjects: pinned.length + 1, usedBytes: pinned.length + 1, usedObjects: pinned.length + 1 });
  });

  test("every worker's refused requests reach the one audit log, whole", async () => {
    // A private bucket of its own: anonymous reads are refused.
    assert.equal((await signedOn(pinned[0]!.agent, server.url, { method: 'PUT', path: '/audited' })).status, 200);
    const refusedIds: string[] = [];
    for (const { agent } of pinned) {
      const refused = await sendOn(agent, server.url, 'GET', `/audited/audited-${refusedIds.length}`, {});
      assert.equal(refused.status, 403);
      refusedIds.push(String(refused.headers['x-amz-request-id']));
    }
    // A worker's entry travels to the primary over IPC: it may land a moment after the refusal is answered.
    type Entry = { requestId: string; kind: string; key?: string };
    const query = async (): Promise<Entry[]> => (await admin.call<{ entries: Entry[] }>('QueryAuditLog', { kind: 's3-denied', limit: 1000 })).entries;
    let entries = await query();
    for (let attempt = 0; attempt < 25 && !refusedIds.every((id) => entries.some((entry) => entry.requestId === id)); attempt++) {
      await new Promise((resolve) => setTimeout(resolve, 200));
      entries = await query();
    }
    for (const [index, requestId] of refusedIds.entries()) {
      const entry = entries.find((candidate) => candidate.requestId === requestId);
      assert.ok(entry !== undefined, `the refusal ${requestId} (worker ${pinned[index]!.process}) is in the audit log`);
      assert.equal(entry.key, `audited-${index}`);
    }
  });
});

test('the default is one process where the configuration allows no other ([replication] mode = "quorum")', { timeout: 90_000 }, async () => {
  const root = await mkdtemp(join(tmpdir(), 'talus-workers-default-quorum-'));
  const configPath = join(root, 'talus.toml');
  await writeFile(configPath, [
    ...[0, 1, 2].map((i) => `[backends.d${i}]\ntype = "directory"\npath = "d${i}"`),
    '[placements.geo]\ntype = "erasure"\ndata_shards = 2\nparity_shards = 1\nbackends = ["d0", "d1", "d2"]',
    '[defaults]\nplacement = "geo"',
    '[replication]\nlag = "10min"\nmode = "quorum"',
  ].join('\n\n'));
  // Started with an explicit --workers 2 it is refused, saying why; without it, it must start.
  const server = await startServerProcess(join(root, 'data'), undefined, ['--config', configPath], { workersDefault: true });
  try {
    assert.doesNotMatch(server.output(), /worker processes/);
    assert.equal((await signedOn(new Agent(), server.url, { method: 'PUT', path: '/quorum' })).status, 200);
  } finally {
    await server.stop();
    await rm(root, { recursive: true, force: true });
  }
});
