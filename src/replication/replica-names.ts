/**
 * Where replicas live on a backend: beside the shards, under a prefix no
 * shard key can have (shard keys are `<blob id>.<shard>`), one folder per
 * store (several gateways may share backends) and epoch (every start-up of
 * the store bumps it, see data-dir-identity.ts):
 *
 *   talus-meta/<store id>/e<epoch>/snapshot-<position>
 *   talus-meta/<store id>/e<epoch>/segment-<from>-<to>
 *   talus-meta/<store id>/e<epoch>/segment-<from>-<to>-partial
 *
 * A partial segment (cut short, segment.ts) says so in its name: a round
 * that missed its quorum and a later one may cut the same range, one short
 * and one complete, and the two must not overwrite each other under one
 * name (restore prefers the complete one). Talus before this suffix named
 * both alike; restore reads those by their content.
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
  /** A segment named partial (absent: complete, or named before partial segments said so). */
  readonly partial?: true;
}

const pad = (value: number, digits: number): string => String(value).padStart(digits, '0');
const NAME = /^talus-meta\/([0-9a-f-]{36})\/e(\d{10})\/(?:snapshot-(\d{16})|segment-(\d{16})-(\d{16})(-partial)?)$/;

export function storePrefix(storeId: string): string {
  return `${REPLICA_PREFIX}${storeId}/`;
}

export function snapshotKey(storeId: string, epoch: number, position: number): string {
  return `${storePrefix(storeId)}e${pad(epoch, 10)}/snapshot-${pad(position, 16)}`;
}

export function segmentKey(storeId: string, epoch: number, from: number, to: number, complete = true): string {
  return `${storePrefix(storeId)}e${pad(epoch, 10)}/segment-${pad(from, 16)}-${pad(to, 16)}${complete ? '' : '-partial'}`;
}

export function parseReplicaKey(key: string): ReplicaName | undefined {
  const match = NAME.exec(key);
  if (match === null) return undefined;
  const [, storeId, epoch, snapshot, from, to, partial] = match;
  if (snapshot !== undefined) return { key, kind: 'snapshot', storeId: storeId!, epoch: Number(epoch), from: Number(snapshot), to: Number(snapshot) };
  const name: ReplicaName = { key, kind: 'segment', storeId: storeId!, epoch: Number(epoch), from: Number(from), to: Number(to) };
  return partial === undefined ? name : { ...name, partial: true };
}
