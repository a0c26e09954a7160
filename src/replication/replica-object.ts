/**
 * How a snapshot or a segment is stored on a backend: one object,
 *
 *   "TALUSRM1" | header length (u32 BE) | header (JSON) | body [| GCM tag]
 *
 * The body is the payload compressed with brotli at quality 1 (node:zlib;
 * Node 20 has no zstd; gzip was measured at 80-90 us of CPU per 4 KiB PUT
 * shipped, mostly deflating incompressible inline object bytes, brotli
 * quality 1 at 11 us, bench/replication.bench.ts) and,
 * when the configuration gives a key, encrypted with AES-256-GCM under a
 * fresh nonce with the header as associated data: the header (what the
 * object claims to be: store, epoch, positions) cannot be swapped or edited
 * without failing the tag. The header also carries the payload's size and a
 * SHA-256, so a damaged object is refused with or without encryption: a
 * snapshot's of its payload, checked after decompression; a segment's of
 * its body as compressed (before encryption), checked before
 * decompression: ~7 times fewer bytes to hash than the payload on the load
 * generator's bodies (~2.3 µs of CPU per 4 KiB PUT on the cutter thread).
 * Segments written before that carry the payload's SHA-256 instead, and
 * are read as before. Snapshots stream through files (a database can be
 * large); segments are small and stay in memory.
 *
 * A segment whose payload would not compress (its tail, where the inline
 * object bytes are, is sampled: media and encrypted objects, random load
 * generator bodies) is stored as it is, `compression: "none"`: brotli
 * spent ~11 µs of CPU per 4 KiB PUT shipped to save nothing
 * (bench/replication-cost.bench.ts). Snapshots are always compressed.
 */
import { createCipheriv, createDecipheriv, createHash, randomBytes, type CipherGCM, type DecipherGCM } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { open, stat } from 'node:fs/promises';
import { PassThrough, Readable, Transform, type Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { brotliCompress as brotliCompressCallback, brotliCompressSync, constants as zlibConstants, createBrotliCompress, createBrotliDecompress } from 'node:zlib';
import { promisify } from 'node:util';
import type { Backend } from '../backend/backend.ts';
import { assert } from '../util/assert.ts';
import { SegmentPayload } from './segment.ts';

const brotliCompress = promisify(brotliCompressCallback);
/** Fast: most of a segment is inline object bytes, often incompressible. */
const BROTLI_OPTIONS: { readonly params: Readonly<Record<number, number>> } = { params: { [zlibConstants.BROTLI_PARAM_QUALITY]: 1 } };
/** The tail of a segment's payload compressed on trial (~0.1 ms once per segment, on the event loop): a segment's blobs follow its JSON. */
const COMPRESSION_SAMPLE_BYTES = 64 * 1024;
/** A sample that keeps more than this share of its size after brotli: the segment is stored uncompressed. */
const COMPRESSION_WORTH_RATIO_MAX = 0.9;

const MAGIC = Buffer.from('TALUSRM1');
const TAG_BYTES = 16;
const NONCE_BYTES = 12;
export const REPLICATION_KEY_BYTES = 32;
/** A header is a few hundred bytes; anything near this is not ours. */
const HEADER_BYTES_MAX = 16 * 1024;
/** Segments are bounded (segment.ts); a body far past that is not a segment. */
const SEGMENT_OBJECT_BYTES_MAX = 256 * 1024 * 1024;

export interface ReplicaHeader {
  readonly kind: 'snapshot' | 'segment';
  readonly storeId: string;
  readonly epoch: number;
  /** Snapshot: its position (from = to). Segment: the positions (from, to] it covers. */
  readonly from: number;
  readonly to: number;
  /** Segments only: false when cut short (segment.ts). */
  readonly complete: boolean;
  readonly plainBytes: number;
  /** SHA-256 of the payload (snapshots, and segments written before bodySha256). */
  readonly plainSha256?: string;
  /** Segments: SHA-256 of the body as compressed, before encryption (the body itself when `compression` is "none"). */
  readonly bodySha256?: string;
  /** Snapshots always brotli; segments "none" when their payload does not compress. */
  readonly compression: 'brotli' | 'none';
  readonly cipher: 'aes-256-gcm' | null;
  readonly nonce: string | null;
}

export class ReplicaObjectError extends Error {
  override name = 'ReplicaObjectError';
}

function prefix(header: ReplicaHeader): Buffer {
  const json = Buffer.from(JSON.stringify(header));
  const length = Buffer.alloc(4);
  length.writeUInt32BE(json.length);
  return Buffer.concat([MAGIC, length, json]);
}

function cipherFor(header: ReplicaHeader, key: Buffer | undefined, headerBytes: Buffer): CipherGCM | undefined {
  if (key === undefined) return undefined;
  const cipher = createCipheriv('aes-256-gcm', key, Buffer.from(header.nonce!, 'base64'));
  cipher.setAAD(headerBytes);
  return cipher;
}

function headerFields(
  kind: ReplicaHeader['kind'],
  fields: HeaderFields,
  checks: { plainBytes: number; plainSha256: string } | { plainBytes: number; bodySha256: string },
  key: Buffer | undefined,
  compression: ReplicaHeader['compression'] = 'brotli',
): ReplicaHeader {
  return {
    ...fields,
    kind,
    ...checks,
    compression,
    cipher: key === undefined ? null : 'aes-256-gcm',
    nonce: key === undefined ? null : randomBytes(NONCE_BYTES).toString('base64'),
  };
}

type HeaderFields = Omit<ReplicaHeader, 'kind' | 'compression' | 'cipher' | 'nonce' | 'plainBytes' | 'plainSha256' | 'bodySha256'>;

/** A segment's object bytes. */
export async function encodeSegmentObject(fields: HeaderFields, plain: Buffer, key: Buffer | undefined): Promise<Buffer> {
  return Buffer.concat(await encodeSegmentObjectParts(fields, plain, key));
}

/**
 * A segment's object as parts to store one after the other: the header,
 * then the body (the payload itself when it does not compress), not copied
 * into one buffer with the header (~3 µs of CPU per 4 KiB PUT shipped).
 */
export async function encodeSegmentObjectParts(fields: HeaderFields, plain: Buffer | SegmentPayload, key: Buffer | undefined, chunk?: Buffer): Promise<Buffer[]> {
  const payload = Buffer.isBuffer(plain) ? SegmentPayload.of(plain) : plain;
  const { compression, body: compressed } = await compressSegment(payload, chunk);
  const header = headerFields('segment', fields, { plainBytes: payload.size, bodySha256: createHash('sha256').update(compressed).digest('hex') }, key, compression);
  const head = prefix(header);
  const cipher = cipherFor(header, key, head);
  if (cipher === undefined) return [head, compressed];
  return [head, cipher.update(compressed), cipher.final(), cipher.getAuthTag()];
}

/**
 * Brotli when it is worth its CPU on this payload (judged on its tail), else the payload as it is (written out
 * into a buffer of its own). A payload not yet written out (a SegmentPayload of several pieces) is compressed
 * through `chunk`, one chunk after the other into one brotli stream, so that it is never whole in memory: the
 * cutter thread kept ~21 MB resident for it at a quiet run's rate (PayloadScratch). With chunks of
 * SEGMENT_COMPRESSION_CHUNK_BYTES the compressed bytes are the very bytes one input gives (see there).
 */
async function compressSegment(payload: SegmentPayload, chunk: Buffer | undefined): Promise<{ compression: ReplicaHeader['compression']; body: Buffer }> {
  const whole = payload.blobs.length === 0 ? payload.head : undefined;
  const sampleStart = Math.max(0, payload.size - COMPRESSION_SAMPLE_BYTES);
  const sample = whole?.subarray(sampleStart) ?? readPayload(payload, sampleStart, Buffer.allocUnsafe(payload.size - sampleStart));
  const trial = brotliCompressSync(sample, BROTLI_OPTIONS);
  if (trial.length > sample.length * COMPRESSION_WORTH_RATIO_MAX) return { compression: 'none', body: whole ?? payload.writeOut() };
  // A small segment was compressed whole by the trial.
  if (sample.length === payload.size) return { compression: 'brotli', body: trial };
  if (whole !== undefined) return { compression: 'brotli', body: await brotliCompress(whole, BROTLI_OPTIONS) };
  return { compression: 'brotli', body: await brotliInChunks(payload, chunk ?? Buffer.allocUnsafeSlow(SEGMENT_COMPRESSION_CHUNK_BYTES)) };
}

function readPayload(payload: SegmentPayload, start: number, out: Buffer): Buffer {
  const read = payload.reader(start).read(out);
  assert(read === out.length, 'the payload holds the bytes read');
  return out;
}

/**
 * How much of a payload goes to brotli at once (the cutter thread's chunk, segment-cutter-thread.ts): brotli's
 * fast modes (quality 0 and 1) cut their input into blocks of at most 1 << window bits (the window in
 * BROTLI_OPTIONS, 22 by default: 4 MiB) or what they were given, so chunks of exactly that size give the bytes
 * one input gives, byte for byte (test/replication-round7.test.ts). That is about the compression ratio (1 MiB
 * chunks compressed the load generator's bodies ~8 % larger) and the benchmarks' comparability, not about
 * compatibility: restore decodes any valid brotli stream, and bodySha256 is over whatever bytes were produced.
 */
export const SEGMENT_COMPRESSION_CHUNK_BYTES = 1 << (BROTLI_OPTIONS.params[zlibConstants.BROTLI_PARAM_LGWIN] ?? zlibConstants.BROTLI_DEFAULT_WINDOW);
/** Brotli's output pieces (node's default is 16 KiB: a round trip per piece). */
const BROTLI_OUTPUT_CHUNK_BYTES = 256 * 1024;

/** The payload through one brotli stream, `chunk` refilled once brotli has taken its previous contents. */
async function brotliInChunks(payload: SegmentPayload, chunk: Buffer): Promise<Buffer> {
  // Any other length compresses less well (a smaller one) or lets brotli cut blocks where one input would not.
  assert(chunk.length === SEGMENT_COMPRESSION_CHUNK_BYTES, 'a payload is compressed through chunks of brotli\'s block bound');
  const stream = createBrotliCompress({ ...BROTLI_OPTIONS, chunkSize: BROTLI_OUTPUT_CHUNK_BYTES });
  const output: Buffer[] = [];
  stream.on('data', (piece: Buffer) => output.push(piece));
  const ended = new Promise<void>((resolve, reject) => {
    stream.once('end', resolve);
    stream.once('error', reject);
  });
  // A failure in the middle (node:zlib destroys the stream with the error) never calls the pending write's
  // callback: `ended` rejects instead, awaited beside each write. Handled from here on, whenever it rejects
  // (an unhandled rejection would end the cutter thread).
  ended.catch(() => undefined);
  const reader = payload.reader();
  try {
    for (let read = reader.read(chunk); read > 0; read = reader.read(chunk)) {
      // The write's callback comes once brotli has consumed the whole input (node:zlib reads it in place on the
      // pool until then), so the chunk is free again. Not pipeline() from a Readable: a write buffered by the
      // stream would let the chunk be refilled while brotli still holds it.
      const written = new Promise<Error | null | undefined>((resolve) => stream.write(chunk.subarray(0, read), resolve));
      const error = await Promise.race([written, ended]);
      if (error) throw error;
    }
    stream.end();
    await ended;
  } catch (error) {
    stream.destroy();
    throw error;
  }
  return Buffer.concat(output);
}

/** Writes a snapshot's object to `objectPath` from the database copy at `databasePath`; returns its header. */
export async function encodeSnapshotFile(fields: HeaderFields, databasePath: string, objectPath: string, key: Buffer | undefined): Promise<ReplicaHeader> {
  const hash = createHash('sha256');
  let bytes = 0;
  for await (const chunk of createReadStream(databasePath)) {
    hash.update(chunk as Buffer);
    bytes += (chunk as Buffer).length;
  }
  const header = headerFields('snapshot', fields, { plainBytes: bytes, plainSha256: hash.digest('hex') }, key);
  const head = prefix(header);
  const out = createWriteStream(objectPath);
  out.write(head);
  const cipher = cipherFor(header, key, head);
  const stages: (NodeJS.ReadableStream | NodeJS.ReadWriteStream | Writable)[] = [createReadStream(databasePath), createBrotliCompress(BROTLI_OPTIONS)];
  if (cipher !== undefined) stages.push(cipher);
  // The tag follows the body, once the cipher has seen all of it.
  const tail = new PassThrough({ flush: (done) => done(null, cipher?.getAuthTag()) });
  await pipeline([...stages, tail, out] as unknown as Parameters<typeof pipeline>[0][]);
  return header;
}

/** What uploadObject stores: bytes in memory (one buffer, or parts one after the other) or a file's. */
export type ReplicaBody = Buffer | readonly Buffer[] | { path: string };

/** Uploads a file or buffer(s) as `key`, replacing any object there. */
export async function uploadObject(backend: Backend, key: string, body: ReplicaBody): Promise<void> {
  const inMemory = Buffer.isBuffer(body) || Array.isArray(body);
  const sizeBytes = Buffer.isBuffer(body) ? body.length : Array.isArray(body) ? body.reduce((sum, part) => sum + part.length, 0) : (await stat((body as { path: string }).path)).size;
  const writer = backend.create(key, sizeBytes);
  try {
    if (inMemory) await writer.write(body as Buffer | readonly Buffer[]);
    else for await (const chunk of createReadStream((body as { path: string }).path, { highWaterMark: 1024 * 1024 })) await writer.write(chunk as Buffer);
    await writer.commit();
  } catch (error) {
    await writer.abort();
    throw error;
  }
}

async function readAll(source: AsyncIterable<Buffer>): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of source) chunks.push(chunk);
  return Buffer.concat(chunks);
}

/** Reads and checks the header of `key` on `backend`; returns it with where the body starts and the object's size. */
async function readHeader(backend: Backend, key: string): Promise<{ header: ReplicaHeader; head: Buffer; sizeBytes: number }> {
  const sizeBytes = await backend.stat(key);
  if (sizeBytes === undefined) throw new ReplicaObjectError(`${backend.name}: ${key} is missing`);
  const first = await readAll(await backend.read(key, 0, Math.min(sizeBytes, MAGIC.length + 4 + HEADER_BYTES_MAX)));
  if (first.length < MAGIC.length + 4 || !first.subarray(0, MAGIC.length).equals(MAGIC)) throw new ReplicaObjectError(`${backend.name}: ${key} is not a Talus metadata replica object`);
  const length = first.readUInt32BE(MAGIC.length);
  if (length > HEADER_BYTES_MAX || MAGIC.length + 4 + length > first.length) throw new ReplicaObjectError(`${backend.name}: ${key}: header damaged`);
  const head = first.subarray(0, MAGIC.length + 4 + length);
  let header: ReplicaHeader;
  try {
    header = JSON.parse(head.subarray(MAGIC.length + 4).toString('utf8')) as ReplicaHeader;
  } catch {
    throw new ReplicaObjectError(`${backend.name}: ${key}: header damaged`);
  }
  return { header, head, sizeBytes };
}

/**
 * Downloads, decrypts, decompresses and verifies `key`, streaming the
 * payload into `sink`. Rejects (ReplicaObjectError) on any mismatch: wrong
 * or missing key, damaged bytes, a header that does not match `expect`.
 */
async function decodeInto(backend: Backend, key: string, encryptionKey: Buffer | undefined, expect: Partial<ReplicaHeader>, sink: Writable): Promise<ReplicaHeader> {
  const { header, head, sizeBytes } = await readHeader(backend, key);
  for (const [field, value] of Object.entries(expect)) {
    if (header[field as keyof ReplicaHeader] !== value) throw new ReplicaObjectError(`${backend.name}: ${key}: header says ${field} = ${String(header[field as keyof ReplicaHeader])}, its name ${String(value)}`);
  }
  if (header.kind === 'segment' && sizeBytes > SEGMENT_OBJECT_BYTES_MAX) throw new ReplicaObjectError(`${backend.name}: ${key}: ${sizeBytes} bytes is too large for a segment`);
  let decipher: DecipherGCM | undefined;
  let bodyEnd = sizeBytes;
  if (header.cipher !== null) {
    if (encryptionKey === undefined) throw new ReplicaObjectError(`${backend.name}: ${key} is encrypted and the configuration gives no [replication] key`);
    bodyEnd = sizeBytes - TAG_BYTES;
    if (bodyEnd < head.length) throw new ReplicaObjectError(`${backend.name}: ${key}: truncated`);
    decipher = createDecipheriv('aes-256-gcm', encryptionKey, Buffer.from(header.nonce ?? '', 'base64'));
    decipher.setAAD(head);
    decipher.setAuthTag(await readAll(await backend.read(key, bodyEnd, sizeBytes)));
  } else if (encryptionKey !== undefined) {
    // A key is configured, so every replica written is encrypted: a plain one was not written by us.
    throw new ReplicaObjectError(`${backend.name}: ${key} is not encrypted although the configuration gives a key`);
  }
  // Which SHA-256 the header carries: the payload's (checked after decompression) or the body's (before it).
  const plainHash = typeof header.plainSha256 === 'string' ? createHash('sha256') : undefined;
  const bodyHash = typeof header.bodySha256 === 'string' ? createHash('sha256') : undefined;
  if (plainHash === undefined && bodyHash === undefined) throw new ReplicaObjectError(`${backend.name}: ${key}: header damaged (no checksum)`);
  let bytes = 0;
  const verify = new Transform({
    transform(chunk: Buffer, _encoding, done) {
      plainHash?.update(chunk);
      bytes += chunk.length;
      if (bytes > header.plainBytes) done(new ReplicaObjectError(`${backend.name}: ${key}: longer than its header says`));
      else done(null, chunk);
    },
  });
  const stages: (NodeJS.ReadableStream | NodeJS.ReadWriteStream | Writable)[] = [Readable.from(await backend.read(key, head.length, bodyEnd))];
  if (decipher !== undefined) stages.push(decipher);
  if (bodyHash !== undefined) {
    stages.push(
      new Transform({
        transform(chunk: Buffer, _encoding, done) {
          bodyHash.update(chunk);
          done(null, chunk);
        },
      }),
    );
  }
  if (header.compression === 'brotli') stages.push(createBrotliDecompress());
  else if (header.compression !== 'none') throw new ReplicaObjectError(`${backend.name}: ${key}: compression ${JSON.stringify(header.compression)} is not known to this Talus`);
  stages.push(verify, sink);
  try {
    await pipeline(stages as unknown as Parameters<typeof pipeline>[0][]);
  } catch (error) {
    if (error instanceof ReplicaObjectError) throw error;
    throw new ReplicaObjectError(`${backend.name}: ${key}: damaged or wrong key (${error instanceof Error ? error.message : String(error)})`);
  }
  const matches = bytes === header.plainBytes && (plainHash === undefined || plainHash.digest('hex') === header.plainSha256) && (bodyHash === undefined || bodyHash.digest('hex') === header.bodySha256);
  if (!matches) throw new ReplicaObjectError(`${backend.name}: ${key}: checksum mismatch`);
  return header;
}

export async function downloadSegmentObject(backend: Backend, key: string, encryptionKey: Buffer | undefined, expect: Partial<ReplicaHeader>): Promise<{ header: ReplicaHeader; plain: Buffer }> {
  const chunks: Buffer[] = [];
  const sink = new PassThrough();
  sink.on('data', (chunk: Buffer) => chunks.push(chunk));
  const header = await decodeInto(backend, key, encryptionKey, { ...expect, kind: 'segment' }, sink);
  return { header, plain: Buffer.concat(chunks) };
}

export async function downloadSnapshotObject(backend: Backend, key: string, encryptionKey: Buffer | undefined, expect: Partial<ReplicaHeader>, databasePath: string): Promise<ReplicaHeader> {
  const header = await decodeInto(backend, key, encryptionKey, { ...expect, kind: 'snapshot' }, createWriteStream(databasePath));
  const file = await open(databasePath, 'r+');
  try {
    await file.sync();
  } finally {
    await file.close();
  }
  return header;
}
