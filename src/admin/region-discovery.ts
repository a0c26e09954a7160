/**
 * Region discovery (S3Prism's feature, for any provider): measure candidate
 * S3 endpoints' latency and rank them, so a placement can be proposed over
 * the nearest. A probe is an unsigned `HEAD /` on a connection kept alive:
 * any HTTP answer (403 and 400 included: no credentials are sent) is one
 * round trip. The first probe of each endpoint opens the connection (DNS,
 * TCP, TLS) and is not counted; the N after it are.
 */
import { Agent, request } from 'undici';
import { assert } from '../util/assert.ts';

/** Endpoints one call measures at most. */
export const ENDPOINTS_MAX = 64;
/** Probes per endpoint at most: with PROBE_TIMEOUT_MS, a call ends within about a minute. */
export const PROBES_MAX = 20;
export const PROBES_DEFAULT = 5;
/** A probe not answered by then counts as failed. */
const PROBE_TIMEOUT_MS = 3_000;
/** Endpoints measured at once: enough to finish soon, few enough not to disturb each other's timings. */
const PROBE_CONCURRENCY = 8;
/** `{region}` in a provider's endpoint template, e.g. https://s3.{region}.amazonaws.com */
export const REGION_PLACEHOLDER = '{region}';
const REGION_NAME = /^[a-z0-9][a-z0-9-]{0,62}$/;

export interface EndpointCandidate {
  endpoint: string;
  region?: string | undefined;
}

export interface EndpointLatency extends EndpointCandidate {
  /** Probes answered (of those counted). */
  answered: number;
  failed: number;
  /** Round trips in ms, nearest-rank percentiles of the answered probes; null when none answered. */
  p50Ms: number | null;
  p95Ms: number | null;
  p99Ms: number | null;
  /** Mean absolute difference between consecutive round trips (RFC 3550's jitter, unsmoothed), ms. */
  jitterMs: number | null;
  /** Why probes failed (the last failure). */
  error?: string | undefined;
}

/** The candidates: a list of endpoints, or a template with `{region}` and its regions. Throws (a message for the caller) on bad input. */
export function candidates(input: { endpoints?: readonly string[] | undefined; template?: string | undefined; regions?: readonly string[] | undefined }): EndpointCandidate[] {
  const found: EndpointCandidate[] = [];
  for (const endpoint of input.endpoints ?? []) found.push({ endpoint });
  if (input.template !== undefined) {
    if (!input.template.includes(REGION_PLACEHOLDER)) throw new Error(`template must contain ${REGION_PLACEHOLDER}`);
    if (input.regions === undefined || input.regions.length === 0) throw new Error('a template needs regions');
    for (const region of input.regions) {
      if (!REGION_NAME.test(region)) throw new Error(`region ${JSON.stringify(region.slice(0, 64))} is not a region name (lower-case letters, digits, -)`);
      found.push({ endpoint: input.template.replaceAll(REGION_PLACEHOLDER, region), region });
    }
  } else if (input.regions !== undefined) {
    throw new Error('regions need a template');
  }
  if (found.length === 0) throw new Error('give endpoints, or a template and regions');
  if (found.length > ENDPOINTS_MAX) throw new Error(`at most ${ENDPOINTS_MAX} endpoints`);
  for (const candidate of found) {
    let url: URL;
    try {
      url = new URL(candidate.endpoint);
    } catch {
      throw new Error(`${JSON.stringify(candidate.endpoint.slice(0, 200))} is not a URL`);
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new Error(`${candidate.endpoint}: only http and https endpoints`);
    if (url.username !== '' || url.password !== '') throw new Error(`${url.host}: no credentials in endpoint URLs`);
  }
  return found;
}

/** Nearest-rank percentile of ascending `sorted`. */
function percentile(sorted: readonly number[], fraction: number): number {
  assert(sorted.length > 0, 'a percentile of something');
  return sorted[Math.min(sorted.length - 1, Math.ceil(fraction * sorted.length) - 1)]!;
}

export function summarize(candidate: EndpointCandidate, roundTripsMs: readonly number[], failed: number, error: string | undefined): EndpointLatency {
  const round = (ms: number): number => Math.round(ms * 100) / 100;
  if (roundTripsMs.length === 0) return { ...candidate, answered: 0, failed, p50Ms: null, p95Ms: null, p99Ms: null, jitterMs: null, error };
  const sorted = [...roundTripsMs].sort((a, b) => a - b);
  let differences = 0;
  for (let i = 1; i < roundTripsMs.length; i++) differences += Math.abs(roundTripsMs[i]! - roundTripsMs[i - 1]!);
  return {
    ...candidate,
    answered: roundTripsMs.length,
    failed,
    p50Ms: round(percentile(sorted, 0.5)),
    p95Ms: round(percentile(sorted, 0.95)),
    p99Ms: round(percentile(sorted, 0.99)),
    jitterMs: roundTripsMs.length < 2 ? 0 : round(differences / (roundTripsMs.length - 1)),
    ...(error === undefined ? {} : { error }),
  };
}

async function probeOnce(agent: Agent, endpoint: string): Promise<number> {
  const startedNs = process.hrtime.bigint();
  const response = await request(endpoint, { method: 'HEAD', dispatcher: agent, signal: AbortSignal.timeout(PROBE_TIMEOUT_MS), headersTimeout: PROBE_TIMEOUT_MS });
  const elapsedMs = Number(process.hrtime.bigint() - startedNs) / 1e6;
  await response.body.dump();
  return elapsedMs;
}

async function measure(candidate: EndpointCandidate, probes: number): Promise<EndpointLatency> {
  // One connection per endpoint, kept alive across its probes, closed after.
  const agent = new Agent({ connections: 1, keepAliveTimeout: 10_000, connect: { timeout: PROBE_TIMEOUT_MS } });
  const roundTrips: number[] = [];
  let failed = 0;
  let error: string | undefined;
  try {
    try {
      await probeOnce(agent, candidate.endpoint); // opens the connection: not a round trip to count
    } catch (cause) {
      return summarize(candidate, [], probes, describe(cause));
    }
    for (let i = 0; i < probes; i++) {
      try {
        roundTrips.push(await probeOnce(agent, candidate.endpoint));
      } catch (cause) {
        failed++;
        error = describe(cause);
      }
    }
    return summarize(candidate, roundTrips, failed, error);
  } finally {
    await agent.destroy();
  }
}

function describe(error: unknown): string {
  const cause = (error as { cause?: { code?: string } }).cause;
  const code = (error as { code?: string }).code ?? cause?.code;
  return code ?? (error instanceof Error ? error.message : String(error));
}

/** Measures every candidate (PROBE_CONCURRENCY at a time); answers them best first: reachable by p50, then p99, the unreachable last. */
export async function probeEndpoints(list: readonly EndpointCandidate[], probes: number): Promise<EndpointLatency[]> {
  assert(probes >= 1 && probes <= PROBES_MAX, 'probes in range');
  const results: EndpointLatency[] = new Array(list.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < list.length) {
      const index = next++;
      results[index] = await measure(list[index]!, probes);
    }
  };
  await Promise.all(Array.from({ length: Math.min(PROBE_CONCURRENCY, list.length) }, worker));
  return results.sort(compareLatency);
}

function compareLatency(a: EndpointLatency, b: EndpointLatency): number {
  if (a.p50Ms === null || b.p50Ms === null) return (a.p50Ms === null ? 1 : 0) - (b.p50Ms === null ? 1 : 0);
  return a.p50Ms - b.p50Ms || a.p99Ms! - b.p99Ms!;
}
