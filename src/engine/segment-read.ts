import { Readable } from 'node:stream';
import type { BlobStore } from '../blob/blob-store.ts';
import type { ObjectVersion, Segment } from '../meta/types.ts';
import { assert } from '../util/assert.ts';
import type { ReadLeases } from './read-leases.ts';

/**
 * Bytes [start, end) of a version: a slice of its inline bytes when the
 * object is small (answered with one socket write), else a stream over its
 * blobs. The first blob is opened before this resolves, so a missing blob
 * is an error before any response header goes out.
 */
export function openVersion(blobs: BlobStore, leases: ReadLeases, version: ObjectVersion, start: number, end: number): Buffer | Promise<Readable> {
  // Synchronous for inline bytes: a 4 KiB GET's body costs no promise and no microtask turn.
  if (version.inlineData !== undefined) return inlineSlice(version, start, end);
  return openBlobs(blobs, leases, version, start, end);
}

async function openBlobs(blobs: BlobStore, leases: ReadLeases, version: ObjectVersion, start: number, end: number): Promise<Readable> {
  const covering = version.segments.filter((segment, i) => {
    const segmentStart = offsetOf(version.segments, i);
    return segmentStart < end && segmentStart + segment.sizeBytes > start;
  });
  if (covering.length !== 1) return readSegments(blobs, leases, version.segments, start, end);
  // One blob (every object but multipart ones): stream its file directly, so
  // the socket is fed by the file stream's own read-ahead with no layer between.
  const segment = covering[0]!;
  const segmentStart = offsetOf(version.segments, version.segments.indexOf(segment));
  leases.acquire([segment.blobId]);
  let stream: Readable;
  try {
    stream = await blobs.read(segment, Math.max(start, segmentStart) - segmentStart, Math.min(end, segmentStart + segment.sizeBytes) - segmentStart);
  } catch (error) {
    leases.release([segment.blobId]);
    throw error;
  }
  stream.once('close', () => leases.release([segment.blobId]));
  return stream;
}

function offsetOf(segments: readonly Segment[], index: number): number {
  let offset = 0;
  for (let i = 0; i < index; i++) offset += segments[i]!.sizeBytes;
  return offset;
}

function inlineSlice(version: ObjectVersion, start: number, end: number): Buffer {
  assert(version.inlineData !== undefined && version.segments.length === 0 && version.inlineData.length === version.sizeBytes, 'inline bytes are the whole object');
  return version.inlineData.subarray(start, end);
}

/** Bytes [start, end) of a version as chunks, for a writer (copies); blobs open lazily. */
export function versionChunks(blobs: BlobStore, leases: ReadLeases, version: ObjectVersion, start: number, end: number): Iterable<Buffer> | AsyncIterable<Buffer> {
  if (version.inlineData !== undefined) return [inlineSlice(version, start, end)];
  return readSegments(blobs, leases, version.segments, start, end);
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
    const source = await blobs.read(segment, from, to);
    for await (const chunk of source) yield chunk as Buffer;
  }
}
