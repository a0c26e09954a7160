/**
 * `talus restore DATA_DIR --config talus.toml`: rebuilds the metadata
 * database from the newest complete replica on the reachable backends.
 *
 * 1. List every replica of the store on every reachable backend (one copy
 *    of an object is enough: the backends hold the same objects).
 * 2. Take the newest snapshot (highest epoch, then position) that
 *    downloads and verifies from some backend; a damaged one falls back to
 *    the next.
 * 3. Apply segments in order: from the current position p, the next is one
 *    with from <= p < to, of an epoch not older than the last one applied
 *    (newest epoch first: after an earlier restore, the restored server's
 *    timeline wins over what the old one wrote past the restore point). A
 *    segment that fails its checks on every backend ends the chain; so does
 *    a missing one. Partial segments (segment.ts) are applied only together
 *    with the complete one after them, so the result is always the exact
 *    state of one moment.
 * 4. Refuse if replicas newer than the point reached (past its position,
 *    or of a newer epoch than the last applied) exist but could not be
 *    used (say so; `--partial` accepts the older state), then write the
 *    database into the empty data directory with the store's identity, an
 *    epoch at the newest seen (start-up bumps it past), and change numbers
 *    starting a new range (POSITION_JUMP past every replica's): the
 *    restored server's segments can never be taken for a continuation of
 *    the old timeline, even by a later restore that reaches further into it
 *    (a backend unreachable now may hold more of it). Restore writes nothing
 *    to the backends: the restored server's first round uploads the new
 *    timeline's snapshot. Until then a restore finds the new timeline's
 *    segments unusable (no base) and refuses rather than ignore them.
 */
import { mkdir, open, readdir, readFile, rename, rm, stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import Database from 'better-sqlite3';
import type { Backend } from '../backend/backend.ts';
import type { TalusConfig } from '../config/config.ts';
import { CHANGES_TABLE, removeChangeCapture } from './change-capture.ts';
import { downloadSegmentObject, downloadSnapshotObject } from './replica-object.ts';
import { parseReplicaKey, REPLICA_PREFIX, type ReplicaName } from './replica-names.ts';
import { OBJECT_RECORDS_POSITION_FILE } from './record-writer.ts';
import { applySegment, decodeSegment, type Segment } from './segment.ts';

/** Each restore starts its change numbers this far past every replica's: no timeline reaches 2^40 changes. */
const POSITION_JUMP = 2 ** 40;

export class RestoreError extends Error {
  override name = 'RestoreError';
}

export interface RestoreOptions {
  readonly dataDir: string;
  readonly backends: readonly Backend[];
  readonly key: Buffer | undefined;
  /** Which store, when the backends hold replicas of several. */
  readonly storeId?: string;
  /** Accept a restore that stops before replicas that exist but cannot be used. */
  readonly partial?: boolean;
  /** Copied into the data directory: the key the access key secrets are sealed under. */
  readonly secretKeyFile?: string;
  readonly log?: (line: string) => void;
}

export interface RestoreReport {
  readonly storeId: string;
  readonly snapshot: { readonly epoch: number; readonly position: number; readonly backend: string };
  readonly segmentsApplied: number;
  readonly position: number;
  /** Replicas past `position` that could not be used (missing, damaged, out of chain). */
  readonly unusedNewer: number;
  readonly unreachableBackends: readonly string[];
}

interface Catalogued extends ReplicaName {
  readonly holders: Backend[];
}

export async function restoreMetadata(options: RestoreOptions): Promise<RestoreReport> {
  const log = options.log ?? (() => undefined);
  await checkEmpty(options.dataDir);
  const { replicas, unreachable } = await catalogue(options.backends, log);
  const storeId = chooseStore(replicas, options.storeId);
  const mine = [...replicas.values()].filter((replica) => replica.storeId === storeId);
  const scratch = join(options.dataDir, 'restore-scratch');
  await rm(scratch, { recursive: true, force: true });
  await mkdir(scratch, { recursive: true });
  const databasePath = join(scratch, 'meta.db');
  try {
    const snapshots = mine.filter((replica) => replica.kind === 'snapshot').sort((a, b) => b.epoch - a.epoch || b.to - a.to);
    let base: { replica: Catalogued; backend: string } | undefined;
    for (const snapshot of snapshots) {
      const backend = await firstThatVerifies(snapshot, log, (holder) =>
        downloadSnapshotObject(holder, snapshot.key, options.key, { storeId, epoch: snapshot.epoch, from: snapshot.from, to: snapshot.to }, databasePath),
      );
      if (backend !== undefined) {
        base = { replica: snapshot, backend };
        break;
      }
    }
    if (base === undefined) {
      throw new RestoreError(snapshots.length === 0 ? `no snapshot of store ${storeId} on the reachable backends` : `none of the ${snapshots.length} snapshots of store ${storeId} could be read and verified`);
    }
    log(`snapshot at position ${base.replica.to} (epoch ${base.replica.epoch}) from ${base.backend}`);
    const db = new Database(databasePath);
    let position = base.replica.to;
    let segmentsApplied = 0;
    try {
      removeChangeCapture(db);
      let epoch = base.replica.epoch;
      /** The epoch of the last replica applied: replicas of a newer one were not (see unusedNewer). */
      let appliedEpoch = epoch;
      const tried = new Set<string>();
      /** Partial segments read but not applied yet: they go in with the next complete one. */
      let held: Segment[] = [];
      let heldPosition = position;
      for (;;) {
        const candidates = mine
          .filter((replica) => replica.kind === 'segment' && replica.epoch >= epoch && replica.from <= heldPosition && replica.to > heldPosition && !tried.has(replica.key))
          // Of one range, the complete segment first (a partial one under the same range is an earlier, failed round's cut).
          .sort((a, b) => b.epoch - a.epoch || b.to - a.to || Number(a.partial === true) - Number(b.partial === true));
        let next: { replica: Catalogued; segment: Segment } | undefined;
        for (const candidate of candidates) {
          tried.add(candidate.key);
          let segment: Segment | undefined;
          await firstThatVerifies(candidate, log, async (holder) => {
            const expect = { storeId, epoch: candidate.epoch, from: candidate.from, to: candidate.to, ...(candidate.partial === true ? { complete: false } : {}) };
            const { plain } = await downloadSegmentObject(holder, candidate.key, options.key, expect);
            const decoded = decodeSegment(plain);
            if (decoded.from !== candidate.from || decoded.to !== candidate.to) throw new RestoreError(`${candidate.key}: its content covers ${decoded.from}-${decoded.to}`);
            segment = decoded;
          });
          if (segment !== undefined) {
            next = { replica: candidate, segment };
            break;
          }
        }
        if (next === undefined) break;
        epoch = next.replica.epoch;
        heldPosition = next.segment.to;
        held.push(next.segment);
        if (!next.segment.complete) continue;
        for (const segment of held) applySegment(db, segment);
        segmentsApplied += held.length;
        held = [];
        position = heldPosition;
        appliedEpoch = epoch;
      }
      if (held.length > 0) log(`${held.length} partial segment(s) after position ${position} not applied: the complete one after them is missing`);
      // Newer than the point reached: past its position, or of a newer epoch whatever its numbers (a timeline
      // numbered from 1 again, as Talus before monotonic change numbers did after replication was off a while).
      const unusedNewer = mine.filter((replica) => replica.to > position || replica.epoch > appliedEpoch).length;
      if (unusedNewer > 0 && options.partial !== true) {
        throw new RestoreError(
          `the replicas end at position ${position}, but ${unusedNewer} replica(s) past it exist and could not be used (missing, damaged or out of order; see above). ` +
            'Make the backends holding them reachable and try again, or accept the older state with --partial.',
        );
      }
      const maxEpoch = Math.max(...mine.map((replica) => replica.epoch));
      const maxPosition = Math.max(...mine.map((replica) => replica.to));
      const newPosition = maxPosition + POSITION_JUMP;
      if (!Number.isSafeInteger(newPosition * 2)) throw new RestoreError(`change numbers exhausted (${maxPosition})`);
      const identity = finish(db, storeId, maxEpoch, newPosition);
      db.close();
      await install(options.dataDir, databasePath, identity, options.secretKeyFile);
      log(`restored store ${storeId} to position ${position}: ${segmentsApplied} segment(s) after the snapshot`);
      return { storeId, snapshot: { epoch: base.replica.epoch, position: base.replica.to, backend: base.backend }, segmentsApplied, position, unusedNewer, unreachableBackends: unreachable };
    } finally {
      if (db.open) db.close();
    }
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
}

/** Restore writes into a data directory that holds no database and no blobs: it never overwrites anything. */
export async function checkEmpty(dataDir: string): Promise<void> {
  const size = await stat(join(dataDir, 'meta.db')).then((stats) => stats.size, () => 0);
  if (size > 0) throw new RestoreError(`${join(dataDir, 'meta.db')} exists: restore writes only into a data directory without a database (move it away first)`);
  const blobs = await readdir(join(dataDir, 'blobs')).catch(() => [] as string[]);
  const marker = blobs.find((name) => name.startsWith('talus-store.'));
  if (marker !== undefined) throw new RestoreError(`${join(dataDir, 'blobs', marker)} exists: this data directory belongs to a store; restore into an empty one`);
}

async function catalogue(backends: readonly Backend[], log: (line: string) => void): Promise<{ replicas: Map<string, Catalogued>; unreachable: string[] }> {
  const replicas = new Map<string, Catalogued>();
  const unreachable: string[] = [];
  await Promise.all(
    backends.map(async (backend) => {
      try {
        for await (const key of backend.list(REPLICA_PREFIX)) {
          const name = parseReplicaKey(key);
          if (name === undefined) continue;
          const entry = replicas.get(key) ?? { ...name, holders: [] };
          entry.holders.push(backend);
          replicas.set(key, entry);
        }
      } catch (error) {
        unreachable.push(backend.name);
        log(`backend ${backend.name} unreachable: ${error instanceof Error ? error.message : String(error)}`);
      }
    }),
  );
  return { replicas, unreachable };
}

function chooseStore(replicas: Map<string, Catalogued>, wanted: string | undefined): string {
  const stores = [...new Set([...replicas.values()].map((replica) => replica.storeId))];
  if (wanted !== undefined) {
    if (!stores.includes(wanted)) throw new RestoreError(`no replica of store ${wanted} on the reachable backends${stores.length > 0 ? ` (found: ${stores.join(', ')})` : ''}`);
    return wanted;
  }
  if (stores.length === 0) throw new RestoreError('no metadata replica on the reachable backends');
  if (stores.length > 1) throw new RestoreError(`the backends hold replicas of several stores (${stores.join(', ')}): choose one with --store`);
  return stores[0]!;
}

/** Tries each backend holding `replica` until one copy verifies; returns its name, or undefined when none did. */
async function firstThatVerifies(replica: Catalogued, log: (line: string) => void, attempt: (holder: Backend) => Promise<unknown>): Promise<string | undefined> {
  for (const holder of replica.holders) {
    try {
      await attempt(holder);
      return holder.name;
    } catch (error) {
      log(`${holder.name}: ${replica.key} unusable: ${error instanceof Error ? error.message : String(error)}`);
    }
  }
  return undefined;
}

/**
 * Makes the restored database a store's next state: no trace of the change
 * log's content, change numbers continuing after every replica's, version
 * numbers a new range past the old server's, the epoch
 * at the newest seen (start-up bumps it past), and a clean integrity check.
 */
function finish(db: Database.Database, storeId: string, maxEpoch: number, maxPosition: number): { id: string; epoch: number } {
  const id = db.prepare("SELECT value FROM settings WHERE name = 'store_id'").pluck().get() as string | undefined;
  if (id !== storeId) throw new RestoreError(`the snapshot names store ${String(id)}, its replicas' names ${storeId}`);
  const recorded = Number(db.prepare("SELECT value FROM settings WHERE name = 'store_epoch'").pluck().get() ?? 0);
  const epoch = Math.max(recorded, maxEpoch);
  db.transaction(() => {
    db.prepare("INSERT OR REPLACE INTO settings (name, value) VALUES ('store_epoch', ?)").run(String(epoch));
    db.exec(`CREATE TABLE IF NOT EXISTS ${CHANGES_TABLE} (seq INTEGER PRIMARY KEY AUTOINCREMENT, tbl TEXT NOT NULL, pk TEXT NOT NULL)`);
    db.exec(`DELETE FROM ${CHANGES_TABLE}`);
    db.prepare('DELETE FROM sqlite_sequence WHERE name = ?').run(CHANGES_TABLE);
    db.prepare('INSERT INTO sqlite_sequence (name, seq) VALUES (?, ?)').run(CHANGES_TABLE, maxPosition);
    // Versions committed from now on are numbered past any the old server committed after the restore point: the
    // object records of both timelines may meet in a later recover --scan, which orders a key's versions by seq.
    const versions = (db.prepare("SELECT seq FROM sqlite_sequence WHERE name = 'versions'").pluck().get() as number | undefined) ?? 0;
    db.prepare("DELETE FROM sqlite_sequence WHERE name = 'versions'").run();
    db.prepare("INSERT INTO sqlite_sequence (name, seq) VALUES ('versions', ?)").run(versions + POSITION_JUMP);
  })();
  const check = db.pragma('integrity_check', { simple: true });
  if (check !== 'ok') throw new RestoreError(`the restored database fails SQLite's integrity check: ${String(check)}`);
  return { id: storeId, epoch };
}

/**
 * Moves the database into place and writes the store marker beside the
 * blobs (the name data-dir-identity.ts reads), so the server starts on it
 * without --adopt-metadata.
 */
export async function install(dataDir: string, databasePath: string, identity: { id: string; epoch: number }, secretKeyFile: string | undefined): Promise<void> {
  const blobs = join(dataDir, 'blobs');
  await mkdir(blobs, { recursive: true });
  if (secretKeyFile !== undefined) await copySecretKey(secretKeyFile, join(dataDir, 'talus.secret-key'));
  // A restore keeps the store's ID, so the record writer would take a position left here for the old database as
  // its own and skip the restored database's versions up to it: their records are written again instead.
  await rm(join(dataDir, OBJECT_RECORDS_POSITION_FILE), { force: true });
  await syncFile(databasePath);
  await rename(databasePath, join(dataDir, 'meta.db'));
  await syncFile(dataDir);
  await mkdir(join(blobs, `talus-store.${identity.id}.epoch-${identity.epoch}`));
  await syncFile(blobs);
}

/**
 * The copy is created owner-only from its first byte (a copy then chmod
 * left it world-readable for a moment) and never replaces a key already
 * there (that one may seal secrets of its own: refuse, do not guess).
 */
async function copySecretKey(source: string, target: string): Promise<void> {
  if (resolve(source) === resolve(target)) return; // already in place
  const key = await readFile(source);
  let handle;
  try {
    handle = await open(target, 'wx', 0o600);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') throw new RestoreError(`${target} exists: restore does not replace a secret key (move it away first)`);
    throw error;
  }
  try {
    await handle.writeFile(key);
    await handle.sync();
  } finally {
    await handle.close();
  }
}

async function syncFile(path: string): Promise<void> {
  const handle = await open(path, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}
