import { availableParallelism } from 'node:os';
import type { Worker } from 'node:worker_threads';
import { assert } from '../../util/assert.ts';
import { startModuleThread } from '../../util/module-thread.ts';
import { SPARE_PAGE_BUFFER_BYTES_MAX, type ListRequest, type ListUploadsRequest, type ListUploadsResult, type ListVersionsRequest, type PageRendering, type RenderedPage } from '../metadata-store.ts';
import type { ListingPage } from './listing.ts';
import { PAGE_CACHE_KIB_MAX } from './schema.ts';

/**
 * Listings on worker threads, each with its own read-only connection
 * (listing-thread.ts). A 1000-key page costs several milliseconds of SQLite
 * reads; on the event loop, 32 clients listing at once made every other
 * request wait behind their pages (a GET waited 0.5–0.9 s at the median,
 * issue 17). WAL lets readers run beside the writer, so here the event loop
 * only posts the request and receives the entries.
 *
 * Read-your-writes holds: a listing is posted after the commits its caller
 * saw acknowledged, and the thread's read transaction begins after it takes
 * the request up (see listing-thread.ts), so its snapshot holds them.
 *
 * A listing never fails for want of a thread: while none is ready (starting,
 * or started again after it died) `run` answers undefined and the store
 * lists on its own connection, as before; a request in flight on a thread
 * that dies is answered undefined too (a read is safe to run again).
 */

/** One thread beside the event loop on two cores; at most two: listing is not the only work the cores have. */
export const LISTING_THREADS_DEFAULT = Math.max(1, Math.min(2, availableParallelism() - 1));
export const LISTING_THREADS_MAX = 8;
/**
 * Listings that take at most this many rows and seeks are answered on the
 * event loop, on the store's own connection (SqliteMetadataStore): ~0.1-0.2
 * ms of SQLite reads and rendering, about what the hand-off to a thread and
 * back costs by itself (two wake-ups and ~0.1 ms of CPU: a page of 100
 * common prefixes took ~0.5 ms of server CPU through the thread, ~0.4 ms
 * without, issue 17). A listing found to need more gives up there (no page
 * mixes two snapshots) and goes to a thread: the event loop spends at most
 * this many steps on any listing. Without a delimiter that is known before
 * any row is read (a key-only count on the index); with one, only by walking.
 */
export const LISTING_ON_EVENT_LOOP_STEPS_MAX = 128;
/**
 * Listings posted to one thread at a time: one it works on and one waiting,
 * so it never idles. The rest wait here: a thread that ran ahead would hand
 * the event loop a burst of pages at once, and node renders every message
 * waiting on a port before it polls for I/O again, so a GET could wait
 * behind all of them.
 */
const POSTED_PER_THREAD_MAX = 2;
/**
 * Written pages' buffers held here until the next request to a thread carries
 * them back (no message of their own), per thread: as many as a thread keeps
 * (list-render.ts's SPARE_PAGE_BUFFERS_MAX); more are left to the collector.
 */
const SPARE_PAGE_BUFFERS_PER_THREAD_MAX = 4;
/** Far above what the server's connection limit lets be in flight. */
const REQUESTS_WAITING_MAX = 65_536;
const BUSY_TIMEOUT_MS = 5_000;
/** A thread that died is started again after 1 s, doubling, at most a minute. */
const RESTART_DELAY_MS = 1_000;
const RESTART_DELAY_MS_MAX = 60_000;
const STOP_TIMEOUT_MS = 5_000;
/** A page is a few hundred KiB of rows: a small heap bounds what a runaway thread could hold. */
const THREAD_HEAP_MIB_MAX = 64;
/** As the workers' --max-semi-space-size=4: a page's rows die young, and a large nursery is only resident memory. */
const THREAD_YOUNG_HEAP_MIB_MAX = 4;

export interface ListingThreadData {
  databasePath: string;
  busyTimeoutMs: number;
  pageCacheKib: number;
  /** The module whose `renderPage` (a PageRenderer) renders pages asked `rendering`; absent: pages are never rendered here. */
  rendererUrl: string | undefined;
}

/** `spare`: page buffers the event loop is done with, transferred back with the request for the thread's next pages. */
export type ListingThreadRequest = (
  | { id: number; kind: 'keys'; request: ListRequest; rendering?: PageRendering }
  | { id: number; kind: 'versions'; request: ListVersionsRequest; rendering?: PageRendering }
  | { id: number; kind: 'uploads'; request: ListUploadsRequest }
) & { spare?: ArrayBuffer[] };

export type ListingThreadReply =
  | { ready: true }
  | { id: number; result: ListingPage | ListUploadsResult | RenderedPage }
  | { id: number; error: string };

/** Keys and versions come back as the walk found them (listing.ts's ListingPage); uploads, rare, as entries. */
interface Results {
  keys: ListingPage;
  versions: ListingPage;
  uploads: ListUploadsResult;
}
interface Requests {
  keys: ListRequest;
  versions: ListVersionsRequest;
  uploads: ListUploadsRequest;
}

interface Waiting {
  resolve(result: Results[keyof Results] | RenderedPage | undefined): void;
  reject(error: Error): void;
}

interface Queued extends Waiting {
  message: ListingThreadRequest;
}

class ListingThread {
  readonly worker: Worker;
  ready = false;
  readonly inFlight = new Map<number, Waiting>();
  readonly exited: Promise<void>;

  constructor(worker: Worker) {
    this.worker = worker;
    this.exited = new Promise((resolve) => worker.once('exit', () => resolve()));
  }
}

/**
 * The thread runs the TypeScript sources when the server does (no build):
 * a thread does not inherit the tsx loader, so it registers it first.
 */
export class ListingThreads {
  readonly #databasePath: string;
  readonly #rendererUrl: string | undefined;
  readonly #onError: (error: unknown) => void;
  readonly #threads: (ListingThread | undefined)[];
  readonly #restartTimers = new Set<NodeJS.Timeout>();
  /** Listings waiting for a thread to have room, in arrival order (a ring would do; this stays short). */
  #queue: Queued[] = [];
  /** Page buffers handed back (RenderedPage.recycle), on their way to a thread with its next request. */
  #spare: ArrayBuffer[] = [];
  #nextId = 1;
  #restarts = 0;
  #answered = 0;
  #buffersReturned = 0;
  #buffersReused = 0;
  #stopped = false;
  #started = false;

  constructor(databasePath: string, count: number, onError: (error: unknown) => void, rendererUrl?: string) {
    assert(Number.isInteger(count) && count >= 1 && count <= LISTING_THREADS_MAX, `listing threads: 1 to ${LISTING_THREADS_MAX}`);
    this.#databasePath = databasePath;
    this.#rendererUrl = rendererUrl;
    this.#onError = onError;
    this.#threads = Array.from({ length: count }, () => undefined);
  }

  /**
   * Starts the threads (idempotent). The first listing does it: a server that
   * never lists never pays for them (each is a V8 isolate and a connection:
   * an idle server run from the TypeScript sources, whose threads load tsx
   * too, measured 175 MiB resident with its thread and 146 MiB without).
   * Listings before a thread is ready are listed on the store's connection.
   */
  start(): void {
    if (this.#started || this.#stopped) return;
    this.#started = true;
    for (let slot = 0; slot < this.#threads.length; slot++) this.#spawn(slot);
  }

  /** How many times a thread was started again after it died. */
  get restarts(): number {
    return this.#restarts;
  }

  /** Listings the threads answered (not those listed on the store's connection instead). */
  get answered(): number {
    return this.#answered;
  }

  /** Page buffers carried back to the threads for reuse (RenderedPage.recycle). */
  get pageBuffersReturned(): number {
    return this.#buffersReturned;
  }

  /** Pages a thread rendered into a buffer an earlier page handed back (RenderedPage.bufferReused). */
  get pageBuffersReused(): number {
    return this.#buffersReused;
  }

  /** Threads that are ready to take listings. */
  get readyCount(): number {
    return this.#threads.filter((thread) => thread?.ready === true).length;
  }

  /** The listing from a thread; undefined when none is ready or its thread died (then list on the store's connection). */
  run<K extends keyof Requests>(kind: K, request: Requests[K]): Promise<Results[K] | undefined> {
    return this.#post<Results[K]>({ id: this.#nextId++, kind, request } as ListingThreadRequest);
  }

  /**
   * The page rendered on a thread (the renderer named at construction), its
   * bytes transferred, not copied; undefined as for run, or when this store
   * was given no renderer.
   */
  runRendered(kind: 'keys' | 'versions', request: Requests[typeof kind], rendering: PageRendering): Promise<RenderedPage | undefined> {
    if (this.#rendererUrl === undefined) return Promise.resolve(undefined);
    return this.#post<RenderedPage>({ id: this.#nextId++, kind, request, rendering } as ListingThreadRequest);
  }

  #post<T>(message: ListingThreadRequest): Promise<T | undefined> {
    this.start();
    if (this.readyCount === 0) return Promise.resolve(undefined);
    assert(this.#queue.length < REQUESTS_WAITING_MAX, 'listings waiting are bounded by the connections');
    return new Promise<T | undefined>((resolve, reject) => {
      this.#queue.push({ message, resolve: resolve as Waiting['resolve'], reject });
      this.#dispatch();
    });
  }

  /** Posts waiting listings to ready threads with room, least busy first. */
  #dispatch(): void {
    while (this.#queue.length > 0) {
      const thread = this.#leastBusy();
      if (thread === undefined) {
        // No thread is ready any more (it died): what waits is listed on the store's connection.
        if (this.readyCount === 0) for (const queued of this.#queue.splice(0)) queued.resolve(undefined);
        return;
      }
      if (thread.inFlight.size >= POSTED_PER_THREAD_MAX) return;
      const queued = this.#queue.shift()!;
      if (thread.inFlight.size === 0) thread.worker.ref();
      thread.inFlight.set(queued.message.id, queued);
      const message = queued.message;
      if (this.#spare.length > 0 && message.kind !== 'uploads') {
        // No more than one thread's pool keeps: the rest would be transferred only to be dropped there.
        message.spare = this.#spare.splice(0, SPARE_PAGE_BUFFERS_PER_THREAD_MAX);
        this.#buffersReturned += message.spare.length;
        thread.worker.postMessage(message, message.spare);
      } else thread.worker.postMessage(message);
    }
  }

  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    for (const timer of this.#restartTimers) clearTimeout(timer);
    const threads = this.#threads.filter((thread): thread is ListingThread => thread !== undefined);
    for (const thread of threads) thread.ready = false;
    // Listings not posted yet are listed on the store's connection, before it closes.
    this.#dispatch();
    await Promise.all(
      threads.map(async (thread) => {
        // Listings already posted are answered first: the thread takes messages in order.
        thread.worker.postMessage('stop');
        const timer = setTimeout(() => void thread.worker.terminate(), STOP_TIMEOUT_MS);
        await thread.exited;
        clearTimeout(timer);
      }),
    );
  }

  #leastBusy(): ListingThread | undefined {
    let best: ListingThread | undefined;
    for (const thread of this.#threads) {
      if (thread?.ready !== true) continue;
      if (best === undefined || thread.inFlight.size < best.inFlight.size) best = thread;
    }
    return best;
  }

  #spawn(slot: number): void {
    const worker = startModuleThread(import.meta.url, 'listing-thread', { databasePath: this.#databasePath, busyTimeoutMs: BUSY_TIMEOUT_MS, pageCacheKib: PAGE_CACHE_KIB_MAX, rendererUrl: this.#rendererUrl } satisfies ListingThreadData, {
      resourceLimits: { maxOldGenerationSizeMb: THREAD_HEAP_MIB_MAX, maxYoungGenerationSizeMb: THREAD_YOUNG_HEAP_MIB_MAX },
    });
    const thread = new ListingThread(worker);
    this.#threads[slot] = thread;
    worker.on('message', (reply: ListingThreadReply) => this.#receive(thread, reply));
    worker.on('error', (error) => {
      if (!this.#stopped) this.#onError(error);
    });
    void thread.exited.then(() => this.#exited(slot, thread));
    // An idle thread never keeps the process alive; one with a listing in flight does (see run).
    worker.unref();
  }

  #receive(thread: ListingThread, reply: ListingThreadReply): void {
    if ('ready' in reply) {
      thread.ready = !this.#stopped;
      this.#dispatch();
      return;
    }
    const waiting = thread.inFlight.get(reply.id);
    assert(waiting !== undefined, 'a listing thread answers only what it was asked, once');
    thread.inFlight.delete(reply.id);
    if (thread.inFlight.size === 0) thread.worker.unref();
    this.#dispatch();
    if ('error' in reply) waiting.reject(new Error(`listing failed on its thread: ${reply.error}`));
    else {
      this.#answered++;
      if ('bytes' in reply.result) {
        if (reply.result.bufferReused === true) this.#buffersReused++;
        this.#recyclable(reply.result);
      }
      waiting.resolve(reply.result);
    }
  }

  /** A rendered page whose buffer may come back (RenderedPage.recycle): once, and only while the pool has room. */
  #recyclable(page: RenderedPage): void {
    const buffer = page.bytes.buffer as ArrayBuffer;
    let recycled = false;
    page.recycle = () => {
      assert(!recycled, 'a page buffer is handed back once');
      recycled = true;
      // Transferred away already would be a bug: a detached buffer has no bytes.
      assert(buffer.byteLength > 0, 'a page buffer handed back is still attached');
      if (this.#stopped || this.#spare.length >= SPARE_PAGE_BUFFERS_PER_THREAD_MAX * this.#threads.length) return;
      // A buffer the thread's pool would refuse is not worth a transfer (nor the memory held until then).
      if (buffer.byteLength > SPARE_PAGE_BUFFER_BYTES_MAX) return;
      this.#spare.push(buffer);
    };
  }

  /** A thread ended: what it had in flight is listed on the store's connection instead; it is started again unless stopping. */
  #exited(slot: number, thread: ListingThread): void {
    thread.ready = false;
    for (const waiting of thread.inFlight.values()) waiting.resolve(undefined);
    thread.inFlight.clear();
    this.#dispatch();
    if (this.#stopped) return;
    this.#threads[slot] = undefined;
    const delayMs = Math.min(RESTART_DELAY_MS_MAX, RESTART_DELAY_MS * 2 ** Math.min(this.#restarts, 10));
    this.#restarts++;
    const timer = setTimeout(() => {
      this.#restartTimers.delete(timer);
      if (!this.#stopped) this.#spawn(slot);
    }, delayMs);
    timer.unref();
    this.#restartTimers.add(timer);
  }
}
