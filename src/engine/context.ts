import type { BlobStore } from '../blob/blob-store.ts';
import type { MetadataStore } from '../meta/metadata-store.ts';
import type { ReadLeases } from './read-leases.ts';

/** What every engine operation works with: the two stores below it and the in-process read leases. */
export interface EngineContext {
  readonly meta: MetadataStore;
  readonly blobs: BlobStore;
  readonly leases: ReadLeases;
}
