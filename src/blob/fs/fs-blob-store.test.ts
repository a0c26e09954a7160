/**
 * The local-directory blob store: writes gathered into batches and written
 * several at a time must land byte-exact at their offsets, whatever the
 * chunk sizes; an aborted blob leaves no file; all writers together hold
 * no more than the store's write budget, and a stalled writer's bytes never
 * stop the others.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { ByteBudget } from '../../util/byte-budget.ts';
import { FsBlobStore } from './fs-blob-store.ts';

const sha256 = (data: Uint8Array): string => createHash('sha256').update(data).digest('hex');

async function readAll(store: FsBlobStore, id: string, start: number, end: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of await store.read({ blobId: id }, start, end)) chunks.push(chunk as Buffer);
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

test('twenty concurrent writers stay within a write budget smaller than one batch', async () => {
  const root = await mkdtemp(join(tmpdir(), 'talus-blobs-'));
  try {
    const budget = new ByteBudget(512 * 1024);
    const store = await FsBlobStore.open(root, { writeBudget: budget });
    let heldMax = 0;
    const bodies = Array.from({ length: 20 }, () => randomBytes(3 * 1024 * 1024 + 4321));
    const ids = await Promise.all(
      bodies.map(async (body) => {
        const writer = store.create();
        for (let at = 0; at < body.length; at += 64 * 1024) {
          await writer.write(body.subarray(at, at + 64 * 1024));
          heldMax = Math.max(heldMax, budget.heldBytes);
        }
        assert.equal(await writer.commit(), body.length);
        return writer.id;
      }),
    );
    assert.ok(heldMax <= budget.capacityBytes, `held ${heldMax} bytes`);
    assert.ok(heldMax > 0);
    assert.equal(budget.heldBytes, 0, 'every byte released once written');
    for (const [i, id] of ids.entries()) assert.equal(sha256(await readAll(store, id, 0, bodies[i]!.length)), sha256(bodies[i]!));
  } finally {
    await rm(root, { recursive: true, force: true });
  }
});

test('a stalled writer holding part of a batch is made to write it when another writer waits', async () => {
  const root = await mkdtemp(join(tmpdir(), 'talus-blobs-'));
  try {
    const budget = new ByteBudget(256 * 1024);
    const store = await FsBlobStore.open(root, { writeBudget: budget });
    const stalled = store.create();
    const early = randomBytes(200 * 1024);
    await stalled.write(early); // gathered, far below a batch: without pressure it would sit there
    assert.equal(budget.heldBytes, early.length);
    const other = store.create();
    const body = randomBytes(1024 * 1024);
    const done = (async () => {
      for (let at = 0; at < body.length; at += 64 * 1024) await other.write(body.subarray(at, at + 64 * 1024));
      return other.commit();
    })();
    const outcome = await Promise.race([done, new Promise((resolve) => setTimeout(resolve, 5_000, 'stuck'))]);
    assert.equal(outcome, body.length);
    assert.equal(sha256(await readAll(store, other.id, 0, body.length)), sha256(body));
    // The stalled writer is intact: its early bytes were written, and it goes on.
    const rest = randomBytes(5000);
    await stalled.write(rest);
    await stalled.commit();
    assert.equal(sha256(await readAll(store, stalled.id, 0, early.length + rest.length)), sha256(Buffer.concat([early, rest])));
    assert.equal(budget.heldBytes, 0);
  } finally {
    await rm(root, { recursive: true, force: true });
  }
});

test('an aborted writer gives its gathered bytes back, also while it waits for the budget', async () => {
  const root = await mkdtemp(join(tmpdir(), 'talus-blobs-'));
  try {
    const budget = new ByteBudget(128 * 1024);
    const store = await FsBlobStore.open(root, { writeBudget: budget });
    const writer = store.create();
    await writer.write(randomBytes(100 * 1024));
    await writer.abort();
    assert.equal(budget.heldBytes, 0);
    // Someone else holds the whole budget; a writer waiting for it is aborted.
    await budget.acquire(128 * 1024);
    const waiting = store.create();
    const write = waiting.write(randomBytes(1024));
    await waiting.abort();
    budget.release(128 * 1024);
    await write;
    assert.equal(budget.heldBytes, 0);
  } finally {
    await rm(root, { recursive: true, force: true });
  }
});
