/**
 * What the S3 front records per request: counts by operation and status,
 * duration and time-to-first-byte histograms, bytes in and out, requests in
 * flight and authentication failures by reason. Labels are bounded: the
 * operation (a fixed set of names), the status code and the failure reason —
 * never a bucket or a key.
 *
 * Each operation's children are resolved once and kept, so a request costs a
 * Map lookup and a handful of additions.
 */
import type { ObservedRequest } from './observed-request.ts';
import type { CounterChild, HistogramChild, Registry } from './registry.ts';
import type { Counter, Gauge } from './registry.ts';

/** Seconds: from 0.5 ms (a cached small GET) to 60 s (a large upload). */
export const LATENCY_BUCKETS_SECONDS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

/** S3 error codes that mean the caller was not authenticated or not authorized (the auth-failure reasons). */
export const AUTH_FAILURES: ReadonlySet<string> = new Set([
  'AccessDenied', 'SignatureDoesNotMatch', 'InvalidAccessKeyId', 'RequestTimeTooSkewed', 'ExpiredToken',
  'AuthorizationHeaderMalformed', 'AuthorizationQueryParametersError', 'XAmzContentSHA256Mismatch', 'MissingSecurityHeader',
]);

interface OperationChildren {
  duration: HistogramChild;
  firstByte: HistogramChild;
  received: CounterChild;
  sent: CounterChild;
  byStatus: Map<number, CounterChild>;
}

/** What the metrics need of an observed request. */
export type FinishedRequest = Pick<ObservedRequest, 'operation' | 'status' | 'startedMs' | 'headersSentMs' | 'finishedMs' | 'bytesIn' | 'bytesOut' | 'errorCode'>;

export class RequestMetrics {
  readonly #requests: Counter;
  readonly #duration;
  readonly #firstByte;
  readonly #received: Counter;
  readonly #sent: Counter;
  readonly #inFlight;
  readonly #authFailures: Counter;
  readonly #byOperation = new Map<string, OperationChildren>();

  constructor(registry: Registry) {
    this.#requests = registry.counter('talus_s3_requests_total', 'S3 requests answered, by operation and HTTP status.', ['operation', 'status']);
    this.#duration = registry.histogram('talus_s3_request_duration_seconds', 'Time from the request\'s arrival to its last byte sent.', ['operation'], LATENCY_BUCKETS_SECONDS);
    this.#firstByte = registry.histogram('talus_s3_time_to_first_byte_seconds', 'Time from the request\'s arrival to the response headers.', ['operation'], LATENCY_BUCKETS_SECONDS);
    this.#received = registry.counter('talus_s3_received_bytes_total', 'Request body bytes received (Content-Length), by operation.', ['operation']);
    this.#sent = registry.counter('talus_s3_sent_bytes_total', 'Response body bytes sent (Content-Length), by operation.', ['operation']);
    this.#inFlight = (registry.gauge('talus_s3_requests_in_flight', 'S3 requests being served now.') as Gauge).labels();
    this.#authFailures = registry.counter('talus_s3_auth_failures_total', 'Requests refused for their authentication or authorization, by S3 error code.', ['reason']);
  }

  started(): void {
    this.#inFlight.inc();
  }

  finished(request: FinishedRequest): void {
    this.#inFlight.dec();
    const children = this.#children(request.operation);
    let byStatus = children.byStatus.get(request.status);
    if (byStatus === undefined) {
      byStatus = this.#requests.labels(request.operation, String(request.status));
      children.byStatus.set(request.status, byStatus);
    }
    byStatus.inc();
    children.duration.observe((request.finishedMs - request.startedMs) / 1000);
    children.firstByte.observe((request.headersSentMs - request.startedMs) / 1000);
    if (request.bytesIn > 0) children.received.inc(request.bytesIn);
    if (request.bytesOut > 0) children.sent.inc(request.bytesOut);
    if (request.errorCode !== undefined && AUTH_FAILURES.has(request.errorCode)) this.#authFailures.labels(request.errorCode).inc();
  }

  #children(operation: string): OperationChildren {
    let children = this.#byOperation.get(operation);
    if (children === undefined) {
      children = {
        duration: this.#duration.labels(operation),
        firstByte: this.#firstByte.labels(operation),
        received: this.#received.labels(operation),
        sent: this.#sent.labels(operation),
        byStatus: new Map(),
      };
      this.#byOperation.set(operation, children);
    }
    return children;
  }
}
