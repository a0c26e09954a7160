/**
 * A pack process of the txn tests: packs the store in the directory given
 * as argv[2] up to argv[3], one log entry per call, printing each call's
 * cursor as a line, so a test can kill it with SIGKILL part-way.
 */
import { writeSync } from 'node:fs';
import { FileStorage } from '../../src/storage/file-storage.ts';
import { openStore } from '../../src/txn/store.ts';

const store = await openStore(new FileStorage(process.argv[2]!), { prefix: 'db/' });
const beforeTid = Number(process.argv[3]);
for (;;) {
  const progress = await store.pack(beforeTid, { maxEntries: 1 });
  writeSync(1, `${progress.cursor}\n`);
  if (progress.done) break;
}
