/**
 * The suite's command line, and how long and how large each mode is.
 *   quick (default)  a few minutes on 2 cores
 *   --full           the sizes issue 3 names (a bucket of 1M keys, 100k objects with metadata); long
 *   --smoke          everything tiny, well under a minute: keeps the suite working in CI, measures nothing
 */
import { parseArgs } from 'node:util';
import type { SizeRange } from '../../src/loadgen/index.ts';

export const USAGE = `Usage: npm run bench -- [--full | --smoke] [--only SUBSTRING[,SUBSTRING…]] [--workers N] [--json PATH]
  (default)        quick mode: a few minutes on 2 cores
  --full           longer runs, a listing bucket of 1M keys, 100k objects for the bulk-metadata workload
  --smoke          tiny runs (CI keeps the suite working with it; the numbers mean nothing)
  --only S         run only the workloads whose id contains S (comma-separated: any of them)
  --workers N      start Talus with --workers N (when N > 1) and the bare baselines with N processes
  --json PATH      also write the JSON report to PATH (it always goes to bench/results/)`;

export type Mode = 'smoke' | 'quick' | 'full';

export const WORKERS_MAX = 64;

export interface SuiteOptions {
  mode: Mode;
  only: string[];
  workers: number;
  jsonPath: string | undefined;
  /** The command as run, for the report. */
  commandLine: string;
}

/** The key layout of the listing bucket: a flat run of keys, then two groups of common prefixes. */
export interface ListLayout {
  /** Keys `a-flat/<8 digits>`: the start page and the deep page are listed here. */
  flatKeys: number;
  /** Common prefixes in each delimiter group. */
  prefixes: number;
  /** Keys under each prefix of group `b-few/` … */
  keysPerPrefixFew: number;
  /** … and of group `c-many/`: the delimiter listing must not slow down from one to the other. */
  keysPerPrefixMany: number;
}

export interface ModeSettings {
  mode: Mode;
  /** An unmeasured run before each measured one (0: none). */
  warmUpMs: number;
  /** Timed part of each small-object run (wrk rounds it to whole seconds, at least 1). */
  runMs: number;
  /** Each 64 MiB run. */
  largeRunMs: number;
  listRunMs: number;
  mixedRunMs: number;
  /** 4 KiB objects prepared for GET and HEAD. */
  smallObjectCount: number;
  /** Keys wrk cycles over (one presigned URL each). */
  wrkKeyCount: number;
  /** Objects prepared, then deleted, by the DELETE workload … */
  deleteKeyCount: number;
  /** … and on s3rver, which deletes a few hundred a second. */
  peerDeleteKeyCount: number;
  /** 64 MiB, except in smoke mode. */
  largeObjectBytes: number;
  /** Objects prepared for the large GETs. */
  largeObjectCount: number;
  mixedSize: SizeRange;
  mixedKeyCount: number;
  listLayout: ListLayout;
  /** s3rver lists by walking its directory tree: its bucket is much smaller. */
  peerListLayout: ListLayout;
  bulkObjectCount: number;
  peerBulkObjectCount: number;
  /**
   * Objects the judged `talus scan --metadata list` walk reads (scan-talus-list-100k): issue 14 names 100 000
   * with user metadata. A walk of 10 000 is over in a fraction of a second, much of it V8 warming up.
   */
  scanListObjectCount: number;
  /** Side-by-side runs of each pair of servers (observers off, on) in the observability workloads: odd, so a pair's median run is a run. */
  observabilityRounds: number;
  /**
   * Measured runs of each side in the rows whose target is a ratio of two sides (Talus ÷ bare node:http,
   * ÷ s3rver, ÷ the bytes ceiling, 2 workers ÷ 1), alternated A, B | B, A | A, B … (alternate.ts): 3, so a median shrugs off
   * one spoiled run. Smoke mode takes 1 (A, B: the same path, one pair each), to stay lean in CI;
   * test/bench-alternation.test.ts checks the order and the arithmetic of several rounds.
   */
  ratioRounds: number;
}

const KiB = 1024;
const MiB = 1024 * KiB;

export const MODE_SETTINGS: Record<Mode, ModeSettings> = {
  smoke: {
    mode: 'smoke',
    warmUpMs: 0,
    runMs: 400,
    largeRunMs: 400,
    listRunMs: 300,
    mixedRunMs: 500,
    smallObjectCount: 50,
    wrkKeyCount: 16,
    deleteKeyCount: 100,
    peerDeleteKeyCount: 100,
    largeObjectBytes: 4 * MiB,
    largeObjectCount: 2,
    mixedSize: { min: 4 * KiB, max: 1 * MiB },
    mixedKeyCount: 20,
    listLayout: { flatKeys: 300, prefixes: 10, keysPerPrefixFew: 3, keysPerPrefixMany: 20 },
    peerListLayout: { flatKeys: 300, prefixes: 10, keysPerPrefixFew: 3, keysPerPrefixMany: 20 },
    bulkObjectCount: 200,
    peerBulkObjectCount: 200,
    scanListObjectCount: 1000,
    observabilityRounds: 1,
    ratioRounds: 1,
  },
  quick: {
    mode: 'quick',
    warmUpMs: 1000,
    runMs: 3000,
    largeRunMs: 4000,
    listRunMs: 2000,
    mixedRunMs: 6000,
    smallObjectCount: 1000,
    wrkKeyCount: 256,
    deleteKeyCount: 12_000,
    peerDeleteKeyCount: 2000,
    largeObjectBytes: 64 * MiB,
    largeObjectCount: 8,
    mixedSize: { min: 4 * KiB, max: 10 * MiB },
    mixedKeyCount: 200,
    listLayout: { flatKeys: 79_500, prefixes: 100, keysPerPrefixFew: 5, keysPerPrefixMany: 200 },
    peerListLayout: { flatKeys: 2000, prefixes: 20, keysPerPrefixFew: 5, keysPerPrefixMany: 50 },
    bulkObjectCount: 10_000,
    peerBulkObjectCount: 10_000,
    scanListObjectCount: 100_000,
    observabilityRounds: 5,
    ratioRounds: 3,
  },
  full: {
    mode: 'full',
    warmUpMs: 3000,
    runMs: 20_000,
    largeRunMs: 20_000,
    listRunMs: 10_000,
    mixedRunMs: 60_000,
    smallObjectCount: 10_000,
    wrkKeyCount: 1024,
    deleteKeyCount: 50_000,
    peerDeleteKeyCount: 5000,
    largeObjectBytes: 64 * MiB,
    largeObjectCount: 16,
    mixedSize: { min: 4 * KiB, max: 10 * MiB },
    mixedKeyCount: 1000,
    listLayout: { flatKeys: 899_000, prefixes: 100, keysPerPrefixFew: 10, keysPerPrefixMany: 1000 },
    peerListLayout: { flatKeys: 10_000, prefixes: 50, keysPerPrefixFew: 10, keysPerPrefixMany: 100 },
    bulkObjectCount: 100_000,
    peerBulkObjectCount: 20_000,
    scanListObjectCount: 100_000,
    observabilityRounds: 9,
    ratioRounds: 3,
  },
};

export function listLayoutKeys(layout: ListLayout): number {
  return layout.flatKeys + layout.prefixes * (layout.keysPerPrefixFew + layout.keysPerPrefixMany);
}

export class UsageError extends Error {
  override name = 'UsageError';
}

/** 'help' for --help; a UsageError for anything wrong. */
export function parseSuiteOptions(argv: string[]): SuiteOptions | 'help' {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      allowPositionals: false,
      options: {
        full: { type: 'boolean', default: false },
        smoke: { type: 'boolean', default: false },
        only: { type: 'string', multiple: true, default: [] },
        workers: { type: 'string', default: '1' },
        json: { type: 'string' },
        help: { type: 'boolean', default: false },
      },
    }));
  } catch (error) {
    throw new UsageError(error instanceof Error ? error.message : String(error));
  }
  if (values.help) return 'help';
  if (values.full && values.smoke) throw new UsageError('--full and --smoke exclude each other');
  const workers = Number(values.workers);
  if (!Number.isInteger(workers) || workers < 1 || workers > WORKERS_MAX) throw new UsageError(`--workers must be an integer from 1 to ${WORKERS_MAX}, not ${values.workers}`);
  const only = values.only.flatMap((text) => text.split(',')).map((text) => text.trim()).filter((text) => text !== '');
  return {
    mode: values.full ? 'full' : values.smoke ? 'smoke' : 'quick',
    only,
    workers,
    jsonPath: values.json,
    commandLine: ['node', ...process.execArgv, 'bench/suite.ts', ...argv].join(' '),
  };
}
