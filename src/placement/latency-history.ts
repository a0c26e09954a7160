/**
 * The recent probe latencies of one backend, for the console's latency chart
 * (ListBackends' `latencyHistory`): a ring of the last
 * LATENCY_HISTORY_SAMPLES_MAX probes, oldest overwritten. A failed probe is a
 * sample without latency (a gap in the chart), so an outage shows as one.
 * Prometheus keeps the long history (talus_backend_latency_seconds); this
 * is what the console can show without one.
 */
import { assert } from '../util/assert.ts';

/** 120 probes: 20 minutes at the default 10 s probe interval; 2 KB of numbers per backend. */
export const LATENCY_HISTORY_SAMPLES_MAX = 120;

export interface LatencySample {
  /** When the probe ended (ms since the epoch). */
  readonly atMs: number;
  /** Its answer time; null when the probe failed or timed out. */
  readonly latencyMs: number | null;
}

export class LatencyHistory {
  readonly #atMs = new Float64Array(LATENCY_HISTORY_SAMPLES_MAX);
  /** NaN: the probe failed. */
  readonly #latencyMs = new Float64Array(LATENCY_HISTORY_SAMPLES_MAX);
  /** Where the next sample goes. */
  #next = 0;
  #count = 0;

  record(atMs: number, latencyMs: number | undefined): void {
    assert(latencyMs === undefined || (Number.isFinite(latencyMs) && latencyMs >= 0), 'a latency is a finite, non-negative number of ms');
    this.#atMs[this.#next] = atMs;
    this.#latencyMs[this.#next] = latencyMs ?? Number.NaN;
    this.#next = (this.#next + 1) % LATENCY_HISTORY_SAMPLES_MAX;
    this.#count = Math.min(this.#count + 1, LATENCY_HISTORY_SAMPLES_MAX);
  }

  /** The samples, oldest first. */
  samples(): LatencySample[] {
    const samples: LatencySample[] = [];
    const first = (this.#next - this.#count + LATENCY_HISTORY_SAMPLES_MAX) % LATENCY_HISTORY_SAMPLES_MAX;
    for (let index = 0; index < this.#count; index++) {
      const at = (first + index) % LATENCY_HISTORY_SAMPLES_MAX;
      const latencyMs = this.#latencyMs[at]!;
      samples.push({ atMs: this.#atMs[at]!, latencyMs: Number.isNaN(latencyMs) ? null : latencyMs });
    }
    assert(samples.length <= LATENCY_HISTORY_SAMPLES_MAX, 'the history is bounded');
    return samples;
  }
}
