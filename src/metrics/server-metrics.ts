/**
 * A process's metrics: its requests (RequestMetrics) and, in the process
 * that owns the data directory, the gauges read at scrape time — disk space,
 * metadata size, the repair queue, each backend's state and latency, and
 * build and process facts.
 */
import { statfs, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { MetadataStore } from '../meta/metadata-store.ts';
import type { BackendStatus } from '../placement/backend-health.ts';
import { degradedReadCount } from '../placement/striped-reader.ts';
import { Registry } from './registry.ts';
import { RequestMetrics } from './request-metrics.ts';

/** Gauges every process reports alike (the same disk seen twice): merged by taking one, not summing. */
export const SHARED_GAUGES: ReadonlySet<string> = new Set([
  'talus_disk_free_bytes', 'talus_disk_size_bytes', 'talus_metadata_bytes', 'talus_repair_queue_shards', 'talus_purge_queue_blobs',
  'talus_backend_up', 'talus_backend_latency_seconds', 'talus_build_info',
]);

export interface ServerMetrics {
  registry: Registry;
  requests: RequestMetrics;
}

export interface OwnerFacts {
  dataDir: string;
  meta: MetadataStore;
  backends?: (() => BackendStatus[]) | undefined;
}

/** What every serving process counts of its own placed reads and writes (summed over the processes). */
export interface PlacementFacts {
  backends?: (() => BackendStatus[]) | undefined;
}

/**
 * `owner`: the data directory's facts, for the process that owns it (the
 * primary, or the only process); `placement`: this process's backends.
 */
export function createServerMetrics(version: string, owner?: OwnerFacts, placement: PlacementFacts = {}): ServerMetrics {
  const registry = new Registry();
  const requests = new RequestMetrics(registry);
  addPlacementCounters(registry, placement);
  registry.gauge('talus_build_info', 'Always 1; the labels name the build.', ['version', 'node']).labels(version, process.version).set(1);
  const resident = registry.gauge('talus_process_resident_memory_bytes', 'Resident memory of the serving processes.').labels();
  const cpu = registry.gauge('talus_process_cpu_seconds_total', 'CPU time (user and system) of the serving processes.').labels();
  registry.onCollect(() => {
    resident.set(process.memoryUsage.rss());
    const usage = process.cpuUsage();
    cpu.set((usage.user + usage.system) / 1e6);
  });
  if (owner !== undefined) addOwnerGauges(registry, owner);
  return { registry, requests };
}

/**
 * talus_backend_errors_total and talus_degraded_reads_total: counted where
 * they happen (BackendHealth per backend, the striped reader per process) and
 * brought into the registry at each scrape as the increase since the last
 * one, so the request path pays nothing for them. Degraded reads count from
 * this server's start (another server in the same process, as in tests,
 * started from its own count).
 */
function addPlacementCounters(registry: Registry, placement: PlacementFacts): void {
  const errors = registry.counter('talus_backend_errors_total', 'Requests and probes to the backend that failed or timed out.', ['backend']);
  const degraded = registry.counter('talus_degraded_reads_total', 'Reads served without one of their data shards (failed, or its backend down): rebuilt from parity or read from another copy.').labels();
  const errorsSeen = new Map<string, number>();
  let degradedSeen = degradedReadCount();
  registry.onCollect(() => {
    for (const backend of placement.backends?.() ?? []) {
      const increase = backend.errors - (errorsSeen.get(backend.name) ?? 0);
      // A backend's child is created at its first scrape, so every backend shows, 0 while it never failed.
      errors.labels(backend.name).inc(Math.max(0, increase));
      errorsSeen.set(backend.name, backend.errors);
    }
    const reads = degradedReadCount();
    degraded.inc(reads - degradedSeen);
    degradedSeen = reads;
  });
}

function addOwnerGauges(registry: Registry, owner: OwnerFacts): void {
  const free = registry.gauge('talus_disk_free_bytes', 'Space available to Talus on the data directory\'s file system.').labels();
  const size = registry.gauge('talus_disk_size_bytes', 'Size of the data directory\'s file system.').labels();
  const metadata = registry.gauge('talus_metadata_bytes', 'Size of the metadata database with its write-ahead log.').labels();
  const repairs = registry.gauge('talus_repair_queue_shards', 'Shards of placed objects waiting to be rewritten.').labels();
  const purges = registry.gauge('talus_purge_queue_blobs', 'Blobs nobody references any more, waiting to be removed.').labels();
  const up = registry.gauge('talus_backend_up', '1 when the backend answers its probes, 0 when it is down (absent: not yet probed).', ['backend']);
  const latency = registry.gauge('talus_backend_latency_seconds', 'Smoothed latency of the backend\'s probes and reads.', ['backend']);
  registry.onCollect(async () => {
    const space = await statfs(owner.dataDir);
    free.set(space.bavail * space.bsize);
    size.set(space.blocks * space.bsize);
    let bytes = 0;
    for (const file of ['meta.db', 'meta.db-wal']) bytes += await stat(join(owner.dataDir, file)).then((found) => found.size, () => 0);
    metadata.set(bytes);
    repairs.set((await owner.meta.repairSummary(0)).pending);
    purges.set((await owner.meta.purgeQueueSummary()).blobs);
    for (const backend of owner.backends?.() ?? []) {
      if (backend.state !== 'unknown') up.labels(backend.name).set(backend.state === 'up' ? 1 : 0);
      if (backend.latencyMs !== undefined) latency.labels(backend.name).set(backend.latencyMs / 1000);
    }
  });
}
