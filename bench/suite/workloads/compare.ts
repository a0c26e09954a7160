/**
 * The shape most workloads share: run on Talus, capture what Talus answered,
 * run on the baselines replaying it (each started for this workload and
 * stopped after it), then run on s3rver. Each server gets a short unmeasured
 * warm-up run first: a baseline started a moment ago must not be measured
 * while its JIT is cold against a Talus that has been running.
 *
 * With `rounds` (the rows whose target is a ratio to a baseline, issue 17),
 * the sides take turns instead (alternate.ts): Talus, each baseline, s3rver,
 * then the next round in another order, … in runs of half the duration, every server alive for the whole
 * alternation and warmed up before it (WARM_UP_PASSES). The same servers are
 * reused rather than started fresh per run, because a fresh node process spends its
 * first seconds in the JIT at ~2× a warm one's CPU: fresh servers would
 * measure start-up in every run, and the suite's Talus, running since the
 * first workload, would meet a cold baseline each time. Without `rounds`,
 * one run per server, one after another (the mix, the bulk walks).
 */
import { ALTERNATED_RUN_MS_MIN, alternationNotes, flushDirtyPages, runAlternation, summarizeAlternation } from '../alternate.ts';
import type { SuiteContext } from '../context.ts';
import { measure, type Driver, type DriverResult, type Row, type RunPhase } from '../measure.ts';
import { startBaseline, type BaselineSettings, type RunningServer } from '../servers.ts';
import { assert } from '../../../src/util/assert.ts';

export interface Comparison {
  workload: string;
  driver: Driver;
  /** Makes the data the run reads on Talus and s3rver (untimed; usually once per server). */
  prepare(server: RunningServer): Promise<void>;
  /** The baselines to compare with, configured from Talus's answers. */
  baselines(talus: RunningServer): Promise<BaselineSettings[]>;
  /** One run of `durationMs` (ignored by drivers that stop on their own: deleting every key, walking every object). */
  drive(server: RunningServer, durationMs: number, phase: RunPhase): Promise<DriverResult>;
  /** The measured run's duration (alternated: each run takes half of it, see alternatedRunMs). */
  durationMs: number;
  /** Measure the sides alternately, this many runs each (see above); the rows are then medians. */
  rounds?: number;
  /** Alternated only: untimed, before each measured run on Talus and s3rver (DELETE makes the keys the run deletes). */
  beforeRun?(server: RunningServer): Promise<void>;
  /** Alternated only: the workload writes to disk (PUT, DELETE): sync before each measured run (alternate.ts, flushDirtyPages). */
  writes?: boolean;
  /** Alternated, writing workloads only: untimed, just before each measured run of every side, after the sync (the 64 MiB PUT rows recycle pages: page-pool.ts). */
  beforeMeasuredRun?(): void;
  /** Which throughput the target judges (notes print it per run); default ops/s. */
  judgedThroughput?: 'opsPerSecond' | 'mibPerSecond';
  /** Alternated only: unmeasured passes over the sides before the first measured run (default WARM_UP_PASSES). */
  warmUpPasses?: number;
  /** Default true; false for runs that consume or change their data set (DELETE, the mix, the bulk walk): DELETE warms up on keys of its own instead (small-objects.ts). */
  warmUp?: boolean;
  /** s3rver is left out (with a note) when it cannot do the workload in reasonable time. */
  skipPeer?: boolean;
  /**
   * After the run on Talus and s3rver (untimed): e.g. delete what a PUT run
   * wrote, so the disk does not fill. A failure here becomes a note: the
   * measurement before it stands.
   */
  afterRun?(server: RunningServer): Promise<void>;
}

export interface ComparisonResult {
  rows: Row[];
  notes: string[];
}

export async function compare(context: SuiteContext, comparison: Comparison): Promise<ComparisonResult> {
  if (comparison.rounds !== undefined) return compareAlternated(context, comparison, comparison.rounds);
  const result: ComparisonResult = { rows: [], notes: [] };
  const talus = await context.talus();
  // Talus's clean-up waits until the baselines have run: deleting what its
  // run wrote frees that many page-cache pages, and a baseline run right
  // after would write into them, already mapped, while Talus's run had to
  // take fresh ones, which on this kind of VM fault on the host at first
  // touch (docs/PERFORMANCE.md, "64 MiB PUT, round 3": ~100 ms of CPU per
  // 64 MiB written).
  await runOn(context, talus, comparison, result, false);
  try {
    for (const settings of await comparison.baselines(talus)) {
      await context.withBaseline(settings, (baseline) => runOn(context, baseline, comparison, result));
    }
  } finally {
    await cleanUp(talus, comparison, result);
  }
  if (comparison.skipPeer !== true) await runOn(context, await context.s3rver(), comparison, result);
  return result;
}

async function runOn(context: SuiteContext, server: RunningServer, comparison: Comparison, result: ComparisonResult, cleanUpAfter = true): Promise<void> {
  // Baselines store nothing: only the S3 servers have data to make or remove.
  const stores = server.kind === 'talus' || server.kind === 's3rver';
  if (stores) await comparison.prepare(server);
  if (comparison.warmUp !== false && context.settings.warmUpMs > 0) await comparison.drive(server, context.settings.warmUpMs, 'warm-up');
  result.rows.push(await measure(comparison.workload, server, comparison.driver, () => comparison.drive(server, comparison.durationMs, 'measured')));
  if (cleanUpAfter) await cleanUp(server, comparison, result);
}

async function cleanUp(server: RunningServer, comparison: Comparison, result: ComparisonResult): Promise<void> {
  const stores = server.kind === 'talus' || server.kind === 's3rver';
  if (!stores || comparison.afterRun === undefined) return;
  try {
    await comparison.afterRun(server);
  } catch (error) {
    result.notes.push(`cleaning up after the run on ${server.label} failed: ${error instanceof Error ? error.message : String(error)}`);
  }
}

/**
 * Each alternated run: half the mode's run (more, shorter runs; whole
 * seconds, as wrk counts them), at least ALTERNATED_RUN_MS_MIN; a single
 * round keeps the whole run.
 */
export function alternatedRunMs(durationMs: number, rounds: number): number {
  if (rounds <= 1) return durationMs;
  return Math.max(ALTERNATED_RUN_MS_MIN, Math.round(durationMs / 2 / 1000) * 1000);
}

async function compareAlternated(context: SuiteContext, comparison: Comparison, rounds: number): Promise<ComparisonResult> {
  assert(comparison.beforeMeasuredRun === undefined || comparison.writes === true, 'compare: beforeMeasuredRun is for workloads that write');
  const cleanUpNotes: ComparisonResult = { rows: [], notes: [] };
  const talus = await context.talus();
  const peer = comparison.skipPeer === true ? undefined : await context.s3rver();
  const stores = [talus, ...(peer === undefined ? [] : [peer])];
  for (const server of stores) await comparison.prepare(server);
  const baselines = await comparison.baselines(talus);
  const plan = {
    workload: comparison.workload,
    driver: comparison.driver,
    rounds,
    runMs: alternatedRunMs(comparison.durationMs, rounds),
    warmUpMs: comparison.warmUp === false ? 0 : context.settings.warmUpMs,
    ...(comparison.warmUpPasses === undefined ? {} : { warmUpPasses: comparison.warmUpPasses }),
    drive: comparison.drive,
    beforeRun: async (server: RunningServer): Promise<void> => {
      if (server.kind === 'talus' || server.kind === 's3rver') await comparison.beforeRun?.(server);
    },
    ...(comparison.writes === true
      ? {
          flushBeforeRun: (): void => {
            flushDirtyPages();
            comparison.beforeMeasuredRun?.();
          },
        }
      : {}),
  };
  let rows: Row[];
  try {
    rows = await context.withServers(
      baselines.map((settings) => () => startBaseline(settings)),
      async (started) => {
        const sides = [talus, ...started, ...(peer === undefined ? [] : [peer])];
        return summarizeAlternation({ sides }, await runAlternation({ ...plan, sides }));
      },
    );
  } finally {
    // After every run, not between them: deleting what a PUT run wrote frees page-cache pages that
    // the next run would write into already mapped (see compare above), on one side and not the other.
    for (const server of stores) await cleanUp(server, comparison, cleanUpNotes);
  }
  return { rows, notes: [...alternationNotes(plan, rows, comparison.judgedThroughput), ...cleanUpNotes.notes] };
}
