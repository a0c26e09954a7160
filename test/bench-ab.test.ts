/**
 * bench/ab.ts, the side-by-side comparison of two builds or settings
 * (docs/PERFORMANCE.md, "How to compare two builds"): one pair of real
 * servers from this checkout, pinned and driven by real wrk, one run. The
 * ratios are not judged here (the test shares the machine with others),
 * only that both sides served, were read, and were reported as the tool
 * says.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';
import { compareSideBySide } from '../bench/ab.ts';
import { ROOT } from '../bench/suite/servers.ts';

const hasTools = spawnSync('wrk', ['--version']).error === undefined && spawnSync('taskset', ['--version']).status === 0;

test('one pair side by side: each run gives B ÷ A per unit of CPU and ops/s, and the summary is their pair medians', { skip: !hasTools && 'wrk or taskset is missing', timeout: 120_000 }, async () => {
  const lines: string[] = [];
  const result = await compareSideBySide(
    { a: { root: ROOT, mode: 'off', env: {} }, b: { root: ROOT, mode: 'on', env: {} }, pairs: 1, runs: 2, seconds: 1, objects: 20 },
    (line) => lines.push(line),
  );
  assert.equal(result.pairs.length, 1);
  const [pair] = result.pairs;
  assert.equal(pair!.cpuRatios.length, 2);
  assert.equal(pair!.opsRatios.length, 2);
  for (const ratio of [...pair!.cpuRatios, ...pair!.opsRatios]) assert.ok(Number.isFinite(ratio) && ratio > 0.2 && ratio < 5, `a ratio of two live servers: ${ratio}`);
  // Two runs: the median is their mean, the summary of one pair is that median with no error.
  assert.equal(pair!.cpuMedian, (pair!.cpuRatios[0]! + pair!.cpuRatios[1]!) / 2);
  assert.equal(result.cpu.mean, pair!.cpuMedian);
  assert.equal(result.ops.mean, pair!.opsMedian);
  assert.equal(result.cpu.standardError, 0);
  assert.equal(lines.length, 1);
  assert.match(lines[0]!, /^pair 0: B ÷ A per unit of CPU [\d.]+ [\d.]+ \(median [\d.]+ %\); ops\/s/);
});

test('a bad setting is refused before any server starts', async () => {
  const side = { root: ROOT, mode: 'off' as const, env: {} };
  await assert.rejects(compareSideBySide({ a: side, b: side, pairs: 0, runs: 1, seconds: 1, objects: 20 }), /pairs/);
  await assert.rejects(compareSideBySide({ a: side, b: side, pairs: 1, runs: 0, seconds: 1, objects: 20 }), /runs/);
});
