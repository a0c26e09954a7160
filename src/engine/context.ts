import type { BlobStore } from '../blob/blob-store.ts';
import type { MetadataStore } from '../meta/metadata-store.ts';
import type { ReadLeases } from './read-leases.ts';

/**
 * Which of these blobs other processes are streaming right now (the workers
 * of a multi-process server); the purger skips them like local leases.
 */
export type LeaseQuery = (blobIds: readonly string[]) => Promise<ReadonlySet<string>>;

/** What every engine operation works with: the two stores below it and the read leases. */
export interface EngineContext {
  readonly meta: MetadataStore;
  readonly blobs: BlobStore;
  /** Leases of GETs served by this process. */
  readonly leases: ReadLeases;
  readonly otherLeases: LeaseQuery | undefined;
}
