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
 *
 * The CPU job misses a host whose kernel side slowed: at the 2026-12-07
 * 01:00 quiet run it read full speed while every baseline cost ~35 % more
 * per request (docs/PERFORMANCE.md). So the probe also times what the
 * servers' kernel side does: a loopback TCP ping-pong between the child and
 * an echo process of its own (CPU of both processes and wall time per round
 * trip: socket writes and reads, wake-ups, epoll), and 4 KiB appends each
 * followed by fdatasync in the suite's scratch directory (the data disk: wall
 * and CPU per write + fdatasync, as a durable PUT's commit pays).
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
  // The kernel side (added 2026-12-07; absent in older results and when that part failed).
  /** Both processes' CPU (user + system) per loopback TCP round trip of one byte, µs: median of the blocks. */
  tcpRoundTripCpuMicros?: number;
  /** Wall time per round trip, µs: median of the blocks (longer when other processes had the cores). */
  tcpRoundTripWallMicros?: number;
  /** Round trips timed (blocks × round trips per block). */
  tcpRoundTrips?: number;
  /** Median wall time of one 4 KiB append + fdatasync in the scratch directory, µs. */
  syncWriteWallMicros?: number;
  /** The child's CPU per append + fdatasync (mean), µs. */
  syncWriteCpuMicros?: number;
  /** Appends + fdatasyncs timed. */
  syncWrites?: number;
  /** True when the kernel side was not asked for (the suite's `--smoke` mode): its figures are absent by design, not failed. */
  kernelSideSkipped?: boolean;
}

const REPETITIONS = 5;
/** ~20 ms a repetition on this machine (SHA-256 ~0.8 ms/MiB, the loop ~14 ms): the probe takes ~0.35 s with the child's start. */
const HASHED_MIB = 8;
const LOOP_STEPS = 10_000_000;
/** The loop runs as many calls of a function of this many steps: a hot function is optimised by the usual tiers, not on-stack replacement. */
const LOOP_CHUNK_STEPS = 100_000;
const PROBE_TIMEOUT_MS = 30_000;
/** Round trips per block and blocks: ~0.05–0.3 s on this machine (the echo process starts while the CPU job runs). */
const TCP_ROUND_TRIPS_PER_BLOCK = 120;
const TCP_BLOCKS = 5;
const TCP_WARM_UP_ROUND_TRIPS = 100;
/** A durable 4 KiB PUT's commit: a WAL append and its fdatasync (~0.3 ms each on this disk). */
const SYNC_WRITE_BYTES = 4096;
const SYNC_WRITES = 30;
const SYNC_WARM_UP_WRITES = 3;
/** The echo process exits by itself after this long, should its parent die without closing the socket. */
const ECHO_LIFETIME_MS = 20_000;
/** The TCP part normally takes well under a second; past this, it is given up and its figures left out (the others are kept). */
const TCP_DEADLINE_MS = 10_000;

/**
 * The echo process (CommonJS `-e`): answers every byte with itself, and 'c'
 * with its own CPU time (ms) and a newline; prints its port, exits when the
 * connection ends.
 */
const ECHO_SCRIPT = `
const net = require('node:net');
const server = net.createServer((socket) => {
  socket.setNoDelay(true);
  socket.on('data', (data) => {
    if (data[data.length - 1] === 99) { const usage = process.cpuUsage(); socket.write(String((usage.user + usage.system) / 1000) + '\\n'); }
    else socket.write(data);
  });
  socket.on('end', () => { socket.end(); server.close(); });
  socket.on('error', () => process.exit(1));
});
server.listen(0, '127.0.0.1', () => process.stdout.write(server.address().port + '\\n'));
setTimeout(() => process.exit(1), ${ECHO_LIFETIME_MS}).unref();
`;

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
// The echo process for the kernel-side part starts now, while the CPU job runs (its CPU time is
// the child's own: another process starting does not raise it).
// argv: [directory for the appends ('' = the OS's temporary directory), 'kernel' | 'cpu-only'].
const kernelSide = process.argv[2] !== 'cpu-only';
const { spawn } = require('node:child_process');
const echo = kernelSide ? spawn(process.execPath, ['-e', ${JSON.stringify(ECHO_SCRIPT)}], { stdio: ['ignore', 'pipe', 'ignore'] }) : undefined;
const echoPort = echo === undefined ? undefined : new Promise((resolve, reject) => {
  let text = '';
  echo.stdout.on('data', (chunk) => { text += chunk; if (text.includes('\\n')) resolve(Number(text.trim())); });
  echo.once('exit', () => reject(new Error('echo exited')));
});
echoPort?.catch(() => {});
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
const cpuFigures = { ms: median(totals), wallMs: median(walls), sha256MicrosPerMiB: median(hashes) * 1000 / ${HASHED_MIB}, loopMs: median(loops), repetitions: ${REPETITIONS} };

// The kernel side: loopback TCP round trips with the echo process, then appends + fdatasync.
const net = require('node:net');
const fs = require('node:fs');
const path = require('node:path');
async function tcp() {
  const exited = new Promise((resolve) => { if (echo.exitCode !== null) resolve(); else echo.once('exit', resolve); });
  try {
    const port = await echoPort;
    const socket = net.connect(port, '127.0.0.1');
    socket.setNoDelay(true);
    await new Promise((resolve, reject) => { socket.once('connect', resolve); socket.once('error', reject); });
    // An exchange pending when the echo dies (socket closed or failed) is rejected, not left
    // unsettled: an unsettled one would let the child exit with nothing printed, CPU figures too.
    let received = '', pending;
    const fail = (error) => { const settle = pending; pending = undefined; if (settle !== undefined) settle.reject(error); };
    socket.on('data', (data) => { received += data.toString('latin1'); if (pending !== undefined && pending.done(received)) { const settle = pending; pending = undefined; settle.resolve(received); } });
    socket.on('error', fail);
    socket.on('close', () => fail(new Error('echo connection closed')));
    const exchange = (byte, done) => new Promise((resolve, reject) => {
      if (socket.destroyed) { reject(new Error('echo connection closed')); return; }
      received = ''; pending = { done, resolve, reject }; socket.write(byte);
    });
    const ping = () => exchange('p', (text) => text.length >= 1);
    const echoCpu = async () => Number(await exchange('c', (text) => text.endsWith('\\n')));
    for (let i = 0; i < ${TCP_WARM_UP_ROUND_TRIPS}; i++) await ping();
    const cpuPer = [], wallPer = [];
    for (let block = 0; block < ${TCP_BLOCKS}; block++) {
      const echoBefore = await echoCpu(); const cpuBefore = cpu(); const wallBefore = wall();
      for (let i = 0; i < ${TCP_ROUND_TRIPS_PER_BLOCK}; i++) await ping();
      const wallAfter = wall(); const cpuAfter = cpu(); const echoAfter = await echoCpu();
      cpuPer.push((cpuAfter - cpuBefore + echoAfter - echoBefore) * 1000 / ${TCP_ROUND_TRIPS_PER_BLOCK});
      wallPer.push((wallAfter - wallBefore) * 1000 / ${TCP_ROUND_TRIPS_PER_BLOCK});
    }
    socket.end();
    await exited;
    return { tcpRoundTripCpuMicros: median(cpuPer), tcpRoundTripWallMicros: median(wallPer), tcpRoundTrips: ${TCP_BLOCKS * TCP_ROUND_TRIPS_PER_BLOCK} };
  } finally {
    if (echo.exitCode === null) echo.kill();
  }
}
/** The TCP part, given up (and the echo process killed) after ${TCP_DEADLINE_MS} ms: the other figures are kept. */
function tcpWithinDeadline() {
  let timer;
  const deadline = new Promise((_, reject) => { timer = setTimeout(() => reject(new Error('TCP probe timed out')), ${TCP_DEADLINE_MS}); });
  return Promise.race([tcp(), deadline]).finally(() => { clearTimeout(timer); if (echo.exitCode === null) echo.kill(); });
}
function syncWrites(directory) {
  const file = path.join(directory, 'talus-host-probe-' + process.pid);
  const block = Buffer.alloc(${SYNC_WRITE_BYTES}, 7);
  const fd = fs.openSync(file, 'w');
  try {
    for (let i = 0; i < ${SYNC_WARM_UP_WRITES}; i++) { fs.writeSync(fd, block); fs.fdatasyncSync(fd); }
    const walls = []; const cpuBefore = cpu();
    for (let i = 0; i < ${SYNC_WRITES}; i++) { const started = wall(); fs.writeSync(fd, block); fs.fdatasyncSync(fd); walls.push((wall() - started) * 1000); }
    return { syncWriteWallMicros: median(walls), syncWriteCpuMicros: (cpu() - cpuBefore) * 1000 / ${SYNC_WRITES}, syncWrites: ${SYNC_WRITES} };
  } finally {
    fs.closeSync(fd);
    fs.rmSync(file, { force: true });
  }
}
(async () => {
  let kernel = { kernelSideSkipped: true };
  if (kernelSide) {
    kernel = {};
    try { kernel = { ...(await tcpWithinDeadline()) }; } catch {}
    try { kernel = { ...kernel, ...syncWrites(process.argv[1] || require('node:os').tmpdir()) }; } catch {}
  }
  process.stdout.write(JSON.stringify({ ...cpuFigures, ...kernel }));
  // Whatever the TCP part left (a socket whose peer hangs, a timer) must not hold the child: its figures are out.
  process.exit(0);
})();
`;

export interface HostProbeOptions {
  /**
   * Also time the kernel side (TCP round trips, appends + fdatasync); default true. The suite's
   * `--smoke` mode leaves it out: its rows are too short to read, and each probe's fdatasyncs would
   * load the shared disk for nothing.
   */
  kernelSide?: boolean;
}

/**
 * The probe's figures, or undefined if the CPU job could not run (the suite
 * goes on without them); a kernel-side part that failed is left out, the
 * other figures kept. `directory`: where the appends + fdatasync go (the
 * suite's scratch directory, on the disk the servers write to; the OS's
 * temporary directory if not given).
 */
export function probeHost(directory?: string, options: HostProbeOptions = {}): Promise<HostProbe | undefined> {
  const kernelSide = options.kernelSide ?? true;
  return new Promise((resolve) => {
    execFile(process.execPath, [...PROBE_NODE_FLAGS, '-e', PROBE_SCRIPT, directory ?? '', kernelSide ? 'kernel' : 'cpu-only'], { timeout: PROBE_TIMEOUT_MS, encoding: 'utf8' }, (error, stdout) => {
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

/** 'host probe 20.3 ms CPU (SHA-256 0.77 ms/MiB, loop 14.1 ms; 35.0 ms wall); TCP round trip 41 µs CPU (60 wall); 4 KiB write + fdatasync 310 µs (20 CPU)'. */
export function formatHostProbe(probe: HostProbe | undefined): string {
  if (probe === undefined) return 'host probe failed';
  const cpuPart = `host probe ${probe.ms.toFixed(1)} ms CPU (SHA-256 ${(probe.sha256MicrosPerMiB / 1000).toFixed(2)} ms/MiB, loop ${probe.loopMs.toFixed(1)} ms; ${probe.wallMs.toFixed(1)} ms wall)`;
  if (probe.kernelSideSkipped === true) return cpuPart + '; kernel side not probed';
  const tcpPart = probe.tcpRoundTripCpuMicros === undefined ? '; TCP probe failed' : `; TCP round trip ${probe.tcpRoundTripCpuMicros.toFixed(0)} µs CPU (${(probe.tcpRoundTripWallMicros ?? 0).toFixed(0)} wall)`;
  const diskPart = probe.syncWriteWallMicros === undefined ? '; fdatasync probe failed' : `; 4 KiB write + fdatasync ${probe.syncWriteWallMicros.toFixed(0)} µs (${(probe.syncWriteCpuMicros ?? 0).toFixed(0)} CPU)`;
  return cpuPart + tcpPart + diskPart;
}
