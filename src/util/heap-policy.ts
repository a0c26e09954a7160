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
 * Tried and left out: capping the new space at run time the same way
 * (`--semi-space-growth-factor=1` once it reached 8 MiB). V8 resets that flag
 * to 2 whenever an isolate starts, and the first listing's thread start let
 * the new space double to 32 MiB before the next collection could set it
 * again. The new space stays NODE_OPTIONS=--max-semi-space-size=4's (worker
 * processes get it from cluster.ts).
 */
import v8 from 'node:v8';

/** Old-generation growth between full collections, in percent of the live heap. */
export const HEAP_GROWING_PERCENT = 25;

/** Applies the policy to this process (V8's flags are per process: every thread's isolate too). */
export function applyServerHeapPolicy(): void {
  v8.setFlagsFromString(`--heap-growing-percent=${HEAP_GROWING_PERCENT}`);
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
  v8.setFlagsFromString('--semi-space-growth-factor=1');
}
