/**
 * Where replicas live on a backend: beside the shards, under a prefix no
 * shard key can have (shard keys are `<blob id>.<shard>`), one folder per
 * store (several gateways may share backends) and epoch (every start-up of
 * the store bumps it, see data-dir-identity.ts):
 *
 *   talus-meta/<store id>/e<epoch>/snapshot-<position>
 *   talus-meta/<store id>/e<epoch>/segment-<from>-<to>
 *
 * Numbers are zero-padded so names sort in order. The epoch tells timelines
 * apart: after a restore to position p, the restored server's segments start
 * again after p, beside any the old server wrote past p that the restore
 * could not use; the restore that follows prefers the newer epoch.
 */
export const REPLICA_PREFIX = 'talus-meta/';

export interface ReplicaName {
  readonly key: string;
  readonly kind: 'snapshot' | 'segment';
  readonly storeId: string;
  readonly epoch: number;
  /** Snapshot: its position (from = to). */
  readonly from: number;
  readonly to: number;
}

const pad = (value: number, digits: number): string => String(value).padStart(digits, '0');
const NAME = /^talus-meta\/([0-9a-f-]{36})\/e(\d{10})\/(?:snapshot-(\d{16})|segment-(\d{16})-(\d{16}))$/;

export function storePrefix(storeId: string): string {
  return `${REPLICA_PREFIX}${storeId}/`;
}

export function snapshotKey(storeId: string, epoch: number, position: number): string {
  return `${storePrefix(storeId)}e${pad(epoch, 10)}/snapshot-${pad(position, 16)}`;
}

export function segmentKey(storeId: string, epoch: number, from: number, to: number): string {
  return `${storePrefix(storeId)}e${pad(epoch, 10)}/segment-${pad(from, 16)}-${pad(to, 16)}`;
}

export function parseReplicaKey(key: string): ReplicaName | undefined {
  const match = NAME.exec(key);
  if (match === null) return undefined;
  const [, storeId, epoch, snapshot, from, to] = match;
  if (snapshot !== undefined) return { key, kind: 'snapshot', storeId: storeId!, epoch: Number(epoch), from: Number(snapshot), to: Number(snapshot) };
  return { key, kind: 'segment', storeId: storeId!, epoch: Number(epoch), from: Number(from), to: Number(to) };
}
