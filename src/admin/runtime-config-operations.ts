/**
 * Backends and placements changed at run time, without a restart:
 * AddBackend, AddPlacement, DeletePlacement, SetBucketPlacement (and
 * ListPlacements to see them). Each change is validated by src/config's
 * parser, kept before it is applied (a failed write changes nothing; a
 * crash after it applies at the next start), and then applied to the running
 * placement. Objects follow a bucket's new placement through re-placement (a
 * pass starts at once). Only in a server that runs placements (--config).
 * Where changes are kept (src/placement/runtime-document.ts): a single
 * node's data directory, where with --workers every worker applies each
 * change before the call answers (placementsChanged); or, on nodes sharing a
 * PostgreSQL store, its `settings` table, changed by compare-and-set (a
 * change that lost to another node's catches up with it and is decided
 * again), which the other nodes poll (src/placement/runtime-sync.ts): a
 * change answers once this node applied it, and every other node serves it
 * within RUNTIME_POLL_INTERVAL_MS (plus opening a new backend).
 *
 * A placement is striped (erasure, replica, single over backends) or hybrid
 * (by size over two striped placements, talus.toml's or run-time ones, or
 * local): both are added, changed and removed alike; a striped one a hybrid
 * holds stays until the hybrid lets go of it (placementInUse).
 *
 * Changing and removing backends and placements (UpdateBackend,
 * RemoveBackend, UpdatePlacement) are backend-change-operations.ts, built on
 * the helpers exported here (one change at a time, the same conditions).
 */
import { realpath, stat } from 'node:fs/promises';
import { basename, dirname, isAbsolute, join, resolve, sep } from 'node:path';
import { DirectoryBackend } from '../backend/directory-backend.ts';
import { ConfigError, LOCAL_PLACEMENT, type BackendConfig, type PlacementConfig } from '../config/config.ts';
import type { OpenPlacement } from '../placement/open-placement.ts';
import { type KeptDocument, StaleDocumentError } from '../placement/runtime-document.ts';
import { type HybridPlacementRequest, type PlacementRequest, validateBackend, validateHybridPlacement, validatePlacement } from '../placement/runtime-placements.ts';
import type { RuntimeChanges } from '../placement/runtime-sync.ts';
import { type AdminContext, type AdminStorage, operation } from './define.ts';
import { AdminError } from './errors.ts';
import type { InputOf } from './schema.ts';
import { requireStorage } from './storage-operations.ts';

/** True when one path is the other or inside it. */
function overlaps(a: string, b: string): boolean {
  const within = (inner: string, outer: string): boolean => inner === outer || inner.startsWith(outer.endsWith(sep) ? outer : `${outer}${sep}`);
  return within(a, b) || within(b, a);
}

/** talus.toml's limit on backends, kept with the ones added here. */
const BACKENDS_MAX = 64;

/**
 * How often a change that lost the compare-and-set to another node's is
 * decided again (after catching up with the winner): only nodes changing
 * placements at the very same moment lose, so a few suffice.
 */
const CHANGE_ATTEMPTS_MAX = 5;

/**
 * Changes one at a time (RuntimeChanges.serially, with the applying of
 * other nodes' changes): each reads the kept document, decides, and writes
 * the next one. One that lost to another node's write is decided again
 * against the winner's document. With --workers each is then applied by
 * every worker before the answer (a refused change too: it may have kept
 * something, such as forgetting deleted buckets' choices, and applying is
 * idempotent).
 */
export function oneAtATime<T>(storage: AdminStorage, change: () => Promise<T>): Promise<T> {
  const runtime = requireRuntimeChanges(storage);
  return runtime.serially(async () => {
    let outcome: { value: T } | { error: unknown } = { error: undefined };
    for (let attempt = 1; attempt <= CHANGE_ATTEMPTS_MAX; attempt += 1) {
      outcome = await change().then((value) => ({ value }), (error: unknown) => ({ error }));
      if (!('error' in outcome) || !(outcome.error instanceof StaleDocumentError)) break;
      if (attempt === CHANGE_ATTEMPTS_MAX) outcome = { error: new AdminError('Conflict', 'other nodes kept changing backends and placements at the same moment: try again') };
    }
    const propagated = await storage.placementsChanged?.().then(() => undefined, (error: unknown) => error);
    if ('error' in outcome) throw outcome.error;
    if (propagated !== undefined) throw new AdminError('ServiceUnavailable', `kept and applied in this process, but ${propagated instanceof Error ? propagated.message : String(propagated)}`);
    return outcome.value;
  });
}

function requireRuntimeChanges(storage: AdminStorage): RuntimeChanges {
  if (storage.runtime === undefined) throw new AdminError('Conflict', 'no placements are configured (start the server with --config)');
  return storage.runtime;
}

export const NAME = { type: 'string', description: 'Lower-case letters, digits, _ and - (as in talus.toml).', required: true, maxLength: 63 } as const;

export function requireRuntimePlacement(context: AdminContext): { storage: AdminStorage; placement: OpenPlacement; runtime: RuntimeChanges } {
  const storage = requireStorage(context);
  if (storage.placement === undefined) throw new AdminError('Conflict', 'no placements are configured (start the server with --config)');
  // Workers apply each change when told (placementsChanged); a server that cannot tell them refuses.
  if (context.server.workers > 1 && storage.placementsChanged === undefined) throw new AdminError('Conflict', 'not with --workers: change talus.toml and restart');
  return { storage, placement: storage.placement, runtime: requireRuntimeChanges(storage) };
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
  const { storage, placement, runtime } = requireRuntimePlacement(context);
  const backend = configured(() => validateBackend(requested, 'AddBackend'));
  if (backend.type === 's3' && (backend.bucket === '' || backend.accessKeyId === '' || backend.secretAccessKey === '')) throw new AdminError('InvalidRequest', 'an s3 backend needs bucket, accessKeyId and secretAccessKey');
  return oneAtATime(storage, async () => {
    const kept = await runtime.read(); // first: another node's change may have added it
    if (placement.store.backends().some((open) => open.name === backend.name)) throw new AdminError('Conflict', `backend ${backend.name} exists`);
    if (placement.store.backends().length >= BACKENDS_MAX) throw new AdminError('Conflict', `at most ${BACKENDS_MAX} backends`);
    const written = await runtime.write({ ...kept.document, backends: [...kept.document.backends, backend] }, kept);
    try {
      await placement.addBackend(backend);
    } catch (error) {
      await runtime.write(kept.document, written); // not opened, so not kept
      throw new AdminError('InvalidRequest', `backend ${backend.name} cannot be opened: ${error instanceof Error ? error.message : String(error)}`);
    }
    return backend;
  });
}

/** The fields that define a placement (AddPlacement, UpdatePlacement): a striped one's, or a hybrid one's. */
export const PLACEMENT_FIELDS = {
  type: { type: 'string', description: 'erasure (k data + m parity shards), replica (k = 1, m + 1 copies), single, or hybrid (by size, over two other placements).', required: true, enum: ['erasure', 'replica', 'single', 'hybrid'] },
  dataShards: { type: 'integer', description: 'erasure: k.', minimum: 1, maximum: 64 },
  parityShards: { type: 'integer', description: 'erasure: m; replica: copies − 1.', minimum: 0, maximum: 64 },
  backends: { type: 'string[]', description: 'erasure, replica, single: the candidate backends, in priority order.', maxLength: 64 },
  writeQuorum: { type: 'integer', description: 'Shards a write waits for (default k + m − 1, at least k).', minimum: 1, maximum: 128 },
  assignment: { type: 'string', description: 'shuffle (default) or priority.', enum: ['shuffle', 'priority'] },
  small: { type: 'string', description: `hybrid: where blobs smaller than thresholdBytes go (a striped placement, or ${LOCAL_PLACEMENT}).`, maxLength: 63 },
  large: { type: 'string', description: `hybrid: where the other blobs go (a striped placement, or ${LOCAL_PLACEMENT}).`, maxLength: 63 },
  thresholdBytes: { type: 'integer', description: 'hybrid: the size from which a blob goes to large.', minimum: 0, maximum: Number.MAX_SAFE_INTEGER },
} as const;

export type PlacementInput = InputOf<typeof PLACEMENT_FIELDS> & { name: string };
export type AnyPlacementRequest = PlacementRequest | HybridPlacementRequest;

const STRIPED_FIELDS = ['dataShards', 'parityShards', 'backends', 'writeQuorum', 'assignment'] as const;
const HYBRID_FIELDS = ['small', 'large', 'thresholdBytes'] as const;

/** The request `input` makes; a field that does not fit its type is refused, not ignored. */
export function placementRequestOf(input: PlacementInput): AnyPlacementRequest {
  if (input.type === 'hybrid') {
    const foreign = STRIPED_FIELDS.filter((field) => input[field] !== undefined);
    if (foreign.length > 0) throw new AdminError('InvalidRequest', `a hybrid placement names placements, not shards or backends: ${foreign.join(', ')} do not apply`);
    if (input.small === undefined || input.large === undefined || input.thresholdBytes === undefined) throw new AdminError('InvalidRequest', 'a hybrid placement needs small, large and thresholdBytes');
    return { name: input.name, type: 'hybrid', small: input.small, large: input.large, thresholdBytes: input.thresholdBytes };
  }
  const foreign = HYBRID_FIELDS.filter((field) => input[field] !== undefined);
  if (foreign.length > 0) throw new AdminError('InvalidRequest', `${foreign.join(', ')} apply to hybrid placements only`);
  const dataShards = input.type === 'erasure' ? input.dataShards ?? 0 : 1;
  const parityShards = input.type === 'single' ? 0 : input.parityShards ?? 0;
  return { name: input.name, type: input.type, dataShards, parityShards, backends: input.backends ?? [], writeQuorum: input.writeQuorum, assignment: input.assignment };
}

/**
 * `request` parsed as talus.toml would parse it: a striped placement over
 * the open backends, a hybrid over the placements there are now (never
 * another hybrid, nor one that a hybrid holds: a hybrid holds striped ones).
 */
export function validateRequestedPlacement(storage: AdminStorage, placement: OpenPlacement, request: AnyPlacementRequest, source: string): PlacementConfig {
  if (request.type !== 'hybrid') return configured(() => validatePlacement(request, placement.store.backends().map((backend) => backend.name), source));
  const known = placement.placements();
  const validated = configured(() => validateHybridPlacement(request, known, source));
  // Every node must read what any node writes: never one node's data directory (SetBucketPlacement's rule).
  if (storage.sharedMetadata && (validated.small === LOCAL_PLACEMENT || validated.large === LOCAL_PLACEMENT)) {
    throw new AdminError('InvalidRequest', `not on nodes sharing their metadata: ${LOCAL_PLACEMENT} is this node's data directory`);
  }
  const holder = known.find((candidate) => candidate.type === 'hybrid' && candidate.name !== request.name && (candidate.small === request.name || candidate.large === request.name));
  if (holder !== undefined) throw new AdminError('Conflict', `placement ${request.name} is held by hybrid placement ${holder.name}, and a hybrid placement cannot contain another hybrid`);
  return validated;
}

/** A placement as ListPlacements, AddPlacement and UpdatePlacement answer it. */
export function placementView(placement: PlacementConfig): Record<string, unknown> {
  return placement.type === 'hybrid'
    ? { name: placement.name, type: placement.type, small: placement.small, large: placement.large, thresholdBytes: placement.thresholdBytes }
    : { name: placement.name, type: placement.type, dataShards: placement.dataShards, parityShards: placement.parityShards, backends: placement.backends, writeQuorum: placement.writeQuorum };
}

/** Validates, keeps and applies a placement over open backends, or a hybrid over existing placements (AddPlacement, RecommendPlacement with create). */
export async function addRuntimePlacement(context: AdminContext, request: AnyPlacementRequest): Promise<PlacementConfig> {
  const { storage, placement, runtime } = requireRuntimePlacement(context);
  return oneAtATime(storage, async () => {
    const kept = await runtime.read();
    if (placement.store.hasPlacement(request.name)) throw new AdminError('Conflict', `placement ${request.name} exists`);
    const validated = validateRequestedPlacement(storage, placement, request, 'AddPlacement');
    await runtime.write({ ...kept.document, placements: [...kept.document.placements, validated] }, kept);
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
async function forgetDeletedBuckets(context: AdminContext, runtime: RuntimeChanges, placement: OpenPlacement, kept: KeptDocument, placementName: string): Promise<KeptDocument> {
  const existing = new Set((await context.engine.listBuckets()).map((bucket) => bucket.name));
  const gone = [...kept.document.buckets].filter(([bucket, name]) => name === placementName && !existing.has(bucket)).map(([bucket]) => bucket);
  if (gone.length === 0) return kept;
  const buckets = new Map(kept.document.buckets);
  for (const bucket of gone) buckets.delete(bucket);
  const written = await runtime.write({ ...kept.document, buckets }, kept);
  for (const bucket of gone) placement.store.forgetBucketPlacement(bucket);
  return written;
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
      const placements = (storage.placement?.placements() ?? storage.config.placements).map(placementView);
      return { defaultPlacement: storage.config.defaultPlacement, placements, buckets };
    },
  }),
  AddBackend: operation({
    summary: 'Adds a backend (a directory, or an S3 bucket) without a restart, kept (in the data directory, or the shared metadata store); it is probed at once and placements may use it.',
    input: {
      name: NAME,
      type: { type: 'string', description: 'directory or s3.', required: true, enum: ['directory', 's3'] },
      path: { type: 'string', description: 'directory: an absolute path.', maxLength: 4096 },
      endpoint: { type: 'string', description: 's3: http(s)://host[:port]', maxLength: 512 },
      bucket: { type: 'string', description: 's3: the bucket.', maxLength: 63 },
      region: { type: 'string', description: 's3: the region (default us-east-1).', maxLength: 64 },
      accessKeyId: { type: 'string', description: 's3: the access key ID.', maxLength: 256 },
      secretAccessKey: { type: 'string', description: 's3: the secret (kept sealed under the server\'s secret key; never answered or logged).', maxLength: 256 },
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
    summary: 'Adds a placement without a restart, kept (in the data directory, or the shared metadata store): erasure, replica or single over existing backends, or hybrid over two existing placements (blobs under thresholdBytes to small, the others to large). SetBucketPlacement puts buckets on it.',
    input: { name: NAME, ...PLACEMENT_FIELDS },
    output: '{ name, type, dataShards, parityShards, backends, writeQuorum | small, large, thresholdBytes }',
    async handler(context, input) {
      return placementView(await addRuntimePlacement(context, placementRequestOf(input)));
    },
  }),
  DeletePlacement: operation({
    summary: 'Removes a placement added at run time that no bucket, the default, or a hybrid placement uses (objects written under it keep reading: each records its own backends).',
    input: { name: NAME },
    output: '{}',
    async handler(context, input) {
      const { storage, placement, runtime } = requireRuntimePlacement(context);
      return oneAtATime(storage, async () => {
        const read = await runtime.read();
        if (!read.document.placements.some((candidate) => candidate.name === input.name)) {
          throw placement.store.hasPlacement(input.name) ? new AdminError('Conflict', `placement ${input.name} is declared in talus.toml: remove it there`) : new AdminError('NotFound', `no placement ${input.name}`);
        }
        const kept = await forgetDeletedBuckets(context, runtime, placement, read, input.name);
        const inUse = placement.placementInUse(input.name);
        if (inUse !== undefined) throw new AdminError('Conflict', `placement ${input.name} is in use: ${inUse}`);
        await runtime.write({ ...kept.document, placements: kept.document.placements.filter((candidate) => candidate.name !== input.name) }, kept);
        placement.removePlacement(input.name);
        return {};
      });
    },
  }),
  SetBucketPlacement: operation({
    summary: 'Moves a bucket to another placement (or local), at once and across restarts (kept in the data directory, or the shared metadata store, over talus.toml\'s [buckets]); new objects go there, and a re-placement pass starts to move the existing ones.',
    input: {
      bucket: { type: 'string', description: 'The bucket.', required: true, maxLength: 63 },
      placement: { type: 'string', description: `A placement, or ${LOCAL_PLACEMENT}.`, required: true, maxLength: 63 },
    },
    output: '{ bucket, placement, replacementStarted }',
    async handler(context, input) {
      const { storage, placement, runtime } = requireRuntimePlacement(context);
      // Every node must read what any node writes: never one node's data directory.
      if (storage.sharedMetadata && input.placement === LOCAL_PLACEMENT) throw new AdminError('InvalidRequest', `not on nodes sharing their metadata: ${LOCAL_PLACEMENT} is this node's data directory`);
      await context.engine.getBucket(input.bucket); // NotFound for a missing bucket
      await oneAtATime(storage, async () => {
        const kept = await runtime.read();
        if (!placement.store.hasPlacement(input.placement)) throw new AdminError('NotFound', `no placement ${input.placement}`);
        const buckets = new Map(kept.document.buckets);
        buckets.set(input.bucket, input.placement);
        await runtime.write({ ...kept.document, buckets }, kept);
        placement.store.setBucketPlacement(input.bucket, input.placement);
      });
      // Objects already written move with a healing pass's re-placement (false: one asked for runs already; StartHeal after it).
      const replacementStarted = placement.healNow({ deep: false });
      return { bucket: input.bucket, placement: input.placement, replacementStarted };
    },
  }),
} as const;
