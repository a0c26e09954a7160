/**
 * A small S3 client over one undici Pool: path-style addressing, SigV4 header
 * auth with unsigned payloads, keep-alive connections, no retries (callers
 * decide), bodies streamed both ways and never buffered whole.
 *
 * Why not @aws-sdk/client-s3: it costs about 1.1 ms of CPU per request here
 * (docs: ../shared/measured.md); this costs tens of µs, so it can drive a
 * server at full speed from the same machine, and later carry the placement
 * engine's remote backend.
 */
import { createHash } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import type { Readable } from 'node:stream';
import { Pool, type Dispatcher } from 'undici';
import { assert } from '../util/assert.ts';
import { LIST_RESPONSE_BYTES_MAX, listObjectsQuery, parseListObjectsPage, type ListObjectsOptions, type ListObjectsPage } from './list-objects.ts';
import { xmlElementText } from './xml-text.ts';
import { defaultCredentialChain } from './credentials/default-chain.ts';
import { RefreshingCredentials, type AwsCredentials, type CredentialProvider } from './credentials/refreshing-credentials.ts';
import { LISTED_OBJECTS_RESPONSE_BYTES_MAX, parseListedObjects, parseListParts, type ListedObjectsPage, type ListedPart } from './list-entries.ts';
import { ERROR_BODY_BYTES_MAX, ResponseCollector, S3RequestError, errorFromResponse, flattenHeaders, type ReceivedResponse } from './response.ts';
import { EMPTY_SHA256, SigV4Signer, UNSIGNED_PAYLOAD, canonicalQueryString, encodeComponent, encodeKeyPath } from './sigv4-signer.ts';

export { S3RequestError };
// In a module of its own so that `talus scan` can read HEAD answers without loading undici (src/scan/scan.ts).
export { userMetadata } from './user-metadata.ts';
export type { AwsCredentials, CredentialProvider, ListObjectsOptions, ListObjectsPage, ListedObjectsPage, ListedPart };

export const CONNECTIONS_DEFAULT = 64;
export const CONNECTIONS_MAX = 4096;
/** HTTP/1.1 pipelining depth at most: a deeper queue on one connection only waits behind its head. */
export const PIPELINING_MAX = 64;
export const HEADERS_TIMEOUT_MS_DEFAULT = 30_000;
export const BODY_TIMEOUT_MS_DEFAULT = 30_000;
export const CONNECT_TIMEOUT_MS_DEFAULT = 10_000;
const TIMEOUT_MS_MAX = 3_600_000;

export interface S3ClientOptions {
  /** 'http://127.0.0.1:9000' (scheme, host and port; no path). */
  endpoint: string;
  /** Default us-east-1. */
  region?: string;
  /** Fixed keys; or give `credentials`; with neither, the AWS SDKs' chain finds them (credentials/default-chain.ts). */
  accessKeyId?: string;
  secretAccessKey?: string;
  /** With fixed keys that are temporary. */
  sessionToken?: string;
  /** Keys, or a provider of expiring keys (refreshed before expiry, one refresh at a time). */
  credentials?: AwsCredentials | CredentialProvider;
  /** Keep-alive connections at most (the pool size); default 64. */
  connections?: number;
  /**
   * HTTP/1.1 pipelining: idempotent bodiless requests (HEAD) sent on one
   * connection before the answers to earlier ones arrive, at most this many;
   * default 1 (none). Both sides then read and write several requests per
   * system call. A server answers a connection's requests one after the
   * other, so this pays on a server that answers in microseconds (on the
   * same host), not on one whose requests wait on I/O far away.
   */
  pipelining?: number;
  /** Longest wait for a response's headers once the request is sent; default 30 s. */
  headersTimeoutMs?: number;
  /** Longest silence between two chunks of a response body; default 30 s. */
  bodyTimeoutMs?: number;
  /** Longest wait for a TCP (and TLS) connection; default 10 s. */
  connectTimeoutMs?: number;
}

export interface PutObjectOptions {
  /** Required for a Readable body; a Buffer's length is its own. */
  contentLength?: number;
  /** User metadata, sent as x-amz-meta-<name> (names lower-cased; values as UTF-8). */
  metadata?: Record<string, string>;
  contentType?: string;
  /** Conditional write: '*' fails with 412 when the key exists. */
  ifNoneMatch?: string;
  /** Conditional write: fails with 412 unless the current ETag matches. */
  ifMatch?: string;
  /** Aborts the request, body and all (an upload given up before its answer came). */
  signal?: AbortSignal;
}

export interface CreateMultipartUploadOptions {
  contentType?: string;
  /** User metadata of the object the upload will make. */
  metadata?: Record<string, string>;
}

export interface CompleteMultipartUploadOptions {
  /** '*': complete only if the key does not exist (412 otherwise). */
  ifNoneMatch?: string;
  /** Complete only if the current object has this ETag. */
  ifMatch?: string;
}

export interface RequestOptions {
  /** Aborts the request (a caller's deadline, shorter than the client's own timeouts). */
  signal?: AbortSignal;
}

export interface GetObjectOptions {
  /** An HTTP Range header value, e.g. 'bytes=0-99'. */
  range?: string;
  /** Aborts the request and its body. */
  signal?: AbortSignal;
}

/** A key DeleteObjects could not delete. */
export interface DeleteObjectsError {
  key: string;
  code: string;
  message: string;
}

/** DeleteObjects takes at most this many keys per request. */
export const DELETE_OBJECTS_KEYS_MAX = 1000;

export interface ObjectResponse {
  status: number;
  /** Lower-case names; values as on the wire (latin1: see `userMetadata` for UTF-8 metadata). */
  headers: Record<string, string>;
}

export interface ConnectionStats {
  /** Open sockets. */
  connected: number;
  /** Open sockets without a request. */
  free: number;
  /** Requests in flight on a socket. */
  running: number;
  /** Requests waiting for a socket. */
  pending: number;
}

/** One outgoing request, before signing. */
interface Call {
  readonly method: 'GET' | 'HEAD' | 'PUT' | 'DELETE' | 'POST';
  readonly bucket: string;
  readonly key?: string;
  /** Canonical query string ('' for none). */
  readonly query?: string;
  /** Headers to sign besides the mandatory ones (x-amz-meta-*): lower-case names. */
  readonly signed?: readonly (readonly [string, string])[];
  /** Headers sent unsigned, flat: [name, value, name, value...]. */
  readonly unsigned?: readonly string[];
  readonly body?: Buffer | Readable | null;
}

export class S3Client {
  readonly endpoint: string;
  readonly region: string;
  readonly #pool: Pool;
  readonly #credentials: RefreshingCredentials;
  #signer: SigV4Signer | undefined;
  #signerCredentials: AwsCredentials | undefined;
  readonly #host: string;
  readonly #headersTimeoutMs: number;
  readonly #bodyTimeoutMs: number;

  constructor(options: S3ClientOptions) {
    const url = new URL(options.endpoint);
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new TypeError(`endpoint must be http(s): ${options.endpoint}`);
    if (url.pathname !== '/' || url.search !== '' || url.username !== '') throw new TypeError(`endpoint takes no path, query or user: ${options.endpoint}`);
    const connections = checkedInteger('connections', options.connections ?? CONNECTIONS_DEFAULT, 1, CONNECTIONS_MAX);
    this.#headersTimeoutMs = checkedInteger('headersTimeoutMs', options.headersTimeoutMs ?? HEADERS_TIMEOUT_MS_DEFAULT, 1, TIMEOUT_MS_MAX);
    this.#bodyTimeoutMs = checkedInteger('bodyTimeoutMs', options.bodyTimeoutMs ?? BODY_TIMEOUT_MS_DEFAULT, 1, TIMEOUT_MS_MAX);
    const connectTimeoutMs = checkedInteger('connectTimeoutMs', options.connectTimeoutMs ?? CONNECT_TIMEOUT_MS_DEFAULT, 1, TIMEOUT_MS_MAX);
    const pipelining = checkedInteger('pipelining', options.pipelining ?? 1, 1, PIPELINING_MAX);
    this.endpoint = url.origin;
    this.region = options.region ?? 'us-east-1';
    // URL.host drops a default port, as undici's own Host header does; we send ours explicitly anyway.
    this.#host = url.host;
    if (options.accessKeyId !== undefined || options.secretAccessKey !== undefined) {
      if (options.accessKeyId === undefined || options.secretAccessKey === undefined) throw new TypeError('accessKeyId and secretAccessKey go together');
      const fixed: AwsCredentials = { accessKeyId: options.accessKeyId, secretAccessKey: options.secretAccessKey, ...(options.sessionToken === undefined ? {} : { sessionToken: options.sessionToken }) };
      this.#credentials = new RefreshingCredentials(fixed);
    } else {
      this.#credentials = new RefreshingCredentials(options.credentials ?? defaultCredentialChain());
    }
    this.#pool = new Pool(url.origin, { connections, pipelining, connect: { timeout: connectTimeoutMs } });
  }

  /** Creates a bucket; one this key already owns counts as created. */
  async createBucket(bucket: string, options: RequestOptions = {}): Promise<void> {
    // Outside us-east-1, S3 wants the region in the body.
    const body =
      this.region === 'us-east-1'
        ? null
        : Buffer.from(`<CreateBucketConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><LocationConstraint>${this.region}</LocationConstraint></CreateBucketConfiguration>`);
    const response = await this.#send({ method: 'PUT', bucket, body }, 0, options.signal);
    if (response.status < 300) return;
    const error = errorFromResponse(response.status, response.headers, response.body);
    if (error.code !== 'BucketAlreadyOwnedByYou') throw error;
  }

  async putObject(bucket: string, key: string, body: Buffer | Readable, options: PutObjectOptions = {}): Promise<{ etag: string }> {
    const unsigned: string[] = [];
    if (!Buffer.isBuffer(body)) {
      if (options.contentLength === undefined) throw new TypeError('putObject: a Readable body needs options.contentLength');
      unsigned.push('content-length', String(checkedInteger('contentLength', options.contentLength, 0, Number.MAX_SAFE_INTEGER)));
    } else if (options.contentLength !== undefined && options.contentLength !== body.length) {
      throw new TypeError(`putObject: contentLength ${options.contentLength} differs from the body's ${body.length} bytes`);
    }
    if (options.contentType !== undefined) unsigned.push('content-type', options.contentType);
    if (options.ifNoneMatch !== undefined) unsigned.push('if-none-match', options.ifNoneMatch);
    if (options.ifMatch !== undefined) unsigned.push('if-match', options.ifMatch);
    const signed = options.metadata === undefined ? undefined : metadataHeaders(options.metadata);
    const response = await this.#send({ method: 'PUT', bucket, key, body, signed, unsigned }, 0, options.signal);
    this.#expectOk(response);
    return { etag: response.headers['etag'] ?? '' };
  }

  /** GETs an object and counts its body without keeping it (for load and for checks of length only). */
  async getObject(bucket: string, key: string, options: GetObjectOptions = {}): Promise<ObjectResponse & { bytes: number }> {
    const unsigned = options.range === undefined ? undefined : ['range', options.range];
    const response = await this.#send({ method: 'GET', bucket, key, unsigned }, 0);
    this.#expectOk(response);
    return { status: response.status, headers: response.headers, bytes: response.bytes };
  }

  /** GETs an object as a stream: the caller must consume or destroy `body`. */
  async getObjectStream(bucket: string, key: string, options: GetObjectOptions = {}): Promise<ObjectResponse & { body: Readable }> {
    const unsigned = options.range === undefined ? undefined : ['range', options.range];
    const credentials = await this.#credentials.get();
    const response = await this.#pool.request({ ...this.#dispatchOptions({ method: 'GET', bucket, key, unsigned }, credentials), signal: options.signal });
    const headers = flattenHeaders(response.headers as IncomingHttpHeaders);
    if (response.statusCode >= 300) throw errorFromResponse(response.statusCode, headers, await readBounded(response.body, ERROR_BODY_BYTES_MAX));
    return { status: response.statusCode, headers, body: response.body };
  }

  async headObject(bucket: string, key: string, options: RequestOptions = {}): Promise<ObjectResponse> {
    const response = await this.#send({ method: 'HEAD', bucket, key }, 0, options.signal);
    this.#expectOk(response);
    return { status: response.status, headers: response.headers };
  }

  /** GetObjectTagging: the object's tags, in the order the server lists them. */
  async getObjectTagging(bucket: string, key: string, options: RequestOptions = {}): Promise<{ key: string; value: string }[]> {
    const response = await this.#send({ method: 'GET', bucket, key, query: 'tagging=' }, ERROR_BODY_BYTES_MAX, options.signal);
    this.#expectOk(response);
    const tags: { key: string; value: string }[] = [];
    for (const match of response.body.toString('utf8').matchAll(/<Tag>([\s\S]*?)<\/Tag>/g)) {
      tags.push({ key: xmlElementText(match[1]!, 'Key') ?? '', value: xmlElementText(match[1]!, 'Value') ?? '' });
    }
    return tags;
  }

  async deleteObject(bucket: string, key: string, options: RequestOptions = {}): Promise<void> {
    this.#expectOk(await this.#send({ method: 'DELETE', bucket, key }, 0, options.signal));
  }

  /**
   * DeleteObjects in quiet mode: the keys it could not delete, with their
   * error codes (a missing key counts as deleted, as in S3).
   */
  async deleteObjects(bucket: string, keys: readonly string[], options: RequestOptions = {}): Promise<DeleteObjectsError[]> {
    assert(keys.length > 0 && keys.length <= DELETE_OBJECTS_KEYS_MAX, `deleteObjects: 1 to ${DELETE_OBJECTS_KEYS_MAX} keys`);
    const objects = keys.map((key) => `<Object><Key>${escapeXml(key)}</Key></Object>`).join('');
    const body = Buffer.from(`<Delete xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Quiet>true</Quiet>${objects}</Delete>`);
    // S3 refuses DeleteObjects without an integrity header.
    const unsigned = ['content-md5', createHash('md5').update(body).digest('base64'), 'content-type', 'application/xml'];
    const response = await this.#send({ method: 'POST', bucket, query: 'delete=', body, unsigned }, ERROR_BODY_BYTES_MAX * 16, options.signal);
    this.#expectOk(response);
    // A 200 whose body is an error document is a failure too (S3 does this for long-running requests).
    const text = response.body.toString('utf8');
    if (/^\s*(<\?xml[^>]*>\s*)?<Error>/.test(text)) throw errorFromResponse(500, response.headers, response.body);
    const errors: DeleteObjectsError[] = [];
    for (const match of text.matchAll(/<Error>([\s\S]*?)<\/Error>/g)) {
      const entry = match[1]!;
      errors.push({ key: xmlElementText(entry, 'Key') ?? '', code: xmlElementText(entry, 'Code') ?? 'InternalError', message: xmlElementText(entry, 'Message') ?? '' });
    }
    return errors;
  }

  /** Starts a multipart upload; returns its upload ID. */
  async createMultipartUpload(bucket: string, key: string, options: CreateMultipartUploadOptions = {}): Promise<string> {
    const unsigned = options.contentType === undefined ? undefined : ['content-type', options.contentType];
    const signed = options.metadata === undefined ? undefined : metadataHeaders(options.metadata);
    const response = await this.#send({ method: 'POST', bucket, key, query: 'uploads=', signed, unsigned }, ERROR_BODY_BYTES_MAX);
    this.#expectOk(response);
    const uploadId = xmlElementText(response.body.toString('utf8'), 'UploadId');
    if (uploadId === undefined || uploadId === '') throw new S3RequestError(response.status, 'InvalidResponse', 'CreateMultipartUpload answered without an UploadId');
    return uploadId;
  }

  /** Uploads one part from a stream of exactly `contentLength` bytes; returns its ETag. */
  async uploadPart(bucket: string, key: string, uploadId: string, partNumber: number, body: Buffer | Readable, contentLength: number): Promise<string> {
    const query = canonicalQueryString({ partNumber: String(checkedInteger('partNumber', partNumber, 1, 10_000)), uploadId });
    const unsigned = Buffer.isBuffer(body) ? [] : ['content-length', String(checkedInteger('contentLength', contentLength, 0, Number.MAX_SAFE_INTEGER))];
    const response = await this.#send({ method: 'PUT', bucket, key, query, body, unsigned }, 0);
    this.#expectOk(response);
    const etag = response.headers['etag'];
    if (etag === undefined || etag === '') throw new S3RequestError(response.status, 'InvalidResponse', `UploadPart ${partNumber} answered without an ETag`);
    return etag;
  }

  /**
   * Completes a multipart upload. S3 may answer 200 and then, in the body,
   * an <Error> (the request ran long): that is a failure, not a success.
   */
  async completeMultipartUpload(
    bucket: string,
    key: string,
    uploadId: string,
    etags: readonly string[] | readonly { partNumber: number; etag: string }[],
    options: CompleteMultipartUploadOptions = {},
  ): Promise<{ etag: string }> {
    const numbered = etags.map((part, i) => (typeof part === 'string' ? { partNumber: i + 1, etag: part } : part));
    const parts = numbered.map(({ partNumber, etag }) => `<Part><PartNumber>${partNumber}</PartNumber><ETag>${escapeXml(etag)}</ETag></Part>`).join('');
    const body = Buffer.from(`<CompleteMultipartUpload xmlns="http://s3.amazonaws.com/doc/2006-03-01/">${parts}</CompleteMultipartUpload>`);
    const query = canonicalQueryString({ uploadId });
    const unsigned = ['content-type', 'application/xml'];
    if (options.ifNoneMatch !== undefined) unsigned.push('if-none-match', options.ifNoneMatch);
    if (options.ifMatch !== undefined) unsigned.push('if-match', options.ifMatch);
    const response = await this.#send({ method: 'POST', bucket, key, query, body, unsigned }, ERROR_BODY_BYTES_MAX);
    this.#expectOk(response);
    const text = response.body.toString('utf8');
    if (/^\s*(<\?xml[^>]*>\s*)?<Error>/.test(text)) throw errorFromResponse(500, response.headers, response.body);
    if (!text.includes('CompleteMultipartUploadResult')) throw new S3RequestError(response.status, 'InvalidResponse', 'CompleteMultipartUpload answered without a result');
    return { etag: xmlElementText(text, 'ETag') ?? response.headers['etag'] ?? '' };
  }

  /** The parts uploaded so far (all pages). */
  async listParts(bucket: string, key: string, uploadId: string, options: RequestOptions = {}): Promise<ListedPart[]> {
    const parts: ListedPart[] = [];
    let marker: string | undefined;
    for (;;) {
      const query = canonicalQueryString({ uploadId, 'part-number-marker': marker });
      const response = await this.#send({ method: 'GET', bucket, key, query }, LISTED_OBJECTS_RESPONSE_BYTES_MAX, options.signal);
      this.#expectOk(response);
      const page = parseListParts(response.body.toString('utf8'));
      parts.push(...page.parts);
      if (!page.isTruncated || page.nextPartNumberMarker === undefined) return parts;
      marker = page.nextPartNumberMarker;
    }
  }

  /** One page of ListObjectsV2 with each object's size, ETag and last-modified time. */
  async listObjectsV2Entries(bucket: string, options: ListObjectsOptions & RequestOptions = {}): Promise<ListedObjectsPage> {
    const query = canonicalQueryString(listObjectsQuery(options));
    const response = await this.#send({ method: 'GET', bucket, query }, LISTED_OBJECTS_RESPONSE_BYTES_MAX, options.signal);
    this.#expectOk(response);
    return parseListedObjects(response.body.toString('utf8'));
  }

  async abortMultipartUpload(bucket: string, key: string, uploadId: string): Promise<void> {
    const response = await this.#send({ method: 'DELETE', bucket, key, query: canonicalQueryString({ uploadId }) }, 0);
    if (response.status === 404) return; // already gone
    this.#expectOk(response);
  }

  /** One page of ListObjectsV2. */
  async listObjectsV2(bucket: string, options: ListObjectsOptions = {}): Promise<ListObjectsPage> {
    const query = canonicalQueryString(listObjectsQuery(options));
    const response = await this.#send({ method: 'GET', bucket, query }, LIST_RESPONSE_BYTES_MAX);
    this.#expectOk(response);
    return parseListObjectsPage(response.body.toString('utf8'));
  }

  /** One page of ListObjectsV2 as the XML the server sent (for callers that read more than keys, e.g. metadata=true). */
  async listObjectsV2Document(bucket: string, options: ListObjectsOptions = {}, requestOptions: RequestOptions = {}): Promise<string> {
    const query = canonicalQueryString(listObjectsQuery(options));
    const response = await this.#send({ method: 'GET', bucket, query }, LIST_RESPONSE_BYTES_MAX, requestOptions.signal);
    this.#expectOk(response);
    return response.body.toString('utf8');
  }

  connectionStats(): ConnectionStats {
    const stats = this.#pool.stats;
    return { connected: stats.connected, free: stats.free, running: stats.running, pending: stats.pending };
  }

  /** Lets requests in flight finish, then closes every connection. */
  async close(): Promise<void> {
    await this.#pool.close();
  }

  #send(call: Call, keepBytesMax: number, signal?: AbortSignal): Promise<ReceivedResponse> {
    // Fixed or fresh credentials sign at once; only a first fetch or an expired set waits.
    const credentials = this.#credentials.peek();
    if (credentials === undefined) return this.#credentials.get().then((fresh) => this.#dispatch(call, keepBytesMax, signal, fresh));
    return this.#dispatch(call, keepBytesMax, signal, credentials);
  }

  #dispatch(call: Call, keepBytesMax: number, signal: AbortSignal | undefined, credentials: AwsCredentials): Promise<ReceivedResponse> {
    const collector = new ResponseCollector(keepBytesMax, signal);
    this.#pool.dispatch(this.#dispatchOptions(call, credentials), collector);
    return collector.promise;
  }

  #signerFor(credentials: AwsCredentials): SigV4Signer {
    if (this.#signerCredentials !== credentials || this.#signer === undefined) {
      this.#signer = new SigV4Signer({ accessKeyId: credentials.accessKeyId, secretAccessKey: credentials.secretAccessKey, region: this.region });
      this.#signerCredentials = credentials;
    }
    return this.#signer;
  }

  #expectOk(response: ReceivedResponse): void {
    if (response.status < 200 || response.status >= 300) throw errorFromResponse(response.status, response.headers, response.body);
  }

  #dispatchOptions(call: Call, credentials: AwsCredentials): Dispatcher.DispatchOptions {
    assert(call.bucket !== '', 'client: empty bucket name');
    assert(call.key !== '', 'client: empty key');
    let path = `/${encodeComponent(call.bucket)}`;
    if (call.key !== undefined) path += `/${encodeKeyPath(call.key)}`;
    const query = call.query ?? '';
    const body = call.body ?? null;
    const payloadHash = body === null ? EMPTY_SHA256 : UNSIGNED_PAYLOAD;
    const token = credentials.sessionToken;
    const signed = token === undefined ? call.signed : [...(call.signed ?? []), ['x-amz-security-token', token] as const];
    const signature = this.#signerFor(credentials).sign({ method: call.method, path, query, host: this.#host, headers: signed, payloadHash });
    const headers = ['host', this.#host, 'x-amz-date', signature.amzDate, 'x-amz-content-sha256', payloadHash, 'authorization', signature.authorization];
    if (signed !== undefined) for (const [name, value] of signed) headers.push(name, value);
    if (call.unsigned !== undefined) headers.push(...call.unsigned);
    return {
      method: call.method,
      path: query === '' ? path : `${path}?${query}`,
      headers,
      body,
      // undici closes the socket after every HEAD unless told not to (a guard
      // against servers that send a body with HEAD; ours do not).
      reset: false,
      headersTimeout: this.#headersTimeoutMs,
      bodyTimeout: this.#bodyTimeoutMs,
    };
  }
}

function escapeXml(text: string): string {
  return text.replaceAll('&', '&amp;').replaceAll('<', '&lt;').replaceAll('>', '&gt;');
}

const METADATA_NAME = /^[a-z0-9!#$%&'*+.^_`|~-]+$/;
const ASCII = /^[\x20-\x7e]*$/;

/**
 * x-amz-meta-* headers, sorted (the signer sorts anyway). Non-ASCII values go
 * as their UTF-8 bytes: node and undici write header strings as latin1, so
 * the string carries one byte per character.
 */
function metadataHeaders(metadata: Record<string, string>): [string, string][] {
  const headers: [string, string][] = [];
  for (const [name, value] of Object.entries(metadata)) {
    const lower = name.toLowerCase();
    if (!METADATA_NAME.test(lower)) throw new TypeError(`invalid metadata name: ${JSON.stringify(name)}`);
    headers.push([`x-amz-meta-${lower}`, ASCII.test(value) ? value : Buffer.from(value, 'utf8').toString('latin1')]);
  }
  return headers;
}

function checkedInteger(name: string, value: number, min: number, max: number): number {
  if (!Number.isInteger(value) || value < min || value > max) throw new RangeError(`${name} must be an integer from ${min} to ${max}, not ${value}`);
  return value;
}

/** Reads up to `bytesMax` of a body and discards the rest. */
async function readBounded(body: Readable, bytesMax: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let kept = 0;
  for await (const chunk of body as AsyncIterable<Buffer>) {
    if (kept >= bytesMax) continue;
    const piece = chunk.subarray(0, bytesMax - kept);
    chunks.push(piece);
    kept += piece.length;
  }
  return Buffer.concat(chunks, kept);
}
