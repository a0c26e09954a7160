/**
 * A read whose PostgreSQL connection is lost answers 503 ServiceUnavailable,
 * as a write does, never 500 InternalError: the AWS SDKs retry a 503 with
 * backoff, and the read is safe to repeat on the next connection.
 *
 * Method, deterministic: the test's own session holds an ACCESS EXCLUSIVE
 * lock on a table the read needs, so the node's query waits on it inside
 * PostgreSQL; once pg_stat_activity shows the node's backend waiting on
 * that lock, the test terminates it (pg_terminate_backend: the connection
 * dies with the query in flight, as in a failover or a network cut) and
 * releases the lock. Each kind of read outside a transaction is cut this
 * way: GetObject, HeadObject, ListObjectsV2 and ListBuckets. Afterwards the
 * pool reconnects and the same reads succeed.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import postgres from 'postgres';
import { postgresUnavailable, startTestPostgres, type TestPostgres } from './helpers/postgres.ts';
import { startServerProcess, type ServerProcess } from './helpers/process.ts';
import { errorCode, signedRequest, type RawRequest, type RawResponse } from './helpers/raw.ts';

/** A loaded machine may take a while to get the node's query to the lock. */
const WAIT_FOR_BLOCKED_READ_MS = 20_000;

const skip = await postgresUnavailable();
if (skip !== undefined) console.log(`# skipped: ${skip}`);

let root: string;
let pg: TestPostgres | undefined;
let node: ServerProcess | undefined;
let admin: postgres.Sql | undefined;

before(async () => {
  if (skip !== undefined) return;
  root = await mkdtemp(join(tmpdir(), 'talus-pg-read-loss-'));
  pg = await startTestPostgres();
  process.env['TALUS_SECRET_KEY'] = randomBytes(32).toString('base64');
  await writeFile(join(root, 'talus.toml'), ['[backends.shared]', 'type = "directory"', `path = "${join(root, 'shared')}"`, '[placements.one]', 'type = "single"', 'backend = "shared"', '[defaults]', 'placement = "one"'].join('\n'));
  node = await startServerProcess(join(root, 'node'), undefined, ['--meta', pg.url, '--config', join(root, 'talus.toml')]);
  admin = postgres(pg.url, { max: 2, onnotice: () => undefined });
});

after(async () => {
  await admin?.end({ timeout: 1 });
  await node?.kill9().catch(() => undefined);
  await pg?.stop();
  if (root !== undefined) await rm(root, { recursive: true, force: true });
});

/**
 * Sends `request` while `table` is locked, terminates the node's backend
 * once it waits on that lock, and returns the node's answer (the lock is
 * released before returning, whatever happened).
 */
async function cutDuringRead(server: ServerProcess, table: string, request: RawRequest): Promise<RawResponse> {
  const sql = admin!;
  let release!: () => void;
  const released = new Promise<void>((resolve) => (release = resolve));
  let locked!: () => void;
  const lockTaken = new Promise<void>((resolve) => (locked = resolve));
  const holder = sql.begin(async (tx) => {
    await tx.unsafe(`LOCK TABLE ${table} IN ACCESS EXCLUSIVE MODE`);
    locked();
    await released;
  });
  try {
    await lockTaken;
    const answer = signedRequest(server.url, request);
    const deadline = Date.now() + WAIT_FOR_BLOCKED_READ_MS;
    for (;;) {
      const cut = await sql`SELECT count(*)::int AS n FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'talus' AND wait_event_type = 'Lock') AS t`;
      if (Number(cut[0]?.['n'] ?? 0) > 0) break;
      assert.ok(Date.now() < deadline, `the node's ${request.method} ${request.path} never waited on the lock on ${table}`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    return await answer;
  } finally {
    release();
    await holder;
  }
}

test('a read whose PostgreSQL connection is lost answers 503 ServiceUnavailable, not 500', { skip }, async () => {
  const server = node!;
  assert.equal((await signedRequest(server.url, { method: 'PUT', path: '/reads' })).status, 200);
  assert.equal((await signedRequest(server.url, { method: 'PUT', path: '/reads/key', body: 'the body' })).status, 200);

  const reads: { name: string; table: string; request: RawRequest; ok(response: RawResponse): boolean }[] = [
    { name: 'GetObject', table: 'versions', request: { method: 'GET', path: '/reads/key' }, ok: (response) => response.body === 'the body' },
    { name: 'HeadObject', table: 'versions', request: { method: 'HEAD', path: '/reads/key' }, ok: (response) => response.headers['content-length'] === '8' },
    { name: 'ListObjectsV2', table: 'versions', request: { method: 'GET', path: '/reads', query: { 'list-type': '2' } }, ok: (response) => response.body.includes('<Key>key</Key>') },
    { name: 'ListBuckets', table: 'buckets', request: { method: 'GET', path: '/' }, ok: (response) => response.body.includes('<Name>reads</Name>') },
  ];
  for (const read of reads) {
    const response = await cutDuringRead(server, read.table, read.request);
    assert.equal(response.status, 503, `${read.name} with its connection cut: ${response.status} ${response.body}`);
    if (read.request.method !== 'HEAD') assert.equal(errorCode(response), 'ServiceUnavailable', `${read.name}: ${response.body}`);
    // The pool connects again: the same read succeeds.
    const again = await signedRequest(server.url, read.request);
    assert.equal(again.status, 200, `${read.name} after the cut: ${again.status} ${again.body}`);
    assert.ok(read.ok(again), `${read.name} after the cut: ${again.body}`);
  }
  assert.doesNotMatch(server.output(), /InternalError/);
});
