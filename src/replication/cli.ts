/** `talus restore`: the metadata database back from its replicas on the backends. */
import { mkdir } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import type { Backend } from '../backend/backend.ts';
import { ConfigError, loadConfig, type TalusConfig } from '../config/config.ts';
import { lockDataDirectory } from '../data-dir-lock.ts';
import { openBackend } from '../placement/open-placement.ts';
import { restoreMetadata } from './restore.ts';
import { recoverFromScan } from './recover.ts';
import { MetadataReplicator } from './replicator.ts';
import { removeChangeCapture } from './change-capture.ts';
import type { SqliteMetadataStore } from '../meta/sqlite/sqlite-metadata-store.ts';
import type { Logger } from '../util/logger.ts';

export const RESTORE_USAGE = `Usage: talus restore DATA_DIR --config talus.toml [--store ID] [--partial] [--secret-key-file FILE]
  Rebuilds DATA_DIR/meta.db (DATA_DIR without a database) from the newest complete metadata replica
  on the reachable backends ([replication] backends, or all). --partial accepts a state older than
  replicas that exist but cannot be read. The access key secrets need the key they were sealed with:
  --secret-key-file copies a saved talus.secret-key into DATA_DIR, or set TALUS_SECRET_KEY.`;

/** The backends replicas went to: those of [replication], else every configured one. */
export function replicationTargetNames(config: TalusConfig): readonly string[] {
  return config.replication?.backends ?? config.backends.map((backend) => backend.name);
}

export async function restoreCommand(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      config: { type: 'string' },
      store: { type: 'string' },
      partial: { type: 'boolean', default: false },
      'secret-key-file': { type: 'string' },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help || positionals[0] === undefined || values.config === undefined) {
    process.stdout.write(`${RESTORE_USAGE}\n`);
    return values.help ? 0 : 2;
  }
  const dataDir = resolve(positionals[0]);
  const config = await loadConfig(values.config);
  const names = new Set(replicationTargetNames(config));
  const backends: Backend[] = [];
  for (const backendConfig of config.backends) if (names.has(backendConfig.name)) backends.push(await openBackend(backendConfig));
  await mkdir(dataDir, { recursive: true });
  // No server may start on the directory while it is being written.
  const lock = await lockDataDirectory(dataDir);
  try {
    const report = await restoreMetadata({
      dataDir,
      backends,
      key: config.replication?.key,
      ...(values.store === undefined ? {} : { storeId: values.store }),
      partial: values.partial,
      ...(values['secret-key-file'] === undefined ? {} : { secretKeyFile: values['secret-key-file'] }),
      log: (line) => process.stderr.write(`${line}\n`),
    });
    process.stdout.write(`${JSON.stringify(report)}\n`);
    return 0;
  } finally {
    await lock.release();
    await Promise.all(backends.map((backend) => backend.close()));
  }
}

export const RECOVER_USAGE = `Usage: talus recover --scan DATA_DIR --config talus.toml
  The last resort when no metadata replica survives: rebuilds DATA_DIR/meta.db (DATA_DIR without a
  database) from the object records and shards on every configured backend. Recovers each placed
  object version whose record survives and whose shards can still be read; reports the rest.
  Users, keys and bucket settings are not recovered: buckets get default settings, owned by root.`;

export async function recoverCommand(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: { scan: { type: 'boolean', default: false }, config: { type: 'string' }, help: { type: 'boolean', default: false } },
  });
  if (values.help || !values.scan || positionals[0] === undefined || values.config === undefined) {
    process.stdout.write(`${RECOVER_USAGE}\n`);
    return values.help ? 0 : 2;
  }
  const dataDir = resolve(positionals[0]);
  const config = await loadConfig(values.config);
  const backends: Backend[] = [];
  for (const backendConfig of config.backends) backends.push(await openBackend(backendConfig));
  await mkdir(dataDir, { recursive: true });
  const lock = await lockDataDirectory(dataDir);
  try {
    const report = await recoverFromScan({ dataDir, backends, log: (line) => process.stderr.write(`${line}\n`) });
    process.stdout.write(`${JSON.stringify(report)}\n`);
    return 0;
  } finally {
    await lock.release();
    await Promise.all(backends.map((backend) => backend.close()));
  }
}

/**
 * The remote (s3) backends the placements store objects on while no
 * [replication] table ships the metadata anywhere: losing the data
 * directory then loses the way to every object in them. Replication stays
 * opt-in (docs/PLACEMENT.md, "Replication by default?"); the server warns.
 */
export function unreplicatedRemoteBackends(config: TalusConfig): string[] {
  if (config.replication !== undefined) return [];
  const remote = new Set(config.backends.filter((backend) => backend.type === 's3').map((backend) => backend.name));
  const used = config.placements.flatMap((placement) => (placement.type === 'hybrid' ? [] : placement.backends));
  return [...new Set(used.filter((name) => remote.has(name)))];
}

/**
 * For the composition root: the replicator when [replication] is
 * configured (change capture installed, loop not yet started); else removes
 * any change capture a previous configuration left, so nothing is logged
 * for nobody. Reuses the placement's backends where it has them.
 */
export async function openReplication(options: {
  config: TalusConfig;
  dataDir: string;
  meta: SqliteMetadataStore;
  placedBackends: readonly Backend[];
  workers: number;
  logger: Logger;
}): Promise<MetadataReplicator | undefined> {
  const { config, dataDir, meta, logger } = options;
  const replication = config.replication;
  if (replication === undefined) {
    removeChangeCapture(meta.database);
    const remote = unreplicatedRemoteBackends(config);
    if (remote.length > 0) {
      logger.warn('objects are placed on remote backends but the metadata is not replicated: losing this data directory loses the way to every one of them; add a [replication] table (docs/PLACEMENT.md, "Metadata replication")', { backends: remote });
    }
    return undefined;
  }
  const identity = await meta.storeIdentity();
  if (identity === undefined) throw new Error('metadata replication needs the store identity, recorded at start-up');
  const byName = new Map(options.placedBackends.map((backend) => [backend.name, backend]));
  const targets: Backend[] = [];
  for (const name of replication.backends) {
    const placed = byName.get(name);
    if (placed !== undefined) {
      targets.push(placed);
      continue;
    }
    const backendConfig = config.backends.find((candidate) => candidate.name === name);
    if (backendConfig === undefined) throw new Error(`[replication] backend ${name} is not configured`);
    targets.push(await openBackend(backendConfig));
  }
  const replicator = new MetadataReplicator({
    databasePath: join(dataDir, 'meta.db'),
    scratchDirectory: join(dataDir, 'replication-scratch'),
    targets,
    storeId: identity.id,
    epoch: identity.epoch,
    config: replication,
    logger,
    readConnection: meta.database,
  });
  // Before the server writes: the cutter then takes the serving thread's inline bodies instead of reading them back.
  meta.setInlineDataTap(replicator.inlineDataTap);
  if (replication.mode === 'quorum') {
    // Worker processes commit on connections of their own, which this barrier cannot hold back.
    if (options.workers > 1) throw new ConfigError('[replication] mode = "quorum" works with one server process only (not --workers)');
    meta.setCommitBarrier(() => replicator.shipped());
  }
  return replicator;
}
