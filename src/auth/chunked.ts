/**
 * Decoder for aws-chunked bodies, as a Transform: framing in, payload out.
 *
 *   signed:            hex;chunk-signature=SIG\r\n DATA \r\n ... 0;chunk-signature=SIG\r\n \r\n
 *   unsigned trailer:  hex\r\n DATA \r\n ... 0\r\n name:value\r\n ... \r\n
 *   signed trailer:    ... 0;chunk-signature=SIG\r\n name:value\r\n ... x-amz-trailer-signature:SIG\r\n \r\n
 *
 * Each chunk signature chains from the previous one (the first from the
 * request's seed signature); the trailer signature chains from the final
 * chunk's. TCP delivers the framing split anywhere, so this is a byte-level
 * state machine that keeps at most one header or trailer line (bounded) and
 * never holds data: payload bytes are pushed on as they arrive, and every
 * verdict that fails the body is an error before 'end'.
 * https://docs.aws.amazon.com/AmazonS3/latest/API/sigv4-streaming.html
 * https://docs.aws.amazon.com/AmazonS3/latest/API/sigv4-streaming-trailers.html
 */
import { createHash, type Hash } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';
import { CHUNK_DATA_BYTES_MAX, CHUNK_HEADER_BYTES_MAX, TRAILER_BYTES_MAX } from '../util/limits.ts';
import { S3Error } from '../util/s3-error.ts';
import { incompleteBody } from './payload.ts';
import { chunkStringToSign, EMPTY_SHA256, hmac, signatureMatches, trailerStringToSign, type SigningContext } from './signing.ts';

// States. Numbers, not strings: compared once per input buffer on the hot path.
const HEADER = 0; // reading a chunk header line
const DATA = 1; // passing chunk data through
const DATA_CRLF = 2; // the CRLF after chunk data
const FINAL_CRLF = 3; // the blank line after the final chunk (no trailer)
const TRAILER = 4; // reading trailer lines
const DONE = 5; // the body is complete; nothing may follow
const FAILED = 6;

const CR = 0x0d;
const LF = 0x0a;
const CHUNK_SIZE = /^[0-9a-fA-F]{1,16}$/;
const SIGNATURE_PREFIX = 'chunk-signature=';
const TRAILER_SIGNATURE = 'x-amz-trailer-signature';
const TRAILER_NAME = /^[a-z0-9!#$%&'*+.^_`|~-]+$/;
const CONTROL_CHARS = /[\x00-\x1f\x7f]/;

export interface ChunkedOptions {
  /** Null for STREAMING-UNSIGNED-PAYLOAD-TRAILER: no chunk or trailer signatures. */
  readonly signing: SigningContext | null;
  readonly trailer: boolean;
  /** Lower-cased names from x-amz-trailer: only these may appear, and all of them must. */
  readonly announcedTrailers: readonly string[];
  readonly decodedLength: number | undefined;
  /** Receives the trailers once they are complete and verified, before 'end'. */
  readonly trailers: Map<string, string>;
}

function framingError(message: string): S3Error {
  return new S3Error('InvalidRequest', `Malformed aws-chunked body: ${message}`);
}

export class AwsChunkedDecoder extends Transform {
  readonly #options: ChunkedOptions;
  #state = HEADER;
  /** The header or trailer line read so far (latin1: one char per byte). */
  #line = '';
  #remaining = 0;
  #crlfSeen = 0;
  #chunkSignature = '';
  #chunkHash: Hash | null = null;
  #previousSignature: string;
  #decoded = 0;
  #trailerBytes = 0;
  #pendingTrailers: [string, string][] = [];
  #canonicalTrailers = '';
  #trailerSignature: string | null = null;

  constructor(options: ChunkedOptions) {
    super();
    this.#options = options;
    this.#previousSignature = options.signing?.seedSignature ?? '';
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    const error = this.#state === FAILED ? null : this.#consume(chunk);
    if (error === null) {
      callback();
      return;
    }
    this.#state = FAILED;
    callback(error);
  }

  override _flush(callback: TransformCallback): void {
    if (this.#state !== DONE) {
      callback(incompleteBody('The aws-chunked body ended before its final chunk.'));
      return;
    }
    const declared = this.#options.decodedLength;
    if (declared !== undefined && this.#decoded !== declared) {
      callback(incompleteBody(`The decoded body has ${this.#decoded} bytes; x-amz-decoded-content-length declared ${declared}.`));
      return;
    }
    callback();
  }

  #consume(chunk: Buffer): S3Error | null {
    let i = 0;
    const length = chunk.length;
    while (i < length) {
      switch (this.#state) {
        case HEADER:
        case TRAILER: {
          const newline = chunk.indexOf(LF, i);
          const end = newline === -1 ? length : newline;
          const error = this.#appendLine(chunk, i, end, newline !== -1);
          if (error !== null) return error;
          if (newline === -1) return null;
          i = newline + 1;
          const lineError = this.#state === HEADER ? this.#onChunkHeader() : this.#onTrailerLine();
          if (lineError !== null) return lineError;
          break;
        }
        case DATA: {
          const take = Math.min(this.#remaining, length - i);
          const piece = chunk.subarray(i, i + take);
          i += take;
          this.#remaining -= take;
          this.#decoded += take;
          const declared = this.#options.decodedLength;
          if (declared !== undefined && this.#decoded > declared) {
            return incompleteBody(`The decoded body is longer than x-amz-decoded-content-length (${declared}).`);
          }
          this.#chunkHash?.update(piece);
          // Verify before the chunk's last bytes go out: a bad chunk then never reaches the reader whole.
          if (this.#remaining === 0) {
            const error = this.#verifyDataChunk();
            if (error !== null) return error;
            this.#state = DATA_CRLF;
            this.#crlfSeen = 0;
          }
          this.push(piece);
          break;
        }
        case DATA_CRLF:
        case FINAL_CRLF: {
          if (chunk[i] !== (this.#crlfSeen === 0 ? CR : LF)) return framingError('chunk data must be followed by CRLF.');
          i++;
          if (++this.#crlfSeen === 2) this.#state = this.#state === DATA_CRLF ? HEADER : DONE;
          break;
        }
        case DONE:
          return framingError('data after the final chunk.');
        default:
          return null;
      }
    }
    return null;
  }

  /** Adds chunk[start, end) to the current line, within the bound of its kind. */
  #appendLine(chunk: Buffer, start: number, end: number, withNewline: boolean): S3Error | null {
    if (this.#state === HEADER) {
      if (this.#line.length + (end - start) > CHUNK_HEADER_BYTES_MAX) return framingError(`chunk header longer than ${CHUNK_HEADER_BYTES_MAX} bytes.`);
    } else {
      this.#trailerBytes += end - start + (withNewline ? 1 : 0);
      if (this.#trailerBytes > TRAILER_BYTES_MAX) return framingError(`trailer longer than ${TRAILER_BYTES_MAX} bytes.`);
    }
    if (end > start) this.#line += chunk.toString('latin1', start, end);
    return null;
  }

  /** 'hex-size' or 'hex-size;chunk-signature=SIG', terminated by CRLF. */
  #onChunkHeader(): S3Error | null {
    const line = this.#line;
    this.#line = '';
    if (!line.endsWith('\r')) return framingError('chunk header must end with CRLF.');
    const semicolon = line.indexOf(';');
    const sizeText = line.slice(0, semicolon === -1 ? line.length - 1 : semicolon);
    if (!CHUNK_SIZE.test(sizeText)) return framingError('invalid chunk size.');
    const size = parseInt(sizeText, 16);
    if (size > CHUNK_DATA_BYTES_MAX) return new S3Error('InvalidRequest', `aws-chunked chunks may hold at most ${CHUNK_DATA_BYTES_MAX} bytes.`);
    const signing = this.#options.signing;
    if (signing !== null) {
      // Signed chunks carry exactly one extension. Unsigned ones may carry any, which we ignore.
      const extension = semicolon === -1 ? '' : line.slice(semicolon + 1, line.length - 1);
      if (!extension.startsWith(SIGNATURE_PREFIX)) return framingError('chunk header has no chunk-signature.');
      this.#chunkSignature = extension.slice(SIGNATURE_PREFIX.length);
    }
    if (size > 0) {
      this.#remaining = size;
      this.#chunkHash = signing === null ? null : createHash('sha256');
      this.#state = DATA;
      return null;
    }
    // The final, empty chunk is signed too (over the hash of nothing).
    if (signing !== null && !this.#verifyChunk(signing, EMPTY_SHA256)) return chunkSignatureMismatch();
    this.#state = this.#options.trailer ? TRAILER : FINAL_CRLF;
    this.#crlfSeen = 0;
    return null;
  }

  #verifyDataChunk(): S3Error | null {
    const signing = this.#options.signing;
    if (signing === null || this.#chunkHash === null) return null;
    const digest = this.#chunkHash.digest('hex');
    this.#chunkHash = null;
    return this.#verifyChunk(signing, digest) ? null : chunkSignatureMismatch();
  }

  #verifyChunk(signing: SigningContext, chunkSha256Hex: string): boolean {
    const expected = hmac(signing.key, chunkStringToSign(signing, this.#previousSignature, chunkSha256Hex));
    if (!signatureMatches(expected, this.#chunkSignature)) return false;
    this.#previousSignature = expected.toString('hex');
    return true;
  }

  /**
   * One trailer line. Lines end with CRLF; a bare LF stays in the line, and one
   * LF right before the CRLF is dropped ('value\n\r\n': some clients send it).
   */
  #onTrailerLine(): S3Error | null {
    if (!this.#line.endsWith('\r')) {
      this.#line += '\n';
      return null;
    }
    let line = this.#line.slice(0, -1);
    this.#line = '';
    if (line.endsWith('\n')) line = line.slice(0, -1);
    const signed = this.#options.signing !== null;
    if (line === '') {
      // Tolerate a blank line before the signature; after it (or unsigned), a blank line ends the body.
      if (signed && this.#trailerSignature === null) return null;
      return this.#finishTrailers();
    }
    if (this.#trailerSignature !== null) return framingError('trailer after x-amz-trailer-signature.');
    const colon = line.indexOf(':');
    if (colon <= 0) return framingError('trailer line without a name.');
    const name = line.slice(0, colon).trim().toLowerCase();
    const value = line.slice(colon + 1).trim();
    if (!TRAILER_NAME.test(name) || CONTROL_CHARS.test(value)) return framingError('invalid trailer line.');
    if (name === TRAILER_SIGNATURE) {
      if (!signed) return framingError('x-amz-trailer-signature in an unsigned payload.');
      this.#trailerSignature = value;
      return null;
    }
    if (!this.#options.announcedTrailers.includes(name)) return new S3Error('InvalidRequest', `The trailer ${name} was not announced in x-amz-trailer.`);
    for (const [seen] of this.#pendingTrailers) if (seen === name) return framingError(`repeated trailer ${name}.`);
    this.#pendingTrailers.push([name, value]);
    this.#canonicalTrailers += `${name}:${value}\n`;
    return null;
  }

  #finishTrailers(): S3Error | null {
    const signing = this.#options.signing;
    if (signing !== null) {
      if (this.#trailerSignature === null) return framingError('missing x-amz-trailer-signature.');
      const expected = hmac(signing.key, trailerStringToSign(signing, this.#previousSignature, this.#canonicalTrailers));
      if (!signatureMatches(expected, this.#trailerSignature)) {
        return new S3Error('SignatureDoesNotMatch', 'The trailer signature we calculated does not match the signature you provided.');
      }
    }
    for (const name of this.#options.announcedTrailers) {
      if (!this.#pendingTrailers.some(([seen]) => seen === name)) return incompleteBody(`The announced trailer ${name} is missing.`);
    }
    for (const [name, value] of this.#pendingTrailers) this.#options.trailers.set(name, value);
    this.#state = DONE;
    return null;
  }
}

function chunkSignatureMismatch(): S3Error {
  return new S3Error('SignatureDoesNotMatch', 'The chunk signature we calculated does not match the signature you provided.');
}
