import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { test } from 'node:test';
import { gatherBody } from './gather-body.ts';

test('gatherBody joins the chunks of a body into one buffer of its declared length', async () => {
  const stream = new PassThrough();
  const gathered = gatherBody(stream, 6);
  stream.write(Buffer.from('abc'));
  stream.end(Buffer.from('def'));
  const bytes = await gathered;
  assert.equal(bytes.toString(), 'abcdef');
  assert.equal(bytes.length, 6);
});

test('gatherBody returns a shorter or longer body as it came: the caller judges its size', async () => {
  const short = new PassThrough();
  const shortGathered = gatherBody(short, 8);
  short.end(Buffer.from('abc'));
  assert.equal((await shortGathered).toString(), 'abc');
  const long = new PassThrough();
  const longGathered = gatherBody(long, 2);
  long.write(Buffer.from('ab'));
  long.end(Buffer.from('cd'));
  assert.equal((await longGathered).toString(), 'abcd');
});

test('gatherBody fails with the stream\'s error, also when it failed before', async () => {
  const failing = new PassThrough();
  const gathered = gatherBody(failing, 4);
  failing.write(Buffer.from('ab'));
  failing.destroy(new Error('boom'));
  await assert.rejects(gathered, /boom/);
  const failed = new PassThrough();
  failed.on('error', () => undefined);
  failed.destroy(new Error('earlier'));
  await assert.rejects(gatherBody(failed, 4), /earlier/);
});

test('gatherBody answers IncompleteBody for a stream that closes before its end', async () => {
  const closing = new PassThrough();
  const gathered = gatherBody(closing, 4);
  closing.write(Buffer.from('ab'));
  closing.destroy();
  await assert.rejects(gathered, (error: Error & { code?: string }) => error.code === 'IncompleteBody');
  const closed = new PassThrough();
  closed.destroy();
  await assert.rejects(gatherBody(closed, 4), (error: Error & { code?: string }) => error.code === 'IncompleteBody');
});
