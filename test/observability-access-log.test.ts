/**
 * The access log's lines are written by hand, byte by byte into the batch
 * (src/metrics/access-log.ts: encodeLine, and formatLine for the rare line
 * too long for a batch), instead of by JSON.stringify of an entry object:
 * these tests hold both to exactly the text JSON.stringify gives
 * for the documented fields (docs/ADMIN.md), whatever the strings hold, and
 * check that a real server's log stays whole, one line per request, across
 * batches with multi-byte keys.
 */
import { GetObjectCommand, PutObjectCommand, CreateBucketCommand } from '@aws-sdk/client-s3';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { mock, test } from 'node:test';
import { ACCESS_LOG_BATCH_BYTES, encodeLine, formatLine, lineBytesMax } from '../src/metrics/access-log.ts';
import type { ObservedRequest } from '../src/metrics/observed-request.ts';
import { startTalus } from '../src/talus.ts';
import { newRequestId, nextRequestNumber, putRequestId, requestIdOf } from '../src/util/ids.ts';
import { silentLogger } from '../src/util/logger.ts';
import { expectedLine } from './helpers/access-log-line.ts';
import { PROJECT_ROOT } from './helpers/process.ts';
import { ACCESS_KEY_ID, SECRET_ACCESS_KEY, makeClient } from './helpers/talus.ts';

function request(overrides: Partial<ObservedRequest> = {}): ObservedRequest {
  return {
    requestId: '3B01A10000124F80', operation: 'GetObject', bucket: 'photos', key: 'small/00000999', status: 200,
    startedMs: 1000.25, headersSentMs: 1000.5, finishedMs: 1001.3754, bytesIn: 0, bytesOut: 4096, errorCode: undefined,
    principal: 'root', accessKeyId: ACCESS_KEY_ID, remoteAddress: '127.0.0.1', ...overrides,
  };
}

/** encodeLine's bytes as text, checked to end with the newline and to stay within lineBytesMax; without the newline. */
function encoded(entry: ObservedRequest, droppedBefore = 0): string {
  const room = lineBytesMax(entry);
  const target = Buffer.alloc(room + 16, 0xff);
  const end = encodeLine(target, 8, entry, droppedBefore);
  assert.ok(end - 8 <= room, `${end - 8} bytes within ${room}`);
  assert.ok(target.subarray(end).every((byte) => byte === 0xff) && target.subarray(0, 8).every((byte) => byte === 0xff), 'nothing written outside the line');
  const text = target.subarray(8, end).toString('utf8');
  assert.ok(text.endsWith('\n'));
  return text.slice(0, -1);
}

/** Both ways of writing a line. */
function lines(entry: ObservedRequest, droppedBefore = 0): string[] {
  return [formatLine(entry, droppedBefore), encoded(entry, droppedBefore)];
}

test('a line is exactly JSON.stringify of its documented fields, whatever the strings hold', () => {
  const nowMs = Date.UTC(2026, 11, 6, 15, 47, 29, 652);
  mock.timers.enable({ apis: ['Date'], now: nowMs });
  try {
    const strings = [
      '', 'plain/key.txt', 'quote"inside', 'back\\slash', 'tab\tand\nnewline\r', '\u0000\u0001\u001f\u007f', 'ünïcödé/ключ/鍵',
      'emoji 😀 pair', 'lone \ud800 high', 'lone \udc00 low', '</script><script>alert(1)</script>', '{"json":"inside"}', 'x'.repeat(1024),
    ];
    for (const text of strings) {
      for (const entry of [
        request({ key: text }), request({ bucket: text }), request({ principal: text }), request({ requestId: text }),
        request({ remoteAddress: text }), request({ accessKeyId: text }), request({ errorCode: text, status: 403 }),
      ]) {
        for (const line of lines(entry)) assert.equal(line, expectedLine(entry, nowMs), `for ${JSON.stringify(text)}`);
      }
    }
    // Optional fields: no access key (anonymous), an error code, dropped lines before this one.
    for (const entry of [request({ accessKeyId: undefined, principal: 'anonymous' }), request({ errorCode: 'NoSuchKey', status: 404 })]) {
      for (const line of lines(entry)) assert.equal(line, expectedLine(entry, nowMs));
    }
    for (const line of lines(request(), 17)) assert.equal(line, expectedLine(request(), nowMs, 17));
    // Numbers as JSON writes them: fractions, zero, large byte counts; no NaN or Infinity (JSON has neither).
    const numbers = [
      request({ startedMs: 5, finishedMs: 5 }), request({ startedMs: 0.1, finishedMs: 0.3 }), request({ bytesOut: 5 * 2 ** 40, bytesIn: 2 ** 53 - 1 }),
      request({ finishedMs: Number.NaN }), request({ finishedMs: Number.POSITIVE_INFINITY }), request({ startedMs: 10, finishedMs: 9.5 }),
      request({ status: 0, bytesIn: 10, bytesOut: 100_000 }), request({ startedMs: 0, finishedMs: 3.6e13 }), request({ bytesOut: 2 ** 60 }),
    ];
    // Durations across the range a server sees: every microsecond of the first 20 ms, then spread up to hours.
    for (let microseconds = 0; microseconds < 20_000; microseconds++) numbers.push(request({ startedMs: 1000, finishedMs: 1000 + microseconds / 1000 }));
    for (let step = 0; step < 2000; step++) numbers.push(request({ startedMs: 123.4567, finishedMs: 123.4567 + 1.37 ** (step / 40) }));
    for (const entry of numbers) for (const line of lines(entry)) assert.equal(line, expectedLine(entry, nowMs));
  } finally {
    mock.timers.reset();
  }
});

test('a request ID written from its number is the ID made from that number, over the whole range of the counter', () => {
  const nowMs = Date.UTC(2026, 11, 7, 22, 40, 1, 5);
  mock.timers.enable({ apis: ['Date'], now: nowMs });
  try {
    const limit = 16 ** 10;
    const numbers = [0, 1, 9, 10, 15, 16, 255, 0xfffff, 0x100000, 0x100001, 0xabcdef1234, 0xfffff00000, limit - 1];
    for (let index = 0; index < 10_000; index++) numbers.push(Math.floor(Math.random() * limit));
    for (const number of numbers) {
      const entry = request({ requestId: requestIdOf(number), requestNumber: number });
      assert.match(entry.requestId, /^[0-9A-F]{16}$/);
      for (const line of lines(entry)) assert.equal(line, expectedLine(entry, nowMs), `request number ${number}`);
      const target = Buffer.alloc(20, 0xff);
      assert.equal(putRequestId(target, 2, number), 18);
      assert.equal(target.toString('latin1', 2, 18), entry.requestId);
      assert.ok(target[1] === 0xff && target[18] === 0xff, 'nothing written outside the ID');
    }
    // Numbers come one after the other, and each ID is made from its number.
    const first = nextRequestNumber();
    assert.equal(nextRequestNumber(), first + 1);
    assert.equal(newRequestId(), requestIdOf(first + 2));
    for (const wrong of [-1, 0.5, limit, Number.NaN]) assert.throws(() => putRequestId(Buffer.alloc(20), 0, wrong), /not a request number/);
  } finally {
    mock.timers.reset();
  }
});

test('the time is the ISO time of the write, across milliseconds, seconds, days and years', () => {
  const starts = [Date.UTC(2026, 11, 6, 15, 47, 29, 998), Date.UTC(2026, 11, 31, 23, 59, 59, 990), Date.UTC(2027, 0, 1, 0, 0, 0, 0), Date.UTC(1999, 11, 31, 23, 59, 59, 995)];
  for (const startMs of starts) {
    mock.timers.enable({ apis: ['Date'], now: startMs });
    try {
      for (let step = 0; step < 25; step++) {
        const nowMs = startMs + step;
        for (const line of [...lines(request()), ...lines(request())]) assert.equal((JSON.parse(line) as { time: string }).time, new Date(nowMs).toISOString());
        mock.timers.tick(1);
      }
      // Back in time (the clock was set back): still the clock's time, not the last one formatted.
      mock.timers.setTime(startMs - 1500);
      for (const line of lines(request())) assert.equal((JSON.parse(line) as { time: string }).time, new Date(startMs - 1500).toISOString());
    } finally {
      mock.timers.reset();
    }
  }
});

test('a real server logs one whole line per request across several batches, multi-byte keys intact', { timeout: 60_000 }, async () => {
  const dataDir = await mkdtemp(join(tmpdir(), 'talus-observability-'));
  const accessLog = join(dataDir, 'access.log');
  const talus = await startTalus({
    dataDir, port: 0, address: '127.0.0.1', rootAccessKeyId: ACCESS_KEY_ID, rootSecretAccessKey: SECRET_ACCESS_KEY, logger: silentLogger, accessLog,
  });
  // Long keys with 2-, 3- and 4-byte characters, so the requests fill several batches and lines end near their edges.
  const keys = Array.from({ length: 60 }, (_, index) => `ключ-${index}/quote"back\\slash/鍵😀/${'é'.repeat(index * 7)}`);
  const client = makeClient(talus.url);
  let requests = 0;
  /** The x-amz-request-id of each GET, as the client got it. */
  const requestIds: (string | undefined)[] = [];
  try {
    await client.send(new CreateBucketCommand({ Bucket: 'logged' }));
    requests++;
    for (const key of keys) {
      await client.send(new PutObjectCommand({ Bucket: 'logged', Key: key, Body: key }));
      requests++;
    }
    for (let round = 0; round < 4; round++) {
      for (const key of keys) {
        const got = await client.send(new GetObjectCommand({ Bucket: 'logged', Key: key }));
        assert.equal(await got.Body!.transformToString(), key);
        requestIds.push(got.$metadata.requestId);
        requests++;
      }
    }
  } finally {
    client.destroy();
    await talus.close();
  }
  try {
    const bytes = await readFile(accessLog);
    assert.ok(bytes.length > 2 * ACCESS_LOG_BATCH_BYTES, `${bytes.length} bytes: more than two batches`);
    const text = bytes.toString('utf8');
    assert.ok(!text.includes('\ufffd'), 'no character cut in two');
    assert.ok(text.endsWith('\n'));
    const lines = text.slice(0, -1).split('\n').map((line) => JSON.parse(line) as Record<string, unknown>);
    assert.equal(lines.length, requests, 'one line per request');
    const gets = lines.filter((line) => line['operation'] === 'GetObject');
    assert.deepEqual(gets.map((line) => line['key']), [...keys, ...keys, ...keys, ...keys], 'every key as sent, in order');
    // Written from the request's number (putRequestId), each is the ID the response carried.
    assert.deepEqual(gets.map((line) => line['requestId']), requestIds);
    assert.ok(requestIds.every((id) => id !== undefined && /^[0-9A-F]{16}$/.test(id)));
    for (const line of gets) {
      assert.deepEqual(
        { bucket: line['bucket'], status: line['status'], principal: line['principal'], accessKeyId: line['accessKeyId'], remoteAddress: line['remoteAddress'] },
        { bucket: 'logged', status: 200, principal: 'root', accessKeyId: ACCESS_KEY_ID, remoteAddress: '127.0.0.1' },
      );
      assert.equal(line['bytesOut'], Buffer.byteLength(line['key'] as string));
      assert.equal(new Date(line['time'] as string).toISOString(), line['time']);
    }
    assert.ok(!text.includes(SECRET_ACCESS_KEY));
    // docs/ADMIN.md's example line has a GET's fields, in the order the server writes them.
    const example = /`--access-log FILE`[\s\S]*?```json\n(.*)\n```/.exec(await readFile(join(PROJECT_ROOT, 'docs', 'ADMIN.md'), 'utf8'))?.[1];
    assert.ok(example !== undefined, 'docs/ADMIN.md shows an access log line');
    assert.deepEqual(Object.keys(JSON.parse(example) as object), Object.keys(gets[0]!));
    assert.deepEqual(Object.keys(gets[0]!), ['time', 'operation', 'bucket', 'principal', 'remoteAddress', 'accessKeyId', 'status', 'bytesIn', 'bytesOut', 'requestId', 'key', 'durationMs']);
  } finally {
    await rm(dataDir, { recursive: true, force: true });
  }
});
