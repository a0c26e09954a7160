/**
 * A node on PostgreSQL survives its connections being cut under load. While
 * writers PUT through one node (`talus server --meta postgres://…`), another
 * session terminates every backend of that node (pg_terminate_backend),
 * again and again, so connections close with queries in flight and writes
 * scheduled. The node's process must stay up, answer each request (an error
 * for the ones whose connection was cut), serve every write it acknowledged,
 * and accept writes again once the cuts stop.
 *
 * postgres (porsager) 3.4.x failed this: a write scheduled on a connection
 * that closed threw an uncatchable TypeError (… reading 'write') from a
 * setImmediate and killed the process (porsager/postgres#1208, #1154,
 * #1066). 4.x rewrote the connection layer; this is the regression test.
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
import { signedRequest } from './helpers/raw.ts';

const WRITERS = 8;
/** Backends of the node to terminate; 3.4.10 died within its first 12 to 16. */
const CUTS = 40;
const CUT_INTERVAL_MS = 15;
/** Many rounds find the pool still reconnecting and cut nothing: the cutting goes on until CUTS or this long. */
const CUTTING_TIMEOUT_MS = 60_000;
/** After the cuts the pool reconnects; a loaded machine may take a while. */
const RECOVERY_TIMEOUT_MS = 30_000;

const skip = await postgresUnavailable();
if (skip !== undefined) console.log(`# skipped: ${skip}`);

let root: string;
let pg: TestPostgres | undefined;
let node: ServerProcess | undefined;

before(async () => {
  if (skip !== undefined) return;
  root = await mkdtemp(join(tmpdir(), 'talus-pg-cuts-'));
  pg = await startTestPostgres();
  process.env['TALUS_SECRET_KEY'] = randomBytes(32).toString('base64');
  await writeFile(join(root, 'talus.toml'), ['[backends.shared]', 'type = "directory"', `path = "${join(root, 'shared')}"`, '[placements.one]', 'type = "single"', 'backend = "shared"', '[defaults]', 'placement = "one"'].join('\n'));
  node = await startServerProcess(join(root, 'node'), undefined, ['--meta', pg.url, '--config', join(root, 'talus.toml')]);
});

after(async () => {
  await node?.kill9().catch(() => undefined);
  await pg?.stop();
  if (root !== undefined) await rm(root, { recursive: true, force: true });
});

function alive(server: ServerProcess): boolean {
  return server.child.exitCode === null && server.child.signalCode === null;
}

test('a node survives its PostgreSQL connections being terminated again and again under writes', { skip }, async () => {
  const server = node!;
  assert.equal((await signedRequest(server.url, { method: 'PUT', path: '/cuts' })).status, 200);
  const killer = postgres(pg!.url, { max: 1, onnotice: () => undefined });
  const acknowledged = new Map<string, string>();
  const statuses = new Map<number, number>();
  const errorCodes = new Set<string>(); // the S3 error codes answered, for the message
  let stop = false;
  try {
    const writers = Array.from({ length: WRITERS }, async (_, w) => {
      for (let i = 0; !stop; i++) {
        const key = `w${w}-${i}`;
        const body = randomBytes(i % 4 === 0 ? 20_000 : 300).toString('hex'); // placed and inline
        const response = await signedRequest(server.url, { method: 'PUT', path: `/cuts/${key}`, body }).catch(() => undefined);
        if (response === undefined) return; // the process is gone: asserted below
        statuses.set(response.status, (statuses.get(response.status) ?? 0) + 1);
        if (response.status === 200) acknowledged.set(key, body);
        else errorCodes.add(/<Code>(\w+)<\/Code>/.exec(response.body)?.[1] ?? `${response.status} without a code`);
      }
    });
    let terminated = 0;
    const cuttingDeadline = Date.now() + CUTTING_TIMEOUT_MS;
    while (terminated < CUTS && alive(server) && Date.now() < cuttingDeadline) {
      await new Promise((resolve) => setTimeout(resolve, CUT_INTERVAL_MS));
      const cut = await killer`SELECT count(*)::int AS n FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'talus') AS t`;
      terminated += Number(cut[0]?.['n'] ?? 0);
    }
    stop = true;
    await Promise.all(writers);
    const summary = `terminated ${terminated} backends; PUT statuses ${JSON.stringify(Object.fromEntries(statuses))}; error codes ${[...errorCodes].join(', ')}`;
    assert.ok(alive(server), `the node died (${summary}):\n${server.output().slice(-3000)}`);
    assert.doesNotMatch(server.output(), /reading 'write'/);
    assert.ok(terminated >= CUTS, `the cuts must have hit the node's connections: ${summary}\n${server.output().slice(-3000)}`);
    console.log(`# ${summary}`);
  } finally {
    stop = true;
    await killer.end({ timeout: 1 });
  }

  // The pool reconnects: writes succeed again, and every acknowledged write is served.
  const deadline = Date.now() + RECOVERY_TIMEOUT_MS;
  for (;;) {
    const response = await signedRequest(server.url, { method: 'PUT', path: '/cuts/after', body: 'after the cuts' });
    if (response.status === 200) break;
    assert.ok(Date.now() < deadline, `no successful PUT within ${RECOVERY_TIMEOUT_MS} ms after the cuts: ${response.status} ${response.body}`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  assert.equal((await signedRequest(server.url, { method: 'GET', path: '/cuts/after' })).body, 'after the cuts');
  for (const [key, body] of acknowledged) {
    const got = await signedRequest(server.url, { method: 'GET', path: `/cuts/${key}` });
    assert.equal(got.status, 200, key);
    assert.equal(got.body, body, key);
  }
  assert.ok(alive(server));
});
