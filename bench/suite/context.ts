/**
 * What every workload gets: the mode's sizes, the shared servers (one Talus
 * and one s3rver for the whole suite, started on first use, so data sets
 * such as the listing bucket are made once), and short-lived baselines
 * started for one workload with the responses captured from Talus.
 */
import type { Row } from './measure.ts';
import type { ModeSettings, SuiteOptions } from './options.ts';
import { closePresigner } from './presign.ts';
import { startBaseline, startTalus, type BaselineSettings, type RunningServer } from './servers.ts';

export interface WorkloadOutcome {
  rows: Row[];
  /** Why the workload did not run (its rows are then empty). */
  skipped?: string;
  /** Sizes, data sets, caveats: printed under the table. */
  notes: string[];
}

export interface Workload {
  id: string;
  title: string;
  /** The baseline whose throughput Talus is compared with (the "ceiling" ratio). */
  ceiling?: 'bare-http' | 'bytes-fsync';
  run(context: SuiteContext): Promise<WorkloadOutcome>;
}

export class SuiteContext {
  readonly settings: ModeSettings;
  readonly options: SuiteOptions;
  /** A temporary directory for scripts and configs (removed by the suite). */
  readonly scratch: string;
  #talus: Promise<RunningServer> | undefined;
  #s3rver: Promise<RunningServer> | undefined;

  constructor(settings: ModeSettings, options: SuiteOptions, scratch: string) {
    this.settings = settings;
    this.options = options;
    this.scratch = scratch;
  }

  /** The suite's Talus: a fresh data directory, --workers as asked. */
  talus(): Promise<RunningServer> {
    return (this.#talus ??= startTalus(this.options.workers));
  }

  s3rver(): Promise<RunningServer> {
    return (this.#s3rver ??= startBaseline({ kind: 's3rver' }));
  }

  /** Starts a baseline with `settings`, runs `use` on it, and stops it whatever happens. */
  async withBaseline<T>(settings: BaselineSettings, use: (server: RunningServer) => Promise<T>): Promise<T> {
    const server = await startBaseline(settings);
    try {
      return await use(server);
    } finally {
      closePresigner(server);
      await server.stop();
    }
  }

  /**
   * Starts servers one after another, runs `use` on them all (alive side by
   * side: an alternated workload takes turns on them), and stops every one
   * started, in reverse order, whatever happens.
   */
  async withServers<T>(starts: readonly (() => Promise<RunningServer>)[], use: (servers: RunningServer[]) => Promise<T>): Promise<T> {
    const started: RunningServer[] = [];
    try {
      for (const start of starts) started.push(await start());
      return await use(started);
    } finally {
      for (const server of started.reverse()) {
        closePresigner(server);
        await server.stop();
      }
    }
  }

  /** Runs `use` on a Talus of its own (fresh data directory; `extra` server arguments), stopped afterwards. */
  async withOwnTalus<T>(workers: number, use: (server: RunningServer) => Promise<T>, extra?: Parameters<typeof startTalus>[1]): Promise<T> {
    const server = await startTalus(workers, extra);
    try {
      return await use(server);
    } finally {
      closePresigner(server);
      await server.stop();
    }
  }

  async stopSharedServers(): Promise<void> {
    for (const promise of [this.#talus, this.#s3rver]) {
      if (promise === undefined) continue;
      const server = await promise.catch(() => undefined);
      if (server === undefined) continue;
      closePresigner(server);
      await server.stop();
    }
    this.#talus = undefined;
    this.#s3rver = undefined;
  }
}
