/**
 * The data-directory lock is an OS lock the kernel releases when its holder
 * dies (src/data-dir-lock.ts), not a PID in a file:
 * - a second server in another PID namespace (a second container on the same
 *   volume) is refused, exits non-zero, and the first keeps serving;
 * - many processes racing for a lock whose holder was SIGKILLed: exactly one wins;
 * - a server SIGKILLed mid-life leaves a lock the next server takes over;
 * - a PID-file lock of an older Talus is refused with what to do.
 */
import { CreateBucketCommand, GetObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { CLI, freePort, PROJECT_ROOT, startServerProcess, withTimeout } from './helpers/process.ts';
import { makeClient } from './helpers/talus.ts';
import { lockDataDirectory } from '../src/data-dir-lock.ts';

const RACER = join(PROJECT_ROOT, 'test', 'fixtures', 'lock-racer.ts');
const RACERS = 20;

interface Racer {
  child: ChildProcess;
  output(): string;
  ready: Promise<void>;
  outcome: Promise<string>;
  exited: Promise<number | null>;
}

function startRacer(dataDir: string, goFile: string, holdMs: number): Racer {
  const child = spawn(process.execPath, ['--import', 'tsx', RACER, dataDir, goFile, String(holdMs)], { cwd: PROJECT_ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  let onLine: (() => void) | undefined;
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
    output += chunk;
    onLine?.();
  });
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const waitFor = (pattern: RegExp): Promise<string> =>
    new Promise((resolve, reject) => {
      const check = (): void => {
        const match = pattern.exec(output);
        if (match !== null) resolve(match[0]);
      };
      onLine = check;
      check();
      void exited.then(() => (check(), reject(new Error(`racer exited; output:\n${output}`))));
    });
  const ready = waitFor(/^ready$/m).then(() => undefined);
  return { child, output: () => output, ready, outcome: ready.then(() => waitFor(/^(won|refused: .*)$/m)), exited };
}

/** A data directory whose lock was held by a process that died by SIGKILL. */
async function staleLockDirectory(prefix: string): Promise<string> {
  const dataDir = await mkdtemp(join(tmpdir(), prefix));
  const goFile = join(dataDir, 'go-holder');
  await writeFile(goFile, '');
  const holder = startRacer(dataDir, goFile, 0);
  assert.equal(await withTimeout(holder.outcome, 30_000, 'holder took the lock'), 'won');
  holder.child.kill('SIGKILL');
  await holder.exited;
  return dataDir;
}

function unshareAllowed(): string | undefined {
  if (process.platform !== 'linux') return 'PID namespaces are Linux only';
  const probe = spawnSync('unshare', ['--pid', '--fork', '--mount-proc', 'true'], { stdio: 'ignore' });
  if (probe.error !== undefined) return `unshare is not available (${probe.error.message})`;
  if (probe.status !== 0) return `unshare --pid --fork --mount-proc is not permitted here (exit ${probe.status}); it needs root or user namespaces`;
  return undefined;
}

test('a second server in another PID namespace is refused and exits non-zero; the first keeps serving', { timeout: 120_000, skip: unshareAllowed() }, async () => {
  const dataDir = await mkdtemp(join(tmpdir(), 'talus-lock-ns-'));
  const first = await startServerProcess(dataDir);
  try {
    const client = makeClient(first.url);
    const body = randomBytes(256 * 1024);
    await client.send(new CreateBucketCommand({ Bucket: 'locked' }));
    await client.send(new PutObjectCommand({ Bucket: 'locked', Key: 'kept', Body: body }));

    // Another PID namespace: the first server's PID does not exist there.
    const second = spawn(
      'unshare',
      ['--pid', '--fork', '--mount-proc', '--kill-child', process.execPath, '--import', 'tsx', CLI, 'server', dataDir, '--port', String(await freePort()), '--address', '127.0.0.1', '--workers', '1'],
      { cwd: PROJECT_ROOT, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let output = '';
    second.stdout!.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
    second.stderr!.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
    const exit = new Promise<number | null>((resolve) => second.once('exit', (code) => resolve(code)));
    let code: number | null;
    try {
      code = await withTimeout(exit, 60_000, `the second server did not exit (it serves the same data directory); output:\n${output}`);
    } finally {
      second.kill('SIGKILL');
    }
    assert.notEqual(code, 0, `the second server must fail; output:\n${output}`);
    assert.doesNotMatch(output, /listening on/, 'the second server never served');
    assert.match(output, new RegExp(`in use by process ${first.child.pid} on host `), `the refusal names the holder; output:\n${output}`);

    const got = await client.send(new GetObjectCommand({ Bucket: 'locked', Key: 'kept' }));
    assert.ok(Buffer.from(await got.Body!.transformToByteArray()).equals(body), 'the first server serves its object unchanged');
    await client.send(new PutObjectCommand({ Bucket: 'locked', Key: 'after', Body: 'still writable' }));
    client.destroy();
    await first.stop();
  } finally {
    if (first.child.exitCode === null) await first.kill9();
    await rm(dataDir, { recursive: true, force: true });
  }
});

test(`${RACERS} processes racing for a lock left by a SIGKILLed holder: exactly one wins`, { timeout: 180_000 }, async () => {
  const dataDir = await staleLockDirectory('talus-lock-race-');
  try {
    const goFile = join(dataDir, 'go');
    // Winners hold the lock long enough that every loser tried while it was held.
    const racers = Array.from({ length: RACERS }, () => startRacer(dataDir, goFile, 15_000));
    try {
      await withTimeout(Promise.all(racers.map((racer) => racer.ready)), 120_000, 'racers started');
      await writeFile(goFile, '');
      const outcomes = await withTimeout(Promise.all(racers.map((racer) => racer.outcome)), 60_000, 'racers tried the lock');
      const winners = outcomes.filter((outcome) => outcome === 'won');
      assert.equal(winners.length, 1, `outcomes:\n${outcomes.join('\n')}`);
      for (const outcome of outcomes.filter((outcome) => outcome !== 'won')) assert.match(outcome, /^refused: data directory .* is in use by /);
    } finally {
      for (const racer of racers) racer.child.kill('SIGKILL');
      await Promise.all(racers.map((racer) => racer.exited));
    }
  } finally {
    await rm(dataDir, { recursive: true, force: true });
  }
});

test('a server killed with SIGKILL leaves a lock the next server takes over', { timeout: 120_000 }, async () => {
  const dataDir = await mkdtemp(join(tmpdir(), 'talus-lock-kill-'));
  try {
    const first = await startServerProcess(dataDir);
    const client = makeClient(first.url);
    await client.send(new CreateBucketCommand({ Bucket: 'taken-over' }));
    await client.send(new PutObjectCommand({ Bucket: 'taken-over', Key: 'k', Body: 'before the kill' }));
    client.destroy();
    await first.kill9();
    const next = await startServerProcess(dataDir);
    try {
      const again = makeClient(next.url);
      const got = await again.send(new GetObjectCommand({ Bucket: 'taken-over', Key: 'k' }));
      assert.equal(await got.Body!.transformToString(), 'before the kill');
      again.destroy();
    } finally {
      await next.stop();
    }
  } finally {
    await rm(dataDir, { recursive: true, force: true });
  }
});

test('a PID-file talus.lock left by an older Talus is refused with what to do, never taken over by guess', async () => {
  const dataDir = await mkdtemp(join(tmpdir(), 'talus-lock-old-'));
  try {
    await writeFile(join(dataDir, 'talus.lock'), '12345\n');
    await assert.rejects(lockDataDirectory(dataDir), { name: 'DataDirectoryLockedError', message: /PID lock file of an older Talus: .*delete the file/ });
    await rm(join(dataDir, 'talus.lock'));
    const lock = await lockDataDirectory(dataDir);
    await assert.rejects(lockDataDirectory(dataDir), { name: 'DataDirectoryLockedError', message: new RegExp(`in use by process ${process.pid} on host `) });
    await lock.release();
    await (await lockDataDirectory(dataDir)).release();
  } finally {
    await rm(dataDir, { recursive: true, force: true });
  }
});
