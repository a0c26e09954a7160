/**
 * Background upkeep of the bytes: the purger removes blobs the metadata no
 * longer references (after a grace period and once no GET streams them), and
 * reclaim removes blobs a crash left written but never committed.
 */
import { blobIdTimeMs } from '../util/ids.ts';
import { PURGE_BATCH_MAX, PURGE_RETRY_MS } from '../util/limits.ts';
import type { PurgeEntry } from '../meta/metadata-store.ts';
import type { EngineContext } from './context.ts';

/** Removes due blobs once; returns how many were removed. */
export async function purgeOnce(context: EngineContext, nowMs = Date.now(), onError: (error: unknown) => void = () => undefined): Promise<number> {
  const due = await context.meta.takePurgeBatch(nowMs, PURGE_BATCH_MAX);
  const done: string[] = [];
  const later = new Map<string, number>();
  const leasedElsewhere = due.length === 0 || context.otherLeases === undefined
    ? new Set<string>()
    : await context.otherLeases(due.map((entry) => entry.blobId));
  const removable: PurgeEntry[] = [];
  for (const entry of due) {
    // A blob still being streamed, or one whose removal failed, moves to the
    // back of the queue so it can never block the entries behind it.
    if (context.leases.isLeased(entry.blobId) || leasedElsewhere.has(entry.blobId)) later.set(entry.blobId, nowMs + PURGE_RETRY_MS);
    else removable.push(entry);
  }
  if (context.blobs.removeMany !== undefined && removable.length > 0) {
    // Batched per backend; a backend that is down answers for all its blobs at once, and says when to come back.
    let failed: Map<string, number>;
    try {
      failed = await context.blobs.removeMany(removable);
    } catch (error) {
      onError(error);
      failed = new Map(removable.map((entry) => [entry.blobId, nowMs + PURGE_RETRY_MS]));
    }
    for (const entry of removable) {
      const retryAtMs = failed.get(entry.blobId);
      if (retryAtMs === undefined) done.push(entry.blobId);
      else later.set(entry.blobId, Math.max(retryAtMs, nowMs + PURGE_RETRY_MS));
    }
  } else {
    for (const entry of removable) {
      try {
        await context.blobs.remove(entry);
        done.push(entry.blobId);
      } catch (error) {
        onError(error);
        later.set(entry.blobId, nowMs + PURGE_RETRY_MS);
      }
    }
  }
  if (done.length > 0) await context.meta.completePurge(done);
  const byTime = new Map<number, string[]>();
  for (const [blobId, untilMs] of later) byTime.set(untilMs, [...(byTime.get(untilMs) ?? []), blobId]);
  for (const [untilMs, blobIds] of byTime) await context.meta.postponePurge(blobIds, untilMs);
  return done.length;
}

/**
 * Deletes blobs that no metadata references and that were created before
 * `beforeMs`. Run at start-up, before any request, and only once the
 * composition root checked that the database is the one these blobs were
 * written with (data-dir-identity.ts): then no upload is in flight, so
 * every unknown blob is debris of a crash. With `setAside` (an operator
 * adopting a database that may not know every blob) unknown blobs are
 * moved there instead of deleted.
 */
export async function reclaimOrphans(context: EngineContext, beforeMs: number, setAside?: (blobId: string) => Promise<void>): Promise<number> {
  let removed = 0;
  for await (const blobId of context.blobs.list()) {
    if (blobIdTimeMs(blobId) >= beforeMs) continue;
    if (await context.meta.isBlobKnown(blobId)) continue;
    if (setAside !== undefined) await setAside(blobId);
    else await context.blobs.remove({ blobId });
    removed++;
  }
  return removed;
}

/** Runs the purger on a coarse timer; never busy-loops, never overlaps itself. */
export class Purger {
  readonly #context: EngineContext;
  readonly #intervalMs: number;
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<void> | undefined;
  #onError: (error: unknown) => void;

  constructor(context: EngineContext, intervalMs: number, onError: (error: unknown) => void) {
    this.#context = context;
    this.#intervalMs = intervalMs;
    this.#onError = onError;
  }

  start(): void {
    this.#timer = setInterval(() => this.#tick(), this.#intervalMs);
    this.#timer.unref();
  }

  #tick(): void {
    if (this.#running !== undefined) return;
    this.#running = this.#drain()
      .catch(this.#onError)
      .finally(() => {
        this.#running = undefined;
      });
  }

  async #drain(): Promise<void> {
    // Drain full batches back to back, but stop when a batch removes nothing new.
    while ((await purgeOnce(this.#context, Date.now(), this.#onError)) === PURGE_BATCH_MAX) {
      /* keep going */
    }
  }

  async stop(): Promise<void> {
    if (this.#timer !== undefined) clearInterval(this.#timer);
    await this.#running;
  }
}
