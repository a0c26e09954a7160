import type { Backend } from '../backend/backend.ts';
import { DirectoryBackend } from '../backend/directory-backend.ts';
import { S3Backend } from '../backend/s3-backend.ts';
import type { BlobStore } from '../blob/blob-store.ts';
import { HEALTH_DEFAULT, type BackendConfig, type TalusConfig } from '../config/config.ts';
import type { MetadataStore } from '../meta/metadata-store.ts';
import type { Logger } from '../util/logger.ts';
import { BackendHealth, type BackendStatus } from './backend-health.ts';
import { Healer } from './healer.ts';
import { PlacedBlobStore } from './placed-blob-store.ts';

const REPAIR_INTERVAL_MS = 5_000;
const SCAN_INTERVAL_MS = 6 * 3_600_000;
const FIRST_SCAN_DELAY_MS = 60_000;

export interface OpenPlacement {
  readonly store: PlacedBlobStore;
  readonly healer: Healer;
  /** Each backend's state and latency (metrics, the admin API). */
  backendStatus(): BackendStatus[];
  /** Starts probing backends (nothing waits for the first probes) and, unless `heal` is false (worker processes), healing in the background. */
  /**
   * orphansOlderThanMs: reclaim only unknown shards at least this old (with
   * several nodes on shared backends a younger one may be another node's
   * upload in flight); default 0, every shard begun before this start.
   */
  startBackground(options?: { heal?: boolean; orphansOlderThanMs?: number }): void;
  /** Stops the background work (waits for a pass in progress); the store closes with close(). */
  stopBackground(): Promise<void>;
}

export async function openBackend(config: BackendConfig): Promise<Backend> {
  if (config.type === 'directory') return DirectoryBackend.open(config.name, config.path);
  return new S3Backend({
    name: config.name,
    endpoint: config.endpoint,
    region: config.region,
    accessKeyId: config.accessKeyId,
    secretAccessKey: config.secretAccessKey,
    bucket: config.bucket,
    prefix: config.prefix,
    ...(config.multipartThresholdBytes === undefined ? {} : { multipartThresholdBytes: config.multipartThresholdBytes }),
    ...(config.partBytes === undefined ? {} : { partBytes: config.partBytes }),
  });
}

/**
 * Opens every configured backend and the placed blob store over them,
 * without waiting on any of them: every backend starts out unknown, and the
 * background probes (startBackground) find which are up — a remote backend
 * first gets its bucket created, inside its probe's deadline. A remote that
 * cannot be reached, or hangs, does not stop or slow the start: it is marked
 * down once its probe fails or times out, and writes skip it while their
 * quorum allows.
 */
export async function openPlacement(config: TalusConfig, local: BlobStore, meta: MetadataStore, logger: Logger): Promise<OpenPlacement> {
  const backends = new Map<string, Backend>();
  for (const backendConfig of config.backends) backends.set(backendConfig.name, await openBackend(backendConfig));
  const warned = new Set<string>(); // once per backend, not at every probe
  const health = new BackendHealth(backends, {
    ...(config.health ?? HEALTH_DEFAULT),
    prepare: async (backend, signal) => {
      if (!(backend instanceof S3Backend)) return;
      try {
        await backend.ensureBucket({ signal });
        warned.delete(backend.name);
      } catch (error) {
        if (!warned.has(backend.name)) logger.warn('backend bucket could not be checked; the backend is down until it can be', { backend: backend.name, error: String(error) });
        warned.add(backend.name);
        throw error;
      }
    },
  });
  const onError = (message: string, error: unknown): void => logger.warn(message, { error: String(error) });
  const store = new PlacedBlobStore({ local, backends, config, health, repairs: meta, onError });
  const healer = new Healer(meta, store, onError);
  const background = new HealLoop(healer, logger);
  return {
    store,
    healer,
    backendStatus: () => health.snapshot(),
    startBackground: (options = {}) => {
      health.start();
      if (options.heal !== false) background.start(options.orphansOlderThanMs ?? 0);
    },
    stopBackground: () => background.stop(),
  };
}

/** Repairs every few seconds, a full scan every few hours; never overlapping, never busy. */
class HealLoop {
  readonly #healer: Healer;
  readonly #logger: Logger;
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<void> | undefined;
  #nextScanMs = 0;
  readonly #stopping = new AbortController();
  /** Shards of blobs begun before this start and never committed are crash debris. */
  #reclaimBeforeMs: number | undefined = Date.now();

  constructor(healer: Healer, logger: Logger) {
    this.#healer = healer;
    this.#logger = logger;
  }

  start(orphansOlderThanMs = 0): void {
    if (orphansOlderThanMs > 0) this.#reclaimBeforeMs = Date.now() - orphansOlderThanMs;
    this.#nextScanMs = Date.now() + FIRST_SCAN_DELAY_MS;
    this.#timer = setInterval(() => this.#tick(), REPAIR_INTERVAL_MS);
    this.#timer.unref();
  }

  /** Ends a pass in progress at the next blob (a scan of a large store can take long), then waits for it. */
  async stop(): Promise<void> {
    clearInterval(this.#timer);
    this.#stopping.abort();
    await this.#running;
  }

  #tick(): void {
    if (this.#running !== undefined) return;
    this.#running = this.#pass()
      .catch((error: unknown) => this.#logger.error('healing pass failed', { error: String(error) }))
      .finally(() => {
        this.#running = undefined;
      });
  }

  async #pass(): Promise<void> {
    if (this.#reclaimBeforeMs !== undefined) {
      const removed = await this.#healer.reclaimOrphans(this.#reclaimBeforeMs, this.#stopping.signal);
      this.#reclaimBeforeMs = undefined;
      if (removed > 0) this.#logger.info('reclaimed orphan shards', { count: removed });
    }
    const signal = this.#stopping.signal;
    const repaired = await this.#healer.repairDue({ signal });
    if (repaired.shardsRebuilt > 0) this.#logger.info('shards repaired', { ...repaired });
    if (Date.now() < this.#nextScanMs) return;
    this.#nextScanMs = Date.now() + SCAN_INTERVAL_MS;
    if (signal.aborted) return;
    const scanned = await this.#healer.scan({ signal });
    this.#logger.info('healing scan done', { ...scanned });
    if (signal.aborted) return;
    const replaced = await this.#healer.replaceAll({ signal });
    if (replaced.blobsMoved > 0 || replaced.failures > 0) this.#logger.info('objects re-placed', { ...replaced });
  }
}
