/**
 * What numbering the inline body ring's records costs the serving thread
 * (inline-body-ring.ts), per inline PUT, by batch size: as round 6 does it,
 * the change just logged (sqlite_sequence) read after every body; and as
 * round 7 tried and did not keep, once per batch, then the batch's logged
 * inline_data changes read once before COMMIT and matched to the records
 * (by key, or by count alone). All are timed on the same open
 * write transaction holding a batch of logged PUTs (a versions row and an
 * inline_data row each, as the capture triggers log them), this thread's
 * CPU only, rounds alternated, medians.
 *
 *   node --import tsx bench/replication-change-numbers.bench.ts [BATCHES=1,4,16] [ROUNDS=9]
 */
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SqliteMetadataStore } from '../src/meta/sqlite/sqlite-metadata-store.ts';
import { CHANGES_TABLE, installChangeCapture } from '../src/replication/change-capture.ts';

const batchSizes = (process.argv[2] ?? '1,4,16').split(',').map(Number);
const rounds = Number(process.argv[3] ?? 9);
const REPEATS = 20_000;
const threadMicros = (): number => Number(readFileSync('/proc/thread-self/schedstat', 'utf8').split(' ')[0]) / 1000;
const root = await mkdtemp(join(tmpdir(), 'change-numbers-'));
const path = join(root, 'meta.db');
const store = new SqliteMetadataStore(path, { soleWriter: true });
await store.createBucket({ name: 'bench', createdMs: 0, ownerId: 'owner', versioning: 'Unversioned', tags: null });
const db = store.database;
installChangeCapture(db);
const changeNumber = db.prepare('SELECT seq FROM sqlite_sequence WHERE name = ?').pluck().bind(CHANGES_TABLE);
const inlineChanges = db.prepare(`SELECT seq, pk FROM ${CHANGES_TABLE} WHERE seq >= ? AND tbl = 'inline_data'`).raw(true);
const inlineSeqs = db.prepare(`SELECT seq FROM ${CHANGES_TABLE} WHERE seq >= ? AND tbl = 'inline_data'`).pluck();
const logVersion = db.prepare(`INSERT INTO ${CHANGES_TABLE} (tbl, pk) VALUES ('versions', json_array(?))`);
const logInline = db.prepare(`INSERT INTO ${CHANGES_TABLE} (tbl, pk) VALUES ('inline_data', json_array(?))`);
const sink: number[] = [];
for (const batch of batchSizes) {
  db.exec('BEGIN IMMEDIATE');
  for (let i = 0; i < 1000; i++) logVersion.run(i);
  const rows: number[] = [];
  for (let i = 0; i < batch; i++) {
    logVersion.run(100_000 + i);
    logInline.run(100_000 + i);
    rows.push(100_000 + i);
  }
  const floor = (changeNumber.get() as number) - 2 * batch + 2;
  const perBody = (): void => {
    for (let i = 0; i < batch; i++) sink.push(changeNumber.get() as number);
  };
  const perBatch = (): void => {
    sink.push(changeNumber.get() as number);
    const logged = inlineChanges.all(floor) as [number, string][];
    let next = 0;
    for (const row of rows) {
      while (next < logged.length && Number(logged[next]![1].slice(1, -1)) !== row) next++;
      if (next === logged.length) throw new Error('unmatched');
      sink.push(logged[next]![0]);
      next++;
    }
  };
  // The count alone proves the numbering when it equals the records' (no untapped inline_data change between them).
  const perBatchCount = (): void => {
    sink.push(changeNumber.get() as number);
    const logged = inlineSeqs.all(floor) as number[];
    if (logged.length !== rows.length) throw new Error('unmatched');
    for (const seq of logged) sink.push(seq);
  };
  const time = (run: () => void): number => {
    const start = threadMicros();
    for (let r = 0; r < REPEATS; r++) run();
    sink.length = 0;
    return (threadMicros() - start) / (REPEATS * batch);
  };
  time(perBody);
  time(perBatch);
  time(perBatchCount);
  const a: number[] = [];
  const b: number[] = [];
  const c: number[] = [];
  for (let r = 0; r < rounds; r++) {
    a.push(time(perBody));
    b.push(time(perBatch));
    c.push(time(perBatchCount));
  }
  db.exec('ROLLBACK');
  const median = (values: number[]): number => [...values].sort((x, y) => x - y)[values.length >> 1]!;
  console.log(`batch ${batch}: µs per inline PUT, per body ${median(a).toFixed(3)}, per batch (seq, pk matched) ${median(b).toFixed(3)}, per batch (seq, count) ${median(c).toFixed(3)} | ${a.map((x) => x.toFixed(2)).join(' ')} / ${b.map((x) => x.toFixed(2)).join(' ')} / ${c.map((x) => x.toFixed(2)).join(' ')}`);
}
await store.close();
await rm(root, { recursive: true, force: true });
