/**
 * One measured run: a driver (wrk, the load generator, or the bulk-metadata
 * walker) against one server, with the server's CPU and peak RSS taken from
 * /proc over exactly that run. The result is a table row.
 */
import { S3Client } from '../../src/client/s3-client.ts';
import { runLoad, type LoadOptions, type LoadReport } from '../../src/loadgen/index.ts';
import { ResourceWindow, type ResourceUsage } from './process-stats.ts';
import type { RunningServer, ServerKind } from './servers.ts';

export type Driver = 'wrk' | 'loadgen' | 'bulk';
/** An unmeasured run that warms a server up, or a measured one. */
export type RunPhase = 'warm-up' | 'measured';

/** What a driver reports; latencies of successful operations only. */
export interface DriverResult {
  operations: number;
  errors: number;
  /** A few distinct error messages. */
  firstErrors: string[];
  durationMs: number;
  opsPerSecond: number;
  mibPerSecond: number;
  latencyMs: { p50: number; p99: number };
  /** The load generator's own CPU (it shares the machine with the server). */
  client?: { cpuPercentOfOneCore: number; cpuMicrosPerRequest: number };
}

export interface Row extends DriverResult {
  workload: string;
  server: ServerKind;
  /** 'Talus', 'Talus, 2 workers', 'bare node:http'… */
  label: string;
  driver: Driver;
  serverProcesses: number;
  serverCpuPercentOfOneCore: number;
  serverCpuMicrosPerOperation: number;
  /**
   * The same CPU time per operation read to the nanosecond (schedstat:
   * process-stats.ts), for the rows that judge differences of a few percent
   * in it (measure() reads it; 0 where schedstat is missing).
   */
  serverOnCpuMicrosPerOperation?: number;
  serverPeakRssMiB: number;
  /** Lines the server wrote to stderr during the run (Talus logs its errors there). */
  serverStderrLines: number;
  /** On Talus rows: Talus ops/s ÷ the ceiling's (bare node:http or bytes ceiling). */
  ratioToCeiling?: number;
  /** On Talus rows: Talus ops/s ÷ s3rver's. */
  ratioToPeer?: number;
  /**
   * Alternated workloads (alternate.ts): every measured run of this side, in
   * the order run. The row's own figures are then their medians.
   */
  runs?: RunFigures[];
  /** Alternated workloads, on a judged side's row: each of its runs against the runs of a baseline side around it. */
  pairRatios?: PairRatios[];
}

/** One measured run of an alternated workload. */
export interface RunFigures {
  /** Its place in the workload's alternation, from 0, over all sides. */
  sequence: number;
  operations: number;
  errors: number;
  durationMs: number;
  opsPerSecond: number;
  mibPerSecond: number;
  latencyMs: { p50: number; p99: number };
  serverCpuPercentOfOneCore: number;
  serverCpuMicrosPerOperation: number;
  serverPeakRssMiB: number;
}

/**
 * Each run of the judged side ÷ the baseline side's runs just before and
 * just after it in the alternation, interpolated to its place (their mean
 * with two sides; the one there is at either end), in the order run. Targets judge the median of these (targets.ts).
 */
export interface PairRatios {
  /** The baseline side. */
  server: ServerKind;
  label: string;
  opsPerSecond: number[];
  mibPerSecond: number[];
  /** The round (from 0) of each ratio above, in the same order: a run next to a failed baseline run has no ratio, so places differ. */
  opsPerSecondRounds: number[];
  mibPerSecondRounds: number[];
}

/** The error a measured run that completed no operation counts. */
export const NO_OPERATION_ERROR = 'the run completed no operation';

export async function measure(workload: string, server: RunningServer, driver: Driver, drive: () => Promise<DriverResult>): Promise<Row> {
  const stderrBefore = server.stderrLines().count;
  const window = ResourceWindow.begin(server.pid);
  let result: DriverResult;
  let usage: ResourceUsage;
  try {
    result = await drive();
  } finally {
    usage = window.end();
  }
  const serverStderrLines = server.stderrLines().count - stderrBefore;
  // A run that completed no operation measured nothing: an error, so no target is met on it (its 0 ops/s would
  // otherwise sit in a median, or next to a good run in a pair ratio, as if it were a figure).
  if (result.operations <= 0) result = { ...result, errors: Math.max(1, result.errors), firstErrors: [...result.firstErrors, NO_OPERATION_ERROR].slice(0, 5) };
  process.stderr.write(
    `  ${server.label}: ${result.opsPerSecond.toFixed(result.opsPerSecond < 10 ? 1 : 0)} ops/s, ${result.mibPerSecond.toFixed(0)} MiB/s, p50 ${result.latencyMs.p50.toFixed(2)} ms, ${result.errors} errors, ` +
      `server CPU ${usage.cpuPercentOfOneCore.toFixed(0)} %, RSS ${(usage.peakRssBytes / 2 ** 20).toFixed(0)} MiB\n`,
  );
  return {
    workload,
    server: server.kind,
    label: server.label,
    driver,
    ...result,
    serverProcesses: usage.processes,
    serverCpuPercentOfOneCore: usage.cpuPercentOfOneCore,
    serverCpuMicrosPerOperation: result.operations > 0 ? usage.cpuMicros / result.operations : 0,
    serverOnCpuMicrosPerOperation: result.operations > 0 ? usage.onCpuMicros / result.operations : 0,
    serverPeakRssMiB: usage.peakRssBytes / (1024 * 1024),
    serverStderrLines,
  };
}

export function fromLoadReport(report: LoadReport): DriverResult {
  return {
    operations: report.total.count,
    errors: report.total.errors,
    firstErrors: report.firstErrors,
    durationMs: report.durationMs,
    opsPerSecond: report.total.opsPerSecond,
    mibPerSecond: report.total.mibPerSecond,
    latencyMs: { p50: report.total.latencyMs.p50, p99: report.total.latencyMs.p99 },
    client: report.client,
  };
}

/** An S3 client for `server` with `connections` keep-alive connections. */
export function clientFor(server: RunningServer, connections: number): S3Client {
  return new S3Client({ endpoint: server.endpoint, accessKeyId: server.credentials.accessKeyId, secretAccessKey: server.credentials.secretAccessKey, connections });
}

/** runLoad against `server` through a client of its own (as many connections as requests in flight). */
export async function loadOn(server: RunningServer, options: Omit<LoadOptions, 'client'>): Promise<DriverResult> {
  const client = clientFor(server, options.concurrency);
  try {
    return fromLoadReport(await runLoad({ ...options, client }));
  } finally {
    await client.close();
  }
}
