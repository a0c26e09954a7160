/**
 * CPU time and peak memory of a server under test, read from /proc, so the
 * suite can say what each operation cost the server and not only how fast
 * the client saw it go. Everything is summed over the process and all its
 * descendants: a server that forks workers (node:cluster, `talus --workers`)
 * is counted whole.
 *
 * CPU: utime + stime (+ cutime + cstime, the children already reaped) from
 * /proc/<pid>/stat, in clock ticks (10 ms at CLK_TCK 100: fine over runs of
 * seconds). Peak RSS: the largest sum of VmRSS over the tree, sampled every
 * 100 ms; for a tree of one process also VmHWM after resetting it through
 * /proc/<pid>/clear_refs, which catches peaks between two samples.
 *
 * On-CPU time, besides: the first field of /proc/<pid>/task/<tid>/schedstat
 * (ns) summed over every thread of the tree. The same CPU time as the
 * ticks', read to the nanosecond: a 2-second run of a server at half a CPU
 * is 100 ticks, ±1 % from the reading alone, which is as large as the
 * differences some rows judge (the observability rows; docs/PERFORMANCE.md,
 * "Metrics and logs, round 9"). A thread's schedstat goes with it when it
 * ends: a window in which one ended falls back to the ticks.
 */
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { assert } from '../../src/util/assert.ts';

export const RSS_SAMPLE_INTERVAL_MS = 100;
/** Listing every process in /proc costs a few ms: the tree is refreshed at this pace, the RSS of known members sampled faster. */
const TREE_REFRESH_INTERVAL_MS = 1000;
/** A server tree larger than this is a runaway fork: stop counting rather than scan forever. */
const TREE_PROCESSES_MAX = 256;

const CLOCK_TICKS_PER_SECOND = readClockTicks();

function readClockTicks(): number {
  try {
    const ticks = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim());
    return Number.isInteger(ticks) && ticks > 0 ? ticks : 100;
  } catch {
    return 100;
  }
}

export function procAvailable(): boolean {
  try {
    readFileSync('/proc/self/stat', 'utf8');
    return true;
  } catch {
    return false;
  }
}

/** Fields of /proc/<pid>/stat after the command name (which may hold spaces and parentheses). */
function statFields(pid: number): string[] | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined; // the process is gone
  }
  const end = text.lastIndexOf(')');
  return end < 0 ? undefined : text.slice(end + 2).split(' ');
}

/** utime + stime + cutime + cstime in µs; fields 14–17 of stat, i.e. 11–14 after the name. */
function cpuMicrosOf(pid: number): number {
  const fields = statFields(pid);
  if (fields === undefined) return 0;
  const ticks = Number(fields[11]) + Number(fields[12]) + Number(fields[13]) + Number(fields[14]);
  return Number.isFinite(ticks) ? (ticks * 1e6) / CLOCK_TICKS_PER_SECOND : 0;
}

/** On-CPU ns of each thread of `pid` (schedstat's first field), keyed `pid/tid`, into `into`; nothing for a process gone or a kernel without schedstat. */
function addThreadOnCpuNanos(pid: number, into: Map<string, number>): void {
  let tasks: string[];
  try {
    tasks = readdirSync(`/proc/${pid}/task`);
  } catch {
    return;
  }
  for (const tid of tasks) {
    try {
      const nanos = Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ')[0]);
      if (Number.isFinite(nanos)) into.set(`${pid}/${tid}`, nanos);
    } catch {
      // The thread ended between the listing and the read (or no schedstat): not there.
    }
  }
}

function statusKib(pid: number, field: 'VmRSS' | 'VmHWM'): number {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/status`, 'utf8');
  } catch {
    return 0;
  }
  const match = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(text);
  return match === null ? 0 : Number(match[1]);
}

/** The root and every live descendant, found through the parent pid of every process in /proc. */
export function processTree(rootPid: number): number[] {
  const children = new Map<number, number[]>();
  for (const entry of readdirSync('/proc')) {
    const pid = Number(entry);
    if (!Number.isInteger(pid) || pid <= 0) continue;
    const parent = Number(statFields(pid)?.[1]);
    if (!Number.isInteger(parent)) continue;
    let siblings = children.get(parent);
    if (siblings === undefined) children.set(parent, (siblings = []));
    siblings.push(pid);
  }
  const tree = [rootPid];
  for (let index = 0; index < tree.length && tree.length < TREE_PROCESSES_MAX; index++) {
    for (const child of children.get(tree[index]!) ?? []) tree.push(child);
  }
  return tree;
}

export interface ResourceUsage {
  wallMs: number;
  /** Server CPU over the window, all processes of the tree. */
  cpuMicros: number;
  /**
   * The same from schedstat, to the nanosecond: each thread's time inside
   * the window (the whole of a thread born in it; one born and ended inside
   * it is missed, as the ticks' cutime would count it). When a thread present at
   * the start is gone at the end, its time since the start cannot be read:
   * then the ticks' cpuMicros instead, which keep an ended thread's time.
   * 0 without schedstat.
   */
  onCpuMicros: number;
  /**
   * The part of onCpuMicros spent by the root process's main thread (a
   * Node server's event loop: its JavaScript, its system calls); the rest
   * is its other threads' (V8's compiler and GC helpers, libuv's pool) and
   * its children's. 0 when onCpuMicros fell back to the ticks or without
   * schedstat.
   */
  mainThreadOnCpuMicros: number;
  /** % of one core: 200 means two cores busy all the time. */
  cpuPercentOfOneCore: number;
  peakRssBytes: number;
  /** Processes in the tree at the end (1 for a single-process server). */
  processes: number;
}

/** One measurement window over a process tree: begin() … end(). */
export class ResourceWindow {
  readonly #rootPid: number;
  readonly #startMs: number;
  readonly #startCpuMicros: number;
  readonly #startOnCpuNanos: Map<string, number>;
  #tree: number[];
  #treeRefreshedMs: number;
  #peakRssKib = 0;
  readonly #timer: NodeJS.Timeout;
  #ended = false;

  private constructor(rootPid: number) {
    this.#rootPid = rootPid;
    this.#tree = processTree(rootPid);
    this.#treeRefreshedMs = performance.now();
    for (const pid of this.#tree) resetHighWaterMark(pid);
    this.#startCpuMicros = this.#treeCpuMicros();
    this.#startOnCpuNanos = this.#treeOnCpuNanos();
    this.#startMs = performance.now();
    this.#sample();
    this.#timer = setInterval(() => this.#sample(), RSS_SAMPLE_INTERVAL_MS);
    this.#timer.unref();
  }

  static begin(rootPid: number): ResourceWindow {
    assert(Number.isInteger(rootPid) && rootPid > 0, 'process stats: a pid');
    return new ResourceWindow(rootPid);
  }

  end(): ResourceUsage {
    assert(!this.#ended, 'process stats: a window ends once');
    this.#ended = true;
    clearInterval(this.#timer);
    this.#tree = processTree(this.#rootPid);
    this.#treeRefreshedMs = performance.now();
    this.#sample();
    const wallMs = performance.now() - this.#startMs;
    const cpuMicros = Math.max(0, this.#treeCpuMicros() - this.#startCpuMicros);
    const { onCpuMicros, mainThreadOnCpuMicros } = this.#onCpuMicrosSinceStart(cpuMicros);
    let peakKib = this.#peakRssKib;
    // One process: its kernel-kept high-water mark since the reset is exact.
    if (this.#tree.length === 1) peakKib = Math.max(peakKib, statusKib(this.#rootPid, 'VmHWM'));
    return {
      wallMs,
      cpuMicros,
      onCpuMicros,
      mainThreadOnCpuMicros,
      cpuPercentOfOneCore: wallMs > 0 ? cpuMicros / (wallMs * 10) : 0,
      peakRssBytes: peakKib * 1024,
      processes: this.#tree.length,
    };
  }

  #treeCpuMicros(): number {
    let total = 0;
    for (const pid of this.#tree) total += cpuMicrosOf(pid);
    return total;
  }

  #treeOnCpuNanos(): Map<string, number> {
    const threads = new Map<string, number>();
    for (const pid of this.#tree) addThreadOnCpuNanos(pid, threads);
    return threads;
  }

  /** Every thread's on-CPU time since the start, and the root's main thread's (see onCpuMicros); `tickMicros` (and no main thread's) when a thread of the start has ended. */
  #onCpuMicrosSinceStart(tickMicros: number): { onCpuMicros: number; mainThreadOnCpuMicros: number } {
    const now = this.#treeOnCpuNanos();
    if (now.size === 0) return { onCpuMicros: 0, mainThreadOnCpuMicros: 0 };
    const mainThread = `${this.#rootPid}/${this.#rootPid}`;
    let nanos = 0;
    for (const [thread, startNanos] of this.#startOnCpuNanos) {
      const endNanos = now.get(thread);
      if (endNanos === undefined) return { onCpuMicros: tickMicros, mainThreadOnCpuMicros: 0 };
      nanos += endNanos - startNanos;
    }
    for (const [thread, endNanos] of now) if (!this.#startOnCpuNanos.has(thread)) nanos += endNanos;
    const mainStart = this.#startOnCpuNanos.get(mainThread);
    const mainEnd = now.get(mainThread);
    const mainNanos = mainStart === undefined || mainEnd === undefined ? 0 : mainEnd - mainStart;
    return { onCpuMicros: nanos / 1000, mainThreadOnCpuMicros: mainNanos / 1000 };
  }

  #sample(): void {
    const nowMs = performance.now();
    if (nowMs - this.#treeRefreshedMs >= TREE_REFRESH_INTERVAL_MS) {
      this.#tree = processTree(this.#rootPid);
      this.#treeRefreshedMs = nowMs;
    }
    let rssKib = 0;
    for (const pid of this.#tree) rssKib += statusKib(pid, 'VmRSS');
    if (rssKib > this.#peakRssKib) this.#peakRssKib = rssKib;
  }
}

/** Writing 5 to clear_refs resets VmHWM to the current RSS (Linux ≥ 4.0); without permission the sampled peak still counts. */
function resetHighWaterMark(pid: number): void {
  try {
    writeFileSync(`/proc/${pid}/clear_refs`, '5');
  } catch {
    // Not permitted or gone: sampling alone then.
  }
}
