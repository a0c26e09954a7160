/**
 * talus/txn's API and guarantees on memory and a directory: commits and
 * typed conflicts, group commit, serializable and checkCurrent, exact MVCC
 * reads, the head hint and checkpoints (bounded open), the refusal of a
 * storage that ignores conditional writes, and a lost answer settled by the
 * write ID.
 */
import { strict as assert } from 'node:assert';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { FileStorage } from '../src/storage/file-storage.ts';
import { MemoryStorage } from '../src/storage/memory-storage.ts';
import type { GetOptions, GetResult, ObjectStorage, PutOptions, PutResult, StorageBody } from '../src/storage/object-storage.ts';
import { CommitOutcomeUnknownError, ConflictError, UnsupportedStorageError } from '../src/txn/errors.ts';
import { openStore } from '../src/txn/store.ts';
import { S3Client } from '../src/client/s3-client.ts';
import { openStorage } from '../src/storage/open-storage.ts';
import { startBaseline } from '../bench/suite/servers.ts';

let root: string;
before(async () => {
  root = await mkdtemp(join(tmpdir(), 'talus-txn-store-'));
});
after(async () => {
  await rm(root, { recursive: true, force: true });
});

const text = (bytes: Buffer | undefined): string | undefined => bytes?.toString('utf8');

for (const [name, make] of [
  ['memory', () => new MemoryStorage()],
  ['directory', () => new FileStorage(join(root, `dir-${Math.random().toString(36).slice(2)}`))],
] as const) {
  describe(`txn on ${name}`, () => {
    test('commit returns the TID; the first committer wins and the loser gets a ConflictError naming the records', async () => {
      const store = await openStore(make(), { prefix: 'db/' });
      const setup = await store.begin();
      setup.put('a', 'a0');
      setup.put('b', 'b0');
      assert.equal(await setup.commit(), 1);
      const first = await store.begin();
      const second = await store.begin();
      assert.equal(text(await first.get('a')), 'a0');
      first.put('a', 'a1');
      second.put('a', 'a2');
      second.put('b', 'b2');
      assert.equal(await first.commit(), 2);
      await assert.rejects(second.commit(), (error: unknown) => error instanceof ConflictError && error.oids.join() === 'a' && error.snapshotTid === 1);
      // Disjoint writes from the same snapshot both commit (snapshot isolation, not serializable).
      const x = await store.begin();
      const y = await store.begin();
      x.put('x', '1');
      y.put('y', '1');
      await x.commit();
      await y.commit();
      assert.equal(text((await store.load('a'))?.data), 'a1');
      assert.equal(text((await store.load('b'))?.data), 'b0');
      // Its own writes are visible to the transaction; abort publishes nothing.
      const aborted = await store.begin();
      aborted.put('a', 'never');
      aborted.delete('b');
      assert.equal(text(await aborted.get('a')), 'never');
      assert.equal(await aborted.get('b'), undefined);
      aborted.abort();
      assert.equal(text((await store.load('a'))?.data), 'a1');
      assert.throws(() => aborted.put('a', 'late'));
    });

    test('group commit: transactions committed together share one log entry; a conflicting one in the group loses', async () => {
      const store = await openStore(make(), { prefix: 'db/' });
      const txns = await Promise.all(Array.from({ length: 6 }, () => store.begin()));
      txns.forEach((txn, i) => txn.put(`k${i % 5}`, `v${i}`)); // txns 0 and 5 both write k0
      const results = await Promise.allSettled(txns.map((txn) => txn.commit()));
      const tids = results.flatMap((result) => (result.status === 'fulfilled' ? [result.value] : []));
      const conflicts = results.filter((result) => result.status === 'rejected' && result.reason instanceof ConflictError);
      assert.equal(conflicts.length, 1);
      assert.equal(tids.length, 5);
      // The first arrives alone (nothing was waiting); the rest waited together and share the next entry.
      assert.ok(new Set(tids).size <= 2, `tids ${tids.join()}`);
      assert.equal(await store.lastTransaction(), Math.max(...tids));
      // Without group commit, one entry each.
      const solo = await openStore(make(), { prefix: 'db/', groupCommit: false });
      const more = await Promise.all(Array.from({ length: 4 }, () => solo.begin()));
      more.forEach((txn, i) => txn.put(`s${i}`, 'v'));
      assert.deepEqual((await Promise.all(more.map((txn) => txn.commit()))).sort(), [1, 2, 3, 4]);
    });

    test('serializable: a changed read is a conflict (write skew refused); snapshot isolation allows it; checkCurrent in either', async () => {
      const store = await openStore(make(), { prefix: 'db/' });
      const setup = await store.begin();
      setup.put('alice', '1');
      setup.put('bob', '1');
      await setup.commit();
      async function writeSkew(isolation: 'snapshot' | 'serializable'): Promise<PromiseSettledResult<number>[]> {
        const one = await store.begin({ isolation });
        const two = await store.begin({ isolation });
        await one.get('alice');
        await one.get('bob');
        await two.get('alice');
        await two.get('bob');
        one.put('alice', '0');
        two.put('bob', '0');
        return [await one.commit().then((tid) => ({ status: 'fulfilled' as const, value: tid }), (reason: unknown) => ({ status: 'rejected' as const, reason })), await two.commit().then((tid) => ({ status: 'fulfilled' as const, value: tid }), (reason: unknown) => ({ status: 'rejected' as const, reason }))];
      }
      assert.deepEqual((await writeSkew('snapshot')).map((result) => result.status), ['fulfilled', 'fulfilled']);
      const serial = await writeSkew('serializable');
      assert.equal(serial[0]!.status, 'fulfilled');
      const lost = serial[1]!;
      assert.ok(lost.status === 'rejected' && lost.reason instanceof ConflictError && lost.reason.oids.join() === 'alice');
      const checked = await store.begin();
      checked.checkCurrent('bob');
      checked.put('carol', '1');
      const writer = await store.begin();
      writer.put('bob', '2');
      await writer.commit();
      await assert.rejects(checked.vote(), ConflictError);
      await assert.rejects(checked.commit(), (error: unknown) => error instanceof ConflictError && error.oids.join() === 'bob');
    });

    test('MVCC: at(tid), loadBefore, loadSerial, history and poll are exact; large records live in data objects', async () => {
      const store = await openStore(make(), { prefix: 'db/' });
      const big = Buffer.alloc(100_000, 9);
      const states: Record<string, string | undefined>[] = [{}];
      for (let tid = 1; tid <= 12; tid++) {
        const txn = await store.begin();
        const state = { ...states[tid - 1] };
        const oid = `r${tid % 3}`;
        if (tid % 5 === 0) {
          txn.delete(oid);
          state[oid] = undefined;
        } else {
          txn.put(oid, `${oid}@${tid}`);
          state[oid] = `${oid}@${tid}`;
        }
        if (tid === 7) txn.put('big', big);
        assert.equal(await txn.commit(), tid);
        states.push(state);
      }
      for (let tid = 0; tid <= 12; tid++) {
        const snapshot = store.at(tid);
        for (const oid of ['r0', 'r1', 'r2']) assert.equal(text(await snapshot.get(oid)), states[tid]![oid], `${oid} at ${tid}`);
      }
      assert.deepEqual(await store.at(6).get('big'), undefined);
      assert.deepEqual(await store.at(7).get('big'), big);
      assert.deepEqual((await store.history('r1')).map((item) => [item.tid, item.deleted]), [[10, true], [7, false], [4, false], [1, false]]);
      const before = await store.loadBefore('r1', 7);
      assert.deepEqual([text(before?.data), before?.tid, before?.nextTid], ['r1@4', 4, 7]);
      assert.equal(await store.loadBefore('r1', 1), undefined);
      assert.equal(text(await store.loadSerial('r1', 4)), 'r1@4');
      assert.deepEqual(await store.poll(10), { tid: 12, changed: ['r0', 'r2'] });
      const iterated: number[] = [];
      for await (const record of store.transactions(3, 5)) iterated.push(record.tid);
      assert.deepEqual(iterated, [3, 4, 5]);
    });

    test('open reads a bounded number of objects: the checkpoint, then the entries after it; probeHead finds the head from the hint', async () => {
      const storage = make();
      const store = await openStore(storage, { prefix: 'db/', checkpointEvery: 8, hintEvery: 4 });
      for (let i = 0; i < 21; i++) {
        const txn = await store.begin();
        txn.put(`k${i % 4}`, `${i}`);
        await txn.commit();
      }
      await store.close();
      const counting = countingGets(storage);
      const reopened = await openStore(counting.storage, { prefix: 'db/' });
      assert.equal(await reopened.lastTransaction(), 21);
      // hint + pack state + checkpoint 16 + entries 17..21 + the missing 22 (twice at most: open and lastTransaction).
      assert.ok(counting.gets() <= 3 + 5 + 2, `open read ${counting.gets()} objects`);
      assert.equal(text((await reopened.load('k0'))?.data), '20');
      assert.equal(text(await reopened.at(4).get('k3')), '3'); // i = 3 committed at TID 4, before the checkpoint
      assert.equal(await reopened.probeHead(), 21);
    });
  });
}

describe('txn: storages and answers that cannot be trusted', () => {
  test('a storage that ignores conditional writes is refused with a clear error', async () => {
    class Ignoring extends MemoryStorage {
      override putIfAbsent(key: string, body: StorageBody, options?: PutOptions): Promise<PutResult> {
        return this.put(key, body, options);
      }
    }
    await assert.rejects(openStore(new Ignoring(), { prefix: 'db/' }), (error: unknown) => error instanceof UnsupportedStorageError && /putIfAbsent/.test(error.message));
  });

  test('s3rver, which ignores If-None-Match, is refused', { timeout: 60_000 }, async () => {
    const s3rver = await startBaseline({ kind: 's3rver' });
    try {
      const admin = new S3Client({ endpoint: s3rver.endpoint, ...s3rver.credentials });
      await admin.createBucket('txn');
      await admin.close();
      const storage = openStorage('s3://txn/db', { endpoint: s3rver.endpoint, credentials: s3rver.credentials });
      await assert.rejects(openStore(storage), UnsupportedStorageError);
      await storage.close();
    } finally {
      await s3rver.stop();
    }
  });

  test('a create whose answer is lost after it was applied is recognized as its own commit, not a conflict', async () => {
    const storage = new MemoryStorage();
    const store = await openStore(storage, { prefix: 'db/' });
    let drop = 2; // the next two answers to a log create are lost
    const lossy = wrapStorage(storage, {
      async putIfAbsent(key: string, body: StorageBody, options?: PutOptions) {
        const result = await storage.putIfAbsent(key, body, options);
        if (key.includes('/log/') && drop-- > 0) throw new Error('socket hang up');
        return result;
      },
    });
    const lossyStore = await openStore(lossy, { prefix: 'db/' });
    const txn = await lossyStore.begin();
    txn.put('a', '1');
    assert.equal(await txn.commit(), 1);
    assert.equal(await store.findWrite(txn.writeId), 1);
    const next = await lossyStore.begin();
    next.put('a', '2');
    assert.equal(await next.commit(), 2);
    assert.equal(await store.lastTransaction(), 2);
    // A storage that keeps failing: the outcome is reported unknown, with the write ID to settle it.
    const failing = wrapStorage(storage, { putIfAbsent: () => Promise.reject(new Error('connection refused')) });
    const failingStore = await openStore(storage, { prefix: 'db/' }).then(() => openStoreWithout(failing));
    const doomed = await failingStore.begin();
    doomed.put('a', '3');
    await assert.rejects(doomed.commit(), (error: unknown) => error instanceof CommitOutcomeUnknownError && error.writeId === doomed.writeId);
    assert.equal(await store.findWrite(doomed.writeId), undefined);
  });
});

/** openStore probes conditional writes, which a storage that always fails cannot pass: open on the real one, then swap. */
async function openStoreWithout(storage: ObjectStorage) {
  const { CommitLog } = await import('../src/txn/commit-log.ts');
  const { MvccIndex } = await import('../src/txn/mvcc-index.ts');
  const { TxnStore } = await import('../src/txn/store.ts');
  const store = new TxnStore(new CommitLog(storage, 'db/'), new MvccIndex(), {});
  await store.refresh();
  return store;
}

function countingGets(storage: ObjectStorage): { storage: ObjectStorage; gets(): number } {
  let gets = 0;
  const wrapped = wrapStorage(storage, {
    get(key: string, options?: GetOptions): Promise<GetResult> {
      gets++;
      return storage.get(key, options);
    },
    list() {
      throw new Error('the store listed the storage');
    },
  });
  return { storage: wrapped, gets: () => gets };
}

/** `storage` with some methods replaced (a Proxy would break the classes' private fields). */
function wrapStorage(storage: ObjectStorage, overrides: Partial<ObjectStorage>): ObjectStorage {
  return new Proxy(storage, {
    get(target, property) {
      if (Object.hasOwn(overrides, property)) return (overrides as Record<string | symbol, unknown>)[property];
      const value = Reflect.get(target, property, target) as unknown;
      return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value;
    },
  });
}
