/**
 * What a node of a scale-out installation (`talus server --meta
 * postgres://…`) requires and how it opens the shared metadata. Several
 * nodes share the database and the placement backends, and any node serves
 * any request; so no byte may live where only one node can read it.
 */
import { ConfigError, LOCAL_PLACEMENT, type TalusConfig } from '../../config/config.ts';
import { PostgresMetadataStore } from './postgres-metadata-store.ts';

/**
 * Unknown shards on shared backends are reclaimed only once this old: a
 * younger one may be another node's upload in flight (a multipart part of
 * 5 GiB over a slow link takes hours, not a day). A node killed mid-write
 * leaves its shards until a start-up a day later removes them.
 */
export const SHARED_ORPHAN_AGE_MS = 24 * 60 * 60 * 1000;

/**
 * How long replaced and deleted blobs wait before they are purged. One
 * node's read leases keep a blob it streams from its own purger only: a GET
 * on another node is protected by this grace alone, so it covers slow
 * downloads of large objects (the bytes are kept this much longer).
 */
export const SHARED_PURGE_GRACE_MS = 10 * 60 * 1000;

/** The URL schemes `--meta` accepts. */
export function isPostgresUrl(url: string): boolean {
  return /^postgres(ql)?:\/\//.test(url);
}

/**
 * Refuses a configuration under which a node would keep blobs of its own:
 * the built-in local placement (the data directory), as default, for a
 * bucket or inside a hybrid placement; --workers (run more nodes); and
 * metadata replication, which belongs to the SQLite store.
 * Directory backends must be shared storage mounted at the same path on
 * every node: Talus cannot tell, the operator must (docs/SCALE-OUT.md).
 */
export function checkSharedPlacement(config: TalusConfig, workers: number): void {
  if (workers !== 1) throw new ConfigError('--meta postgres://… runs one process per node: start more nodes instead of --workers');
  // Metadata replication (src/replication/) captures the embedded SQLite store's changes; PostgreSQL replicates itself.
  if ((config as { replication?: unknown }).replication !== undefined) {
    throw new ConfigError('[replication] is for the embedded SQLite store: with --meta postgres://…, replicate PostgreSQL instead (docs/SCALE-OUT.md)');
  }
  const uses: string[] = [];
  if (config.defaultPlacement === LOCAL_PLACEMENT) uses.push('[defaults] placement (give --config a placement on shared backends as the default)');
  for (const [bucket, placement] of config.buckets) if (placement === LOCAL_PLACEMENT) uses.push(`[buckets] ${bucket}`);
  for (const placement of config.placements) {
    if (placement.type === 'hybrid' && (placement.small === LOCAL_PLACEMENT || placement.large === LOCAL_PLACEMENT)) uses.push(`[placements.${placement.name}]`);
  }
  if (uses.length > 0) {
    throw new ConfigError(`with --meta postgres://… every blob must live on shared backends, and the local placement (this node's data directory) is used by ${uses.join(', ')}`);
  }
}

export function openSharedMetadata(url: string): Promise<PostgresMetadataStore> {
  return PostgresMetadataStore.open(url, { purgeGraceMs: SHARED_PURGE_GRACE_MS });
}
