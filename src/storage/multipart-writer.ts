/**
 * BufferedMultipartWriter: a Node Writable over any ObjectStorage that turns
 * a stream of appends of any size into an object, without knowing its
 * length in advance.
 *
 * - Parts are all exactly `partSize` bytes except the last (R2 requires equal
 *   parts; S3 only a 5 MiB minimum).
 * - Up to `concurrency` parts upload at once; a write waits while that many
 *   are in flight, so memory stays below partSize × concurrency plus the
 *   part being filled (and the Writable's small highWaterMark).
 * - A stream that ends within one part is one plain put: no upload at all.
 * - `end()` completes the upload (with `ifNoneMatch: '*'` or `ifMatch` when
 *   asked, so the object appears only if the condition holds); an error or
 *   `destroy()` aborts it, leaving neither an object nor an upload behind.
 * - With `stateKey`, the upload ID and the ETags of the parts uploaded so far
 *   are kept in a small side object after each part, so that after a crash
 *   `BufferedMultipartWriter.resume()` continues the same upload from the
 *   first byte not yet in a part (the side object goes on completion or
 *   abort).
 */
import { Writable } from 'node:stream';
import { PART_BYTES_MIN, PART_NUMBER_MAX } from './storage-rules.ts';
import type { MultipartUpload, ObjectStorage, PutResult, UploadedPart } from './object-storage.ts';

export const WRITER_PART_BYTES_DEFAULT = 8 * 1024 * 1024;
export const WRITER_CONCURRENCY_DEFAULT = 4;
const WRITER_CONCURRENCY_MAX = 64;

export interface BufferedMultipartWriterOptions {
  /** Bytes per part: at least 5 MiB (S3's minimum), default 8 MiB. */
  partSize?: number;
  /** Parts uploading at once; default 4. */
  concurrency?: number;
  contentType?: string;
  metadata?: Record<string, string>;
  /** '*': the object is created only if the key is free (AlreadyExistsError otherwise). */
  ifNoneMatch?: '*';
  /** The object replaces only the version with this ETag (PreconditionFailedError otherwise). */
  ifMatch?: string;
  /** Keep the upload's state (ID, part ETags) in this side object, to resume after a restart. */
  stateKey?: string;
}

/** The side object of a resumable upload. */
interface UploadState {
  version: 1;
  key: string;
  uploadId: string;
  partSize: number;
  parts: UploadedPart[];
}

export interface ResumedWriter {
  writer: BufferedMultipartWriter;
  /** Bytes of the stream already in parts: write the stream from here on. */
  offset: number;
}

export interface WriterStats {
  /** Parts uploaded (0 when the stream went up as one put). */
  parts: number;
  /** The most parts that were uploading at once. */
  partsInFlightPeak: number;
  /** The most bytes held in part buffers at once. */
  bufferedBytesPeak: number;
}

export class BufferedMultipartWriter extends Writable {
  readonly key: string;
  readonly #storage: ObjectStorage;
  readonly #options: BufferedMultipartWriterOptions;
  readonly #partSize: number;
  readonly #concurrency: number;
  /** The part being filled. */
  #buffer: Buffer | undefined;
  #filled = 0;
  #upload: Promise<MultipartUpload> | undefined;
  readonly #inFlight = new Set<Promise<void>>();
  readonly #parts: UploadedPart[] = [];
  #nextPartNumber = 1;
  #failure: Error | undefined;
  #completed = false;
  #bufferedBytes = 0;
  /** Side-object writes, one after another so the last state written is the newest. */
  #stateWrites: Promise<void> = Promise.resolve();
  readonly #stats: WriterStats = { parts: 0, partsInFlightPeak: 0, bufferedBytesPeak: 0 };
  readonly #result: Promise<PutResult>;
  #resolveResult!: (result: PutResult) => void;
  #rejectResult!: (error: Error) => void;

  constructor(storage: ObjectStorage, key: string, options: BufferedMultipartWriterOptions = {}) {
    super({ highWaterMark: 64 * 1024 });
    this.key = key;
    this.#storage = storage;
    this.#options = options;
    this.#partSize = options.partSize ?? WRITER_PART_BYTES_DEFAULT;
    this.#concurrency = options.concurrency ?? WRITER_CONCURRENCY_DEFAULT;
    if (!Number.isSafeInteger(this.#partSize) || this.#partSize < PART_BYTES_MIN) throw new RangeError(`partSize must be at least 5 MiB, not ${this.#partSize}`);
    if (!Number.isInteger(this.#concurrency) || this.#concurrency < 1 || this.#concurrency > WRITER_CONCURRENCY_MAX) throw new RangeError(`concurrency must be 1 to ${WRITER_CONCURRENCY_MAX}`);
    if (options.ifNoneMatch !== undefined && options.ifMatch !== undefined) throw new TypeError('ifNoneMatch and ifMatch exclude each other');
    this.#result = new Promise((resolve, reject) => {
      this.#resolveResult = resolve;
      this.#rejectResult = reject;
    });
    this.#result.catch(() => undefined); // also reported as the stream's error
  }

  /**
   * Continues the upload recorded in `options.stateKey` by a writer that did
   * not finish (its process died). Parts the store confirms (ListParts) and
   * the state recorded, numbered 1..n without a gap, are kept; write the
   * stream from `offset` on. Without a state object, a fresh writer at 0.
   */
  static async resume(storage: ObjectStorage, key: string, options: BufferedMultipartWriterOptions & { stateKey: string }): Promise<ResumedWriter> {
    let state: UploadState;
    try {
      const { body } = await storage.get(options.stateKey);
      const chunks: Buffer[] = [];
      for await (const chunk of body as AsyncIterable<Buffer>) chunks.push(chunk);
      state = JSON.parse(Buffer.concat(chunks).toString('utf8')) as UploadState;
    } catch (error) {
      if ((error as { code?: string }).code === 'NoSuchKey') return { writer: new BufferedMultipartWriter(storage, key, options), offset: 0 };
      throw error;
    }
    if (state.version !== 1 || state.key !== key) throw new Error(`${options.stateKey} records an upload of ${JSON.stringify(state.key)}, not ${JSON.stringify(key)}`);
    const partSize = options.partSize ?? WRITER_PART_BYTES_DEFAULT;
    if (state.partSize !== partSize) throw new Error(`${options.stateKey} was written with parts of ${state.partSize} bytes, not ${partSize}`);
    const upload = storage.resumeMultipartUpload(key, state.uploadId);
    const confirmed = new Map((await upload.listParts()).map((part) => [part.partNumber, part]));
    const kept: UploadedPart[] = [];
    for (const part of [...state.parts].sort((a, b) => a.partNumber - b.partNumber)) {
      const stored = confirmed.get(part.partNumber);
      if (part.partNumber !== kept.length + 1 || stored === undefined || stored.etag !== part.etag || stored.size !== partSize) break;
      kept.push(part);
    }
    const writer = new BufferedMultipartWriter(storage, key, options);
    writer.#upload = Promise.resolve(upload);
    writer.#parts.push(...kept);
    writer.#nextPartNumber = kept.length + 1;
    return { writer, offset: kept.length * partSize };
  }

  #recordState(): void {
    const stateKey = this.#options.stateKey;
    const upload = this.#upload;
    if (stateKey === undefined || upload === undefined) return;
    const parts = [...this.#parts].sort((a, b) => a.partNumber - b.partNumber);
    this.#stateWrites = this.#stateWrites.then(async () => {
      const { uploadId } = await upload;
      const state: UploadState = { version: 1, key: this.key, uploadId, partSize: this.#partSize, parts };
      await this.#storage.put(stateKey, JSON.stringify(state), { contentType: 'application/json' });
    }).catch((error: unknown) => {
      // A state that cannot be kept makes the upload unresumable: fail it rather than promise what we cannot keep.
      this.#failure ??= error instanceof Error ? error : new Error(String(error));
    });
  }

  async #dropState(): Promise<void> {
    const stateKey = this.#options.stateKey;
    if (stateKey === undefined) return;
    await this.#stateWrites.catch(() => undefined);
    await this.#storage.delete(stateKey);
  }

  /** Settles when the object is written (with its ETag) or the stream failed. */
  get result(): Promise<PutResult> {
    return this.#result;
  }

  get stats(): WriterStats {
    return { ...this.#stats };
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.#append(chunk).then(() => callback(), callback);
  }

  override _writev(chunks: { chunk: Buffer }[], callback: (error?: Error | null) => void): void {
    (async () => {
      for (const { chunk } of chunks) await this.#append(chunk);
    })().then(() => callback(), callback);
  }

  async #append(chunk: Buffer): Promise<void> {
    let at = 0;
    while (at < chunk.length) {
      if (this.#failure !== undefined) throw this.#failure;
      // A full part goes up only once more bytes come: a stream of exactly one part stays one put.
      if (this.#buffer !== undefined && this.#filled === this.#partSize) await this.#sendBuffer();
      if (this.#buffer === undefined) {
        this.#buffer = Buffer.allocUnsafe(this.#partSize);
        this.#filled = 0;
        this.#holdBytes(this.#partSize);
      }
      const copied = chunk.copy(this.#buffer, this.#filled, at);
      this.#filled += copied;
      at += copied;
    }
  }

  #holdBytes(bytes: number): void {
    this.#bufferedBytes += bytes;
    this.#stats.bufferedBytesPeak = Math.max(this.#stats.bufferedBytesPeak, this.#bufferedBytes);
  }

  /** Starts uploading the filled buffer as the next part; waits first while `concurrency` parts are in flight. */
  async #sendBuffer(): Promise<void> {
    while (this.#inFlight.size >= this.#concurrency) await Promise.race(this.#inFlight);
    if (this.#failure !== undefined) throw this.#failure;
    const bytes = this.#buffer!.subarray(0, this.#filled);
    this.#buffer = undefined;
    this.#filled = 0;
    const partNumber = this.#nextPartNumber++;
    if (partNumber > PART_NUMBER_MAX) throw new RangeError(`more than ${PART_NUMBER_MAX} parts of ${this.#partSize} bytes: use a larger partSize`);
    this.#upload ??= this.#storage.createMultipartUpload(this.key, { contentType: this.#options.contentType, metadata: this.#options.metadata });
    const upload = this.#upload;
    const sending = (async () => {
      try {
        const part = await (await upload).uploadPart(partNumber, bytes, { size: bytes.length });
        this.#parts.push(part);
        this.#stats.parts++;
        this.#recordState();
      } catch (error) {
        this.#failure ??= error instanceof Error ? error : new Error(String(error));
      } finally {
        this.#bufferedBytes -= this.#partSize;
      }
    })();
    const tracked = sending.finally(() => this.#inFlight.delete(tracked));
    this.#inFlight.add(tracked);
    this.#stats.partsInFlightPeak = Math.max(this.#stats.partsInFlightPeak, this.#inFlight.size);
  }

  override _final(callback: (error?: Error | null) => void): void {
    this.#finish().then(
      (result) => {
        this.#completed = true;
        this.#resolveResult(result);
        callback();
      },
      (error: Error) => callback(error),
    );
  }

  async #finish(): Promise<PutResult> {
    if (this.#failure !== undefined) throw this.#failure;
    if (this.#upload === undefined) {
      // Everything fits one part: one put, conditional if asked.
      const body = this.#buffer === undefined ? Buffer.alloc(0) : this.#buffer.subarray(0, this.#filled);
      const options = { contentType: this.#options.contentType, metadata: this.#options.metadata };
      if (this.#options.ifNoneMatch === '*') return this.#storage.putIfAbsent(this.key, body, options);
      if (this.#options.ifMatch !== undefined) return this.#storage.putIfMatch(this.key, body, this.#options.ifMatch, options);
      return this.#storage.put(this.key, body, options);
    }
    if (this.#buffer !== undefined && this.#filled > 0) await this.#sendBuffer();
    while (this.#inFlight.size > 0) await Promise.race(this.#inFlight);
    if (this.#failure !== undefined) throw this.#failure;
    const upload = await this.#upload;
    const parts = [...this.#parts].sort((a, b) => a.partNumber - b.partNumber);
    const result = await upload.complete(parts, { ...(this.#options.ifNoneMatch === undefined ? {} : { ifNoneMatch: this.#options.ifNoneMatch }), ...(this.#options.ifMatch === undefined ? {} : { ifMatch: this.#options.ifMatch }) });
    // The object is there: a side object left behind only makes a later resume fail with NoSuchUpload.
    await this.#dropState().catch(() => undefined);
    return result;
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    const reason = error ?? new Error('BufferedMultipartWriter destroyed before the object was complete');
    this.#failure ??= reason;
    this.#buffer = undefined;
    (async () => {
      if (this.#completed || this.#upload === undefined) return;
      // Let parts in flight settle, then abort: the store keeps no parts and makes no object.
      await Promise.allSettled([...this.#inFlight]);
      const upload = await this.#upload.catch(() => undefined);
      await upload?.abort();
      await this.#dropState().catch(() => undefined);
    })().then(
      () => {
        if (!this.#completed) this.#rejectResult(reason);
        callback(error);
      },
      (abortError: Error) => {
        if (!this.#completed) this.#rejectResult(reason);
        callback(error ?? abortError);
      },
    );
  }
}
