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
import { validateBackend } from '../placement/runtime-placements.ts';
import { type AdminContext, operation } from './define.ts';
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

async function updateBackend(context: AdminContext, name: string, changes: BackendChanges): Promise<BackendConfig> {
  const { storage, placement, runtime } = requireRuntimePlacement(context);
  return oneAtATime(storage, async () => {
    const kept = await runtime.read();
    const isOpen = placement.store.backends().some((backend) => backend.name === name);
    const current = keptEntry(kept.document.backends, name, isOpen, 'backend', 'edit');
    const requested = changedBackend(current, changes);
    if (requested.type === 'directory') checkDirectoryPath(context, requested.path, name);
    const backend = configured(() => validateBackend(requested, 'UpdateBackend'));
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

async function removeBackend(context: AdminContext, name: string): Promise<void> {
  const { storage, placement, runtime } = requireRuntimePlacement(context);
  await oneAtATime(storage, async () => {
    const kept = await runtime.read();
    const isOpen = placement.store.backends().some((backend) => backend.name === name);
    keptEntry(kept.document.backends, name, isOpen, 'backend', 'remove');
    const naming = placement.store.placementsNaming(name);
    if (naming.length > 0) throw new AdminError('Conflict', `backend ${name} is in use by placements ${naming.join(', ')}: UpdatePlacement or DeletePlacement them first`);
    const blobs = await storage.meta.countBlobsOnBackend(name);
    if (blobs > 0) {
      throw new AdminError('Conflict', `backend ${name} still holds shards of ${blobs} blob${blobs === 1 ? '' : 's'} (objects, parts of incomplete uploads, or blobs waiting in the purge queue): let re-placement and the purge queue finish (GetHealStatus), then try again`);
    }
    // Nodes sharing the store: one that has not applied the change that took the backend out of its last placement
    // may still write to it, for at most RUNTIME_STALE_MAX_MS (runtime-sync.ts); docs/SCALE-OUT.md says to wait that out.
    await runtime.write({ ...kept.document, backends: kept.document.backends.filter((candidate) => candidate.name !== name) }, kept);
    placement.removeBackend(name);
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
    summary: 'Changes how a backend added at run time is reached — endpoint, keys, region, bucket, prefix, or a directory\'s path — without a restart, kept (in the data directory, or the shared metadata store). It must reach the same data: blobs name their backends, so a backend\'s name and type never change. Requests in flight finish on the old connection; new ones use the new.',
    input: {
      name: NAME,
      path: { type: 'string', description: 'directory: the absolute path its files are at now.', maxLength: 4096 },
      endpoint: { type: 'string', description: 's3: http(s)://host[:port]', maxLength: 512 },
      bucket: { type: 'string', description: 's3: the bucket.', maxLength: 63 },
      region: { type: 'string', description: 's3: the region.', maxLength: 64 },
      accessKeyId: { type: 'string', description: 's3: the access key ID.', maxLength: 256 },
      secretAccessKey: { type: 'string', description: 's3: the secret (kept sealed under the server\'s secret key; never answered or logged).', maxLength: 256 },
      prefix: { type: 'string', description: 's3: the key prefix in the bucket.', maxLength: 512 },
    },
    output: '{ name, type }',
    async handler(context, input) {
      const { name, ...changes } = input;
      const backend = await updateBackend(context, name, changes);
      return { name: backend.name, type: backend.type };
    },
  }),
  RemoveBackend: operation({
    summary: 'Removes a backend added at run time once no placement names it and no blob (live, part of an upload, or queued for purge) has a shard on it.',
    input: { name: NAME },
    output: '{}',
    async handler(context, input) {
      await removeBackend(context, input.name);
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
