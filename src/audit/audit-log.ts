/**
 * The audit log: every admin API call and every request refused for its
 * authentication or authorization, always on, as JSON lines in
 * DATA_DIR/audit/. Written only by the process that owns the data directory
 * (workers send their entries to it), so one writer rotates the files: at
 * AUDIT_FILE_BYTES_MAX the current file becomes audit.log.1 (older ones shift,
 * the oldest past AUDIT_FILES_KEPT is removed). Queried newest first by time,
 * caller and operation (the admin API's QueryAuditLog).
 *
 * Refusals (requests refused for who sent them: 401, 403, 429, and every
 * refused S3 request) go to their own files, refused.log…, rotated on their
 * own budget: anyone can send refused requests, and a flood of them must not
 * rotate away the record of what authenticated callers did.
 *
 * Entries never hold a secret, a signature or a request body. Writing never
 * holds a request back: at most AUDIT_BUFFER_BYTES_MAX wait for the disk;
 * past that, entries are dropped and counted in the next one written.
 */
import { createWriteStream, renameSync, rmSync, type WriteStream } from 'node:fs';
import { mkdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';

export const AUDIT_DIRECTORY = 'audit';
export const AUDIT_FILE = 'audit.log';
export const REFUSALS_FILE = 'refused.log';
/** One file's size before rotation, and how many rotated files are kept: at most ~136 MiB of audit log. */
export const AUDIT_FILE_BYTES_MAX = 16 * 1024 * 1024;
export const AUDIT_FILES_KEPT = 8;
export const AUDIT_BUFFER_BYTES_MAX = 4 * 1024 * 1024;
/** Entries one query returns at most (newest first). */
export const AUDIT_QUERY_LIMIT_MAX = 1000;

export interface AuditEntry {
  /** ms since the epoch */
  timeMs: number;
  /** 'admin': an admin API call; 's3-denied': an S3 request refused for who sent it. */
  kind: 'admin' | 's3-denied';
  requestId: string;
  operation: string;
  /** 'root', 'anonymous', or a user's name. */
  principal: string;
  accessKeyId?: string | undefined;
  status: number;
  /** The error code (AccessDenied, SignatureDoesNotMatch, …) when refused or failed. */
  code?: string | undefined;
  /** Why authorization refused (the decision's reason), when known. */
  reason?: string | undefined;
  bucket?: string | undefined;
  key?: string | undefined;
  sourceIp?: string | undefined;
  /** Entries dropped just before this one (the disk could not keep up). */
  droppedBefore?: number | undefined;
}

export interface AuditQuery {
  sinceMs?: number | undefined;
  untilMs?: number | undefined;
  principal?: string | undefined;
  operation?: string | undefined;
  kind?: AuditEntry['kind'] | undefined;
  limit?: number | undefined;
}

/** One rotated series of JSON-lines files. */
class AuditFile {
  readonly #directory: string;
  readonly #file: string;
  #stream: WriteStream | undefined;
  #bytes = 0;
  #dropped = 0;
  /** Streams of rotated files still writing what they were given (their fd follows the renamed file). */
  readonly #closing = new Set<Promise<void>>();

  private constructor(directory: string, file: string, bytes: number) {
    this.#directory = directory;
    this.#file = file;
    this.#bytes = bytes;
  }

  static async open(directory: string, file: string): Promise<AuditFile> {
    const bytes = await stat(join(directory, file)).then((found) => found.size, () => 0);
    return new AuditFile(directory, file, bytes);
  }

  record(entry: Omit<AuditEntry, 'timeMs'>): void {
    const stream = this.#current();
    if (stream.writableLength > AUDIT_BUFFER_BYTES_MAX) {
      this.#dropped++;
      return;
    }
    const full: AuditEntry = { timeMs: Date.now(), ...entry };
    if (this.#dropped > 0) {
      full.droppedBefore = this.#dropped;
      this.#dropped = 0;
    }
    const line = `${JSON.stringify(full)}\n`;
    stream.write(line);
    this.#bytes += Buffer.byteLength(line);
    if (this.#bytes >= AUDIT_FILE_BYTES_MAX) this.#rotate();
  }

  /** Entries matching `query`, newest first, at most `limit` (default 100, AUDIT_QUERY_LIMIT_MAX at most). */
  async query(query: AuditQuery = {}): Promise<AuditEntry[]> {
    const limit = Math.min(query.limit ?? 100, AUDIT_QUERY_LIMIT_MAX);
    await this.flush();
    const found: AuditEntry[] = [];
    for (let index = 0; index <= AUDIT_FILES_KEPT && found.length < limit; index++) {
      const name = index === 0 ? this.#file : `${this.#file}.${index}`;
      let text: string;
      try {
        text = await readFile(join(this.#directory, name), 'utf8');
      } catch {
        continue;
      }
      const lines = text.split('\n');
      let reachedSince = false;
      for (let line = lines.length - 1; line >= 0 && found.length < limit; line--) {
        if (lines[line] === '') continue;
        let entry: AuditEntry;
        try {
          entry = JSON.parse(lines[line]!) as AuditEntry;
        } catch {
          continue; // a line cut by a crash
        }
        // Entries are in time order: past sinceMs, this file and the older ones hold nothing wanted.
        if (query.sinceMs !== undefined && entry.timeMs < query.sinceMs) {
          reachedSince = true;
          break;
        }
        if (matches(entry, query)) found.push(entry);
      }
      if (reachedSince) break;
    }
    return found;
  }

  /** Resolves when what was recorded so far is written. */
  async flush(): Promise<void> {
    await Promise.all(this.#closing);
    const stream = this.#stream;
    if (stream === undefined || stream.writableLength === 0) return;
    await new Promise<void>((resolve) => stream.write('', () => resolve()));
  }

  async close(): Promise<void> {
    await Promise.all(this.#closing);
    const stream = this.#stream;
    this.#stream = undefined;
    if (stream !== undefined) await new Promise<void>((resolve) => stream.end(() => resolve()));
  }

  #current(): WriteStream {
    this.#stream ??= createWriteStream(join(this.#directory, this.#file), { flags: 'a', mode: 0o640 });
    return this.#stream;
  }

  /**
   * Renames synchronously (a few renames every 16 MiB of entries), so no entry
   * waits or is lost meanwhile: the old stream finishes into the renamed file,
   * the next entry opens a new one.
   */
  #rotate(): void {
    const old = this.#stream;
    this.#stream = undefined;
    if (old !== undefined) {
      const closed = new Promise<void>((resolve) => old.end(() => resolve()));
      this.#closing.add(closed);
      void closed.then(() => this.#closing.delete(closed));
    }
    rmSync(join(this.#directory, `${this.#file}.${AUDIT_FILES_KEPT}`), { force: true });
    for (let index = AUDIT_FILES_KEPT - 1; index >= 0; index--) {
      const from = join(this.#directory, index === 0 ? this.#file : `${this.#file}.${index}`);
      try {
        renameSync(from, join(this.#directory, `${this.#file}.${index + 1}`));
      } catch {
        // Not there yet (fewer rotations so far).
      }
    }
    this.#bytes = 0;
  }
}

/** A refusal: an S3 request refused for who sent it, or an admin or console call refused before or at authorization. */
function isRefusal(entry: Omit<AuditEntry, 'timeMs'>): boolean {
  return entry.kind === 's3-denied' || entry.status === 401 || entry.status === 403 || entry.status === 429;
}

export class AuditLog {
  readonly #calls: AuditFile;
  readonly #refusals: AuditFile;

  private constructor(calls: AuditFile, refusals: AuditFile) {
    this.#calls = calls;
    this.#refusals = refusals;
  }

  static async open(dataDir: string): Promise<AuditLog> {
    const directory = join(dataDir, AUDIT_DIRECTORY);
    await mkdir(directory, { recursive: true, mode: 0o750 });
    return new AuditLog(await AuditFile.open(directory, AUDIT_FILE), await AuditFile.open(directory, REFUSALS_FILE));
  }

  record(entry: Omit<AuditEntry, 'timeMs'>): void {
    (isRefusal(entry) ? this.#refusals : this.#calls).record(entry);
  }

  /** Entries matching `query` from both series, newest first, at most `limit` (default 100, AUDIT_QUERY_LIMIT_MAX at most). */
  async query(query: AuditQuery = {}): Promise<AuditEntry[]> {
    const limit = Math.min(query.limit ?? 100, AUDIT_QUERY_LIMIT_MAX);
    const [calls, refusals] = await Promise.all([this.#calls.query({ ...query, limit }), this.#refusals.query({ ...query, limit })]);
    const merged: AuditEntry[] = [];
    let a = 0;
    let b = 0;
    while (merged.length < limit && (a < calls.length || b < refusals.length)) {
      const takeCall = b >= refusals.length || (a < calls.length && calls[a]!.timeMs >= refusals[b]!.timeMs);
      merged.push(takeCall ? calls[a++]! : refusals[b++]!);
    }
    return merged;
  }

  async flush(): Promise<void> {
    await Promise.all([this.#calls.flush(), this.#refusals.flush()]);
  }

  async close(): Promise<void> {
    await Promise.all([this.#calls.close(), this.#refusals.close()]);
  }
}

function matches(entry: AuditEntry, query: AuditQuery): boolean {
  if (query.sinceMs !== undefined && entry.timeMs < query.sinceMs) return false;
  if (query.untilMs !== undefined && entry.timeMs > query.untilMs) return false;
  if (query.principal !== undefined && entry.principal !== query.principal) return false;
  if (query.operation !== undefined && entry.operation !== query.operation) return false;
  if (query.kind !== undefined && entry.kind !== query.kind) return false;
  return true;
}

/** The audit entry of an S3 request refused for who sent it. */
export function refusedRequestEntry(request: {
  requestId: string; operation: string; principal: string; accessKeyId: string | undefined; status: number;
  errorCode: string | undefined; bucket: string; key: string; remoteAddress: string;
}): Omit<AuditEntry, 'timeMs'> {
  return {
    kind: 's3-denied',
    requestId: request.requestId,
    operation: request.operation,
    principal: request.principal,
    accessKeyId: request.accessKeyId,
    status: request.status,
    code: request.errorCode,
    bucket: request.bucket === '' ? undefined : request.bucket,
    key: request.key === '' ? undefined : request.key,
    sourceIp: request.remoteAddress,
  };
}
