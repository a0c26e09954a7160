/**
 * Backends and placements changed at run time, without a restart:
 * AddBackend, AddPlacement, DeletePlacement, SetBucketPlacement (and
 * ListPlacements to see them). Each change is validated by src/config's
 * parser, kept in the data directory before it is applied (a failed write
 * changes nothing; a crash after it applies at the next start), and then
 * applied to the running placement. Objects follow a bucket's new placement
 * through re-placement (a pass starts at once). Only in a server that runs
 * placements (--config) and owns its metadata store (other nodes sharing it
 * would not see a change kept in this data directory); with --workers every
 * worker applies each change before the call answers (placementsChanged).
 *
 * Changing and removing backends and placements (UpdateBackend,
 * RemoveBackend, UpdatePlacement) are backend-change-operations.ts, built on
 * the helpers exported here (one change at a time, the same conditions).
 */
import { realpath, stat } from 'node:fs/promises';
import { basename, dirname, isAbsolute, join, resolve, sep } from 'node:path';
import { DirectoryBackend } from '../backend/directory-backend.ts';
import { ConfigError, LOCAL_PLACEMENT, type BackendConfig, type StripedPlacementConfig } from '../config/config.ts';
import { readBucketPlacements, writeBucketPlacements } from '../placement/bucket-placements.ts';
import type { OpenPlacement } from '../placement/open-placement.ts';
import { type PlacementRequest, readRuntimePlacements, validateBackend, validatePlacement, writeRuntimePlacements } from '../placement/runtime-placements.ts';
import { type AdminContext, type AdminStorage, operation } from './define.ts';
import { AdminError } from './errors.ts';
import { requireStorage } from './storage-operations.ts';

/** True when one path is the other or inside it. */
function overlaps(a: string, b: string): boolean {
  const within = (inner: string, outer: string): boolean => inner === outer || inner.startsWith(outer.endsWith(sep) ? outer : `${outer}${sep}`);
  return within(a, b) || within(b, a);
}

/** talus.toml's limit on backends, kept with the ones added here. */
const BACKENDS_MAX = 64;

/**
 * Changes one at a time: each rewrites its file from what the one before
 * left. With --workers each is then applied by every worker before the
 * answer (a refused change too: it may have kept something, such as
 * forgetting deleted buckets' choices, and applying is idempotent).
 */
let changes: Promise<unknown> = Promise.resolve();
export function oneAtATime<T>(storage: AdminStorage, change: () => Promise<T>): Promise<T> {
  const done = changes.then(async () => {
    const outcome = await change().then((value) => ({ value }), (error: unknown) => ({ error }));
    const propagated = await storage.placementsChanged?.().then(() => undefined, (error: unknown) => error);
    if ('error' in outcome) throw outcome.error;
    if (propagated !== undefined) throw new AdminError('ServiceUnavailable', `kept and applied in this process, but ${propagated instanceof Error ? propagated.message : String(propagated)}`);
    return outcome.value;
  });
  changes = done.catch(() => undefined);
  return done;
}

export const NAME = { type: 'string', description: 'Lower-case letters, digits, _ and - (as in talus.toml).', required: true, maxLength: 63 } as const;

export function requireRuntimePlacement(context: AdminContext): { storage: AdminStorage; placement: OpenPlacement } {
  const storage = requireStorage(context);
  if (storage.placement === undefined) throw new AdminError('Conflict', 'no placements are configured (start the server with --config)');
  // Workers apply each change when told (placementsChanged); a server that cannot tell them refuses.
  if (context.server.workers > 1 && storage.placementsChanged === undefined) throw new AdminError('Conflict', 'not with --workers: change talus.toml and restart');
  if (storage.sharedMetadata) throw new AdminError('Conflict', 'not on a node sharing its metadata with others: change every node\'s talus.toml and restart them');
  return { storage, placement: storage.placement };
}

export function configured<T>(validate: () => T): T {
  try {
    return validate();
  } catch (error) {
    if (error instanceof ConfigError) throw new AdminError('InvalidRequest', error.message);
    throw error;
  }
}

/**
 * Where `path` really is: the real path of its nearest existing ancestor
 * (symlinks resolved) with the rest of it appended, as DirectoryBackend.open's
 * mkdir would create it. Compared, not the path as given: a symlink to the
 * data directory is the data directory.
 */
async function realDirectory(path: string): Promise<string> {
  let existing = resolve(path);
  const missing: string[] = [];
  for (;;) {
    try {
      return join(await realpath(existing), ...missing.reverse());
    } catch (error) {
      const parent = dirname(existing);
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT' || parent === existing) throw error;
      missing.push(basename(existing));
      existing = parent;
    }
  }
}

/** Device and inode of an existing directory (undefined when it is not there): one directory under two real paths (a bind mount) is still one. */
async function identityOf(path: string): Promise<string | undefined> {
  const found = await stat(path).catch(() => undefined);
  return found === undefined ? undefined : `${found.dev}:${found.ino}`;
}

/** A directory backend's path: absolute, apart from the data directory and from every other backend's directory (`name`'s own is not another's), symlinks resolved. */
export async function checkDirectoryPath(context: AdminContext, path: string | undefined, name: string): Promise<string> {
  if (path === undefined || !isAbsolute(path)) throw new AdminError('InvalidRequest', 'a directory backend needs an absolute path');
  const real = await realDirectory(path);
  const identity = await identityOf(real);
  const dataDir = requireStorage(context).dataDir;
  // Its orphan reclaim deletes files it does not know: never where the data directory's files are.
  if (overlaps(real, await realDirectory(dataDir)) || (identity !== undefined && identity === (await identityOf(dataDir)))) {
    throw new AdminError('InvalidRequest', 'a directory backend may not be the data directory, inside it, or around it');
  }
  // Two backends in one directory would be one failure domain counted as two.
  for (const backend of requireRuntimePlacement(context).placement.store.backends()) {
    if (backend.name === name || !(backend instanceof DirectoryBackend)) continue;
    if (overlaps(real, await realDirectory(backend.root)) || (identity !== undefined && identity === (await identityOf(backend.root)))) {
      throw new AdminError('InvalidRequest', `backend ${backend.name}'s directory is, holds, or is inside that path`);
    }
  }
  return path;
}

/** Validates, keeps and opens a backend (AddBackend, RecommendPlacement with create). */
export async function addRuntimeBackend(context: AdminContext, requested: BackendConfig): Promise<BackendConfig> {
  const { storage, placement } = requireRuntimePlacement(context);
  const backend = configured(() => validateBackend(requested, 'AddBackend'));
  if (backend.type === 's3' && (backend.bucket === '' || backend.accessKeyId === '' || backend.secretAccessKey === '')) throw new AdminError('InvalidRequest', 'an s3 backend needs bucket, accessKeyId and secretAccessKey');
  return oneAtATime(storage, async () => {
    if (placement.store.backends().some((open) => open.name === backend.name)) throw new AdminError('Conflict', `backend ${backend.name} exists`);
    if (placement.store.backends().length >= BACKENDS_MAX) throw new AdminError('Conflict', `at most ${BACKENDS_MAX} backends`);
    const kept = await readRuntimePlacements(storage.dataDir);
    await writeRuntimePlacements(storage.dataDir, { ...kept, backends: [...kept.backends, backend] });
    try {
      await placement.addBackend(backend);
    } catch (error) {
      await writeRuntimePlacements(storage.dataDir, kept); // not opened, so not kept
      throw new AdminError('InvalidRequest', `backend ${backend.name} cannot be opened: ${error instanceof Error ? error.message : String(error)}`);
    }
    return backend;
  });
}

/** Validates, keeps and applies a placement over open backends (AddPlacement, RecommendPlacement with create). */
export async function addRuntimePlacement(context: AdminContext, request: PlacementRequest): Promise<StripedPlacementConfig> {
  const { storage, placement } = requireRuntimePlacement(context);
  return oneAtATime(storage, async () => {
    if (placement.store.hasPlacement(request.name)) throw new AdminError('Conflict', `placement ${request.name} exists`);
    const backendNames = placement.store.backends().map((backend) => backend.name);
    const validated = configured(() => validatePlacement(request, backendNames, 'AddPlacement'));
    const kept = await readRuntimePlacements(storage.dataDir);
    await writeRuntimePlacements(storage.dataDir, { ...kept, placements: [...kept.placements, validated] });
    placement.addPlacement(validated);
    return validated;
  });
}

/** True when run-time changes can be made here, without changing anything (RecommendPlacement checks before it probes). */
export function checkRuntimeChanges(context: AdminContext): void {
  requireRuntimePlacement(context);
}

/**
 * Drops the choices of buckets deleted since they were set to `placementName`
 * (an entry outlives its bucket, as a [buckets] line does): they would keep
 * the placement in use with no way left to move them off it.
 */
async function forgetDeletedBuckets(context: AdminContext, storage: AdminStorage, placement: OpenPlacement, placementName: string): Promise<void> {
  const chosen = await readBucketPlacements(storage.dataDir);
  const existing = new Set((await context.engine.listBuckets()).map((bucket) => bucket.name));
  const gone = [...chosen].filter(([bucket, name]) => name === placementName && !existing.has(bucket)).map(([bucket]) => bucket);
  if (gone.length === 0) return;
  for (const bucket of gone) chosen.delete(bucket);
  await writeBucketPlacements(storage.dataDir, chosen);
  for (const bucket of gone) placement.store.forgetBucketPlacement(bucket);
}

export const RUNTIME_CONFIG_OPERATIONS = {
  ListPlacements: operation({
    summary: 'Every placement (talus.toml\'s and those added at run time) with its type, shards and backends, the default, and each bucket\'s placement.',
    input: {},
    output: '{ defaultPlacement, placements: [{ name, type, dataShards, parityShards, backends, writeQuorum | small, large, thresholdBytes }], buckets: [{ name, placement }] }',
    async handler(context) {
      const storage = requireStorage(context);
      const store = storage.placement?.store;
      const buckets = (await context.engine.listBuckets()).map((bucket) => ({
        name: bucket.name,
        placement: store?.bucketPlacementName(bucket.name) ?? storage.config.buckets.get(bucket.name) ?? storage.config.defaultPlacement,
      }));
      const placements = (storage.placement?.placements() ?? storage.config.placements).map((placement) => placement.type === 'hybrid'
        ? { name: placement.name, type: placement.type, small: placement.small, large: placement.large, thresholdBytes: placement.thresholdBytes }
        : { name: placement.name, type: placement.type, dataShards: placement.dataShards, parityShards: placement.parityShards, backends: placement.backends, writeQuorum: placement.writeQuorum });
      return { defaultPlacement: storage.config.defaultPlacement, placements, buckets };
    },
  }),
  AddBackend: operation({
    summary: 'Adds a backend (a directory, or an S3 bucket) without a restart, kept in the data directory; it is probed at once and placements may use it.',
    input: {
      name: NAME,
      type: { type: 'string', description: 'directory or s3.', required: true, enum: ['directory', 's3'] },
      path: { type: 'string', description: 'directory: an absolute path.', maxLength: 4096 },
      endpoint: { type: 'string', description: 's3: http(s)://host[:port]', maxLength: 512 },
      bucket: { type: 'string', description: 's3: the bucket.', maxLength: 63 },
      region: { type: 'string', description: 's3: the region (default us-east-1).', maxLength: 64 },
      accessKeyId: { type: 'string', description: 's3: the access key ID.', maxLength: 256 },
      secretAccessKey: { type: 'string', description: 's3: the secret (kept in the data directory, mode 0600, as talus.toml keeps it; never answered).', maxLength: 256 },
      prefix: { type: 'string', description: 's3: a key prefix in the bucket.', maxLength: 512 },
    },
    output: '{ name, type }',
    async handler(context, input) {
      const open = requireRuntimePlacement(context).placement.store.backends();
      if (open.some((backend) => backend.name === input.name)) throw new AdminError('Conflict', `backend ${input.name} exists`);
      if (input.type === 'directory') await checkDirectoryPath(context, input.path, input.name);
      const requested: BackendConfig = input.type === 'directory'
        ? { name: input.name, type: 'directory', path: input.path! }
        : {
            name: input.name, type: 's3', endpoint: input.endpoint ?? '', bucket: input.bucket ?? '', region: input.region ?? 'us-east-1',
            accessKeyId: input.accessKeyId ?? '', secretAccessKey: input.secretAccessKey ?? '', prefix: input.prefix ?? '',
            multipartThresholdBytes: undefined, partBytes: undefined,
          };
      const backend = await addRuntimeBackend(context, requested);
      return { name: backend.name, type: backend.type };
    },
  }),
  AddPlacement: operation({
    summary: 'Adds a placement (erasure, replica or single) over existing backends without a restart, kept in the data directory; SetBucketPlacement puts buckets on it.',
    input: {
      name: NAME,
      type: { type: 'string', description: 'erasure (k data + m parity shards), replica (k = 1, m + 1 copies) or single.', required: true, enum: ['erasure', 'replica', 'single'] },
      dataShards: { type: 'integer', description: 'erasure: k.', minimum: 1, maximum: 64 },
      parityShards: { type: 'integer', description: 'erasure: m; replica: copies − 1.', minimum: 0, maximum: 64 },
      backends: { type: 'string[]', description: 'The candidate backends, in priority order.', required: true, maxLength: 64 },
      writeQuorum: { type: 'integer', description: 'Shards a write waits for (default k + m − 1, at least k).', minimum: 1, maximum: 128 },
      assignment: { type: 'string', description: 'shuffle (default) or priority.', enum: ['shuffle', 'priority'] },
    },
    output: '{ name, type, dataShards, parityShards, backends, writeQuorum }',
    async handler(context, input) {
      const dataShards = input.type === 'erasure' ? input.dataShards ?? 0 : 1;
      const parityShards = input.type === 'single' ? 0 : input.parityShards ?? 0;
      const validated = await addRuntimePlacement(context, { ...input, dataShards, parityShards });
      return { name: validated.name, type: validated.type, dataShards: validated.dataShards, parityShards: validated.parityShards, backends: validated.backends, writeQuorum: validated.writeQuorum };
    },
  }),
  DeletePlacement: operation({
    summary: 'Removes a placement added at run time that no bucket uses (objects written under it keep reading: each records its own backends).',
    input: { name: NAME },
    output: '{}',
    async handler(context, input) {
      const { storage, placement } = requireRuntimePlacement(context);
      return oneAtATime(storage, async () => {
        const kept = await readRuntimePlacements(storage.dataDir);
        if (!kept.placements.some((candidate) => candidate.name === input.name)) {
          throw placement.store.hasPlacement(input.name) ? new AdminError('Conflict', `placement ${input.name} is declared in talus.toml: remove it there`) : new AdminError('NotFound', `no placement ${input.name}`);
        }
        await forgetDeletedBuckets(context, storage, placement, input.name);
        const inUse = placement.placementInUse(input.name);
        if (inUse !== undefined) throw new AdminError('Conflict', `placement ${input.name} is in use: ${inUse}`);
        await writeRuntimePlacements(storage.dataDir, { ...kept, placements: kept.placements.filter((candidate) => candidate.name !== input.name) });
        placement.removePlacement(input.name);
        return {};
      });
    },
  }),
  SetBucketPlacement: operation({
    summary: 'Moves a bucket to another placement (or local), at once and across restarts (kept in the data directory, over talus.toml\'s [buckets]); new objects go there, and a re-placement pass starts to move the existing ones.',
    input: {
      bucket: { type: 'string', description: 'The bucket.', required: true, maxLength: 63 },
      placement: { type: 'string', description: `A placement, or ${LOCAL_PLACEMENT}.`, required: true, maxLength: 63 },
    },
    output: '{ bucket, placement, replacementStarted }',
    async handler(context, input) {
      const { storage, placement } = requireRuntimePlacement(context);
      await context.engine.getBucket(input.bucket); // NotFound for a missing bucket
      await oneAtATime(storage, async () => {
        if (!placement.store.hasPlacement(input.placement)) throw new AdminError('NotFound', `no placement ${input.placement}`);
        const chosen = await readBucketPlacements(storage.dataDir);
        chosen.set(input.bucket, input.placement);
        await writeBucketPlacements(storage.dataDir, chosen);
        placement.store.setBucketPlacement(input.bucket, input.placement);
      });
      // Objects already written move with a healing pass's re-placement (false: one asked for runs already; StartHeal after it).
      const replacementStarted = placement.healNow({ deep: false });
      return { bucket: input.bucket, placement: input.placement, replacementStarted };
    },
  }),
} as const;
