/**
 * Start-up and close times of the in-process server (talus/server), memory
 * mode: `node --import tsx bench/server-startup.ts [rounds]`. The first round
 * pays for loading the modules and is reported apart.
 */
import { performance } from 'node:perf_hooks';

const rounds = Number(process.argv[2] ?? 10);
const t0 = performance.now();
const { startServer } = await import('../src/public/server.ts');
const importMs = performance.now() - t0;
const starts: number[] = [];
const closes: number[] = [];
for (let i = 0; i < rounds; i++) {
  const a = performance.now();
  const server = await startServer({ memory: true });
  const b = performance.now();
  await server.close();
  starts.push(b - a);
  closes.push(performance.now() - b);
}
const median = (values: number[]): number => [...values].sort((x, y) => x - y)[Math.floor(values.length / 2)]!;
const fmt = (ms: number): string => `${ms.toFixed(1)} ms`;
process.stdout.write(
  `import ${fmt(importMs)}; first start ${fmt(starts[0]!)}, first close ${fmt(closes[0]!)}; ` +
    `median of ${rounds}: start ${fmt(median(starts.slice(1)))}, close ${fmt(median(closes.slice(1)))}\n`,
);
