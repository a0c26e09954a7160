/**
 * Do listings stall everyone else? (issue 17) 32 clients list 1000-key
 * pages of the listing bucket as fast as they can while a probe GETs a
 * 4 KiB object, one at a time with a 10 ms pause, and records how long each
 * GET takes. The listers run in a child process (`talus bench --workload
 * list`): in this process, parsing their pages would stall the probe's own
 * event loop and the figure would measure the client. Talus only: the
 * question is Talus's own latency under its own listing load.
 *
 * The row's ops/s and CPU µs/op are per listed page; its p50/p99 are the
 * probe GET's. The bucket is the listing workloads' (100 000 keys in quick
 * mode, 920 000 in full mode).
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import type { LoadReport } from '../../../src/loadgen/index.ts';
import type { Workload, WorkloadOutcome } from '../context.ts';
import { clientFor, measure, type DriverResult } from '../measure.ts';
import { listLayoutKeys } from '../options.ts';
import { ROOT, type RunningServer } from '../servers.ts';
import { BENCH_BUCKET, LIST_BUCKET, LIST_FLAT_PREFIX, SMALL_PREFIX, ensureListBucket, ensureSmallObjects, preparedKey } from '../setup.ts';

const LISTERS = 32;
const PAGE_KEYS = 1000;
const PROBE_PAUSE_MS = 10;
/** The listers' run is this many times a listing row's, so the probe gathers a few hundred samples. */
const RUN_LENGTH_FACTOR = 4;

interface ListersOutcome {
  report: LoadReport;
}

/** `talus bench --workload list` in a child process, for `durationMs`; `onListing` once its first progress line says it lists. */
function runListers(server: RunningServer, durationMs: number, onListing: () => void): Promise<ListersOutcome> {
  const args = [
    join(ROOT, 'bin', 'talus.js'), 'bench', '--endpoint', server.endpoint, '--bucket', LIST_BUCKET, '--workload', 'list',
    '--concurrency', String(LISTERS), '--prefix', LIST_FLAT_PREFIX, '--max-keys', String(PAGE_KEYS), '--no-prepare',
    '--duration', `${durationMs}ms`, '--json',
  ];
  const env = { ...process.env, AWS_ACCESS_KEY_ID: server.credentials.accessKeyId, AWS_SECRET_ACCESS_KEY: server.credentials.secretAccessKey };
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => {
      stderr = (stderr + chunk.toString()).slice(-4096);
      if (stderr.includes(' ops/s')) onListing();
    });
    child.once('error', reject);
    child.once('close', (code) => {
      try {
        resolve({ report: JSON.parse(stdout) as LoadReport });
      } catch {
        reject(new Error(`the listers exited with ${code}: ${stderr.trim().split('\n').slice(-5).join(' | ')}`));
      }
    });
  });
}

function quantile(sorted: readonly number[], q: number): number {
  return sorted.length === 0 ? 0 : sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * q))]!;
}

async function probeWhile(server: RunningServer, objectCount: number, running: () => boolean): Promise<{ latenciesMs: number[]; errors: string[] }> {
  const client = clientFor(server, 1);
  const latenciesMs: number[] = [];
  const errors: string[] = [];
  try {
    for (let index = 0; running(); index++) {
      const startMs = performance.now();
      try {
        await client.getObject(BENCH_BUCKET, preparedKey(SMALL_PREFIX, index % objectCount));
        latenciesMs.push(performance.now() - startMs);
      } catch (error) {
        if (errors.length < 5) errors.push(error instanceof Error ? error.message : String(error));
      }
      await new Promise((resolve) => setTimeout(resolve, PROBE_PAUSE_MS));
    }
  } finally {
    await client.close();
  }
  return { latenciesMs, errors };
}

export const listStall: Workload = {
  id: 'list-stall',
  title: `probe GET under ${LISTERS} listers (ops = pages)`,
  async run(context): Promise<WorkloadOutcome> {
    const talus = await context.talus();
    await ensureListBucket(talus, context.settings.listLayout);
    await ensureSmallObjects(talus, context.settings.smallObjectCount);
    const durationMs = context.settings.listRunMs * RUN_LENGTH_FACTOR;
    let probe = { latenciesMs: [] as number[], errors: [] as string[] };
    let listers: ListersOutcome | undefined;
    const row = await measure(this.id, talus, 'loadgen', async (): Promise<DriverResult> => {
      let running = true;
      // The probe starts once the listers list (not while their process starts) and stops when they end.
      let listingStarted!: () => void;
      const started = new Promise<void>((resolve) => (listingStarted = resolve));
      const listing = runListers(talus, durationMs, () => listingStarted()).finally(() => {
        running = false;
        listingStarted();
      });
      const probing = started.then(() => probeWhile(talus, context.settings.smallObjectCount, () => running));
      [listers, probe] = await Promise.all([listing, probing]);
      const pages = listers.report.total;
      const sorted = [...probe.latenciesMs].sort((a, b) => a - b);
      return {
        operations: pages.count,
        errors: pages.errors + probe.errors.length,
        firstErrors: [...listers.report.firstErrors, ...probe.errors].slice(0, 5),
        durationMs: listers.report.durationMs,
        opsPerSecond: pages.opsPerSecond,
        mibPerSecond: 0,
        latencyMs: { p50: quantile(sorted, 0.5), p99: quantile(sorted, 0.99) },
      };
    });
    const sorted = [...probe.latenciesMs].sort((a, b) => a - b);
    const pages = listers?.report.total;
    const notes = [
      `${LISTERS} listers of ${PAGE_KEYS}-key pages from the start of ${LIST_FLAT_PREFIX} (a child process, ${durationMs / 1000} s) on the listing bucket of ` +
        `${listLayoutKeys(context.settings.listLayout)} keys; a probe GET of a 4 KiB object every ${PROBE_PAUSE_MS} ms: ${sorted.length} probes, ` +
        `p50 ${quantile(sorted, 0.5).toFixed(1)} ms, p99 ${quantile(sorted, 0.99).toFixed(1)} ms, max ${quantile(sorted, 1).toFixed(1)} ms; ` +
        `pages p50 ${pages?.latencyMs.p50.toFixed(1) ?? '?'} ms, p99 ${pages?.latencyMs.p99.toFixed(1) ?? '?'} ms`,
    ];
    return { rows: [row], notes };
  },
};
