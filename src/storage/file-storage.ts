/**
 * ObjectStorage in a directory (layout and file format: file-layout.ts).
 *
 * Writes stream into a temporary file under the root (same filesystem),
 * which is fsynced, then renamed over the object's name, and the directory
 * fsynced: a reader sees the old object or the new one, and an acknowledged
 * write survives a crash.
 *
 * Every change of a key (put, conditional put, delete, multipart completion)
 * holds the key's lock file, created with O_EXCL next to the object, while it
 * checks its condition and renames: so conditions are race-free across
 * threads and processes (on a local filesystem; O_EXCL on NFS needs v3+).
 * The body is written before the lock is taken, so the lock is held for a
 * few syscalls. A lock left by a process that died is recognised (its PID is
 * gone on this host) and broken. Readers take no lock.
 *
 * Why unconditional puts and deletes lock too: link(2) alone would make
 * putIfAbsent atomic, but putIfMatch is a read-compare-rename, and a put or
 * delete landing between its compare and its rename would be overwritten by
 * a write whose condition was checked against an older version. With every
 * change under the key's lock the changes of a key are totally ordered.
 * Limits: stale locks are judged by PID on the same host name only (a lock
 * from another host, or a PID reused since, is waited for up to lockWaitMs);
 * keys differing only in case collide on case-insensitive filesystems.
 */
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { link, mkdir, open, readdir, readFile, rename, rm, rmdir, stat, unlink, writeFile, type FileHandle } from 'node:fs/promises';
import { hostname } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  AlreadyExistsError,
  NoSuchUploadError,
  NotFoundError,
  PreconditionFailedError,
  StorageError,
  type CompleteOptions,
  type DeleteManyError,
  type GetOptions,
  type GetResult,
  type ListedObject,
  type ListOptions,
  type ListPage,
  type MultipartOptions,
  type MultipartUpload,
  type ObjectInfo,
  type ObjectStorage,
  type PutOptions,
  type PutResult,
  type StorageBody,
  type UploadedPart,
} from './object-storage.ts';
import {
  INTERNAL_DIRECTORY,
  LOCK_SUFFIX,
  OBJECT_SUFFIX,
  TRAILER_TAIL_BYTES,
  decodeName,
  decodeSegment,
  encodeTrailer,
  isInternalName,
  objectPaths,
  parseTrailer,
  prefixDirectory,
  trailerJsonLength,
  type ObjectTrailer,
} from './file-layout.ts';
import { deleteError } from './memory-storage.ts';
import {
  DEFAULT_CONTENT_TYPE,
  bodyChunks,
  checkKey,
  checkPageSize,
  checkPartNumber,
  compareKeys,
  md5Etag,
  multipartEtag,
  normalizeMetadata,
  pageListing,
  quoteEtag,
  randomId,
  resolveRange,
  selectParts,
} from './storage-rules.ts';

/** How long a change waits for a key's lock before giving up (a live holder holds it for milliseconds). */
export const LOCK_WAIT_MS_DEFAULT = 30_000;
const LOCK_RETRY_MS_MAX = 20;
/** A temporary file untouched this long belongs to a write that died. */
export const TEMP_FILE_ABANDONED_MS = 60 * 60_000;
const UPLOAD_ID = /^[a-z0-9-]{1,64}$/;

type Condition = { kind: 'none' } | { kind: 'absent' } | { kind: 'match'; etag: string };

interface TempObject {
  path: string;
  etag: string;
  size: number;
}

export interface FileStorageOptions {
  /** Longest wait for a key's lock; default 30 s. */
  lockWaitMs?: number;
}

export class FileStorage implements ObjectStorage {
  readonly root: string;
  readonly #tmp: string;
  readonly #uploads: string;
  readonly #lockWaitMs: number;
  readonly #host = hostname();
  #ready: Promise<void> | undefined;

  constructor(root: string, options: FileStorageOptions = {}) {
    this.root = resolve(root);
    this.#tmp = join(this.root, INTERNAL_DIRECTORY, 'tmp');
    this.#uploads = join(this.root, INTERNAL_DIRECTORY, 'uploads');
    this.#lockWaitMs = options.lockWaitMs ?? LOCK_WAIT_MS_DEFAULT;
  }

  #prepare(): Promise<void> {
    return (this.#ready ??= (async () => {
      await mkdir(this.#tmp, { recursive: true });
      await mkdir(this.#uploads, { recursive: true });
      await this.#sweepAbandonedTemporaryFiles();
    })());
  }

  /**
   * Temporary files of writes a crash interrupted are never renamed into
   * place; the first write of each process removes those untouched for an
   * hour (a live write touches its file with every chunk).
   */
  async #sweepAbandonedTemporaryFiles(): Promise<void> {
    const cutoff = Date.now() - TEMP_FILE_ABANDONED_MS;
    for (const name of await readdir(this.#tmp).catch(() => [] as string[])) {
      const path = join(this.#tmp, name);
      const info = await stat(path).catch(() => undefined);
      if (info !== undefined && info.mtimeMs < cutoff) await unlink(path).catch(() => undefined);
    }
  }

  async put(key: string, body: StorageBody, options: PutOptions = {}): Promise<PutResult> {
    return this.#write(key, body, options, { kind: 'none' });
  }

  async putIfAbsent(key: string, body: StorageBody, options: PutOptions = {}): Promise<PutResult> {
    return this.#write(key, body, options, { kind: 'absent' });
  }

  async putIfMatch(key: string, body: StorageBody, etag: string, options: PutOptions = {}): Promise<PutResult> {
    return this.#write(key, body, options, { kind: 'match', etag: quoteEtag(etag) });
  }

  async #write(key: string, body: StorageBody, options: PutOptions, condition: Condition): Promise<PutResult> {
    checkKey(key);
    const metadata = normalizeMetadata(options.metadata);
    const contentType = options.contentType ?? DEFAULT_CONTENT_TYPE;
    await this.#prepare();
    const temp = await this.#writeTemp(async (handle) => {
      const hash = createHash('md5');
      let size = 0;
      for await (const chunk of bodyChunks(body)) {
        options.signal?.throwIfAborted();
        hash.update(chunk);
        await writeAll(handle, chunk);
        size += chunk.length;
      }
      const etag = md5Etag(hash.digest());
      return { etag, size, trailer: { key, size, etag, contentType, metadata, lastModified: Date.now() } };
    });
    await this.#commit(key, temp, condition);
    return { etag: temp.etag };
  }

  /** A temporary file: `fill` writes the bytes, then the trailer is appended and the file fsynced. */
  async #writeTemp(fill: (handle: FileHandle) => Promise<{ etag: string; size: number; trailer: ObjectTrailer }>): Promise<TempObject> {
    const path = join(this.#tmp, `${randomId()}.tmp`);
    const handle = await open(path, 'wx');
    try {
      const { etag, size, trailer } = await fill(handle);
      await writeAll(handle, encodeTrailer({ ...trailer, lastModified: Date.now() }));
      await handle.sync();
      await handle.close();
      return { path, etag, size };
    } catch (error) {
      await handle.close().catch(() => undefined);
      await unlink(path).catch(() => undefined);
      throw error;
    }
  }

  /** Under the key's lock: checks the condition, renames the temporary file into place, fsyncs the directory. */
  async #commit(key: string, temp: TempObject, condition: Condition): Promise<void> {
    const paths = objectPaths(key);
    const objectPath = join(this.root, paths.object);
    try {
      await this.#withLock(key, async () => {
        if (condition.kind !== 'none') {
          const current = await this.#readTrailer(objectPath).catch((error: unknown) => {
            if (isCode(error, 'ENOENT') || isCode(error, 'ENOTDIR')) return undefined;
            throw error;
          });
          if (condition.kind === 'absent' && current !== undefined) throw new AlreadyExistsError(key);
          if (condition.kind === 'match' && current?.etag !== condition.etag) throw new PreconditionFailedError(key);
        }
        await rename(temp.path, objectPath);
        await syncDirectory(dirname(objectPath));
      });
    } catch (error) {
      await unlink(temp.path).catch(() => undefined);
      throw error;
    }
  }

  async #withLock<T>(key: string, action: () => Promise<T>): Promise<T> {
    const paths = objectPaths(key);
    const lockPath = join(this.root, paths.lock);
    const directory = join(this.root, paths.directory);
    const token = `${process.pid} ${this.#host} ${randomBytes(8).toString('hex')}\n`;
    const deadline = Date.now() + this.#lockWaitMs;
    await this.#prepare();
    // The lock appears whole: link(2) of a file that already holds the token.
    // Creating the lock and then writing it would leave an empty lock behind a
    // process killed in between, and an empty lock names no holder to judge.
    const tokenPath = join(this.#tmp, `${randomId()}.tmp`);
    await writeFile(tokenPath, token, { flag: 'wx' });
    try {
      for (let attempt = 0; ; attempt++) {
        try {
          await link(tokenPath, lockPath);
          break;
        } catch (error) {
          if (isCode(error, 'ENOENT')) {
            await ensureDirectory(this.root, directory);
            continue;
          }
          if (!isCode(error, 'EEXIST')) throw error;
          if (await this.#breakIfStale(lockPath)) continue;
          if (Date.now() > deadline) throw new StorageError('SlowDown', `key ${JSON.stringify(key)} stayed locked for ${this.#lockWaitMs} ms (${lockPath})`, key);
          await sleep(Math.random() * Math.min(LOCK_RETRY_MS_MAX, 1 + attempt));
        }
      }
    } finally {
      await unlink(tokenPath).catch(() => undefined);
    }
    try {
      return await action();
    } finally {
      await unlink(lockPath).catch(() => undefined);
    }
  }

  /**
   * A lock whose holder died on this host is moved aside (one process wins
   * the rename) and removed. Should the moved file not be the stale lock we
   * judged (a new holder took the name between our read and our rename), it
   * is put back.
   */
  async #breakIfStale(lockPath: string): Promise<boolean> {
    let content: string;
    try {
      content = await readFile(lockPath, 'utf8');
    } catch (error) {
      if (isCode(error, 'ENOENT')) return true; // released meanwhile
      throw error;
    }
    const [pid, host] = content.split(' ');
    // A lock from another host is never judged here (nor one left empty by an older version: waited for).
    if (pid === undefined || host !== this.#host || processAlive(Number(pid))) return false;
    const aside = `${lockPath}.${randomId()}.stale`;
    try {
      await rename(lockPath, aside);
    } catch (error) {
      if (isCode(error, 'ENOENT')) return true;
      throw error;
    }
    const moved = await readFile(aside, 'utf8').catch(() => '');
    if (moved !== content) await link(aside, lockPath).catch(() => undefined);
    await unlink(aside).catch(() => undefined);
    return true;
  }

  async #readTrailer(objectPath: string): Promise<ObjectTrailer> {
    const handle = await open(objectPath, 'r');
    try {
      return (await readTrailerOf(handle, objectPath)).trailer;
    } finally {
      await handle.close();
    }
  }

  async get(key: string, options: GetOptions = {}): Promise<GetResult> {
    checkKey(key);
    const path = join(this.root, objectPaths(key).object);
    const handle = await openObject(key, path);
    try {
      const { trailer } = await readTrailerOf(handle, path);
      const range = resolveRange(key, trailer.size, options.range);
      const info = infoOf(trailer);
      if (range.end === range.start) {
        await handle.close();
        return { body: Readable.from([]), info, range };
      }
      // The stream reads the version this handle opened, whatever renames happen meanwhile.
      const body = createReadStream('', { fd: handle, start: range.start, end: range.end - 1, autoClose: true, signal: options.signal });
      return { body, info, range };
    } catch (error) {
      await handle.close().catch(() => undefined);
      throw error;
    }
  }

  async head(key: string): Promise<ObjectInfo> {
    checkKey(key);
    const path = join(this.root, objectPaths(key).object);
    const handle = await openObject(key, path);
    try {
      return infoOf((await readTrailerOf(handle, path)).trailer);
    } finally {
      await handle.close();
    }
  }

  async *list(prefix = '', options: ListOptions = {}): AsyncIterable<ListPage> {
    checkPageSize(options);
    const cut = prefix.lastIndexOf('/');
    const keys: string[] = [];
    await collectKeys(join(this.root, prefixDirectory(prefix)), '', cut === -1 ? '' : prefix.slice(0, cut + 1), prefix, keys);
    keys.sort(compareKeys);
    const placeholders: ListedObject[] = keys.map((key) => ({ key, size: 0, etag: '', lastModified: new Date(0) }));
    for (const page of pageListing(placeholders, prefix, options)) {
      options.signal?.throwIfAborted();
      const objects: ListedObject[] = [];
      for (const object of page.objects) {
        try {
          const trailer = await this.#readTrailer(join(this.root, objectPaths(object.key).object));
          objects.push({ key: object.key, size: trailer.size, etag: trailer.etag, lastModified: new Date(trailer.lastModified) });
        } catch (error) {
          if (!isCode(error, 'ENOENT')) throw error; // deleted since the walk
        }
      }
      yield { objects, commonPrefixes: page.commonPrefixes };
    }
  }

  async delete(key: string): Promise<void> {
    checkKey(key);
    const paths = objectPaths(key);
    await this.#withLock(key, async () => {
      try {
        await unlink(join(this.root, paths.object));
      } catch (error) {
        if (isCode(error, 'ENOENT') || isCode(error, 'ENOTDIR')) return;
        throw error;
      }
      await syncDirectory(join(this.root, paths.directory));
    });
    await this.#pruneDirectories(join(this.root, paths.directory));
  }

  /** Removes directories left empty, up to the root; a directory another writer is filling is left alone (ENOTEMPTY). */
  async #pruneDirectories(directory: string): Promise<void> {
    while (directory.length > this.root.length && directory.startsWith(this.root)) {
      try {
        await rmdir(directory);
      } catch {
        return;
      }
      directory = dirname(directory);
    }
  }

  async deleteMany(keys: readonly string[]): Promise<DeleteManyError[]> {
    const errors: DeleteManyError[] = [];
    for (const key of keys) {
      try {
        await this.delete(key);
      } catch (error) {
        errors.push(deleteError(key, error));
      }
    }
    return errors;
  }

  async createMultipartUpload(key: string, options: MultipartOptions = {}): Promise<MultipartUpload> {
    checkKey(key);
    const metadata = normalizeMetadata(options.metadata);
    await this.#prepare();
    const uploadId = randomId();
    const directory = join(this.#uploads, uploadId);
    await mkdir(directory);
    await writeFile(join(directory, 'upload.json'), JSON.stringify({ key, contentType: options.contentType ?? DEFAULT_CONTENT_TYPE, metadata }));
    return this.resumeMultipartUpload(key, uploadId);
  }

  resumeMultipartUpload(key: string, uploadId: string): MultipartUpload {
    checkKey(key);
    if (!UPLOAD_ID.test(uploadId)) throw new NoSuchUploadError(key, uploadId);
    return new FileMultipartUpload(this, key, uploadId, join(this.#uploads, uploadId));
  }

  /** For FileMultipartUpload. */
  async uploadPart(upload: FileMultipartUpload, partNumber: number, body: StorageBody, signal?: AbortSignal): Promise<UploadedPart> {
    checkPartNumber(partNumber);
    await upload.describe();
    const temp = await this.#writeTemp(async (handle) => {
      const hash = createHash('md5');
      let size = 0;
      for await (const chunk of bodyChunks(body)) {
        signal?.throwIfAborted();
        hash.update(chunk);
        await writeAll(handle, chunk);
        size += chunk.length;
      }
      const etag = md5Etag(hash.digest());
      return { etag, size, trailer: { key: upload.key, size, etag, contentType: '', metadata: {}, lastModified: 0 } };
    });
    try {
      await rename(temp.path, join(upload.directory, `${partNumber}.part`));
    } catch (error) {
      await unlink(temp.path).catch(() => undefined);
      if (isCode(error, 'ENOENT')) throw new NoSuchUploadError(upload.key, upload.uploadId);
      throw error;
    }
    return { partNumber, etag: temp.etag, size: temp.size };
  }

  /** For FileMultipartUpload. */
  async completeUpload(upload: FileMultipartUpload, asked: readonly { partNumber: number; etag: string }[], options: CompleteOptions): Promise<PutResult> {
    const described = await upload.describe();
    const uploaded = new Map((await upload.listParts()).map((part) => [part.partNumber, part]));
    const parts = selectParts(upload.key, asked, uploaded);
    // Claim the upload: of two completions racing, one renames, the other finds no upload.
    const claimed = `${upload.directory}.completing-${randomId()}`;
    try {
      await rename(upload.directory, claimed);
    } catch (error) {
      if (isCode(error, 'ENOENT')) throw new NoSuchUploadError(upload.key, upload.uploadId);
      throw error;
    }
    const etag = multipartEtag(parts.map((part) => part.etag));
    const size = parts.reduce((sum, part) => sum + part.size, 0);
    try {
      const temp = await this.#writeTemp(async (handle) => {
        for (const part of parts) {
          const stream = createReadStream(join(claimed, `${part.partNumber}.part`), { start: 0, end: part.size - 1 });
          if (part.size > 0) for await (const chunk of stream as AsyncIterable<Buffer>) await writeAll(handle, chunk);
          else stream.destroy();
        }
        return { etag, size, trailer: { key: upload.key, size, etag, contentType: described.contentType, metadata: described.metadata, lastModified: 0 } };
      });
      const condition: Condition = options.ifNoneMatch === '*' ? { kind: 'absent' } : options.ifMatch !== undefined ? { kind: 'match', etag: quoteEtag(options.ifMatch) } : { kind: 'none' };
      await this.#commit(upload.key, temp, condition);
    } catch (error) {
      // A failed condition leaves the upload as it was (S3 keeps it too).
      await rename(claimed, upload.directory).catch(() => undefined);
      throw error;
    }
    await rm(claimed, { recursive: true, force: true });
    return { etag };
  }

  /** Uploads not completed or aborted (tests check none is left behind). */
  async pendingUploads(): Promise<string[]> {
    await this.#prepare();
    return (await readdir(this.#uploads)).filter((name) => UPLOAD_ID.test(name));
  }

  async close(): Promise<void> {}
}

class FileMultipartUpload implements MultipartUpload {
  readonly #storage: FileStorage;
  readonly key: string;
  readonly uploadId: string;
  readonly directory: string;

  constructor(storage: FileStorage, key: string, uploadId: string, directory: string) {
    this.#storage = storage;
    this.key = key;
    this.uploadId = uploadId;
    this.directory = directory;
  }

  async describe(): Promise<{ contentType: string; metadata: Record<string, string> }> {
    let text: string;
    try {
      text = await readFile(join(this.directory, 'upload.json'), 'utf8');
    } catch (error) {
      if (isCode(error, 'ENOENT')) throw new NoSuchUploadError(this.key, this.uploadId);
      throw error;
    }
    const description = JSON.parse(text) as { key: string; contentType: string; metadata: Record<string, string> };
    if (description.key !== this.key) throw new NoSuchUploadError(this.key, this.uploadId);
    return description;
  }

  uploadPart(partNumber: number, body: StorageBody, options: { size?: number; signal?: AbortSignal } = {}): Promise<UploadedPart> {
    return this.#storage.uploadPart(this, partNumber, body, options.signal);
  }

  async listParts(): Promise<UploadedPart[]> {
    await this.describe();
    const parts: UploadedPart[] = [];
    for (const name of await readdir(this.directory)) {
      const match = /^(\d+)\.part$/.exec(name);
      if (match === null) continue;
      const path = join(this.directory, name);
      const handle = await open(path, 'r').catch(() => undefined);
      if (handle === undefined) continue;
      try {
        const { trailer } = await readTrailerOf(handle, path);
        parts.push({ partNumber: Number(match[1]), etag: trailer.etag, size: trailer.size });
      } finally {
        await handle.close();
      }
    }
    return parts.sort((a, b) => a.partNumber - b.partNumber);
  }

  complete(parts: readonly { partNumber: number; etag: string }[], options: CompleteOptions = {}): Promise<PutResult> {
    return this.#storage.completeUpload(this, parts, options);
  }

  async abort(): Promise<void> {
    await rm(this.directory, { recursive: true, force: true });
  }
}

async function openObject(key: string, path: string): Promise<FileHandle> {
  try {
    return await open(path, 'r');
  } catch (error) {
    if (isCode(error, 'ENOENT') || isCode(error, 'ENOTDIR')) throw new NotFoundError(key);
    throw error;
  }
}

async function readTrailerOf(handle: FileHandle, path: string): Promise<{ trailer: ObjectTrailer }> {
  const { size: fileBytes } = await handle.stat();
  if (fileBytes < TRAILER_TAIL_BYTES) throw new StorageError('InternalError', `${path}: not an object file`);
  const tail = Buffer.alloc(TRAILER_TAIL_BYTES);
  await handle.read(tail, 0, TRAILER_TAIL_BYTES, fileBytes - TRAILER_TAIL_BYTES);
  const jsonBytes = trailerJsonLength(tail, path);
  const json = Buffer.alloc(jsonBytes);
  await handle.read(json, 0, jsonBytes, fileBytes - TRAILER_TAIL_BYTES - jsonBytes);
  const trailer = parseTrailer(json, path);
  if (trailer.size !== fileBytes - TRAILER_TAIL_BYTES - jsonBytes) throw new StorageError('InternalError', `${path}: size disagrees with its trailer`);
  return { trailer };
}

function infoOf(trailer: ObjectTrailer): ObjectInfo {
  return { key: trailer.key, size: trailer.size, etag: trailer.etag, lastModified: new Date(trailer.lastModified), contentType: trailer.contentType, metadata: trailer.metadata };
}

/** Walks `directory`, adding each key that starts with `prefix` (`keyPrefix` is the decoded path so far, `pending` an unfinished long segment). */
async function collectKeys(directory: string, pending: string, keyPrefix: string, prefix: string, keys: string[]): Promise<void> {
  let entries;
  try {
    entries = await readdir(directory, { withFileTypes: true });
  } catch (error) {
    if (isCode(error, 'ENOENT') || isCode(error, 'ENOTDIR')) return;
    throw error;
  }
  for (const entry of entries) {
    if (isInternalName(entry.name)) continue;
    if (entry.isDirectory()) {
      const { text, continues } = decodeName(entry.name);
      if (continues) {
        await collectKeys(join(directory, entry.name), pending + text, keyPrefix, prefix, keys);
        continue;
      }
      const next = `${keyPrefix}${decodeSegment(pending + text)}/`;
      // Only directories whose keys can start with the prefix.
      if (next.startsWith(prefix) || prefix.startsWith(next)) await collectKeys(join(directory, entry.name), '', next, prefix, keys);
    } else if (entry.name.endsWith(OBJECT_SUFFIX)) {
      const key = keyPrefix + decodeSegment(pending + entry.name.slice(0, -OBJECT_SUFFIX.length));
      if (key.startsWith(prefix)) keys.push(key);
    } else if (entry.name.endsWith(LOCK_SUFFIX)) {
      continue;
    }
  }
}

async function writeAll(handle: FileHandle, chunk: Buffer): Promise<void> {
  let at = 0;
  while (at < chunk.length) {
    const { bytesWritten } = await handle.write(chunk, at, chunk.length - at);
    at += bytesWritten;
  }
}

async function syncDirectory(directory: string): Promise<void> {
  const handle = await open(directory, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** mkdir -p, fsyncing the parent of each directory made so the new names survive a crash. */
async function ensureDirectory(root: string, directory: string): Promise<void> {
  const first = await mkdir(directory, { recursive: true });
  if (first === undefined) return;
  for (let made = directory; made.length >= first.length && made.startsWith(root); made = dirname(made)) {
    await syncDirectory(dirname(made)).catch(() => undefined);
    if (made === first) break;
  }
}

function processAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return true; // unknown: never judge stale
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return !isCode(error, 'ESRCH');
  }
}

function isCode(error: unknown, code: string): boolean {
  return typeof error === 'object' && error !== null && (error as { code?: unknown }).code === code;
}

