/**
 * runLoad: `concurrency` workers, each issuing one request at a time until
 * the duration or the operation count is reached, recording every result.
 * A failed request is counted with its message and never stops the run;
 * only a broken invariant (AssertionError) does.
 *
 * The generator measures its own CPU over the timed part, so a report can
 * say whether the client, not the server, was the limit.
 */
import { performance } from 'node:perf_hooks';
import { S3RequestError } from '../client/s3-client.ts';
import { AssertionError, assert, unreachable } from '../util/assert.ts';
import { KeyNames, LiveKeys } from './key-space.ts';
import { PayloadSource } from './payload.ts';
import { writePreparedObjects } from './prepare.ts';
import { OperationRecorder, totalStats } from './recorder.ts';
import { sizeOfObject } from './sizes.ts';
import { FIRST_ERRORS_MAX, LOAD_OPERATIONS, type LoadOperation, type LoadOptions, type LoadReport } from './types.ts';
import { normalizeOptions, type RunConfig } from './validate.ts';

export async function runLoad(options: LoadOptions): Promise<LoadReport> {
  const config = normalizeOptions(options);
  const run = new LoadRun(config);
  await run.prepare();
  return run.execute();
}

/** A GET or HEAD whose length is not the object's. */
class WrongSizeError extends Error {
  override name = 'WrongSizeError';
}

class LoadRun {
  readonly #config: RunConfig;
  readonly #options: LoadOptions;
  readonly #names: KeyNames;
  readonly #recorders: Record<LoadOperation, OperationRecorder>;
  /** Cumulative weights, for choosing an operation. */
  readonly #cumulative: number[];
  readonly #weightTotal: number;
  readonly #live: LiveKeys | undefined;
  readonly #firstErrors = new Set<string>();
  #payload: PayloadSource | undefined;
  /** Sizes of prepared objects are known only if this run wrote them. */
  #preparedSizesKnown = false;
  #nextFreshId: number;
  #nextDeleteId = 0;
  #issued = 0;
  #stopping = false;

  constructor(config: RunConfig) {
    this.#config = config;
    this.#options = config.options;
    this.#names = new KeyNames(config.keyPrefix, config.keyCount);
    this.#nextFreshId = config.keyCount;
    this.#recorders = { put: new OperationRecorder('put'), get: new OperationRecorder('get'), head: new OperationRecorder('head'), delete: new OperationRecorder('delete'), list: new OperationRecorder('list') };
    this.#cumulative = [];
    let total = 0;
    for (const [, weight] of config.weights) this.#cumulative.push((total += weight));
    this.#weightTotal = total;
    // Room for the prepared keys to double, and always more than the requests in flight can reserve.
    this.#live = this.#options.workload === 'mixed' ? new LiveKeys(Math.max(2 * config.keyCount, config.keyCount + 2 * this.#options.concurrency), config.keyCount) : undefined;
  }

  async prepare(): Promise<void> {
    if (!this.#config.prepare || this.#options.workload === 'put') return;
    await writePreparedObjects({
      client: this.#options.client,
      bucket: this.#options.bucket,
      names: this.#names,
      count: this.#config.keyCount,
      size: this.#options.size,
      concurrency: this.#options.concurrency,
      payload: this.#payloadSource(),
      metadata: this.#options.metadata,
      signal: this.#options.signal,
    });
    this.#preparedSizesKnown = true;
  }

  async execute(): Promise<LoadReport> {
    const startMs = performance.now();
    const cpuStart = process.cpuUsage();
    const stop = (): void => {
      this.#stopping = true;
    };
    // A timer counts from the event loop's cached clock, which can be up to a
    // millisecond behind performance.now(): re-armed for what is left, so a
    // run never reports less than the duration it was given.
    const durationMs = this.#config.durationMs;
    let deadline: NodeJS.Timeout | undefined;
    const stopAtDeadline = (): void => {
      const leftMs = durationMs! - (performance.now() - startMs);
      if (leftMs > 0) deadline = setTimeout(stopAtDeadline, Math.ceil(leftMs));
      else stop();
    };
    if (durationMs !== undefined) deadline = setTimeout(stopAtDeadline, durationMs);
    const progress = this.#startProgress(startMs);
    this.#options.signal?.addEventListener('abort', stop, { once: true });
    if (this.#options.signal?.aborted === true) stop();
    try {
      const workers: Promise<void>[] = [];
      for (let worker = 0; worker < this.#options.concurrency; worker++) {
        // A broken invariant in one worker stops the others too, then rejects the run.
        workers.push(
          this.#work().catch((error: unknown) => {
            this.#stopping = true;
            throw error;
          }),
        );
      }
      await Promise.all(workers);
    } finally {
      clearTimeout(deadline);
      clearInterval(progress);
      this.#options.signal?.removeEventListener('abort', stop);
    }
    const cpu = process.cpuUsage(cpuStart);
    assert(this.#live === undefined || this.#live.pinnedCount === 0, 'run: keys still pinned after every request finished');
    return this.#report(performance.now() - startMs, cpu.user + cpu.system);
  }

  async #work(): Promise<void> {
    while (this.#claim()) await this.#performOne();
  }

  #claim(): boolean {
    if (this.#stopping) return false;
    if (this.#config.operations !== undefined && this.#issued >= this.#config.operations) return false;
    if (this.#options.workload === 'delete' && this.#nextDeleteId >= this.#config.keyCount) return false;
    this.#issued++;
    return true;
  }

  #performOne(): Promise<void> {
    const operation = this.#chooseOperation();
    if (this.#live !== undefined) return this.#performMixed(operation, this.#live);
    switch (operation) {
      case 'put':
        return this.#putNew(undefined);
      case 'get':
        return this.#get(this.#randomPreparedId(), undefined);
      case 'head':
        return this.#head(this.#randomPreparedId(), undefined);
      case 'delete':
        return this.#delete(this.#nextDeleteId++);
      case 'list':
        return this.#list();
      default:
        return unreachable(operation);
    }
  }

  /** mixed: operations adapt to the pool (nothing live to read → put; pool full → overwrite). */
  #performMixed(operation: LoadOperation, live: LiveKeys): Promise<void> {
    switch (operation) {
      case 'put':
        return live.reserveNew() ? this.#putNew(live) : this.#overwrite(live);
      case 'get':
      case 'head': {
        const id = live.pin();
        if (id === undefined) return this.#performMixed('put', live);
        return operation === 'get' ? this.#get(id, live) : this.#head(id, live);
      }
      case 'delete': {
        const id = live.takeForDelete();
        return id === undefined ? this.#performMixed('put', live) : this.#delete(id);
      }
      case 'list':
        return this.#list();
      default:
        return unreachable(operation);
    }
  }

  #chooseOperation(): LoadOperation {
    const weights = this.#config.weights;
    if (weights.length === 1) return weights[0]![0];
    const point = Math.random() * this.#weightTotal;
    for (let index = 0; index < weights.length; index++) if (point < this.#cumulative[index]!) return weights[index]![0];
    return weights[weights.length - 1]![0];
  }

  #randomPreparedId(): number {
    return Math.floor(Math.random() * this.#config.keyCount);
  }

  /** The size object `id` has, when this run knows it. */
  #expectedSize(id: number): number | undefined {
    return id >= this.#config.keyCount || this.#preparedSizesKnown ? sizeOfObject(this.#options.size, id) : undefined;
  }

  async #putNew(live: LiveKeys | undefined): Promise<void> {
    const id = this.#nextFreshId++;
    const succeeded = await this.#put(id);
    live?.settleNew(id, succeeded);
  }

  async #overwrite(live: LiveKeys): Promise<void> {
    const id = live.pin();
    assert(id !== undefined, 'run: a full pool has live keys (its capacity exceeds the requests in flight)');
    try {
      await this.#put(id);
    } finally {
      live.unpin(id);
    }
  }

  async #put(id: number): Promise<boolean> {
    const recorder = this.#recorders.put;
    const size = sizeOfObject(this.#options.size, id);
    const body = this.#payloadSource().body(id, size);
    const startMs = performance.now();
    try {
      await this.#options.client.putObject(this.#options.bucket, this.#names.name(id), body, { contentLength: size, metadata: this.#options.metadata });
      recorder.recordSuccess(performance.now() - startMs, size);
      return true;
    } catch (error) {
      this.#recordError(recorder, error);
      return false;
    }
  }

  async #get(id: number, live: LiveKeys | undefined): Promise<void> {
    const recorder = this.#recorders.get;
    const startMs = performance.now();
    try {
      const response = await this.#options.client.getObject(this.#options.bucket, this.#names.name(id));
      const latencyMs = performance.now() - startMs;
      checkSize(this.#expectedSize(id), response.bytes, 'body');
      recorder.recordSuccess(latencyMs, response.bytes);
    } catch (error) {
      this.#recordError(recorder, error);
    } finally {
      live?.unpin(id);
    }
  }

  async #head(id: number, live: LiveKeys | undefined): Promise<void> {
    const recorder = this.#recorders.head;
    const startMs = performance.now();
    try {
      const response = await this.#options.client.headObject(this.#options.bucket, this.#names.name(id));
      const latencyMs = performance.now() - startMs;
      checkSize(this.#expectedSize(id), Number(response.headers['content-length']), 'content-length');
      recorder.recordSuccess(latencyMs, 0);
    } catch (error) {
      this.#recordError(recorder, error);
    } finally {
      live?.unpin(id);
    }
  }

  async #delete(id: number): Promise<void> {
    const recorder = this.#recorders.delete;
    const startMs = performance.now();
    try {
      await this.#options.client.deleteObject(this.#options.bucket, this.#names.name(id));
      recorder.recordSuccess(performance.now() - startMs, 0);
    } catch (error) {
      this.#recordError(recorder, error);
    }
  }

  async #list(): Promise<void> {
    const recorder = this.#recorders.list;
    const list = this.#options.list ?? {};
    const startMs = performance.now();
    try {
      await this.#options.client.listObjectsV2(this.#options.bucket, { ...list, prefix: list.prefix ?? this.#config.keyPrefix });
      recorder.recordSuccess(performance.now() - startMs, 0);
    } catch (error) {
      this.#recordError(recorder, error);
    }
  }

  #recordError(recorder: OperationRecorder, error: unknown): void {
    if (error instanceof AssertionError) throw error;
    recorder.recordError();
    if (this.#firstErrors.size < FIRST_ERRORS_MAX) this.#firstErrors.add(describeError(recorder.operation, error));
  }

  #payloadSource(): PayloadSource {
    return (this.#payload ??= new PayloadSource(this.#options.size.max));
  }

  #startProgress(startMs: number): NodeJS.Timeout | undefined {
    const onProgress = this.#options.onProgress;
    if (onProgress === undefined) return undefined;
    let lastMs = startMs;
    let lastOperations = 0;
    return setInterval(() => {
      const nowMs = performance.now();
      let operations = 0;
      let errors = 0;
      let bytes = 0;
      for (const operation of LOAD_OPERATIONS) {
        operations += this.#recorders[operation].count;
        errors += this.#recorders[operation].errors;
        bytes += this.#recorders[operation].bytes;
      }
      const opsPerSecond = nowMs > lastMs ? ((operations - lastOperations) * 1000) / (nowMs - lastMs) : 0;
      lastMs = nowMs;
      lastOperations = operations;
      onProgress({ elapsedMs: nowMs - startMs, operations, errors, bytes, opsPerSecond });
    }, this.#config.progressIntervalMs);
  }

  #report(durationMs: number, cpuMicros: number): LoadReport {
    const inWorkload = new Set(this.#config.weights.map(([operation]) => operation));
    // Operations of the workload, and any that a mixed run fell back to.
    const recorders = LOAD_OPERATIONS.map((operation) => this.#recorders[operation]).filter(
      (recorder) => inWorkload.has(recorder.operation) || recorder.count + recorder.errors > 0,
    );
    const total = totalStats(recorders, durationMs);
    const requests = total.count + total.errors;
    return {
      workload: this.#options.workload,
      concurrency: this.#options.concurrency,
      durationMs,
      total,
      byOperation: recorders.map((recorder) => recorder.stats(durationMs)),
      client: {
        cpuMicrosPerRequest: requests > 0 ? cpuMicros / requests : 0,
        cpuPercentOfOneCore: durationMs > 0 ? cpuMicros / (durationMs * 10) : 0,
      },
      firstErrors: [...this.#firstErrors],
    };
  }
}

function checkSize(expected: number | undefined, actual: number, what: string): void {
  if (expected !== undefined && actual !== expected) throw new WrongSizeError(`${what} of ${actual} bytes where the object has ${expected}`);
}

/** One line per kind of failure (no key in it), so the first distinct errors are distinct causes. */
export function describeError(operation: LoadOperation, error: unknown): string {
  if (error instanceof S3RequestError) return `${operation}: ${error.status} ${error.code}`;
  if (error instanceof WrongSizeError) return `${operation}: ${error.message}`;
  if (!(error instanceof Error)) return `${operation}: ${String(error)}`;
  const code = (error as { code?: unknown }).code;
  return `${operation}: ${typeof code === 'string' ? `${code} ` : ''}${error.message}`;
}
