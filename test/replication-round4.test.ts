/**
 * Metadata replication, round 4 (docs/PERFORMANCE.md "Metadata replication,
 * round 4"): a backlog of inline PUTs past SEGMENT_BYTES_MAX (what a second
 * of 4 KiB PUTs becomes at a high rate, or any stall) is cut the joined way
 * over shorter ranges, not row by row in log order, and the partial
 * segments it gives restore the exact database; and the cutter thread
 * writes each payload into the last one's memory (PayloadScratch), which
 * changes no byte of any segment. A segment's header carries the SHA-256
 * of its compressed body instead of its payload's (fewer bytes to hash);
 * damage is refused either way, and segments written before still read.
 * The cutter thread starts with the replicator, not at the first write.
 */
import assert from 'node:assert/strict';
import { readdir } from 'node:fs';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { promisify } from 'node:util';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import Database from 'better-sqlite3';
import { createHash, randomBytes } from 'node:crypto';
import { brotliCompressSync } from 'node:zlib';
import { MemoryBackend } from '../src/backend/memory-backend.ts';
import { downloadSegmentObject, encodeSegmentObject, ReplicaObjectError, uploadObject } from '../src/replication/replica-object.ts';
import type { ReplicationConfig } from '../src/config/config.ts';
import { SqliteMetadataStore } from '../src/meta/sqlite/sqlite-metadata-store.ts';
import { parseReplicaKey, REPLICA_PREFIX } from '../src/replication/replica-names.ts';
import { MetadataReplicator } from '../src/replication/replicator.ts';
import { restoreMetadata } from '../src/replication/restore.ts';
import { installChangeCapture, lastChangeNumber } from '../src/replication/change-capture.ts';
import { cutEncodedSegment, decodeSegment, PayloadScratch, SEGMENT_BYTES_MAX } from '../src/replication/segment.ts';
import { silentLogger } from '../src/util/logger.ts';

const STORE_ID = '1f0e0d0c-0b0a-4900-8800-070605040302';
/** Inline bodies larger than a PUT's 4 KiB, so the backlog passes the byte bound in a few hundred commits. */
const BODY_BYTES = 64 * 1024;

let root: string;

before(async () => {
  root = await mkdtemp(join(tmpdir(), 'talus-repl-round4-'));
});

after(async () => {
  await rm(root, { recursive: true, force: true });
});

/** Every replicated table's rows, comparable (the change log and the epoch aside). */
function dump(path: string): string {
  const db = new Database(path, { readonly: true });
  try {
    const tables = db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name != 'talus_replication_changes' ORDER BY name").pluck().all() as string[];
    const out: Record<string, unknown[]> = {};
    for (const table of tables) {
      const rows = db.prepare(`SELECT * FROM "${table}" ORDER BY 1, 2`).all() as Record<string, unknown>[];
      out[table] = rows
        .filter((row) => !(table === 'settings' && row['name'] === 'store_epoch'))
        .map((row) => Object.fromEntries(Object.entries(row).map(([k, v]) => [k, Buffer.isBuffer(v) ? v.toString('base64') : v])));
    }
    return JSON.stringify(out);
  } finally {
    db.close();
  }
}

test('a backlog past SEGMENT_BYTES_MAX ships in joined partial segments, and they restore the exact database', async () => {
  const backends = [new MemoryBackend('m0'), new MemoryBackend('m1'), new MemoryBackend('m2')];
  const config: ReplicationConfig = { backends: ['m0', 'm1', 'm2'], lagMs: 60_000, snapshotIntervalMs: 3_600_000, writeQuorum: 2, key: randomBytes(32), mode: 'async' };
  const databasePath = join(root, 'meta.db');
  const meta = new SqliteMetadataStore(databasePath);
  await meta.setStoreIdentity({ id: STORE_ID, epoch: 1 });
  await meta.createBucket({ name: 'b', createdMs: 1, ownerId: 'o', versioning: 'Enabled', tags: null });
  const replicator = new MetadataReplicator({ databasePath, scratchDirectory: join(root, 'scratch'), targets: backends, storeId: STORE_ID, epoch: 1, config, logger: silentLogger });
  try {
    await replicator.snapshotNow();
    const put = async (key: string, versionId: string): Promise<void> => {
      const outcome = await meta.commitVersion({
        version: {
          bucket: 'b', key, versionId, isDeleteMarker: false, lastModifiedMs: 2, sizeBytes: BODY_BYTES, etag: '"e"', ownerId: 'o',
          system: { contentType: 'application/octet-stream' }, userMetadata: {}, checksum: null, tags: [], parts: null, segments: [], inlineData: randomBytes(BODY_BYTES),
        },
        conditions: {},
      });
      assert.equal(outcome.status, 'committed');
    };
    // ~1.5 times what one segment may hold, logged before the replicator's first round.
    const puts = Math.ceil((SEGMENT_BYTES_MAX * 1.5) / BODY_BYTES);
    for (let i = 0; i < puts; i++) await put(`k/${i}`, `v${i}`);
    await meta.deleteVersion('b', 'k/3', 'v3');
    await replicator.shipNow();
    const status = replicator.status;
    assert.equal(status.shippedPosition, replicator.committedPosition);
    assert.ok(status.segmentsShipped >= 2, `the backlog is cut into several segments (${status.segmentsShipped})`);
    // Main cut the first of them row by row in log order (segment.ts, cutSegment).
    assert.equal(status.segmentsCutInLogOrder, 0);
    const segments = [];
    for await (const key of backends[0]!.list(REPLICA_PREFIX)) {
      const name = parseReplicaKey(key);
      if (name?.kind === 'segment') segments.push(name);
    }
    segments.sort((a, b) => a.from - b.from);
    assert.ok(segments.slice(0, -1).every((segment) => segment.partial === true), 'all but the last are partial');
    assert.equal(segments.at(-1)!.partial, undefined);

    // After the backlog, a small round is one complete segment again.
    await put('after', 'v-after');
    await replicator.shipNow();
    assert.equal(replicator.status.segmentsShipped, status.segmentsShipped + 1);

    const dataDir = join(root, 'restored');
    const report = await restoreMetadata({ dataDir, backends, key: config.key, partial: false });
    assert.equal(report.segmentsApplied, status.segmentsShipped + 1);
    assert.equal(dump(join(dataDir, 'meta.db')), dump(databasePath));
  } finally {
    await replicator.stop(0);
    await meta.close();
  }
});

test('payloads cut with a scratch reuse its memory and are the segments cut without it', async () => {
  const path = join(root, 'scratch.db');
  const meta = new SqliteMetadataStore(path, { soleWriter: true });
  const installer = new Database(path);
  installChangeCapture(installer);
  installer.close();
  const reader = new Database(path, { readonly: true });
  try {
    await meta.createBucket({ name: 'b', createdMs: 1, ownerId: 'o', versioning: 'Enabled', tags: null });
    const put = async (key: string, bytes: number): Promise<void> => {
      const outcome = await meta.commitVersion({
        version: {
          bucket: 'b', key, versionId: 'null', isDeleteMarker: false, lastModifiedMs: 2, sizeBytes: bytes, etag: '"e"', ownerId: 'o',
          system: { contentType: 'application/octet-stream' }, userMetadata: {}, checksum: null, tags: [], parts: null, segments: [], inlineData: randomBytes(bytes),
        },
        conditions: {},
      });
      assert.equal(outcome.status, 'committed');
    };
    const scratch = new PayloadScratch();
    const from = lastChangeNumber(reader);
    for (let i = 0; i < 40; i++) await put(`a/${i}`, 4096);
    const first = cutEncodedSegment(reader, from, scratch)!;
    assert.deepEqual(first.payload, cutEncodedSegment(reader, from)!.payload);
    const firstDecoded = decodeSegment(first.payload);
    assert.equal(firstDecoded.changes.filter((change) => change.table === 'inline_data').length, 40);
    // A smaller segment next: written over the first one's bytes, in the same memory.
    for (let i = 0; i < 30; i++) await put(`b/${i}`, 4096);
    const second = cutEncodedSegment(reader, first.to, scratch)!;
    assert.equal(second.payload.buffer, first.payload.buffer);
    assert.deepEqual(second.payload, cutEncodedSegment(reader, first.to)!.payload);
    assert.deepEqual(decodeSegment(second.payload).changes.map((change) => change.key), decodeSegment(cutEncodedSegment(reader, first.to)!.payload).changes.map((change) => change.key));
    // A larger one than the memory holds gets memory of its own.
    for (let i = 0; i < 200; i++) await put(`c/${i}`, 4096);
    const third = cutEncodedSegment(reader, second.to, scratch)!;
    assert.notEqual(third.payload.buffer, first.payload.buffer);
    assert.deepEqual(third.payload, cutEncodedSegment(reader, second.to)!.payload);
  } finally {
    reader.close();
    await meta.close();
  }
});

/** A replica object's header (the JSON after the magic and its length). */
function headerOf(object: Buffer): Record<string, unknown> {
  const length = object.readUInt32BE(8);
  return JSON.parse(object.subarray(12, 12 + length).toString('utf8')) as Record<string, unknown>;
}

test("a segment's header carries its compressed body's SHA-256; damage is refused; segments with the payload's SHA-256 still read", async () => {
  const fields = { storeId: STORE_ID, epoch: 1, from: 0, to: 5, complete: true };
  // Compressible: JSON rows, as a segment of small PUTs with the load generator's bodies is.
  const plain = Buffer.from(JSON.stringify(Array.from({ length: 2000 }, (_, i) => ['versions', ['b', `k/${i}`, 'null'], ['b', `k/${i}`, 'null', 4096, '"etag"']])));
  const backend = new MemoryBackend('m');
  for (const key of [undefined, randomBytes(32)]) {
    const object = await encodeSegmentObject(fields, plain, key);
    const header = headerOf(object);
    assert.equal(header['compression'], 'brotli');
    assert.equal(header['plainSha256'], undefined);
    assert.equal(header['plainBytes'], plain.length);
    assert.match(String(header['bodySha256']), /^[0-9a-f]{64}$/);
    if (key === undefined) {
      // Without encryption the body follows the header: its hash is the stored bytes'.
      const body = object.subarray(12 + object.readUInt32BE(8));
      assert.equal(header['bodySha256'], createHash('sha256').update(body).digest('hex'));
    }
    await uploadObject(backend, 'good', object);
    assert.ok((await downloadSegmentObject(backend, 'good', key, {})).plain.equals(plain));
    // One flipped bit in the middle of the compressed body: refused, never returned.
    const damaged = Buffer.from(object);
    const at = 12 + object.readUInt32BE(8) + Math.floor((object.length - 12 - object.readUInt32BE(8)) / 2);
    damaged[at]! ^= 0x10;
    await uploadObject(backend, 'damaged', damaged);
    await assert.rejects(downloadSegmentObject(backend, 'damaged', key, {}), ReplicaObjectError);
  }
  // As segments were written before (the payload's SHA-256, brotli): read and checked as before.
  const old = { kind: 'segment', ...fields, plainBytes: plain.length, plainSha256: createHash('sha256').update(plain).digest('hex'), compression: 'brotli', cipher: null, nonce: null };
  const json = Buffer.from(JSON.stringify(old));
  const length = Buffer.alloc(4);
  length.writeUInt32BE(json.length);
  const compressed = brotliCompressSync(plain);
  await uploadObject(backend, 'old', Buffer.concat([Buffer.from('TALUSRM1'), length, json, compressed]));
  assert.ok((await downloadSegmentObject(backend, 'old', undefined, {})).plain.equals(plain));
  // Its payload's hash is still checked: another payload under the same header is refused.
  const other = Buffer.from(plain);
  other[10] = 0x41;
  await uploadObject(backend, 'old-other', Buffer.concat([Buffer.from('TALUSRM1'), length, json, brotliCompressSync(other)]));
  await assert.rejects(downloadSegmentObject(backend, 'old-other', undefined, {}), (error: unknown) => error instanceof ReplicaObjectError && /checksum mismatch/.test(error.message));
});

/** This process's threads (Linux). */
async function threadCount(): Promise<number> {
  return (await promisify(readdir)('/proc/self/task')).length;
}

test('the segment cutter thread starts with the replicator, before any write to ship', { skip: process.platform !== 'linux' }, async () => {
  // libuv's pool starts all its threads at its first job: have it running before counting.
  await stat(root);
  brotliCompressSync(Buffer.from('warm'));
  const backends = [new MemoryBackend('m0'), new MemoryBackend('m1'), new MemoryBackend('m2')];
  const config: ReplicationConfig = { backends: ['m0', 'm1', 'm2'], lagMs: 60_000, snapshotIntervalMs: 3_600_000, writeQuorum: 2, key: undefined, mode: 'async' };
  const databasePath = join(root, 'prepare.db');
  const meta = new SqliteMetadataStore(databasePath);
  await meta.setStoreIdentity({ id: STORE_ID, epoch: 1 });
  const replicator = new MetadataReplicator({ databasePath, scratchDirectory: join(root, 'prepare-scratch'), targets: backends, storeId: STORE_ID, epoch: 1, config, logger: silentLogger });
  try {
    const before = await threadCount();
    replicator.start();
    // The start-up snapshot's round ends; nothing was written, so no segment was cut.
    const deadline = Date.now() + 30_000;
    while (replicator.status.snapshotPosition === undefined && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
    assert.notEqual(replicator.status.snapshotPosition, undefined);
    assert.equal(replicator.status.segmentsShipped, 0);
    // The thread (and whatever Node starts with it): more threads than before, with nothing to cut yet.
    const after = await threadCount();
    assert.ok(after > before, `threads: ${before} before start(), ${after} after`);
  } finally {
    await replicator.stop(0);
    await meta.close();
  }
});
