/**
 * A writer process of the txn fencing test: opens the store at the storage
 * argv[2] names (JSON: url, endpoint, credentials; prefix 'db/') and commits, in a loop, transactions that
 * each write a record large enough to be a data object of its own, printing
 * one JSON line per commit once it has answered: {"i", "writeId", "tid"} or
 * {"i", "writeId", "fenced": true}. Runs until killed.
 */
import { writeSync } from 'node:fs';
import { openStorage } from '../../src/storage/open-storage.ts';
import { FencedError } from '../../src/txn/errors.ts';
import { openStore } from '../../src/txn/store.ts';

const LARGE = 64 * 1024;
const spec = JSON.parse(process.argv[2]!) as { url: string; endpoint: string; credentials: { accessKeyId: string; secretAccessKey: string } };
const store = await openStore(openStorage(spec.url, { endpoint: spec.endpoint, credentials: spec.credentials }), { prefix: 'db/' });
for (let i = 0; ; i++) {
  const txn = await store.begin();
  txn.put(`w${i}`, `${i}:`.padEnd(LARGE, 'w'));
  try {
    const tid = await txn.commit();
    writeSync(1, `${JSON.stringify({ i, writeId: txn.writeId, tid })}\n`);
  } catch (error) {
    if (!(error instanceof FencedError)) throw error;
    writeSync(1, `${JSON.stringify({ i, writeId: txn.writeId, fenced: true })}\n`);
  }
}
