/**
 * PUT bodies without per-request allocation: one buffer of random bytes,
 * made once. A body up to the buffer's size is a view into it (no copy; all
 * requests in flight share the memory); a bigger one streams views of it in
 * chunks, so memory stays at the buffer's size whatever the object size.
 * Bodies start at different offsets, so objects differ from each other.
 */
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { assert } from '../util/assert.ts';
import { KiB, MiB } from '../util/limits.ts';
import { hashToUnit } from './sizes.ts';

/** Bodies up to this size are one Buffer view; larger ones stream. */
export const PAYLOAD_BUFFER_BYTES_MAX = 16 * MiB;
/** Chunk size of streamed bodies. */
const STREAM_CHUNK_BYTES = 1 * MiB;
/** How far body starts spread over the buffer. */
const OFFSET_SPREAD_BYTES = 4 * KiB;

export class PayloadSource {
  readonly #buffer: Buffer;
  readonly #viewBytesMax: number;

  constructor(objectBytesMax: number) {
    assert(Number.isSafeInteger(objectBytesMax) && objectBytesMax >= 0, 'payload: size is a byte count');
    this.#viewBytesMax = Math.min(objectBytesMax, PAYLOAD_BUFFER_BYTES_MAX);
    this.#buffer = randomBytes(this.#viewBytesMax + OFFSET_SPREAD_BYTES);
  }

  /** The body of object `id` with `size` bytes: a Buffer, or a Readable (pass its size as contentLength). */
  body(id: number, size: number): Buffer | Readable {
    const offset = Math.floor(hashToUnit(id) * OFFSET_SPREAD_BYTES);
    if (size <= this.#viewBytesMax) return this.#buffer.subarray(offset, offset + size);
    return Readable.from(chunks(this.#buffer, offset, size), { objectMode: false, highWaterMark: STREAM_CHUNK_BYTES });
  }
}

/** Views of `buffer`, wrapping around, `size` bytes in all. */
function* chunks(buffer: Buffer, offset: number, size: number): Generator<Buffer> {
  let position = offset;
  let remaining = size;
  while (remaining > 0) {
    if (position >= buffer.length) position = 0;
    const length = Math.min(STREAM_CHUNK_BYTES, remaining, buffer.length - position);
    yield buffer.subarray(position, position + length);
    position += length;
    remaining -= length;
  }
}
