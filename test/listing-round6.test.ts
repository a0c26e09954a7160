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
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { RenderedPage } from '../src/meta/metadata-store.ts';
import { PageBufferPool, renderPage, reusePageBuffers, sparePageBuffers } from '../src/s3/list-render.ts';

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
    assert.ok(Buffer.from(largePage.bytes).equals(largeFresh));

    // Only the small spare left: a large page outgrows it, and it goes back rather than to the collector.
    const grown = prefixPage(1500, 200, 'L');
    assert.notEqual(grown.bytes.buffer, small);
    assert.ok(Buffer.from(grown.bytes).equals(largeFresh));
    assert.equal(sparePageBuffers.size, 1);
    const smallPage = prefixPage(100, 20, 'S');
    assert.equal(smallPage.bytes.buffer, small);
    assert.ok(Buffer.from(smallPage.bytes).equals(smallFresh));
    assert.equal(sparePageBuffers.size, 0);
  });
});
