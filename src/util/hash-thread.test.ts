/**
 * Hashes computed on the worker thread equal node:crypto's over the same
 * bytes, however the body is cut into chunks, with many bodies at once, and
 * after bodies are discarded half-way.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { test } from 'node:test';
import { ByteBudget } from './byte-budget.ts';
import { BATCH_BYTES, createStreamHash, INLINE_BELOW_BYTES, UNACKED_BYTES_MAX, type ThreadHashAlgorithm } from './hash-thread.ts';

const MiB = 1024 * 1024;

async function hashInChunks(algorithm: ThreadHashAlgorithm, data: Buffer, chunkSizes: readonly number[]): Promise<{ digest: Buffer; waits: number }> {
  const hash = createStreamHash(algorithm, data.length);
  let offset = 0;
  let waits = 0;
  for (let i = 0; offset < data.length; i++) {
    const size = Math.min(chunkSizes[i % chunkSizes.length]!, data.length - offset);
    const pending = hash.update(data.subarray(offset, offset + size));
    if (pending !== undefined) {
      waits++;
      await pending;
    }
    offset += size;
  }
  return { digest: await hash.digest(), waits };
}

test('thread digests equal node:crypto for md5, sha1 and sha256 over odd chunkings', async () => {
  const data = randomBytes(5 * MiB + 12_345);
  const chunkings: number[][] = [[1], [65_536], [MiB], [MiB - 1, 2], [3 * MiB], [7, 64 * 1024 + 3, 1000, 2 * MiB + 1], [0, 4096]];
  for (const algorithm of ['md5', 'sha1', 'sha256'] as const) {
    const expected = createHash(algorithm).update(data).digest();
    for (const chunking of chunkings) {
      // A 1-byte chunking of 5 MiB would take long: use a shorter body for it.
      const body = chunking[0] === 1 ? data.subarray(0, INLINE_BELOW_BYTES + 3000) : data;
      const want = chunking[0] === 1 ? createHash(algorithm).update(body).digest() : expected;
      const { digest } = await hashInChunks(algorithm, body, chunking.map((size) => (size === 0 ? 1 : size)));
      assert.ok(digest.equals(want), `${algorithm} with chunks ${chunking.join(',')}`);
    }
  }
});

test('short and unknown-length bodies hash inline, with the same result', async () => {
  for (const declared of [undefined, 0, 10, INLINE_BELOW_BYTES - 1]) {
    const data = randomBytes(declared ?? 3000);
    const hash = createStreamHash('md5', declared);
    assert.equal(hash.update(data), undefined, 'inline updates never make the caller wait');
    assert.ok((await hash.digest()).equals(createHash('md5').update(data).digest()));
  }
});

test('a body far ahead of the thread is made to wait (bounded memory), and still hashes right', async () => {
  const data = randomBytes(24 * MiB);
  const { digest, waits } = await hashInChunks('md5', data, [8 * MiB]);
  assert.ok(waits >= 1, 'an 8 MiB chunk exceeds what may be unacknowledged');
  assert.ok(digest.equals(createHash('md5').update(data).digest()));
});

test('many bodies at once, some discarded half-way, do not mix', async () => {
  const bodies = Array.from({ length: 24 }, (_, i) => randomBytes(INLINE_BELOW_BYTES + i * 97_531));
  const results = await Promise.all(bodies.map(async (body, i) => {
    if (i % 5 === 0) {
      const hash = createStreamHash('md5', body.length);
      await hash.update(body.subarray(0, body.length >> 1));
      hash.discard();
      hash.discard();
      return undefined;
    }
    return (await hashInChunks('md5', body, [40_000 + i * 1000])).digest;
  }));
  for (const [i, digest] of results.entries()) {
    if (i % 5 === 0) assert.equal(digest, undefined);
    else assert.ok(digest!.equals(createHash('md5').update(bodies[i]!).digest()), `body ${i}`);
  }
  // Discarded sessions leave the thread usable.
  const after = randomBytes(2 * MiB);
  assert.ok((await hashInChunks('md5', after, [MiB / 2])).digest.equals(createHash('md5').update(after).digest()));
});

test('a thread hash holds its bytes in the write budget until the thread has hashed them, and lets go of a partial batch under pressure', { timeout: 30_000 }, async () => {
  const budget = new ByteBudget(2 * (BATCH_BYTES + UNACKED_BYTES_MAX));
  const data = randomBytes(2 * (BATCH_BYTES + UNACKED_BYTES_MAX));
  const hash = createStreamHash('md5', data.length, budget);
  assert.equal(hash.update(data.subarray(0, 100_000)), undefined, 'a chunk that fits the budget never waits');
  assert.equal(budget.heldBytes, 100_000, 'a partial batch is held against the budget');
  // Another holder fills the budget and a third has to wait: the hash sends its partial batch, and its bytes come back once hashed.
  assert.ok(budget.tryAcquire(budget.capacityBytes - 100_000));
  const waiter = budget.acquire(100_000);
  await waiter;
  budget.release(budget.capacityBytes);
  assert.equal(budget.heldBytes, 0);
  for (let offset = 100_000; offset < data.length; offset += 300_000) {
    const pending = hash.update(data.subarray(offset, offset + 300_000));
    if (pending !== undefined) await pending;
    assert.ok(budget.heldBytes <= BATCH_BYTES + UNACKED_BYTES_MAX + 300_000, 'at most a batch pending and what the thread has not acknowledged');
  }
  assert.ok((await hash.digest()).equals(createHash('md5').update(data).digest()));
  assert.equal(budget.heldBytes, 0, 'a digested hash holds nothing');

  const discarded = createStreamHash('md5', data.length, budget);
  await discarded.update(data.subarray(0, 700_000));
  assert.ok(budget.heldBytes > 0);
  discarded.discard();
  assert.equal(budget.heldBytes, 0, 'a discarded hash holds nothing');
});
