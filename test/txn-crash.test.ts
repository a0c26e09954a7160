/**
 * talus/txn when writers die and answers are lost: writer processes killed
 * with SIGKILL at random points of their commits (against a directory and a
 * real Talus) leave a log that reads back whole, with every acknowledged
 * commit in it and snapshot isolation intact, and a store others keep
 * committing to; a proxy in front of Talus that forwards a log create and
 * drops its answer makes no acknowledged commit vanish or double and no
 * false conflict.
 */
import { strict as assert } from 'node:assert';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, request as httpRequest, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { pathToFileURL } from 'node:url';
import { after, before, describe, test } from 'node:test';
import { S3Client } from '../src/client/s3-client.ts';
import { openStorage } from '../src/storage/open-storage.ts';
import { openStore } from '../src/txn/store.ts';
import { startTalus, type RunningTalus } from '../src/talus.ts';
import { silentLogger } from '../src/util/logger.ts';
import { checkHistory, readLogTruth, type TxnEvent } from './helpers/txn-history.ts';
import { runCounterTransaction, spawnWriter, type WriterSpec } from './helpers/txn-workload.ts';

const credentials = { accessKeyId: 'TALUSTXNKEY', secretAccessKey: 'talus-txn-secret-0123456789' };
const HOT = ['a', 'b', 'c'];
let root: string;
let talus: RunningTalus;

before(async () => {
  root = await mkdtemp(join(tmpdir(), 'talus-txn-crash-'));
  talus = await startTalus({ dataDir: join(root, 'talus'), port: 0, address: '127.0.0.1', rootAccessKeyId: credentials.accessKeyId, rootSecretAccessKey: credentials.secretAccessKey, logger: silentLogger });
  const admin = new S3Client({ endpoint: talus.url, ...credentials });
  await admin.createBucket('txn');
  await admin.close();
});

after(async () => {
  await talus?.close();
  await rm(root, { recursive: true, force: true });
});

/** Two writers per round, each killed with SIGKILL after a random number of acknowledged commits plus a random moment. */
async function killRounds(base: Omit<WriterSpec, 'writer' | 'count' | 'oids'>, rounds: number): Promise<TxnEvent[]> {
  const events: TxnEvent[] = [];
  for (let round = 0; round < rounds; round++) {
    const writers = [0, 1].map((w) => spawnWriter({ ...base, writer: `r${round}w${w}`, count: 10_000, oids: HOT }));
    await Promise.all(
      writers.map(async (writer) => {
        const target = 2 + Math.floor(Math.random() * 10);
        // A writer that exits early (an error) fails the test with its stderr instead of hanging it.
        let exited = false;
        writer.events.then(() => (exited = true), () => (exited = true));
        while (!exited && writer.lines.length < target) await delay(5);
        await delay(Math.random() * 30);
        writer.kill9();
        events.push(...(await writer.events));
      }),
    );
  }
  return events;
}

describe('txn: writers killed mid-commit', { timeout: 180_000 }, () => {
  for (const kind of ['directory', 'Talus over S3'] as const) {
    test(`${kind}: every acknowledged commit survives, the log reads back whole, and others commit after`, async () => {
      const dir = join(root, 'killed');
      const base = kind === 'directory' ? { url: pathToFileURL(dir).href, prefix: 'db/' } : { url: 's3://txn/killed', endpoint: talus.url, credentials, prefix: 'db/' };
      const events = await killRounds(base, 3);
      assert.ok(events.some((event) => 'commit' in event.outcome));
      const storage = kind === 'directory' ? openStorage(base.url) : openStorage(base.url, { endpoint: talus.url, credentials });
      const store = await openStore(storage, { prefix: 'db/' });
      // The events of killed writers are incomplete (a commit may be in the log unacknowledged).
      const truth = await readLogTruth(store);
      assert.deepEqual(checkHistory(events, truth, { complete: false }), []);
      const after = await runCounterTransaction(store, 'survivor', 0, HOT);
      assert.ok('commit' in after.outcome, JSON.stringify(after.outcome));
      assert.deepEqual(checkHistory([...events, after], await readLogTruth(store), { complete: false }), []);
      await storage.close();
    });
  }
});

/** Forwards every request to `upstream`; the answers to the first `drops` PUTs of a log entry are swallowed and the connection cut. */
async function lossyProxy(upstream: string, drops: number): Promise<{ url: string; dropped(): number; server: Server }> {
  const target = new URL(upstream);
  let dropped = 0;
  const server = createServer((req, res) => {
    const forward = httpRequest({ host: target.hostname, port: target.port, method: req.method, path: req.url, headers: req.headers }, (upstreamResponse) => {
      if (req.method === 'PUT' && (req.url ?? '').includes('/log/') && dropped < drops) {
        dropped++;
        upstreamResponse.resume();
        upstreamResponse.on('end', () => req.socket.destroy());
        return;
      }
      res.writeHead(upstreamResponse.statusCode ?? 502, upstreamResponse.headers);
      upstreamResponse.pipe(res);
    });
    forward.on('error', () => req.socket.destroy());
    req.pipe(forward);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, dropped: () => dropped, server };
}

describe('txn: a lost answer', { timeout: 60_000 }, () => {
  test('a log create applied by Talus whose answer the network dropped is recognized as the writer’s own commit', async () => {
    const proxy = await lossyProxy(talus.url, 2);
    const lossyStorage = openStorage('s3://txn/lost-answer', { endpoint: proxy.url, credentials });
    const directStorage = openStorage('s3://txn/lost-answer', { endpoint: talus.url, credentials });
    try {
      const store = await openStore(lossyStorage, { prefix: 'db/' });
      const tids: number[] = [];
      const writeIds: string[] = [];
      for (let i = 0; i < 3; i++) {
        const txn = await store.begin();
        txn.put('counter', String(i));
        writeIds.push(txn.writeId);
        tids.push(await txn.commit());
      }
      assert.equal(proxy.dropped(), 2, 'the proxy dropped two answers');
      assert.deepEqual(tids, [1, 2, 3]);
      const direct = await openStore(directStorage, { prefix: 'db/' });
      assert.equal(await direct.lastTransaction(), 3);
      for (const [i, writeId] of writeIds.entries()) assert.equal(await direct.findWrite(writeId), i + 1);
      assert.deepEqual((await direct.history('counter')).map((item) => item.tid), [3, 2, 1]);
      assert.equal((await direct.load('counter'))?.data?.toString(), '2');
    } finally {
      await lossyStorage.close();
      await directStorage.close();
      await new Promise((resolve) => proxy.server.close(resolve));
    }
  });
});
