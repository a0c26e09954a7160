/**
 * SigV4 primitives: hashing, the signing key, the three strings to sign
 * (request, aws-chunked chunk, aws-chunked trailer) and the constant-time
 * signature comparison.
 * https://docs.aws.amazon.com/AmazonS3/latest/API/sig-v4-header-based-auth.html
 * https://docs.aws.amazon.com/AmazonS3/latest/API/sigv4-streaming.html
 * https://docs.aws.amazon.com/AmazonS3/latest/API/sigv4-streaming-trailers.html
 */
import { createHmac, hash, timingSafeEqual } from 'node:crypto';
import { assert } from '../util/assert.ts';

export const ALGORITHM = 'AWS4-HMAC-SHA256';
const CHUNK_ALGORITHM = 'AWS4-HMAC-SHA256-PAYLOAD';
const TRAILER_ALGORITHM = 'AWS4-HMAC-SHA256-TRAILER';
export const SERVICE = 's3';
export const SCOPE_TERMINATOR = 'aws4_request';
export const EMPTY_SHA256 = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';

const BEYOND_LATIN1 = /[^\x00-\xff]/;
const ASCII_ONLY = /^[\x00-\x7f]*$/;

/**
 * Hashes text that came off the wire. Node decodes header bytes as latin1, so
 * encoding back as latin1 recovers the exact bytes the client signed (a Go
 * client's raw UTF-8 metadata, say). Text beyond latin1 cannot have come from
 * node's parser; it is hashed as UTF-8, as a signer holding that string would.
 */
export function sha256HexOfWireText(text: string): string {
  // One-shot hashing; ASCII text is the same bytes in every encoding.
  if (ASCII_ONLY.test(text)) return hash('sha256', text, 'hex');
  return hash('sha256', Buffer.from(text, BEYOND_LATIN1.test(text) ? 'utf8' : 'latin1'), 'hex');
}

/** HMACs under the day's signing keys (the same Buffer objects, from the cache below). */
const keyedHmacs = new WeakMap<Buffer, FixedKeyHmac>();

export function hmac(key: Buffer | string, data: string): Buffer {
  if (typeof key === 'string' || key.length > BLOCK_BYTES) return createHmac('sha256', key).update(data).digest();
  let keyed = keyedHmacs.get(key);
  if (keyed === undefined) {
    keyed = new FixedKeyHmac(key);
    keyedHmacs.set(key, keyed);
  }
  return keyed.digest(data);
}

/** HMAC block size of SHA-256. */
const BLOCK_BYTES = 64;
const MESSAGE_BYTES_MAX = 512;

/**
 * HMAC-SHA256 under one key (the signing key of the day), as two one-shot
 * hashes over buffers made once: H((K^opad) | H((K^ipad) | message)).
 * createHmac builds a stream-capable object per call, which under load cost
 * several µs a request (profiled); this is the RFC 2104 construction, checked
 * against createHmac in the tests. Messages that do not fit go to createHmac.
 */
export class FixedKeyHmac {
  readonly #key: Buffer;
  readonly #inner = Buffer.alloc(BLOCK_BYTES + MESSAGE_BYTES_MAX);
  readonly #outer = Buffer.alloc(BLOCK_BYTES + 32);

  constructor(key: Buffer) {
    assert(key.length <= BLOCK_BYTES, 'hmac: keys longer than a block are hashed first; signing keys never are');
    this.#key = key;
    for (let i = 0; i < BLOCK_BYTES; i++) {
      const byte = i < key.length ? key[i]! : 0;
      this.#inner[i] = byte ^ 0x36;
      this.#outer[i] = byte ^ 0x5c;
    }
  }

  hex(message: string): string {
    if (message.length * 3 > MESSAGE_BYTES_MAX) return createHmac('sha256', this.#key).update(message).digest('hex');
    this.#innerDigestIntoOuter(message);
    return hash('sha256', this.#outer, 'hex');
  }

  digest(message: string): Buffer {
    if (message.length * 3 > MESSAGE_BYTES_MAX) return createHmac('sha256', this.#key).update(message).digest();
    this.#innerDigestIntoOuter(message);
    return hash('sha256', this.#outer, 'buffer');
  }

  #innerDigestIntoOuter(message: string): void {
    const written = this.#inner.write(message, BLOCK_BYTES, 'utf8');
    hash('sha256', this.#inner.subarray(0, BLOCK_BYTES + written), 'buffer').copy(this.#outer, BLOCK_BYTES);
  }
}


/**
 * The signing key depends only on (secret, date, region), so it is the same for
 * every request of a key all day: derive it once (four HMACs) and keep it. The
 * map is bounded; when full, the oldest entry goes (Map keeps insertion order).
 */
const SIGNING_KEY_CACHE_MAX = 512;
const signingKeys = new Map<string, Buffer>();

export function signingKey(secret: string, date: string, region: string): Buffer {
  // Date and region hold no '\n' (validated by the caller), so this key is unambiguous.
  const cacheKey = `${date}\n${region}\n${secret}`;
  const cached = signingKeys.get(cacheKey);
  if (cached !== undefined) return cached;
  const key = hmac(hmac(hmac(hmac(`AWS4${secret}`, date), region), SERVICE), SCOPE_TERMINATOR);
  if (signingKeys.size >= SIGNING_KEY_CACHE_MAX) {
    const oldest = signingKeys.keys().next();
    if (oldest.done !== true) signingKeys.delete(oldest.value);
  }
  signingKeys.set(cacheKey, key);
  return key;
}

/** What every signature of one request shares; chunk and trailer signatures chain from `seedSignature`. */
export interface SigningContext {
  readonly key: Buffer;
  /** ISO 8601 basic timestamp of the request, e.g. 20130524T000000Z. */
  readonly amzDate: string;
  /** date/region/s3/aws4_request */
  readonly scope: string;
  /** Hex signature of the request itself. */
  readonly seedSignature: string;
}

export function requestStringToSign(amzDate: string, scope: string, canonicalRequest: string): string {
  return `${ALGORITHM}\n${amzDate}\n${scope}\n${sha256HexOfWireText(canonicalRequest)}`;
}

/** Chunk string to sign; the empty-string hash is the hash of the chunk's headers, which S3 chunks never have. */
export function chunkStringToSign(context: SigningContext, previousSignature: string, chunkSha256Hex: string): string {
  return `${CHUNK_ALGORITHM}\n${context.amzDate}\n${context.scope}\n${previousSignature}\n${EMPTY_SHA256}\n${chunkSha256Hex}`;
}

/** Trailer string to sign: `canonicalTrailers` is each trailer as 'name:value\n'. */
export function trailerStringToSign(context: SigningContext, previousSignature: string, canonicalTrailers: string): string {
  return `${TRAILER_ALGORITHM}\n${context.amzDate}\n${context.scope}\n${previousSignature}\n${sha256HexOfWireText(canonicalTrailers)}`;
}

const SIGNATURE_HEX = /^[0-9a-fA-F]{64}$/;

/** Constant-time comparison of a computed HMAC with the hex signature a client sent. */
export function signatureMatches(expected: Buffer, providedHex: string): boolean {
  if (!SIGNATURE_HEX.test(providedHex)) return false;
  return timingSafeEqual(expected, Buffer.from(providedHex, 'hex'));
}
