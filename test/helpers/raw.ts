/**
 * Raw HTTP requests to Talus, signed with @smithy/signature-v4 (the signer
 * the AWS SDK uses), for what the SDK will not send: malformed bodies, odd
 * headers, tampered signatures, truncated uploads.
 */
import { Sha256 } from '@aws-crypto/sha256-js';
import { SignatureV4 } from '@smithy/signature-v4';
import { request as httpRequest } from 'node:http';
import { ACCESS_KEY_ID, SECRET_ACCESS_KEY } from './talus.ts';

export interface RawResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

export interface RawRequest {
  method: string;
  path: string;
  query?: Record<string, string>;
  headers?: Record<string, string>;
  body?: string | Buffer;
  /** Sign with UNSIGNED-PAYLOAD instead of the body's hash. */
  unsignedPayload?: boolean;
  credentials?: { accessKeyId: string; secretAccessKey: string };
  signingDate?: Date;
}

export const signer = (credentials = { accessKeyId: ACCESS_KEY_ID, secretAccessKey: SECRET_ACCESS_KEY }) =>
  new SignatureV4({ service: 's3', region: 'us-east-1', credentials, sha256: Sha256, uriEscapePath: false, applyChecksum: true });

/** Signs a request the way the SDK would; returns the headers to send. */
export async function signRequest(baseUrl: string, raw: RawRequest): Promise<Record<string, string>> {
  const url = new URL(baseUrl);
  const headers: Record<string, string> = { host: url.host, ...(raw.headers ?? {}) };
  if (raw.unsignedPayload === true) headers['x-amz-content-sha256'] = 'UNSIGNED-PAYLOAD';
  const signed = await signer(raw.credentials).sign(
    {
      method: raw.method,
      protocol: 'http:',
      hostname: url.hostname,
      port: Number(url.port),
      path: raw.path,
      query: raw.query ?? {},
      headers,
      body: raw.body,
    },
    { signingDate: raw.signingDate ?? new Date() },
  );
  return signed.headers as Record<string, string>;
}

export function queryString(query: Record<string, string> | undefined): string {
  if (query === undefined) return '';
  const parts = Object.entries(query).map(([name, value]) => (value === '' ? encodeURIComponent(name) : `${encodeURIComponent(name)}=${encodeURIComponent(value)}`));
  return parts.length === 0 ? '' : `?${parts.join('&')}`;
}

/** Sends headers and body as given (no signing). `bodyOverride` lets a test send bytes other than the signed ones. */
export function send(baseUrl: string, method: string, pathAndQuery: string, headers: Record<string, string>, body?: string | Buffer): Promise<RawResponse> {
  const url = new URL(baseUrl);
  return new Promise((resolve, reject) => {
    const outgoing = httpRequest(
      { host: url.hostname, port: url.port, method, path: pathAndQuery, headers, agent: false },
      (response) => {
        const chunks: Buffer[] = [];
        response.on('data', (chunk: Buffer) => chunks.push(chunk));
        response.on('end', () => resolve({ status: response.statusCode ?? 0, headers: response.headers, body: Buffer.concat(chunks).toString('utf8') }));
        response.on('error', reject);
      },
    );
    outgoing.on('error', reject);
    outgoing.end(body);
  });
}

export async function signedRequest(baseUrl: string, raw: RawRequest): Promise<RawResponse> {
  const headers = await signRequest(baseUrl, raw);
  return send(baseUrl, raw.method, `${raw.path}${queryString(raw.query)}`, headers, raw.body);
}

/** The <Code> of an S3 XML error body. */
export function errorCode(response: RawResponse): string | undefined {
  return /<Code>([^<]*)<\/Code>/.exec(response.body)?.[1];
}
