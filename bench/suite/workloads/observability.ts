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
 * The sides alternate, a few rounds each (off, on | on, off | off, on …),
 * so load drift on a shared machine falls on both alike; each side's row
 * adds up its rounds (ops/s over the summed time, CPU µs/op over the summed
 * operations). The target is on ÷ off (targets.ts).
 */
import { open, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { SuiteContext, Workload, WorkloadOutcome } from '../context.ts';
import { measure, type Row } from '../measure.ts';
import { freePort, type RunningServer } from '../servers.ts';
import { BENCH_BUCKET, ensureBucket, ensureSmallObjects } from '../setup.ts';
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
  if (context.settings.warmUpMs > 0) {
    await drive(off, context.settings.warmUpMs);
    await drive(on, context.settings.warmUpMs);
  }
  const offRounds: Row[] = [];
  const onRounds: Row[] = [];
  const measureOff = async (): Promise<void> => {
    offRounds.push(await measure(id, off, 'wrk', () => drive(off, context.settings.runMs)));
  };
  const measureOn = async (): Promise<void> => {
    scraper.start();
    try {
      onRounds.push(await measure(id, on, 'wrk', () => drive(on, context.settings.runMs)));
    } finally {
      await scraper.stop();
    }
  };
  for (let round = 0; round < context.settings.observabilityRounds; round++) {
    // off, on | on, off | …: a steady drift in the machine's load lands on both sides alike.
    if (round % 2 === 0) {
      await measureOff();
      await measureOn();
    } else {
      await measureOn();
      await measureOff();
    }
  }
  const offRow = combineRounds(offRounds);
  const onRow = combineRounds(onRounds);
  const accessLog = await countLines(accessLogPath);
  const perRound = offRounds.map((row, index) => `${((onRounds[index]!.opsPerSecond / row.opsPerSecond) * 100).toFixed(1)} %`).join(', ');
  return {
    rows: [offRow, onRow],
    notes: [
      `two Talus servers side by side, the same wrk ${method} as ${method === 'GET' ? 'get-4k' : 'put-4k'}; ${context.settings.observabilityRounds} alternated rounds of ${context.settings.runMs / 1000} s on each, summed into one row each`,
      'off: --console-address none, no access log (the request counters are always kept: Talus has no switch for them); ' +
        `on: /metrics scraped every ${SCRAPE_INTERVAL_MS / 1000} s with the metrics token (${scraper.scrapes} scrapes, last ${scraper.lastBytes} bytes), --access-log FILE (${accessLog.lines} lines, ${(accessLog.bytes / 2 ** 20).toFixed(1)} MiB), audit log`,
      `on ÷ off: ${((onRow.opsPerSecond / offRow.opsPerSecond) * 100).toFixed(1)} % of ops/s (rounds: ${perRound}); server CPU ${onRow.serverCpuMicrosPerOperation.toFixed(1)} vs ${offRow.serverCpuMicrosPerOperation.toFixed(1)} µs/op`,
    ],
  };
}

/** One row for a side: throughput over the summed time, CPU over the summed operations, latency percentiles as the rounds' medians. */
export function combineRounds(rounds: readonly Row[]): Row {
  if (rounds.length === 0) throw new Error('no round to combine');
  const sum = (of: (row: Row) => number): number => rounds.reduce((total, row) => total + of(row), 0);
  const operations = sum((row) => row.operations);
  const durationMs = sum((row) => row.durationMs);
  const seconds = durationMs / 1000;
  const first = rounds[0]!;
  return {
    ...first,
    operations,
    errors: sum((row) => row.errors),
    firstErrors: [...new Set(rounds.flatMap((row) => row.firstErrors))].slice(0, 5),
    durationMs,
    opsPerSecond: seconds > 0 ? operations / seconds : 0,
    mibPerSecond: seconds > 0 ? sum((row) => row.mibPerSecond * (row.durationMs / 1000)) / seconds : 0,
    latencyMs: { p50: median(rounds.map((row) => row.latencyMs.p50)), p99: median(rounds.map((row) => row.latencyMs.p99)) },
    serverCpuPercentOfOneCore: durationMs > 0 ? sum((row) => row.serverCpuPercentOfOneCore * row.durationMs) / durationMs : 0,
    serverCpuMicrosPerOperation: operations > 0 ? sum((row) => row.serverCpuMicrosPerOperation * row.operations) / operations : 0,
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
