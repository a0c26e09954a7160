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
 * per page from /proc, split into the event loop's thread and all others
 * (the listing threads; libuv's pool is idle on a listing). The client reads
 * the body as text and does not parse it. `--stall S`: 32 listers of the
 * start page in a child process (`talus bench --workload list`, which parses
 * every page, as list-stall does) while this process GETs a 4 KiB object
 * every 10 ms: the probe's p50/p99/max.
 *
 * `--only a,b`: only the shapes whose ids contain one of these (e.g.
 * `--only few` for the few-key prefix page, with `--cpu-prof` to profile it).
 *
 *   node --import tsx bench/listing-cost.ts DATA_DIR [--talus PATH/bin/talus.js] [--pages N] [--only IDS] [--stall SECONDS] [--cpu-prof DIR]
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
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

interface Server {
  child: ChildProcess;
  endpoint: string;
  /** What the server wrote to stdout (its --trace-gc lines). */
  output(): string;
}

async function startServer(): Promise<Server> {
  const port = await freePort();
  const nodeArgs = values['cpu-prof'] === undefined ? [] : ['--cpu-prof', '--cpu-prof-dir', values['cpu-prof']];
  if (values['trace-gc']) nodeArgs.push('--trace-gc');
  const child = spawn(process.execPath, [...nodeArgs, values.talus, 'server', dataDir, '--port', String(port), '--address', '127.0.0.1', '--workers', '1', '--console-address', 'none'], {
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

/** utime + stime of each thread of the process, in µs: the event loop's (tid = pid) and the rest. */
function threadCpu(pid: number): { loop: number; others: number } {
  let loop = 0;
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
    else others += micros;
  }
  return { loop, others };
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

async function measureShape(server: Server, client: S3Client, shape: (typeof SHAPES)[number]): Promise<void> {
  for (let page = 0; page < WARMUP_PAGES; page++) await client.listObjectsV2Document(LIST_BUCKET, { ...shape.query, maxKeys: 1000 });
  const before = threadCpu(server.child.pid!);
  const latencies: number[] = [];
  let bytes = 0;
  for (let page = 0; page < pages; page++) {
    const startMs = performance.now();
    bytes += (await client.listObjectsV2Document(LIST_BUCKET, { ...shape.query, maxKeys: 1000 })).length;
    latencies.push(performance.now() - startMs);
  }
  const after = threadCpu(server.child.pid!);
  latencies.sort((a, b) => a - b);
  const loop = (after.loop - before.loop) / pages;
  const others = (after.others - before.others) / pages;
  console.log(
    `${shape.id.padEnd(18)} p50 ${quantile(latencies, 0.5).toFixed(2).padStart(6)} ms  server CPU/page ${(loop + others).toFixed(0).padStart(6)} µs ` +
      `(event loop ${loop.toFixed(0).padStart(5)}, other threads ${others.toFixed(0).padStart(5)})  ${(bytes / pages / 1024).toFixed(0)} KiB/page`,
  );
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
      `${report.total.opsPerSecond.toFixed(0)} pages/s, server CPU/page ${(((after.loop - before.loop) + (after.others - before.others)) / count).toFixed(0)} µs (event loop ${((after.loop - before.loop) / count).toFixed(0)})`,
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
const server = await startServer();
const client = new S3Client({ endpoint: server.endpoint, ...TALUS_CREDENTIALS, connections: 64 });
try {
  if (fresh) await populate(client);
  console.log(`${values.talus} on ${dataDir}, load average ${readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ')}`);
  const only = values.only?.split(',').filter((id) => id !== '');
  for (const shape of SHAPES) if (only === undefined || only.some((id) => shape.id.includes(id))) await measureShape(server, client, shape);
  if (stallSeconds > 0) await stall(server, client);
  if (values['trace-gc']) {
    gcSummary(server.output());
    writeFileSync(join(dataDir, '..', 'listing-cost-gc.log'), server.output());
  }
} finally {
  await client.close();
  server.child.kill('SIGTERM');
  await new Promise((resolveExit) => server.child.once('exit', resolveExit));
}
