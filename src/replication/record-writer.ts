/**
 * Writes object records (object-record.ts) for committed versions of placed
 * objects, after the commit and off the request path: a PUT pays nothing
 * for them, not even a queue entry.
 *
 * The `versions` table numbers its rows in commit order (an AUTOINCREMENT
 * `seq`; SQLite's write lock serializes commits, so a reader never sees a
 * higher number before a lower one). Every tick the writer reads, on a
 * read-only connection of its own, the next rows past the position it
 * reached, up to RECORD_BATCH_MAX (the bounded queue: a backlog is worked
 * off a batch at a time, never held in memory), and uploads a record for
 * each blob of each placed version to every backend holding one of the
 * blob's shards: the full record under the version's first placed blob, a
 * pointer record under every other (object-record.ts), so a version's
 * records grow with its part count, not its square. Each version's
 * document is parsed once, and at most RECORD_UPLOADS_IN_FLIGHT blobs'
 * records upload at once, however many parts the batch's versions have. The position moves past a batch once every blob's record
 * is on at least one of its backends; it is kept beside the database (lost:
 * the records are written again, which changes nothing). A version deleted
 * before its record was written gets none; one purged just after may leave
 * a record of a blob that is gone, which `recover --scan` reports and skips
 * (it checks the shards). Records describe a version as it committed:
 * later in-place changes (tags, ACL, retention) are not rewritten.
 */
import { readFile, rename, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import Database from 'better-sqlite3';
import type { Backend } from '../backend/backend.ts';
import { decodeLocation, objectRecordKey } from '../placement/blob-location.ts';
import type { Logger } from '../util/logger.ts';
import { encodeObjectRecord, encodeObjectRecordPointer, segmentsOf, type RecordedSegment, type RecordedVersion } from './object-record.ts';

/** Versions read per tick at most: bounds the memory and the time of one synchronous read. */
export const RECORD_BATCH_MAX = 256;
/** Blobs whose records upload at once (each to every backend of its shards): bounds the requests and bodies in flight. */
const RECORD_UPLOADS_IN_FLIGHT = 32;
/** How often new commits are looked for (a backlog is worked off without waiting). */
export const RECORD_INTERVAL_MS_DEFAULT = 1_000;
/** After a failed round (a backend down), the batch is tried again this much later. */
const RECORD_RETRY_MS = 5_000;
/** Beside the database; removed when a restore or recover installs another database there (restore.ts, install). */
export const OBJECT_RECORDS_POSITION_FILE = 'object-records.position';
/** A record upload not done by then counts as failed (a hung backend must not hold the writer, or shutdown). */
const RECORD_UPLOAD_TIMEOUT_MS = 30_000;
/** Shutdown waits this long at most for a round in flight; what it did not finish is written after the next start. */
const STOP_WAIT_MS = 5_000;

export interface ObjectRecordWriterOptions {
  readonly databasePath: string;
  /** The placement's backends by name (the live map: backends added at run time are used too). */
  readonly backends: ReadonlyMap<string, Backend>;
  readonly logger: Logger;
  readonly intervalMs?: number;
}

interface VersionRow {
  seq: number;
  bucket: string;
  key: string;
  version_id: string;
  size_bytes: number;
  etag: string;
  last_modified_ms: number;
  owner_id: string;
  meta: string;
}

export class ObjectRecordWriter {
  readonly #options: ObjectRecordWriterOptions;
  readonly #positionPath: string;
  #db: Database.Database | undefined;
  #storeId = '';
  #position = 0;
  #timer: NodeJS.Timeout | undefined;
  #round: Promise<void> | undefined;
  #stopped = false;
  #warned = false;
  #recorded = 0;

  constructor(options: ObjectRecordWriterOptions) {
    this.#options = options;
    this.#positionPath = join(dirname(options.databasePath), OBJECT_RECORDS_POSITION_FILE);
  }

  /** Versions whose records this process wrote. */
  get recorded(): number {
    return this.#recorded;
  }

  /** The last version (seq) every record up to which is written. */
  get position(): number {
    return this.#position;
  }

  start(): void {
    this.#schedule(0);
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    let waited: NodeJS.Timeout | undefined;
    await Promise.race([this.#round, new Promise((resolve) => (waited = setTimeout(resolve, STOP_WAIT_MS)))]);
    clearTimeout(waited);
    this.#db?.close();
    this.#db = undefined;
  }

  /** One round now (tests and the CLI): records every version committed so far. */
  async flush(): Promise<void> {
    await this.#round;
    while (!this.#stopped && (await this.#recordBatch()) === RECORD_BATCH_MAX);
  }

  #schedule(delayMs: number): void {
    if (this.#stopped) return;
    this.#timer = setTimeout(() => {
      this.#round = this.#recordBatch().then(
        (count) => this.#schedule(count === RECORD_BATCH_MAX ? 0 : (this.#options.intervalMs ?? RECORD_INTERVAL_MS_DEFAULT)),
        (error: unknown) => {
          if (!this.#warned) this.#options.logger.warn('object records could not be written; retrying (recover --scan needs them)', { error: String(error) });
          this.#warned = true;
          this.#schedule(RECORD_RETRY_MS);
        },
      );
    }, delayMs);
    this.#timer.unref();
  }

  async #open(): Promise<Database.Database> {
    if (this.#db !== undefined) return this.#db;
    const db = new Database(this.#options.databasePath, { readonly: true, fileMustExist: true });
    this.#storeId = (db.prepare("SELECT value FROM settings WHERE name = 'store_id'").pluck().get() as string | undefined) ?? '';
    // A position of another database (one replaced under the data directory) means nothing here: start over.
    const saved = await readFile(this.#positionPath, 'utf8').then((text) => JSON.parse(text) as { storeId?: string; seq?: number }, () => undefined);
    this.#position = saved?.storeId === this.#storeId && Number.isSafeInteger(saved.seq) ? saved.seq! : 0;
    this.#db = db;
    return db;
  }

  /**
   * Records the next batch; returns how many versions it read. Versions
   * without segments (inline objects, delete markers) are passed over in
   * SQL, where judging one costs a fraction of a row read into JavaScript
   * and a JSON.parse (measured: a tenth of metadata replication's cost on
   * 4 KiB PUTs); when the batch is not full, the position moves to the
   * newest version of the read's snapshot, past every version skipped.
   */
  async #recordBatch(): Promise<number> {
    const db = await this.#open();
    const { rows, newest } = db.transaction(() => ({
      newest: (db.prepare('SELECT max(seq) FROM versions').pluck().get() as number | null) ?? 0,
      rows: db
        .prepare(
          'SELECT seq, bucket, key, version_id, size_bytes, etag, last_modified_ms, owner_id, meta FROM versions ' +
            "WHERE seq > ? AND is_delete_marker = 0 AND json_array_length(meta, '$.segments') > 0 ORDER BY seq LIMIT ?",
        )
        .all(this.#position, RECORD_BATCH_MAX) as VersionRow[],
    }))();
    // Workers share one generator. After a failed upload none takes another; the round ends once those in flight
    // have, and fails (the whole batch is tried again: records written twice change nothing).
    const uploads = this.#uploadsOf(rows);
    let failure: { error: unknown } | undefined;
    const worker = async (): Promise<void> => {
      for (let next = uploads.next(); failure === undefined && next.done !== true; next = uploads.next()) {
        try {
          await next.value();
        } catch (error) {
          failure ??= { error };
        }
      }
    };
    await Promise.all(Array.from({ length: RECORD_UPLOADS_IN_FLIGHT }, worker));
    if (failure !== undefined) throw failure.error;
    const position = rows.length === RECORD_BATCH_MAX ? rows.at(-1)!.seq : Math.max(this.#position, newest);
    if (position !== this.#position) {
      this.#position = position;
      const temporary = `${this.#positionPath}.tmp`;
      await writeFile(temporary, JSON.stringify({ storeId: this.#storeId, seq: this.#position }));
      await rename(temporary, this.#positionPath);
    }
    this.#warned = false;
    return rows.length;
  }

  /**
   * One upload per placed blob of the batch's versions, made lazily: a
   * version's document is parsed when its first upload is taken, and its
   * full record encoded only then.
   */
  *#uploadsOf(rows: readonly VersionRow[]): Generator<() => Promise<void>> {
    for (const row of rows) {
      const version: RecordedVersion = {
        bucket: row.bucket,
        key: row.key,
        versionId: row.version_id,
        sizeBytes: row.size_bytes,
        etag: row.etag,
        lastModifiedMs: row.last_modified_ms,
        ownerId: row.owner_id,
        meta: row.meta,
        seq: row.seq,
      };
      const segments = segmentsOf(version);
      const placed = segments.filter((segment) => segment.location !== undefined);
      if (placed.length === 0) continue;
      const [first, ...others] = placed;
      let pending = placed.length;
      const uploaded = (): void => {
        if (--pending === 0) this.#recorded++;
      };
      yield () => this.#upload(first!, encodeObjectRecord({ blobId: first!.blobId, version }, segments)).then(uploaded);
      for (const segment of others) {
        yield () => this.#upload(segment, encodeObjectRecordPointer({ blobId: segment.blobId, versionBlobId: first!.blobId, version })).then(uploaded);
      }
    }
  }

  /** The blob's record goes to each backend of its shards; at least one copy, or the round fails. */
  async #upload(segment: RecordedSegment, body: Buffer): Promise<void> {
    const names = [...new Set(decodeLocation(segment.location!).backends)];
    const outcomes = await Promise.allSettled(
      names.map(async (name) => {
        const backend = this.#options.backends.get(name);
        if (backend === undefined) throw new Error(`backend ${name} is not configured`);
        const writer = backend.create(objectRecordKey(segment.blobId), body.length);
        let timer: NodeJS.Timeout | undefined;
        try {
          const upload = (async () => {
            await writer.write(body);
            await writer.commit();
          })();
          const timeout = new Promise<never>((_, reject) => {
            timer = setTimeout(() => reject(new Error(`${name}: record upload timed out after ${RECORD_UPLOAD_TIMEOUT_MS} ms`)), RECORD_UPLOAD_TIMEOUT_MS);
          });
          upload.catch(() => undefined); // a late failure after the timeout is not unhandled
          await Promise.race([upload, timeout]);
        } catch (error) {
          await writer.abort();
          throw error;
        } finally {
          clearTimeout(timer);
        }
      }),
    );
    const failures = outcomes.filter((outcome): outcome is PromiseRejectedResult => outcome.status === 'rejected');
    if (failures.length === names.length) throw failures[0]!.reason;
  }
}
