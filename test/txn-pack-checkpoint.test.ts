/**
 * talus/txn: pack and checkpoints. Checkpoints are never rewritten by pack,
 * so a store opened from a checkpoint older than pack's boundary must not
 * start from it (the deletion that followed it may be gone from the packed
 * log: the record would come back, or its dropped data object would read as
 * corruption). Pack finishes by writing a checkpoint at or after its
 * boundary. A pack interrupted between any two of its steps (each call,
 * the checkpoint write, the hint move) leaves a log every store opens right.
 * A store that lagged behind the pack (it read the record before pack
 * rewrote the entry of its deletion) forgets the record as it reads on.
 */
import { strict as assert } from 'node:assert';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { S3Client } from '../src/client/s3-client.ts';
import { openStorage } from '../src/storage/open-storage.ts';
import type { ObjectStorage } from '../src/storage/object-storage.ts';
import { checkpointKey, headKey } from '../src/txn/format.ts';
import { openStore, type TxnStore } from '../src/txn/store.ts';
import { startTalus, type RunningTalus } from '../src/talus.ts';
import { silentLogger } from '../src/util/logger.ts';

const credentials = { accessKeyId: 'TALUSPACKCKPT', secretAccessKey: 'talus-pack-ckpt-secret-0123456789' };
const LARGE = 20_000; // above the inline limit: a data object of its own, which pack deletes
let root: string;
let talus: RunningTalus;

before(async () => {
  root = await mkdtemp(join(tmpdir(), 'talus-txn-pack-ckpt-'));
  talus = await startTalus({ dataDir: join(root, 'talus'), port: 0, address: '127.0.0.1', rootAccessKeyId: credentials.accessKeyId, rootSecretAccessKey: credentials.secretAccessKey, logger: silentLogger });
  const admin = new S3Client({ endpoint: talus.url, ...credentials });
  await admin.createBucket('txn');
  await admin.close();
});

after(async () => {
  await talus?.close();
  await rm(root, { recursive: true, force: true });
});

async function write(store: TxnStore, oid: string, value: string | null): Promise<number> {
  const txn = await store.begin();
  if (value === null) txn.delete(oid);
  else txn.put(oid, value);
  return txn.commit();
}

/**
 * x written at TID 1, a checkpoint at TID 4 (x current in it), x deleted at
 * TID 5, then TIDs 6 and 7: pack(7) drops the deletion and x's revision.
 */
async function history(store: TxnStore, value: string): Promise<void> {
  assert.equal(await write(store, 'x', value), 1);
  for (const oid of ['a', 'b', 'c']) await write(store, oid, oid);
  await store.close(); // the checkpoint at 4 is stored
  assert.equal(await write(store, 'x', null), 5);
  await write(store, 'd', 'd');
  assert.equal(await write(store, 'e', 'e'), 7);
}

/** What a store opened now on `storage` reads: x gone, the others there. */
async function assertFreshStoreReadsPackedState(storage: ObjectStorage, step: string): Promise<void> {
  const fresh = await openStore(storage, { prefix: 'db/' });
  assert.equal((await fresh.load('x'))?.data, undefined, `${step}: a deleted record stays deleted`);
  for (const oid of ['a', 'b', 'c', 'd', 'e']) assert.equal((await fresh.load(oid))?.data?.toString(), oid, `${step}: ${oid}`);
  await fresh.close();
}

/** Storage whose writes to keys `fails` picks throw, as a process dying right before them would leave it. */
function failingWrites(storage: ObjectStorage, fails: (key: string) => boolean): ObjectStorage {
  return new Proxy(storage, {
    get(target, name, receiver) {
      const member = Reflect.get(target, name, receiver) as unknown;
      if (typeof member !== 'function') return member;
      if (name === 'put' || name === 'putIfAbsent' || name === 'putIfMatch') {
        return (key: string, ...rest: unknown[]) => (fails(key) ? Promise.reject(new Error(`injected crash before writing ${key}`)) : (member as (...args: unknown[]) => unknown).call(target, key, ...rest));
      }
      return (member as (...args: unknown[]) => unknown).bind(target);
    },
  });
}

const storages: [string, () => ObjectStorage][] = [
  ['memory', () => openStorage('memory://')],
  ['Talus over S3', () => openStorage(`s3://txn/ckpt-${Math.random().toString(36).slice(2)}`, { endpoint: talus.url, credentials })],
];

describe('txn: pack and older checkpoints', { timeout: 120_000 }, () => {
  for (const [kind, open] of storages) {
    for (const [size, value] of [['inline', 'secret-old-value'], ['large', 'L'.repeat(LARGE)]] as const) {
      test(`${kind}, ${size} revision: a record deleted before the boundary stays deleted for a store opened after the pack`, async () => {
        const storage = open();
        const store = await openStore(storage, { prefix: 'db/', checkpointEvery: 4, groupCommit: false });
        await history(store, value);
        let progress = await store.pack(7);
        while (!progress.done) progress = await store.pack(7);
        assert.equal((await store.load('x'))?.data, undefined);
        await assertFreshStoreReadsPackedState(storage, 'after the pack');
        // Pack left a checkpoint at or after its boundary, and the hint names it.
        const hint = JSON.parse((await readText(storage, headKey('db/')))!) as { checkpoint?: number };
        assert.ok((hint.checkpoint ?? 0) >= 7, `the hint's checkpoint ${hint.checkpoint} is at or after the boundary`);
        assert.ok((await readText(storage, checkpointKey('db/', hint.checkpoint!))) !== undefined);
        await storage.close();
      });
    }

    test(`${kind}: a store that lagged behind the pack (it read x before the deletion, the deletion after the pack dropped it) sees x deleted`, async () => {
      const storage = open();
      const writer = await openStore(storage, { prefix: 'db/', checkpointEvery: 1000, groupCommit: false });
      await write(writer, 'x', 'L'.repeat(LARGE));
      for (const oid of ['a', 'b', 'c']) await write(writer, oid, oid);
      const lagging = await openStore(storage, { prefix: 'db/' });
      assert.equal(await lagging.lastTransaction(), 4);
      assert.equal(await write(writer, 'x', null), 5);
      await write(writer, 'd', 'd');
      await write(writer, 'e', 'e');
      for (let progress = await writer.pack(7); !progress.done; progress = await writer.pack(7));
      assert.equal((await lagging.load('x'))?.data, undefined, 'the lagging store reads forward over the packed deletion');
      assert.equal((await lagging.load('e'))?.data?.toString(), 'e');
      await storage.close();
    });

    test(`${kind}: a pack stopped between any two of its steps never lets an opened store see a deleted record`, async () => {
      const storage = open();
      const store = await openStore(storage, { prefix: 'db/', checkpointEvery: 4, groupCommit: false });
      await history(store, 'L'.repeat(LARGE));
      // One entry per call: a store opened between calls sees a partly rewritten log (entry 5, the deletion, among them).
      // The last entry to compact (6) is left for the processes below.
      for (let call = 1; call <= 5; call++) {
        const progress = await store.pack(7, { maxEntries: 1 });
        assert.deepEqual([progress.cursor, progress.done], [call + 1, false]);
        await assertFreshStoreReadsPackedState(storage, `after pack call ${call}`);
      }
      // The process finishing the pack dies before its checkpoint, then (another try) before moving the hint.
      for (const [step, fails] of [
        ['before the checkpoint', (key: string) => key.startsWith('db/checkpoint/')],
        ['before the hint', (key: string) => key === headKey('db/')],
      ] as const) {
        const dying = await openStore(failingWrites(storage, fails), { prefix: 'db/' });
        await assert.rejects(async () => {
          let resumed = await dying.pack(7);
          while (!resumed.done) resumed = await dying.pack(7);
        }, /injected crash/);
        await assertFreshStoreReadsPackedState(storage, `a pack that died ${step}`);
      }
      const finisher = await openStore(storage, { prefix: 'db/' });
      assert.equal((await finisher.pack(7)).done, true);
      await assertFreshStoreReadsPackedState(storage, 'after the pack is finished');
      await storage.close();
    });
  }
});

async function readText(storage: ObjectStorage, key: string): Promise<string | undefined> {
  try {
    const { body } = await storage.get(key);
    const chunks: Buffer[] = [];
    for await (const chunk of body) chunks.push(chunk as Buffer);
    return Buffer.concat(chunks).toString('utf8');
  } catch {
    return undefined;
  }
}
