/**
 * Backends and placements added at run time (the admin API's AddBackend and
 * AddPlacement; changed by UpdateBackend and UpdatePlacement, dropped by
 * RemoveBackend and DeletePlacement), and how they are merged with
 * talus.toml's at every start. On a node with its own (SQLite) metadata they
 * are kept in DATA_DIR/runtime-placements.json (mode 0600); on nodes sharing
 * a PostgreSQL store, in one row of its `settings` table
 * (runtime-document.ts). Either way an S3 backend's secret is kept sealed
 * under the server's secret key (sealBackends), never in clear.
 *
 * Each is validated by src/config's own parser, not a second copy of its
 * rules: the entry is written as the talus.toml table it would be, beside
 * stand-ins for the backends it may name (a hybrid placement: for the
 * placements it names), and parsed. At start the kept
 * entries are validated again against the talus.toml of that start; a name
 * declared in both, or a placement naming a backend (a hybrid: a placement)
 * neither has, fails the
 * start naming where they are kept (fail closed, as talus.toml itself does).
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { type BackendConfig, ConfigError, type HybridPlacementConfig, LOCAL_PLACEMENT, type PlacementConfig, type StripedPlacementConfig, type TalusConfig, parseConfig } from '../config/config.ts';
import type { SecretBox } from '../principals/secret-box.ts';
import { writeFileAtomically } from '../util/atomic-file.ts';
import { withBucketPlacements } from './bucket-placements.ts';

export const RUNTIME_PLACEMENTS_FILE = 'runtime-placements.json';

export interface RuntimePlacements {
  backends: BackendConfig[];
  /** Striped and hybrid placements; a hybrid names striped ones (talus.toml's, run-time ones) or local. */
  placements: PlacementConfig[];
}

/** An S3 backend as kept: its secret sealed (base64), never in clear. */
type KeptS3Backend = Omit<Extract<BackendConfig, { type: 's3' }>, 'secretAccessKey'> & { secretAccessKeySealed: string };
export type KeptBackend = Extract<BackendConfig, { type: 'directory' }> | KeptS3Backend;

interface RuntimePlacementsFile {
  version: 1;
  /** Older files hold an S3 backend's secretAccessKey in clear: read as such, sealed at the next write. */
  backends: (KeptBackend | BackendConfig)[];
  placements: PlacementConfig[];
}

/** talus.toml's rule for names; checked before a name becomes part of a table header. */
const NAME = /^[a-z0-9][a-z0-9_-]{0,62}$/;

function checkName(kind: string, name: string, source: string): void {
  if (!NAME.test(name)) throw new ConfigError(`${source}: ${kind} name ${JSON.stringify(name.slice(0, 64))}: lower-case letters, digits, _ and -, at most 63`);
}

export const NO_RUNTIME_PLACEMENTS: RuntimePlacements = { backends: [], placements: [] };

/**
 * The associated data of a backend's sealed secret: the backend's name, so
 * a sealed secret copied onto another backend's entry does not open (and
 * cannot be taken for an access key's, whose data is its key ID).
 */
function sealedFor(name: string): string {
  return `backend:${name}`;
}

/** `backends` as kept: S3 secrets sealed under `box`. */
export function sealBackends(backends: readonly BackendConfig[], box: SecretBox): KeptBackend[] {
  return backends.map((backend) => {
    if (backend.type === 'directory') return backend;
    const { secretAccessKey, ...rest } = backend;
    return { ...rest, secretAccessKeySealed: box.seal(sealedFor(backend.name), secretAccessKey).toString('base64') };
  });
}

/** Kept backends with their secrets opened; SecretKeyMismatchError (naming the backend only) when one does not open. */
export function openBackends(kept: readonly (KeptBackend | BackendConfig)[], box: SecretBox, source: string): BackendConfig[] {
  return kept.map((backend) => {
    if (typeof backend !== 'object' || backend === null || typeof backend.name !== 'string') throw new ConfigError(`${source}: a backend entry is damaged`);
    if (backend.type !== 's3' || !('secretAccessKeySealed' in backend)) return backend;
    const { secretAccessKeySealed, ...rest } = backend;
    return { ...rest, secretAccessKey: box.open(sealedFor(backend.name), Buffer.from(secretAccessKeySealed, 'base64')) };
  });
}

export async function readRuntimePlacements(dataDir: string, box: SecretBox): Promise<RuntimePlacements> {
  const path = join(dataDir, RUNTIME_PLACEMENTS_FILE);
  const text = await readFile(path, 'utf8').catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') return undefined;
    throw error;
  });
  if (text === undefined) return NO_RUNTIME_PLACEMENTS;
  let parsed: Partial<RuntimePlacementsFile>;
  try {
    parsed = JSON.parse(text) as Partial<RuntimePlacementsFile>;
  } catch {
    throw new ConfigError(`${path}: not valid JSON`);
  }
  if (parsed.version !== 1 || !Array.isArray(parsed.backends) || !Array.isArray(parsed.placements)) throw new ConfigError(`${path}: not a Talus runtime placements file`);
  return { backends: openBackends(parsed.backends, box, path), placements: parsed.placements };
}

export function writeRuntimePlacements(dataDir: string, additions: RuntimePlacements, box: SecretBox): Promise<void> {
  const contents: RuntimePlacementsFile = { version: 1, backends: sealBackends(additions.backends, box), placements: additions.placements };
  return writeFileAtomically(join(dataDir, RUNTIME_PLACEMENTS_FILE), `${JSON.stringify(contents, null, 2)}\n`, 0o600);
}

/** A TOML basic string: JSON's escapes are a subset of TOML's. */
function tomlString(value: string): string {
  return JSON.stringify(value);
}

function backendTable(backend: BackendConfig): string {
  const lines = [`[backends.${backend.name}]`, `type = ${tomlString(backend.type)}`];
  if (backend.type === 'directory') {
    lines.push(`path = ${tomlString(backend.path)}`);
  } else {
    lines.push(`endpoint = ${tomlString(backend.endpoint)}`, `bucket = ${tomlString(backend.bucket)}`, `region = ${tomlString(backend.region)}`);
    lines.push(`access_key_id = ${tomlString(backend.accessKeyId)}`, `secret_access_key = ${tomlString(backend.secretAccessKey)}`);
    if (backend.prefix !== '') lines.push(`prefix = ${tomlString(backend.prefix)}`);
    if (backend.multipartThresholdBytes !== undefined) lines.push(`multipart_threshold = ${backend.multipartThresholdBytes}`);
    if (backend.partBytes !== undefined) lines.push(`part_size = ${backend.partBytes}`);
  }
  return `${lines.join('\n')}\n`;
}

/** What a placement request becomes once parsed as talus.toml would parse it (defaults filled in). */
export interface PlacementRequest {
  name: string;
  type: 'erasure' | 'replica' | 'single';
  dataShards: number;
  parityShards: number;
  backends: readonly string[];
  writeQuorum?: number | undefined;
  assignment?: 'shuffle' | 'priority' | undefined;
  blockBytes?: number | undefined;
}

/** The [placements] table `request` would be in talus.toml (fields left out get the parser's defaults). */
function placementTable(request: PlacementRequest): string {
  const list = `[${request.backends.map(tomlString).join(', ')}]`;
  const lines = [`[placements.${request.name}]`, `type = ${tomlString(request.type)}`];
  if (request.type === 'erasure') lines.push(`data_shards = ${request.dataShards}`, `parity_shards = ${request.parityShards}`, `backends = ${list}`);
  else if (request.type === 'replica') lines.push(`copies = ${request.parityShards + 1}`, `backends = ${list}`);
  else lines.push(`backend = ${tomlString(request.backends[0] ?? '')}`);
  if (request.writeQuorum !== undefined) lines.push(`write_quorum = ${request.writeQuorum}`);
  if (request.assignment !== undefined) lines.push(`assignment = ${tomlString(request.assignment)}`);
  if (request.blockBytes !== undefined) lines.push(`block_size = ${request.blockBytes}`);
  return `${lines.join('\n')}\n`;
}

/** Parses `request` as the [placements] table it would be, with `backendNames` declared; throws ConfigError. */
export function validatePlacement(request: PlacementRequest, backendNames: readonly string[], source: string): StripedPlacementConfig {
  checkName('placement', request.name, source);
  const lines = placementTable(request);
  // Stand-ins: only the names matter to a placement's validation (they were checked when declared).
  const stubs = backendNames.map((name) => `[backends.${name}]\ntype = "directory"\npath = "/"\n`).join('');
  const parsed = parseConfig(`${stubs}${lines}`, { source, baseDirectory: '/' });
  const placement = parsed.placements[0];
  if (parsed.placements.length !== 1 || placement === undefined || placement.type === 'hybrid') throw new ConfigError(`${source}: not one striped placement`);
  return placement;
}

/** A hybrid placement as requested: blobs smaller than thresholdBytes go to `small`, the others to `large`. */
export interface HybridPlacementRequest {
  name: string;
  type: 'hybrid';
  small: string;
  large: string;
  thresholdBytes: number;
}

/**
 * Parses `request` as the [placements] table it would be, beside stand-ins
 * for the placements it may name (`known`: a striped one as a single
 * placement, a hybrid one as a hybrid, so the parser's rule that a hybrid
 * holds no hybrid applies); throws ConfigError.
 */
export function validateHybridPlacement(request: HybridPlacementRequest, known: readonly PlacementConfig[], source: string): HybridPlacementConfig {
  checkName('placement', request.name, source);
  for (const part of [request.small, request.large]) checkName('placement', part, source);
  const stub = 'stand-in';
  const stubs = known.filter((placement) => placement.name !== request.name && placement.name !== LOCAL_PLACEMENT).map((placement) => (placement.type === 'hybrid'
    ? `[placements.${placement.name}]\ntype = "hybrid"\nthreshold = 0\nsmall = "${LOCAL_PLACEMENT}"\nlarge = "${LOCAL_PLACEMENT}"\n`
    : `[placements.${placement.name}]\ntype = "single"\nbackend = "${stub}"\n`)).join('');
  const table = [`[placements.${request.name}]`, 'type = "hybrid"', `threshold = ${request.thresholdBytes}`, `small = ${tomlString(request.small)}`, `large = ${tomlString(request.large)}`].join('\n');
  const parsed = parseConfig(`[backends.${stub}]\ntype = "directory"\npath = "/"\n${stubs}${table}\n`, { source, baseDirectory: '/' });
  const placement = parsed.placements.find((candidate) => candidate.name === request.name);
  if (placement === undefined || placement.type !== 'hybrid') throw new ConfigError(`${source}: not one hybrid placement`);
  return placement;
}

/** Parses `backend` as the [backends] table it would be; throws ConfigError. */
export function validateBackend(backend: BackendConfig, source: string): BackendConfig {
  checkName('backend', backend.name, source);
  const parsed = parseConfig(backendTable(backend), { source, baseDirectory: '/' });
  if (parsed.backends.length !== 1) throw new ConfigError(`${source}: not one backend`);
  return parsed.backends[0]!;
}

/** `config` with `additions`, each validated again; fails closed on a clash or a dangling name. */
export function withRuntimePlacements(config: TalusConfig, additions: RuntimePlacements, source: string): TalusConfig {
  if (additions.backends.length === 0 && additions.placements.length === 0) return config;
  const backends = [...config.backends];
  for (const backend of additions.backends) {
    if (backends.some((known) => known.name === backend.name)) throw new ConfigError(`${source}: backend ${backend.name} is declared in the configuration too (remove one)`);
    backends.push(validateBackend(backend, source));
  }
  const placements: PlacementConfig[] = [...config.placements];
  for (const placement of additions.placements) {
    if (placements.some((known) => known.name === placement.name)) throw new ConfigError(`${source}: placement ${placement.name} is declared in the configuration too (remove one)`);
    // Parsed from the table it would be: the stored fields are checked by the same rules as talus.toml's.
    if (placement.type !== 'hybrid') placements.push(validatePlacement(placement, backends.map((backend) => backend.name), source));
  }
  // Hybrids after every striped one: an UpdatePlacement may have made one name a placement kept after it.
  const striped = [...placements];
  for (const placement of additions.placements) {
    if (placement.type !== 'hybrid') continue;
    if (placements.some((known) => known.name === placement.name)) throw new ConfigError(`${source}: placement ${placement.name} is declared twice (remove one)`);
    placements.push(validateHybridPlacement(placement, striped, source));
  }
  return { ...config, backends, placements };
}

/** Where run-time changes are kept, for the messages of a start they fail. */
export interface RuntimeSources {
  backends: string;
  buckets: string;
}

/**
 * talus.toml's configuration (`base`) with what the admin API kept:
 * backends and placements added or changed at run time, and buckets'
 * placements chosen there (over talus.toml's [buckets]). What every process
 * serves: at start, a --workers worker whenever the primary tells it, a
 * node sharing PostgreSQL whenever it sees a newer document.
 */
export function withRuntimeChanges(base: TalusConfig, kept: RuntimePlacements & { buckets: ReadonlyMap<string, string> }, sources: RuntimeSources): TalusConfig {
  return withBucketPlacements(withRuntimePlacements(base, kept, sources.backends), kept.buckets, sources.buckets);
}
