/**
 * The cost of metadata replication on small PUTs: 4 KiB objects (inline in
 * the metadata, so the PUT is almost all metadata commit) through a server
 * storing erasure 2+1 over three directory backends, without and with
 * `[replication]` (lag 1 s), alternating runs to spread the shared
 * machine's noise over both:
 *
 *   npm run build && node --import tsx bench/replication.bench.ts [--seconds 10] [--rounds 3] [--concurrency 16]
 *
 * Prints PUT/s, p50 and the server's CPU per PUT (from /proc) per run, and
 * the medians' ratio.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { S3Client } from '../src/client/s3-client.ts';
import { runLoad } from '../src/loadgen/index.ts';

const KEY = 'bench';
const SECRET = 'bench-secret-0123456789abcdef';
const OBJECT_BYTES = 4096;
const { values } = parseArgs({ options: { seconds: { type: 'string', default: '10' }, rounds: { type: 'string', default: '3' }, concurrency: { type: 'string', default: '16' } } });

const BASE = `${[0, 1, 2].map((i) => `[backends.d${i}]\ntype = "directory"\npath = "d${i}"\n`).join('')}[placements.ec]\ntype = "erasure"\ndata_shards = 2\nparity_shards = 1\nbackends = ["d0", "d1", "d2"]\n[defaults]\nplacement = "ec"\n`;
const variants = [
  { name: 'no replication', toml: BASE },
  { name: 'replication (async, lag 1s)', toml: `${BASE}[replication]\nlag = "1s"\n` },
  { name: 'replication, encrypted', toml: `${BASE}[replication]\nlag = "1s"\nkey = "${Buffer.alloc(32, 7).toString('base64')}"\n` },
  { name: 'replication, quorum mode', toml: `${BASE}[replication]\nmode = "quorum"\n` },
];

interface Run {
  variant: string;
  putsPerSecond: number;
  p50Ms: number;
  cpuUsPerPut: number;
}

async function cpuTicks(pid: number): Promise<number> {
  const fields = (await readFile(`/proc/${pid}/stat`, 'utf8')).split(') ')[1]!.split(' ');
  return Number(fields[11]) + Number(fields[12]); // utime + stime, in clock ticks (100/s)
}

const runs: Run[] = [];
for (let round = 0; round < Number(values.rounds); round++) {
  for (const variant of variants) {
    const root = await mkdtemp(join(tmpdir(), 'talus-replication-bench-'));
    await writeFile(join(root, 'talus.toml'), variant.toml);
    const server = await startServer(join(root, 'data'), ['--config', join(root, 'talus.toml')]);
    const client = new S3Client({ endpoint: server.url, accessKeyId: KEY, secretAccessKey: SECRET, connections: 32 });
    try {
      await client.createBucket('bench');
      const before = await cpuTicks(server.child.pid!);
      const put = await runLoad({ client, bucket: 'bench', workload: 'put', size: { min: OBJECT_BYTES, max: OBJECT_BYTES }, concurrency: Number(values.concurrency), durationMs: Number(values.seconds) * 1000, keyPrefix: 'p/' });
      const ticks = (await cpuTicks(server.child.pid!)) - before;
      const run = { variant: variant.name, putsPerSecond: put.total.opsPerSecond, p50Ms: put.total.latencyMs.p50, cpuUsPerPut: (ticks * 10_000) / put.total.count };
      runs.push(run);
      process.stderr.write(`${run.variant}: ${run.putsPerSecond.toFixed(0)} PUT/s, p50 ${run.p50Ms.toFixed(2)} ms, ${run.cpuUsPerPut.toFixed(0)} us CPU/PUT, ${put.total.errors} errors\n`);
    } finally {
      await client.close();
      await server.stop();
      await rm(root, { recursive: true, force: true });
    }
  }
}

const median = (numbers: number[]): number => numbers.sort((a, b) => a - b)[Math.floor(numbers.length / 2)]!;
const baseline = runs.filter((run) => run.variant === variants[0]!.name);
process.stdout.write('| variant | PUT/s (median) | p50 ms | server CPU µs/PUT | PUT/s ÷ none |\n|---|--:|--:|--:|--:|\n');
for (const variant of variants) {
  const mine = runs.filter((run) => run.variant === variant.name);
  const rate = median(mine.map((run) => run.putsPerSecond));
  process.stdout.write(
    `| ${variant.name} | ${rate.toFixed(0)} | ${median(mine.map((run) => run.p50Ms)).toFixed(2)} | ${median(mine.map((run) => run.cpuUsPerPut)).toFixed(0)} | ${((rate / median(baseline.map((run) => run.putsPerSecond))) * 100).toFixed(0)} % |\n`,
  );
}

async function startServer(dataDir: string, extraArgs: string[]): Promise<{ url: string; child: ChildProcess; stop(): Promise<void> }> {
  const child = spawn(process.execPath, ['bin/talus.js', 'server', dataDir, '--port', '0', '--address', '127.0.0.1', '--workers', '1', ...extraArgs], {
    env: { ...process.env, TALUS_ROOT_USER: KEY, TALUS_ROOT_PASSWORD: SECRET },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const url = await new Promise<string>((resolve, reject) => {
    let output = '';
    child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
      output += chunk;
      const match = /listening on (http:\/\/\S+)/.exec(output);
      if (match !== null) resolve(match[1]!);
    });
    child.once('exit', (code) => reject(new Error(`server exited (${code}) before it was ready`)));
  });
  return {
    url,
    child,
    stop: () =>
      new Promise<void>((resolve) => {
        child.once('exit', () => resolve());
        child.kill('SIGTERM');
      }),
  };
}
