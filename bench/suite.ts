/**
 * `npm run bench`: issue 3's benchmark suite. Starts what it needs (Talus on
 * a fresh data directory, the bare node:http and bytes ceilings, s3rver as
 * the peer), runs every workload against each, and prints one row per
 * (workload, server) with ops/s, MiB/s, p50/p99, the server's CPU and peak
 * RSS, Talus's ratios to the ceiling and to s3rver, and then the targets.
 * The JSON report goes to bench/results/<time>.json and latest.json.
 *
 *   npm run bench                 quick mode (a few minutes on 2 cores)
 *   npm run bench -- --full       the sizes the issue names; long
 *   npm run bench -- --smoke      seconds; CI runs it to keep the suite working (never asserts speed)
 *   npm run bench -- --only list  only the workloads whose id contains "list"
 *
 * Benchmarks are not tests: the exit code says whether the suite ran (1 when
 * a workload failed to run, 2 on bad usage), never whether a target was met.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { exitCleanlyOnSignals, isShuttingDown, runCleanups, temporaryDirectory } from './suite/cleanup.ts';
import { SuiteContext, type Workload } from './suite/context.ts';
import { MODE_SETTINGS, USAGE, UsageError, parseSuiteOptions, type SuiteOptions } from './suite/options.ts';
import { formatHostProbe, probeHost } from './suite/host-probe.ts';
import { procAvailable } from './suite/process-stats.ts';
import { addRatios, formatHeader, formatNotes, formatRowsTable, formatTargets, machineFacts, type SuiteReport, type WorkloadRecord } from './suite/report.ts';
import { ROOT } from './suite/servers.ts';
import { populations } from './suite/setup.ts';
import { evaluateTargets } from './suite/targets.ts';
import { WORKLOADS } from './suite/workloads/index.ts';
import { checkWrk } from './suite/wrk.ts';

const RESULTS_DIRECTORY = join(ROOT, 'bench', 'results');

async function main(argv: string[]): Promise<number> {
  let options: SuiteOptions | 'help';
  try {
    options = parseSuiteOptions(argv);
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    process.stderr.write(`bench: ${error.message}\n\n${USAGE}\n`);
    return 2;
  }
  if (options === 'help') {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  const selected = selectWorkloads(options.only);
  if (selected.length === 0) {
    process.stderr.write(`bench: --only ${options.only.join(',')} matches no workload; ids: ${WORKLOADS.map((workload) => workload.id).join(', ')}\n`);
    return 2;
  }
  if (!procAvailable()) throw new Error('the suite reads server CPU and memory from /proc: it runs on Linux only');
  exitCleanlyOnSignals();
  const wrk = await checkWrk();
  const startedAt = new Date().toISOString();
  const machine = machineFacts(wrk);
  process.stdout.write(formatHeader(options, machine, startedAt));
  const scratch = await temporaryDirectory('talus-bench-suite-');
  const context = new SuiteContext(MODE_SETTINGS[options.mode], options, scratch.path);
  const records: WorkloadRecord[] = [];
  try {
    for (const [index, workload] of selected.entries()) {
      if (isShuttingDown()) break;
      // Before each row: how fast the host is now, so a slow host is not read as a slow Talus.
      const hostProbe = await probeHost(scratch.path, { kernelSide: options.mode !== 'smoke' });
      process.stderr.write(`[${index + 1}/${selected.length}] ${workload.id}: ${workload.title} (${formatHostProbe(hostProbe)})\n`);
      const record = await runWorkload(context, workload);
      if (hostProbe !== undefined) record.hostProbe = hostProbe;
      records.push(record);
    }
  } finally {
    await context.stopSharedServers();
    await scratch.remove();
  }
  const report = buildReport(options, machine, startedAt, records);
  process.stdout.write(`\n${formatRowsTable(records)}\n\nTargets (issues 3, 13, 14, 17; ratios within this run):\n\n${formatTargets(report.targets)}\n\nNotes:\n${formatNotes(records, populations)}\n`);
  for (const path of await writeReport(report, options)) process.stdout.write(`\nJSON: ${path}`);
  process.stdout.write('\n');
  return records.some((record) => record.failed !== undefined) ? 1 : 0;
}

function selectWorkloads(only: readonly string[]): Workload[] {
  if (only.length === 0) return [...WORKLOADS];
  return WORKLOADS.filter((workload) => only.some((text) => workload.id.includes(text)));
}

/** A workload that throws is recorded as failed and the suite goes on with the next. */
async function runWorkload(context: SuiteContext, workload: Workload): Promise<WorkloadRecord> {
  const record: WorkloadRecord = { id: workload.id, title: workload.title, rows: [], notes: [] };
  if (workload.ceiling !== undefined) record.ceiling = workload.ceiling;
  try {
    const outcome = await workload.run(context);
    record.rows = outcome.rows;
    record.notes = outcome.notes;
    if (outcome.skipped !== undefined) {
      record.skipped = outcome.skipped;
      process.stderr.write(`  skipped: ${outcome.skipped}\n`);
    }
  } catch (error) {
    record.failed = error instanceof Error ? (error.stack ?? error.message) : String(error);
    process.stderr.write(`  FAILED: ${record.failed}\n`);
  }
  addRatios(record);
  return record;
}

function buildReport(options: SuiteOptions, machine: SuiteReport['machine'], startedAt: string, records: WorkloadRecord[]): SuiteReport {
  return {
    command: options.commandLine,
    startedAt,
    finishedAt: new Date().toISOString(),
    mode: options.mode,
    workers: options.workers,
    only: options.only,
    machine,
    settings: MODE_SETTINGS[options.mode],
    workloads: records,
    targets: evaluateTargets(records.flatMap((record) => record.rows)),
    populations,
  };
}

/**
 * bench/results/<time>.json and latest.json (gitignored), and --json PATH.
 * Smoke runs measure nothing worth keeping: they go to --json only, or to
 * smoke-latest.json, so they never replace a real latest.json.
 */
async function writeReport(report: SuiteReport, options: SuiteOptions): Promise<string[]> {
  const text = `${JSON.stringify(report, null, 2)}\n`;
  const paths: string[] = [];
  if (options.jsonPath !== undefined) paths.push(options.jsonPath);
  if (options.mode === 'smoke' && options.jsonPath === undefined) paths.push(join(RESULTS_DIRECTORY, 'smoke-latest.json'));
  if (options.mode !== 'smoke') paths.push(join(RESULTS_DIRECTORY, `${report.startedAt.replaceAll(':', '-')}.json`), join(RESULTS_DIRECTORY, 'latest.json'));
  for (const path of paths) {
    await mkdir(dirname(path), { recursive: true });
    await writeFile(path, text);
  }
  return paths;
}

main(process.argv.slice(2)).then(
  async (code) => {
    await runCleanups();
    process.exit(code);
  },
  async (error: unknown) => {
    process.stderr.write(`bench: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    await runCleanups();
    process.exit(1);
  },
);
