/**
 * The targets of issues 3, 13, 14 and 17, each checked against the rows of
 * this one run (ratios are only meaningful within a run). Where issue 17
 * raised one of issue 3's bars (4 KiB GET/HEAD/PUT, 64 MiB PUT, HEAD p50 at
 * one connection, peak RSS), the suite judges the raised one. A target whose rows are missing (--only,
 * a skipped workload) is "not measured"; one whose rows had errors is not
 * met, whatever the numbers.
 *
 * A ratio of two sides of one alternated workload (alternate.ts) is judged
 * by the median of its pair ratios (each run of Talus against the baseline
 * runs around it), not by the ratio of the two rows: the host's speed drifts
 * between runs, and a pair of neighbouring runs sees the same host.
 */
import { median } from './alternate.ts';
import type { PairRatios, Row } from './measure.ts';
import type { ServerKind } from './servers.ts';
import { OBSERVERS_OFF_LABEL, OBSERVERS_ON_LABEL } from './workloads/observability.ts';

export interface TargetResult {
  id: string;
  description: string;
  /** '≥ 50 %', '≤ 0.5 ms'… */
  threshold: string;
  /** The measured value as a number (ratio, ms or MiB), when measured. */
  value: number | null;
  measured: string;
  /** null: not measured in this run. */
  met: boolean | null;
  note?: string;
  /** Alternated rows: the pair ratios whose median is `value`, in the order run. */
  pairRatios?: number[];
}

type Compare = 'at-least' | 'at-most' | 'below';

interface TargetDefinition {
  id: string;
  description: string;
  compare: Compare;
  limit: number;
  format: (value: number) => string;
  /** The value and the rows it came from (their errors make the target not met), or why it cannot be computed. */
  evaluate(rows: readonly Row[]): Evaluation | string;
}

interface Evaluation {
  value: number;
  rows: Row[];
  note?: string;
  pairRatios?: number[];
}

/** The pair ratios `row` carries against the side `against` (a server kind, or a label), if it was alternated. */
function pairRatiosOf(row: Row, against: (pair: PairRatios) => boolean, throughput: 'opsPerSecond' | 'mibPerSecond'): number[] | undefined {
  return roundRatiosOf(row, against, throughput)?.map(({ value }) => value);
}

/** The same, each with the round it was measured in. */
function roundRatiosOf(row: Row, against: (pair: PairRatios) => boolean, throughput: 'opsPerSecond' | 'mibPerSecond'): { round: number; value: number }[] | undefined {
  const pair = row.pairRatios?.find(against);
  if (pair === undefined || pair[throughput].length === 0) return undefined;
  const rounds = throughput === 'opsPerSecond' ? pair.opsPerSecondRounds : pair.mibPerSecondRounds;
  return pair[throughput].map((value, index) => ({ round: rounds[index]!, value }));
}

const percent = (value: number): string => `${(value * 100).toFixed(1)} %`;
const times = (value: number): string => `${value.toFixed(2)}×`;
const ms = (value: number): string => `${value.toFixed(3)} ms`;
const mib = (value: number): string => `${value.toFixed(0)} MiB`;

/** Issue 17: "each extra worker under 150 MiB more" than one process's 200 MiB. */
const RSS_PER_EXTRA_WORKER_MIB = 150;

function find(rows: readonly Row[], workload: string, server: ServerKind, label?: string): Row | undefined {
  // The first Talus row of a workload is the suite's Talus (get-4k-cores also has 'Talus, 2 workers').
  return rows.find((row) => row.workload === workload && row.server === server && (label === undefined || row.label === label));
}

/** Talus's throughput ÷ a baseline's, in the same workload. */
function ratio(workload: string, baseline: ServerKind, format: (value: number) => string, throughput: 'opsPerSecond' | 'mibPerSecond' = 'opsPerSecond'): TargetDefinition['evaluate'] {
  return (rows) => {
    const talus = find(rows, workload, 'talus');
    const other = find(rows, workload, baseline);
    if (talus === undefined || other === undefined) return `${workload} not run`;
    if (other[throughput] <= 0) return `${baseline} measured nothing`;
    const rowRatio = talus[throughput] / other[throughput];
    const pairs = pairRatiosOf(talus, (pair) => pair.server === baseline, throughput);
    if (pairs === undefined) return { value: rowRatio, rows: [talus, other] };
    return { value: median(pairs), rows: [talus, other], pairRatios: pairs, note: pairNote(pairs, rowRatio, format) };
  };
}

/** 'pairs 38.5, 41.0, 42.3 % (median rows' ratio 40.1 %)'. */
function pairNote(pairs: readonly number[], rowRatio: number, format: (value: number) => string): string {
  return `pairs ${pairs.map(format).join(', ')} (median rows' ratio ${format(rowRatio)})`;
}

function ratioTarget(id: string, description: string, workload: string, baseline: ServerKind, limit: number, format: (value: number) => string, throughput?: 'mibPerSecond'): TargetDefinition {
  return { id, description, compare: 'at-least', limit, format, evaluate: ratio(workload, baseline, format, throughput) };
}

/**
 * A server's throughput with several processes ÷ with one, in a cores
 * workload (workers.ts): Talus's alone, or Talus's ÷ the bare server's own
 * (wrk shares the cores, so the bare server's scaling is the most there is).
 */
function coresTarget(id: string, description: string, workload: string, judged: 'alone' | 'against-bare', limit: number): TargetDefinition {
  return {
    id,
    description,
    compare: 'at-least',
    limit,
    format: times,
    evaluate: (rows) => {
      const scaling = (server: ServerKind): { value: number; rows: Row[]; pairs?: { round: number; value: number }[] } | undefined => {
        const of = rows.filter((row) => row.workload === workload && row.server === server);
        // Labels: 'Talus' / 'Talus, 2 workers', 'bare node:http' / 'bare node:http, 2 processes' (servers.ts).
        const several = (row: Row): boolean => /\d (workers|processes)$/.test(row.label);
        const one = of.find((row) => !several(row));
        const more = of.find(several);
        if (one === undefined || more === undefined || one.opsPerSecond <= 0) return undefined;
        const pairs = roundRatiosOf(more, (pair) => pair.label === one.label, 'opsPerSecond');
        if (pairs === undefined) return { value: more.opsPerSecond / one.opsPerSecond, rows: [more, one] };
        return { value: median(pairs.map(({ value }) => value)), rows: [more, one], pairs };
      };
      const talus = scaling('talus');
      if (talus === undefined) return `${workload} not run`;
      if (judged === 'alone') {
        if (talus.pairs === undefined) return { value: talus.value, rows: talus.rows };
        const values = talus.pairs.map(({ value }) => value);
        return { value: talus.value, rows: talus.rows, pairRatios: values, note: `pairs ${values.map(times).join(', ')}` };
      }
      const bare = scaling('bare-http');
      if (bare === undefined || bare.value <= 0) return `${workload} has no bare node:http rows`;
      const both = [...talus.rows, ...bare.rows];
      // Round by round: each round's four runs are close in time, so both scalings see the same host. Joined on
      // the round (a round whose pair ratio is missing on one side is left out), only quotients that are figures.
      const bareByRound = new Map((bare.pairs ?? []).map(({ round, value }) => [round, value]));
      const quotients = (talus.pairs ?? []).flatMap(({ round, value }) => {
        const quotient = value / (bareByRound.get(round) ?? Number.NaN);
        return Number.isFinite(quotient) && quotient > 0 ? [{ round, value: quotient }] : [];
      });
      if (quotients.length > 0) {
        const values = quotients.map(({ value }) => value);
        const list = (pairs: readonly { round: number; value: number }[]): string => pairs.map(({ round, value }) => `${times(value)} (${round + 1})`).join(', ');
        return {
          value: median(values),
          rows: both,
          pairRatios: values,
          note: `per round ${list(quotients)}; Talus ${list(talus.pairs!)}, bare node:http ${list(bare.pairs!)}`,
        };
      }
      return { value: talus.value / bare.value, rows: both, note: `Talus ${times(talus.value)}, bare node:http ${times(bare.value)}` };
    },
  };
}

/** p50 of one Talus listing ÷ p50 of another. */
function latencyRatio(slower: string, reference: string): TargetDefinition['evaluate'] {
  return (rows) => {
    const a = find(rows, slower, 'talus');
    const b = find(rows, reference, 'talus');
    if (a === undefined || b === undefined) return `${slower} or ${reference} not run`;
    return { value: a.latencyMs.p50 / b.latencyMs.p50, rows: [a, b] };
  };
}

/** One Talus workload's throughput ÷ another's (two clients of the same server, in the same run). */
function workloadRatio(workload: string, baseline: string): TargetDefinition['evaluate'] {
  return (rows) => {
    const a = find(rows, workload, 'talus');
    const b = find(rows, baseline, 'talus');
    if (a === undefined || b === undefined) return `${workload} or ${baseline} not run`;
    if (b.opsPerSecond <= 0) return `${baseline} measured nothing`;
    return { value: a.opsPerSecond / b.opsPerSecond, rows: [a, b] };
  };
}

/**
 * Throughput per unit of CPU, `label` ÷ `baselineLabel`: the baseline's
 * server CPU per operation ÷ the label's (schedstat, to the nanosecond). A
 * CPU-bound server serves its CPU ÷ its CPU per request, so this is the
 * throughput the same CPU gives (workloads/observability.ts says why it is
 * judged rather than the ops/s of two servers sharing a CPU).
 */
function perCpuRatio(workload: string, label: string, baselineLabel: string): TargetDefinition['evaluate'] {
  return (rows) => {
    const a = find(rows, workload, 'talus', label);
    const b = find(rows, workload, 'talus', baselineLabel);
    if (a === undefined || b === undefined) return `${workload} not run`;
    const cpuA = a.serverOnCpuMicrosPerOperation ?? 0;
    const cpuB = b.serverOnCpuMicrosPerOperation ?? 0;
    if (cpuA <= 0 || cpuB <= 0) return `${workload}: no server CPU per operation read (schedstat)`;
    const opsRatio = b.opsPerSecond > 0 ? `${((a.opsPerSecond / b.opsPerSecond) * 100).toFixed(1)} %` : 'n/a';
    return { value: cpuB / cpuA, rows: [a, b], note: `server CPU ${cpuA.toFixed(1)} vs ${cpuB.toFixed(1)} µs/op; ops/s ${opsRatio}` };
  };
}

export const TARGETS: readonly TargetDefinition[] = [
  ratioTarget('get-4k-vs-bare', '4 KiB GET, Talus ÷ bare node:http ceiling', 'get-4k', 'bare-http', 0.6, percent),
  ratioTarget('head-4k-vs-bare', '4 KiB HEAD, Talus ÷ bare node:http ceiling', 'head-4k', 'bare-http', 0.6, percent),
  ratioTarget('get-4k-vs-s3rver', '4 KiB GET, Talus ÷ s3rver', 'get-4k', 's3rver', 10, times),
  ratioTarget('head-4k-vs-s3rver', '4 KiB HEAD, Talus ÷ s3rver', 'head-4k', 's3rver', 10, times),
  ratioTarget('put-4k-vs-bare', '4 KiB PUT (durable), Talus ÷ bare node:http ceiling', 'put-4k', 'bare-http', 0.3, percent),
  ratioTarget('delete-4k-vs-bare', 'DELETE, Talus ÷ bare node:http ceiling', 'delete-4k', 'bare-http', 0.45, percent),
  ratioTarget('list-start-vs-bare', 'LIST of 1000, Talus ÷ bare node:http ceiling', 'list-start', 'bare-http', 0.3, percent),
  ratioTarget('list-prefixes-few-vs-s3rver', 'LIST of prefixes with few keys each, Talus ÷ s3rver', 'list-prefixes-few', 's3rver', 3, times),
  ratioTarget('put-64m-c1-vs-bytes', '64 MiB PUT, 1 in flight, Talus ÷ bytes ceiling with fsync', 'put-64m-c1', 'bytes-fsync', 0.75, percent, 'mibPerSecond'),
  ratioTarget('put-64m-c8-vs-bytes', '64 MiB PUT, 8 in flight, Talus ÷ bytes ceiling with fsync', 'put-64m-c8', 'bytes-fsync', 0.75, percent, 'mibPerSecond'),
  ratioTarget('get-64m-c1-vs-bytes', '64 MiB GET, 1 in flight, Talus ÷ bytes ceiling', 'get-64m-c1', 'bytes-fsync', 1, percent, 'mibPerSecond'),
  ratioTarget('get-64m-c8-vs-bytes', '64 MiB GET, 8 in flight, Talus ÷ bytes ceiling', 'get-64m-c8', 'bytes-fsync', 1, percent, 'mibPerSecond'),
  coresTarget('get-4k-two-cores', '4 KiB GET, Talus 2 workers ÷ 1, over the bare server\'s own 2 processes ÷ 1', 'get-4k-cores', 'against-bare', 0.9),
  coresTarget('get-4k-two-cores-floor', '4 KiB GET, Talus 2 workers ÷ 1 (never slower)', 'get-4k-cores', 'alone', 1),
  coresTarget('put-4k-two-cores-floor', '4 KiB PUT, Talus 2 workers ÷ 1 (never slower)', 'put-4k-cores', 'alone', 1),
  {
    id: 'get-4k-observers-on-vs-off',
    description: '4 KiB GET per unit of server CPU, metrics (scraped 1/s) + access log + audit log on ÷ off (issue 13)',
    compare: 'at-least',
    limit: 0.97,
    format: percent,
    evaluate: perCpuRatio('observability-4k-get', OBSERVERS_ON_LABEL, OBSERVERS_OFF_LABEL),
  },
  {
    id: 'head-p50-c1',
    description: 'HEAD p50 at 1 connection',
    compare: 'at-most',
    limit: 0.15,
    format: ms,
    evaluate: (rows) => {
      const talus = find(rows, 'head-4k-c1', 'talus');
      return talus === undefined ? 'head-4k-c1 not run' : { value: talus.latencyMs.p50, rows: [talus] };
    },
  },
  { id: 'list-deep-vs-start', description: 'LIST page p50, deep inside ÷ from the start', compare: 'at-most', limit: 2, format: times, evaluate: latencyRatio('list-deep', 'list-start') },
  {
    id: 'list-prefixes-many-vs-few',
    description: 'delimiter LIST p50, many ÷ few keys per common prefix (the suite reads "does not slow down" as ≤ 1.5×)',
    compare: 'at-most',
    limit: 1.5,
    format: times,
    evaluate: latencyRatio('list-prefixes-many', 'list-prefixes-few'),
  },
  {
    id: 'list-stall-probe-p99',
    description: 'probe GET p99 under 32 concurrent 1000-key listers (issue 17)',
    compare: 'at-most',
    limit: 50,
    format: ms,
    evaluate: (rows) => {
      const talus = find(rows, 'list-stall', 'talus');
      return talus === undefined ? 'list-stall not run' : { value: talus.latencyMs.p99, rows: [talus] };
    },
  },
  {
    id: 'scan-head-vs-boto3',
    description: 'talus scan --metadata head ÷ serial boto3 list-then-HEAD (issue 14), objects/s',
    compare: 'at-least',
    limit: 15,
    format: times,
    evaluate: workloadRatio('scan-talus-head', 'scan-boto3-serial'),
  },
  {
    id: 'scan-list-vs-boto3',
    description: "talus scan --metadata list over the issue's 100 000 objects ÷ serial boto3 list-then-HEAD over the bulk objects (quick: 10 000) (issue 14), objects/s",
    compare: 'at-least',
    limit: 100,
    format: times,
    // The 100 000-object walk is the issue's data set; the 10 000-object walk's ratio is shown beside it.
    evaluate: (rows) => {
      const judged = workloadRatio('scan-talus-list-100k', 'scan-boto3-serial')(rows);
      const short = workloadRatio('scan-talus-list', 'scan-boto3-serial')(rows);
      if (typeof judged === 'string' || typeof short === 'string') return judged;
      return { ...judged, note: `10 000-object walk ${times(short.value)}` };
    },
  },
  {
    id: 'server-rss',
    description: 'Talus peak RSS of one process, the largest over every workload',
    compare: 'below',
    limit: 200,
    format: mib,
    evaluate: (rows) => {
      const talus = rows.filter((row) => row.server === 'talus' && row.serverProcesses === 1);
      if (talus.length === 0) return 'no Talus run';
      const peak = talus.reduce((best, row) => (row.serverPeakRssMiB > best.serverPeakRssMiB ? row : best));
      return { value: peak.serverPeakRssMiB, rows: [], note: `in ${peak.workload} (${peak.label})` };
    },
  },
  {
    id: 'server-rss-workers',
    description: `Talus peak RSS with --workers N, all processes (the primary's too) less ${RSS_PER_EXTRA_WORKER_MIB} MiB per worker after the first`,
    compare: 'below',
    limit: 200,
    format: mib,
    evaluate: (rows) => {
      const several = rows.flatMap((row) => {
        const workers = row.server === 'talus' ? /(\d+) workers$/.exec(row.label) : null;
        return workers === null ? [] : [{ row, allowance: (Number(workers[1]) - 1) * RSS_PER_EXTRA_WORKER_MIB }];
      });
      if (several.length === 0) return 'no Talus run with several workers';
      const worst = several.reduce((best, entry) => (entry.row.serverPeakRssMiB - entry.allowance > best.row.serverPeakRssMiB - best.allowance ? entry : best));
      return {
        value: worst.row.serverPeakRssMiB - worst.allowance,
        rows: [],
        note: `${mib(worst.row.serverPeakRssMiB)} in ${worst.row.workload} (${worst.row.label}, ${worst.row.serverProcesses} processes)`,
      };
    },
  },
];

const THRESHOLD_WORDS: Record<Compare, string> = { 'at-least': '≥', 'at-most': '≤', below: '<' };

export function evaluateTargets(rows: readonly Row[]): TargetResult[] {
  return TARGETS.map((target) => {
    const threshold = `${THRESHOLD_WORDS[target.compare]} ${target.format(target.limit)}`;
    const outcome = target.evaluate(rows);
    if (typeof outcome === 'string') return { id: target.id, description: target.description, threshold, value: null, measured: '—', met: null, note: outcome };
    const withinLimit =
      target.compare === 'at-least' ? outcome.value >= target.limit : target.compare === 'at-most' ? outcome.value <= target.limit : outcome.value < target.limit;
    const erroneous = outcome.rows.filter((row) => row.errors > 0);
    const result: TargetResult = { id: target.id, description: target.description, threshold, value: outcome.value, measured: target.format(outcome.value), met: withinLimit && erroneous.length === 0 };
    if (outcome.note !== undefined) result.note = outcome.note;
    if (outcome.pairRatios !== undefined) result.pairRatios = outcome.pairRatios;
    if (erroneous.length > 0) result.note = `errors in ${erroneous.map((row) => `${row.workload} on ${row.label}`).join(', ')}`;
    return result;
  });
}
