/**
 * ObjectStorage in this process's memory: for tests, and for code that
 * wants S3's semantics without a disk. Every operation completes in one
 * synchronous step once the body is read, so conditional writes are
 * atomic within the process.
 */
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import {
  AlreadyExistsError,
  NoSuchUploadError,
  NotFoundError,
  PreconditionFailedError,
  type CompleteOptions,
  type DeleteManyError,
  type GetOptions,
  type GetResult,
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

interface StoredObject {
  readonly info: ObjectInfo;
  readonly bytes: Buffer;
}

interface StoredUpload {
  readonly key: string;
  readonly contentType: string;
  readonly metadata: Record<string, string>;
  readonly parts: Map<number, UploadedPart & { bytes: Buffer }>;
}

type Condition = { kind: 'none' } | { kind: 'absent' } | { kind: 'match'; etag: string };

export class MemoryStorage implements ObjectStorage {
  readonly #objects = new Map<string, StoredObject>();
  readonly #uploads = new Map<string, StoredUpload>();

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
    // Fail early, before reading a body that cannot be stored (and again at commit: the key may change meanwhile).
    this.#check(key, condition);
    const chunks: Buffer[] = [];
    const hash = createHash('md5');
    for await (const chunk of bodyChunks(body)) {
      options.signal?.throwIfAborted();
      hash.update(chunk);
      chunks.push(Buffer.from(chunk));
    }
    const bytes = Buffer.concat(chunks);
    const etag = md5Etag(hash.digest());
    this.#commit(key, bytes, etag, options.contentType ?? DEFAULT_CONTENT_TYPE, metadata, condition);
    return { etag };
  }

  #check(key: string, condition: Condition): void {
    const current = this.#objects.get(key);
    if (condition.kind === 'absent' && current !== undefined) throw new AlreadyExistsError(key);
    if (condition.kind === 'match' && current?.info.etag !== condition.etag) throw new PreconditionFailedError(key);
  }

  #commit(key: string, bytes: Buffer, etag: string, contentType: string, metadata: Record<string, string>, condition: Condition): void {
    this.#check(key, condition);
    this.#objects.set(key, { bytes, info: { key, size: bytes.length, etag, lastModified: new Date(), contentType, metadata } });
  }

  async get(key: string, options: GetOptions = {}): Promise<GetResult> {
    const object = this.#find(key);
    const range = resolveRange(key, object.info.size, options.range);
    const slice = object.bytes.subarray(range.start, range.end);
    return { body: Readable.from(slice.length === 0 ? [] : [slice]), info: copyInfo(object.info), range };
  }

  async head(key: string): Promise<ObjectInfo> {
    return copyInfo(this.#find(key).info);
  }

  #find(key: string): StoredObject {
    checkKey(key);
    const object = this.#objects.get(key);
    if (object === undefined) throw new NotFoundError(key);
    return object;
  }

  async *list(prefix = '', options: ListOptions = {}): AsyncIterable<ListPage> {
    checkPageSize(options);
    const sorted = [...this.#objects.values()].map((object) => object.info).filter((info) => info.key.startsWith(prefix));
    sorted.sort((a, b) => compareKeys(a.key, b.key));
    for (const page of pageListing(sorted.map(({ key, size, etag, lastModified }) => ({ key, size, etag, lastModified: new Date(lastModified) })), prefix, options)) {
      options.signal?.throwIfAborted();
      yield page;
    }
  }

  async delete(key: string): Promise<void> {
    checkKey(key);
    this.#objects.delete(key);
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
    const uploadId = randomId();
    this.#uploads.set(uploadId, { key, contentType: options.contentType ?? DEFAULT_CONTENT_TYPE, metadata: normalizeMetadata(options.metadata), parts: new Map() });
    return this.resumeMultipartUpload(key, uploadId);
  }

  resumeMultipartUpload(key: string, uploadId: string): MultipartUpload {
    checkKey(key);
    const uploads = this.#uploads;
    const upload = (): StoredUpload => {
      const found = uploads.get(uploadId);
      if (found === undefined || found.key !== key) throw new NoSuchUploadError(key, uploadId);
      return found;
    };
    return {
      key,
      uploadId,
      uploadPart: async (partNumber, body, options = {}) => {
        checkPartNumber(partNumber);
        upload();
        const chunks: Buffer[] = [];
        const hash = createHash('md5');
        for await (const chunk of bodyChunks(body)) {
          options.signal?.throwIfAborted();
          hash.update(chunk);
          chunks.push(Buffer.from(chunk));
        }
        const bytes = Buffer.concat(chunks);
        const part = { partNumber, etag: md5Etag(hash.digest()), size: bytes.length, bytes };
        upload().parts.set(partNumber, part);
        return { partNumber, etag: part.etag, size: part.size };
      },
      listParts: async () =>
        [...upload().parts.values()].sort((a, b) => a.partNumber - b.partNumber).map(({ partNumber, etag, size }) => ({ partNumber, etag, size })),
      complete: async (asked, options: CompleteOptions = {}) => {
        const found = upload();
        const parts = selectParts(key, asked, found.parts);
        const etag = multipartEtag(parts.map((part) => part.etag));
        const condition: Condition = options.ifNoneMatch === '*' ? { kind: 'absent' } : options.ifMatch !== undefined ? { kind: 'match', etag: quoteEtag(options.ifMatch) } : { kind: 'none' };
        this.#commit(key, Buffer.concat(parts.map((part) => part.bytes)), etag, found.contentType, found.metadata, condition);
        uploads.delete(uploadId);
        return { etag };
      },
      abort: async () => {
        uploads.delete(uploadId);
      },
    };
  }

  /** Uploads not yet completed or aborted (tests check none is left behind). */
  pendingUploads(): { key: string; uploadId: string }[] {
    return [...this.#uploads].map(([uploadId, upload]) => ({ key: upload.key, uploadId }));
  }

  async close(): Promise<void> {}
}

function copyInfo(info: ObjectInfo): ObjectInfo {
  return { ...info, lastModified: new Date(info.lastModified), metadata: { ...info.metadata } };
}

export function deleteError(key: string, error: unknown): DeleteManyError {
  const code = typeof error === 'object' && error !== null && typeof (error as { code?: unknown }).code === 'string' ? (error as { code: string }).code : 'InternalError';
  return { key, code, message: error instanceof Error ? error.message : String(error) };
}
