import { BackendTimeoutError, type Backend, type BackendWriter } from '../backend/backend.ts';
import type { BlobWriter } from '../blob/blob-store.ts';
import type { MetadataStore } from '../meta/metadata-store.ts';
import type { Segment } from '../meta/types.ts';
import { blobIdTimeMs } from '../util/ids.ts';
import { withDeadline } from './backend-health.ts';
import { claimBackend } from './backend-identity.ts';
import { decodeLocation, stripeLayoutOf, type BlobLocation } from './blob-location.ts';
import type { PlacedBlobStore } from './placed-blob-store.ts';
import { openStripedRead, verifyShard, type ShardDamage } from './striped-reader.ts';
import { StripedBlobWriter, type ShardTarget } from './striped-writer.ts';

const REPAIR_BATCH_MAX = 64;
const SCAN_PAGE_MAX = 256;
/** Retry delays grow from this to the cap (with jitter) while a backend stays out of reach. */
const RETRY_DELAY_MS_MIN = 1_000;
const RETRY_DELAY_MS_MAX = 15 * 60_000;
/**
 * A repair for a blob the metadata does not know yet may belong to an upload
 * still committing; older than this, the blob was never committed (or is
 * long gone) and the repair is dropped.
 */
const UNKNOWN_BLOB_GRACE_MS = 10 * 60_000;

export interface HealProgress {
  readonly phase: 'repairs' | 'scan' | 'replace';
  /** Blobs looked at in this phase so far. */
  readonly blobs: number;
  readonly shardsRebuilt: number;
  readonly failures: number;
}

export interface HealOptions {
  /** Also read every shard whole and verify its frames (finds silent corruption; reads everything). */
  readonly deep?: boolean;
  readonly onProgress?: (progress: HealProgress) => void;
  /** Repairs: also those waiting out a backoff (an on-demand heal). */
  readonly includeNotDue?: boolean;
  /** Stops the pass between blobs (shutdown); what was done stays done. */
  readonly signal?: AbortSignal;
}

export interface ReplaceReport {
  readonly blobsChecked: number;
  readonly blobsMoved: number;
  readonly failures: number;
}

export interface HealReport {
  readonly blobsChecked: number;
  readonly shardsRebuilt: number;
  readonly failures: number;
}

/**
 * Restores redundancy: rewrites shards a write missed or a read found
 * missing or corrupt (the durable repair queue), and scans every placed
 * blob for shards that are gone or the wrong size (or, deep, corrupt). A
 * shard is rebuilt by reading the blob from its healthy shards — verified
 * and decoded like any read — and encoding it again: the code is
 * deterministic, so the rebuilt shard has the bytes it had. Blobs are
 * healed one at a time; failures wait with backoff.
 */
export class Healer {
  readonly #meta: MetadataStore;
  readonly #store: PlacedBlobStore;
  readonly #onError: (message: string, error: unknown) => void;

  constructor(meta: MetadataStore, store: PlacedBlobStore, onError: (message: string, error: unknown) => void = () => undefined) {
    this.#meta = meta;
    this.#store = store;
    this.#onError = onError;
  }

  /** Works through the repairs due now. */
  async repairDue(options: HealOptions = {}): Promise<HealReport> {
    const nowMs = Date.now();
    const dueBy = options.includeNotDue === true ? Number.MAX_SAFE_INTEGER : nowMs;
    let probed = false;
    // Failed repairs go to the back of the queue; seeing one again means the pass is through.
    const tried = new Set<string>();
    let blobs = 0;
    let rebuilt = 0;
    let failures = 0;
    for (;;) {
      const due = (await this.#meta.takeRepairs(dueBy, REPAIR_BATCH_MAX)).filter((entry) => !tried.has(`${entry.blobId}/${entry.shard}`));
      if (due.length === 0) break;
      for (const entry of due) tried.add(`${entry.blobId}/${entry.shard}`);
      const byBlob = new Map<string, typeof due>();
      for (const entry of due) byBlob.set(entry.blobId, [...(byBlob.get(entry.blobId) ?? []), entry]);
      for (const [blobId, entries] of byBlob) {
        if (options.signal?.aborted === true) return { blobsChecked: blobs, shardsRebuilt: rebuilt, failures };
        blobs++;
        const location = entries[0]!.location;
        if (location === undefined) {
          // Not live: queued for purge or gone (known, or old: drop the repair), or an upload still committing (young: wait).
          if (nowMs - blobIdTimeMs(blobId) > UNKNOWN_BLOB_GRACE_MS || (await this.#meta.isBlobKnown(blobId))) await this.#meta.completeRepairs(entries);
          else await this.#meta.postponeRepairs(entries, nowMs + UNKNOWN_BLOB_GRACE_MS);
          continue;
        }
        const shards = entries.map((entry) => entry.shard);
        const decoded = decodeLocation(location);
        // A rebuild reads the whole blob: not while every shard's backend is down (asked afresh once per pass).
        const down = (): boolean => shards.every((shard) => this.#store.health.state(decoded.backends[shard]!) === 'down');
        if (down() && !probed) {
          probed = true;
          await this.#store.health.probeAll();
        }
        if (down()) {
          const attempts = Math.max(...entries.map((entry) => entry.attempts));
          await this.#meta.postponeRepairs(entries, nowMs + retryDelayMs(attempts));
          continue;
        }
        try {
          await this.rebuild(blobId, decoded, shards);
          rebuilt += shards.length;
          await this.#meta.completeRepairs(entries);
        } catch (error) {
          failures++;
          this.#onError(`repair of blob ${blobId} shards ${shards.join(',')} failed`, error);
          const attempts = Math.max(...entries.map((entry) => entry.attempts));
          await this.#meta.postponeRepairs(entries, nowMs + retryDelayMs(attempts));
        }
        options.onProgress?.({ phase: 'repairs', blobs, shardsRebuilt: rebuilt, failures });
      }
    }
    return { blobsChecked: blobs, shardsRebuilt: rebuilt, failures };
  }

  /**
   * Removes shards on the backends that belong to no blob the metadata knows
   * and were created before `beforeMs`: uploads a crash cut short. Safe for
   * blobs created before this process started (it is the only writer of its
   * backends' buckets and directories), as reclaim is for local blobs —
   * and only on a backend carrying this store's identity marker
   * (backend-identity.ts): elsewhere the shards may be another store's.
   */
  async reclaimOrphans(beforeMs: number, signal?: AbortSignal): Promise<number> {
    const stopped = (): boolean => signal?.aborted === true;
    let removed = 0;
    for (const backend of this.#store.backends()) {
      if (stopped()) break;
      const orphans: string[] = [];
      const known = new Map<string, boolean>();
      try {
        const claim = await claimBackend(this.#meta, backend, isShardKey, signal);
        if (!claim.ours) {
          this.#onError(`orphan shards on ${backend.name} are left alone: ${claim.why}`, new Error('no identity marker of this store'));
          continue;
        }
        removed += (await backend.discardIncomplete?.(beforeMs)) ?? 0;
        for await (const key of backend.list('')) {
          if (stopped()) break;
          const blobId = blobIdOfShardKey(key);
          if (blobId === undefined || blobIdTimeMs(blobId) >= beforeMs) continue;
          let isKnown = known.get(blobId);
          if (isKnown === undefined) {
            isKnown = await this.#meta.isBlobKnown(blobId);
            if (known.size < KNOWN_CACHE_MAX) known.set(blobId, isKnown);
          }
          if (!isKnown) orphans.push(key);
          if (orphans.length >= ORPHAN_BATCH_MAX) removed += await this.#removeOrphans(backend, orphans.splice(0));
        }
        removed += await this.#removeOrphans(backend, orphans);
      } catch (error) {
        this.#onError(`reclaiming orphan shards on ${backend.name} failed (the next start tries again)`, error);
      }
    }
    return removed;
  }

  async #removeOrphans(backend: Backend, keys: string[]): Promise<number> {
    if (keys.length === 0) return 0;
    await backend.remove(keys);
    await this.#meta.forgetRepairs([...new Set(keys.map((key) => blobIdOfShardKey(key)!))]);
    return keys.length;
  }

  /** Checks every placed blob once and rebuilds what is missing (and, deep, corrupt). */
  async scan(options: HealOptions = {}): Promise<HealReport> {
    let blobs = 0;
    let rebuilt = 0;
    let failures = 0;
    let after = '';
    for (;;) {
      const page = await this.#meta.listPlacedBlobs(after, SCAN_PAGE_MAX);
      if (page.length === 0) break;
      after = page.at(-1)!.blobId;
      for (const { blobId, location: text } of page) {
        if (options.signal?.aborted === true) return { blobsChecked: blobs, shardsRebuilt: rebuilt, failures };
        blobs++;
        const location = decodeLocation(text);
        const damaged = await this.#damagedShards(blobId, location, options.deep === true);
        if (damaged.length > 0) {
          const shards = damaged.map((damage) => damage.shard);
          try {
            await this.rebuild(blobId, location, shards);
            rebuilt += shards.length;
          } catch (error) {
            failures++;
            this.#onError(`scan: rebuilding blob ${blobId} shards ${shards.join(',')} failed; queued`, error);
            await this.#meta.recordRepairs(damaged.map((damage) => ({ blobId, shard: damage.shard, reason: `scan: ${damage.reason}` })));
          }
        }
        options.onProgress?.({ phase: 'scan', blobs, shardsRebuilt: rebuilt, failures });
      }
    }
    return { blobsChecked: blobs, shardsRebuilt: rebuilt, failures };
  }

  async #damagedShards(blobId: string, location: BlobLocation, deep: boolean): Promise<ShardDamage[]> {
    const layout = stripeLayoutOf(blobId, location);
    const targets = this.#store.shardTargets(blobId, location);
    const found = await Promise.all(
      targets.map(async (target, shard): Promise<ShardDamage | undefined> => {
        if (deep) return verifyShard(target, layout, shard);
        try {
          // Within the backend's deadline: a hung backend must not hold the scan at every blob.
          const deadlineMs = this.#store.health.deadlineMs(target.backend.name);
          const size = await withDeadline(deadlineMs, () => new BackendTimeoutError(target.backend.name, 'stat', deadlineMs), (signal) => target.backend.stat(target.key, { signal }));
          if (size === undefined) return { shard, stripe: 0, reason: 'missing' };
          return size === layout.shardBytes ? undefined : { shard, stripe: 0, reason: 'short' };
        } catch (error) {
          return { shard, stripe: 0, reason: 'unreadable', error };
        }
      }),
    );
    return found.filter((damage): damage is ShardDamage => damage !== undefined);
  }

  /**
   * Moves every object whose bytes are not where its bucket's placement
   * would put them now (the configuration changed): each blob is read —
   * verified, degraded if need be — written anew under the current
   * placement, and swapped into its version in one metadata commit that
   * queues the old blob for purge. A version that changed meanwhile keeps
   * its bytes, and the copy is dropped. Must run in the process that serves
   * the data directory (it rewrites versions, which that process caches).
   */
  async replaceAll(options: HealOptions = {}): Promise<ReplaceReport> {
    let blobs = 0;
    let moved = 0;
    let failures = 0;
    for (const bucket of await this.#meta.listBuckets()) {
      let keyMarker = '';
      let versionIdMarker = '';
      for (;;) {
        const page = await this.#meta.listVersions({ bucket: bucket.name, prefix: '', delimiter: '', keyMarker, versionIdMarker, limit: SCAN_PAGE_MAX });
        for (const entry of page.entries) {
          if (options.signal?.aborted === true) return { blobsChecked: blobs, blobsMoved: moved, failures };
          const listed = entry.version;
          if (listed === undefined || listed.isDeleteMarker) continue;
          const version = await this.#meta.getVersion(bucket.name, entry.key, listed.versionId);
          if (version === undefined || version.inlineData !== undefined) continue;
          for (const segment of version.segments) {
            blobs++;
            if (this.#isPlacedAsWanted(bucket.name, segment)) continue;
            try {
              if (await this.#move(bucket.name, entry.key, listed.versionId, segment)) moved++;
            } catch (error) {
              failures++;
              this.#onError(`re-placing blob ${segment.blobId} of ${bucket.name}/${entry.key} failed (the next scan tries again)`, error);
            }
            options.onProgress?.({ phase: 'replace', blobs, shardsRebuilt: moved, failures });
          }
        }
        const last = page.entries.at(-1);
        if (!page.isTruncated || last === undefined) break;
        keyMarker = last.key;
        versionIdMarker = last.version?.versionId ?? '';
      }
    }
    return { blobsChecked: blobs, blobsMoved: moved, failures };
  }

  #isPlacedAsWanted(bucket: string, segment: Segment): boolean {
    const wanted = this.#store.placementFor(bucket, segment.sizeBytes);
    if (wanted === undefined || segment.location === undefined) return wanted === undefined && segment.location === undefined;
    const location = decodeLocation(segment.location);
    return (
      location.dataShards === wanted.dataShards &&
      location.parityShards === wanted.parityShards &&
      location.blockBytes === wanted.blockBytes &&
      location.backends.every((name) => wanted.backends.includes(name))
    );
  }

  async #move(bucket: string, key: string, versionId: string, segment: Segment): Promise<boolean> {
    const source = await this.#store.read(segment, 0, segment.sizeBytes);
    let writer: BlobWriter | undefined;
    try {
      writer = this.#store.create({ bucket, sizeBytes: segment.sizeBytes });
      for await (const chunk of source as AsyncIterable<Buffer>) await writer.write(chunk);
      await writer.commit();
    } catch (error) {
      source.destroy();
      await writer?.abort();
      throw error;
    }
    const replacement: Segment = writer.location === undefined ? { blobId: writer.id, sizeBytes: segment.sizeBytes } : { blobId: writer.id, sizeBytes: segment.sizeBytes, location: writer.location };
    // Guarded as a client's write is: a backend removed while the copy streamed must not get a shard recorded.
    const swapped = await this.#store.guardCommit([replacement], () => this.#meta.replaceSegment(bucket, key, versionId, segment.blobId, replacement)).catch(async (error: unknown) => {
      await writer!.abort();
      throw error;
    });
    if (swapped) return true;
    await writer.abort();
    return false;
  }

  /** Rewrites `shards` of a blob from the others. */
  async rebuild(blobId: string, location: BlobLocation, shards: readonly number[]): Promise<void> {
    const layout = stripeLayoutOf(blobId, location);
    const targets = this.#store.shardTargets(blobId, location);
    const rebuilding = new Set(shards);
    // Read from the others only; the shards being rebuilt may hold garbage.
    const preference = this.#store.readPreference(location).filter((shard) => !rebuilding.has(shard));
    const body = await openStripedRead({
      layout,
      targets,
      codec: this.#store.codecFor(location),
      start: 0,
      end: layout.sizeBytes,
      preference: [...preference, ...shards],
      ...this.#store.readTiming(location, targets),
    });
    const writeTargets: ShardTarget[] = targets.map((target, shard) => (rebuilding.has(shard) ? target : { backend: DISCARD, key: target.key }));
    let writer: StripedBlobWriter | undefined;
    try {
      // Inside the try: a writer that cannot be made (an unconfigured backend) must still close the read.
      writer = new StripedBlobWriter({ layout, targets: writeTargets, codec: this.#store.codecFor(location), writeQuorum: layout.shardCount });
      for await (const chunk of body) await writer.write(chunk);
      const result = await writer.commit();
      const outcomes = await result.settled;
      const failed = outcomes.filter((outcome) => !outcome.committed);
      if (failed.length > 0) throw failed[0]!.error;
    } catch (error) {
      await body[Symbol.asyncIterator]().return?.();
      await writer?.abort();
      throw error;
    }
  }
}

const ORPHAN_BATCH_MAX = 1000;
const KNOWN_CACHE_MAX = 100_000;

/** 'B.3' → 'B' for keys that look like shard keys; undefined for anything else. */
/** A key a shard of some blob would have (backend-identity.ts tells a backend of shards from an empty one by it). */
export function isShardKey(key: string): boolean {
  return blobIdOfShardKey(key) !== undefined;
}

function blobIdOfShardKey(key: string): string | undefined {
  const match = /^([0-9a-z]{9}[0-9a-f]{20})\.\d{1,2}$/.exec(key);
  return match === null ? undefined : match[1];
}

function retryDelayMs(attempts: number): number {
  const bound = Math.min(RETRY_DELAY_MS_MAX, RETRY_DELAY_MS_MIN * 2 ** Math.min(attempts, 20));
  return bound / 2 + Math.random() * (bound / 2);
}

/** Stands in for the shards a rebuild leaves alone: takes their bytes and keeps nothing. */
const DISCARD: Backend = {
  name: 'discard',
  create: (): BackendWriter => ({ write: async () => undefined, commit: async () => undefined, abort: async () => undefined }),
  read: async () => {
    throw new Error('the discard backend holds nothing');
  },
  stat: async () => undefined,
  remove: async () => undefined,
  list: async function* nothing() {},
  close: async () => undefined,
};
