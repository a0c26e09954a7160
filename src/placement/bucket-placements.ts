/**
 * Buckets' placements chosen at run time (the admin API's
 * SetBucketPlacement), kept in DATA_DIR/bucket-placements.json and applied
 * over talus.toml's `[buckets]` at every start: an entry here wins, so a
 * choice made while the server ran is not undone by a restart. Each names a
 * placement of talus.toml (or "local"), checked when set and again at start
 * — a start whose talus.toml no longer has it fails, naming this file, as a
 * `[buckets]` entry naming a missing placement does.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ConfigError, LOCAL_PLACEMENT, type TalusConfig } from '../config/config.ts';
import { writeFileAtomically } from '../util/atomic-file.ts';

export const BUCKET_PLACEMENTS_FILE = 'bucket-placements.json';

interface BucketPlacementsFile {
  version: 1;
  buckets: Record<string, string>;
}

export async function readBucketPlacements(dataDir: string): Promise<Map<string, string>> {
  const path = join(dataDir, BUCKET_PLACEMENTS_FILE);
  const text = await readFile(path, 'utf8').catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') return undefined;
    throw error;
  });
  if (text === undefined) return new Map();
  let parsed: Partial<BucketPlacementsFile>;
  try {
    parsed = JSON.parse(text) as Partial<BucketPlacementsFile>;
  } catch {
    throw new ConfigError(`${path}: not valid JSON`);
  }
  if (parsed.version !== 1 || typeof parsed.buckets !== 'object' || parsed.buckets === null) throw new ConfigError(`${path}: not a Talus bucket placements file`);
  const entries = Object.entries(parsed.buckets);
  if (!entries.every(([, placement]) => typeof placement === 'string')) throw new ConfigError(`${path}: not a Talus bucket placements file`);
  return new Map(entries);
}

export function writeBucketPlacements(dataDir: string, placements: ReadonlyMap<string, string>): Promise<void> {
  const contents: BucketPlacementsFile = { version: 1, buckets: Object.fromEntries([...placements].sort(([a], [b]) => (a < b ? -1 : 1))) };
  return writeFileAtomically(join(dataDir, BUCKET_PLACEMENTS_FILE), `${JSON.stringify(contents, null, 2)}\n`, 0o644);
}

/** True when `name` is a placement a bucket may use under `config`. */
function isKnownPlacement(config: TalusConfig, name: string): boolean {
  return name === LOCAL_PLACEMENT || config.placements.some((placement) => placement.name === name);
}

/** `config` with the run-time choices over its `[buckets]`; fails closed on a choice naming a placement `config` lacks. */
export function withBucketPlacements(config: TalusConfig, chosen: ReadonlyMap<string, string>, source: string): TalusConfig {
  if (chosen.size === 0) return config;
  for (const [bucket, placement] of chosen) {
    if (!isKnownPlacement(config, placement)) throw new ConfigError(`${source}: bucket ${bucket} is set to placement ${placement}, which the configuration does not declare (declare it, or change the bucket's placement)`);
  }
  return { ...config, buckets: new Map([...config.buckets, ...chosen]) };
}
