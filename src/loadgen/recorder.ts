/**
 * Per-operation counters and a latency histogram (HdrHistogram through
 * perf_hooks, in microseconds): constant memory however long the run.
 */
import { createHistogram, type RecordableHistogram } from 'node:perf_hooks';
import { MiB } from '../util/limits.ts';
import type { LatencySummary, LoadOperation, OperationStats, TotalStats } from './types.ts';

/** One hour in µs: a longer request is recorded as one hour. */
const LATENCY_MICROS_MAX = 3_600_000_000;
/** Three significant figures: p999 to within 0.1%. */
const HISTOGRAM_FIGURES = 3;

function newHistogram(): RecordableHistogram {
  return createHistogram({ lowest: 1, highest: LATENCY_MICROS_MAX, figures: HISTOGRAM_FIGURES });
}

export class OperationRecorder {
  readonly operation: LoadOperation;
  readonly histogram: RecordableHistogram = newHistogram();
  count = 0;
  errors = 0;
  bytes = 0;

  constructor(operation: LoadOperation) {
    this.operation = operation;
  }

  recordSuccess(latencyMs: number, bytes: number): void {
    this.count++;
    this.bytes += bytes;
    this.histogram.record(Math.min(LATENCY_MICROS_MAX, Math.max(1, Math.round(latencyMs * 1000))));
  }

  recordError(): void {
    this.errors++;
  }

  stats(durationMs: number): OperationStats {
    return { operation: this.operation, ...rates(this.count, this.errors, this.bytes, durationMs), latencyMs: summarize(this.histogram, this.count) };
  }
}

export function totalStats(recorders: readonly OperationRecorder[], durationMs: number): TotalStats {
  const merged = newHistogram();
  let count = 0;
  let errors = 0;
  let bytes = 0;
  for (const recorder of recorders) {
    merged.add(recorder.histogram);
    count += recorder.count;
    errors += recorder.errors;
    bytes += recorder.bytes;
  }
  return { operation: 'all', ...rates(count, errors, bytes, durationMs), latencyMs: summarize(merged, count) };
}

function rates(count: number, errors: number, bytes: number, durationMs: number): Omit<OperationStats, 'operation' | 'latencyMs'> {
  const seconds = durationMs / 1000;
  return {
    count,
    errors,
    bytes,
    opsPerSecond: seconds > 0 ? count / seconds : 0,
    mibPerSecond: seconds > 0 ? bytes / MiB / seconds : 0,
  };
}

function summarize(histogram: RecordableHistogram, count: number): LatencySummary {
  // An empty histogram reports min/mean as huge or NaN: report zeros.
  if (count === 0) return { p50: 0, p99: 0, p999: 0, max: 0, mean: 0 };
  return {
    p50: histogram.percentile(50) / 1000,
    p99: histogram.percentile(99) / 1000,
    p999: histogram.percentile(99.9) / 1000,
    max: histogram.max / 1000,
    mean: histogram.mean / 1000,
  };
}
