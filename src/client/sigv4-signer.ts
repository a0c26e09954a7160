/**
 * The client side of AWS Signature V4 header auth, for outgoing requests.
 *
 * It builds the same canonical request that `src/auth/canonical.ts` rebuilds
 * on the server, from the same primitives (`src/auth/signing.ts`): the caller
 * sends the path and query exactly in their canonical encoding, so what goes
 * on the wire is what was signed and no re-encoding can make the sides
 * disagree. Payloads are not hashed here: bodies go as UNSIGNED-PAYLOAD and
 * empty bodies as the empty SHA-256, so signing costs one SHA-256 of a short
 * string and one HMAC (the signing key is cached for the day), a few µs.
 * https://docs.aws.amazon.com/AmazonS3/latest/API/sig-v4-header-based-auth.html
 */
import { hash } from 'node:crypto';
import { ALGORITHM, EMPTY_SHA256, FixedKeyHmac, SCOPE_TERMINATOR, SERVICE, signingKey } from '../auth/signing.ts';
import { assert } from '../util/assert.ts';

export { EMPTY_SHA256 };
export const UNSIGNED_PAYLOAD = 'UNSIGNED-PAYLOAD';

export interface SigV4Credentials {
  readonly accessKeyId: string;
  readonly secretAccessKey: string;
  readonly region: string;
}

/** A request as it will be sent; the signer reads it and changes nothing. */
export interface SignableRequest {
  readonly method: string;
  /** The path as sent, already in canonical encoding (see `encodeKeyPath`). */
  readonly path: string;
  /** The query as sent, already canonical (see `canonicalQueryString`), '' for none. */
  readonly query: string;
  /** The Host header value as sent ('127.0.0.1:9000'). */
  readonly host: string;
  /** Further headers to sign besides host and x-amz-date: lower-case names, values as sent. */
  readonly headers?: readonly (readonly [string, string])[];
  /** x-amz-content-sha256: UNSIGNED_PAYLOAD or EMPTY_SHA256 (or a real hex hash). */
  readonly payloadHash: string;
}

export interface Signature {
  /** x-amz-date */
  readonly amzDate: string;
  /** Authorization */
  readonly authorization: string;
}

/** The signed header list when only the mandatory headers are signed (the common case). */
const BASE_SIGNED_HEADERS = 'host;x-amz-content-sha256;x-amz-date';

export class SigV4Signer {
  readonly #credentials: SigV4Credentials;
  // The date strings change once a second and the scope once a day: keep the last ones.
  #second = -1;
  #amzDate = '';
  #date = '';
  #scope = '';
  #credentialPrefix = '';
  #hmac: FixedKeyHmac | undefined;

  constructor(credentials: SigV4Credentials) {
    assert(credentials.accessKeyId !== '', 'signer: empty access key ID');
    assert(credentials.secretAccessKey !== '', 'signer: empty secret');
    assert(!credentials.region.includes('\n') && !credentials.region.includes('/'), 'signer: region holds no separator');
    this.#credentials = credentials;
  }

  sign(request: SignableRequest, nowMs: number = Date.now()): Signature {
    this.#advanceClock(nowMs);
    const extra = request.headers ?? [];
    let canonical = `${request.method}\n${request.path}\n${request.query}\n`;
    let signedHeaders = BASE_SIGNED_HEADERS;
    if (extra.length === 0) {
      canonical += `host:${request.host}\nx-amz-content-sha256:${request.payloadHash}\nx-amz-date:${this.#amzDate}\n`;
    } else {
      const all = sortedHeaders(request.host, request.payloadHash, this.#amzDate, extra);
      signedHeaders = '';
      for (const [name, value] of all) {
        canonical += `${name}:${canonicalHeaderValue(value)}\n`;
        signedHeaders += signedHeaders === '' ? name : `;${name}`;
      }
    }
    canonical += `\n${signedHeaders}\n${request.payloadHash}`;
    // The same string to sign as auth/signing.ts requestStringToSign, hashed one-shot (see FixedKeyHmac).
    const stringToSign = `${ALGORITHM}\n${this.#amzDate}\n${this.#scope}\n${sha256Hex(canonical)}`;
    const signature = this.#hmac!.hex(stringToSign);
    return { amzDate: this.#amzDate, authorization: `${this.#credentialPrefix}${signedHeaders}, Signature=${signature}` };
  }

  #advanceClock(nowMs: number): void {
    const second = Math.floor(nowMs / 1000);
    if (second === this.#second) return;
    this.#second = second;
    // '2013-05-24T00:00:00.000Z' -> '20130524T000000Z'
    const iso = new Date(second * 1000).toISOString();
    this.#amzDate = `${iso.slice(0, 4)}${iso.slice(5, 7)}${iso.slice(8, 13)}${iso.slice(14, 16)}${iso.slice(17, 19)}Z`;
    const date = this.#amzDate.slice(0, 8);
    if (date === this.#date) return;
    this.#date = date;
    this.#scope = `${date}/${this.#credentials.region}/${SERVICE}/${SCOPE_TERMINATOR}`;
    this.#credentialPrefix = `${ALGORITHM} Credential=${this.#credentials.accessKeyId}/${this.#scope}, SignedHeaders=`;
    this.#hmac = new FixedKeyHmac(signingKey(this.#credentials.secretAccessKey, date, this.#credentials.region));
  }
}

const ASCII = /^[\x00-\x7f]*$/;

/**
 * SHA-256 of text as it goes on the wire: node writes header strings as
 * latin1, so non-ASCII text (UTF-8 metadata bytes, one per char) is hashed
 * as latin1, as the server (`sha256HexOfWireText`) does.
 */
function sha256Hex(text: string): string {
  return hash('sha256', ASCII.test(text) ? text : Buffer.from(text, 'latin1'), 'hex');
}

function sortedHeaders(host: string, payloadHash: string, amzDate: string, extra: readonly (readonly [string, string])[]): (readonly [string, string])[] {
  const all: (readonly [string, string])[] = [['host', host], ['x-amz-content-sha256', payloadHash], ['x-amz-date', amzDate]];
  for (const header of extra) {
    assert(header[0] === header[0].toLowerCase(), 'signer: header names are lower-case');
    assert(header[0] !== 'host' && header[0] !== 'x-amz-date' && header[0] !== 'x-amz-content-sha256', 'signer: mandatory header given twice');
    all.push(header);
  }
  all.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  return all;
}

const CLEAN_VALUE = /^(?:[^\s]+(?: [^\s]+)*)?$/;
const WHITESPACE_RUN = /[ \t\r\n]+/g;

/** Trims and collapses whitespace, as SigV4 (and the server, `canonicalHeaderValue`) does. */
function canonicalHeaderValue(value: string): string {
  return CLEAN_VALUE.test(value) ? value : value.replace(WHITESPACE_RUN, ' ').trim();
}

// --- URI encoding: every byte except A-Z a-z 0-9 - . _ ~ as %XX (uppercase) ---

const UNRESERVED_PATH = /^[A-Za-z0-9\-._~/]*$/;
const UNRESERVED_COMPONENT = /^[A-Za-z0-9\-._~]*$/;
/** Characters encodeURIComponent leaves bare but SigV4 encodes. */
const SUB_DELIMITERS = /[!'()*]/g;

function encodeSubDelimiter(char: string): string {
  return `%${char.charCodeAt(0).toString(16).toUpperCase()}`;
}

/**
 * Percent-encodes text per SigV4 (the UTF-8 bytes of the string). Throws
 * URIError on a lone surrogate, which is no valid key.
 */
export function encodeComponent(text: string): string {
  if (UNRESERVED_COMPONENT.test(text)) return text;
  return encodeURIComponent(text).replace(SUB_DELIMITERS, encodeSubDelimiter);
}

/** An object key as a path: each segment encoded, '/' kept ('a b/c' -> 'a%20b/c'). */
export function encodeKeyPath(key: string): string {
  if (UNRESERVED_PATH.test(key)) return key;
  return encodeComponent(key).replaceAll('%2F', '/');
}

/**
 * The canonical query string of some parameters: names and values encoded,
 * sorted by name (undefined values are left out). Sent as is, it is also what
 * the server re-derives from the wire.
 */
export function canonicalQueryString(params: Readonly<Record<string, string | undefined>>): string {
  const pairs: [string, string][] = [];
  for (const name in params) {
    const value = params[name];
    if (value !== undefined) pairs.push([encodeComponent(name), encodeComponent(value)]);
  }
  pairs.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : a[1] < b[1] ? -1 : a[1] > b[1] ? 1 : 0));
  let out = '';
  for (const [name, value] of pairs) out += out === '' ? `${name}=${value}` : `&${name}=${value}`;
  return out;
}
