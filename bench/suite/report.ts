/**
 * The suite's output: machine facts, one table row per (workload, server)
 * with Talus's ratios to the ceiling and to s3rver, the targets, and the
 * same as JSON. Tables are Markdown with padded cells, so they read well in
 * a terminal and paste into docs/PERFORMANCE.md as they are.
 */
import { cpus, freemem, release, totalmem } from 'node:os';
import { median } from './alternate.ts';
import type { HostProbe } from './host-probe.ts';
import type { Row } from './measure.ts';
import type { ModeSettings, SuiteOptions } from './options.ts';
import type { Population } from './setup.ts';
import type { TargetResult } from './targets.ts';

export interface WorkloadRecord {
  id: string;
  title: string;
  ceiling?: string;
  rows: Row[];
  notes: string[];
  skipped?: string;
  /** The workload threw: its message. */
  failed?: string;
  /** The host's speed just before the row (host-probe.ts); absent if the probe failed. */
  hostProbe?: HostProbe;
}

export interface MachineFacts {
  node: string;
  cpuModel: string;
  cores: number;
  memoryGiB: number;
  kernel: string;
  wrk: string;
}

export interface SuiteReport {
  command: string;
  startedAt: string;
  finishedAt: string;
  mode: SuiteOptions['mode'];
  workers: number;
  only: string[];
  machine: MachineFacts;
  settings: ModeSettings;
  workloads: WorkloadRecord[];
  targets: TargetResult[];
  populations: Population[];
}

export function machineFacts(wrk: string): MachineFacts {
  const processors = cpus();
  return {
    node: process.version,
    cpuModel: processors[0]?.model.trim() ?? 'unknown',
    cores: processors.length,
    memoryGiB: Math.round((totalmem() / 2 ** 30) * 10) / 10,
    kernel: release(),
    wrk,
  };
}

/**
 * Sets ratioToCeiling and ratioToPeer on each workload's (first) Talus row:
 * for an alternated workload the median of its pair ratios (as the targets
 * judge it, targets.ts), else the ratio of the two rows.
 */
export function addRatios(record: WorkloadRecord): void {
  const talus = record.rows.find((row) => row.server === 'talus');
  if (talus === undefined) return;
  const ratioTo = (other: Row | undefined): number | undefined => {
    if (other === undefined || other.opsPerSecond <= 0) return undefined;
    const pairs = talus.pairRatios?.find((pair) => pair.server === other.server)?.opsPerSecond;
    return pairs !== undefined && pairs.length > 0 ? median(pairs) : talus.opsPerSecond / other.opsPerSecond;
  };
  const toCeiling = ratioTo(record.rows.find((row) => row.server === record.ceiling));
  const toPeer = ratioTo(record.rows.find((row) => row.server === 's3rver'));
  if (toCeiling !== undefined) talus.ratioToCeiling = toCeiling;
  if (toPeer !== undefined) talus.ratioToPeer = toPeer;
}

export function formatHeader(options: SuiteOptions, machine: MachineFacts, startedAt: string): string {
  return [
    `Talus benchmark suite — ${options.mode} mode, ${startedAt}`,
    `command: ${options.commandLine}`,
    `machine: ${machine.cpuModel}, ${machine.cores} cores, ${machine.memoryGiB} GiB (free ${(freemem() / 2 ** 30).toFixed(1)}), Linux ${machine.kernel}, Node ${machine.node}, ${machine.wrk}`,
    `Talus: ${options.workers > 1 ? `--workers ${options.workers}` : 'one process'}; baselines: same number of processes; every server a child process (CPU and RSS from /proc)`,
    '',
  ].join('\n');
}

const ROW_COLUMNS = ['workload', 'server', 'ops/s', 'MiB/s', 'p50 ms', 'p99 ms', 'CPU %', 'CPU µs/op', 'RSS MiB', 'Talus ÷ ceiling', 'Talus ÷ s3rver', 'errors', 'runs', 'host ms', 'host RTT CPU µs', 'host fsync µs'];
/** Text columns align left, numbers right. */
const LEFT_COLUMNS = 2;

export function formatRowsTable(records: readonly WorkloadRecord[]): string {
  const lines: string[][] = [];
  for (const record of records) {
    if (record.rows.length === 0) {
      lines.push([record.title, record.skipped !== undefined ? `skipped: ${record.skipped}` : `FAILED: ${firstLine(record.failed ?? 'no rows')}`, ...ROW_COLUMNS.slice(2).map(() => '')]);
      continue;
    }
    record.rows.forEach((row, index) => lines.push([...rowCells(index === 0 ? record.title : '', row, record.ceiling !== undefined), ...(index === 0 ? hostCells(record.hostProbe) : ['', '', ''])]));
    if (record.failed !== undefined) lines.push(['', `FAILED: ${firstLine(record.failed)}`, ...ROW_COLUMNS.slice(2).map(() => '')]);
  }
  return markdownTable(ROW_COLUMNS, lines, LEFT_COLUMNS);
}

function rowCells(title: string, row: Row, hasCeiling: boolean): string[] {
  const ceilingRatio = row.ratioToCeiling === undefined ? (row.server === 'talus' && hasCeiling ? '—' : '') : `${(row.ratioToCeiling * 100).toFixed(1)} %`;
  const peerRatio = row.ratioToPeer === undefined ? '' : `${row.ratioToPeer.toFixed(row.ratioToPeer >= 10 ? 0 : 1)}×`;
  return [
    title,
    row.label,
    grouped(row.opsPerSecond),
    row.mibPerSecond === 0 ? '' : row.mibPerSecond.toFixed(row.mibPerSecond >= 100 ? 0 : 1),
    latency(row.latencyMs.p50),
    latency(row.latencyMs.p99),
    row.serverCpuPercentOfOneCore.toFixed(0),
    grouped(row.serverCpuMicrosPerOperation),
    row.serverPeakRssMiB.toFixed(0),
    ceilingRatio,
    peerRatio,
    String(row.errors),
    // Alternated rows are medians of their runs; other rows (one run, or observability's one matched run) leave it blank.
    row.runs === undefined ? '' : String(row.runs.length),
  ];
}

/**
 * The host probe before the row (host-probe.ts): its CPU time for a fixed job, the CPU of a loopback
 * TCP round trip (both processes) and the wall time of a 4 KiB write + fdatasync — each longer on a
 * slower host; the last two see the kernel side (sockets, wake-ups, the disk) the first does not.
 */
function hostCells(probe: HostProbe | undefined): string[] {
  if (probe === undefined) return ['', '', ''];
  return [probe.ms.toFixed(1), probe.tcpRoundTripCpuMicros?.toFixed(0) ?? '', probe.syncWriteWallMicros?.toFixed(0) ?? ''];
}

export function formatTargets(targets: readonly TargetResult[]): string {
  const lines = targets.map((target) => [
    target.description,
    target.threshold,
    target.measured,
    target.met === null ? 'not measured' : target.met ? 'met' : 'NOT met',
    target.note ?? '',
  ]);
  return markdownTable(['target', 'wanted', 'measured', 'result', 'note'], lines, 1);
}

export function formatNotes(records: readonly WorkloadRecord[], populations: readonly Population[]): string {
  const lines: string[] = [];
  for (const record of records) {
    for (const note of record.notes) lines.push(`- ${record.id}: ${note}`);
    for (const row of record.rows) {
      if (row.errors > 0) lines.push(`- ${record.id} on ${row.label}: ${row.errors} errors (${row.firstErrors.join('; ') || 'no detail'})`);
      if (row.serverStderrLines > 0) lines.push(`- ${record.id} on ${row.label}: the server wrote ${row.serverStderrLines} lines to stderr`);
      if (row.client !== undefined && row.client.cpuPercentOfOneCore > 80) {
        lines.push(`- ${record.id} on ${row.label}: the load generator used ${row.client.cpuPercentOfOneCore.toFixed(0)} % of a core (${row.client.cpuMicrosPerRequest.toFixed(0)} µs/request): it may be the limit`);
      }
    }
    if (record.failed !== undefined) lines.push(`- ${record.id} FAILED: ${record.failed.split('\n').slice(0, 6).join(' / ')}`);
  }
  for (const population of populations) {
    lines.push(`- populated ${population.what} on ${population.server}: ${population.objects} objects in ${population.seconds.toFixed(1)} s (${population.objectsPerSecond.toFixed(0)}/s, 64 PUTs in flight)`);
  }
  return lines.join('\n');
}

function markdownTable(columns: readonly string[], lines: readonly string[][], leftColumns: number): string {
  const widths = columns.map((title, column) => Math.max(title.length, ...lines.map((cells) => cells[column]!.length)));
  const render = (cells: readonly string[]): string =>
    `| ${cells.map((cell, column) => (column < leftColumns ? cell.padEnd(widths[column]!) : cell.padStart(widths[column]!))).join(' | ')} |`;
  const rule = `|${widths.map((width, column) => (column < leftColumns ? `${'-'.repeat(width + 2)}` : `${'-'.repeat(width + 1)}:`)).join('|')}|`;
  return [render(columns), rule, ...lines.map(render)].join('\n');
}

/** 29377 → '29 377' (as docs/PERFORMANCE.md writes numbers); below 10, one decimal. */
function grouped(value: number): string {
  if (!Number.isFinite(value)) return '—';
  if (value < 10) return value.toFixed(1);
  return Math.round(value)
    .toString()
    .replace(/\B(?=(\d{3})+(?!\d))/g, ' ');
}

function latency(valueMs: number): string {
  if (!Number.isFinite(valueMs)) return '—';
  if (valueMs < 1) return valueMs.toFixed(3);
  if (valueMs < 10) return valueMs.toFixed(2);
  return valueMs.toFixed(1);
}

/** Table cells stay short; the whole message is in the notes. */
function firstLine(text: string): string {
  return text.split('\n')[0]!.slice(0, 80);
}
