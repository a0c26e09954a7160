/**
 * The bulk-metadata workload's driver: what a backup or sync tool does
 * first — list every object under a prefix page by page, and HEAD each one
 * for its metadata. Serially (one request at a time, the next page listed
 * after the last HEAD of this one), or with `inFlight` HEADs at once and the
 * next page listed meanwhile. The result is objects per second over the
 * whole walk; the latencies are the HEADs'.
 */
import { createHistogram } from 'node:perf_hooks';
import { S3RequestError, type ListObjectsPage, type S3Client } from '../../src/client/s3-client.ts';
import { assert } from '../../src/util/assert.ts';
import type { DriverResult } from './measure.ts';

const PAGE_KEYS = 1000;
const FIRST_ERRORS_MAX = 10;
const LATENCY_MICROS_MAX = 3_600_000_000;

export interface WalkOptions {
  client: S3Client;
  bucket: string;
  prefix: string;
  /** Objects expected under the prefix (a walk that finds another number counts the difference as errors). */
  expectedObjects: number;
  /** HEADs in flight: 1 for the serial walk. */
  inFlight: number;
  /** Every object must carry these (x-amz-meta-*). */
  expectedMetadata: Readonly<Record<string, string>>;
}

export async function walkAndHead(options: WalkOptions): Promise<DriverResult> {
  assert(Number.isInteger(options.inFlight) && options.inFlight >= 1, 'walk: HEADs in flight');
  const state: WalkState = { listed: 0, objects: 0, errors: 0, firstErrors: new Set<string>(), histogram: createHistogram({ lowest: 1, highest: LATENCY_MICROS_MAX, figures: 3 }) };
  const pagesMax = Math.ceil(options.expectedObjects / PAGE_KEYS) + 10;
  const startMs = performance.now();
  let page = await listPage(options, undefined);
  for (let pages = 1; ; pages++) {
    if (pages > pagesMax) throw new Error(`walk: more than ${pagesMax} pages under ${options.prefix}`);
    // Serially, the next page waits for the last HEAD; in parallel it is listed meanwhile.
    const token = page.isTruncated ? page.nextContinuationToken : undefined;
    const nextPage = token !== undefined && options.inFlight > 1 ? listPage(options, token) : undefined;
    await headAll(options, page.keys, state);
    if (token === undefined) break;
    page = await (nextPage ?? listPage(options, token));
  }
  const durationMs = performance.now() - startMs;
  if (state.listed !== options.expectedObjects) {
    state.errors += Math.abs(options.expectedObjects - state.listed);
    state.firstErrors.add(`walk: listed ${state.listed} objects, expected ${options.expectedObjects}`);
  }
  const seconds = durationMs / 1000;
  return {
    operations: state.objects,
    errors: state.errors,
    firstErrors: [...state.firstErrors].slice(0, FIRST_ERRORS_MAX),
    durationMs,
    opsPerSecond: seconds > 0 ? state.objects / seconds : 0,
    mibPerSecond: 0,
    latencyMs: state.objects === 0 ? { p50: 0, p99: 0 } : { p50: state.histogram.percentile(50) / 1000, p99: state.histogram.percentile(99) / 1000 },
  };
}

interface WalkState {
  listed: number;
  objects: number;
  errors: number;
  firstErrors: Set<string>;
  histogram: ReturnType<typeof createHistogram>;
}

function listPage(options: WalkOptions, continuationToken: string | undefined): Promise<ListObjectsPage> {
  return options.client.listObjectsV2(options.bucket, { prefix: options.prefix, maxKeys: PAGE_KEYS, continuationToken });
}

/** HEADs `keys`, `inFlight` at a time. */
async function headAll(options: WalkOptions, keys: readonly string[], state: WalkState): Promise<void> {
  state.listed += keys.length;
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < keys.length) await headOne(options, keys[next++]!, state);
  };
  const workers: Promise<void>[] = [];
  for (let index = 0; index < Math.min(options.inFlight, keys.length); index++) workers.push(worker());
  await Promise.all(workers);
}

async function headOne(options: WalkOptions, key: string, state: WalkState): Promise<void> {
  const startMs = performance.now();
  try {
    const response = await options.client.headObject(options.bucket, key);
    const latencyMicros = Math.round((performance.now() - startMs) * 1000);
    for (const [name, value] of Object.entries(options.expectedMetadata)) {
      if (response.headers[`x-amz-meta-${name}`] !== value) throw new Error(`x-amz-meta-${name} missing or wrong`);
    }
    state.histogram.record(Math.min(LATENCY_MICROS_MAX, Math.max(1, latencyMicros)));
    state.objects++;
  } catch (error) {
    state.errors++;
    if (state.firstErrors.size < FIRST_ERRORS_MAX) state.firstErrors.add(describeError(error));
  }
}

function describeError(error: unknown): string {
  if (error instanceof S3RequestError) return `head: ${error.status} ${error.code}`;
  return `head: ${error instanceof Error ? error.message : String(error)}`;
}
