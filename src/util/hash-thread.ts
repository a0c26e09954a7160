import { createHash } from 'node:crypto';
import { createRequire } from 'node:module';
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { assert } from './assert.ts';
import { processWriteBudget, type ByteBudget } from './byte-budget.ts';
import { CONNECTIONS_MAX } from './limits.ts';
import { createChecksumHasher, CRC64_NVME_POLY_HEX } from './checksum.ts';

/**
 * Hashing of long bodies on worker threads, so the event loop's core is free
 * for sockets and every other request in flight. MD5 (every PUT's ETag) runs
 * at ~0.7 GB/s per core here and is inherently serial: on the event loop it
 * was the largest per-byte cost of a large PUT (~90 ms of a 64 MiB upload's
 * ~230 ms). A body's chunks are referenced (not copied) until 512 KiB have
 * arrived, then copied into one batch whose memory is transferred (not copied
 * again) to the thread; the thread hashes batches in order and hands each
 * one's memory back with its acknowledgement, for the next batch. A body
 * waits once more than `UNACKED_BYTES_MAX` is with the thread, so memory stays
 * bounded per body, and batches are reused instead of left for two garbage
 * collectors to find.
 *
 * Memory across bodies is bounded by the write budget (util/byte-budget.ts):
 * every byte a hash references or has sent counts against it until the
 * thread has hashed it, and a hash that holds a partial batch sends it as it
 * is when someone has to wait for the budget. So a stalled upload holds no
 * batch of its own: 2000 stalled uploads used to hold 512 KiB each, ~1 GiB,
 * outside any bound.
 *
 * Short bodies hash inline: for them a thread round trip costs more than the
 * hash (`INLINE_BELOW_BYTES`).
 *
 * One session can compute several digests of the same bytes (the ETag's MD5
 * and a SHA-1/SHA-256 additional checksum, say): each batch is copied and
 * sent once, and the thread runs every hash over it. On the event loop a
 * SHA-256 or SHA-1 of 64 MiB costs ~37 ms (SHA-NI), as much as the rest of
 * the body's stream work; on the thread it overlaps the receive and the
 * writes.
 */
export interface StreamHash {
  /** Returns a promise only when the caller must wait (the thread is behind). */
  update(chunk: Buffer): void | Promise<void>;
  digest(): Promise<Buffer>;
  /** Drops the hash (the body failed); safe to call at any time. */
  discard(): void;
}

/** Several digests of one body, in the order their algorithms were given. */
export interface StreamHashes {
  /** Returns a promise only when the caller must wait (the thread is behind). */
  update(chunk: Buffer): void | Promise<void>;
  digest(): Promise<Buffer[]>;
  /** Drops the hashes (the body failed); safe to call at any time. */
  discard(): void;
}

export type ThreadHashAlgorithm = 'md5' | 'sha1' | 'sha256' | 'crc64nvme';

/** Bodies declared shorter than this hash on the event loop. */
export const INLINE_BELOW_BYTES = 1024 * 1024;
/**
 * Bytes per message to the thread. 1 MiB would halve the postMessages, but
 * 512 KiB keeps the process's buffer sizes as they were: glibc raises its
 * mmap threshold to the largest buffer freed, and every smaller buffer then
 * comes from (and stays in) its arenas.
 */
export const BATCH_BYTES = 512 * 1024;
/**
 * How far the thread may fall behind a body before the body waits: 1 MiB
 * (two batches). 4 MiB was tried: on the loaded 2-core machine a 64 MiB PUT
 * then waited 0.1-0.2 s for the hash thread instead of 0.5-0.9 s (the
 * scheduler had not run it yet), but with it and its reuse pool the 2 GiB
 * streaming test's server peaked at 201 MiB on a quiet machine, past its
 * 200 MiB bound; a quiet machine runs the thread at once. Memory across
 * bodies stays bounded by the write budget, which these bytes count against.
 */
export const UNACKED_BYTES_MAX = 1 * 1024 * 1024;
/**
 * Chunks referenced before they are copied into a batch. The budget counts
 * their bytes, not their objects: a client that trickles tiny chunks gets
 * them hashed in short batches instead of piling up references.
 */
const PENDING_CHUNKS_MAX = 128;
/**
 * Returned batches kept for reuse per thread: one body at full speed has at
 * most nine with the thread (it waits while more than UNACKED_BYTES_MAX
 * are), so it never allocates. Kept for the process's life: 4.5 MiB per
 * thread (it was 8 x 512 KiB).
 */
const FREE_BATCHES_MAX = UNACKED_BYTES_MAX / BATCH_BYTES + 1;
/**
 * Concurrent hashes per thread are bounded by the requests in flight; this
 * guards the bookkeeping. A request body can hold two sessions at once (a
 * long signed payload's SHA-256 in auth/payload.ts, and its blob's MD5 and
 * checksums), and with one hash thread (2 cores) every request's sessions
 * share it: twice the connections the front admits, with room to spare.
 */
const SESSIONS_PER_THREAD_MAX = 4 * CONNECTIONS_MAX;
const THREADS_MAX = 4;

/**
 * A hash of a body expected to be `declaredBytes` long (undefined: unknown,
 * hashed inline). A hash on a thread holds its bytes, pending or with the
 * thread, against `budget`: the write budget every blob writer of the process
 * draws from too (a chunk both hold counts twice, which errs on the safe side).
 */
export function createStreamHash(algorithm: ThreadHashAlgorithm, declaredBytes: number | undefined, budget: ByteBudget = processWriteBudget): StreamHash {
  const hashes = createStreamHashes([algorithm], declaredBytes, budget);
  return {
    update: (chunk) => hashes.update(chunk),
    digest: async () => (await hashes.digest())[0]!,
    discard: () => hashes.discard(),
  };
}

/** Like `createStreamHash`, for several algorithms over the same bytes (one copy, one message per batch for all). */
export function createStreamHashes(algorithms: readonly ThreadHashAlgorithm[], declaredBytes: number | undefined, budget: ByteBudget = processWriteBudget): StreamHashes {
  assert(algorithms.length > 0, 'at least one algorithm');
  if (declaredBytes === undefined || declaredBytes < INLINE_BELOW_BYTES) return new InlineHashes(algorithms);
  return new ThreadHash(pickThread(), algorithms, budget);
}

class InlineHashes implements StreamHashes {
  readonly #hashes: { update(chunk: Buffer): unknown; digest(): Buffer }[] = [];
  constructor(algorithms: readonly ThreadHashAlgorithm[]) {
    // Plain loops: every small PUT comes through here.
    for (const algorithm of algorithms) this.#hashes.push(algorithm === 'crc64nvme' ? createChecksumHasher('CRC64NVME') : createHash(algorithm));
  }
  update(chunk: Buffer): void {
    for (const hash of this.#hashes) hash.update(chunk);
  }
  async digest(): Promise<Buffer[]> {
    const digests: Buffer[] = [];
    for (const hash of this.#hashes) digests.push(hash.digest());
    return digests;
  }
  discard(): void {}
}

type FromThread =
  | { kind: 'ack'; session: number; bytes: number; batch: ArrayBuffer }
  | { kind: 'digest'; session: number; digests: Uint8Array[] }
  | { kind: 'error'; session: number; message: string };

interface Session {
  onAck(bytes: number): void;
  onDigest(digests: Buffer[]): void;
  onError(error: Error): void;
}

/** One worker thread and the sessions (bodies) it hashes. */
class HashThread {
  readonly #worker: Worker;
  readonly #sessions = new Map<number, Session>();
  readonly #freeBatches: Buffer[] = [];
  #nextSession = 1;
  #failure: Error | undefined;

  constructor() {
    this.#worker = new Worker(THREAD_SOURCE, { eval: true, workerData: { hashWasm: createRequire(import.meta.url).resolve('hash-wasm'), crc64Poly: CRC64_NVME_POLY_HEX } });
    this.#worker.unref();
    this.#worker.on('message', (message: FromThread) => {
      if (message.kind === 'ack' && message.batch.byteLength === BATCH_BYTES && this.#freeBatches.length < FREE_BATCHES_MAX) {
        this.#freeBatches.push(Buffer.from(message.batch));
      }
      const session = this.#sessions.get(message.session);
      if (session === undefined) return;
      if (message.kind === 'ack') session.onAck(message.bytes);
      else if (message.kind === 'digest') session.onDigest(message.digests.map((digest) => Buffer.from(digest.buffer, digest.byteOffset, digest.byteLength)));
      else session.onError(new Error(`hash thread: ${message.message}`));
    });
    const fail = (error: Error): void => {
      this.#failure ??= error;
      const sessions = [...this.#sessions.values()];
      this.#sessions.clear();
      for (const session of sessions) session.onError(this.#failure);
    };
    this.#worker.on('error', fail);
    this.#worker.on('exit', (code) => fail(new Error(`hash thread exited with code ${code}`)));
  }

  get failed(): boolean {
    return this.#failure !== undefined;
  }

  get load(): number {
    return this.#sessions.size;
  }

  open(algorithms: readonly ThreadHashAlgorithm[], session: Session): number {
    if (this.#failure !== undefined) throw this.#failure;
    assert(this.#sessions.size < SESSIONS_PER_THREAD_MAX, 'hash sessions are bounded by the requests in flight');
    const id = this.#nextSession++;
    this.#sessions.set(id, session);
    // Referenced only while it hashes something: an idle thread never keeps the process alive.
    if (this.#sessions.size === 1) this.#worker.ref();
    this.#worker.postMessage({ kind: 'open', session: id, algorithms });
    return id;
  }

  /** A batch buffer of BATCH_BYTES, reused when the thread has returned one. */
  takeBatch(): Buffer {
    return this.#freeBatches.pop() ?? Buffer.allocUnsafeSlow(BATCH_BYTES);
  }

  /** Hands `batch` to the thread; its memory moves there (the caller must not touch it again). */
  send(id: number, batch: Uint8Array): void {
    this.#worker.postMessage({ kind: 'update', session: id, data: batch }, [batch.buffer as ArrayBuffer]);
  }

  finish(id: number): void {
    this.#worker.postMessage({ kind: 'digest', session: id });
  }

  close(id: number, tellThread: boolean): void {
    if (!this.#sessions.delete(id)) return;
    if (this.#sessions.size === 0) this.#worker.unref();
    if (tellThread && this.#failure === undefined) this.#worker.postMessage({ kind: 'discard', session: id });
  }
}

const threads: HashThread[] = [];

/** The least-loaded live thread, starting another while under the limit (one per core beyond the event loop's). */
function pickThread(): HashThread {
  for (let i = threads.length - 1; i >= 0; i--) if (threads[i]!.failed) threads.splice(i, 1);
  const limit = Math.max(1, Math.min(THREADS_MAX, availableParallelism() - 1));
  let best = threads[0];
  for (const thread of threads) if (thread.load < best!.load) best = thread;
  if (best === undefined || (best.load > 0 && threads.length < limit)) {
    best = new HashThread();
    threads.push(best);
  }
  return best;
}

class ThreadHash implements StreamHashes {
  readonly #thread: HashThread;
  readonly #session: number;
  readonly #budget: ByteBudget;
  /** Chunks taken but not yet copied into a batch: references, not copies (see `createStreamHash`). */
  #pending: Buffer[] = [];
  #pendingBytes = 0;
  /** Bytes sent to the thread and not yet acknowledged. */
  #unackedBytes = 0;
  /** Budget held: #pendingBytes + #unackedBytes until the hash ends, then 0. */
  #heldBytes = 0;
  #unsubscribePressure: (() => void) | undefined;
  readonly #onPressure = (): void => this.#sendPending();
  #waiting: { resolve(): void; reject(error: Error): void } | undefined;
  #result: { resolve(digests: Buffer[]): void; reject(error: Error): void } | undefined;
  #failure: Error | undefined;
  #done = false;

  constructor(thread: HashThread, algorithms: readonly ThreadHashAlgorithm[], budget: ByteBudget) {
    this.#thread = thread;
    this.#budget = budget;
    this.#session = thread.open(algorithms, {
      onAck: (bytes) => {
        this.#unackedBytes -= bytes;
        assert(this.#unackedBytes >= 0, 'acknowledged no more than was sent');
        this.#release(bytes);
        if (this.#waiting !== undefined && this.#unackedBytes <= UNACKED_BYTES_MAX) {
          const waiting = this.#waiting;
          this.#waiting = undefined;
          waiting.resolve();
        }
      },
      onDigest: (digests) => {
        this.#end();
        this.#thread.close(this.#session, false);
        this.#result?.resolve(digests);
      },
      onError: (error) => {
        this.#failure ??= error;
        this.#end();
        this.#thread.close(this.#session, false);
        this.#waiting?.reject(error);
        this.#waiting = undefined;
        this.#result?.reject(error);
      },
    });
  }

  update(chunk: Buffer): void | Promise<void> {
    if (this.#failure !== undefined) throw this.#failure;
    assert(!this.#done && this.#result === undefined, 'update after digest');
    if (chunk.length === 0) return;
    if (!this.#budget.tryAcquire(chunk.length)) return this.#updateWhenGranted(chunk);
    this.#heldBytes += chunk.length;
    return this.#take(chunk);
  }

  async #updateWhenGranted(chunk: Buffer): Promise<void> {
    // Wait holding only bytes on their way to being released (see ByteBudget).
    this.#sendPending();
    await this.#budget.acquire(chunk.length);
    if (this.#done || this.#failure !== undefined) {
      this.#budget.release(chunk.length);
      if (this.#failure !== undefined) throw this.#failure;
      return;
    }
    this.#heldBytes += chunk.length;
    await this.#take(chunk);
  }

  /** Adds a chunk whose budget is held; sends every full batch; waits while the thread is too far behind. */
  #take(chunk: Buffer): void | Promise<void> {
    if (this.#pendingBytes === 0) this.#unsubscribePressure = this.#budget.onPressure(this.#onPressure);
    this.#pending.push(chunk);
    this.#pendingBytes += chunk.length;
    while (this.#pendingBytes >= BATCH_BYTES) this.#sendBatch(this.#thread.takeBatch());
    if (this.#pending.length >= PENDING_CHUNKS_MAX) this.#sendPending();
    if (this.#pendingBytes === 0) this.#stopListening();
    if (this.#unackedBytes <= UNACKED_BYTES_MAX) return;
    return new Promise<void>((resolve, reject) => {
      this.#waiting = { resolve, reject };
    });
  }

  /** Sends what is pending, however little: a writer is waiting for the budget, or the body ended. */
  #sendPending(): void {
    this.#stopListening();
    if (this.#pendingBytes === 0 || this.#done) return;
    // Exactly as large as its bytes: a short batch is not reused, and must not hold more memory than its budget.
    this.#sendBatch(Buffer.allocUnsafeSlow(this.#pendingBytes));
  }

  /** Copies the first `batch.length` pending bytes (or all, if fewer) into `batch` and sends it; its budget is released on the acknowledgement. */
  #sendBatch(batch: Buffer): void {
    let filled = 0;
    let used = 0;
    while (filled < batch.length && used < this.#pending.length) {
      const chunk = this.#pending[used]!;
      const copied = chunk.copy(batch, filled);
      filled += copied;
      if (copied === chunk.length) used++;
      else this.#pending[used] = chunk.subarray(copied);
    }
    this.#pending.splice(0, used);
    assert(filled > 0, 'a batch holds bytes');
    this.#pendingBytes -= filled;
    this.#unackedBytes += filled;
    this.#thread.send(this.#session, filled === batch.length ? batch : batch.subarray(0, filled));
  }

  #stopListening(): void {
    this.#unsubscribePressure?.();
    this.#unsubscribePressure = undefined;
  }

  #release(bytes: number): void {
    if (this.#done) return; // everything was released when the hash ended
    this.#heldBytes -= bytes;
    this.#budget.release(bytes);
  }

  /** The hash is over: no more batches, and whatever budget is still held goes back. */
  #end(): void {
    this.#done = true;
    this.#stopListening();
    this.#pending = [];
    this.#pendingBytes = 0;
    const held = this.#heldBytes;
    this.#heldBytes = 0;
    this.#budget.release(held);
  }

  digest(): Promise<Buffer[]> {
    if (this.#failure !== undefined) return Promise.reject(this.#failure);
    assert(!this.#done && this.#result === undefined, 'one digest per hash');
    this.#sendPending();
    const result = new Promise<Buffer[]>((resolve, reject) => {
      this.#result = { resolve, reject };
    });
    this.#thread.finish(this.#session);
    return result;
  }

  discard(): void {
    if (this.#done) return;
    this.#end();
    this.#thread.close(this.#session, true);
  }
}

// Plain JavaScript: threads get no TypeScript loader. CRC-64/NVME comes from
// hash-wasm (as in checksum.ts), whose instances are made asynchronously: it
// is loaded on the first session that asks for it, and messages wait in order
// meanwhile; one instance is shared, each session saving its own state.
const THREAD_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const { createHash } = require('node:crypto');
const hashes = new Map();
let crc64Engine;
let crc64Failure;
let crc64Loading;
let crc64Owner;
const backlog = [];
function crc64Hash() {
  if (crc64Engine === undefined) throw crc64Failure;
  const slot = { saved: undefined };
  const acquire = () => {
    if (crc64Owner === slot) return;
    if (crc64Owner !== undefined) crc64Owner.saved = crc64Engine.save();
    if (slot.saved === undefined) crc64Engine.init();
    else crc64Engine.load(slot.saved);
    crc64Owner = slot;
  };
  return {
    update(data) { acquire(); crc64Engine.update(data); },
    digest() { acquire(); crc64Owner = undefined; return crc64Engine.digest('binary'); },
  };
}
parentPort.on('message', (message) => {
  if (backlog.length > 0 || (crc64Engine === undefined && crc64Failure === undefined && message.kind === 'open' && message.algorithms.includes('crc64nvme'))) {
    backlog.push(message);
    crc64Loading ??= Promise.resolve()
      .then(() => require(workerData.hashWasm).createCRC64(workerData.crc64Poly))
      .then((engine) => { crc64Engine = engine; }, (error) => { crc64Failure = error; })
      .then(() => { for (const waiting of backlog.splice(0)) handle(waiting); });
    return;
  }
  handle(message);
});
function handle(message) {
  const session = message.session;
  try {
    switch (message.kind) {
      case 'open':
        hashes.set(session, message.algorithms.map((algorithm) => (algorithm === 'crc64nvme' ? crc64Hash() : createHash(algorithm))));
        break;
      case 'update': {
        const sessionHashes = hashes.get(session);
        if (sessionHashes === undefined) return;
        for (const hash of sessionHashes) hash.update(message.data);
        // The batch's memory goes back for reuse.
        parentPort.postMessage({ kind: 'ack', session, bytes: message.data.byteLength, batch: message.data.buffer }, [message.data.buffer]);
        break;
      }
      case 'digest': {
        const sessionHashes = hashes.get(session);
        if (sessionHashes === undefined) return;
        hashes.delete(session);
        const digests = sessionHashes.map((hash) => hash.digest());
        parentPort.postMessage({ kind: 'digest', session, digests });
        break;
      }
      case 'discard':
        hashes.delete(session);
        break;
    }
  } catch (error) {
    hashes.delete(session);
    parentPort.postMessage({ kind: 'error', session, message: String(error && error.message || error) });
  }
}
`;
