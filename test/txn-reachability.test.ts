/**
 * talus/txn's reachability pack (ZODB's pack with referencesf): records no
 * root reaches at the boundary lose their revisions up to it (and their data
 * objects), records reached from the root or from anything written after the
 * boundary stay exact, and a pack stopped part-way is finished by another
 * process's store that does not know the references function.
 */
import { strict as assert } from 'node:assert';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { FileStorage } from '../src/storage/file-storage.ts';
import type { ObjectStorage } from '../src/storage/object-storage.ts';
import { TooOldError } from '../src/txn/errors.ts';
import { openStore, type TxnStore } from '../src/txn/store.ts';

let root: string;
before(async () => {
  root = await mkdtemp(join(tmpdir(), 'talus-txn-reach-'));
});
after(async () => {
  await rm(root, { recursive: true, force: true });
});

const LARGE = 20_000; // above the inline limit: a data object of its own

/** A record: its references and some padding (large ones become data objects). */
function node(refs: string[], size = 0): string {
  return JSON.stringify({ refs, pad: 'p'.repeat(size) });
}
const references = (_oid: string, data: Buffer): string[] => (JSON.parse(data.toString('utf8')) as { refs: string[] }).refs;

async function commit(store: TxnStore, writes: Record<string, string>): Promise<number> {
  const txn = await store.begin();
  for (const [oid, value] of Object.entries(writes)) txn.put(oid, value);
  return txn.commit();
}

async function dataObjects(storage: ObjectStorage): Promise<number> {
  let count = 0;
  for await (const page of storage.list('db/data/')) count += page.objects.length;
  return count;
}

test('a reachability pack drops the records no root reaches at the boundary, keeps what the root or later writes reach, and is finished by another store', async () => {
  const directory = join(root, 'graph');
  const storage = new FileStorage(directory);
  const store = await openStore(storage, { prefix: 'db/' });
  const values = {
    root1: node(['a', 'c']),
    a: node(['b']),
    b: node([], LARGE),
    c: node([], LARGE),
    root2: node(['a']),
    e: node([], LARGE),
    g: node([]),
    f: node(['g']),
  };
  assert.equal(await commit(store, { root: values.root1, a: values.a, b: values.b, c: values.c }), 1);
  assert.equal(await commit(store, { root: values.root2 }), 2); // c is no longer reachable
  assert.equal(await commit(store, { e: values.e, g: values.g }), 3); // written, but nothing refers to them at 3
  assert.equal(await commit(store, { f: values.f }), 4); // after the boundary, refers to g
  assert.equal(await dataObjects(storage), 3);

  // The first call marks, stores the unreachable set with the boundary, and compacts two entries.
  const first = await store.pack(3, { references, maxEntries: 2 });
  assert.deepEqual({ done: first.done, cursor: first.cursor }, { done: false, cursor: 3 });
  // Another process's store, without the references function, finishes the same pack.
  const other = await openStore(new FileStorage(directory), { prefix: 'db/' });
  const second = await other.pack(3);
  assert.equal(second.done, true);
  assert.equal(second.beforeTid, 3);

  const fresh = await openStore(new FileStorage(directory), { prefix: 'db/' });
  for (const reader of [store, other, fresh]) {
    for (const tid of [3, 4]) {
      const snapshot = reader.at(tid);
      assert.equal((await snapshot.get('root'))?.toString(), values.root2);
      assert.equal((await snapshot.get('a'))?.toString(), values.a);
      assert.equal((await snapshot.get('b'))?.toString(), values.b);
      assert.equal((await snapshot.get('g'))?.toString(), values.g, 'g is reached from f, written after the boundary');
    }
    assert.equal((await reader.at(4).get('f'))?.toString(), values.f);
    assert.equal(await reader.load('c'), undefined, 'c: unreachable at the boundary');
    assert.equal(await reader.load('e'), undefined, 'e: written but never referred to');
    assert.deepEqual(await reader.history('c'), []);
    assert.deepEqual(await reader.history('e'), []);
    assert.deepEqual((await reader.history('root')).map((item) => item.tid), [2]);
    assert.throws(() => reader.at(2), TooOldError);
  }
  assert.equal(fresh.oldestTid, 3);
  assert.equal(await dataObjects(storage), 1, 'only b’s data object is left');
});
