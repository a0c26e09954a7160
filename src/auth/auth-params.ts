/**
 * Parsing of the two places a SigV4 signature can come in: the Authorization
 * header and the presigned-URL query parameters. Both end up as the same
 * SignatureParams; only the error code differs, as on AWS
 * (AuthorizationHeaderMalformed vs AuthorizationQueryParametersError).
 */
import { S3Error } from '../util/s3-error.ts';
import { PRESIGN_EXPIRY_SECONDS_MAX } from '../util/limits.ts';
import { ALGORITHM, SCOPE_TERMINATOR, SERVICE } from './signing.ts';
import { decodeComponent, type RawQueryParam } from './uri-encode.ts';

export type AuthKind = 'header' | 'query';

export interface SignatureParams {
  readonly kind: AuthKind;
  readonly accessKeyId: string;
  /** yyyymmdd from the credential scope. */
  readonly scopeDate: string;
  readonly region: string;
  /** date/region/s3/aws4_request, as it goes into the string to sign. */
  readonly scope: string;
  /** Lower-case header names in the order the client listed (and signed) them. */
  readonly signedHeaders: readonly string[];
  readonly signature: string;
}

export interface PresignParams extends SignatureParams {
  /** X-Amz-Date, ISO 8601 basic. */
  readonly amzDate: string;
  readonly expiresSeconds: number;
  /** X-Amz-Content-Sha256 from the query, if the signer put it there. */
  readonly contentSha256: string | undefined;
}

const UNSUPPORTED_MECHANISM = 'The authorization mechanism you have provided is not supported. Please use AWS4-HMAC-SHA256.';

/** Lower-case HTTP token characters: what a canonical header name may contain. */
const HEADER_NAME = /^[a-z0-9!#$%&'*+.^_`|~-]+$/;
const SCOPE_DATE = /^\d{8}$/;
/** Regions are free-form across S3 implementations ('us-east-1', 'auto', 'garage'), but never hold '/' or whitespace. */
const REGION = /^[A-Za-z0-9._-]{0,64}$/;

function malformed(kind: AuthKind, detail: string): S3Error {
  return kind === 'header'
    ? new S3Error('AuthorizationHeaderMalformed', `The authorization header is malformed; ${detail}`)
    : new S3Error('AuthorizationQueryParametersError', `Error parsing the X-Amz-Credential parameter; ${detail}`);
}

export function unsupportedMechanism(): S3Error {
  return new S3Error('InvalidRequest', UNSUPPORTED_MECHANISM);
}

/** Hex characters of a SHA-256 signature. */
const SIGNATURE_HEX_CHARS = 64;
const HEX_TAIL = /^[0-9a-fA-F]{64}$/;

/**
 * Parses 'AWS4-HMAC-SHA256 Credential=..., SignedHeaders=..., Signature=...'.
 * A client sends the same text before its signature request after request:
 * when the value ends with 'Signature=' and 64 hex digits, what comes before
 * is parsed once and kept, and the signature is taken as it is (the parse of
 * such a value cannot depend on which 64 hex digits end it). A prefix is kept
 * only when the full parse's signature is exactly those 64 digits, so a
 * lookup gives what a full parse would.
 */
export function parseAuthorizationHeader(value: string): SignatureParams {
  const split = value.length - SIGNATURE_HEX_CHARS;
  const signatureLast = split > 0 && value.endsWith('Signature=', split) && HEX_TAIL.test(value.slice(split));
  if (!signatureLast) return parseAuthorizationText(value);
  const prefix = value.slice(0, split);
  const signature = value.slice(split);
  const known = authorizationPrefixes.get(prefix);
  if (known !== undefined) return { ...known, signature };
  const params = parseAuthorizationText(value);
  // Kept only when the full parse found the same signature the cached path
  // would hand out: a value such as '..., Signature=junk Signature=<hex>'
  // parses as the signature 'junk Signature=<hex>', and a later lookup must
  // not turn it into '<hex>'.
  if (params.signature === signature) authorizationPrefixes.remember(prefix, { ...params, signature: '' });
  return params;
}

function parseAuthorizationText(value: string): SignatureParams {
  if (!value.startsWith(`${ALGORITHM} `)) {
    // SigV2 ('AWS AKID:sig') and SigV4a ('AWS4-ECDSA-P256-SHA256 ...') are real schemes we do not implement.
    if (value.startsWith('AWS ') || value.startsWith('AWS4-')) throw unsupportedMechanism();
    throw new S3Error('InvalidArgument', 'Unsupported Authorization Type', { ArgumentName: 'Authorization', ArgumentValue: value.slice(0, 64) });
  }
  let credential: string | undefined;
  let signedHeaders: string | undefined;
  let signature: string | undefined;
  for (const part of value.slice(ALGORITHM.length + 1).split(',')) {
    const trimmed = part.trim();
    if (trimmed === '') continue;
    const eq = trimmed.indexOf('=');
    const name = eq === -1 ? trimmed : trimmed.slice(0, eq).trim();
    const text = eq === -1 ? '' : trimmed.slice(eq + 1).trim();
    if (name === 'Credential' && credential === undefined) credential = text;
    else if (name === 'SignedHeaders' && signedHeaders === undefined) signedHeaders = text;
    else if (name === 'Signature' && signature === undefined) signature = text;
    else throw malformed('header', `unexpected or repeated component "${name.slice(0, 32)}".`);
  }
  if (credential === undefined || signedHeaders === undefined || signature === undefined) {
    throw malformed('header', 'the authorization header requires three components: Credential, SignedHeaders, and Signature.');
  }
  return { kind: 'header', ...parseCredential(credential, 'header'), signedHeaders: parseSignedHeaders(signedHeaders, 'header'), signature };
}

interface CredentialParts {
  accessKeyId: string;
  scopeDate: string;
  region: string;
  scope: string;
}

/**
 * The Credential and SignedHeaders texts repeat from request to request (one
 * key, one day, one client), while only the signature and the date change:
 * what parsed once is kept, so a request costs a Map lookup instead of the
 * splits and regular expressions (profiled, issue 17). Only successful parses
 * are kept (a malformed text throws again every time, with the kind's
 * error); the entries are frozen and bounded, oldest out first.
 */
const PARSED_TEXTS_MAX = 256;
/**
 * Longer texts are parsed every time, not kept: real ones are a few hundred
 * characters, and anyone can send texts that parse (they are kept before the
 * signature is checked), so this bounds the memory to 256 KiB per map.
 */
const PARSED_TEXT_CHARS_MAX = 1024;

class ParsedTexts<T> {
  readonly #entries = new Map<string, T>();

  get(text: string): T | undefined {
    return this.#entries.get(text);
  }

  remember(text: string, value: T): T {
    if (text.length > PARSED_TEXT_CHARS_MAX) return value;
    if (this.#entries.size >= PARSED_TEXTS_MAX) this.#entries.delete(this.#entries.keys().next().value as string);
    this.#entries.set(text, Object.freeze(value));
    return value;
  }
}

const credentials = new ParsedTexts<CredentialParts>();
const signedHeaderLists = new ParsedTexts<readonly string[]>();
/** Authorization values up to their signature; entries hold an empty signature. */
const authorizationPrefixes = new ParsedTexts<SignatureParams>();

/** 'AKID/yyyymmdd/region/s3/aws4_request'. Any region is accepted: clients are configured with all sorts. */
function parseCredential(text: string, kind: AuthKind): CredentialParts {
  return credentials.get(text) ?? credentials.remember(text, parseCredentialText(text, kind));
}

function parseCredentialText(text: string, kind: AuthKind): CredentialParts {
  const parts = text.split('/');
  const count = parts.length;
  const expecting = 'the Credential is mal-formed; expecting "<YOUR-AKID>/YYYYMMDD/REGION/SERVICE/aws4_request".';
  if (count < 5) throw malformed(kind, expecting);
  const accessKeyId = parts.slice(0, count - 4).join('/');
  const scopeDate = parts[count - 4] ?? '';
  const region = parts[count - 3] ?? '';
  const service = parts[count - 2] ?? '';
  const terminator = parts[count - 1] ?? '';
  if (accessKeyId === '' || !SCOPE_DATE.test(scopeDate) || !REGION.test(region)) throw malformed(kind, expecting);
  if (service !== SERVICE) throw malformed(kind, `incorrect service "${service.slice(0, 32)}". This endpoint belongs to "${SERVICE}".`);
  if (terminator !== SCOPE_TERMINATOR) throw malformed(kind, `incorrect terminal "${terminator.slice(0, 32)}". This endpoint uses "${SCOPE_TERMINATOR}".`);
  return { accessKeyId, scopeDate, region, scope: `${scopeDate}/${region}/${SERVICE}/${SCOPE_TERMINATOR}` };
}

function parseSignedHeaders(text: string, kind: AuthKind): readonly string[] {
  return signedHeaderLists.get(text) ?? signedHeaderLists.remember(text, parseSignedHeadersText(text, kind));
}

function parseSignedHeadersText(text: string, kind: AuthKind): string[] {
  const names = text.split(';');
  for (const name of names) {
    if (!HEADER_NAME.test(name)) throw malformed(kind, 'the SignedHeaders component is mal-formed.');
  }
  return names;
}

/** The presign parameters as found in the query, still raw; undefined when absent. */
interface PresignFields {
  algorithm?: string;
  credential?: string;
  date?: string;
  expires?: string;
  signedHeaders?: string;
  signature?: string;
  contentSha256?: string;
}

/** A Map, not an object: a parameter named 'constructor' or 'toString' must find nothing. */
const PRESIGN_FIELDS: ReadonlyMap<string, keyof PresignFields> = new Map([
  ['X-Amz-Algorithm', 'algorithm'],
  ['X-Amz-Credential', 'credential'],
  ['X-Amz-Date', 'date'],
  ['X-Amz-Expires', 'expires'],
  ['X-Amz-SignedHeaders', 'signedHeaders'],
  ['X-Amz-Signature', 'signature'],
  ['X-Amz-Content-Sha256', 'contentSha256'],
]);

/** Whether the query carries a SigV4 presign (any of its defining parameters) or a SigV2 one. */
export function presignVersion(params: readonly RawQueryParam[]): 4 | 2 | null {
  let v2Signature = false;
  let v2Key = false;
  for (const param of params) {
    const name = param.name;
    if (name === 'X-Amz-Signature' || name === 'X-Amz-Algorithm' || name === 'X-Amz-Credential') return 4;
    if (name === 'Signature') v2Signature = true;
    else if (name === 'AWSAccessKeyId') v2Key = true;
  }
  return v2Signature && v2Key ? 2 : null;
}

const AMZ_DATE = /^\d{8}T\d{6}Z$/;

/** Reads and validates the presign parameters (names are matched exactly, as AWS does). */
export function parsePresignQuery(params: readonly RawQueryParam[]): PresignParams {
  // Every field present from the start: one object shape for every request.
  const fields: PresignFields = { algorithm: undefined, credential: undefined, date: undefined, expires: undefined, signedHeaders: undefined, signature: undefined, contentSha256: undefined };
  for (const param of params) {
    const field = PRESIGN_FIELDS.get(param.name);
    if (field === undefined) continue;
    if (fields[field] !== undefined) {
      throw new S3Error('AuthorizationQueryParametersError', `Query-string authentication parameter ${param.name} is repeated.`);
    }
    fields[field] = decodeComponent(param.value);
  }
  const { algorithm, credential, date, expires, signedHeaders, signature } = fields;
  if (algorithm === undefined || credential === undefined || date === undefined || expires === undefined || signedHeaders === undefined || signature === undefined) {
    throw new S3Error(
      'AuthorizationQueryParametersError',
      'Query-string authentication version 4 requires the X-Amz-Algorithm, X-Amz-Credential, X-Amz-Signature, X-Amz-Date, X-Amz-SignedHeaders, and X-Amz-Expires parameters.',
    );
  }
  if (algorithm !== ALGORITHM) throw new S3Error('AuthorizationQueryParametersError', `X-Amz-Algorithm only supports "${ALGORITHM}".`);
  if (!AMZ_DATE.test(date)) {
    throw new S3Error('AuthorizationQueryParametersError', 'X-Amz-Date must be in the ISO8601 Long Format "yyyyMMdd\'T\'HHmmss\'Z\'".');
  }
  if (!/^-?\d+$/.test(expires)) throw new S3Error('AuthorizationQueryParametersError', 'X-Amz-Expires should be a number.');
  const expiresSeconds = Number(expires);
  if (expiresSeconds < 1) throw new S3Error('AuthorizationQueryParametersError', 'X-Amz-Expires must be positive.');
  if (expiresSeconds > PRESIGN_EXPIRY_SECONDS_MAX) {
    throw new S3Error('AuthorizationQueryParametersError', `X-Amz-Expires must be less than a week (in seconds) that is ${PRESIGN_EXPIRY_SECONDS_MAX}.`);
  }
  return {
    kind: 'query',
    ...parseCredential(credential, 'query'),
    signedHeaders: parseSignedHeaders(signedHeaders, 'query'),
    signature,
    amzDate: date,
    expiresSeconds,
    contentSha256: fields.contentSha256,
  };
}

/** Scope date must be the date of the request timestamp. */
export function checkScopeDate(params: SignatureParams, amzDate: string): void {
  const requestDate = amzDate.slice(0, 8);
  if (params.scopeDate !== requestDate) {
    throw malformed(params.kind, `Invalid credential date "${params.scopeDate}". This date is not the same as X-Amz-Date: "${requestDate}".`);
  }
}
