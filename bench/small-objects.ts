/**
 * First small-object numbers for the benchmark issue: 4 KiB GET and HEAD at
 * 64 connections, Talus against a bare node:http server that answers with the
 * same status, headers and body size and does nothing else (the ceiling for
 * a Node HTTP server on this machine). wrk drives both through presigned
 * URLs, so the load generator is native and signing costs the client nothing.
 * Ratios, not absolute numbers, are the result. Run:
 *   node --import tsx bench/small-objects.ts [seconds]
 */
import { CreateBucketCommand, GetObjectCommand, HeadObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { startTalus } from '../src/talus.ts';
import { silentLogger } from '../src/util/logger.ts';
import { makeClient } from '../test/helpers/talus.ts';

const run = promisify(execFile);
const seconds = Number(process.argv[2] ?? 5);
const CONNECTIONS = 64;
const OBJECT = randomBytes(4096);

interface WrkResult {
  requestsPerSecond: number;
  latencyP50Ms: number;
  latencyP99Ms: number;
  errors: number;
}

async function wrk(url: string, method: 'GET' | 'HEAD'): Promise<WrkResult> {
  const script = join(tmpdir(), `talus-wrk-${method}.lua`);
  await import('node:fs/promises').then((fs) => fs.writeFile(script, `wrk.method = "${method}"\n`));
  const { stdout } = await run('wrk', ['-t2', `-c${CONNECTIONS}`, `-d${seconds}s`, '--latency', '-s', script, url], { maxBuffer: 1 << 20 });
  const number = (pattern: RegExp): number => Number(pattern.exec(stdout)?.[1] ?? NaN);
  const latency = (label: string): number => {
    const match = new RegExp(`${label}%\\s+([\\d.]+)(us|ms|s)`).exec(stdout);
    if (match === null) return NaN;
    const value = Number(match[1]);
    return match[2] === 'us' ? value / 1000 : match[2] === 's' ? value * 1000 : value;
  };
  const errors = number(/Non-2xx or 3xx responses: (\d+)/) || 0;
  return { requestsPerSecond: number(/Requests\/sec:\s+([\d.]+)/), latencyP50Ms: latency('50'), latencyP99Ms: latency('99'), errors };
}

/** A bare server answering like Talus does for a 4 KiB GET/HEAD, and nothing more. */
async function startBareServer(headers: Record<string, string>): Promise<{ url: string; close(): Promise<void> }> {
  const server = createServer((request, response) => {
    response.writeHead(200, headers);
    response.end(request.method === 'HEAD' ? undefined : OBJECT);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/bucket/key`,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

const dataDir = await mkdtemp(join(tmpdir(), 'talus-bench-'));
const talus = await startTalus({ dataDir, port: 0, address: '127.0.0.1', logger: silentLogger, rootAccessKeyId: 'BENCHKEY', rootSecretAccessKey: 'bench-secret-0123456789' });
const client = makeClient(talus.url, { accessKeyId: 'BENCHKEY', secretAccessKey: 'bench-secret-0123456789' });
await client.send(new CreateBucketCommand({ Bucket: 'bench' }));
await client.send(new PutObjectCommand({ Bucket: 'bench', Key: 'object-4k', Body: OBJECT }));
const getUrl = await getSignedUrl(client, new GetObjectCommand({ Bucket: 'bench', Key: 'object-4k' }), { expiresIn: 3600 });
const headUrl = await getSignedUrl(client, new HeadObjectCommand({ Bucket: 'bench', Key: 'object-4k' }), { expiresIn: 3600 });
const sample = await fetch(getUrl);
await sample.arrayBuffer();
const sameHeaders: Record<string, string> = {};
for (const name of ['content-type', 'content-length', 'etag', 'last-modified', 'accept-ranges', 'x-amz-request-id', 'x-amz-id-2', 'server']) {
  const value = sample.headers.get(name);
  if (value !== null) sameHeaders[name] = value;
}
const bare = await startBareServer(sameHeaders);

const rows: [string, WrkResult, WrkResult][] = [];
rows.push(['GET 4 KiB', await wrk(getUrl, 'GET'), await wrk(bare.url, 'GET')]);
// wrk 4.1 cannot parse HEAD responses (it waits for the announced body), so HEAD is left to `talus bench`.
void headUrl;

console.log(`workload     talus ops/s  p50 ms  p99 ms  errors | bare ops/s  p50 ms  p99 ms | talus/bare   (${CONNECTIONS} connections, ${seconds} s each, wrk -t2)`);
for (const [name, ours, ceiling] of rows) {
  console.log(
    `${name.padEnd(12)} ${ours.requestsPerSecond.toFixed(0).padStart(11)} ${ours.latencyP50Ms.toFixed(2).padStart(7)} ${ours.latencyP99Ms.toFixed(2).padStart(7)} ${String(ours.errors).padStart(7)} | ${ceiling.requestsPerSecond.toFixed(0).padStart(10)} ${ceiling.latencyP50Ms.toFixed(2).padStart(7)} ${ceiling.latencyP99Ms.toFixed(2).padStart(7)} | ${(ours.requestsPerSecond / ceiling.requestsPerSecond * 100).toFixed(1).padStart(9)} %`,
  );
}
client.destroy();
await bare.close();
await talus.close();
await rm(dataDir, { recursive: true, force: true });
