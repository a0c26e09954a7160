/**
 * Placement throughput: 64 MiB PUT and GET through a Talus server (a child
 * process running the compiled dist/ when it is current) with erasure 4+2
 * over six local-directory backends, against `single` on one directory
 * backend and today's `local` placement, in the same run:
 *
 *   npm run build && node --import tsx bench/placement.bench.ts [--seconds 10] [--concurrency 1,4]
 *
 * Prints MiB/s and p50 per row and each placement's ratio to `single`.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { S3Client } from '../src/client/s3-client.ts';
import { runLoad } from '../src/loadgen/index.ts';

const OBJECT_BYTES = 64 * 1024 * 1024;
const KEY = 'bench';
const SECRET = 'bench-secret-0123456789abcdef';

const { values } = parseArgs({ options: { seconds: { type: 'string', default: '10' }, concurrency: { type: 'string', default: '1,4' } } });
const seconds = Number(values.seconds);
const concurrencies = values.concurrency.split(',').map(Number);

const placements: { name: string; toml: string }[] = [
  { name: 'local', toml: '' },
  { name: 'single', toml: '[backends.d0]\ntype = "directory"\npath = "d0"\n[placements.one]\ntype = "single"\nbackend = "d0"\n[defaults]\nplacement = "one"\n' },
  {
    name: 'erasure 4+2',
    toml: `${Array.from({ length: 6 }, (_, i) => `[backends.d${i}]\ntype = "directory"\npath = "d${i}"\n`).join('')}[placements.ec]\ntype = "erasure"\ndata_shards = 4\nparity_shards = 2\nbackends = [${Array.from({ length: 6 }, (_, i) => `"d${i}"`).join(', ')}]\n[defaults]\nplacement = "ec"\n`,
  },
];

interface Row {
  placement: string;
  operation: string;
  concurrency: number;
  mibPerSecond: number;
  p50Ms: number;
  errors: number;
}

const rows: Row[] = [];
for (const placement of placements) {
  const root = await mkdtemp(join(tmpdir(), 'talus-placement-bench-'));
  const configPath = join(root, 'talus.toml');
  await writeFile(configPath, placement.toml);
  const server = await startServer(join(root, 'data'), placement.toml === '' ? [] : ['--config', configPath]);
  const client = new S3Client({ endpoint: server.url, accessKeyId: KEY, secretAccessKey: SECRET, connections: 16 });
  try {
    await client.createBucket('bench');
    for (const concurrency of concurrencies) {
      const put = await runLoad({ client, bucket: 'bench', workload: 'put', size: { min: OBJECT_BYTES, max: OBJECT_BYTES }, concurrency, durationMs: seconds * 1000, keyPrefix: `put-${concurrency}/` });
      rows.push({ placement: placement.name, operation: 'PUT', concurrency, mibPerSecond: put.total.mibPerSecond, p50Ms: put.total.latencyMs.p50, errors: put.total.errors });
      const get = await runLoad({ client, bucket: 'bench', workload: 'get', size: { min: OBJECT_BYTES, max: OBJECT_BYTES }, concurrency, durationMs: seconds * 1000, keyPrefix: `get-${concurrency}/`, keyCount: 8 });
      rows.push({ placement: placement.name, operation: 'GET', concurrency, mibPerSecond: get.total.mibPerSecond, p50Ms: get.total.latencyMs.p50, errors: get.total.errors });
      process.stderr.write(`${placement.name} c${concurrency}: PUT ${put.total.mibPerSecond.toFixed(0)} MiB/s, GET ${get.total.mibPerSecond.toFixed(0)} MiB/s\n`);
    }
  } finally {
    await client.close();
    await server.stop();
    await rm(root, { recursive: true, force: true });
  }
}

process.stdout.write('| placement | operation | in flight | MiB/s | p50 ms | ÷ single | errors |\n|---|---|--:|--:|--:|--:|--:|\n');
for (const row of rows) {
  const single = rows.find((other) => other.placement === 'single' && other.operation === row.operation && other.concurrency === row.concurrency)!;
  process.stdout.write(`| ${row.placement} | ${row.operation} | ${row.concurrency} | ${row.mibPerSecond.toFixed(0)} | ${row.p50Ms.toFixed(0)} | ${(row.mibPerSecond / single.mibPerSecond * 100).toFixed(0)} % | ${row.errors} |\n`);
}

async function startServer(dataDir: string, extraArgs: string[]): Promise<{ url: string; stop(): Promise<void> }> {
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
    stop: () =>
      new Promise<void>((resolve) => {
        child.once('exit', () => resolve());
        child.kill('SIGTERM');
      }),
  };
}
