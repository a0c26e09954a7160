/**
 * The benchmark suite's alternated ratio rows (issue 17, bench/suite/alternate.ts):
 * the sides of a workload take turns, A, B | B, A | A, B …, and a ratio target is
 * judged by the median of each A run ÷ the B runs around it. A fake workload
 * on a host whose speed drifts from run to run (as this VM's does) shows the
 * method cancelling the drift where the ratio of two rows does not. No
 * server is started: the "servers" are this process (its CPU is what
 * measure() reads from /proc), and the driver makes its figures up.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { alternationNotes, alternationOrder, bracketedRatios, flushDirtyPages, median, runAlternation, summarizeAlternation } from '../bench/suite/alternate.ts';
import { NO_OPERATION_ERROR, type DriverResult, type Row, type RunPhase } from '../bench/suite/measure.ts';
import { addRatios, type WorkloadRecord } from '../bench/suite/report.ts';
import type { RunningServer, ServerKind } from '../bench/suite/servers.ts';
import { SuiteContext } from '../bench/suite/context.ts';
import { MODE_SETTINGS } from '../bench/suite/options.ts';
import { evaluateTargets } from '../bench/suite/targets.ts';
import { largePutDiskNeed, put64mOne } from '../bench/suite/workloads/large-objects.ts';

function fakeServer(kind: ServerKind, label: string, workers = 1): RunningServer {
  return {
    kind,
    label,
    endpoint: 'http://127.0.0.1:1',
    credentials: { accessKeyId: 'fake', secretAccessKey: 'fake' },
    pid: process.pid,
    workers,
    directory: '/nonexistent',
    output: () => '',
    stderrLines: () => ({ count: 0, first: [] }),
    prepared: new Map(),
    stop: async () => {},
  };
}

function result(opsPerSecond: number): DriverResult {
  return { operations: Math.round(opsPerSecond), errors: 0, firstErrors: [], durationMs: 1000, opsPerSecond, mibPerSecond: opsPerSecond / 256, latencyMs: { p50: 1, p99: 2 } };
}

test('alternationOrder takes every side once per round, each round starting at another side and every other round backward', () => {
  assert.deepEqual(alternationOrder(['A', 'B'], 3), ['A', 'B', 'B', 'A', 'A', 'B']);
  assert.deepEqual(alternationOrder(['T', 'bare', 's3rver'], 3), ['T', 'bare', 's3rver', 'bare', 'T', 's3rver', 's3rver', 'T', 'bare']);
  assert.deepEqual(alternationOrder(['T1', 'T2', 'B1', 'B2'], 2), ['T1', 'T2', 'B1', 'B2', 'T2', 'T1', 'B2', 'B1']);
  assert.deepEqual(alternationOrder(['A', 'B'], 1), ['A', 'B']);
  assert.deepEqual(alternationOrder(['A'], 2), ['A', 'A']);
  assert.throws(() => alternationOrder(['A'], 0));
  // Every round has every side once.
  const order = alternationOrder(['T', 'bare', 's3rver'], 5);
  for (let round = 0; round < 5; round++) assert.deepEqual([...order.slice(round * 3, round * 3 + 3)].sort(), ['T', 'bare', 's3rver'].sort());
  // What runs just before each measured Talus run (the reviewer's case: Talus always right after s3rver, whose
  // unsynced writes are written back during Talus's run; the bytes ceiling always right after Talus).
  const before = (sides: string[], side: string): (string | undefined)[] => {
    const sequence = alternationOrder(sides, 3);
    return sequence.flatMap((each, index) => (each === side ? [sequence[index - 1]] : []));
  };
  assert.deepEqual(before(['T', 'bare', 's3rver'], 'T'), [undefined, 'bare', 's3rver'], 'Talus follows a different side in each round');
  assert.deepEqual(before(['T', 'bytes', 's3rver'], 'bytes'), ['T', 's3rver', 'T'], 'the bytes ceiling does not always follow Talus');
  assert.deepEqual(before(['T', 'bare'], 'bare'), ['T', 'bare', 'T']);
});

test('runAlternation flushes dirty pages before each measured run (after beforeRun), not before warm-ups, when asked', async () => {
  const sides = [fakeServer('talus', 'Talus'), fakeServer('s3rver', 's3rver')];
  const events: string[] = [];
  const runs = await runAlternation({
    workload: 'fake-put',
    driver: 'loadgen',
    sides,
    rounds: 2,
    runMs: 1000,
    warmUpMs: 100,
    warmUpPasses: 1,
    drive: async (server, _durationMs, phase) => {
      events.push(`${phase} ${server.label}`);
      return result(100);
    },
    beforeRun: async (server) => void events.push(`before ${server.label}`),
    flushBeforeRun: () => void events.push('flush'),
  });
  assert.deepEqual(events, [
    'warm-up Talus',
    'warm-up s3rver',
    'before Talus',
    'flush',
    'measured Talus',
    'before s3rver',
    'flush',
    'measured s3rver',
    'before s3rver',
    'flush',
    'measured s3rver',
    'before Talus',
    'flush',
    'measured Talus',
  ]);
  assert.deepEqual(runs.map((run) => [run.side, run.round]), [[0, 0], [1, 0], [1, 1], [0, 1]], 'each run knows its round');
  flushDirtyPages(); // the real one: sync(1) exists and succeeds
});

const ratiosOnly = <K>(sequence: readonly { side: K; value: number }[], judged: K, baseline: K): number[] => bracketedRatios(sequence, judged, baseline).map(({ ratio }) => ratio);

test('bracketedRatios divides each A run by the B runs just before and after it, interpolated to its place', () => {
  const sequence = [
    { side: 'A', value: 40 },
    { side: 'B', value: 100 },
    { side: 'A', value: 30 },
    { side: 'B', value: 50 },
    { side: 'A', value: 20 },
  ];
  // 40 ÷ 100 (no B before it), 30 ÷ mean(100, 50), 20 ÷ 50 (no B after it).
  assert.deepEqual(bracketedRatios(sequence, 'A', 'B'), [{ at: 0, ratio: 0.4 }, { at: 2, ratio: 0.4 }, { at: 4, ratio: 0.4 }]);
  // Other sides in between are skipped over; the B runs at 1 and 4 are interpolated to 3: 20 + (29 - 20) × 2/3 = 26.
  const three = [
    { side: 'T', value: 10 },
    { side: 'B', value: 20 },
    { side: 'S', value: 1 },
    { side: 'T', value: 13 },
    { side: 'B', value: 29 },
    { side: 'S', value: 2 },
  ];
  assert.deepEqual(ratiosOnly(three, 'T', 'B'), [10 / 20, 13 / 26]);
  assert.deepEqual(ratiosOnly(three, 'T', 'S'), [10, 13 / (1 + (2 - 1) * (1 / 3))]);
  assert.deepEqual(bracketedRatios([{ side: 'A', value: 1 }], 'A', 'B'), [], 'no baseline run, no ratio');
  // Rounds in changing order (A B | B A | A B): two runs of a side in a row, each interpolated to its own place.
  const rotated = ['A', 'B', 'B', 'A', 'A', 'B'].map((side, index) => ({ side, value: (side === 'A' ? 40 : 100) * (1 - 0.1 * index) }));
  assert.deepEqual(bracketedRatios(rotated, 'A', 'B').map(({ ratio }) => ratio.toFixed(4)), [(40 / 90).toFixed(4), '0.4000', '0.4000']);
  assert.equal(median([3, 1, 2]), 2);
  assert.equal(median([4, 1, 3, 2]), 2.5);
});

test('a fake workload on a drifting host: alternated runs, and the median pair ratio cancels the drift', async () => {
  const talus = fakeServer('talus', 'Talus');
  const bare = fakeServer('bare-http', 'bare node:http', 2);
  // Talus does 40 % of the bare server's work on any host; the host slows down by 5 % of its first speed with every run.
  const capacity = new Map([
    [talus, 4000],
    [bare, 10_000],
  ]);
  let runsSoFar = 0;
  const calls: string[] = [];
  const prepared: string[] = [];
  const drive = async (server: RunningServer, durationMs: number, phase: RunPhase): Promise<DriverResult> => {
    calls.push(`${server.label} ${phase} ${durationMs}`);
    const hostSpeed = 1 - 0.05 * runsSoFar++;
    return result(capacity.get(server)! * hostSpeed);
  };
  const plan = { workload: 'fake-ratio', driver: 'loadgen' as const, sides: [talus, bare], rounds: 3, runMs: 1000, warmUpMs: 500, drive, beforeRun: async (server: RunningServer) => void prepared.push(server.label) };
  const runs = await runAlternation(plan);

  assert.deepEqual(calls, [
    // Two warm-up passes, in turn, of 500 ms per server process (the bare server has 2).
    'Talus warm-up 500',
    'bare node:http warm-up 1000',
    'Talus warm-up 500',
    'bare node:http warm-up 1000',
    'Talus measured 1000',
    'bare node:http measured 1000',
    'bare node:http measured 1000',
    'Talus measured 1000',
    'Talus measured 1000',
    'bare node:http measured 1000',
  ]);
  assert.deepEqual(prepared, ['Talus', 'bare node:http', 'bare node:http', 'Talus', 'Talus', 'bare node:http'], 'beforeRun before every measured run, not the warm-ups');
  assert.deepEqual(runs.map((run) => run.side), [0, 1, 1, 0, 0, 1]);

  const rows = summarizeAlternation(plan, runs);
  assert.deepEqual(rows.map((row) => row.label), ['Talus', 'bare node:http']);
  const [talusRow, bareRow] = rows as [Row, Row];
  // Host speeds of the measured runs: 0.8, 0.75, 0.7, 0.65, 0.6, 0.55 (after four warm-ups at 1.0 to 0.85).
  assert.deepEqual(talusRow.runs!.map((run) => Math.round(run.opsPerSecond)), [3200, 2600, 2400]);
  assert.deepEqual(bareRow.runs!.map((run) => Math.round(run.opsPerSecond)), [7500, 7000, 5500]);
  assert.deepEqual(talusRow.runs!.map((run) => run.sequence), [0, 3, 4]);
  // Each row is its side's median run.
  assert.equal(Math.round(talusRow.opsPerSecond), 2600);
  assert.equal(Math.round(bareRow.opsPerSecond), 7000);
  assert.equal(talusRow.operations, 3200 + 2600 + 2400);

  const pairs = talusRow.pairRatios!;
  assert.equal(pairs.length, 1);
  assert.equal(pairs[0]!.server, 'bare-http');
  // 3200 ÷ 7500, 2600 ÷ (7000 → 5500 at 1/3: 6500), 2400 ÷ (at 2/3: 6000): the two bracketed ones are exact on a linear drift.
  assert.deepEqual(pairs[0]!.opsPerSecond.map((ratio) => ratio.toFixed(4)), [(3200 / 7500).toFixed(4), '0.4000', '0.4000']);
  assert.equal(median(pairs[0]!.opsPerSecond).toFixed(4), '0.4000', 'the median pair ratio is the true ratio');
  assert.notEqual((talusRow.opsPerSecond / bareRow.opsPerSecond).toFixed(4), '0.4000', 'the rows\' ratio carries the drift (the run after is slower)');
  assert.equal(bareRow.pairRatios, undefined, 'only the judged side carries pair ratios');

  // The table's ratio and the target both take the median of the pair ratios.
  const record: WorkloadRecord = { id: 'delete-4k', title: 'fake', ceiling: 'bare-http', rows: rows.map((row) => ({ ...row, workload: 'delete-4k' })), notes: [] };
  addRatios(record);
  assert.equal(record.rows[0]!.ratioToCeiling!.toFixed(4), '0.4000');
  const target = evaluateTargets(record.rows).find((each) => each.id === 'delete-4k-vs-bare')!;
  assert.equal(target.value!.toFixed(4), '0.4000');
  assert.equal(target.met, false, '40 % < the 45 % wanted');
  assert.equal(target.pairRatios!.length, 3);

  // The notes show every run's figure and every pair ratio, so the spread is visible.
  const notes = alternationNotes(plan, rows).join('\n');
  for (const figure of ['3 200, 2 600, 2 400', '7 500, 7 000, 5 500', '42.7 %, 40.0 %, 40.0 % (median 40.0 %)', 'Talus → bare node:http → bare node:http → Talus → Talus → bare node:http']) assert.ok(notes.includes(figure), `notes show ${figure}:\n${notes}`);
});

test('two workers ÷ one is judged round by round against the bare server\'s own 2 ÷ 1', async () => {
  const sides = [fakeServer('talus', 'Talus'), fakeServer('talus', 'Talus, 2 workers'), fakeServer('bare-http', 'bare node:http'), fakeServer('bare-http', 'bare node:http, 2 processes')];
  const capacity = [1000, 1500, 3000, 5000];
  let runsSoFar = 0;
  const plan = {
    workload: 'get-4k-cores',
    driver: 'wrk' as const,
    sides,
    rounds: 3,
    runMs: 1000,
    warmUpMs: 0,
    pairs: [[1, 0], [3, 2]] as const,
    drive: async (server: RunningServer): Promise<DriverResult> => result(capacity[sides.indexOf(server)]! * (1 + 0.05 * runsSoFar++)),
  };
  const rows = summarizeAlternation(plan, await runAlternation(plan));
  assert.equal(rows[1]!.pairRatios![0]!.label, 'Talus');
  assert.equal(rows[3]!.pairRatios![0]!.label, 'bare node:http');
  const [scaling, floor] = ['get-4k-two-cores', 'get-4k-two-cores-floor'].map((id) => evaluateTargets(rows).find((target) => target.id === id)!);
  // Talus 1.5× ÷ bare 1.667× = 0.9: the steady drift (+5 % a run) cancels in every round but the last
  // (1 2 B1 B2 | 2 1 B2 B1 | B1 B2 1 2), whose runs of "2" have no run of "1" after them; the median is exact.
  assert.deepEqual(scaling!.pairRatios!.slice(0, 2).map((value) => value.toFixed(4)), ['0.9000', '0.9000']);
  assert.equal(scaling!.value!.toFixed(4), '0.9000');
  assert.equal(floor!.value!.toFixed(4), '1.5000');
});

test('a baseline run that measured nothing gives no pair ratio, and a run with no operation is an error: the target is not met', async () => {
  // The reviewer's case, in the old fixed order: Talus 500, 500, 500 vs bare 1000, 0, 1000 gave pairs 0.5, 1, 1 (median 1.0).
  const fixed = [500, 1000, 500, 0, 500, 1000].map((value, index) => ({ side: index % 2 === 0 ? 'T' : 'B', value }));
  assert.deepEqual(bracketedRatios(fixed, 'T', 'B'), [{ at: 0, ratio: 0.5 }], 'no ratio next to the run of 0, not even averaged with a good one');
  assert.deepEqual(bracketedRatios([{ side: 'T', value: 1 }, { side: 'B', value: Number.NaN }], 'T', 'B'), []);
  assert.deepEqual(bracketedRatios([{ side: 'T', value: 1 }, { side: 'B', value: Number.POSITIVE_INFINITY }], 'T', 'B'), []);

  const talus = fakeServer('talus', 'Talus');
  const bare = fakeServer('bare-http', 'bare node:http');
  const bareRuns = [1000, 0, 1000];
  const plan = {
    workload: 'delete-4k',
    driver: 'loadgen' as const,
    sides: [talus, bare],
    rounds: 3,
    runMs: 1000,
    warmUpMs: 0,
    drive: async (server: RunningServer): Promise<DriverResult> => result(server === talus ? 500 : bareRuns.shift()!),
  };
  const runs = await runAlternation(plan);
  const failed = runs.find((run) => run.row.operations === 0)!;
  assert.equal(failed.row.errors, 1, 'measure() counts a run with no operation as an error');
  assert.ok(failed.row.firstErrors.includes(NO_OPERATION_ERROR));
  const rows = summarizeAlternation(plan, runs);
  assert.deepEqual(rows[0]!.pairRatios![0]!.opsPerSecond, [0.5], 'only the Talus run whose baseline neighbours both did work');
  assert.equal(rows[1]!.errors, 1);
  const target = evaluateTargets(rows).find((each) => each.id === 'delete-4k-vs-bare')!;
  assert.equal(target.met, false, '50 % ≥ 45 %, but a baseline run measured nothing');
});

test('the cores target joins Talus\'s and the bare server\'s 2 ÷ 1 on the round, and keeps only quotients that are figures', () => {
  const row = (label: string, server: ServerKind, pairs?: { label: string; values: number[]; rounds: number[] }): Row => ({
    ...result(1000),
    workload: 'get-4k-cores',
    server,
    label,
    driver: 'wrk',
    serverProcesses: 1,
    serverCpuPercentOfOneCore: 100,
    serverCpuMicrosPerOperation: 100,
    serverPeakRssMiB: 100,
    serverStderrLines: 0,
    ...(pairs === undefined
      ? {}
      : { pairRatios: [{ server, label: pairs.label, opsPerSecond: pairs.values, mibPerSecond: pairs.values, opsPerSecondRounds: pairs.rounds, mibPerSecondRounds: pairs.rounds }] }),
  });
  const judge = (talus: { values: number[]; rounds: number[] }, bare: { values: number[]; rounds: number[] }): ReturnType<typeof evaluateTargets>[number] =>
    evaluateTargets([
      row('Talus', 'talus'),
      row('Talus, 2 workers', 'talus', { label: 'Talus', ...talus }),
      row('bare node:http', 'bare-http'),
      row('bare node:http, 2 processes', 'bare-http', { label: 'bare node:http', ...bare }),
    ]).find((target) => target.id === 'get-4k-two-cores')!;
  // Different rounds dropped on each side (a failed baseline run gives no ratio): by position, 2 ÷ 1 and 1 ÷ 1
  // (median 1.5); by round, only round 2 is on both sides: 1 ÷ 1.
  const misaligned = judge({ values: [2, 1], rounds: [0, 2] }, { values: [1, 1], rounds: [1, 2] });
  assert.deepEqual(misaligned.pairRatios, [1]);
  assert.equal(misaligned.value, 1);
  // A bare pair ratio of 0 would make an infinite quotient (the median then leans high: 1.0, met); it is left out.
  const zero = judge({ values: [1, 1, 0.7], rounds: [0, 1, 2] }, { values: [0, 1, 1], rounds: [0, 1, 2] });
  assert.deepEqual(zero.pairRatios, [1, 0.7]);
  assert.equal(zero.value!.toFixed(2), '0.85');
  assert.equal(zero.met, false, '0.85× < 0.9×');
});

test('a 64 MiB PUT row checks the free disk space first, and is skipped with the reason when it is short', async () => {
  const quick = largePutDiskNeed(MODE_SETTINGS.quick, 1);
  // Quick mode: 2 warm-ups of 1 s + 3 runs of 2 s, 8 s per side at 512 MiB/s: 4 GiB each for Talus, s3rver and the
  // bytes ceiling (which keeps up to 8 GiB, so deletes nothing), 2 GiB spare.
  assert.equal(quick.perStoreBytes, 4 * 1024 ** 3);
  assert.equal(quick.totalBytes, 14 * 1024 ** 3);
  assert.equal(quick.ceilingRecycles, false, 'quick mode: no run writes into pages another freed');
  const full = largePutDiskNeed(MODE_SETTINGS.full, 1);
  assert.equal(full.ceilingRecycles, true, 'full mode: the bytes ceiling writes more than it keeps');
  assert.equal(full.ceilingBytes, 8 * 1024 ** 3);
  assert.ok(largePutDiskNeed(MODE_SETTINGS.quick, 2).perStoreBytes > quick.perStoreBytes, 'each server process warms up on its own');

  class NoServers extends SuiteContext {
    override talus(): Promise<RunningServer> {
      throw new Error('the row started a server');
    }
    override s3rver(): Promise<RunningServer> {
      throw new Error('the row started a server');
    }
  }
  // A mode whose runs would write far more than any disk holds.
  const settings = { ...MODE_SETTINGS.quick, largeRunMs: 1e9 };
  const options = { mode: 'quick' as const, only: [], workers: 1, jsonPath: undefined, commandLine: 'test' };
  const outcome = await put64mOne.run(new NoServers(settings, options, '/nonexistent'));
  assert.deepEqual(outcome.rows, []);
  assert.match(outcome.skipped ?? '', /^needs [\d.]+ GiB free in .+, has [\d.]+ GiB: what its runs write stays until the last one/);
});
