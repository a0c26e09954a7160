import { randomBytes } from 'node:crypto';

/**
 * Generated identifiers. Blob IDs and version IDs are never derived from a
 * client's key: they start with a millisecond timestamp (so they sort by
 * creation time, which lets reclaim skip young blobs) and end with randomness.
 */
export function newBlobId(nowMs = Date.now()): string {
  return nowMs.toString(36).padStart(9, '0') + randomBytes(10).toString('hex');
}

export function blobIdTimeMs(id: string): number {
  return parseInt(id.slice(0, 9), 36);
}

/** Opaque version IDs: URL-safe, 32 characters, unguessable. */
export function newVersionId(): string {
  return randomBytes(24).toString('base64url');
}

export function newUploadId(): string {
  return randomBytes(32).toString('base64url');
}

/**
 * Request IDs only need to be unique, not secret: a random per-process prefix
 * and a counter, 16 hex digits like S3's. Drawing 8 random bytes per request
 * cost more than the rest of the ID's work on the small-object path.
 */
const REQUEST_ID_PREFIX = randomBytes(3).toString('hex').toUpperCase();
let requestCounter = 0;

export function newRequestId(): string {
  requestCounter = (requestCounter + 1) % 0x100_0000_0000;
  return REQUEST_ID_PREFIX + requestCounter.toString(16).toUpperCase().padStart(10, '0');
}
