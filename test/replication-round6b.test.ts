/**
 * Metadata replication's body ring (review of round 6): a batch whose COMMIT
 * fails must take back the bodies it handed to the ring. SQLite rolls
 * `sqlite_sequence` back with it, so another writer (a worker process, the
 * CLI) can commit the same change number on the same row; a ring that kept
 * the failed batch's body would ship it as that row's current bytes, and a
 * restore would serve wrong data. The second case ignores abort(): it must
 * cut a different segment, which shows the first case can fail.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { SqliteMetadataStore } from '../src/meta/sqlite/sqlite-metadata-store.ts';
import { CHANGES_TABLE, installChangeCapture, lastChangeNumber } from '../src/replication/change-capture.ts';
import { bodyRecords, InlineBodyCollector, type InlineDataTap } from '../src/replication/inline-body-ring.ts';
import { cutEncodedSegment, cutSegment, decodeSegment, type Segment } from '../src/replication/segment.ts';
const Database = createRequire(import.meta.url)('better-sqlite3');

function comparable(segment: Segment) {
  const cell = (value: unknown): unknown => (Buffer.isBuffer(value) ? { bytes: value.toString('base64') } : value);
  return { head: { from: segment.from, to: segment.to, complete: segment.complete }, changes: segment.changes.map((c) => JSON.stringify([c.table, c.key, c.row === null ? null : c.row.map(cell)])).sort() };
}

for (const mutant of [false, true]) {
  test(mutant ? 'a tap that ignored a failed COMMIT would ship the rolled-back body (the check below can fail)' : 'a batch whose COMMIT fails hands no body over: the cut equals the one read from SQLite', async () => {
    const root = await mkdtemp(join(tmpdir(), 'talus-ring-abort-'));
    const path = join(root, 'm.db');
    const meta = new SqliteMetadataStore(path, { soleWriter: true });
    const installer = new Database(path);
    installChangeCapture(installer);
    installer.close();
    // After capture: no triggers on these (a deferred FK that fails the COMMIT of a batch writing a 77-byte body).
    meta.database.exec(`CREATE TABLE parent (id INTEGER PRIMARY KEY); CREATE TABLE child (id INTEGER PRIMARY KEY, pid INTEGER REFERENCES parent(id) DEFERRABLE INITIALLY DEFERRED);
      CREATE TRIGGER poison AFTER UPDATE ON inline_data WHEN length(NEW.data) = 77 BEGIN INSERT INTO child (pid) VALUES (999); END;`);
    meta.database.pragma('foreign_keys = ON');
    const reader = new Database(path, { readonly: true });
    const other = new Database(path);
    try {
      await meta.createBucket({ name: 'b', createdMs: 1, ownerId: 'o', versioning: 'Unversioned', tags: null });
      const changeNumber = meta.database.prepare('SELECT seq FROM sqlite_sequence WHERE name = ?').pluck().bind(CHANGES_TABLE);
      const collector = new InlineBodyCollector(() => changeNumber.get() as number);
      const tap: InlineDataTap = mutant ? { written: (s, d) => collector.written(s, d), mark: () => collector.mark(), rewind: (m) => collector.rewind(m), publish: () => collector.publish(), abort: () => undefined } : collector;
      meta.setInlineDataTap(tap);
      const put = (key: string, body: Buffer) => meta.commitVersion({ version: { bucket: 'b', key, versionId: 'null', isDeleteMarker: false, lastModifiedMs: 2, sizeBytes: body.length, etag: '"e"', ownerId: 'o', system: { contentType: 'application/octet-stream' }, userMetadata: {}, checksum: null, tags: [], parts: null, segments: [], inlineData: body }, conditions: {} });
      assert.equal((await put('k', randomBytes(64))).status, 'committed');
      const from = lastChangeNumber(reader);
      // Overwrite in place with a poisoned body: the batch's COMMIT fails (deferred FK), the change numbers are reused.
      const poisoned = randomBytes(77);
      await assert.rejects(put('k', poisoned));
      const seq = meta.database.prepare("SELECT seq FROM versions WHERE key = 'k'").pluck().get() as number;
      // Another writer (a worker process, the CLI) commits the same change numbers: versions row, then inline_data of the same seq.
      const foreign = randomBytes(64);
      other.transaction(() => {
        other.prepare('UPDATE versions SET size_bytes = 64 WHERE seq = ?').run(seq);
        other.prepare('UPDATE inline_data SET data = ? WHERE seq = ?').run(foreign, seq);
      })();
      // A later batch of the serving thread, another key: it publishes (the mutant: with the failed batch's records).
      assert.equal((await put('z', randomBytes(30))).status, 'committed');
      const range = collector.handOver();
      const records = range === undefined ? undefined : bodyRecords(collector.memory, range);
      const fast = cutEncodedSegment(reader, from, undefined, records)!;
      const slow = cutSegment(reader, from)!;
      if (mutant) assert.notDeepEqual(comparable(decodeSegment(fast.payload)), comparable(slow));
      else assert.deepEqual(comparable(decodeSegment(fast.payload)), comparable(slow));
    } finally {
      other.close(); reader.close(); await meta.close(); await rm(root, { recursive: true, force: true });
    }
  });
}
