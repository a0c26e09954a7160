/**
 * Starts a worker thread that runs one of Talus's own modules, from the
 * compiled dist/ or from the TypeScript sources alike. Node 20 does not apply
 * the parent's tsx loader to worker threads, so from the sources (tests, or
 * bin/talus.js without a current dist/) a small bootstrap registers tsx in
 * the thread first and then imports the module; from dist/ the bootstrap
 * imports the compiled .js directly. The module's own errors at load time
 * surface as the worker's 'error' event, as they would without it.
 */
import { Worker, type WorkerOptions } from 'node:worker_threads';

const BOOTSTRAP = `
const { workerData } = require('node:worker_threads');
(async () => {
  if (workerData.tsxApi !== undefined) (await import(workerData.tsxApi)).register();
  await import(workerData.moduleUrl);
})().catch((error) => { setImmediate(() => { throw error; }); });
`;

/**
 * `siblingOf` is the caller's import.meta.url and `name` the module's file
 * name without extension, beside it: the extension follows the caller's (.ts
 * from the sources, .js from dist/). The module reads `workerData` as usual.
 */
export function startModuleThread(siblingOf: string, name: string, workerData: Record<string, unknown>, options: Omit<WorkerOptions, 'eval' | 'workerData'> = {}): Worker {
  const fromSources = siblingOf.endsWith('.ts');
  return new Worker(BOOTSTRAP, {
    ...options,
    eval: true,
    workerData: {
      ...workerData,
      moduleUrl: new URL(`./${name}${fromSources ? '.ts' : '.js'}`, siblingOf).href,
      tsxApi: fromSources ? import.meta.resolve('tsx/esm/api') : undefined,
    },
  });
}
