/**
 * `talus scan`'s ListObjectsV2 requests, over node:http keep-alive
 * connections.
 *
 * Why not the S3Client (undici): undici parses HTTP with llhttp compiled to
 * WebAssembly, and the first response a process reads has V8 compile that
 * module, optimizing tier included, on background threads: ~100–140 ms of
 * CPU (one undici GET in a fresh process: 110–160 ms of CPU, one node:http
 * GET 8 ms). A 10 000-object head walk is over in about a second on two
 * cores it shares with the server, so that compile was ~10 % of the
 * scanner's CPU. node:http's parser is native. A scan sends one listing
 * request per 1000 objects (and a few probes), so the rest of the client's
 * cost per request does not matter here.
 */
import { Agent as HttpAgent, request as httpRequest, type IncomingMessage } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { LIST_RESPONSE_BYTES_MAX, listObjectsQuery, type ListObjectsOptions } from '../client/list-objects.ts';
import { ERROR_BODY_BYTES_MAX, errorFromResponse, flattenHeaders } from '../client/response.ts';
import { canonicalQueryString, encodeComponent } from '../client/sigv4-signer.ts';
import { EMPTY_SHA256, type ScanRequestSigner } from './request-signer.ts';

/** Longest silence on a listing request (as the S3Client's headers and body timeouts). */
export const LISTING_TIMEOUT_MS = 30_000;

export interface ListingClientOptions {
  endpoint: string;
  /** Signs for the endpoint's host. */
  signer: ScanRequestSigner;
  /** Connections at most (ranges listed at once plus probes). */
  connections: number;
}

export class ListingClient {
  readonly #origin: URL;
  readonly #signer: ScanRequestSigner;
  readonly #agent: HttpAgent;
  readonly #request: typeof httpRequest;

  constructor(options: ListingClientOptions) {
    this.#origin = new URL(options.endpoint);
    this.#signer = options.signer;
    const https = this.#origin.protocol === 'https:';
    this.#agent = https ? new HttpsAgent({ keepAlive: true, maxSockets: options.connections }) : new HttpAgent({ keepAlive: true, maxSockets: options.connections });
    this.#request = https ? httpsRequest : httpRequest;
  }

  /** One page of ListObjectsV2 as the XML the server sent; a non-2xx answer rejects with S3RequestError. */
  async listObjectsV2Document(bucket: string, options: ListObjectsOptions = {}, requestOptions: { signal?: AbortSignal } = {}): Promise<string> {
    const path = `/${encodeComponent(bucket)}`;
    const query = canonicalQueryString(listObjectsQuery(options));
    if (!this.#signer.ready) await this.#signer.keys();
    const signed = this.#signer.sign('GET', path, query);
    const headers: Record<string, string> = {
      host: this.#signer.host,
      'x-amz-date': signed.amzDate,
      'x-amz-content-sha256': EMPTY_SHA256,
      authorization: signed.authorization,
    };
    if (signed.sessionToken !== undefined) headers['x-amz-security-token'] = signed.sessionToken;
    const response = await new Promise<IncomingMessage>((resolve, reject) => {
      const request = this.#request({
        protocol: this.#origin.protocol,
        hostname: this.#origin.hostname.startsWith('[') ? this.#origin.hostname.slice(1, -1) : this.#origin.hostname,
        port: this.#origin.port,
        method: 'GET',
        path: query === '' ? path : `${path}?${query}`,
        headers,
        agent: this.#agent,
        timeout: LISTING_TIMEOUT_MS,
        signal: requestOptions.signal,
      });
      request.once('response', resolve);
      request.once('error', reject);
      request.once('timeout', () => request.destroy(new Error(`ListObjectsV2: no answer for ${LISTING_TIMEOUT_MS} ms`)));
      request.end();
    });
    const ok = response.statusCode !== undefined && response.statusCode >= 200 && response.statusCode < 300;
    const body = await readBody(response, ok ? LIST_RESPONSE_BYTES_MAX : ERROR_BODY_BYTES_MAX, ok);
    if (!ok) throw errorFromResponse(response.statusCode ?? 0, flattenHeaders(response.headers), body);
    return body.toString('utf8');
  }

  /** Closes the idle connections (call when no request is outstanding). */
  async close(): Promise<void> {
    this.#agent.destroy();
  }
}

/** The body, up to `bytesMax`: more fails (`failBeyond`, a listing larger than any valid one) or is dropped (an error document). */
async function readBody(response: IncomingMessage, bytesMax: number, failBeyond: boolean): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let kept = 0;
  for await (const chunk of response as AsyncIterable<Buffer>) {
    if (kept + chunk.length > bytesMax) {
      if (failBeyond) {
        response.destroy();
        throw new Error(`response body exceeds ${bytesMax} bytes`);
      }
      if (kept < bytesMax) chunks.push(chunk.subarray(0, bytesMax - kept));
      kept = bytesMax;
      continue;
    }
    chunks.push(chunk);
    kept += chunk.length;
  }
  return chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
}
