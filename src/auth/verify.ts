/**
 * verifyRequest: everything decidable from the request line and headers is
 * checked here, synchronously (auth parts, key, time, signature); what depends
 * on the body is checked by the returned body stream as it flows.
 */
import type { IncomingHttpHeaders } from 'node:http';
import { CLOCK_SKEW_MS_MAX } from '../util/limits.ts';
import { S3Error } from '../util/s3-error.ts';
import {
  checkScopeDate,
  parseAuthorizationHeader,
  parsePresignQuery,
  presignVersion,
  unsupportedMechanism,
  type SignatureParams,
} from './auth-params.ts';
import { buildCanonicalRequest, checkSignedHeadersCover } from './canonical.ts';
import { AwsChunkedDecoder } from './chunked.ts';
import { feed, parseLength, payloadMode, PlainBodyVerifier, UNSIGNED_PAYLOAD, type PayloadMode } from './payload.ts';
import { EMPTY_SHA256, hmac, requestStringToSign, signatureMatches, signingKey, type SigningContext } from './signing.ts';
import type { AuthRequest, SecretLookup, VerifiedRequest } from './types.ts';
import { canonicalQuery, canonicalUri, splitQuery, type RawQueryParam } from './uri-encode.ts';

interface Authenticated {
  readonly accessKeyId: string;
  readonly mode: PayloadMode;
  readonly signing: SigningContext;
}

/** Throws S3Error for anything decidable from the headers/query; the body stream checks the rest. */
export function verifyRequest(req: AuthRequest, lookup: SecretLookup, nowMs: number = Date.now()): VerifiedRequest {
  const query = splitQuery(req.rawQuery);
  const authorization = req.headers.authorization;
  const presign = presignVersion(query);
  let auth: Authenticated | null = null;
  if (authorization !== undefined) {
    if (presign !== null) {
      throw new S3Error(
        'InvalidArgument',
        'Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter, Signature query string parameter or the Authorization header should be specified',
        { ArgumentName: 'Authorization', ArgumentValue: authorization.slice(0, 64) },
      );
    }
    auth = verifyHeaderAuth(req, query, authorization, lookup, nowMs);
  } else if (presign === 4) {
    auth = verifyPresigned(req, query, lookup, nowMs);
  } else if (presign === 2) {
    throw unsupportedMechanism();
  }
  return verifiedBody(req, auth);
}

function verifyHeaderAuth(req: AuthRequest, query: readonly RawQueryParam[], authorization: string, lookup: SecretLookup, nowMs: number): Authenticated {
  const params = parseAuthorizationHeader(authorization);
  const secret = lookupSecret(lookup, params.accessKeyId);
  const contentSha256 = singleHeader(req.headers, 'x-amz-content-sha256');
  // S3 requires it with header auth: it says how the payload is signed.
  if (contentSha256 === undefined) throw new S3Error('InvalidRequest', 'Missing required header for this request: x-amz-content-sha256');
  const mode = payloadMode(contentSha256);
  const { amzDate, dateMs } = requestTime(req.headers);
  checkScopeDate(params, amzDate);
  if (Math.abs(nowMs - dateMs) > CLOCK_SKEW_MS_MAX) {
    throw new S3Error('RequestTimeTooSkewed', undefined, {
      RequestTime: amzDate,
      ServerTime: new Date(nowMs).toISOString(),
      MaxAllowedSkewMilliseconds: String(CLOCK_SKEW_MS_MAX),
    });
  }
  checkSignedHeadersCover(req.headers, params.signedHeaders);
  const canonical = buildCanonicalRequest(req.method, canonicalUri(req.rawPath), canonicalQuery(query, false), req.headers, params.signedHeaders, contentSha256);
  return { accessKeyId: params.accessKeyId, mode, signing: checkSignature(params, secret, amzDate, canonical) };
}

function verifyPresigned(req: AuthRequest, query: readonly RawQueryParam[], lookup: SecretLookup, nowMs: number): Authenticated {
  const params = parsePresignQuery(query);
  const dateMs = parseAmzDate(params.amzDate);
  if (Number.isNaN(dateMs)) {
    throw new S3Error('AuthorizationQueryParametersError', 'X-Amz-Date must be in the ISO8601 Long Format "yyyyMMdd\'T\'HHmmss\'Z\'".');
  }
  checkScopeDate(params, params.amzDate);
  const secret = lookupSecret(lookup, params.accessKeyId);
  if (dateMs - nowMs > CLOCK_SKEW_MS_MAX) throw new S3Error('AccessDenied', 'Request is not valid yet');
  const expiresMs = dateMs + params.expiresSeconds * 1000;
  if (nowMs > expiresMs) {
    throw new S3Error('AccessDenied', 'Request has expired', {
      'X-Amz-Expires': String(params.expiresSeconds),
      Expires: new Date(expiresMs).toISOString(),
      ServerTime: new Date(nowMs).toISOString(),
    });
  }
  checkSignedHeadersCover(req.headers, params.signedHeaders);
  // Presigned URLs normally sign UNSIGNED-PAYLOAD; a signer may put a hash in the query, a client in a header.
  const payloadHash = params.contentSha256 ?? singleHeader(req.headers, 'x-amz-content-sha256') ?? UNSIGNED_PAYLOAD;
  const mode = payloadMode(payloadHash);
  const canonical = buildCanonicalRequest(req.method, canonicalUri(req.rawPath), canonicalQuery(query, true), req.headers, params.signedHeaders, payloadHash);
  return { accessKeyId: params.accessKeyId, mode, signing: checkSignature(params, secret, params.amzDate, canonical) };
}

function lookupSecret(lookup: SecretLookup, accessKeyId: string): string {
  const secret = lookup(accessKeyId);
  if (secret === undefined) throw new S3Error('InvalidAccessKeyId', undefined, { AWSAccessKeyId: accessKeyId });
  return secret;
}

function checkSignature(params: SignatureParams, secret: string, amzDate: string, canonical: string): SigningContext {
  const key = signingKey(secret, params.scopeDate, params.region);
  const stringToSign = requestStringToSign(amzDate, params.scope, canonical);
  const expected = hmac(key, stringToSign);
  if (!signatureMatches(expected, params.signature)) {
    // Like AWS, show what we signed: it is how a client finds its encoding bug.
    throw new S3Error('SignatureDoesNotMatch', undefined, {
      AWSAccessKeyId: params.accessKeyId,
      StringToSign: stringToSign,
      SignatureProvided: params.signature.slice(0, 128),
      CanonicalRequest: canonical,
    });
  }
  return { key, amzDate, scope: params.scope, seedSignature: expected.toString('hex') };
}

function singleHeader(headers: IncomingHttpHeaders, name: string): string | undefined {
  const value = headers[name];
  return Array.isArray(value) ? value.join(',') : value;
}

const AMZ_DATE = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/;

/**
 * Timestamps parsed lately: concurrent header-signed requests mostly share
 * their second, and presigned URLs handed out together their X-Amz-Date,
 * though requests using several of them interleave (one remembered
 * timestamp missed for most presigned GETs: profiled, issue 17). Bounded;
 * emptied when full.
 */
const AMZ_DATES_KEPT = 64;
const amzDates = new Map<string, number>();

/** Milliseconds of an ISO 8601 basic timestamp (20130524T000000Z); NaN unless it is a real date and time. */
function parseAmzDate(text: string): number {
  const known = amzDates.get(text);
  if (known !== undefined) return known;
  const match = AMZ_DATE.exec(text);
  if (match === null) return NaN;
  const ms = Date.UTC(Number(match[1]), Number(match[2]) - 1, Number(match[3]), Number(match[4]), Number(match[5]), Number(match[6]));
  // Date.UTC rolls 20130231 over into March; a real timestamp formats back to itself.
  const parsed = toAmzDate(ms) === text ? ms : NaN;
  if (amzDates.size >= AMZ_DATES_KEPT) amzDates.clear();
  amzDates.set(text, parsed);
  return parsed;
}

function toAmzDate(ms: number): string {
  const iso = new Date(ms).toISOString(); // 2013-05-24T00:00:00.000Z
  return `${iso.slice(0, 4)}${iso.slice(5, 7)}${iso.slice(8, 10)}T${iso.slice(11, 13)}${iso.slice(14, 16)}${iso.slice(17, 19)}Z`;
}

/** The request time from x-amz-date, or else from Date (an HTTP date, signed as ISO 8601 basic). */
function requestTime(headers: IncomingHttpHeaders): { amzDate: string; dateMs: number } {
  const amzDate = singleHeader(headers, 'x-amz-date');
  let dateMs = NaN;
  if (amzDate !== undefined) dateMs = parseAmzDate(amzDate);
  else if (headers.date !== undefined) dateMs = AMZ_DATE.test(headers.date) ? parseAmzDate(headers.date) : Date.parse(headers.date);
  if (Number.isNaN(dateMs)) throw new S3Error('AccessDenied', 'AWS authentication requires a valid Date or x-amz-date header');
  return { amzDate: amzDate ?? toAmzDate(dateMs), dateMs };
}

function announcedTrailers(headers: IncomingHttpHeaders): string[] {
  const value = singleHeader(headers, 'x-amz-trailer');
  if (value === undefined) return [];
  const names: string[] = [];
  for (const part of value.split(',')) {
    const name = part.trim().toLowerCase();
    if (name !== '' && !names.includes(name)) names.push(name);
  }
  return names;
}

function verifiedBody(req: AuthRequest, auth: Authenticated | null): VerifiedRequest {
  const headers = req.headers;
  const mode = auth?.mode ?? anonymousMode(headers);
  const announced = announcedTrailers(headers);
  const trailers = new Map<string, string>();
  if (mode.kind === 'chunked') {
    const decodedLength = parseLength(headers['x-amz-decoded-content-length'], 'x-amz-decoded-content-length');
    const signing = mode.signed ? (auth?.signing ?? null) : null;
    const decoder = new AwsChunkedDecoder({ signing, trailer: mode.trailer, announcedTrailers: announced, decodedLength, trailers });
    return { accessKeyId: auth?.accessKeyId ?? null, body: feed(req.body, decoder), decodedContentLength: decodedLength, trailers, announcedTrailers: announced };
  }
  const length = parseLength(headers['content-length'], 'content-length');
  const expectedHex = mode.kind === 'sha256' ? mode.expectedHex : undefined;
  // Without Content-Length or Transfer-Encoding a request has no body (RFC 9112 6.3):
  // a GET or HEAD signed with the empty hash has nothing to check.
  const empty = length === 0 || (length === undefined && headers['transfer-encoding'] === undefined);
  const nothingToCheck = empty ? expectedHex === undefined || expectedHex === EMPTY_SHA256 : expectedHex === undefined && length === undefined;
  // Nothing to check: hand the request itself over, no extra stream in between.
  const body = nothingToCheck ? req.body : feed(req.body, new PlainBodyVerifier(expectedHex, length));
  return { accessKeyId: auth?.accessKeyId ?? null, body, decodedContentLength: length, trailers, announcedTrailers: announced };
}

/** An anonymous request may still declare its payload (a hash to check, or unsigned aws-chunked with trailers). */
function anonymousMode(headers: IncomingHttpHeaders): PayloadMode {
  const value = singleHeader(headers, 'x-amz-content-sha256');
  if (value === undefined) return { kind: 'unsigned' };
  const mode = payloadMode(value);
  if (mode.kind === 'chunked' && mode.signed) throw new S3Error('AccessDenied', 'A signed streaming payload requires a signed request.');
  return mode;
}
