/**
 * Fail closed: with --workers, a change to keys answers only once every
 * worker reloaded them. A worker that cannot confirm (here: stopped with
 * SIGSTOP) is killed after SYNC_TIMEOUT_MS instead of being left to accept
 * the disabled key when it wakes; its replacement reads the keys afresh.
 */
import assert from 'node:assert/strict';
import { readFile, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { AdminClient } from '../src/admin/client.ts';
import { SYNC_TIMEOUT_MS } from '../src/cluster.ts';
import { freePort, startServerProcess } from './helpers/process.ts';
import { errorCode, signedRequest } from './helpers/raw.ts';
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
