/**
 * Recycled pages before each measured run of the 64 MiB PUT rows (issue 17,
 * docs/PERFORMANCE.md "64 MiB PUT, round 5").
 *
 * This VM reports free memory to its host (virtio-balloon free page
 * reporting, `page_reporting.page_reporting_order` on the kernel command
 * line): a page that has sat free for a few seconds is handed back, and the
 * next write into it faults on the host, which the guest sees as a slow copy
 * charged to whoever touches the page. A 64 MiB PUT's copy into the page
 * cache (`copy_folio_from_iter_atomic`) then costs ~120 ms instead of ~30:
 * the bytes ceiling's CPU per PUT went 63–80 → 175–195 ms over consecutive
 * runs of one process, nothing else changing, once the few GiB of memory
 * freed shortly before were used up. The suite's alternated rows write
 * several GiB in warm-ups before their first measured run, so every measured
 * run of every side wrote into such pages, and what a row measured depended
 * on how much recently freed memory the machine happened to have.
 *
 * A storage server in its steady state does not live there: its page cache
 * is full, and new writes take pages the kernel reclaims from old objects,
 * pages the guest holds. So just before each measured run (untimed, after
 * the `sync`), a child process touches a pool of anonymous memory larger
 * than any side writes in one run and exits: every side starts its run with
 * the same pool of just-freed guest pages, and the run's page-cache writes
 * take them. On a machine without free page reporting the pool costs a
 * second of untimed work and changes nothing.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { assert } from '../../src/util/assert.ts';

const MiB = 1024 ** 2;
const GiB = 1024 ** 3;
/** The page size the pool is touched at (a write per page maps it). */
const PAGE_BYTES = 4096;
/** The pool is held in buffers this large, all at once, so that all of it is freed together when the child exits. */
const POOL_BUFFER_BYTES = 64 * MiB;
/** Memory left to everything else when sizing the pool: other processes on the machine, the servers' own heaps. */
export const POOL_MEMORY_RESERVE_BYTES = 4 * GiB;
/** Below this a pool would not cover a run: the run then goes without, and the note says so. */
export const POOL_BYTES_MIN = 256 * MiB;

export interface PagePoolNeed {
  /** What the child touches before each measured run (0: none). */
  bytes: number;
  /** What one run may write at most: the fastest side's rate for the run, plus every PUT still in flight when it stops. */
  wantedBytes: number;
  /** The pool is smaller than wanted (too little available memory): a run may write beyond it into long-free pages. */
  short: boolean;
}

/**
 * The pool for one run of `runMs` at `concurrency` objects of `objectBytes`
 * in flight, written at up to `bytesPerSecondMax`: the run's writes plus the
 * PUTs in flight when it stops (they finish inside the run), twice over, so
 * the pool also covers the memory the run turns over besides the page cache
 * (socket buffers, heaps). Capped by what is available beyond
 * POOL_MEMORY_RESERVE_BYTES; none if that is less than POOL_BYTES_MIN.
 */
export function pagePoolNeed(options: { runMs: number; concurrency: number; objectBytes: number; bytesPerSecondMax: number; availableBytes: number }): PagePoolNeed {
  const { runMs, concurrency, objectBytes, bytesPerSecondMax, availableBytes } = options;
  assert(runMs > 0 && concurrency >= 1 && objectBytes > 0 && bytesPerSecondMax > 0, 'pagePoolNeed: a run writes something');
  const runBytes = (runMs / 1000) * bytesPerSecondMax + concurrency * objectBytes;
  const wantedBytes = roundToBuffers(2 * runBytes);
  const allowed = Math.max(0, availableBytes - POOL_MEMORY_RESERVE_BYTES);
  const bytes = allowed >= wantedBytes ? wantedBytes : allowed >= POOL_BYTES_MIN ? roundDownToBuffers(allowed) : 0;
  return { bytes, wantedBytes, short: bytes < wantedBytes };
}

const roundToBuffers = (bytes: number): number => Math.ceil(bytes / POOL_BUFFER_BYTES) * POOL_BUFFER_BYTES;
const roundDownToBuffers = (bytes: number): number => Math.floor(bytes / POOL_BUFFER_BYTES) * POOL_BUFFER_BYTES;

/** MemAvailable from /proc/meminfo, in bytes (Infinity where there is no /proc). */
export function availableMemoryBytes(): number {
  let meminfo: string;
  try {
    meminfo = readFileSync('/proc/meminfo', 'utf8');
  } catch {
    return Number.POSITIVE_INFINITY;
  }
  const match = /^MemAvailable:\s+(\d+) kB$/m.exec(meminfo);
  assert(match !== null, 'availableMemoryBytes: /proc/meminfo has no MemAvailable');
  return Number(match[1]) * 1024;
}

/** What the child that touched the pool reports. */
export interface PoolTouch {
  bytes: number;
  /** Its peak resident set: at least the pool, when every page was really touched. */
  peakRssBytes: number;
  cpuMs: number;
}

/** The child: holds `POOL_BYTES` of buffers at once, writes one byte per page of each, reports, exits (freeing all of it). */
const TOUCH_SCRIPT = `
const total = Number(process.env.POOL_BYTES), step = ${POOL_BUFFER_BYTES}, held = [];
for (let done = 0; done < total; done += step) {
  const buffer = Buffer.allocUnsafeSlow(Math.min(step, total - done));
  for (let at = 0; at < buffer.length; at += ${PAGE_BYTES}) buffer[at] = 1;
  held.push(buffer);
}
const usage = process.resourceUsage();
process.stdout.write(JSON.stringify({ bytes: held.reduce((sum, buffer) => sum + buffer.length, 0), peakRssBytes: usage.maxRSS * 1024, cpuMs: (usage.userCPUTime + usage.systemCPUTime) / 1000 }));
`;

/** Touches and frees a pool of `bytes` (untimed, synchronous: nothing else runs in the suite meanwhile). */
export function recyclePages(bytes: number): PoolTouch {
  assert(Number.isSafeInteger(bytes) && bytes > 0, 'recyclePages: a positive byte count');
  const child = spawnSync(process.execPath, ['-e', TOUCH_SCRIPT], { env: { ...process.env, NODE_OPTIONS: '', POOL_BYTES: String(bytes) }, encoding: 'utf8', maxBuffer: MiB });
  if (child.error !== undefined) throw child.error;
  assert(child.status === 0, `recyclePages: the child exited with ${child.status ?? child.signal}: ${child.stderr.slice(0, 500)}`);
  const touch = JSON.parse(child.stdout) as PoolTouch;
  assert(touch.bytes === bytes, 'recyclePages: the child held the whole pool');
  return touch;
}
