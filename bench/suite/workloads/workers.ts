/**
 * Does a second core help? 4 KiB GETs and PUTs through wrk against a Talus
 * of its own with one process and with two (`talus server --workers 2`), and
 * against the bare node:http server with one process and with two, replaying
 * what Talus answered. wrk shares the machine's cores with the server, so a
 * second server process cannot double anything: the bare server's own 2 ÷ 1
 * is what "scales as well as it can here" means, and Talus's 2 ÷ 1 is judged
 * against it (targets.ts), round by round. The four servers are alive side
 * by side and take turns (alternate.ts): Talus 1, Talus 2, bare 1, bare 2,
 * then Talus 2, Talus 1, bare 2, bare 1, … so a change in the host's speed falls on all four alike; each
 * pair ratio (2 ÷ the runs of 1 around it) is taken within a round. PUT is
 * where a second process meets the first on the metadata's write lock. A
 * Talus without --workers fails to start with the option: the workload is
 * then skipped with a note, not failed.
 */
import { alternationNotes, flushDirtyPages, runAlternation, summarizeAlternation } from '../alternate.ts';
import type { Workload, WorkloadOutcome } from '../context.ts';
import type { Row } from '../measure.ts';
import { capture } from '../presign.ts';
import { startBaseline, startTalus, type RunningServer } from '../servers.ts';
import { BENCH_BUCKET, SMALL_OBJECT_BYTES, SMALL_PREFIX, ensureBucket, ensureSmallObjects, preparedKey } from '../setup.ts';
import { alternatedRunMs } from './compare.ts';
import { wrkOn } from './small-objects.ts';

export const WORKERS_COMPARED = 2;

/** Sides in their order within a round, and the pairs judged: Talus 2 ÷ 1, bare 2 ÷ 1 (targets.ts). */
const TALUS_ONE = 0;
const TALUS_SEVERAL = 1;
const BARE_ONE = 2;
const BARE_SEVERAL = 3;
const PAIRS = [
  [TALUS_SEVERAL, TALUS_ONE],
  [BARE_SEVERAL, BARE_ONE],
] as const;

function coresWorkload(id: string, title: string, method: 'GET' | 'PUT'): Workload {
  return {
    id,
    title,
    async run(context): Promise<WorkloadOutcome> {
      const prepare = (server: RunningServer): Promise<void> =>
        method === 'GET' ? ensureSmallObjects(server, context.settings.smallObjectCount) : ensureBucket(server, BENCH_BUCKET);
      const { ratioRounds: rounds, warmUpMs } = context.settings;
      // PUT writes: sync before each measured run, as the other rows that write do (alternate.ts, flushDirtyPages).
      const plan = { rounds, runMs: alternatedRunMs(context.settings.runMs, rounds), warmUpMs, ...(method === 'PUT' ? { flushBeforeRun: flushDirtyPages } : {}) };
      let rows: Row[];
      try {
        // All four alive side by side (an idle server costs nothing), the Talus with several workers started first:
        // a Talus that rejects --workers is found before anything else is done.
        rows = await context.withServers(
          [() => startTalus(WORKERS_COMPARED), () => startTalus(1)],
          async ([several, one]) => {
            await prepare(several!);
            await prepare(one!);
            const answer = await captureAnswer(one!, method);
            const responses = method === 'GET' ? { GET: answer } : { PUT: answer };
            return context.withServers(
              [() => startBaseline({ kind: 'bare-http', workers: 1, responses }), () => startBaseline({ kind: 'bare-http', workers: WORKERS_COMPARED, responses })],
              async ([bareOne, bareSeveral]) => {
                const sides = [one!, several!, bareOne!, bareSeveral!];
                const runs = await runAlternation({ ...plan, workload: id, driver: 'wrk', sides, drive: (server, durationMs) => wrkOn(context, server, method, durationMs) });
                return summarizeAlternation({ sides, pairs: PAIRS }, runs);
              },
            );
          },
        );
      } catch (error) {
        const message = error instanceof Error ? error.message : String(error);
        // Only a Talus that rejects the option is "not supported"; any other failure is one.
        const reason = /did not start/.test(message) ? message.split('\n').find((line) => /workers/i.test(line) && !/did not start/.test(line)) : undefined;
        if (reason === undefined) throw error;
        return { rows: [], skipped: `needs --workers (not supported by this Talus yet): ${reason.slice(0, 160)}`, notes: [] };
      }
      return {
        rows,
        notes: [
          `a Talus of its own with 1 process and one with ${WORKERS_COMPARED} (--workers ${WORKERS_COMPARED}), bare node:http with 1 and ${WORKERS_COMPARED} processes, all four alive; same wrk ${method} as ${method === 'GET' ? 'get-4k' : 'put-4k'}`,
          `wrk runs on the same cores: the target judges Talus's ${WORKERS_COMPARED} ÷ 1 against the bare server's own ${WORKERS_COMPARED} ÷ 1, round by round`,
          ...alternationNotes(plan, rows),
        ],
      };
    },
  };
}

function captureAnswer(talus: RunningServer, method: 'GET' | 'PUT'): ReturnType<typeof capture> {
  return method === 'GET'
    ? capture(talus, { method: 'GET', bucket: BENCH_BUCKET, key: preparedKey(SMALL_PREFIX, 0) })
    : capture(talus, { method: 'PUT', bucket: BENCH_BUCKET, key: 'capture/put' }, Buffer.alloc(SMALL_OBJECT_BYTES, 120));
}

export const get4kCores = coresWorkload('get-4k-cores', 'GET 4 KiB, 1 vs 2 processes (wrk)', 'GET');
export const put4kCores = coresWorkload('put-4k-cores', 'PUT 4 KiB, 1 vs 2 processes (wrk)', 'PUT');
