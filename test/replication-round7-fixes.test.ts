/**
 * Metadata replication, round 7, after review (docs/PERFORMANCE.md "Metadata
 * replication, round 7"): a ring past 3/4 whose records were all shipped
 * without being handed over does not keep asking for rounds while idle; a
 * brotli failure in the middle of a chunked payload rejects the encode
 * instead of leaving it pending; the chunk is brotli's block bound at the
 * window actually used, and payloads of exact chunk multiples compress to
 * the bytes one input gives.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { createBrotliCompress } from 'node:zlib';
import type { BackendWriter } from '../src/backend/backend.ts';
import { MemoryBackend } from '../src/backend/memory-backend.ts';
import type { ReplicationConfig } from '../src/config/config.ts';
import { SqliteMetadataStore } from '../src/meta/sqlite/sqlite-metadata-store.ts';
import { lastChangeNumber } from '../src/replication/change-capture.ts';
import type { InlineBodyCollector } from '../src/replication/inline-body-ring.ts';
import { encodeSegmentObjectParts, SEGMENT_COMPRESSION_CHUNK_BYTES } from '../src/replication/replica-object.ts';
import { MetadataReplicator } from '../src/replication/replicator.ts';
import { SegmentPayload } from '../src/replication/segment.ts';
import { silentLogger } from '../src/util/logger.ts';

const STORE_ID = '6f0e0d0c-0b0a-4900-8800-070605040307';
/** A lag no test waits for: whatever ships within a test ships for another reason. */
const LONG_LAG: ReplicationConfig = { backends: ['m0', 'm1', 'm2'], lagMs: 600_000, snapshotIntervalMs: 3_600_000, writeQuorum: 2, key: undefined, mode: 'async' };

let root: string;

before(async () => {
  root = await mkdtemp(join(tmpdir(), 'talus-repl-round7-fixes-'));
});

after(async () => {
  await rm(root, { recursive: true, force: true });
});

function putter(meta: SqliteMetadataStore): (key: string, body: Buffer) => Promise<string> {
  return async (key, body) => {
    const outcome = await meta.commitVersion({
      version: {
        bucket: 'b', key, versionId: 'null', isDeleteMarker: false, lastModifiedMs: 2, sizeBytes: body.length, etag: '"e"', ownerId: 'o',
        system: { contentType: 'application/octet-stream' }, userMetadata: {}, checksum: null, tags: [], parts: null, segments: [], inlineData: body,
      },
      conditions: {},
    });
    return outcome.status;
  };
}

async function replicating(name: string, ringBytes: number, backends = [new MemoryBackend('m0'), new MemoryBackend('m1'), new MemoryBackend('m2')]): Promise<{ meta: SqliteMetadataStore; replicator: MetadataReplicator; backends: MemoryBackend[] }> {
  const databasePath = join(root, `${name}.db`);
  const meta = new SqliteMetadataStore(databasePath);
  await meta.setStoreIdentity({ id: STORE_ID, epoch: 1 });
  await meta.createBucket({ name: 'b', createdMs: 1, ownerId: 'o', versioning: 'Unversioned', tags: null });
  const replicator = new MetadataReplicator({ databasePath, scratchDirectory: join(root, `scratch-${name}`), targets: backends, storeId: STORE_ID, epoch: 1, config: LONG_LAG, logger: silentLogger, readConnection: meta.database, inlineRingBytes: ringBytes });
  meta.setInlineDataTap(replicator.inlineDataTap);
  return { meta, replicator, backends };
}

/** A memory backend whose commits wait while its gate is shut (an upload in flight, for as long as a test likes). */
class GatedBackend extends MemoryBackend {
  gate: Promise<void> | undefined;
  waiting = 0;

  override create(key: string, sizeBytes: number): BackendWriter {
    const writer = super.create(key, sizeBytes);
    return {
      ...writer,
      commit: async () => {
        this.waiting++;
        try {
          await this.gate;
        } finally {
          this.waiting--;
        }
        await writer.commit();
      },
    };
  }
}

async function until(what: string, done: () => boolean): Promise<void> {
  const deadline = Date.now() + 60_000;
  while (!done()) {
    assert.ok(Date.now() < deadline, `timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** Bodies like the load generator's: 4 KiB views at spread offsets of one random buffer (they compress). */
function loadGeneratorBodies(count: number): Buffer[] {
  const window = randomBytes(8192);
  return Array.from({ length: count }, (_, i) => {
    const at = (i * 2654435761) % 4096;
    return window.subarray(at, at + 4096);
  });
}

function lastChangeNumberOf(meta: SqliteMetadataStore): number {
  return lastChangeNumber(meta.database);
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

test('a ring past 3/4 whose records were shipped without being handed over: an idle replicator runs no round after round', async () => {
  const { meta, replicator } = await replicating('idle', 64 * 1024);
  const put = putter(meta);
  try {
    await put('first', randomBytes(10));
    // The cut is posted to a cutter thread still starting (~100s of ms): the burst commits before its read, so
    // the segment ships it (read from SQLite) though its records, past 3/4 of the ring, were never handed over.
    const shipping = replicator.shipNow();
    assert.deepEqual(new Set(await Promise.all(Array.from({ length: 20 }, (_, i) => put(`k${i}`, randomBytes(4096))))), new Set(['committed']));
    await shipping;
    assert.equal(replicator.status.shippedPosition, replicator.committedPosition, 'precondition: the burst went into the segment cut after it');
    assert.equal(replicator.status.bodiesFromServingThread, 1, 'precondition: only the first record was handed over, none of the burst');
    replicator.start();
    await until('the first round', () => replicator.status.rounds >= 1 && replicator.status.snapshotPosition !== undefined);
    const rounds = replicator.status.rounds;
    await sleep(1000);
    // Without the fix: a round at once after every round, hundreds a second, each finding nothing to ship.
    assert.ok(replicator.status.rounds - rounds <= 1, `${replicator.status.rounds - rounds} rounds while idle`);
    // The ring's room is free again: a later burst is handed over whole.
    const before = replicator.status;
    for (let i = 0; i < 8; i++) assert.equal(await put(`later${i}`, randomBytes(4096)), 'committed');
    await replicator.shipNow();
    assert.equal(replicator.status.bodiesFromServingThread - before.bodiesFromServingThread, 8);
    assert.equal(replicator.status.bodiesDroppedByRing, before.bodiesDroppedByRing);
  } finally {
    await replicator.stop(0);
    await meta.close();
  }
});

test('a brotli failure in the middle of a chunked payload rejects the encode at once (not left pending, no unhandled rejection)', async () => {
  // The native encoder reports an error for its second piece of work instead of calling back, as node_zlib does
  // when brotli fails (onerror: the stream is destroyed with the error; the pending write's callback never runs).
  const handlePrototype = Object.getPrototypeOf((createBrotliCompress() as unknown as { _handle: object })._handle) as { write(...args: unknown[]): unknown };
  const write = handlePrototype.write;
  let writes = 0;
  handlePrototype.write = function (this: { onerror(message: string, errno: number, code: string): void }, ...args: unknown[]) {
    if (++writes === 2) {
      setImmediate(() => this.onerror('simulated brotli failure', -1, 'ERR_BROTLI_COMPRESSION_FAILED'));
      return undefined;
    }
    return write.apply(this, args);
  };
  const unhandled: unknown[] = [];
  const onUnhandled = (reason: unknown): void => void unhandled.push(reason);
  process.on('unhandledRejection', onUnhandled);
  try {
    const payload = new SegmentPayload('{"format":1}', loadGeneratorBodies(3000));
    assert.ok(payload.size > 2 * SEGMENT_COMPRESSION_CHUNK_BYTES, 'a payload of several chunks');
    const encoding = encodeSegmentObjectParts({ storeId: STORE_ID, epoch: 1, from: 1, to: 2, complete: true }, payload, undefined, Buffer.allocUnsafe(SEGMENT_COMPRESSION_CHUNK_BYTES));
    let timer: NodeJS.Timeout | undefined;
    const pending = new Promise<string>((resolve) => (timer = setTimeout(() => resolve('still pending after 10 s'), 10_000)));
    const outcome = await Promise.race([encoding.then(() => 'resolved', (error: Error) => error.message), pending]);
    clearTimeout(timer);
    assert.match(outcome, /simulated brotli failure/);
    await sleep(50);
    assert.deepEqual(unhandled, []);
  } finally {
    handlePrototype.write = write;
    process.off('unhandledRejection', onUnhandled);
  }
});

test('payloads of exactly a chunk multiple (and a byte either side) compress through the chunk to the bytes one input gives; a chunk of another length is refused', async () => {
  const fields = { storeId: STORE_ID, epoch: 1, from: 1, to: 2, complete: true };
  const chunk = Buffer.allocUnsafe(SEGMENT_COMPRESSION_CHUNK_BYTES);
  const json = JSON.stringify({ format: 1, pad: 'x'.repeat(100) });
  const headBytes = 4 + Buffer.byteLength(json);
  for (const chunks of [1, 2]) {
    for (const delta of [-1, 0, 1]) {
      const size = chunks * SEGMENT_COMPRESSION_CHUNK_BYTES + delta;
      // 4 KiB bodies, the last one sized to end the payload exactly at `size`.
      const count = Math.floor((size - headBytes) / 4100) - 1;
      const blobs = loadGeneratorBodies(count);
      blobs.push(Buffer.alloc(size - headBytes - count * 4100 - 4, 7));
      const payload = new SegmentPayload(json, blobs);
      assert.equal(payload.size, size);
      const inChunks = Buffer.concat(await encodeSegmentObjectParts(fields, payload, undefined, chunk));
      const inOne = Buffer.concat(await encodeSegmentObjectParts(fields, payload.writeOut(), undefined));
      assert.ok(inChunks.length < size / 2, 'compressed');
      assert.deepEqual(inChunks, inOne, `${size} bytes (${chunks} chunks ${delta >= 0 ? '+' : ''}${delta})`);
    }
  }
  const payload = new SegmentPayload(json, loadGeneratorBodies(2000));
  for (const length of [SEGMENT_COMPRESSION_CHUNK_BYTES / 4, SEGMENT_COMPRESSION_CHUNK_BYTES + 8]) {
    await assert.rejects(encodeSegmentObjectParts(fields, payload, undefined, Buffer.allocUnsafe(length)), /block bound/);
  }
});

test('a round that ends with the ring past 3/4 again runs the next one at once, not a lag later', async () => {
  const backends = [new GatedBackend('m0'), new GatedBackend('m1'), new GatedBackend('m2')];
  const { meta, replicator } = await replicating('again', 64 * 1024, backends);
  const put = putter(meta);
  // 14 records of 4 KiB (4 120 bytes each) pass 3/4 of the 64 KiB ring (12.7 records) and fit in it (15.9).
  const burst = async (name: string): Promise<void> => {
    assert.deepEqual(new Set(await Promise.all(loadGeneratorBodies(14).map((body, i) => put(`${name}/${i}`, body)))), new Set(['committed']));
  };
  let open = (): void => undefined;
  try {
    replicator.start();
    await until('the first round', () => replicator.status.snapshotPosition !== undefined && replicator.status.shippedPosition === replicator.committedPosition);
    const before = replicator.status;
    const gate = new Promise<void>((resolve) => (open = resolve));
    for (const backend of backends) backend.gate = gate;
    // Burst A fills the ring: an early round cuts it and holds in its upload, its cut answered (the room released).
    await burst('a');
    await until('the early round\'s upload', () => backends.every((backend) => backend.waiting > 0));
    // Burst B fills it again while that round runs: asking for a round now does nothing (one runs).
    await burst('b');
    const committed = replicator.committedPosition;
    assert.ok(replicator.status.shippedPosition < committed);
    open();
    // A lag of 600 s: only a round at once after the early one ships burst B within the test.
    await until('burst B shipped', () => replicator.status.shippedPosition >= committed);
    const status = replicator.status;
    assert.ok(status.rounds - before.rounds >= 2, `${status.rounds - before.rounds} rounds`);
    assert.equal(status.bodiesFromServingThread - before.bodiesFromServingThread, 28, 'both bursts handed over whole');
    assert.equal(status.bodiesDroppedByRing, 0);
  } finally {
    open();
    await replicator.stop(0);
    await meta.close();
  }
});

test('stop() with an early round\'s timer pending: the final round ships everything and no round runs after it', async () => {
  const { meta, replicator } = await replicating('stop', 64 * 1024);
  const put = putter(meta);
  try {
    replicator.start();
    await until('the first round', () => replicator.status.snapshotPosition !== undefined && replicator.status.shippedPosition === replicator.committedPosition);
    const rounds = replicator.status.rounds;
    // The burst's commit asks for a round at once (a zero-delay timer); stop() is called right after, before that
    // timer can fire.
    const collector = replicator.inlineDataTap as InlineBodyCollector;
    const askForRound = collector.onFilling;
    let stopping: Promise<void> | undefined;
    let roundsAtStop: number | undefined;
    collector.onFilling = () => {
      askForRound?.();
      roundsAtStop ??= replicator.status.rounds;
      stopping ??= replicator.stop(30_000);
    };
    await Promise.all(loadGeneratorBodies(14).map((body, i) => put(`k${i}`, body)));
    assert.ok(stopping !== undefined, 'precondition: the ring passed 3/4');
    assert.equal(roundsAtStop, rounds, 'precondition: the early round had not begun when stop() was called');
    await stopping;
    const stopped = replicator.status;
    assert.equal(stopped.shippedPosition, lastChangeNumberOf(meta), 'the final round shipped the burst');
    await sleep(300);
    assert.equal(replicator.status.rounds, stopped.rounds, 'no round after stop()');
  } finally {
    await replicator.stop(0);
    await meta.close();
  }
});
