/**
 * talus/txn's writer epochs and garbage collection: a writer stalled in the
 * middle of its commit (its log create held back by a storage wrapper) while
 * another store fences the log (opened with `fence: true`, or
 * collectGarbage) is refused with FencedError, and the log holds no entry of
 * it after the fence; collectGarbage deletes the data of commits that lost or
 * were fenced (after the grace period) and never data the log names; a
 * writer process stopped with SIGSTOP at random points while GC runs never
 * publishes an entry naming collected data.
 */
import { strict as assert } from 'node:assert';
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { after, before, test } from 'node:test';
import { FileStorage } from '../src/storage/file-storage.ts';
import type { ObjectStorage, PutOptions, PutResult, StorageBody } from '../src/storage/object-storage.ts';
import { CommitLog } from '../src/txn/commit-log.ts';
import { ConflictError, FencedError } from '../src/txn/errors.ts';
import { openStore, type TxnStore } from '../src/txn/store.ts';
import { PROJECT_ROOT } from './helpers/process.ts';
import { S3Client } from '../src/client/s3-client.ts';
import { openStorage } from '../src/storage/open-storage.ts';
import { startTalus, type RunningTalus } from '../src/talus.ts';
import { silentLogger } from '../src/util/logger.ts';

const credentials = { accessKeyId: 'TALUSFENCEKEY', secretAccessKey: 'talus-fence-secret-0123456789' };
let root: string;
let talus: RunningTalus | undefined;
before(async () => {
  root = await mkdtemp(join(tmpdir(), 'talus-txn-fencing-'));
});
after(async () => {
  await talus?.close();
  await rm(root, { recursive: true, force: true });
});

const LARGE = 20_000; // above the inline limit: a data object of its own

/** A storage whose log creates can be held back: the next one waits until release() (a writer paused mid-commit). */
class StallingStorage {
  #gate: Promise<void> | undefined;
  #open: (() => void) | undefined;
  #reached: (() => void) | undefined;
  reached: Promise<void> = Promise.resolve();

  /** The next log create waits; `reached` resolves when it is waiting. */
  stallNextCreate(): void {
    this.#gate = new Promise((resolve) => (this.#open = resolve));
    this.reached = new Promise((resolve) => (this.#reached = resolve));
  }

  release(): void {
    this.#open?.();
  }

  wrap(inner: ObjectStorage): ObjectStorage {
    return new Proxy(inner, {
      get: (target, property) => {
        if (property === 'putIfAbsent') {
          return async (key: string, body: StorageBody, options?: PutOptions): Promise<PutResult> => {
            const gate = this.#gate;
            if (gate !== undefined && key.includes('/log/')) {
              this.#gate = undefined;
              this.#reached?.();
              await gate;
            }
            return target.putIfAbsent(key, body, options);
          };
        }
        const value: unknown = Reflect.get(target, property);
        return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value;
      },
    });
  }
}

async function writeIdsAfter(store: TxnStore, tid: number): Promise<string[]> {
  const ids: string[] = [];
  for await (const record of store.transactions(tid + 1)) for (const txn of record.txns) ids.push(txn.writeId);
  return ids;
}

async function dataKeys(storage: ObjectStorage): Promise<string[]> {
  const keys: string[] = [];
  for await (const page of storage.list('db/data/')) keys.push(...page.objects.map((object) => object.key));
  return keys.sort();
}

test('a writer stalled mid-commit while another store opens with fence: true is refused with FencedError, and the log has no entry of it after the fence', async () => {
  const directory = join(root, 'open-fence');
  const stall = new StallingStorage();
  const stalled = await openStore(stall.wrap(new FileStorage(directory)), { prefix: 'db/' });
  const setup = await stalled.begin();
  setup.put('a', 'a0');
  assert.equal(await setup.commit(), 1);

  const txn = await stalled.begin();
  txn.put('s', 'from the stalled writer'); // no one else writes it: without fencing, it would commit after revalidation
  txn.put('big', 'x'.repeat(LARGE));
  stall.stallNextCreate();
  const outcome = txn.commit().then(
    (tid) => ({ tid }),
    (error: unknown) => ({ error }),
  );
  await stall.reached; // its data is written and its entry (TID 2) is on its way

  const fencer = await openStore(new FileStorage(directory), { prefix: 'db/', fence: true });
  assert.equal(fencer.epoch, 1);
  const fenceTid = await fencer.lastTransaction();
  assert.equal(fenceTid, 2, 'the fence took the TID the stalled writer was after');
  const other = await fencer.begin();
  other.put('a', 'from the new writer');
  assert.equal(await other.commit(), 3);

  stall.release();
  const result = await outcome;
  assert.ok('error' in result && result.error instanceof FencedError, `the stalled commit is refused: ${JSON.stringify(result)}`);
  assert.equal(result.error.epoch, 0);
  assert.equal(result.error.fencedBy, 1);

  const reader = await openStore(new FileStorage(directory), { prefix: 'db/' });
  assert.ok(!(await writeIdsAfter(reader, fenceTid - 1)).includes(txn.writeId), 'no entry of the stalled writer at or after the fence');
  assert.equal(await reader.findWrite(txn.writeId), undefined);
  assert.equal((await reader.load('a'))?.data?.toString(), 'from the new writer');
  assert.equal(await reader.load('s'), undefined);
  assert.equal(await reader.load('big'), undefined);

  // The stalled store follows the new epoch for work it begins now.
  const again = await stalled.begin();
  again.put('b', 'later');
  assert.equal(await again.commit(), 4);

  // The fencer holds its epoch: once another store fences it, it is fenced for good.
  const successor = await openStore(new FileStorage(directory), { prefix: 'db/', fence: true });
  assert.equal(successor.epoch, 2);
  const late = await fencer.begin();
  late.put('a', 'from the old exclusive writer');
  await assert.rejects(late.commit(), (error: unknown) => error instanceof FencedError && error.epoch === 1 && error.fencedBy === 2);
  await assert.rejects(fencer.collectGarbage({ graceMs: 0 }), FencedError, 'a fenced exclusive store does not come back through GC');
  const next = await successor.begin();
  next.put('a', 'successor');
  assert.equal(await next.commit(), 6);
  // GC run by the exclusive writer keeps it the writer.
  await successor.collectGarbage({ graceMs: 0 });
  assert.equal(successor.epoch, 3);
  const after = await successor.begin();
  after.put('a', 'still the writer');
  assert.equal(await after.commit(), 8);
});

test('a writer stalled past collectGarbage is fenced: GC fences first, then deletes its orphaned data, and the stalled entry never lands', async () => {
  const directory = join(root, 'gc-fence');
  const storage = new FileStorage(directory);
  const stall = new StallingStorage();
  const stalled = await openStore(stall.wrap(new FileStorage(directory)), { prefix: 'db/' });
  const setup = await stalled.begin();
  setup.put('kept', 'k'.repeat(LARGE));
  assert.equal(await setup.commit(), 1);

  const txn = await stalled.begin();
  txn.put('big', 'y'.repeat(LARGE));
  stall.stallNextCreate();
  const outcome = txn.commit().then(
    (tid) => ({ tid }),
    (error: unknown) => ({ error }),
  );
  await stall.reached;
  assert.equal((await dataKeys(storage)).length, 2, 'the stalled commit wrote its data object');

  const gc = await openStore(storage, { prefix: 'db/' });
  const report = await gc.collectGarbage({ graceMs: 0 });
  assert.deepEqual(report, { epoch: 1, deleted: 1, young: 0 });
  const left = await dataKeys(storage);
  assert.equal(left.length, 1);
  assert.ok(!left.some((key) => key.includes(txn.writeId)), 'the stalled commit’s data is gone');

  stall.release();
  const result = await outcome;
  assert.ok('error' in result && result.error instanceof FencedError, `the stalled commit is refused: ${JSON.stringify(result)}`);
  const reader = await openStore(new FileStorage(directory), { prefix: 'db/' });
  assert.equal(await reader.findWrite(txn.writeId), undefined);
  assert.equal(await reader.load('big'), undefined);
  assert.equal((await reader.load('kept'))?.data?.toString(), 'k'.repeat(LARGE), 'data the log names survives GC');
  // Both stores go on committing in the new epoch.
  for (const store of [stalled, gc]) {
    const more = await store.begin();
    more.put(`more-${store === gc ? 'gc' : 'stalled'}`, 'z'.repeat(LARGE));
    await more.commit();
  }
  assert.deepEqual(await gc.collectGarbage({ graceMs: 0 }), { epoch: 2, deleted: 0, young: 0 });
  assert.equal((await dataKeys(storage)).length, 3);
});

test('collectGarbage removes the data of commits that lost, only after the grace period, and never what a commit names', async () => {
  const storage = new FileStorage(join(root, 'gc-losers'));
  const store = await openStore(storage, { prefix: 'db/' });
  const one = await store.begin();
  const two = await store.begin();
  one.put('r', '1'.repeat(LARGE));
  two.put('r', '2'.repeat(LARGE));
  await one.commit();
  await assert.rejects(two.commit(), ConflictError);
  assert.equal((await dataKeys(storage)).length, 2, 'the loser’s data was written before it lost');

  const early = await store.collectGarbage({ graceMs: 60 * 60_000 });
  assert.equal(early.deleted, 0);
  assert.equal(early.young, 1, 'the loser’s data is younger than the grace period: kept for now');
  const late = await store.collectGarbage({ graceMs: 0 });
  assert.equal(late.deleted, 1);
  const left = await dataKeys(storage);
  assert.equal(left.length, 1);
  assert.ok(left[0]!.includes(one.writeId));
  assert.equal((await store.load('r'))?.data?.toString(), '1'.repeat(LARGE));
});

interface LargeWriterLine {
  i: number;
  writeId: string;
  tid?: number;
  fenced?: true;
}

test('a writer process stopped (SIGSTOP) at random points while collectGarbage runs on Talus: every entry’s data exists, no old-epoch entry after a fence, every acknowledged commit in the log', { timeout: 120_000 }, async () => {
  // Against Talus: a directory's conditional writes take a per-key lock file for a few syscalls, which a stopped process would hold.
  talus = await startTalus({ dataDir: join(root, 'talus'), port: 0, address: '127.0.0.1', rootAccessKeyId: credentials.accessKeyId, rootSecretAccessKey: credentials.secretAccessKey, logger: silentLogger });
  const admin = new S3Client({ endpoint: talus.url, ...credentials });
  await admin.createBucket('fencing');
  await admin.close();
  const spec = { url: 's3://fencing/sigstop/', endpoint: talus.url, credentials };
  const open = (): ObjectStorage => openStorage(spec.url, { endpoint: spec.endpoint, credentials: spec.credentials });
  const storage = open();
  const lines: LargeWriterLine[] = [];
  const child = spawn(process.execPath, ['--import', 'tsx', join(PROJECT_ROOT, 'test', 'helpers', 'txn-large-writer.ts'), JSON.stringify(spec)], { cwd: PROJECT_ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  let buffer = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
    buffer += chunk;
    let newline: number;
    while ((newline = buffer.indexOf('\n')) >= 0) {
      lines.push(JSON.parse(buffer.slice(0, newline)) as LargeWriterLine);
      buffer = buffer.slice(newline + 1);
    }
  });
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  const exited = new Promise<void>((resolve) => child.on('close', () => resolve()));
  const waitForLines = async (count: number): Promise<void> => {
    const deadline = Date.now() + 60_000;
    while (lines.length < count) {
      assert.ok(child.exitCode === null, `the writer exited: ${stderr}`);
      assert.ok(Date.now() < deadline, `the writer printed ${lines.length} of ${count} lines: ${stderr}`);
      await delay(10);
    }
  };
  const fences: number[] = [];
  try {
    const gc = await openStore(storage, { prefix: 'db/' });
    for (let round = 0; round < 4; round++) {
      await waitForLines(lines.length + 3);
      await delay(Math.random() * 30); // somewhere in a commit: before, during or after its data, or with its create in flight
      child.kill('SIGSTOP');
      await gc.collectGarbage({ graceMs: 0 });
      fences.push(await gc.lastTransaction());
      const own = await gc.begin();
      own.put(`gc${round}`, 'x'.repeat(LARGE));
      await own.commit();
      child.kill('SIGCONT');
    }
    await waitForLines(lines.length + 3);
  } finally {
    child.kill('SIGKILL');
    await exited;
  }

  const log = new CommitLog(storage, 'db/');
  const reader = await openStore(open(), { prefix: 'db/' });
  const head = await reader.lastTransaction();
  let epoch = 0;
  for (let tid = 1; tid <= head; tid++) {
    const entry = (await log.read(tid))!;
    assert.ok((entry.epoch ?? 0) >= epoch, `entry ${tid} has epoch ${entry.epoch ?? 0} after epoch ${epoch}: published by a fenced writer`);
    epoch = entry.epoch ?? 0;
    for (const txn of entry.txns) {
      for (const [, stored] of txn.writes) {
        if ('k' in stored) await storage.head(`db/${stored.k}`); // throws NotFoundError if GC deleted data an entry names
      }
    }
  }
  for (const fence of fences) assert.equal((await log.read(fence))?.fence, true);
  for (const line of lines) {
    if (line.tid !== undefined) assert.equal(await reader.findWrite(line.writeId), line.tid, `acknowledged commit ${line.i}`);
    else assert.equal(await reader.findWrite(line.writeId), undefined, `fenced commit ${line.i} is not in the log`);
  }
  const fenced = lines.filter((line) => line.fenced === true).length;
  process.stdout.write(`# ${lines.length} commits answered, ${fenced} fenced, ${fences.length} GC runs\n`);
  await storage.close();
});
