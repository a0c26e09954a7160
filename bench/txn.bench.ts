/**
 * talus/txn commit throughput and latency, snapshot reads and the conflict
 * rate, against Talus (a child process on loopback) and a directory:
 *
 *   node --import tsx bench/txn.bench.ts [--seconds 3] [--target talus,directory]
 *
 * Commits: W concurrent writers (1, 8, 64) in one process share one store;
 * each writer commits a put of its own record (no conflicts), in a loop, for
 * --seconds; with group commit on and off. Reports commits/s, p50/p99 commit
 * latency and transactions per log entry. Then 4 processes of 8 writers
 * each (group commit on). Reads: snapshot loads/s of small records by 8
 * concurrent readers. Contention: 8 writers doing read-modify-write on 4 hot
 * records (each transaction picks 1 of the 4): the share that gets a conflict.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { S3Client } from '../src/client/s3-client.ts';
import { openStorage } from '../src/storage/open-storage.ts';
import type { ObjectStorage } from '../src/storage/object-storage.ts';
import { ConflictError } from '../src/txn/errors.ts';
import { openStore } from '../src/txn/store.ts';
import { ROOT, startTalus } from './suite/servers.ts';

const { values } = parseArgs({
  options: {
    seconds: { type: 'string', default: '3' },
    target: { type: 'string', default: 'talus,directory' },
    child: { type: 'string' },
  },
});
const seconds = Number(values.seconds);

interface Target {
  name: string;
  url: string;
  endpoint?: string;
  credentials?: { accessKeyId: string; secretAccessKey: string };
}

function open(target: Target): ObjectStorage {
  return openStorage(target.url, {
    ...(target.endpoint === undefined ? {} : { endpoint: target.endpoint }),
    ...(target.credentials === undefined ? {} : { credentials: target.credentials }),
  });
}

function percentile(sorted: readonly number[], p: number): number {
  return sorted.length === 0 ? NaN : sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

interface CommitRun {
  commits: number;
  latencies: number[];
  entries: number;
}

/** W writers on one store for `durationS`; each commits its own record in a loop. */
async function commitLoop(target: Target, prefix: string, writers: number, groupCommit: boolean, durationS: number, tag: string, startAt?: number): Promise<CommitRun> {
  const storage = open(target);
  const store = await openStore(storage, { prefix, groupCommit });
  if (startAt !== undefined && startAt > Date.now()) await new Promise((resolve) => setTimeout(resolve, startAt - Date.now()));
  const start = await store.lastTransaction();
  const deadline = performance.now() + durationS * 1000;
  const latencies: number[] = [];
  await Promise.all(
    Array.from({ length: writers }, async (_, w) => {
      for (let i = 0; performance.now() < deadline; i++) {
        const began = performance.now();
        const txn = await store.begin();
        txn.put(`${tag}-${w}`, String(i));
        await txn.commit();
        latencies.push(performance.now() - began);
      }
    }),
  );
  const end = await store.lastTransaction();
  await store.close();
  await storage.close();
  return { commits: latencies.length, latencies, entries: end - start };
}

if (values.child !== undefined) {
  // A child process of the 4-process run: prints its CommitRun as JSON.
  // startAt (ms since the epoch), if given: the timed loop starts then, so children started one after another run together.
  const spec = JSON.parse(values.child) as { target: Target; prefix: string; writers: number; durationS: number; tag: string; startAt?: number };
  const run = await commitLoop(spec.target, spec.prefix, spec.writers, true, spec.durationS, spec.tag, spec.startAt);
  process.stdout.write(JSON.stringify(run));
  process.exit(0);
}

function row(cells: readonly (string | number)[]): string {
  return `| ${cells.join(' | ')} |`;
}

function describeRun(run: CommitRun, durationS: number): (string | number)[] {
  const sorted = [...run.latencies].sort((a, b) => a - b);
  return [Math.round(run.commits / durationS), percentile(sorted, 50).toFixed(1), percentile(sorted, 99).toFixed(1), (run.commits / Math.max(1, run.entries)).toFixed(1)];
}

async function processes(target: Target, prefix: string, count: number, writers: number): Promise<CommitRun> {
  const runs = await Promise.all(
    Array.from({ length: count }, (_, p) => {
      const child = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'bench', 'txn.bench.ts'), '--child', JSON.stringify({ target, prefix, writers, durationS: seconds, tag: `p${p}` })], { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] });
      let out = '';
      child.stdout.setEncoding('utf8').on('data', (chunk: string) => (out += chunk));
      return new Promise<CommitRun>((resolve, reject) => child.on('close', (code) => (code === 0 ? resolve(JSON.parse(out) as CommitRun) : reject(new Error(`child exited ${code}`)))));
    }),
  );
  // Entries: the log's growth over the run, counted once (every child saw its own start and end).
  const storage = open(target);
  const store = await openStore(storage, { prefix });
  const entries = await store.lastTransaction();
  await storage.close();
  return { commits: runs.reduce((sum, run) => sum + run.commits, 0), latencies: runs.flatMap((run) => run.latencies), entries };
}

async function reads(target: Target, prefix: string): Promise<number> {
  const storage = open(target);
  const store = await openStore(storage, { prefix });
  const setup = await store.begin();
  for (let i = 0; i < 100; i++) setup.put(`r${i}`, `value ${i}`);
  const tid = await setup.commit();
  const snapshot = store.at(tid);
  let loads = 0;
  const deadline = performance.now() + seconds * 1000;
  await Promise.all(
    Array.from({ length: 8 }, async () => {
      while (performance.now() < deadline) {
        await snapshot.get(`r${loads % 100}`);
        loads++;
      }
    }),
  );
  await storage.close();
  return Math.round(loads / seconds);
}

async function contention(target: Target, prefix: string): Promise<{ attempts: number; conflicts: number }> {
  const storage = open(target);
  const stores = await Promise.all(Array.from({ length: 8 }, () => openStore(storage, { prefix })));
  let attempts = 0;
  let conflicts = 0;
  const deadline = performance.now() + seconds * 1000;
  await Promise.all(
    stores.map(async (store) => {
      while (performance.now() < deadline) {
        const txn = await store.begin();
        const oid = `hot${Math.floor(Math.random() * 4)}`;
        const value = Number((await txn.get(oid))?.toString() ?? '0');
        txn.put(oid, String(value + 1));
        attempts++;
        try {
          await txn.commit();
        } catch (error) {
          if (!(error instanceof ConflictError)) throw error;
          conflicts++;
        }
      }
    }),
  );
  await storage.close();
  return { attempts, conflicts };
}

const targets = values.target.split(',');
const root = await mkdtemp(join(tmpdir(), 'talus-txn-bench-'));
const talus = targets.includes('talus') ? await startTalus(1) : undefined;
try {
  const list: Target[] = [];
  if (talus !== undefined) {
    const admin = new S3Client({ endpoint: talus.endpoint, ...talus.credentials });
    await admin.createBucket('txn');
    await admin.close();
    list.push({ name: 'Talus (S3, loopback)', url: 's3://txn/bench', endpoint: talus.endpoint, credentials: talus.credentials });
  }
  if (targets.includes('directory')) list.push({ name: 'directory', url: pathToFileURL(join(root, 'dir')).href });
  let run = 0;
  for (const target of list) {
    await commitLoop(target, `warm${run++}/`, 8, true, 1, 'w'); // JIT and connections warm, not counted
    console.log(`\n### ${target.name} (${seconds} s a cell)\n`);
    console.log(row(['writers', 'group commit', 'commits/s', 'p50 ms', 'p99 ms', 'txns per entry']));
    console.log(row(['---:', '---', '---:', '---:', '---:', '---:']));
    for (const writers of [1, 8, 64]) {
      for (const group of [true, false]) {
        const result = await commitLoop(target, `c${run++}/`, writers, group, seconds, 'w');
        console.log(row([writers, group ? 'on' : 'off', ...describeRun(result, seconds)]));
      }
    }
    const multi = await processes(target, `c${run++}/`, 4, 8);
    console.log(row(['4 processes × 8', 'on', ...describeRun(multi, seconds)]));
    console.log(`\nsnapshot loads/s (8 readers, small records): ${await reads(target, `r${run++}/`)}`);
    const { attempts, conflicts } = await contention(target, `h${run++}/`);
    console.log(`contention (8 stores, read-modify-write of 1 of 4 hot records): ${attempts} attempts, ${((100 * conflicts) / Math.max(1, attempts)).toFixed(0)}% conflicts`);
  }
} finally {
  await talus?.stop();
  await rm(root, { recursive: true, force: true });
}
