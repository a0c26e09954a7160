/**
 * What metadata replication costs a stream of small PUTs, all of it: the
 * server's replication path as it runs, in one process, without HTTP.
 *
 * bench/replication-cost.bench.ts measures the triggers and the segment
 * cutter alone; the suite's replication-put-4k measures PUT/s end to end,
 * which the shared 2-core machine moves by more than the effect. This one
 * runs, per round in a fresh child process and data directory, the
 * embedded store committing inline 4 KiB versions (16 in flight, as the
 * server's requests are batched) with the WAL checkpointer thread, and in
 * the "on" variant the whole replication machinery of talus.ts:
 * change capture, the MetadataReplicator (lag 1 s, its segment-cutter
 * thread, uploads to three directory backends with their fsyncs, trims,
 * the start-up snapshot) and the ObjectRecordWriter. It reports the
 * process's CPU per PUT by thread (read from /proc/self/task; the threads
 * are named for that) from the first measured PUT until every change they
 * made is shipped, alternating "off" and "on" rounds.
 *
 * Bodies: `loadgen` (windows of one random buffer, as the load generator
 * and the suite send: brotli compresses a segment of them ~7×) or `random`
 * (distinct random bytes: nothing compresses).
 *
 *   node --import tsx bench/replication-pipeline.bench.ts [--puts 20000] [--rounds 3] [--bodies loadgen|random] [--lag 1000]
 *
 * VARIANTS=off,on,on-norecords (environment) chooses the variants; on-norecords is "on" without the
 * ObjectRecordWriter. RING=off leaves out the inline-body hand-over of round 6 (the store's tap,
 * src/replication/inline-body-ring.ts): the cutter reads every body back, as before it.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { createRequire, syncBuiltinESMExports } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';

const OBJECT_BYTES = 4096;
const IN_FLIGHT = 16;
const WARM_PUTS = 2000;
/** After the warm-up: the first rounds, the cutter thread's start and the start-up snapshot are behind us. */
const SETTLE_MS = 2500;

const { values } = parseArgs({
  options: {
    puts: { type: 'string', default: '20000' },
    rounds: { type: 'string', default: '3' },
    bodies: { type: 'string', default: 'loadgen' },
    /** The replication lag: a longer one makes larger segments (past SEGMENT_BYTES_MAX at a few thousand PUT/s from ~2 s). */
    lag: { type: 'string', default: '1000' },
    child: { type: 'string' },
  },
});

interface ChildResult {
  variant: string;
  puts: number;
  seconds: number;
  /** CPU µs per PUT by thread name (unnamed threads: libuv's pool, V8's platform threads). */
  threads: Record<string, number>;
  total: number;
  /** Segments shipped while measured, and how many of them were cut row by row (a backlog past one joined cut). */
  segments?: number;
  segmentsCutInLogOrder?: number;
  /** The process's peak resident memory (getrusage maxrss). */
  peakRssMiB: number;
}


/** Names every thread this process starts after the module-thread convention (workerData.moduleUrl) or its data, so /proc tells them apart. */
function nameThreads(): void {
  const require = createRequire(import.meta.url);
  const threads = require('node:worker_threads') as typeof import('node:worker_threads');
  writeThreadName('main');
  const namer = `{ const d = require('node:worker_threads').workerData ?? {}; const n = d.moduleUrl ? d.moduleUrl.split('/').pop().replace(/\\.[jt]s$/, '') : d.intervalMs !== undefined ? 'wal-checkpointer' : 'thread-' + Object.keys(d).join(','); try { require('node:fs').writeFileSync('/proc/thread-self/comm', n.slice(0, 15)); } catch {} }\n`;
  const Original = threads.Worker;
  threads.Worker = class extends Original {
    constructor(code: string | URL, options?: import('node:worker_threads').WorkerOptions) {
      super(options?.eval === true && typeof code === 'string' ? namer + code : code, options);
    }
  };
  syncBuiltinESMExports();
}

function writeThreadName(name: string): void {
  try {
    writeFileSync('/proc/thread-self/comm', name);
  } catch {
    // Not Linux: the totals still hold.
  }
}

const TICK_MICROS = 1e6 / Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim());

async function threadTimes(): Promise<Map<string, number>> {
  const times = new Map<string, number>();
  for (const tid of await readdir('/proc/self/task')) {
    try {
      const name = (await readFile(`/proc/self/task/${tid}/comm`, 'utf8')).trim();
      const stat = await readFile(`/proc/self/task/${tid}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      const ticks = Number(fields[11]) + Number(fields[12]);
      const label = name === 'node' || name.startsWith('libuv') || name.startsWith('V8') ? 'other threads' : name;
      times.set(`${label}\u0000${tid}`, ticks * TICK_MICROS);
    } catch {
      // The thread ended in between.
    }
  }
  return times;
}

async function runChild(variant: string, puts: number, bodies: string): Promise<ChildResult> {
  nameThreads();
  const { SqliteMetadataStore } = await import('../src/meta/sqlite/sqlite-metadata-store.ts');
  const { WalCheckpointer } = await import('../src/meta/sqlite/wal-checkpointer.ts');
  const { MetadataReplicator } = await import('../src/replication/replicator.ts');
  const { ObjectRecordWriter } = await import('../src/replication/record-writer.ts');
  const { DirectoryBackend } = await import('../src/backend/directory-backend.ts');
  const { PayloadSource } = await import('../src/loadgen/payload.ts');
  const { jsonLogger } = await import('../src/util/logger.ts');
  const root = await mkdtemp(join(tmpdir(), 'talus-replication-pipeline-'));
  try {
    const dataDir = join(root, 'data');
    await mkdir(dataDir);
    const databasePath = join(dataDir, 'meta.db');
    const store = new SqliteMetadataStore(databasePath, { soleWriter: true });
    const checkpointer = new WalCheckpointer(databasePath, (error) => console.error('checkpointer', error));
    await store.createBucket({ name: 'bench', createdMs: 0, ownerId: 'owner', versioning: 'Unversioned', tags: null });
    const logger = jsonLogger();
    let replicator: InstanceType<typeof MetadataReplicator> | undefined;
    let records: InstanceType<typeof ObjectRecordWriter> | undefined;
    if (variant.startsWith('on')) {
      const backends = await Promise.all([0, 1, 2].map(async (i) => DirectoryBackend.open(`d${i}`, join(root, `d${i}`))));
      replicator = new MetadataReplicator({
        databasePath,
        scratchDirectory: join(dataDir, 'replication-scratch'),
        targets: backends,
        storeId: 'bench-store',
        epoch: 1,
        config: { backends: backends.map((backend) => backend.name), lagMs: Number(values.lag), snapshotIntervalMs: 3_600_000, writeQuorum: 2, key: undefined, mode: 'async' },
        logger,
        readConnection: store.database,
      });
      // As cli.ts does: the cutter takes the serving thread's inline bodies (inline-body-ring.ts). RING=off leaves it out.
      if (process.env.RING !== 'off') store.setInlineDataTap(replicator.inlineDataTap);
      replicator.start();
      if (variant !== 'on-norecords') records = new ObjectRecordWriter({ databasePath, backends: new Map(backends.map((backend) => [backend.name, backend])), logger });
      records?.start();
    }
    const payload = bodies === 'random' ? randomBytes((WARM_PUTS + puts) * OBJECT_BYTES) : undefined;
    const source = new PayloadSource(OBJECT_BYTES);
    const body = (id: number): Buffer => (payload !== undefined ? payload.subarray(id * OBJECT_BYTES, (id + 1) * OBJECT_BYTES) : (source.body(id, OBJECT_BYTES) as Buffer));
    const commitAll = async (first: number, count: number): Promise<void> => {
      let next = first;
      await Promise.all(
        Array.from({ length: IN_FLIGHT }, async () => {
          for (let id = next++; id < first + count; id = next++) {
            const version = {
              bucket: 'bench', key: `k/${String(id).padStart(8, '0')}`, versionId: 'null', isDeleteMarker: false, lastModifiedMs: Date.now(), sizeBytes: OBJECT_BYTES,
              etag: '"0123456789abcdef0123456789abcdef"', ownerId: 'owner', system: { contentType: 'application/octet-stream' }, userMetadata: {},
              checksum: null, tags: [], parts: null, segments: [], inlineData: body(id),
            };
            const outcome = await store.commitVersion({ version, conditions: {} });
            if (outcome.status !== 'committed') throw new Error(`commit ${id}: ${outcome.status}`);
          }
        }),
      );
    };
    await commitAll(0, WARM_PUTS);
    await new Promise((resolve) => setTimeout(resolve, SETTLE_MS));
    const before = await threadTimes();
    const shippedBefore = replicator?.status;
    const started = performance.now();
    await commitAll(WARM_PUTS, puts);
    // Until what they logged is shipped (by the replicator's own rounds): its cost is theirs.
    if (replicator !== undefined) {
      const target = replicator.committedPosition;
      while (replicator.status.shippedPosition < target) await new Promise((resolve) => setTimeout(resolve, 10));
    }
    await records?.flush();
    const seconds = (performance.now() - started) / 1000;
    const after = await threadTimes();
    const threads: Record<string, number> = {};
    let total = 0;
    for (const [key, micros] of after) {
      const spent = micros - (before.get(key) ?? 0);
      const name = key.split('\u0000')[0]!;
      threads[name] = (threads[name] ?? 0) + spent / puts;
      total += spent / puts;
    }
    const shippedAfter = replicator?.status;
    const segments = shippedAfter === undefined || shippedBefore === undefined ? {} : { segments: shippedAfter.segmentsShipped - shippedBefore.segmentsShipped, segmentsCutInLogOrder: shippedAfter.segmentsCutInLogOrder - shippedBefore.segmentsCutInLogOrder };
    await records?.stop();
    await replicator?.stop();
    await checkpointer.stop();
    await store.close();
    return { variant, puts, seconds, threads, total, ...segments, peakRssMiB: process.resourceUsage().maxRSS / 1024 };
  } finally {
    await rm(root, { recursive: true, force: true, maxRetries: 5 });
  }
}

async function runParent(): Promise<void> {
  const rounds = Number(values.rounds);
  const results = new Map<string, ChildResult[]>();
  for (let round = 0; round < rounds; round++) {
    for (const variant of (process.env['VARIANTS'] ?? 'off,on').split(',')) {
      const output = execFileSync(process.execPath, ['--import', 'tsx', new URL(import.meta.url).pathname, '--child', variant, '--puts', values.puts!, '--bodies', values.bodies!, '--lag', values.lag!], {
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'inherit'],
        maxBuffer: 1 << 20,
      });
      const result = JSON.parse(output) as ChildResult;
      results.set(variant, [...(results.get(variant) ?? []), result]);
      const threads = Object.entries(result.threads).filter(([, micros]) => micros >= 0.5).sort((a, b) => b[1] - a[1]).map(([name, micros]) => `${name} ${micros.toFixed(1)}`).join(', ');
      process.stderr.write(`round ${round + 1} ${variant}: ${result.total.toFixed(1)} µs/PUT (${(result.puts / result.seconds).toFixed(0)} PUT/s${result.segments === undefined ? '' : `, ${result.segments} segments, ${result.segmentsCutInLogOrder} cut in log order`}, peak RSS ${result.peakRssMiB.toFixed(0)} MiB): ${threads}\n`);
    }
  }
  const median = (numbers: number[]): number => [...numbers].sort((a, b) => a - b)[Math.floor(numbers.length / 2)]!;
  // The comparison needs both variants (VARIANTS=on alone, e.g. under perf, prints the rounds only).
  if (!results.has('off') || !results.has('on')) return;
  const off = median(results.get('off')!.map((result) => result.total));
  const on = median(results.get('on')!.map((result) => result.total));
  const names = new Set([...results.values()].flat().flatMap((result) => Object.keys(result.threads)));
  const byThread = [...names]
    .map((name) => ({ name, off: median(results.get('off')!.map((result) => result.threads[name] ?? 0)), on: median(results.get('on')!.map((result) => result.threads[name] ?? 0)) }))
    .filter((row) => row.off >= 0.5 || row.on >= 0.5)
    .map((row) => `${row.name} ${row.off.toFixed(1)} → ${row.on.toFixed(1)}`);
  process.stdout.write(
    `${values.puts} inline 4 KiB PUTs (${values.bodies} bodies) per round, ${rounds} rounds, process CPU per PUT (medians): ` +
      `off ${off.toFixed(1)} µs, on ${on.toFixed(1)} µs (+${(on - off).toFixed(1)}, +${(((on - off) / off) * 100).toFixed(0)} %); by thread: ${byThread.join('; ')}\n`,
  );
}

if (values.child !== undefined) {
  process.stdout.write(JSON.stringify(await runChild(values.child, Number(values.puts), values.bodies!)));
} else {
  await runParent();
}
