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
import { copyFile, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { CLI, PROJECT_ROOT, startServerProcess, type ServerProcess } from './helpers/process.ts';
import { signRequest, signedRequest } from './helpers/raw.ts';

const run = promisify(execFile);
const sha256 = (data: Uint8Array | string): string => createHash('sha256').update(data).digest('hex');
const LAG_MS = 250;
/** The lag bound plus generous room on a loaded machine. */
const SETTLE_MS = LAG_MS + 2_750;

test('with --workers 2, objects written by either worker are replicated and restored, inline bodies included', { timeout: 240_000 }, async () => {
  const root = await mkdtemp(join(tmpdir(), 'talus-workers-replication-'));
  let server: ServerProcess | undefined;
  try {
    const configPath = join(root, 'talus.toml');
    await writeFile(configPath, [
      '[backends.d0]\ntype = "directory"\npath = "d0"',
      '[backends.d1]\ntype = "directory"\npath = "d1"',
      '[backends.d2]\ntype = "directory"\npath = "d2"',
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
    await new Promise((resolve) => setTimeout(resolve, SETTLE_MS));
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
