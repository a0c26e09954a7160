/**
 * Throughput of each checksum as a PUT would feed it: a 64 MiB buffer in
 * 64 KiB chunks through the streaming hasher. Run:
 *   node --import tsx bench/checksum.bench.ts
 * Prints the median of several runs per algorithm, because the machine is shared
 * and noisy.
 */
import { createHash, randomBytes } from 'node:crypto';
import {
  CHECKSUM_ALGORITHMS,
  combineCrc,
  createChecksumHasher,
  type ChecksumHasher,
} from '../src/util/checksum.ts';

const TOTAL = 64 * 1024 * 1024;
const CHUNK = 64 * 1024;
const RUNS = 5;

const data = randomBytes(TOTAL);
const chunks: Buffer[] = [];
for (let offset = 0; offset < TOTAL; offset += CHUNK) chunks.push(data.subarray(offset, offset + CHUNK));

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

/** MB/s (10^6 bytes) for hashing all chunks through the hashers `make` returns. */
function measure(make: () => ChecksumHasher[]): number {
  const rates: number[] = [];
  for (let run = 0; run < RUNS + 1; run++) {
    const hashers = make();
    const start = process.hrtime.bigint();
    // Several hashers take chunks in turn, as concurrent uploads would.
    chunks.forEach((chunk, i) => hashers[i % hashers.length]!.update(chunk));
    for (const hasher of hashers) hasher.digest();
    const seconds = Number(process.hrtime.bigint() - start) / 1e9;
    if (run > 0) rates.push(TOTAL / 1e6 / seconds); // run 0 warms up the JIT
  }
  return median(rates);
}

function report(label: string, mbPerSecond: number): void {
  console.log(`${label.padEnd(34)} ${mbPerSecond.toFixed(0).padStart(7)} MB/s`);
}

console.log(`64 MiB in 64 KiB chunks, median of ${RUNS} runs, Node ${process.version}`);
for (const algorithm of CHECKSUM_ALGORITHMS) {
  report(algorithm, measure(() => [createChecksumHasher(algorithm)]));
}
report('CRC64NVME, 4 interleaved streams', measure(() => [0, 1, 2, 3].map(() => createChecksumHasher('CRC64NVME'))));
report('MD5 (node:crypto, for ETag)', measure(() => {
  const hash = createHash('md5');
  return [{ update: (chunk) => void hash.update(chunk), digest: () => hash.digest() }];
}));

// FULL_OBJECT combine for the largest multipart upload S3 allows.
for (const algorithm of ['CRC32', 'CRC32C', 'CRC64NVME'] as const) {
  const parts = Array.from({ length: 10_000 }, () => ({
    digest: randomBytes(algorithm === 'CRC64NVME' ? 8 : 4),
    sizeBytes: 5 * 1024 ** 3,
  }));
  const start = performance.now();
  combineCrc(algorithm, parts);
  console.log(`combineCrc ${algorithm.padEnd(9)} 10 000 x 5 GiB parts: ${(performance.now() - start).toFixed(1)} ms`);
}
