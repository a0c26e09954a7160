/**
 * The configuration file (`talus server --config talus.toml`): backends,
 * placements, the default placement and per-bucket choices. Validation fails
 * closed: anything unknown, missing or inconsistent is an error naming the
 * table and key, never a silent fallback to something else.
 *
 *   [backends.disk0]            type = "directory", path = "/srv/disk0"
 *   [backends.eu]               type = "s3", endpoint, bucket, access_key_id,
 *                               secret_access_key, region?, prefix?,
 *                               multipart_threshold? (1GiB), part_size? (128MiB)
 *   [placements.ec]             type = "erasure", data_shards, parity_shards,
 *                               backends = [...], write_quorum?, assignment?, block_size?
 *   [placements.copies]         type = "replica", copies, backends, write_quorum?, assignment?
 *   [placements.one]            type = "single", backend
 *   [placements.mixed]          type = "hybrid", threshold, small, large
 *   [health]                    probe_interval? (10s), deadline_min? (2s), deadline_max? (30s)
 *   [defaults]                  placement = "ec"   (built in: "local", the data directory)
 *   [buckets]                   photos = "copies"
 *   [replication]               backends? (every backend a placement uses), lag? (1s),
 *                               snapshot_interval? (1h), write_quorum? (majority),
 *                               key? (base64 of 32 bytes) | key_file?, mode? ("async" | "quorum")
 */
import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { isAbsolute, resolve, dirname } from 'node:path';
import { parse as parseToml } from 'smol-toml';
import { DATA_SHARDS_MAX, PARITY_SHARDS_MAX, SHARD_BYTES_MULTIPLE } from '../erasure/index.ts';
import { MULTIPART_THRESHOLD_BYTES_DEFAULT, PART_BYTES_DEFAULT } from '../backend/s3-backend-defaults.ts';
import { parseSize } from '../util/byte-size.ts';
import { KiB, MiB } from '../util/limits.ts';

/** The placement every bucket gets unless configured otherwise: today's single copy in the data directory. */
export const LOCAL_PLACEMENT = 'local';
export const BLOCK_BYTES_DEFAULT = 256 * KiB;
const BLOCK_BYTES_MIN = 4 * KiB;
const BLOCK_BYTES_MAX = 4 * MiB;
const BACKENDS_MAX = 64;
const CONFIG_BYTES_MAX = MiB;
const NAME = /^[a-z0-9][a-z0-9_-]{0,62}$/;

export type BackendConfig =
  | { readonly name: string; readonly type: 'directory'; readonly path: string }
  | {
      readonly name: string;
      readonly type: 's3';
      readonly endpoint: string;
      readonly bucket: string;
      readonly region: string;
      readonly accessKeyId: string;
      readonly secretAccessKey: string;
      readonly prefix: string;
      /** Objects above this size are uploaded in parts. */
      readonly multipartThresholdBytes: number | undefined;
      readonly partBytes: number | undefined;
    };

export type Assignment = 'shuffle' | 'priority';

/** A placement that stores a blob as k + m shards (replicas: k = 1, the others copies; single: k = 1, m = 0). */
export interface StripedPlacementConfig {
  readonly name: string;
  readonly type: 'erasure' | 'replica' | 'single';
  readonly dataShards: number;
  readonly parityShards: number;
  /** Candidate backends, in priority order. */
  readonly backends: readonly string[];
  readonly assignment: Assignment;
  readonly writeQuorum: number;
  readonly blockBytes: number;
}

export interface HybridPlacementConfig {
  readonly name: string;
  readonly type: 'hybrid';
  /** Blobs smaller than this go to `small`, the others to `large`. */
  readonly thresholdBytes: number;
  readonly small: string;
  readonly large: string;
}

export type PlacementConfig = StripedPlacementConfig | HybridPlacementConfig;

/**
 * How Talus watches its backends (`[health]`): how often each is probed,
 * and the bounds of the deadline each request to a backend gets. The
 * deadline itself follows the backend's observed latency (see
 * placement/backend-health.ts); these bound it.
 */
export interface HealthConfig {
  readonly probeIntervalMs: number;
  /** No request to a backend is given up sooner than this, however fast the backend usually is. */
  readonly deadlineMinMs: number;
  /** No request waits longer than this for a backend, however slow it usually is (and before its latency is known). */
  readonly deadlineMaxMs: number;
}

/**
 * 10 s between probes: a backend that comes back is used again within
 * seconds, and a probe (a HEAD, or a stat) every 10 s costs nothing.
 */
export const PROBE_INTERVAL_MS_DEFAULT = 10_000;
/**
 * 2 s: a local disk behind a queue of fsyncs, or a remote endpoint in a
 * garbage-collection pause, answers within a second or two; a shorter floor
 * would mark busy but healthy backends down (and queue repairs for them).
 */
export const DEADLINE_MS_MIN_DEFAULT = 2_000;
/**
 * 30 s, the remote client's own response timeout before deadlines existed:
 * a backend that takes longer than this to answer is as good as down, and
 * this is also what a request waits before a backend's latency is known.
 */
export const DEADLINE_MS_MAX_DEFAULT = 30_000;
/** Bounds of the [health] durations: a deadline under 50 ms fires on event-loop jitter; over 10 min nothing is watching. */
const DURATION_MS_MIN = 50;
const DURATION_MS_MAX = 600_000;

export const HEALTH_DEFAULT: HealthConfig = { probeIntervalMs: PROBE_INTERVAL_MS_DEFAULT, deadlineMinMs: DEADLINE_MS_MIN_DEFAULT, deadlineMaxMs: DEADLINE_MS_MAX_DEFAULT };

export interface TalusConfig {
  readonly backends: readonly BackendConfig[];
  readonly placements: readonly PlacementConfig[];
  readonly defaultPlacement: string;
  /** Bucket name → placement name. */
  readonly buckets: ReadonlyMap<string, string>;
  /** Default HEALTH_DEFAULT. */
  readonly health?: HealthConfig;
  /** Metadata replication to backends (src/replication/); absent: none. */
  readonly replication?: ReplicationConfig;
}

/**
 * `[replication]`: the metadata database shipped to backends as a snapshot
 * plus segments of committed changes (docs/PLACEMENT.md, "Metadata
 * replication"). Present: on.
 */
export interface ReplicationConfig {
  /** Where replicas go; default every backend some placement uses. */
  readonly backends: readonly string[];
  /** How often committed changes are shipped: the bound on what a lost gateway loses (plus one upload). */
  readonly lagMs: number;
  /** A new snapshot (and the compaction of older replicas) at least this often. */
  readonly snapshotIntervalMs: number;
  /** Backends that must hold a segment before its changes are forgotten locally; default a majority. */
  readonly writeQuorum: number;
  /** AES-256-GCM key for replicas; absent: stored unencrypted. */
  readonly key: Buffer | undefined;
  /**
   * "async" (default): writes are acknowledged once durable locally and
   * shipped within `lagMs`. "quorum": a write is acknowledged only once its
   * metadata change is on `writeQuorum` backends (503 when it cannot be).
   */
  readonly mode: 'async' | 'quorum';
}

export const REPLICATION_LAG_MS_DEFAULT = 1_000;
export const SNAPSHOT_INTERVAL_MS_DEFAULT = 3_600_000;
const REPLICATION_KEY_BYTES = 32;

export class ConfigError extends Error {
  override name = 'ConfigError';
}

export const EMPTY_CONFIG: TalusConfig = { backends: [], placements: [], defaultPlacement: LOCAL_PLACEMENT, buckets: new Map(), health: HEALTH_DEFAULT };

export async function loadConfig(path: string): Promise<TalusConfig> {
  let text: string;
  try {
    const bytes = await readFile(path);
    if (bytes.length > CONFIG_BYTES_MAX) throw new ConfigError(`${path}: larger than ${CONFIG_BYTES_MAX} bytes`);
    text = bytes.toString('utf8');
  } catch (error) {
    if (error instanceof ConfigError) throw error;
    throw new ConfigError(`${path}: cannot read: ${error instanceof Error ? error.message : String(error)}`);
  }
  return parseConfig(text, { source: path, baseDirectory: dirname(resolve(path)) });
}

export function parseConfig(text: string, options: { source: string; baseDirectory: string }): TalusConfig {
  let document: Record<string, unknown>;
  try {
    document = parseToml(text) as Record<string, unknown>;
  } catch (error) {
    throw new ConfigError(`${options.source}: not valid TOML: ${error instanceof Error ? error.message.split('\n')[0] : String(error)}`);
  }
  const reader = new TableReader(options.source, '', document);
  const backendTables = reader.table('backends');
  const placementTables = reader.table('placements');
  const defaults = reader.table('defaults');
  const buckets = reader.table('buckets');
  const healthTable = reader.table('health');
  const replicationTable = reader.has('replication') ? reader.table('replication') : undefined;
  reader.done();
  const health = readHealth(healthTable);

  const backends: BackendConfig[] = [];
  for (const name of backendTables.keys()) {
    checkName(options.source, 'backends', name);
    backends.push(readBackend(backendTables.table(name), name, options.baseDirectory));
  }
  backendTables.done();
  if (backends.length > BACKENDS_MAX) throw new ConfigError(`${options.source}: at most ${BACKENDS_MAX} backends`);
  const backendNames = new Set(backends.map((backend) => backend.name));

  const placements: PlacementConfig[] = [];
  for (const name of placementTables.keys()) {
    checkName(options.source, 'placements', name);
    if (name === LOCAL_PLACEMENT) throw new ConfigError(`${options.source}: [placements.${name}]: "${LOCAL_PLACEMENT}" is built in (the data directory)`);
    placements.push(readPlacement(placementTables.table(name), name, backendNames));
  }
  placementTables.done();
  const placementNames = new Set([LOCAL_PLACEMENT, ...placements.map((placement) => placement.name)]);
  for (const placement of placements) {
    if (placement.type !== 'hybrid') continue;
    for (const part of [placement.small, placement.large]) {
      const target = placements.find((candidate) => candidate.name === part);
      if (part !== LOCAL_PLACEMENT && target === undefined) throw new ConfigError(`${options.source}: [placements.${placement.name}]: no placement "${part}"`);
      if (target?.type === 'hybrid') throw new ConfigError(`${options.source}: [placements.${placement.name}]: a hybrid placement cannot contain another hybrid ("${part}")`);
    }
  }

  const defaultPlacement = defaults.optionalString('placement') ?? LOCAL_PLACEMENT;
  defaults.done();
  if (!placementNames.has(defaultPlacement)) throw new ConfigError(`${options.source}: [defaults] placement: no placement "${defaultPlacement}"`);

  const bucketPlacements = new Map<string, string>();
  for (const bucket of buckets.keys()) {
    const placement = buckets.string(bucket);
    if (!placementNames.has(placement)) throw new ConfigError(`${options.source}: [buckets] ${bucket}: no placement "${placement}"`);
    bucketPlacements.set(bucket, placement);
  }
  buckets.done();
  const replication = replicationTable === undefined ? undefined : readReplication(replicationTable, backends, placements, options.baseDirectory);
  return { backends, placements, defaultPlacement, buckets: bucketPlacements, health, ...(replication === undefined ? {} : { replication }) };
}

function readReplication(table: TableReader, backends: readonly BackendConfig[], placements: readonly PlacementConfig[], baseDirectory: string): ReplicationConfig {
  const known = new Set(backends.map((backend) => backend.name));
  const used = placements.flatMap((placement) => (placement.type === 'hybrid' ? [] : placement.backends));
  const listed = table.has('backends') ? table.strings('backends') : [...new Set(used)];
  for (const name of listed) if (!known.has(name)) throw table.error('backends', `no backend "${name}"`);
  if (new Set(listed).size !== listed.length) throw table.error('backends', 'lists a backend twice');
  if (listed.length === 0) throw table.error('backends', 'no placement uses a backend: name the backends to replicate to');
  const lagMs = table.optionalDuration('lag', DURATION_MS_MIN, DURATION_MS_MAX) ?? REPLICATION_LAG_MS_DEFAULT;
  const snapshotIntervalMs = table.optionalDuration('snapshot_interval', 1_000, 7 * 24 * 3_600_000) ?? SNAPSHOT_INTERVAL_MS_DEFAULT;
  const writeQuorum = table.optionalInteger('write_quorum', 1, listed.length) ?? Math.floor(listed.length / 2) + 1;
  const keyText = table.optionalString('key');
  const keyFile = table.optionalString('key_file');
  if (keyText !== undefined && keyFile !== undefined) throw table.error('key_file', 'give key or key_file, not both');
  let key: Buffer | undefined;
  if (keyText !== undefined || keyFile !== undefined) {
    let text = keyText;
    if (keyFile !== undefined) {
      const path = isAbsolute(keyFile) ? keyFile : resolve(baseDirectory, keyFile);
      try {
        text = readFileSync(path, 'utf8').trim();
      } catch (error) {
        throw table.error('key_file', `cannot read ${path}: ${error instanceof Error ? error.message : String(error)}`);
      }
    }
    key = Buffer.from(text!, 'base64');
    if (key.length !== REPLICATION_KEY_BYTES) throw table.error(keyFile === undefined ? 'key' : 'key_file', `must be the base64 of ${REPLICATION_KEY_BYTES} bytes (e.g. openssl rand -base64 32)`);
  }
  const mode = table.optionalString('mode') ?? 'async';
  if (mode !== 'async' && mode !== 'quorum') throw table.error('mode', `must be "async" or "quorum", not ${JSON.stringify(mode)}`);
  table.done();
  return { backends: listed, lagMs, snapshotIntervalMs, writeQuorum, key, mode };
}

function readHealth(table: TableReader): HealthConfig {
  const health: HealthConfig = {
    probeIntervalMs: table.optionalDuration('probe_interval', DURATION_MS_MIN, DURATION_MS_MAX) ?? PROBE_INTERVAL_MS_DEFAULT,
    deadlineMinMs: table.optionalDuration('deadline_min', DURATION_MS_MIN, DURATION_MS_MAX) ?? DEADLINE_MS_MIN_DEFAULT,
    deadlineMaxMs: table.optionalDuration('deadline_max', DURATION_MS_MIN, DURATION_MS_MAX) ?? DEADLINE_MS_MAX_DEFAULT,
  };
  if (health.deadlineMaxMs < health.deadlineMinMs) throw table.error('deadline_max', `must be at least deadline_min (${health.deadlineMinMs} ms)`);
  table.done();
  return health;
}

function readBackend(table: TableReader, name: string, baseDirectory: string): BackendConfig {
  const type = table.string('type');
  let backend: BackendConfig;
  if (type === 'directory') {
    const path = table.string('path');
    backend = { name, type, path: isAbsolute(path) ? path : resolve(baseDirectory, path) };
  } else if (type === 's3') {
    const endpoint = table.string('endpoint');
    let url: URL;
    try {
      url = new URL(endpoint);
    } catch {
      throw table.error('endpoint', `not a URL: ${JSON.stringify(endpoint)}`);
    }
    if ((url.protocol !== 'http:' && url.protocol !== 'https:') || url.pathname !== '/' || url.search !== '') throw table.error('endpoint', 'must be http(s)://host[:port] without a path');
    backend = {
      name,
      type,
      endpoint: url.origin,
      bucket: table.string('bucket'),
      region: table.optionalString('region') ?? 'us-east-1',
      accessKeyId: table.string('access_key_id'),
      secretAccessKey: table.string('secret_access_key'),
      prefix: table.optionalString('prefix') ?? '',
      multipartThresholdBytes: table.optionalSize('multipart_threshold'),
      partBytes: table.optionalSize('part_size'),
    };
    const partBytes = backend.partBytes ?? PART_BYTES_DEFAULT;
    if (partBytes < 5 * MiB || partBytes > 5 * 1024 * MiB) throw table.error('part_size', 'must be from 5 MiB to 5 GiB');
    if ((backend.multipartThresholdBytes ?? MULTIPART_THRESHOLD_BYTES_DEFAULT) < partBytes) throw table.error('multipart_threshold', 'must be at least part_size');
  } else {
    throw table.error('type', `must be "directory" or "s3", not ${JSON.stringify(type)}`);
  }
  table.done();
  return backend;
}

function readPlacement(table: TableReader, name: string, backendNames: ReadonlySet<string>): PlacementConfig {
  const type = table.string('type');
  if (type === 'hybrid') {
    const threshold = table.size('threshold');
    const placement: HybridPlacementConfig = { name, type, thresholdBytes: threshold, small: table.string('small'), large: table.string('large') };
    table.done();
    return placement;
  }
  let dataShards: number;
  let parityShards: number;
  let backends: string[];
  if (type === 'erasure') {
    dataShards = table.integer('data_shards', 2, DATA_SHARDS_MAX);
    parityShards = table.integer('parity_shards', 1, PARITY_SHARDS_MAX);
    backends = table.strings('backends');
  } else if (type === 'replica') {
    dataShards = 1;
    parityShards = table.integer('copies', 2, PARITY_SHARDS_MAX + 1) - 1;
    backends = table.strings('backends');
  } else if (type === 'single') {
    dataShards = 1;
    parityShards = 0;
    backends = [table.string('backend')];
  } else {
    throw table.error('type', `must be "erasure", "replica", "single" or "hybrid", not ${JSON.stringify(type)}`);
  }
  const shards = dataShards + parityShards;
  for (const backend of backends) if (!backendNames.has(backend)) throw table.error('backends', `no backend "${backend}"`);
  if (new Set(backends).size !== backends.length) throw table.error('backends', 'lists a backend twice');
  if (backends.length < shards) throw table.error('backends', `${shards} shards need at least ${shards} backends, ${backends.length} listed`);
  const quorumDefault = writeQuorumDefault(dataShards, parityShards);
  const writeQuorum = table.optionalInteger('write_quorum', dataShards, shards) ?? quorumDefault;
  const assignment = table.optionalString('assignment') ?? 'shuffle';
  if (assignment !== 'shuffle' && assignment !== 'priority') throw table.error('assignment', `must be "shuffle" or "priority", not ${JSON.stringify(assignment)}`);
  const blockBytes = table.optionalSize('block_size') ?? BLOCK_BYTES_DEFAULT;
  if (blockBytes < BLOCK_BYTES_MIN || blockBytes > BLOCK_BYTES_MAX || blockBytes % SHARD_BYTES_MULTIPLE !== 0) {
    throw table.error('block_size', `must be a multiple of ${SHARD_BYTES_MULTIPLE} from ${BLOCK_BYTES_MIN} to ${BLOCK_BYTES_MAX} bytes`);
  }
  table.done();
  return { name, type, dataShards, parityShards, backends, assignment, writeQuorum, blockBytes };
}

/**
 * Every shard but one (k + m − 1; replicas: copies − 1), never below k: the
 * strongest acknowledgement that still lets writes go on while any one
 * backend is down or read-only. Requiring every shard (k + m) would make a
 * single backend's outage an outage of every write — with 2+1 over three
 * regions, one region down meant 503 on every PUT. The price: an object
 * acknowledged while a backend is down has one shard less of redundancy
 * until the healer rewrites the missing shard (docs/PLACEMENT.md, "Write
 * quorum"); `write_quorum = k + m` buys it back at the cost of availability.
 */
export function writeQuorumDefault(dataShards: number, parityShards: number): number {
  return Math.max(dataShards, dataShards + parityShards - 1);
}

function checkName(source: string, table: string, name: string): void {
  if (!NAME.test(name)) throw new ConfigError(`${source}: [${table}.${name}]: names are lower-case letters, digits, '-' and '_' (at most 63)`);
}

/** Reads one TOML table, remembering which keys were used so leftovers (typos) are errors. */
class TableReader {
  readonly #source: string;
  readonly #path: string;
  readonly #values: Record<string, unknown>;
  readonly #used = new Set<string>();

  constructor(source: string, path: string, values: Record<string, unknown>) {
    this.#source = source;
    this.#path = path;
    this.#values = values;
  }

  keys(): string[] {
    return Object.keys(this.#values);
  }

  has(key: string): boolean {
    return this.#values[key] !== undefined;
  }

  error(key: string, message: string): ConfigError {
    const where = this.#path === '' ? key : `[${this.#path}] ${key}`;
    return new ConfigError(`${this.#source}: ${where}: ${message}`);
  }

  #take(key: string): unknown {
    this.#used.add(key);
    return this.#values[key];
  }

  table(key: string): TableReader {
    const value = this.#take(key);
    const path = this.#path === '' ? key : `${this.#path}.${key}`;
    if (value === undefined) return new TableReader(this.#source, path, {});
    if (typeof value !== 'object' || value === null || Array.isArray(value) || value instanceof Date) throw this.error(key, 'must be a table');
    return new TableReader(this.#source, path, value as Record<string, unknown>);
  }

  string(key: string): string {
    const value = this.optionalString(key);
    if (value === undefined) throw this.error(key, 'is required');
    return value;
  }

  optionalString(key: string): string | undefined {
    const value = this.#take(key);
    if (value === undefined) return undefined;
    if (typeof value !== 'string' || value === '') throw this.error(key, 'must be a non-empty string');
    return value;
  }

  strings(key: string): string[] {
    const value = this.#take(key);
    if (value === undefined) throw this.error(key, 'is required');
    if (!Array.isArray(value) || value.length === 0 || value.some((entry) => typeof entry !== 'string')) throw this.error(key, 'must be a non-empty list of strings');
    return value as string[];
  }

  integer(key: string, min: number, max: number): number {
    const value = this.optionalInteger(key, min, max);
    if (value === undefined) throw this.error(key, 'is required');
    return value;
  }

  optionalInteger(key: string, min: number, max: number): number | undefined {
    const value = this.#take(key);
    if (value === undefined) return undefined;
    const number = typeof value === 'bigint' ? Number(value) : value;
    if (typeof number !== 'number' || !Number.isInteger(number) || number < min || number > max) throw this.error(key, `must be an integer from ${min} to ${max}`);
    return number;
  }

  size(key: string): number {
    const value = this.optionalSize(key);
    if (value === undefined) throw this.error(key, 'is required');
    return value;
  }

  /** A byte count: an integer, or a string such as "1MiB". */
  optionalSize(key: string): number | undefined {
    const value = this.#take(key);
    if (value === undefined) return undefined;
    if (typeof value === 'number' && Number.isSafeInteger(value) && value >= 0) return value;
    if (typeof value === 'string') {
      try {
        return parseSize(value);
      } catch (error) {
        throw this.error(key, error instanceof Error ? error.message : String(error));
      }
    }
    throw this.error(key, 'must be a byte count, e.g. 262144 or "256KiB"');
  }

  /** A duration: an integer of milliseconds, or a string such as "500ms", "2s" or "1min". */
  optionalDuration(key: string, minMs: number, maxMs: number): number | undefined {
    const value = this.#take(key);
    if (value === undefined) return undefined;
    let ms: number | undefined;
    if (typeof value === 'number' && Number.isSafeInteger(value)) ms = value;
    else if (typeof value === 'bigint') ms = Number(value);
    else if (typeof value === 'string') {
      const match = /^(\d+(?:\.\d+)?)\s*(ms|s|min)$/.exec(value.trim());
      if (match !== null) ms = Math.round(Number(match[1]) * { ms: 1, s: 1_000, min: 60_000 }[match[2] as 'ms' | 's' | 'min']);
    }
    if (ms === undefined) throw this.error(key, 'must be a duration, e.g. 500 (milliseconds), "500ms", "2s" or "1min"');
    if (ms < minMs || ms > maxMs) throw this.error(key, `must be from ${minMs} ms to ${maxMs} ms`);
    return ms;
  }

  /** Every key must have been read: an unknown one is a typo or a setting this version does not have. */
  done(): void {
    for (const key of Object.keys(this.#values)) if (!this.#used.has(key)) throw this.error(key, 'unknown setting');
  }
}
