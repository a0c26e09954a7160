/**
 * Header-signed and presigned requests produced by the AWS SDK's own signer
 * (@smithy/signature-v4), verified here; then tampered with, one part at a time.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, createHmac } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import { PassThrough, type Readable } from 'node:stream';
import { SignatureV4 } from '@smithy/signature-v4';
import { Sha256 } from '@aws-crypto/sha256-js';
import { S3Error, type S3ErrorCode } from '../util/s3-error.ts';
import { CLOCK_SKEW_MS_MAX, PRESIGN_EXPIRY_SECONDS_MAX } from '../util/limits.ts';
import { verifyRequest, type AuthRequest, type SecretLookup } from './index.ts';

const AKID = 'AKIDTALUSEXAMPLE';
const SECRET = 'talus/Secret+Key/EXAMPLE0123456789';
const lookup: SecretLookup = (id) => (id === AKID ? SECRET : undefined);
const NOW = Date.UTC(2024, 4, 1, 12, 0, 0);
const HOST = 'localhost:9000';
const EMPTY = Buffer.alloc(0);

interface Spec {
  method?: string;
  /** Path as the SDK serialises it (already percent-encoded). */
  path: string;
  query?: Record<string, string | string[]>;
  headers?: Record<string, string>;
  body?: Buffer;
  region?: string;
}

/** What a test sends: the request minus its body stream, so it can be tampered with before sending. */
interface Wire {
  method: string;
  rawPath: string;
  rawQuery: string;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

function signer(region = 'us-east-1', secret = SECRET): SignatureV4 {
  return new SignatureV4({ credentials: { accessKeyId: AKID, secretAccessKey: secret }, region, service: 's3', sha256: Sha256, uriEscapePath: false });
}

/** How a typical client puts a query on the wire: encodeURIComponent (which leaves !'()* bare), 'acl' without '='. */
function encodeQuery(query: Record<string, string | string[]>): string {
  const parts: string[] = [];
  for (const [name, value] of Object.entries(query)) {
    for (const item of Array.isArray(value) ? value : [value]) parts.push(item === '' ? encodeURIComponent(name) : `${encodeURIComponent(name)}=${encodeURIComponent(item)}`);
  }
  return parts.join('&');
}

/** Headers as node hands them over: names lower-cased, values decoded from the wire as latin1 (a client sending raw UTF-8, as Go's does). */
function lowerCase(headers: Record<string, string | undefined>): IncomingHttpHeaders {
  const out: IncomingHttpHeaders = {};
  for (const [name, value] of Object.entries(headers)) if (value !== undefined) out[name.toLowerCase()] = Buffer.from(value, 'utf8').toString('latin1');
  return out;
}

function requestFor(spec: Spec, extraHeaders: Record<string, string>) {
  return {
    method: spec.method ?? 'GET',
    protocol: 'http:',
    hostname: 'localhost',
    port: 9000,
    path: spec.path,
    query: spec.query ?? {},
    headers: { host: HOST, ...extraHeaders, ...spec.headers },
    body: spec.body,
  };
}

async function signHeaders(spec: Spec, payload: 'hash' | 'unsigned' = 'hash', dateMs = NOW): Promise<Wire> {
  const body = spec.body ?? EMPTY;
  const contentSha256 = payload === 'hash' ? createHash('sha256').update(body).digest('hex') : 'UNSIGNED-PAYLOAD';
  const extra: Record<string, string> = { 'x-amz-content-sha256': contentSha256 };
  if (body.length > 0) extra['content-length'] = String(body.length);
  const signed = await signer(spec.region).sign(requestFor(spec, extra), { signingDate: new Date(dateMs) });
  return { method: spec.method ?? 'GET', rawPath: spec.path, rawQuery: encodeQuery(signed.query as Record<string, string>), headers: lowerCase(signed.headers), body };
}

/**
 * 'sdk': as @aws-sdk/s3-request-presigner does it, X-Amz-Content-Sha256=UNSIGNED-PAYLOAD hoisted into the query.
 * 'bare': as boto3 does it, UNSIGNED-PAYLOAD signed but sent nowhere.
 */
async function presign(spec: Spec, expiresIn = 3600, dateMs = NOW, style: 'sdk' | 'bare' = 'sdk'): Promise<Wire> {
  const sha256Header = new Set(['x-amz-content-sha256']);
  const options = style === 'sdk' ? {} : { unhoistableHeaders: sha256Header, unsignableHeaders: sha256Header };
  const signed = await signer(spec.region).presign(requestFor(spec, { 'X-Amz-Content-Sha256': 'UNSIGNED-PAYLOAD' }), { signingDate: new Date(dateMs), expiresIn, ...options });
  const body = spec.body ?? EMPTY;
  const headers = lowerCase(signed.headers);
  delete headers['x-amz-content-sha256'];
  if (body.length > 0) headers['content-length'] = String(body.length);
  return { method: spec.method ?? 'GET', rawPath: spec.path, rawQuery: encodeQuery(signed.query as Record<string, string>), headers, body };
}

function send(wire: Wire): AuthRequest {
  const body = new PassThrough();
  body.end(wire.body);
  return { method: wire.method, rawPath: wire.rawPath, rawQuery: wire.rawQuery, headers: wire.headers, body };
}

function verify(wire: Wire, nowMs = NOW) {
  return verifyRequest(send(wire), lookup, nowMs);
}

function expectCode(fn: () => unknown, code: S3ErrorCode, message?: RegExp): void {
  assert.throws(fn, (error: unknown) => {
    assert.ok(error instanceof S3Error, `expected S3Error, got ${String(error)}`);
    assert.equal(error.code, code, error.message);
    if (message !== undefined) assert.match(error.message, message);
    return true;
  });
}

/** Reads a body to its end; resolves with the bytes, or with the error and whether 'end' was (wrongly) seen. */
function drain(stream: Readable): Promise<{ data: Buffer } | { error: unknown; ended: boolean }> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let ended = false;
    stream.on('data', (chunk: Buffer) => chunks.push(chunk));
    stream.on('end', () => {
      ended = true;
      resolve({ data: Buffer.concat(chunks) });
    });
    stream.on('error', (error) => setImmediate(() => resolve({ error, ended })));
  });
}

async function expectBody(stream: Readable, expected: Buffer): Promise<void> {
  const result = await drain(stream);
  assert.ok('data' in result, `body failed: ${'error' in result ? String(result.error) : ''}`);
  assert.deepEqual(result.data, expected);
}

async function expectBodyError(stream: Readable, code: S3ErrorCode): Promise<void> {
  const result = await drain(stream);
  assert.ok('error' in result, 'body ended instead of failing');
  assert.ok(result.error instanceof S3Error, String(result.error));
  assert.equal(result.error.code, code, result.error.message);
  assert.equal(result.ended, false, "'end' was emitted");
}

const PUT_SPEC: Spec = { method: 'PUT', path: '/bucket/photos/2024/a%20b%2Bc.jpg', headers: { 'content-type': 'image/jpeg', 'x-amz-meta-owner': 'Zoë' }, body: Buffer.from('hello, talus') };

test('a header-signed PUT with a signed payload hash verifies and streams its body', async () => {
  const verified = verify(await signHeaders(PUT_SPEC));
  assert.equal(verified.accessKeyId, AKID);
  assert.equal(verified.decodedContentLength, 12);
  assert.deepEqual(verified.announcedTrailers, []);
  assert.equal(verified.trailers.size, 0);
  await expectBody(verified.body, Buffer.from('hello, talus'));
});

test('UNSIGNED-PAYLOAD GET with a query verifies; any region in the scope is accepted', async () => {
  for (const region of ['us-east-1', 'eu-west-3', 'auto', 'garage']) {
    const wire = await signHeaders({ path: '/bucket', query: { 'list-type': '2', prefix: "photos/a b+c!'()*~", delimiter: '/', 'max-keys': '10' }, region }, 'unsigned');
    assert.equal(verify(wire).accessKeyId, AKID, region);
  }
});

test('keys with reserved and non-ASCII characters, encoded differently by the client, still verify', async () => {
  // The signer saw the SDK's strict encoding; the wire carries a laxer one (bare !*'(), lowercase hex).
  const signedPath = '/bucket/%21odd%2A%27%28%29/%E2%82%AC%20x//..%2Fy';
  const wire = await signHeaders({ path: signedPath }, 'unsigned');
  assert.equal(verify({ ...wire, rawPath: "/bucket/!odd*'()/%e2%82%ac%20x//..%2fy" }).accessKeyId, AKID);
  // '%2F' is part of a segment, not a separator: decoding it into '/' would change what was signed.
  expectCode(() => verify({ ...wire, rawPath: '/bucket/%21odd%2A%27%28%29/%E2%82%AC%20x//../y' }), 'SignatureDoesNotMatch');
});

test('sub-resources without a value (?acl, ?uploads) verify', async () => {
  const wire = await signHeaders({ method: 'POST', path: '/bucket/key', query: { uploads: '' } }, 'unsigned');
  assert.equal(wire.rawQuery, 'uploads');
  assert.equal(verify(wire).accessKeyId, AKID);
  assert.equal(verify({ ...wire, rawQuery: 'uploads=' }).accessKeyId, AKID);
});

test('tampering with method, path, query, a signed header or the date fails with SignatureDoesNotMatch', async () => {
  const wire = await signHeaders({ ...PUT_SPEC, query: { tagging: '' } });
  assert.equal(verify(wire).accessKeyId, AKID);
  expectCode(() => verify({ ...wire, method: 'POST' }), 'SignatureDoesNotMatch');
  expectCode(() => verify({ ...wire, rawPath: '/bucket/photos/2024/a%20b%2Bd.jpg' }), 'SignatureDoesNotMatch');
  expectCode(() => verify({ ...wire, rawQuery: 'tagging&versionId=1' }), 'SignatureDoesNotMatch');
  expectCode(() => verify({ ...wire, headers: { ...wire.headers, 'content-type': 'text/html' } }), 'SignatureDoesNotMatch');
  expectCode(() => verify({ ...wire, headers: { ...wire.headers, 'x-amz-meta-owner': 'mallory' } }), 'SignatureDoesNotMatch');
  expectCode(() => verify({ ...wire, headers: { ...wire.headers, host: 'other-bucket.localhost:9000' } }), 'SignatureDoesNotMatch');
  expectCode(() => verify({ ...wire, headers: { ...wire.headers, 'x-amz-date': '20240501T120001Z' } }), 'SignatureDoesNotMatch');
  const error = (() => {
    try {
      verify({ ...wire, method: 'POST' });
    } catch (caught) {
      return caught as S3Error;
    }
    return undefined;
  })();
  assert.match(error?.details.CanonicalRequest ?? '', /^POST\n\/bucket\/photos\/2024\/a%20b%2Bc\.jpg\ntagging=\n/);
});

test('a body that differs from the signed sha256 errors with XAmzContentSHA256Mismatch, never ends', async () => {
  const wire = await signHeaders(PUT_SPEC);
  await expectBodyError(verify({ ...wire, body: Buffer.from('hello, tal0s') }).body, 'XAmzContentSHA256Mismatch');
  await expectBodyError(verify({ ...wire, body: Buffer.from('hello, talus'.slice(0, 11)) }).body, 'IncompleteBody');
});

test('a body shorter than content-length errors with IncompleteBody', async () => {
  const wire = await signHeaders(PUT_SPEC, 'unsigned');
  await expectBodyError(verify({ ...wire, body: Buffer.from('hello') }).body, 'IncompleteBody');
});

test('a source that fails mid-body fails the verified body', async () => {
  const wire = await signHeaders(PUT_SPEC);
  const request = send({ ...wire, body: EMPTY });
  const source = new PassThrough();
  const verified = verifyRequest({ ...request, body: source }, lookup, NOW);
  source.write('hello');
  source.destroy(new Error('socket reset'));
  const result = await drain(verified.body);
  assert.ok('error' in result && result.error instanceof Error && result.error.message === 'socket reset');
  assert.equal(result.ended, false);
});

test('clock skew beyond the limit is RequestTimeTooSkewed; within it passes', async () => {
  const wire = await signHeaders(PUT_SPEC);
  assert.equal(verify(wire, NOW + CLOCK_SKEW_MS_MAX - 1000).accessKeyId, AKID);
  assert.equal(verify(wire, NOW - CLOCK_SKEW_MS_MAX + 1000).accessKeyId, AKID);
  expectCode(() => verify(wire, NOW + CLOCK_SKEW_MS_MAX + 1000), 'RequestTimeTooSkewed');
  expectCode(() => verify(wire, NOW - CLOCK_SKEW_MS_MAX - 1000), 'RequestTimeTooSkewed');
});

test('unknown access key is InvalidAccessKeyId; a wrong secret is SignatureDoesNotMatch', async () => {
  const wire = await signHeaders(PUT_SPEC);
  expectCode(() => verifyRequest(send(wire), () => undefined, NOW), 'InvalidAccessKeyId');
  expectCode(() => verifyRequest(send(wire), () => 'another secret', NOW), 'SignatureDoesNotMatch');
});

test('headers that are malformed or incomplete are rejected with the AWS codes', async () => {
  const wire = await signHeaders(PUT_SPEC);
  const authorization = String(wire.headers.authorization);
  const withAuth = (value: string): Wire => ({ ...wire, headers: { ...wire.headers, authorization: value } });
  expectCode(() => verify(withAuth(authorization.replace(/, Signature=[0-9a-f]+/, ''))), 'AuthorizationHeaderMalformed');
  expectCode(() => verify(withAuth(authorization.replace('/s3/', '/ec2/'))), 'AuthorizationHeaderMalformed', /incorrect service/);
  expectCode(() => verify(withAuth(authorization.replace('aws4_request', 'aws5_request'))), 'AuthorizationHeaderMalformed');
  expectCode(() => verify(withAuth(authorization.replace('/20240501/', '/20240502/'))), 'AuthorizationHeaderMalformed', /not the same as X-Amz-Date/);
  expectCode(() => verify(withAuth(authorization.replace(`Credential=${AKID}/`, 'Credential='))), 'AuthorizationHeaderMalformed');
  expectCode(() => verify(withAuth(authorization.replace('SignedHeaders=', 'SignedHeaders=Host;'))), 'AuthorizationHeaderMalformed');
  expectCode(() => verify(withAuth(authorization.replace(/Signature=[0-9a-f]+/, 'Signature=abc'))), 'SignatureDoesNotMatch');
  expectCode(() => verify(withAuth(`AWS ${AKID}:frJIUN8DYpKDtOLCwo//yllqDzg=`)), 'InvalidRequest', /AWS4-HMAC-SHA256/);
  expectCode(() => verify(withAuth('AWS4-ECDSA-P256-SHA256 Credential=x')), 'InvalidRequest', /AWS4-HMAC-SHA256/);
  expectCode(() => verify(withAuth('Bearer abc')), 'InvalidArgument');
  // Without spaces after the commas, as some clients send it, the header still parses.
  assert.equal(verify(withAuth(authorization.replace(/, /g, ','))).accessKeyId, AKID);
});

test('x-amz-date is required and must be valid; x-amz-content-sha256 is required and must be known', async () => {
  const wire = await signHeaders(PUT_SPEC);
  const { 'x-amz-date': _date, ...withoutDate } = wire.headers;
  expectCode(() => verify({ ...wire, headers: withoutDate }), 'AccessDenied', /Date or x-amz-date/);
  expectCode(() => verify({ ...wire, headers: { ...wire.headers, 'x-amz-date': '20240231T120000Z' } }), 'AccessDenied');
  const { 'x-amz-content-sha256': _sha, ...withoutSha } = wire.headers;
  expectCode(() => verify({ ...wire, headers: withoutSha }), 'InvalidRequest', /x-amz-content-sha256/);
  expectCode(() => verify({ ...wire, headers: { ...wire.headers, 'x-amz-content-sha256': 'STREAMING-FOO' } }), 'InvalidArgument');
});

test('x-amz-* headers and host must be signed', async () => {
  const wire = await signHeaders(PUT_SPEC);
  expectCode(() => verify({ ...wire, headers: { ...wire.headers, 'x-amz-acl': 'public-read' } }), 'AccessDenied', /not signed/);
  const unsignedHost = String(wire.headers.authorization).replace('host;', '');
  expectCode(() => verify({ ...wire, headers: { ...wire.headers, authorization: unsignedHost } }), 'AccessDenied', /not signed/);
  // Headers outside x-amz-* may be added by proxies and are simply not part of the signature.
  assert.equal(verify({ ...wire, headers: { ...wire.headers, 'x-forwarded-for': '10.0.0.1', 'user-agent': 'curl' } }).accessKeyId, AKID);
});

test('header values are canonicalised: surrounding and repeated spaces do not matter', async () => {
  const wire = await signHeaders({ ...PUT_SPEC, headers: { ...PUT_SPEC.headers, 'x-amz-meta-note': 'a  b   c' } });
  assert.equal(verify({ ...wire, headers: { ...wire.headers, 'x-amz-meta-note': '  a b \t c ' } }).accessKeyId, AKID);
});

test('anonymous requests carry no access key; a declared hash is still checked', async () => {
  const anonymous: Wire = { method: 'GET', rawPath: '/bucket/key', rawQuery: '', headers: { host: HOST }, body: EMPTY };
  const verified = verify(anonymous);
  assert.equal(verified.accessKeyId, null);
  await expectBody(verified.body, EMPTY);
  const wrongHash = { ...anonymous, method: 'PUT', headers: { host: HOST, 'content-length': '2', 'x-amz-content-sha256': 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855' }, body: Buffer.from('hi') };
  await expectBodyError(verify(wrongHash).body, 'XAmzContentSHA256Mismatch');
  expectCode(() => verify({ ...anonymous, rawQuery: 'AWSAccessKeyId=AKID&Signature=abc&Expires=1' }), 'InvalidRequest', /AWS4-HMAC-SHA256/);
});

test('presigned GET and PUT URLs verify', async () => {
  const get = await presign({ path: '/bucket/a%20b%2Bc', query: { 'response-content-type': 'text/plain; charset=utf-8', versionId: 'v1' } });
  assert.match(get.rawQuery, /X-Amz-Signature=/);
  const verified = verify(get);
  assert.equal(verified.accessKeyId, AKID);
  assert.match(get.rawQuery, /X-Amz-Content-Sha256=UNSIGNED-PAYLOAD/);
  const bare = await presign({ path: '/bucket/key' }, 60, NOW, 'bare');
  assert.doesNotMatch(bare.rawQuery, /Content-Sha256/i);
  assert.equal(verify(bare).accessKeyId, AKID);
  const put = await presign({ method: 'PUT', path: '/bucket/upload.bin', body: Buffer.from('presigned body') });
  const verifiedPut = verify(put);
  assert.equal(verifiedPut.accessKeyId, AKID);
  await expectBody(verifiedPut.body, Buffer.from('presigned body'));
});

test('presigned URLs: tampering, expiry, not-yet-valid and bad X-Amz-Expires', async () => {
  const wire = await presign({ path: '/bucket/key', query: { versionId: 'v1' } }, 600);
  expectCode(() => verify({ ...wire, rawPath: '/bucket/key2' }), 'SignatureDoesNotMatch');
  expectCode(() => verify({ ...wire, rawQuery: wire.rawQuery.replace('versionId=v1', 'versionId=v2') }), 'SignatureDoesNotMatch');
  expectCode(() => verify({ ...wire, rawQuery: wire.rawQuery.replace('X-Amz-Expires=600', 'X-Amz-Expires=6000') }), 'SignatureDoesNotMatch');
  expectCode(() => verify({ ...wire, method: 'DELETE' }), 'SignatureDoesNotMatch');
  assert.equal(verify(wire, NOW + 599_000).accessKeyId, AKID);
  expectCode(() => verify(wire, NOW + 601_000), 'AccessDenied', /Request has expired/);
  expectCode(() => verify(wire, NOW - CLOCK_SKEW_MS_MAX - 1000), 'AccessDenied', /not valid yet/);
  expectCode(() => verify({ ...wire, rawQuery: wire.rawQuery.replace('X-Amz-Expires=600', 'X-Amz-Expires=0') }), 'AuthorizationQueryParametersError');
  expectCode(
    () => verify({ ...wire, rawQuery: wire.rawQuery.replace('X-Amz-Expires=600', `X-Amz-Expires=${PRESIGN_EXPIRY_SECONDS_MAX + 1}`) }),
    'AuthorizationQueryParametersError',
  );
  expectCode(() => verify({ ...wire, rawQuery: wire.rawQuery.replace(/&?X-Amz-SignedHeaders=[^&]*/, '') }), 'AuthorizationQueryParametersError');
  expectCode(() => verify({ ...wire, rawQuery: wire.rawQuery.replace('X-Amz-Algorithm=AWS4-HMAC-SHA256', 'X-Amz-Algorithm=AWS4-HMAC-SHA1') }), 'AuthorizationQueryParametersError');
  expectCode(() => verify({ ...wire, rawQuery: wire.rawQuery.replace('%2Fs3%2F', '%2Fsqs%2F') }), 'AuthorizationQueryParametersError');
});

test('presigned URLs: unknown key, and a signature in both header and query', async () => {
  const wire = await presign({ path: '/bucket/key' });
  expectCode(() => verifyRequest(send(wire), () => undefined, NOW), 'InvalidAccessKeyId');
  const headerSigned = await signHeaders({ path: '/bucket/key' });
  expectCode(() => verify({ ...wire, headers: { ...wire.headers, authorization: String(headerSigned.headers.authorization) } }), 'InvalidArgument', /Only one auth mechanism/);
});

test('the Date header stands in for a missing x-amz-date (signed as ISO 8601 basic)', () => {
  const date = 'Wed, 01 May 2024 12:00:00 GMT';
  const canonical = [
    'GET',
    '/bucket/key',
    '',
    `date:${date}`,
    `host:${HOST}`,
    'x-amz-content-sha256:UNSIGNED-PAYLOAD',
    '',
    'date;host;x-amz-content-sha256',
    'UNSIGNED-PAYLOAD',
  ].join('\n');
  const mac = (key: Buffer | string, data: string) => createHmac('sha256', key).update(data).digest();
  const key = mac(mac(mac(mac(`AWS4${SECRET}`, '20240501'), 'us-east-1'), 's3'), 'aws4_request');
  const stringToSign = ['AWS4-HMAC-SHA256', '20240501T120000Z', '20240501/us-east-1/s3/aws4_request', createHash('sha256').update(canonical).digest('hex')].join('\n');
  const signature = mac(key, stringToSign).toString('hex');
  const headers: IncomingHttpHeaders = {
    host: HOST,
    date,
    'x-amz-content-sha256': 'UNSIGNED-PAYLOAD',
    authorization: `AWS4-HMAC-SHA256 Credential=${AKID}/20240501/us-east-1/s3/aws4_request, SignedHeaders=date;host;x-amz-content-sha256, Signature=${signature}`,
  };
  const wire: Wire = { method: 'GET', rawPath: '/bucket/key', rawQuery: '', headers, body: EMPTY };
  assert.equal(verify(wire).accessKeyId, AKID);
  expectCode(() => verify({ ...wire, headers: { ...headers, date: 'Wed, 01 May 2024 12:00:01 GMT' } }), 'SignatureDoesNotMatch');
  expectCode(() => verify({ ...wire, headers: { ...headers, date: 'not a date' } }), 'AccessDenied');
});

test('a source that closes early without an error fails the body with IncompleteBody', async () => {
  const wire = await signHeaders(PUT_SPEC, 'unsigned');
  const source = new PassThrough();
  const verified = verifyRequest({ ...send({ ...wire, body: EMPTY }), body: source }, lookup, NOW);
  source.write('hel');
  setImmediate(() => source.destroy());
  await expectBodyError(verified.body, 'IncompleteBody');
});

test('a failing body nobody reads does not crash the process; a late reader still sees the error', async () => {
  const wire = await signHeaders(PUT_SPEC);
  const verified = verify({ ...wire, body: Buffer.from('hello, tal0s') });
  await new Promise((resolve) => setTimeout(resolve, 20));
  assert.ok(verified.body.destroyed);
  await assert.rejects(
    (async () => {
      for await (const _chunk of verified.body) {
        // drain
      }
    })(),
    (error: unknown) => error instanceof S3Error && error.code === 'XAmzContentSHA256Mismatch',
  );
});
