/**
 * What x-amz-content-sha256 promises about the body, and the stream that holds
 * a plain (not aws-chunked) body to that promise and to its declared length.
 */
import { createHash, type Hash } from 'node:crypto';
import { Transform, type Readable, type TransformCallback } from 'node:stream';
import { assert } from '../util/assert.ts';
import { createStreamHash, INLINE_BELOW_BYTES, type StreamHash } from '../util/hash-thread.ts';
import { S3Error } from '../util/s3-error.ts';
import { EMPTY_SHA256 } from './signing.ts';

export const UNSIGNED_PAYLOAD = 'UNSIGNED-PAYLOAD';
export const STREAMING_SIGNED = 'STREAMING-AWS4-HMAC-SHA256-PAYLOAD';
export const STREAMING_SIGNED_TRAILER = 'STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER';
export const STREAMING_UNSIGNED_TRAILER = 'STREAMING-UNSIGNED-PAYLOAD-TRAILER';

export type PayloadMode =
  | { readonly kind: 'unsigned' }
  | { readonly kind: 'sha256'; readonly expectedHex: string }
  | { readonly kind: 'chunked'; readonly signed: boolean; readonly trailer: boolean };

const UNSIGNED: PayloadMode = { kind: 'unsigned' };
const CHUNKED_SIGNED: PayloadMode = { kind: 'chunked', signed: true, trailer: false };
const CHUNKED_SIGNED_TRAILER: PayloadMode = { kind: 'chunked', signed: true, trailer: true };
const CHUNKED_UNSIGNED_TRAILER: PayloadMode = { kind: 'chunked', signed: false, trailer: true };

/** What every header-signed GET, HEAD and DELETE declares: made once, not matched and lower-cased per request. */
const EMPTY_BODY: PayloadMode = Object.freeze({ kind: 'sha256', expectedHex: EMPTY_SHA256 });

const SHA256_HEX = /^[0-9a-fA-F]{64}$/;

/** Classifies an x-amz-content-sha256 value; anything else is InvalidArgument, as on AWS. */
export function payloadMode(value: string): PayloadMode {
  switch (value) {
    case UNSIGNED_PAYLOAD:
      return UNSIGNED;
    case STREAMING_SIGNED:
      return CHUNKED_SIGNED;
    case STREAMING_SIGNED_TRAILER:
      return CHUNKED_SIGNED_TRAILER;
    case STREAMING_UNSIGNED_TRAILER:
      return CHUNKED_UNSIGNED_TRAILER;
    case EMPTY_SHA256:
      return EMPTY_BODY;
  }
  if (SHA256_HEX.test(value)) return { kind: 'sha256', expectedHex: value.toLowerCase() };
  throw new S3Error(
    'InvalidArgument',
    'x-amz-content-sha256 must be UNSIGNED-PAYLOAD, STREAMING-UNSIGNED-PAYLOAD-TRAILER, STREAMING-AWS4-HMAC-SHA256-PAYLOAD, STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER, or a valid sha256 value.',
    { ArgumentName: 'x-amz-content-sha256', ArgumentValue: value.slice(0, 128) },
  );
}

/** Parses a decimal length header; undefined if absent. */
export function parseLength(value: string | string[] | undefined, name: string): number | undefined {
  if (value === undefined) return undefined;
  const text = typeof value === 'string' ? value.trim() : '';
  if (!/^\d{1,16}$/.test(text)) throw new S3Error('InvalidArgument', `Invalid ${name} header.`, { ArgumentName: name, ArgumentValue: String(value).slice(0, 32) });
  return Number(text);
}

export function incompleteBody(message?: string): S3Error {
  return new S3Error('IncompleteBody', message);
}

/**
 * Passes a plain body through, counting it against its declared length and
 * hashing it when a SHA-256 was signed; the verdict is given in flush, so a
 * bad body errors instead of ending. A long body's SHA-256 (~37 ms per 64 MiB)
 * is computed on the hash thread (util/hash-thread.ts), overlapping the
 * receive and the writes instead of adding to the event loop's work; a short
 * one is hashed here, synchronously, as it always was.
 */
export class PlainBodyVerifier extends Transform {
  readonly #hash: Hash | null;
  /** Whether the SHA-256 is computed on the hash thread (a long signed body). */
  readonly #threaded: boolean;
  /**
   * Opened at the first byte, not in the constructor: a verifier built for a
   * request that is refused before its body is read (a quota, a condition)
   * is never destroyed, and an open session keeps the hash thread referenced
   * (the process cannot exit) and holds one of its bounded session slots.
   */
  #threadHash: StreamHash | null = null;
  readonly #expectedHex: string | undefined;
  readonly #expectedLength: number | undefined;
  #length = 0;

  constructor(expectedHex: string | undefined, expectedLength: number | undefined) {
    super();
    this.#expectedHex = expectedHex;
    const long = expectedLength !== undefined && expectedLength >= INLINE_BELOW_BYTES;
    this.#hash = expectedHex === undefined || long ? null : createHash('sha256');
    this.#threaded = expectedHex !== undefined && long;
    this.#expectedLength = expectedLength;
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.#length += chunk.length;
    if (this.#expectedLength !== undefined && this.#length > this.#expectedLength) {
      callback(incompleteBody('The request body is longer than its declared Content-Length.'));
      return;
    }
    if (!this.#threaded) {
      this.#hash?.update(chunk);
      callback(null, chunk);
      return;
    }
    let behind: void | Promise<void>;
    try {
      this.#threadHash ??= createStreamHash('sha256', this.#expectedLength);
      behind = this.#threadHash.update(chunk);
    } catch (error) {
      callback(error as Error); // the hash thread failed
      return;
    }
    if (behind === undefined) callback(null, chunk);
    else behind.then(() => callback(null, chunk), callback);
  }

  override _flush(callback: TransformCallback): void {
    if (this.#expectedLength !== undefined && this.#length !== this.#expectedLength) {
      callback(incompleteBody());
      return;
    }
    if (this.#threaded) {
      // A long body had bytes, so its session was opened: never an unverified pass.
      assert(this.#threadHash !== null, 'a threaded payload hash saw its body');
      this.#threadHash.digest().then((digest) => callback(this.#verdict(digest.toString('hex'))), callback);
      return;
    }
    callback(this.#hash === null ? null : this.#verdict(this.#hash.digest('hex')));
  }

  #verdict(computed: string): S3Error | null {
    if (computed === this.#expectedHex) return null;
    return new S3Error('XAmzContentSHA256Mismatch', undefined, { ClientComputedContentSHA256: this.#expectedHex ?? '', S3ComputedContentSHA256: computed });
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    // A body that failed half-way gives its hash thread session and budget back.
    this.#threadHash?.discard();
    callback(error);
  }
}

/** The verifying stream each source feeds; looked up by the shared listeners below (no closures per request). */
const feedTargets = new WeakMap<Readable, Transform>();

/**
 * Feeds `source` into `target` with backpressure. Unlike pipeline(), a failure
 * of `target` does not destroy the source: the HTTP layer still needs the
 * socket to answer with an error (it resumes or closes the request itself).
 * A source that fails or closes early fails `target`, never ends it.
 */
export function feed(source: Readable, target: Transform): Transform {
  // A handler may answer without reading the body (NoSuchBucket on a PUT, say)
  // while the body still fails here: an 'error' nobody listens to would crash
  // the process. Readers still see the error: async iteration and pipeline()
  // look at the stream's errored state, not only at the event.
  target.on('error', ignoreError);
  feedTargets.set(source, target);
  source.on('error', onSourceError);
  source.on('close', onSourceClose);
  source.pipe(target);
  return target;
}

function onSourceError(this: Readable, error: Error): void {
  const target = feedTargets.get(this);
  if (target !== undefined && !target.destroyed) target.destroy(error);
}

function onSourceClose(this: Readable): void {
  const target = feedTargets.get(this);
  if (target !== undefined && !this.readableEnded && !target.destroyed) target.destroy(incompleteBody());
}

function ignoreError(): void {}

/**
 * The request is answered: whatever the handler left of its fed body is
 * thrown away. A handler that refuses a request before reading its body (a
 * quota, a missing bucket, a denied write) leaves the target unread: a
 * complete body sits in its buffers, never flushed, and a target that holds
 * resources (PlainBodyVerifier's hash thread session and write budget)
 * would hold them for ever. One WeakMap lookup for a request without a feed.
 */
export function releaseFeed(source: Readable): void {
  const target = feedTargets.get(source);
  if (target === undefined) return;
  feedTargets.delete(source);
  if (!target.destroyed && !target.readableEnded) target.destroy();
}
