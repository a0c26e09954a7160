/**
 * Presigned GET URLs (SigV4 query signing) for the console's share links:
 * made on the server with the session's key, checked by the S3 listener as
 * any request when someone follows them.
 */
import { ALGORITHM, SCOPE_TERMINATOR, SERVICE, hmac, requestStringToSign, signingKey } from '../auth/signing.ts';
import { UNSIGNED_PAYLOAD, canonicalQueryString, encodeComponent, encodeKeyPath } from '../client/sigv4-signer.ts';

/** S3's limit for a presigned URL's lifetime: 7 days. */
export const PRESIGN_EXPIRES_SECONDS_MAX = 7 * 24 * 3600;

export interface PresignGetInput {
  /** The S3 listener, e.g. http://127.0.0.1:9000 */
  endpoint: string;
  region: string;
  accessKeyId: string;
  secretAccessKey: string;
  bucket: string;
  key: string;
  versionId?: string | undefined;
  expiresSeconds: number;
  nowMs?: number;
}

export function presignGet(input: PresignGetInput): string {
  if (!Number.isInteger(input.expiresSeconds) || input.expiresSeconds < 1 || input.expiresSeconds > PRESIGN_EXPIRES_SECONDS_MAX) {
    throw new RangeError(`expiresSeconds must be an integer from 1 to ${PRESIGN_EXPIRES_SECONDS_MAX}`);
  }
  const endpoint = new URL(input.endpoint);
  const iso = new Date(input.nowMs ?? Date.now()).toISOString();
  const amzDate = `${iso.slice(0, 4)}${iso.slice(5, 7)}${iso.slice(8, 13)}${iso.slice(14, 16)}${iso.slice(17, 19)}Z`;
  const date = amzDate.slice(0, 8);
  const scope = `${date}/${input.region}/${SERVICE}/${SCOPE_TERMINATOR}`;
  const query = canonicalQueryString({
    'X-Amz-Algorithm': ALGORITHM,
    'X-Amz-Credential': `${input.accessKeyId}/${scope}`,
    'X-Amz-Date': amzDate,
    'X-Amz-Expires': String(input.expiresSeconds),
    'X-Amz-SignedHeaders': 'host',
    versionId: input.versionId,
  });
  const path = `/${encodeComponent(input.bucket)}/${encodeKeyPath(input.key)}`;
  const canonical = `GET\n${path}\n${query}\nhost:${endpoint.host}\n\nhost\n${UNSIGNED_PAYLOAD}`;
  const signature = hmac(signingKey(input.secretAccessKey, date, input.region), requestStringToSign(amzDate, scope, canonical)).toString('hex');
  return `${endpoint.origin}${path}?${query}&X-Amz-Signature=${signature}`;
}
