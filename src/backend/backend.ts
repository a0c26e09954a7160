/**
 * A backend is a place where bytes live: a local directory, memory (tests),
 * or a remote S3-compatible endpoint. The placement layer spreads every
 * blob's shards or replicas over several backends; a backend knows nothing
 * of objects, versions or placements, only of immutable objects under keys
 * that Talus generates (never a client's key).
 *
 * Every method may fail because the backend is down or slow: callers treat a
 * failure as "this backend, this time", never as the end of the request.
 */
export interface Backend {
  /** The name in the configuration; layouts refer to backends by it. */
  readonly name: string;
  /**
   * Starts writing an object of exactly `sizeBytes` (known up front: a
   * remote backend sends it as Content-Length). Nothing changes under `key`
   * until commit() resolves, which replaces the object whole. Keys are
   * written once, except by repairs, which rewrite the same bytes.
   */
  create(key: string, sizeBytes: number): BackendWriter;
  /**
   * Bytes [start, end) of `key`. Rejects with BackendObjectMissingError when
   * the object is not there. `chunkBytes` is a hint: chunks of that size
   * (a striped read's frames) save the reader from joining them.
   */
  read(key: string, start: number, end: number, options?: BackendReadOptions): Promise<AsyncIterable<Buffer>>;
  /** Size of `key`, or undefined when it is not there. The signal gives up on a backend that does not answer. */
  stat(key: string, options?: { readonly signal?: AbortSignal }): Promise<number | undefined>;
  /** Removes objects; missing ones are not an error (removals are retried). The signal gives up on a backend that does not answer. */
  remove(keys: readonly string[], options?: { readonly signal?: AbortSignal }): Promise<void>;
  /** Every key under `prefix`, in no particular order. */
  list(prefix: string): AsyncIterable<string>;
  /** Removes what writes that never committed left behind before `beforeMs` (after a crash); returns how many. */
  discardIncomplete?(beforeMs: number): Promise<number>;
  close(): Promise<void>;
}

export interface BackendReadOptions {
  readonly signal?: AbortSignal;
  readonly chunkBytes?: number;
}

export interface BackendWriter {
  /**
   * Appends a chunk, or several in order (one system call where the backend
   * can); resolves when the backend accepted them (backpressure). The caller
   * may reuse the chunks afterwards.
   */
  write(chunk: Uint8Array | readonly Uint8Array[]): Promise<void>;
  /** Makes the object durable and visible; rejects if fewer bytes than announced were written. */
  commit(): Promise<void>;
  /** Discards an uncommitted object; safe at any point and more than once (after commit it does nothing: use remove). */
  abort(): Promise<void>;
}

export class BackendObjectMissingError extends Error {
  override name = 'BackendObjectMissingError';
  constructor(
    readonly backend: string,
    readonly key: string,
  ) {
    super(`${backend}: object ${key} is missing`);
  }
}

/** A backend did not answer within the deadline its observed latency allows (placement/backend-health.ts). */
export class BackendTimeoutError extends Error {
  override name = 'BackendTimeoutError';
  constructor(
    readonly backend: string,
    readonly operation: string,
    readonly deadlineMs: number,
  ) {
    super(`${backend}: ${operation} did not answer within ${Math.round(deadlineMs)} ms`);
  }
}

/** A write that did not get exactly the bytes it announced: a bug in the caller, or a truncated body. */
export class BackendSizeMismatchError extends Error {
  override name = 'BackendSizeMismatchError';
  constructor(
    readonly backend: string,
    readonly key: string,
    readonly expectedBytes: number,
    readonly writtenBytes: number,
  ) {
    super(`${backend}: object ${key} announced ${expectedBytes} bytes, got ${writtenBytes}`);
  }
}

/** Backend keys are generated: letters, digits, '.', '-', '_' and '/' between segments. */
const BACKEND_KEY_PATTERN = /^[0-9A-Za-z_-][0-9A-Za-z._-]*(\/[0-9A-Za-z_-][0-9A-Za-z._-]*)*$/;
export const BACKEND_KEY_BYTES_MAX = 200;

export function isBackendKey(key: string): boolean {
  return key.length <= BACKEND_KEY_BYTES_MAX && BACKEND_KEY_PATTERN.test(key);
}
