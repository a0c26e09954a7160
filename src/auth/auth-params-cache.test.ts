/**
 * The Authorization header's parts are parsed once per distinct text before
 * the signature (issue 17): a remembered prefix must give each request its
 * own signature, and a text that failed to parse must fail every time.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { S3Error } from '../util/s3-error.ts';
import { parseAuthorizationHeader } from './auth-params.ts';

const PREFIX = 'AWS4-HMAC-SHA256 Credential=AKIDCACHE/20240501/us-east-1/s3/aws4_request, SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature=';

test('one prefix, many signatures: each parse returns its own signature and the same parts', () => {
  const first = parseAuthorizationHeader(`${PREFIX}${'a'.repeat(64)}`);
  const second = parseAuthorizationHeader(`${PREFIX}${'B'.repeat(64)}`);
  assert.equal(first.signature, 'a'.repeat(64));
  assert.equal(second.signature, 'B'.repeat(64));
  assert.equal(second.accessKeyId, 'AKIDCACHE');
  assert.equal(second.scope, '20240501/us-east-1/s3/aws4_request');
  assert.deepEqual(second.signedHeaders, ['host', 'x-amz-content-sha256', 'x-amz-date']);
  // The parts handed out cannot be changed for the next request.
  assert.throws(() => (second.signedHeaders as string[]).push('x-amz-meta-evil'));
});

test('a malformed prefix is refused every time, not remembered', () => {
  const repeated = 'AWS4-HMAC-SHA256 Credential=AKIDCACHE/20240501/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=00, Signature=';
  for (let i = 0; i < 3; i++) {
    assert.throws(() => parseAuthorizationHeader(`${repeated}${'c'.repeat(64)}`), (error: unknown) => error instanceof S3Error && error.code === 'AuthorizationHeaderMalformed');
  }
  const badService = 'AWS4-HMAC-SHA256 Credential=AKIDCACHE/20240501/us-east-1/s4/aws4_request, SignedHeaders=host, Signature=';
  for (let i = 0; i < 3; i++) {
    assert.throws(() => parseAuthorizationHeader(`${badService}${'d'.repeat(64)}`), (error: unknown) => error instanceof S3Error && error.code === 'AuthorizationHeaderMalformed');
  }
});

test('a signature that is not 64 hex digits is parsed in full, as before', () => {
  const short = parseAuthorizationHeader(`${PREFIX}abc`);
  assert.equal(short.signature, 'abc');
  const nonHex = parseAuthorizationHeader(`${PREFIX}${'z'.repeat(64)}`);
  assert.equal(nonHex.signature, 'z'.repeat(64));
});

test('a value whose full parse does not end in the cached signature parses the same every time', () => {
  // The full parse takes everything after the first 'Signature=' as the
  // signature; a cached prefix would hand out only the 64 hex digits.
  const hex = 'e'.repeat(64);
  const value = `AWS4-HMAC-SHA256 Credential=AKIDCACHE/20240501/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=junk Signature=${hex}`;
  for (let i = 0; i < 3; i++) assert.equal(parseAuthorizationHeader(value).signature, `junk Signature=${hex}`);
  // Another 64 hex digits behind the same prefix: still the full parse's answer.
  const other = 'f'.repeat(64);
  assert.equal(parseAuthorizationHeader(value.slice(0, -64) + other).signature, `junk Signature=${other}`);
});
