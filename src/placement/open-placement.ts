import type { Backend } from '../backend/backend.ts';
import { DirectoryBackend } from '../backend/directory-backend.ts';
import { S3Backend } from '../backend/s3-backend.ts';
import type { BlobStore } from '../blob/blob-store.ts';
import { HEALTH_DEFAULT, type BackendConfig, type PlacementConfig, type TalusConfig } from '../config/config.ts';
import type { MetadataStore } from '../meta/metadata-store.ts';
import { SqliteMetadataStore } from '../meta/sqlite/sqlite-metadata-store.ts';
import { ObjectRecordWriter } from '../replication/record-writer.ts';
import { assert } from '../util/assert.ts';
import type { Logger } from '../util/logger.ts';
import { BackendHealth, type BackendStatus } from './backend-health.ts';
import { claimBackend } from './backend-identity.ts';
import { Healer, isShardKey, type HealProgress, type HealReport, type ReplaceReport } from './healer.ts';
import { PlacedBlobStore } from './placed-blob-store.ts';

const REPAIR_INTERVAL_MS = 5_000;
const SCAN_INTERVAL_MS = 6 * 3_600_000;
const FIRST_SCAN_DELAY_MS = 60_000;
/**
 * How long a backend replaced or removed at run time stays open for the
 * requests that began on it: a GET streams from the backend it started with
 * to its end (closing the pool would cut it). Long enough for any one
 * request at the slowest transfer rate the deadlines tolerate; at shutdown
 * it closes after the last request anyway.
 */
const RETIRED_BACKEND_CLOSE_DELAY_MS = 10 * 60_000;

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
  startBackground(options?: { heal?: boolean; orphansOlderThanMs?: number; firstScanDelayMs?: number }): void;
  /** Stops the background work (waits for a pass in progress); the store closes with close(). */
  stopBackground(): Promise<void>;
  /**
   * Starts a healing pass now (repairs, including those waiting out a
   * backoff; a scan, deep if asked; re-placement), after the background pass
   * in progress if any, never beside it. False when one asked for is still
   * running. Only where healing runs in the background (not in workers).
   */
  healNow(options: { deep: boolean }): boolean;
  /**
   * Stops, at its next blob (what was done stays done), the pass healNow
   * started and the background pass in progress (see HealLoop.cancel); false
   * when none was stopped.
   */
  cancelHeal(): boolean;
  /** The background healing of this process (undefined where it does not heal: workers, or not started). */
  backgroundHealStatus(): BackgroundHealStatus | undefined;
  /** The pass healNow started: running, or the last one's outcome. */
  healPassStatus(): HealPassStatus | undefined;
  /** Every placement, configured or added at run time. */
  placements(): PlacementConfig[];
  /** Opens a backend (validated and kept by the caller) and starts probing it; placements may name it from now on. */
  addBackend(config: BackendConfig): Promise<void>;
  /**
   * Opens `config` in place of the open backend of its name (another
   * endpoint or keys for the same data): new requests use the new one at
   * once; requests in flight finish on the old one, which closes
   * RETIRED_BACKEND_CLOSE_DELAY_MS later (or at stopBackground). Rejects,
   * changing nothing, when the new one cannot be opened.
   */
  replaceBackend(config: BackendConfig): Promise<void>;
  /** Drops a backend no placement names and no blob uses (checked by the caller); it closes as a replaced one does. */
  removeBackend(name: string): void;
  addPlacement(placement: PlacementConfig): void;
  /** A placement of the same name with other backends or geometry, or another threshold or parts (validated and kept by the caller). */
  replacePlacement(placement: PlacementConfig): void;
  /**
   * Makes the open backends, placements and buckets' placements those of
   * `target` (talus.toml's with the run-time changes another process of
   * this data directory made and kept): what is new is opened or added, what
   * changed is replaced, what is gone is dropped — a placement only while
   * unused, a backend only while no placement names it. How --workers'
   * workers follow the primary's admin API. Each item is applied on its
   * own: one that fails (a backend that cannot be opened here) is named in
   * the rejection, and the others are applied all the same.
   */
  applyConfig(target: TalusConfig): Promise<void>;
  /** Why the placement cannot be removed now, or undefined. */
  placementInUse(name: string): string | undefined;
  removePlacement(name: string): void;
}

export type BackgroundHealPhase = 'reclaim' | 'repairs' | 'scan' | 'replace';

/** The background healing, as GetHealStatus shows it. */
export interface BackgroundHealStatus {
  /** A pass runs now (repairs every few seconds; a scan and re-placement every SCAN_INTERVAL_MS). */
  readonly running: boolean;
  readonly phase: BackgroundHealPhase | undefined;
  readonly progress: HealProgress | undefined;
  /** When the next scan and re-placement begin. */
  readonly nextScanMs: number;
  /** When CancelHeal last stopped a background pass. */
  readonly cancelledMs: number | undefined;
}

/** A pass asked for (the admin API's StartHeal), as GetHealStatus shows it. */
export interface HealPassStatus {
  readonly deep: boolean;
  readonly startedMs: number;
  readonly finishedMs: number | undefined;
  readonly state: 'waiting' | 'running' | 'done' | 'cancelled' | 'failed';
  readonly progress: HealProgress | undefined;
  readonly repairs: HealReport | undefined;
  readonly scan: HealReport | undefined;
  readonly replaced: ReplaceReport | undefined;
  readonly error: string | undefined;
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
  // Shared by the store and the health watcher: a backend added at run time is added here, once, for both.
  const backends = new Map<string, Backend>();
  /** Identity markers are written by the process that heals and reclaims (one per data directory), not by workers. */
  let claimsBackends = false;
  for (const backendConfig of config.backends) backends.set(backendConfig.name, await openBackend(backendConfig));
  const warned = new Set<string>(); // once per backend, not at every probe
  const health = new BackendHealth(backends, {
    ...(config.health ?? HEALTH_DEFAULT),
    prepare: async (backend, signal) => {
      if (backend instanceof S3Backend) {
        try {
          await backend.ensureBucket({ signal });
          warned.delete(backend.name);
        } catch (error) {
          if (!warned.has(backend.name)) logger.warn('backend bucket could not be checked; the backend is down until it can be', { backend: backend.name, error: String(error) });
          warned.add(backend.name);
          throw error;
        }
      }
      // First use by this store: its identity marker, so orphan reclaim may run there later. Beside the probe, never
      // failing it (a listing may take long): reclaim asks again before it deletes anything. In the healing process only.
      if (claimsBackends) void claimBackend(meta, backend, isShardKey)
        .catch((error: unknown) => ({ ours: false as const, why: String(error) }))
        .then((claim) => {
          if (!claim.ours) logger.warn('backend is not marked as this store\'s: orphan shards there will not be reclaimed', { backend: backend.name, why: claim.why });
        });
    },
  });
  const onError = (message: string, error: unknown): void => logger.warn(message, { error: String(error) });
  const store = new PlacedBlobStore({ local, backends, config, health, repairs: meta, onError });
  const healer = new Healer(meta, store, onError);
  const background = new HealLoop(healer, logger);
  let backgroundStarted = false;
  let records: ObjectRecordWriter | undefined;
  const retired = new Set<Backend>();
  /** What each open backend was opened from: applyConfig replaces those whose configuration changed. */
  const opened = new Map(config.backends.map((backendConfig) => [backendConfig.name, JSON.stringify(backendConfig)]));
  const retire = (backend: Backend): void => {
    retired.add(backend);
    const closeLater = setTimeout(() => {
      retired.delete(backend);
      backend.close().catch((error: unknown) => onError(`closing the retired backend ${backend.name}`, error));
    }, RETIRED_BACKEND_CLOSE_DELAY_MS);
    closeLater.unref();
  };
  const open: OpenPlacement = {
    store,
    healer,
    backendStatus: () => health.snapshot(),
    startBackground: (options = {}) => {
      claimsBackends = options.heal !== false;
      health.start();
      if (options.heal !== false) {
        background.start(options.orphansOlderThanMs ?? 0, options.firstScanDelayMs);
        backgroundStarted = true;
      }
      // Object records for `talus recover --scan`, with metadata replication, in the process that heals (one per data directory); SQLite only.
      if (options.heal !== false && config.replication !== undefined && meta instanceof SqliteMetadataStore) (records = new ObjectRecordWriter({ databasePath: meta.database.name, backends, logger })).start();
    },
    stopBackground: async () => {
      await background.stop();
      await records?.stop();
      // After the listeners closed (shutdown's order): no request is left on them.
      await Promise.all([...retired].map((backend) => backend.close().catch(() => undefined)));
      retired.clear();
    },
    healNow: (options) => background.requestPass(options.deep),
    cancelHeal: () => background.cancel(),
    backgroundHealStatus: () => (backgroundStarted ? background.backgroundStatus() : undefined),
    healPassStatus: () => background.requestedStatus(),
    placements: () => store.placements(),
    addBackend: async (backendConfig) => {
      if (backends.has(backendConfig.name)) throw new Error(`backend ${backendConfig.name} is open already`);
      const backend = await openBackend(backendConfig);
      backends.set(backend.name, backend);
      opened.set(backend.name, JSON.stringify(backendConfig));
      health.track(backend.name);
      void health.probe(backend.name);
    },
    replaceBackend: async (backendConfig) => {
      const previous = backends.get(backendConfig.name);
      if (previous === undefined) throw new Error(`backend ${backendConfig.name} is not open`);
      const backend = await openBackend(backendConfig);
      // One assignment: every request from here on (shardTargets looks the name up per request) gets the new one.
      backends.set(backend.name, backend);
      opened.set(backend.name, JSON.stringify(backendConfig));
      health.reset(backend.name);
      void health.probe(backend.name);
      retire(previous);
    },
    removeBackend: (name) => {
      const previous = backends.get(name);
      assert(previous !== undefined, `backend ${name} is open`);
      assert(store.placementsNaming(name).length === 0, `no placement names backend ${name}`);
      backends.delete(name);
      opened.delete(name);
      health.untrack(name);
      retire(previous);
    },
    addPlacement: (placement) => store.addPlacement(placement),
    replacePlacement: (placement) => store.replacePlacement(placement),
    placementInUse: (name) => store.placementInUse(name),
    removePlacement: (name) => store.removePlacement(name),
    applyConfig: async (target) => {
      // Each item on its own: one backend that fails to open must not leave the rest of the change unapplied.
      const failures: string[] = [];
      const attempt = async (item: string, apply: () => unknown): Promise<void> => {
        try {
          await apply();
        } catch (error) {
          failures.push(`${item}: ${error instanceof Error ? error.message : String(error)}`);
        }
      };
      for (const backendConfig of target.backends) {
        if (!opened.has(backendConfig.name)) await attempt(`backend ${backendConfig.name}`, () => open.addBackend(backendConfig));
        else if (opened.get(backendConfig.name) !== JSON.stringify(backendConfig)) await attempt(`backend ${backendConfig.name}`, () => open.replaceBackend(backendConfig));
      }
      for (const placement of inPartsOrder(target.placements)) {
        const current = store.placements().find((candidate) => candidate.name === placement.name);
        if (current === undefined) await attempt(`placement ${placement.name}`, () => store.addPlacement(placement));
        else if (JSON.stringify(current) !== JSON.stringify(placement)) await attempt(`placement ${placement.name}`, () => store.replacePlacement(placement));
      }
      for (const [bucket, name] of target.buckets) {
        if (store.bucketPlacements().get(bucket) !== name) await attempt(`bucket ${bucket}`, () => store.setBucketPlacement(bucket, name));
      }
      for (const bucket of [...store.bucketPlacements().keys()]) if (!target.buckets.has(bucket)) store.forgetBucketPlacement(bucket);
      if (store.defaultPlacementName() !== target.defaultPlacement) store.setDefaultPlacement(target.defaultPlacement); // a reload of talus.toml
      const placementNames = new Set(target.placements.map((placement) => placement.name));
      for (const placement of inPartsOrder(store.placements()).reverse()) {
        if (!placementNames.has(placement.name) && store.placementInUse(placement.name) === undefined) store.removePlacement(placement.name);
      }
      const backendNames = new Set(target.backends.map((backendConfig) => backendConfig.name));
      for (const name of [...opened.keys()]) {
        if (backendNames.has(name) || store.placementsNaming(name).length > 0) continue;
        // As in the primary's RemoveBackend: commits naming it are refused from now on, and those under way end first.
        await store.withdraw(name);
        open.removeBackend(name);
        store.restore(name);
      }
      if (failures.length > 0) throw new Error(`not applied: ${failures.join('; ')} (the rest was)`);
    },
  };
  return open;
}

/**
 * Striped placements before hybrid ones: a hybrid is added after the
 * placements it names, and (reversed) removed before them, so a striped
 * placement a removed hybrid held is free to go in the same pass.
 */
function inPartsOrder(placements: readonly PlacementConfig[]): PlacementConfig[] {
  return [...placements.filter((placement) => placement.type !== 'hybrid'), ...placements.filter((placement) => placement.type === 'hybrid')];
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
  /** The pass asked for on demand, and how to cancel it while it runs. */
  #requested: { status: HealPassStatus; cancel: AbortController } | undefined;
  /** The background pass in progress: its phase, progress, and how CancelHeal stops it. */
  #background: { phase: BackgroundHealPhase; progress: HealProgress | undefined; cancel: AbortController } | undefined;
  /** When CancelHeal last stopped a background pass. */
  #cancelledMs: number | undefined;

  constructor(healer: Healer, logger: Logger) {
    this.#healer = healer;
    this.#logger = logger;
  }

  start(orphansOlderThanMs = 0, firstScanDelayMs = FIRST_SCAN_DELAY_MS): void {
    if (orphansOlderThanMs > 0) this.#reclaimBeforeMs = Date.now() - orphansOlderThanMs;
    this.#nextScanMs = Date.now() + firstScanDelayMs;
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
    const running: Promise<void> = this.#pass()
      .catch((error: unknown) => this.#logger.error('healing pass failed', { error: String(error) }))
      .finally(() => {
        // A requested pass may have queued behind this one: it owns #running now.
        if (this.#running === running) this.#running = undefined;
      });
    this.#running = running;
  }

  requestPass(deep: boolean): boolean {
    const state = this.#requested?.status.state;
    if (state === 'waiting' || state === 'running') return false;
    if (this.#stopping.signal.aborted) return false;
    const cancel = new AbortController();
    const requested = { status: newPassStatus(deep), cancel };
    this.#requested = requested;
    const update = (changes: Partial<HealPassStatus>): void => {
      requested.status = { ...requested.status, ...changes };
    };
    const previous = this.#running;
    const running: Promise<void> = (async () => {
      await previous; // never beside the background pass: both would rebuild the same shards
      const signal = AbortSignal.any([cancel.signal, this.#stopping.signal]);
      if (signal.aborted) return;
      update({ state: 'running' });
      const onProgress = (progress: HealProgress): void => update({ progress });
      update({ repairs: await this.#healer.repairDue({ includeNotDue: true, signal, onProgress }) });
      if (signal.aborted) return;
      update({ scan: await this.#healer.scan({ deep, signal, onProgress }) });
      if (signal.aborted) return;
      update({ replaced: await this.#healer.replaceAll({ signal, onProgress }) });
    })()
      .then(
        () => update({ state: cancel.signal.aborted || this.#stopping.signal.aborted ? 'cancelled' : 'done' }),
        (error: unknown) => {
          this.#logger.error('requested healing pass failed', { error: String(error) });
          update({ state: 'failed', error: String(error) });
        },
      )
      .finally(() => {
        update({ finishedMs: Date.now() });
        if (this.#running === running) this.#running = undefined;
      });
    this.#running = running;
    return true;
  }

  /**
   * Stops every healing pass in progress at its next blob: the one asked for
   * (waiting or running) and the background one once it has work in hand (a
   * repair done, or its scan or re-placement begun; not its reclaim of crash
   * debris at start, nor a tick that finds the queue empty). A background
   * pass stopped is not run again before its time: its repairs at the next
   * tick, its scan and re-placement at the next scan interval — or now, by
   * StartHeal. False when nothing was stopped.
   */
  cancel(): boolean {
    let cancelled = false;
    const requested = this.#requested;
    if (requested !== undefined && (requested.status.state === 'waiting' || requested.status.state === 'running')) {
      requested.cancel.abort();
      cancelled = true;
    }
    const background = this.#background;
    if (background !== undefined && !background.cancel.signal.aborted && (background.phase !== 'repairs' || background.progress !== undefined)) {
      background.cancel.abort();
      this.#cancelledMs = Date.now();
      cancelled = true;
    }
    return cancelled;
  }

  backgroundStatus(): BackgroundHealStatus {
    const background = this.#background;
    return { running: background !== undefined, phase: background?.phase, progress: background?.progress, nextScanMs: this.#nextScanMs, cancelledMs: this.#cancelledMs };
  }

  requestedStatus(): HealPassStatus | undefined {
    return this.#requested?.status;
  }

  async #pass(): Promise<void> {
    const cancel = new AbortController();
    const current: { phase: BackgroundHealPhase; progress: HealProgress | undefined; cancel: AbortController } = { phase: 'reclaim', progress: undefined, cancel };
    this.#background = current;
    try {
      if (this.#reclaimBeforeMs !== undefined) {
        const removed = await this.#healer.reclaimOrphans(this.#reclaimBeforeMs, this.#stopping.signal);
        this.#reclaimBeforeMs = undefined;
        if (removed > 0) this.#logger.info('reclaimed orphan shards', { count: removed });
      }
      const signal = AbortSignal.any([cancel.signal, this.#stopping.signal]);
      const onProgress = (progress: HealProgress): void => {
        current.progress = progress;
      };
      current.phase = 'repairs';
      const repaired = await this.#healer.repairDue({ signal, onProgress });
      if (repaired.shardsRebuilt > 0) this.#logger.info('shards repaired', { ...repaired });
      if (Date.now() < this.#nextScanMs) return;
      // Set before the scan: a scan stopped (CancelHeal, shutdown) waits for its next interval.
      this.#nextScanMs = Date.now() + SCAN_INTERVAL_MS;
      if (signal.aborted) return;
      current.phase = 'scan';
      const scanned = await this.#healer.scan({ signal, onProgress });
      this.#logger.info(cancel.signal.aborted ? 'healing scan cancelled' : 'healing scan done', { ...scanned });
      if (signal.aborted) return;
      current.phase = 'replace';
      const replaced = await this.#healer.replaceAll({ signal, onProgress });
      if (replaced.blobsMoved > 0 || replaced.failures > 0) this.#logger.info('objects re-placed', { ...replaced });
    } finally {
      this.#background = undefined;
    }
  }
}

function newPassStatus(deep: boolean): HealPassStatus {
  return { deep, startedMs: Date.now(), finishedMs: undefined, state: 'waiting', progress: undefined, repairs: undefined, scan: undefined, replaced: undefined, error: undefined };
}
