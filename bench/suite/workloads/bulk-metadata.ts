/**
 * The bulk-metadata workload: objects with user metadata, all listed page by
 * page and each HEADed, once serially and once with 64 HEADs in flight;
 * reported as objects per second (a backup or sync tool's first pass).
 */
import { walkAndHead } from '../bulk-walk.ts';
import type { SuiteContext, Workload, WorkloadOutcome } from '../context.ts';
import { clientFor, type DriverResult } from '../measure.ts';
import type { RunningServer } from '../servers.ts';
import { BULK_BUCKET, BULK_METADATA, BULK_PREFIX, ensureBulkObjects } from '../setup.ts';
import { compare } from './compare.ts';

function objectCount(context: SuiteContext, server: RunningServer): number {
  return server.kind === 's3rver' ? context.settings.peerBulkObjectCount : context.settings.bulkObjectCount;
}

async function walk(context: SuiteContext, server: RunningServer, inFlight: number): Promise<DriverResult> {
  const client = clientFor(server, inFlight + 1);
  try {
    return await walkAndHead({ client, bucket: BULK_BUCKET, prefix: BULK_PREFIX, expectedObjects: objectCount(context, server), inFlight, expectedMetadata: BULK_METADATA });
  } finally {
    await client.close();
  }
}

function bulkWorkload(id: string, title: string, inFlight: number): Workload {
  return {
    id,
    title,
    async run(context): Promise<WorkloadOutcome> {
      const { rows, notes: cleanupNotes } = await compare(context, {
        workload: id,
        driver: 'bulk',
        prepare: (server) => ensureBulkObjects(server, objectCount(context, server)),
        baselines: async () => [],
        // The walk ends when every object was seen: no duration, and no warm-up (it would be a second walk).
        durationMs: 0,
        warmUp: false,
        drive: (server) => walk(context, server, inFlight),
      });
      const { bulkObjectCount, peerBulkObjectCount } = context.settings;
      const counts = bulkObjectCount === peerBulkObjectCount ? `${bulkObjectCount} objects` : `${bulkObjectCount} objects (s3rver: ${peerBulkObjectCount})`;
      return {
        rows,
        notes: [`${counts} with ${Object.keys(BULK_METADATA).length} user metadata entries; ops/s is objects/s over the whole walk (pages of 1000 + one HEAD each); latencies are the HEADs'`, ...cleanupNotes],
      };
    },
  };
}

export const bulkSerial = bulkWorkload('bulk-head-serial', 'list all + HEAD each, serial', 1);
export const bulkParallel = bulkWorkload('bulk-head-c64', 'list all + HEAD each, 64 in flight', 64);
