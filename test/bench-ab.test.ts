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
import { type AbResult, aStartsFirst, compareSideBySide, meanAndError, parseEnv, parseNodeArgs, runRatios, sideCpuLine, sideCpuOfRuns } from '../bench/ab.ts';
import { ROOT } from '../bench/suite/servers.ts';

const hasTools = spawnSync('wrk', ['--version']).error === undefined && spawnSync('taskset', ['--version']).status === 0;

test('one pair side by side: each run gives B ÷ A per unit of CPU and ops/s, and the summary is their pair medians', { skip: !hasTools && 'wrk or taskset is missing', timeout: 120_000 }, async () => {
  const lines: string[] = [];
  const result = await compareSideBySide(
    { a: { root: ROOT, mode: 'off', env: {} }, b: { root: ROOT, mode: 'on', env: {}, nodeArgs: ['--max-semi-space-size=8'] }, pairs: 1, runs: 2, seconds: 1, objects: 20, warmups: 1 },
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
  // Each side's CPU per GET, and the event loop's part of it: a live server spends most on its main thread, some elsewhere.
  for (const side of [result.a, result.b]) {
    assert.ok(side.cpuMicrosPerGet > 0 && side.mainThreadMicrosPerGet > 0, `CPU per GET read: ${JSON.stringify(side)}`);
    assert.ok(side.mainThreadMicrosPerGet < side.cpuMicrosPerGet, `the main thread's part is a part: ${JSON.stringify(side)}`);
  }
  assert.match(sideCpuLine(result), /^CPU per GET, all measured runs: A [\d.]+ µs\/GET \(event loop [\d.]+, other threads [\d.]+\); B /);
  assert.equal(lines.length, 1);
  assert.match(lines[0]!, /^pair 0: B ÷ A per unit of CPU [\d.]+ [\d.]+ \(median [\d.]+ %\); ops\/s/);
});

test('in turn, each side is measured alone: its runs never overlap the other side\'s, and at once they do; A\'s runs are A\'s', { skip: !hasTools && 'wrk or taskset is missing', timeout: 120_000 }, async () => {
  const side = { root: ROOT, mode: 'off' as const, env: {} };
  const settings = { a: side, b: side, pairs: 1, runs: 2, seconds: 1, objects: 5, warmups: 1, connections: 2 };
  const overlaps = (result: Pick<AbResult, 'runs'>): boolean[] =>
    result.runs.a.map((a, index) => {
      const b = result.runs.b[index]!;
      return a.startedMs < b.endedMs && b.startedMs < a.endedMs;
    });
  const sidesOf = (result: Pick<AbResult, 'runs'>): string[] => [...result.runs.a, ...result.runs.b].map((run) => run.side);
  const inTurn = await compareSideBySide({ ...settings, inTurn: true });
  assert.deepEqual(overlaps(inTurn), [false, false]);
  // Which side goes first alternates run by run (aStartsFirst), and each side's result is kept as its own.
  assert.ok(inTurn.runs.a[0]!.startedMs < inTurn.runs.b[0]!.startedMs && inTurn.runs.b[1]!.startedMs < inTurn.runs.a[1]!.startedMs, 'A first, then B first');
  assert.deepEqual(sidesOf(inTurn), ['A', 'A', 'B', 'B']);
  // The two sides of an in-turn run see the machine at two moments (other tests may load it in one of them): only read.
  for (const ratio of [...inTurn.pairs[0]!.cpuRatios, ...inTurn.pairs[0]!.opsRatios]) assert.ok(Number.isFinite(ratio) && ratio > 0, `a ratio of two live servers: ${ratio}`);
  const atOnce = await compareSideBySide(settings);
  assert.deepEqual(overlaps(atOnce), [true, true]);
  assert.deepEqual(sidesOf(atOnce), ['A', 'A', 'B', 'B']);
});

test('which side starts first alternates run by run and from pair to pair', () => {
  assert.deepEqual([0, 1, 2].map((run) => aStartsFirst(0, run)), [true, false, true]);
  assert.deepEqual([0, 1, 2].map((run) => aStartsFirst(1, run)), [false, true, false]);
});

test('a bad setting is refused before any server starts', async () => {
  const side = { root: ROOT, mode: 'off' as const, env: {} };
  const settings = { a: side, b: side, pairs: 1, runs: 1, seconds: 1, objects: 20 };
  await assert.rejects(compareSideBySide({ ...settings, pairs: 0 }), /pairs/);
  await assert.rejects(compareSideBySide({ ...settings, runs: 0 }), /runs/);
  for (const seconds of [0, 1.5, Number.NaN]) await assert.rejects(compareSideBySide({ ...settings, seconds }), /seconds/);
  for (const objects of [0, Number.NaN]) await assert.rejects(compareSideBySide({ ...settings, objects }), /objects/);
  for (const connections of [0, 1.5, 1001, Number.NaN]) await assert.rejects(compareSideBySide({ ...settings, connections }), /connections/);
  assert.deepEqual(parseEnv('TALUS_X=1 NODE_OPTIONS=--max-semi-space-size=4'), { TALUS_X: '1', NODE_OPTIONS: '--max-semi-space-size=4' });
  // A value with a space would be read as a second, nameless entry: refused, not set under a name like `--y`.
  assert.throws(() => parseEnv('NODE_OPTIONS=--x=1 --y=2'), /NAME=VALUE/);
  for (const warmups of [-1, 0.5, Number.NaN]) await assert.rejects(compareSideBySide({ ...settings, warmups }), /warm-up/);
  // Node options: --name or --name=value (no bare word, which node would run as the script)...
  assert.deepEqual(parseNodeArgs('--trace-gc --max-semi-space-size=16'), ['--trace-gc', '--max-semi-space-size=16']);
  assert.deepEqual(parseNodeArgs(undefined), []);
  for (const bad of ['trace-gc', '-e', '--trace-gc script.js', '--']) assert.throws(() => parseNodeArgs(bad), /node options/, bad);
  await assert.rejects(compareSideBySide({ ...settings, b: { ...side, nodeArgs: ['/tmp/evil.js'] } }), /node options/);
  // ... and none that runs something else in the server's place, or puts a supervisor where the server is measured.
  for (const bad of ['--eval=1', '--print', '--test', '--test-reporter=dot', '--watch', '--inspect-brk=0', '--version', '--check', '--interactive']) {
    assert.throws(() => parseNodeArgs(bad), /something else than the server/, bad);
  }
  await assert.rejects(compareSideBySide({ ...settings, a: { ...side, nodeArgs: ['--watch'] } }), /something else than the server/);
  assert.deepEqual(parseNodeArgs('--require=./x.cjs --running-total'), ['--require=./x.cjs', '--running-total']);
});

test('a side\'s node options reach its node: one node refuses is the run\'s failure, not ignored', { skip: !hasTools && 'wrk or taskset is missing', timeout: 60_000 }, async () => {
  const side = { root: ROOT, mode: 'off' as const, env: {} };
  await assert.rejects(
    compareSideBySide({ a: side, b: { ...side, nodeArgs: ['--no-such-node-option-for-ab'] }, pairs: 1, runs: 1, seconds: 1, objects: 5, warmups: 0 }),
    /bad option: --no-such-node-option-for-ab/,
  );
});

test('each side\'s CPU split: over the runs that could be split, and said when some could not', () => {
  // Two runs split by thread, one that fell back to ticks (no main thread's share): the split is over the two,
  // the total over all three.
  const runs = [
    { opsPerSecond: 1, cpuMicrosPerGet: 0, gets: 1000, cpuMicros: 200_000, mainThreadMicros: 180_000, side: 'A', startedMs: 0, endedMs: 1000 },
    { opsPerSecond: 1, cpuMicrosPerGet: 0, gets: 3000, cpuMicros: 600_000, mainThreadMicros: 570_000, side: 'A', startedMs: 1000, endedMs: 2000 },
    { opsPerSecond: 1, cpuMicrosPerGet: 0, gets: 1000, cpuMicros: 400_000, mainThreadMicros: 0, side: 'A', startedMs: 2000, endedMs: 3000 },
  ];
  assert.deepEqual(sideCpuOfRuns(runs), { cpuMicrosPerGet: 240, mainThreadMicrosPerGet: 187.5, otherMicrosPerGet: 12.5, runsNotSplit: 1 });
  const unsplit = sideCpuOfRuns([runs[2]!]);
  assert.equal(unsplit.cpuMicrosPerGet, 400);
  assert.ok(Number.isNaN(unsplit.mainThreadMicrosPerGet) && unsplit.runsNotSplit === 1);
  const split = { cpuMicrosPerGet: 200, mainThreadMicrosPerGet: 180, otherMicrosPerGet: 20, runsNotSplit: 0 };
  assert.equal(sideCpuLine({ a: split, b: split }), 'CPU per GET, all measured runs: A 200.0 µs/GET (event loop 180.0, other threads 20.0); B 200.0 µs/GET (event loop 180.0, other threads 20.0)');
  const partly = { ...split, runsNotSplit: 2 };
  const none = { cpuMicrosPerGet: 210, mainThreadMicrosPerGet: Number.NaN, otherMicrosPerGet: Number.NaN, runsNotSplit: 5 };
  assert.equal(sideCpuLine({ a: partly, b: none }), 'CPU per GET, all measured runs: A 200.0 µs/GET (event loop 180.0, other threads 20.0, split over the runs but 2); B 210.0 µs/GET (not split by thread)');
});

test('B ÷ A: per unit of CPU is A\'s CPU per GET ÷ B\'s, ops/s is B\'s ÷ A\'s; the summary is the mean ± standard error', () => {
  // B spends 250 µs per GET where A spends 200, and serves 900 GET/s where A serves 1000.
  const ratios = runRatios({ opsPerSecond: 1000, cpuMicrosPerGet: 200 }, { opsPerSecond: 900, cpuMicrosPerGet: 250 });
  assert.equal(ratios.cpu, 0.8);
  assert.equal(ratios.ops, 0.9);
  const summary = meanAndError([0.96, 0.98, 0.97, 0.99]);
  assert.equal(summary.mean.toFixed(4), '0.9750');
  // Sample standard deviation 0.01291 over √4.
  assert.equal(summary.standardError.toFixed(5), (Math.sqrt(((0.015 ** 2) * 2 + (0.005 ** 2) * 2) / 3) / 2).toFixed(5));
  assert.deepEqual(meanAndError([0.97]), { mean: 0.97, standardError: 0 });
});
