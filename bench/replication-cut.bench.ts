/**
 * The segment cutter's SQL and JavaScript alone: CPU per 4 KiB inline PUT of
 * cutting and encoding one segment (cutEncodedSegment) on a read-only
 * connection of its own, as the cutter thread does, without SHA-256,
 * brotli, uploads or threads. bench/replication-pipeline.bench.ts measures
 * the whole pipeline, whose per-thread figures move by more than a few µs
 * from run to run on the shared machine; this one resolves ~1 µs.
 *
 * Commits PUTS inline versions (16 at a time) to a store with change capture,
 * then cuts the same segment CUTS times; prints the median and the minimum.
 * With --encode, each cut is also made into its replica object as the
 * cutter thread does (SHA-256, brotli on libuv's pool: the process's CPU,
 * every thread's, is counted).
 *
 *   node --import tsx bench/replication-cut.bench.ts [--puts 6000] [--cuts 15] [--encode] [--each]
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import Database from 'better-sqlite3';
import { SqliteMetadataStore } from '../src/meta/sqlite/sqlite-metadata-store.ts';
import { installChangeCapture, lastChangeNumber } from '../src/replication/change-capture.ts';
import { encodeSegmentObjectParts } from '../src/replication/replica-object.ts';
import { cutEncodedSegment, PayloadScratch } from '../src/replication/segment.ts';

const OBJECT_BYTES = 4096;
const IN_FLIGHT = 16;
const { values } = parseArgs({ options: { puts: { type: 'string', default: '6000' }, cuts: { type: 'string', default: '15' }, encode: { type: 'boolean', default: false }, each: { type: 'boolean', default: false } } });
const puts = Number(values.puts);
const cuts = Number(values.cuts);

const root = await mkdtemp(join(tmpdir(), 'talus-replication-cut-'));
try {
  const path = join(root, 'metadata.db');
  const store = new SqliteMetadataStore(path, { soleWriter: true });
  await store.createBucket({ name: 'bench', createdMs: 0, ownerId: 'owner', versioning: 'Unversioned', tags: null });
  const installer = new Database(path);
  installChangeCapture(installer);
  installer.close();
  const from = lastChangeNumber(store.database);
  // Windows of one random buffer, as the load generator sends.
  const window = randomBytes(64 * 1024);
  let next = 0;
  await Promise.all(
    Array.from({ length: IN_FLIGHT }, async () => {
      for (let id = next++; id < puts; id = next++) {
        const at = (id * 97) % (window.length - OBJECT_BYTES);
        const outcome = await store.commitVersion({
          version: {
            bucket: 'bench', key: `k/${String(id).padStart(8, '0')}`, versionId: 'null', isDeleteMarker: false, lastModifiedMs: Date.now(), sizeBytes: OBJECT_BYTES,
            etag: '"0123456789abcdef0123456789abcdef"', ownerId: 'owner', system: { contentType: 'application/octet-stream' }, userMetadata: {},
            checksum: null, tags: [], parts: null, segments: [], inlineData: window.subarray(at, at + OBJECT_BYTES),
          },
          conditions: {},
        });
        if (outcome.status !== 'committed') throw new Error(`commit ${id}: ${outcome.status}`);
      }
    }),
  );
  const reader = new Database(path, { readonly: true, fileMustExist: true });
  reader.pragma('temp_store = MEMORY');
  const perPut: number[] = [];
  // As the cutter thread cuts: each payload in the last one's memory.
  const scratch = new PayloadScratch();
  let cut = '';
  for (let round = 0; round < cuts; round++) {
    const started = process.cpuUsage();
    const segment = cutEncodedSegment(reader, from, scratch);
    if (segment === undefined) throw new Error('nothing to cut');
    let stored = '';
    if (values.encode) {
      const parts = await encodeSegmentObjectParts({ storeId: 'bench', epoch: 1, from: segment.from, to: segment.to, complete: segment.complete }, segment.payload, undefined);
      stored = `, ${parts.reduce((sum, part) => sum + part.length, 0)} bytes stored`;
    }
    const used = process.cpuUsage(started);
    cut = `${segment.cut}${values.encode ? ' and encoded' : ''}, ${segment.to - segment.from} changes, ${segment.payload.length} bytes${stored}`;
    perPut.push((used.user + used.system) / puts);
  }
  reader.close();
  await store.close();
  // --each: every cut in order, the first on a fresh connection (statements prepared, code not yet optimized).
  if (values.each) console.log(`each cut, µs of CPU per PUT: ${perPut.map((micros) => micros.toFixed(1)).join(', ')}`);
  perPut.sort((a, b) => a - b);
  console.log(`cut (${cut}): µs of CPU per PUT, median ${perPut[Math.floor(cuts / 2)]!.toFixed(2)}, min ${perPut[0]!.toFixed(2)} over ${cuts} cuts`);
} finally {
  await rm(root, { recursive: true, force: true });
}
