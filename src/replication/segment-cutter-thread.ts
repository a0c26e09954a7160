/**
 * The segment cutter's thread (segment-cutter.ts): its own read-only
 * connection to the metadata database, and for each request the segment
 * after a position, encoded into its replica object (SHA-256, brotli when
 * it pays, AES-GCM with a key), which goes back to the event loop for
 * upload. Requests come one at a time (the replicator has one round in
 * flight).
 */
import { parentPort, workerData } from 'node:worker_threads';
import Database from 'better-sqlite3';
import { assert } from '../util/assert.ts';
import { encodeSegmentObject } from './replica-object.ts';
import { cutSegment, encodeSegment } from './segment.ts';
import type { CutReply, CutRequest, CutterData } from './segment-cutter.ts';

const data = workerData as CutterData;
const port = parentPort;
assert(port !== null, 'segment-cutter-thread runs as a worker thread');
const db = new Database(data.databasePath, { readonly: true, fileMustExist: true });
db.pragma(`busy_timeout = ${data.busyTimeoutMs}`);
const key = data.key === undefined ? undefined : Buffer.from(data.key);

async function answer(request: CutRequest): Promise<{ reply: CutReply; transfer: ArrayBuffer[] }> {
  const segment = cutSegment(db, request.from);
  if (segment === undefined) return { reply: { id: request.id, segment: undefined }, transfer: [] };
  const fields = { storeId: data.storeId, epoch: data.epoch, from: segment.from, to: segment.to, complete: segment.complete };
  const body = await encodeSegmentObject(fields, encodeSegment(segment), key);
  // Moved, not copied, when the object owns its memory (it does past Buffer's pool size).
  const owns = body.byteOffset === 0 && body.byteLength === body.buffer.byteLength && body.buffer instanceof ArrayBuffer;
  return { reply: { id: request.id, segment: { from: segment.from, to: segment.to, complete: segment.complete, body } }, transfer: owns ? [body.buffer as ArrayBuffer] : [] };
}

port.on('message', (request: CutRequest) => {
  answer(request).then(
    ({ reply, transfer }) => port.postMessage(reply, transfer),
    (error: unknown) => port.postMessage({ id: request.id, error: error instanceof Error ? error.message : String(error) } satisfies CutReply),
  );
});
