/**
 * The composition root: the one place where the stores, the engine and the
 * HTTP front are built and connected, and where start-up and shutdown happen.
 */
import { mkdir, rename } from 'node:fs/promises';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join, resolve } from 'node:path';
import type { BlobStore } from './blob/blob-store.ts';
import { FsBlobStore } from './blob/fs/fs-blob-store.ts';
import { removeAllPartialBlobs } from './blob/fs/partial-blobs.ts';
import { ConfigError, EMPTY_CONFIG, type TalusConfig } from './config/config.ts';
import { lockDataDirectory, type DataDirectoryLock } from './data-dir-lock.ts';
import { DiskReserve } from './disk-reserve.ts';
import { checkBeforeOpen, LOST_AND_FOUND, settleIdentity, type ReclaimMode } from './data-dir-identity.ts';
import { Engine } from './engine/engine.ts';
// The S3 server (http/server.ts) is imported where this process serves S3: --workers' primary never does (issue 17).
import { closeGracefully } from './http/close-gracefully.ts';
import { newConsoleSourceKey } from './http/console-source.ts';
import { WorkerPool } from './cluster.ts';
import { lifecycleSchedule, lifecycleSettingsFromEnv, type LifecycleSettings } from './lifecycle/schedule.ts';
import { LifecycleWorker } from './lifecycle/worker.ts';
import type { MetadataStore } from './meta/metadata-store.ts';
import { SqliteMetadataStore } from './meta/sqlite/sqlite-metadata-store.ts';
import { LISTING_THREADS_DEFAULT } from './meta/sqlite/listing-threads.ts';
import { WalCheckpointer } from './meta/sqlite/wal-checkpointer.ts';
import { missingWriteQuorum } from './placement/backend-health.ts';
import { decodeLocation } from './placement/blob-location.ts';
import { openPlacement, type OpenPlacement } from './placement/open-placement.ts';
import { FileRuntimeDocuments, SettingsRuntimeDocuments, type RuntimeDocumentStore } from './placement/runtime-document.ts';
import { withRuntimeChanges } from './placement/runtime-placements.ts';
import { RuntimeChanges } from './placement/runtime-sync.ts';
import { ReloadRefusedError, reloadConfig, type ReloadReport } from './placement/reload-config.ts';
import { PrincipalCache } from './principals/principal-cache.ts';
import { type Credentials, Principals } from './principals/principals.ts';
import { openSecretBox } from './principals/secret-key.ts';
import { type AdminListener, startAdminListener } from './admin/listener.ts';
import type { AdminStorage } from './admin/define.ts';
import { AdminTokens } from './admin/tokens.ts';
import { TALUS_VERSION } from './version.ts';
import { AccessLog } from './metrics/access-log.ts';
import { AuditLog, refusedRequestEntry } from './audit/audit-log.ts';
import { requestObserver } from './metrics/observer.ts';
import { merge as mergeMetrics, render as renderMetricsText } from './metrics/registry.ts';
import { SHARED_GAUGES, createServerMetrics } from './metrics/server-metrics.ts';
import { openReplication } from './replication/cli.ts';
import { LISTING_RENDERER_URL } from './s3/list-render.ts';
import type { MetadataReplicator } from './replication/replicator.ts';
import { SHUTDOWN_GRACE_MS } from './util/limits.ts';
import { jsonLogger, type Logger } from './util/logger.ts';

export interface TalusOptions {
  dataDir: string;
  port?: number;
  address?: string;
  domain?: string;
  region?: string;
  /** Root credentials; when absent, the stored ones are used or new ones generated on first start. */
  rootAccessKeyId?: string;
  rootSecretAccessKey?: string;
  logger?: Logger;
  /** Processes serving requests: 1 serves in this process; more fork workers (cluster.ts). */
  workers?: number;
  /** Backends and placements (`--config`); without it every bucket is stored in the data directory. */
  config?: TalusConfig;
  /** Where `config` was read from: ReloadConfig and SIGHUP read it again (src/placement/reload-config.ts). Absent: no reload. */
  configPath?: string;
  /** Default true: repair, scan and re-place in the background (tests that drive healing themselves turn it off). */
  healInBackground?: boolean;
  /** When the background healing's first scan begins after the start (default one minute; tests shorten it). */
  healFirstScanDelayMs?: number;
  /**
   * Accept the metadata database as it is although it does not match the
   * blobs (missing, empty, of another store, older): blobs it does not know
   * are moved to DATA_DIR/lost+found instead of deleted (`--adopt-metadata`).
   */
  adoptMetadata?: boolean;
  /**
   * The admin listener (`--console-address`): the JSON admin API
   * (src/admin/). Absent: none. `optional` makes a taken port a warning
   * instead of a start-up failure (the CLI's default port).
   */
  admin?: { port: number; address: string; optional?: boolean };
  /**
   * `GET /metrics` on the admin listener: a bearer token Prometheus sends
   * (TALUS_METRICS_TOKEN), or public (--metrics-public). Neither: closed.
   */
  metrics?: { token?: string | undefined; public?: boolean | undefined };
  /** `--access-log FILE` (`-`: stdout): one JSON line per S3 request. */
  accessLog?: string | undefined;
  /** The lifecycle worker's day length and scan interval; absent: from TALUS_LIFECYCLE_DAY_SECONDS / TALUS_LIFECYCLE_INTERVAL_SECONDS. */
  lifecycle?: LifecycleSettings;
  /**
   * `--meta postgres://…`: the metadata lives in PostgreSQL, shared with other
   * nodes (docs/SCALE-OUT.md). Every placement must then be on shared
   * backends; DATA_DIR keeps only this node's lock, ballast and secret key.
   */
  metaUrl?: string;
}

export type { Credentials } from './principals/principals.ts';

export interface RunningTalus {
  url: string;
  port: number;
  credentials: Credentials;
  /**
   * Where the root credentials came from: generated at this start (the only
   * time the CLI prints the secret), the options (TALUS_ROOT_USER /
   * TALUS_ROOT_PASSWORD), or stored by an earlier start.
   */
  credentialsSource: 'generated' | 'given' | 'stored';
  /** The admin listener's URL, when one serves. */
  adminUrl: string | undefined;
  /** This process's engine; with workers, the one that purges (workers have their own). */
  engine: Engine;
  /** Applies buckets' lifecycle rules; runs in this process only (the primary with workers). */
  lifecycle: LifecycleWorker;
  /** The backends, placed blob store and healer when placements are configured. */
  placement: OpenPlacement | undefined;
  /** Metadata replication to the backends, when `[replication]` is configured. */
  replication: MetadataReplicator | undefined;
  /** The HTTP server when requests are served in this process; undefined with workers. */
  server: Server | undefined;
  workers: number;
  /**
   * Settles if the server can no longer serve and will not recover by
   * itself: with workers, when they keep failing to start. Never settles
   * otherwise. The caller should close() and exit non-zero.
   */
  failed: Promise<Error>;
  /** Stops accepting, lets in-flight requests finish (bounded), then closes the stores. */
  close(): Promise<void>;
  /**
   * Reads talus.toml (`configPath`) again and applies what changed, or
   * changes nothing and rejects saying why (SIGHUP, the admin API's
   * ReloadConfig). Undefined without `configPath` and placements.
   */
  reloadConfig: (() => Promise<ReloadReport>) | undefined;
}

export async function startTalus(options: TalusOptions): Promise<RunningTalus> {
  const dataDir = resolve(options.dataDir);
  const logger = options.logger ?? jsonLogger();
  await mkdir(dataDir, { recursive: true });
  // The lock first (it needs no space): a second server must not touch the owner's ballast.
  const lock = await lockDataDirectory(dataDir);
  // Then, before anything that writes: on a full disk it releases its ballast, so the rest of start-up has room.
  const reserve = await DiskReserve.open(dataDir, logger).catch(async (error: unknown) => {
    await lock.release();
    throw error;
  });
  if (options.metaUrl !== undefined) return startSharedNode(options, options.metaUrl, dataDir, logger, lock, reserve);
  const adopt = options.adoptMetadata === true;
  try {
    // Before opening: SQLite would create a missing database, empty.
    await checkBeforeOpen(dataDir, adopt);
  } catch (error) {
    await reserve.stop();
    await lock.release();
    throw error;
  }
  // With --workers the workers write too: their cached latest versions are checked against SQLite's data_version.
  // With workers, bucket changes made in this process (the admin API) must reach their caches: set once they exist.
  const bucketsChanged: { notify: () => void | Promise<void> } = { notify: () => undefined };
  const meta = new SqliteMetadataStore(join(dataDir, 'meta.db'), {
    onBucketsChanged: () => bucketsChanged.notify(),
    soleWriter: (options.workers ?? 1) === 1,
    // Workers list on their own threads; the primary of --workers serves no listings.
    listingThreads: (options.workers ?? 1) === 1 ? LISTING_THREADS_DEFAULT : 0,
    onListingThreadError: (error) => logger.error('listing thread failed', { error: String(error) }),
    listingRendererUrl: LISTING_RENDERER_URL,
    onUnusable: (reason) => logger.error('the metadata store refuses writes; this server reports unready until restarted', { reason }),
  });
  // One checkpointer per data directory, in the process that owns it (the primary with workers).
  const checkpointer = new WalCheckpointer(join(dataDir, 'meta.db'), (error) => logger.error('WAL checkpointer failed', { error: String(error) }));
  try {
    // Before anything writes or reclaims: the database and the blobs must belong together.
    const reclaim = await settleIdentity(dataDir, meta, adopt, logger);
    const running = await startOnLockedDirectory(options, dataDir, logger, meta, lock, reclaim, reserve, bucketsChanged);
    const close = running.close;
    let closing: Promise<void> | undefined;
    // After the stores: the last connection to close checkpoints and removes the WAL.
    return { ...running, close: () => (closing ??= close().finally(async () => {
      await reserve.stop();
      await checkpointer.stop();
    })) };
  } catch (error) {
    await reserve.stop();
    await checkpointer.stop();
    await meta.close();
    await lock.release();
    throw error;
  }
}

/**
 * A node of a scale-out installation: metadata in PostgreSQL, bytes on
 * shared backends. There is no local database to match with local blobs
 * (no identity check); the local blob store must hold nothing, so every
 * blob the local reclaim finds is debris. Fails closed, before opening the
 * database, on a configuration that would put blobs in DATA_DIR.
 */
async function startSharedNode(options: TalusOptions, metaUrl: string, dataDir: string, logger: Logger, lock: DataDirectoryLock, reserve: DiskReserve): Promise<RunningTalus> {
  let meta: MetadataStore | undefined;
  try {
    // On demand: the PostgreSQL client is for --meta nodes only.
    const { checkSharedPlacement, openSharedMetadata, SHARED_ORPHAN_AGE_MS } = await import('./meta/postgres/shared-node.ts');
    checkSharedPlacement(options.config ?? EMPTY_CONFIG, options.workers ?? 1);
    meta = await openSharedMetadata(metaUrl);
    // No --workers on a shared node (refused above): no other process's bucket cache to tell.
    const running = await startOnLockedDirectory({ ...options, sharedBackendsOrphanAgeMs: SHARED_ORPHAN_AGE_MS }, dataDir, logger, meta, lock, 'delete', reserve, { notify: () => undefined });
    const close = running.close;
    let closing: Promise<void> | undefined;
    return { ...running, close: () => (closing ??= close().finally(() => reserve.stop())) };
  } catch (error) {
    await reserve.stop();
    await meta?.close();
    await lock.release();
    throw error;
  }
}

async function startOnLockedDirectory(
  options: TalusOptions & { sharedBackendsOrphanAgeMs?: number },
  dataDir: string,
  logger: Logger,
  meta: MetadataStore,
  lock: DataDirectoryLock,
  reclaim: ReclaimMode,
  reserve: DiskReserve,
  bucketsChanged: { notify: () => void | Promise<void> },
): Promise<RunningTalus> {
  // Under the lock, before any writer: every partial blob is an upload a dead process never finished.
  // Settings first: a malformed one fails start-up before anything runs.
  const schedule = lifecycleSchedule(options.lifecycle ?? lifecycleSettingsFromEnv(process.env));
  const partialBlobs = await removeAllPartialBlobs(join(dataDir, 'blobs'));
  if (partialBlobs > 0) logger.info('removed partial blobs of stopped processes', { count: partialBlobs });
  const local = await FsBlobStore.open(join(dataDir, 'blobs'));
  const workers = options.workers ?? 1;
  // Fails closed on a missing or wrong secret key; seals plain-text secrets of older data directories.
  // Before the run-time placements: S3 backends' secrets are sealed in them.
  const secretBox = await openSecretBox(dataDir, meta);
  // Backends and placements added through the admin API join talus.toml's; buckets' placements chosen there win over its [buckets].
  // Kept in the data directory, or, for nodes sharing a store, in its settings (src/placement/runtime-document.ts).
  const runtimeStore: RuntimeDocumentStore = meta instanceof SqliteMetadataStore ? new FileRuntimeDocuments(dataDir, secretBox) : await SettingsRuntimeDocuments.open(meta, secretBox, dataDir, logger);
  const keptAtStart = await runtimeStore.read();
  const config = withRuntimeChanges(options.config ?? EMPTY_CONFIG, keptAtStart.document, runtimeStore.sources);
  const placed = config.placements.length > 0 || config.defaultPlacement !== EMPTY_CONFIG.defaultPlacement;
  if (!placed) {
    // Fail closed: objects placed on backends cannot be served without the configuration that names them.
    const [stranded] = await meta.listPlacedBlobs('', 1);
    if (stranded !== undefined) {
      const backends = decodeLocation(stranded.location).backends.join(', ');
      throw new ConfigError(`${dataDir} holds objects placed on backends (${backends}): start with the --config that declares them`);
    }
  }
  const placement = placed ? await openPlacement(config, local, meta, logger) : undefined;
  const runtime = placement === undefined ? undefined : new RuntimeChanges({ store: runtimeStore, base: options.config ?? EMPTY_CONFIG, placement, applied: keptAtStart, logger });
  // Nodes sharing a store: one that fell behind the others' placement changes stops adding data (runtime-sync.ts).
  const space = runtime === undefined || !runtimeStore.shared ? reserve : {
    refusal: () => runtime.staleRefusal() ?? reserve.refusal(),
    noteError: (error: unknown) => reserve.noteError(error),
  };
  const blobs: BlobStore = placement?.store ?? local;
  const host = options.address === undefined || options.address === '0.0.0.0' ? '127.0.0.1' : options.address;
  const urlOf = (port: number): string => `http://${host.includes(':') ? `[${host}]` : host}:${port}`;
  // Seals the console's calls with its browser's address (http/console-source.ts): this run's processes only.
  const consoleSourceKey = newConsoleSourceKey();
  let reportFailure: (error: Error) => void = () => undefined;
  const failed = new Promise<Error>((resolveFailed) => (reportFailure = resolveFailed));
  const pool = workers > 1
    ? new WorkerPool(
        {
          dataDir,
          port: options.port ?? 9000,
          address: options.address ?? '127.0.0.1',
          domain: options.domain,
          region: options.region ?? 'us-east-1',
          // Workers open the same backends; only the primary heals and purges. They add the data directory's run-time changes to talus.toml's themselves, at start and when told.
          ...(placed ? { config: { ...(options.config ?? EMPTY_CONFIG), buckets: [...(options.config ?? EMPTY_CONFIG).buckets] } } : {}),
          ...(options.accessLog === undefined ? {} : { accessLog: options.accessLog }),
          consoleSourceKey: consoleSourceKey.toString('base64'),
        },
        workers,
        logger,
        (error) => reportFailure(error),
      )
    : undefined;
  const engine = new Engine(meta, blobs, {
    onBackgroundError: (error) => logger.error('background task failed', { error: String(error) }),
    otherLeases: pool?.leasedByWorkers,
    space,
    ...(placement === undefined ? {} : { unreadyReason: () => runtime?.staleReason() ?? missingWriteQuorum(placement.placements(), placement.backendStatus()) }),
  });
  const credentialsSource: RunningTalus['credentialsSource'] =
    options.rootAccessKeyId !== undefined && options.rootSecretAccessKey !== undefined
      ? 'given'
      : (await meta.listAccessKeys()).some((key) => key.userId === null) ? 'stored' : 'generated';
  const principals = new Principals(meta, secretBox);
  const credentials = await principals.ensureRootCredentials({ accessKeyId: options.rootAccessKeyId, secretAccessKey: options.rootSecretAccessKey });
  // Before any worker serves: then every unknown blob is debris of a crash.
  const lostAndFound = join(dataDir, LOST_AND_FOUND);
  const setAside = async (blobId: string): Promise<void> => {
    await mkdir(lostAndFound, { recursive: true });
    await rename(local.path(blobId), join(lostAndFound, blobId));
  };
  const { reclaimedBlobs } = await engine.start(reclaim === 'set-aside' ? { setAside } : {});
  if (reclaimedBlobs > 0 && reclaim === 'set-aside') logger.warn('moved blobs the adopted database does not know', { count: reclaimedBlobs, to: lostAndFound });
  else if (reclaimedBlobs > 0) logger.info('reclaimed uncommitted blobs', { count: reclaimedBlobs });
  placement?.startBackground({
    heal: options.healInBackground ?? true,
    // Other nodes write to shared backends: a young unknown shard may be their upload in flight.
    ...(options.sharedBackendsOrphanAgeMs === undefined ? {} : { orphansOlderThanMs: options.sharedBackendsOrphanAgeMs }),
    ...(options.healFirstScanDelayMs === undefined ? {} : { firstScanDelayMs: options.healFirstScanDelayMs }),
  });
  // The keys the auth path checks: the S3 listener's (without workers) and the admin listener's.
  const secrets = await PrincipalCache.load(meta, secretBox, { onProblem: (message) => logger.warn(message) });
  // Admin calls and refused requests, always; written here only (workers send theirs).
  const audit = await AuditLog.open(dataDir);
  if (pool !== undefined) pool.onAuditEntry = (entry) => audit.record(entry);
  // This process's metrics, with the data directory's gauges (it owns it); with workers, theirs are merged in at each scrape.
  const backendStatus = placement === undefined ? undefined : () => placement.backendStatus();
  const serverMetrics = createServerMetrics(TALUS_VERSION, { dataDir, meta, backends: backendStatus }, { backends: backendStatus });
  const renderMetrics = async (): Promise<string> => {
    // Alone: the live values straight to text; with workers, every process's snapshot, merged.
    if (pool === undefined) return serverMetrics.registry.render();
    const own = await serverMetrics.registry.snapshot();
    return renderMetricsText(mergeMetrics([own, ...(await pool.collectMetrics())], SHARED_GAUGES));
  };
  // Only the embedded store is this node's alone; another (PostgreSQL) may be shared with other nodes.
  const storage: AdminStorage = {
    dataDir, meta, config, placement, sharedMetadata: !(meta instanceof SqliteMetadataStore), runtime,
    ...(pool === undefined ? {} : { placementsChanged: () => pool.placementsChanged() }),
  };
  const configPath = options.configPath;
  const checkSharedPlacement = storage.sharedMetadata ? (await import('./meta/postgres/shared-node.ts')).checkSharedPlacement : undefined;
  const reload = configPath === undefined ? undefined : async (): Promise<ReloadReport> => {
    try {
      // Placements are opened at a start only: a server that started with none gets them by a restart.
      if (runtime === undefined || placement === undefined) throw new ReloadRefusedError(`${configPath} declared no placements when the server started: restart it to use placements`);
      const report = await reloadConfig({
        path: configPath, runtime, placement, meta,
        ...(checkSharedPlacement === undefined ? {} : { check: (file: TalusConfig) => checkSharedPlacement(file, workers) }),
        ...(pool === undefined ? {} : { tellWorkers: (base: TalusConfig) => pool.placementsChanged(undefined, base) }),
        onApplied: (served) => (storage.config = served),
      });
      logger.info('talus.toml reloaded', { ...report });
      return report;
    } catch (error) {
      logger.warn('talus.toml not reloaded: nothing changed', { path: configPath, error: error instanceof Error ? error.message : String(error) });
      throw error;
    }
  };
  if (reload !== undefined) storage.reloadConfig = reload;
  const startAdmin = async (s3Url: string): Promise<AdminListener | undefined> => {
    if (options.admin === undefined) return undefined;
    return startAdminListener({
      ...options.admin,
      console: { s3Url, s3OnEveryAddress: options.address === '0.0.0.0' || options.address === '::', sourceKey: consoleSourceKey },
      metrics: { render: renderMetrics, token: options.metrics?.token, public: options.metrics?.public },
      audit,
      principals,
      keys: secrets,
      engine,
      server: { version: TALUS_VERSION, startedMs: Date.now(), region: options.region ?? 'us-east-1', workers },
      logger,
      storage,
      tokens: await AdminTokens.open(meta, dataDir),
      // With workers, a change to users, keys or policies is answered once every worker reloaded them.
      ...(pool === undefined ? {} : { credentialsChanged: () => pool.reloadPrincipals() }),
    });
  };
  // One lifecycle worker per data directory, in the process that purges (never in --workers' workers).
  const lifecycle = new LifecycleWorker(engine, {
    scale: schedule.scale,
    intervalMs: schedule.scanIntervalMs,
    onError: (error) => logger.error('lifecycle worker failed', { error: String(error) }),
  });
  lifecycle.start();
  // Its first round snapshots the database as start-up left it; the triggers capture every write after.
  // SQLite only: a --meta node's metadata is PostgreSQL's to replicate (the configuration refuses [replication] there).
  const replication = meta instanceof SqliteMetadataStore
    ? await openReplication({ config, dataDir, meta, placedBackends: placement?.store.backends() ?? [], workers, logger })
    : undefined;
  replication?.start();
  if (pool !== undefined) {
    bucketsChanged.notify = () => pool.forgetBuckets();
    // Workers run on SQLite only (a --meta node refuses them); this process's records must follow their changes too.
    if (meta instanceof SqliteMetadataStore) pool.onWorkerChangedBuckets = () => meta.forgetBuckets();
    let admin: AdminListener | undefined;
    const stopServing = async (graceMs: number): Promise<void> => {
      secrets.stop();
      await runtime?.stop();
      // Before the admin listener drains its calls: one waiting for a starting worker settles at once.
      pool.beginStop();
      await admin?.close();
      await pool.stop(graceMs);
      await lifecycle.stop();
      await placement?.stopBackground();
      await engine.stop();
      await replication?.stop(graceMs === 0 ? 0 : undefined);
      await blobs.close();
    };
    const stopAll = async (graceMs: number): Promise<void> => {
      await stopServing(graceMs);
      await audit.close();
      await meta.close();
    };
    try {
      await pool.start();
      admin = await startAdmin(urlOf(pool.port));
    } catch (error) {
      // startTalus closes the metadata store (closing it twice fails with EBADF and hides this error).
      await stopServing(0);
      throw error;
    }
    runtime?.start();
    let closing: Promise<void> | undefined;
    return {
      url: urlOf(pool.port),
      port: pool.port,
      credentials,
      credentialsSource,
      adminUrl: admin?.url,
      engine,
      lifecycle,
      placement,
      replication,
      server: undefined,
      workers,
      failed,
      reloadConfig: reload,
      // Workers drain within SHUTDOWN_GRACE_MS; a little more before they are killed.
      close: () => (closing ??= stopAll(SHUTDOWN_GRACE_MS + 5_000).finally(() => lock.release())),
    };
  }
  const { createS3Server } = await import('./http/server.ts');
  const accessLog = options.accessLog === undefined ? undefined : new AccessLog(options.accessLog);
  const server = createS3Server({
    engine,
    principals: secrets,
    region: options.region ?? 'us-east-1',
    domain: options.domain,
    logger,
    consoleSourceKey,
    observer: requestObserver(serverMetrics.requests, accessLog, (request) => audit.record(refusedRequestEntry(request))),
  });
  try {
    await new Promise<void>((resolveListen, reject) => {
      server.once('error', reject);
      server.listen(options.port ?? 9000, options.address ?? '127.0.0.1', () => resolveListen());
    });
  } catch (error) {
    secrets.stop();
    await lifecycle.stop();
    await replication?.stop(0);
    await placement?.stopBackground();
    await engine.stop();
    await Promise.all([accessLog?.close(), audit.close()]);
    throw error;
  }
  let admin: AdminListener | undefined;
  try {
    admin = await startAdmin(urlOf((server.address() as AddressInfo).port));
  } catch (error) {
    await closeGracefully(server, 0);
    secrets.stop();
    await lifecycle.stop();
    await replication?.stop(0);
    await placement?.stopBackground();
    await engine.stop();
    await Promise.all([accessLog?.close(), audit.close()]);
    throw error;
  }
  const port = (server.address() as AddressInfo).port;
  runtime?.start();
  let closing: Promise<void> | undefined;
  return {
    url: urlOf(port),
    port,
    credentials,
    credentialsSource,
    adminUrl: admin?.url,
    engine,
    lifecycle,
    placement,
    replication,
    server,
    workers: 1,
    failed,
    reloadConfig: reload,
    // The admin listener first (its requests use the stores), then the S3 front and the stores, then the logs.
    close: () => (closing ??= (secrets.stop(), (admin?.close() ?? Promise.resolve())
      .then(() => runtime?.stop())
      .then(() => shutdown(server, lifecycle, engine, meta, blobs, placement, replication))
      .then(() => Promise.all([accessLog?.close(), audit.close()]))
      .then(() => undefined)
      .finally(() => lock.release()))),
  };
}

async function shutdown(
  server: Server,
  lifecycle: LifecycleWorker,
  engine: Engine,
  meta: MetadataStore,
  blobs: BlobStore,
  placement: OpenPlacement | undefined,
  replication: MetadataReplicator | undefined,
): Promise<void> {
  await closeGracefully(server, SHUTDOWN_GRACE_MS);
  await lifecycle.stop();
  await placement?.stopBackground();
  await engine.stop();
  // After the last request, before the backends close: ships what the last requests changed.
  await replication?.stop();
  await blobs.close();
  await meta.close();
}

/** Adds one of root's access keys to a data directory (the server may be running). */
export function addAccessKey(dataDir: string): Promise<Credentials> {
  return Principals.withDataDir(dataDir, (principals) => principals.addKey(), { create: true });
}

/** The access key IDs of a data directory (root's and users'), oldest first. */
export function listAccessKeyIds(dataDir: string): Promise<string[]> {
  return Principals.withDataDir(dataDir, async (principals) => (await principals.listKeys()).map((key) => key.accessKeyId));
}
