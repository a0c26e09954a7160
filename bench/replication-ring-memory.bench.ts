/**
 * What a replicating process keeps resident for its segments, in process and
 * independent of the PUT rate: commits PUTS inline 4 KiB versions (16 in
 * flight) with the serving thread's ring tapped (inline-body-ring.ts), has
 * the SegmentCutter thread cut and encode the segment of them with the
 * bodies handed over, twelve times over, and prints the peak RSS and the
 * process's CPU per PUT (commits and cuts; every thread). TREE=<worktree>
 * runs another tree's modules (its sources, through tsx, as this one's), so
 * a tree before a change can be alternated with the one after it.
 * docs/PERFORMANCE.md, "Metadata replication, round 7".
 *
 *   [TREE=/work/wt-before] [SMAPS=1] node --import tsx bench/replication-ring-memory.bench.ts [PUTS] [RING_MIB]
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import Database from 'better-sqlite3';

const tree = resolve(process.env['TREE'] ?? '.');
const load = async <T>(module: string): Promise<T> => (await import(pathToFileURL(join(tree, 'src', module)).href)) as T;
type Store = import('../src/meta/sqlite/sqlite-metadata-store.ts').SqliteMetadataStore;
const { SqliteMetadataStore } = await load<typeof import('../src/meta/sqlite/sqlite-metadata-store.ts')>('meta/sqlite/sqlite-metadata-store.ts');
const { installChangeCapture, lastChangeNumber, CHANGES_TABLE } = await load<typeof import('../src/replication/change-capture.ts')>('replication/change-capture.ts');
const { SegmentCutter } = await load<typeof import('../src/replication/segment-cutter.ts')>('replication/segment-cutter.ts');
const { InlineBodyCollector, RING_BYTES } = await load<typeof import('../src/replication/inline-body-ring.ts')>('replication/inline-body-ring.ts');

const puts = Number(process.argv[2] ?? 4800);
const ringBytes = process.argv[3] === undefined ? RING_BYTES : Number(process.argv[3]) * 1024 * 1024;
const root = await mkdtemp(join(tmpdir(), 'ring-rss-'));
const path = join(root, 'metadata.db');
const store: Store = new SqliteMetadataStore(path, { soleWriter: true });
await store.createBucket({ name: 'bench', createdMs: 0, ownerId: 'owner', versioning: 'Unversioned', tags: null });
const installer = new Database(path);
installChangeCapture(installer);
installer.close();
const changeNumber = store.database.prepare('SELECT seq FROM sqlite_sequence WHERE name = ?').pluck().bind(CHANGES_TABLE);
const collector = new InlineBodyCollector(() => changeNumber.get() as number, ringBytes);
store.setInlineDataTap(collector);
// Compressible bodies, as the load generator's are (views of one random window repeated).
const window = Buffer.concat([randomBytes(2048), randomBytes(2048)].flatMap((part) => [part, part, part]));
let next = 0;
async function commit(count: number): Promise<void> {
  const end = next + count;
  await Promise.all(
    Array.from({ length: 16 }, async () => {
      for (let id = next++; id < end; id = next++) {
        const at = (id * 97) % (window.length - 4096);
        const outcome = await store.commitVersion({
          version: { bucket: 'bench', key: `k/${String(id).padStart(8, '0')}`, versionId: 'null', isDeleteMarker: false, lastModifiedMs: Date.now(), sizeBytes: 4096, etag: '"0123456789abcdef0123456789abcdef"', ownerId: 'owner', system: { contentType: 'application/octet-stream' }, userMetadata: {}, checksum: null, tags: [], parts: null, segments: [], inlineData: window.subarray(at, at + 4096) },
          conditions: {},
        });
        if (outcome.status !== 'committed') throw new Error(outcome.status);
      }
    }),
  );
  next = end;
}
const status = (field: string): number => Number(readFileSync('/proc/self/status', 'utf8').split('\n').find((line) => line.startsWith(field))!.split(/\s+/)[1]) / 1024;
const cutter = new SegmentCutter({ databasePath: path, storeId: 's', epoch: 1, key: undefined, ring: collector.memory });
cutter.prepare();
await new Promise((done) => setTimeout(done, 500));
const rss0 = status('VmRSS');
let from = lastChangeNumber(store.database);
const cpu0 = process.cpuUsage();
let cutCpu = 0;
let bytes = 0;
const ROUNDS = 12;
for (let round = 0; round < ROUNDS; round++) {
  await commit(puts);
  const before = process.cpuUsage();
  const range = collector.handOver();
  const segment = await cutter.cut(from, range);
  if (range !== undefined) collector.release(range.to);
  const used = process.cpuUsage(before);
  cutCpu += used.user + used.system;
  bytes += segment!.parts.reduce((sum, part) => sum + part.length, 0);
  from = segment!.to;
}
const all = process.cpuUsage(cpu0);
console.log(
  `${tree} ring ${(ringBytes / 2 ** 20).toFixed(0)} MiB: RSS before ${rss0.toFixed(0)} MiB, after ${status('VmRSS').toFixed(0)} MiB, peak ${status('VmHWM').toFixed(0)} MiB; ` +
    `CPU per PUT ${((all.user + all.system) / (ROUNDS * puts)).toFixed(1)} µs (cuts ${(cutCpu / (ROUNDS * puts)).toFixed(1)}); dropped ${collector.dropped}; ${(bytes / ROUNDS / 1024).toFixed(0)} KiB per object`,
);
if (process.env['SMAPS']) console.log((await import('node:child_process')).execSync(`awk '/^[0-9a-f]+-[0-9a-f]+ /{name=$6; range=$1} /^Rss:/{ if ($2 > 3000) print $2, range, name}' /proc/${process.pid}/smaps | sort -rn | head -12`, { encoding: 'utf8' }));
await cutter.stop();
await store.close();
await rm(root, { recursive: true, force: true });
process.exit(0);
