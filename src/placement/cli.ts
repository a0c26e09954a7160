/** `talus heal` and `talus backends`: healing and backend health from the command line. */
import { existsSync } from 'node:fs';
import { statfs } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { DirectoryBackend } from '../backend/directory-backend.ts';
import { S3Backend } from '../backend/s3-backend.ts';
import { FsBlobStore } from '../blob/fs/fs-blob-store.ts';
import { loadConfig, type TalusConfig } from '../config/config.ts';
import { lockDataDirectory } from '../data-dir-lock.ts';
import { SqliteMetadataStore } from '../meta/sqlite/sqlite-metadata-store.ts';
import { openSecretBox } from '../principals/secret-key.ts';
import { silentLogger } from '../util/logger.ts';
import { BackendHealth } from './backend-health.ts';
import type { HealProgress } from './healer.ts';
import { BUCKET_PLACEMENTS_FILE } from './bucket-placements.ts';
import { openBackend, openPlacement } from './open-placement.ts';
import { FileRuntimeDocuments } from './runtime-document.ts';
import { RUNTIME_PLACEMENTS_FILE, withRuntimeChanges } from './runtime-placements.ts';

export const HEAL_USAGE = `Usage: talus heal [DATA_DIR] --config talus.toml [--deep]   repair queued shards, then scan every placed blob
       talus heal [DATA_DIR] --status                        what is queued for repair
       talus backends [DATA_DIR] --config talus.toml         each backend's state, latency, space and features
Backends and placements added through the admin API (kept in DATA_DIR) count as the server counts them.`;

const SAMPLE_MAX = 20;

export async function healCommand(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: { config: { type: 'string' }, deep: { type: 'boolean', default: false }, status: { type: 'boolean', default: false }, help: { type: 'boolean', default: false } },
  });
  if (values.help) {
    process.stdout.write(`${HEAL_USAGE}\n`);
    return 0;
  }
  const dataDir = resolve(positionals[0] ?? './data');
  // The server may be running: SQLite's WAL lets this process share the database.
  const meta = new SqliteMetadataStore(join(dataDir, 'meta.db'));
  try {
    if (values.status) {
      const summary = await meta.repairSummary(SAMPLE_MAX);
      process.stdout.write(`${summary.pending} shard${summary.pending === 1 ? '' : 's'} queued for repair`);
      process.stdout.write(summary.oldestRecordedMs === undefined ? '' : `, oldest since ${new Date(summary.oldestRecordedMs).toISOString()}`);
      process.stdout.write(summary.unreferenced === 0 ? '\n' : `; ${summary.unreferenced} more of blobs not referenced (yet, or any more), dropped after 10 min\n`);
      for (const entry of summary.sample) {
        const state = entry.location === undefined ? ' (blob no longer referenced)' : '';
        process.stdout.write(`  blob ${entry.blobId} shard ${entry.shard}: ${entry.reason}, ${entry.attempts} attempt${entry.attempts === 1 ? '' : 's'}${state}\n`);
      }
      return 0;
    }
    if (values.config === undefined) throw new Error('talus heal needs --config (the backends to heal on)');
    const config = await withDataDirectoryChanges(await loadConfig(values.config), dataDir, meta);
    const local = await FsBlobStore.open(join(dataDir, 'blobs'));
    const placement = await openPlacement(config, local, meta, silentLogger);
    try {
      await placement.store.health.probeAll(); // a server probes in the background; a heal wants to know first (bounded by the deadlines)
      const show = progressPrinter();
      const repairs = await placement.healer.repairDue({ onProgress: show, includeNotDue: true });
      const scan = await placement.healer.scan({ deep: values.deep, onProgress: show });
      // Re-placing rewrites versions, which a running server caches: only without one.
      const lock = await lockDataDirectory(dataDir).catch(() => undefined);
      const replaced = lock === undefined ? undefined : await placement.healer.replaceAll({ onProgress: show }).finally(() => lock.release());
      show.finish();
      process.stdout.write(
        `repairs: ${repairs.shardsRebuilt} shards rebuilt, ${repairs.failures} failed\n` +
          `scan${values.deep ? ' (deep)' : ''}: ${scan.blobsChecked} blobs checked, ${scan.shardsRebuilt} shards rebuilt, ${scan.failures} failed\n` +
          (replaced === undefined
            ? 're-placement: left to the running server (its next scan)\n'
            : `re-placement: ${replaced.blobsChecked} blobs checked, ${replaced.blobsMoved} moved, ${replaced.failures} failed\n`),
      );
      return repairs.failures + scan.failures + (replaced?.failures ?? 0) === 0 ? 0 : 1;
    } finally {
      await placement.store.close();
    }
  } finally {
    await meta.close();
  }
}

export async function backendsCommand(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({ args, allowPositionals: true, options: { config: { type: 'string' } } });
  if (values.config === undefined) throw new Error('talus backends needs --config');
  if (positionals.length > 1) throw new Error('talus backends takes at most one DATA_DIR');
  let config = await loadConfig(values.config);
  const dataDir = positionals[0] === undefined ? undefined : resolve(positionals[0]);
  if (dataDir !== undefined) {
    if (!existsSync(join(dataDir, 'meta.db'))) throw new Error(`${dataDir} is not a Talus data directory (no meta.db)`);
    const meta = new SqliteMetadataStore(join(dataDir, 'meta.db'));
    try {
      config = await withDataDirectoryChanges(config, dataDir, meta);
    } finally {
      await meta.close();
    }
  }
  const backends = new Map(await Promise.all(config.backends.map(async (backendConfig) => [backendConfig.name, await openBackend(backendConfig)] as const)));
  const health = new BackendHealth(backends, config.health);
  try {
    await health.probeAll();
    const rows = [['backend', 'type', 'state', 'latency', 'free space', 'conditional writes', 'error']];
    for (const status of health.snapshot()) {
      const backend = backends.get(status.name)!;
      let free = '';
      let conditional = '';
      if (backend instanceof DirectoryBackend) {
        const space = await statfs(backend.root).catch(() => undefined);
        free = space === undefined ? '?' : `${((space.bavail * space.bsize) / 1024 ** 3).toFixed(1)} GiB`;
        conditional = 'n/a';
      } else if (backend instanceof S3Backend && status.state === 'up') {
        conditional = await backend.probeFeatures().then(
          (features) => (features.conditionalWrites ? 'honoured' : 'IGNORED'),
          (error: unknown) => `probe failed: ${error instanceof Error ? error.message : String(error)}`,
        );
      }
      rows.push([
        status.name,
        backend instanceof DirectoryBackend ? 'directory' : 's3',
        status.state,
        status.latencyMs === undefined ? '' : `${status.latencyMs.toFixed(1)} ms`,
        free,
        conditional,
        status.lastError ?? '',
      ]);
    }
    const widths = rows[0]!.map((_, column) => Math.max(...rows.map((row) => row[column]!.length)));
    for (const row of rows) process.stdout.write(`${row.map((cell, column) => cell.padEnd(widths[column]!)).join('  ').trimEnd()}\n`);
    return health.snapshot().every((status) => status.state === 'up') ? 0 : 1;
  } finally {
    await Promise.all([...backends.values()].map((backend) => backend.close()));
  }
}

/**
 * talus.toml's backends and placements joined by those the admin API added at
 * run time (DATA_DIR/runtime-placements.json, bucket-placements.json), as the
 * server on DATA_DIR joins them: without this a heal would not know a backend
 * added at run time, and would count its shards as lost. Opening the secret
 * box only to read: it is never created here (an S3 backend's secret in the
 * file was sealed under the server's key).
 */
async function withDataDirectoryChanges(config: TalusConfig, dataDir: string, meta: SqliteMetadataStore): Promise<TalusConfig> {
  if (!existsSync(join(dataDir, RUNTIME_PLACEMENTS_FILE)) && !existsSync(join(dataDir, BUCKET_PLACEMENTS_FILE))) return config;
  const box = await openSecretBox(dataDir, meta, { create: false });
  const documents = new FileRuntimeDocuments(dataDir, box);
  const kept = await documents.read();
  return withRuntimeChanges(config, kept.document, documents.sources);
}

/** Progress on one line of a terminal, or a line every 1000 blobs elsewhere. */
function progressPrinter(): ((progress: HealProgress) => void) & { finish(): void } {
  const tty = process.stderr.isTTY === true;
  let last = 0;
  let shown = false;
  const show = (progress: HealProgress): void => {
    const now = Date.now();
    if (tty ? now - last < 100 : progress.blobs % 1000 !== 0) return;
    last = now;
    shown = true;
    process.stderr.write(`${tty ? '\r' : ''}${progress.phase}: ${progress.blobs} blobs, ${progress.shardsRebuilt} shards rebuilt, ${progress.failures} failed${tty ? '' : '\n'}`);
  };
  return Object.assign(show, {
    finish: () => {
      if (tty && shown) process.stderr.write('\n');
    },
  });
}
