/**
 * What metadata replication adds to each small PUT, in CPU time rather than
 * throughput: on the shared 2-core machine end-to-end PUT/s moves by 2× from
 * run to run (bench/replication.bench.ts, `npm run bench -- --only
 * replication-put-4k`), ten times the effect being measured, while the CPU
 * a piece of work takes moves far less.
 *
 * In one process, on the embedded store (a file in a temporary directory,
 * WAL mode, as the server runs it), alternating rounds:
 *   plain     commit PUTS 4 KiB inline versions, 16 at a time (the store
 *             batches them as the server's requests are batched)
 *   captured  the same on a store with change capture installed (the
 *             triggers that log each changed row in the commit), and then
 *             shipping what they logged as the event loop did before
 *             segment-cutter.ts: cut the segments on the store's
 *             connection, encode them, and make the replica objects
 *             (SHA-256, brotli when it pays; no key: no AES), step by step
 *   thread    the same changes shipped again as the replicator ships them:
 *             cut and encoded on the SegmentCutter's thread, with its own
 *             connection (process CPU of both threads), then the trim of the log
 * Prints the process CPU per PUT of each (medians over the rounds). Uploads
 * are left out: three small file writes per second on directory backends,
 * a few per thousand PUTs.
 *
 *   node --import tsx bench/replication-cost.bench.ts [--puts 4000] [--rounds 5]
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import Database from 'better-sqlite3';
import { SqliteMetadataStore } from '../src/meta/sqlite/sqlite-metadata-store.ts';
import type { ObjectVersion } from '../src/meta/types.ts';
import { installChangeCapture, lastChangeNumber, trimChanges } from '../src/replication/change-capture.ts';
import { encodeSegmentObject } from '../src/replication/replica-object.ts';
import { cutSegment, encodeSegment } from '../src/replication/segment.ts';
import { SegmentCutter } from '../src/replication/segment-cutter.ts';

const OBJECT_BYTES = 4096;
const IN_FLIGHT = 16;
const { values } = parseArgs({ options: { puts: { type: 'string', default: '4000' }, rounds: { type: 'string', default: '5' } } });
const puts = Number(values.puts);
const rounds = Number(values.rounds);

function cpuMicros(since: NodeJS.CpuUsage): number {
  const used = process.cpuUsage(since);
  return used.user + used.system;
}

function version(key: string, body: Buffer): ObjectVersion {
  return {
    bucket: 'bench', key, versionId: 'null', isDeleteMarker: false, lastModifiedMs: Date.now(), sizeBytes: body.length,
    etag: '"0123456789abcdef0123456789abcdef"', ownerId: 'owner', system: { contentType: 'application/octet-stream' }, userMetadata: {},
    checksum: null, tags: [], parts: null, segments: [], inlineData: body,
  };
}

/** CPU per PUT of committing `puts` new inline objects, IN_FLIGHT at a time. */
async function commitAll(store: SqliteMetadataStore, tag: string, payload: Buffer): Promise<number> {
  const started = process.cpuUsage();
  let next = 0;
  await Promise.all(
    Array.from({ length: IN_FLIGHT }, async () => {
      for (let id = next++; id < puts; id = next++) {
        const body = payload.subarray(id * OBJECT_BYTES, (id + 1) * OBJECT_BYTES);
        const outcome = await store.commitVersion({ version: version(`${tag}/${String(id).padStart(8, '0')}`, body), conditions: {} });
        if (outcome.status !== 'committed') throw new Error(`commit ${id}: ${outcome.status}`);
      }
    }),
  );
  return cpuMicros(started) / puts;
}

/** Process CPU per PUT (both threads) of shipping everything logged after `from` through the replicator's SegmentCutter thread. */
async function shipOnThread(cutter: SegmentCutter, db: Database.Database, from: number): Promise<number> {
  const started = process.cpuUsage();
  let shipped = from;
  const target = lastChangeNumber(db);
  while (shipped < target) {
    const segment = await cutter.cut(shipped);
    if (segment === undefined) break;
    shipped = segment.to;
  }
  const step = process.cpuUsage();
  trimChanges(db, shipped);
  parts.trim += cpuMicros(step);
  return cpuMicros(started) / puts;
}

/** CPU per PUT of shipping everything logged after `from` on the store's connection, step by step (what MetadataReplicator.shipNow did on the event loop before segment-cutter.ts) (one segment per call at most SEGMENT_CHANGES_MAX). */
async function shipAll(db: Database.Database, from: number): Promise<number> {
  const started = process.cpuUsage();
  let shipped = from;
  const target = lastChangeNumber(db);
  while (shipped < target) {
    let step = process.cpuUsage();
    const segment = cutSegment(db, shipped);
    parts.cut += cpuMicros(step);
    if (segment === undefined) break;
    step = process.cpuUsage();
    const plain = encodeSegment(segment);
    parts.encode += cpuMicros(step);
    step = process.cpuUsage();
    await encodeSegmentObject({ storeId: 'bench', epoch: 1, from: segment.from, to: segment.to, complete: segment.complete }, plain, undefined);
    parts.object += cpuMicros(step);
    shipped = segment.to;
  }
  // The log is trimmed after the cutter thread shipped the same changes again (shipOnThread).
  return cpuMicros(started) / puts;
}

async function openStore(path: string, capture: boolean): Promise<SqliteMetadataStore> {
  const store = new SqliteMetadataStore(path, { soleWriter: true });
  if ((await store.getBucket('bench')) === undefined) await store.createBucket({ name: 'bench', createdMs: 0, ownerId: 'owner', versioning: 'Unversioned', tags: null });
  if (capture) {
    // As the replicator does: a connection of its own installs the triggers once the schema exists, before the server writes.
    const installer = new Database(path);
    installChangeCapture(installer);
    installer.close();
  }
  return store;
}

const root = await mkdtemp(join(tmpdir(), 'talus-replication-cost-'));
// A distinct random body per PUT: the worst case for shipping, nothing compresses. (The load generator's bodies are
// windows of one random buffer, which brotli compresses ~50× across the objects of a segment.)
const payload = randomBytes(puts * OBJECT_BYTES);
/** Shipping's CPU by step, summed over the measured rounds. */
const parts = { cut: 0, encode: 0, object: 0, trim: 0 };
const samples = { plain: [] as number[], captured: [] as number[], shipping: [] as number[], thread: [] as number[] };
try {
  const plain = await openStore(join(root, 'plain.db'), false);
  const captured = await openStore(join(root, 'captured.db'), true);
  const cutter = new SegmentCutter({ databasePath: join(root, 'captured.db'), storeId: 'bench', epoch: 1, key: undefined });
  try {
    await commitAll(plain, 'warm', payload);
    await commitAll(captured, 'warm', payload);
    await shipAll(captured.database, 0);
    await shipOnThread(cutter, captured.database, 0);
    for (const step of Object.keys(parts) as (keyof typeof parts)[]) parts[step] = 0;
    for (let round = 0; round < rounds; round++) {
      samples.plain.push(await commitAll(plain, `r${round}`, payload));
      const from = lastChangeNumber(captured.database);
      samples.captured.push(await commitAll(captured, `r${round}`, payload));
      samples.shipping.push(await shipAll(captured.database, from));
      // The same changes again, as the replicator now ships them: cut and encoded on the cutter's thread.
      samples.thread.push(await shipOnThread(cutter, captured.database, from));
      process.stderr.write(
        `round ${round + 1}: commit ${samples.plain.at(-1)!.toFixed(1)} µs, with capture ${samples.captured.at(-1)!.toFixed(1)} µs, ` +
          `shipping ${samples.shipping.at(-1)!.toFixed(1)} µs in process, ${samples.thread.at(-1)!.toFixed(1)} µs on the cutter thread, per PUT\n`,
      );
    }
  } finally {
    await cutter.stop();
    await plain.close();
    await captured.close();
  }
} finally {
  await rm(root, { recursive: true, force: true });
}
const median = (numbers: number[]): number => [...numbers].sort((a, b) => a - b)[Math.floor(numbers.length / 2)]!;
const [commit, withCapture, shipping, thread] = [median(samples.plain), median(samples.captured), median(samples.shipping), median(samples.thread)];
process.stdout.write(
  `${puts} inline 4 KiB PUTs per round, ${rounds} rounds, process CPU per PUT (medians): commit ${commit.toFixed(1)} µs; with change capture ${withCapture.toFixed(1)} µs ` +
    `(+${(withCapture - commit).toFixed(1)}, on the event loop); shipping through the cutter thread ${thread.toFixed(1)} µs (both threads; the event loop only waits and uploads), ` +
    `the same on the store's connection in process ${shipping.toFixed(1)} µs (as the event loop did before segment-cutter.ts)\n` +
    `in-process shipping by step (means): ${Object.entries(parts).map(([step, micros]) => `${step} ${(micros / (puts * rounds)).toFixed(1)} µs`).join(', ')}\n`,
);
