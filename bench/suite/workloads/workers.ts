/**
 * Does a second core help? 4 KiB GETs through wrk against a Talus of its
 * own with one process and with two (`talus server --workers 2`). A Talus
 * without --workers fails to start with the option: the workload is then
 * skipped with a note, not failed.
 */
import type { Workload, WorkloadOutcome } from '../context.ts';
import { measure, type Row } from '../measure.ts';
import { ensureSmallObjects } from '../setup.ts';
import { wrkOn } from './small-objects.ts';

const WORKERS_COMPARED = 2;

export const get4kCores: Workload = {
  id: 'get-4k-cores',
  title: 'GET 4 KiB, 1 vs 2 workers (wrk)',
  async run(context): Promise<WorkloadOutcome> {
    const rows: Row[] = [];
    const runOn = (workers: number): Promise<Row> =>
      context.withOwnTalus(workers, async (talus) => {
        await ensureSmallObjects(talus, context.settings.smallObjectCount);
        if (context.settings.warmUpMs > 0) await wrkOn(context, talus, 'GET', context.settings.warmUpMs);
        return measure(this.id, talus, 'wrk', () => wrkOn(context, talus, 'GET', context.settings.runMs));
      });
    try {
      rows.push(await runOn(WORKERS_COMPARED));
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      // Only a Talus that rejects the option is "not supported"; any other failure is one.
      const reason = /did not start/.test(message) ? message.split('\n').find((line) => /workers/i.test(line) && !/did not start/.test(line)) : undefined;
      if (reason === undefined) throw error;
      return { rows: [], skipped: `needs --workers (not supported by this Talus yet): ${reason.slice(0, 160)}`, notes: [] };
    }
    rows.unshift(await runOn(1));
    return { rows, notes: [`a fresh Talus per run (1 process, then ${WORKERS_COMPARED} with --workers ${WORKERS_COMPARED}); same wrk GET as get-4k`] };
  },
};
