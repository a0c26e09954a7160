/**
 * talus/txn in `npm run bench` (issue 15): two quick workloads, each on the
 * suite's Talus (S3 on loopback) and on a local directory (file://, no
 * server), with every txn row also given as a ratio to a raw-storage baseline
 * measured in the same run on the same backend (the "÷ ceiling" column):
 *
 * - txn-commit: raw putIfAbsent of fresh keys, one at a time (the rate one
 *   log could reach without group commit), then commits of W writers (1, 8,
 *   64) sharing one store, each putting a record of its own (no conflicts);
 *   64 writers also with group commit off; 4 processes of 8 writers (their
 *   timed loops start together after the processes have started); then
 *   contention: 8 stores doing
 *   read-modify-write of 1 of 4 hot records, commits/s with the conflict
 *   rate in the notes. Latency is begin() to the commit's answer.
 * - txn-read: raw GET of a 20 KiB object, 8 in flight, then snapshot loads
 *   by 8 readers of 20 KiB records (data objects: one GET each) and of
 *   100-byte records (inline in the log, served from the index in memory).
 *
 * Each cell runs min(runMs, 1 s) so the pair stays at about 40 s
 * in quick mode. bench/txn.bench.ts has the longer standalone table.
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { openStorage } from '../src/storage/open-storage.ts';
import type { ObjectStorage } from '../src/storage/object-storage.ts';
import { ConflictError } from '../src/txn/errors.ts';
import { openStore, type TxnStore } from '../src/txn/store.ts';
import type { SuiteContext, Workload, WorkloadOutcome } from './suite/context.ts';
import { measure, type DriverResult, type Row } from './suite/measure.ts';
import { ROOT, type RunningServer } from './suite/servers.ts';
import { ensureBucket } from './suite/setup.ts';

const BUCKET = 'txn-bench';
/** Longest timed cell: the txn rows are many, and the suite stays lean. */
const CELL_MS_MAX = 1000;
/** A record above the inline limit (16 KiB): a data object of its own. */
const LARGE_BYTES = 20 * 1024;
const SMALL_BYTES = 100;
const READ_RECORDS = 20;
const READERS = 8;
const HOT_RECORDS = 4;
const CONTENDING_STORES = 8;

interface Backend {
  name: string;
  /** The suite's Talus for the S3 backend (its CPU and RSS are measured); none for a directory. */
  server: RunningServer | undefined;
  open(prefix: string): ObjectStorage;
  /** What a writer process of bench/txn.bench.ts (--child) needs to open the storage open(prefix) opens. */
  target(prefix: string): { name: string; url: string; endpoint?: string; credentials?: { accessKeyId: string; secretAccessKey: string } };
}

const PROCESSES = 4;
const WRITERS_PER_PROCESS = 8;
/** Time given to the writer processes to start (tsx) before their timed loops begin together. */
const PROCESS_START_MS = 5000;

function cellMs(context: SuiteContext): number {
  return Math.min(context.settings.runMs, CELL_MS_MAX);
}

async function backends(context: SuiteContext): Promise<Backend[]> {
  const server = await context.talus();
  await ensureBucket(server, BUCKET);
  const runId = Date.now().toString(36);
  const directory = join(context.scratch, `txn-${runId}`);
  return [
    {
      name: 'Talus',
      server,
      open: (prefix) => openStorage(`s3://${BUCKET}/${runId}/${prefix}`, { endpoint: server.endpoint, credentials: server.credentials }),
      target: (prefix) => ({ name: 'Talus', url: `s3://${BUCKET}/${runId}/${prefix}`, endpoint: server.endpoint, credentials: server.credentials }),
    },
    {
      name: 'directory',
      server: undefined,
      open: (prefix) => openStorage(pathToFileURL(join(directory, prefix)).href),
      target: (prefix) => ({ name: 'directory', url: pathToFileURL(join(directory, prefix)).href }),
    },
  ];
}

function percentile(sorted: readonly number[], p: number): number {
  return sorted.length === 0 ? 0 : sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

/** `concurrency` loops calling `operation` until `ms` is up; latencies of the operations that succeeded. */
async function timed(ms: number, concurrency: number, operation: (worker: number, i: number) => Promise<void>): Promise<DriverResult> {
  const latencies: number[] = [];
  const firstErrors: string[] = [];
  let errors = 0;
  const started = performance.now();
  const deadline = started + ms;
  await Promise.all(
    Array.from({ length: concurrency }, async (_, worker) => {
      for (let i = 0; performance.now() < deadline; i++) {
        const began = performance.now();
        try {
          await operation(worker, i);
          latencies.push(performance.now() - began);
        } catch (error) {
          errors++;
          const message = error instanceof Error ? error.message : String(error);
          if (firstErrors.length < 3 && !firstErrors.includes(message)) firstErrors.push(message);
        }
      }
    }),
  );
  const durationMs = performance.now() - started;
  latencies.sort((a, b) => a - b);
  return {
    operations: latencies.length,
    errors,
    firstErrors,
    durationMs,
    opsPerSecond: latencies.length / (durationMs / 1000),
    mibPerSecond: 0,
    latencyMs: { p50: percentile(latencies, 50), p99: percentile(latencies, 99) },
  };
}

/** A row: measured against the Talus server (its CPU and RSS), or with no server for a directory. */
async function row(workload: string, backend: Backend, label: string, drive: () => Promise<DriverResult>): Promise<Row> {
  const fullLabel = `${backend.name}: ${label}`;
  if (backend.server !== undefined) return { ...(await measure(workload, backend.server, 'loadgen', drive)), label: fullLabel };
  const result = await drive();
  process.stderr.write(`  ${fullLabel}: ${result.opsPerSecond.toFixed(0)} ops/s, p50 ${result.latencyMs.p50.toFixed(2)} ms, ${result.errors} errors\n`);
  // No server process: the bytes ceiling is the closest kind (the storage's own files, fsynced), and its columns stay 0.
  return { workload, server: 'bytes-fsync', label: fullLabel, driver: 'loadgen', ...result, serverProcesses: 0, serverCpuPercentOfOneCore: 0, serverCpuMicrosPerOperation: 0, serverPeakRssMiB: 0, serverStderrLines: 0 };
}

/** Sets each txn row's ratio to the backend's baseline row (shown in the "÷ ceiling" column). */
function ratio(rows: Row[], baseline: Row): void {
  for (const each of rows) if (each !== baseline && baseline.opsPerSecond > 0) each.ratioToCeiling = each.opsPerSecond / baseline.opsPerSecond;
}

async function commitLoop(store: TxnStore, writers: number, ms: number, tag: string): Promise<DriverResult> {
  return timed(ms, writers, async (worker, i) => {
    const txn = await store.begin();
    txn.put(`${tag}-${worker}`, String(i));
    await txn.commit();
  });
}

interface ChildRun {
  commits: number;
  latencies: number[];
  entries: number;
}

/** PROCESSES writer processes (bench/txn.bench.ts --child) of WRITERS_PER_PROCESS writers each, timed loops starting together. */
async function processes(backend: Backend, storagePrefix: string, prefix: string, ms: number): Promise<DriverResult> {
  const startAt = Date.now() + PROCESS_START_MS;
  const runs = await Promise.all(
    Array.from({ length: PROCESSES }, (_, p) => {
      const spec = { target: backend.target(storagePrefix), prefix, writers: WRITERS_PER_PROCESS, durationS: ms / 1000, tag: `p${p}`, startAt };
      const child = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'bench', 'txn.bench.ts'), '--child', JSON.stringify(spec)], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      let err = '';
      child.stdout.setEncoding('utf8').on('data', (chunk: string) => (out += chunk));
      child.stderr.setEncoding('utf8').on('data', (chunk: string) => (err = (err + chunk).slice(-4096)));
      return new Promise<ChildRun>((resolve, reject) => child.on('close', (code) => (code === 0 ? resolve(JSON.parse(out) as ChildRun) : reject(new Error(`writer process exited ${code}: ${err}`)))));
    }),
  );
  const latencies = runs.flatMap((run) => run.latencies).sort((a, b) => a - b);
  return {
    operations: latencies.length,
    errors: 0,
    firstErrors: [],
    durationMs: ms,
    opsPerSecond: latencies.length / (ms / 1000),
    mibPerSecond: 0,
    latencyMs: { p50: percentile(latencies, 50), p99: percentile(latencies, 99) },
  };
}

const txnCommit: Workload = {
  id: 'txn-commit',
  title: 'talus/txn commits (÷ raw putIfAbsent)',
  async run(context: SuiteContext): Promise<WorkloadOutcome> {
    const ms = cellMs(context);
    const rows: Row[] = [];
    const notes: string[] = [];
    for (const backend of await backends(context)) {
      const mine: Row[] = [];
      const storage = backend.open('commit/');
      try {
        const warm = await openStore(storage, { prefix: 'warm/' });
        await commitLoop(warm, 8, Math.min(context.settings.warmUpMs, 300), 'w'); // JIT and connections, not counted
        const body = Buffer.alloc(SMALL_BYTES, 1);
        const baseline = await row('txn-commit', backend, 'raw putIfAbsent, 1 in flight', () => timed(ms, 1, async (_, i) => void (await storage.putIfAbsent(`raw/${i}`, body))));
        mine.push(baseline);
        let cell = 0;
        for (const [writers, groupCommit] of [[1, true], [8, true], [64, true], [64, false]] as const) {
          const store = await openStore(storage, { prefix: `c${cell++}/`, groupCommit });
          const start = await store.lastTransaction();
          const measured = await row('txn-commit', backend, `commit, ${writers} writer${writers === 1 ? '' : 's'}${groupCommit ? '' : ', no group commit'}`, () => commitLoop(store, writers, ms, 'w'));
          const entries = (await store.lastTransaction()) - start;
          notes.push(`${backend.name}, ${writers} writer${writers === 1 ? '' : 's'}${groupCommit ? '' : ' (group commit off)'}: ${(measured.operations / Math.max(1, entries)).toFixed(1)} transactions per log entry`);
          mine.push(measured);
        }
        const multi = await row('txn-commit', backend, `commit, ${PROCESSES} processes × ${WRITERS_PER_PROCESS} writers`, () => processes(backend, 'commit/', `m${cell++}/`, ms));
        const reader = await openStore(storage, { prefix: `m${cell - 1}/` });
        notes.push(`${backend.name}, ${PROCESSES} processes × ${WRITERS_PER_PROCESS} writers: ${(multi.operations / Math.max(1, await reader.lastTransaction())).toFixed(1)} transactions per log entry (the processes race for TIDs; group commit works within each)`);
        mine.push(multi);
        const stores = await Promise.all(Array.from({ length: CONTENDING_STORES }, () => openStore(storage, { prefix: 'hot/' })));
        let conflicts = 0;
        const contended = await row('txn-commit', backend, `read-modify-write, ${CONTENDING_STORES} stores on ${HOT_RECORDS} hot records`, () =>
          timed(ms, CONTENDING_STORES, async (worker) => {
            for (;;) {
              const txn = await stores[worker]!.begin();
              const oid = `hot${Math.floor(Math.random() * HOT_RECORDS)}`;
              txn.put(oid, String(Number((await txn.get(oid))?.toString() ?? '0') + 1));
              try {
                await txn.commit();
                return;
              } catch (error) {
                if (!(error instanceof ConflictError)) throw error;
                conflicts++; // retried: the row counts committed transactions, latency includes the retries
              }
            }
          }),
        );
        notes.push(`${backend.name}, contention (${CONTENDING_STORES} stores, each a process's worth, read-modify-write of 1 of ${HOT_RECORDS} records, retry on conflict): ${((100 * conflicts) / Math.max(1, conflicts + contended.operations)).toFixed(0)} % of attempts conflicted`);
        mine.push(contended);
        ratio(mine, baseline);
        rows.push(...mine);
      } finally {
        await storage.close();
      }
    }
    notes.push('"÷ ceiling" is commits/s ÷ raw putIfAbsent/s on the same backend in this run (one log without group commit cannot beat 100 %)');
    return { rows, notes };
  },
};

const txnRead: Workload = {
  id: 'txn-read',
  title: 'talus/txn snapshot loads (÷ raw GET)',
  async run(context: SuiteContext): Promise<WorkloadOutcome> {
    const ms = cellMs(context);
    const rows: Row[] = [];
    for (const backend of await backends(context)) {
      const storage = backend.open('read/');
      try {
        const large = Buffer.alloc(LARGE_BYTES, 7);
        await storage.put('raw/large', large);
        const getLarge = async (): Promise<void> => {
          const { body } = await storage.get('raw/large');
          for await (const chunk of body) void chunk;
        };
        await timed(Math.min(context.settings.warmUpMs, 300), READERS, getLarge); // connections and JIT, not counted
        const baseline = await row('txn-read', backend, `raw GET ${LARGE_BYTES / 1024} KiB, ${READERS} in flight`, () => timed(ms, READERS, getLarge));
        const store = await openStore(storage, { prefix: 'db/' });
        const setup = await store.begin();
        for (let i = 0; i < READ_RECORDS; i++) {
          setup.put(`large${i}`, large);
          setup.put(`small${i}`, Buffer.alloc(SMALL_BYTES, 3));
        }
        const snapshot = store.at(await setup.commit());
        const loads = async (kind: string): Promise<DriverResult> =>
          timed(ms, READERS, async (worker, i) => {
            if ((await snapshot.get(`${kind}${(worker + i * READERS) % READ_RECORDS}`)) === undefined) throw new Error('a record is missing');
          });
        const mine = [baseline];
        mine.push(await row('txn-read', backend, `snapshot load ${LARGE_BYTES / 1024} KiB (data object), ${READERS} readers`, () => loads('large')));
        mine.push(await row('txn-read', backend, `snapshot load ${SMALL_BYTES} B (inline, from memory), ${READERS} readers`, () => loads('small')));
        ratio(mine, baseline);
        rows.push(...mine);
        await store.close();
      } finally {
        await storage.close();
      }
    }
    return { rows, notes: ['"÷ ceiling" is snapshot loads/s ÷ raw GETs/s of the same size on the same backend in this run'] };
  },
};

export const txnWorkloads: readonly Workload[] = [txnCommit, txnRead];
