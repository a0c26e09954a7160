/**
 * A writer process of the txn tests: opens the store named by its JSON
 * argument (a WriterSpec) and runs read-modify-write transactions, printing
 * each one's event as a JSON line once its commit has answered.
 */
import { writeSync } from 'node:fs';
import { openStorage } from '../../src/storage/open-storage.ts';
import { openStore } from '../../src/txn/store.ts';
import { runCounterTransaction, type WriterSpec } from './txn-workload.ts';

const spec = JSON.parse(process.argv[2]!) as WriterSpec;
const storage = openStorage(spec.url, {
  ...(spec.endpoint === undefined ? {} : { endpoint: spec.endpoint }),
  ...(spec.credentials === undefined ? {} : { credentials: spec.credentials }),
});
const store = await openStore(storage, { prefix: spec.prefix, groupCommit: spec.groupCommit ?? true, isolation: spec.isolation ?? 'snapshot' });
for (let i = 0; i < spec.count; i++) {
  const event = await runCounterTransaction(store, spec.writer, i, spec.oids, { readExtra: spec.readExtra === true });
  // Synchronous: the line is out before the next commit starts (a kill -9 loses no acknowledged line).
  writeSync(1, `${JSON.stringify(event)}\n`);
}
await store.close();
await storage.close();
