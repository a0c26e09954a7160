/**
 * talus/txn's pack: exact reads at and after the boundary and TooOldError
 * before it, bounded and resumable across processes' stores, never a torn
 * read while it runs beside readers and writers, and a stalled writer whose
 * snapshot pack passed is fenced (ConflictError) rather than publishing.
 */
import { strict as assert } from 'node:assert';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawn } from 'node:child_process';
import { setTimeout as delay } from 'node:timers/promises';
import { after, before, test } from 'node:test';
import { CommitLog } from '../src/txn/commit-log.ts';
import { PROJECT_ROOT } from './helpers/process.ts';
import { FileStorage } from '../src/storage/file-storage.ts';
import type { ObjectStorage } from '../src/storage/object-storage.ts';
import { ConflictError, TooOldError } from '../src/txn/errors.ts';
import { openStore, type TxnStore } from '../src/txn/store.ts';

let root: string;
before(async () => {
  root = await mkdtemp(join(tmpdir(), 'talus-txn-pack-'));
});
after(async () => {
  await rm(root, { recursive: true, force: true });
});

const LARGE = 20_000; // above the inline limit: a data object of its own

/** 30 commits over four records (some large, some deletions); the expected state at every TID. */
async function buildHistory(store: TxnStore): Promise<Map<string, string | undefined>[]> {
  const states: Map<string, string | undefined>[] = [new Map()];
  for (let tid = 1; tid <= 30; tid++) {
    const txn = await store.begin();
    const state = new Map(states[tid - 1]);
    const oid = `r${tid % 4}`;
    if (tid % 7 === 0) {
      txn.delete(oid);
      state.set(oid, undefined);
    } else {
      const value = tid % 3 === 0 ? `${tid}:`.padEnd(LARGE, 'x') : `${oid}@${tid}`;
      txn.put(oid, value);
      state.set(oid, value);
    }
    assert.equal(await txn.commit(), tid);
    states.push(state);
  }
  return states;
}

async function dataObjects(storage: ObjectStorage): Promise<number> {
  let count = 0;
  for await (const page of storage.list('db/data/')) count += page.objects.length;
  return count;
}

async function assertExact(store: TxnStore, states: Map<string, string | undefined>[], from: number): Promise<void> {
  for (let tid = from; tid < states.length; tid++) {
    const snapshot = store.at(tid);
    for (const oid of ['r0', 'r1', 'r2', 'r3']) assert.equal((await snapshot.get(oid))?.toString(), states[tid]!.get(oid), `${oid} at ${tid}`);
  }
}

test('pack(20): states from 20 on are exact, older ones TooOldError; bounded per call, resumed by another store; dropped data deleted', async () => {
  const storage = new FileStorage(join(root, 'exact'));
  const store = await openStore(storage, { prefix: 'db/' });
  const states = await buildHistory(store);
  const dataBefore = await dataObjects(storage);
  const first = await store.pack(20, { maxEntries: 7 });
  assert.deepEqual(first, { beforeTid: 20, cursor: 8, done: false, dropped: first.dropped });
  // Another store (another process, after a crash of the first) continues where it stopped, 7 entries a call.
  const other = await openStore(storage, { prefix: 'db/' });
  await assert.rejects(async () => other.at(10).get('r1'), TooOldError); // the boundary was durable before anything was dropped
  const cursors: number[] = [];
  for (let progress = await other.pack(20, { maxEntries: 7 }); ; progress = await other.pack(20, { maxEntries: 7 })) {
    cursors.push(progress.cursor);
    if (progress.done) break;
  }
  assert.deepEqual(cursors, [15, 20]);
  assert.ok((await dataObjects(storage)) < dataBefore, 'the data of dropped revisions is deleted');
  const fresh = await openStore(storage, { prefix: 'db/' });
  for (const reader of [store, other, fresh]) {
    await assertExact(reader, states, 20);
    await assert.rejects(async () => reader.at(19).get('r0'), TooOldError);
    await assert.rejects(reader.poll(10), TooOldError);
    assert.deepEqual((await reader.poll(28)).changed, ['r1', 'r2']);
  }
  // History keeps the revision current at 20 and everything after it.
  assert.deepEqual((await fresh.history('r1')).map((item) => item.tid), [29, 25, 21, 17]);
  assert.deepEqual((await store.history('r1')).map((item) => item.tid), [29, 25, 21, 17]);
  // Write IDs stay findable; no log entry was deleted.
  let entries = 0;
  for await (const record of fresh.transactions()) entries += record.txns.length;
  assert.equal(entries, 30);
});

test('pack beside readers and writers: no read is torn (exact or TooOldError), writers keep committing', async () => {
  const storage = new FileStorage(join(root, 'concurrent'));
  const store = await openStore(storage, { prefix: 'db/' });
  const states = await buildHistory(store);
  const readerStore = await openStore(storage, { prefix: 'db/' });
  const writerStore = await openStore(storage, { prefix: 'db/' });
  let packing = true;
  let tooOld = 0;
  let exact = 0;
  const readers = (async () => {
    while (packing) {
      const tid = 1 + Math.floor(Math.random() * 30);
      for (const oid of ['r0', 'r1', 'r2', 'r3']) {
        try {
          assert.equal((await readerStore.at(tid).get(oid))?.toString(), states[tid]!.get(oid), `${oid} at ${tid}`);
          exact++;
        } catch (error) {
          if (!(error instanceof TooOldError)) throw error;
          assert.ok(tid < 25, `TooOldError at ${tid}, after the boundary`);
          tooOld++;
        }
      }
    }
  })();
  const writers = (async () => {
    for (let i = 0; i < 20; i++) {
      const txn = await writerStore.begin();
      txn.put(`w${i % 3}`, String(i));
      await txn.commit();
    }
  })();
  for (let progress = await store.pack(25, { maxEntries: 3 }); !progress.done; progress = await store.pack(25, { maxEntries: 3 }));
  packing = false;
  await Promise.all([readers, writers]);
  assert.ok(exact > 0);
  await assertExact(await openStore(storage, { prefix: 'db/' }), states, 25);
  assert.equal((await writerStore.load('w1'))?.data?.toString(), '19');
  console.log(`reads during pack: ${exact} exact, ${tooOld} TooOldError`);
});

test('a stalled writer whose snapshot pack passed is fenced: ConflictError, and the log stays whole', async () => {
  const storage = new FileStorage(join(root, 'stalled'));
  const store = await openStore(storage, { prefix: 'db/' });
  const setup = await store.begin();
  setup.put('y', 'alive');
  setup.put('z', '0');
  await setup.commit();
  // The stalled writer: its snapshot is 1, it means to change y.
  const stalledStore = await openStore(storage, { prefix: 'db/' });
  const stalled = await stalledStore.begin();
  assert.equal((await stalled.get('y'))?.toString(), 'alive');
  stalled.put('y', 'resurrected');
  // Meanwhile y is deleted, other commits go on, and pack drops the deletion (nothing after 10 needs it).
  const deleter = await store.begin();
  deleter.delete('y');
  await deleter.commit();
  for (let i = 0; i < 10; i++) {
    const txn = await store.begin();
    txn.put('z', String(i));
    await txn.commit();
  }
  for (let progress = await store.pack(10); !progress.done; progress = await store.pack(10));
  await assert.rejects(stalled.commit(), (error: unknown) => error instanceof ConflictError && error.oids.includes('y'));
  const fresh = await openStore(storage, { prefix: 'db/' });
  const head = await fresh.lastTransaction();
  assert.equal(head, 12);
  assert.equal(await fresh.load('y'), undefined);
  assert.equal(await fresh.findWrite(stalled.writeId), undefined);
  // Every TID from 1 to the head is there: pack frees none for a late writer to take.
  let tids = 0;
  for await (const record of fresh.transactions()) tids += record.tid > 0 ? 1 : 0;
  assert.equal(tids, head);
});

test('a pack killed with SIGKILL part-way is finished by the next call: exact after, TooOldError before, no data object leaked or lost', async () => {
  const dir = join(root, 'killed-pack');
  const storage = new FileStorage(dir);
  const store = await openStore(storage, { prefix: 'db/' });
  const states = await buildHistory(store);
  const child = spawn(process.execPath, ['--import', 'tsx', join(PROJECT_ROOT, 'test', 'helpers', 'txn-packer.ts'), dir, '22'], { cwd: PROJECT_ROOT, stdio: ['ignore', 'pipe', 'inherit'] });
  let lines = 0;
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (lines += chunk.split('\n').length - 1));
  const exited = new Promise((resolve) => child.on('close', resolve));
  const target = 3 + Math.floor(Math.random() * 10);
  while (lines < target && child.exitCode === null) await delay(5);
  await delay(Math.random() * 20);
  child.kill('SIGKILL');
  await exited;
  assert.ok(lines < 21, 'the pack was killed before it finished');
  const resumer = await openStore(storage, { prefix: 'db/' });
  for (let progress = await resumer.pack(22); !progress.done; progress = await resumer.pack(22));
  await assertExact(await openStore(storage, { prefix: 'db/' }), states, 22);
  await assert.rejects(async () => resumer.at(21).get('r1'), TooOldError);
  // Every data object left is named by an entry, and every one named is there.
  const log = new CommitLog(storage, 'db/');
  const named = new Set<string>();
  for (let tid = 1; tid <= 30; tid++) for (const txn of (await log.read(tid))!.txns) for (const [, stored] of txn.writes) if ('k' in stored) named.add(`db/${stored.k}`);
  const present = new Set<string>();
  for await (const page of storage.list('db/data/')) for (const object of page.objects) present.add(object.key);
  assert.deepEqual([...present].sort(), [...named].sort());
});
