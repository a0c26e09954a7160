/**
 * 4 KiB objects at 64 connections: GET and PUT driven by wrk through
 * presigned URLs, HEAD (which wrk 4.1 cannot parse) and DELETE by the load
 * generator; HEAD also at one connection, for its latency. Each against
 * Talus, the bare node:http ceiling answering what Talus answered, and
 * s3rver; PUT also against the bytes ceiling (a new file + fsync per PUT).
 */
import type { SuiteContext, Workload, WorkloadOutcome } from '../context.ts';
import { clientFor, loadOn, type DriverResult } from '../measure.ts';
import { capture, presign } from '../presign.ts';
import type { RunningServer } from '../servers.ts';
import { BENCH_BUCKET, SMALL_OBJECT_BYTES, SMALL_PREFIX, ensureBucket, ensureSmallObjects, populate, preparedKey } from '../setup.ts';
import { WRK_SECONDS_MIN, runWrk } from '../wrk.ts';
import { alternatedRunMs, compare } from './compare.ts';

export const CONNECTIONS = 64;
/** wrk threads: one per core of the machine this suite was written for (2). */
export const WRK_THREADS = 2;
const PUT_PREFIX = 'put-4k/';
const DELETE_PREFIX = 'delete/';
/** Keys Talus and s3rver delete to warm up, unmeasured, before the measured run (see delete4k). */
const DELETE_WARM_UP_PREFIX = 'delete-warm-up/';
const SMALL_SIZE = { min: SMALL_OBJECT_BYTES, max: SMALL_OBJECT_BYTES };

const smallKey = (id: number): string => preparedKey(SMALL_PREFIX, id);

/** How many connections and threads wrk runs, and where (side-by-side runs: observability.ts). */
export interface WrkShape {
  connections: number;
  threads: number;
  cpus?: string;
  /** URLs presigned before (presignedFor): no signing inside a measured window. */
  urls?: string[];
}

const WRK_SHAPE: WrkShape = { connections: CONNECTIONS, threads: WRK_THREADS };

/** wrk GETs of the prepared 4 KiB objects, or PUTs of `PUT_PREFIX` keys (overwritten as wrk cycles over them). */
export async function wrkOn(context: SuiteContext, server: RunningServer, method: 'GET' | 'PUT', durationMs: number, shape: WrkShape = WRK_SHAPE): Promise<DriverResult> {
  const urls = shape.urls ?? (await presignedFor(context, server, method));
  const result = await runWrk({
    urls,
    method,
    bodyBytes: method === 'PUT' ? SMALL_OBJECT_BYTES : undefined,
    objectBytes: SMALL_OBJECT_BYTES,
    connections: shape.connections,
    threads: shape.threads,
    seconds: wrkSeconds(durationMs),
    scriptDirectory: context.scratch,
    cpus: shape.cpus,
  });
  const { errorDetail, ...measured } = result;
  return { ...measured, firstErrors: errorDetail };
}

/** The URLs wrkOn drives: GETs of the prepared objects, or PUTs of `PUT_PREFIX` keys (valid for an hour). */
export async function presignedFor(context: SuiteContext, server: RunningServer, method: 'GET' | 'PUT'): Promise<string[]> {
  const count = method === 'GET' ? Math.min(context.settings.wrkKeyCount, context.settings.smallObjectCount) : context.settings.wrkKeyCount;
  const urls: string[] = [];
  for (let id = 0; id < count; id++) urls.push(await presign(server, { method, bucket: BENCH_BUCKET, key: preparedKey(method === 'GET' ? SMALL_PREFIX : PUT_PREFIX, id) }));
  return urls;
}

function wrkSeconds(durationMs: number): number {
  return Math.max(WRK_SECONDS_MIN, Math.round(durationMs / 1000));
}

function wrkNote(context: SuiteContext, method: 'GET' | 'PUT'): string {
  const keys = method === 'GET' ? Math.min(context.settings.wrkKeyCount, context.settings.smallObjectCount) : context.settings.wrkKeyCount;
  return `wrk -t${WRK_THREADS} -c${CONNECTIONS} for ${wrkSeconds(runMsOf(context))} s a run, presigned ${method}s cycling over ${keys} keys`;
}

/** Each alternated run of these rows (compare.ts). */
function runMsOf(context: SuiteContext): number {
  return alternatedRunMs(context.settings.runMs, context.settings.ratioRounds);
}

export const get4k: Workload = {
  id: 'get-4k',
  title: 'GET 4 KiB, 64 conn (wrk)',
  ceiling: 'bare-http',
  async run(context): Promise<WorkloadOutcome> {
    const { rows, notes: cleanupNotes } = await compare(context, {
      workload: this.id,
      driver: 'wrk',
      prepare: (server) => ensureSmallObjects(server, context.settings.smallObjectCount),
      baselines: async (talus) => [
        { kind: 'bare-http', workers: context.options.workers, responses: { GET: await capture(talus, { method: 'GET', bucket: BENCH_BUCKET, key: smallKey(0) }) } },
      ],
      drive: (server, durationMs) => wrkOn(context, server, 'GET', durationMs),
      durationMs: context.settings.runMs,
      rounds: context.settings.ratioRounds,
    });
    return { rows, notes: [wrkNote(context, 'GET'), ...cleanupNotes] };
  },
};

function headWorkload(id: string, title: string, concurrency: number): Workload {
  return {
    id,
    title,
    ceiling: 'bare-http',
    async run(context): Promise<WorkloadOutcome> {
      const { rows, notes: cleanupNotes } = await compare(context, {
        workload: id,
        driver: 'loadgen',
        prepare: (server) => ensureSmallObjects(server, context.settings.smallObjectCount),
        baselines: async (talus) => [
          { kind: 'bare-http', workers: context.options.workers, responses: { HEAD: await capture(talus, { method: 'HEAD', bucket: BENCH_BUCKET, key: smallKey(0) }) } },
        ],
        durationMs: context.settings.runMs,
        rounds: context.settings.ratioRounds,
        drive: (server, durationMs) =>
          loadOn(server, {
            bucket: BENCH_BUCKET,
            workload: 'head',
            size: SMALL_SIZE,
            concurrency,
            durationMs,
            keyPrefix: SMALL_PREFIX,
            keyCount: context.settings.smallObjectCount,
            prepare: false,
          }),
      });
      return { rows, notes: [`load generator (src/loadgen), ${concurrency} in flight for ${runMsOf(context) / 1000} s a run, random keys of ${context.settings.smallObjectCount}`, ...cleanupNotes] };
    },
  };
}

export const head4k = headWorkload('head-4k', 'HEAD 4 KiB, 64 conn', CONNECTIONS);
export const head4kOneConnection = headWorkload('head-4k-c1', 'HEAD 4 KiB, 1 conn', 1);

export const put4k: Workload = {
  id: 'put-4k',
  title: 'PUT 4 KiB, 64 conn (wrk)',
  ceiling: 'bare-http',
  async run(context): Promise<WorkloadOutcome> {
    const { rows, notes: cleanupNotes } = await compare(context, {
      workload: this.id,
      driver: 'wrk',
      prepare: (server) => ensureBucket(server, BENCH_BUCKET),
      baselines: async (talus) => {
        const put = await capture(talus, { method: 'PUT', bucket: BENCH_BUCKET, key: 'capture/put' }, Buffer.alloc(SMALL_OBJECT_BYTES, 120));
        return [
          { kind: 'bare-http', workers: context.options.workers, responses: { PUT: put } },
          { kind: 'bytes-fsync', workers: context.options.workers, put, get: put, getFileBytes: 0 },
        ];
      },
      drive: (server, durationMs) => wrkOn(context, server, 'PUT', durationMs),
      durationMs: context.settings.runMs,
      rounds: context.settings.ratioRounds,
      writes: true,
    });
    return {
      rows,
      notes: [
        `${wrkNote(context, 'PUT')} (UNSIGNED-PAYLOAD), so most PUTs overwrite`,
        'the target compares with bare node:http; the bytes ceiling (a new file + fsync per PUT) is shown for scale',
        ...cleanupNotes,
      ],
    };
  },
};

export const delete4k: Workload = {
  id: 'delete-4k',
  title: 'DELETE 4 KiB, 64 conn',
  ceiling: 'bare-http',
  async run(context): Promise<WorkloadOutcome> {
    const { deleteKeyCount, peerDeleteKeyCount, warmUpMs, ratioRounds } = context.settings;
    const countOn = (server: RunningServer): number => (server.kind === 's3rver' ? peerDeleteKeyCount : deleteKeyCount);
    // Like every other workload, each server is warmed up before it is measured (compare.ts): the
    // bare server by a run of warmUpMs, Talus and s3rver by deleting keys of their own that the
    // measured runs do not use. Without it Talus's first measured run (~1 s in quick mode) began with
    // its DELETE path cold, while the bare server's were warm (docs/PERFORMANCE.md, "4 KiB DELETE, round 4").
    const warmUpCountOn = (server: RunningServer): number => (warmUpMs > 0 ? Math.ceil(countOn(server) * DELETE_WARM_UP_SHARE) : 0);
    const { rows, notes: cleanupNotes } = await compare(context, {
      workload: this.id,
      driver: 'loadgen',
      // Once per server: the keys its warm-up deletes.
      prepare: async (server) => {
        if (warmUpCountOn(server) === 0) return;
        await populate(server, 'objects to delete (warm-up)', BENCH_BUCKET, [{ prefix: DELETE_WARM_UP_PREFIX, count: warmUpCountOn(server) }], SMALL_SIZE);
        if (server.kind === 's3rver') await putOne(server, BENCH_BUCKET, `${DELETE_WARM_UP_PREFIX}~keep`);
      },
      // Each run deletes them all: made again before every run.
      beforeRun: async (server) => {
        await populate(server, 'objects to delete', BENCH_BUCKET, [{ prefix: DELETE_PREFIX, count: countOn(server) }], SMALL_SIZE);
        // s3rver removes a directory once it is empty, and concurrent DELETEs of its last files race
        // on that (500 ENOENT): a key that stays keeps the directory.
        if (server.kind === 's3rver') await putOne(server, BENCH_BUCKET, `${DELETE_PREFIX}~keep`);
      },
      baselines: async (talus) => [
        { kind: 'bare-http', workers: context.options.workers, responses: { DELETE: await capture(talus, { method: 'DELETE', bucket: BENCH_BUCKET, key: 'capture/delete' }) } },
      ],
      durationMs: context.settings.runMs,
      rounds: ratioRounds,
      writes: true,
      // One pass: the warm-up keys are deleted once (enough for V8, see DELETE_WARM_UP_SHARE).
      warmUpPasses: 1,
      drive: (server, durationMs, phase) => {
        // The bare server deletes nothing: it runs for the usual duration instead of running out of keys.
        const bare = server.kind === 'bare-http';
        const warmUp = phase === 'warm-up';
        return loadOn(server, {
          bucket: BENCH_BUCKET,
          workload: 'delete',
          size: SMALL_SIZE,
          concurrency: CONNECTIONS,
          durationMs: bare ? durationMs : DELETE_RUN_MS_MAX,
          keyPrefix: warmUp ? DELETE_WARM_UP_PREFIX : DELETE_PREFIX,
          keyCount: bare ? 10_000_000 : warmUp ? warmUpCountOn(server) : countOn(server),
          prepare: false,
        });
      },
    });
    const counts = `${deleteKeyCount} objects per run (s3rver: ${peerDeleteKeyCount})`;
    const warmUpNote = warmUpMs > 0 ? `; first ${Math.round(DELETE_WARM_UP_SHARE * 100)} % as many other keys deleted unmeasured to warm up (bare node:http: ${warmUpMs / 1000} s)` : '';
    return {
      rows,
      notes: [`${counts}, each deleted once, 64 in flight (a run ends when none is left; bare node:http runs ${runMsOf(context) / 1000} s)${warmUpNote}`, ...cleanupNotes],
    };
  },
};

async function putOne(server: RunningServer, bucket: string, key: string): Promise<void> {
  const client = clientFor(server, 1);
  try {
    await client.putObject(bucket, key, Buffer.alloc(0));
  } finally {
    await client.close();
  }
}

/** Warm-up keys per measured key: enough for V8 to optimise the DELETE path (~2 000 deletes for Talus in quick mode). */
const DELETE_WARM_UP_SHARE = 1 / 6;
/** The longest a DELETE run waits for a server to delete all its keys. */
const DELETE_RUN_MS_MAX = 120_000;
