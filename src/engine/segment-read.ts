import { Readable } from 'node:stream';
import type { BlobStore } from '../blob/blob-store.ts';
import type { ObjectVersion, Segment } from '../meta/types.ts';
import { assert } from '../util/assert.ts';
import type { ReadLeases } from './read-leases.ts';

/**
 * Bytes [start, end) of a version: a slice of its inline bytes when the
 * object is small (answered with one socket write), else a stream over its blobs.
 */
export function readVersion(blobs: BlobStore, leases: ReadLeases, version: ObjectVersion, start: number, end: number): Buffer | Readable {
  if (version.inlineData === undefined) return readSegments(blobs, leases, version.segments, start, end);
  assert(version.segments.length === 0 && version.inlineData.length === version.sizeBytes, 'inline bytes are the whole object');
  return version.inlineData.subarray(start, end);
}

/** The same bytes as chunks, for a writer (copies). */
export function versionChunks(blobs: BlobStore, leases: ReadLeases, version: ObjectVersion, start: number, end: number): Iterable<Buffer> | AsyncIterable<Buffer> {
  const bytes = readVersion(blobs, leases, version, start, end);
  return bytes instanceof Readable ? bytes : [bytes];
}

/**
 * Streams bytes [start, end) of an object made of segments, one blob after
 * another. The blobs are leased for as long as the stream lives, so the purger
 * leaves them alone even if the object is replaced meanwhile.
 */
export function readSegments(blobs: BlobStore, leases: ReadLeases, segments: readonly Segment[], start: number, end: number): Readable {
  const blobIds = segments.map((segment) => segment.blobId);
  leases.acquire(blobIds);
  const stream = Readable.from(segmentChunks(blobs, segments, start, end), { objectMode: false, highWaterMark: 0 });
  let released = false;
  const release = (): void => {
    if (released) return;
    released = true;
    leases.release(blobIds);
  };
  stream.once('close', release);
  return stream;
}

async function* segmentChunks(blobs: BlobStore, segments: readonly Segment[], start: number, end: number): AsyncGenerator<Buffer> {
  let offset = 0;
  for (const segment of segments) {
    const segmentStart = offset;
    const segmentEnd = offset + segment.sizeBytes;
    offset = segmentEnd;
    if (segmentEnd <= start) continue;
    if (segmentStart >= end) break;
    const from = Math.max(start, segmentStart) - segmentStart;
    const to = Math.min(end, segmentEnd) - segmentStart;
    const source = await blobs.read(segment.blobId, from, to);
    for await (const chunk of source) yield chunk as Buffer;
  }
}
