/**
 * The access log's cheaper path (src/metrics/access-log.ts): files written
 * with fs.write on their descriptor instead of a fs.WriteStream, and lines
 * encoded ACCESS_LOG_ENCODE_LINES at a time instead of one per request.
 * What that must not change, and what it changes on purpose: a log that
 * cannot be opened fails at once (a WriteStream failed later, with an
 * 'error' nobody listened to, which ends the process); a disk that refuses
 * the writes loses lines, counted, without ending the process; a line kept
 * for later still carries the time of its request, and reaches the file
 * within ACCESS_LOG_FLUSH_MS.
 */
import assert from 'node:assert/strict';
import { closeSync, existsSync, openSync, readFileSync, writeSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { ACCESS_LOG_ENCODE_LINES, ACCESS_LOG_FLUSH_MS, AccessLog } from '../src/metrics/access-log.ts';
import type { ObservedRequest } from '../src/metrics/observed-request.ts';

function request(key: string): ObservedRequest {
  return {
    requestId: `REQ-${key}`, operation: 'GetObject', bucket: 'photos', key, status: 200,
    startedMs: 10, headersSentMs: 10.5, finishedMs: 11.25, bytesIn: 0, bytesOut: 4096, errorCode: undefined,
    principal: 'root', accessKeyId: 'AKIAEXAMPLE', remoteAddress: '127.0.0.1',
  };
}

test('a log that cannot be opened fails at once; a disk that refuses every write loses lines but not the process', async () => {
  const directory = await mkdtemp(join(tmpdir(), 'talus-access-log-'));
  try {
    assert.throws(() => new AccessLog(join(directory, 'no-such-directory', 'access.log')), { code: 'ENOENT' });
  } finally {
    await rm(directory, { recursive: true, force: true });
  }
  // /dev/full answers every write with ENOSPC.
  if (!existsSync('/dev/full')) return;
  const log = new AccessLog('/dev/full');
  for (let line = 0; line < 3 * ACCESS_LOG_ENCODE_LINES + 5; line++) log.write(request(`k${line}`));
  await sleep(ACCESS_LOG_FLUSH_MS * 3);
  for (let line = 0; line < 10; line++) log.write(request(`late${line}`));
  await log.close();
});

test('lines kept for encoding carry their request\'s time, keep their order, and reach the file within the flush interval', { timeout: 30_000 }, async () => {
  const directory = await mkdtemp(join(tmpdir(), 'talus-access-log-'));
  const path = join(directory, 'access.log');
  const log = new AccessLog(path);
  try {
    const written: { key: string; afterMs: number; beforeMs: number }[] = [];
    // Fewer than a group: only the flush timer writes them.
    for (let line = 0; line < 3; line++) {
      const afterMs = Date.now();
      const key = `small/${line}`;
      log.write(request(key));
      written.push({ key, afterMs, beforeMs: Date.now() });
      await sleep(30);
    }
    await sleep(ACCESS_LOG_FLUSH_MS * 4);
    const early = (await readFile(path, 'utf8')).trim().split('\n').map((line) => JSON.parse(line) as { key: string; time: string });
    assert.deepEqual(early.map((line) => line.key), written.map((entry) => entry.key));
    early.forEach((line, index) => {
      const timeMs = Date.parse(line.time);
      assert.ok(timeMs >= written[index]!.afterMs && timeMs <= written[index]!.beforeMs, `${line.time} is the time of request ${index}'s write`);
    });
    // Several groups and batches: every line once, in order.
    const many = 5 * ACCESS_LOG_ENCODE_LINES + 7;
    for (let line = 0; line < many; line++) log.write(request(`many/${line}`));
    await log.close();
    const all = (await readFile(path, 'utf8')).trim().split('\n').map((line) => (JSON.parse(line) as { key: string }).key);
    assert.deepEqual(all, [...written.map((entry) => entry.key), ...Array.from({ length: many }, (_, line) => `many/${line}`)]);
  } finally {
    await log.close();
    await rm(directory, { recursive: true, force: true });
  }
});

/** A handler that outlives the shutdown writes its line after close(): it must go nowhere, not into whatever file got the log's descriptor. */
test('a line written after close never lands in the file that reuses its descriptor (review finding)', async () => {
  const directory = await mkdtemp(join(tmpdir(), 'rev-al-'));
  const log = new AccessLog(join(directory, 'access.log'));
  await log.close();
  // Another part of the process opens a file: it gets the descriptor the log closed.
  const other = openSync(join(directory, 'other.db'), 'w+');
  writeSync(other, 'DATABASE-CONTENT');
  // A request that finished after shutdown began (the handler's finally ran late).
  log.write({ requestId: 'R', operation: 'PutObject', bucket: 'b', key: 'late', status: 500, startedMs: 0, headersSentMs: 0, finishedMs: 1, bytesIn: 0, bytesOut: 0, errorCode: 'InternalError', principal: 'root', accessKeyId: undefined, remoteAddress: '127.0.0.1' });
  await sleep(300);
  closeSync(other);
  const content = readFileSync(join(directory, 'other.db'), 'utf8');
  assert.equal(content, 'DATABASE-CONTENT');
});
