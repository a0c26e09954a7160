/**
 * Where the filesystem storage keeps a key, and the format of its files.
 *
 * A key's '/'-separated segments become directories and the last one a file
 * `<segment>.obj`. Each segment is percent-encoded (UTF-8) except for
 * A-Z a-z 0-9 - _ ~, so '.' is always encoded: no encoded name is '.', '..',
 * starts with a dot, or holds a separator, backslash or NUL, and no path can
 * leave the root. An empty segment (in 'a//b', '/a', 'a/') is '%', which
 * percent-encoding never produces. Since encoded segments hold no '.', the
 * suffixes cannot collide with names: 'x.obj' (the object 'x'), 'x.lock'
 * (its lock) and the directory 'x' (keys 'x/…') are distinct. A segment
 * whose encoding is longer than fits a file name is split into pieces, each
 * but the last a directory named '<piece>.' (again no encoded name ends so).
 * Storage's own files live under '.talus-storage/', which no key reaches.
 *
 * An object file is its bytes followed by a trailer: the metadata as JSON,
 * its length (u32 BE) and a magic. Bytes and metadata are one file, so one
 * rename replaces both atomically and a reader holding the file open reads
 * one consistent version.
 */
import { join } from 'node:path';
import { StorageError } from './object-storage.ts';

export const OBJECT_SUFFIX = '.obj';
export const LOCK_SUFFIX = '.lock';
/** A piece of a long segment; every piece but the last ends with this. */
const PIECE_MARK = '.';
/** Room for the longest suffix within NAME_MAX (255 bytes on every common filesystem). */
const SEGMENT_PIECE_BYTES_MAX = 240;
export const INTERNAL_DIRECTORY = '.talus-storage';
const EMPTY_SEGMENT = '%';

const MAGIC = Buffer.from('TALUSOB1', 'latin1');
export const TRAILER_TAIL_BYTES = 4 + MAGIC.length;
/** A trailer is small (metadata is capped at 2 KiB); a larger length means a damaged file. */
const TRAILER_JSON_BYTES_MAX = 64 * 1024;

export interface ObjectTrailer {
  key: string;
  size: number;
  etag: string;
  contentType: string;
  metadata: Record<string, string>;
  lastModified: number;
}

function encodeSegment(segment: string): string {
  if (segment === '') return EMPTY_SEGMENT;
  return encodeURIComponent(segment).replace(/[.!'()*]/g, (char) => `%${char.charCodeAt(0).toString(16).toUpperCase()}`);
}

/** An encoded segment as directory names: pieces of at most SEGMENT_PIECE_BYTES_MAX, never splitting a %XX. */
function segmentNames(encoded: string): string[] {
  if (encoded.length <= SEGMENT_PIECE_BYTES_MAX) return [encoded];
  const names: string[] = [];
  let at = 0;
  while (encoded.length - at > SEGMENT_PIECE_BYTES_MAX) {
    let end = at + SEGMENT_PIECE_BYTES_MAX;
    // Back off to the start of a %XX escape cut in two.
    if (encoded[end - 1] === '%') end -= 1;
    else if (encoded[end - 2] === '%') end -= 2;
    names.push(encoded.slice(at, end) + PIECE_MARK);
    at = end;
  }
  names.push(encoded.slice(at));
  return names;
}

/** The relative path of a key's object file, and of its lock. */
export function objectPaths(key: string): { object: string; lock: string; directory: string } {
  const segments = key.split('/');
  const names: string[] = [];
  for (const segment of segments) names.push(...segmentNames(encodeSegment(segment)));
  const leaf = names.pop()!;
  const directory = names.join('/');
  return { object: join(directory, leaf + OBJECT_SUFFIX), lock: join(directory, leaf + LOCK_SUFFIX), directory };
}

/** The directory holding every key that starts with `prefix`'s complete segments. */
export function prefixDirectory(prefix: string): string {
  const cut = prefix.lastIndexOf('/');
  if (cut === -1) return '';
  const names: string[] = [];
  for (const segment of prefix.slice(0, cut).split('/')) names.push(...segmentNames(encodeSegment(segment)));
  return names.join('/');
}

/**
 * Turns directory names and a leaf file name back into a key. `pending` is
 * the decoded path so far as encoded text of the current segment (pieces
 * end with '.').
 */
export function decodeName(name: string): { text: string; continues: boolean } {
  const continues = name.endsWith(PIECE_MARK);
  return { text: continues ? name.slice(0, -1) : name, continues };
}

export function decodeSegment(encoded: string): string {
  if (encoded === EMPTY_SEGMENT) return '';
  return decodeURIComponent(encoded);
}

export function isInternalName(name: string): boolean {
  return name.startsWith('.');
}

export function encodeTrailer(trailer: ObjectTrailer): Buffer {
  const json = Buffer.from(JSON.stringify(trailer), 'utf8');
  const tail = Buffer.alloc(TRAILER_TAIL_BYTES);
  tail.writeUInt32BE(json.length, 0);
  MAGIC.copy(tail, 4);
  return Buffer.concat([json, tail]);
}

/** The JSON length from the last TRAILER_TAIL_BYTES of a file. */
export function trailerJsonLength(tail: Buffer, path: string): number {
  if (tail.length !== TRAILER_TAIL_BYTES || !tail.subarray(4).equals(MAGIC)) throw new StorageError('InternalError', `${path}: not an object file (no trailer)`);
  const length = tail.readUInt32BE(0);
  if (length > TRAILER_JSON_BYTES_MAX) throw new StorageError('InternalError', `${path}: damaged trailer`);
  return length;
}

export function parseTrailer(json: Buffer, path: string): ObjectTrailer {
  const value = JSON.parse(json.toString('utf8')) as Partial<ObjectTrailer>;
  if (typeof value.key !== 'string' || typeof value.size !== 'number' || typeof value.etag !== 'string') throw new StorageError('InternalError', `${path}: damaged trailer`);
  return { key: value.key, size: value.size, etag: value.etag, contentType: value.contentType ?? 'application/octet-stream', metadata: value.metadata ?? {}, lastModified: value.lastModified ?? 0 };
}
