/**
 * Backends and placements changed or removed at run time, without a restart:
 * UpdateBackend, RemoveBackend and UpdatePlacement, beside the additions of
 * runtime-config-operations.ts and under the same rules — only entries kept
 * at run time (a talus.toml entry is changed in talus.toml), validated by
 * src/config's parser, kept before applied, one change at a time (on nodes
 * sharing PostgreSQL, by compare-and-set), in a server that may make
 * run-time changes at all.
 *
 * A backend's name is its identity: every placed blob records the backends
 * of its shards by name. So UpdateBackend changes how the same data is
 * reached (endpoint, keys, region, bucket, prefix, a directory's path), never
 * which data it is; RemoveBackend waits until no placement names it and no
 * blob has a shard on it (counted in the metadata store: every node's
 * blobs, when nodes share it); and a placement's
 * new backends or geometry reach the objects already written through
 * re-placement, which a change starts at once.
 */
import type { BackendConfig, PlacementConfig } from '../config/config.ts';
import { type KeptDocument } from '../placement/runtime-document.ts';
import { validateBackend } from '../placement/runtime-placements.ts';
import { REMOVED_BACKEND } from '../placement/blob-location.ts';
import { missingSampleBlobs } from '../placement/backend-identity.ts';
import { openBackend } from '../placement/open-placement.ts';
import { type AdminContext, type AdminStorage, operation } from './define.ts';
import { AdminError } from './errors.ts';
import { type AnyPlacementRequest, NAME, PLACEMENT_FIELDS, checkDirectoryPath, configured, oneAtATime, placementRequestOf, placementView, requireRuntimePlacement, validateRequestedPlacement } from './runtime-config-operations.ts';

/** What UpdateBackend may change: how the data is reached, not which data (the name and type stay). */
interface BackendChanges {
  path?: string | undefined;
  endpoint?: string | undefined;
  bucket?: string | undefined;
  region?: string | undefined;
  accessKeyId?: string | undefined;
  secretAccessKey?: string | undefined;
  prefix?: string | undefined;
}

/** `current` with `changes` over it; a field that does not fit the backend's type is refused, not ignored. */
function changedBackend(current: BackendConfig, changes: BackendChanges): BackendConfig {
  const given = (Object.keys(changes) as (keyof BackendChanges)[]).filter((field) => changes[field] !== undefined);
  if (given.length === 0) throw new AdminError('InvalidRequest', 'nothing to change: give at least one field');
  if (current.type === 'directory') {
    const foreign = given.filter((field) => field !== 'path');
    if (foreign.length > 0) throw new AdminError('InvalidRequest', `backend ${current.name} is a directory: ${foreign.join(', ')} do not apply`);
    return { ...current, path: changes.path! };
  }
  if (given.includes('path')) throw new AdminError('InvalidRequest', `backend ${current.name} is s3: path does not apply`);
  const next = { ...current };
  for (const field of given) next[field as Exclude<keyof BackendChanges, 'path'>] = changes[field]!;
  if (next.bucket === '' || next.accessKeyId === '' || next.secretAccessKey === '') throw new AdminError('InvalidRequest', 'an s3 backend needs bucket, accessKeyId and secretAccessKey');
  return next;
}

/** The run-time entry of `name`; a talus.toml backend gets the answer that says where to change it. */
function keptEntry<T extends { name: string }>(entries: readonly T[], name: string, open: boolean, kind: string, change: string): T {
  const entry = entries.find((candidate) => candidate.name === name);
  if (entry !== undefined) return entry;
  if (open) throw new AdminError('Conflict', `${kind} ${name} is declared in talus.toml: ${change} it there and restart`);
  throw new AdminError('NotFound', `no ${kind} ${name}`);
}

/** How long UpdateBackend looks for the sample blobs at the new location before it gives up (and refuses). */
const SAMPLE_CHECK_TIMEOUT_MS = 30_000;

/**
 * Refuses a new location for backend `name` that does not hold the blobs
 * the metadata records there (a sample of them): a mistyped bucket, prefix
 * or path would make every object on it unreadable — and the location may
 * be another deployment's.
 */
async function checkSameData(storage: AdminStorage, name: string, backendConfig: BackendConfig): Promise<void> {
  const candidate = await openBackend(backendConfig).catch((error: unknown) => {
    throw new AdminError('InvalidRequest', `backend ${name} cannot be opened so: ${error instanceof Error ? error.message : String(error)}`);
  });
  try {
    const { checked, missing } = await missingSampleBlobs(storage.meta, name, candidate, AbortSignal.timeout(SAMPLE_CHECK_TIMEOUT_MS));
    if (missing.length > 0) {
      throw new AdminError('Conflict', `the new location of backend ${name} does not hold ${missing.length} of ${checked} shards recorded on it (${missing.join(', ')}): not the same data, or not reachable; check the ${backendConfig.type === 'directory' ? 'path' : 'endpoint, bucket and prefix'}, or give force: true if the data is to follow (the healer rebuilds what it can)`);
    }
  } finally {
    await candidate.close().catch(() => undefined);
  }
}

async function updateBackend(context: AdminContext, name: string, changes: BackendChanges, force: boolean): Promise<BackendConfig> {
  const { storage, placement, runtime } = requireRuntimePlacement(context);
  return oneAtATime(storage, async () => {
    const kept = await runtime.read();
    const isOpen = placement.store.backends().some((backend) => backend.name === name);
    const current = keptEntry(kept.document.backends, name, isOpen, 'backend', 'edit');
    const requested = changedBackend(current, changes);
    if (requested.type === 'directory') await checkDirectoryPath(context, requested.path, name);
    const backend = configured(() => validateBackend(requested, 'UpdateBackend'));
    if (!force) await checkSameData(storage, name, backend);
    const backends = kept.document.backends.map((candidate) => (candidate.name === name ? backend : candidate));
    const written = await runtime.write({ ...kept.document, backends }, kept);
    try {
      await placement.replaceBackend(backend);
    } catch (error) {
      await runtime.write(kept.document, written); // not opened, so not kept
      throw new AdminError('InvalidRequest', `backend ${name} cannot be opened so: ${error instanceof Error ? error.message : String(error)}`);
    }
    return backend;
  });
}

async function removeBackend(context: AdminContext, name: string, force: boolean): Promise<void> {
  const { storage, placement, runtime } = requireRuntimePlacement(context);
  await oneAtATime(storage, async () => {
    const kept = await runtime.read();
    const isOpen = placement.store.backends().some((backend) => backend.name === name);
    keptEntry(kept.document.backends, name, isOpen, 'backend', 'remove');
    const naming = placement.store.placementsNaming(name);
    if (naming.length > 0) throw new AdminError('Conflict', `backend ${name} is in use by placements ${naming.join(', ')}: UpdatePlacement or DeletePlacement them first`);
    const without = { ...kept.document, backends: kept.document.backends.filter((candidate) => candidate.name !== name) };
    // Writes that chose their backends under an earlier placement may still be committing: refused from here on, waited for, then counted.
    await placement.store.withdraw(name);
    let written: KeptDocument | undefined;
    try {
      if (storage.placementsChanged !== undefined) {
        // With --workers, every worker drops it first (refusing commits that name it once those under way ended), so the
        // count misses no worker's write either; a refusal below keeps the document as it was, and the workers open it again.
        written = await runtime.write(without, kept);
        await storage.placementsChanged().catch((error: unknown) => {
          throw new AdminError('ServiceUnavailable', `backend ${name} was not removed: ${error instanceof Error ? error.message : String(error)}`);
        });
      }
      // Forced (a dead backend, whose queued shards can never be deleted): only while no live object or part blob uses it.
      const released = force ? await storage.meta.releaseBackendFromPurgeQueue(name, REMOVED_BACKEND) : undefined;
      if (released !== undefined && released.live > 0) {
        throw new AdminError('Conflict', `backend ${name} still holds shards of ${released.live} live blob${released.live === 1 ? '' : 's'} (objects or parts of incomplete uploads), even with force: let re-placement move them (GetHealStatus) or abort the uploads, then try again`);
      }
      const blobs = released !== undefined ? 0 : await storage.meta.countBlobsOnBackend(name);
      if (blobs > 0) {
        throw new AdminError('Conflict', `backend ${name} still holds shards of ${blobs} blob${blobs === 1 ? '' : 's'} (objects, parts of incomplete uploads, or blobs waiting in the purge queue): let re-placement and the purge queue finish (GetHealStatus), then try again`);
      }
      // Nodes sharing the store: one that has not applied the change that took the backend out of its last placement
      // may still write to it, for at most RUNTIME_STALE_MAX_MS (runtime-sync.ts); docs/SCALE-OUT.md says to wait that out.
      if (written === undefined) written = await runtime.write(without, kept);
      placement.removeBackend(name);
    } catch (error) {
      if (written !== undefined && storage.placementsChanged !== undefined) await runtime.write(kept.document, written); // oneAtATime tells the workers
      throw error;
    } finally {
      placement.store.restore(name);
    }
  });
}

async function updatePlacement(context: AdminContext, request: AnyPlacementRequest): Promise<PlacementConfig> {
  const { storage, placement, runtime } = requireRuntimePlacement(context);
  return oneAtATime(storage, async () => {
    const kept = await runtime.read();
    keptEntry(kept.document.placements, request.name, placement.store.hasPlacement(request.name), 'placement', 'change');
    const validated = validateRequestedPlacement(storage, placement, request, 'UpdatePlacement');
    await runtime.write({ ...kept.document, placements: kept.document.placements.map((candidate) => (candidate.name === request.name ? validated : candidate)) }, kept);
    placement.replacePlacement(validated);
    return validated;
  });
}

export const BACKEND_CHANGE_OPERATIONS = {
  UpdateBackend: operation({
    summary: 'Changes how a backend added at run time is reached — endpoint, keys, region, bucket, prefix, or a directory\'s path — without a restart, kept (in the data directory, or the shared metadata store). It must reach the same data: blobs name their backends, so a backend\'s name and type never change, and a new location without a sample of the blobs recorded there is refused unless forced. Requests in flight finish on the old connection; new ones use the new.',
    input: {
      name: NAME,
      path: { type: 'string', description: 'directory: the absolute path its files are at now.', maxLength: 4096 },
      endpoint: { type: 'string', description: 's3: http(s)://host[:port]', maxLength: 512 },
      bucket: { type: 'string', description: 's3: the bucket.', maxLength: 63 },
      region: { type: 'string', description: 's3: the region.', maxLength: 64 },
      accessKeyId: { type: 'string', description: 's3: the access key ID.', maxLength: 256 },
      secretAccessKey: { type: 'string', description: 's3: the secret (kept sealed under the server\'s secret key; never answered or logged).', maxLength: 256 },
      prefix: { type: 'string', description: 's3: the key prefix in the bucket.', maxLength: 512 },
      force: { type: 'boolean', description: 'Change it although the new location does not hold a sample of the blobs recorded on the backend (up to 3 are looked for first).' },
    },
    output: '{ name, type }',
    async handler(context, input) {
      const { name, force, ...changes } = input;
      const backend = await updateBackend(context, name, changes, force === true);
      return { name: backend.name, type: backend.type };
    },
  }),
  RemoveBackend: operation({
    summary: 'Removes a backend added at run time once no placement names it and no blob (live, part of an upload, or queued for purge) has a shard on it; with force, also while blobs queued for purge still do (a dead backend: their shards there are forgotten, not deleted).',
    input: {
      name: NAME,
      force: { type: 'boolean', description: 'Remove it although blobs queued for purge have shards on it (they are left there); never while a live object or part does.' },
    },
    output: '{}',
    async handler(context, input) {
      await removeBackend(context, input.name, input.force === true);
      return {};
    },
  }),
  UpdatePlacement: operation({
    summary: 'Replaces a run-time placement\'s definition (type, shards, backends, write quorum; a hybrid\'s small, large and thresholdBytes) without a restart, kept (in the data directory, or the shared metadata store); new objects follow it at once, and a re-placement pass starts to move the existing ones.',
    input: { name: NAME, ...PLACEMENT_FIELDS },
    output: '{ name, type, dataShards, parityShards, backends, writeQuorum | small, large, thresholdBytes, replacementStarted }',
    async handler(context, input) {
      const validated = await updatePlacement(context, placementRequestOf(input));
      // Objects already written move with a healing pass's re-placement (false: one asked for runs already; StartHeal after it).
      const replacementStarted = requireRuntimePlacement(context).placement.healNow({ deep: false });
      return { ...placementView(validated), replacementStarted };
    },
  }),
} as const;
