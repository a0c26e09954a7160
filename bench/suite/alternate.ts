/**
 * Alternated measurement of the rows whose target is a ratio of two sides of
 * one workload (issue 17: Talus ÷ bare node:http, ÷ s3rver, ÷ the bytes
 * ceiling; 2 workers ÷ 1).
 *
 * This VM's host changes speed by up to 2× within a run, with no steal time
 * reported: the bare server's CPU per 4 KiB GET was 20 µs in one row and
 * 33 µs in another minutes later. Measured one after the other (Talus, then
 * the baseline), a speed change between the two moves the ratio: DELETE ÷
 * bare read 38.5 / 55.1 / 42.3 % over three runs of the suite. So the sides
 * take turns instead, in short runs (every side once per round, `rounds`
 * rounds, the order within a round changing from round to round: see
 * alternationOrder), on the same servers, each warmed up (twice, in turn)
 * before the first measured run. Each run of the judged side is divided by the
 * baseline runs just before and after it (interpolated to its place: their
 * mean with two sides), so a drift in host speed falls on both alike; the target is the median of those pair ratios, and
 * each side's row is its median run (a burst of another process spoils one
 * run, not the median).
 *
 * The pure parts (order, pair ratios, medians) are exported for
 * test/bench-alternation.test.ts.
 */
import { spawnSync } from 'node:child_process';
import { assert } from '../../src/util/assert.ts';
import { measure, type Driver, type DriverResult, type PairRatios, type Row, type RunFigures, type RunPhase } from './measure.ts';
import type { RunningServer } from './servers.ts';

/** Alternated runs are this long at least: wrk counts whole seconds, and a shorter run is mostly its ramp. */
export const ALTERNATED_RUN_MS_MIN = 1000;
/**
 * Unmeasured passes over the sides before the first measured run, each run
 * warmUpMs per server process (every process has its own JIT to warm). With
 * one pass of 1 s, a Talus with 2 workers still cost 235, then 123, then
 * 106 µs per GET in its three measured runs (get-4k-cores, 2026-12-06 21:37,
 * loaded machine), and the suite's Talus 6.0, 5.3, 4.7 ms per listing page.
 */
export const WARM_UP_PASSES = 2;

/**
 * The order of the measured runs: every side once per round, `rounds` times.
 * Round r starts at side r mod n and runs forward in even rounds, backward in
 * odd ones: A B | B A | A B with two sides; T b s | b T s | s T b with three.
 * A fixed order would always put the same side just before another (Talus
 * right after s3rver, whose unsynced writes the kernel writes back during
 * Talus's fsync-heavy run; the bytes ceiling right after Talus), and plain
 * rotation keeps every side's cyclic predecessor (T b s | b s T | s T b:
 * Talus after s3rver in every round but the first); reversing every other
 * round gives each side different predecessors.
 */
export function alternationOrder<T>(sides: readonly T[], rounds: number): T[] {
  assert(sides.length > 0 && Number.isInteger(rounds) && rounds >= 1, 'alternationOrder: at least one side and one round');
  const count = sides.length;
  const order: T[] = [];
  for (let round = 0; round < rounds; round++) {
    const start = round % count;
    const step = round % 2 === 0 ? 1 : count - 1;
    for (let place = 0; place < count; place++) order.push(sides[(start + place * step) % count]!);
  }
  return order;
}

/**
 * Writes every dirty page of every file system to disk (sync(1)), untimed,
 * before each measured run of a workload that writes: a side that does not
 * fsync (s3rver) leaves its writes in the page cache, and the kernel would
 * write them back during whichever run comes next, on that run's time.
 */
export function flushDirtyPages(): void {
  const result = spawnSync('sync', { stdio: 'ignore' });
  if (result.error !== undefined) throw result.error;
  assert(result.status === 0, `sync exited with ${result.status ?? result.signal}`);
}

/**
 * For each run of side `judged`, in order: its value ÷ the value side
 * `baseline` would have had at its place in `sequence`, interpolated
 * linearly between the baseline's nearest runs before and after it (the
 * mean of the two when it sits halfway, as with two sides; the one there is
 * at either end). A host speed that drifts steadily cancels out whatever the
 * spacing. A run with no baseline run at all, or next to a baseline run
 * that is not positive and finite, gives no ratio.
 */
export function bracketedRatios<K>(sequence: readonly { side: K; value: number }[], judged: K, baseline: K): BracketedRatio[] {
  const ratios: BracketedRatio[] = [];
  sequence.forEach((run, index) => {
    if (run.side !== judged) return;
    let before: number | undefined;
    let after: number | undefined;
    for (let at = index - 1; at >= 0 && before === undefined; at--) if (sequence[at]!.side === baseline) before = at;
    for (let at = index + 1; at < sequence.length && after === undefined; at++) if (sequence[at]!.side === baseline) after = at;
    const neighbours = [before, after].filter((at): at is number => at !== undefined);
    // A baseline run that measured nothing (0 ops/s: it failed) is no reference, not even averaged with a good one.
    if (neighbours.length === 0 || !neighbours.every((at) => usable(sequence[at]!.value))) return;
    let expected: number;
    if (before !== undefined && after !== undefined) {
      const share = (index - before) / (after - before);
      expected = sequence[before]!.value + (sequence[after]!.value - sequence[before]!.value) * share;
    } else {
      expected = sequence[neighbours[0]!]!.value;
    }
    const ratio = run.value / expected;
    if (Number.isFinite(ratio)) ratios.push({ at: index, ratio });
  });
  return ratios;
}

/** A judged run's ratio, and its place in the sequence. */
export interface BracketedRatio {
  at: number;
  ratio: number;
}

const usable = (value: number): boolean => Number.isFinite(value) && value > 0;

/** The median (the mean of the middle two for an even count). */
export function median(values: readonly number[]): number {
  assert(values.length > 0, 'median of nothing');
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}

/**
 * One row for a side: its median run. Ops/s, MiB/s, CPU % and CPU µs/op are
 * each the median over the runs, latency percentiles the runs' medians;
 * operations, errors, time and stderr lines are summed (every run's errors
 * count), peak RSS is the largest.
 */
export function medianRow(runs: readonly Row[]): Row {
  assert(runs.length > 0, 'medianRow: no run to combine');
  const sum = (of: (row: Row) => number): number => runs.reduce((total, row) => total + of(row), 0);
  const middle = (of: (row: Row) => number): number => median(runs.map(of));
  return {
    ...runs[0]!,
    operations: sum((row) => row.operations),
    errors: sum((row) => row.errors),
    firstErrors: [...new Set(runs.flatMap((row) => row.firstErrors))].slice(0, 5),
    durationMs: sum((row) => row.durationMs),
    opsPerSecond: middle((row) => row.opsPerSecond),
    mibPerSecond: middle((row) => row.mibPerSecond),
    latencyMs: { p50: middle((row) => row.latencyMs.p50), p99: middle((row) => row.latencyMs.p99) },
    serverCpuPercentOfOneCore: middle((row) => row.serverCpuPercentOfOneCore),
    serverCpuMicrosPerOperation: middle((row) => row.serverCpuMicrosPerOperation),
    serverPeakRssMiB: Math.max(...runs.map((row) => row.serverPeakRssMiB)),
    serverStderrLines: sum((row) => row.serverStderrLines),
  };
}

export interface Alternation {
  workload: string;
  driver: Driver;
  /** The sides, in their order within a round (alive for the whole alternation). */
  sides: readonly RunningServer[];
  rounds: number;
  /** Each measured run. */
  runMs: number;
  /** Unmeasured runs of each side before the first measured one, this long per server process (0: none). */
  warmUpMs: number;
  /** Default WARM_UP_PASSES; DELETE takes 1 (its warm-up deletes a set of keys, once). */
  warmUpPasses?: number;
  drive(server: RunningServer, durationMs: number, phase: RunPhase): Promise<DriverResult>;
  /** Untimed, before each measured run of a side (DELETE makes the keys the run deletes). */
  beforeRun?(server: RunningServer): Promise<void>;
  /** Untimed, just before each measured run, after beforeRun: flushDirtyPages for the workloads that write. */
  flushBeforeRun?(): void;
  /** [judged, baseline] side indexes whose pair ratios the judged side's row carries; default every side against the first. */
  pairs?: readonly (readonly [number, number])[];
}

/** A measured run: which side (index into Alternation.sides), in which round (from 0), and its row. */
export interface AlternatedRun {
  side: number;
  round: number;
  row: Row;
}

/** Warms every side up (in round order, WARM_UP_PASSES times), then measures them in alternation. */
export async function runAlternation(plan: Alternation): Promise<AlternatedRun[]> {
  const indexes = plan.sides.map((_, index) => index);
  for (let pass = 0; pass < (plan.warmUpPasses ?? WARM_UP_PASSES) && plan.warmUpMs > 0; pass++) {
    for (const server of plan.sides) await plan.drive(server, plan.warmUpMs * Math.max(1, server.workers), 'warm-up');
  }
  const runs: AlternatedRun[] = [];
  for (const [place, side] of alternationOrder(indexes, plan.rounds).entries()) {
    const server = plan.sides[side]!;
    await plan.beforeRun?.(server);
    plan.flushBeforeRun?.();
    const row = await measure(plan.workload, server, plan.driver, () => plan.drive(server, plan.runMs, 'measured'));
    runs.push({ side, round: Math.floor(place / plan.sides.length), row });
  }
  return runs;
}

/** The default pairs: every other side is the first one's baseline (Talus ÷ bare, Talus ÷ s3rver…). */
function defaultPairs(sides: number): [number, number][] {
  const pairs: [number, number][] = [];
  for (let baseline = 1; baseline < sides; baseline++) pairs.push([0, baseline]);
  return pairs;
}

/** One row per side (its median run, with every run's figures), pair ratios on the judged sides' rows. */
export function summarizeAlternation(plan: Pick<Alternation, 'sides' | 'pairs'>, runs: readonly AlternatedRun[]): Row[] {
  const rows = plan.sides.map((_, side) => {
    const own = runs.filter((run) => run.side === side);
    assert(own.length > 0, 'summarizeAlternation: a side with no run');
    return { ...medianRow(own.map((run) => run.row)), runs: own.map((run) => figuresOf(run, runs.indexOf(run))) };
  });
  for (const [judged, baseline] of plan.pairs ?? defaultPairs(plan.sides.length)) {
    const ratiosOf = (of: (row: Row) => number): BracketedRatio[] =>
      bracketedRatios(
        runs.map((run) => ({ side: run.side, value: of(run.row) })),
        judged,
        baseline,
      );
    const ops = ratiosOf((row) => row.opsPerSecond);
    const mib = ratiosOf((row) => row.mibPerSecond);
    const ratios: PairRatios = {
      server: plan.sides[baseline]!.kind,
      label: plan.sides[baseline]!.label,
      opsPerSecond: ops.map(({ ratio }) => ratio),
      mibPerSecond: mib.map(({ ratio }) => ratio),
      opsPerSecondRounds: ops.map(({ at }) => runs[at]!.round),
      mibPerSecondRounds: mib.map(({ at }) => runs[at]!.round),
    };
    (rows[judged]!.pairRatios ??= []).push(ratios);
  }
  return rows;
}

function figuresOf(run: AlternatedRun, sequence: number): RunFigures {
  const { row } = run;
  return {
    sequence,
    operations: row.operations,
    errors: row.errors,
    durationMs: row.durationMs,
    opsPerSecond: row.opsPerSecond,
    mibPerSecond: row.mibPerSecond,
    latencyMs: row.latencyMs,
    serverCpuPercentOfOneCore: row.serverCpuPercentOfOneCore,
    serverCpuMicrosPerOperation: row.serverCpuMicrosPerOperation,
    serverPeakRssMiB: row.serverPeakRssMiB,
  };
}

/**
 * Notes that show the spread: how the sides alternated, every run's
 * throughput and CPU per operation, and every pair ratio with its median.
 */
export function alternationNotes(plan: Pick<Alternation, 'rounds' | 'runMs' | 'warmUpMs' | 'warmUpPasses' | 'flushBeforeRun'>, rows: readonly Row[], throughput: 'opsPerSecond' | 'mibPerSecond' = 'opsPerSecond'): string[] {
  const unit = throughput === 'opsPerSecond' ? 'ops/s' : 'MiB/s';
  const passes = plan.warmUpPasses ?? WARM_UP_PASSES;
  const warmUp = plan.warmUpMs > 0 ? `, after ${passes === 1 ? 'one unmeasured run' : `${passes} unmeasured runs`} of each (${seconds(plan.warmUpMs)} per server process)` : '';
  const labels = rows.map((row) => row.label);
  const order = plan.rounds === 1 ? labels.join(' → ') : alternationOrder(labels, Math.min(plan.rounds, 3)).join(' → ') + (plan.rounds > 3 ? ' …' : '');
  const flush = plan.flushBeforeRun === undefined ? '' : '; sync before each measured run (no side pays for another\'s writeback)';
  const notes = [
    `alternated: ${plan.rounds} round${plan.rounds === 1 ? '' : 's'}, ${order}, ${seconds(plan.runMs)} each on the same servers${warmUp}${flush}; ` +
      "each row is its side's median run (ops/s, MiB/s, CPU, p50 and p99 each the median over its runs; operations and time summed); " +
      'ratios (the table\'s too) are the median of each judged run ÷ the baseline runs around it (interpolated to its place), not the rows\' quotient',
  ];
  for (const row of rows) {
    if (row.runs === undefined) continue;
    notes.push(`${row.label} per run: ${unit} ${row.runs.map((run) => figure(run[throughput])).join(', ')}; CPU µs/op ${row.runs.map((run) => figure(run.serverCpuMicrosPerOperation)).join(', ')}`);
  }
  for (const row of rows) {
    for (const pair of row.pairRatios ?? []) {
      const values = pair[throughput];
      if (values.length === 0) continue;
      const format = pair.server === 's3rver' || pair.server === row.server ? times : percent;
      notes.push(`${row.label} ÷ ${pair.label} per run: ${values.map(format).join(', ')} (median ${format(median(values))})`);
    }
  }
  return notes;
}

const percent = (value: number): string => `${(value * 100).toFixed(1)} %`;
const times = (value: number): string => `${value.toFixed(2)}×`;
const seconds = (ms: number): string => `${(ms / 1000).toFixed(ms % 1000 === 0 ? 0 : 1)} s`;

function figure(value: number): string {
  if (value >= 100) return Math.round(value).toString().replace(/\B(?=(\d{3})+(?!\d))/g, ' ');
  return value.toFixed(value >= 10 ? 0 : 1);
}
