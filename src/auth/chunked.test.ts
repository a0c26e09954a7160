/**
 * aws-chunked bodies: the AWS documentation's worked examples, then bodies from
 * an encoder written here from the spec (independent of the decoder's code),
 * fed in pieces split at arbitrary byte boundaries, intact and damaged.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, createHmac, randomBytes } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import { once } from 'node:events';
import { PassThrough, type Readable } from 'node:stream';
import { SignatureV4 } from '@smithy/signature-v4';
import { Sha256 } from '@aws-crypto/sha256-js';
import { S3Error, type S3ErrorCode } from '../util/s3-error.ts';
import { CHUNK_DATA_BYTES_MAX, CHUNK_HEADER_BYTES_MAX, TRAILER_BYTES_MAX } from '../util/limits.ts';
import { verifyRequest, type SecretLookup, type VerifiedRequest } from './index.ts';
import { CONTENT_SHA256, docSigningKey, encode, hmac, sha256, EMPTY_SHA256, type Encoded, type Mode, type Signing } from '../../test/helpers/aws-chunked.ts';

// ---------------------------------------------------------------------------
// Feeding and reading.

/** Writes `body` in pieces cut by `cut`, respecting backpressure, then ends. */
async function feedPieces(source: PassThrough, body: Buffer, cut: (remaining: number) => number): Promise<void> {
  let offset = 0;
  while (offset < body.length) {
    const size = Math.max(1, Math.min(cut(body.length - offset), body.length - offset));
    if (!source.write(body.subarray(offset, offset + size))) await once(source, 'drain');
    offset += size;
  }
  source.end();
}

const randomCut = (max: number) => (): number => 1 + Math.floor(Math.random() * max);
const oneByte = (): number => 1;
const whole = (remaining: number): number => remaining;

interface Outcome {
  data?: Buffer;
  error?: unknown;
  ended: boolean;
  trailersAtEnd?: Map<string, string>;
}

function read(verified: VerifiedRequest): Promise<Outcome> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    const outcome: Outcome = { ended: false };
    verified.body.on('data', (chunk: Buffer) => chunks.push(chunk));
    verified.body.on('end', () => {
      outcome.ended = true;
      outcome.data = Buffer.concat(chunks);
      outcome.trailersAtEnd = new Map(verified.trailers);
      resolve(outcome);
    });
    verified.body.on('error', (error) => {
      outcome.error = error;
      // Give a wrongly scheduled 'end' the chance to show up.
      setImmediate(() => resolve(outcome));
    });
  });
}

async function run(headers: IncomingHttpHeaders, body: Buffer, cut: (remaining: number) => number, lookup: SecretLookup, nowMs: number, path = '/bucket/key'): Promise<{ outcome: Outcome; verified: VerifiedRequest }> {
  const source = new PassThrough();
  const verified = verifyRequest({ method: 'PUT', rawPath: path, rawQuery: '', headers, body: source }, lookup, nowMs);
  const [outcome] = await Promise.all([read(verified), feedPieces(source, body, cut)]);
  return { outcome, verified };
}

function assertDecoded(outcome: Outcome, expected: Buffer): void {
  assert.equal(outcome.error, undefined, `body failed: ${String(outcome.error)}`);
  assert.ok(outcome.ended);
  assert.ok(outcome.data !== undefined && outcome.data.equals(expected), 'decoded bytes differ');
}

function assertFailed(outcome: Outcome, code: S3ErrorCode): void {
  assert.ok(outcome.error instanceof S3Error, `expected ${code}, got ${outcome.error === undefined ? "'end'" : String(outcome.error)}`);
  assert.equal(outcome.error.code, code, outcome.error.message);
  assert.equal(outcome.ended, false, "'end' was emitted after a failure");
}

// ---------------------------------------------------------------------------
// The AWS documentation's examples (sigv4-streaming, sigv4-streaming-trailers).

const DOC_AKID = 'AKIAIOSFODNN7EXAMPLE';
const DOC_SECRET = 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY';
const DOC_NOW = Date.UTC(2013, 4, 24);
const docLookup: SecretLookup = (id) => (id === DOC_AKID ? DOC_SECRET : undefined);
const DOC_DATA = Buffer.alloc(66_560, 'a');
const DOC_SIGNING: Omit<Signing, 'seed'> = { key: docSigningKey(DOC_SECRET, '20130524', 'us-east-1'), amzDate: '20130524T000000Z', scope: '20130524/us-east-1/s3/aws4_request' };
const DOC_PATH = '/examplebucket/chunkObject.txt';

const DOC_SIGNED = {
  seed: '4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9',
  chunks: [
    'ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648',
    '0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497',
    'b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9',
  ],
  headers: {
    host: 's3.amazonaws.com',
    'x-amz-date': '20130524T000000Z',
    'x-amz-storage-class': 'REDUCED_REDUNDANCY',
    authorization:
      'AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,SignedHeaders=content-encoding;content-length;host;x-amz-content-sha256;x-amz-date;x-amz-decoded-content-length;x-amz-storage-class,Signature=4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9',
    'x-amz-content-sha256': 'STREAMING-AWS4-HMAC-SHA256-PAYLOAD',
    'content-encoding': 'aws-chunked',
    'x-amz-decoded-content-length': '66560',
    'content-length': '66824',
  } satisfies IncomingHttpHeaders,
};

const DOC_TRAILER = {
  seed: '106e2a8a18243abcf37539882f36619c00e2dfc72633413f02d3b74544bfeb8e',
  chunks: [
    'b474d8862b1487a5145d686f57f013e54db672cee1c953b3010fb58501ef5aa2',
    '1c1344b170168f8e65b41376b44b20fe354e373826ccbbe2c1d40a8cae51e5c7',
    '2ca2aba2005185cf7159c6277faf83795951dd77a3a99e6e65d5c9f85863f992',
  ],
  trailerSignature: 'd81f82fc3505edab99d459891051a732e8730629a2e4a59689829ca17fe2e435',
  headers: {
    host: 's3.amazonaws.com',
    'x-amz-date': '20130524T000000Z',
    'x-amz-storage-class': 'REDUCED_REDUNDANCY',
    authorization:
      'AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,SignedHeaders=content-encoding;host;x-amz-content-sha256;x-amz-date;x-amz-decoded-content-length;x-amz-storage-class;x-amz-trailer,Signature=106e2a8a18243abcf37539882f36619c00e2dfc72633413f02d3b74544bfeb8e',
    'x-amz-content-sha256': 'STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER',
    'content-encoding': 'aws-chunked',
    'x-amz-decoded-content-length': '66560',
    'x-amz-trailer': 'x-amz-checksum-crc32c',
    'content-length': '66946',
  } satisfies IncomingHttpHeaders,
};

function docSignedBody(): Buffer {
  const [first, second, last] = DOC_SIGNED.chunks;
  return Buffer.concat([
    Buffer.from(`10000;chunk-signature=${first}\r\n`),
    DOC_DATA.subarray(0, 65_536),
    Buffer.from(`\r\n400;chunk-signature=${second}\r\n`),
    DOC_DATA.subarray(65_536),
    Buffer.from(`\r\n0;chunk-signature=${last}\r\n\r\n`),
  ]);
}

function docTrailerBody(trailerSignature = DOC_TRAILER.trailerSignature): Buffer {
  const [first, second, last] = DOC_TRAILER.chunks;
  return Buffer.concat([
    Buffer.from(`10000;chunk-signature=${first}\r\n`),
    DOC_DATA.subarray(0, 65_536),
    Buffer.from(`\r\n400;chunk-signature=${second}\r\n`),
    DOC_DATA.subarray(65_536),
    Buffer.from(`\r\n0;chunk-signature=${last}\r\nx-amz-checksum-crc32c:sOO8/Q==\r\nx-amz-trailer-signature:${trailerSignature}\r\n\r\n`),
  ]);
}

test('the test encoder reproduces the documented chunk and trailer signatures', () => {
  const signed = encode(DOC_DATA, 'signed', 65_536, [], { ...DOC_SIGNING, seed: DOC_SIGNED.seed });
  assert.deepEqual(signed.chunkSignatures, DOC_SIGNED.chunks);
  assert.ok(signed.body.equals(docSignedBody()));
  assert.equal(signed.body.length, 66_824);
  const trailer = encode(DOC_DATA, 'signed-trailer', 65_536, [['x-amz-checksum-crc32c', 'sOO8/Q==']], { ...DOC_SIGNING, seed: DOC_TRAILER.seed });
  assert.deepEqual(trailer.chunkSignatures, DOC_TRAILER.chunks);
  assert.equal(trailer.trailerSignature, DOC_TRAILER.trailerSignature);
  assert.ok(trailer.body.equals(docTrailerBody()));
  assert.equal(trailer.body.length, 66_946);
});

test('the documented chunk-signed PUT verifies, seed and every chunk, however the body is split', async () => {
  for (const cut of [whole, randomCut(5000), randomCut(97)]) {
    const { outcome, verified } = await run(DOC_SIGNED.headers, docSignedBody(), cut, docLookup, DOC_NOW, DOC_PATH);
    assertDecoded(outcome, DOC_DATA);
    assert.equal(verified.accessKeyId, DOC_AKID);
    assert.equal(verified.decodedContentLength, 66_560);
  }
});

test('the documented signed-trailer PUT verifies and yields its trailer before end', async () => {
  const { outcome, verified } = await run(DOC_TRAILER.headers, docTrailerBody(), randomCut(4096), docLookup, DOC_NOW, DOC_PATH);
  assertDecoded(outcome, DOC_DATA);
  assert.deepEqual(verified.announcedTrailers, ['x-amz-checksum-crc32c']);
  assert.deepEqual([...(outcome.trailersAtEnd ?? [])], [['x-amz-checksum-crc32c', 'sOO8/Q==']]);
  const bad = await run(DOC_TRAILER.headers, docTrailerBody('0'.repeat(64)), whole, docLookup, DOC_NOW, DOC_PATH);
  assertFailed(bad.outcome, 'SignatureDoesNotMatch');
});

test('a damaged byte or signature in the documented body fails with SignatureDoesNotMatch', async () => {
  const body = docSignedBody();
  for (const offset of [40_000, 66_000]) {
    const flipped = Buffer.from(body);
    flipped[offset] = 'b'.charCodeAt(0);
    assertFailed((await run(DOC_SIGNED.headers, flipped, randomCut(3000), docLookup, DOC_NOW, DOC_PATH)).outcome, 'SignatureDoesNotMatch');
  }
  const badFinal = Buffer.from(body.toString('latin1').replace(DOC_SIGNED.chunks[2] ?? '', 'b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df8'), 'latin1');
  assertFailed((await run(DOC_SIGNED.headers, badFinal, whole, docLookup, DOC_NOW, DOC_PATH)).outcome, 'SignatureDoesNotMatch');
});

// ---------------------------------------------------------------------------
// Generated requests: the seed signature from the AWS SDK's signer, the body from the encoder above.

const AKID = 'AKIDCHUNKEXAMPLE';
const SECRET = 'chunk/Secret+Key/EXAMPLE';
const NOW = Date.UTC(2024, 6, 15, 8, 30, 0);
const lookup: SecretLookup = (id) => (id === AKID ? SECRET : undefined);
const TRAILERS: [string, string][] = [['x-amz-checksum-crc32', 'AAAAAA==']];

interface Prepared {
  headers: IncomingHttpHeaders;
  encoded: Encoded;
}

async function prepare(data: Buffer, mode: Mode, chunkSize: number, options: { trailers?: [string, string][]; decodedLength?: number } = {}): Promise<Prepared> {
  const trailers = options.trailers ?? (mode === 'signed' ? [] : TRAILERS);
  const headers: Record<string, string> = {
    host: 'localhost:9000',
    'content-encoding': 'aws-chunked',
    'x-amz-content-sha256': CONTENT_SHA256[mode],
    'x-amz-decoded-content-length': String(options.decodedLength ?? data.length),
  };
  if (trailers.length > 0) headers['x-amz-trailer'] = trailers.map(([name]) => name).join(',');
  const signer = new SignatureV4({ credentials: { accessKeyId: AKID, secretAccessKey: SECRET }, region: 'eu-central-1', service: 's3', sha256: Sha256, uriEscapePath: false });
  const signed = await signer.sign({ method: 'PUT', protocol: 'http:', hostname: 'localhost', port: 9000, path: '/bucket/key', query: {}, headers }, { signingDate: new Date(NOW) });
  const signedHeaders: IncomingHttpHeaders = {};
  for (const [name, value] of Object.entries(signed.headers)) signedHeaders[name.toLowerCase()] = value;
  const seed = /Signature=([0-9a-f]{64})/.exec(String(signedHeaders.authorization))?.[1] ?? '';
  const amzDate = String(signedHeaders['x-amz-date']);
  const signing: Signing = { key: docSigningKey(SECRET, amzDate.slice(0, 8), 'eu-central-1'), amzDate, scope: `${amzDate.slice(0, 8)}/eu-central-1/s3/aws4_request`, seed };
  return { headers: signedHeaders, encoded: encode(data, mode, chunkSize, trailers, mode === 'unsigned-trailer' ? undefined : signing) };
}

const MODES: Mode[] = ['signed', 'signed-trailer', 'unsigned-trailer'];

test('every mode decodes, split randomly, into 1-byte pieces, and whole; trailers arrive before end', async () => {
  for (const mode of MODES) {
    const big = randomBytes(200_000);
    const prepared = await prepare(big, mode, 65_536);
    for (const cut of [whole, randomCut(1), randomCut(700), randomCut(70_000)]) {
      const { outcome, verified } = await run(prepared.headers, prepared.encoded.body, cut, lookup, NOW);
      assertDecoded(outcome, big);
      if (mode !== 'signed') assert.deepEqual([...(outcome.trailersAtEnd ?? [])], TRAILERS, mode);
      assert.equal(verified.accessKeyId, AKID);
    }
    const small = randomBytes(2_500);
    const smallPrepared = await prepare(small, mode, 1000);
    assertDecoded((await run(smallPrepared.headers, smallPrepared.encoded.body, oneByte, lookup, NOW)).outcome, small);
  }
});

test('an empty payload and a payload of one chunk decode', async () => {
  for (const mode of MODES) {
    for (const data of [Buffer.alloc(0), Buffer.from('x'), randomBytes(8192)]) {
      const prepared = await prepare(data, mode, 8192);
      assertDecoded((await run(prepared.headers, prepared.encoded.body, randomCut(50), lookup, NOW)).outcome, data);
    }
  }
});

test('a flipped data byte, a wrong chunk signature, a wrong trailer signature or value fail with SignatureDoesNotMatch', async () => {
  const data = randomBytes(30_000);
  for (const mode of ['signed', 'signed-trailer'] as const) {
    const { headers, encoded } = await prepare(data, mode, 10_000);
    const body = encoded.body;
    const flipped = Buffer.from(body);
    const dataOffset = body.indexOf('\r\n', body.indexOf('\r\n') + 2) + 200; // inside the second chunk's data
    flipped[dataOffset] = (flipped[dataOffset] ?? 0) ^ 0x01;
    assertFailed((await run(headers, flipped, randomCut(999), lookup, NOW)).outcome, 'SignatureDoesNotMatch');
    const secondSignature = encoded.chunkSignatures[1] ?? '';
    const wrongChunk = Buffer.from(body.toString('latin1').replace(secondSignature, secondSignature.replace(/^./, (c) => (c === '0' ? '1' : '0'))), 'latin1');
    assertFailed((await run(headers, wrongChunk, randomCut(999), lookup, NOW)).outcome, 'SignatureDoesNotMatch');
    if (mode === 'signed-trailer') {
      const text = body.toString('latin1');
      const wrongTrailerSignature = Buffer.from(text.replace(`x-amz-trailer-signature:${encoded.trailerSignature}`, `x-amz-trailer-signature:${'ab'.repeat(32)}`), 'latin1');
      assertFailed((await run(headers, wrongTrailerSignature, randomCut(999), lookup, NOW)).outcome, 'SignatureDoesNotMatch');
      const wrongTrailerValue = Buffer.from(text.replace('x-amz-checksum-crc32:AAAAAA==', 'x-amz-checksum-crc32:AAAAAB=='), 'latin1');
      assertFailed((await run(headers, wrongTrailerValue, randomCut(999), lookup, NOW)).outcome, 'SignatureDoesNotMatch');
    }
  }
});

test('a truncated body fails with IncompleteBody wherever it is cut', async () => {
  const data = randomBytes(20_000);
  for (const mode of MODES) {
    const { headers, encoded } = await prepare(data, mode, 8192);
    const body = encoded.body;
    const cuts = [1, 10, 90, 100, 8300, body.length - 200, body.length - 40, body.length - 3, body.length - 2, body.length - 1];
    for (const at of cuts) {
      const { outcome } = await run(headers, body.subarray(0, at), randomCut(500), lookup, NOW);
      assertFailed(outcome, 'IncompleteBody');
    }
  }
});

test('x-amz-decoded-content-length must match the decoded bytes', async () => {
  const data = randomBytes(5000);
  for (const mode of MODES) {
    for (const declared of [data.length - 1, data.length + 1, 0]) {
      const { headers, encoded } = await prepare(data, mode, 2048, { decodedLength: declared });
      assertFailed((await run(headers, encoded.body, randomCut(300), lookup, NOW)).outcome, 'IncompleteBody');
    }
  }
});

test('malformed framing fails with InvalidRequest', async () => {
  const data = randomBytes(3000);
  const { headers, encoded } = await prepare(data, 'unsigned-trailer', 1000);
  const text = encoded.body.toString('latin1');
  const variants: [string, string][] = [
    ['non-hex size', text.replace(/^3e8\r\n/, '3g8\r\n')],
    ['missing CRLF after data', text.replace(/\r\n3e8\r\n/, '\r3e8\r\n')],
    ['bare LF after the size', text.replace(/^3e8\r\n/, '3e8\n')],
    ['unannounced trailer', text.replace('x-amz-checksum-crc32:', 'x-amz-checksum-sha1:')],
    ['trailer without a colon', text.replace('x-amz-checksum-crc32:', 'x-amz-checksum-crc32 ')],
    ['data after the end', `${text}garbage`],
    ['trailer signature in an unsigned payload', text.replace(/\r\n\r\n$/, `\r\nx-amz-trailer-signature:${'0'.repeat(64)}\r\n\r\n`)],
  ];
  for (const [name, body] of variants) {
    const { outcome } = await run(headers, Buffer.from(body, 'latin1'), randomCut(64), lookup, NOW);
    assert.ok(outcome.error instanceof S3Error, name);
    assert.equal(outcome.error.code, 'InvalidRequest', `${name}: ${outcome.error.message}`);
    assert.equal(outcome.ended, false, name);
  }
});

test('bounds: chunk header, chunk size and trailer size are limited', async () => {
  const { headers } = await prepare(Buffer.alloc(0), 'unsigned-trailer', 1000, { trailers: [] });
  const longHeader = Buffer.from(`1;${'x'.repeat(CHUNK_HEADER_BYTES_MAX)}\r\na\r\n0\r\n\r\n`);
  assertFailed((await run(headers, longHeader, randomCut(100), lookup, NOW)).outcome, 'InvalidRequest');
  const hugeChunk = Buffer.from(`${(CHUNK_DATA_BYTES_MAX + 1).toString(16)}\r\n`);
  assertFailed((await run(headers, hugeChunk, whole, lookup, NOW)).outcome, 'InvalidRequest');
  const longTrailer = Buffer.from(`0\r\nx-amz-checksum-crc32:${'A'.repeat(TRAILER_BYTES_MAX)}\r\n\r\n`);
  const announced = await prepare(Buffer.alloc(0), 'unsigned-trailer', 1000);
  assertFailed((await run(announced.headers, longTrailer, randomCut(100), lookup, NOW)).outcome, 'InvalidRequest');
});

test('an announced trailer that never comes fails with IncompleteBody', async () => {
  const data = randomBytes(100);
  const { headers } = await prepare(data, 'unsigned-trailer', 1000);
  const body = Buffer.concat([Buffer.from('64\r\n'), data, Buffer.from('\r\n0\r\n\r\n')]);
  assertFailed((await run(headers, body, whole, lookup, NOW)).outcome, 'IncompleteBody');
});

test('tolerated variants: chunk extensions when unsigned, LF before CRLF in trailers, upper-case hex', async () => {
  const data = randomBytes(3000);
  const unsigned = await prepare(data, 'unsigned-trailer', 1000);
  const text = unsigned.encoded.body.toString('latin1');
  const variants = [
    text.replace(/^3e8\r\n/, '3e8;foo=bar\r\n'),
    text.replace(/^3e8\r\n/, '3E8\r\n'),
    text.replace('x-amz-checksum-crc32:AAAAAA==\r\n', 'x-amz-checksum-crc32:AAAAAA==\n\r\n'),
    text.replace('x-amz-checksum-crc32:AAAAAA==', 'X-Amz-Checksum-Crc32: AAAAAA=='),
  ];
  for (const body of variants) {
    const { outcome } = await run(unsigned.headers, Buffer.from(body, 'latin1'), randomCut(40), lookup, NOW);
    assertDecoded(outcome, data);
    assert.equal(outcome.trailersAtEnd?.get('x-amz-checksum-crc32'), 'AAAAAA==');
  }
  const signed = await prepare(data, 'signed-trailer', 1000);
  const signedText = signed.encoded.body.toString('latin1').replace('x-amz-checksum-crc32:AAAAAA==\r\n', 'x-amz-checksum-crc32:AAAAAA==\n\r\n');
  assertDecoded((await run(signed.headers, Buffer.from(signedText, 'latin1'), randomCut(40), lookup, NOW)).outcome, data);
});

test('a signed streaming payload without a signature is refused; content-encoding may list more codings', async () => {
  const headers: IncomingHttpHeaders = { host: 'localhost', 'x-amz-content-sha256': 'STREAMING-AWS4-HMAC-SHA256-PAYLOAD', 'content-encoding': 'aws-chunked' };
  assert.throws(() => verifyRequest({ method: 'PUT', rawPath: '/b/k', rawQuery: '', headers, body: new PassThrough() }, lookup, NOW), (error: unknown) => error instanceof S3Error && error.code === 'AccessDenied');
  const data = randomBytes(100);
  const prepared = await prepare(data, 'signed', 64);
  const { outcome } = await run({ ...prepared.headers }, prepared.encoded.body, whole, lookup, NOW);
  assertDecoded(outcome, data);
});

test('backpressure: a slow reader holds the source back instead of buffering the body', async () => {
  const data = randomBytes(4 * 1024 * 1024);
  const { headers, encoded } = await prepare(data, 'signed', 65_536);
  const source = new PassThrough();
  const verified = verifyRequest({ method: 'PUT', rawPath: '/bucket/key', rawQuery: '', headers, body: source }, lookup, NOW);
  let written = 0;
  const writer = (async () => {
    for (let offset = 0; offset < encoded.body.length; offset += 16_384) {
      const piece = encoded.body.subarray(offset, offset + 16_384);
      written += piece.length;
      if (!source.write(piece)) await once(source, 'drain');
    }
    source.end();
  })();
  await new Promise((resolve) => setTimeout(resolve, 50));
  // Nobody reads yet: only a few high-water marks' worth may have been taken in.
  assert.ok(written < 512 * 1024, `wrote ${written} bytes with no reader`);
  const chunks: Buffer[] = [];
  for await (const chunk of verified.body as Readable) chunks.push(chunk as Buffer);
  await writer;
  assert.ok(Buffer.concat(chunks).equals(data));
});
