/**
 * CORS on the request path: OPTIONS preflights answered from the bucket's
 * rules (no signature, as AWS: a browser sends none), and the
 * Access-Control-* headers of actual requests. The rules and their matching
 * are src/s3/cors.ts's; this file only turns a match into headers.
 * A request without an Origin header never gets here (server.ts checks the
 * one header), so the hot path pays nothing else.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Engine } from '../engine/engine.ts';
import type { BucketRecord } from '../meta/types.ts';
import type { S3Response } from '../s3/context.ts';
import { type CorsMatch, corsRulesOf, matchCorsRule } from '../s3/cors.ts';
import { S3Error, isS3Error } from '../util/s3-error.ts';
import { resolveAddress } from './route.ts';

/** Caches must keep answers to different origins (and preflight asks) apart. */
const VARY = 'Origin, Access-Control-Request-Headers, Access-Control-Request-Method';

/**
 * OPTIONS: 200 with the matching rule's headers; 400 without Origin or
 * Access-Control-Request-Method; 403 (AccessForbidden, "CORSResponse: …")
 * when the bucket has no rules or none allows the request.
 */
export async function answerPreflight(engine: Engine, domain: string | undefined, request: IncomingMessage, rawPath: string): Promise<S3Response> {
  const origin = singleHeader(request, 'origin');
  if (origin === undefined) throw new S3Error('InvalidRequest', 'Insufficient information. Origin request header needed.');
  const method = singleHeader(request, 'access-control-request-method');
  if (method === undefined) throw new S3Error('InvalidRequest', 'Invalid Access-Control-Request-Method: null');
  const { bucket } = resolveAddress(rawPath, request.headers.host, domain);
  if (bucket === '') throw new S3Error('InvalidRequest', 'Insufficient information. Bucket name needed.');
  const record = await findBucket(engine, bucket);
  const rules = record === undefined ? undefined : corsRulesOf(record);
  if (rules === undefined) throw new S3Error('AccessForbidden', 'CORSResponse: This CORS request is not allowed. This is usually because the bucket has no CORS configuration.');
  const requestedHeaders = headerList(singleHeader(request, 'access-control-request-headers'));
  const match = matchCorsRule(rules, origin, method, requestedHeaders);
  if (match === undefined) throw new S3Error('AccessForbidden');
  const headers = matchHeaders(match, origin);
  if (requestedHeaders.length > 0) headers['access-control-allow-headers'] = requestedHeaders.join(', ');
  if (match.rule.maxAgeSeconds !== undefined) headers['access-control-max-age'] = String(match.rule.maxAgeSeconds);
  return { status: 200, headers };
}

/**
 * An actual request with an Origin header: the Access-Control-* headers of
 * the first rule allowing it, set on the response before anything is
 * written, so answers and errors (403, 404) alike carry them, as AWS's do.
 * The method matched is the request's own: Access-Control-Request-Method
 * belongs to preflights, and AWS ignores it on an actual request ("the
 * request method (for example, GET or PUT) or the Access-Control-Request-Method
 * header in case of a preflight OPTIONS request", How Amazon S3 evaluates
 * the CORS configuration). Ceph RGW matches it when sent, and ceph/s3-tests'
 * test_cors_origin_response expects that; browsers never send it on an
 * actual request (a forbidden header), so only that test sees a difference.
 * Never fails the request: a missing bucket or a bad path gets no CORS
 * headers, and the request then fails on its own terms.
 */
export async function decorateCorsResponse(engine: Engine, domain: string | undefined, request: IncomingMessage, response: ServerResponse, rawPath: string, method: string): Promise<void> {
  if (method === 'OPTIONS') return;
  const origin = singleHeader(request, 'origin');
  if (origin === undefined) return;
  let bucket: string;
  try {
    bucket = resolveAddress(rawPath, request.headers.host, domain).bucket;
  } catch {
    return;
  }
  if (bucket === '') return;
  const record = await findBucket(engine, bucket);
  const rules = record === undefined ? undefined : corsRulesOf(record);
  if (rules === undefined) return;
  response.setHeader('vary', VARY);
  const match = matchCorsRule(rules, origin, method, []);
  if (match === undefined) return;
  for (const [name, value] of Object.entries(matchHeaders(match, origin))) response.setHeader(name, value);
}

function matchHeaders(match: CorsMatch, origin: string): Record<string, string> {
  const headers: Record<string, string> = {
    'access-control-allow-origin': match.anyOrigin ? '*' : origin,
    'access-control-allow-methods': match.rule.allowedMethods.join(', '),
    vary: VARY,
  };
  // Credentials only for an origin the rule names: `*` with credentials would let any site act as the user.
  // A rule's wildcard pattern (https://*.example.org) names origins too: the matching origin is echoed with
  // credentials allowed, as AWS answers. So every origin such a pattern matches (any subdomain, whoever
  // controls it) may send the user's cookies along; S3 authenticates by signature, not cookies, so this
  // only matters to a bucket behind a cookie-authenticating proxy, whose owner should then name origins exactly.
  if (!match.anyOrigin) headers['access-control-allow-credentials'] = 'true';
  if (match.rule.exposeHeaders.length > 0) headers['access-control-expose-headers'] = match.rule.exposeHeaders.join(', ');
  return headers;
}

async function findBucket(engine: Engine, name: string): Promise<BucketRecord | undefined> {
  try {
    return await engine.getBucket(name);
  } catch (error) {
    if (isS3Error(error)) return undefined;
    throw error;
  }
}

function singleHeader(request: IncomingMessage, name: string): string | undefined {
  const value = request.headers[name];
  return Array.isArray(value) ? value.join(',') : value;
}

/** 'X-Amz-Date, content-type' → ['x-amz-date', 'content-type'] */
function headerList(value: string | undefined): string[] {
  if (value === undefined) return [];
  return value.split(',').map((name) => name.trim().toLowerCase()).filter((name) => name !== '');
}
