/**
 * A worker process of a multi-process Talus (see cluster.ts): serves S3 on
 * the shared port with its own connection to the data directory's stores.
 * It holds no lock and runs no background maintenance; the primary does.
 */
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import type { BlobStore } from './blob/blob-store.ts';
import { FsBlobStore } from './blob/fs/fs-blob-store.ts';
import { missingWriteQuorum } from './placement/backend-health.ts';
import { openPlacement } from './placement/open-placement.ts';
import { FileRuntimeDocuments } from './placement/runtime-document.ts';
import { withRuntimeChanges } from './placement/runtime-placements.ts';
import { SYNC_TIMEOUT_MS, WORKER_SETTINGS_ENV, type ToChangingWorker, type ToPrimary, type ToWorker, type WorkerSettings } from './cluster.ts';
import { DiskReserve } from './disk-reserve.ts';
import { Engine } from './engine/engine.ts';
import { closeGracefully, createS3Server } from './http/server.ts';
import { LISTING_THREADS_DEFAULT } from './meta/sqlite/listing-threads.ts';
import { SqliteMetadataStore } from './meta/sqlite/sqlite-metadata-store.ts';
import { PrincipalCache } from './principals/principal-cache.ts';
import { openSecretBox } from './principals/secret-key.ts';
import { assert } from './util/assert.ts';
import { SHUTDOWN_GRACE_MS } from './util/limits.ts';
import { jsonLogger } from './util/logger.ts';
import { AccessLog } from './metrics/access-log.ts';
import { refusedRequestEntry } from './audit/audit-log.ts';
import { requestObserver } from './metrics/observer.ts';
import { createServerMetrics } from './metrics/server-metrics.ts';
import { LISTING_RENDERER_URL } from './s3/list-render.ts';
import { TALUS_VERSION } from './version.ts';
import { startFreedMemoryRelease } from './util/freed-memory.ts';

/**
 * A bucket change this worker made waits this long for the primary to
 * confirm every other process dropped its cached records: the primary
 * itself waits up to SYNC_TIMEOUT_MS for them, then kills the late.
 */
const BUCKET_CHANGE_WAIT_MS = 2 * SYNC_TIMEOUT_MS;

function tell(message: ToPrimary): void {
  if (process.connected) process.send?.(message);
}

async function runWorker(): Promise<void> {
  const raw = process.env[WORKER_SETTINGS_ENV];
  assert(raw !== undefined && process.send !== undefined, 'cluster-worker.ts runs only as a forked worker');
  const settings = JSON.parse(raw) as WorkerSettings;
  startFreedMemoryRelease();
  const logger = jsonLogger();
  // A bucket change this worker made is acknowledged once every other worker dropped its cached records (the primary answers).
  const bucketChanges = new Map<number, () => void>();
  let nextBucketChange = 1;
  const meta = new SqliteMetadataStore(join(settings.dataDir, 'meta.db'), {
    onBucketsChanged: () => !process.connected ? undefined : new Promise<void>((resolve) => {
      const id = nextBucketChange++;
      // Resolving without the primary's word is safe enough: the change is
      // committed in SQLite already (nothing is lost), and the notice waits on
      // the primary's channel, so once the primary runs again it still has
      // every other process drop its records (or kills it). Only in between
      // may another process serve the bucket's previous settings; a stalled
      // (or stopped) primary must not hang the request, and its entry, forever.
      const timer = setTimeout(() => {
        bucketChanges.delete(id);
        logger.error('the primary did not confirm a bucket change in time; answering it anyway', { timeoutMs: BUCKET_CHANGE_WAIT_MS });
        resolve();
      }, BUCKET_CHANGE_WAIT_MS);
      bucketChanges.set(id, () => {
        clearTimeout(timer);
        resolve();
      });
      tell({ kind: 'buckets-changed', id });
    }),
    listingThreads: LISTING_THREADS_DEFAULT,
    onListingThreadError: (error) => logger.error('listing thread failed', { error: String(error) }),
    listingRendererUrl: LISTING_RENDERER_URL,
  });
  const local = await FsBlobStore.open(join(settings.dataDir, 'blobs'));
  // talus.toml's configuration; a reload replaces it (placements-changed with a config).
  let base = settings.config === undefined ? undefined : { ...settings.config, buckets: new Map(settings.config.buckets) };
  // The primary found (or created) the key and sealed what needed it before forking; run-time S3 backends' secrets are sealed under it.
  const secretBox = await openSecretBox(settings.dataDir, meta, { create: false });
  // talus.toml's with the admin API's run-time changes, read afresh: a worker started after a change serves it.
  const runtimeFiles = new FileRuntimeDocuments(settings.dataDir, secretBox);
  const withKept = async (config: NonNullable<typeof base>) => withRuntimeChanges(config, (await runtimeFiles.read()).document, runtimeFiles.sources);
  const placement = base === undefined ? undefined : await openPlacement(await withKept(base), local, meta, logger);
  /** Changes applied one after another, in the order the primary made them. */
  let applying: Promise<void> = Promise.resolve();
  const applyPlacements = (id: number, reloaded: WorkerSettings['config']): void => {
    applying = applying.then(async () => {
      let error: string | undefined;
      try {
        if (reloaded !== undefined) base = { ...reloaded, buckets: new Map(reloaded.buckets) };
        assert(placement !== undefined && base !== undefined, 'run-time changes need placements');
        await placement.applyConfig(await withKept(base));
      } catch (failure) {
        error = failure instanceof Error ? failure.message : String(failure);
        logger.error('applying run-time placement changes failed', { error });
      }
      tell({ kind: 'placements-applied', id, error });
    });
  };
  // Probes only: healing, reclaim and purges are the primary's.
  placement?.startBackground({ heal: false });
  const blobs: BlobStore = placement?.store ?? local;
  // The owner's ballast: a worker that meets a full disk releases it too and refuses writes that add data (disk-reserve.ts).
  const reserve = await DiskReserve.open(settings.dataDir, logger, { fill: false });
  const engine = new Engine(meta, blobs, {
    onBackgroundError: (error) => logger.error('background task failed', { error: String(error) }),
    space: reserve,
    ...(placement === undefined ? {} : { unreadyReason: () => missingWriteQuorum(placement.placements(), placement.backendStatus()) }),
  });
  const secrets = await PrincipalCache.load(meta, secretBox, { onProblem: (message) => logger.warn(message) });
  const metrics = createServerMetrics(TALUS_VERSION, undefined, { backends: placement === undefined ? undefined : () => placement.backendStatus() });
  const accessLog = settings.accessLog === undefined ? undefined : new AccessLog(settings.accessLog, { sharedFile: true });
  const server = createS3Server({
    engine,
    principals: secrets,
    region: settings.region,
    domain: settings.domain,
    logger,
    consoleSourceKey: Buffer.from(settings.consoleSourceKey, 'base64'),
    // Refused requests go to the primary's audit log (one writer rotates it).
    observer: requestObserver(metrics.requests, accessLog, (request) => tell({ kind: 'audit', entry: refusedRequestEntry(request) })),
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(settings.port, settings.address, () => resolve());
  });

  let stopping: Promise<void> | undefined;
  /** Set as shutdown closes the store: a reload can no longer read it, and need not (this worker serves nothing more). */
  let storeClosed = false;
  const stop = (): Promise<void> =>
    (stopping ??= (async () => {
      secrets.stop();
      await closeGracefully(server, SHUTDOWN_GRACE_MS);
      await accessLog?.close();
      await reserve.stop();
      await blobs.close();
      storeClosed = true;
      await meta.close();
      process.exit(0);
    })());

  process.on('message', (message: ToWorker | ToChangingWorker) => {
    switch (message.kind) {
      case 'buckets-forgotten':
        bucketChanges.get(message.id)?.();
        bucketChanges.delete(message.id);
        break;
      case 'reload-principals':
        // Shutting down with the store closed: nothing is served any more, and
        // this worker's exit answers the primary's sync for it (cluster.ts #onExit).
        if (storeClosed) break;
        // Fail closed: a worker that cannot read the store's keys must not keep serving the old ones.
        void secrets.reload().then(
          () => tell({ kind: 'synced', id: message.id }),
          (error: unknown) => {
            if (storeClosed) return; // closed while it read: as above

            logger.error('reloading access keys failed; exiting', { error: String(error) });
            process.exit(1);
          },
        );
        break;
      case 'lease-query':
        tell({ kind: 'lease-answer', id: message.id, leased: engine.leasedAmong(message.blobIds) });
        break;
      case 'forget-buckets':
        meta.forgetBuckets();
        tell({ kind: 'synced', id: message.id });
        break;
      case 'metrics-query':
        void metrics.registry.snapshot().then((snapshot) => tell({ kind: 'metrics-answer', id: message.id, metrics: snapshot }));
        break;
      case 'placements-changed':
        applyPlacements(message.id, message.config);
        break;
      case 'shutdown':
        void stop();
        break;
    }
  });
  // Orphaned by a primary that died, node:cluster exits this process at once
  // (its own 'disconnect' handler): requests in flight are cut, never
  // acknowledged, and their blobs are debris for the next start-up's reclaim.
  // Signals go to the whole process group; the primary decides when workers stop.
  process.on('SIGINT', () => undefined);
  process.on('SIGTERM', () => undefined);
  process.on('SIGHUP', () => undefined); // the primary reloads talus.toml and tells the workers
  tell({ kind: 'ready', port: (server.address() as AddressInfo).port });
}

runWorker().catch((error: unknown) => {
  process.stderr.write(`talus worker: ${error instanceof Error ? error.stack : String(error)}\n`);
  process.exit(1);
});
