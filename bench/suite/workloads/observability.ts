/**
 * What metrics and logs cost (issue 13: at most 3 % of 4 KiB GET
 * throughput). Two Talus servers of their own with the same objects, driven
 * by the same wrk requests as get-4k / put-4k:
 *
 *   off  `--console-address none`, no access log: no admin listener, so no
 *        /metrics and nobody scraping. The request counters themselves are
 *        always kept (the S3 front always has its observer; Talus has no
 *        switch for them): this is the nearest to "off" Talus can run.
 *   on   an admin listener with TALUS_METRICS_TOKEN, scraped once a second
 *        with the token as Prometheus would, `--access-log FILE`, and the
 *        audit log (always on; it records admin calls and refusals, so a
 *        clean GET run adds nothing to it).
 *
 * Side by side on one CPU: both servers, every thread of them (the log's
 * writes on libuv's threads, the scrape's rendering), are pinned to one CPU
 * and driven at once, each by its own wrk (half of get-4k's connections and
 * threads) pinned to the other CPUs (placement.ts). The two take turns on
 * that CPU every few milliseconds, so the machine's swings in speed — ±15 %
 * from second to second on a shared virtual machine, each virtual CPU on
 * its own — fall on both alike. The suite's own process keeps to the
 * drivers' CPUs meanwhile, and wrk's URLs are signed before the measured
 * runs.
 *
 * What is judged is throughput per unit of CPU: each side's CPU time per
 * request (every thread of it, its system calls and the network work done
 * in its threads included, read to the nanosecond from schedstat), "off" ÷
 * "on". A CPU-bound server serves its CPU ÷ its CPU per request, so this is
 * the throughput the same CPU gives with the observers on, against off. Not
 * in it: work the kernel does in threads of its own, chiefly writing the
 * access log's pages back to the disk later (a flush worker's), which
 * flatters "on" by that much; and time "on" spends waiting rather than
 * working (a slow disk, a full thread pool), which its CPU per request
 * cannot show — each side's share of the CPU is in the notes for that, and
 * a warning when "on" got less of it than "off". The two sides' ops/s of a
 * run read the same thing plus how the scheduler shared the CPU between
 * them in that run, which is most of their noise: two identical servers
 * read 95.6–103.3 % of each other by ops/s, pair by pair, and 99.5–101.5 %
 * per unit of CPU (docs/PERFORMANCE.md, "Metrics and logs, round 9"). The
 * ops/s ratios are in the notes, not judged. Measured in turn, as this row
 * was until 2026-12-07, two identical servers read 76–121 % of each other
 * run by run.
 *
 * SERVER_PAIRS fresh pairs are measured in turn (a process keeps its own
 * speed for life: JIT decisions, memory layout), each for
 * `observabilityRounds` side-by-side runs, which wrk is started first
 * alternating. A pair's ratio is its median run's; the rows are the median
 * run of the pair whose ratio is the median of the pairs' (judgePairs), so
 * no single process and no single run decides.
 *
 * The scraper runs from the warm-up to the end at its interval, as
 * Prometheus would, not restarted with each run.
 */
import assert from 'node:assert/strict';
import { open, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { median } from '../alternate.ts';
import type { SuiteContext, Workload, WorkloadOutcome } from '../context.ts';
import { measure, type Row } from '../measure.ts';
import { allowedCpus, pinProcess, pinProcessTree, sideBySidePlacement, type SideBySidePlacement } from '../placement.ts';
import { freePort, type RunningServer } from '../servers.ts';
import { BENCH_BUCKET, ensureBucket, ensureSmallObjects } from '../setup.ts';
import { WRK_SECONDS_MIN } from '../wrk.ts';
import { CONNECTIONS, WRK_THREADS, presignedFor, wrkOn } from './small-objects.ts';

export const OBSERVERS_OFF_LABEL = 'Talus, observers off';
export const OBSERVERS_ON_LABEL = 'Talus, metrics + logs on';
/** Prometheus's usual scrape interval is 15 s; once a second is a busy one, the worst it plausibly gets. */
const SCRAPE_INTERVAL_MS = 1000;
/** A scrape that fails is a broken "on" side, not a measurement: the workload fails. */
const SCRAPE_TIMEOUT_MS = 10_000;
export const METRICS_TOKEN = 'bench-metrics-token-0123456789';
/** Each side's wrk: half of get-4k's, so the two servers together see what one sees there. */
const SIDE_CONNECTIONS = CONNECTIONS / 2;
const SIDE_THREADS = Math.max(1, WRK_THREADS / 2);
/** Below this much of their CPU together (CPU µs are read in 10 ms ticks: ±1 % over 2 s), the servers were not the limit. */
const CPU_BOUND_PERCENT_MIN = 90;
/**
 * Below this, "on" got less of the shared CPU than "off" (the median run):
 * it waited where "off" worked, and lost ops/s its CPU per request does not
 * show. Two identical servers' shares differ by a few percent run to run.
 */
const CPU_SHARE_MIN = 0.97;

/**
 * Fresh pairs of servers per row, each pair measured in turn: a process
 * keeps its own speed for life (JIT decisions are made once per process).
 * Odd, so the median pair is a pair (judgePairs); five, as pairs' ratios
 * per unit of CPU spread over ~3 points (94.9–97.9 % in six pairs of the
 * same two builds): the median of five is good to about ±0.5. Each costs
 * two starts, populations and warm-ups (~10 s) and its runs.
 */
export const SERVER_PAIRS = 5;

/** One side-by-side run: both sides' rows, measured at the same time. */
export interface SideBySideRun {
  off: Row;
  on: Row;
}

/** One pair's side-by-side runs, in the order run. */
export interface PairRuns {
  runs: readonly SideBySideRun[];
}

/** How a row's pairs were judged: each pair's median run's on ÷ off per unit of CPU, and the median pair's rows. */
export interface PairJudgement {
  /** Each pair's on ÷ off per unit of CPU (off CPU µs/op ÷ on's, of its median run), in the order the pairs ran. */
  ratios: number[];
  /** Each pair's median run's on ÷ off ops/s (not judged: it holds the scheduler's share of the CPU too). */
  throughputRatios: number[];
  /** Each pair's median run's "on" CPU µs/op minus its "off" (schedstat). */
  cpuMicros: number[];
  /** The pair whose ratio is the median: the rows are its median run's. */
  medianPair: number;
  off: Row;
  on: Row;
}

/**
 * A run's on ÷ off per unit of CPU: off's CPU µs per request ÷ on's
 * (precise, schedstat). A side that completed nothing (its error fails the
 * target), or whose CPU was not read (no schedstat: the target is then not
 * measured), reads 0, never NaN or Infinity, which would break the sorts.
 */
export const cpuRatioOf = (run: SideBySideRun): number => {
  const off = run.off.serverOnCpuMicrosPerOperation ?? 0;
  const on = run.on.serverOnCpuMicrosPerOperation ?? 0;
  return off > 0 && on > 0 ? off / on : 0;
};

/** A run's on ÷ off share of the CPU they shared (ops/s × CPU per request, each side): its ops/s ratio ÷ its per-CPU ratio. */
export const cpuShareOf = (run: SideBySideRun): number => {
  const busy = (row: Row): number => row.opsPerSecond * (row.serverOnCpuMicrosPerOperation ?? 0);
  return busy(run.off) > 0 ? busy(run.on) / busy(run.off) : 0;
};

/** A run's on ÷ off ops/s (notes only). */
const throughputRatioOf = (run: SideBySideRun): number => (run.off.opsPerSecond > 0 ? run.on.opsPerSecond / run.off.opsPerSecond : 0);

/** A pair's run whose on ÷ off per unit of CPU is the median of its runs' (an even count: the lower of the two middle ones, the dearer "on"). */
export function medianRun(runs: readonly SideBySideRun[]): SideBySideRun {
  assert(runs.length > 0, 'medianRun: no run');
  const sorted = [...runs].sort((a, b) => cpuRatioOf(a) - cpuRatioOf(b));
  return sorted[(sorted.length - 1) >> 1]!;
}

/**
 * The rows of a row of pairs: the median run of the pair whose median run's
 * on ÷ off (per unit of CPU) is the median of the pairs'. An odd count of pairs, so that pair
 * exists (ties: by the order the pairs ran).
 */
export function judgePairs(pairs: readonly PairRuns[]): PairJudgement {
  assert(pairs.length % 2 === 1, 'judgePairs: an odd count of pairs');
  const medians = pairs.map((pair) => medianRun(pair.runs));
  const ratios = medians.map(cpuRatioOf);
  const cpuMicros = medians.map(({ off, on }) => (on.serverOnCpuMicrosPerOperation ?? 0) - (off.serverOnCpuMicrosPerOperation ?? 0));
  const byRatio = ratios.map((ratio, index) => ({ ratio, index })).sort((a, b) => a.ratio - b.ratio || a.index - b.index);
  const medianPair = byRatio[(byRatio.length - 1) / 2]!.index;
  const every = pairs.flatMap((pair) => pair.runs);
  return {
    ratios,
    throughputRatios: medians.map(throughputRatioOf),
    cpuMicros,
    medianPair,
    off: withEveryRunsFaults(medians[medianPair]!.off, every.map((run) => run.off)),
    on: withEveryRunsFaults(medians[medianPair]!.on, every.map((run) => run.on)),
  };
}

/**
 * The median run's row with the errors, stderr lines and peak RSS of every
 * run of its side: a pair or run whose side failed is the one most likely
 * to be left out by the median, and its failure must still fail the target.
 */
function withEveryRunsFaults(row: Row, everyRun: readonly Row[]): Row {
  return {
    ...row,
    errors: everyRun.reduce((sum, run) => sum + run.errors, 0),
    firstErrors: [...new Set(everyRun.flatMap((run) => run.firstErrors))].slice(0, 5),
    serverStderrLines: everyRun.reduce((sum, run) => sum + run.serverStderrLines, 0),
    serverPeakRssMiB: Math.max(...everyRun.map((run) => run.serverPeakRssMiB)),
  };
}

/** Every measured run of a row, over its pairs, and what the notes report. */
interface Runs {
  pairs: PairRuns[];
  scrapes: number;
  lastScrapeBytes: number;
  logLines: number;
  logBytes: number;
}

function observabilityWorkload(id: string, title: string, method: 'GET' | 'PUT'): Workload {
  return {
    id,
    title,
    async run(context): Promise<WorkloadOutcome> {
      // One process per server whatever --workers says: side by side on one CPU, a primary and its workers would only
      // take turns there with the other server's (--workers 2 read 567 µs of CPU per GET where one process reads ~220).
      const workers = 1;
      const rounds = context.settings.observabilityRounds;
      // Odd (judgePairs); one pair when the mode runs fewer rounds than that (smoke: one run).
      const pairs = rounds >= SERVER_PAIRS ? SERVER_PAIRS : 1;
      const allowed = await allowedCpus();
      const placement = sideBySidePlacement(allowed);
      const runs: Runs = { pairs: [], scrapes: 0, lastScrapeBytes: 0, logLines: 0, logBytes: 0 };
      // The suite itself (the scraper, the /proc readings) keeps off the servers' CPU meanwhile; the servers it starts
      // inherit this and are pinned to theirs after their population. Given back in any case: later rows' servers inherit it.
      await pinProcess(process.pid, placement.drivers);
      try {
        for (let pair = 0; pair < pairs; pair++) {
          const accessLogPath = join(context.scratch, `${id}-${pair}-access.log`);
          const adminPort = await freePort();
          const on = { args: ['--console-address', `127.0.0.1:${adminPort}`, '--access-log', accessLogPath], env: { TALUS_METRICS_TOKEN: METRICS_TOKEN }, label: OBSERVERS_ON_LABEL };
          const off = { args: ['--console-address', 'none'], label: OBSERVERS_OFF_LABEL };
          // Started (and populated) first by turns.
          const [first, second] = pair % 2 === 0 ? [off, on] : [on, off];
          const measurePair = (a: RunningServer, b: RunningServer): Promise<void> => {
            const [offServer, onServer] = pair % 2 === 0 ? [a, b] : [b, a];
            return sideBySide(context, id, method, offServer, onServer, placement, `http://127.0.0.1:${adminPort}/metrics`, accessLogPath, rounds, runs);
          };
          try {
            await context.withOwnTalus(workers, (a) => context.withOwnTalus(workers, (b) => measurePair(a, b), second), first);
          } finally {
            await rm(accessLogPath, { force: true });
          }
        }
      } finally {
        await pinProcess(process.pid, allowed.join(','));
      }
      const judged = judgePairs(runs.pairs);
      const every = runs.pairs.flatMap((pair) => pair.runs);
      const percent = (ratio: number): string => `${(ratio * 100).toFixed(1)} %`;
      const signed = (micros: number): string => `${micros >= 0 ? '+' : ''}${micros.toFixed(1)}`;
      const perPair = judged.ratios.map((ratio, pair) => `${percent(ratio)}${pair === judged.medianPair ? ' (median)' : ''}`).join(', ');
      const perRun = runs.pairs.map((pair) => pair.runs.map((run) => percent(cpuRatioOf(run))).join(', ')).join('; ');
      const cpuSums = every.map(({ off, on }) => off.serverCpuPercentOfOneCore + on.serverCpuPercentOfOneCore);
      const share = median(every.map(cpuShareOf));
      const microsOf = (row: Row): string => (row.serverOnCpuMicrosPerOperation ?? 0).toFixed(1);
      const runSeconds = wrkSecondsOf(observabilityRunMs(context));
      return {
        rows: [judged.off, judged.on],
        notes: [
          `${pairs} fresh pair${pairs === 1 ? '' : 's'} of Talus servers in turn, each pair side by side: both servers (every thread) pinned to CPU ${placement.servers} and driven at once, ` +
            `each by its own wrk -t${SIDE_THREADS} -c${SIDE_CONNECTIONS} (the ${method} of ${method === 'GET' ? 'get-4k' : 'put-4k'}) pinned to CPU ${placement.drivers}; ` +
            `${rounds} run${rounds === 1 ? '' : 's'} of ${runSeconds} s per pair; a pair's ratio is its median run's on ÷ off per unit of CPU; the rows are the median run of the pair whose ratio is the median of the pairs'`,
          'off: --console-address none, no access log (the request counters are always kept: Talus has no switch for them); ' +
            `on: /metrics scraped every ${SCRAPE_INTERVAL_MS / 1000} s with the metrics token (${runs.scrapes} scrapes, last ${runs.lastScrapeBytes} bytes), --access-log FILE (${runs.logLines} lines, ${(runs.logBytes / 2 ** 20).toFixed(1)} MiB), audit log`,
          `on ÷ off per unit of CPU (off CPU µs/op ÷ on's, schedstat), per pair: ${perPair}; the median pair's median run: server CPU ${microsOf(judged.on)} vs ${microsOf(judged.off)} µs/op, ` +
            `${judged.off.serverCpuPercentOfOneCore.toFixed(0)} + ${judged.on.serverCpuPercentOfOneCore.toFixed(0)} % of CPU ${placement.servers}; ` +
            `each pair's on minus off: ${judged.cpuMicros.map(signed).join(', ')} µs/op`,
          `both servers' CPU together, every run: ${Math.min(...cpuSums).toFixed(0)}–${Math.max(...cpuSums).toFixed(0)} % of one core` +
            `${Math.min(...cpuSums) < CPU_BOUND_PERCENT_MIN ? ` — below ${CPU_BOUND_PERCENT_MIN} % in some: the servers were not always the limit` : ''}; ` +
            `"on"'s share of the CPU ÷ "off"'s, median run: ${percent(share)}` +
            `${share < CPU_SHARE_MIN ? ` — "on" got less of the CPU than "off": it waited where "off" worked, and lost ops/s that its CPU per request does not show (see the ops/s ratios)` : ''}; ` +
            'errors in the rows count every run of every pair',
          `on ÷ off per unit of CPU, every run, pair by pair: ${perRun} (median of all ${every.length}: ${percent(median(every.map(cpuRatioOf)))}; not judged)`,
          `on ÷ off ops/s (not judged: it holds how the scheduler shared the CPU between the two too), each pair's median run: ${judged.throughputRatios.map(percent).join(', ')}; ` +
            `every run: ${percent(median(every.map(throughputRatioOf)))} median`,
        ],
      };
    },
  };
}

/** Both sides' results; when one fails, its error once the other has ended too (no wrk left running into the next run or row). */
async function both<A, B>(first: Promise<A>, second: Promise<B>): Promise<[A, B]> {
  const [a, b] = await Promise.allSettled([first, second]);
  if (a.status === 'rejected') throw a.reason;
  if (b.status === 'rejected') throw b.reason;
  return [a.value, b.value];
}

/** Half the mode's run time (at least wrk's second): shorter runs, more of them. */
function observabilityRunMs(context: SuiteContext): number {
  return Math.max(WRK_SECONDS_MIN * 1000, context.settings.runMs / 2);
}

/** One pair: populated, pinned, warmed up side by side, then `rounds` side-by-side runs; its runs go into `runs`. */
async function sideBySide(
  context: SuiteContext, id: string, method: 'GET' | 'PUT', off: RunningServer, on: RunningServer, placement: SideBySidePlacement,
  metricsUrl: string, accessLogPath: string, rounds: number, runs: Runs,
): Promise<void> {
  const prepare = (server: RunningServer): Promise<void> =>
    method === 'GET' ? ensureSmallObjects(server, context.settings.smallObjectCount) : ensureBucket(server, BENCH_BUCKET);
  await prepare(off);
  await prepare(on);
  // After the population (which needs no pinning), before the JIT warms up on the CPU both will share.
  await pinProcessTree(off.pid, placement.servers);
  await pinProcessTree(on.pid, placement.servers);
  // Signed once, before: no signing inside a measured window (the servers would sit idle in it).
  const urls = new Map([[off, await presignedFor(context, off, method)], [on, await presignedFor(context, on, method)]]);
  const drive = (server: RunningServer, durationMs: number): ReturnType<typeof wrkOn> =>
    wrkOn(context, server, method, durationMs, { connections: SIDE_CONNECTIONS, threads: SIDE_THREADS, cpus: placement.drivers, urls: urls.get(server)! });
  const scraper = new Scraper(metricsUrl);
  // Proves the "on" side is on before anything is measured.
  await scraper.scrapeOnce();
  scraper.start();
  const runMs = observabilityRunMs(context);
  const measured: SideBySideRun[] = [];
  try {
    // Twice, side by side as measured: the JIT's first seconds cost ~2× a warm server's (docs/PERFORMANCE.md).
    for (let warmUp = 0; warmUp < 2 && context.settings.warmUpMs > 0; warmUp++) {
      await both(drive(off, context.settings.warmUpMs), drive(on, context.settings.warmUpMs));
    }
    for (let round = 0; round < rounds; round++) {
      // Which wrk starts first (by a few milliseconds) alternates.
      const measureSide = (server: RunningServer): Promise<Row> => measure(id, server, 'wrk', () => drive(server, runMs));
      const [offRow, onRow] = round % 2 === 0
        ? await both(measureSide(off), measureSide(on))
        : await both(measureSide(on), measureSide(off)).then(([onFirst, offSecond]) => [offSecond, onFirst] as const);
      measured.push({ off: offRow, on: onRow });
    }
  } finally {
    await scraper.stop();
  }
  runs.pairs.push({ runs: measured });
  runs.scrapes += scraper.scrapes;
  runs.lastScrapeBytes = scraper.lastBytes;
  const accessLog = await countLines(accessLogPath);
  runs.logLines += accessLog.lines;
  runs.logBytes += accessLog.bytes;
}

/** wrk's whole seconds for a run of `durationMs` (as wrkOn rounds them). */
function wrkSecondsOf(durationMs: number): number {
  return Math.max(WRK_SECONDS_MIN, Math.round(durationMs / 1000));
}

/** GET /metrics with the token, now and then every SCRAPE_INTERVAL_MS while started, reading each answer whole. */
export class Scraper {
  readonly #url: string;
  #timer: NodeJS.Timeout | undefined;
  #inFlight: Promise<void> = Promise.resolve();
  #failure: Error | undefined;
  scrapes = 0;
  lastBytes = 0;

  constructor(url: string) {
    this.#url = url;
  }

  async scrapeOnce(): Promise<void> {
    const response = await fetch(this.#url, { headers: { authorization: `Bearer ${METRICS_TOKEN}` }, signal: AbortSignal.timeout(SCRAPE_TIMEOUT_MS) });
    const text = await response.text();
    if (response.status !== 200 || !text.includes('talus_s3_requests_total')) throw new Error(`GET /metrics answered ${response.status}: ${text.slice(0, 200)}`);
    this.scrapes++;
    this.lastBytes = Buffer.byteLength(text);
  }

  start(): void {
    const tick = (): void => {
      // One scrape at a time, as Prometheus does per target.
      this.#inFlight = this.#inFlight.then(() => this.scrapeOnce()).catch((error: unknown) => {
        this.#failure ??= error instanceof Error ? error : new Error(String(error));
      });
    };
    tick();
    this.#timer = setInterval(tick, SCRAPE_INTERVAL_MS);
  }

  async stop(): Promise<void> {
    clearInterval(this.#timer);
    this.#timer = undefined;
    await this.#inFlight;
    if (this.#failure !== undefined) throw new Error(`scraping /metrics failed: ${this.#failure.message}`);
  }
}

async function countLines(path: string): Promise<{ lines: number; bytes: number }> {
  const bytes = (await stat(path).catch(() => undefined))?.size ?? 0;
  if (bytes === 0) return { lines: 0, bytes };
  let lines = 0;
  const file = await open(path);
  try {
    for await (const chunk of file.createReadStream()) {
      for (const byte of chunk as Buffer) if (byte === 0x0a) lines++;
    }
  } finally {
    await file.close();
  }
  return { lines, bytes };
}

export const observability4kGet = observabilityWorkload('observability-4k-get', 'GET 4 KiB, metrics + logs off vs on (wrk)', 'GET');
export const observability4kPut = observabilityWorkload('observability-4k-put', 'PUT 4 KiB, metrics + logs off vs on (wrk)', 'PUT');
