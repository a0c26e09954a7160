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

export function newRequestId(): string {
  return randomBytes(8).toString('hex').toUpperCase();
}
