// A worker thread's entry when Talus runs from its TypeScript sources (tests,
// or bin/talus.js without a current dist/): Node 20 does not apply the
// parent's tsx loader to worker threads, so this registers tsx in the
// thread, then imports the thread's real module (workerData.threadModule).
// dist/ starts its compiled .js modules directly and never loads this file.
import { workerData } from 'node:worker_threads';
import { register } from 'tsx/esm/api';

register();
await import(workerData.threadModule);
