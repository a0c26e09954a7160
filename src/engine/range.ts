import { S3Error } from '../util/s3-error.ts';

/** A byte range [start, end) of an object. */
export interface ByteRange {
  start: number;
  end: number;
}

/**
 * Parses one HTTP Range header against an object size. Returns undefined when
 * the header should be ignored (absent, not bytes=, malformed, several ranges:
 * S3 serves the whole object then) and throws InvalidRange when it is valid
 * but not satisfiable.
 */
export function resolveRange(header: string | undefined, sizeBytes: number): ByteRange | undefined {
  if (header === undefined) return undefined;
  const match = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (match === null) return undefined;
  const [, first = '', last = ''] = match;
  if (first === '' && last === '') return undefined;
  if (first === '') {
    const suffix = Number(last);
    if (suffix === 0 || sizeBytes === 0) throw invalidRange(sizeBytes);
    return { start: Math.max(0, sizeBytes - suffix), end: sizeBytes };
  }
  const start = Number(first);
  const end = last === '' ? sizeBytes : Math.min(Number(last) + 1, sizeBytes);
  if (last !== '' && Number(last) < start) return undefined;
  if (start >= sizeBytes) throw invalidRange(sizeBytes);
  return { start, end };
}

function invalidRange(sizeBytes: number): S3Error {
  return new S3Error('InvalidRange', undefined, { ActualObjectSize: String(sizeBytes) }, { 'content-range': `bytes */${sizeBytes}` });
}
