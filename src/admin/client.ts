/**
 * A client of the admin API (`talus admin`, tests, scripts): signs each call
 * with SigV4 over its JSON body, as any caller must.
 */
import { hash } from 'node:crypto';
import { request } from 'undici';
import { SigV4Signer } from '../client/sigv4-signer.ts';
import { ADMIN_PATH_PREFIX } from './paths.ts';

/** Answers larger than this are refused (a listing of every key of a big installation stays far below). */
const ADMIN_ANSWER_BYTES_MAX = 64 * 1024 * 1024;

export class AdminApiError extends Error {
  override name = 'AdminApiError';
  constructor(readonly status: number, readonly code: string, message: string) {
    super(`${code}: ${message}`);
  }
}

export type AdminClientOptions = {
  /** The admin listener, e.g. http://127.0.0.1:9001 */
  endpoint: string;
  region?: string;
  /** Headers added to each signed call, given its Authorization header (the console seals its browser's address with them). */
  addHeaders?: ((authorization: string) => Record<string, string>) | undefined;
} & ({ accessKeyId: string; secretAccessKey: string } | { /** A bearer token (CreateToken): sent instead of a signature. */ token: string });

export class AdminClient {
  readonly #url: URL;
  readonly #signer: SigV4Signer | undefined;
  readonly #token: string | undefined;
  readonly #addHeaders: ((authorization: string) => Record<string, string>) | undefined;

  constructor(options: AdminClientOptions) {
    this.#url = new URL(options.endpoint);
    this.#addHeaders = options.addHeaders;
    if ('token' in options) this.#token = options.token;
    else this.#signer = new SigV4Signer({ accessKeyId: options.accessKeyId, secretAccessKey: options.secretAccessKey, region: options.region ?? 'us-east-1' });
  }

  /** Calls `operation` with `input`; answers its JSON, or throws AdminApiError with the server's code. */
  async call<T = Record<string, unknown>>(operation: string, input: object = {}): Promise<T> {
    const body = JSON.stringify(input);
    const path = `${ADMIN_PATH_PREFIX}${encodeURIComponent(operation)}`;
    const response = await request(new URL(path, this.#url), { method: 'POST', body, headers: this.#headers(path, body) });
    const text = await readBounded(response.body);
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      throw new AdminApiError(response.statusCode, 'InvalidResponse', `not JSON (HTTP ${response.statusCode})`);
    }
    if (response.statusCode !== 200) {
      const error = parsed as { code?: string; message?: string };
      throw new AdminApiError(response.statusCode, error.code ?? 'Unknown', error.message ?? '');
    }
    return parsed as T;
  }

  #headers(path: string, body: string): Record<string, string> {
    if (this.#signer === undefined) return { 'content-type': 'application/json', authorization: `Bearer ${this.#token!}` };
    const headers = signedHeaders(this.#signer, this.#url.host, path, body);
    return this.#addHeaders === undefined ? headers : { ...this.#addHeaders(headers.authorization!), ...headers };
  }
}

function signedHeaders(signer: SigV4Signer, host: string, path: string, body: string): Record<string, string> {
  const payloadHash = hash('sha256', body, 'hex');
  const signature = signer.sign({ method: 'POST', path, query: '', host, headers: [['content-type', 'application/json']], payloadHash });
  return { 'content-type': 'application/json', 'x-amz-content-sha256': payloadHash, 'x-amz-date': signature.amzDate, authorization: signature.authorization };
}

async function readBounded(body: AsyncIterable<Buffer>): Promise<string> {
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of body) {
    total += chunk.length;
    if (total > ADMIN_ANSWER_BYTES_MAX) throw new AdminApiError(0, 'InvalidResponse', 'answer too large');
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}
