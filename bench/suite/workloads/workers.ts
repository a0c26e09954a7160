/**
 * Does a second core help? 4 KiB GETs and PUTs through wrk against a Talus
 * of its own with one process and with two (`talus server --workers 2`), and
 * against the bare node:http server with one process and with two, replaying
 * what Talus answered. wrk shares the machine's cores with the server, so a
 * second server process cannot double anything: the bare server's own 2 ÷ 1
 * is what "scales as well as it can here" means, and Talus's 2 ÷ 1 is judged
 * against it (targets.ts). PUT is where a second process meets the first on
 * the metadata's write lock. A Talus without --workers fails to start with
 * the option: the workload is then skipped with a note, not failed.
 */
import type { SuiteContext, Workload, WorkloadOutcome } from '../context.ts';
import { measure, type Row } from '../measure.ts';
import { capture } from '../presign.ts';
import type { RunningServer } from '../servers.ts';
import { BENCH_BUCKET, SMALL_OBJECT_BYTES, SMALL_PREFIX, ensureBucket, ensureSmallObjects, preparedKey } from '../setup.ts';
import { wrkOn } from './small-objects.ts';

export const WORKERS_COMPARED = 2;

function coresWorkload(id: string, title: string, method: 'GET' | 'PUT'): Workload {
  return {
    id,
    title,
    async run(context): Promise<WorkloadOutcome> {
      const drive = (server: RunningServer, durationMs: number): ReturnType<typeof wrkOn> => wrkOn(context, server, method, durationMs);
      const prepare = (server: RunningServer): Promise<void> =>
        method === 'GET' ? ensureSmallObjects(server, context.settings.smallObjectCount) : ensureBucket(server, BENCH_BUCKET);
      let answer: Awaited<ReturnType<typeof capture>> | undefined;
      const runTalus = (workers: number): Promise<Row> =>
        context.withOwnTalus(workers, async (talus) => {
          await prepare(talus);
          answer ??= await captureAnswer(talus, method);
          return measureOn(context, id, talus, drive);
        });
      const rows: Row[] = [];
      try {
        rows.push(await runTalus(WORKERS_COMPARED));
      } catch (error) {
        const message = error instanceof Error ? error.message : String(error);
        // Only a Talus that rejects the option is "not supported"; any other failure is one.
        const reason = /did not start/.test(message) ? message.split('\n').find((line) => /workers/i.test(line) && !/did not start/.test(line)) : undefined;
        if (reason === undefined) throw error;
        return { rows: [], skipped: `needs --workers (not supported by this Talus yet): ${reason.slice(0, 160)}`, notes: [] };
      }
      rows.unshift(await runTalus(1));
      const responses = method === 'GET' ? { GET: answer! } : { PUT: answer! };
      for (const workers of [1, WORKERS_COMPARED]) {
        rows.push(await context.withBaseline({ kind: 'bare-http', workers, responses }, (bare) => measureOn(context, id, bare, drive)));
      }
      return {
        rows,
        notes: [
          `a fresh Talus per run (1 process, then ${WORKERS_COMPARED} with --workers ${WORKERS_COMPARED}), and bare node:http with 1 and ${WORKERS_COMPARED} processes; same wrk ${method} as ${method === 'GET' ? 'get-4k' : 'put-4k'}`,
          `wrk runs on the same cores: the target judges Talus's ${WORKERS_COMPARED} ÷ 1 against the bare server's own ${WORKERS_COMPARED} ÷ 1`,
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

async function measureOn(context: SuiteContext, id: string, server: RunningServer, drive: (server: RunningServer, durationMs: number) => ReturnType<typeof wrkOn>): Promise<Row> {
  if (context.settings.warmUpMs > 0) await drive(server, context.settings.warmUpMs);
  return measure(id, server, 'wrk', () => drive(server, context.settings.runMs));
}

export const get4kCores = coresWorkload('get-4k-cores', 'GET 4 KiB, 1 vs 2 processes (wrk)', 'GET');
export const put4kCores = coresWorkload('put-4k-cores', 'PUT 4 KiB, 1 vs 2 processes (wrk)', 'PUT');
