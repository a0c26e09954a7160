/**
 * Health probes at MinIO's paths, which load balancers and Kubernetes
 * probes written for MinIO already use:
 *
 * - `GET|HEAD /minio/health/live`: 200 while the process serves requests.
 * - `GET|HEAD /minio/health/ready`: 200 while this server can take writes
 *   safely; 503 while its metadata store refuses them (a failed WAL sync, a
 *   database deleted or replaced under it), so a balancer sends traffic
 *   elsewhere and an orchestrator can restart it after the operator acted.
 *
 * Unauthenticated, like MinIO's, and only for unsigned requests: a signed
 * request for a bucket named "minio" is an S3 request like any other. The
 * bodies are empty (the reason is in the server's log, not for anonymous
 * callers).
 */
import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http';

export const LIVE_PATH = '/minio/health/live';
export const READY_PATH = '/minio/health/ready';

/** What the readiness probe asks: why the server is not ready, or undefined when it is. */
export interface Readiness {
  unreadyReason(): string | undefined;
}

function isSigned(headers: IncomingHttpHeaders, rawQuery: string): boolean {
  return headers.authorization !== undefined || /(^|&)X-Amz-(Signature|Credential)=/i.test(rawQuery);
}

/** Answers a health probe and returns true; returns false, touching nothing, for every other request. */
export function answerHealthProbe(request: IncomingMessage, response: ServerResponse, rawPath: string, rawQuery: string, readiness: Readiness): boolean {
  if (rawPath !== LIVE_PATH && rawPath !== READY_PATH) return false;
  const method = request.method ?? 'GET';
  if ((method !== 'GET' && method !== 'HEAD') || isSigned(request.headers, rawQuery)) return false;
  const status = rawPath === READY_PATH && readiness.unreadyReason() !== undefined ? 503 : 200;
  response.writeHead(status, { 'content-length': '0', 'cache-control': 'no-store', server: 'Talus' });
  response.end();
  // A probe with a body (there should be none) must not hold the connection.
  if (!request.complete) request.resume();
  return true;
}
