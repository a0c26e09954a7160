import { assert } from '../util/assert.ts';
import { BackendTimeoutError, type Backend } from '../backend/backend.ts';
import { HEALTH_DEFAULT, type HealthConfig, type PlacementConfig } from '../config/config.ts';
import { type LatencySample, LatencyHistory } from './latency-history.ts';

export type BackendState = 'up' | 'down' | 'unknown';

export interface BackendStatus {
  readonly name: string;
  readonly state: BackendState;
  /** Smoothed latency of probes and reads, when measured. */
  readonly latencyMs: number | undefined;
  /** What a request to this backend is given now before it counts as a timeout (see deadlineMs). */
  readonly deadlineMs: number;
  readonly lastError: string | undefined;
  /** When the state last changed (ms since the epoch). */
  readonly sinceMs: number;
  /** Requests and probes to it that failed or timed out since this process opened it (talus_backend_errors_total). */
  readonly errors: number;
}

const PROBE_KEY = 'talus-probe';
/**
 * The latency estimator of TCP's retransmission timer (RFC 6298): a smoothed
 * mean (gain 1/8) and a smoothed mean deviation (gain 1/4); mean + 4
 * deviations is a "slow but normal" answer. Its gains are the ones decades
 * of networks were tuned with: quick enough to follow a backend that got
 * slower, slow enough that one outlier does not swing it.
 */
const LATENCY_GAIN = 1 / 8;
const DEVIATION_GAIN = 1 / 4;
const DEVIATIONS_IN_ESTIMATE = 4;
/**
 * A request's deadline is this many "slow but normal" answers (then
 * clamped to [deadline_min, deadline_max]): a multiple, not an addend, so a
 * far backend gets slack in proportion to its distance. Four times the
 * usual worst is well past any queueing hiccup; an answer later than that
 * is not coming.
 */
const DEADLINE_LATENCY_MULTIPLE = 4;
/**
 * A read lagging twice its backend's "slow but normal" answer gets a second
 * shard read beside it (a hedge): the cheap remedy, taken early.
 */
const HEDGE_LATENCY_MULTIPLE = 2;
/**
 * No hedge sooner than this: below it a hedge would answer event-loop and
 * disk-queue jitter on a busy server rather than a lagging backend, and
 * double the reads exactly when the server is busiest.
 */
const HEDGE_AFTER_MS_MIN = 250;
/**
 * Bytes still to come count at this rate on top of the answer deadline: a
 * 4 MiB frame from a backend that streams slower than 1 MiB/s is treated
 * as hung. Far below any disk or WAN link a placement would use.
 */
const TRANSFER_BYTES_PER_MS_MIN = 1024 * 1024 / 1_000;

interface Entry {
  state: BackendState;
  /** RFC 6298 SRTT and RTTVAR, in ms; undefined until the first sample. */
  latencyMs: number | undefined;
  deviationMs: number;
  lastError: string | undefined;
  sinceMs: number;
  /** Failed or timed-out requests and probes, counted for the metrics. */
  errors: number;
  /** The backend's prepare() succeeded (an S3 backend's bucket exists). */
  prepared: boolean;
  probing: Promise<void> | undefined;
  /** The last probes' answer times (the console's latency chart). */
  history: LatencyHistory;
}

export interface BackendHealthOptions extends Partial<HealthConfig> {
  /**
   * Makes a backend usable (creates an S3 backend's bucket): run before its
   * probes until it succeeds once, inside the probe's deadline, so start-up
   * never waits on it.
   */
  readonly prepare?: (backend: Backend, signal: AbortSignal) => Promise<void>;
}

/** A backend not yet probed (or probed no more since its endpoint changed). */
function unknownEntry(errors: number, history: LatencyHistory): Entry {
  return { state: 'unknown', latencyMs: undefined, deviationMs: 0, lastError: undefined, sinceMs: Date.now(), errors, prepared: false, probing: undefined, history };
}

/**
 * What Talus knows of each backend's health: probed periodically (a stat of
 * a key that does not exist: cheap everywhere, and it proves credentials and
 * bucket), and told of every request's outcome in between. Every backend
 * starts out unknown and nothing waits for its first probe. Writes skip down
 * backends while their quorum allows; reads try the fastest first.
 *
 * Deadlines follow each backend's observed latency: a request lagging past
 * its hedge point gets another shard read beside it, and one past its
 * deadline is given up and counts as a failure — the backend is down until
 * a probe answers, so the next request does not wait for it again.
 */
export class BackendHealth {
  readonly #backends: ReadonlyMap<string, Backend>;
  readonly #entries = new Map<string, Entry>();
  readonly #probeIntervalMs: number;
  readonly #deadlineMinMs: number;
  readonly #deadlineMaxMs: number;
  readonly #prepare: BackendHealthOptions['prepare'];
  #timer: NodeJS.Timeout | undefined;

  constructor(backends: ReadonlyMap<string, Backend>, options: BackendHealthOptions = {}) {
    this.#backends = backends;
    this.#probeIntervalMs = options.probeIntervalMs ?? HEALTH_DEFAULT.probeIntervalMs;
    this.#deadlineMinMs = options.deadlineMinMs ?? HEALTH_DEFAULT.deadlineMinMs;
    this.#deadlineMaxMs = Math.max(this.#deadlineMinMs, options.deadlineMaxMs ?? HEALTH_DEFAULT.deadlineMaxMs);
    this.#prepare = options.prepare;
    for (const name of backends.keys()) {
      this.#entries.set(name, unknownEntry(0, new LatencyHistory()));
    }
  }

  /** Watches a backend added to the map after construction (at run time): unknown until its first probe. */
  track(name: string): void {
    assert(this.#backends.has(name), `backend ${name} is in the map`);
    if (!this.#entries.has(name)) this.#entries.set(name, unknownEntry(0, new LatencyHistory()));
  }

  /**
   * Starts over for a backend whose map entry was replaced (the admin API's
   * UpdateBackend: another endpoint or keys): unknown, and prepared again,
   * until its next probe. The error count stays (a counter never goes back).
   */
  reset(name: string): void {
    assert(this.#backends.has(name), `backend ${name} is in the map`);
    const entry = this.#entries.get(name);
    // The latency chart goes on through the change (it shows what the new endpoint costs).
    this.#entries.set(name, unknownEntry(entry?.errors ?? 0, entry?.history ?? new LatencyHistory()));
  }

  /** Stops watching a backend removed from the map (the admin API's RemoveBackend). */
  untrack(name: string): void {
    assert(!this.#backends.has(name), `backend ${name} left the map`);
    this.#entries.delete(name);
  }

  /** Probes now and every probe interval, in the background. */
  start(): void {
    if (this.#timer !== undefined) return;
    void this.probeAll();
    this.#timer = setInterval(() => void this.probeAll(), this.#probeIntervalMs);
    this.#timer.unref();
  }

  stop(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }

  /** Probes every backend once (concurrently), each within its deadline; never rejects. */
  async probeAll(): Promise<void> {
    await Promise.all([...this.#backends.keys()].map((name) => this.probe(name)));
  }

  /** Probes one backend (joining a probe in progress); never rejects. */
  probe(name: string): Promise<void> {
    const entry = this.#entries.get(name);
    const backend = this.#backends.get(name);
    if (entry === undefined || backend === undefined) return Promise.resolve();
    entry.probing ??= this.#probe(name, entry, backend).finally(() => {
      entry.probing = undefined;
    });
    return entry.probing;
  }

  async #probe(name: string, entry: Entry, backend: Backend): Promise<void> {
    const deadlineMs = this.deadlineMs(name);
    try {
      await withDeadline(deadlineMs, () => new BackendTimeoutError(name, 'probe', deadlineMs), async (signal) => {
        if (!entry.prepared && this.#prepare !== undefined) {
          await this.#prepare(backend, signal);
          entry.prepared = true;
        }
        const started = performance.now();
        await backend.stat(PROBE_KEY, { signal });
        const latencyMs = performance.now() - started;
        this.reportSuccess(name, latencyMs, backend);
        if (this.#current(name, backend)) entry.history.record(Date.now(), latencyMs);
      });
    } catch (error) {
      this.reportFailure(name, error, backend);
      if (this.#current(name, backend)) entry.history.record(Date.now(), undefined);
    }
  }

  /**
   * True when a report made through `via` (the backend object a request or
   * probe used) is about `name` as it is now: one UpdateBackend retired
   * still finishes its requests, and their outcomes say nothing of the new
   * endpoint. Without `via` the report is taken.
   */
  #current(name: string, via: Backend | undefined): boolean {
    return via === undefined || this.#backends.get(name) === via;
  }

  /** A request to `name` (through `via`) answered (in `latencyMs`, when it measured an answer time). */
  reportSuccess(name: string, latencyMs?: number, via?: Backend): void {
    const entry = this.#entries.get(name);
    if (entry === undefined || !this.#current(name, via)) return;
    if (entry.state !== 'up') this.#set(entry, 'up');
    entry.lastError = undefined;
    if (latencyMs === undefined || !Number.isFinite(latencyMs) || latencyMs < 0) return;
    if (entry.latencyMs === undefined) {
      entry.latencyMs = latencyMs;
      entry.deviationMs = latencyMs / 2;
    } else {
      entry.deviationMs = (1 - DEVIATION_GAIN) * entry.deviationMs + DEVIATION_GAIN * Math.abs(entry.latencyMs - latencyMs);
      entry.latencyMs = (1 - LATENCY_GAIN) * entry.latencyMs + LATENCY_GAIN * latencyMs;
    }
  }

  /** A request to `name` failed or timed out: it is down until a probe (or a request) answers. */
  reportFailure(name: string, error: unknown, via?: Backend): void {
    const entry = this.#entries.get(name);
    if (entry === undefined || !this.#current(name, via)) return;
    entry.errors++;
    if (entry.state !== 'down') this.#set(entry, 'down');
    entry.lastError = error instanceof Error ? error.message : String(error);
  }

  #set(entry: Entry, state: BackendState): void {
    entry.state = state;
    entry.sinceMs = Date.now();
  }

  state(name: string): BackendState {
    return this.#entries.get(name)?.state ?? 'down';
  }

  /** The longest any request waits for a backend (deadline_max). */
  get deadlineMaxMs(): number {
    return this.#deadlineMaxMs;
  }

  latencyMs(name: string): number | undefined {
    return this.#entries.get(name)?.latencyMs;
  }

  /**
   * How long a request to `name` that still has `bytes` to transfer may take
   * before it is given up: DEADLINE_LATENCY_MULTIPLE "slow but normal"
   * answers, plus the bytes at the slowest rate tolerated, within
   * [deadline_min, deadline_max]. Before any answer was measured: deadline_max.
   */
  deadlineMs(name: string, bytes = 0): number {
    const estimate = this.#estimateMs(name);
    if (estimate === undefined) return this.#deadlineMaxMs;
    return clamp(DEADLINE_LATENCY_MULTIPLE * estimate + bytes / TRANSFER_BYTES_PER_MS_MIN, this.#deadlineMinMs, this.#deadlineMaxMs);
  }

  /**
   * When a read from `name` that still has `bytes` to transfer counts as
   * lagging, and another shard is read beside it: HEDGE_LATENCY_MULTIPLE
   * "slow but normal" answers, at least HEDGE_AFTER_MS_MIN, at most
   * deadline_min (and half the deadline). Before any answer was measured:
   * that most, as hedging is cheap and waiting is not.
   */
  hedgeAfterMs(name: string, bytes = 0): number {
    const most = Math.min(this.#deadlineMinMs, this.deadlineMs(name, bytes) / 2);
    const estimate = this.#estimateMs(name);
    if (estimate === undefined) return most;
    return Math.min(most, Math.max(HEDGE_AFTER_MS_MIN, HEDGE_LATENCY_MULTIPLE * estimate + bytes / TRANSFER_BYTES_PER_MS_MIN));
  }

  #estimateMs(name: string): number | undefined {
    const entry = this.#entries.get(name);
    if (entry?.latencyMs === undefined) return undefined;
    return entry.latencyMs + DEVIATIONS_IN_ESTIMATE * entry.deviationMs;
  }

  /** The last probes of `name`, oldest first (a failed one without latency); empty for an unknown backend. */
  latencyHistory(name: string): LatencySample[] {
    return this.#entries.get(name)?.history.samples() ?? [];
  }

  snapshot(): BackendStatus[] {
    return [...this.#entries].map(([name, entry]) => ({
      name,
      state: entry.state,
      latencyMs: entry.latencyMs,
      deadlineMs: this.deadlineMs(name),
      lastError: entry.lastError,
      sinceMs: entry.sinceMs,
      errors: entry.errors,
    }));
  }
}

/**
 * Down backends last, the order otherwise kept. Unknown counts as up: every
 * backend is unknown until its first probe answers, which start-up does not
 * wait for, and a write then must still follow the configured priority.
 */
export function healthiestFirst(health: BackendHealth, names: readonly string[]): string[] {
  const rank = (name: string): number => (health.state(name) === 'down' ? 1 : 0);
  return names.map((name, index) => ({ name, index })).sort((a, b) => rank(a.name) - rank(b.name) || a.index - b.index).map((entry) => entry.name);
}

/**
 * Why the server should not take traffic for lack of backends: the first
 * placement (erasure, replica or single; a hybrid is its parts) with fewer
 * backends not down than its write quorum — every write to it would be
 * refused with 503 (PlacedBlobStore refuses them up front). Unknown counts
 * as up, as for writes: at start-up nothing waits for the first probes.
 * Undefined while every placement can take writes. The readiness probes
 * (/health/ready, /minio/health/ready) ask this, so a balancer sends writes
 * to a node whose backends can take them.
 */
export function missingWriteQuorum(placements: readonly PlacementConfig[], statuses: readonly BackendStatus[]): string | undefined {
  const down = new Set(statuses.filter((status) => status.state === 'down').map((status) => status.name));
  for (const placement of placements) {
    if (placement.type === 'hybrid') continue;
    const reachable = placement.backends.filter((name) => !down.has(name)).length;
    if (reachable < placement.writeQuorum) {
      return `placement ${placement.name}: ${reachable} of its backends reachable, its write quorum is ${placement.writeQuorum} (down: ${placement.backends.filter((name) => down.has(name)).join(', ')})`;
    }
  }
  return undefined;
}

/**
 * Runs `operation` with a signal that aborts after `ms`, and rejects with
 * `timeout()` then even if the operation ignores its signal (a backend call
 * stuck where no signal reaches): the caller never waits past the deadline.
 */
export async function withDeadline<T>(ms: number, timeout: () => Error, operation: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const abort = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      const error = timeout();
      abort.abort(error);
      reject(error);
    }, ms);
  });
  const running = operation(abort.signal);
  running.catch(() => undefined); // after the deadline nobody awaits it
  try {
    return await Promise.race([running, expired]);
  } finally {
    clearTimeout(timer);
  }
}

function clamp(value: number, min: number, max: number): number {
  return Math.min(max, Math.max(min, value));
}
