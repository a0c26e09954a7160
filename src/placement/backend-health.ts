import type { Backend } from '../backend/backend.ts';

export type BackendState = 'up' | 'down' | 'unknown';

export interface BackendStatus {
  readonly name: string;
  readonly state: BackendState;
  /** Smoothed latency of probes and reads, when measured. */
  readonly latencyMs: number | undefined;
  readonly lastError: string | undefined;
  /** When the state last changed (ms since the epoch). */
  readonly sinceMs: number;
}

const PROBE_INTERVAL_MS_DEFAULT = 10_000;
const PROBE_KEY = 'talus-probe';
/** Weight of a new latency sample in the moving average. */
const LATENCY_WEIGHT = 0.2;

interface Entry {
  state: BackendState;
  latencyMs: number | undefined;
  lastError: string | undefined;
  sinceMs: number;
}

/**
 * What Talus knows of each backend's health: probed periodically (a stat of
 * a key that does not exist: cheap everywhere, and it proves credentials and
 * bucket), and told of every request's outcome in between. Writes skip down
 * backends while their quorum allows; reads try the fastest first.
 */
export class BackendHealth {
  readonly #backends: ReadonlyMap<string, Backend>;
  readonly #entries = new Map<string, Entry>();
  readonly #probeIntervalMs: number;
  #timer: NodeJS.Timeout | undefined;
  #probing: Promise<void> | undefined;

  constructor(backends: ReadonlyMap<string, Backend>, options: { probeIntervalMs?: number } = {}) {
    this.#backends = backends;
    this.#probeIntervalMs = options.probeIntervalMs ?? PROBE_INTERVAL_MS_DEFAULT;
    for (const name of backends.keys()) this.#entries.set(name, { state: 'unknown', latencyMs: undefined, lastError: undefined, sinceMs: Date.now() });
  }

  start(): void {
    void this.probeAll();
    this.#timer = setInterval(() => void this.probeAll(), this.#probeIntervalMs);
    this.#timer.unref();
  }

  stop(): void {
    clearInterval(this.#timer);
  }

  /** Probes every backend once (concurrently); never rejects. */
  probeAll(): Promise<void> {
    this.#probing ??= Promise.all(
      [...this.#backends].map(async ([name, backend]) => {
        const started = performance.now();
        try {
          await backend.stat(PROBE_KEY);
          this.reportSuccess(name, performance.now() - started);
        } catch (error) {
          this.reportFailure(name, error);
        }
      }),
    ).then(
      () => {
        this.#probing = undefined;
      },
      () => {
        this.#probing = undefined;
      },
    );
    return this.#probing;
  }

  reportSuccess(name: string, latencyMs?: number): void {
    const entry = this.#entries.get(name);
    if (entry === undefined) return;
    if (entry.state !== 'up') this.#set(entry, 'up');
    entry.lastError = undefined;
    if (latencyMs !== undefined) entry.latencyMs = entry.latencyMs === undefined ? latencyMs : entry.latencyMs * (1 - LATENCY_WEIGHT) + latencyMs * LATENCY_WEIGHT;
  }

  reportFailure(name: string, error: unknown): void {
    const entry = this.#entries.get(name);
    if (entry === undefined) return;
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

  latencyMs(name: string): number | undefined {
    return this.#entries.get(name)?.latencyMs;
  }

  snapshot(): BackendStatus[] {
    return [...this.#entries].map(([name, entry]) => ({ name, ...entry }));
  }
}

/** Up first, then unknown, then down; the order within each kept. */
export function healthiestFirst(health: BackendHealth, names: readonly string[]): string[] {
  const rank = (name: string): number => ({ up: 0, unknown: 1, down: 2 })[health.state(name)];
  return names.map((name, index) => ({ name, index })).sort((a, b) => rank(a.name) - rank(b.name) || a.index - b.index).map((entry) => entry.name);
}
