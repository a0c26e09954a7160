/**
 * Hands memory that glibc's allocator keeps after heavy traffic back to the
 * kernel (issue 17: one process under 200 MiB resident across the suite,
 * "heap and allocator retention after heavy rows counts").
 *
 * Why: socket chunks (64 KiB, node:http allocates one per read), hash
 * batches and other Buffers are malloc'ed outside V8's heap. After the 64 MiB
 * PUT rows and the mixed row the process's brk heap held 60–78 MiB while only
 * 7–24 MiB of Buffers were alive, and it never shrank: glibc returns the top
 * of its heap only, and a few small allocations still alive above the freed
 * chunks pin everything below them (docs/PERFORMANCE.md, "Memory and 64 MiB
 * GET, round 4"). malloc_trim() also returns the free pages inside the heap
 * (madvise MADV_DONTNEED): 200 → 148 MiB resident in 11 ms in one measured
 * process.
 *
 * How, without a native addon of our own: SQLite (better-sqlite3, already a
 * dependency) loads extensions by file name and entry point, and calls the
 * entry point as `int entry(sqlite3 *db, char **error, const void *api)`.
 * Naming glibc's `malloc_trim` as the entry point calls `malloc_trim(pad)`
 * with the connection's address as `pad`: on the SysV calling conventions
 * (x86-64, AArch64) a function of one integer argument reads it from the
 * first argument register and ignores the others. The large `pad` only means
 * the top of the main heap is not cut (free() already trims it beyond the
 * trim threshold); the free pages inside every arena are still released.
 * malloc_trim answers 1 when it released memory, which SQLite reports as
 * "error during initialization" (and unloads the library again); 0 loads
 * cleanly. Any other failure — not glibc (musl has no libc.so.6), no
 * extension loading — turns the release off for the process: it is an
 * optimisation, never a requirement.
 *
 * When: looked at every RELEASE_CHECK_INTERVAL_MS, released once resident
 * memory grew, or Buffers shrank, by RELEASE_THRESHOLD_BYTES since the last
 * release, and at most once per RELEASE_SPACING_MS. A release runs on the
 * event loop and takes 0.2–0.6 ms when there is little to give back, ~11 ms
 * for ~50 MiB (measured); memory still in use gives nothing back, and both
 * rules are measured from the last release, so it is not tried again and
 * again.
 */
import { createRequire } from 'node:module';
import { assert } from './assert.ts';

/** How often memory is looked at (process.memoryUsage(): one read of /proc/self/stat and V8's heap statistics, tens of µs). */
export const RELEASE_CHECK_INTERVAL_MS = 1_000;
/**
 * What triggers a release: resident memory grown this much over its lowest
 * point since the last release, or Buffers (V8's "external" memory) this
 * much below their highest point since then — the second catches a release
 * made during a burst, when the Buffers were still alive and freed only
 * after it (measured: the first rule alone left 65 MiB of freed brk heap
 * resident for 150 s after the mixed row). Smaller than what one heavy
 * burst leaves behind (40–60 MiB measured after the 64 MiB PUT and mixed
 * rows), large enough that the ordinary breathing of V8's heap rarely
 * triggers a release that finds nothing.
 */
export const RELEASE_THRESHOLD_BYTES = 16 * 1024 * 1024;
/**
 * Least time between two releases. Pages given back are faulted in again
 * (and zeroed by the kernel) when the allocator reuses them, ~10–20 ms of CPU
 * per 40 MiB: under a sustained load of large bodies (the mixed workload:
 * Buffers swing by more than the threshold every second) a release each
 * second cost ~0.7 ms per request in one paired run. Every 10 s bounds that
 * to ~0.2 % of a core and still releases within seconds of a burst's end.
 */
export const RELEASE_SPACING_MS = 10_000;

type TrimConnection = { loadExtension(path: string, entryPoint?: string): unknown; close(): unknown };
type TrimDatabase = new (filename: string) => TrimConnection;

const GLIBC = 'libc.so.6';
/** What SQLite says when the entry point answered non-zero: malloc_trim released something. */
const RELEASED_MESSAGE = 'error during initialization';

let database: TrimDatabase | undefined;
let supported = process.platform === 'linux' && (process.arch === 'x64' || process.arch === 'arm64');

/**
 * Returns the allocator's free pages to the kernel now; false if this
 * process cannot (not glibc on x86-64/AArch64 Linux, or extension loading
 * unavailable), after which it never tries again.
 */
export function releaseFreedMemory(): boolean {
  if (!supported) return false;
  let connection: TrimConnection | undefined;
  try {
    database ??= createRequire(import.meta.url)('better-sqlite3') as TrimDatabase;
    // A connection of its own, closed at once: closing unloads whatever a clean load kept loaded.
    connection = new database(':memory:');
    connection.loadExtension(GLIBC, 'malloc_trim');
    return true;
  } catch (error) {
    if (error instanceof Error && error.message.startsWith(RELEASED_MESSAGE)) return true;
    supported = false;
    return false;
  } finally {
    connection?.close();
  }
}

/** Releases freed memory when it is likely there is some (see the module comment); unref'd, so it never holds the process open. */
export class FreedMemoryReleaser {
  readonly #timer: NodeJS.Timeout;
  readonly #thresholdBytes: number;
  readonly #spacingMs: number;
  #lastReleaseMs = Number.NEGATIVE_INFINITY;
  #lowestRssBytes: number;
  #highestExternalBytes: number;
  #releases = 0;

  constructor(intervalMs = RELEASE_CHECK_INTERVAL_MS, thresholdBytes = RELEASE_THRESHOLD_BYTES, spacingMs = RELEASE_SPACING_MS) {
    assert(Number.isInteger(intervalMs) && intervalMs > 0, 'freed memory: a check interval');
    assert(Number.isInteger(thresholdBytes) && thresholdBytes > 0, 'freed memory: a threshold');
    assert(Number.isInteger(spacingMs) && spacingMs >= 0, 'freed memory: a spacing');
    this.#thresholdBytes = thresholdBytes;
    this.#spacingMs = spacingMs;
    const usage = process.memoryUsage();
    this.#lowestRssBytes = usage.rss;
    this.#highestExternalBytes = usage.external;
    this.#timer = setInterval(() => this.#check(), intervalMs);
    this.#timer.unref();
  }

  /** Releases done so far (diagnostics and tests). */
  get releases(): number {
    return this.#releases;
  }

  stop(): void {
    clearInterval(this.#timer);
  }

  #check(): void {
    const { rss, external } = process.memoryUsage();
    this.#lowestRssBytes = Math.min(this.#lowestRssBytes, rss);
    this.#highestExternalBytes = Math.max(this.#highestExternalBytes, external);
    // Grown since the last release (what it grew by may be free again by now), or Buffers freed since their peak.
    const grown = rss - this.#lowestRssBytes >= this.#thresholdBytes;
    const buffersFreed = this.#highestExternalBytes - external >= this.#thresholdBytes;
    if (!grown && !buffersFreed) return;
    const nowMs = performance.now();
    // Not yet: the condition still holds at a later check, since only a release resets it.
    if (nowMs - this.#lastReleaseMs < this.#spacingMs) return;
    if (!releaseFreedMemory()) return this.stop();
    this.#lastReleaseMs = nowMs;
    this.#releases++;
    // Measured from here on: what is still in use stays counted, and is not released again and again.
    const after = process.memoryUsage();
    this.#lowestRssBytes = after.rss;
    this.#highestExternalBytes = after.external;
  }
}

let processReleaser: FreedMemoryReleaser | undefined;

/** Starts the process's releaser once (a server process, a --workers worker). */
export function startFreedMemoryRelease(): void {
  processReleaser ??= new FreedMemoryReleaser();
}
