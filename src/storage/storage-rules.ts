/**
 * S3's rules, shared by the memory and filesystem storages so they answer as
 * S3 does: which keys and metadata are valid, how ranges resolve, how ETags
 * are made, how listings are ordered, paged and rolled up, and what a
 * multipart completion must satisfy.
 */
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { KEY_BYTES_MAX, LIST_KEYS_MAX } from '../util/limits.ts';
import {
  InvalidKeyError,
  InvalidRangeError,
  StorageError,
  type ByteRange,
  type ListedObject,
  type ListOptions,
  type ListPage,
  type StorageBody,
  type UploadedPart,
} from './object-storage.ts';

/** S3: every part but the last is at least 5 MiB. */
export const PART_BYTES_MIN = 5 * 1024 * 1024;
/** S3: part numbers run from 1 to 10 000. */
export const PART_NUMBER_MAX = 10_000;
/** S3: DeleteObjects takes at most 1000 keys. */
export const DELETE_BATCH_KEYS = 1000;
export const DEFAULT_CONTENT_TYPE = 'application/octet-stream';

const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

/** Keys are 1 to 1024 bytes of UTF-8. NUL is refused: no filesystem and no XML 1.0 document can carry it. */
export function checkKey(key: string): void {
  if (typeof key !== 'string' || key === '') throw new InvalidKeyError(String(key), 'empty');
  if (LONE_SURROGATE.test(key)) throw new InvalidKeyError(key, 'not valid UTF-16 (a lone surrogate)');
  if (key.includes('\0')) throw new InvalidKeyError(key, 'holds NUL');
  if (Buffer.byteLength(key, 'utf8') > KEY_BYTES_MAX) throw new InvalidKeyError(key, `longer than ${KEY_BYTES_MAX} bytes of UTF-8`);
}

const METADATA_NAME = /^[a-z0-9!#$%&'*+.^_`|~-]+$/;
/** S3 caps user metadata (names and values) at 2 KiB. */
const METADATA_BYTES_MAX = 2048;

/** User metadata as S3 keeps it: names lower-cased, header-safe names, at most 2 KiB. */
export function normalizeMetadata(metadata: Record<string, string> | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  if (metadata === undefined) return out;
  let bytes = 0;
  for (const [name, value] of Object.entries(metadata)) {
    const lower = name.toLowerCase();
    if (!METADATA_NAME.test(lower)) throw new StorageError('InvalidArgument', `invalid metadata name ${JSON.stringify(name)}`);
    if (typeof value !== 'string' || /[\0\r\n]/.test(value)) throw new StorageError('InvalidArgument', `invalid metadata value for ${JSON.stringify(name)}`);
    bytes += Buffer.byteLength(lower) + Buffer.byteLength(value);
    out[lower] = value;
  }
  if (bytes > METADATA_BYTES_MAX) throw new StorageError('MetadataTooLarge', `user metadata exceeds ${METADATA_BYTES_MAX} bytes`);
  return out;
}

/** ETags compare quoted; callers may pass them bare. */
export function quoteEtag(etag: string): string {
  return etag.startsWith('"') || etag.startsWith('W/') ? etag : `"${etag}"`;
}

/** The [start, end) actually read for `range` of an object of `size` bytes. */
export function resolveRange(key: string, size: number, range: ByteRange | undefined): { start: number; end: number } {
  if (range === undefined) return { start: 0, end: size };
  const { start } = range;
  const end = range.end ?? Number.MAX_SAFE_INTEGER;
  if (!Number.isSafeInteger(start) || start < 0 || !Number.isSafeInteger(end) || end <= start) {
    throw new RangeError(`invalid range ${start}-${range.end}: want 0 <= start < end`);
  }
  if (start >= size) throw new InvalidRangeError(key, `range starts at ${start}, past the end of ${JSON.stringify(key)} (${size} bytes)`);
  return { start, end: Math.min(end, size) };
}

/** The body as a stream of Buffers. */
export async function* bodyChunks(body: StorageBody): AsyncIterable<Buffer> {
  if (typeof body === 'string') {
    yield Buffer.from(body, 'utf8');
  } else if (body instanceof Uint8Array) {
    yield Buffer.isBuffer(body) ? body : Buffer.from(body.buffer, body.byteOffset, body.byteLength);
  } else {
    for await (const chunk of body as AsyncIterable<Uint8Array | string>) {
      yield typeof chunk === 'string' ? Buffer.from(chunk, 'utf8') : Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    }
  }
}

/** A Buffer for a body already in memory, undefined for a stream. */
export function bodyBuffer(body: StorageBody): Buffer | undefined {
  if (typeof body === 'string') return Buffer.from(body, 'utf8');
  if (body instanceof Uint8Array) return Buffer.isBuffer(body) ? body : Buffer.from(body.buffer, body.byteOffset, body.byteLength);
  return undefined;
}

export function md5Etag(md5: Buffer): string {
  return `"${md5.toString('hex')}"`;
}

/** S3's multipart ETag: MD5 of the concatenated binary MD5s of the parts, dash, part count. */
export function multipartEtag(partEtags: readonly string[]): string {
  const hash = createHash('md5');
  for (const etag of partEtags) hash.update(Buffer.from(etag.replaceAll('"', ''), 'hex'));
  return `"${hash.digest('hex')}-${partEtags.length}"`;
}

/** UTF-8 byte order, as S3 lists (JavaScript's < compares UTF-16 units and differs above U+FFFF). */
export function compareKeys(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

export function checkPageSize(options: ListOptions): number {
  const size = options.pageSize ?? LIST_KEYS_MAX;
  if (!Number.isInteger(size) || size < 1 || size > LIST_KEYS_MAX) throw new RangeError(`pageSize must be 1 to ${LIST_KEYS_MAX}, not ${size}`);
  return size;
}

/**
 * Pages of a listing over objects already sorted by key: keys after
 * `startAfter` starting with `prefix`, keys sharing a delimited prefix rolled
 * into one common prefix (counted as one entry, as in S3).
 */
export function* pageListing(sorted: Iterable<ListedObject>, prefix: string, options: ListOptions): Iterable<ListPage> {
  const pageSize = checkPageSize(options);
  const { startAfter, delimiter } = options;
  let page: ListPage = { objects: [], commonPrefixes: [] };
  let entries = 0;
  let lastPrefix: string | undefined;
  for (const object of sorted) {
    if (!object.key.startsWith(prefix)) continue;
    if (startAfter !== undefined && compareKeys(object.key, startAfter) <= 0) continue;
    if (delimiter !== undefined && delimiter !== '') {
      const at = object.key.indexOf(delimiter, prefix.length);
      if (at !== -1) {
        const common = object.key.slice(0, at + delimiter.length);
        if (common === lastPrefix) continue;
        // S3 leaves out a common prefix that is itself at or before start-after.
        lastPrefix = common;
        if (startAfter !== undefined && compareKeys(common, startAfter) <= 0) continue;
        page.commonPrefixes.push(common);
        if (++entries === pageSize) {
          yield page;
          page = { objects: [], commonPrefixes: [] };
          entries = 0;
        }
        continue;
      }
    }
    page.objects.push(object);
    if (++entries === pageSize) {
      yield page;
      page = { objects: [], commonPrefixes: [] };
      entries = 0;
    }
  }
  if (entries > 0) yield page;
}

export function checkPartNumber(partNumber: number): void {
  if (!Number.isInteger(partNumber) || partNumber < 1 || partNumber > PART_NUMBER_MAX) {
    throw new StorageError('InvalidArgument', `part number must be an integer from 1 to ${PART_NUMBER_MAX}, not ${partNumber}`);
  }
}

/**
 * The uploaded parts a completion names, checked as S3 checks them: at least
 * one, ascending, each uploaded with that ETag, all but the last ≥ 5 MiB.
 */
export function selectParts<P extends UploadedPart>(key: string, asked: readonly { partNumber: number; etag: string }[], uploaded: ReadonlyMap<number, P>): P[] {
  if (asked.length === 0) throw new StorageError('MalformedXML', 'a completion names at least one part', key);
  const parts: P[] = [];
  let previous = 0;
  for (const { partNumber, etag } of asked) {
    if (partNumber <= previous) throw new StorageError('InvalidPartOrder', 'parts must be listed in ascending order', key);
    previous = partNumber;
    const part = uploaded.get(partNumber);
    if (part === undefined || part.etag !== quoteEtag(etag)) throw new StorageError('InvalidPart', `part ${partNumber} was not uploaded with ETag ${etag}`, key);
    parts.push(part);
  }
  for (let i = 0; i < parts.length - 1; i++) {
    if (parts[i]!.size < PART_BYTES_MIN) throw new StorageError('EntityTooSmall', `part ${parts[i]!.partNumber} is smaller than 5 MiB and not the last`, key);
  }
  return parts;
}

/** A Readable of the given bytes, without copying. */
export function bufferStream(buffer: Buffer): Readable {
  return Readable.from([buffer], { objectMode: false });
}

export function randomId(): string {
  return `${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 10)}${Math.random().toString(36).slice(2, 10)}`;
}
