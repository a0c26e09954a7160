/**
 * Cuts and encodes the replicator's segments on a worker thread, off the
 * event loop: reading each changed row (a small PUT's body included),
 * encoding the rows and making the replica object cost ~45 µs of CPU per
 * inline 4 KiB PUT on the event loop, most of metadata replication's cost
 * (bench/replication-cost.bench.ts). The thread has a read-only connection
 * of its own, so it reads the pages just written back from the WAL (more
 * CPU than the serving connection's warm cache, but on another core) and
 * never holds the store's connection. Upload, quorum and trimming stay
 * with the replicator.
 *
 * One request at a time (the replicator has one round in flight). A thread
 * that dies fails the requests it held and is started again on the next.
 */
import type { Worker } from 'node:worker_threads';
import { startModuleThread } from '../util/module-thread.ts';
import type { RingRange } from './inline-body-ring.ts';

/** What the thread is started with. */
export interface CutterData {
  readonly databasePath: string;
  readonly storeId: string;
  readonly epoch: number;
  /** The AES-256-GCM key, if replicas are encrypted. */
  readonly key: Uint8Array | undefined;
  readonly busyTimeoutMs: number;
  /** The serving thread's ring of inline bodies (inline-body-ring.ts), shared; absent: every body is read back. */
  readonly ring?: SharedArrayBuffer;
}

export interface CutRequest {
  readonly id: number;
  /** The segment after this position. */
  readonly from: number;
  /** The ring's records written since the last request (inline-body-ring.ts), read until the reply. */
  readonly bodies?: RingRange;
}

export interface CutObject {
  readonly from: number;
  readonly to: number;
  readonly complete: boolean;
  /** How it was cut (segment.ts, cutEncodedSegment): counted in the replicator's status. */
  readonly cut: 'joined' | 'in log order';
  /** Inline bodies taken from the serving thread's records, not read back (segment.ts). */
  readonly bodiesFromRecords: number;
  /** The replica object's bytes, ready to upload: parts to store one after the other. */
  readonly parts: readonly Uint8Array[];
}

/** A cut segment on the event loop's side. */
export type CutSegment = Omit<CutObject, 'parts'> & { readonly parts: readonly Buffer[] };

export type CutReply = { readonly id: number; readonly segment: CutObject | undefined } | { readonly id: number; readonly error: string };

const THREAD_BUSY_TIMEOUT_MS = 5_000;

export class SegmentCutter {
  readonly #data: CutterData;
  #worker: Worker | undefined;
  readonly #pending = new Map<number, { resolve(segment: CutSegment | undefined): void; reject(error: Error): void }>();
  #nextId = 1;

  constructor(data: Omit<CutterData, 'busyTimeoutMs'>) {
    this.#data = { ...data, busyTimeoutMs: THREAD_BUSY_TIMEOUT_MS };
  }

  /**
   * Starts the thread now rather than at the first cut: starting one costs ~60 ms of CPU (an isolate, the
   * modules, SQLite), which belongs to the server's start-up, not to the first second of writes (the suite's
   * replication-put-4k measured it in its timed window), and a first commit in quorum mode does not wait for it.
   */
  prepare(): void {
    this.#worker ??= this.#spawn();
  }

  /**
   * The replica object of the segment after `from`, or undefined when nothing is logged after it. The thread
   * reads the ring's `bodies` (inline-body-ring.ts) until the promise settles. The ring reuses that space only
   * after it settles, and nothing checks a record's generation: this promise must never settle (a timeout, a race)
   * while the thread may still be reading, or the thread could copy bodies the serving thread is overwriting.
   */
  cut(from: number, bodies?: RingRange): Promise<CutSegment | undefined> {
    const worker = this.#worker ?? this.#spawn();
    const id = this.#nextId++;
    // Referenced while a request is out: the final round at shutdown must finish even after the listeners closed.
    worker.ref();
    return new Promise((resolve, reject) => {
      this.#pending.set(id, { resolve, reject });
      worker.postMessage({ id, from, bodies } satisfies CutRequest);
    });
  }

  #spawn(): Worker {
    const worker = startModuleThread(import.meta.url, 'segment-cutter-thread', { ...this.#data });
    // Idle, it does not keep the process alive: a replicator nobody stopped must not.
    worker.unref();
    worker.on('message', (reply: CutReply) => {
      const pending = this.#pending.get(reply.id);
      if (pending === undefined) return;
      this.#pending.delete(reply.id);
      if (this.#pending.size === 0) worker.unref();
      if ('error' in reply) pending.reject(new Error(`cutting a metadata segment failed: ${reply.error}`));
      else if (reply.segment === undefined) pending.resolve(undefined);
      else pending.resolve({ ...reply.segment, parts: reply.segment.parts.map((part) => Buffer.from(part.buffer, part.byteOffset, part.byteLength)) });
    });
    const fail = (error: Error): void => {
      if (this.#worker === worker) this.#worker = undefined;
      const pending = [...this.#pending.values()];
      this.#pending.clear();
      for (const { reject } of pending) reject(error);
    };
    worker.on('error', fail);
    worker.on('exit', (code) => fail(new Error(`the segment cutter thread exited with ${code}`)));
    this.#worker = worker;
    return worker;
  }

  async stop(): Promise<void> {
    const worker = this.#worker;
    this.#worker = undefined;
    if (worker !== undefined) await worker.terminate();
  }
}
