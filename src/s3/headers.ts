/**
 * Request headers → engine inputs: object attributes, conditions, checksums.
 * Every malformed value becomes a precise S3Error here, before any byte is stored.
 */
import type { IncomingHttpHeaders } from 'node:http';
import type { CommitConditions, DeleteConditions } from '../meta/metadata-store.ts';
import type { SystemMetadata, Tag } from '../meta/types.ts';
import type { ReadConditions } from '../engine/conditions.ts';
import type { ChecksumRequest, ObjectAttributes } from '../engine/types.ts';
import {
  CHECKSUM_ALGORITHMS,
  checksumHeaderName,
  isValidChecksumValue,
  parseChecksumAlgorithm,
  type ChecksumAlgorithm,
  type ChecksumType,
} from '../util/checksum.ts';
import { OBJECT_TAGS_MAX, TAG_KEY_LENGTH_MAX, TAG_VALUE_LENGTH_MAX, USER_METADATA_BYTES_MAX } from '../util/limits.ts';
import { S3Error } from '../util/s3-error.ts';

export function header(headers: IncomingHttpHeaders, name: string): string | undefined {
  const value = headers[name];
  if (value === undefined) return undefined;
  return Array.isArray(value) ? value.join(',') : value;
}

const SYSTEM_HEADERS: readonly [keyof SystemMetadata, string][] = [
  ['contentType', 'content-type'],
  ['cacheControl', 'cache-control'],
  ['contentDisposition', 'content-disposition'],
  ['contentEncoding', 'content-encoding'],
  ['contentLanguage', 'content-language'],
  ['expires', 'expires'],
];

export function systemMetadataHeaders(): readonly [keyof SystemMetadata, string][] {
  return SYSTEM_HEADERS;
}

export function parseSystemMetadata(headers: IncomingHttpHeaders): SystemMetadata {
  const system: SystemMetadata = {};
  for (const [field, name] of SYSTEM_HEADERS) {
    let value = header(headers, name);
    if (value === undefined) continue;
    if (field === 'contentEncoding') {
      // aws-chunked is transfer framing, not a property of the object; anything else is kept as sent.
      if (value.includes('aws-chunked')) {
        value = value.split(',').map((part) => part.trim()).filter((part) => part !== '' && part !== 'aws-chunked').join(', ');
      }
      if (value === '') continue;
    }
    system[field] = value;
  }
  return system;
}

export function parseUserMetadata(headers: IncomingHttpHeaders): Record<string, string> {
  const metadata: Record<string, string> = {};
  let sizeBytes = 0;
  for (const [name, value] of Object.entries(headers)) {
    if (!name.startsWith('x-amz-meta-') || value === undefined) continue;
    const key = name.slice('x-amz-meta-'.length);
    const text = Array.isArray(value) ? value.join(',') : value;
    sizeBytes += Buffer.byteLength(key) + Buffer.byteLength(text);
    metadata[key] = text;
  }
  if (sizeBytes > USER_METADATA_BYTES_MAX) throw new S3Error('MetadataTooLarge', undefined, { Size: String(sizeBytes), MaxSizeAllowed: String(USER_METADATA_BYTES_MAX) });
  return metadata;
}

/** x-amz-tagging: a URL-encoded query string of tags. */
export function parseTaggingHeader(headers: IncomingHttpHeaders): Tag[] {
  const value = header(headers, 'x-amz-tagging');
  if (value === undefined || value === '') return [];
  const tags: Tag[] = [];
  for (const [key, tagValue] of new URLSearchParams(value)) tags.push({ key, value: tagValue });
  validateTags(tags, OBJECT_TAGS_MAX);
  return tags;
}

export function validateTags(tags: readonly Tag[], countMax: number): void {
  if (tags.length > countMax) throw new S3Error('InvalidTag', `Object tags cannot be greater than ${countMax}`);
  const seen = new Set<string>();
  for (const tag of tags) {
    if (tag.key.length === 0 || tag.key.length > TAG_KEY_LENGTH_MAX) throw new S3Error('InvalidTag', 'The TagKey you have provided is invalid');
    if (tag.value.length > TAG_VALUE_LENGTH_MAX) throw new S3Error('InvalidTag', 'The TagValue you have provided is invalid');
    if (tag.key.startsWith('aws:')) throw new S3Error('InvalidTag', 'Your TagKey cannot be prefixed with aws:');
    if (seen.has(tag.key)) throw new S3Error('InvalidTag', 'Cannot provide multiple Tags with the same key');
    seen.add(tag.key);
  }
}

export function parseAttributes(headers: IncomingHttpHeaders): ObjectAttributes {
  return { system: parseSystemMetadata(headers), userMetadata: parseUserMetadata(headers), tags: parseTaggingHeader(headers) };
}

export function parseContentMd5(headers: IncomingHttpHeaders): Buffer | undefined {
  const value = header(headers, 'content-md5');
  if (value === undefined) return undefined;
  const digest = Buffer.from(value, 'base64');
  if (digest.length !== 16 || digest.toString('base64') !== value.trim()) throw new S3Error('InvalidDigest');
  return digest;
}

export function unquoteEtag(value: string): string {
  const trimmed = value.trim();
  if (trimmed.startsWith('W/')) return unquoteEtag(trimmed.slice(2));
  return trimmed.length >= 2 && trimmed.startsWith('"') && trimmed.endsWith('"') ? trimmed.slice(1, -1) : trimmed;
}

function etagList(value: string | undefined): string[] | undefined {
  if (value === undefined) return undefined;
  return value.split(',').map(unquoteEtag).filter((etag) => etag !== '');
}

function httpDate(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const ms = Date.parse(value);
  return Number.isNaN(ms) ? undefined : ms;
}

/** GET/HEAD conditions, or the x-amz-copy-source-if-* family with prefix 'x-amz-copy-source-'. */
export function parseReadConditions(headers: IncomingHttpHeaders, prefix = ''): ReadConditions {
  const conditions: ReadConditions = {};
  const ifMatch = etagList(header(headers, `${prefix}if-match`));
  const ifNoneMatch = etagList(header(headers, `${prefix}if-none-match`));
  const ifModifiedSinceMs = httpDate(header(headers, `${prefix}if-modified-since`));
  const ifUnmodifiedSinceMs = httpDate(header(headers, `${prefix}if-unmodified-since`));
  if (ifMatch !== undefined) conditions.ifMatch = ifMatch;
  if (ifNoneMatch !== undefined) conditions.ifNoneMatch = ifNoneMatch;
  if (ifModifiedSinceMs !== undefined) conditions.ifModifiedSinceMs = ifModifiedSinceMs;
  if (ifUnmodifiedSinceMs !== undefined) conditions.ifUnmodifiedSinceMs = ifUnmodifiedSinceMs;
  return conditions;
}

/**
 * PutObject / CompleteMultipartUpload / CopyObject conditional writes:
 * If-None-Match (* as S3 documents it; ETags too, with HTTP's meaning, as
 * Ceph RGW and ceph/s3-tests have it) and If-Match (an ETag, or * for "any
 * current version"). The store judges them inside the commit.
 */
export function parseWriteConditions(headers: IncomingHttpHeaders): CommitConditions {
  const conditions: CommitConditions = {};
  const ifNoneMatch = etagList(header(headers, 'if-none-match'));
  if (ifNoneMatch !== undefined) {
    if (ifNoneMatch.length === 0) throw new S3Error('InvalidArgument', 'If-None-Match needs * or an ETag.', { ArgumentName: 'If-None-Match' });
    if (ifNoneMatch.includes('*')) conditions.ifNoneMatchStar = true;
    else conditions.ifNoneMatch = ifNoneMatch;
  }
  const ifMatch = header(headers, 'if-match');
  if (ifMatch !== undefined) conditions.ifMatch = requiredEtag(ifMatch, 'If-Match');
  return conditions;
}

/** DeleteObject's conditions: If-Match, x-amz-if-match-last-modified-time, x-amz-if-match-size. */
export function parseDeleteConditions(headers: IncomingHttpHeaders): DeleteConditions {
  return deleteConditionsOf(
    header(headers, 'if-match'),
    header(headers, 'x-amz-if-match-last-modified-time'),
    header(headers, 'x-amz-if-match-size'),
    ['If-Match', 'x-amz-if-match-last-modified-time', 'x-amz-if-match-size'],
  );
}

/** The same conditions from their text, wherever they came from (headers, or a DeleteObjects <Object>'s ETag, LastModifiedTime, Size). */
export function deleteConditionsOf(
  etag: string | undefined,
  lastModified: string | undefined,
  size: string | undefined,
  names: readonly [string, string, string],
): DeleteConditions {
  const conditions: DeleteConditions = {};
  if (etag !== undefined) conditions.ifMatch = requiredEtag(etag, names[0]);
  if (lastModified !== undefined) {
    const ms = Date.parse(lastModified.trim());
    if (Number.isNaN(ms)) throw new S3Error('InvalidArgument', `Invalid ${names[1]}.`, { ArgumentName: names[1], ArgumentValue: lastModified });
    conditions.ifMatchLastModifiedMs = ms;
  }
  if (size !== undefined) {
    if (!/^\d{1,16}$/.test(size.trim())) throw new S3Error('InvalidArgument', `Invalid ${names[2]}.`, { ArgumentName: names[2], ArgumentValue: size });
    conditions.ifMatchSizeBytes = Number(size.trim());
  }
  return conditions;
}

function requiredEtag(value: string, name: string): string {
  const etag = unquoteEtag(value);
  if (etag === '') throw new S3Error('InvalidArgument', `${name} needs * or an ETag.`, { ArgumentName: name });
  return etag;
}

/**
 * Which checksum a write carries: one x-amz-checksum-<alg> header, or a
 * trailer announced in x-amz-trailer, or just x-amz-sdk-checksum-algorithm
 * / x-amz-checksum-algorithm (compute and store). Two algorithms at once is an error.
 */
export function parseChecksumRequest(headers: IncomingHttpHeaders, announcedTrailers: readonly string[]): ChecksumRequest | undefined {
  const found: { algorithm: ChecksumAlgorithm; value: string }[] = [];
  for (const algorithm of CHECKSUM_ALGORITHMS) {
    const value = header(headers, checksumHeaderName(algorithm));
    if (value !== undefined) found.push({ algorithm, value });
  }
  const trailer = announcedTrailers.find((name) => name.startsWith('x-amz-checksum-'));
  const trailerAlgorithm = trailer === undefined ? undefined : parseChecksumAlgorithm(trailer.slice('x-amz-checksum-'.length));
  if (trailer !== undefined && trailerAlgorithm === undefined) throw new S3Error('InvalidRequest', `Unsupported trailer ${trailer}.`);
  const declaredName = header(headers, 'x-amz-sdk-checksum-algorithm') ?? header(headers, 'x-amz-checksum-algorithm');
  const declared = declaredName === undefined ? undefined : parseChecksumAlgorithm(declaredName);
  if (declaredName !== undefined && declared === undefined) {
    throw new S3Error('InvalidRequest', 'Value for x-amz-checksum-algorithm header is invalid.');
  }
  if (found.length + (trailerAlgorithm === undefined ? 0 : 1) > 1) {
    throw new S3Error('InvalidRequest', 'Expecting a single x-amz-checksum- header. Multiple checksum Types are not allowed.');
  }
  const only = found[0];
  if (only !== undefined) {
    if (declared !== undefined && declared !== only.algorithm) {
      throw new S3Error('InvalidRequest', `Value for x-amz-sdk-checksum-algorithm header is invalid.`);
    }
    if (!isValidChecksumValue(only.algorithm, only.value)) {
      throw new S3Error('BadDigest', `The ${only.algorithm} you specified did not match the calculated checksum.`);
    }
    return { algorithm: only.algorithm, expected: only.value, fromTrailer: false };
  }
  if (trailerAlgorithm !== undefined) return { algorithm: trailerAlgorithm, expected: undefined, fromTrailer: true };
  if (declared !== undefined) return { algorithm: declared, expected: undefined, fromTrailer: false };
  return undefined;
}

/** x-amz-checksum-algorithm on CreateMultipartUpload and CopyObject: which checksum the new object gets. */
export function parseChecksumAlgorithmHeader(headers: IncomingHttpHeaders): ChecksumAlgorithm | undefined {
  const name = header(headers, 'x-amz-checksum-algorithm');
  if (name === undefined) return undefined;
  const algorithm = parseChecksumAlgorithm(name);
  if (algorithm === undefined) throw new S3Error('InvalidRequest', 'Value for x-amz-checksum-algorithm header is invalid.');
  return algorithm;
}

export function parseChecksumType(headers: IncomingHttpHeaders): ChecksumType | undefined {
  const value = header(headers, 'x-amz-checksum-type');
  if (value === undefined) return undefined;
  const upper = value.toUpperCase();
  if (upper !== 'FULL_OBJECT' && upper !== 'COMPOSITE') throw new S3Error('InvalidRequest', 'Value for x-amz-checksum-type header is invalid.');
  return upper;
}

export function formatEtag(etag: string): string {
  return `"${etag}"`;
}

/**
 * Dates formatted, by second (an HTTP date has no milliseconds): every GET and
 * HEAD formats its object's Last-Modified, and objects written in the same
 * second share it. A few seconds' worth is kept, so reads spread over objects
 * written in several seconds find theirs too (one remembered date missed
 * for most of them: profiled, issue 17).
 */
const HTTP_DATES_KEPT = 64;
const httpDates = new Map<number, string>();

export function httpDateOf(ms: number): string {
  const second = Math.floor(ms / 1000);
  let text = httpDates.get(second);
  if (text === undefined) {
    if (httpDates.size >= HTTP_DATES_KEPT) httpDates.clear();
    text = new Date(second * 1000).toUTCString();
    httpDates.set(second, text);
  }
  return text;
}

export function isoDateOf(ms: number): string {
  return new Date(ms).toISOString();
}
