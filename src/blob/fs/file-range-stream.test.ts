/**
 * FileRangeStream: the bytes of a file range, as a Readable and through
 * pipeInto's reused buffers, with destinations that hold each chunk until
 * they acknowledge it (as a socket does), stop early, or meet a short file.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { openSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { after, before, test } from 'node:test';
import { FILE_READ_CHUNK_BYTES, FileRangeStream } from './file-range-stream.ts';

let directory: string;
before(async () => {
  directory = await mkdtemp(join(tmpdir(), 'talus-file-range-'));
});
after(async () => {
  await rm(directory, { recursive: true, force: true });
});

async function fileWith(name: string, data: Buffer): Promise<number> {
  const path = join(directory, name);
  await writeFile(path, data);
  return openSync(path, 'r');
}

/**
 * A destination that reads each chunk only when it acknowledges it, after a
 * random delay — as a socket may use a buffer until its write completes — so
 * a buffer reused too early shows up as wrong bytes.
 */
class LateReader extends Writable {
  readonly received: Buffer[] = [];
  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    setTimeout(() => {
      this.received.push(Buffer.from(chunk));
      callback();
    }, Math.floor(Math.random() * 3));
  }
}

test('pipeInto writes exactly the range, also with many at once sharing the buffer pool', async () => {
  const bodies = Array.from({ length: 12 }, (_, i) => randomBytes(3 * FILE_READ_CHUNK_BYTES + i * 7919));
  const ranges = bodies.map((body, i) => [i % 3 === 0 ? 0 : 1000 + i, i % 2 === 0 ? body.length : body.length - 333] as const);
  const destinations = bodies.map(() => new LateReader({ highWaterMark: 1 }));
  await Promise.all(bodies.map(async (body, i) => {
    const fd = await fileWith(`many-${i}`, body);
    const [start, end] = ranges[i]!;
    await new FileRangeStream(fd, start, end).pipeInto(destinations[i]!);
  }));
  for (const [i, body] of bodies.entries()) {
    const [start, end] = ranges[i]!;
    assert.ok(Buffer.concat(destinations[i]!.received).equals(body.subarray(start, end)), `body ${i}`);
    assert.equal(destinations[i]!.writableFinished, true, 'the destination was ended');
  }
});

test('as a Readable it yields the same bytes, and an empty range yields none', async () => {
  const body = randomBytes(2 * FILE_READ_CHUNK_BYTES + 5);
  const chunks: Buffer[] = [];
  for await (const chunk of new FileRangeStream(await fileWith('readable', body), 7, body.length)) chunks.push(chunk as Buffer);
  assert.ok(Buffer.concat(chunks).equals(body.subarray(7)));
  const none: Buffer[] = [];
  for await (const chunk of new FileRangeStream(await fileWith('empty', body), 10, 10)) none.push(chunk as Buffer);
  assert.equal(none.length, 0);
});

test('a destination that closes early makes pipeInto reject and the stream close', async () => {
  const body = randomBytes(8 * FILE_READ_CHUNK_BYTES);
  const stream = new FileRangeStream(await fileWith('early', body), 0, body.length);
  const closed = new Promise<void>((resolve) => stream.once('close', () => resolve()));
  let written = 0;
  const destination = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      written += chunk.length;
      callback();
      if (written >= 2 * FILE_READ_CHUNK_BYTES) destination.destroy();
    },
  });
  await assert.rejects(stream.pipeInto(destination));
  await closed;
  assert.ok(written < body.length);
});

test('a file shorter than its range is an error, not a short body', async () => {
  const body = randomBytes(FILE_READ_CHUNK_BYTES + 10);
  const destination = new LateReader();
  await assert.rejects(new FileRangeStream(await fileWith('short', body), 0, body.length + 100).pipeInto(destination), /ended before its recorded size/);
  const chunks: Buffer[] = [];
  await assert.rejects(async () => {
    for await (const chunk of new FileRangeStream(await fileWith('short-readable', body), 0, body.length + 100)) chunks.push(chunk as Buffer);
  }, /ended before its recorded size/);
});
