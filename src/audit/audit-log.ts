/**
 * The audit log: every admin API call and every request refused for its
 * authentication or authorization, always on, as JSON lines in
 * DATA_DIR/audit/. Written only by the process that owns the data directory
 * (workers send their entries to it), so one writer rotates the files: at
 * AUDIT_FILE_BYTES_MAX the current file becomes audit.log.1 (older ones shift,
 * the oldest past AUDIT_FILES_KEPT is removed). Queried newest first by time,
 * caller and operation (the admin API's QueryAuditLog).
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

export class AuditLog {
  readonly #directory: string;
  #stream: WriteStream | undefined;
  #bytes = 0;
  #dropped = 0;
  /** Streams of rotated files still writing what they were given (their fd follows the renamed file). */
  readonly #closing = new Set<Promise<void>>();

  private constructor(directory: string, bytes: number) {
    this.#directory = directory;
    this.#bytes = bytes;
  }

  static async open(dataDir: string): Promise<AuditLog> {
    const directory = join(dataDir, AUDIT_DIRECTORY);
    await mkdir(directory, { recursive: true, mode: 0o750 });
    const bytes = await stat(join(directory, AUDIT_FILE)).then((found) => found.size, () => 0);
    return new AuditLog(directory, bytes);
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
      const name = index === 0 ? AUDIT_FILE : `${AUDIT_FILE}.${index}`;
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
    this.#stream ??= createWriteStream(join(this.#directory, AUDIT_FILE), { flags: 'a', mode: 0o640 });
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
    rmSync(join(this.#directory, `${AUDIT_FILE}.${AUDIT_FILES_KEPT}`), { force: true });
    for (let index = AUDIT_FILES_KEPT - 1; index >= 0; index--) {
      const from = join(this.#directory, index === 0 ? AUDIT_FILE : `${AUDIT_FILE}.${index}`);
      try {
        renameSync(from, join(this.#directory, `${AUDIT_FILE}.${index + 1}`));
      } catch {
        // Not there yet (fewer rotations so far).
      }
    }
    this.#bytes = 0;
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
