/**
 * Checks LoadOptions against the bounds and fills in the defaults. Options
 * come from people (the CLI) as often as from code, so a bad one is a
 * RangeError with a message, not an assertion.
 */
import {
  CONCURRENCY_MAX,
  DURATION_MS_MAX,
  KEY_COUNT_DEFAULT,
  KEY_COUNT_MAX,
  KEY_PREFIX_BYTES_MAX,
  KEY_PREFIX_DEFAULT,
  LOAD_OPERATIONS,
  MIX_DEFAULT,
  OBJECT_BYTES_MAX,
  OPERATIONS_MAX,
  PROGRESS_INTERVAL_MS_DEFAULT,
  PROGRESS_INTERVAL_MS_MIN,
  WORKLOADS,
  type LoadOperation,
  type LoadOptions,
  type SizeRange,
} from './types.ts';

/** LoadOptions with every default applied and every bound checked. */
export interface RunConfig {
  readonly options: LoadOptions;
  readonly keyPrefix: string;
  readonly keyCount: number;
  readonly prepare: boolean;
  readonly durationMs: number | undefined;
  readonly operations: number | undefined;
  readonly progressIntervalMs: number;
  /** The operations this run performs, with their weights (one entry for a single-operation workload). */
  readonly weights: readonly (readonly [LoadOperation, number])[];
}

export function checkConcurrency(value: number): void {
  checkInteger('concurrency', value, 1, CONCURRENCY_MAX);
}

export function checkKeyCount(value: number): void {
  checkInteger('keyCount', value, 1, KEY_COUNT_MAX);
}

export function checkSizeRange(size: SizeRange): void {
  checkInteger('size.min', size.min, 0, OBJECT_BYTES_MAX);
  checkInteger('size.max', size.max, 0, OBJECT_BYTES_MAX);
  if (size.min > size.max) throw new RangeError(`size.min ${size.min} is above size.max ${size.max}`);
}

export function checkKeyPrefix(prefix: string): void {
  if (Buffer.byteLength(prefix) > KEY_PREFIX_BYTES_MAX) throw new RangeError(`keyPrefix is longer than ${KEY_PREFIX_BYTES_MAX} bytes`);
}

function checkInteger(name: string, value: number, min: number, max: number): void {
  if (!Number.isSafeInteger(value) || value < min || value > max) throw new RangeError(`${name} must be an integer from ${min} to ${max}, not ${value}`);
}

export function normalizeOptions(options: LoadOptions): RunConfig {
  if (!WORKLOADS.includes(options.workload)) throw new RangeError(`unknown workload ${JSON.stringify(options.workload)}`);
  checkConcurrency(options.concurrency);
  checkSizeRange(options.size);
  if (options.durationMs === undefined && options.operations === undefined) throw new RangeError('give durationMs, operations or both');
  if (options.durationMs !== undefined) checkInteger('durationMs', options.durationMs, 1, DURATION_MS_MAX);
  if (options.operations !== undefined) checkInteger('operations', options.operations, 1, OPERATIONS_MAX);
  const keyPrefix = options.keyPrefix ?? KEY_PREFIX_DEFAULT;
  checkKeyPrefix(keyPrefix);
  const keyCount = options.keyCount ?? KEY_COUNT_DEFAULT;
  checkKeyCount(keyCount);
  const progressIntervalMs = options.progressIntervalMs ?? PROGRESS_INTERVAL_MS_DEFAULT;
  checkInteger('progressIntervalMs', progressIntervalMs, PROGRESS_INTERVAL_MS_MIN, DURATION_MS_MAX);
  return {
    options,
    keyPrefix,
    keyCount,
    prepare: options.prepare ?? true,
    durationMs: options.durationMs,
    operations: options.operations,
    progressIntervalMs,
    weights: options.workload === 'mixed' ? mixWeights(options.mix ?? MIX_DEFAULT) : [[options.workload, 1]],
  };
}

function mixWeights(mix: Partial<Record<LoadOperation, number>>): [LoadOperation, number][] {
  const weights: [LoadOperation, number][] = [];
  for (const [operation, weight] of Object.entries(mix)) {
    if (!LOAD_OPERATIONS.includes(operation as LoadOperation)) throw new RangeError(`unknown operation ${JSON.stringify(operation)} in mix`);
    if (weight === undefined) continue;
    if (!Number.isFinite(weight) || weight < 0 || weight > 1e6) throw new RangeError(`mix weight of ${operation} must be from 0 to 1e6, not ${weight}`);
    if (weight > 0) weights.push([operation as LoadOperation, weight]);
  }
  if (weights.length === 0) throw new RangeError('mix has no operation with a weight above 0');
  return weights;
}
