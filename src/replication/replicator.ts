/**
 * Continuous metadata replication: the gateway's index of where every
 * object's bytes are, shipped to the backends that hold those bytes, so a
 * lost gateway disk loses at most the last lag's worth of changes
 * (`talus restore`, restore.ts).
 *
 * Every `lagMs` the replicator cuts a segment of the changes committed since
 * the last one (change-capture.ts, segment.ts; on a thread of its own,
 * segment-cutter.ts), uploads it to every target backend at once, and
 * forgets the changes locally once a write quorum holds it. Uploads are
 * sequential (one segment in flight), so segments reach the
 * backends in order and a slow backend slows shipping instead of piling up
 * segments. At start-up and then every `snapshotIntervalMs` it uploads a
 * snapshot (snapshot-copy.ts); once one is on a quorum, the replicas it
 * supersedes (older snapshots, segments it covers, everything of earlier
 * epochs) are deleted from every target.
 *
 * Runs in the process that owns the data directory (with --workers, the
 * primary): the triggers capture every process's writes into the one log.
 */
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import type { Backend } from '../backend/backend.ts';
import type { ReplicationConfig } from '../config/config.ts';
import type { Logger } from '../util/logger.ts';
import { CHANGES_TABLE, firstLoggedChange, installChangeCapture, lastChangeNumber, trimChanges } from './change-capture.ts';
import { InlineBodyCollector, type InlineDataTap } from './inline-body-ring.ts';
import { encodeSnapshotFile, uploadObject, type ReplicaBody } from './replica-object.ts';
import { parseReplicaKey, segmentKey, snapshotKey, storePrefix } from './replica-names.ts';
import { SegmentCutter } from './segment-cutter.ts';
import { copyDatabase } from './snapshot-copy.ts';

/** The trim waits this long at most for another process's write lock; it is retried at the next tick. */
const TRIM_BUSY_TIMEOUT_MS = 50;
/**
 * The log is trimmed once this many shipped changes are in it, not after
 * every segment: a trim reads the log's pages back on a connection of its
 * own, and deleting many rows at once costs little more than deleting a few.
 */
const TRIM_CHANGES_MIN = 20_000;
/** A failed snapshot is tried again after this long (a copy of the database each second would be a load of its own). */
const SNAPSHOT_RETRY_MS = 30_000;
/** A replica upload that has not finished by then counts as failed for this round. */
const UPLOAD_TIMEOUT_MS = 60_000;

export interface ReplicatorOptions {
  readonly databasePath: string;
  /** Scratch space for snapshots, on the data directory's file system. */
  readonly scratchDirectory: string;
  readonly targets: readonly Backend[];
  readonly storeId: string;
  readonly epoch: number;
  readonly config: ReplicationConfig;
  readonly logger: Logger;
  /**
   * The serving store's own connection, to read the last change number on
   * (one row; segments are cut on a thread of their own, segment-cutter.ts).
   * Absent: our own connection.
   */
  readonly readConnection?: Database.Database;
  /** The inline body ring's size (inline-body-ring.ts, RING_BYTES by default): tests make it small, to drop records. */
  readonly inlineRingBytes?: number;
}

export interface ReplicationStatus {
  /** Every change up to this position is on a write quorum of backends. */
  readonly shippedPosition: number;
  /** The newest snapshot on a quorum, or undefined before this process made one. */
  readonly snapshotPosition: number | undefined;
  readonly segmentsShipped: number;
  /** Of those, cut the general way, row by row (segment.ts: a backlog past what one joined cut holds). */
  readonly segmentsCutInLogOrder: number;
  readonly failedRounds: number;
  /** Inline bodies shipped as the serving thread handed them over, not read back from SQLite (inline-body-ring.ts). */
  readonly bodiesFromServingThread: number;
  /** Rounds run (each lag, each early one for quorum commits or a filling ring), failed ones included. */
  readonly rounds: number;
  /** Inline bodies the ring had no room for (read back from SQLite by the cutter instead); 0 without a ring. */
  readonly bodiesDroppedByRing: number;
}

export class MetadataReplicator {
  readonly #options: ReplicatorOptions;
  readonly #db: Database.Database;
  readonly #reader: Database.Database;
  readonly #cutter: SegmentCutter;
  /**
   * The serving store's inline bodies, handed to the cutter (inline-body-ring.ts): set it on the store
   * (setInlineDataTap) whose connection is `readConnection`. Undefined without one.
   */
  readonly inlineDataTap: InlineDataTap | undefined;
  readonly #bodies: InlineBodyCollector | undefined;
  #shipped: number;
  #trimmed: number;
  #snapshotPosition: number | undefined;
  /** When the next snapshot is due: at once at start-up, then every snapshotIntervalMs (sooner after a failure). */
  #nextSnapshotMs = 0;
  #segmentsShipped = 0;
  #segmentsCutInLogOrder = 0;
  #failedRounds = 0;
  #bodiesFromServingThread = 0;
  #rounds = 0;
  #timer: NodeJS.Timeout | undefined;
  /** The timer is set to fire at once (#roundNow need not set it again). */
  #soon = false;
  #round: Promise<void> | undefined;
  #snapshotting: Promise<unknown> | undefined;
  /** Quorum mode: commits waiting for their changes to be shipped, in commit order. */
  #waiters: { position: number; resolve(): void; reject(error: unknown): void }[] = [];
  #stopped = false;
  /** Backends with an upload in flight (see #uploadToQuorum). */
  readonly #busy = new Set<string>();
  /** Every upload in flight, the ones past their quorum included: stop() lets them end. */
  readonly #uploads = new Set<Promise<unknown>>();
  /** Warn once per backend and kind of failure, not every second. */
  readonly #warned = new Set<string>();

  /** Installs change capture at once (synchronously): construct before the server writes. */
  constructor(options: ReplicatorOptions) {
    this.#options = options;
    this.#db = new Database(options.databasePath);
    this.#db.pragma(`busy_timeout = ${TRIM_BUSY_TIMEOUT_MS}`);
    installChangeCapture(this.#db);
    // The trims are this connection's only writes, on the event loop: no fsync of the WAL there (a trim lost
    // to a power cut leaves shipped changes logged, which the next start ships again: harmless), and no
    // checkpoint inside one either (the WAL checkpointer's thread does them).
    this.#db.pragma('synchronous = NORMAL');
    this.#db.pragma('wal_autocheckpoint = 0');
    this.#reader = options.readConnection ?? this.#db;
    if (options.readConnection !== undefined) {
      // The number the capture trigger has just logged, read inside the writer's transaction (the trigger's own insert id is not visible).
      const changeNumber = options.readConnection.prepare('SELECT seq FROM sqlite_sequence WHERE name = ?').pluck().bind(CHANGES_TABLE);
      this.#bodies = new InlineBodyCollector(() => changeNumber.get() as number, options.inlineRingBytes);
      // A ring filling up before the lag is up: ship now, rather than drop records (read back at more CPU).
      this.#bodies.onFilling = () => this.#roundNow();
      this.inlineDataTap = this.#bodies;
    }
    this.#cutter = new SegmentCutter({ databasePath: options.databasePath, storeId: options.storeId, epoch: options.epoch, key: options.config.key, ring: this.#bodies?.memory });
    // Changes still logged were not on a quorum when the last run ended: ship them again.
    this.#shipped = (firstLoggedChange(this.#db) ?? lastChangeNumber(this.#db) + 1) - 1;
    this.#trimmed = this.#shipped;
  }

  get status(): ReplicationStatus {
    return { shippedPosition: this.#shipped, snapshotPosition: this.#snapshotPosition, segmentsShipped: this.#segmentsShipped, segmentsCutInLogOrder: this.#segmentsCutInLogOrder, failedRounds: this.#failedRounds, bodiesFromServingThread: this.#bodiesFromServingThread, rounds: this.#rounds, bodiesDroppedByRing: this.#bodies?.dropped ?? 0 };
  }

  /** The last change committed locally (shipped or not). */
  get committedPosition(): number {
    return lastChangeNumber(this.#db);
  }

  start(): void {
    this.#cutter.prepare();
    this.#schedule(0);
  }

  /**
   * Quorum mode: resolves once every change committed so far is on a write
   * quorum of backends; rejects if the round shipping it fails. Called by
   * the store right after each batch commits (setCommitBarrier): commits
   * waiting together share one round, as they share one WAL sync.
   */
  shipped(): Promise<void> {
    const position = lastChangeNumber(this.#reader);
    if (position <= this.#shipped) return Promise.resolve();
    if (this.#stopped) return Promise.reject(new Error('metadata replication has stopped'));
    const promise = new Promise<void>((resolve, reject) => this.#waiters.push({ position, resolve, reject }));
    this.#roundNow();
    return promise;
  }

  /** Now rather than at the next lag; a round in progress runs the next one as soon as it ends (#schedule). */
  #roundNow(): void {
    if (this.#round === undefined && this.#timer !== undefined && !this.#soon) {
      clearTimeout(this.#timer);
      this.#schedule(0);
    }
  }

  #settleWaiters(error?: unknown): void {
    const waiting = this.#waiters;
    this.#waiters = [];
    for (const waiter of waiting) {
      if (waiter.position <= this.#shipped) waiter.resolve();
      else if (error !== undefined) waiter.reject(error);
      else this.#waiters.push(waiter);
    }
  }

  #schedule(delayMs: number): void {
    if (this.#stopped) return;
    this.#soon = delayMs === 0;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#soon = false;
      const started = Date.now();
      this.#round = this.#runRound().finally(() => {
        this.#round = undefined;
        // A filling ring asks for a round only while something is left to ship (a round with nothing to ship
        // cannot empty it: see discardShipped).
        const filling = this.#bodies?.filling === true && lastChangeNumber(this.#reader) > this.#shipped;
        const due = this.#waiters.length > 0 || filling;
        this.#schedule(due ? 0 : Math.max(0, this.#options.config.lagMs - (Date.now() - started)));
      });
    }, delayMs);
    this.#timer.unref();
  }

  async #runRound(): Promise<void> {
    this.#rounds++;
    try {
      try {
        await this.shipNow();
        this.#warned.delete('round');
        this.#settleWaiters();
      } catch (error) {
        this.#settleWaiters(error);
        throw error;
      }
      // Beside the rounds, not inside one: commits waiting in quorum mode must not wait for a snapshot.
      const due = Date.now() >= this.#nextSnapshotMs;
      if (due && this.#snapshotting === undefined && !this.#stopped) {
        this.#snapshotting = this.snapshotNow()
          .then(
            () => {
              this.#warned.delete('snapshot');
              this.#nextSnapshotMs = Date.now() + this.#options.config.snapshotIntervalMs;
            },
            (error: unknown) => {
              this.#warnOnce('snapshot', 'metadata snapshot failed; retrying', error);
              this.#nextSnapshotMs = Date.now() + Math.min(this.#options.config.snapshotIntervalMs, SNAPSHOT_RETRY_MS);
            },
          )
          .finally(() => (this.#snapshotting = undefined));
      }
    } catch (error) {
      this.#failedRounds++;
      this.#warnOnce('round', 'metadata replication round failed; retrying', error);
    }
  }

  /**
   * Ships every change committed so far (in segments); resolves when they
   * are on a quorum, or rejects. Only those committed before the call: under
   * steady writes, looping until the log is empty would ship back to back
   * in tiny segments (measured: several times the CPU of one per lag).
   */
  async shipNow(): Promise<void> {
    const target = lastChangeNumber(this.#reader);
    while (this.#shipped < target) {
      // With the inline bodies committed so far (this runs on the event loop, between batches); their room is
      // reused once the cut has answered.
      const bodies = this.#bodies?.handOver();
      let segment;
      try {
        segment = await this.#cutter.cut(this.#shipped, bodies);
      } finally {
        if (bodies !== undefined) this.#bodies?.release(bodies.to);
      }
      if (segment === undefined) break;
      const { storeId, epoch } = this.#options;
      await this.#uploadToQuorum(segmentKey(storeId, epoch, segment.from, segment.to, segment.complete), segment.parts);
      this.#shipped = segment.to;
      this.#segmentsShipped++;
      if (segment.cut === 'in log order') this.#segmentsCutInLogOrder++;
      this.#bodiesFromServingThread += segment.bodiesFromRecords;
    }
    // Read between batches: every record in the ring is of a change committed by now.
    if (this.#bodies !== undefined && this.#shipped >= lastChangeNumber(this.#reader)) this.#bodies.discardShipped();
    if (this.#shipped - this.#trimmed >= TRIM_CHANGES_MIN) this.#trim();
  }

  /** Forgets the shipped part of the log (cutting reads only what is past #shipped, so this may lag). */
  #trim(): void {
    try {
      trimChanges(this.#db, this.#shipped);
      this.#trimmed = this.#shipped;
    } catch (error) {
      // Busy (another process writing): the next round trims.
      this.#warnOnce('trim', 'could not trim the replication log; retrying', error);
    }
  }

  /** Uploads a snapshot; once on a quorum, deletes what it supersedes. */
  async snapshotNow(): Promise<number> {
    const { scratchDirectory, storeId, epoch, config } = this.#options;
    await mkdir(scratchDirectory, { recursive: true });
    const copyPath = join(scratchDirectory, `snapshot-${process.pid}.db`);
    const objectPath = `${copyPath}.replica`;
    await rm(copyPath, { force: true });
    try {
      await copyDatabase(this.#options.databasePath, copyPath);
      const copy = new Database(copyPath, { readonly: true });
      let position: number;
      try {
        position = lastChangeNumber(copy);
      } finally {
        copy.close();
      }
      await encodeSnapshotFile({ storeId, epoch, from: position, to: position, complete: true }, copyPath, objectPath, config.key);
      await this.#uploadToQuorum(snapshotKey(storeId, epoch, position), { path: objectPath });
      this.#snapshotPosition = position;
      await this.#compact(position);
      return position;
    } finally {
      await rm(copyPath, { force: true });
      await rm(objectPath, { force: true });
    }
  }

  /**
   * Uploads to every target at once; resolves as soon as a write quorum has
   * the object (a segment: a commit in quorum mode waits for this, not for
   * the slowest backend) or, for a file, once every upload has ended (the
   * file is removed afterwards). A backend still busy with an earlier
   * segment is skipped for the next, so a hung backend holds at most one
   * segment upload: it misses segments, which restore reads from the others.
   */
  #uploadToQuorum(key: string, body: ReplicaBody): Promise<void> {
    const { targets, config } = this.#options;
    const waitForAll = 'path' in body;
    return new Promise<void>((resolve, reject) => {
      let stored = 0;
      let ended = 0;
      let settled = false;
      const settle = (): void => {
        if (settled) return;
        if (stored >= config.writeQuorum && (!waitForAll || ended === targets.length)) {
          settled = true;
          resolve();
        } else if (ended === targets.length) {
          settled = true;
          reject(new Error(`${key} is on ${stored} backends, fewer than the replication write quorum ${config.writeQuorum}`));
        }
      };
      for (const backend of targets) {
        // Snapshots (hourly, waited for whole) are not held back by a segment in flight.
        if (!waitForAll && this.#busy.has(backend.name)) {
          this.#warnOnce(`busy:${backend.name}`, 'a backend is still busy with an earlier metadata replica; skipped', 'busy', { backend: backend.name });
          ended++;
          continue;
        }
        if (!waitForAll) this.#busy.add(backend.name);
        const upload = withTimeout(uploadObject(backend, key, body), UPLOAD_TIMEOUT_MS, `${backend.name}: upload of ${key}`);
        this.#uploads.add(upload);
        void upload
          .then(
            () => {
              stored++;
              this.#warned.delete(`upload:${backend.name}`);
              this.#warned.delete(`busy:${backend.name}`);
            },
            (error: unknown) => this.#warnOnce(`upload:${backend.name}`, 'a metadata replica could not be stored on a backend', error, { backend: backend.name }),
          )
          .finally(() => {
            this.#uploads.delete(upload);
            if (!waitForAll) this.#busy.delete(backend.name);
            ended++;
            settle();
          });
      }
      settle();
    });
  }

  /** Deletes the replicas a snapshot at `position` of this epoch supersedes. Best effort: a failure leaves extra replicas, never too few. */
  async #compact(position: number): Promise<void> {
    const { targets, storeId, epoch } = this.#options;
    await Promise.all(
      targets.map(async (backend) => {
        try {
          const obsolete: string[] = [];
          for await (const key of backend.list(storePrefix(storeId))) {
            const name = parseReplicaKey(key);
            if (name === undefined || name.storeId !== storeId) continue;
            const superseded = name.epoch < epoch || (name.epoch === epoch && (name.kind === 'snapshot' ? name.to < position : name.to <= position));
            if (superseded) obsolete.push(key);
          }
          if (obsolete.length > 0) await backend.remove(obsolete);
        } catch (error) {
          this.#warnOnce(`compact:${backend.name}`, 'could not delete superseded metadata replicas', error, { backend: backend.name });
        }
      }),
    );
  }

  #warnOnce(kind: string, message: string, error: unknown, fields: Record<string, unknown> = {}): void {
    if (this.#warned.has(kind)) return;
    this.#warned.add(kind);
    this.#options.logger.warn(message, { ...fields, error: error instanceof Error ? error.message : String(error) });
  }

  /** Stops the loop after one last round (bounded by `graceMs`), so a clean shutdown leaves nothing unshipped. */
  async stop(graceMs = 5_000): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    await this.#round;
    await this.#snapshotting;
    this.#settleWaiters(new Error('metadata replication has stopped'));
    await withTimeout(this.shipNow(), graceMs, 'final metadata replication round').catch((error: unknown) =>
      this.#options.logger.warn('metadata changes not shipped at shutdown; the next start ships them', { error: String(error) }),
    );
    // A segment's round ends at its quorum; the uploads to the other backends end here, so none writes after stop().
    await withTimeout(Promise.allSettled([...this.#uploads]), graceMs, 'metadata replica uploads in flight').catch(() => undefined);
    await this.#cutter.stop();
    this.#trim();
    this.#db.close();
  }
}

function withTimeout<T>(promise: Promise<T>, timeoutMs: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not finish within ${timeoutMs} ms`)), timeoutMs);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
