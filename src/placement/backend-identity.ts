/**
 * Which store a backend's shards belong to. Orphan reclaim deletes every
 * shard-named object on a backend that this metadata does not know: right
 * after a crash, ruinous on a location that holds another deployment's
 * shards (a mistyped bucket or prefix in UpdateBackend, a backend shared by
 * mistake). So, as the data directory's marker does for local blobs
 * (data-dir-identity.ts), each backend this store uses carries an identity
 * marker — on S3 an object `talus-identity/<storeId>`; in a directory an
 * empty directory `talus-identity.<storeId>` beside the fan-out directories
 * (a name, not a file, as the data directory's marker: whoever counts a
 * backend's files counts shards) — and reclaim runs only where it finds
 * this store's. The marker is written only when that is safe: the backend
 * holds blobs this metadata records there (a sample of them is found), or
 * it holds no shard at all. Anything else — another store's marker, or
 * shards none of which this store can vouch for — leaves the backend alone.
 */
import { randomUUID } from 'node:crypto';
import { mkdir, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { Backend } from '../backend/backend.ts';
import { DirectoryBackend } from '../backend/directory-backend.ts';
import type { MetadataStore } from '../meta/metadata-store.ts';
import { decodeLocation, shardKey } from './blob-location.ts';

export const IDENTITY_PREFIX = 'talus-identity/';
const DIRECTORY_MARKER_PREFIX = 'talus-identity.';
/** The settings row holding the ID every backend's marker names (shared by nodes sharing the metadata store: one store). */
const STORE_ID_SETTING = 'backend_identity';
/**
 * Blobs recorded on a backend looked for at a location before it is
 * trusted: a few, as each costs a request to a possibly far backend; one
 * missing of three already says the location is not this data's.
 */
export const IDENTITY_SAMPLE_BLOBS = 3;

/** Asked once per open store: claims of several backends at once must not each create an ID. */
const storeIds = new WeakMap<MetadataStore, Promise<string>>();

/** This store's ID for backend markers, created on first use. */
export function backendStoreId(meta: MetadataStore): Promise<string> {
  let id = storeIds.get(meta);
  if (id === undefined) {
    id = (async () => {
      const known = await meta.getSetting(STORE_ID_SETTING);
      if (known !== undefined) return known;
      await meta.putSetting(STORE_ID_SETTING, randomUUID());
      return (await meta.getSetting(STORE_ID_SETTING))!;
    })();
    id.catch(() => storeIds.delete(meta)); // asked again next time
    storeIds.set(meta, id);
  }
  return id;
}

/**
 * Blobs the metadata records on backend `name` that `backend` (maybe a new
 * location of it) does not hold: of up to IDENTITY_SAMPLE_BLOBS, each
 * looked for as its first shard there. `checked` 0: none is recorded.
 */
export async function missingSampleBlobs(meta: MetadataStore, name: string, backend: Backend, signal?: AbortSignal): Promise<{ checked: number; missing: string[] }> {
  const samples = await meta.sampleBlobsOnBackend(name, IDENTITY_SAMPLE_BLOBS);
  const missing: string[] = [];
  for (const { blobId, location } of samples) {
    const shard = decodeLocation(location).backends.indexOf(name);
    const key = shardKey(blobId, shard);
    const size = await backend.stat(key, signal === undefined ? {} : { signal }).catch(() => undefined);
    if (size === undefined) missing.push(key);
  }
  return { checked: samples.length, missing };
}

export type BackendClaim = { readonly ours: true } | { readonly ours: false; readonly why: string };

/**
 * Whether `backend` is this store's: its marker is there, or is written now
 * because the backend holds this store's recorded blobs or no shard at all.
 * `isShardKey` tells the shard-named keys a backend of another store holds.
 */
export async function claimBackend(meta: MetadataStore, backend: Backend, isShardKey: (key: string) => boolean, signal?: AbortSignal): Promise<BackendClaim> {
  const storeId = await backendStoreId(meta);
  const markers = await markersOn(backend);
  if (markers.includes(storeId)) return { ours: true };
  if (markers.length > 0) return { ours: false, why: `it carries the identity marker of another store (${markers.join(', ')})` };
  const { checked, missing } = await missingSampleBlobs(meta, backend.name, backend, signal);
  if (checked > 0 && missing.length > 0) return { ours: false, why: `${missing.length} of ${checked} blobs recorded on it are not there (${missing.join(', ')}): it may be another location's data` };
  if (checked === 0) {
    for await (const key of backend.list('')) {
      if (isShardKey(key)) return { ours: false, why: `it holds shards (${key}) but no blob this store records there, and no identity marker` };
    }
  }
  await writeMarker(backend, storeId);
  return { ours: true };
}

/** The store IDs of the identity markers on `backend`. */
async function markersOn(backend: Backend): Promise<string[]> {
  if (backend instanceof DirectoryBackend) {
    const names = await readdir(backend.root);
    return names.filter((name) => name.startsWith(DIRECTORY_MARKER_PREFIX)).map((name) => name.slice(DIRECTORY_MARKER_PREFIX.length));
  }
  const markers: string[] = [];
  for await (const key of backend.list(IDENTITY_PREFIX)) markers.push(key.slice(IDENTITY_PREFIX.length));
  return markers;
}

async function writeMarker(backend: Backend, storeId: string): Promise<void> {
  if (backend instanceof DirectoryBackend) {
    await mkdir(join(backend.root, `${DIRECTORY_MARKER_PREFIX}${storeId}`), { recursive: true });
    return;
  }
  const body = Buffer.from(`${JSON.stringify({ store: storeId, writtenMs: Date.now() })}\n`);
  const writer = backend.create(`${IDENTITY_PREFIX}${storeId}`, body.length);
  try {
    await writer.write(body);
    await writer.commit();
  } catch (error) {
    await writer.abort();
    throw error;
  }
}
