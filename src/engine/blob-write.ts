import { assert } from '../util/assert.ts';
import type { BlobStore, BlobWriter } from '../blob/blob-store.ts';
import { CommitOutcomeUnknownError } from '../meta/metadata-store.ts';
import type { Segment } from '../meta/types.ts';
import { Readable } from 'node:stream';
import { gatherBody } from '../util/gather-body.ts';
import { createChecksumHasher, type ChecksumAlgorithm, type ChecksumHasher } from '../util/checksum.ts';
import { createStreamHashes, type ThreadHashAlgorithm } from '../util/hash-thread.ts';
import { S3Error } from '../util/s3-error.ts';

export interface WrittenBlob {
  /** Empty when the body was empty or kept inline. */
  segments: Segment[];
  /** The whole body, when it was small enough to live in the metadata store. */
  inlineData: Buffer | undefined;
  sizeBytes: number;
  md5: Buffer;
  /** Digest of the requested checksum algorithm, if any. */
  checksum: Buffer | undefined;
  /** Discards the blob (after a failed commit); a no-op for empty and inline bodies. */
  abort(): Promise<void>;
}

export interface WriteBlobOptions {
  /** The bucket the bytes are for: it picks where they are placed. */
  bucket: string;
  checksumAlgorithm: ChecksumAlgorithm | undefined;
  sizeBytesMax: number;
  /** Bodies up to this size are returned as `inlineData` instead of written to a blob; 0 for never. */
  inlineBytesMax: number;
  /** The length the body announced, if known: long bodies are hashed off the event loop. */
  declaredBytes: number | undefined;
}

const MD5_ONLY: readonly ThreadHashAlgorithm[] = ['md5'];

/**
 * Additional checksums computed beside the MD5 by `createStreamHashes` (off the
 * event loop for long bodies): SHA-1 and SHA-256 cost ~36 ms per 64 MiB here,
 * CRC64NVME ~47 ms. CRC32 and CRC32C (7-14 ms per 64 MiB, native SIMD) stay
 * on the event loop: shipping them costs about what they do.
 */
const THREADED_CHECKSUMS: Readonly<Partial<Record<ChecksumAlgorithm, ThreadHashAlgorithm>>> = { SHA1: 'sha1', SHA256: 'sha256', CRC64NVME: 'crc64nvme' };

/**
 * The data part of a write: streams a body into a new blob while hashing it,
 * then makes it durable. Nothing here touches metadata; the blob stays
 * invisible until the caller commits a version that references it, and is
 * discarded here if anything fails on the way. The first `inlineBytesMax`
 * bytes are held in memory: a body that ends within them never touches the
 * blob store, a longer one spills them into a blob and streams on.
 */
export async function writeBlob(blobs: BlobStore, body: AsyncIterable<Buffer> | Iterable<Buffer>, options: WriteBlobOptions): Promise<WrittenBlob> {
  // A SHA or CRC64 checksum is hashed with the MD5 (on the hash thread for a
  // long body); CRC32/CRC32C are cheap enough per byte to run here.
  const threadedChecksum = options.checksumAlgorithm === undefined ? undefined : THREADED_CHECKSUMS[options.checksumAlgorithm];
  const checksum: ChecksumHasher | undefined =
    options.checksumAlgorithm === undefined || threadedChecksum !== undefined ? undefined : createChecksumHasher(options.checksumAlgorithm);
  // Last before the try: a hash on a thread holds a session until digested or discarded.
  const hashes = createStreamHashes(threadedChecksum === undefined ? MD5_ONLY : [...MD5_ONLY, threadedChecksum], options.declaredBytes);
  let held: Buffer[] = [];
  /** The whole body when gathered in one buffer of its own: kept inline as it is, no copy. */
  let gathered: Buffer | undefined;
  let writer: BlobWriter | undefined;
  let sizeBytes = 0;
  let digests: Buffer[];
  try {
    if (body instanceof Readable && options.declaredBytes !== undefined && options.declaredBytes <= options.inlineBytesMax) {
      // A small body of known length: one buffer filled from 'data' events, no async iterator (see gather-body.ts).
      const bytes = await gatherBody(body, options.declaredBytes);
      sizeBytes = bytes.length;
      if (sizeBytes > options.sizeBytesMax) throw new S3Error('EntityTooLarge');
      const hashed = hashes.update(bytes);
      if (hashed !== undefined) await hashed;
      checksum?.update(bytes);
      if (sizeBytes <= options.inlineBytesMax) {
        gathered = bytes;
      } else {
        // Longer than it declared (only if a verifier let it through): a blob, as a streamed body would get.
        writer = blobs.create({ bucket: options.bucket, sizeBytes: options.declaredBytes });
        await writer.write(bytes);
      }
    } else for await (const chunk of body) {
      sizeBytes += chunk.length;
      if (sizeBytes > options.sizeBytesMax) throw new S3Error('EntityTooLarge');
      const hashed = hashes.update(chunk);
      if (hashed !== undefined) await hashed;
      checksum?.update(chunk);
      if (writer === undefined && sizeBytes <= options.inlineBytesMax) {
        held.push(chunk);
        continue;
      }
      if (writer === undefined) {
        writer = blobs.create({ bucket: options.bucket, sizeBytes: options.declaredBytes });
        for (const early of held) await writer.write(early);
        held = [];
      }
      await writer.write(chunk);
    }
    // The hash thread finishes the tail while the blob is fsynced.
    const digesting = hashes.digest();
    digesting.catch(() => undefined); // awaited below; this only keeps a failure during commit from going unhandled
    await writer?.commit();
    digests = await digesting;
  } catch (error) {
    hashes.discard();
    await writer?.abort();
    throw error;
  }
  // One digest per algorithm asked for: a missing checksum digest would skip its verification silently.
  assert(digests.length === (threadedChecksum === undefined ? 1 : 2), 'the hash thread answered every digest asked for');
  const committed = writer;
  return {
    segments: committed === undefined ? [] : [committed.location === undefined ? { blobId: committed.id, sizeBytes } : { blobId: committed.id, sizeBytes, location: committed.location }],
    inlineData: committed === undefined && sizeBytes > 0 ? (gathered ?? Buffer.concat(held, sizeBytes)) : undefined,
    sizeBytes,
    md5: digests[0]!,
    checksum: threadedChecksum === undefined ? checksum?.digest() : digests[1],
    abort: async () => committed?.abort(),
  };
}

/**
 * After the commit that should have referenced `written` failed: discard the
 * bytes, unless the commit may have happened after all (its durability is
 * unknown) — a visible version must never point at deleted bytes. Bytes
 * kept that way and never referenced are reclaimed at the next start-up.
 */
export async function discardAfterFailedCommit(written: WrittenBlob, error: unknown): Promise<void> {
  if (error instanceof CommitOutcomeUnknownError) return;
  await written.abort();
}

/** Runs the metadata commit of `segments` through the blob store's guard (placed blobs on a removed backend are refused). */
export function guardedCommit<T>(blobs: BlobStore, segments: readonly Segment[], commit: () => Promise<T>): Promise<T> {
  if (blobs.guardCommit === undefined || segments.length === 0) return commit();
  return blobs.guardCommit(segments, commit);
}
