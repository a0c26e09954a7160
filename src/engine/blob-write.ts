import { createHash } from 'node:crypto';
import type { BlobStore } from '../blob/blob-store.ts';
import type { Segment } from '../meta/types.ts';
import { createChecksumHasher, type ChecksumAlgorithm, type ChecksumHasher } from '../util/checksum.ts';
import { S3Error } from '../util/s3-error.ts';

export interface WrittenBlob {
  /** Empty when the body was empty: an empty object needs no blob at all. */
  segments: Segment[];
  sizeBytes: number;
  md5: Buffer;
  /** Digest of the requested checksum algorithm, if any. */
  checksum: Buffer | undefined;
  /** Discards the blob (after a failed commit); a no-op for empty bodies. */
  abort(): Promise<void>;
}

/**
 * The data part of a write: streams a body into a new blob while hashing it,
 * then makes it durable. Nothing here touches metadata; the blob stays
 * invisible until the caller commits a version that references it, and is
 * discarded here if anything fails on the way.
 */
export async function writeBlob(
  blobs: BlobStore,
  body: AsyncIterable<Buffer>,
  options: { checksumAlgorithm: ChecksumAlgorithm | undefined; sizeBytesMax: number },
): Promise<WrittenBlob> {
  const writer = blobs.create();
  const md5 = createHash('md5');
  const checksum: ChecksumHasher | undefined =
    options.checksumAlgorithm === undefined ? undefined : createChecksumHasher(options.checksumAlgorithm);
  let sizeBytes = 0;
  try {
    for await (const chunk of body) {
      sizeBytes += chunk.length;
      if (sizeBytes > options.sizeBytesMax) throw new S3Error('EntityTooLarge');
      md5.update(chunk);
      checksum?.update(chunk);
      await writer.write(chunk);
    }
    if (sizeBytes === 0) {
      await writer.abort();
    } else {
      await writer.commit();
    }
  } catch (error) {
    await writer.abort();
    throw error;
  }
  return {
    segments: sizeBytes === 0 ? [] : [{ blobId: writer.id, sizeBytes }],
    sizeBytes,
    md5: md5.digest(),
    checksum: checksum?.digest(),
    abort: () => writer.abort(),
  };
}
