/**
 * The change-capture triggers' cost on the serving thread: commits of new
 * inline 4 KiB versions, BATCH at a time (as group commit batches the
 * server's requests), on a store without and with installChangeCapture,
 * alternating fresh stores; the CPU of this thread only
 * (/proc/thread-self/schedstat: the WAL sync on libuv's pool is left out).
 * Nothing cuts or trims the log here.
 *
 *   node --import tsx bench/replication-triggers.bench.ts [BATCHES=1,4,16] [PUTS=6000]
 *
 * TAP=1 (environment): "on" also hands every inline body to a ring (inline-body-ring.ts), as a replicating
 * server does since round 6: the serving thread's share of that.
 */
// Main-thread CPU per inline 4 KiB PUT commit, by batch size, with and without capture.
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { PayloadSource } from '../src/loadgen/payload.ts';
import { SqliteMetadataStore } from '../src/meta/sqlite/sqlite-metadata-store.ts';
import { CHANGES_TABLE, installChangeCapture } from '../src/replication/change-capture.ts';
import { InlineBodyCollector } from '../src/replication/inline-body-ring.ts';

const batchSizes = (process.argv[2] ?? '1,4,16').split(',').map(Number);
const puts = Number(process.argv[3] ?? 6000);
const source = new PayloadSource(4096);
const threadMicros = (): number => Number(readFileSync('/proc/thread-self/schedstat', 'utf8').split(' ')[0]) / 1000;
let n = 0;
async function round(capture: boolean, batch: number): Promise<number> {
  const root = await mkdtemp(join(tmpdir(), 's7-commit-'));
  const path = join(root, 'meta.db');
  const store = new SqliteMetadataStore(path, { soleWriter: true });
  await store.createBucket({ name: 'bench', createdMs: 0, ownerId: 'owner', versioning: 'Unversioned', tags: null });
  let side: Database.Database | undefined;
  if (capture) { side = new Database(path); installChangeCapture(side); }
  if (capture && process.env.TAP === '1') {
    // As the replicator sets it (inline-body-ring.ts); the records are handed over and released every 200 ms, as cuts would.
    const changeNumber = store.database.prepare('SELECT seq FROM sqlite_sequence WHERE name = ?').pluck().bind(CHANGES_TABLE);
    const collector = new InlineBodyCollector(() => changeNumber.get() as number);
    store.setInlineDataTap(collector);
    const drain = setInterval(() => { const range = collector.handOver(); if (range !== undefined) collector.release(range.to); }, 200);
    drain.unref();
  }
  const one = async (id: number): Promise<void> => {
    const version = { bucket: 'bench', key: `k/${String(id).padStart(8, '0')}`, versionId: 'null', isDeleteMarker: false, lastModifiedMs: Date.now(), sizeBytes: 4096,
      etag: '"0123456789abcdef0123456789abcdef"', ownerId: 'owner', system: { contentType: 'application/octet-stream' }, userMetadata: {}, checksum: null, tags: [], parts: null, segments: [], inlineData: source.body(id, 4096) as Buffer };
    const o = await store.commitVersion({ version, conditions: {} });
    if (o.status !== 'committed') throw new Error(o.status);
  };
  const go = async (count: number): Promise<void> => { for (let i = 0; i < count; i += batch) await Promise.all(Array.from({ length: batch }, () => one(n++))); };
  await go(1000);
  const t0 = threadMicros();
  await go(puts);
  const t = (threadMicros() - t0) / puts;
  side?.close();
  await store.close();
  await rm(root, { recursive: true, force: true });
  return t;
}
for (const batch of batchSizes) {
  const off: number[] = [], on: number[] = [];
  for (let r = 0; r < 5; r++) { off.push(await round(false, batch)); on.push(await round(true, batch)); }
  const med = (a: number[]): number => [...a].sort((x, y) => x - y)[2]!;
  console.log(`batch ${batch}: main thread µs/PUT off ${med(off).toFixed(1)} on ${med(on).toFixed(1)} (+${(med(on) - med(off)).toFixed(1)}) | off ${off.map((x) => x.toFixed(0)).join(' ')} on ${on.map((x) => x.toFixed(0)).join(' ')}`);
}
process.exit(0);
