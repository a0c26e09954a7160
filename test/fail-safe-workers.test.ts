/**
 * `--workers N` supervised (src/cluster.ts), as an operator runs it:
 * - every worker SIGKILLed at once: the primary stays up and replaces them;
 * - a worker killed mid-upload: its partial blob is removed at once, while
 *   another worker's upload in flight and the committed objects are untouched;
 * - workers that cannot start: the primary gives up and exits non-zero.
 */
import { CreateBucketCommand, GetObjectCommand, ListBucketsCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { request, type ClientRequest } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { test } from 'node:test';
import { countBlobFiles, startServerProcess, withTimeout, type ServerProcess } from './helpers/process.ts';
import { signRequest } from './helpers/raw.ts';
import { makeClient } from './helpers/talus.ts';

const MiB = 1024 * 1024;

/** The worker processes of a primary: its children running cluster-worker, from /proc. */
async function workerPids(primaryPid: number): Promise<number[]> {
  const pids: number[] = [];
  for (const task of await readdir(`/proc/${primaryPid}/task`)) {
    const children = await readFile(`/proc/${primaryPid}/task/${task}/children`, 'utf8').catch(() => '');
    for (const pid of children.trim().split(/\s+/)) {
      if (pid === '') continue;
      // Other children (tsx's esbuild service) are not workers.
      const commandLine = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
      if (commandLine.includes('cluster-worker')) pids.push(Number(pid));
    }
  }
  return pids;
}

async function eventually<T>(what: string, withinMs: number, probe: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + withinMs;
  for (;;) {
    const value = await probe().catch(() => undefined);
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`${what}: not within ${withinMs} ms`);
    await sleep(100);
  }
}

/** Files under blobs/partial/<pid>/, by pid. */
async function partialBlobs(dataDir: string): Promise<Map<number, string[]>> {
  const base = join(dataDir, 'blobs', 'partial');
  const byPid = new Map<number, string[]>();
  for (const pid of await readdir(base).catch(() => [])) {
    const files = await readdir(join(base, pid)).catch(() => []);
    if (files.length > 0) byPid.set(Number(pid), files);
  }
  return byPid;
}

/** A PUT that sends `sent` bytes of a declared `total`, then waits until `finish()`. */
interface SlowUpload {
  outgoing: ClientRequest;
  status: Promise<number>;
  /** The status arrived (or the connection failed: 0). */
  settled: boolean;
  finish(): void;
}

async function slowUpload(url: string, path: string, total: Buffer, sent: number): Promise<SlowUpload> {
  const headers = await signRequest(url, { method: 'PUT', path, unsignedPayload: true, headers: { 'content-length': String(total.length) } });
  const target = new URL(url);
  const outgoing = request({ host: target.hostname, port: target.port, method: 'PUT', path, headers, agent: false });
  const status = new Promise<number>((resolve) => {
    outgoing.on('response', (response) => {
      response.resume();
      response.on('end', () => resolve(response.statusCode ?? 0));
    });
    outgoing.on('error', () => resolve(0));
  });
  outgoing.write(total.subarray(0, sent));
  const upload: SlowUpload = { outgoing, status, settled: false, finish: () => outgoing.end(total.subarray(sent)) };
  void status.then(() => (upload.settled = true));
  return upload;
}

async function startWithWorkers(prefix: string): Promise<{ server: ServerProcess; client: S3Client; dataDir: string }> {
  const dataDir = await mkdtemp(join(tmpdir(), prefix));
  const server = await startServerProcess(dataDir, undefined, ['--workers', '2']);
  return { server, client: makeClient(server.url), dataDir };
}

test('every worker SIGKILLed at once: the primary stays up and serves again', { timeout: 120_000 }, async () => {
  const { server, client, dataDir } = await startWithWorkers('talus-workers-killall-');
  try {
    const body = randomBytes(1 * MiB);
    await client.send(new CreateBucketCommand({ Bucket: 'killall' }));
    await client.send(new PutObjectCommand({ Bucket: 'killall', Key: 'kept', Body: body }));
    const victims = await workerPids(server.child.pid!);
    assert.equal(victims.length, 2, `two workers: ${victims.join(',')}`);
    for (const pid of victims) process.kill(pid, 'SIGKILL');
    await sleep(1_000);
    assert.equal(server.child.exitCode, null, `the primary is alive; output:\n${server.output()}`);
    await eventually('served again', 60_000, async () => ((await client.send(new ListBucketsCommand({}))).Buckets?.length === 1 ? true : undefined));
    const got = await client.send(new GetObjectCommand({ Bucket: 'killall', Key: 'kept' }));
    assert.ok(Buffer.from(await got.Body!.transformToByteArray()).equals(body));
    // The first replacement may serve while the second still starts.
    const replacements = await eventually('two replacement workers', 60_000, async () => {
      const pids = await workerPids(server.child.pid!);
      return pids.length === 2 ? pids : undefined;
    });
    assert.ok(replacements.every((pid) => !victims.includes(pid)), 'new worker processes');
    client.destroy();
    await server.stop();
  } finally {
    if (server.child.exitCode === null) await server.kill9();
    await rm(dataDir, { recursive: true, force: true });
  }
});

test("a worker killed mid-upload: its partial blob is removed at once, the other worker's upload and committed objects are untouched", { timeout: 120_000 }, async () => {
  const { server, client, dataDir } = await startWithWorkers('talus-workers-partial-');
  const uploads: SlowUpload[] = [];
  try {
    const committed = randomBytes(2 * MiB);
    await client.send(new CreateBucketCommand({ Bucket: 'partial' }));
    await client.send(new PutObjectCommand({ Bucket: 'partial', Key: 'committed', Body: committed }));
    const blobsBefore = await countBlobFiles(dataDir);
    // Uploads on new connections until both workers are writing one (node:cluster deals connections round-robin).
    const bodies: Buffer[] = [];
    let writing = new Map<number, string[]>();
    for (let i = 0; i < 8 && writing.size < 2; i++) {
      bodies.push(randomBytes(8 * MiB));
      uploads.push(await slowUpload(server.url, `/partial/slow-${i}`, bodies[i]!, 3 * MiB));
      writing = await eventually('the upload is on disk', 20_000, async () => {
        const now = await partialBlobs(dataDir);
        return [...now.values()].reduce((sum, files) => sum + files.length, 0) === i + 1 ? now : undefined;
      });
    }
    assert.equal(writing.size, 2, 'both workers are writing an upload');
    const [victim, survivor] = [...writing.keys()] as [number, number];
    const survivorFiles = writing.get(survivor)!;
    process.kill(victim, 'SIGKILL');

    await eventually("the dead worker's partial blob is removed", 20_000, async () => ((await partialBlobs(dataDir)).has(victim) ? undefined : true));
    assert.deepEqual((await partialBlobs(dataDir)).get(survivor), survivorFiles, "the live worker's partial blob is untouched");
    assert.equal(server.child.exitCode, null, 'the primary is alive');
    // The victim's uploads failed with their connections; the survivor's complete and read back whole.
    const victimUploads = writing.get(victim)!.length;
    await eventually("the dead worker's connections are cut", 20_000, async () => (uploads.filter((upload) => upload.settled).length === victimUploads ? true : undefined));
    const surviving = [...uploads.keys()].filter((index) => !uploads[index]!.settled);
    assert.equal(surviving.length, survivorFiles.length);
    for (const index of surviving) uploads[index]!.finish();
    for (const index of surviving) {
      assert.equal(await withTimeout(uploads[index]!.status, 30_000, 'surviving upload'), 200);
      const got = await client.send(new GetObjectCommand({ Bucket: 'partial', Key: `slow-${index}` }));
      assert.ok(Buffer.from(await got.Body!.transformToByteArray()).equals(bodies[index]!));
    }
    const again = await client.send(new GetObjectCommand({ Bucket: 'partial', Key: 'committed' }));
    assert.ok(Buffer.from(await again.Body!.transformToByteArray()).equals(committed), 'the committed object is intact');
    assert.equal(await countBlobFiles(dataDir), blobsBefore + surviving.length, 'committed blobs: the earlier ones and the finished uploads, nothing of the dead worker');
    client.destroy();
    await server.stop();
  } finally {
    for (const upload of uploads) upload.outgoing.destroy();
    if (server.child.exitCode === null) await server.kill9();
    await rm(dataDir, { recursive: true, force: true });
  }
});

test('workers that cannot start: the primary gives up and exits non-zero', { timeout: 180_000 }, async () => {
  const { server, client, dataDir } = await startWithWorkers('talus-workers-giveup-');
  try {
    await client.send(new CreateBucketCommand({ Bucket: 'giveup' }));
    client.destroy();
    // A worker creates its directory for partial blobs when it starts; a file
    // in the way breaks every new worker, and nothing the primary still needs.
    const partial = join(dataDir, 'blobs', 'partial');
    await rm(partial, { recursive: true, force: true });
    await writeFile(partial, 'in the way');
    for (const pid of await workerPids(server.child.pid!)) process.kill(pid, 'SIGKILL');
    const { code } = await withTimeout(server.exited, 150_000, `the primary did not give up; output:\n${server.output()}`);
    assert.notEqual(code, 0, `exit code ${code}`);
    assert.equal(code, 1);
    assert.match(server.output(), /workers failed to start \d+ times in a row/);
  } finally {
    if (server.child.exitCode === null && server.child.signalCode === null) await server.kill9();
    await rm(dataDir, { recursive: true, force: true });
  }
});
