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
 */
import { PerformanceObserver } from 'node:perf_hooks';
import v8 from 'node:v8';
import type { Worker } from 'node:worker_threads';

/** Old-generation growth between full collections, in percent of the live heap. */
export const HEAP_GROWING_PERCENT = 25;
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
  v8.setFlagsFromString(`--heap-growing-percent=${HEAP_GROWING_PERCENT}`);
  capNewSpace(NEW_SPACE_BYTES_MAX);
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
  // Stopping is set again after every collection, not only on a change: a thread's isolate start resets the factor
  // to 2 and may do so after the 'online' hook below ran, and a skipped re-set let the new space double twice past
  // the cap (test/memory-round4.test.ts failed 1 run in 5 so). One flag write per batch of gc entries costs ~µs.
  if (grows === !nurseryGrowthStopped && grows) return;
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
