/**
 * A prefix listed as several key ranges at once, merged back in key order.
 * The first page is listed alone (it decides `auto` and samples the keys);
 * if more follow, the key space above it is split by probing
 * (key-space.ts) while the first range keeps listing, and each further range
 * lists from its start-after boundary with its own continuation tokens.
 * Pages are handed over range by range, each range's in order, so the
 * caller sees one listing in key order; each range lists ahead of the
 * caller by at most RANGE_PAGES_AHEAD pages (memory: ranges x that x one
 * parsed page): enough that the ranges after the current one keep the
 * server busy while the caller drains it (with 8, a 50 000-object scan in
 * 4 ranges fills the later ranges' buffers early and is back to one
 * request in flight for much of the walk).
 */
import type { ReceivedPage, ScannedPage } from './listing-page.ts';
import { splitKeySpace, type KeySpaceSplit, type Probe } from './key-space.ts';

/** Pages a range lists ahead of the caller at most. */
export const RANGE_PAGES_AHEAD = 16;
/** Keys asked for beyond the estimate on a range's last page (the estimate comes from the first page's density). */
const LAST_PAGE_MARGIN_FACTOR = 1.25;
const LAST_PAGE_MARGIN_KEYS = 16;

export interface PageRequest {
  startAfter?: string;
  continuationToken?: string;
  maxKeys: number;
}

/** A page as received (its entries read after the next page is asked for), or one already read. */
export type FetchPage = (request: PageRequest) => Promise<ReceivedPage | ScannedPage>;

export interface ParallelListingOptions {
  /** Ranges listed at once at most (1: one listing, in sequence). */
  ranges: number;
  prefix: string;
  pageKeysMax: number;
  fetch: FetchPage;
  probe: Probe;
  /** Called with each page as it arrives (any range), for progress. */
  onPage?: (page: ScannedPage) => void;
  /** Called once every range has listed its last page. */
  onListingDone?: () => void;
  /** Keys ahead of the first page (at its density) below which the listing stays one range; default SPLIT_KEYS_MIN_DEFAULT (key-space.ts). */
  splitKeysMin?: number;
  /** The page after `first`, already asked for (with its continuation token and pageKeysMax keys). */
  second?: Promise<ReceivedPage | ScannedPage>;
}

function received(page: ReceivedPage | ScannedPage): ReceivedPage {
  if ('read' in page) return page;
  return { isTruncated: page.isTruncated, nextContinuationToken: page.nextContinuationToken, lastKey: page.objects.at(-1)?.key, read: () => page };
}

class RangeListing {
  readonly #fetch: FetchPage;
  readonly #pageKeysMax: number;
  readonly #onPage: ((page: ScannedPage) => void) | undefined;
  readonly #pages: ScannedPage[] = [];
  #next: PageRequest | undefined;
  /** Keys above this belong to the next range (undefined: to the end of the prefix). */
  #end: string | undefined;
  #split: KeySpaceSplit | undefined;
  #lastKey: string | undefined;
  #error: unknown;
  #finished = false;
  #stopped = false;
  #wakeReader: (() => void) | undefined;
  #wakeWriter: (() => void) | undefined;
  readonly done: Promise<void>;

  /** `first`: this range's first page, already asked for (`start` then says what comes after nothing: it is not asked for again). */
  constructor(fetch: FetchPage, start: PageRequest, end: string | undefined, split: KeySpaceSplit | undefined, pageKeysMax: number, onPage: ((page: ScannedPage) => void) | undefined, lastKey?: string, first?: Promise<ReceivedPage | ScannedPage>) {
    this.#fetch = fetch;
    this.#next = start;
    this.#end = end;
    this.#split = split;
    this.#pageKeysMax = pageKeysMax;
    this.#onPage = onPage;
    this.#lastKey = lastKey;
    this.done = this.#run(first);
  }

  get finished(): boolean {
    return this.#finished;
  }

  /** The boundaries still above what this (first, unbounded) range has listed: it now ends at the first of them. */
  limitTo(split: KeySpaceSplit): string[] {
    if (this.#finished || this.#next === undefined || this.#end !== undefined) return [];
    const ahead = split.boundaries.filter((boundary) => this.#lastKey === undefined || boundary > this.#lastKey);
    if (ahead.length === 0) return [];
    this.#end = ahead[0];
    this.#split = split;
    return ahead;
  }

  stop(): void {
    this.#stopped = true;
    this.#wakeWriter?.();
  }

  /**
   * Each next page is asked for the moment the one before arrives, before
   * that one is read (its continuation token and last key are read without
   * reading its entries): the server renders page n+1 while page n is read.
   */
  async #run(first: Promise<ReceivedPage | ScannedPage> | undefined): Promise<void> {
    let pending = first;
    try {
      for (;;) {
        if (pending === undefined) {
          while (this.#next !== undefined && !this.#stopped && this.#pages.length >= RANGE_PAGES_AHEAD) {
            await new Promise<void>((resolve) => (this.#wakeWriter = resolve));
          }
          if (this.#next === undefined || this.#stopped) break;
          pending = this.#request();
        }
        const page = received(await pending);
        pending = undefined;
        this.#follow(page);
        if (this.#next !== undefined && !this.#stopped && this.#pages.length + 1 < RANGE_PAGES_AHEAD) {
          pending = this.#request();
          // Awaited on the next turn; a failure while this page is read must not count as unhandled.
          pending.catch(() => undefined);
        }
        this.#accept(page.read());
      }
    } catch (error) {
      this.#error = error;
    } finally {
      this.#finished = true;
      this.#wakeReader?.();
    }
  }

  #request(): Promise<ReceivedPage | ScannedPage> {
    return this.#fetch({ ...this.#next!, maxKeys: this.#maxKeysFor() });
  }

  /** Where the listing goes on after this page: from its continuation token, unless it is the last or passes this range's end. */
  #follow(page: ReceivedPage): void {
    if (page.isTruncated && page.nextContinuationToken === undefined) throw new Error('ListObjectsV2: a truncated page without a NextContinuationToken');
    const end = this.#end;
    const pastEnd = end !== undefined && page.lastKey !== undefined && page.lastKey > end;
    if (page.lastKey !== undefined && !pastEnd) this.#lastKey = page.lastKey;
    this.#next = !pastEnd && page.isTruncated ? { continuationToken: page.nextContinuationToken!, maxKeys: this.#pageKeysMax } : undefined;
  }

  /** A full page, or on the last page of a bounded range the keys it probably has left (with a margin). */
  #maxKeysFor(): number {
    if (this.#end === undefined || this.#split === undefined || this.#lastKey === undefined) return this.#pageKeysMax;
    const left = this.#split.keysBetween(this.#lastKey, this.#end);
    return Math.max(1, Math.min(this.#pageKeysMax, Math.ceil(left * LAST_PAGE_MARGIN_FACTOR) + LAST_PAGE_MARGIN_KEYS));
  }

  /** The page's entries up to this range's end (#follow decided from its last key whether the listing goes on). */
  #accept(page: ScannedPage): void {
    const end = this.#end;
    const pastEnd = end !== undefined && page.objects.length > 0 && page.objects.at(-1)!.key > end;
    // Only a page whose last <Contents> reads differently from its entries (a malformed one) could disagree with #follow.
    if (pastEnd && this.#next !== undefined) throw new Error('ListObjectsV2: a page\'s last key is not its last entry\'s');
    const kept: ScannedPage = pastEnd ? { objects: page.objects.filter((object) => object.key <= end), isTruncated: false, nextContinuationToken: undefined } : page;
    this.#pages.push(kept);
    this.#onPage?.(kept);
    this.#wakeReader?.();
  }

  /** This range's pages in order; throws what its listing failed with. */
  async *pages(): AsyncGenerator<ScannedPage> {
    for (;;) {
      const page = this.#pages.shift();
      if (page !== undefined) {
        this.#wakeWriter?.();
        yield page;
        continue;
      }
      if (this.#error !== undefined) throw this.#error;
      if (this.#finished) return;
      await new Promise<void>((resolve) => (this.#wakeReader = resolve));
    }
  }
}

/**
 * Every page after `first` (which the caller has), in key order, from up to
 * `ranges` range listings at once. `first` must be truncated. The listing
 * starts at once, before the first page is asked for.
 */
export function listRemainingInParallel(first: ScannedPage, options: ParallelListingOptions): AsyncGenerator<ScannedPage> {
  if (!first.isTruncated || first.nextContinuationToken === undefined) throw new Error('listRemainingInParallel: the first page must be truncated, with a continuation token');
  const firstKeys = first.objects.map((object) => object.key);
  const rest = new RangeListing(options.fetch, { continuationToken: first.nextContinuationToken, maxKeys: options.pageKeysMax }, undefined, undefined, options.pageKeysMax, options.onPage, firstKeys.at(-1), options.second);
  const ranges: RangeListing[] = [rest];
  // The probes run while the first range goes on listing; a failed split only means no split.
  const splitting = splitKeySpace(options.prefix, firstKeys, options.ranges, options.probe, options.splitKeysMin)
    .catch(() => undefined)
    .then((split) => {
      if (split === undefined) return;
      const boundaries = rest.limitTo(split);
      boundaries.forEach((boundary, i) => {
        ranges.push(new RangeListing(options.fetch, { startAfter: boundary, maxKeys: options.pageKeysMax }, boundaries[i + 1], split, options.pageKeysMax, options.onPage, boundary));
      });
    });
  void splitting.then(() => Promise.all(ranges.map((range) => range.done))).then(() => options.onListingDone?.());
  return (async function* inOrder(): AsyncGenerator<ScannedPage> {
    try {
      yield* rest.pages();
      // Ranges after the first exist only once the split is known.
      await splitting;
      for (const range of ranges.slice(1)) yield* range.pages();
    } finally {
      for (const range of ranges) range.stop();
    }
  })();
}
