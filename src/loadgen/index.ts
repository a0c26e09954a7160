/** The load generator: a library (runLoad and friends) behind `talus bench` and the benchmark suite. */
export type { LatencySummary, LoadOperation, LoadOptions, LoadProgress, LoadReport, OperationStats, SizeRange, TotalStats, Workload } from './types.ts';
export { CONCURRENCY_MAX, KEY_COUNT_MAX, KEY_PREFIX_DEFAULT, LOAD_OPERATIONS, MIX_DEFAULT, OBJECT_BYTES_MAX, WORKLOADS } from './types.ts';
export { runLoad } from './run-load.ts';
export { prepareObjects, type PrepareObjectsOptions } from './prepare.ts';
export { formatProgress, formatReport } from './report.ts';
export { formatBytes, formatSizeRange, parseDuration, parseSize, parseSizeRange, sizeOfObject } from './sizes.ts';
