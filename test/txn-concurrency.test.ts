/**
 * talus/txn under concurrent writer processes: each commits random
 * read-modify-write transactions over three hot records, against a real
 * Talus server (in-process, loopback) and against a directory, and records
 * every begin, read, write and commit or conflict. The checker
 * (helpers/txn-history.ts) verifies snapshot isolation with
 * first-committer-wins, no lost updates and every acknowledged commit in the
 * log; it is shown to catch a protocol that skips the conditional create.
 */
import { strict as assert } from 'node:assert';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { after, before, describe, test } from 'node:test';
import { S3Client } from '../src/client/s3-client.ts';
import { FileStorage } from '../src/storage/file-storage.ts';
import { openStorage } from '../src/storage/open-storage.ts';
import { openStore } from '../src/txn/store.ts';
import { startTalus, type RunningTalus } from '../src/talus.ts';
import { silentLogger } from '../src/util/logger.ts';
import { checkHistory, readLogTruth, type CounterValue, type TxnEvent } from './helpers/txn-history.ts';
import { runCounterTransaction, spawnWriter, type WriterSpec } from './helpers/txn-workload.ts';

const credentials = { accessKeyId: 'TALUSTXNKEY', secretAccessKey: 'talus-txn-secret-0123456789' };
const HOT = ['a', 'b', 'c'];
const WRITERS = 4;
const PER_WRITER = 25;
let root: string;
let talus: RunningTalus;

before(async () => {
  root = await mkdtemp(join(tmpdir(), 'talus-txn-conc-'));
  talus = await startTalus({ dataDir: join(root, 'talus'), port: 0, address: '127.0.0.1', rootAccessKeyId: credentials.accessKeyId, rootSecretAccessKey: credentials.secretAccessKey, logger: silentLogger });
  const admin = new S3Client({ endpoint: talus.url, ...credentials });
  await admin.createBucket('txn');
  await admin.close();
});

after(async () => {
  await talus?.close();
  await rm(root, { recursive: true, force: true });
});

async function runWriters(base: Omit<WriterSpec, 'writer' | 'count' | 'oids'>): Promise<TxnEvent[]> {
  const writers = Array.from({ length: WRITERS }, (_, i) => spawnWriter({ ...base, writer: `w${i}`, count: PER_WRITER, oids: HOT }));
  return (await Promise.all(writers.map((writer) => writer.events))).flat();
}

function summary(events: readonly TxnEvent[]): { commits: number; conflicts: number; errors: string[] } {
  return {
    commits: events.filter((event) => 'commit' in event.outcome).length,
    conflicts: events.filter((event) => 'conflict' in event.outcome).length,
    errors: events.flatMap((event) => ('error' in event.outcome ? [event.outcome.error] : [])),
  };
}

describe('txn: writer processes on hot records, checked', { timeout: 180_000 }, () => {
  test(`directory: ${WRITERS} processes × ${PER_WRITER} read-modify-write transactions`, async () => {
    const dir = join(root, 'dir');
    const events = await runWriters({ url: pathToFileURL(dir).href, prefix: 'db/' });
    const { commits, conflicts, errors } = summary(events);
    console.log(`${commits} commits, ${conflicts} conflicts`);
    assert.deepEqual(errors, []);
    assert.equal(events.length, WRITERS * PER_WRITER);
    assert.ok(commits > 0);
    const storage = new FileStorage(dir);
    const truth = await readLogTruth(await openStore(storage, { prefix: 'db/' }));
    assert.deepEqual(checkHistory(events, truth), []);
  });

  test(`Talus over S3: ${WRITERS} processes × ${PER_WRITER} read-modify-write transactions`, async () => {
    const events = await runWriters({ url: 's3://txn/concurrency', endpoint: talus.url, credentials, prefix: 'db/' });
    const { commits, conflicts, errors } = summary(events);
    console.log(`${commits} commits, ${conflicts} conflicts`);
    assert.deepEqual(errors, []);
    assert.equal(events.length, WRITERS * PER_WRITER);
    assert.ok(commits > 0);
    const storage = openStorage('s3://txn/concurrency', { endpoint: talus.url, credentials });
    const truth = await readLogTruth(await openStore(storage, { prefix: 'db/' }));
    await storage.close();
    assert.deepEqual(checkHistory(events, truth), []);
  });

  test(`serializable, directory: ${WRITERS} processes that also read a record they do not write; checked for serializability, and the check catches a write skew`, async () => {
    const dir = join(root, 'serializable');
    const events = await runWriters({ url: pathToFileURL(dir).href, prefix: 'db/', isolation: 'serializable', readExtra: true });
    const { commits, conflicts, errors } = summary(events);
    console.log(`serializable: ${commits} commits, ${conflicts} conflicts`);
    assert.deepEqual(errors, []);
    const storage = new FileStorage(dir);
    assert.deepEqual(checkHistory(events, await readLogTruth(await openStore(storage, { prefix: 'db/' })), { serializable: true }), []);
    // A write skew, which snapshot isolation commits: the serializable check reports it, the SI check does not.
    const skewStorage = new FileStorage(join(root, 'write-skew'));
    const store = await openStore(skewStorage, { prefix: 'db/', isolation: 'snapshot' });
    const setup = await runCounterTransaction(store, 'setup', 0, ['a', 'b']);
    const one = await store.begin();
    const two = await store.begin();
    const skew: TxnEvent[] = [setup];
    for (const [txn, writes, name] of [[one, 'a', 'one'], [two, 'b', 'two']] as const) {
      const reads = Object.fromEntries(await Promise.all(['a', 'b'].map(async (oid) => [oid, JSON.parse((await txn.get(oid))?.toString() ?? 'null') as CounterValue | null] as const)));
      const value = { n: (reads[writes]?.n ?? 0) + 1, by: name };
      txn.put(writes, JSON.stringify(value));
      skew.push({ writer: name, writeId: txn.writeId, snapshot: txn.snapshotTid, reads, writes: { [writes]: value }, outcome: { commit: 0 } });
    }
    for (const event of skew.slice(1)) event.outcome = { commit: await (event.writer === 'one' ? one : two).commit() };
    const skewTruth = await readLogTruth(await openStore(skewStorage, { prefix: 'db/' }));
    assert.deepEqual(checkHistory(skew, skewTruth), [], 'a correct snapshot-isolation history');
    const problems = checkHistory(skew, skewTruth, { serializable: true });
    assert.ok(problems.some((problem) => problem.includes('not serializable')), problems.join('\n'));
  });

  test('the checker catches a protocol that creates log entries without the condition (and passes the real one)', async () => {
    async function inProcess(dir: string, unsafe: boolean): Promise<string[]> {
      const storage = new FileStorage(dir);
      const stores = await Promise.all(Array.from({ length: WRITERS }, () => openStore(storage, { prefix: 'db/', groupCommit: false, unsafeUnconditionalCreate: unsafe })));
      const events = (
        await Promise.all(
          stores.map(async (store, w) => {
            const mine: TxnEvent[] = [];
            for (let i = 0; i < PER_WRITER; i++) mine.push(await runCounterTransaction(store, `w${w}`, i, HOT));
            return mine;
          }),
        )
      ).flat();
      assert.deepEqual(summary(events).errors, []);
      return checkHistory(events, await readLogTruth(await openStore(storage, { prefix: 'db/' })));
    }
    assert.deepEqual(await inProcess(join(root, 'safe'), false), []);
    const problems = await inProcess(join(root, 'broken'), true);
    console.log(`the broken protocol: ${problems.length} problems, e.g. ${problems[0]}`);
    assert.ok(problems.length > 0, 'the broken protocol went unnoticed');
    assert.ok(problems.some((problem) => /acknowledged commit lost|lost update|first committer/.test(problem)), problems.join('\n'));
  });
});
