/** The load generator's public types and its bounds. */
import type { S3Client } from '../client/s3-client.ts';
import { GiB } from '../util/limits.ts';

export type LoadOperation = 'put' | 'get' | 'head' | 'delete' | 'list';
export type Workload = LoadOperation | 'mixed';

export const LOAD_OPERATIONS: readonly LoadOperation[] = ['put', 'get', 'head', 'delete', 'list'];
export const WORKLOADS: readonly Workload[] = [...LOAD_OPERATIONS, 'mixed'];

/** Bytes; min === max for a fixed size. */
export interface SizeRange {
  min: number;
  max: number;
}

export interface LoadOptions {
  client: S3Client;
  /** Must exist. */
  bucket: string;
  workload: Workload;
  /** Object sizes written by put/mixed; sizes of the objects prepared for get/head/delete/list. */
  size: SizeRange;
  /** Requests in flight. Give the client at least as many connections, or requests queue for one (and the wait counts as latency). */
  concurrency: number;
  /** Stop after this long ... */
  durationMs?: number;
  /** ... or after this many operations, whichever comes first (at least one of the two is required). */
  operations?: number;
  /** Default 'talus-bench/'. */
  keyPrefix?: string;
  /** get/head/delete/list/mixed: how many objects to prepare (default 1000). For delete, each key is deleted once and the run ends when all are gone. */
  keyCount?: number;
  /** User metadata on every PUT. */
  metadata?: Record<string, string>;
  /** mixed weights; default warp-like { get: 45, put: 15, head: 30, delete: 10 }. */
  mix?: Partial<Record<LoadOperation, number>>;
  /** list: each operation lists one page with these parameters (prefix defaults to keyPrefix). */
  list?: { prefix?: string; delimiter?: string; startAfter?: string; maxKeys?: number };
  /** Default true: create the objects get/head/delete/list/mixed need before the timed part (not timed). */
  prepare?: boolean;
  /** Called about every progressIntervalMs during the timed part. */
  onProgress?: (progress: LoadProgress) => void;
  /** Default 1000. */
  progressIntervalMs?: number;
  /** Stops issuing requests; those in flight finish and the report covers what was done. */
  signal?: AbortSignal;
}

export interface LoadProgress {
  elapsedMs: number;
  operations: number;
  errors: number;
  bytes: number;
  /** Over the last interval. */
  opsPerSecond: number;
}

/** Milliseconds. */
export interface LatencySummary {
  p50: number;
  p99: number;
  p999: number;
  max: number;
  mean: number;
}

export interface OperationStats {
  operation: LoadOperation;
  /** Successful operations (errors are counted apart and left out of the latencies). */
  count: number;
  errors: number;
  /** Object bytes sent (put) or received (get). */
  bytes: number;
  opsPerSecond: number;
  mibPerSecond: number;
  latencyMs: LatencySummary;
}

export interface TotalStats extends Omit<OperationStats, 'operation'> {
  operation: 'all';
}

export interface LoadReport {
  workload: Workload;
  concurrency: number;
  /** The timed part, until the last request in flight finished. */
  durationMs: number;
  total: TotalStats;
  byOperation: OperationStats[];
  /** This process's CPU (process.cpuUsage) during the timed part. */
  client: { cpuMicrosPerRequest: number; cpuPercentOfOneCore: number };
  /** Up to 10 distinct error messages. */
  firstErrors: string[];
}

// Bounds: every input dimension has one.
export const CONCURRENCY_MAX = 4096;
export const OBJECT_BYTES_MAX = 5 * GiB;
export const KEY_COUNT_MAX = 10_000_000;
export const KEY_COUNT_DEFAULT = 1000;
export const DURATION_MS_MAX = 7 * 24 * 3600 * 1000;
export const OPERATIONS_MAX = 1e12;
export const PROGRESS_INTERVAL_MS_MIN = 10;
export const PROGRESS_INTERVAL_MS_DEFAULT = 1000;
/** Leaves room for the generated part of a key (S3 keys are at most 1024 bytes). */
export const KEY_PREFIX_BYTES_MAX = 900;
export const KEY_PREFIX_DEFAULT = 'talus-bench/';
export const FIRST_ERRORS_MAX = 10;
export const MIX_DEFAULT: Readonly<Partial<Record<LoadOperation, number>>> = { get: 45, put: 15, head: 30, delete: 10 };
