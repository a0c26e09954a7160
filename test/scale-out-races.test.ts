/**
 * Scale-out on PostgreSQL, across processes: three Talus nodes (`talus
 * server --meta postgres://…`) on one private PostgreSQL and one shared
 * directory backend. 32 concurrent If-None-Match: * PUTs of one key, spread
 * over the nodes, give exactly one 200 and 31 412s, and the winner's bytes
 * are what every node serves; the same for If-Match. Any node serves what
 * another wrote (small objects inline in the database, large ones placed on
 * the shared backend), a user added by the CLI against the database signs
 * in on every node, and a node refuses to start on the local placement.
 * Then kill -9 of a node in the middle of writes: every acknowledged write
 * is served by the surviving nodes.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { after, before, test } from 'node:test';
import { postgresUnavailable, startTestPostgres, type TestPostgres } from './helpers/postgres.ts';
import { CLI, PROJECT_ROOT, startServerProcess, type ServerProcess } from './helpers/process.ts';
import { clientFor, parseCredentials, talusCli, waitForAuth } from './helpers/principals.ts';
import { signedRequest } from './helpers/raw.ts';

const run = promisify(execFile);
const NODES = 3;
const RACERS = 32;
const skip = await postgresUnavailable();
if (skip !== undefined) console.log(`# skipped: ${skip}`);

let root: string;
let pg: TestPostgres | undefined;
let nodes: ServerProcess[] = [];

function nodeArgs(): string[] {
  return ['--meta', pg!.url, '--config', join(root, 'talus.toml')];
}

before(async () => {
  if (skip !== undefined) return;
  root = await mkdtemp(join(tmpdir(), 'talus-scale-out-'));
  pg = await startTestPostgres();
  // Every node must open the same secrets: one key for all (docs/SCALE-OUT.md).
  process.env['TALUS_SECRET_KEY'] = randomBytes(32).toString('base64');
  await writeFile(join(root, 'talus.toml'), ['[backends.shared]', 'type = "directory"', `path = "${join(root, 'shared')}"`, '[placements.one]', 'type = "single"', 'backend = "shared"', '[defaults]', 'placement = "one"'].join('\n'));
  // One at a time: the first creates the schema and root's key, the others find them.
  for (let i = 0; i < NODES; i++) nodes.push(await startServerProcess(join(root, `node${i}`), undefined, nodeArgs()));
});

after(async () => {
  await Promise.all(nodes.map((node) => node.kill9().catch(() => undefined)));
  await pg?.stop();
  if (root !== undefined) await rm(root, { recursive: true, force: true });
});

test('a node refuses the local placement with --meta', { skip }, async () => {
  await writeFile(join(root, 'local.toml'), '');
  for (const extra of [['--config', join(root, 'local.toml')]]) {
    const failed = await run(process.execPath, ['--import', 'tsx', CLI, 'server', join(root, 'refused'), '--port', '0', '--meta', pg!.url, ...extra], { cwd: PROJECT_ROOT }).then(
      () => undefined,
      (error: { code: number; stderr: string }) => error,
    );
    assert.ok(failed !== undefined, 'the server must not start');
    assert.equal(failed.code, 1);
    assert.match(failed.stderr, /every blob must live on shared backends/);
  }
});

test('any node serves what another wrote; bucket creation is seen everywhere', { skip }, async () => {
  assert.equal((await signedRequest(nodes[0]!.url, { method: 'PUT', path: '/shared' })).status, 200);
  const small = 'small object, inline in PostgreSQL';
  const large = randomBytes(150_000).toString('hex');
  assert.equal((await signedRequest(nodes[1]!.url, { method: 'PUT', path: '/shared/small', body: small })).status, 200);
  assert.equal((await signedRequest(nodes[2]!.url, { method: 'PUT', path: '/shared/dir/large', body: large })).status, 200);
  for (const node of nodes) {
    const got = await signedRequest(node.url, { method: 'GET', path: '/shared/small' });
    assert.equal(got.body, small);
    assert.equal((await signedRequest(node.url, { method: 'GET', path: '/shared/dir/large' })).body, large);
    const listing = (await signedRequest(node.url, { method: 'GET', path: '/shared', query: { 'list-type': '2', delimiter: '/' } })).body;
    assert.match(listing, /<Key>small<\/Key>/);
    assert.match(listing, /<Prefix>dir\/<\/Prefix>/);
  }
});

test('a user added with TALUS_META=postgres://… talus users add works on every node', { skip }, async () => {
  const credentials = parseCredentials(await talusCli(['users', 'add', 'carol', join(root, 'cli')], { TALUS_META: pg!.url }));
  for (const node of nodes) {
    const client = clientFor(node.url, credentials);
    try {
      assert.equal(await waitForAuth(client, 'accepted'), 'accepted');
    } finally {
      client.destroy();
    }
  }
});

test(`${RACERS} concurrent If-None-Match: * PUTs of one key over ${NODES} nodes: exactly one wins; the same for If-Match`, { skip }, async () => {
  const bodies = Array.from({ length: RACERS }, (_, i) => `racer ${i} ${randomBytes(8).toString('hex')}`);
  const created = await Promise.all(bodies.map((body, i) =>
    signedRequest(nodes[i % NODES]!.url, { method: 'PUT', path: '/shared/race', headers: { 'if-none-match': '*' }, body })));
  const statuses = created.map((response) => response.status);
  assert.equal(statuses.filter((status) => status === 200).length, 1, `statuses: ${statuses.join(' ')}`);
  // Losers get 412, or 409 ConditionalRequestConflict when the winner committed while they were in flight (AWS's answer).
  assert.equal(statuses.filter((status) => status === 412 || status === 409).length, RACERS - 1, `statuses: ${statuses.join(' ')}`);
  const winner = bodies[statuses.indexOf(200)]!;
  for (const node of nodes) assert.equal((await signedRequest(node.url, { method: 'GET', path: '/shared/race' })).body, winner);

  const etag = created[statuses.indexOf(200)]!.headers['etag'];
  assert.ok(typeof etag === 'string');
  const replaced = await Promise.all(bodies.map((body, i) =>
    signedRequest(nodes[(i + 1) % NODES]!.url, { method: 'PUT', path: '/shared/race', headers: { 'if-match': etag }, body: `${body} again` })));
  const again = replaced.map((response) => response.status);
  assert.equal(again.filter((status) => status === 200).length, 1, `statuses: ${again.join(' ')}`);
  assert.equal(again.filter((status) => status === 412 || status === 409).length, RACERS - 1, `statuses: ${again.join(' ')}`);
  const second = `${bodies[again.indexOf(200)]!} again`;
  for (const node of nodes) assert.equal((await signedRequest(node.url, { method: 'GET', path: '/shared/race' })).body, second);
});

test('kill -9 of a node mid-writes: every acknowledged write is served by the others', { skip }, async () => {
  const victim = nodes[0]!;
  const acknowledged = new Map<string, string>();
  let stop = false;
  const writers = Array.from({ length: 6 }, async (_, w) => {
    for (let i = 0; !stop; i++) {
      const key = `crash/w${w}-${i}`;
      const body = randomBytes(i % 2 === 0 ? 500 : 20_000).toString('hex'); // inline and placed
      const response = await signedRequest(victim.url, { method: 'PUT', path: `/shared/${key}`, body }).catch(() => undefined);
      if (response === undefined) return;
      if (response.status === 200) acknowledged.set(key, body);
    }
  });
  while (acknowledged.size < 20) await new Promise((resolve) => setTimeout(resolve, 20));
  await victim.kill9();
  stop = true;
  await Promise.all(writers);
  assert.ok(acknowledged.size >= 20);
  for (const [key, body] of acknowledged) {
    const got = await signedRequest(nodes[1 + (key.length % 2)]!.url, { method: 'GET', path: `/shared/${key}` });
    assert.equal(got.status, 200, key);
    assert.equal(got.body, body, key);
  }
  // The node comes back on its data directory and serves them too.
  nodes[0] = await startServerProcess(victim.dataDir, undefined, nodeArgs());
  const [someKey, someBody] = [...acknowledged][0]!;
  assert.equal((await signedRequest(nodes[0].url, { method: 'GET', path: `/shared/${someKey}` })).body, someBody);
});
