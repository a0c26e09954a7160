/**
 * Throughput of the erasure codec per core, for the geometries and stripe
 * sizes the placement engine uses: encode, and rebuild after losing data
 * shards. Run:
 *   node --import tsx bench/erasure.bench.ts
 *
 * Per core: calls run one at a time, so the native addon codes on one pool
 * thread while the event loop waits (and the portable codec runs on the event
 * loop itself). "MB/s" is stripe data bytes (k · shard) per wall second,
 * "MB/cpu-s" the same per second of process CPU time (all threads), which is
 * what a loaded server would get per core. Each figure is the median of
 * several runs, because the machine is shared and noisy.
 */
import { randomFillSync } from 'node:crypto';
import { allocateShards, createErasureCodec, nativeErasureStatus, shardBytesForStripe, type ErasureCodec, type ErasureImplementation } from '../src/erasure/index.ts';

const MiB = 1024 * 1024;
const STRIPE_SIZES_BYTES = [1 * MiB, 4 * MiB];
const GEOMETRIES: readonly { k: number; m: number; lost: readonly number[][] }[] = [
  { k: 4, m: 2, lost: [[0], [0, 1]] },
  { k: 8, m: 4, lost: [[0], [0, 1], [0, 1, 2, 3]] },
];
const RUNS = 5;
/** Each run codes at least this much stripe data, so timer and scheduling noise stay small. */
const RUN_DATA_BYTES_MIN = 256 * MiB;

interface Rate {
  readonly wallMBps: number;
  readonly cpuMBps: number;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

/** Median rates of `RUNS` runs of `call`, each coding `dataBytes` per call, one call at a time. */
async function measure(call: () => Promise<void>, dataBytes: number): Promise<Rate> {
  const callsPerRun = Math.ceil(RUN_DATA_BYTES_MIN / dataBytes);
  const wall: number[] = [];
  const cpu: number[] = [];
  for (let run = 0; run < RUNS + 1; run++) {
    const cpuStart = process.cpuUsage();
    const start = process.hrtime.bigint();
    for (let i = 0; i < callsPerRun; i++) await call();
    const seconds = Number(process.hrtime.bigint() - start) / 1e9;
    const cpuUsed = process.cpuUsage(cpuStart);
    const cpuSeconds = (cpuUsed.user + cpuUsed.system) / 1e6;
    if (run === 0) continue; // warms up the JIT and the rebuild plan caches
    const megabytes = (callsPerRun * dataBytes) / 1e6;
    wall.push(megabytes / seconds);
    cpu.push(megabytes / cpuSeconds);
  }
  return { wallMBps: median(wall), cpuMBps: median(cpu) };
}

interface Row {
  readonly geometry: string;
  readonly stripe: string;
  readonly shardBytes: number;
  readonly operation: string;
  readonly rates: Partial<Record<ErasureImplementation, Rate>>;
}

async function benchGeometry(k: number, m: number, lost: readonly number[][], stripeBytes: number, implementations: readonly ErasureImplementation[]): Promise<Row[]> {
  const shardBytes = shardBytesForStripe(stripeBytes, k);
  const stripe = allocateShards(k, m, shardBytes);
  for (const shard of stripe.data) randomFillSync(shard);
  const operations: { name: string; call: (codec: ErasureCodec) => Promise<void> }[] = [
    { name: 'encode', call: (codec) => codec.encode(stripe.data, stripe.parity) },
    ...lost.map((missing) => {
      const present = stripe.shards.map((_, i) => !missing.includes(i));
      return { name: `rebuild ${missing.length} data`, call: (codec: ErasureCodec) => codec.reconstruct(stripe.shards, present) };
    }),
  ];
  const rows: Row[] = [];
  for (const operation of operations) {
    const rates: Partial<Record<ErasureImplementation, Rate>> = {};
    for (const implementation of implementations) {
      const codec = createErasureCodec(k, m, { implementation });
      // Correct parity first, so rebuilds work on a consistent stripe.
      await codec.encode(stripe.data, stripe.parity);
      rates[implementation] = await measure(() => operation.call(codec), k * shardBytes);
    }
    rows.push({ geometry: `${k}+${m}`, stripe: `${stripeBytes / MiB} MiB`, shardBytes, operation: operation.name, rates });
  }
  return rows;
}

function printTable(rows: readonly Row[], implementations: readonly ErasureImplementation[]): void {
  const columns = ['geometry', 'stripe', 'shard B', 'operation', ...implementations.flatMap((name) => [`${name} MB/s`, `${name} MB/cpu-s`])];
  const widths = [8, 6, 9, 16, ...implementations.flatMap(() => [13, 17])];
  const line = (cells: string[]): string => cells.map((cell, i) => (i < 4 ? cell.padEnd(widths[i]!) : cell.padStart(widths[i]!))).join('  ');
  console.log(line(columns));
  console.log(line(widths.map((width) => '-'.repeat(width))));
  for (const row of rows) {
    const rates = implementations.flatMap((name) => {
      const rate = row.rates[name];
      return rate === undefined ? ['-', '-'] : [rate.wallMBps.toFixed(0), rate.cpuMBps.toFixed(0)];
    });
    console.log(line([row.geometry, row.stripe, String(row.shardBytes), row.operation, ...rates]));
  }
}

const status = nativeErasureStatus();
const implementations: ErasureImplementation[] = status.available ? ['native', 'portable'] : ['portable'];
if (!status.available) console.log(`native codec unavailable (${status.reason}); portable only`);
console.log(`Node ${process.version}, calls one at a time, median of ${RUNS} runs of ≥ ${RUN_DATA_BYTES_MIN / MiB} MiB of stripe data, MB = 10^6 bytes of data shards`);
const rows: Row[] = [];
for (const { k, m, lost } of GEOMETRIES) {
  for (const stripeBytes of STRIPE_SIZES_BYTES) rows.push(...(await benchGeometry(k, m, lost, stripeBytes, implementations)));
}
printTable(rows, implementations);
