import type { Backend, BackendWriter } from '../backend/backend.ts';
import { allocateShards, type ErasureCodec } from '../erasure/index.ts';
import { assert } from '../util/assert.ts';
import type { StripeLayout } from './stripe-layout.ts';

/** Stripes being encoded and written at once: one fills while the other is on its way. */
const STRIPES_IN_FLIGHT_MAX = 2;
/**
 * Once a write quorum of shards has a stripe, the others get this long to
 * catch up before they are given up (and repaired later): a slow or hung
 * backend must not hold every upload, nor make it buffer without bound.
 */
export const SHARD_LAG_MS_DEFAULT = 5_000;
/** A stripe's write that makes no progress for this long fails, quorum or not. */
export const SHARD_STALL_MS_DEFAULT = 60_000;

export interface ShardTarget {
  readonly backend: Backend;
  readonly key: string;
}

export interface StripedWriteOptions {
  readonly layout: StripeLayout;
  /** One per shard, data shards first. */
  readonly targets: readonly ShardTarget[];
  /** Required when the layout has more than one data shard; with one, parity shards are copies. */
  readonly codec: ErasureCodec | undefined;
  /** Shards that must be committed before commit() resolves: at least dataShards. */
  readonly writeQuorum: number;
  /**
   * How long a shard may lag the quorum — behind the stripe the quorum has
   * written, or uncommitted once the quorum committed — before it is given
   * up (and repaired later): a number for every shard, or per shard (its
   * backend's deadline). Default SHARD_LAG_MS_DEFAULT.
   */
  readonly shardLagMs?: number | ((shard: number) => number);
  readonly shardStallMs?: number;
  /**
   * Told each shard's fate as soon as it is known: committed, or failed
   * (an error of its backend, or given up as lagging) — for the backend's
   * health, even when the write as a whole fails. Not told of skipped
   * shards, nor of shards discarded because the write was aborted.
   */
  readonly onShardOutcome?: (outcome: ShardOutcome) => void;
  /** Shards not to write at all (their backend is known to be down): failed from the start, repaired later. */
  readonly skipShards?: ReadonlySet<number>;
}

export interface ShardOutcome {
  readonly shard: number;
  readonly committed: boolean;
  readonly error?: unknown;
}

export interface StripedWriteResult {
  /** Shards committed when the write was acknowledged (at least the quorum). */
  readonly committedShards: readonly number[];
  /** Every shard's final outcome once the stragglers are done; the uncommitted ones need repair. Never rejects. */
  readonly settled: Promise<readonly ShardOutcome[]>;
}

/** Fewer shards than the write quorum could be written. */
export class WriteQuorumError extends Error {
  override name = 'WriteQuorumError';
  constructor(
    readonly quorum: number,
    readonly failures: readonly ShardOutcome[],
  ) {
    super(
      `write quorum of ${quorum} shards lost: ${failures.map((failure) => `shard ${failure.shard}: ${failure.error instanceof Error ? failure.error.message : String(failure.error)}`).join('; ')}`,
    );
  }
}

export class ShardSkippedError extends Error {
  override name = 'ShardSkippedError';
  constructor(backend: string) {
    super(`not written: backend ${backend} is down`);
  }
}

/** Stands in for the writer of a skipped shard: nothing is ever sent to it. */
const SKIPPED_WRITER: BackendWriter = {
  write: async () => undefined,
  commit: async () => undefined,
  abort: async () => undefined,
};

export class ShardLagError extends Error {
  override name = 'ShardLagError';
  constructor(lagMs: number) {
    super(`gave up on a shard that made no progress for ${lagMs} ms`);
  }
}

/** The blocks of one stripe: k data blocks (contiguous, so the body is copied in once) and m parity blocks. */
interface StripeBuffers {
  readonly blockBytes: number;
  /** The k data blocks end to end. */
  readonly dataRegion: Uint8Array;
  readonly data: Uint8Array[];
  readonly parity: Uint8Array[];
}

interface ShardState {
  readonly index: number;
  readonly writer: BackendWriter;
  /** This shard's writes, in stripe order. */
  chain: Promise<void>;
  failure: unknown;
}

/**
 * The data part of writing one blob under a StripeLayout: the body is
 * copied into stripe buffers, each full stripe is encoded (off the event
 * loop with the native codec) and its frames written to every shard's
 * backend concurrently, while the next stripe fills. Memory: at most
 * STRIPES_IN_FLIGHT_MAX stripes of k + m blocks, whatever the blob's size.
 *
 * Shards fail independently: a failed or lagging shard is dropped and the
 * write goes on while the write quorum is still reachable. commit() resolves
 * once a quorum of shards is durable; the rest finish in the background and
 * `settled` tells which did not, for the caller to record for repair.
 */
export class StripedBlobWriter {
  readonly #layout: StripeLayout;
  readonly #codec: ErasureCodec | undefined;
  readonly #quorum: number;
  readonly #lagMs: (shard: number) => number;
  readonly #stallMs: number;
  readonly #onShardOutcome: (outcome: ShardOutcome) => void;
  readonly #shards: ShardState[];
  readonly #freeBuffers: StripeBuffers[] = [];
  readonly #inFlight = new Set<Promise<void>>();
  #current: StripeBuffers | undefined;
  #filled = 0;
  #stripe = 0;
  #writtenBytes = 0;
  #failure: unknown;
  #state: 'open' | 'committing' | 'committed' | 'aborted' = 'open';

  constructor(options: StripedWriteOptions) {
    const { layout, targets, codec, writeQuorum } = options;
    assert(targets.length === layout.shardCount, `${targets.length} targets for ${layout.shardCount} shards`);
    assert(layout.dataShards === 1 || (codec !== undefined && codec.dataShards === layout.dataShards && codec.parityShards === layout.parityShards), 'a codec matching the layout');
    assert(Number.isInteger(writeQuorum) && writeQuorum >= layout.dataShards && writeQuorum <= layout.shardCount, `write quorum ${writeQuorum}`);
    this.#layout = layout;
    this.#codec = codec;
    this.#quorum = writeQuorum;
    const lagMs = options.shardLagMs ?? SHARD_LAG_MS_DEFAULT;
    this.#lagMs = typeof lagMs === 'number' ? () => lagMs : lagMs;
    this.#stallMs = options.shardStallMs ?? SHARD_STALL_MS_DEFAULT;
    this.#onShardOutcome = options.onShardOutcome ?? (() => undefined);
    const skip = options.skipShards ?? new Set<number>();
    assert(targets.length - skip.size >= writeQuorum, 'skipped shards leave the write quorum reachable');
    this.#shards = targets.map((target, index) =>
      skip.has(index)
        ? { index, writer: SKIPPED_WRITER, chain: Promise.resolve(), failure: new ShardSkippedError(target.backend.name) }
        : { index, writer: target.backend.create(target.key, layout.shardBytes), chain: Promise.resolve(), failure: undefined },
    );
  }

  async write(chunk: Uint8Array): Promise<void> {
    assert(this.#state === 'open', `write to ${this.#state} blob`);
    this.#throwIfFailed();
    if (this.#writtenBytes + chunk.length > this.#layout.sizeBytes) throw new RangeError(`body longer than the announced ${this.#layout.sizeBytes} bytes`);
    this.#writtenBytes += chunk.length;
    let at = 0;
    while (at < chunk.length) {
      const buffers = (this.#current ??= this.#takeBuffers());
      const capacity = this.#layout.dataBytesOf(this.#stripe);
      const taken = Math.min(chunk.length - at, capacity - this.#filled);
      buffers.dataRegion.set(chunk.subarray(at, at + taken), this.#filled);
      this.#filled += taken;
      at += taken;
      if (this.#filled === capacity) await this.#dispatchCurrent();
    }
  }

  async commit(): Promise<StripedWriteResult> {
    assert(this.#state === 'open', `commit of ${this.#state} blob`);
    this.#state = 'committing';
    try {
      if (this.#writtenBytes !== this.#layout.sizeBytes) throw new RangeError(`body of ${this.#writtenBytes} bytes, ${this.#layout.sizeBytes} announced`);
      assert(this.#current === undefined && this.#stripe === this.#layout.stripeCount, 'every stripe dispatched');
      await Promise.all(this.#inFlight);
      if (this.#layout.stripeCount === 0 && this.#layout.headerBytes > 0) await this.#writeHeadersOnly();
      this.#throwIfFailed();
      const result = await this.#commitShards();
      this.#state = 'committed';
      return result;
    } catch (error) {
      await this.abort();
      throw error;
    }
  }

  /** Discards every shard. After a successful commit it does nothing: the blob is the caller's to remove. */
  async abort(): Promise<void> {
    if (this.#state === 'aborted' || this.#state === 'committed') return;
    this.#state = 'aborted';
    this.#failure ??= new Error('write aborted');
    await Promise.allSettled(this.#inFlight);
    await Promise.allSettled(this.#shards.map((shard) => shard.writer.abort()));
  }

  /** An empty blob's shards are their headers alone (no stripe carried them). */
  async #writeHeadersOnly(): Promise<void> {
    const writes = this.#alive().map((shard) => {
      shard.chain = shard.writer.write(this.#layout.shardHeader(shard.index)).catch((error: unknown) => this.#dropShard(shard, error));
      return { shard, done: shard.chain };
    });
    await this.#awaitStripe(writes); // the same quorum, lag and stall rules as a stripe's
    if (this.#alive().length < this.#quorum) throw this.#quorumError();
  }

  #throwIfFailed(): void {
    if (this.#failure !== undefined) throw this.#failure;
  }

  #alive(): ShardState[] {
    return this.#shards.filter((shard) => shard.failure === undefined);
  }

  #takeBuffers(): StripeBuffers {
    return this.#freeBuffers.pop() ?? allocateStripe(this.#layout.dataShards, this.#layout.parityShards, this.#layout.blockBytes);
  }

  async #dispatchCurrent(): Promise<void> {
    const buffers = this.#current!;
    const stripe = this.#stripe;
    this.#current = undefined;
    this.#filled = 0;
    this.#stripe++;
    const writing = this.#writeStripe(stripe, buffers).catch((error: unknown) => {
      this.#failure ??= error;
    });
    this.#inFlight.add(writing);
    void writing.finally(() => this.#inFlight.delete(writing));
    while (this.#inFlight.size >= STRIPES_IN_FLIGHT_MAX) await Promise.race(this.#inFlight);
    this.#throwIfFailed();
  }

  async #writeStripe(stripe: number, filled: StripeBuffers): Promise<void> {
    const layout = this.#layout;
    const blockBytes = layout.blockBytesOf(stripe);
    // The last stripe's blocks are shorter: its bytes move into blocks of their length.
    let buffers = filled;
    if (blockBytes !== filled.blockBytes) {
      buffers = allocateStripe(layout.dataShards, layout.parityShards, blockBytes);
      buffers.dataRegion.set(filled.dataRegion.subarray(0, layout.dataBytesOf(stripe)));
      this.#freeBuffers.push(filled);
    } else if (layout.dataBytesOf(stripe) < buffers.dataRegion.length) {
      buffers.dataRegion.fill(0, layout.dataBytesOf(stripe)); // a reused buffer's old bytes are not padding
    }
    // Each shard's writes are queued here, before the first await: encodes of
    // consecutive stripes finish in any order (a short last stripe first),
    // but a shard's frames must reach its backend in stripe order.
    const encoded = (async () => {
      if (layout.dataShards > 1) await this.#codec!.encode(buffers.data, buffers.parity);
      const blocks = Array.from({ length: layout.shardCount }, (_, shard) => blockOf(buffers, layout.dataShards, shard));
      return { blocks, checksums: blocks.map((block, shard) => layout.encodeFrameChecksum(block, stripe, shard)) };
    })();
    const writes = this.#alive().map((shard) => {
      const write = shard.chain.then(async () => {
        const { blocks, checksums } = await encoded;
        if (shard.failure !== undefined) return;
        // A shard's header goes out with its first frame, in the same write.
        const frame = [blocks[shard.index]!, checksums[shard.index]!];
        await shard.writer.write(stripe === 0 && layout.headerBytes > 0 ? [layout.shardHeader(shard.index), ...frame] : frame);
      });
      shard.chain = write.catch((error: unknown) => this.#dropShard(shard, error));
      return { shard, done: shard.chain };
    });
    await encoded;
    const gaveUp = await this.#awaitStripe(writes);
    if (this.#alive().length < this.#quorum) throw this.#quorumError();
    // A shard given up on may still be writing from these buffers: leave them to the collector.
    if (!gaveUp && buffers === filled) this.#freeBuffers.push(buffers);
  }

  /**
   * Waits for every shard's writes of one stripe, or for a quorum of them
   * and then at most the lag allowance for the rest, which are given up.
   * True when some were.
   */
  async #awaitStripe(writes: readonly { shard: ShardState; done: Promise<void> }[]): Promise<boolean> {
    const pending = new Set(writes.map((write) => write.shard));
    let succeeded = 0;
    let reachedQuorum: () => void = () => undefined;
    const quorum = new Promise<void>((resolve) => (reachedQuorum = resolve));
    for (const { shard, done } of writes) {
      void done.then(() => {
        pending.delete(shard);
        // A shard that failed is done too, but it does not count.
        if (shard.failure === undefined && ++succeeded >= this.#quorum) reachedQuorum();
      });
    }
    const all = Promise.all(writes.map((write) => write.done));
    // Without a quorum there is no lag to measure; a shard that makes no
    // progress for the stall allowance (a dead mount, a silent endpoint) is
    // given up all the same, so the upload fails instead of hanging.
    let stallTimer: NodeJS.Timeout | undefined;
    const stalled = new Promise<'stalled'>((resolve) => (stallTimer = setTimeout(resolve, this.#stallMs, 'stalled')));
    const first = await Promise.race([all.then(() => 'all' as const), quorum.then(() => 'quorum' as const), stalled]);
    clearTimeout(stallTimer);
    if (pending.size === 0) return false;
    if (first === 'stalled') {
      for (const shard of pending) this.#dropShard(shard, new ShardLagError(this.#stallMs));
      return true;
    }
    // Each shard still writing gets its own lag allowance (its backend's deadline) to catch up.
    const lagged = await Promise.all(
      [...pending].map(async (shard) => {
        let timer: NodeJS.Timeout | undefined;
        const done = writes.find((write) => write.shard === shard)!.done;
        const late = await Promise.race([done.then(() => false), new Promise<boolean>((resolve) => (timer = setTimeout(resolve, this.#lagMs(shard.index), true)))]);
        clearTimeout(timer);
        if (late && pending.has(shard)) this.#dropShard(shard, new ShardLagError(this.#lagMs(shard.index)));
        return late;
      }),
    );
    return lagged.some((late) => late);
  }

  #dropShard(shard: ShardState, error: unknown): void {
    if (shard.failure !== undefined) return;
    shard.failure = error;
    void shard.writer.abort().catch(() => undefined);
    // A shard failing because the whole write was aborted says nothing of its backend.
    if (this.#state !== 'aborted') this.#onShardOutcome({ shard: shard.index, committed: false, error });
  }

  #quorumError(): WriteQuorumError {
    return new WriteQuorumError(
      this.#quorum,
      this.#shards.filter((shard) => shard.failure !== undefined).map((shard) => ({ shard: shard.index, committed: false, error: shard.failure })),
    );
  }

  async #commitShards(): Promise<StripedWriteResult> {
    const outcomes: (ShardOutcome | undefined)[] = this.#shards.map((shard) =>
      shard.failure === undefined ? undefined : { shard: shard.index, committed: false, error: shard.failure },
    );
    const committed: number[] = [];
    let resolveAck!: () => void;
    let rejectAck!: (error: unknown) => void;
    const ack = new Promise<void>((resolve, reject) => {
      resolveAck = resolve;
      rejectAck = reject;
    });
    const check = (): void => {
      if (committed.length >= this.#quorum) resolveAck();
      const failed = outcomes.filter((outcome) => outcome !== undefined && !outcome.committed).length;
      if (this.#shards.length - failed < this.#quorum) rejectAck(this.#quorumError());
    };
    // Once the quorum committed, a shard still committing gets its lag allowance, then is given up.
    const givenUp = this.#shards.map(() => {
      let giveUp!: (error: unknown) => void;
      const promise = new Promise<never>((_, reject) => (giveUp = reject));
      promise.catch(() => undefined);
      return { promise, giveUp, timer: undefined as NodeJS.Timeout | undefined };
    });
    const settled = Promise.all(
      this.#shards.map(async (shard): Promise<ShardOutcome> => {
        const known = outcomes[shard.index];
        if (known !== undefined) return known;
        let outcome: ShardOutcome;
        try {
          await Promise.race([this.#withinStall(shard.writer.commit()), givenUp[shard.index]!.promise]);
          committed.push(shard.index);
          outcome = outcomes[shard.index] = { shard: shard.index, committed: true };
        } catch (error) {
          shard.failure = error;
          if (error instanceof ShardLagError) void shard.writer.abort().catch(() => undefined);
          outcome = outcomes[shard.index] = { shard: shard.index, committed: false, error };
        } finally {
          clearTimeout(givenUp[shard.index]!.timer);
          check();
        }
        // A commit cut short because the write lost its quorum and was aborted says nothing of its backend.
        if (outcome.committed || this.#state !== 'aborted') this.#onShardOutcome(outcome);
        return outcome;
      }),
    );
    check();
    await ack;
    for (const shard of this.#shards) {
      if (outcomes[shard.index] !== undefined) continue;
      const lagMs = this.#lagMs(shard.index);
      const entry = givenUp[shard.index]!;
      entry.timer = setTimeout(() => entry.giveUp(new ShardLagError(lagMs)), lagMs);
      entry.timer.unref();
    }
    return { committedShards: [...committed], settled };
  }

  /** A commit that hangs (a silent endpoint) fails after the stall allowance, so acks and `settled` always come. */
  #withinStall(operation: Promise<void>): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const stalled = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new ShardLagError(this.#stallMs)), this.#stallMs);
    });
    return Promise.race([operation, stalled]).finally(() => clearTimeout(timer));
  }
}

function allocateStripe(dataShards: number, parityShards: number, blockBytes: number): StripeBuffers {
  if (dataShards === 1) {
    // Replicas: every shard is the data block itself.
    const block = new Uint8Array(blockBytes);
    return { blockBytes, dataRegion: block, data: [block], parity: [] };
  }
  const set = allocateShards(dataShards, parityShards, blockBytes);
  const first = set.data[0]!;
  return { blockBytes, dataRegion: new Uint8Array(first.buffer, first.byteOffset, dataShards * blockBytes), data: set.data, parity: set.parity };
}

function blockOf(buffers: StripeBuffers, dataShards: number, shard: number): Uint8Array {
  if (shard < dataShards) return buffers.data[shard]!;
  return dataShards === 1 ? buffers.data[0]! : buffers.parity[shard - dataShards]!;
}
