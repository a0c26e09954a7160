/**
 * Two Talus builds or settings compared side by side, as the observability
 * row measures (docs/PERFORMANCE.md, "Metrics and logs", rounds 8 and 9):
 * each pair of fresh servers, A and B, pinned together to one CPU and driven
 * at once (or in turn, `--in-turn`) by their own wrk on the other CPUs,
 * `runs` runs of `seconds`;
 * which wrk starts first alternates, and which server starts first alternates
 * by pair. Per run: B ÷ A per unit of CPU (A's CPU µs per GET ÷ B's, every
 * thread, schedstat) and B ÷ A ops/s; per pair, their medians; over the
 * pairs, the mean ± standard error. Eight pairs resolve about ±0.5 % per
 * unit of CPU on the 2-vCPU development machine.
 *
 *   node --import tsx bench/ab.ts --a ../main --b . --mode-a log --mode-b log --pairs 8
 *
 * A side is a checkout (`--a`, `--b`: its bin/talus.js; build it first, or
 * its sources run through tsx) and a mode: `off` (no admin listener, no
 * access log), `log` (--access-log FILE), `scrape` (an admin listener,
 * /metrics scraped once a second), `on` (both); `--env-a`/`--env-b` add
 * environment variables (`K=V K2=V2`) to one side's server, and
 * `--node-args-a`/`--node-args-b` options of node itself, given with `=`
 * as they start with a dash (`--node-args-b='--trace-gc
 * --max-semi-space-size=16'`: V8's, which NODE_OPTIONS does not all take).
 * `--warmups N` (default 2) unmeasured runs of 1 s come first in each pair.
 * `--connections N` sets wrk's connections per side (default 32);
 * `--in-turn` drives one side and then the other in each run instead of
 * both at once, the other server idle while one is measured (noisier, and
 * twice as long: the check that a difference is not made by the two
 * sharing a CPU; round 14).
 * Besides the ratios, each side's CPU per GET is split into its event loop
 * (the main thread) and the rest (V8's compiler and GC helpers, libuv's
 * pool, and child processes such as tsx's esbuild service when sources run
 * through tsx), to say where a difference is spent.
 */
import { realpathSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { median } from './suite/alternate.ts';
import { exitCleanlyOnSignals, temporaryDirectory } from './suite/cleanup.ts';
import { allowedCpus, pinProcess, pinProcessTree, sideBySidePlacement } from './suite/placement.ts';
import { presign } from './suite/presign.ts';
import { ResourceWindow } from './suite/process-stats.ts';
import { freePort, ROOT, startTalus, type RunningServer } from './suite/servers.ts';
import { BENCH_BUCKET, SMALL_OBJECT_BYTES, SMALL_PREFIX, ensureSmallObjects, preparedKey } from './suite/setup.ts';
import { runWrk, WRK_SECONDS_MAX, WRK_SECONDS_MIN } from './suite/wrk.ts';
import { METRICS_TOKEN, Scraper } from './suite/workloads/observability.ts';
import { assert } from '../src/util/assert.ts';

export const AB_MODES = ['off', 'log', 'scrape', 'on'] as const;
export type AbMode = (typeof AB_MODES)[number];

export interface AbSide {
  /** A Talus checkout (its bin/talus.js runs). */
  root: string;
  mode: AbMode;
  env: Record<string, string>;
  /** Options of node before bin/talus.js (each `--name` or `--name=value`). */
  nodeArgs?: readonly string[];
}

export interface AbOptions {
  a: AbSide;
  b: AbSide;
  pairs: number;
  runs: number;
  seconds: number;
  /** 4 KiB objects per server (wrk GETs up to 256 of them). */
  objects: number;
  /** Unmeasured runs of WRK_SECONDS_MIN before each pair's measured runs (2 when not given). */
  warmups?: number;
  /** wrk's connections per side (SIDE_CONNECTIONS when not given). */
  connections?: number;
  /**
   * Each run drives one side, then the other (which goes first alternates),
   * instead of both at once: the other server is idle while one is measured
   * (still scraped once a second in `scrape` and `on`). Noisier (the two
   * runs see the machine at two moments), and free of what two servers
   * driven at once on one CPU do to each other.
   */
  inTurn?: boolean;
}

export interface AbPair {
  /** B ÷ A per unit of CPU and ops/s, run by run, in the order run. */
  cpuRatios: number[];
  opsRatios: number[];
  cpuMedian: number;
  opsMedian: number;
}

/**
 * One side's CPU per GET over all its measured runs (their total CPU ÷
 * their total GETs), and over the runs whose CPU could be split by thread
 * (not those that fell back to ticks: process-stats), the main thread's
 * and the rest's (other threads, child processes) per GET.
 */
export interface AbSideCpu {
  cpuMicrosPerGet: number;
  mainThreadMicrosPerGet: number;
  otherMicrosPerGet: number;
  /** Runs whose CPU was not split (none in a normal run); the split is over the others. */
  runsNotSplit: number;
}

export interface AbResult {
  pairs: AbPair[];
  a: AbSideCpu;
  b: AbSideCpu;
  /** Over the pairs' medians: mean and standard error (0 for one pair). */
  cpu: { mean: number; standardError: number };
  ops: { mean: number; standardError: number };
  /** Every measured run of each side, in the order run. */
  runs: { a: SideRun[]; b: SideRun[] };
}

/** Each side's wrk: half of get-4k's, as the observability row. */
const SIDE_CONNECTIONS = 32;
/** A bound on --connections: wrk (one thread per side) needs at least one, and stays under the usual limit of 1 024 open files with its own. */
const CONNECTIONS_MAX = 1000;
const URLS_PER_SIDE_MAX = 256;
const PAIRS_MAX = 100;
const RUNS_MAX = 50;
const OBJECTS_MAX = 100_000;
const WARMUPS_DEFAULT = 2;
const WARMUPS_MAX = 600;
/** A node option as --node-args takes it: `--name` or `--name=value`, no spaces. */
const NODE_OPTION = /^--[A-Za-z0-9][A-Za-z0-9_-]*(=\S*)?$/;
/**
 * Options that would run something else than the server (a script, tests,
 * a REPL, a version line) or put a supervisor in its place as the measured
 * process (--watch): refused, so a run always measures bin/talus.js itself.
 */
const NODE_OPTION_REFUSED = /^--(eval|print|test|watch|check|run|version|help|interactive|inspect|v8-options|completion-bash)(\b|-|=|$)/;

/** Why `option` cannot be given to a side's node, or undefined when it can. */
function nodeOptionRefusal(option: string): string | undefined {
  if (!NODE_OPTION.test(option)) return `ab: --node-args are node options (--name or --name=value) separated by spaces, not ${option}`;
  if (NODE_OPTION_REFUSED.test(option)) return `ab: ${option} would run something else than the server: not a node option ab passes`;
  return undefined;
}
/** An environment variable's name (so `NODE_OPTIONS=--a --b` is refused rather than read as a variable named `--b`). */
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

interface Started {
  server: RunningServer;
  urls: string[];
  metricsUrl: string | undefined;
  accessLog: string | undefined;
}

async function startSide(side: AbSide, label: string, scratch: string, objects: number): Promise<Started> {
  const args: string[] = [];
  let metricsUrl: string | undefined;
  if (side.mode === 'scrape' || side.mode === 'on') {
    const adminPort = await freePort();
    args.push('--console-address', `127.0.0.1:${adminPort}`);
    metricsUrl = `http://127.0.0.1:${adminPort}/metrics`;
  } else {
    args.push('--console-address', 'none');
  }
  const accessLog = side.mode === 'log' || side.mode === 'on' ? join(scratch, `${label}-${Date.now()}-access.log`) : undefined;
  if (accessLog !== undefined) args.push('--access-log', accessLog);
  const server = await startTalus(1, { root: side.root, args, env: { ...side.env, TALUS_METRICS_TOKEN: METRICS_TOKEN }, label, nodeArgs: side.nodeArgs });
  try {
    await ensureSmallObjects(server, objects);
    const urls: string[] = [];
    for (let id = 0; id < Math.min(objects, URLS_PER_SIDE_MAX); id++) urls.push(await presign(server, { method: 'GET', bucket: BENCH_BUCKET, key: preparedKey(SMALL_PREFIX, id) }));
    return { server, urls, metricsUrl, accessLog };
  } catch (error) {
    await server.stop();
    throw error;
  }
}

/** One side's run: its ops/s and its CPU µs per GET (schedstat). */
export interface SideRun {
  opsPerSecond: number;
  cpuMicrosPerGet: number;
  /** The run's GETs and its CPU (all threads, and the main thread's: 0 when not split), in µs: summed over runs for AbSideCpu. */
  gets: number;
  cpuMicros: number;
  mainThreadMicros: number;
  /** Which side ran: A or B. */
  side: string;
  /** When its measurement began and ended (performance.now(), ms): whether the two sides' runs overlapped (--in-turn). */
  startedMs: number;
  endedMs: number;
}

/** Which side's run starts first (at once: whose wrk starts first; in turn: which side is measured first): alternating run by run, and from pair to pair (an odd count of runs evens out over two pairs). */
export function aStartsFirst(pair: number, run: number): boolean {
  return (pair + run) % 2 === 0;
}

/** A side's measured runs added up: its CPU per GET over all of them, and split by thread over those that could be split. */
export function sideCpuOfRuns(runs: readonly SideRun[]): AbSideCpu {
  let gets = 0;
  let cpuMicros = 0;
  let splitGets = 0;
  let splitCpuMicros = 0;
  let splitMainThreadMicros = 0;
  let runsNotSplit = 0;
  for (const run of runs) {
    gets += run.gets;
    cpuMicros += run.cpuMicros;
    // A live server's main thread always runs during a run: 0 means the window could not split its CPU by thread.
    if (run.mainThreadMicros > 0) {
      splitGets += run.gets;
      splitCpuMicros += run.cpuMicros;
      splitMainThreadMicros += run.mainThreadMicros;
    } else {
      runsNotSplit++;
    }
  }
  assert(gets > 0, 'ab: a side with no GET');
  const split = splitGets > 0;
  return {
    cpuMicrosPerGet: cpuMicros / gets,
    mainThreadMicrosPerGet: split ? splitMainThreadMicros / splitGets : Number.NaN,
    otherMicrosPerGet: split ? (splitCpuMicros - splitMainThreadMicros) / splitGets : Number.NaN,
    runsNotSplit,
  };
}

async function drive(side: Started, seconds: number, drivers: string, scratch: string, connections: number): Promise<SideRun> {
  const startedMs = performance.now();
  const window = ResourceWindow.begin(side.server.pid);
  let result: Awaited<ReturnType<typeof runWrk>>;
  try {
    result = await runWrk({ urls: side.urls, method: 'GET', objectBytes: SMALL_OBJECT_BYTES, connections, threads: 1, seconds, scriptDirectory: scratch, cpus: drivers });
  } catch (error) {
    window.end(); // its /proc sampling timer stops
    throw error;
  }
  const usage = window.end();
  assert(result.operations > 0 && result.errors === 0, `${side.server.label}: ${result.operations} GETs, ${result.errors} errors (${result.errorDetail.join('; ')})`);
  assert(usage.onCpuMicros > 0, `${side.server.label}: no CPU time read (schedstat)`);
  return {
    opsPerSecond: result.opsPerSecond,
    cpuMicrosPerGet: usage.onCpuMicros / result.operations,
    gets: result.operations,
    cpuMicros: usage.onCpuMicros,
    mainThreadMicros: usage.mainThreadOnCpuMicros,
    side: side.server.label,
    startedMs,
    endedMs: performance.now(),
  };
}

/** A run's B ÷ A: per unit of CPU (A's CPU per GET ÷ B's) and ops/s (B's ÷ A's). */
export function runRatios(a: Pick<SideRun, 'opsPerSecond' | 'cpuMicrosPerGet'>, b: Pick<SideRun, 'opsPerSecond' | 'cpuMicrosPerGet'>): { cpu: number; ops: number } {
  return { cpu: a.cpuMicrosPerGet / b.cpuMicrosPerGet, ops: b.opsPerSecond / a.opsPerSecond };
}

/** Both sides' runs; when one fails, its error once the other has ended too (no wrk left running against a server being stopped). */
async function both<T>(first: Promise<T>, second: Promise<T>): Promise<[T, T]> {
  const [x, y] = await Promise.allSettled([first, second]);
  if (x.status === 'rejected') throw x.reason;
  if (y.status === 'rejected') throw y.reason;
  return [x.value, y.value];
}

/** The mean of `values` and its standard error (0 for one value). */
export function meanAndError(values: readonly number[]): { mean: number; standardError: number } {
  assert(values.length > 0, 'ab: no value');
  const mean = values.reduce((sum, value) => sum + value, 0) / values.length;
  if (values.length < 2) return { mean, standardError: 0 };
  const variance = values.reduce((sum, value) => sum + (value - mean) ** 2, 0) / (values.length - 1);
  return { mean, standardError: Math.sqrt(variance / values.length) };
}

/** Runs the comparison; `report` gets a line per pair. */
export async function compareSideBySide(options: AbOptions, report: (line: string) => void = () => undefined): Promise<AbResult> {
  assert(Number.isInteger(options.pairs) && options.pairs >= 1 && options.pairs <= PAIRS_MAX, `ab: 1 to ${PAIRS_MAX} pairs, not ${options.pairs}`);
  assert(Number.isInteger(options.runs) && options.runs >= 1 && options.runs <= RUNS_MAX, `ab: 1 to ${RUNS_MAX} runs, not ${options.runs}`);
  assert(Number.isInteger(options.seconds) && options.seconds >= WRK_SECONDS_MIN && options.seconds <= WRK_SECONDS_MAX, `ab: whole seconds from ${WRK_SECONDS_MIN} to ${WRK_SECONDS_MAX}, not ${options.seconds}`);
  assert(Number.isInteger(options.objects) && options.objects >= 1 && options.objects <= OBJECTS_MAX, `ab: 1 to ${OBJECTS_MAX} objects, not ${options.objects}`);
  const warmups = options.warmups ?? WARMUPS_DEFAULT;
  assert(Number.isInteger(warmups) && warmups >= 0 && warmups <= WARMUPS_MAX, `ab: 0 to ${WARMUPS_MAX} warm-up runs, not ${options.warmups}`);
  const connections = options.connections ?? SIDE_CONNECTIONS;
  assert(Number.isInteger(connections) && connections >= 1 && connections <= CONNECTIONS_MAX, `ab: 1 to ${CONNECTIONS_MAX} connections per side, not ${options.connections}`);
  for (const side of [options.a, options.b]) {
    for (const option of side.nodeArgs ?? []) {
      const refusal = nodeOptionRefusal(option);
      assert(refusal === undefined, refusal ?? '');
    }
  }
  const allowed = await allowedCpus();
  const placement = sideBySidePlacement(allowed);
  const scratch = await temporaryDirectory('talus-ab-');
  const pairs: AbPair[] = [];
  const runsOf: { a: SideRun[]; b: SideRun[] } = { a: [], b: [] };
  try {
    // This process (the scraper, the /proc readings) keeps off the servers' CPU; given back after.
    await pinProcess(process.pid, placement.drivers);
    for (let pair = 0; pair < options.pairs; pair++) {
      const aFirst = pair % 2 === 0;
      const first = await startSide(aFirst ? options.a : options.b, aFirst ? 'A' : 'B', scratch.path, options.objects);
      let second: Started | undefined;
      const scrapers: Scraper[] = [];
      try {
        second = await startSide(aFirst ? options.b : options.a, aFirst ? 'B' : 'A', scratch.path, options.objects);
        const [a, b] = aFirst ? [first, second] : [second, first];
        await pinProcessTree(a.server.pid, placement.servers);
        await pinProcessTree(b.server.pid, placement.servers);
        for (const side of [a, b]) {
          if (side.metricsUrl === undefined) continue;
          const scraper = new Scraper(side.metricsUrl);
          // Proves the side is scraped (the token accepted) before anything is measured; then once a second.
          await scraper.scrapeOnce();
          scraper.start();
          scrapers.push(scraper);
        }
        const driveOne = (side: Started, seconds: number): Promise<SideRun> => drive(side, seconds, placement.drivers, scratch.path, connections);
        const driveBoth = async (seconds: number, aStartsFirst: boolean): Promise<[SideRun, SideRun]> => {
          if (options.inTurn === true) {
            if (aStartsFirst) {
              const ra = await driveOne(a, seconds);
              return [ra, await driveOne(b, seconds)];
            }
            const rb = await driveOne(b, seconds);
            return [await driveOne(a, seconds), rb];
          }
          return aStartsFirst
            ? both(driveOne(a, seconds), driveOne(b, seconds))
            : both(driveOne(b, seconds), driveOne(a, seconds)).then(([q, p]) => [p, q]);
        };
        // Warm-up: driven as the measured runs are (at once, or in turn), unmeasured (a fresh process's first seconds cost ~2× a warm one's).
        for (let warmUp = 0; warmUp < warmups; warmUp++) await driveBoth(WRK_SECONDS_MIN, warmUp % 2 === 0);
        const cpuRatios: number[] = [];
        const opsRatios: number[] = [];
        for (let run = 0; run < options.runs; run++) {
          const [ra, rb] = await driveBoth(options.seconds, aStartsFirst(pair, run));
          const ratios = runRatios(ra, rb);
          runsOf.a.push(ra);
          runsOf.b.push(rb);
          cpuRatios.push(ratios.cpu);
          opsRatios.push(ratios.ops);
        }
        const result: AbPair = { cpuRatios, opsRatios, cpuMedian: median(cpuRatios), opsMedian: median(opsRatios) };
        pairs.push(result);
        const percents = (values: readonly number[]): string => values.map((value) => (value * 100).toFixed(1)).join(' ');
        report(`pair ${pair}: B ÷ A per unit of CPU ${percents(cpuRatios)} (median ${(result.cpuMedian * 100).toFixed(1)} %); ops/s ${percents(opsRatios)} (median ${(result.opsMedian * 100).toFixed(1)} %)`);
      } finally {
        // Stopping a scraper throws its first failure: after the servers are stopped.
        const stopped = Promise.allSettled(scrapers.map((scraper) => scraper.stop()));
        await second?.server.stop();
        await first.server.stop();
        for (const log of [first.accessLog, second?.accessLog]) if (log !== undefined) await rm(log, { force: true });
        for (const outcome of await stopped) if (outcome.status === 'rejected') throw outcome.reason;
      }
    }
  } finally {
    await pinProcess(process.pid, allowed.join(','));
    await scratch.remove();
  }
  return {
    pairs,
    a: sideCpuOfRuns(runsOf.a),
    b: sideCpuOfRuns(runsOf.b),
    cpu: meanAndError(pairs.map((pair) => pair.cpuMedian)),
    ops: meanAndError(pairs.map((pair) => pair.opsMedian)),
    runs: runsOf,
  };
}

export function parseEnv(text: string | undefined): Record<string, string> {
  const env: Record<string, string> = {};
  for (const entry of (text ?? '').split(' ').filter(Boolean)) {
    const at = entry.indexOf('=');
    assert(at > 0 && ENV_NAME.test(entry.slice(0, at)), `ab: --env entries are NAME=VALUE separated by spaces (a value without spaces), not ${entry}`);
    env[entry.slice(0, at)] = entry.slice(at + 1);
  }
  return env;
}

/** `--node-args-a='--x --y=1'`: node options separated by spaces. */
export function parseNodeArgs(text: string | undefined): string[] {
  const options = (text ?? '').split(' ').filter(Boolean);
  for (const option of options) {
    const refusal = nodeOptionRefusal(option);
    assert(refusal === undefined, refusal ?? '');
  }
  return options;
}

/** A whole number given on the command line (`--warmups=` is not 0). */
function parseCount(text: string | undefined, fallback: number, name: string): number {
  if (text === undefined) return fallback;
  assert(/^\d+$/.test(text), `ab: --${name} is a whole number, not '${text}'`);
  return Number(text);
}

function parseMode(text: string | undefined): AbMode {
  const mode = (text ?? 'off') as AbMode;
  assert(AB_MODES.includes(mode), `ab: a mode is one of ${AB_MODES.join(', ')}, not ${text}`);
  return mode;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      a: { type: 'string' }, b: { type: 'string' }, 'mode-a': { type: 'string' }, 'mode-b': { type: 'string' },
      'env-a': { type: 'string' }, 'env-b': { type: 'string' }, pairs: { type: 'string' }, runs: { type: 'string' },
      seconds: { type: 'string' }, objects: { type: 'string' }, warmups: { type: 'string' },
      'node-args-a': { type: 'string' }, 'node-args-b': { type: 'string' }, connections: { type: 'string' }, 'in-turn': { type: 'boolean' },
    },
  });
  const options: AbOptions = {
    a: { root: resolve(values.a ?? ROOT), mode: parseMode(values['mode-a']), env: parseEnv(values['env-a']), nodeArgs: parseNodeArgs(values['node-args-a']) },
    b: { root: resolve(values.b ?? ROOT), mode: parseMode(values['mode-b']), env: parseEnv(values['env-b']), nodeArgs: parseNodeArgs(values['node-args-b']) },
    pairs: Number(values.pairs ?? 8),
    runs: Number(values.runs ?? 5),
    seconds: Number(values.seconds ?? 2),
    objects: Number(values.objects ?? 1000),
    warmups: parseCount(values.warmups, WARMUPS_DEFAULT, 'warmups'),
    connections: parseCount(values.connections, SIDE_CONNECTIONS, 'connections'),
    inTurn: values['in-turn'] === true,
  };
  const result = await compareSideBySide(options, (line) => console.log(line));
  const side = (which: AbSide): string =>
    `${which.root} ${which.mode}${Object.keys(which.env).length > 0 ? ` ${JSON.stringify(which.env)}` : ''}${(which.nodeArgs ?? []).length > 0 ? ` node ${which.nodeArgs!.join(' ')}` : ''}`;
  const summary = ({ mean, standardError }: { mean: number; standardError: number }): string => `${(mean * 100).toFixed(1)} ± ${(standardError * 100).toFixed(1)} %`;
  console.log(sideCpuLine(result));
  const how = `${options.inTurn === true ? 'in turn' : 'at once'}, ${options.connections} connections each`;
  console.log(`B (${side(options.b)}) ÷ A (${side(options.a)}), ${result.pairs.length} pairs ${how}: per unit of CPU ${summary(result.cpu)}; ops/s ${summary(result.ops)} (mean of the pairs' medians ± standard error)`);
}

/** Each side's CPU per GET over its measured runs, split into the event loop and the other threads. */
export function sideCpuLine(result: Pick<AbResult, 'a' | 'b'>): string {
  const one = (name: string, cpu: AbSideCpu): string => {
    const split = Number.isNaN(cpu.mainThreadMicrosPerGet)
      ? 'not split by thread'
      : `event loop ${cpu.mainThreadMicrosPerGet.toFixed(1)}, other threads ${cpu.otherMicrosPerGet.toFixed(1)}`;
    const notSplit = cpu.runsNotSplit > 0 && !Number.isNaN(cpu.mainThreadMicrosPerGet) ? `, split over the runs but ${cpu.runsNotSplit}` : '';
    return `${name} ${cpu.cpuMicrosPerGet.toFixed(1)} µs/GET (${split}${notSplit})`;
  };
  return `CPU per GET, all measured runs: ${one('A', result.a)}; ${one('B', result.b)}`;
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(realpathSync(process.argv[1])).href) {
  exitCleanlyOnSignals();
  await main();
}
