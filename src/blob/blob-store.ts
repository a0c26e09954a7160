import type { Readable } from 'node:stream';

/**
 * Where bytes live. Blobs are immutable once committed and are named by
 * generated IDs, never by client keys. The store knows nothing about objects:
 * the metadata store decides which blobs are referenced.
 */
export interface BlobStore {
  /** Starts a new blob; bytes are invisible to everyone until the metadata commit references the ID. */
  create(request?: BlobRequest): BlobWriter;
  /** Streams bytes [start, end) of a committed blob. Rejects with BlobNotFoundError if missing. */
  read(blob: BlobRef, start: number, end: number): Promise<Readable>;
  /** Removes a blob; a missing blob is not an error (purges are retried). */
  remove(blob: BlobRef): Promise<void>;
  /**
   * Removes many blobs at once, batched where the store can (per backend);
   * returns the ones that could not be removed now, each with the earliest
   * time worth trying again. Optional: without it blobs are removed one by one.
   */
  removeMany?(blobs: readonly BlobRef[]): Promise<Map<string, number>>;
  /** Every blob ID present, for reclaiming blobs that were written but never committed. */
  list(): AsyncIterable<string>;
  /**
   * Runs `commit` (the metadata commit referencing `blobs`) if the blobs may
   * still be committed; throws otherwise (a placed blob with a shard on a
   * backend removed meanwhile). Optional: without it every commit runs.
   */
  guardCommit?<T>(blobs: readonly BlobRef[], commit: () => Promise<T>): Promise<T>;
  close(): Promise<void>;
}

/** A blob and where it lives: `location` is absent for the local blob store, else a placement's layout (see src/placement). */
export interface BlobRef {
  readonly blobId: string;
  readonly location?: string | undefined;
}

/** What a new blob is for: the bucket picks its placement, the size a hybrid placement's kind. */
export interface BlobRequest {
  readonly bucket?: string;
  /** Exactly the bytes that will be written, when known (placed blobs need it up front). */
  readonly sizeBytes?: number | undefined;
}

export interface BlobWriter {
  readonly id: string;
  /** Where the blob will live, recorded with it (undefined: the local blob store). */
  readonly location: string | undefined;
  /** Appends a chunk; resolves when the store has accepted it (backpressure). */
  write(chunk: Buffer): Promise<void>;
  /** Makes the bytes durable (fsync) and closes. After this resolves the blob survives a crash. */
  commit(): Promise<number>;
  /** Discards the blob; safe to call at any point, also after commit, and more than once. */
  abort(): Promise<void>;
}

export class BlobNotFoundError extends Error {
  override name = 'BlobNotFoundError';
  readonly code = 'BlobNotFound';
  constructor(readonly id: string) {
    super(`blob ${id} not found`);
  }
}
