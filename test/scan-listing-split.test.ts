/**
 * How talus scan's listing spends requests (src/scan/parallel-listing.ts,
 * key-space.ts), against an in-memory S3 listing: a listing too short to
 * split costs one probe, not a round of 31; one long enough still splits,
 * with fewer probes; and each range asks for its next page before it reads
 * the page it has, so the server renders one while the scan reads the other.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { splitKeySpace } from '../src/scan/key-space.ts';
import type { ReceivedPage, ScannedPage } from '../src/scan/listing-page.ts';
import { listRemainingInParallel, type PageRequest } from '../src/scan/parallel-listing.ts';

/** Sorted ASCII keys listed as S3 lists them; pages come as received pages, read later. */
class FakeListing {
  readonly keys: string[];
  readonly requests: PageRequest[] = [];
  /** For each page read: the token that continues it, and whether it had been asked for already. */
  readonly reads: { next: string | undefined; nextAskedBefore: boolean }[] = [];
  probes = 0;

  constructor(keys: string[]) {
    this.keys = [...keys].sort();
  }

  #firstAfter(after: string): number {
    let low = 0;
    let high = this.keys.length;
    while (low < high) {
      const middle = (low + high) >> 1;
      if (this.keys[middle]! <= after) low = middle + 1;
      else high = middle;
    }
    return low;
  }

  page = async (request: PageRequest): Promise<ReceivedPage> => {
    this.requests.push(request);
    await new Promise((resolve) => setImmediate(resolve));
    const from = this.#firstAfter(request.continuationToken ?? request.startAfter ?? '');
    const keys = this.keys.slice(from, from + request.maxKeys);
    const isTruncated = from + keys.length < this.keys.length;
    const page: ScannedPage = { objects: keys.map((key) => ({ key, size: 0, etag: 'e', lastModified: '' })), isTruncated, nextContinuationToken: isTruncated ? keys.at(-1) : undefined };
    return {
      isTruncated,
      nextContinuationToken: page.nextContinuationToken,
      lastKey: keys.at(-1),
      read: () => {
        const next = page.nextContinuationToken;
        this.reads.push({ next, nextAskedBefore: this.requests.some((other) => other.continuationToken !== undefined && other.continuationToken === next) });
        return page;
      },
    };
  };

  probe = async (startAfter: string): Promise<string | undefined> => {
    this.probes++;
    await new Promise((resolve) => setImmediate(resolve));
    return this.keys[this.#firstAfter(startAfter)];
  };
}

const sequential = (count: number): string[] => Array.from({ length: count }, (_, i) => `bulk/${String(i).padStart(8, '0')}`);

async function listAll(listing: FakeListing, splitKeysMin?: number): Promise<string[]> {
  const first = (await listing.page({ maxKeys: 1000 })).read();
  const keys = first.objects.map((object) => object.key);
  for await (const page of listRemainingInParallel(first, { ranges: 4, prefix: 'bulk/', pageKeysMax: 1000, fetch: listing.page, probe: listing.probe, splitKeysMin })) {
    for (const object of page.objects) keys.push(object.key);
  }
  return keys;
}

test('a listing too short to split costs one probe', async () => {
  const listing = new FakeListing(sequential(3500));
  assert.deepEqual(await listAll(listing), listing.keys);
  assert.equal(listing.probes, 1);
  assert.ok(listing.requests.every((request) => request.startAfter === undefined), 'one range');
});

test('splitKeysMin 16 000: 10 000 keys stay one range (one probe), 40 000 split into four with fewer probes than before', async () => {
  const short = new FakeListing(sequential(10_000));
  assert.deepEqual(await listAll(short, 16_000), short.keys);
  assert.equal(short.probes, 1);
  assert.ok(short.requests.every((request) => request.startAfter === undefined), 'one range');

  const long = new FakeListing(sequential(40_000));
  assert.deepEqual(await listAll(long, 16_000), long.keys);
  assert.equal(long.requests.filter((request) => request.startAfter !== undefined).length, 3, 'four ranges');
  assert.ok(long.probes <= 20, `${long.probes} probes (a split took 31)`);
});

test('a split still finds the end of the key space: ranges of similar size', async () => {
  const listing = new FakeListing(sequential(50_000));
  const firstKeys = listing.keys.slice(0, 1000);
  const split = await splitKeySpace('bulk/', firstKeys, 4, listing.probe, 16_000);
  assert.ok(split !== undefined);
  const edges = [firstKeys.at(-1)!, ...split.boundaries, '\u{10ffff}'];
  const sizes = edges.slice(1).map((edge, i) => listing.keys.filter((key) => key > edges[i]! && key <= edge).length);
  assert.ok(Math.max(...sizes) <= 2 * Math.min(...sizes), `range sizes ${sizes.join(', ')}`);
});

test('each range asks for its next page before it reads the one it has', async () => {
  for (const [count, splitKeysMin] of [[6000, 16_000], [30_000, undefined]] as const) {
    const listing = new FakeListing(sequential(count));
    assert.deepEqual(await listAll(listing, splitKeysMin), listing.keys);
    // Pages the listing went on from (not a range's last, nor the very first page, which the test reads itself).
    const followed = listing.reads.slice(1).filter((read) => listing.requests.some((request) => request.continuationToken !== undefined && request.continuationToken === read.next));
    assert.ok(followed.length >= count / 1000 - 6, `${followed.length} pages followed`);
    for (const read of followed) assert.ok(read.nextAskedBefore, `the page before ${read.next} was read before its next page was asked for`);
  }
});
