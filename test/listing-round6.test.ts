/**
 * Listing page buffers, round 6 (src/s3/list-render.ts's PageBufferPool, the
 * listing threads' RenderedPage.recycle):
 *
 * - The pool's choice: a page's size is known only once rendered, so a page
 *   takes the largest spare (before: the last one handed back, however
 *   small, which a large page outgrew and dropped while a larger spare
 *   waited); a full pool swaps its smallest spare for a larger buffer; a
 *   spare a page outgrew goes back; 4 spares at most.
 * - Actual reuse, through a real server: pages rendered into a buffer an
 *   earlier page handed back (ListingThreads.pageBuffersReused, from
 *   RenderedPage.bufferReused), for ListObjects V1, V2 with and without
 *   FetchOwner and ListObjectVersions, large and small pages alternating,
 *   every page byte for byte the page rendered with no buffer ever handed
 *   back (test/listing-round5b.test.ts counted transfers only, for V2
 *   without owners).
 */
import { CreateBucketCommand, PutBucketVersioningCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { RenderedPage } from '../src/meta/metadata-store.ts';
import type { SqliteMetadataStore } from '../src/meta/sqlite/sqlite-metadata-store.ts';
import { PageBufferPool, renderPage, reusePageBuffers, sparePageBuffers } from '../src/s3/list-render.ts';
import { signedRequest } from './helpers/raw.ts';
import { startTestTalus, uniqueBucket, type TestTalus } from './helpers/talus.ts';

const KIB = 1024;

/** A page of `count` common prefixes of `length` characters each: ~(length + 40) bytes apiece. */
function prefixPage(count: number, length: number, tag: string): RenderedPage {
  const entries = Array.from({ length: count }, (_, index) => ({ key: `${tag}${String(index).padStart(5, '0')}${'p'.repeat(length)}/` }));
  return renderPage({ kind: 'keys', result: { entries, isTruncated: false } }, { encodeUrl: false, owners: false });
}

function drainPool(): void {
  while (sparePageBuffers.take() !== undefined);
}

describe('the page buffer pool', () => {
  test('takes the largest spare; a full pool swaps its smallest for a larger buffer; 4 at most', () => {
    const pool = new PageBufferPool(4);
    const small = new ArrayBuffer(20 * KIB);
    const large = new ArrayBuffer(600 * KIB);
    const middle = new ArrayBuffer(100 * KIB);
    // Handed back large first, small last: the last one is not the one to take.
    assert.ok(pool.offer(large));
    assert.ok(pool.offer(small));
    assert.ok(pool.offer(middle));
    assert.equal(pool.take(), large);
    assert.equal(pool.take(), middle);
    assert.equal(pool.take(), small);
    assert.equal(pool.take(), undefined);

    const spares = [30, 40, 50, 60].map((kib) => new ArrayBuffer(kib * KIB));
    for (const spare of spares) assert.ok(pool.offer(spare));
    assert.equal(pool.size, 4);
    assert.equal(pool.offer(new ArrayBuffer(25 * KIB)), false, 'no smaller than every spare when full');
    const larger = new ArrayBuffer(200 * KIB);
    assert.ok(pool.offer(larger), 'a larger one replaces the smallest');
    assert.equal(pool.size, 4);
    assert.deepEqual(
      [pool.take(), pool.take(), pool.take(), pool.take(), pool.take()],
      [larger, spares[3], spares[2], spares[1], undefined],
    );
    // Not a page buffer's size: never pooled.
    assert.equal(pool.offer(new ArrayBuffer(0)), false);
    assert.equal(pool.offer(new ArrayBuffer(4 * KIB)), false);
    assert.equal(pool.offer(new ArrayBuffer(3 * 1024 * KIB)), false);
    assert.equal(pool.size, 0);
  });

  test('a rendered page takes the spare that fits; an outgrown spare goes back; the bytes are a fresh rendering\'s', () => {
    drainPool();
    // Fresh renderings (no spare): the reference bytes.
    const largeFresh = Buffer.from(prefixPage(1500, 200, 'L').bytes);
    const smallFresh = Buffer.from(prefixPage(100, 20, 'S').bytes);
    assert.ok(largeFresh.length > 300 * KIB && smallFresh.length < 8 * KIB);

    // 64 KiB: a page reserves 3 bytes per character of text before encoding it (8 Ki characters a segment).
    const small = new ArrayBuffer(64 * KIB);
    const large = new ArrayBuffer(600 * KIB);
    // Fill both with stale bytes: a page must show none of them.
    new Uint8Array(small).fill(0x41);
    new Uint8Array(large).fill(0x42);
    reusePageBuffers([large, small]);
    const largePage = prefixPage(1500, 200, 'L');
    assert.equal(largePage.bytes.buffer, large, 'the large page was rendered into the large spare, not the last one handed back');
    assert.equal(largePage.bufferReused, true);
    assert.ok(Buffer.from(largePage.bytes).equals(largeFresh));

    // Only the small spare left: a large page outgrows it, and it goes back rather than to the collector.
    const grown = prefixPage(1500, 200, 'L');
    assert.notEqual(grown.bytes.buffer, small);
    assert.equal(grown.bufferReused, undefined, 'rendered into a buffer of its own in the end');
    assert.ok(Buffer.from(grown.bytes).equals(largeFresh));
    assert.equal(sparePageBuffers.size, 1);
    const smallPage = prefixPage(100, 20, 'S');
    assert.equal(smallPage.bytes.buffer, small);
    assert.equal(smallPage.bufferReused, true);
    assert.ok(Buffer.from(smallPage.bytes).equals(smallFresh));
    assert.equal(sparePageBuffers.size, 0);
  });
});

describe('listing page buffers are reused through the server, and pages stay byte-identical', () => {
  let talus: TestTalus;
  let bucket: string;
  const LONG = 'l'.repeat(700);
  const GROUP = 300;

  before(async () => {
    talus = await startTestTalus();
    bucket = uniqueBucket('reuse');
    await talus.client.send(new CreateBucketCommand({ Bucket: bucket }));
    await talus.client.send(new PutBucketVersioningCommand({ Bucket: bucket, VersioningConfiguration: { Status: 'Enabled' } }));
    // Long keys under long/ (large pages, ~300 KiB), short ones under short/ (small pages, ~50 KiB); 300 each, so a page is past the event loop's 128 steps and rendered on a listing thread.
    const keys = [...Array.from({ length: GROUP }, (_, index) => `long/${String(index).padStart(4, '0')}-${LONG}`), ...Array.from({ length: GROUP }, (_, index) => `short/${String(index).padStart(4, '0')}`)];
    for (let start = 0; start < keys.length; start += 16) {
      await Promise.all(keys.slice(start, start + 16).map((key) => talus.client.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: 'x' }))));
    }
  });

  after(async () => {
    await talus?.stop();
  });

  const OPERATIONS: Record<string, Record<string, string>> = {
    'ListObjects (V1)': {},
    'ListObjectsV2': { 'list-type': '2' },
    'ListObjectsV2 with FetchOwner': { 'list-type': '2', 'fetch-owner': 'true' },
    'ListObjectVersions': { versions: '' },
  };
  /** Per operation: a large page, a small one, and the same with url encoding (alternated below). */
  const queries = (operation: Record<string, string>): Record<string, string>[] =>
    (
      [
      { prefix: 'long/', 'max-keys': '1000' },
      { prefix: 'short/', 'max-keys': '1000' },
      { prefix: 'long/', 'max-keys': '250', 'encoding-type': 'url' },
      { prefix: 'short/', 'max-keys': '200', 'encoding-type': 'url' },
      ] as Record<string, string>[]
    ).map((query) => ({ ...operation, ...query }));

  async function list(query: Record<string, string>): Promise<string> {
    const response = await signedRequest(talus.url, { method: 'GET', path: `/${bucket}`, query });
    assert.equal(response.status, 200, response.body.slice(0, 200));
    return response.body;
  }

  test('every operation, large and small pages alternating, concurrently too: reused buffers, the unpooled bytes', { timeout: 120_000 }, async () => {
    const threads = (talus.engine.meta as SqliteMetadataStore).listingThreads!;
    assert.ok(threads !== undefined, 'the server lists on threads');
    // Threads start with the first listing; until one is ready, pages are rendered on the event loop (never handed back).
    threads.start();
    const deadline = Date.now() + 60_000;
    while (threads.readyCount === 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
    assert.ok(threads.readyCount > 0, 'a listing thread is ready');
    // Unpooled: no page hands its buffer back, so every page is rendered into a new one.
    const runRendered = threads.runRendered.bind(threads);
    threads.runRendered = async (...args: Parameters<typeof threads.runRendered>) => {
      const page = await runRendered(...args);
      if (page !== undefined) delete page.recycle;
      return page;
    };
    const expected = new Map<string, string>();
    try {
      for (const operation of Object.values(OPERATIONS)) {
        for (const query of queries(operation)) expected.set(JSON.stringify(query), await list(query));
      }
    } finally {
      delete (threads as { runRendered?: unknown }).runRendered;
    }
    assert.equal(threads.pageBuffersReturned, 0);
    assert.equal(threads.pageBuffersReused, 0);
    const answeredBefore = threads.answered;
    assert.ok(answeredBefore >= expected.size, `${answeredBefore} pages rendered on threads`);
    for (const [key, body] of expected) {
      const query = JSON.parse(key) as Record<string, string>;
      const count = body.match(/<Key>/g)?.length ?? 0;
      assert.ok(count >= 200, `${key}: ${count} entries, a page a thread renders`);
      // ListObjects V1 and ListObjectVersions always show owners, V2 only with FetchOwner.
      if (query['list-type'] !== '2' || 'fetch-owner' in query) assert.match(body, /<Owner><ID>/, `${key} shows owners`);
      else assert.doesNotMatch(body, /<Owner>/, `${key} shows no owners`);
    }

    for (const [name, operation] of Object.entries(OPERATIONS)) {
      const reusedBefore = threads.pageBuffersReused;
      const pages = queries(operation);
      // In sequence, large and small alternating: each request carries the buffers written before it back to a thread.
      for (let round = 0; round < 3; round++) {
        for (const query of pages) assert.equal(await list(query), expected.get(JSON.stringify(query)), `${name} ${JSON.stringify(query)}, round ${round}`);
      }
      // Four at once, twice: several buffers of different sizes come back together.
      for (let round = 0; round < 2; round++) {
        const bodies = await Promise.all(pages.map((query) => list(query)));
        for (const [index, body] of bodies.entries()) assert.equal(body, expected.get(JSON.stringify(pages[index])), `${name} ${JSON.stringify(pages[index])}, concurrent round ${round}`);
      }
      assert.ok(threads.pageBuffersReused > reusedBefore, `${name}: pages rendered into buffers handed back (${threads.pageBuffersReused - reusedBefore})`);
    }
    assert.ok(threads.answered >= answeredBefore + Object.keys(OPERATIONS).length * 20);
  });
});
