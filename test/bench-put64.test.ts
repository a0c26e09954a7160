/**
 * The 64 MiB PUT rows' page pool (issue 17, bench/suite/page-pool.ts): before
 * each measured run of every side, a child touches a pool of memory larger
 * than any side writes in one run and exits, so every run writes into
 * just-freed guest pages (a storage server's steady state) instead of pages
 * this VM's host took back. Checked here: the pool's size covers a run at
 * the rows' settings, shrinks to what memory allows and says so, and the
 * child really touches every page of it (its peak RSS) and frees it.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MODE_SETTINGS } from '../bench/suite/options.ts';
import { POOL_BYTES_MIN, POOL_MEMORY_RESERVE_BYTES, availableMemoryBytes, pagePoolNeed, recyclePages } from '../bench/suite/page-pool.ts';
import { alternatedRunMs } from '../bench/suite/workloads/compare.ts';

const MiB = 1024 ** 2;
const GiB = 1024 ** 3;
const RATE = 512 * MiB;

test('the pool covers twice what the fastest side writes in one run, PUTs in flight included', () => {
  const quick = MODE_SETTINGS.quick;
  const runMs = alternatedRunMs(quick.largeRunMs, quick.ratioRounds);
  const plenty = 64 * GiB;
  const one = pagePoolNeed({ runMs, concurrency: 1, objectBytes: quick.largeObjectBytes, bytesPerSecondMax: RATE, availableBytes: plenty });
  const eight = pagePoolNeed({ runMs, concurrency: 8, objectBytes: quick.largeObjectBytes, bytesPerSecondMax: RATE, availableBytes: plenty });
  // 2 s at 512 MiB/s, plus the PUT in flight when the run stops, twice over.
  assert.equal(one.bytes, 2 * (2 * 512 * MiB + 64 * MiB));
  assert.equal(eight.bytes, 2 * (2 * 512 * MiB + 8 * 64 * MiB));
  assert.equal(one.short || eight.short, false);
  assert.equal(one.bytes % (64 * MiB), 0, 'whole buffers');
  // A longer run needs a bigger pool.
  const full = MODE_SETTINGS.full;
  const long = pagePoolNeed({ runMs: alternatedRunMs(full.largeRunMs, full.ratioRounds), concurrency: 1, objectBytes: full.largeObjectBytes, bytesPerSecondMax: RATE, availableBytes: plenty });
  assert.ok(long.bytes > one.bytes);
});

test('the pool shrinks to the memory available beyond the reserve, says it is short, and is left out below its minimum', () => {
  const base = { runMs: 2000, concurrency: 8, objectBytes: 64 * MiB, bytesPerSecondMax: RATE };
  const shortOf = pagePoolNeed({ ...base, availableBytes: POOL_MEMORY_RESERVE_BYTES + 1 * GiB + 10 * MiB });
  assert.equal(shortOf.bytes, 1 * GiB, 'rounded down to whole buffers');
  assert.equal(shortOf.short, true);
  assert.ok(shortOf.wantedBytes > shortOf.bytes);
  const none = pagePoolNeed({ ...base, availableBytes: POOL_MEMORY_RESERVE_BYTES + POOL_BYTES_MIN - 1 });
  assert.equal(none.bytes, 0);
  assert.equal(none.short, true);
  assert.equal(pagePoolNeed({ ...base, availableBytes: 0 }).bytes, 0);
  assert.throws(() => pagePoolNeed({ ...base, concurrency: 0, availableBytes: 64 * GiB }));
});

test('recyclePages touches every page of the pool in a child that then exits', () => {
  const bytes = 96 * MiB; // one whole buffer and a part of another
  const touch = recyclePages(bytes);
  assert.equal(touch.bytes, bytes);
  // Allocated but untouched memory is not resident: a peak RSS above the pool means every page was written.
  assert.ok(touch.peakRssBytes >= bytes, `peak RSS ${touch.peakRssBytes} covers the pool`);
  assert.ok(touch.cpuMs > 0);
  assert.throws(() => recyclePages(0));
});

test('available memory is read from /proc/meminfo', () => {
  const available = availableMemoryBytes();
  assert.ok(available > 0 && available % 1024 === 0, `${available}`);
});
