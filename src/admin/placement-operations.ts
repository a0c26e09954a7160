/**
 * Admin operations on placement's machinery: the repair (heal) and purge
 * queues, a healing pass on demand, and the backends' state.
 */
import { statfs } from 'node:fs/promises';
import { DirectoryBackend } from '../backend/directory-backend.ts';
import { S3Backend } from '../backend/s3-backend.ts';
import { operation } from './define.ts';
import { AdminError } from './errors.ts';
import { requireStorage } from './storage-operations.ts';
import { LOCAL_PLACEMENT } from '../config/config.ts';
import { isKnownPlacement, readBucketPlacements, writeBucketPlacements } from '../placement/bucket-placements.ts';

/** SetBucketPlacement calls, one at a time: each rewrites the file from what the one before left. */
let placementChanges: Promise<unknown> = Promise.resolve();

/** Queued repairs GetHealStatus shows, oldest first. */
const REPAIR_SAMPLE_MAX = 20;

export const PLACEMENT_OPERATIONS = {
  GetHealStatus: operation({
    summary: 'The repair queue (shards of placed objects to rewrite), the purge queue, and the healing pass StartHeal began.',
    input: {},
    output: '{ placements, repairs: { pending, unreferenced, oldestRecordedMs, sample }, purge: { blobs, oldestDueMs }, pass }',
    async handler(context) {
      const storage = requireStorage(context);
      const repairs = await storage.meta.repairSummary(REPAIR_SAMPLE_MAX);
      return {
        placements: storage.placement !== undefined,
        repairs: { ...repairs, sample: repairs.sample.map(({ location: _location, ...entry }) => entry) },
        purge: await storage.meta.purgeQueueSummary(),
        pass: storage.placement?.healPassStatus() ?? null,
      };
    },
  }),
  StartHeal: operation({
    summary: 'Starts a healing pass now: queued repairs (also those backing off), a scan of every placed blob (deep: every shard read and verified), re-placement.',
    input: { deep: { type: 'boolean', description: 'Read every shard whole and verify its frames (finds silent corruption; reads everything).' } },
    output: '{ started }',
    async handler(context, input) {
      const placement = requireStorage(context).placement;
      if (placement === undefined) throw new AdminError('Conflict', 'no placements are configured: nothing to heal');
      if (!placement.healNow({ deep: input.deep ?? false })) throw new AdminError('Conflict', 'a healing pass asked for earlier is still running (CancelHeal stops it)');
      return { started: true };
    },
  }),
  CancelHeal: operation({
    summary: 'Stops the pass StartHeal began, at its next blob (what it did stays done). The background repairs and scans go on.',
    input: {},
    output: '{ cancelled }',
    async handler(context) {
      const placement = requireStorage(context).placement;
      return { cancelled: placement?.cancelHeal() ?? false };
    },
  }),
  ListPlacements: operation({
    summary: 'Every configured placement with its type, shards and backends, the default, and each bucket\'s placement.',
    input: {},
    output: '{ defaultPlacement, placements: [{ name, type, dataShards, parityShards, backends, writeQuorum, small, large, thresholdBytes }], buckets: [{ name, placement }] }',
    async handler(context) {
      const storage = requireStorage(context);
      const store = storage.placement?.store;
      const buckets = (await context.engine.listBuckets()).map((bucket) => ({
        name: bucket.name,
        placement: store?.bucketPlacementName(bucket.name) ?? storage.config.buckets.get(bucket.name) ?? storage.config.defaultPlacement,
      }));
      const placements = storage.config.placements.map((placement) => placement.type === 'hybrid'
        ? { name: placement.name, type: placement.type, small: placement.small, large: placement.large, thresholdBytes: placement.thresholdBytes }
        : { name: placement.name, type: placement.type, dataShards: placement.dataShards, parityShards: placement.parityShards, backends: placement.backends, writeQuorum: placement.writeQuorum });
      return { defaultPlacement: storage.config.defaultPlacement, placements, buckets };
    },
  }),
  SetBucketPlacement: operation({
    summary: 'Moves a bucket to another configured placement (or local), at once and across restarts (kept in the data directory, over talus.toml\'s [buckets]); new objects go there, and a re-placement pass starts to move the existing ones.',
    input: {
      bucket: { type: 'string', description: 'The bucket.', required: true, maxLength: 63 },
      placement: { type: 'string', description: `A placement of talus.toml, or ${LOCAL_PLACEMENT}.`, required: true, maxLength: 63 },
    },
    output: '{ bucket, placement, replacementStarted }',
    async handler(context, input) {
      const storage = requireStorage(context);
      const placement = storage.placement;
      if (placement === undefined) throw new AdminError('Conflict', 'no placements are configured (start the server with --config)');
      // Workers write with the placements they were started with: a change here would not reach them.
      if (context.server.workers > 1) throw new AdminError('Conflict', 'not with --workers: change talus.toml\'s [buckets] and restart');
      if (!isKnownPlacement(storage.config, input.placement)) throw new AdminError('NotFound', `no placement ${input.placement} is configured`);
      await context.engine.getBucket(input.bucket); // NotFound for a missing bucket
      const change = placementChanges.then(async () => {
        const chosen = await readBucketPlacements(storage.dataDir);
        chosen.set(input.bucket, input.placement);
        // Kept first, applied after: a failed write changes nothing, and a crash after it applies at the next start.
        await writeBucketPlacements(storage.dataDir, chosen);
        placement.store.setBucketPlacement(input.bucket, input.placement);
      });
      placementChanges = change.catch(() => undefined);
      await change;
      // Objects already written move with the re-placement of a healing pass (false: one asked for runs already; call StartHeal after it).
      const replacementStarted = placement.healNow({ deep: false });
      return { bucket: input.bucket, placement: input.placement, replacementStarted };
    },
  }),
  ListBackends: operation({
    summary: 'Every configured backend with its type, state, smoothed latency, last error, and free space where the backend can tell (directories).',
    input: {},
    output: '{ backends: [{ name, type, state, latencyMs, deadlineMs, lastError, sinceMs, freeBytes, placements }] }',
    async handler(context) {
      const storage = requireStorage(context);
      const placement = storage.placement;
      if (placement === undefined) return { backends: [] };
      const instances = new Map(placement.store.backends().map((backend) => [backend.name, backend]));
      const backends = [];
      for (const status of placement.backendStatus()) {
        const backend = instances.get(status.name);
        let freeBytes: number | null = null;
        if (backend instanceof DirectoryBackend) {
          const space = await statfs(backend.root).catch(() => undefined);
          freeBytes = space === undefined ? null : space.bavail * space.bsize;
        }
        const placements = storage.config.placements
          .filter((candidate) => candidate.type !== 'hybrid' && candidate.backends.includes(status.name))
          .map((candidate) => candidate.name);
        backends.push({
          name: status.name,
          type: backend instanceof S3Backend ? 's3' : 'directory',
          state: status.state,
          latencyMs: status.latencyMs ?? null,
          deadlineMs: status.deadlineMs,
          lastError: status.lastError ?? null,
          sinceMs: status.sinceMs,
          freeBytes,
          placements,
        });
      }
      return { backends };
    },
  }),
} as const;
