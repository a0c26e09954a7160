/**
 * What the segment cutter's thread keeps resident: commits PUTS inline
 * 4 KiB versions (16 in flight), has the SegmentCutter thread cut the
 * segment of them, twelve times over, and prints the process's RSS before
 * and after the cuts, its peak, and the CPU per PUT while each cut ran.
 * NOCUT=1 commits only (the baseline); SMAPS=1 prints the largest resident
 * mappings at the end (an anonymous 64 MiB-aligned region is a malloc
 * arena: the cutter thread's holds the Buffers better-sqlite3 makes for
 * each body). docs/PERFORMANCE.md, "Metadata replication, round 5".
 *
 *   node --import tsx bench/replication-cutter-memory.bench.ts [PUTS]
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { SqliteMetadataStore } from '../src/meta/sqlite/sqlite-metadata-store.ts';
import { installChangeCapture, lastChangeNumber } from '../src/replication/change-capture.ts';
import { SegmentCutter } from '../src/replication/segment-cutter.ts';
const puts = Number(process.argv[2] ?? 4800);
const root = await mkdtemp(join(tmpdir(), 's7-rss-'));
const path = join(root, 'metadata.db');
const store = new SqliteMetadataStore(path, { soleWriter: true });
await store.createBucket({ name: 'bench', createdMs: 0, ownerId: 'owner', versioning: 'Unversioned', tags: null });
const installer = new Database(path); installChangeCapture(installer); installer.close();
const window = randomBytes(64 * 1024);
let next = 0;
const commit = async (count: number) => { const end = next + count; await Promise.all(Array.from({ length: 16 }, async () => {
  for (let id = next++; id < end; id = next++) {
    const at = (id * 97) % (window.length - 4096);
    const o = await store.commitVersion({ version: { bucket: 'bench', key: `k/${String(id).padStart(8, '0')}`, versionId: 'null', isDeleteMarker: false, lastModifiedMs: Date.now(), sizeBytes: 4096,
      etag: '"0123456789abcdef0123456789abcdef"', ownerId: 'owner', system: { contentType: 'application/octet-stream' }, userMetadata: {}, checksum: null, tags: [], parts: null, segments: [], inlineData: window.subarray(at, at + 4096) }, conditions: {} });
    if (o.status !== 'committed') throw new Error(o.status);
  }
})); next = end; };
const status = (f: string) => Number(readFileSync('/proc/self/status', 'utf8').split('\n').find((l) => l.startsWith(f))!.split(/\s+/)[1]) / 1024;
const cutter = new SegmentCutter({ databasePath: path, storeId: 's', epoch: 1, key: undefined });
cutter.prepare();
await new Promise((r) => setTimeout(r, 500));
const rss0 = status('VmRSS');
let from = lastChangeNumber(store.database);
const cpu0 = process.cpuUsage();
let cutCpu = 0;
for (let i = 0; i < 12; i++) {
  await commit(puts);
  const c = process.cpuUsage();
  const seg = process.env.NOCUT ? { to: from } : await cutter.cut(from);
  const u = process.cpuUsage(c); cutCpu += u.user + u.system;
  from = seg!.to;
}
console.log(`RSS before cuts ${rss0.toFixed(0)} MiB, after ${status('VmRSS').toFixed(0)} MiB, HWM ${status('VmHWM').toFixed(0)} MiB; cut CPU ${(cutCpu / (12 * puts)).toFixed(1)} µs/PUT (process, during cut)`);
if (process.env.SMAPS) console.log((await import('node:child_process')).execSync(`awk '/^[0-9a-f]+-[0-9a-f]+ /{name=$6; range=$1} /^Rss:/{ if ($2 > 3000) print $2, range, name}' /proc/${process.pid}/smaps | sort -rn | head -25`, { encoding: 'utf8' }));
await cutter.stop(); await store.close(); await rm(root, { recursive: true, force: true });
process.exit(0);
