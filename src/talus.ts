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
import { closeGracefully, createS3Server } from './http/server.ts';
import { WorkerPool } from './cluster.ts';
import type { MetadataStore } from './meta/metadata-store.ts';
import { SqliteMetadataStore } from './meta/sqlite/sqlite-metadata-store.ts';
import { checkSharedPlacement, openSharedMetadata, SHARED_ORPHAN_AGE_MS } from './meta/postgres/shared-node.ts';
import { WalCheckpointer } from './meta/sqlite/wal-checkpointer.ts';
import { decodeLocation } from './placement/blob-location.ts';
import { openPlacement, type OpenPlacement } from './placement/open-placement.ts';
import { PrincipalCache } from './principals/principal-cache.ts';
import { type Credentials, Principals } from './principals/principals.ts';
import { openSecretBox } from './principals/secret-key.ts';
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
  /** Default true: repair, scan and re-place in the background (tests that drive healing themselves turn it off). */
  healInBackground?: boolean;
  /**
   * Accept the metadata database as it is although it does not match the
   * blobs (missing, empty, of another store, older): blobs it does not know
   * are moved to DATA_DIR/lost+found instead of deleted (`--adopt-metadata`).
   */
  adoptMetadata?: boolean;
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
  /** This process's engine; with workers, the one that purges (workers have their own). */
  engine: Engine;
  /** The backends, placed blob store and healer when placements are configured. */
  placement: OpenPlacement | undefined;
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
  // With --workers the primary serves nothing and the workers write too: no cache of latest versions then.
  const meta = new SqliteMetadataStore(join(dataDir, 'meta.db'), {
    soleWriter: (options.workers ?? 1) === 1,
    onUnusable: (reason) => logger.error('the metadata store refuses writes; this server reports unready until restarted', { reason }),
  });
  // One checkpointer per data directory, in the process that owns it (the primary with workers).
  const checkpointer = new WalCheckpointer(join(dataDir, 'meta.db'), (error) => logger.error('WAL checkpointer failed', { error: String(error) }));
  try {
    // Before anything writes or reclaims: the database and the blobs must belong together.
    const reclaim = await settleIdentity(dataDir, meta, adopt, logger);
    const running = await startOnLockedDirectory(options, dataDir, logger, meta, lock, reclaim, reserve);
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
    checkSharedPlacement(options.config ?? EMPTY_CONFIG, options.workers ?? 1);
    meta = await openSharedMetadata(metaUrl);
    const running = await startOnLockedDirectory({ ...options, sharedBackendsOrphanAgeMs: SHARED_ORPHAN_AGE_MS }, dataDir, logger, meta, lock, 'delete', reserve);
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
): Promise<RunningTalus> {
  // Under the lock, before any writer: every partial blob is an upload a dead process never finished.
  const partialBlobs = await removeAllPartialBlobs(join(dataDir, 'blobs'));
  if (partialBlobs > 0) logger.info('removed partial blobs of stopped processes', { count: partialBlobs });
  const local = await FsBlobStore.open(join(dataDir, 'blobs'));
  const workers = options.workers ?? 1;
  const config = options.config ?? EMPTY_CONFIG;
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
  const blobs: BlobStore = placement?.store ?? local;
  const host = options.address === undefined || options.address === '0.0.0.0' ? '127.0.0.1' : options.address;
  const urlOf = (port: number): string => `http://${host.includes(':') ? `[${host}]` : host}:${port}`;
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
          // Workers open the same backends; only the primary heals and purges.
          ...(placed ? { config: { ...config, buckets: [...config.buckets] } } : {}),
        },
        workers,
        logger,
        (error) => reportFailure(error),
      )
    : undefined;
  const engine = new Engine(meta, blobs, {
    onBackgroundError: (error) => logger.error('background task failed', { error: String(error) }),
    otherLeases: pool?.leasedByWorkers,
    space: reserve,
  });
  // Fails closed on a missing or wrong secret key; seals plain-text secrets of older data directories.
  const secretBox = await openSecretBox(dataDir, meta);
  const credentials = await new Principals(meta, secretBox).ensureRootCredentials({ accessKeyId: options.rootAccessKeyId, secretAccessKey: options.rootSecretAccessKey });
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
  });
  if (pool !== undefined) {
    const stopServing = async (graceMs: number): Promise<void> => {
      await pool.stop(graceMs);
      await placement?.stopBackground();
      await engine.stop();
      await blobs.close();
    };
    const stopAll = async (graceMs: number): Promise<void> => {
      await stopServing(graceMs);
      await meta.close();
    };
    try {
      await pool.start();
    } catch (error) {
      // startTalus closes the metadata store (closing it twice fails with EBADF and hides this error).
      await stopServing(0);
      throw error;
    }
    let closing: Promise<void> | undefined;
    return {
      url: urlOf(pool.port),
      port: pool.port,
      credentials,
      engine,
      placement,
      server: undefined,
      workers,
      failed,
      // Workers drain within SHUTDOWN_GRACE_MS; a little more before they are killed.
      close: () => (closing ??= stopAll(SHUTDOWN_GRACE_MS + 5_000).finally(() => lock.release())),
    };
  }
  const secrets = await PrincipalCache.load(meta, secretBox, { onProblem: (message) => logger.warn(message) });
  const server = createS3Server({
    engine,
    principals: secrets,
    region: options.region ?? 'us-east-1',
    domain: options.domain,
    logger,
  });
  try {
    await new Promise<void>((resolveListen, reject) => {
      server.once('error', reject);
      server.listen(options.port ?? 9000, options.address ?? '127.0.0.1', () => resolveListen());
    });
  } catch (error) {
    secrets.stop();
    await placement?.stopBackground();
    await engine.stop();
    throw error;
  }
  const port = (server.address() as AddressInfo).port;
  let closing: Promise<void> | undefined;
  return {
    url: urlOf(port),
    port,
    credentials,
    engine,
    placement,
    server,
    workers: 1,
    failed,
    close: () => (closing ??= (secrets.stop(), shutdown(server, engine, meta, blobs, placement).finally(() => lock.release()))),
  };
}

async function shutdown(server: Server, engine: Engine, meta: MetadataStore, blobs: BlobStore, placement: OpenPlacement | undefined): Promise<void> {
  await closeGracefully(server, SHUTDOWN_GRACE_MS);
  await placement?.stopBackground();
  await engine.stop();
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
