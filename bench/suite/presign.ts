/**
 * Presigned URLs (for wrk, which cannot sign) and captured responses (what
 * Talus answers to a request, replayed by the bare baselines so that they
 * send the same status, headers and body size).
 *
 * Presigning uses @aws-sdk/s3-request-presigner: a presigned PUT signs
 * UNSIGNED-PAYLOAD, so wrk can send any body. Checksums are asked for only
 * when required: otherwise the SDK would sign the CRC32 of an empty body
 * into a PUT URL.
 */
import { DeleteObjectCommand, GetObjectCommand, HeadObjectCommand, ListObjectsV2Command, PutObjectCommand, S3Client as SdkClient } from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import type { CapturedResponse } from '../servers/common.ts';
import type { RunningServer } from './servers.ts';

// The SDK only presigns here; its notice about future Node versions would only clutter the suite's output.
process.env['AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED'] ??= 'true';

/** Long enough for the longest single run of --full. */
const PRESIGN_EXPIRY_SECONDS = 3600;
/** A listing page or a small object; larger bodies are not kept (64 MiB GETs are read to the end and dropped). */
const CAPTURED_BODY_BYTES_MAX = 4 * 1024 * 1024;
/** Per connection or per message: not the server's to replay. */
const HOP_HEADERS = new Set(['connection', 'keep-alive', 'date', 'transfer-encoding']);

export type PresignedRequest =
  | { method: 'GET' | 'HEAD' | 'PUT' | 'DELETE'; bucket: string; key: string }
  | { method: 'LIST'; bucket: string; prefix?: string; delimiter?: string; startAfter?: string; maxKeys?: number };

const sdkClients = new WeakMap<RunningServer, SdkClient>();

function sdkClient(server: RunningServer): SdkClient {
  let client = sdkClients.get(server);
  if (client === undefined) {
    client = new SdkClient({
      endpoint: server.endpoint,
      region: 'us-east-1',
      forcePathStyle: true,
      credentials: server.credentials,
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
    });
    sdkClients.set(server, client);
  }
  return client;
}

export function closePresigner(server: RunningServer): void {
  sdkClients.get(server)?.destroy();
  sdkClients.delete(server);
}

export function presign(server: RunningServer, request: PresignedRequest): Promise<string> {
  const client = sdkClient(server);
  const options = { expiresIn: PRESIGN_EXPIRY_SECONDS };
  switch (request.method) {
    case 'GET':
      return getSignedUrl(client, new GetObjectCommand({ Bucket: request.bucket, Key: request.key }), options);
    case 'HEAD':
      return getSignedUrl(client, new HeadObjectCommand({ Bucket: request.bucket, Key: request.key }), options);
    case 'PUT':
      return getSignedUrl(client, new PutObjectCommand({ Bucket: request.bucket, Key: request.key }), options);
    case 'DELETE':
      return getSignedUrl(client, new DeleteObjectCommand({ Bucket: request.bucket, Key: request.key }), options);
    case 'LIST':
      return getSignedUrl(
        client,
        new ListObjectsV2Command({
          Bucket: request.bucket,
          Prefix: request.prefix,
          Delimiter: request.delimiter,
          StartAfter: request.startAfter,
          MaxKeys: request.maxKeys,
          EncodingType: 'url',
        }),
        options,
      );
  }
}

/** Sends `request` to `server` and returns its answer as a bare baseline should replay it. */
export async function capture(server: RunningServer, request: PresignedRequest, body?: Buffer): Promise<CapturedResponse> {
  const url = await presign(server, request);
  const method = request.method === 'LIST' ? 'GET' : request.method;
  const response = await fetch(url, { method, body: body === undefined ? undefined : new Uint8Array(body) });
  const headers: Record<string, string> = {};
  response.headers.forEach((value, name) => {
    if (!HOP_HEADERS.has(name)) headers[name] = value;
  });
  const bytes = await readBody(response);
  if (response.status >= 300) throw new Error(`capturing ${request.method} from ${server.label}: status ${response.status} ${bytes?.toString('utf8').slice(0, 300) ?? ''}`);
  const captured: CapturedResponse = { status: response.status, headers };
  if (bytes !== undefined && bytes.length > 0 && method !== 'HEAD') captured.bodyBase64 = bytes.toString('base64');
  return captured;
}

/** The body when it is small enough to replay; larger ones are drained and dropped. */
async function readBody(response: Response): Promise<Buffer | undefined> {
  if (response.body === null) return undefined;
  const chunks: Buffer[] = [];
  let length = 0;
  let tooLarge = false;
  for await (const chunk of response.body as AsyncIterable<Uint8Array>) {
    length += chunk.length;
    if (length > CAPTURED_BODY_BYTES_MAX) tooLarge = true;
    if (!tooLarge) chunks.push(Buffer.from(chunk));
  }
  return tooLarge ? undefined : Buffer.concat(chunks);
}

/** Path and query of a presigned URL (wrk takes the origin once and paths per request). */
export function pathOf(url: string): string {
  const parsed = new URL(url);
  return `${parsed.pathname}${parsed.search}`;
}
