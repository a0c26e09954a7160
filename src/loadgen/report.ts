/** The final table of a run, and the live progress line. */
import type { LoadProgress, LoadReport, OperationStats, TotalStats } from './types.ts';

/** Above this share of one core, the generator may be what limits the numbers (Node runs it on one thread). */
const GENERATOR_BUSY_PERCENT = 80;

const COLUMNS = ['operation', 'ops', 'errors', 'ops/s', 'MiB/s', 'p50 ms', 'p99 ms', 'p999 ms', 'max ms', 'mean ms'];

export function formatReport(report: LoadReport): string {
  const rows = report.byOperation.map(row);
  if (report.byOperation.length > 1) rows.push(row(report.total));
  const widths = COLUMNS.map((title, column) => Math.max(title.length, ...rows.map((cells) => cells[column]!.length)));
  const line = (cells: readonly string[]): string => cells.map((cell, column) => (column === 0 ? cell.padEnd(widths[column]!) : cell.padStart(widths[column]!))).join('  ');
  const lines = [
    `workload ${report.workload}, concurrency ${report.concurrency}, ${(report.durationMs / 1000).toFixed(2)} s`,
    line(COLUMNS),
    ...rows.map(line),
    generatorLine(report),
  ];
  if (report.client.cpuPercentOfOneCore > GENERATOR_BUSY_PERCENT) {
    lines.push(`warning: the generator used ${report.client.cpuPercentOfOneCore.toFixed(0)}% of its one thread: it may be the bottleneck, so these numbers are a lower bound`);
  }
  if (report.firstErrors.length > 0) {
    lines.push(`${report.total.errors} errors; first distinct ones:`);
    for (const message of report.firstErrors) lines.push(`  ${message}`);
  }
  return `${lines.join('\n')}\n`;
}

function generatorLine(report: LoadReport): string {
  const { cpuMicrosPerRequest, cpuPercentOfOneCore } = report.client;
  return `generator CPU: ${cpuMicrosPerRequest.toFixed(1)} µs per request, ${cpuPercentOfOneCore.toFixed(1)}% of one core (this process, during the timed part)`;
}

function row(stats: OperationStats | TotalStats): string[] {
  const latency = stats.latencyMs;
  return [
    stats.operation,
    String(stats.count),
    String(stats.errors),
    stats.opsPerSecond.toFixed(1),
    stats.mibPerSecond.toFixed(2),
    milliseconds(latency.p50),
    milliseconds(latency.p99),
    milliseconds(latency.p999),
    milliseconds(latency.max),
    milliseconds(latency.mean),
  ];
}

function milliseconds(value: number): string {
  return value < 10 ? value.toFixed(3) : value < 1000 ? value.toFixed(1) : value.toFixed(0);
}

export function formatProgress(progress: LoadProgress): string {
  return `${(progress.elapsedMs / 1000).toFixed(1)} s: ${progress.operations} ops, ${progress.opsPerSecond.toFixed(0)} ops/s, ${progress.errors} errors, ${(progress.bytes / 1048576).toFixed(1)} MiB`;
}
