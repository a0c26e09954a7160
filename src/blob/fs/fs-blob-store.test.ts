/**
 * The local-directory blob store: writes gathered into batches and written
 * several at a time must land byte-exact at their offsets, whatever the
 * chunk sizes; an aborted blob leaves no file.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { FsBlobStore } from './fs-blob-store.ts';

const sha256 = (data: Uint8Array): string => createHash('sha256').update(data).digest('hex');

async function readAll(store: FsBlobStore, id: string, start: number, end: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of await store.read(id, start, end)) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

test('chunks of every size, many more than one writev takes, come back byte-exact', async () => {
  const root = await mkdtemp(join(tmpdir(), 'talus-blobs-'));
  try {
    const store = await FsBlobStore.open(root);
    const chunks: Buffer[] = [];
    // 1-byte chunks (more than a writev's buffer limit in one batch), then
    // chunks straddling the batch size, then an odd tail.
    for (let i = 0; i < 1500; i++) chunks.push(randomBytes(1));
    for (const size of [700 * 1024, 700 * 1024, 3 * 1024 * 1024 + 5, 17, 9 * 1024 * 1024, 1]) chunks.push(randomBytes(size));
    const writer = store.create();
    for (const chunk of chunks) await writer.write(chunk);
    const whole = Buffer.concat(chunks);
    assert.equal(await writer.commit(), whole.length);
    assert.equal(sha256(await readAll(store, writer.id, 0, whole.length)), sha256(whole));
    assert.deepEqual(await readAll(store, writer.id, 1499, 1510), whole.subarray(1499, 1510));
  } finally {
    await rm(root, { recursive: true, force: true });
  }
});

test('an aborted blob leaves no file, even with writes in flight', async () => {
  const root = await mkdtemp(join(tmpdir(), 'talus-blobs-'));
  try {
    const store = await FsBlobStore.open(root);
    const writer = store.create();
    for (let i = 0; i < 5; i++) await writer.write(randomBytes(1024 * 1024));
    await writer.abort();
    const ids: string[] = [];
    for await (const id of store.list()) ids.push(id);
    assert.deepEqual(ids, []);
    assert.equal((await readdir(join(root, writer.id.slice(-2)))).length, 0);
  } finally {
    await rm(root, { recursive: true, force: true });
  }
});
