/**
 * talus/txn's reader leases: pack never passes a TID an unexpired lease
 * holds (its boundary stops there), passes it once the lease is released or
 * lapses, refuses a lease on a state already packed, and under packs running
 * beside readers that take leases, every leased read is exact.
 */
import { strict as assert } from 'node:assert';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { after, before, test } from 'node:test';
import { FileStorage } from '../src/storage/file-storage.ts';
import { TooOldError } from '../src/txn/errors.ts';
import { openStore, type TxnStore } from '../src/txn/store.ts';

let root: string;
before(async () => {
  root = await mkdtemp(join(tmpdir(), 'talus-txn-leases-'));
});
after(async () => {
  await rm(root, { recursive: true, force: true });
});

const LARGE = 20_000; // above the inline limit: a data object of its own

/** The value commit `tid` writes to record `oid` (every third one a data object; all of them if `large`). */
function value(oid: string, tid: number, large = false): string {
  return large || tid % 3 === 0 ? `${oid}@${tid}:`.padEnd(LARGE, 'x') : `${oid}@${tid}`;
}

/** Commits rewriting records r0 and r1 in turn; returns the last TID. */
async function writeCommits(store: TxnStore, count: number, large = false): Promise<number> {
  let tid = 0;
  for (let i = 0; i < count; i++) {
    const txn = await store.begin();
    const next = txn.snapshotTid + 1;
    txn.put(`r${next % 2}`, value(`r${next % 2}`, next, large));
    tid = await txn.commit();
    assert.equal(tid, next);
  }
  return tid;
}

/** What record `oid` reads at `tid` when every TID n wrote r(n % 2). */
function expected(oid: string, tid: number, large = false): string | undefined {
  for (let n = tid; n >= 1; n--) if (`r${n % 2}` === oid) return value(oid, n, large);
  return undefined;
}

test('pack stops at the oldest leased TID, and passes it once the lease is released or lapses', async () => {
  const directory = join(root, 'basic');
  const store = await openStore(new FileStorage(directory), { prefix: 'db/' });
  await writeCommits(store, 12);
  const lease = await store.lease(4);
  const packer = await openStore(new FileStorage(directory), { prefix: 'db/' });
  let progress = await packer.pack(10);
  assert.equal(progress.beforeTid, 4, 'the boundary stops at the lease');
  assert.equal(progress.done, true);
  for (const tid of [4, 5, 9]) for (const oid of ['r0', 'r1']) assert.equal((await store.at(tid).get(oid))?.toString(), expected(oid, tid));
  assert.throws(() => packer.at(3), TooOldError);

  await lease.release();
  progress = await packer.pack(10);
  assert.equal(progress.beforeTid, 10);
  const reader = await openStore(new FileStorage(directory), { prefix: 'db/' });
  assert.throws(() => reader.at(4), TooOldError);
  await assert.rejects(reader.lease(9), TooOldError, 'a lease on a state already packed is refused');
  assert.equal((await reader.at(10).get('r1'))?.toString(), expected('r1', 10));

  // A lapsed lease holds nothing: pack passes it, and renewing it is refused.
  const short = await reader.lease(11, { ttlMs: 50 });
  await delay(120);
  progress = await packer.pack(12);
  assert.equal(progress.beforeTid, 12);
  await assert.rejects(short.renew(), TooOldError);
});

test('packs racing readers that take leases: every read at a leased TID is exact, never TooOldError', async () => {
  const directory = join(root, 'race');
  const writer = await openStore(new FileStorage(directory), { prefix: 'db/' });
  await writeCommits(writer, 6, true); // every value a data object: a read goes to the storage, where pack deletes
  const packer = await openStore(new FileStorage(directory), { prefix: 'db/' });
  let stop = false;
  let packs = 0;
  let checked = 0;
  let refused = 0;
  const writing = (async () => {
    while (!stop) await writeCommits(writer, 1, true);
  })();
  const packing = (async () => {
    while (!stop) {
      const head = await packer.lastTransaction();
      let progress = await packer.pack(head, { maxEntries: 16 });
      while (!progress.done) progress = await packer.pack(progress.beforeTid, { maxEntries: 16 });
      packs++;
    }
  })();
  const readers = Array.from({ length: 2 }, async () => {
    const reader = await openStore(new FileStorage(directory), { prefix: 'db/' });
    for (let round = 0; round < 4; round++) {
      const head = await reader.lastTransaction();
      let lease;
      try {
        lease = await reader.lease(head);
      } catch (error) {
        if (!(error instanceof TooOldError)) throw error;
        refused++; // a pack passed it first: allowed, and the lease is not held
        continue;
      }
      // Two whole packs to the head run while the lease is held, and the writer replaces both records meanwhile.
      const seen = packs;
      while (packs < seen + 2) await delay(5);
      for (const oid of ['r0', 'r1']) assert.equal((await reader.at(head).get(oid))?.toString(), expected(oid, head, true), `${oid} at leased TID ${head}`);
      checked++;
      await lease.release();
    }
  });
  try {
    await Promise.all(readers);
  } finally {
    stop = true;
    await Promise.allSettled([writing, packing]);
  }
  await Promise.all([writing, packing]);
  assert.ok(packs > 0 && checked > 0, `packs ${packs}, leased reads ${checked}, refused ${refused}`);
});
