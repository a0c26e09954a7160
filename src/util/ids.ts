import { randomBytes } from 'node:crypto';
import { assert } from './assert.ts';

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
const REQUEST_COUNTER_DIGITS = 10;
/** The counter wraps here (16^10): an ID's counter part is always 10 hex digits. */
const REQUEST_COUNTER_LIMIT = 0x100_0000_0000;
/** Half of the counter's digits: 16^5. */
const FIVE_HEX_DIGITS = 0x10_0000;
let requestCounter = 0;

/** The next request's number: from 1, and back to 0 after 16^10 − 1; its ID is requestIdOf(number). */
export function nextRequestNumber(): number {
  requestCounter = (requestCounter + 1) % REQUEST_COUNTER_LIMIT;
  return requestCounter;
}

/** The ID of this process's request `number` (from nextRequestNumber). */
export function requestIdOf(number: number): string {
  return REQUEST_ID_PREFIX + number.toString(16).toUpperCase().padStart(REQUEST_COUNTER_DIGITS, '0');
}

export function newRequestId(): string {
  return requestIdOf(nextRequestNumber());
}

// putRequestId writes these as six bytes and two halves of five digits.
assert(REQUEST_ID_PREFIX.length === 6 && REQUEST_COUNTER_DIGITS === 10 && FIVE_HEX_DIGITS ** 2 === REQUEST_COUNTER_LIMIT, 'request ID: a 6-character prefix and 10 counter digits');

/** REQUEST_ID_PREFIX's six characters as byte values, for putRequestId. */
const [PREFIX_0, PREFIX_1, PREFIX_2, PREFIX_3, PREFIX_4, PREFIX_5] = Array.from(REQUEST_ID_PREFIX, (character) => character.charCodeAt(0)) as [number, number, number, number, number, number];

/**
 * Writes requestIdOf(number)'s 16 characters as ASCII at `at` and returns
 * where they end: what the access log writes for a request's ID, without
 * reading the ID's string a character at a time (~900 instructions a line
 * for the 16 characters; this is about a third of that:
 * docs/PERFORMANCE.md, "Metrics and logs, round 13").
 */
export function putRequestId(target: Uint8Array, at: number, number: number): number {
  assert(Number.isInteger(number) && number >= 0 && number < REQUEST_COUNTER_LIMIT, 'putRequestId: not a request number');
  target[at] = PREFIX_0;
  target[at + 1] = PREFIX_1;
  target[at + 2] = PREFIX_2;
  target[at + 3] = PREFIX_3;
  target[at + 4] = PREFIX_4;
  target[at + 5] = PREFIX_5;
  // Two halves of 20 bits each, so the digits come out of 32-bit integer shifts.
  const low = number % FIVE_HEX_DIGITS;
  const high = (number - low) / FIVE_HEX_DIGITS;
  putFiveHexDigits(target, at + 6, high);
  putFiveHexDigits(target, at + 11, low);
  return at + 16;
}

/** 0–0xFFFFF as five uppercase hex digits. */
function putFiveHexDigits(target: Uint8Array, at: number, value: number): void {
  target[at] = hexDigit((value >>> 16) & 15);
  target[at + 1] = hexDigit((value >>> 12) & 15);
  target[at + 2] = hexDigit((value >>> 8) & 15);
  target[at + 3] = hexDigit((value >>> 4) & 15);
  target[at + 4] = hexDigit(value & 15);
}

/** 0–15 as the byte of its uppercase hex digit. */
function hexDigit(value: number): number {
  return value < 10 ? 0x30 + value : 0x37 + value;
}
