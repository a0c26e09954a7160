/**
 * The segment cutter's fast path (cutEncodedSegment: per table, SQLite joins
 * the logged keys with their rows and writes each row as JSON) ships exactly
 * the segment of the general path (cutSegment, row by row in log order,
 * then encodeSegment): the same range, completeness, columns and changes
 * (as a set: the fast path groups them by table), byte for byte in every
 * value. The database holds what a store writes (inline bodies, delete
 * markers, deletions, multipart parts with composite keys, keys with quotes,
 * backslashes, control characters and non-ASCII) and what only the general
 * path can ship: a blob in a column not declared BLOB; and a backlog past
 * SEGMENT_BYTES_MAX, which the fast path cuts short over fewer changes.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import Database from 'better-sqlite3';
import { SqliteMetadataStore } from '../src/meta/sqlite/sqlite-metadata-store.ts';
import { installChangeCapture, lastChangeNumber } from '../src/replication/change-capture.ts';
import { cutEncodedSegment, cutSegment, decodeSegment, SEGMENT_BYTES_MAX, type Segment } from '../src/replication/segment.ts';

let root: string;
let store: SqliteMetadataStore;
let db: Database.Database;

before(async () => {
  root = await mkdtemp(join(tmpdir(), 'talus-repl-cut-'));
  const path = join(root, 'meta.db');
  store = new SqliteMetadataStore(path, { soleWriter: true });
  const installer = new Database(path);
  installChangeCapture(installer);
  installer.close();
  db = new Database(path, { readonly: true });
});

after(async () => {
  db.close();
  await store.close();
  await rm(root, { recursive: true, force: true });
});

/** A segment's changes in a comparable form, sorted: the fast path groups them by table. */
function comparable(segment: Segment): { head: unknown; changes: string[] } {
  const cell = (value: unknown): unknown => (Buffer.isBuffer(value) ? { bytes: value.toString('base64') } : value);
  return {
    head: { from: segment.from, to: segment.to, complete: segment.complete, columns: segment.columns },
    changes: segment.changes.map((change) => JSON.stringify([change.table, change.key, change.row === null ? null : change.row.map(cell)])).sort(),
  };
}

/** Asserts that both paths cut the same segment after `from`; returns how the fast one was cut. */
function assertSameSegment(from: number): string {
  const general = cutSegment(db, from);
  const fast = cutEncodedSegment(db, from);
  assert.ok(general !== undefined && fast !== undefined);
  assert.deepEqual(comparable(decodeSegment(fast.payload)), comparable(general));
  assert.deepEqual([fast.from, fast.to, fast.complete], [general.from, general.to, general.complete]);
  return fast.cut;
}

async function put(key: string, body: Buffer, versionId = 'null'): Promise<void> {
  const outcome = await store.commitVersion({
    version: {
      bucket: 'b', key, versionId, isDeleteMarker: false, lastModifiedMs: 1_700_000_000_000, sizeBytes: body.length, etag: '"e"', ownerId: 'o',
      system: { contentType: 'text/plain; charset="utf-8"' }, userMetadata: { note: 'a "quoted" \\ value' }, checksum: null, tags: [], parts: null, segments: [], inlineData: body,
    },
    conditions: {},
  });
  assert.equal(outcome.status, 'committed');
}

test('the fast path cuts what a store writes exactly as the general path', async () => {
  const start = lastChangeNumber(db);
  await store.createBucket({ name: 'b', createdMs: 1, ownerId: 'o', versioning: 'Enabled', tags: null });
  const keys = ['plain', 'with "quotes" and \\backslash', 'control\u0001\u001f\ttab', 'ünïcødé/日本語/😀', '{"blob":-1}'];
  for (const [i, key] of keys.entries()) await put(key, randomBytes(100 + i * 1000), `v${i}`);
  await put('empty', Buffer.alloc(0), 'v-empty');
  const middle = lastChangeNumber(db);
  await put('plain', randomBytes(10), 'v-second');
  await store.deleteVersion('b', 'ünïcødé/日本語/😀', 'v3');
  // Rows written directly: composite keys, NULL and bytes in a BLOB column, a setting with a quote in its name.
  const writer = store.database;
  writer.prepare("INSERT INTO uploads (upload_id, bucket, key, created_ms, owner_id, meta) VALUES ('u1', 'b', 'multi \"part\"', 2, 'o', '{}')").run();
  writer.prepare("INSERT INTO parts (upload_id, part_number, size_bytes, etag, last_modified_ms, checksum, blob_id) VALUES ('u1', 1, 5, 'e', 3, NULL, 'p1'), ('u1', 2, 6, 'e', 3, 'c', 'p2')").run();
  writer.prepare("UPDATE parts SET size_bytes = 7 WHERE part_number = 2").run();
  writer.prepare(`INSERT INTO access_keys (access_key_id, secret_access_key, created_ms, sealed_secret) VALUES ('AK1', '{"blob":-1}', 1, ?), ('{"blob":-1}', '', 2, NULL)`).run(randomBytes(48));
  writer.prepare("INSERT INTO repairs (blob_id, shard, reason, recorded_ms, due_ms) VALUES ('blob-1', 0, 'r', 1, 1), ('blob-1', 2, 'r', 1, 1)").run();
  writer.prepare("INSERT INTO settings (name, value) VALUES ('it''s', 'x'), ('gone', 'y')").run();
  writer.prepare("DELETE FROM settings WHERE name = 'gone'").run();
  writer.prepare("DELETE FROM repairs WHERE shard = 2").run();

  assert.equal(assertSameSegment(start), 'joined');
  assert.equal(assertSameSegment(middle), 'joined');
  assert.equal(assertSameSegment(lastChangeNumber(db) - 1), 'joined');
  assert.equal(cutEncodedSegment(db, lastChangeNumber(db)), undefined);
});

test('a blob in a column not declared BLOB goes the general way, with the same result', () => {
  const from = lastChangeNumber(db);
  store.database.prepare("INSERT INTO settings (name, value) VALUES ('bytes', ?)").run(randomBytes(32));
  assert.equal(assertSameSegment(from), 'in log order');
  store.database.prepare("DELETE FROM settings WHERE name = 'bytes'").run();
});

test('a backlog past SEGMENT_BYTES_MAX is cut short the joined way, as the general way cuts that shorter range', async () => {
  const from = lastChangeNumber(db);
  const body = randomBytes(4 * 1024 * 1024);
  for (let i = 0; i * body.length <= SEGMENT_BYTES_MAX + body.length; i++) await put(`big-${i}`, body, `big-${i}`);
  const fast = cutEncodedSegment(db, from)!;
  assert.equal(fast.cut, 'joined');
  assert.equal(fast.complete, false);
  assert.ok(fast.payload.length < SEGMENT_BYTES_MAX);
  const general = cutSegment(db, from, fast.to - from)!;
  assert.deepEqual(comparable(decodeSegment(fast.payload)), comparable(general));
  // What follows it is cut the joined way too, up to the end.
  let position = fast.to;
  for (let segment = cutEncodedSegment(db, position); segment !== undefined; segment = cutEncodedSegment(db, position)) {
    assert.equal(segment.cut, 'joined');
    position = segment.to;
  }
  assert.equal(position, lastChangeNumber(db));
});
