/**
 * 64 MiB objects, one and eight in flight, through the load generator:
 * PUT against the bytes ceiling that streams the body to a new file and
 * fsyncs it, GET against the one that streams a file to the socket. What
 * the PUT runs wrote is deleted after the row's last run (untimed); a PUT row
 * checks first that the disk has room for it (largePutDiskNeed) and is
 * skipped, saying so, when it does not. Before each measured PUT run of every
 * side, a pool of just-freed pages is made (page-pool.ts): the rows measure a
 * storage server whose page cache recycles pages, not this VM's first touch of
 * memory its host took back.
 */
import { statfs } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { BYTES_CEILING_KEPT_BYTES_MAX } from '../../servers/common.ts';
import { WARM_UP_PASSES } from '../alternate.ts';
import type { SuiteContext, Workload, WorkloadOutcome } from '../context.ts';
import type { ModeSettings } from '../options.ts';
import { loadOn } from '../measure.ts';
import { availableMemoryBytes, pagePoolNeed, recyclePages, type PoolTouch } from '../page-pool.ts';
import { capture } from '../presign.ts';
import { BENCH_BUCKET, LARGE_PREFIX, deletePrefix, ensureBucket, ensureLargeObjects, preparedKey } from '../setup.ts';
import { alternatedRunMs, compare } from './compare.ts';

/** Each alternated run of these rows (compare.ts). */
function runSeconds(context: SuiteContext): number {
  return alternatedRunMs(context.settings.largeRunMs, context.settings.ratioRounds) / 1000;
}

const GiB = 1024 ** 3;
/**
 * The fastest any side is taken to write 64 MiB objects, with room: the
 * bytes ceiling did 502 MiB/s at 8 in flight, Talus 377, s3rver 316
 * (quick run, 2026-12-06 20:58).
 */
const LARGE_PUT_BYTES_PER_SECOND_MAX = 512 * 1024 ** 2;
/** Left free beyond what a 64 MiB PUT row keeps (the suite's other data, the system). */
const DISK_RESERVE_BYTES = 2 * GiB;

/** What a 64 MiB PUT row keeps on disk until its last run, at most: per side and in all (tmpdir, where every server's data goes). */
export interface LargePutDiskNeed {
  /** Talus and s3rver each: their warm-ups and measured runs, all kept. */
  perStoreBytes: number;
  /** The bytes ceiling: as much, up to what it keeps (BYTES_CEILING_KEPT_BYTES_MAX per process). */
  ceilingBytes: number;
  /** The ceiling writes more than it keeps (then it deletes its oldest files, and its later runs write into pages it freed). */
  ceilingRecycles: boolean;
  totalBytes: number;
}

export function largePutDiskNeed(settings: ModeSettings, workers: number): LargePutDiskNeed {
  const processes = Math.max(1, workers);
  const writingMs = WARM_UP_PASSES * settings.warmUpMs * processes + settings.ratioRounds * alternatedRunMs(settings.largeRunMs, settings.ratioRounds);
  const perStoreBytes = (writingMs / 1000) * LARGE_PUT_BYTES_PER_SECOND_MAX;
  const ceilingKept = BYTES_CEILING_KEPT_BYTES_MAX * processes;
  const ceilingBytes = Math.min(perStoreBytes, ceilingKept);
  return { perStoreBytes, ceilingBytes, ceilingRecycles: perStoreBytes > ceilingKept, totalBytes: 2 * perStoreBytes + ceilingBytes + DISK_RESERVE_BYTES };
}

/** Why the row cannot run here (too little free space), or undefined. */
export async function diskShortfall(directory: string, need: LargePutDiskNeed): Promise<string | undefined> {
  const stats = await statfs(directory);
  const freeBytes = stats.bavail * stats.bsize;
  if (freeBytes >= need.totalBytes) return undefined;
  const gib = (bytes: number): string => `${(bytes / GiB).toFixed(1)} GiB`;
  return (
    `needs ${gib(need.totalBytes)} free in ${directory}, has ${gib(freeBytes)}: what its runs write stays until the last one ` +
    `(Talus and s3rver up to ${gib(need.perStoreBytes)} each at ${LARGE_PUT_BYTES_PER_SECOND_MAX / 1024 ** 2} MiB/s, the bytes ceiling up to ${gib(need.ceilingBytes)}, ${gib(DISK_RESERVE_BYTES)} spare)`
  );
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
      const need = largePutDiskNeed(context.settings, context.options.workers);
      const shortfall = await diskShortfall(tmpdir(), need);
      if (shortfall !== undefined) return { rows: [], skipped: shortfall, notes: [] };
      const size = { min: context.settings.largeObjectBytes, max: context.settings.largeObjectBytes };
      const prefix = `put-large-c${concurrency}/`;
      const pool = pagePoolNeed({
        runMs: alternatedRunMs(context.settings.largeRunMs, context.settings.ratioRounds),
        concurrency,
        objectBytes: context.settings.largeObjectBytes,
        bytesPerSecondMax: LARGE_PUT_BYTES_PER_SECOND_MAX,
        availableBytes: availableMemoryBytes(),
      });
      const touches: PoolTouch[] = [];
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
        beforeMeasuredRun: () => {
          if (pool.bytes > 0) touches.push(recyclePages(pool.bytes));
        },
        judgedThroughput: 'mibPerSecond',
        drive: (server, durationMs) => loadOn(server, { bucket: BENCH_BUCKET, workload: 'put', size, concurrency, durationMs, keyPrefix: prefix }),
        afterRun: async (server) => {
          await deletePrefix(server, BENCH_BUCKET, prefix);
        },
      });
      const notes = [
        `${sizeText(context)} objects, new keys, ${concurrency} in flight for ${runSeconds(context)} s a run; the bytes ceiling writes each body to a new file and fsyncs it`,
        need.ceilingRecycles
          ? `what the runs wrote stays until the last run (Talus and s3rver keep their objects), except the bytes ceiling's beyond its newest ${BYTES_CEILING_KEPT_BYTES_MAX / GiB} GiB per process: ` +
            'in a mode this long it deletes its oldest files as it goes, and its later runs write into page-cache pages it freed (cheaper than the fresh pages Talus writes into)'
          : 'what the runs wrote stays until the last run (Talus and s3rver keep their objects, the bytes ceiling its files), so no run writes into pages another freed',
        poolNote(pool, touches),
      ];
      return { rows, notes: [...notes, ...cleanupNotes] };
    },
  };
}

function poolNote(pool: ReturnType<typeof pagePoolNeed>, touches: readonly PoolTouch[]): string {
  const mib = (bytes: number): string => `${Math.round(bytes / 1024 ** 2)} MiB`;
  if (pool.bytes === 0) return `no page pool before the runs: too little memory available for ${mib(pool.wantedBytes)} (runs may write into pages the host took back, each side alike)`;
  const cpu = touches.map((touch) => touch.cpuMs.toFixed(0)).join(', ');
  return (
    `before each measured run (untimed, after the sync) a child touched and freed ${mib(pool.bytes)}${pool.short ? ` (wanted ${mib(pool.wantedBytes)}: memory short)` : ''}, ` +
    `so every side's run wrote into recycled pages as a storage server's full page cache does (page-pool.ts); the child's CPU ms per run: ${cpu}`
  );
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
