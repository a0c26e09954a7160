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

/** Queued repairs GetHealStatus shows, oldest first. */
const REPAIR_SAMPLE_MAX = 20;

export const PLACEMENT_OPERATIONS = {
  GetHealStatus: operation({
    summary: 'The repair queue (shards of placed objects to rewrite), the purge queue, the healing pass StartHeal began, and the background healing.',
    input: {},
    output: '{ placements, repairs: { pending, unreferenced, oldestRecordedMs, sample }, purge: { blobs, oldestDueMs }, pass, background: { running, phase, progress, nextScanMs, cancelledMs } }',
    async handler(context) {
      const storage = requireStorage(context);
      const repairs = await storage.meta.repairSummary(REPAIR_SAMPLE_MAX);
      return {
        placements: storage.placement !== undefined,
        repairs: { ...repairs, sample: repairs.sample.map(({ location: _location, ...entry }) => entry) },
        purge: await storage.meta.purgeQueueSummary(),
        pass: storage.placement?.healPassStatus() ?? null,
        background: storage.placement?.backgroundHealStatus() ?? null,
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
    summary: 'Stops the healing passes in progress at their next blob (what they did stays done): the one StartHeal began, and the background one once it has work in hand, whose repairs then wait for the next tick and whose scan and re-placement for the next scan interval (or StartHeal).',
    input: {},
    output: '{ cancelled }',
    async handler(context) {
      const placement = requireStorage(context).placement;
      return { cancelled: placement?.cancelHeal() ?? false };
    },
  }),
  ListBackends: operation({
    summary: 'Every configured backend with its type, state, smoothed latency, its last probes\' latencies (oldest first, latencyMs null for a failed probe), last error, and free space where the backend can tell (directories).',
    input: {},
    output: '{ backends: [{ name, type, state, latencyMs, deadlineMs, lastError, sinceMs, freeBytes, placements, latencyHistory: [{ atMs, latencyMs }] }] }',
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
        const placements = placement.placements()
          .filter((candidate) => candidate.type !== 'hybrid' && candidate.backends.includes(status.name))
          .map((candidate) => candidate.name);
        backends.push({
          name: status.name,
          type: backend instanceof DirectoryBackend ? 'directory' : backend instanceof S3Backend ? 's3' : 'other',
          state: status.state,
          latencyMs: status.latencyMs ?? null,
          deadlineMs: status.deadlineMs,
          lastError: status.lastError ?? null,
          sinceMs: status.sinceMs,
          freeBytes,
          placements,
          latencyHistory: placement.store.health.latencyHistory(status.name),
        });
      }
      return { backends };
    },
  }),
} as const;
