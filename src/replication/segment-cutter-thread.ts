/**
 * The segment cutter's thread (segment-cutter.ts): its own read-only
 * connection to the metadata database, and for each request the segment
 * after a position, encoded into its replica object (SHA-256, brotli when
 * it pays, AES-GCM with a key), which goes back to the event loop for
 * upload. Requests come one at a time (the replicator has one round in
 * flight), and are answered one at a time in any case.
 */
import { parentPort, workerData, type MessagePort } from 'node:worker_threads';
import Database from 'better-sqlite3';
import { assert } from '../util/assert.ts';
import { bodyRecords } from './inline-body-ring.ts';
import { encodeSegmentObjectParts, SEGMENT_COMPRESSION_CHUNK_BYTES } from './replica-object.ts';
import { cutSegmentPayload } from './segment.ts';
import type { CutReply, CutRequest, CutterData } from './segment-cutter.ts';

const data = workerData as CutterData;
const port = parentPort;
assert(port !== null, 'segment-cutter-thread runs as a worker thread');
const replies: MessagePort = port;
const db = new Database(data.databasePath, { readonly: true, fileMustExist: true });
db.pragma(`busy_timeout = ${data.busyTimeoutMs}`);
// The DISTINCT of each cut's keys sorts in memory, never in a temporary file.
db.pragma('temp_store = MEMORY');
const key = data.key === undefined ? undefined : Buffer.from(data.key);
/**
 * Each payload goes to brotli through this chunk (replica-object.ts), never whole: one request at a time. A
 * payload that does not compress is written out into a buffer of its own, moved to the event loop with the reply.
 */
const chunk = Buffer.allocUnsafeSlow(SEGMENT_COMPRESSION_CHUNK_BYTES);

async function answer(request: CutRequest): Promise<{ reply: CutReply; transfer: ArrayBuffer[] }> {
  // The serving thread's inline bodies (inline-body-ring.ts), copied into the payload here.
  const bodies = request.bodies === undefined || data.ring === undefined ? undefined : bodyRecords(data.ring, request.bodies);
  const segment = cutSegmentPayload(db, request.from, bodies);
  if (segment === undefined) return { reply: { id: request.id, segment: undefined }, transfer: [] };
  const fields = { storeId: data.storeId, epoch: data.epoch, from: segment.from, to: segment.to, complete: segment.complete };
  const parts = await encodeSegmentObjectParts(fields, segment.payload, key, chunk);
  // Moved, not copied, where a part owns its memory (brotli's output does, and a payload stored as it is; small
  // parts share Buffer's pool).
  const transfer = new Set<ArrayBuffer>();
  for (const part of parts) {
    const owns = part.byteOffset === 0 && part.byteLength === part.buffer.byteLength && part.buffer instanceof ArrayBuffer;
    if (owns) transfer.add(part.buffer as ArrayBuffer);
  }
  return { reply: { id: request.id, segment: { from: segment.from, to: segment.to, complete: segment.complete, cut: segment.cut, bodiesFromRecords: segment.bodiesFromRecords, parts } }, transfer: [...transfer] };
}

/**
 * Requests are answered one after the other, whatever the caller sends: a payload's chunk is being read by
 * brotli on libuv's pool until its object is encoded, so a second cut must not begin before.
 */
let answering: Promise<void> = Promise.resolve();
async function reply(request: CutRequest): Promise<void> {
  try {
    const { reply: message, transfer } = await answer(request);
    replies.postMessage(message, transfer);
  } catch (error) {
    replies.postMessage({ id: request.id, error: error instanceof Error ? error.message : String(error) } satisfies CutReply);
  }
}
port.on('message', (request: CutRequest) => {
  answering = answering.then(() => reply(request));
});
