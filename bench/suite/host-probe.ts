/**
 * How fast the host is right now. This VM's host changes speed by up to 2×
 * within a run of the suite, with no steal time reported (issue 17: the bare
 * server's CPU per 4 KiB GET was 20 µs in one row and 33 µs in another
 * minutes later). Before each row the suite times a fixed CPU-bound job in a
 * child process of its own (so neither the suite's heap nor its JIT state
 * enters it): SHA-256 over a buffer (native code) and a tight integer loop
 * (JIT-compiled JavaScript), each the median of a few repetitions after one
 * to warm up. The figure is the job's CPU time, not its wall time: other
 * processes sharing the cores delay the job but do not make it cost more
 * CPU, while a host that runs the VM slower does, just as it raises every
 * server's CPU µs/op. Printed beside the row and kept in the JSON, it tells
 * a slow host from a slow Talus: when the probe costs 1.5× as much as in
 * another run, CPU µs/op in that row are expected to be ~1.5× too.
 */
import { execFile } from 'node:child_process';

export interface HostProbe {
  /**
   * Median CPU time (user + system) of one repetition of the whole fixed job
   * (SHA-256 + loop), ms: the figure to compare. Other processes on the
   * cores do not lengthen it (they delay it: see wallMs); a host that runs
   * this VM's CPU slower, with no steal time reported, does.
   */
  ms: number;
  /** Median wall time of one repetition, ms: longer than `ms` when other processes had the cores. */
  wallMs: number;
  /** SHA-256's CPU time per MiB hashed (median), µs. */
  sha256MicrosPerMiB: number;
  /** The integer loop's median CPU time, ms. */
  loopMs: number;
  repetitions: number;
}

const REPETITIONS = 5;
/** ~20 ms a repetition on this machine (SHA-256 ~0.8 ms/MiB, the loop ~14 ms): the probe takes ~0.35 s with the child's start. */
const HASHED_MIB = 8;
const LOOP_STEPS = 10_000_000;
/** The loop runs as many calls of a function of this many steps: a hot function is optimised by the usual tiers, not on-stack replacement. */
const LOOP_CHUNK_STEPS = 100_000;
const PROBE_TIMEOUT_MS = 30_000;

/**
 * The loop must cost the same CPU in every probe, so the JIT gets no
 * choice: V8 compiles hot code on a background thread, which on busy cores
 * waits while the loop runs unoptimised; compiled on the main thread, the
 * warm-up repetition leaves it optimised. (Its arithmetic is Math.imul, exact
 * in int32: `x * 31` overflows int32, and whether V8 then chose float code
 * made the loop take 11 or 45-100 ms at random.)
 */
const PROBE_NODE_FLAGS = ['--no-concurrent-recompilation'];

/** Runs in the child (plain script, CommonJS `-e`): prints the medians as JSON. */
const PROBE_SCRIPT = `
const { createHash } = require('node:crypto');
const buffer = Buffer.alloc(${HASHED_MIB} * 1024 * 1024, 7);
const cpu = () => { const usage = process.cpuUsage(); return (usage.user + usage.system) / 1000; };
const wall = () => Number(process.hrtime.bigint()) / 1e6;
function hash() { const start = cpu(); createHash('sha256').update(buffer).digest(); return cpu() - start; }
function steps(seed) { let x = seed; for (let i = 0; i < ${LOOP_CHUNK_STEPS}; i++) x = (Math.imul(x, 31) + i) | 0; return x; }
function loop() { const start = cpu(); let x = 0; for (let chunk = 0; chunk < ${LOOP_STEPS / LOOP_CHUNK_STEPS}; chunk++) x = steps(x); if (x === 0.5) console.log(x); return cpu() - start; }
const median = (values) => { const sorted = [...values].sort((a, b) => a - b); return sorted[sorted.length >> 1]; };
hash(); loop();
const hashes = [], loops = [], totals = [], walls = [];
for (let i = 0; i < ${REPETITIONS}; i++) { const started = wall(); const h = hash(); const l = loop(); walls.push(wall() - started); hashes.push(h); loops.push(l); totals.push(h + l); }
process.stdout.write(JSON.stringify({ ms: median(totals), wallMs: median(walls), sha256MicrosPerMiB: median(hashes) * 1000 / ${HASHED_MIB}, loopMs: median(loops), repetitions: ${REPETITIONS} }));
`;

/** The probe's figures, or undefined if it could not run (the suite goes on without them). */
export function probeHost(): Promise<HostProbe | undefined> {
  return new Promise((resolve) => {
    execFile(process.execPath, [...PROBE_NODE_FLAGS, '-e', PROBE_SCRIPT], { timeout: PROBE_TIMEOUT_MS, encoding: 'utf8' }, (error, stdout) => {
      if (error !== null) {
        resolve(undefined);
        return;
      }
      try {
        resolve(JSON.parse(stdout) as HostProbe);
      } catch {
        resolve(undefined);
      }
    });
  });
}

/** 'host probe 20.3 ms CPU (SHA-256 0.77 ms/MiB, loop 14.1 ms; 35.0 ms wall)'. */
export function formatHostProbe(probe: HostProbe | undefined): string {
  if (probe === undefined) return 'host probe failed';
  return `host probe ${probe.ms.toFixed(1)} ms CPU (SHA-256 ${(probe.sha256MicrosPerMiB / 1000).toFixed(2)} ms/MiB, loop ${probe.loopMs.toFixed(1)} ms; ${probe.wallMs.toFixed(1)} ms wall)`;
}
