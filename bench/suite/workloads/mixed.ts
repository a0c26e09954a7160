/**
 * A warp-like mix at 64 in flight: 45 % GET, 15 % PUT, 30 % HEAD, 10 %
 * DELETE over objects of 4 KiB to 10 MiB (log-uniform, so as many below
 * 200 KiB as above). No bare ceiling fits a mix; Talus is compared with
 * s3rver only. The objects are written before the timed part and removed
 * after it.
 */
import { formatSizeRange } from '../../../src/loadgen/index.ts';
import type { Workload, WorkloadOutcome } from '../context.ts';
import { loadOn } from '../measure.ts';
import { BENCH_BUCKET, deletePrefix, populate } from '../setup.ts';
import { compare } from './compare.ts';
import { CONNECTIONS } from './small-objects.ts';

const MIXED_PREFIX = 'mixed/';
const MIX = { get: 45, put: 15, head: 30, delete: 10 };

export const mixed: Workload = {
  id: 'mixed',
  title: 'mixed 45/15/30/10, 64 conn',
  async run(context): Promise<WorkloadOutcome> {
    const { mixedSize, mixedKeyCount, mixedRunMs } = context.settings;
    const { rows, notes: cleanupNotes } = await compare(context, {
      workload: this.id,
      driver: 'loadgen',
      prepare: (server) => populate(server, `${formatSizeRange(mixedSize)} objects for the mix`, BENCH_BUCKET, [{ prefix: MIXED_PREFIX, count: mixedKeyCount }], mixedSize),
      baselines: async () => [],
      durationMs: mixedRunMs,
      warmUp: false,
      drive: (server, durationMs) =>
        loadOn(server, {
          bucket: BENCH_BUCKET,
          workload: 'mixed',
          mix: MIX,
          size: mixedSize,
          concurrency: CONNECTIONS,
          durationMs,
          keyPrefix: MIXED_PREFIX,
          keyCount: mixedKeyCount,
          prepare: false,
        }),
      afterRun: async (server) => {
        await deletePrefix(server, BENCH_BUCKET, MIXED_PREFIX);
      },
    });
    return {
      rows,
      notes: [`GET 45 %, PUT 15 %, HEAD 30 %, DELETE 10 %; sizes ${formatSizeRange(mixedSize)} log-uniform; ${mixedKeyCount} objects to start; ${mixedRunMs / 1000} s; ops/s counts every operation`, ...cleanupNotes],
    };
  },
};
