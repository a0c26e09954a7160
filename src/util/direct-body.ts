import type { Writable } from 'node:stream';

/**
 * A response body that can write itself into a destination with memory it
 * reuses, instead of handing the destination a new Buffer per chunk. It is
 * still an ordinary Readable for everyone else (copies, multipart reads);
 * the HTTP front takes this path when it finds it.
 *
 * Why: a 256 KiB Buffer per chunk is external memory V8 must account for,
 * and streaming ~1 GB/s of them made V8 run ~20 full mark-compacts a second
 * ("GC in old space requested", measured with --trace-gc) on a 64 MiB GET
 * workload; reused buffers allocate nothing per chunk.
 */
export interface DirectBody {
  /** Writes every byte into `destination` and ends it; rejects if either side fails (the caller then destroys both). */
  pipeInto(destination: Writable): Promise<void>;
}

export function isDirectBody(body: unknown): body is DirectBody {
  return typeof body === 'object' && body !== null && typeof (body as { pipeInto?: unknown }).pipeInto === 'function';
}
