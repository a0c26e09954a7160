import { randomInt } from 'node:crypto';
import { Readable } from 'node:stream';
import { BackendTimeoutError, type Backend } from '../backend/backend.ts';
import { type BlobRef, type BlobRequest, type BlobStore, type BlobWriter } from '../blob/blob-store.ts';
import { LOCAL_PLACEMENT, type PlacementConfig, type StripedPlacementConfig, type TalusConfig } from '../config/config.ts';
import { createErasureCodec, type ErasureCodec } from '../erasure/index.ts';
import { assert } from '../util/assert.ts';
import { newBlobId } from '../util/ids.ts';
import { S3Error } from '../util/s3-error.ts';
import { BackendHealth, healthiestFirst, withDeadline } from './backend-health.ts';
import { decodeLocation, encodeLocation, newBlobLocation, objectRecordKey, REMOVED_BACKEND, shardKey, stripeLayoutOf, type BlobLocation } from './blob-location.ts';
import { openStripedRead, ShardsUnavailableError, type ShardDamage, type StripedReadOptions } from './striped-reader.ts';
import { SHARD_LAG_MS_DEFAULT, ShardSkippedError, StripedBlobWriter, WriteQuorumError, type ShardOutcome, type ShardTarget } from './striped-writer.ts';

const REMOVAL_BACKOFF_MS_MIN = 1_000;
/** Retries for the shards of a blob whose version commit failed (1 s, 4 s, 16 s, 64 s). */
const ABANDONED_REMOVAL_ATTEMPTS = 4;
const REMOVAL_BACKOFF_MS_MAX = 5 * 60_000;

/** A shard that needs rewriting: it failed to write, or a read found it missing or corrupt. */
export interface RepairRequest {
  readonly blobId: string;
  readonly shard: number;
  readonly reason: string;
}

/** Where repairs are recorded, durably (the metadata store). */
export interface RepairLog {
  recordRepairs(requests: readonly RepairRequest[]): Promise<void>;
}

export interface PlacedBlobStoreOptions {
  readonly local: BlobStore;
  readonly backends: ReadonlyMap<string, Backend>;
  readonly config: TalusConfig;
  readonly health: BackendHealth;
  readonly repairs: RepairLog;
  readonly onError?: (message: string, error: unknown) => void;
}

/**
 * The engine's blob store when placements are configured: each bucket's
 * blobs go where its placement says — the local blob store (placement
 * "local"), or striped over backends (erasure, replicas, single on a
 * backend), hybrid choosing by size. Every placed blob carries its location,
 * so reads and removals need no configuration of the past: a blob written
 * under an old placement reads back after the configuration changed.
 */
export class PlacedBlobStore implements BlobStore {
  readonly #local: BlobStore;
  readonly #backends: ReadonlyMap<string, Backend>;
  /** talus.toml's placements, and those added at run time (addPlacement). */
  readonly #placements: Map<string, PlacementConfig>;
  /** Each bucket's placement: talus.toml's [buckets], changed at run time by setBucketPlacement. */
  readonly #bucketPlacements: Map<string, string>;
  /** Where buckets without their own placement go: talus.toml's [defaults], changed by a reload (setDefaultPlacement). */
  #defaultPlacement: string;
  readonly #health: BackendHealth;
  readonly #repairs: RepairLog;
  readonly #codecs = new Map<string, ErasureCodec>();
  readonly #removalBackoff = new Map<string, { untilMs: number; delayMs: number }>();
  /** Acknowledged writes whose last shards are still settling, and the repairs they record. */
  readonly #settling = new Set<Promise<void>>();
  #closed = false;
  /** Backends a RemoveBackend is taking away: commits of blobs with a shard on one are refused from now on. */
  readonly #withdrawn = new Set<string>();
  /** Metadata commits of placed blobs under way (guardCommit): a removal waits for them before it counts blobs. */
  readonly #commitsInFlight = new Set<Promise<unknown>>();
  readonly #onError: (message: string, error: unknown) => void;

  constructor(options: PlacedBlobStoreOptions) {
    this.#local = options.local;
    this.#backends = options.backends;
    this.#placements = new Map(options.config.placements.map((placement) => [placement.name, placement]));
    this.#bucketPlacements = new Map(options.config.buckets);
    this.#defaultPlacement = options.config.defaultPlacement;
    this.#health = options.health;
    this.#repairs = options.repairs;
    this.#onError = options.onError ?? (() => undefined);
    for (const placement of options.config.placements) {
      if (placement.type === 'hybrid') continue;
      for (const name of placement.backends) assert(this.#backends.has(name), `placement ${placement.name}: backend ${name} is open`);
    }
  }

  /** Every configured backend. */
  backends(): Backend[] {
    return [...this.#backends.values()];
  }

  get health(): BackendHealth {
    return this.#health;
  }

  /** Every placement, configured or added at run time. */
  placements(): PlacementConfig[] {
    return [...this.#placements.values()];
  }

  hasPlacement(name: string): boolean {
    return name === LOCAL_PLACEMENT || this.#placements.has(name);
  }

  /** A new placement over open backends, or a hybrid over known striped ones (the admin API's AddPlacement): usable by buckets from now on. */
  addPlacement(placement: PlacementConfig): void {
    assert(!this.#placements.has(placement.name) && placement.name !== LOCAL_PLACEMENT, `placement ${placement.name} is new`);
    this.#checkParts(placement);
    this.#placements.set(placement.name, placement);
  }

  /** A striped placement's backends are open; a hybrid's parts are local or known striped placements. */
  #checkParts(placement: PlacementConfig): void {
    if (placement.type !== 'hybrid') {
      for (const name of placement.backends) assert(this.#backends.has(name), `placement ${placement.name}: backend ${name} is open`);
      return;
    }
    for (const part of [placement.small, placement.large]) {
      assert(part === LOCAL_PLACEMENT || this.#placements.has(part), `placement ${placement.name}: placement ${part} exists`);
      assert(part !== placement.name && this.#placements.get(part)?.type !== 'hybrid', `placement ${placement.name}: ${part} is striped`);
    }
  }

  /**
   * Replaces a placement of the same name (the admin API's UpdatePlacement):
   * new blobs take the new backends or geometry at once; blobs written before
   * keep their recorded location until re-placement moves them (it compares
   * each with placementFor).
   */
  replacePlacement(placement: PlacementConfig): void {
    const current = this.#placements.get(placement.name);
    assert(current !== undefined, `placement ${placement.name} exists`);
    this.#checkParts(placement);
    this.#placements.set(placement.name, placement);
  }

  /** The striped placements that name `backend` among their candidates. */
  placementsNaming(backend: string): string[] {
    return [...this.#placements.values()].filter((placement) => placement.type !== 'hybrid' && placement.backends.includes(backend)).map((placement) => placement.name);
  }

  /**
   * Why `name` cannot be removed now (a bucket, the default or a hybrid
   * placement uses it), or undefined. Blobs written under it keep reading:
   * each records its own backends.
   */
  placementInUse(name: string): string | undefined {
    if (this.#defaultPlacement === name) return 'it is the default placement';
    for (const [bucket, placement] of this.#bucketPlacements) if (placement === name) return `bucket ${bucket} uses it`;
    for (const placement of this.#placements.values()) {
      if (placement.type === 'hybrid' && (placement.small === name || placement.large === name)) {
        return `hybrid placement ${placement.name} holds it as its ${placement.small === name ? 'small' : 'large'} placement (UpdatePlacement or DeletePlacement ${placement.name} first)`;
      }
    }
    return undefined;
  }

  removePlacement(name: string): void {
    assert(this.placementInUse(name) === undefined, `placement ${name} is unused`);
    this.#placements.delete(name);
  }

  /** The name of the placement `bucket`'s new blobs get: its own, else the default. */
  bucketPlacementName(bucket: string): string {
    return this.#bucketPlacements.get(bucket) ?? this.#defaultPlacement;
  }

  /**
   * From now on, new blobs of `bucket` go to `placement` (a configured one,
   * or "local"); blobs written before stay where they are until re-placement
   * moves them (Healer.replaceAll compares each blob with placementFor).
   */
  setBucketPlacement(bucket: string, placement: string): void {
    assert(this.hasPlacement(placement), `placement ${placement} is configured`);
    this.#bucketPlacements.set(bucket, placement);
  }

  /** Each bucket's own placement (talus.toml's [buckets] and run-time choices); buckets not in it take the default. */
  bucketPlacements(): ReadonlyMap<string, string> {
    return this.#bucketPlacements;
  }

  defaultPlacementName(): string {
    return this.#defaultPlacement;
  }

  /** From now on, buckets without their own placement get `name` (a configured placement, or "local"): a reload of talus.toml. */
  setDefaultPlacement(name: string): void {
    assert(name === LOCAL_PLACEMENT || this.#placements.has(name), `placement ${name} is configured`);
    this.#defaultPlacement = name;
  }

  /** `bucket` takes the default placement again (its choice was dropped: the bucket is gone). */
  forgetBucketPlacement(bucket: string): void {
    this.#bucketPlacements.delete(bucket);
  }

  /** The placement a new blob of `bucket` gets: per-bucket, else the default; a hybrid one resolved by size. */
  placementFor(bucket: string | undefined, sizeBytes: number | undefined): StripedPlacementConfig | undefined {
    const name = bucket === undefined ? this.#defaultPlacement : this.bucketPlacementName(bucket);
    const placement = name === LOCAL_PLACEMENT ? undefined : this.#placements.get(name);
    if (placement === undefined) return undefined;
    if (placement.type !== 'hybrid') return placement;
    // Without a known size the large placement is the safe choice: it bounds memory per shard.
    const part = sizeBytes !== undefined && sizeBytes < placement.thresholdBytes ? placement.small : placement.large;
    const resolved = part === LOCAL_PLACEMENT ? undefined : this.#placements.get(part);
    if (resolved === undefined) return undefined;
    assert(resolved.type !== 'hybrid', 'hybrid placements hold striped ones');
    return resolved;
  }

  /**
   * Runs the metadata commit of a version or part made of `blobs`, unless a
   * blob has a shard on a backend that is not open here (removed, or being
   * removed): a write that chose its backends under an earlier placement
   * must not commit a shard a RemoveBackend already counted out — refused
   * with a retryable 503, and the caller's abort removes its shards. A Set
   * lookup per shard of each placed blob (locations are parsed once, cached).
   */
  async guardCommit<T>(blobs: readonly BlobRef[], commit: () => Promise<T>): Promise<T> {
    for (const blob of blobs) {
      if (blob.location === undefined) continue;
      for (const name of decodeLocation(blob.location).backends) {
        if (!this.#backends.has(name) || this.#withdrawn.has(name)) {
          throw new S3Error('ServiceUnavailable', `Backend ${name} was removed while this write was in flight; try again.`);
        }
      }
    }
    const committing = commit();
    this.#commitsInFlight.add(committing);
    try {
      return await committing;
    } finally {
      this.#commitsInFlight.delete(committing);
    }
  }

  /**
   * Refuses commits naming `backend` from now on (guardCommit), and resolves
   * once every commit already past that check has ended: after it, a count
   * of the blobs on `backend` misses no write in flight. restore() undoes it.
   */
  async withdraw(backend: string): Promise<void> {
    this.#withdrawn.add(backend);
    await Promise.allSettled([...this.#commitsInFlight]);
  }

  /** `backend` takes commits again (its removal was refused), or was removed (its name may be added anew). */
  restore(backend: string): void {
    this.#withdrawn.delete(backend);
  }

  create(request: BlobRequest = {}): BlobWriter {
    const placement = this.placementFor(request.bucket, request.sizeBytes);
    if (placement === undefined) return this.#local.create(request);
    if (request.sizeBytes === undefined) throw new S3Error('MissingContentLength');
    const chosen = this.#chooseBackends(placement);
    this.#refuseWithoutQuorum(placement, chosen);
    const blobId = newBlobId();
    const location = newBlobLocation(blobId, { ...placement, sizeBytes: request.sizeBytes }, chosen);
    const targets = this.shardTargets(blobId, location);
    return new PlacedBlobWriter(blobId, location, new StripedBlobWriter({
      layout: stripeLayoutOf(blobId, location),
      targets,
      codec: this.codecFor(location),
      writeQuorum: placement.writeQuorum,
      skipShards: this.#shardsToSkip(location, placement.writeQuorum),
      shardLagMs: (shard) => this.#lagAllowanceMs(location.backends[shard]!),
      onShardOutcome: (outcome) => this.#reportShardOutcome(location, targets, outcome),
    }), (settled) => this.#track(settled.then((outcomes) => this.#afterWrite(blobId, location, outcomes))), (blob) => this.remove(blob));
  }

  async read(blob: BlobRef, start: number, end: number): Promise<Readable> {
    if (blob.location === undefined) return this.#local.read(blob, start, end);
    const location = decodeLocation(blob.location);
    const targets = this.shardTargets(blob.blobId, location);
    const body = await openStripedRead({
      layout: stripeLayoutOf(blob.blobId, location),
      targets,
      codec: this.codecFor(location),
      start,
      end,
      preference: this.readPreference(location),
      onDamage: (damage) => this.#onDamage(blob.blobId, location, damage, targets),
      ...this.readTiming(location, targets),
    }).catch((error: unknown) => {
      // The bytes are not lost, only out of reach until enough backends answer: 503, which clients retry.
      if (error instanceof ShardsUnavailableError) {
        this.#onError(`blob ${blob.blobId} unavailable`, error);
        throw new S3Error('ServiceUnavailable', 'Too few of the backends holding this object are reachable; try again later.');
      }
      throw error;
    });
    return Readable.from(body, { objectMode: false });
  }

  /** Removes every shard; any backend that fails (or is backing off) makes the whole removal fail: removal is idempotent, retry it. */
  async remove(blob: BlobRef): Promise<void> {
    if (blob.location === undefined) return this.#local.remove(blob);
    const retryAtMs = (await this.removeMany([blob])).get(blob.blobId);
    if (retryAtMs !== undefined) throw new Error(`blob ${blob.blobId}: not every shard could be removed; retry after ${new Date(retryAtMs).toISOString()}`);
  }

  /**
   * Removes the shards of many blobs with one request per backend (S3:
   * DeleteObjects). A backend that fails is left alone for a growing while
   * (1 s doubling to 5 min, reset by success): its blobs come back then, and
   * until then no request is sent to it.
   */
  async removeMany(blobs: readonly BlobRef[]): Promise<Map<string, number>> {
    const failed = new Map<string, number>();
    const nowMs = Date.now();
    const keysByBackend = new Map<string, { keys: string[]; blobIds: string[] }>();
    await Promise.all(
      blobs
        .filter((blob) => blob.location === undefined)
        .map(async (blob) => {
          try {
            await this.#local.remove(blob);
          } catch (error) {
            this.#onError(`removing local blob ${blob.blobId} failed`, error);
            failed.set(blob.blobId, nowMs + REMOVAL_BACKOFF_MS_MIN);
          }
        }),
    );
    for (const blob of blobs) {
      if (blob.location === undefined) continue;
      const location = decodeLocation(blob.location);
      for (const [shard, name] of location.backends.entries()) {
        if (name === REMOVED_BACKEND) continue; // taken away by a forced RemoveBackend: nothing to remove there
        const batch = keysByBackend.get(name) ?? { keys: [], blobIds: [] };
        batch.keys.push(shardKey(blob.blobId, shard));
        // Its object record (if one was written) goes with its shards: recover --scan must not find a purged blob's.
        if (location.backends.indexOf(name) === shard) batch.keys.push(objectRecordKey(blob.blobId));
        batch.blobIds.push(blob.blobId);
        keysByBackend.set(name, batch);
      }
    }
    await Promise.all(
      [...keysByBackend].map(async ([name, batch]) => {
        const backoff = this.#removalBackoff.get(name);
        const backend = this.#backends.get(name);
        let retryAtMs: number | undefined = backoff !== undefined && backoff.untilMs > nowMs ? backoff.untilMs : undefined;
        if (retryAtMs === undefined && backend === undefined) retryAtMs = nowMs + REMOVAL_BACKOFF_MS_MAX; // no longer configured: nothing to do but wait
        if (retryAtMs === undefined) {
          try {
            // Within deadline_max, not the backend's usual deadline: a batch of many deletions may take long on a healthy
            // backend, but a hung one must not hold every purge (local blobs included) for the client's retries.
            const deadlineMs = this.#health.deadlineMaxMs;
            await withDeadline(deadlineMs, () => new BackendTimeoutError(name, `removal of ${batch.keys.length} shards`, deadlineMs), (signal) => backend!.remove(batch.keys, { signal }));
            this.#removalBackoff.delete(name);
            this.#health.reportSuccess(name, undefined, backend);
          } catch (error) {
            const delayMs = Math.min(REMOVAL_BACKOFF_MS_MAX, backoff === undefined ? REMOVAL_BACKOFF_MS_MIN : backoff.delayMs * 2);
            this.#removalBackoff.set(name, { untilMs: nowMs + delayMs, delayMs });
            this.#health.reportFailure(name, error, backend);
            this.#onError(`removing ${batch.keys.length} shards from ${name} failed; retrying in ${delayMs} ms`, error);
            retryAtMs = nowMs + delayMs;
          }
        }
        if (retryAtMs === undefined) return;
        for (const blobId of batch.blobIds) failed.set(blobId, Math.max(failed.get(blobId) ?? 0, retryAtMs));
      }),
    );
    return failed;
  }

  list(): AsyncIterable<string> {
    return this.#local.list();
  }

  /**
   * Waits for the shards of acknowledged writes still settling (bounded by
   * the lag and stall allowances) and the repairs they record: with a quorum
   * below every shard, an acknowledged write's last shard often settles
   * after its answer, and its repair must reach the metadata store before
   * that closes.
   */
  async close(): Promise<void> {
    while (this.#settling.size > 0) await Promise.allSettled([...this.#settling]);
    this.#closed = true;
    this.#health.stop();
    await Promise.all([...this.#backends.values()].map((backend) => backend.close()));
    await this.#local.close();
  }

  /** k + m distinct backends for a new blob: shuffled or in priority order, healthy ones first. */
  #chooseBackends(placement: StripedPlacementConfig): string[] {
    const candidates = [...placement.backends];
    if (placement.assignment === 'shuffle') {
      for (let i = candidates.length - 1; i > 0; i--) {
        const j = randomInt(i + 1);
        [candidates[i], candidates[j]] = [candidates[j]!, candidates[i]!];
      }
    }
    return healthiestFirst(this.#health, candidates).slice(0, placement.dataShards + placement.parityShards);
  }

  /**
   * Too few of the chosen backends are not down for the write quorum: 503 at
   * once, rather than sending shards to backends known to be down and
   * waiting out their timeouts at every write (a strict quorum with a hung
   * backend). Those backends are probed now, so writes resume as soon as
   * one answers again.
   */
  #refuseWithoutQuorum(placement: StripedPlacementConfig, chosen: readonly string[]): void {
    const down = chosen.filter((name) => this.#health.state(name) === 'down');
    if (chosen.length - down.length >= placement.writeQuorum) return;
    for (const name of down) void this.#health.probe(name);
    throw new S3Error('ServiceUnavailable', `Too few backends are reachable for the write quorum of ${placement.writeQuorum} (down: ${down.join(', ')}); try again later.`);
  }

  /**
   * Shards whose backend is down when there were no healthy backends left
   * to put them on: not written at all (a silent endpoint would hold every
   * stripe for the lag allowance), repaired once it is back — as many as the
   * write quorum allows, the rest tried anyway.
   */
  #shardsToSkip(location: BlobLocation, writeQuorum: number): Set<number> {
    const skip = new Set<number>();
    const spare = location.backends.length - writeQuorum;
    for (const [shard, name] of location.backends.entries()) {
      if (skip.size < spare && this.#health.state(name) === 'down') skip.add(shard);
    }
    return skip;
  }

  /** Where each shard of a blob lives (an unconfigured backend fails every call). */
  shardTargets(blobId: string, location: BlobLocation): ShardTarget[] {
    return location.backends.map((name, shard) => ({ backend: this.#backends.get(name) ?? missingBackend(name), key: shardKey(blobId, shard) }));
  }

  codecFor(location: BlobLocation): ErasureCodec | undefined {
    if (location.dataShards === 1) return undefined;
    const id = `${location.dataShards}+${location.parityShards}`;
    let codec = this.#codecs.get(id);
    if (codec === undefined) {
      codec = createErasureCodec(location.dataShards, location.parityShards);
      this.#codecs.set(id, codec);
    }
    return codec;
  }

  /** Healthy, fast backends first; among equals data shards first (no decoding). */
  readPreference(location: BlobLocation): number[] {
    const rank = { up: 0, unknown: 1, down: 2 } as const;
    return location.backends
      .map((name, shard) => ({ shard, state: rank[this.#health.state(name)], latency: Math.round(this.#health.latencyMs(name) ?? 0) }))
      .sort((a, b) => a.state - b.state || a.latency - b.latency || a.shard - b.shard)
      .map((entry) => entry.shard);
  }

  /**
   * Deadlines of a read from each shard's backend, and its answer times as
   * latency samples: a shard lagging its backend's usual answer gets
   * another read beside it, one past its deadline counts as a timeout.
   */
  readTiming(location: BlobLocation, targets?: readonly ShardTarget[]): Pick<StripedReadOptions, 'timing' | 'hedgeTo' | 'onAnswer'> {
    return {
      timing: (shard, frameBytes) => {
        const name = location.backends[shard]!;
        return { hedgeAfterMs: this.#health.hedgeAfterMs(name, frameBytes), deadlineMs: this.#health.deadlineMs(name, frameBytes) };
      },
      hedgeTo: (shard) => this.#health.state(location.backends[shard]!) !== 'down',
      // Through the connection it used (targets): an answer of one UpdateBackend retired says nothing of the new one.
      onAnswer: (shard, latencyMs) => this.#health.reportSuccess(location.backends[shard]!, latencyMs, targets?.[shard]?.backend),
    };
  }

  /**
   * How long a shard may lag its write's quorum before it is given up and
   * repaired later: the usual allowance (5 s; a busy local disk lagging its
   * siblings by less must not be marked down), more for a backend whose
   * measured deadline is longer (a far one), never over deadline_max.
   */
  #lagAllowanceMs(name: string): number {
    const measured = this.#health.latencyMs(name) === undefined ? 0 : this.#health.deadlineMs(name);
    return Math.min(this.#health.deadlineMaxMs, Math.max(SHARD_LAG_MS_DEFAULT, measured));
  }

  /** Each shard's fate as soon as it is known, even when the write fails: a timeout marks its backend down at once. */
  #reportShardOutcome(location: BlobLocation, targets: readonly ShardTarget[], outcome: ShardOutcome): void {
    const name = location.backends[outcome.shard]!;
    const via = targets[outcome.shard]?.backend;
    if (outcome.committed) this.#health.reportSuccess(name, undefined, via);
    else if (!(outcome.error instanceof ShardSkippedError)) this.#health.reportFailure(name, outcome.error, via);
  }

  #afterWrite(blobId: string, location: BlobLocation, outcomes: readonly ShardOutcome[]): Promise<void> {
    const failed = outcomes.filter((outcome) => !outcome.committed);
    if (failed.length === 0) return Promise.resolve();
    return this.#record(failed.map((outcome) => ({ blobId, shard: outcome.shard, reason: `write failed: ${describe(outcome.error)}` })));
  }

  #onDamage(blobId: string, location: BlobLocation, damage: ShardDamage, targets: readonly ShardTarget[]): void {
    const name = location.backends[damage.shard]!;
    if (damage.reason === 'unreadable' || damage.reason === 'timeout') this.#health.reportFailure(name, damage.error, targets[damage.shard]?.backend);
    this.#onError(`shard ${damage.shard} of blob ${blobId} on ${name} is ${damage.reason}`, damage.error);
    void this.#record([{ blobId, shard: damage.shard, reason: `${damage.reason} on read` }]);
  }

  #record(requests: RepairRequest[]): Promise<void> {
    // Closed (a read's late timeout after shutdown): the metadata store may be gone; the scan finds the shard.
    if (this.#closed) return Promise.resolve();
    return this.#repairs.recordRepairs(requests).catch((error: unknown) => this.#onError('could not record repairs (the scanner will find them)', error));
  }

  #track(work: Promise<void>): void {
    const tracked = work.catch((error: unknown) => this.#onError('recording a write\'s failed shards failed', error));
    this.#settling.add(tracked);
    void tracked.finally(() => this.#settling.delete(tracked));
  }
}

/** Written blob: the striped writer plus what the engine needs of a BlobWriter. */
class PlacedBlobWriter implements BlobWriter {
  readonly id: string;
  readonly location: string;
  readonly #sizeBytes: number;
  readonly #writer: StripedBlobWriter;
  readonly #afterWrite: (settled: Promise<readonly ShardOutcome[]>) => void;
  readonly #remove: (blob: BlobRef) => Promise<void>;
  #committed = false;

  constructor(
    id: string,
    location: BlobLocation,
    writer: StripedBlobWriter,
    afterWrite: (settled: Promise<readonly ShardOutcome[]>) => void,
    remove: (blob: BlobRef) => Promise<void>,
  ) {
    this.id = id;
    this.location = encodeLocation(location);
    this.#sizeBytes = location.sizeBytes;
    this.#writer = writer;
    this.#afterWrite = afterWrite;
    this.#remove = remove;
  }

  async write(chunk: Buffer): Promise<void> {
    try {
      await this.#writer.write(chunk);
    } catch (error) {
      throw asServiceUnavailable(error);
    }
  }

  async commit(): Promise<number> {
    let result;
    try {
      result = await this.#writer.commit();
    } catch (error) {
      throw asServiceUnavailable(error);
    }
    this.#committed = true;
    this.#afterWrite(result.settled);
    return this.#sizeBytes;
  }

  /**
   * Before commit: the shards are discarded as they are. After (the version
   * commit failed): removed from the backends, in the background and never
   * failing — the caller is reporting another error, which must reach the
   * client. Shards a down backend keeps, or still being written, are left to
   * the orphan reclaim of the next start.
   */
  async abort(): Promise<void> {
    if (!this.#committed) return this.#writer.abort();
    const blob = { blobId: this.id, location: this.location };
    const attempt = (remaining: number, delayMs: number): void => {
      this.#remove(blob).catch(() => {
        if (remaining > 0) setTimeout(() => attempt(remaining - 1, delayMs * 4), delayMs).unref();
      });
    };
    attempt(ABANDONED_REMOVAL_ATTEMPTS, REMOVAL_BACKOFF_MS_MIN);
  }
}

/** Too few backends took the write: nothing was stored, and the client may retry (503, as S3 does when it cannot serve). */
function asServiceUnavailable(error: unknown): unknown {
  if (!(error instanceof WriteQuorumError)) return error;
  return new S3Error('ServiceUnavailable', `Too few backends accepted the write (${error.quorum} needed); try again later.`);
}

/** A backend named by an old blob location but no longer configured: every shard on it is missing. */
function missingBackend(name: string): Backend {
  const fail = async (): Promise<never> => {
    throw new Error(`backend ${name} is not configured`);
  };
  return { name, create: () => assertNever(name), read: fail, stat: fail, remove: fail, list: () => ({ [Symbol.asyncIterator]: () => ({ next: fail }) }), close: async () => undefined };
}

function assertNever(name: string): never {
  throw new Error(`no writes to backend ${name}: it is not configured`);
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
