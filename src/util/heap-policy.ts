/**
 * How much garbage the server lets V8 keep beyond what is live (issue 17:
 * one process under 200 MiB resident across the benchmark suite).
 *
 * Measured under 32 concurrent 1000-key listers (docs/PERFORMANCE.md,
 * "Memory, round 3"): the main isolate held 17 MiB of live objects (a heap
 * snapshot) inside a heap of 100–115 MiB — the 32 MiB new space, and an old
 * generation that V8 let grow to several times the live heap between full
 * collections, most of it dead listing pages. `--heap-growing-percent` makes
 * the old generation grow this much over the live heap before the next full
 * collection, instead of V8's dynamic factor of 1.1–4; V8 still grows it by
 * at least ~16 MiB, so a small heap is not collected over and over. V8 reads
 * the flag whenever it sets the next limit, so the server sets it itself
 * (v8.setFlagsFromString): a single server gets no command-line flags
 * (bin/talus.js's `#!` line cannot carry them on BusyBox).
 *
 * Not a bound on live memory: a heap that needs more still gets it.
 *
 * The new space (young generation) is capped at NEW_SPACE_BYTES_MAX, as
 * `--workers` children are on their command line (cluster.ts): V8 doubles it
 * up to 32 MiB under load and keeps it resident (29–32 MiB in every row of
 * the suite after the first heavy one). The cap cannot be a start-up flag
 * (bin/talus.js's `#!` line), so it stops the doubling at run time: after
 * each collection, once the new space has reached the cap,
 * `--semi-space-growth-factor=1`. V8 sets that factor back to 2 whenever a
 * thread's isolate starts, so it is set again when any thread comes online
 * (process 'worker' event). Round 3 tried the same from the next collection
 * only, and the first listing's thread start let the new space double to
 * 32 MiB before it: the 'online' hook closes that window.
 *
 * The margin widens to HEAP_GROWING_PERCENT_WIDE while the full collections
 * are paid for Buffers rather than heap garbage (docs/PERFORMANCE.md, "Heap
 * policy (s8-heap)"). V8 behaves as if it counts external memory allocated
 * since the last full collection (Buffers' backing stores) against the same
 * old-generation margin: a 64 MiB PUT moves 64 MiB of Buffers through a ~15 MB heap, and the
 * 25 % margin (~11 MB there, V8's minimum step plus the new space) started ~3
 * full collections per PUT that each freed under 2 MB of heap (~30 % of the
 * PUT's CPU went to V8's GC threads). So after each full collection the
 * policy looks at what it freed: if the old generation was steady (under
 * HEAP_STEADY_BYTES freed, and as little grown since the previous one) and
 * the collection freed more external memory than heap, the next margin is
 * the wide one; otherwise (listing pages, promoted request objects, a live
 * heap that grows) it is the 25 % that bounds the listing rows' RSS. V8
 * reads the percent when it sets the next limit, so the choice applies from
 * the next collection on; the flag is the process's, so the threads'
 * isolates follow the main one's choice. The price is the dead Buffers the
 * wide margin lets wait: ~5–8 MiB of peak RSS at 8 PUTs in flight on a
 * fresh server, ~20 MiB (204–207 MiB) on one whose listing thread is up.
 */
import { constants, PerformanceObserver } from 'node:perf_hooks';
import v8 from 'node:v8';
import type { Worker } from 'node:worker_threads';

/** Old-generation growth between full collections, in percent of the live heap. */
export const HEAP_GROWING_PERCENT = 25;
/**
 * The margin while full collections free Buffers and not heap: 64 MiB PUTs
 * at 1 in flight 0.4–0.7 full collections per PUT instead of ~3, ~25 % less
 * CPU per PUT (docs/PERFORMANCE.md; 100 % measured: still 2.2–3 per PUT).
 */
export const HEAP_GROWING_PERCENT_WIDE = 200;
/**
 * The old generation is steady (nothing there for the narrow margin to
 * bound) when a full collection freed less than this of it, and it grew less
 * than this since the previous one: a 64 MiB PUT's collections free 0.1–0.8
 * MB of a ~16 MB old generation; a listing's several MiB (the 25 % margin's
 * minimum step is ~8 MiB). A growing live heap keeps the narrow margin too:
 * garbage that came after it would get three times the live heap.
 */
const HEAP_STEADY_BYTES = 2 * 1024 * 1024;
/**
 * The single server's young generation, what `--max-semi-space-size=4`
 * gives the `--workers` children (measured there at the same CPU per
 * request, cluster.ts): V8 grows it to 32 MiB otherwise.
 */
export const NEW_SPACE_BYTES_MAX = 8 * 1024 * 1024;

/** The new space grows (V8's factor of 2) while below this, and not at all from it on; the primary's is 0. */
let newSpaceBytesMax = Number.POSITIVE_INFINITY;
/** Whether the growth factor is 1 now: set again after every thread start, which resets it. */
let nurseryGrowthStopped = false;
let nurseryWatched = false;

/** Applies the policy to this process (V8's flags are per process: every thread's isolate too). */
export function applyServerHeapPolicy(): void {
  applyOldGenerationPolicy();
  capNewSpace(NEW_SPACE_BYTES_MAX);
}

/** The percent now in force (HEAP_GROWING_PERCENT or HEAP_GROWING_PERCENT_WIDE). */
let heapGrowingPercent = 0;
let oldGenerationWatched = false;

/**
 * The old generation's margin alone: what `--workers` children apply
 * (cluster-worker.ts), whose young generation is set on their command line.
 */
export function applyOldGenerationPolicy(): void {
  setHeapGrowingPercent(HEAP_GROWING_PERCENT);
  if (oldGenerationWatched) return;
  oldGenerationWatched = true;
  // Heap and external bytes as of the latest collection of any kind: a full collection frees from there.
  let before = heapSample();
  // The old generation's size after the latest full collection (its live objects then).
  let liveAfterFull = before.heapBytes;
  new PerformanceObserver((entries) => {
    const full = entries.getEntries().some((entry) => (entry as { detail?: { kind?: number } }).detail?.kind === constants.NODE_PERFORMANCE_GC_MAJOR);
    const after = heapSample();
    if (full) {
      const heapFreed = before.heapBytes - after.heapBytes;
      const externalFreed = before.externalBytes - after.externalBytes;
      const heapGrowth = after.heapBytes - liveAfterFull;
      liveAfterFull = after.heapBytes;
      const heapSteady = heapFreed < HEAP_STEADY_BYTES && heapGrowth < HEAP_STEADY_BYTES;
      setHeapGrowingPercent(heapSteady && externalFreed > heapFreed ? HEAP_GROWING_PERCENT_WIDE : HEAP_GROWING_PERCENT);
    }
    before = after;
  }).observe({ entryTypes: ['gc'] });
}

function setHeapGrowingPercent(percent: number): void {
  if (percent === heapGrowingPercent) return;
  heapGrowingPercent = percent;
  v8.setFlagsFromString(`--heap-growing-percent=${percent}`);
}

/** The old generation's live and dead objects (not the new space, which every collection empties), and V8's external memory. */
function heapSample(): { heapBytes: number; externalBytes: number } {
  let heapBytes = 0;
  for (const space of v8.getHeapSpaceStatistics()) if (!space.space_name.startsWith('new_')) heapBytes += space.space_used_size;
  return { heapBytes, externalBytes: v8.getHeapStatistics().external_memory };
}

/**
 * Lets the new space grow as V8 likes up to `bytesMax`, and no further (see
 * the module comment). Looked at after every collection, not once: a new
 * space V8 shrank while the process idled must be able to grow back.
 */
function capNewSpace(bytesMax: number): void {
  newSpaceBytesMax = bytesMax;
  setNurseryGrowth(newSpaceBytes() < newSpaceBytesMax);
  if (nurseryWatched) return;
  nurseryWatched = true;
  new PerformanceObserver(() => setNurseryGrowth(newSpaceBytes() < newSpaceBytesMax)).observe({ entryTypes: ['gc'] });
  // A thread's isolate start sets the factor back to V8's default: set it again once the thread runs.
  process.on('worker', (worker: Worker) => {
    worker.once('online', () => {
      if (nurseryGrowthStopped) v8.setFlagsFromString('--semi-space-growth-factor=1');
    });
  });
}

function setNurseryGrowth(grows: boolean): void {
  if (grows === !nurseryGrowthStopped) return;
  nurseryGrowthStopped = !grows;
  v8.setFlagsFromString(`--semi-space-growth-factor=${grows ? 2 : 1}`);
}

function newSpaceBytes(): number {
  for (const space of v8.getHeapSpaceStatistics()) if (space.space_name === 'new_space') return space.space_size;
  return 0;
}

/**
 * `--workers`' primary serves no requests: its young generation stays at
 * V8's initial 1 MiB semi-spaces instead of growing to 8 MiB ones while the
 * server's modules load (measured: its new space 2 instead of 10–16 MiB
 * resident, the primary 85–89 instead of 95–97 MiB, docs/PERFORMANCE.md).
 * Its allocation rate is low (IPC, purges, the admin API), so the smaller
 * nursery costs it nothing visible. V8 sets the flag back to its default
 * when a thread's isolate starts (heap-policy's comment above), so call this
 * again once the primary's threads run; at worst the nursery grows as before.
 */
export function applyPrimaryNurseryPolicy(): void {
  nurseryGrowthStopped = false;
  capNewSpace(0);
}
