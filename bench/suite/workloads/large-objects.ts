/**
 * 64 MiB objects, one and eight in flight, through the load generator:
 * PUT against the bytes ceiling that streams the body to a new file and
 * fsyncs it, GET against the one that streams a file to the socket. What a
 * PUT run wrote is deleted after it (untimed), so long runs do not fill the
 * disk.
 */
import type { SuiteContext, Workload, WorkloadOutcome } from '../context.ts';
import { loadOn } from '../measure.ts';
import { capture } from '../presign.ts';
import { BENCH_BUCKET, LARGE_PREFIX, deletePrefix, ensureBucket, ensureLargeObjects, preparedKey } from '../setup.ts';
import { alternatedRunMs, compare } from './compare.ts';

/** Each alternated run of these rows (compare.ts). */
function runSeconds(context: SuiteContext): number {
  return alternatedRunMs(context.settings.largeRunMs, context.settings.ratioRounds) / 1000;
}

function sizeText(context: SuiteContext): string {
  return `${context.settings.largeObjectBytes / (1024 * 1024)} MiB`;
}

function putLarge(concurrency: number): Workload {
  const id = `put-64m-c${concurrency}`;
  return {
    id,
    title: `PUT 64 MiB, ${concurrency} in flight`,
    ceiling: 'bytes-fsync',
    async run(context): Promise<WorkloadOutcome> {
      const size = { min: context.settings.largeObjectBytes, max: context.settings.largeObjectBytes };
      const prefix = `put-large-c${concurrency}/`;
      const { rows, notes: cleanupNotes } = await compare(context, {
        workload: id,
        driver: 'loadgen',
        prepare: (server) => ensureBucket(server, BENCH_BUCKET),
        baselines: async (talus) => {
          const put = await capture(talus, { method: 'PUT', bucket: BENCH_BUCKET, key: 'capture/put-large' }, Buffer.alloc(1024, 120));
          return [{ kind: 'bytes-fsync', workers: context.options.workers, put, get: put, getFileBytes: 0 }];
        },
        durationMs: context.settings.largeRunMs,
        rounds: context.settings.ratioRounds,
        writes: true,
        judgedThroughput: 'mibPerSecond',
        drive: (server, durationMs) => loadOn(server, { bucket: BENCH_BUCKET, workload: 'put', size, concurrency, durationMs, keyPrefix: prefix }),
        afterRun: async (server) => {
          await deletePrefix(server, BENCH_BUCKET, prefix);
        },
      });
      const notes = [
        `${sizeText(context)} objects, new keys, ${concurrency} in flight for ${runSeconds(context)} s a run; the bytes ceiling writes each body to a new file and fsyncs it`,
        'what the runs wrote stays until the last run (Talus and s3rver keep their objects, the bytes ceiling its files), so no run writes into pages another freed',
      ];
      return { rows, notes: [...notes, ...cleanupNotes] };
    },
  };
}

function getLarge(concurrency: number): Workload {
  const id = `get-64m-c${concurrency}`;
  return {
    id,
    title: `GET 64 MiB, ${concurrency} in flight`,
    ceiling: 'bytes-fsync',
    async run(context): Promise<WorkloadOutcome> {
      const { largeObjectBytes, largeObjectCount } = context.settings;
      const { rows, notes: cleanupNotes } = await compare(context, {
        workload: id,
        driver: 'loadgen',
        prepare: (server) => ensureLargeObjects(server, largeObjectCount, largeObjectBytes),
        baselines: async (talus) => {
          const get = await capture(talus, { method: 'GET', bucket: BENCH_BUCKET, key: preparedKey(LARGE_PREFIX, 0) });
          return [{ kind: 'bytes-fsync', workers: context.options.workers, put: get, get, getFileBytes: largeObjectBytes }];
        },
        durationMs: context.settings.largeRunMs,
        rounds: context.settings.ratioRounds,
        judgedThroughput: 'mibPerSecond',
        drive: (server, durationMs) =>
          loadOn(server, {
            bucket: BENCH_BUCKET,
            workload: 'get',
            size: { min: largeObjectBytes, max: largeObjectBytes },
            concurrency,
            durationMs,
            keyPrefix: LARGE_PREFIX,
            keyCount: largeObjectCount,
            prepare: false,
          }),
      });
      return { rows, notes: [`${largeObjectCount} objects of ${sizeText(context)} read at random, ${concurrency} in flight for ${runSeconds(context)} s a run; the bytes ceiling streams one file (page cache, 256 KiB reads as Talus does)`, ...cleanupNotes] };
    },
  };
}

export const put64mOne = putLarge(1);
export const put64mEight = putLarge(8);
export const get64mOne = getLarge(1);
export const get64mEight = getLarge(8);
