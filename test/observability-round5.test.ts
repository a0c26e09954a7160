/**
 * The access log's fifth round (issue 13, docs/PERFORMANCE.md "Metrics and
 * logs, round 5"): a LineEncoder keeps the parts of a line that repeat the
 * line before (since round 12 two runs: the time's second with the route and
 * the caller, and the status and byte counts) as bytes and copies them while
 * their values stay equal, and
 * written batch buffers are reused. Neither may change a byte of the log:
 * these tests drive every kept part through changes and back, and a log
 * through many reused batches of lines of very different lengths. And the
 * admin listener hands node:http string header values only, as the S3
 * front does: a number there (the scrape's Content-Length) deoptimized
 * node's header code shared with every S3 response.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { ServerResponse, type OutgoingHttpHeaders } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { ACCESS_LOG_BATCH_BYTES, ACCESS_LOG_SPARE_BATCHES, AccessLog, LineEncoder, lineBytesMax } from '../src/metrics/access-log.ts';
import type { ObservedRequest } from '../src/metrics/observed-request.ts';
import { expectedLine } from './helpers/access-log-line.ts';
import { startTalus } from '../src/talus.ts';
import { silentLogger } from '../src/util/logger.ts';

function request(overrides: Partial<ObservedRequest> = {}): ObservedRequest {
  return {
    requestId: '3B01A10000124F80', operation: 'GetObject', bucket: 'photos', key: 'small/00000999', status: 200,
    startedMs: 1000.25, headersSentMs: 1000.5, finishedMs: 1001.3754, bytesIn: 0, bytesOut: 4096, errorCode: undefined,
    principal: 'root', accessKeyId: 'AKIAROUND5EXAMPLE', remoteAddress: '127.0.0.1', ...overrides,
  };
}

/** The same string's characters in a new string object (as each request's slices of its URL are). */
function fresh(text: string): string {
  return [...text].join('');
}

test('parts kept from the line before are encoded again as soon as one of their values changes, and kept again', () => {
  const encoder = new LineEncoder();
  // One buffer for the whole sequence, written line after line as a batch is, so a stale byte would show.
  const batch = Buffer.alloc(ACCESS_LOG_BATCH_BYTES, 0xff);
  let at = 0;
  const expected: string[] = [];
  const write = (entry: ObservedRequest, timeMs: number, droppedBefore = 0): void => {
    assert.ok(at + lineBytesMax(entry) <= batch.length);
    const end = encoder.encode(batch, at, entry, droppedBefore, timeMs);
    assert.ok(end - at <= lineBytesMax(entry));
    at = end;
    expected.push(expectedLine(entry, timeMs, droppedBefore));
  };
  const base = Date.UTC(2026, 11, 6, 21, 59, 59, 998);
  const variations: Partial<ObservedRequest>[] = [
    {}, { requestId: 'OTHER-ID' }, { key: fresh('small/00000999') }, { key: 'ключ "quoted"' },
    // The head's route values, each alone: operation, bucket, back, and to strings that need escaping.
    { operation: 'PutObject' }, {}, { bucket: 'photos2' }, { bucket: fresh('photos') }, { bucket: 'ph"otos' }, { operation: 'Get\u0001' }, {},
    // Status, bytes in and out alone; equal values from other computations; large and odd ones.
    { status: 404 }, { status: 200 }, { bytesIn: 7 }, { bytesIn: 0 }, { bytesOut: 4097 }, { bytesOut: 2 * 2048 }, { bytesOut: 2 ** 60 },
    { status: 0, bytesIn: -0, bytesOut: Number.NaN }, { status: 0, bytesIn: 0, bytesOut: Number.NaN }, {},
    // Durations vary on every line and are never kept.
    { finishedMs: 1000.25 }, { finishedMs: 1001.3755 }, { startedMs: 5, finishedMs: 3.6e13 },
    // Principal, address, access key each alone, the same text in a new string, absent, and escaped.
    { principal: 'alice' }, { principal: fresh('root') }, { remoteAddress: '::1' }, { remoteAddress: fresh('127.0.0.1') },
    { accessKeyId: undefined }, { accessKeyId: undefined, principal: 'anonymous' }, { accessKeyId: 'AKIAROUND5EXAMPLE' },
    { accessKeyId: fresh('AKIAROUND5EXAMPLE') }, { remoteAddress: 'lone \ud800' }, { principal: 'x'.repeat(300) }, {},
    // Fields after the request ID and key.
    { errorCode: 'NoSuchKey', status: 404 }, { errorCode: 'AccessDenied', status: 403, accessKeyId: undefined, principal: 'anonymous' }, {},
  ];
  variations.forEach((overrides, index) => {
    // 1 ms a line (across a second once, between the second and third lines), and back in time once (the clock set back).
    const timeMs = index === 20 ? base - 3000 : base + index;
    write(request(overrides), timeMs, index % 9 === 4 ? index : 0);
  });
  // The same sequence again from the other end: every part changes from a different line before.
  [...variations].reverse().forEach((overrides, index) => write(request(overrides), base + 1000 * index + 999));
  const text = batch.subarray(0, at).toString('utf8');
  assert.ok(batch.subarray(at).every((byte) => byte === 0xff), 'nothing written past the last line');
  assert.deepEqual(text.split('\n'), [...expected, '']);
});

test('a new encoder\'s first line is encoded whole, even when its kept parts hold empty strings', () => {
  const empty = request({ operation: '', bucket: '', principal: '', remoteAddress: '', accessKeyId: '' });
  const batch = Buffer.alloc(lineBytesMax(empty) + 1, 0xff);
  const end = new LineEncoder().encode(batch, 0, empty, 0, Date.UTC(2026, 11, 6, 22, 0, 0, 5));
  assert.equal(batch.subarray(0, end).toString('utf8'), `${expectedLine(empty, Date.UTC(2026, 11, 6, 22, 0, 0, 5))}\n`);
});

test('reused batch buffers never let an earlier, longer batch\'s bytes into the file', { timeout: 30_000 }, async () => {
  const directory = await mkdtemp(join(tmpdir(), 'talus-access-log-round5-'));
  const path = join(directory, 'access.log');
  const log = new AccessLog(path);
  try {
    // Batches of long lines, then of short ones, then long again: each buffer is reused several times, for shorter and longer contents.
    const keys: string[] = [];
    const longKey = (n: number): string => `long/${String(n).padStart(6, '0')}/${'k'.repeat(1500)}`;
    const batchesEach = 3 * (ACCESS_LOG_SPARE_BATCHES + 2);
    for (const [kind, perBatch] of [['long', 40], ['short', 300], ['long', 40], ['short', 300]] as const) {
      for (let batch = 0; batch < batchesEach; batch++) {
        for (let line = 0; line < perBatch; line++) {
          const key = kind === 'long' ? longKey(keys.length) : `short/${keys.length}`;
          keys.push(key);
          log.write(request({ key }));
        }
        // The batches written so far come back for reuse.
        await sleep(5);
      }
    }
    await log.close();
    const written = (await readFile(path, 'utf8')).split('\n');
    assert.equal(written.pop(), '', 'the file ends with a newline');
    assert.equal(written.length, keys.length);
    written.forEach((line, index) => assert.equal((JSON.parse(line) as { key: string }).key, keys[index]));
  } finally {
    await log.close();
    await rm(directory, { recursive: true, force: true });
  }
});

test('reused batch buffers never let an earlier batch\'s bytes onto a slow stdout pipe', { timeout: 60_000 }, async () => {
  const directory = await mkdtemp(join(tmpdir(), 'talus-access-log-stdout-'));
  const script = join(directory, 'writer.mts');
  // The child logs to '-' (stdout): long lines, then short ones, again, in batches a few ms apart, so the
  // stream holds several batches at once while this side does not read.
  await writeFile(script, `
    import { setTimeout as sleep } from 'node:timers/promises';
    import { AccessLog } from ${JSON.stringify(pathToFileURL(join(process.cwd(), 'src/metrics/access-log.ts')).href)};
    const log = new AccessLog('-');
    let n = 0;
    for (const [kind, perBatch] of [['long', 40], ['short', 300], ['long', 40], ['short', 300]]) {
      for (let batch = 0; batch < 18; batch++) {
        for (let line = 0; line < perBatch; line++) {
          const key = kind === 'long' ? 'long/' + String(n).padStart(6, '0') + '/' + 'k'.repeat(1500) : 'short/' + n;
          n++;
          log.write({ requestId: 'R', operation: 'GetObject', bucket: 'b', key, status: 200, startedMs: 1, headersSentMs: 1, finishedMs: 2,
            bytesIn: 0, bytesOut: 1, errorCode: undefined, principal: 'root', accessKeyId: undefined, remoteAddress: '127.0.0.1' });
        }
        await sleep(5);
      }
    }
    await log.close();
  `);
  try {
    const child = spawn(process.execPath, ['--import', 'tsx', script], { cwd: process.cwd(), stdio: ['ignore', 'pipe', 'inherit'] });
    child.stdout.pause();
    await sleep(1500);
    const chunks: Buffer[] = [];
    child.stdout.on('data', (chunk: Buffer) => {
      chunks.push(chunk);
      // Read slowly: a pause after each chunk keeps the pipe full.
      child.stdout.pause();
      setTimeout(() => child.stdout.resume(), 2);
    });
    child.stdout.resume();
    const [code] = (await once(child, 'close')) as [number];
    assert.equal(code, 0);
    const lines = Buffer.concat(chunks).toString('utf8').split('\n');
    assert.equal(lines.pop(), '');
    const expectedKeys: string[] = [];
    let n = 0;
    for (const [kind, perBatch] of [['long', 40], ['short', 300], ['long', 40], ['short', 300]] as const) {
      for (let batch = 0; batch < 18; batch++) {
        for (let line = 0; line < perBatch; line++, n++) expectedKeys.push(kind === 'long' ? `long/${String(n).padStart(6, '0')}/${'k'.repeat(1500)}` : `short/${n}`);
      }
    }
    assert.equal(lines.length, expectedKeys.length);
    lines.forEach((line, index) => assert.equal((JSON.parse(line) as { key: string }).key, expectedKeys[index]));
  } finally {
    await rm(directory, { recursive: true, force: true });
  }
});

test('the admin listener, the console and S3 error answers give node:http string header values only (metrics, health, OpenAPI, console, errors)', { timeout: 60_000 }, async () => {
  const dataDir = await mkdtemp(join(tmpdir(), 'talus-round5-'));
  const token = 'metrics-token-for-round5-0123456789';
  const talus = await startTalus({ dataDir, port: 0, logger: silentLogger, admin: { port: 0, address: '127.0.0.1' }, metrics: { token } });
  // Every header value any response of this process hands writeHead, by header name.
  const numbers: string[] = [];
  const writeHead = ServerResponse.prototype.writeHead;
  ServerResponse.prototype.writeHead = function (this: ServerResponse, status: number, ...rest: unknown[]) {
    const headers = rest.find((argument): argument is OutgoingHttpHeaders => typeof argument === 'object' && argument !== null && !Array.isArray(argument));
    for (const [name, value] of Object.entries(headers ?? {})) if (typeof value === 'number') numbers.push(`${this.req?.url ?? '?'}: ${name}`);
    return (writeHead as (...args: unknown[]) => ServerResponse).call(this, status, ...rest);
  } as typeof writeHead;
  const setHeader = ServerResponse.prototype.setHeader;
  ServerResponse.prototype.setHeader = function (this: ServerResponse, name: string, value: number | string | readonly string[]) {
    if (typeof value === 'number') numbers.push(`${this.req?.url ?? '?'}: ${name}`);
    return setHeader.call(this, name, value);
  } as typeof setHeader;
  try {
    const admin = talus.adminUrl!;
    const metrics = await fetch(`${admin}/metrics`, { headers: { authorization: `Bearer ${token}` } });
    assert.equal(metrics.status, 200);
    assert.match(await metrics.text(), /talus_s3_requests_total|talus_build_info/);
    assert.equal(Number(metrics.headers.get('content-length')) > 0, true);
    for (const path of ['/health/live', '/health/ready', '/talus/admin/v1/openapi.json', '/no-such-path']) await (await fetch(`${admin}${path}`)).arrayBuffer();
    assert.equal((await fetch(`${admin}/metrics`, { headers: { authorization: 'Bearer wrong' } })).status, 403);
    // The console on the same listener (its redirect, a page, a refused API call), and an S3 error answer with a body.
    assert.equal((await fetch(`${admin}/console`, { redirect: 'manual' })).status, 302);
    const page = await fetch(`${admin}/console/`);
    assert.equal(page.status, 200);
    await page.arrayBuffer();
    await (await fetch(`${admin}/console/api/session`)).arrayBuffer();
    const denied = await fetch(`${talus.url}/some-bucket/some-key`);
    assert.equal(denied.status, 404);
    assert.match(await denied.text(), /<Code>NoSuchBucket<\/Code>/);
    assert.deepEqual(numbers, []);
  } finally {
    ServerResponse.prototype.writeHead = writeHead;
    ServerResponse.prototype.setHeader = setHeader;
    await talus.close();
    await rm(dataDir, { recursive: true, force: true });
  }
});
