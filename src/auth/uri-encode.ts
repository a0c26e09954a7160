/**
 * SigV4 canonical URI and canonical query string, built from the request line
 * exactly as sent.
 *
 * Clients disagree on how to percent-encode (some leave '!' or '*' bare, some
 * use lowercase hex, some encode '~'), but they all sign the same canonical
 * form: every byte except A-Z a-z 0-9 - . _ ~ encoded as %XX (uppercase). So we
 * decode what arrived and re-encode it that one way, byte by byte, and never
 * go through a UTF-8 string in between (a malformed escape must not throw or
 * change other bytes). S3 does not normalise paths: 'a//b' and '../x' stay.
 */

const HEX_DIGITS = '0123456789ABCDEF';

/** '%XX' for every byte value, built once. */
const PERCENT_ENCODED: readonly string[] = Array.from({ length: 256 }, (_, byte) => `%${HEX_DIGITS[byte >> 4]}${HEX_DIGITS[byte & 15]}`);

/** 1 for the RFC 3986 unreserved ASCII characters, which stay bare. */
const UNRESERVED = new Uint8Array(128);
for (let code = 0; code < 128; code++) {
  const char = String.fromCharCode(code);
  if (/[A-Za-z0-9\-._~]/.test(char)) UNRESERVED[code] = 1;
}

const SLASH = 0x2f;
const PERCENT = 0x25;

/** Paths made of unreserved characters and '/' only are already canonical (the common case). */
const CANONICAL_PATH = /^[A-Za-z0-9\-._~/]*$/;
const CANONICAL_COMPONENT = /^[A-Za-z0-9\-._~]*$/;
/** Already percent-encoded the canonical way, except perhaps for escapes of unreserved bytes (checked apart). */
const ESCAPED_PATH = /^(?:[A-Za-z0-9\-._~/]|%[0-9A-F]{2})*$/;
const ESCAPED_COMPONENT = /^(?:[A-Za-z0-9\-._~]|%[0-9A-F]{2})*$/;

/**
 * Whether text matching ESCAPED_PATH/ESCAPED_COMPONENT is its own canonical
 * form: true unless an escape stands for an unreserved byte (canonical form
 * leaves those bare). What SDKs send (a presigned credential's '%2F', a key's
 * '%20'): canonicalEncode's character-by-character rebuild of it is skipped.
 */
function escapesAreCanonical(raw: string): boolean {
  for (let i = raw.indexOf('%'); i !== -1; i = raw.indexOf('%', i + 3)) {
    const byte = hexValue(raw.charCodeAt(i + 1)) * 16 + hexValue(raw.charCodeAt(i + 2));
    if (byte < 128 && UNRESERVED[byte] === 1) return false;
  }
  return true;
}

function hexValue(code: number): number {
  if (code >= 0x30 && code <= 0x39) return code - 0x30;
  if (code >= 0x41 && code <= 0x46) return code - 0x37;
  if (code >= 0x61 && code <= 0x66) return code - 0x57;
  return -1;
}

/** The byte of a valid %XX escape starting at `i`, or -1 (a '%' that starts no valid escape is a literal '%'). */
function escapedByteAt(raw: string, i: number): number {
  if (raw.charCodeAt(i) !== PERCENT || i + 2 >= raw.length) return -1;
  const high = hexValue(raw.charCodeAt(i + 1));
  const low = hexValue(raw.charCodeAt(i + 2));
  return high >= 0 && low >= 0 ? high * 16 + low : -1;
}

/**
 * Decodes %XX escapes and re-encodes every byte in canonical form. With
 * `keepSlash`, a literal '/' stays a separator, while an encoded '%2F' stays
 * encoded: it was part of a segment (e.g. of a key) when the client signed it.
 */
function canonicalEncode(raw: string, keepSlash: boolean): string {
  let out = '';
  for (let i = 0; i < raw.length; i++) {
    const code = raw.charCodeAt(i);
    const escaped = escapedByteAt(raw, i);
    if (escaped >= 0) {
      out += escaped < 128 && UNRESERVED[escaped] === 1 ? String.fromCharCode(escaped) : PERCENT_ENCODED[escaped];
      i += 2;
      continue;
    }
    if (code < 128) {
      out += UNRESERVED[code] === 1 || (keepSlash && code === SLASH) ? raw[i] : PERCENT_ENCODED[code];
      continue;
    }
    // Non-ASCII on the request line: encode its UTF-8 bytes (a lone surrogate becomes U+FFFD).
    const codePoint = raw.codePointAt(i) ?? code;
    if (codePoint > 0xffff) i++;
    for (const byte of Buffer.from(String.fromCodePoint(codePoint), 'utf8')) out += PERCENT_ENCODED[byte];
  }
  return out;
}

/** The canonical URI for S3: the path as sent, re-encoded, not normalised. */
export function canonicalUri(rawPath: string): string {
  if (rawPath === '') return '/';
  if (CANONICAL_PATH.test(rawPath)) return rawPath;
  return ESCAPED_PATH.test(rawPath) && escapesAreCanonical(rawPath) ? rawPath : canonicalEncode(rawPath, true);
}

/** One query parameter as sent ('+' is a literal plus: SigV4 clients encode a space as %20). */
export interface RawQueryParam {
  readonly name: string;
  readonly value: string;
}

/** Splits a raw query string into parameters; 'acl' (no '=') has the value ''. Empty pieces are dropped. */
export function splitQuery(rawQuery: string): RawQueryParam[] {
  const params: RawQueryParam[] = [];
  if (rawQuery === '') return params;
  for (const piece of rawQuery.split('&')) {
    if (piece === '') continue;
    const eq = piece.indexOf('=');
    params.push(eq === -1 ? { name: piece, value: '' } : { name: piece.slice(0, eq), value: piece.slice(eq + 1) });
  }
  return params;
}

function encodeComponent(raw: string): string {
  if (CANONICAL_COMPONENT.test(raw)) return raw;
  return ESCAPED_COMPONENT.test(raw) && escapesAreCanonical(raw) ? raw : canonicalEncode(raw, false);
}

/**
 * The canonical query string: names and values re-encoded, sorted by name then
 * value (byte order: canonical strings are ASCII), X-Amz-Signature left out
 * when `withoutSignature` (presigned URLs sign everything but the signature).
 */
export function canonicalQuery(params: readonly RawQueryParam[], withoutSignature: boolean): string {
  if (params.length === 0) return '';
  const pairs: [string, string][] = [];
  for (const param of params) {
    const name = encodeComponent(param.name);
    if (withoutSignature && name === 'X-Amz-Signature') continue;
    pairs.push([name, encodeComponent(param.value)]);
  }
  // Sorting joined 'name=value' strings would be wrong: '-', '.', '%' and
  // digits sort below '=', so 'a-b' would land before 'a'.
  pairs.sort(comparePairs);
  let out = '';
  for (const [name, value] of pairs) out += out === '' ? `${name}=${value}` : `&${name}=${value}`;
  return out;
}

function comparePairs(a: readonly [string, string], b: readonly [string, string]): number {
  if (a[0] !== b[0]) return a[0] < b[0] ? -1 : 1;
  return a[1] < b[1] ? -1 : a[1] > b[1] ? 1 : 0;
}

/** Percent-decodes a query component to text, for reading auth parameters. Malformed escapes stay literal. */
export function decodeComponent(raw: string): string {
  if (!raw.includes('%')) return raw;
  // Well-formed escapes of valid UTF-8 (every real signer's output): the
  // built-in decoder gives the same text; it throws on anything else, which
  // the byte-wise decoder below keeps literal or replaces.
  try {
    return decodeURIComponent(raw);
  } catch {
    // fall through
  }
  const bytes: number[] = [];
  for (let i = 0; i < raw.length; i++) {
    const code = raw.charCodeAt(i);
    const escaped = escapedByteAt(raw, i);
    if (escaped >= 0) {
      bytes.push(escaped);
      i += 2;
      continue;
    }
    if (code < 128) {
      bytes.push(code);
      continue;
    }
    const codePoint = raw.codePointAt(i) ?? code;
    if (codePoint > 0xffff) i++;
    for (const byte of Buffer.from(String.fromCodePoint(codePoint), 'utf8')) bytes.push(byte);
  }
  return Buffer.from(bytes).toString('utf8');
}
