/**
 * The pieces of one joined cut of the inline_data table (segment.ts,
 * cutEncodedSegment), each timed alone on a read-only connection inside a
 * read transaction, as the cutter thread runs them: which part of the
 * cutter's CPU per 4 KiB inline PUT is reading the bodies back from the
 * WAL, which the log's scans and joins, and what the alternatives tried in
 * round 5 (docs/PERFORMANCE.md) cost: the blobs aggregated by SQLite into
 * one value, a pass for the lengths then one for the bytes.
 *
 *   node --import tsx bench/replication-cut-parts.bench.ts [PUTS]
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { SqliteMetadataStore } from '../src/meta/sqlite/sqlite-metadata-store.ts';
import { CHANGES_TABLE, installChangeCapture, lastChangeNumber } from '../src/replication/change-capture.ts';
import { bodyRecords, InlineBodyCollector } from '../src/replication/inline-body-ring.ts';
import { cutEncodedSegment, PayloadScratch } from '../src/replication/segment.ts';
const puts = Number(process.argv[2] ?? 4800);
const root = await mkdtemp(join(tmpdir(), 's7-sqlx-'));
const path = join(root, 'metadata.db');
const store = new SqliteMetadataStore(path, { soleWriter: true });
await store.createBucket({ name: 'bench', createdMs: 0, ownerId: 'owner', versioning: 'Unversioned', tags: null });
const installer = new Database(path); installChangeCapture(installer); installer.close();
// As a replicating server does since round 6 (inline-body-ring.ts): the bodies written are collected for the cutter.
const changeNumber = store.database.prepare('SELECT seq FROM sqlite_sequence WHERE name = ?').pluck().bind(CHANGES_TABLE);
const collector = new InlineBodyCollector(() => changeNumber.get() as number);
store.setInlineDataTap(collector);
const from = lastChangeNumber(store.database);
const window = randomBytes(64 * 1024);
let next = 0;
await Promise.all(Array.from({ length: 16 }, async () => {
  for (let id = next++; id < puts; id = next++) {
    const at = (id * 97) % (window.length - 4096);
    const o = await store.commitVersion({ version: { bucket: 'bench', key: `k/${String(id).padStart(8, '0')}`, versionId: 'null', isDeleteMarker: false, lastModifiedMs: Date.now(), sizeBytes: 4096,
      etag: '"0123456789abcdef0123456789abcdef"', ownerId: 'owner', system: { contentType: 'application/octet-stream' }, userMetadata: {}, checksum: null, tags: [], parts: null, segments: [], inlineData: window.subarray(at, at + 4096) }, conditions: {} });
    if (o.status !== 'committed') throw new Error(o.status);
  }
}));
const to = lastChangeNumber(store.database);
const db = new Database(path, { readonly: true, fileMustExist: true });
db.pragma('temp_store = MEMORY');
const C = 'talus_replication_changes';
const keys = `(SELECT DISTINCT pk FROM ${C} WHERE seq > @from AND seq <= @to AND tbl = @table) AS c`;
const P = `'{"blob":-1}'`;
/** Each piece, by name; every one runs 7 times inside a read transaction, three passes, the last one printed. */
const q: Record<string, () => unknown> = {};
const range = { from, to, table: 'inline_data' };
const cur = db.prepare(`SELECT c.pk, CASE WHEN t."seq" IS NOT NULL THEN json_array(t."seq", CASE WHEN typeof(t."data") = 'blob' THEN json(${P}) ELSE t."data" END) END, t."data" FROM ${keys} LEFT JOIN inline_data AS t ON t."seq" = json_extract(c.pk, '$[0]')`).raw(true);
q['current rows.all'] = () => cur.all(range);
const nodata = db.prepare(`SELECT c.pk, CASE WHEN t."seq" IS NOT NULL THEN json_array(t."seq", json(${P})) END FROM ${keys} LEFT JOIN inline_data AS t ON t."seq" = json_extract(c.pk, '$[0]')`).raw(true);
q['no data column'] = () => nodata.all(range);
const onlykeys = db.prepare(`SELECT c.pk FROM ${keys}`).raw(true);
q['keys only'] = () => onlykeys.all(range);
const agg = db.prepare(`SELECT group_concat('["inline_data",' || c.pk || ',' || coalesce(CASE WHEN t."seq" IS NOT NULL THEN json_array(t."seq", json_object('bytes', length(t."data"))) END, 'null') || ']', ','), CAST(group_concat(CASE WHEN typeof(t."data") = 'blob' THEN CAST(t."data" AS TEXT) END, '') AS BLOB) FROM ${keys} LEFT JOIN inline_data AS t ON t."seq" = json_extract(c.pk, '$[0]')`).raw(true);
q['aggregate json + blob'] = () => agg.get(range);
const aggp = db.prepare(`SELECT group_concat('["inline_data",' || c.pk || ',' || coalesce(CASE WHEN t."seq" IS NOT NULL THEN json_array(t."seq", json_object('bytes', length(t."data"))) END, 'null') || ']', ','), CAST(group_concat(CASE WHEN typeof(t."data") = 'blob' THEN CAST(unhex(printf('%08x', length(t."data"))) || t."data" AS TEXT) END, '') AS BLOB) FROM ${keys} LEFT JOIN inline_data AS t ON t."seq" = json_extract(c.pk, '$[0]')`).raw(true);
q['aggregate json + prefixed blob'] = () => aggp.get(range);
const direct = db.prepare(`SELECT t.seq, t.data FROM inline_data t WHERE t.seq IN (SELECT json_extract(pk, '$[0]') FROM ${C} WHERE seq > @from AND seq <= @to AND tbl = @table)`).raw(true);
q['IN subquery rows'] = () => direct.all(range);
const cast = db.prepare(`SELECT DISTINCT CAST(substr(pk, 2, length(pk) - 2) AS INTEGER) FROM ${C} WHERE seq > @from AND seq <= @to AND tbl = @table`).pluck();
q['keys substr'] = () => cast.all(range);
const scan = db.prepare(`SELECT count(*) FROM ${C} WHERE seq > @from AND seq <= @to AND tbl = @table`).pluck();
q['log scan count'] = () => scan.get(range);

const pass1 = db.prepare(`SELECT c.pk, CASE WHEN t."seq" IS NOT NULL THEN json_array(t."seq", CASE WHEN typeof(t."data") = 'blob' THEN json(${P}) ELSE t."data" END) END, CASE WHEN typeof(t."data") = 'blob' THEN length(t."data") END FROM ${keys} LEFT JOIN inline_data AS t ON t."seq" = json_extract(c.pk, '$[0]') ORDER BY c.pk`).raw(true);
const pass2 = db.prepare(`SELECT t."data" FROM ${keys} JOIN inline_data AS t ON t."seq" = json_extract(c.pk, '$[0]') WHERE typeof(t."data") = 'blob' ORDER BY c.pk`).pluck();
const sink = Buffer.allocUnsafeSlow(32 << 20);
q['pass1 lengths'] = () => pass1.all(range);
q['pass2 iterate copy'] = () => { let at = 0; for (const b of pass2.iterate(range) as IterableIterator<Buffer>) { sink.writeUInt32BE(b.length, at); at += 4 + b.copy(sink, at + 4); } return at; };
q['pass2 all copy'] = () => { let at = 0; for (const b of pass2.all(range) as Buffer[]) { sink.writeUInt32BE(b.length, at); at += 4 + b.copy(sink, at + 4); } return at; };
q['current + copy'] = () => { let at = 0; for (const r of cur.all(range) as [string, string | null, Buffer | null][]) { const b = r[2]; if (b) { sink.writeUInt32BE(b.length, at); at += 4 + b.copy(sink, at + 4); } } return at; };
const curSub = db.prepare(`SELECT c.pk, CASE WHEN t."seq" IS NOT NULL THEN json_array(t."seq", CASE WHEN typeof(t."data") = 'blob' THEN json(${P}) ELSE t."data" END) END, t."data" FROM ${keys} LEFT JOIN inline_data AS t ON t."seq" = CAST(substr(c.pk, 2, length(c.pk) - 2) AS INTEGER)`).raw(true);
q['current, keys by substr'] = () => curSub.all(range);
const scratch = new PayloadScratch();
q['cutEncodedSegment total'] = () => cutEncodedSegment(db, from, scratch);
const handed = collector.handOver();
const records = handed === undefined ? undefined : bodyRecords(collector.memory, handed);
q['cutEncodedSegment, bodies handed over'] = () => cutEncodedSegment(db, from, scratch, records);
// Every record with a wrong change number: every row missed, read back one statement per row (segment.ts);
// 'one by one' times those statements alone, against 'current rows.all', the joined read they replace.
const stale = records === undefined ? undefined : new Map([...records].map(([seq, record]) => [seq, { ...record, change: -1 }]));
q['cutEncodedSegment, records all stale'] = () => cutEncodedSegment(db, from, scratch, stale);
const rowByKey = db.prepare(`SELECT CASE WHEN t."seq" IS NOT NULL THEN json_array(t."seq", CASE WHEN typeof(t."data") = 'blob' THEN json(${P}) ELSE t."data" END) END, t."data" FROM inline_data AS t WHERE t."seq" = ?`).raw(true);
const seqs = db.prepare('SELECT seq FROM inline_data').pluck().all() as number[];
q['inline_data rows one by one'] = () => { for (const seq of seqs) rowByKey.get(seq); };
const ringKeys = db.prepare(`SELECT pk, max(seq) FROM ${C} WHERE seq > @from AND seq <= @to AND tbl = @table GROUP BY pk`).raw(true);
q['round 6 keys + last change'] = () => ringKeys.all(range);
const vr = { from, to, table: 'versions' };
const vtext = db.prepare(`SELECT group_concat(c.pk) FROM (SELECT DISTINCT pk FROM ${C} WHERE seq > @from AND seq <= @to AND tbl = @table) AS c LEFT JOIN versions t ON t.seq = json_extract(c.pk, '$[0]')`).pluck();
q['versions join only'] = () => vtext.get(vr);
for (let r = 0; r < 3; r++) for (const [name, f] of Object.entries(q)) {
  const times: number[] = [];
  for (let i = 0; i < 7; i++) { const s = process.cpuUsage(); db.transaction(f)(); const u = process.cpuUsage(s); times.push((u.user + u.system) / puts); }
  times.sort((a, b) => a - b);
  if (r === 2) console.log(`${name.padEnd(32)} median ${times[3]!.toFixed(2)} min ${times[0]!.toFixed(2)} µs/PUT`);
}
db.close(); await store.close(); await rm(root, { recursive: true, force: true });
