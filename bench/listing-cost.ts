/**
 * What one listing page costs the server, thread by thread, and what a GET
 * waits for under 32 listers (issue 17): the listing rows of the suite
 * without their populating, so changes to the listing path can be compared
 * in minutes on a machine other work keeps busy.
 *
 * A Talus server (any checkout's bin/talus.js, so a change and main can be
 * run alternately on the same data) serves DATA_DIR; the first run fills it
 * with the suite's quick listing bucket (bench-list: 79 500 keys under
 * a-flat/, 100 prefixes × 5 under b-few/, 100 × 200 under c-many/) and
 * 1000 4 KiB objects for the probe, later runs reuse it. Then, per shape, 1
 * page in flight: the client's median page time (wall) and the server's CPU
 * per page from /proc, split into the event loop's thread, the listing
 * threads (told apart by their nice value, 5) and all others (V8's GC
 * helpers; libuv's pool is idle on a listing). The client reads
 * the body as text and does not parse it. `--stall S`: 32 listers of the
 * start page in a child process (`talus bench --workload list`, which parses
 * every page, as list-stall does) while this process GETs a 4 KiB object
 * every 10 ms: the probe's p50/p99/max.
 *
 * `--only a,b`: only the shapes whose ids contain one of these (e.g.
 * `--only few` for the few-key prefix page, with `--cpu-prof` to profile it).
 * `--versus PATH/bin/talus.js`: a second server, that checkout's, on a copy
 * of DATA_DIR (DATA_DIR-versus, copied once), measured page by page in turn
 * with the first (A, B, A, B …): on a machine other work keeps busy, both
 * see the same load, which runs one after the other do not.
 *
 *   node --import tsx bench/listing-cost.ts DATA_DIR [--talus PATH/bin/talus.js] [--versus PATH/bin/talus.js] [--pages N] [--only IDS] [--stall SECONDS] [--cpu-prof DIR]
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { cpSync, existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { performance } from 'node:perf_hooks';
import { S3Client } from '../src/client/s3-client.ts';
import { prepareObjects } from '../src/loadgen/index.ts';
import { ROOT, TALUS_CREDENTIALS, freePort } from './suite/servers.ts';
import { BENCH_BUCKET, LIST_BUCKET, LIST_FEW_PREFIX, LIST_FLAT_PREFIX, LIST_MANY_PREFIX, SMALL_PREFIX, listGroupPrefix, preparedKey } from './suite/setup.ts';

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    talus: { type: 'string', default: join(ROOT, 'bin', 'talus.js') },
    pages: { type: 'string', default: '200' },
    stall: { type: 'string', default: '0' },
    only: { type: 'string' },
    versus: { type: 'string' },
    'cpu-prof': { type: 'string' },
    'trace-gc': { type: 'boolean', default: false },
  },
});
const dataDir = resolve(positionals[0] ?? '/tmp/talus-listing-cost');
const pages = Number(values.pages);
const stallSeconds = Number(values.stall);
const LAYOUT = { flatKeys: 79_500, prefixes: 100, keysPerPrefixFew: 5, keysPerPrefixMany: 200 };
const PROBE_OBJECTS = 1000;
const WARMUP_PAGES = 20;
const CLOCK_TICK_MICROS = 10_000;
/** How the listing threads are told apart (src/meta/sqlite/listing-thread.ts). */
const LISTING_THREAD_NICE = 5;

interface Server {
  child: ChildProcess;
  endpoint: string;
  /** What the server wrote to stdout (its --trace-gc lines). */
  output(): string;
}

async function startServer(talus: string, dataDir: string): Promise<Server> {
  const port = await freePort();
  const nodeArgs = values['cpu-prof'] === undefined ? [] : ['--cpu-prof', '--cpu-prof-dir', values['cpu-prof']];
  // What started each incremental marking (its reason and the heap's size against its limit), in the saved log.
  if (values['trace-gc']) nodeArgs.push('--trace-gc', '--trace-incremental-marking');
  const child = spawn(process.execPath, [...nodeArgs, talus, 'server', dataDir, '--port', String(port), '--address', '127.0.0.1', '--workers', '1', '--console-address', 'none'], {
    env: { ...process.env, TALUS_ROOT_USER: TALUS_CREDENTIALS.accessKeyId, TALUS_ROOT_PASSWORD: TALUS_CREDENTIALS.secretAccessKey },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let output = '';
  await new Promise<void>((resolveReady, reject) => {
    child.stdout!.on('data', (chunk: Buffer) => {
      output += chunk.toString();
      if (/listening on http/.test(output)) resolveReady();
    });
    child.once('exit', (code) => reject(new Error(`server exited with ${code}: ${output}`)));
  });
  return { child, endpoint: `http://127.0.0.1:${port}`, output: () => output };
}

/** utime + stime of each thread of the process, in µs: the event loop's (tid = pid), the listing threads' (nice 5) and the rest. */
function threadCpu(pid: number): { loop: number; listing: number; others: number } {
  let loop = 0;
  let listing = 0;
  let others = 0;
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    let text: string;
    try {
      text = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
    } catch {
      continue;
    }
    const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
    const micros = (Number(fields[11]) + Number(fields[12])) * CLOCK_TICK_MICROS;
    if (Number(tid) === pid) loop += micros;
    else if (Number(fields[16]) === LISTING_THREAD_NICE) listing += micros;
    else others += micros;
  }
  return { loop, listing, others };
}

async function populate(client: S3Client): Promise<void> {
  process.stderr.write('populating the listing bucket …\n');
  await client.createBucket(LIST_BUCKET);
  await client.createBucket(BENCH_BUCKET);
  const tasks = [{ prefix: LIST_FLAT_PREFIX, count: LAYOUT.flatKeys }];
  for (let index = 0; index < LAYOUT.prefixes; index++) tasks.push({ prefix: listGroupPrefix(LIST_FEW_PREFIX, index), count: LAYOUT.keysPerPrefixFew });
  for (let index = 0; index < LAYOUT.prefixes; index++) tasks.push({ prefix: listGroupPrefix(LIST_MANY_PREFIX, index), count: LAYOUT.keysPerPrefixMany });
  for (const task of tasks) await prepareObjects({ client, bucket: LIST_BUCKET, keyPrefix: task.prefix, count: task.count, size: { min: 0, max: 0 }, concurrency: Math.min(64, task.count) });
  await prepareObjects({ client, bucket: BENCH_BUCKET, keyPrefix: SMALL_PREFIX, count: PROBE_OBJECTS, size: { min: 4096, max: 4096 }, concurrency: 64 });
}

const SHAPES: { id: string; query: { prefix: string; delimiter?: string; startAfter?: string } }[] = [
  { id: 'list-start', query: { prefix: LIST_FLAT_PREFIX } },
  { id: 'list-deep', query: { prefix: LIST_FLAT_PREFIX, startAfter: preparedKey(LIST_FLAT_PREFIX, LAYOUT.flatKeys - 1100) } },
  { id: 'list-delimiter', query: { prefix: LIST_FLAT_PREFIX, delimiter: '/' } },
  { id: 'list-prefixes-few', query: { prefix: LIST_FEW_PREFIX, delimiter: '/' } },
];

function quantile(sorted: readonly number[], q: number): number {
  return sorted.length === 0 ? 0 : sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * q))]!;
}

interface Measured {
  label: string;
  server: Server;
  client: S3Client;
}

/** Pages of one shape from each server in turn, one page in flight; per server its p50 and CPU per page by thread. */
async function measureShape(servers: readonly Measured[], shape: (typeof SHAPES)[number]): Promise<void> {
  const list = (client: S3Client): Promise<string> => client.listObjectsV2Document(LIST_BUCKET, { ...shape.query, maxKeys: 1000 });
  for (let page = 0; page < WARMUP_PAGES; page++) for (const { client } of servers) await list(client);
  const before = servers.map(({ server }) => threadCpu(server.child.pid!));
  const latencies = servers.map((): number[] => []);
  const bytes = servers.map(() => 0);
  for (let page = 0; page < pages; page++) {
    for (const [index, { client }] of servers.entries()) {
      const startMs = performance.now();
      bytes[index]! += (await list(client)).length;
      latencies[index]!.push(performance.now() - startMs);
    }
  }
  for (const [index, { label, server }] of servers.entries()) {
    const after = threadCpu(server.child.pid!);
    const sorted = latencies[index]!.sort((a, b) => a - b);
    const loop = (after.loop - before[index]!.loop) / pages;
    const listing = (after.listing - before[index]!.listing) / pages;
    const others = (after.others - before[index]!.others) / pages;
    console.log(
      `${shape.id.padEnd(18)}${label} p50 ${quantile(sorted, 0.5).toFixed(2).padStart(6)} ms  server CPU/page ${(loop + listing + others).toFixed(0).padStart(6)} µs ` +
        `(event loop ${loop.toFixed(0).padStart(5)}, listing thread ${listing.toFixed(0).padStart(5)}, others ${others.toFixed(0).padStart(5)})  ${(bytes[index]! / pages / 1024).toFixed(0)} KiB/page`,
    );
  }
}

async function stall(server: Server, client: S3Client): Promise<void> {
  const args = [
    join(ROOT, 'bin', 'talus.js'), 'bench', '--endpoint', server.endpoint, '--bucket', LIST_BUCKET, '--workload', 'list', '--concurrency', '32',
    '--prefix', LIST_FLAT_PREFIX, '--max-keys', '1000', '--no-prepare', '--duration', `${stallSeconds}s`, '--json',
  ];
  const env = { ...process.env, AWS_ACCESS_KEY_ID: TALUS_CREDENTIALS.accessKeyId, AWS_SECRET_ACCESS_KEY: TALUS_CREDENTIALS.secretAccessKey };
  const listers = spawn(process.execPath, args, { env, stdio: ['ignore', 'pipe', 'ignore'] });
  let stdout = '';
  listers.stdout!.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  const done = new Promise<void>((resolveDone) => listers.once('close', () => resolveDone()));
  let running = true;
  void done.then(() => (running = false));
  await new Promise((resolveWait) => setTimeout(resolveWait, 1500)); // the listers' process starts
  const before = threadCpu(server.child.pid!);
  const latencies: number[] = [];
  for (let index = 0; running; index++) {
    const startMs = performance.now();
    await client.getObject(BENCH_BUCKET, preparedKey(SMALL_PREFIX, index % PROBE_OBJECTS));
    latencies.push(performance.now() - startMs);
    await new Promise((resolveWait) => setTimeout(resolveWait, 10));
  }
  await done;
  const after = threadCpu(server.child.pid!);
  const report = JSON.parse(stdout) as { total: { count: number; opsPerSecond: number } };
  latencies.sort((a, b) => a - b);
  const count = report.total.count;
  console.log(
    `list-stall         probe GET p50 ${quantile(latencies, 0.5).toFixed(1)} ms, p99 ${quantile(latencies, 0.99).toFixed(1)} ms, max ${quantile(latencies, 1).toFixed(1)} ms (${latencies.length} probes); ` +
      `${report.total.opsPerSecond.toFixed(0)} pages/s, server CPU/page ${((after.loop - before.loop + (after.listing - before.listing) + (after.others - before.others)) / count).toFixed(0)} µs (event loop ${((after.loop - before.loop) / count).toFixed(0)}, listing thread ${((after.listing - before.listing) / count).toFixed(0)})`,
  );
}

/** --trace-gc: how many collections of each kind and their pauses (all isolates: event loop and threads). */
function gcSummary(output: string): void {
  const pauses = new Map<string, number[]>();
  for (const match of output.matchAll(/\[\d+:(0x[0-9a-f]+)\][^\n]*?(Scavenge|Mark-Compact|Mark-sweep|Minor Mark-Compact)[^,\n]*?, ([0-9.]+) \/ [0-9.]+ ms/g)) {
    const kind = `${match[2]!} (isolate ${match[1]!})`;
    const list = pauses.get(kind) ?? [];
    list.push(Number(match[3]));
    pauses.set(kind, list);
  }
  for (const [kind, list] of pauses) {
    list.sort((a, b) => a - b);
    console.log(`GC ${kind}: ${list.length}, total ${list.reduce((a, b) => a + b, 0).toFixed(0)} ms, max ${list.at(-1)!.toFixed(1)} ms, p99 ${quantile(list, 0.99).toFixed(1)} ms`);
  }
}

const fresh = !existsSync(join(dataDir, 'meta.db')) && !existsSync(dataDir);
const versusDir = `${dataDir}-versus`;
if (values.versus !== undefined && !fresh && !existsSync(versusDir)) {
  // Copied before either server starts: a copy taken while the first one runs can hold a meta.db older
  // than its blobs' epoch (the server bumps it on start), which the second then refuses to open.
  cpSync(dataDir, versusDir, { recursive: true, filter: (source) => !source.endsWith('talus.lock') });
}
const server = await startServer(values.talus, dataDir);
const client = new S3Client({ endpoint: server.endpoint, ...TALUS_CREDENTIALS, connections: 64 });
let versus: Measured | undefined;
try {
  if (fresh) await populate(client);
  if (values.versus !== undefined) {
    if (!existsSync(versusDir)) {
      // A copy made while the first server is idle (its last commit is durable in the WAL, which is copied too).
      cpSync(dataDir, versusDir, { recursive: true, filter: (source) => !source.endsWith('talus.lock') });
    }
    const versusServer = await startServer(values.versus, versusDir);
    versus = { label: ' B', server: versusServer, client: new S3Client({ endpoint: versusServer.endpoint, ...TALUS_CREDENTIALS, connections: 64 }) };
    console.log(`A: ${values.talus} on ${dataDir}; B: ${values.versus} on ${versusDir}`);
  }
  console.log(`${values.talus} on ${dataDir}, load average ${readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ')}`);
  const only = values.only?.split(',').filter((id) => id !== '');
  const measured: Measured[] = [{ label: versus === undefined ? '' : ' A', server, client }, ...(versus === undefined ? [] : [versus])];
  for (const shape of SHAPES) if (only === undefined || only.some((id) => shape.id.includes(id))) await measureShape(measured, shape);
  if (stallSeconds > 0) await stall(server, client);
  if (values['trace-gc']) {
    gcSummary(server.output());
    writeFileSync(join(dataDir, '..', 'listing-cost-gc.log'), server.output());
  }
} finally {
  for (const { client: each, server: running } of [{ client, server }, ...(versus === undefined ? [] : [versus])]) {
    await each.close();
    running.child.kill('SIGTERM');
    await new Promise((resolveExit) => running.child.once('exit', resolveExit));
  }
}
