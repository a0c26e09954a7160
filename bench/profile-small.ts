/**
 * perf profiles of Talus and bare node:http under the suite's own small-request
 * loads, alternated on the same two servers (Talus, bare, Talus, bare, …), so
 * both sides of a ratio are profiled under the same machine load. Each run
 * records `perf record -g` on the server's process only while the driver
 * runs, and reads the server's CPU from /proc; the servers are started with
 * `--perf-basic-prof` (added to their NODE_OPTIONS here) so JavaScript frames
 * have names. perf resolves those names from /tmp/perf-PID.map, which the
 * server writes and nobody removes: so each recording is also dumped with
 * `perf script` into OUT.data.txt / OUT.trace.txt while the map exists (the
 * two Python scripts read that dump when it is there), and the maps are
 * removed at the end. SIGINT/SIGTERM stop perf and the servers and remove the
 * temporary directory and the maps. A DELETE run's keys
 * are PUT before its profile starts. bench/profile-buckets.py splits the
 * recordings into buckets (kernel, node's HTTP, Talus, SQLite, crypto, GC).
 *
 *   npm run build
 *   node --import tsx bench/profile-small.ts get|put|delete|head|head-c1 OUT_PREFIX [--rounds 3] [--seconds 3] [--stat | --trace]
 *   python3 bench/profile-buckets.py OUT_PREFIX-talus-*.data -- OUT_PREFIX-bare-http-*.data
 *
 * Written for issue 17's explanations ("Issue 17: where each unmet target
 * stands", docs/PERFORMANCE.md); perf must be allowed to profile the servers
 * (root, or kernel.perf_event_paranoid ≤ 1 for the kernel's frames).
 * --stat: instead of profiles, `perf stat` counts per request of the
 * server's context switches and system calls (epoll waits, reads, writes,
 * fdatasyncs): how many wake-ups a request costs each server. --trace:
 * every system call's entry and exit on the server (perf's raw_syscalls
 * tracepoints) and CPU samples with their stacks, for a timeline of each
 * request and what runs in each of its phases (bench/syscall-timeline.py).
 */
import { execFileSync, spawn } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync, rmSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { SuiteContext } from './suite/context.ts';
import { loadOn, type DriverResult } from './suite/measure.ts';
import { MODE_SETTINGS, parseSuiteOptions, type SuiteOptions } from './suite/options.ts';
import { capture } from './suite/presign.ts';
import { startBaseline, startTalus, type RunningServer } from './suite/servers.ts';
import { BENCH_BUCKET, SMALL_OBJECT_BYTES, SMALL_PREFIX, ensureBucket, ensureSmallObjects, populate, preparedKey } from './suite/setup.ts';
import { exitCleanlyOnSignals, registerCleanup, temporaryDirectory } from './suite/cleanup.ts';
import { CONNECTIONS, wrkOn } from './suite/workloads/small-objects.ts';

type Kind = 'get' | 'put' | 'delete' | 'head' | 'head-c1';
const KINDS: readonly Kind[] = ['get', 'put', 'delete', 'head', 'head-c1'];
const SMALL_SIZE = { min: SMALL_OBJECT_BYTES, max: SMALL_OBJECT_BYTES };
/** Keys a Talus DELETE run deletes: ~1.5–3 s at the rates seen on this machine. */
const DELETE_KEYS = 12_000;
const PERF_FREQUENCY_HZ = '999';
const STAT_EVENTS = ['context-switches', 'syscalls:sys_enter_epoll_wait', 'syscalls:sys_enter_epoll_pwait', 'syscalls:sys_enter_read', 'syscalls:sys_enter_write', 'syscalls:sys_enter_writev', 'syscalls:sys_enter_fdatasync', 'syscalls:sys_enter_futex'];
/** The kernel's clock ticks per second, for /proc/PID/stat's utime and stime (as bench/suite/process-stats.ts reads it). */
const CLOCK_TICKS_PER_SECOND = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim());
/** The fields each Python script reads from `perf script` (profile-buckets.py for profiles, syscall-timeline.py for traces). */
const SCRIPT_FIELDS = { data: 'comm,tid,ip,sym,dso', trace: 'pid,tid,time,event,trace,ip,sym,dso' };

const { positionals, values } = parseArgs({ allowPositionals: true, options: { rounds: { type: 'string', default: '3' }, seconds: { type: 'string', default: '3' }, stat: { type: 'boolean', default: false }, trace: { type: 'boolean', default: false } } });
const kind = positionals[0] as Kind;
const prefix = positionals[1];
if (!KINDS.includes(kind) || prefix === undefined) {
  process.stderr.write(`usage: profile-small.ts ${KINDS.join('|')} OUT_PREFIX [--rounds N] [--seconds S] [--stat | --trace]\n`);
  process.exit(2);
}
if (!Number.isInteger(CLOCK_TICKS_PER_SECOND) || CLOCK_TICKS_PER_SECOND <= 0) throw new Error(`getconf CLK_TCK gave ${CLOCK_TICKS_PER_SECOND}`);
const rounds = Number(values.rounds);
const durationMs = Number(values.seconds) * 1000;

function cpuSecondsOf(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS_PER_SECOND;
}

async function drive(context: SuiteContext, server: RunningServer, round: number): Promise<DriverResult> {
  const bare = server.kind === 'bare-http';
  switch (kind) {
    case 'get':
      return wrkOn(context, server, 'GET', durationMs);
    case 'put':
      return wrkOn(context, server, 'PUT', durationMs);
    case 'head':
    case 'head-c1':
      return loadOn(server, { bucket: BENCH_BUCKET, workload: 'head', size: SMALL_SIZE, concurrency: kind === 'head' ? CONNECTIONS : 1, durationMs, keyPrefix: SMALL_PREFIX, keyCount: context.settings.smallObjectCount, prepare: false });
    case 'delete':
      return loadOn(server, {
        bucket: BENCH_BUCKET,
        workload: 'delete',
        size: SMALL_SIZE,
        concurrency: CONNECTIONS,
        durationMs: bare ? durationMs : 60_000,
        keyPrefix: `delete-${round}/`,
        keyCount: bare ? 10_000_000 : DELETE_KEYS,
        prepare: false,
      });
  }
}

async function profiled(context: SuiteContext, server: RunningServer, round: number): Promise<void> {
  if (kind === 'delete' && server.kind === 'talus') await populate(server, 'objects to delete', BENCH_BUCKET, [{ prefix: `delete-${round}/`, count: DELETE_KEYS }], SMALL_SIZE);
  const output = `${prefix}-${server.kind}-${round}.${values.stat ? 'stat' : values.trace ? 'trace' : 'data'}`;
  const perfArgs = values.stat
    ? ['stat', '-x', ',', '-e', STAT_EVENTS.join(','), '-p', String(server.pid), '-o', output]
    : values.trace
      ? ['record', '-g', '-e', `cpu-clock/freq=${PERF_FREQUENCY_HZ}/`, '-e', 'raw_syscalls:sys_enter,raw_syscalls:sys_exit', '-p', String(server.pid), '-o', output]
      : ['record', '-g', '-F', PERF_FREQUENCY_HZ, '-p', String(server.pid), '-o', output];
  const perf = spawn('perf', perfArgs, { stdio: ['ignore', 'ignore', 'pipe'] });
  let perfStderr = '';
  perf.stderr.setEncoding('utf8').on('data', (chunk: string) => (perfStderr += chunk));
  const unregister = registerCleanup(`perf (pid ${perf.pid})`, async () => {
    if (perf.exitCode === null && perf.signalCode === null) perf.kill('SIGINT');
  });
  // perf ends with SIGINT re-raised (or 130) after writing its output when we stop it: that is success.
  const exited = new Promise<void>((resolve, reject) => {
    perf.once('error', (error) => reject(new Error(`perf could not start: ${error.message}`)));
    perf.once('exit', (code, signal) => {
      if (code === 0 || code === 130 || signal === 'SIGINT') resolve();
      else reject(new Error(`perf ${perfArgs[0]} exited with ${code ?? signal}:\n${perfStderr.trim()}`));
    });
  });
  exited.catch(() => {}); // awaited below; an early failure must not be an unhandled rejection meanwhile
  await Promise.race([new Promise((resolve) => setTimeout(resolve, 300)), exited]); // perf attaches (or failed at once)
  if (perf.exitCode !== null || perf.signalCode !== null) throw new Error(`perf ${perfArgs[0]} ended before the load started (${perf.exitCode ?? perf.signalCode}):\n${perfStderr.trim()}`);
  const cpuBefore = cpuSecondsOf(server.pid);
  const started = performance.now();
  const result = await drive(context, server, round);
  const seconds = (performance.now() - started) / 1000;
  const cpu = cpuSecondsOf(server.pid) - cpuBefore;
  perf.kill('SIGINT');
  try {
    await exited;
  } finally {
    unregister();
  }
  if (!values.stat) {
    // The map that names the JavaScript frames exists now: dump the recording while it does.
    const fields = values.trace ? SCRIPT_FIELDS.trace : SCRIPT_FIELDS.data;
    // Straight into the file: a trace's dump (every system call with its stack) can pass a string's size limit.
    const dump = openSync(`${output}.txt`, 'w');
    try {
      execFileSync('perf', ['script', '-i', output, '-F', fields], { stdio: ['ignore', dump, 'inherit'] });
    } finally {
      closeSync(dump);
    }
  }
  const operations = result.operations;
  if (values.stat) {
    const counts = readFileSync(output, 'utf8').split('\n').map((line) => line.split(',')).filter((fields) => fields.length > 2 && /^\d+$/.test(fields[0]!));
    process.stdout.write(`${server.kind} round ${round} per request: ${counts.map((fields) => `${fields[2]!.replace('syscalls:sys_enter_', '')} ${(Number(fields[0]) / operations).toFixed(2)}`).join(', ')}\n`);
  }
  process.stdout.write(
    `${server.kind} round ${round}: ${result.opsPerSecond.toFixed(0)} ops/s, p50 ${result.latencyMs.p50.toFixed(3)} ms, server CPU ${((cpu / seconds) * 100).toFixed(0)} %, ${((cpu * 1e6) / operations).toFixed(1)} µs/op, errors ${result.errors} → ${output}\n`,
  );
}

/** NODE_OPTIONS for the profiled servers: the caller's, plus the flag that makes perf name JavaScript frames. */
const PROFILED_NODE_OPTIONS = [process.env.NODE_OPTIONS, '--perf-basic-prof'].filter((part) => part !== undefined && part !== '').join(' ');
/** The perf maps the servers write (/tmp/perf-PID.map), removed when this tool ends. */
const perfMaps: string[] = [];
registerCleanup('perf maps', async () => {
  for (const map of perfMaps) rmSync(map, { force: true });
});

function expectPerfMap(server: RunningServer): void {
  const map = `/tmp/perf-${server.pid}.map`;
  perfMaps.push(map);
  if (!values.stat && !existsSync(map)) throw new Error(`${server.label} (pid ${server.pid}) wrote no ${map}: started without --perf-basic-prof, its JavaScript frames would have no names`);
}

/** The bare server takes the caller's environment: NODE_OPTIONS is set for its start only. */
async function startBareProfiled(settings: Parameters<typeof startBaseline>[0] & { kind: 'bare-http' }): Promise<RunningServer> {
  const previous = process.env.NODE_OPTIONS;
  process.env.NODE_OPTIONS = PROFILED_NODE_OPTIONS;
  try {
    return await startBaseline(settings);
  } finally {
    if (previous === undefined) delete process.env.NODE_OPTIONS;
    else process.env.NODE_OPTIONS = previous;
  }
}

exitCleanlyOnSignals();
const options: SuiteOptions = parseSuiteOptions([]) as SuiteOptions;
const scratch = await temporaryDirectory('talus-profile-small-');
const context = new SuiteContext(MODE_SETTINGS.quick, options, scratch.path);
let talus: RunningServer | undefined;
let bare: RunningServer | undefined;
try {
  talus = await startTalus(1, { env: { NODE_OPTIONS: PROFILED_NODE_OPTIONS } });
  expectPerfMap(talus);
  if (kind === 'put' || kind === 'delete') await ensureBucket(talus, BENCH_BUCKET);
  else await ensureSmallObjects(talus, context.settings.smallObjectCount);
  const key = preparedKey(SMALL_PREFIX, 0);
  const method = kind === 'get' ? 'GET' : kind === 'put' ? 'PUT' : kind === 'delete' ? 'DELETE' : 'HEAD';
  const captured = method === 'PUT' ? await capture(talus, { method, bucket: BENCH_BUCKET, key: 'capture/put' }, Buffer.alloc(SMALL_OBJECT_BYTES, 120)) : await capture(talus, { method, bucket: BENCH_BUCKET, key: method === 'DELETE' ? 'capture/delete' : key });
  bare = await startBareProfiled({ kind: 'bare-http', workers: 1, responses: { [method]: captured } });
  expectPerfMap(bare);
  // Warm-up, unprofiled: as the suite does, each server runs its load once first.
  for (const server of [talus, bare] as const) {
    if (kind === 'delete' && server.kind === 'talus') await populate(server, 'warm-up', BENCH_BUCKET, [{ prefix: 'delete-warm/', count: 3000 }], SMALL_SIZE);
    if (kind === 'delete' && server.kind === 'talus') await loadOn(server, { bucket: BENCH_BUCKET, workload: 'delete', size: SMALL_SIZE, concurrency: CONNECTIONS, durationMs: 60_000, keyPrefix: 'delete-warm/', keyCount: 3000, prepare: false });
    else await drive(context, server, -1);
  }
  for (let round = 0; round < rounds; round++) for (const server of [talus, bare] as const) await profiled(context, server, round);
} finally {
  await bare?.stop();
  await talus?.stop();
  await scratch.remove();
  for (const map of perfMaps) rmSync(map, { force: true });
}
