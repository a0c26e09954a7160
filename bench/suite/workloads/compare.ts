/**
 * The shape most workloads share: run on Talus, capture what Talus answered,
 * run on the baselines replaying it (each started for this workload and
 * stopped after it), then run on s3rver. Baselines run right after Talus so
 * that both see the machine in the same state. Each server gets a short
 * unmeasured warm-up run first: a baseline started a moment ago must not be
 * measured while its JIT is cold against a Talus that has been running.
 */
import type { SuiteContext } from '../context.ts';
import { measure, type Driver, type DriverResult, type Row } from '../measure.ts';
import type { BaselineSettings, RunningServer } from '../servers.ts';

export interface Comparison {
  workload: string;
  driver: Driver;
  /** Makes the data the run reads on Talus and s3rver (untimed; usually once per server). */
  prepare(server: RunningServer): Promise<void>;
  /** The baselines to compare with, configured from Talus's answers. */
  baselines(talus: RunningServer): Promise<BaselineSettings[]>;
  /** One run of `durationMs` (ignored by drivers that stop on their own: deleting every key, walking every object). */
  drive(server: RunningServer, durationMs: number): Promise<DriverResult>;
  /** The measured run's duration. */
  durationMs: number;
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
  if (comparison.warmUp !== false && context.settings.warmUpMs > 0) await comparison.drive(server, context.settings.warmUpMs);
  result.rows.push(await measure(comparison.workload, server, comparison.driver, () => comparison.drive(server, comparison.durationMs)));
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
