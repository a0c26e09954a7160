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
 * The sides alternate strictly, in short runs: off, on, off, on, …, on,
 * off (2 × observabilityRounds runs of the "on" side, each half the mode's
 * run time, bracketed by runs of "off"), so no side runs twice in a row and
 * a drift in the machine's load falls on both alike. Each side's row is its
 * median run (ops/s and CPU µs/op): on a machine shared with other work a
 * single run swings by ±20 % (another process's burst), and a median shrugs
 * off a few such runs where a sum over the runs does not. The target is
 * on ÷ off of those medians (targets.ts); the notes add each "on" run's
 * ratio to the mean of the two "off" runs around it.
 *
 * The scraper runs from the warm-up to the end at its interval, as
 * Prometheus would, not restarted with each run (which would scrape more
 * often than once a second in short runs).
 */
import { open, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
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

function observabilityWorkload(id: string, title: string, method: 'GET' | 'PUT'): Workload {
  return {
    id,
    title,
    async run(context): Promise<WorkloadOutcome> {
      const workers = context.options.workers;
      const accessLogPath = join(context.scratch, `${id}-access.log`);
      const adminPort = await freePort();
      const onArgs = ['--console-address', `127.0.0.1:${adminPort}`, '--access-log', accessLogPath];
      const offArgs = ['--console-address', 'none'];
      try {
        return await context.withOwnTalus(
          workers,
          (off) =>
            context.withOwnTalus(
              workers,
              (on) => alternate(context, id, method, off, on, `http://127.0.0.1:${adminPort}/metrics`, accessLogPath),
              { args: onArgs, env: { TALUS_METRICS_TOKEN: METRICS_TOKEN }, label: OBSERVERS_ON_LABEL },
            ),
          { args: offArgs, label: OBSERVERS_OFF_LABEL },
        );
      } finally {
        await rm(accessLogPath, { force: true });
      }
    },
  };
}

async function alternate(context: SuiteContext, id: string, method: 'GET' | 'PUT', off: RunningServer, on: RunningServer, metricsUrl: string, accessLogPath: string): Promise<WorkloadOutcome> {
  const prepare = (server: RunningServer): Promise<void> =>
    method === 'GET' ? ensureSmallObjects(server, context.settings.smallObjectCount) : ensureBucket(server, BENCH_BUCKET);
  await prepare(off);
  await prepare(on);
  const drive = (server: RunningServer, durationMs: number): ReturnType<typeof wrkOn> => wrkOn(context, server, method, durationMs);
  const scraper = new Scraper(metricsUrl);
  // Proves the "on" side is on before anything is measured.
  await scraper.scrapeOnce();
  scraper.start();
  const onRuns = 2 * context.settings.observabilityRounds;
  const runMs = Math.max(WRK_SECONDS_MIN * 1000, context.settings.runMs / 2);
  const offRounds: Row[] = [];
  const onRounds: Row[] = [];
  try {
    // Twice each, alternated: the JIT's first seconds cost ~2× a warm server's (docs/PERFORMANCE.md), and each side gets as much.
    for (let warmUp = 0; warmUp < 2 && context.settings.warmUpMs > 0; warmUp++) {
      await drive(off, context.settings.warmUpMs);
      await drive(on, context.settings.warmUpMs);
    }
    // off, on, off, …, on, off: every "on" run between two "off" runs.
    for (let run = 0; run < onRuns; run++) {
      offRounds.push(await measure(id, off, 'wrk', () => drive(off, runMs)));
      onRounds.push(await measure(id, on, 'wrk', () => drive(on, runMs)));
    }
    offRounds.push(await measure(id, off, 'wrk', () => drive(off, runMs)));
  } finally {
    await scraper.stop();
  }
  const offRow = medianRow(offRounds);
  const onRow = medianRow(onRounds);
  const accessLog = await countLines(accessLogPath);
  const bracketed = onRounds.map((row, index) => {
    const before = offRounds[index]!;
    const after = offRounds[index + 1]!;
    return {
      ratio: row.opsPerSecond / ((before.opsPerSecond + after.opsPerSecond) / 2),
      cpuMicros: row.serverCpuMicrosPerOperation - (before.serverCpuMicrosPerOperation + after.serverCpuMicrosPerOperation) / 2,
    };
  });
  const perRun = bracketed.map(({ ratio }) => `${(ratio * 100).toFixed(1)} %`).join(', ');
  const signed = (micros: number): string => `${micros >= 0 ? '+' : ''}${micros.toFixed(1)}`;
  return {
    rows: [offRow, onRow],
    notes: [
      `two Talus servers side by side, the same wrk ${method} as ${method === 'GET' ? 'get-4k' : 'put-4k'}; ${onRuns} runs of "on" between ${onRuns + 1} of "off" ` +
        `(off, on, off, …, off), ${wrkSecondsOf(runMs)} s each; each row is its side's median run (ops/s, CPU µs/op)`,
      'off: --console-address none, no access log (the request counters are always kept: Talus has no switch for them); ' +
        `on: /metrics scraped every ${SCRAPE_INTERVAL_MS / 1000} s with the metrics token (${scraper.scrapes} scrapes, last ${scraper.lastBytes} bytes), --access-log FILE (${accessLog.lines} lines, ${(accessLog.bytes / 2 ** 20).toFixed(1)} MiB), audit log`,
      `on ÷ off: ${((onRow.opsPerSecond / offRow.opsPerSecond) * 100).toFixed(1)} % of ops/s (median runs); server CPU ${onRow.serverCpuMicrosPerOperation.toFixed(1)} vs ${offRow.serverCpuMicrosPerOperation.toFixed(1)} µs/op`,
      `each "on" run ÷ the mean of the "off" runs around it: ${perRun} (median ${(median(bracketed.map(({ ratio }) => ratio)) * 100).toFixed(1)} %); ` +
        `its server CPU µs/op minus theirs: median ${signed(median(bracketed.map(({ cpuMicros }) => cpuMicros)))} (${bracketed.map(({ cpuMicros }) => signed(cpuMicros)).join(', ')})`,
    ],
  };
}

/** wrk's whole seconds for a run of `durationMs` (as wrkOn rounds them). */
function wrkSecondsOf(durationMs: number): number {
  return Math.max(WRK_SECONDS_MIN, Math.round(durationMs / 1000));
}

/**
 * One row for a side: its median run. Ops/s, MiB/s, CPU % and CPU µs/op are
 * each the median over the runs, latency percentiles the runs' medians;
 * operations, errors and time are summed (the errors of every run count).
 */
export function medianRow(rounds: readonly Row[]): Row {
  if (rounds.length === 0) throw new Error('no round to combine');
  const sum = (of: (row: Row) => number): number => rounds.reduce((total, row) => total + of(row), 0);
  const middle = (of: (row: Row) => number): number => median(rounds.map(of));
  return {
    ...rounds[0]!,
    operations: sum((row) => row.operations),
    errors: sum((row) => row.errors),
    firstErrors: [...new Set(rounds.flatMap((row) => row.firstErrors))].slice(0, 5),
    durationMs: sum((row) => row.durationMs),
    opsPerSecond: middle((row) => row.opsPerSecond),
    mibPerSecond: middle((row) => row.mibPerSecond),
    latencyMs: { p50: middle((row) => row.latencyMs.p50), p99: middle((row) => row.latencyMs.p99) },
    serverCpuPercentOfOneCore: middle((row) => row.serverCpuPercentOfOneCore),
    serverCpuMicrosPerOperation: middle((row) => row.serverCpuMicrosPerOperation),
    serverPeakRssMiB: Math.max(...rounds.map((row) => row.serverPeakRssMiB)),
    serverStderrLines: sum((row) => row.serverStderrLines),
  };
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
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
