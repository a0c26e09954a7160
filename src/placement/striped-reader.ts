import { BackendObjectMissingError } from '../backend/backend.ts';
import type { ErasureCodec } from '../erasure/index.ts';
import { assert } from '../util/assert.ts';
import { ShortReadError } from '../util/short-read-error.ts';
import { FRAME_CHECKSUM_BYTES, type StripeLayout } from './stripe-layout.ts';
import type { ShardTarget } from './striped-writer.ts';

/** `foreign`: the shard is sound but another blob's (or another shard's) — handled exactly like `corrupt`. */
export type ShardDamageReason = 'missing' | 'unreadable' | 'corrupt' | 'foreign' | 'short' | 'timeout';

/** A shard that could not serve a stripe: reported so it can be repaired. */
export interface ShardDamage {
  readonly shard: number;
  readonly stripe: number;
  readonly reason: ShardDamageReason;
  readonly error?: unknown;
}

export interface StripedReadOptions {
  readonly layout: StripeLayout;
  readonly targets: readonly ShardTarget[];
  readonly codec: ErasureCodec | undefined;
  /** Blob bytes [start, end). */
  readonly start: number;
  readonly end: number;
  /** Shards in the order to try them, best first (fastest backends). Default: data shards first, which needs no decoding. */
  readonly preference?: readonly number[];
  readonly onDamage?: (damage: ShardDamage) => void;
  /**
   * When a shard's next frame (`frameBytes` still to come) lags enough to
   * read another shard beside it, and when it is given up as a timeout
   * (damage of reason 'timeout'). Default: never (the backend's own timeouts).
   */
  readonly timing?: (shard: number, frameBytes: number) => ShardTiming;
  /** Whether a spare shard may be read beside a lagging one (not when its backend is known to be down); default yes. */
  readonly hedgeTo?: (shard: number) => boolean;
  /** A shard's first frame arrived this long after it was asked for (a latency sample of its backend). */
  readonly onAnswer?: (shard: number, latencyMs: number) => void;
}

export interface ShardTiming {
  readonly hedgeAfterMs: number;
  readonly deadlineMs: number;
}

/** A shard whose frame did not come within its deadline. */
export class ShardTimeoutError extends Error {
  override name = 'ShardTimeoutError';
  constructor(shard: number, stripe: number, deadlineMs: number) {
    super(`shard ${shard} stripe ${stripe}: no answer within ${Math.round(deadlineMs)} ms`);
  }
}

/** One shard's frame of the stripe being read, in flight. */
interface FrameRead {
  readonly shard: number;
  readonly cursor: ShardCursor;
  readonly hedgeAtMs: number;
  readonly deadlineMs: number;
  readonly deadlineAtMs: number;
  /** Past its hedge point: no longer counted on, another shard is read beside it. */
  lagging: boolean;
  outcome: { readonly block: Uint8Array } | { readonly error: unknown } | undefined;
  settled: Promise<void>;
}

/** Fewer than k shards could serve a stripe. */
export class ShardsUnavailableError extends Error {
  override name = 'ShardsUnavailableError';
  constructor(
    readonly stripe: number,
    readonly damage: readonly ShardDamage[],
  ) {
    super(`stripe ${stripe}: too few readable shards (${damage.map((entry) => `shard ${entry.shard} ${entry.reason}`).join(', ')})`);
  }
}

class ShardDamageError extends Error {
  constructor(
    readonly reason: ShardDamageReason,
    readonly cause_: unknown,
    message: string,
  ) {
    super(message);
  }
}

/**
 * Reads served without one of their data shards — missing, unreadable,
 * corrupt, late, or on a backend known to be down — rebuilt from parity (or
 * read from another copy): counted once per read, in this process, for the
 * metrics (talus_degraded_reads_total). A read that fails for want of shards
 * is not one of them.
 */
let degradedReads = 0;

export function degradedReadCount(): number {
  return degradedReads;
}

/**
 * Opens a read of bytes [start, end) of a striped blob. Only the stripes
 * covering the range are fetched: from k shards, preferring the order given,
 * each frame's checksum verified. A shard that is missing, unreadable, short
 * or corrupt is reported, dropped for the rest of the read and replaced by
 * the next one, from the stripe where it failed; the stripe is rebuilt from
 * whichever k blocks are in hand. The first stripe is read before this
 * resolves, so a blob that cannot be read fails before any byte is sent.
 */
export async function openStripedRead(options: StripedReadOptions): Promise<AsyncIterable<Buffer>> {
  const { layout, start, end } = options;
  assert(options.targets.length === layout.shardCount, 'a target per shard');
  assert(layout.dataShards === 1 || options.codec !== undefined, 'a codec for erasure-coded blobs');
  assert(Number.isSafeInteger(start) && start >= 0 && end >= start && end <= layout.sizeBytes, `range ${start}-${end} of ${layout.sizeBytes}`);
  if (start === end) return (async function* empty() {})();
  const read = new StripedRead(options, layout.stripeOf(start), layout.stripeOf(end - 1) + 1);
  let first: Buffer[];
  try {
    first = await read.stripeBytes(read.firstStripe);
  } catch (error) {
    read.close();
    throw error;
  }
  // One stripe of read-ahead: the next stripe is fetched and decoded while
  // the consumer (a socket) takes this one. Stripes are still read one after
  // another (a cursor serves one stripe at a time), so memory is two stripes.
  const prefetch = (stripe: number): Promise<Buffer[]> | undefined => {
    if (stripe >= read.endStripe) return undefined;
    const fetching = read.stripeBytes(stripe);
    fetching.catch(() => undefined); // awaited below, unless the consumer stops first
    return fetching;
  };
  async function* stripes(): AsyncGenerator<Buffer> {
    let next = prefetch(read.firstStripe + 1);
    yield* first;
    for (let stripe = read.firstStripe + 1; stripe < read.endStripe; stripe++) {
      const current = await next!;
      next = prefetch(stripe + 1);
      yield* current;
    }
  }
  // Not the generator itself: a generator stopped before its first next()
  // never runs its finally, and the first stripe's cursors would stay open.
  const generator = stripes();
  const iterator: AsyncIterableIterator<Buffer> = {
    next: async () => {
      try {
        const result = await generator.next();
        if (result.done === true) read.close();
        return result;
      } catch (error) {
        read.close();
        throw error;
      }
    },
    return: async (value?: unknown) => {
      read.close();
      return generator.return(value as undefined);
    },
    throw: async (error?: unknown) => {
      read.close();
      return generator.throw(error);
    },
    [Symbol.asyncIterator]: () => iterator,
  };
  return iterator;
}

/**
 * Reads one shard whole and checks every frame (a deep scrub). Resolves with
 * the damage found, or undefined when the shard is sound; never rejects for
 * the shard's own faults.
 */
export async function verifyShard(target: ShardTarget, layout: StripeLayout, shard: number): Promise<ShardDamage | undefined> {
  if (layout.headerBytes > 0) {
    const damage = await checkHeader(target, layout, shard);
    if (damage !== undefined) return damage;
  }
  if (layout.stripeCount === 0) {
    const size = await target.backend.stat(target.key).catch(() => null);
    return size === layout.shardBytes ? undefined : { shard, stripe: 0, reason: size === undefined ? 'missing' : 'unreadable' };
  }
  const cursor = new ShardCursor(target, layout, shard, 0, layout.stripeCount);
  try {
    for (let stripe = 0; stripe < layout.stripeCount; stripe++) {
      try {
        await cursor.next();
      } catch (error) {
        return { shard, stripe, reason: error instanceof ShardDamageError ? error.reason : 'unreadable', error: error instanceof ShardDamageError ? error.cause_ : error };
      }
    }
    return undefined;
  } finally {
    cursor.close();
  }
}

/** Reads a shard's header and checks it is this shard's: undefined when it is, else the damage (never rejects). */
async function checkHeader(target: ShardTarget, layout: StripeLayout, shard: number, signal?: AbortSignal): Promise<ShardDamage | undefined> {
  let bytes: Buffer;
  try {
    const chunks: Buffer[] = [];
    for await (const chunk of await target.backend.read(target.key, 0, layout.headerBytes, signal === undefined ? {} : { signal })) chunks.push(chunk);
    bytes = Buffer.concat(chunks);
  } catch (error) {
    const reason: ShardDamageReason = error instanceof BackendObjectMissingError ? 'missing' : error instanceof ShortReadError ? 'short' : 'unreadable';
    return { shard, stripe: 0, reason, error };
  }
  const mismatch = layout.checkShardHeader(bytes, shard);
  return mismatch === undefined ? undefined : { shard, stripe: 0, reason: mismatch.reason, error: new Error(`shard ${shard} on ${target.backend.name}: header: ${mismatch.detail}`) };
}

class StripedRead {
  readonly firstStripe: number;
  readonly endStripe: number;
  readonly #options: StripedReadOptions;
  readonly #layout: StripeLayout;
  readonly #active = new Map<number, ShardCursor>();
  readonly #spare: number[];
  readonly #damage: ShardDamage[] = [];
  /** This read is counted in degradedReads (once, at its first stripe served despite damage). */
  #countedDegraded = false;
  /** Set by close(): the consumer went away; nothing read after is damage, and no cursor opens. */
  #closed = false;

  constructor(options: StripedReadOptions, firstStripe: number, endStripe: number) {
    this.#options = options;
    this.#layout = options.layout;
    this.firstStripe = firstStripe;
    this.endStripe = endStripe;
    const order = options.preference ?? Array.from({ length: this.#layout.shardCount }, (_, shard) => shard);
    assert(new Set(order).size === order.length && order.every((shard) => Number.isInteger(shard) && shard >= 0 && shard < this.#layout.shardCount), 'a preference of distinct shards');
    // Shards left out of the preference still serve as the last resort.
    this.#spare = [...order, ...Array.from({ length: this.#layout.shardCount }, (_, shard) => shard).filter((shard) => !order.includes(shard))];
  }

  /** The requested bytes of one stripe, as slices of its data blocks. */
  async stripeBytes(stripe: number): Promise<Buffer[]> {
    const layout = this.#layout;
    const blocks = await this.#blocks(stripe);
    const data = await this.#decode(stripe, blocks);
    if (!this.#countedDegraded && this.#missesDataShard(blocks)) {
      this.#countedDegraded = true;
      degradedReads++;
    }
    const stripeStart = stripe * layout.stripeDataBytes;
    const from = Math.max(this.#options.start, stripeStart) - stripeStart;
    const to = Math.min(this.#options.end, stripeStart + layout.dataBytesOf(stripe)) - stripeStart;
    const blockBytes = layout.blockBytesOf(stripe);
    const slices: Buffer[] = [];
    for (let block = Math.floor(from / blockBytes); block * blockBytes < to; block++) {
      const bytes = data[block]!;
      const sliceStart = Math.max(from - block * blockBytes, 0);
      const sliceEnd = Math.min(to - block * blockBytes, blockBytes);
      slices.push(Buffer.from(bytes.buffer, bytes.byteOffset + sliceStart, sliceEnd - sliceStart));
    }
    return slices;
  }

  /**
   * k verified blocks of `stripe`, by shard. Frames are asked of k shards;
   * one that fails is dropped (damage) and the next spare asked instead. One
   * that lags past its hedge point is no longer counted on: a spare is asked
   * beside it and whichever answer first serve. One past its deadline is
   * dropped as a timeout. Once k blocks are in, shards still pending leave
   * this read (a lagging one is watched until its deadline, for its
   * backend's health) and go back to the spares.
   */
  async #blocks(stripe: number): Promise<Map<number, Uint8Array>> {
    const k = this.#layout.dataShards;
    const got = new Map<number, Uint8Array>();
    const reads = new Map<number, FrameRead>();
    for (;;) {
      if (this.#closed) throw new ReadClosedError();
      for (const [shard, cursor] of this.#active) if (!got.has(shard) && !reads.has(shard)) reads.set(shard, this.#readFrame(shard, cursor, stripe));
      let counted = got.size + [...reads.values()].filter((read) => !read.lagging).length;
      while (counted < k && this.#spare.length > 0) {
        // Beside a lagging shard (which may yet answer) only a spare worth asking; when too few could answer at all, any.
        const anyWillDo = got.size + reads.size < k;
        const at = anyWillDo ? 0 : this.#spare.findIndex((shard) => this.#options.hedgeTo?.(shard) ?? true);
        if (at < 0) break;
        const shard = this.#spare.splice(at, 1)[0]!;
        const cursor = new ShardCursor(this.#options.targets[shard]!, this.#layout, shard, stripe, this.endStripe);
        this.#active.set(shard, cursor);
        reads.set(shard, this.#readFrame(shard, cursor, stripe));
        counted++;
      }
      if (got.size >= k) {
        for (const read of reads.values()) this.#leave(read, stripe);
        return got;
      }
      if (got.size + reads.size < k) throw new ShardsUnavailableError(stripe, this.#damage);
      let wakeAtMs = Infinity;
      for (const read of reads.values()) wakeAtMs = Math.min(wakeAtMs, read.lagging ? read.deadlineAtMs : read.hedgeAtMs);
      let timer: NodeJS.Timeout | undefined;
      const waits = [...reads.values()].map((read) => read.settled);
      if (wakeAtMs !== Infinity) waits.push(new Promise<void>((resolve) => (timer = setTimeout(resolve, Math.max(0, wakeAtMs - performance.now())))));
      await Promise.race(waits);
      clearTimeout(timer);
      // Before calling a frame late, let I/O that completed meanwhile be handled: after an event-loop stall the
      // timer runs first, and a backend that did answer must not be marked down for it.
      if ([...reads.values()].some((read) => read.outcome === undefined && performance.now() >= read.deadlineAtMs)) await new Promise((resolve) => setImmediate(resolve));
      if (this.#closed) throw new ReadClosedError();
      const nowMs = performance.now();
      for (const [shard, read] of reads) {
        const outcome = read.outcome;
        if (outcome !== undefined) {
          reads.delete(shard);
          if ('block' in outcome) got.set(shard, outcome.block);
          else this.#drop(read, stripe, outcome.error);
        } else if (nowMs >= read.deadlineAtMs) {
          reads.delete(shard);
          this.#drop(read, stripe, new ShardTimeoutError(shard, stripe, read.deadlineMs));
        } else if (nowMs >= read.hedgeAtMs) {
          read.lagging = true;
        }
      }
    }
  }

  #readFrame(shard: number, cursor: ShardCursor, stripe: number): FrameRead {
    const startedMs = performance.now();
    const timing = this.#options.timing?.(shard, this.#layout.blockBytesOf(stripe) + FRAME_CHECKSUM_BYTES);
    const deadlineMs = timing?.deadlineMs ?? Infinity;
    const first = !cursor.started;
    const read: FrameRead = {
      shard,
      cursor,
      hedgeAtMs: startedMs + (timing?.hedgeAfterMs ?? Infinity),
      deadlineMs,
      deadlineAtMs: startedMs + deadlineMs,
      lagging: false,
      outcome: undefined,
      settled: Promise.resolve(),
    };
    read.settled = cursor.next().then(
      (block) => {
        read.outcome = { block };
        if (first) this.#options.onAnswer?.(shard, performance.now() - startedMs);
      },
      (error: unknown) => {
        read.outcome = { error };
      },
    );
    return read;
  }

  /** A shard that failed this read: reported, and not asked again. */
  #drop(read: FrameRead, stripe: number, error: unknown): void {
    this.#active.delete(read.shard);
    read.cursor.close();
    this.#report(read.shard, stripe, error);
  }

  #report(shard: number, stripe: number, error: unknown): void {
    const reason: ShardDamageReason = error instanceof ShardTimeoutError ? 'timeout' : error instanceof ShardDamageError ? error.reason : 'unreadable';
    const damage: ShardDamage = { shard, stripe, reason, error: error instanceof ShardDamageError ? error.cause_ : error };
    this.#damage.push(damage);
    this.#options.onDamage?.(damage);
  }

  /**
   * A shard not needed for this stripe after all (k others answered first):
   * it leaves the read and goes back to the spares. One that lagged is
   * watched until its deadline — a timeout then is its backend's to answer
   * for, though the read no longer waits for it.
   */
  #leave(read: FrameRead, stripe: number): void {
    this.#active.delete(read.shard);
    this.#spare.push(read.shard);
    if (!read.lagging || read.deadlineAtMs === Infinity) {
      read.cursor.close();
      return;
    }
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<'late'>((resolve) => (timer = setTimeout(resolve, Math.max(0, read.deadlineAtMs - performance.now()), 'late')));
    timer?.unref();
    void Promise.race([read.settled.then(() => 'settled' as const), late]).then((result) => {
      clearTimeout(timer);
      read.cursor.close();
      if (result === 'late') this.#report(read.shard, stripe, new ShardTimeoutError(read.shard, stripe, read.deadlineMs));
      else if (read.outcome !== undefined && 'error' in read.outcome) this.#report(read.shard, stripe, read.outcome.error);
    });
  }

  /**
   * A data shard of this stripe is not among the blocks because it failed
   * (damage reported) or its backend is known to be down: the stripe is served
   * degraded. A data shard merely passed over for a faster parity shard or copy
   * (read preference by latency) is not.
   */
  #missesDataShard(blocks: Map<number, Uint8Array>): boolean {
    for (let shard = 0; shard < this.#layout.dataShards; shard++) {
      if (blocks.has(shard)) continue;
      if (this.#options.hedgeTo?.(shard) === false || this.#damage.some((damage) => damage.shard === shard)) return true;
    }
    return false;
  }

  /** The k data blocks of a stripe: as read when every data shard answered, else rebuilt. */
  async #decode(stripe: number, blocks: Map<number, Uint8Array>): Promise<Uint8Array[]> {
    const layout = this.#layout;
    const k = layout.dataShards;
    if (k === 1) return [blocks.values().next().value!];
    const data = Array.from({ length: k }, (_, shard) => blocks.get(shard));
    if (data.every((block) => block !== undefined)) return data as Uint8Array[];
    const blockBytes = layout.blockBytesOf(stripe);
    const present = Array.from({ length: layout.shardCount }, (_, shard) => blocks.has(shard));
    const shards = Array.from({ length: layout.shardCount }, (_, shard) => blocks.get(shard) ?? new Uint8Array(blockBytes));
    await this.#options.codec!.reconstruct(shards, present);
    return shards.slice(0, k);
  }

  close(): void {
    this.#closed = true;
    for (const cursor of this.#active.values()) cursor.close();
    this.#active.clear();
  }
}

class ReadClosedError extends Error {
  override name = 'ReadClosedError';
  constructor() {
    super('the striped read was closed');
  }
}

/** The frames of one shard from a stripe on, read as one ranged request and verified one by one. */
class ShardCursor {
  readonly #target: ShardTarget;
  readonly #layout: StripeLayout;
  readonly #shard: number;
  readonly #endStripe: number;
  readonly #abort = new AbortController();
  #stripe: number;
  #chunks: AsyncIterator<Buffer> | undefined;
  #pending: Buffer[] = [];
  #pendingBytes = 0;
  /** next() was called: the request is (being) made. */
  started = false;

  constructor(target: ShardTarget, layout: StripeLayout, shard: number, fromStripe: number, endStripe: number) {
    this.#target = target;
    this.#layout = layout;
    this.#shard = shard;
    this.#stripe = fromStripe;
    this.#endStripe = endStripe;
  }

  /** The next stripe's block, verified. */
  async next(): Promise<Uint8Array> {
    assert(this.#stripe < this.#endStripe, 'a cursor reads no further than its range');
    this.started = true;
    const stripe = this.#stripe++;
    const blockBytes = this.#layout.blockBytesOf(stripe);
    const frame = await this.#take(blockBytes + FRAME_CHECKSUM_BYTES, stripe);
    const block = frame.subarray(0, blockBytes);
    const stored = frame.readUInt32BE(blockBytes);
    if (this.#layout.frameChecksum(block, stripe, this.#shard) !== stored) {
      // Another blob's shard fails every frame; its header says whose it is (read only on this failure path).
      const header = this.#layout.headerBytes > 0 ? await checkHeader(this.#target, this.#layout, this.#shard, this.#abort.signal) : undefined;
      if (header?.reason === 'foreign') throw new ShardDamageError('foreign', header.error, `shard ${this.#shard} stripe ${stripe}: checksum mismatch; ${String(header.error)}`);
      throw new ShardDamageError('corrupt', undefined, `shard ${this.#shard} stripe ${stripe}: checksum mismatch`);
    }
    return block;
  }

  async #take(bytes: number, stripe: number): Promise<Buffer> {
    while (this.#pendingBytes < bytes) {
      const chunks = await this.#open(stripe);
      let next: IteratorResult<Buffer>;
      try {
        next = await chunks.next();
      } catch (error) {
        const reason: ShardDamageReason = error instanceof ShortReadError ? 'short' : 'unreadable';
        throw new ShardDamageError(reason, error, `shard ${this.#shard}: ${error instanceof Error ? error.message : String(error)}`);
      }
      if (next.done === true) throw new ShardDamageError('short', undefined, `shard ${this.#shard} ended inside stripe ${stripe}`);
      this.#pending.push(next.value);
      this.#pendingBytes += next.value.length;
    }
    const first = this.#pending[0]!;
    let frame: Buffer;
    if (first.length >= bytes) {
      frame = first.subarray(0, bytes);
      if (first.length === bytes) this.#pending.shift();
      else this.#pending[0] = first.subarray(bytes);
    } else {
      const joined = Buffer.concat(this.#pending, this.#pendingBytes);
      frame = joined.subarray(0, bytes);
      this.#pending = joined.length > bytes ? [joined.subarray(bytes)] : [];
    }
    this.#pendingBytes -= bytes;
    return frame;
  }

  async #open(stripe: number): Promise<AsyncIterator<Buffer>> {
    if (this.#chunks !== undefined) return this.#chunks;
    const { backend, key } = this.#target;
    try {
      const body = await backend.read(key, this.#layout.frameOffset(stripe), this.#layout.frameOffset(this.#endStripe), {
        signal: this.#abort.signal,
        chunkBytes: this.#layout.blockBytes + FRAME_CHECKSUM_BYTES,
      });
      this.#chunks = body[Symbol.asyncIterator]();
      return this.#chunks;
    } catch (error) {
      const reason: ShardDamageReason = error instanceof BackendObjectMissingError ? 'missing' : error instanceof ShortReadError ? 'short' : 'unreadable';
      throw new ShardDamageError(reason, error, `shard ${this.#shard} on ${backend.name}: ${error instanceof Error ? error.message : String(error)}`);
    }
  }

  close(): void {
    this.#abort.abort();
    void this.#chunks?.return?.().catch(() => undefined);
  }
}
