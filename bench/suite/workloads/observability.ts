/**
 * What metrics and logs cost (issue 13: at most 3 % of 4 KiB GET
 * throughput). Two Talus servers of their own, alive side by side with the
 * same objects, driven by the same wrk run as get-4k / put-4k:
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
 * SERVER_PAIRS fresh pairs are measured in turn (a process keeps its own
 * speed for life, ±5 %). Within a pair the sides alternate strictly, in
 * short runs: off, on, off, on, …, on, off (2 × observabilityRounds runs of
 * the "on" side over all pairs, each half the mode's run time, bracketed by
 * runs of "off"), so no side runs twice in a row and a drift in the
 * machine's load falls on both alike. Each pair's sides are their median
 * runs (ops/s and CPU µs/op): on a machine shared with other work a single
 * run swings by ±20 % (another process's burst), and a median shrugs off a
 * few such runs where a sum over the runs does not. The rows are the pair
 * whose on ÷ off is the median of the pairs' (judgePairs): the target
 * (targets.ts, on ÷ off of the rows) is then that median, which no single
 * process decides — a lucky or unlucky one moves its own pair only, and
 * the median pair is one of the others. The notes give every pair's ratio
 * and each "on" run's ratio to the mean of the two "off" runs around it.
 *
 * The scraper runs from the warm-up to the end at its interval, as
 * Prometheus would, not restarted with each run (which would scrape more
 * often than once a second in short runs).
 */
import assert from 'node:assert/strict';
import { open, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { median, medianRow } from '../alternate.ts';
import type { SuiteContext, Workload, WorkloadOutcome } from '../context.ts';
import { measure, type Row } from '../measure.ts';
import { freePort, type RunningServer } from '../servers.ts';
import { BENCH_BUCKET, ensureBucket, ensureSmallObjects } from '../setup.ts';
import { WRK_SECONDS_MIN } from '../wrk.ts';
import { wrkOn } from './small-objects.ts';

export const OBSERVERS_OFF_LABEL = 'Talus, observers off';
export const OBSERVERS_ON_LABEL = 'Talus, metrics + logs on';
/** Prometheus's usual scrape interval is 15 s; once a second is a busy one, the worst it plausibly gets. */
const SCRAPE_INTERVAL_MS = 1000;
/** A scrape that fails is a broken "on" side, not a measurement: the workload fails. */
const SCRAPE_TIMEOUT_MS = 10_000;
const METRICS_TOKEN = 'bench-metrics-token-0123456789';

/**
 * Fresh pairs of servers per row, each pair measured in turn: two identical
 * servers differed by 1–11 µs per GET for their whole life (off 73–77, its
 * twin 76–91 µs over five rounds, 2026-12-06; JIT decisions are made once
 * per process), as much as what is measured. Odd, so the median pair is a
 * pair (judgePairs); three, so one process's luck is outvoted. Each costs
 * two starts, populations and warm-ups (~10 s); the runs are shared out,
 * not added.
 */
export const SERVER_PAIRS = 3;

/** One pair's measured runs, in the order run. */
export interface PairRuns {
  off: readonly Row[];
  on: readonly Row[];
}

/** How a row's pairs were judged: each pair's on ÷ off of its sides' median runs, and the median pair's rows. */
export interface PairJudgement {
  /** Each pair's on ÷ off (ops/s of its sides' median runs), in the order the pairs ran. */
  ratios: number[];
  /** Each pair's "on" CPU µs/op minus its "off" (median runs). */
  cpuMicros: number[];
  /** The pair whose ratio is the median: the rows are its sides' median runs. */
  medianPair: number;
  off: Row;
  on: Row;
}

/**
 * The rows of a row of pairs: the median runs of the pair whose on ÷ off is
 * the median of the pairs'. An odd count of pairs, so that pair exists
 * (ties: the one that ran first).
 */
export function judgePairs(pairs: readonly PairRuns[]): PairJudgement {
  assert(pairs.length % 2 === 1, 'judgePairs: an odd count of pairs');
  const sides = pairs.map((pair) => ({ off: medianRow(pair.off), on: medianRow(pair.on) }));
  const ratios = sides.map(({ off, on }) => on.opsPerSecond / off.opsPerSecond);
  const cpuMicros = sides.map(({ off, on }) => on.serverCpuMicrosPerOperation - off.serverCpuMicrosPerOperation);
  const byRatio = ratios.map((ratio, index) => ({ ratio, index })).sort((a, b) => a.ratio - b.ratio || a.index - b.index);
  const medianPair = byRatio[(byRatio.length - 1) / 2]!.index;
  return { ratios, cpuMicros, medianPair, off: withEveryPairsFaults(sides[medianPair]!.off, pairs.flatMap((pair) => pair.off)), on: withEveryPairsFaults(sides[medianPair]!.on, pairs.flatMap((pair) => pair.on)) };
}

/**
 * The median pair's row with the errors, stderr lines and peak RSS of every
 * pair's runs: a pair whose side failed is the one most likely to be left
 * out by the median, and its failure must still fail the target.
 */
function withEveryPairsFaults(row: Row, everyRun: readonly Row[]): Row {
  const all = medianRow(everyRun);
  return { ...row, errors: all.errors, firstErrors: all.firstErrors, serverStderrLines: all.serverStderrLines, serverPeakRssMiB: all.serverPeakRssMiB };
}

/** Every measured run of a row, over its pairs, and what the notes report. */
interface Runs {
  off: Row[];
  on: Row[];
  pairs: PairRuns[];
  /** Each "on" run ÷ the mean of the two "off" runs around it, and its CPU µs/op minus theirs. */
  bracketed: { ratio: number; cpuMicros: number }[];
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
      const workers = context.options.workers;
      const onRuns = 2 * context.settings.observabilityRounds;
      // Odd (judgePairs), and no pair without a run of "on" (smoke mode has two runs: one pair).
      const pairs = Math.min(SERVER_PAIRS, onRuns) - (Math.min(SERVER_PAIRS, onRuns) % 2 === 0 ? 1 : 0);
      const runs: Runs = { off: [], on: [], pairs: [], bracketed: [], scrapes: 0, lastScrapeBytes: 0, logLines: 0, logBytes: 0 };
      for (let pair = 0; pair < pairs; pair++) {
        const accessLogPath = join(context.scratch, `${id}-${pair}-access.log`);
        const adminPort = await freePort();
        const on = { args: ['--console-address', `127.0.0.1:${adminPort}`, '--access-log', accessLogPath], env: { TALUS_METRICS_TOKEN: METRICS_TOKEN }, label: OBSERVERS_ON_LABEL };
        const off = { args: ['--console-address', 'none'], label: OBSERVERS_OFF_LABEL };
        // Started (and populated) first by turns.
        const [first, second] = pair % 2 === 0 ? [off, on] : [on, off];
        const measurePair = (a: RunningServer, b: RunningServer): Promise<void> => {
          const [offServer, onServer] = pair % 2 === 0 ? [a, b] : [b, a];
          // The pairs share the runs out; the first ones take any remainder.
          const pairRuns = Math.floor(onRuns / pairs) + (pair < onRuns % pairs ? 1 : 0);
          return alternate(context, id, method, offServer, onServer, `http://127.0.0.1:${adminPort}/metrics`, accessLogPath, pairRuns, runs);
        };
        try {
          await context.withOwnTalus(workers, (a) => context.withOwnTalus(workers, (b) => measurePair(a, b), second), first);
        } finally {
          await rm(accessLogPath, { force: true });
        }
      }
      const judged = judgePairs(runs.pairs);
      const offRow = judged.off;
      const onRow = judged.on;
      const perPair = judged.ratios.map((ratio, pair) => `${(ratio * 100).toFixed(1)} %${pair === judged.medianPair ? ' (median)' : ''}`).join(', ');
      const perRun = runs.bracketed.map(({ ratio }) => `${(ratio * 100).toFixed(1)} %`).join(', ');
      const signed = (micros: number): string => `${micros >= 0 ? '+' : ''}${micros.toFixed(1)}`;
      const runSeconds = wrkSecondsOf(observabilityRunMs(context));
      return {
        rows: [offRow, onRow],
        notes: [
          `${pairs} fresh pair${pairs === 1 ? '' : 's'} of Talus servers in turn, the same wrk ${method} as ${method === 'GET' ? 'get-4k' : 'put-4k'}; ` +
            `per pair, runs of "on" each between two of "off" (off, on, off, …, off), ${onRuns} of "on" and ${runs.off.length} of "off" in all, ${runSeconds} s each; ` +
            'each pair\'s sides are their median runs (ops/s, CPU µs/op); the rows are the pair whose on ÷ off is the median of the pairs\'',
          'off: --console-address none, no access log (the request counters are always kept: Talus has no switch for them); ' +
            `on: /metrics scraped every ${SCRAPE_INTERVAL_MS / 1000} s with the metrics token (${runs.scrapes} scrapes, last ${runs.lastScrapeBytes} bytes), --access-log FILE (${runs.logLines} lines, ${(runs.logBytes / 2 ** 20).toFixed(1)} MiB), audit log`,
          `on ÷ off per pair: ${perPair}; the median pair's server CPU ${onRow.serverCpuMicrosPerOperation.toFixed(1)} vs ${offRow.serverCpuMicrosPerOperation.toFixed(1)} µs/op; ` +
            `each pair's on minus off: ${judged.cpuMicros.map(signed).join(', ')} µs/op; all runs pooled (not judged): ${((medianRow(runs.on).opsPerSecond / medianRow(runs.off).opsPerSecond) * 100).toFixed(1)} %`,
          `each "on" run ÷ the mean of the "off" runs around it: ${perRun} (median ${(median(runs.bracketed.map(({ ratio }) => ratio)) * 100).toFixed(1)} %); ` +
            `its server CPU µs/op minus theirs: median ${signed(median(runs.bracketed.map(({ cpuMicros }) => cpuMicros)))} (${runs.bracketed.map(({ cpuMicros }) => signed(cpuMicros)).join(', ')})`,
        ],
      };
    },
  };
}

/** Half the mode's run time (at least wrk's second): shorter runs, more of them. */
function observabilityRunMs(context: SuiteContext): number {
  return Math.max(WRK_SECONDS_MIN * 1000, context.settings.runMs / 2);
}

/** One pair: populated, warmed up, then off, on, off, …, on, off with `onRuns` runs of "on"; its runs go into `runs`. */
async function alternate(
  context: SuiteContext, id: string, method: 'GET' | 'PUT', off: RunningServer, on: RunningServer, metricsUrl: string, accessLogPath: string, onRuns: number, runs: Runs,
): Promise<void> {
  const prepare = (server: RunningServer): Promise<void> =>
    method === 'GET' ? ensureSmallObjects(server, context.settings.smallObjectCount) : ensureBucket(server, BENCH_BUCKET);
  await prepare(off);
  await prepare(on);
  const drive = (server: RunningServer, durationMs: number): ReturnType<typeof wrkOn> => wrkOn(context, server, method, durationMs);
  const scraper = new Scraper(metricsUrl);
  // Proves the "on" side is on before anything is measured.
  await scraper.scrapeOnce();
  scraper.start();
  const runMs = observabilityRunMs(context);
  const offRuns: Row[] = [];
  const onRunsMeasured: Row[] = [];
  try {
    // Twice each, alternated: the JIT's first seconds cost ~2× a warm server's (docs/PERFORMANCE.md), and each side gets as much.
    for (let warmUp = 0; warmUp < 2 && context.settings.warmUpMs > 0; warmUp++) {
      await drive(off, context.settings.warmUpMs);
      await drive(on, context.settings.warmUpMs);
    }
    for (let run = 0; run < onRuns; run++) {
      offRuns.push(await measure(id, off, 'wrk', () => drive(off, runMs)));
      onRunsMeasured.push(await measure(id, on, 'wrk', () => drive(on, runMs)));
    }
    offRuns.push(await measure(id, off, 'wrk', () => drive(off, runMs)));
  } finally {
    await scraper.stop();
  }
  onRunsMeasured.forEach((row, index) => {
    const before = offRuns[index]!;
    const after = offRuns[index + 1]!;
    runs.bracketed.push({
      ratio: row.opsPerSecond / ((before.opsPerSecond + after.opsPerSecond) / 2),
      cpuMicros: row.serverCpuMicrosPerOperation - (before.serverCpuMicrosPerOperation + after.serverCpuMicrosPerOperation) / 2,
    });
  });
  runs.off.push(...offRuns);
  runs.on.push(...onRunsMeasured);
  runs.pairs.push({ off: offRuns, on: onRunsMeasured });
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
class Scraper {
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
