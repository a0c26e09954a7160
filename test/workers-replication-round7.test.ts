/**
 * Metadata replication with several worker processes (the default on a
 * multi-core machine, issue 17): the replicator runs in the primary, and its
 * shared-memory ring of inline bodies holds only what the primary itself
 * wrote, so small objects written by the workers are read back from SQLite
 * when a segment is cut. `talus restore` then brings back every object, small
 * (inline) or placed, whichever worker wrote it.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { copyFile, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';
import Database from 'better-sqlite3';
import { lastChangeNumber } from '../src/replication/change-capture.ts';
import { CLI, PROJECT_ROOT, startServerProcess, type ServerProcess } from './helpers/process.ts';
import { signRequest, signedRequest } from './helpers/raw.ts';

const run = promisify(execFile);
const sha256 = (data: Uint8Array | string): string => createHash('sha256').update(data).digest('hex');
const LAG_MS = 250;
const BACKENDS = ['d0', 'd1', 'd2'];
/** Backends a replica must be on for restore to find it (a write quorum of the three). */
const REPLICA_QUORUM = 2;
/** How long the test waits for the replicas to catch up on a loaded machine. */
const SHIPPED_WITHIN_MS = 60_000;

/** The furthest position the complete segments and snapshots under a backend directory reach. */
async function replicatedPosition(backendDir: string): Promise<number> {
  let names: string[];
  try {
    names = await readdir(backendDir, { recursive: true });
  } catch {
    return 0;
  }
  let position = 0;
  for (const name of names) {
    const match = /(?:segment-\d{16}-(\d{16})|snapshot-(\d{16}))$/.exec(name);
    if (match !== null) position = Math.max(position, Number(match[1] ?? match[2]));
  }
  return position;
}

/** Waits until every change committed so far is in replicas on a quorum of the backends. */
async function waitForReplicas(root: string, dataDir: string): Promise<void> {
  const db = new Database(join(dataDir, 'meta.db'), { readonly: true, fileMustExist: true });
  const committed = lastChangeNumber(db);
  db.close();
  assert.ok(committed > 0);
  const deadline = Date.now() + SHIPPED_WITHIN_MS;
  for (;;) {
    const positions = await Promise.all(BACKENDS.map((name) => replicatedPosition(join(root, name))));
    if (positions.filter((position) => position >= committed).length >= REPLICA_QUORUM) return;
    assert.ok(Date.now() < deadline, `changes up to ${committed} committed; replicas reach ${positions.join(', ')}`);
    await new Promise((resolve) => setTimeout(resolve, LAG_MS));
  }
}

test('with --workers 2, objects written by either worker are replicated and restored, inline bodies included', { timeout: 240_000 }, async () => {
  const root = await mkdtemp(join(tmpdir(), 'talus-workers-replication-'));
  let server: ServerProcess | undefined;
  try {
    const configPath = join(root, 'talus.toml');
    await writeFile(configPath, [
      ...BACKENDS.map((name) => `[backends.${name}]\ntype = "directory"\npath = "${name}"`),
      '[placements.geo]\ntype = "erasure"\ndata_shards = 2\nparity_shards = 1\nbackends = ["d0", "d1", "d2"]\nblock_size = "64KiB"',
      '[defaults]\nplacement = "geo"',
      `[replication]\nlag = "${LAG_MS}ms"\nkey = "${randomBytes(32).toString('base64')}"`,
    ].join('\n\n'));
    const dataDir = join(root, 'data');
    server = await startServerProcess(dataDir, undefined, ['--config', configPath, '--workers', '2']);
    assert.match(server.output(), /\(2 worker processes\)/);
    assert.equal((await signedRequest(server.url, { method: 'PUT', path: '/kept' })).status, 200);
    // Every request on a new connection: node:cluster deals them to both workers.
    const expected = new Map<string, string>();
    const processes = new Set<string>();
    for (let i = 0; i < 24; i++) {
      // Mostly inline (≤ 16 KiB), some placed; some keys written twice, by whichever worker.
      const key = `k${i % 18}`;
      const body = randomBytes(i % 6 === 5 ? 100_000 : 200 + i * 300);
      const answer = await signedRequest(server.url, { method: 'PUT', path: `/kept/${key}`, body });
      assert.equal(answer.status, 200, answer.body);
      processes.add(String(answer.headers['x-amz-request-id']).slice(0, 6));
      expected.set(key, sha256(body));
    }
    assert.equal(processes.size, 2, 'both workers wrote');
    const savedSecretKey = join(root, 'saved.secret-key');
    await copyFile(join(dataDir, 'talus.secret-key'), savedSecretKey);
    await waitForReplicas(root, dataDir);
    await server.kill9();
    server = undefined;
    await rm(dataDir, { recursive: true, force: true });

    const restored = await run(process.execPath, ['--import', 'tsx', CLI, 'restore', dataDir, '--config', configPath, '--secret-key-file', savedSecretKey], { cwd: PROJECT_ROOT });
    assert.ok((JSON.parse(restored.stdout) as { position: number }).position > 0, restored.stderr);
    server = await startServerProcess(dataDir, undefined, ['--config', configPath]);
    for (const [key, digest] of expected) assert.equal(sha256(await getBytes(server.url, `/kept/${key}`)), digest, key);
  } finally {
    await server?.stop();
    await rm(root, { recursive: true, force: true });
  }
});

/** A signed GET's body as bytes. */
async function getBytes(baseUrl: string, path: string): Promise<Buffer> {
  const headers = await signRequest(baseUrl, { method: 'GET', path });
  const answer = await fetch(`${baseUrl}${path}`, { headers });
  assert.equal(answer.status, 200, `${path}: ${answer.status}`);
  return Buffer.from(await answer.arrayBuffer());
}
