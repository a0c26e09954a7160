/**
 * Talus on several cores: one primary process and N worker processes on the
 * same data directory.
 *
 * - Workers serve HTTP on one shared port (node:cluster hands each new
 *   connection to a worker) and do everything a request needs: parsing,
 *   signatures, hashing, blob I/O and the metadata commit on their own
 *   connection to the shared SQLite database. SQLite's write lock keeps the
 *   control part serialized across processes; reads run in parallel.
 * - The primary holds the data-directory lock, reclaims crash debris before
 *   any worker starts, and runs the purger. Before removing a blob it asks
 *   every worker whether a GET is still streaming it (read leases are in
 *   each worker's memory).
 * - A worker that changed a bucket's settings says so; the primary tells
 *   the others to drop their cached bucket records, and the change is
 *   acknowledged only once all did. A change to users, keys or policies made
 *   through the admin API (the primary's) is acknowledged only once every
 *   worker reloaded its keys: no worker accepts a revoked key afterwards.
 * - A worker that dies is replaced, with backoff; its unfinished uploads
 *   (its partial blobs) are removed at once. After WORKER_START_FAILURES_MAX
 *   failed starts in a row the pool gives up, and the primary exits
 *   non-zero so a supervisor sees it. On shutdown every worker drains its
 *   requests before the primary closes the stores.
 */
import cluster, { type Worker } from 'node:cluster';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { removePartialBlobs } from './blob/fs/partial-blobs.ts';
import { assert } from './util/assert.ts';
import type { TalusConfig } from './config/config.ts';
import type { Logger } from './util/logger.ts';
import type { MetricSnapshot } from './metrics/registry.ts';
import type { AuditEntry } from './audit/audit-log.ts';
import { HEAP_GROWING_PERCENT } from './util/heap-policy.ts';

/** What a worker needs to serve; everything else it reads from the data directory. */
export interface WorkerSettings {
  dataDir: string;
  port: number;
  address: string;
  domain: string | undefined;
  region: string;
  /** talus.toml's configuration (backends and placements), as JSON allows: the buckets map as entries; the worker adds the data directory's run-time changes. */
  config?: Omit<TalusConfig, 'buckets'> & { buckets: [string, string][] };
  /** The access log every worker appends its lines to (`--access-log`); absent: none. */
  accessLog?: string;
  /** The key that seals the console's calls (http/console-source.ts), base64. */
  consoleSourceKey: string;
}

export type ToWorker =
  | { kind: 'lease-query'; id: number; blobIds: string[] }
  /** Drop cached bucket records, then answer synced with this id. */
  | { kind: 'forget-buckets'; id: number }
  /** Reload users, keys and policies from the store, then answer synced with this id. */
  | { kind: 'reload-principals'; id: number }
  | { kind: 'metrics-query'; id: number }
  /** The admin API changed backends or placements (kept in the data directory), or talus.toml was reloaded (`config`, its new configuration): apply them, then answer placements-applied. */
  | { kind: 'placements-changed'; id: number; config?: WorkerSettings['config'] }
  | { kind: 'shutdown' };

export type ToPrimary =
  | { kind: 'ready'; port: number }
  | { kind: 'lease-answer'; id: number; leased: string[] }
  /** This worker changed a bucket's settings: the others must drop their cached records; answered with buckets-forgotten. */
  | { kind: 'buckets-changed'; id: number }
  | { kind: 'synced'; id: number }
  | { kind: 'metrics-answer'; id: number; metrics: MetricSnapshot[] }
  | { kind: 'audit'; entry: Omit<AuditEntry, 'timeMs'> }
  | { kind: 'placements-applied'; id: number; error: string | undefined };

export type ToChangingWorker = { kind: 'buckets-forgotten'; id: number };

export const WORKER_SETTINGS_ENV = 'TALUS_WORKER_SETTINGS';
export const WORKERS_MAX = 64;
/** A worker that does not answer a lease query in time is assumed to stream every blob asked about. */
const LEASE_QUERY_TIMEOUT_MS = 5_000;
/** A scrape waits this long for each worker's metrics (Prometheus's own scrape timeout is 10 s). */
const METRICS_QUERY_TIMEOUT_MS = 2_000;
/**
 * Every worker drops its cached bucket records or reloads its keys within
 * this, or is killed: a worker that kept serving the previous access
 * settings or a revoked key would break what the change's answer promised.
 * Its replacement reads everything afresh at its start.
 */
export const SYNC_TIMEOUT_MS = 5_000;
/** Applying a change opens at most one backend (no network: probes run after): seconds at the very most. */
const PLACEMENTS_APPLY_TIMEOUT_MS = 10_000;
const WORKER_START_TIMEOUT_MS = 30_000;
/**
 * Replacing a dead worker waits RESPAWN_DELAY_MIN_MS, doubled for every
 * failed start in a row up to RESPAWN_DELAY_MAX_MS, so a worker that dies at
 * start cannot spin the CPU, yet workers killed together (OOM killer, a
 * stray `kill`) are back within a second.
 */
export const RESPAWN_DELAY_MIN_MS = 250;
export const RESPAWN_DELAY_MAX_MS = 15_000;
/** ±this fraction of random jitter, so workers that died together do not restart (and fail) in lockstep. */
const RESPAWN_JITTER = 0.25;
/** A worker that has served this long started fine: the count of failed starts goes back to zero. */
export const WORKER_STABLE_MS = 10_000;
/**
 * Failed starts in a row (exits before serving, or within WORKER_STABLE_MS
 * of it) after which the pool gives up: the cause is not transient (a broken
 * data directory, a bad configuration), and a primary that kept an empty pool
 * alive would look healthy to its supervisor. About 16 s of backoff.
 */
export const WORKER_START_FAILURES_MAX = 6;
/**
 * Young-generation semi-spaces of 4 MiB instead of V8's 16: request garbage
 * dies young either way, and the smaller nursery keeps ~20 MiB less resident
 * per process at the same CPU per request (measured: 4 KiB PUT 127-140 vs
 * 130-152 us, peak RSS 139 vs 160 MiB after 100k PUTs). Only processes Talus
 * starts itself get it; a server started as `node bin/talus.js` can be given
 * it in NODE_OPTIONS. The old generation's growth is the server's heap policy
 * (util/heap-policy.ts), given here on the command line.
 */
const WORKER_V8_FLAGS = ['--max-semi-space-size=4', `--heap-growing-percent=${HEAP_GROWING_PERCENT}`];

export class WorkerPool {
  readonly #settings: WorkerSettings;
  readonly #count: number;
  readonly #logger: Logger;
  readonly #workers = new Set<Worker>();
  /** Workers that reported ready: they serve, so they may hold read leases. */
  readonly #serving = new Set<Worker>();
  readonly #leaseQueries = new Map<number, { pending: Set<Worker>; leased: Set<string>; resolve(leased: Set<string>): void; timer: NodeJS.Timeout }>();
  #nextQueryId = 1;
  readonly #metricsQueries = new Map<number, (from: Worker, metrics: MetricSnapshot[]) => void>();
  readonly #placementQueries = new Map<number, (from: Worker, error: string | undefined) => void>();
  /** Pending syncs: `answered` when a worker confirmed or exited, `ready` when a worker that was starting as the sync began now serves. */
  readonly #syncs = new Map<number, { answered(from: Worker): void; ready(worker: Worker): void }>();
  /** Workers forked and not yet ready: a sync that begins meanwhile waits for them too (they may have read the state before the change). */
  readonly #starting = new Set<Worker>();
  /**
   * A worker changed a bucket: the primary drops its own cached bucket
   * records (its admin API and lifecycle worker read buckets too), before
   * the change is acknowledged.
   */
  onWorkerChangedBuckets: () => void = () => undefined;
  /** Where workers' audit entries go (the primary's audit log, set once it is open). */
  onAuditEntry: (entry: Omit<AuditEntry, 'timeMs'>) => void = () => undefined;
  #stopping = false;
  #port = 0;
  readonly #backoff = new RestartBackoff();
  readonly #onGiveUp: (error: Error) => void;
  /** Workers that served WORKER_STABLE_MS: their death is not a failed start. */
  readonly #stable = new WeakSet<Worker>();
  readonly #stableTimers = new Map<Worker, NodeJS.Timeout>();
  /** Workers killed for not confirming a sync in time: their death is not a failed start either. */
  readonly #killedForLateness = new WeakSet<Worker>();
  readonly #respawnTimers = new Set<NodeJS.Timeout>();
  readonly #cleanups = new Set<Promise<void>>();
  /** Holds the event loop open while the pool runs: with every worker dead, nothing else would, and the primary would exit 0. */
  #keepAlive: NodeJS.Timeout | undefined;

  /** `onGiveUp` is called once if workers keep failing to start; the pool then replaces no more workers. */
  constructor(settings: WorkerSettings, count: number, logger: Logger, onGiveUp: (error: Error) => void = () => undefined) {
    assert(Number.isInteger(count) && count >= 2 && count <= WORKERS_MAX, `workers must be 2..${WORKERS_MAX}`);
    this.#settings = settings;
    this.#count = count;
    this.#logger = logger;
    this.#onGiveUp = onGiveUp;
  }

  get port(): number {
    return this.#port;
  }

  /** Forks the workers and resolves once all of them listen. */
  async start(): Promise<void> {
    // Workers run what this process runs: the compiled dist/, or the
    // TypeScript sources through tsx (see bin/talus.js).
    const compiled = import.meta.url.endsWith('.js');
    cluster.setupPrimary({
      exec: fileURLToPath(new URL(compiled ? './cluster-worker.js' : './cluster-worker.ts', import.meta.url)),
      execArgv: [...WORKER_V8_FLAGS, ...(compiled ? [] : ['--import', 'tsx'])],
    });
    this.#keepAlive ??= setInterval(() => undefined, 1 << 30);
    const ports = await Promise.all(Array.from({ length: this.#count }, () => this.#fork()));
    assert(ports.every((port) => port === ports[0]), 'workers share one port');
    this.#port = ports[0]!;
  }

  #fork(): Promise<number> {
    // Every worker listens with the same arguments (port 0 included): node:cluster
    // shares one listening socket per (address, port) it was asked for.
    const worker = cluster.fork({ [WORKER_SETTINGS_ENV]: JSON.stringify(this.#settings) });
    this.#workers.add(worker);
    this.#starting.add(worker);
    worker.on('message', (message: ToPrimary) => this.#onMessage(worker, message));
    // A message sent to a worker that just died fails (EPIPE) as an 'error'
    // event: unheard, it would end the primary and every worker with it. Its
    // exit, which follows, answers whatever it was asked.
    worker.on('error', (error) => this.#logger.warn('worker IPC error', { pid: worker.process.pid, error: error.message }));
    worker.once('exit', (code, signal) => this.#onExit(worker, code, signal));
    return new Promise<number>((resolve, reject) => {
      const timer = setTimeout(() => {
        // As for syncs: a primary whose event loop was blocked past the timeout
        // reads a ready message already queued before it judges the start.
        setImmediate(() => {
          if (!this.#starting.has(worker)) return;
          // A hung worker would never serve nor answer lease queries: end it (its exit starts another).
          worker.process.kill('SIGKILL');
          reject(new Error('a worker did not start in time'));
        });
      }, WORKER_START_TIMEOUT_MS);
      worker.on('message', (message: ToPrimary) => {
        if (message.kind !== 'ready') return;
        clearTimeout(timer);
        this.#starting.delete(worker);
        this.#serving.add(worker);
        // Changes made while it started wait for it: it hears them now that it has its handler.
        for (const sync of [...this.#syncs.values()]) sync.ready(worker);
        this.#stableTimers.set(worker, setTimeout(() => {
          this.#stableTimers.delete(worker);
          this.#stable.add(worker);
          this.#backoff.succeeded();
        }, WORKER_STABLE_MS).unref());
        resolve(message.port);
      });
      worker.once('exit', (code) => {
        clearTimeout(timer);
        this.#starting.delete(worker);
        reject(new Error(`a worker exited with code ${code} while starting`));
      });
    });
  }

  /**
   * Every serving worker's metrics. A worker that does not answer within
   * `timeoutMs` is left out of this scrape (its counters are not lost: the
   * next scrape gets them).
   */
  collectMetrics(timeoutMs = METRICS_QUERY_TIMEOUT_MS): Promise<MetricSnapshot[][]> {
    const pending = new Set(this.#serving);
    if (pending.size === 0) return Promise.resolve([]);
    const id = this.#nextQueryId++;
    return new Promise((resolve) => {
      const answers: MetricSnapshot[][] = [];
      const finish = (): void => {
        clearTimeout(timer);
        this.#metricsQueries.delete(id);
        resolve(answers);
      };
      const timer = setTimeout(finish, timeoutMs);
      this.#metricsQueries.set(id, (from, metrics) => {
        if (!pending.delete(from)) return;
        answers.push(metrics);
        if (pending.size === 0) finish();
      });
      for (const worker of pending) send(worker, { kind: 'metrics-query', id });
    });
  }

  /**
   * The admin API changed backends or placements: every serving worker
   * applies the data directory's run-time changes, and this resolves once
   * all did, so writes they serve after the answer follow the change. A
   * worker started later reads them at its start. Rejects naming the
   * workers that failed or did not answer in time (the change is kept: a
   * worker that missed it gets it with the next change or its restart).
   */
  placementsChanged(timeoutMs = PLACEMENTS_APPLY_TIMEOUT_MS, reloaded?: TalusConfig): Promise<void> {
    // A reload of talus.toml: workers started from now on get the new configuration too.
    const config = reloaded === undefined ? undefined : { ...reloaded, buckets: [...reloaded.buckets] };
    if (config !== undefined) this.#settings.config = config;
    const pending = new Set(this.#serving);
    if (pending.size === 0) return Promise.resolve();
    const id = this.#nextQueryId++;
    const failures: string[] = [];
    return new Promise((resolve, reject) => {
      const finish = (): void => {
        clearTimeout(timer);
        this.#placementQueries.delete(id);
        for (const worker of pending) failures.push(`worker ${worker.process.pid}: no answer within ${timeoutMs} ms`);
        if (failures.length === 0) resolve();
        else reject(new Error(`not every worker applied the change: ${failures.join('; ')}`));
      };
      const timer = setTimeout(finish, timeoutMs);
      this.#placementQueries.set(id, (from, error) => {
        if (!pending.delete(from)) return;
        if (error !== undefined) failures.push(`worker ${from.process.pid}: ${error}`);
        if (pending.size === 0) finish();
      });
      for (const worker of pending) send(worker, { kind: 'placements-changed', id, ...(config === undefined ? {} : { config }) });
    });
  }

  /** The primary changed a bucket (the admin API): resolves once every serving worker dropped its cached bucket records. */
  forgetBuckets(): Promise<void> {
    return this.#sync((id) => ({ kind: 'forget-buckets', id }), undefined, false);
  }

  /** The admin API changed users, keys or policies: resolves once every worker, starting ones included, reloaded them. */
  reloadPrincipals(): Promise<void> {
    return this.#sync((id) => ({ kind: 'reload-principals', id }), undefined, true);
  }

  /**
   * Sends every serving worker but `except` the message, and resolves once
   * each answered synced, exited, or was killed for not answering within
   * SYNC_TIMEOUT_MS of being asked (fail closed: it might still serve the
   * old state).
   *
   * `withStarting`: workers still starting are waited for too, and asked once
   * ready. Principals need it: a worker loads them before it listens, and one
   * that read them before the change committed would serve the old keys from
   * its first request on. Bucket records need not: a worker caches none before
   * it is ready (it reads them as requests need them, and it handles none
   * before its ready message), so whatever it caches is read after the change.
   * A starting worker that is not ready within SYNC_TIMEOUT_MS of the sync's
   * start is killed as late (a hung start must not hold the change, nor the
   * shutdown behind it, for WORKER_START_TIMEOUT_MS).
   *
   * Never rejects: the change is made; what remains is that no worker
   * serves what came before it.
   */
  #sync(message: (id: number) => ToWorker, except: Worker | undefined, withStarting: boolean): Promise<void> {
    const candidates = withStarting ? [...this.#serving, ...this.#starting] : [...this.#serving];
    const pending = new Set(candidates.filter((worker) => worker !== except && worker.isConnected()));
    if (pending.size === 0) return Promise.resolve();
    const id = this.#nextQueryId++;
    return new Promise((resolve) => {
      const timers = new Set<NodeJS.Timeout>();
      const finish = (): void => {
        for (const timer of timers) clearTimeout(timer);
        this.#syncs.delete(id);
        resolve();
      };
      const answered = (from: Worker): void => {
        if (pending.delete(from) && pending.size === 0) finish();
      };
      /** Kills, after SYNC_TIMEOUT_MS, those of `workers` still pending for which `late` holds. */
      const deadline = (workers: Worker[], late: (worker: Worker) => boolean): void => {
        timers.add(setTimeout(() => {
          // A primary whose own event loop was blocked past the timeout runs this
          // before reading the messages already queued on the IPC channels: let
          // the poll phase deliver them first, and kill only the truly late.
          setImmediate(() => this.#killLate(workers.filter((worker) => pending.has(worker) && late(worker))));
        }, SYNC_TIMEOUT_MS));
      };
      const ask = (asked: Worker[]): void => {
        for (const worker of asked) send(worker, message(id));
        deadline(asked, () => true);
      };
      this.#syncs.set(id, { answered, ready: (worker) => { if (pending.has(worker)) ask([worker]); } });
      const serving = [...pending].filter((worker) => this.#serving.has(worker));
      const starting = [...pending].filter((worker) => !this.#serving.has(worker));
      if (serving.length > 0) ask(serving);
      // Those starting are asked once ready; not ready in time, they are late too.
      if (starting.length > 0) deadline(starting, (worker) => this.#starting.has(worker));
    });
  }

  /** Kills workers that did not apply a change in time: their exits answer for them (#onExit). */
  #killLate(late: Worker[]): void {
    if (late.length === 0) return;
    this.#logger.error('workers did not apply a change in time; killing them', { pids: late.map((worker) => worker.process.pid), timeoutMs: SYNC_TIMEOUT_MS });
    // A kill for lateness says nothing about how the worker started.
    for (const worker of late) {
      this.#killedForLateness.add(worker);
      worker.process.kill('SIGKILL');
    }
  }

  #onMessage(from: Worker, message: ToPrimary): void {
    if (message.kind === 'audit') {
      this.onAuditEntry(message.entry);
    } else if (message.kind === 'placements-applied') {
      this.#placementQueries.get(message.id)?.(from, message.error);
    } else if (message.kind === 'metrics-answer') {
      this.#metricsQueries.get(message.id)?.(from, message.metrics);
    } else if (message.kind === 'buckets-changed') {
      this.onWorkerChangedBuckets();
      void this.#sync((id) => ({ kind: 'forget-buckets', id }), from, false).then(() => {
        send(from, { kind: 'buckets-forgotten', id: message.id });
      });
    } else if (message.kind === 'synced') {
      this.#syncs.get(message.id)?.answered(from);
    } else if (message.kind === 'lease-answer') {
      const query = this.#leaseQueries.get(message.id);
      if (query === undefined) return;
      for (const id of message.leased) query.leased.add(id);
      query.pending.delete(from);
      if (query.pending.size === 0) this.#finishQuery(message.id);
    }
  }

  #onExit(worker: Worker, code: number | null, signal: string | null): void {
    this.#workers.delete(worker);
    this.#serving.delete(worker);
    // What it served is gone with it: it answers every pending sync.
    this.#starting.delete(worker);
    for (const sync of [...this.#syncs.values()]) sync.answered(worker);
    // Its leases are gone with it: answer for it with none.
    for (const [id, query] of this.#leaseQueries) {
      if (query.pending.delete(worker) && query.pending.size === 0) this.#finishQuery(id);
    }
    clearTimeout(this.#stableTimers.get(worker));
    this.#stableTimers.delete(worker);
    const pid = worker.process.pid;
    // Its uploads in flight can never finish: remove them now (they are named by its PID).
    const cleanup = pid === undefined ? Promise.resolve() : this.#removePartialBlobsOf(pid);
    this.#cleanups.add(cleanup);
    void cleanup.finally(() => this.#cleanups.delete(cleanup));
    if (this.#stopping) return;
    const failures = this.#stable.has(worker) || this.#killedForLateness.has(worker) ? this.#backoff.failures : this.#backoff.failed();
    if (failures >= WORKER_START_FAILURES_MAX) {
      this.#stopping = true;
      const error = new Error(`workers failed to start ${failures} times in a row (the last: pid ${pid}, code ${code}, signal ${signal}); giving up`);
      this.#logger.error('giving up on workers', { error: error.message });
      this.#onGiveUp(error);
      return;
    }
    const delayMs = this.#backoff.delayMs();
    this.#logger.error('worker exited; starting another', { pid, code, signal, failedStartsInARow: failures, delayMs: Math.round(delayMs) });
    void cleanup.then(() => {
      const timer = setTimeout(() => {
        this.#respawnTimers.delete(timer);
        // No fork while any dead worker's partial blobs are being removed: the new one could get its PID.
        void Promise.all([...this.#cleanups]).then(() => {
          // A failed start shows up as its exit (counted above); nothing more to do with the rejection.
          if (!this.#stopping) this.#fork().catch(() => undefined);
        });
      }, delayMs);
      this.#respawnTimers.add(timer);
    });
  }

  async #removePartialBlobsOf(pid: number): Promise<void> {
    try {
      const removed = await removePartialBlobs(join(this.#settings.dataDir, 'blobs'), pid);
      if (removed > 0) this.#logger.info('removed partial blobs of a dead worker', { pid, count: removed });
    } catch (error) {
      // Left for the next start-up, which removes every partial blob.
      this.#logger.error('could not remove partial blobs of a dead worker', { pid, error: String(error) });
    }
  }

  /** The blobs among `blobIds` that some worker is streaming now (a LeaseQuery for the purger). */
  leasedByWorkers = (blobIds: readonly string[]): Promise<ReadonlySet<string>> => {
    const id = this.#nextQueryId++;
    // Only a worker that serves can be streaming a blob; one still starting
    // has not installed its answering handler and would only time out.
    const pending = new Set([...this.#serving].filter((worker) => worker.isConnected()));
    if (pending.size === 0) return Promise.resolve(new Set());
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        // Silence is not consent: treat every blob as still being read.
        const query = this.#leaseQueries.get(id);
        if (query !== undefined) for (const blobId of blobIds) query.leased.add(blobId);
        this.#finishQuery(id);
      }, LEASE_QUERY_TIMEOUT_MS);
      this.#leaseQueries.set(id, { pending, leased: new Set(), resolve, timer });
      for (const worker of pending) send(worker, { kind: 'lease-query', id, blobIds: [...blobIds] });
    });
  };

  #finishQuery(id: number): void {
    const query = this.#leaseQueries.get(id);
    if (query === undefined) return;
    this.#leaseQueries.delete(id);
    clearTimeout(query.timer);
    query.resolve(query.leased);
  }

  /**
   * Shutdown has begun: no worker is replaced any more, and workers still
   * starting (they serve nothing) are killed now, so a sync waiting for one
   * (an admin call the shutdown drains) settles at once instead of holding
   * the shutdown up to SYNC_TIMEOUT_MS. Serving workers go on serving until
   * stop(). Idempotent.
   */
  beginStop(): void {
    this.#stopping = true;
    for (const timer of this.#respawnTimers) clearTimeout(timer);
    this.#respawnTimers.clear();
    for (const worker of this.#starting) worker.process.kill('SIGKILL');
  }

  /** Asks every worker to drain and exit; kills those still running after `graceMs`. */
  async stop(graceMs: number): Promise<void> {
    this.beginStop();
    const exits = [...this.#workers].map((worker) => new Promise<void>((resolve) => {
      if (worker.isDead()) return resolve();
      worker.once('exit', () => resolve());
      // A worker still starting has no request to drain and would not hear the message yet.
      if (this.#serving.has(worker)) send(worker, { kind: 'shutdown' });
      else worker.process.kill('SIGKILL');
    }));
    const timer = setTimeout(() => {
      for (const worker of this.#workers) worker.process.kill('SIGKILL');
    }, graceMs);
    await Promise.all(exits);
    clearTimeout(timer);
    await Promise.all(this.#cleanups);
    clearInterval(this.#keepAlive);
    this.#keepAlive = undefined;
  }
}

/** Consecutive failed starts and the delay they call for (see RESPAWN_DELAY_MIN_MS). */
export class RestartBackoff {
  #failures = 0;
  readonly #random: () => number;

  constructor(random: () => number = Math.random) {
    this.#random = random;
  }

  get failures(): number {
    return this.#failures;
  }

  /** Counts a failed start; returns the failures in a row. */
  failed(): number {
    return ++this.#failures;
  }

  /** A worker served long enough: starts are healthy again. */
  succeeded(): void {
    this.#failures = 0;
  }

  /** How long to wait before the next start. */
  delayMs(): number {
    const base = Math.min(RESPAWN_DELAY_MAX_MS, RESPAWN_DELAY_MIN_MS * 2 ** this.#failures);
    return base * (1 + RESPAWN_JITTER * (2 * this.#random() - 1));
  }
}

function send(worker: Worker, message: ToWorker | ToChangingWorker): void {
  // A failed send (the worker died an instant ago: EPIPE) is answered by its
  // exit; with a callback, Node reports it here instead of as an 'error' event.
  if (worker.isConnected()) worker.send(message, undefined, ignoreSendError);
}

function ignoreSendError(): void {
  // See send(): the worker's exit answers for it.
}
