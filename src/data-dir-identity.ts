/**
 * Which metadata database belongs with which blobs. Start-up reclaim deletes
 * every blob file the metadata does not know; that is right after a crash
 * and ruinous when the database is not the one the blobs were written with
 * (deleted, a volume that failed to mount, restored from an older backup, a
 * database of another data directory): every object's bytes would go.
 *
 * So the store has an identity (a random ID) and an epoch (bumped by every
 * start-up), recorded both in the database (`settings`) and in a marker
 * beside the blobs: an empty directory `blobs/talus-store.<id>.epoch-<n>`
 * (a name, not a file: whoever counts the files under blobs/ counts blobs
 * only, and a rename moves it from one epoch to the next atomically). Reclaim runs only when the two
 * agree: then the database is the latest one these blobs were written with,
 * and a blob it does not know is debris of a write that never committed.
 * Anything else refuses to start, names what it found and what to do, and
 * deletes nothing.
 *
 * Upgrade: a data directory from before this (a database without identity,
 * no marker) gets one on its first start, unless its database holds nothing
 * while blob files exist: that is a lost database, not an old one.
 */
import { randomUUID } from 'node:crypto';
import { mkdir, open, readdir, rename, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { SqliteMetadataStore, StoreIdentity } from './meta/sqlite/sqlite-metadata-store.ts';
import { isDiskFull } from './util/s3-error.ts';
import type { Logger } from './util/logger.ts';

const MARKER_NAME = /^talus-store\.([0-9a-f-]{36})\.epoch-(\d+)$/;
export const LOST_AND_FOUND = 'lost+found';
const BLOB_NAME = /^[0-9a-z]{9}[0-9a-f]{20}$/;
const FANOUT_NAME = /^[0-9a-f]{2}$/;

export class DataDirectoryMismatchError extends Error {
  override name = 'DataDirectoryMismatchError';
}

/** How start-up may treat blob files the database does not know. */
export type ReclaimMode = 'delete' | 'set-aside';

function recovery(dataDir: string): string {
  return (
    `Nothing was deleted. To recover: stop, put back the meta.db (with its meta.db-wal, if any) that belongs with ${join(dataDir, 'blobs')} ` +
    `and start again; or, to accept the database as it is, start once with --adopt-metadata: blobs it does not know are moved to ` +
    `${join(dataDir, LOST_AND_FOUND)} instead of being deleted (see docs/ARCHITECTURE.md, "Durability and reclaiming bytes").`
  );
}

/** Before the database is opened (opening creates a missing one): refuse when blobs exist but the database does not. */
export async function checkBeforeOpen(dataDir: string, adopt: boolean): Promise<void> {
  if (adopt) return;
  const databasePath = join(dataDir, 'meta.db');
  const size = await stat(databasePath).then((stats) => stats.size, () => 0);
  if (size > 0) return;
  const marker = await readMarker(dataDir);
  if (marker !== undefined) {
    throw new DataDirectoryMismatchError(
      `Refusing to start: ${databasePath} is missing or empty, but ${marker.path} says this directory holds store ${marker.id} (epoch ${marker.epoch}). ${recovery(dataDir)}`,
    );
  }
  const blob = await firstBlobFile(dataDir);
  if (blob !== undefined) {
    throw new DataDirectoryMismatchError(
      `Refusing to start: ${databasePath} is missing or empty, but blob files exist (e.g. ${blob}). ${recovery(dataDir)}`,
    );
  }
}

/**
 * After the database is open, before reclaim: checks that the database and
 * the blobs belong together, bumps the epoch in both, and says how reclaim
 * may treat unknown blobs.
 */
export async function settleIdentity(dataDir: string, meta: SqliteMetadataStore, adopt: boolean, logger: Logger): Promise<ReclaimMode> {
  const stored = await meta.storeIdentity();
  const marker = await readMarker(dataDir);
  const databasePath = join(dataDir, 'meta.db');
  if (adopt) {
    const identity = { id: stored?.id ?? randomUUID(), epoch: Math.max(stored?.epoch ?? 0, marker?.epoch ?? 0) + 1 };
    logger.warn('adopting the metadata database as it is: blobs it does not know are set aside', {
      database: stored ?? null,
      marker: marker ?? null,
      lostAndFound: join(dataDir, LOST_AND_FOUND),
    });
    await record(dataDir, meta, identity, marker);
    return 'set-aside';
  }
  if (stored === undefined) {
    if (marker !== undefined) {
      throw new DataDirectoryMismatchError(
        `Refusing to start: ${databasePath} has no store identity (new, or restored from before Talus recorded one), but the blobs belong to store ${marker.id} (epoch ${marker.epoch}). ${recovery(dataDir)}`,
      );
    }
    const blob = await firstBlobFile(dataDir);
    if (blob !== undefined && (await meta.holdsNothing())) {
      throw new DataDirectoryMismatchError(
        `Refusing to start: ${databasePath} holds no bucket and no blob, but blob files exist (e.g. ${blob}). ${recovery(dataDir)}`,
      );
    }
    // A new data directory, or one from before identities (upgrade).
    await record(dataDir, meta, { id: randomUUID(), epoch: 1 }, undefined);
    return 'delete';
  }
  if (marker === undefined) {
    // A start-up that recorded the database's identity and stopped before
    // writing the marker; or a marker deleted by hand. A database that holds
    // nothing cannot vouch for blobs, though.
    const blob = await firstBlobFile(dataDir);
    if (blob !== undefined && (await meta.holdsNothing())) {
      throw new DataDirectoryMismatchError(
        `Refusing to start: ${databasePath} holds no bucket and no blob, but blob files exist (e.g. ${blob}) and the store marker in ${join(dataDir, 'blobs')} is missing. ${recovery(dataDir)}`,
      );
    }
  } else if (marker.id !== stored.id) {
    throw new DataDirectoryMismatchError(
      `Refusing to start: ${databasePath} belongs to store ${stored.id}, but the blobs belong to store ${marker.id} (another data directory's database?). ${recovery(dataDir)}`,
    );
  } else if (stored.epoch < marker.epoch) {
    throw new DataDirectoryMismatchError(
      `Refusing to start: ${databasePath} is older than the blobs (epoch ${stored.epoch}, blobs at epoch ${marker.epoch}): restored from an older backup? ` +
        `Blobs written since would be deleted as debris. ${recovery(dataDir)}`,
    );
  }
  await record(dataDir, meta, { id: stored.id, epoch: Math.max(stored.epoch, marker?.epoch ?? 0) + 1 }, marker).catch((error: unknown) => {
    // A full disk must not keep the server from starting and serving reads;
    // the check above already passed, and the next start-up bumps again.
    if (!isDiskFull(error)) throw error;
    logger.warn('could not record the new store epoch: the disk is full', { error: String(error) });
  });
  return 'delete';
}

/** Database first, then the marker: a crash between leaves the database ahead, which the next start accepts. */
async function record(dataDir: string, meta: SqliteMetadataStore, identity: StoreIdentity, previous: Marker | undefined): Promise<void> {
  await meta.setStoreIdentity(identity);
  const root = join(dataDir, 'blobs');
  await mkdir(root, { recursive: true });
  const path = join(root, `talus-store.${identity.id}.epoch-${identity.epoch}`);
  if (previous === undefined) await mkdir(path);
  else await rename(previous.path, path);
  const directory = await open(root, 'r');
  try {
    await directory.sync();
  } finally {
    await directory.close();
  }
}

interface Marker extends StoreIdentity {
  path: string;
}

async function readMarker(dataDir: string): Promise<Marker | undefined> {
  const root = join(dataDir, 'blobs');
  const names = await readdir(root).catch(() => [] as string[]);
  const markers = names.flatMap((name) => {
    const match = MARKER_NAME.exec(name);
    return match === null ? [] : [{ id: match[1]!, epoch: Number(match[2]), path: join(root, name) }];
  });
  if (markers.length > 1) {
    throw new DataDirectoryMismatchError(`${root} holds more than one store marker (${markers.map((marker) => marker.path).join(', ')}): blobs of several stores mixed? Keep only the right one.`);
  }
  return markers[0];
}

/** Any blob file under `blobs/<xx>/`, without listing them all. */
async function firstBlobFile(dataDir: string): Promise<string | undefined> {
  const root = join(dataDir, 'blobs');
  const fanouts = await readdir(root).catch(() => [] as string[]);
  for (const fanout of fanouts) {
    if (!FANOUT_NAME.test(fanout)) continue;
    const names = await readdir(join(root, fanout)).catch(() => [] as string[]);
    const blob = names.find((name) => BLOB_NAME.test(name));
    if (blob !== undefined) return join(root, fanout, blob);
  }
  return undefined;
}
