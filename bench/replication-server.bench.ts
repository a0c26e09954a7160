/**
 * The suite's replication-put-4k, thread by thread: where a replicated
 * server's extra CPU per 4 KiB PUT goes, and its memory.
 *
 * Each run starts a Talus server as the suite does (bin/talus.js from a
 * tree's dist/, erasure 2+1 over three directory backends, with or without
 * `[replication] lag = "1s"`), warms it up with PUTs, then times PUTs (the
 * load generator, 16 in flight, new 4 KiB keys) and reads, over exactly the
 * timed window, the CPU of every thread of the server from
 * /proc/<pid>/task/<tid>/schedstat (nanoseconds on CPU). The server's
 * threads are named by a preload (NODE_OPTIONS --import): the event loop
 * `main`, worker threads after their module (`segment-cutter-`,
 * `wal-checkpointe`, `hash-thread`, `listing-thread`…); the rest
 * (libuv's pool: brotli, file writes, fsyncs; V8's platform threads:
 * concurrent GC and compilation) keep Node's name, `node`. Variants and
 * trees alternate, so a tree before a change can be run beside the one
 * after it (each tree needs a current dist/: `npm run build` in it, or
 * bin/talus.js runs the sources through tsx, ~40 MiB more resident).
 *
 *   node --import tsx bench/replication-server.bench.ts [--trees /work/wt-before,.] [--runs 3] [--ms 2000] [--warm-ms 2500] [--smaps] [--variants off,on]
 *
 * CPU per PUT depends on the PUT rate (fewer PUTs per group commit, and a
 * thread's per-second work spread over fewer PUTs, when the machine is
 * loaded): compare runs at similar rates, thread by thread. --smaps prints
 * the server's largest resident mappings at the end of each timed window.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { loadOn } from './suite/measure.ts';
import { closePresigner } from './suite/presign.ts';
import type { RunningServer } from './suite/servers.ts';
import { ensureBucket } from './suite/setup.ts';

const BUCKET = 'replication-server';
const SIZE = { min: 4096, max: 4096 };
const IN_FLIGHT = 16;

const { values } = parseArgs({
  options: {
    trees: { type: 'string', default: '.' },
    runs: { type: 'string', default: '3' },
    ms: { type: 'string', default: '2000' },
    'warm-ms': { type: 'string', default: '2500' },
    smaps: { type: 'boolean', default: false },
    /** Which variants to run, in this order: `on` alone compares the replicated side of two trees. */
    variants: { type: 'string', default: 'off,on' },
  },
});

/** Names the server's threads (written to /proc/thread-self/comm, 15 characters at most). */
const NAMING_PRELOAD = `
import { createRequire, syncBuiltinESMExports } from 'node:module';
import { writeFileSync } from 'node:fs';
const require = createRequire(import.meta.url);
const threads = require('node:worker_threads');
try { writeFileSync('/proc/thread-self/comm', 'main'); } catch {}
const namer = "{ const d = require('node:worker_threads').workerData ?? {}; const n = d.moduleUrl ? d.moduleUrl.split('/').pop().replace(/\\\\.[jt]s$/, '') : d.intervalMs !== undefined ? 'wal-checkpointer' : d.copyPath !== undefined ? 'snapshot-copy' : d.hashWasm !== undefined ? 'hash-thread' : 'thread'; try { require('node:fs').writeFileSync('/proc/thread-self/comm', n.slice(0, 15)); } catch {} }\\n";
const Original = threads.Worker;
threads.Worker = class extends Original {
  constructor(code, options) {
    super(options?.eval === true && typeof code === 'string' ? namer + code : code, options);
  }
};
syncBuiltinESMExports();
`;

const ERASURE_2_1 = (directory: string): string =>
  `${[0, 1, 2].map((i) => `[backends.d${i}]\ntype = "directory"\npath = "${join(directory, `d${i}`)}"\n`).join('\n')}\n[placements.ec]\ntype = "erasure"\ndata_shards = 2\nparity_shards = 1\nbackends = ["d0", "d1", "d2"]\n\n[defaults]\nplacement = "ec"\n`;

/** µs on CPU per thread id, with the thread's name. */
function threadTimes(pid: number): Map<string, { name: string; micros: number }> {
  const times = new Map<string, { name: string; micros: number }>();
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      const name = readFileSync(`/proc/${pid}/task/${tid}/comm`, 'utf8').trim();
      const nanos = Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ')[0]);
      times.set(tid, { name, micros: nanos / 1000 });
    } catch {
      // The thread ended in between.
    }
  }
  return times;
}

function statusMiB(pid: number, field: 'VmRSS' | 'VmHWM'): number {
  const line = readFileSync(`/proc/${pid}/status`, 'utf8').split('\n').find((candidate) => candidate.startsWith(`${field}:`));
  return Number(line?.split(/\s+/)[1] ?? 0) / 1024;
}

/** The largest resident mappings (KiB, address range, file or nothing for anonymous memory). */
function largestMappings(pid: number, count: number): string {
  const rows: { kib: number; mapping: string }[] = [];
  let mapping = '';
  for (const line of readFileSync(`/proc/${pid}/smaps`, 'utf8').split('\n')) {
    if (/^[0-9a-f]+-[0-9a-f]+ /.test(line)) {
      const fields = line.split(/\s+/);
      mapping = `${fields[0]} ${fields[5] ?? '[anonymous]'}`;
    } else if (line.startsWith('Rss:')) rows.push({ kib: Number(line.split(/\s+/)[1]), mapping });
  }
  return rows
    .sort((a, b) => b.kib - a.kib)
    .slice(0, count)
    .map((row) => `    ${(row.kib / 1024).toFixed(1).padStart(6)} MiB ${row.mapping}`)
    .join('\n');
}

interface RunResult {
  putsPerSecond: number;
  total: number;
  threads: Map<string, number>;
  peakRssMiB: number;
}

async function runOnce(tree: string, variant: 'off' | 'on', scratch: string, preload: string): Promise<RunResult> {
  // The tree's own launcher, so its dist/ (its sources) serve.
  const { startTalus } = (await import(join(tree, 'bench/suite/servers.ts'))) as typeof import('./suite/servers.ts');
  const directory = mkdtempSync(join(scratch, `${variant}-`));
  const config = join(directory, 'talus.toml');
  writeFileSync(config, ERASURE_2_1(directory) + (variant === 'on' ? '\n[replication]\nlag = "1s"\n' : ''));
  const server: RunningServer = await startTalus(1, { args: ['--config', config], label: variant, env: { NODE_OPTIONS: `--import ${preload}` } });
  try {
    await ensureBucket(server, BUCKET);
    await loadOn(server, { bucket: BUCKET, workload: 'put', size: SIZE, concurrency: IN_FLIGHT, durationMs: Number(values['warm-ms']), keyPrefix: 'warm/', keyCount: 500 });
    try {
      // Resets VmHWM to the current RSS: the peak is the timed window's.
      writeFileSync(`/proc/${server.pid}/clear_refs`, '5');
    } catch {
      // Without permission the peak covers the warm-up too.
    }
    const before = threadTimes(server.pid);
    const result = await loadOn(server, { bucket: BUCKET, workload: 'put', size: SIZE, concurrency: IN_FLIGHT, durationMs: Number(values.ms), keyPrefix: 'timed/', keyCount: 500 });
    const after = threadTimes(server.pid);
    const peakRssMiB = statusMiB(server.pid, 'VmHWM');
    if (values.smaps) process.stderr.write(`${largestMappings(server.pid, 8)}\n`);
    const threads = new Map<string, number>();
    let total = 0;
    for (const [tid, { name, micros }] of after) {
      const spent = (micros - (before.get(tid)?.micros ?? 0)) / result.operations;
      threads.set(name, (threads.get(name) ?? 0) + spent);
      total += spent;
    }
    return { putsPerSecond: result.opsPerSecond, total, threads, peakRssMiB };
  } finally {
    closePresigner(server);
    await server.stop();
    rmSync(directory, { recursive: true, force: true });
  }
}

const median = (numbers: readonly number[]): number => [...numbers].sort((a, b) => a - b)[Math.floor(numbers.length / 2)]!;
const format = (threads: Map<string, number>): string =>
  [...threads]
    .filter(([, micros]) => micros >= 0.5)
    .sort((a, b) => b[1] - a[1])
    .map(([name, micros]) => `${name} ${micros.toFixed(1)}`)
    .join(', ');

const trees = values.trees!.split(',').map((tree) => resolve(tree));
const scratch = mkdtempSync(join(tmpdir(), 'talus-replication-server-'));
const preload = join(scratch, 'name-threads.mjs');
writeFileSync(preload, NAMING_PRELOAD);
const results = new Map<string, RunResult[]>();
try {
  for (let run = 0; run < Number(values.runs); run++) {
    for (const tree of trees) {
      for (const variant of values.variants!.split(',') as ('off' | 'on')[]) {
        const result = await runOnce(tree, variant, scratch, preload);
        const label = `${tree} ${variant}`;
        results.set(label, [...(results.get(label) ?? []), result]);
        process.stderr.write(
          `run ${run + 1} ${label}: ${result.putsPerSecond.toFixed(0)} PUT/s, ${result.total.toFixed(1)} µs of server CPU per PUT (${format(result.threads)}), peak RSS ${result.peakRssMiB.toFixed(0)} MiB, load average ${execFileSync('cat', ['/proc/loadavg'], { encoding: 'utf8' }).split(' ')[0]}\n`,
        );
      }
    }
  }
} finally {
  rmSync(scratch, { recursive: true, force: true });
}
for (const [label, runs] of results) {
  const names = new Set(runs.flatMap((run) => [...run.threads.keys()]));
  const threads = new Map([...names].map((name) => [name, median(runs.map((run) => run.threads.get(name) ?? 0))]));
  process.stdout.write(
    `${label}: medians of ${runs.length}: ${median(runs.map((run) => run.putsPerSecond)).toFixed(0)} PUT/s, ${median(runs.map((run) => run.total)).toFixed(1)} µs per PUT (${format(threads)}), peak RSS ${median(runs.map((run) => run.peakRssMiB)).toFixed(0)} MiB\n`,
  );
}
process.exit(0);
