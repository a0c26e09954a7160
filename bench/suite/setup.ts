/**
 * The data the workloads read, written through the S3 API before the timed
 * runs (untimed) with the load generator's prepareObjects at 64 in flight.
 * Each data set is made once per server and shared by the workloads that
 * read it (RunningServer.prepared); how long it took is kept for the report.
 */
import { prepareObjects, type SizeRange } from '../../src/loadgen/index.ts';
import { clientFor } from './measure.ts';
import type { ListLayout } from './options.ts';
import type { RunningServer } from './servers.ts';

export const POPULATE_CONCURRENCY = 64;
const POPULATE_TICK_MS = 30_000;
export const BENCH_BUCKET = 'bench';
export const LIST_BUCKET = 'bench-list';
export const BULK_BUCKET = 'bench-bulk';
/** What the bulk-metadata objects carry (about 100 bytes, as tags from an application would be). */
export const BULK_METADATA: Readonly<Record<string, string>> = { owner: 'bench-suite', project: 'talus-issue-3', checksum: '9f86d081884c7d659a2feaa0c55ad015' };

export interface Population {
  what: string;
  server: string;
  objects: number;
  seconds: number;
  objectsPerSecond: number;
}

/** Every population done so far, for the report (populating is PUT throughput too). */
export const populations: Population[] = [];

interface PopulateTask {
  prefix: string;
  count: number;
}

/** Runs `make` once per server and name; later callers share its promise. */
function once<T>(server: RunningServer, name: string, make: () => Promise<T>): Promise<T> {
  let promise = server.prepared.get(name) as Promise<T> | undefined;
  if (promise === undefined) {
    promise = make();
    server.prepared.set(name, promise);
  }
  return promise;
}

export function ensureBucket(server: RunningServer, bucket: string): Promise<void> {
  return once(server, `bucket ${bucket}`, async () => {
    const client = clientFor(server, 1);
    try {
      await client.createBucket(bucket);
    } finally {
      await client.close();
    }
  });
}

/**
 * PUTs every task's objects (`<prefix><8 digits>`, as runLoad names them),
 * about POPULATE_CONCURRENCY in flight in all: small tasks run side by side.
 */
export async function populate(server: RunningServer, what: string, bucket: string, tasks: PopulateTask[], size: SizeRange, metadata?: Record<string, string>): Promise<void> {
  await ensureBucket(server, bucket);
  const total = tasks.reduce((sum, task) => sum + task.count, 0);
  process.stderr.write(`  populating ${what} on ${server.label}: ${total} objects …`);
  const startMs = performance.now();
  // Large populations take minutes (--full): show that it is alive.
  const ticker = setInterval(() => process.stderr.write(` ${((performance.now() - startMs) / 1000).toFixed(0)} s …`), POPULATE_TICK_MS);
  const client = clientFor(server, POPULATE_CONCURRENCY);
  try {
    let group: PopulateTask[] = [];
    let groupConcurrency = 0;
    const flush = async (): Promise<void> => {
      await Promise.all(
        group.map((task) =>
          prepareObjects({ client, bucket, keyPrefix: task.prefix, count: task.count, size, concurrency: Math.min(POPULATE_CONCURRENCY, task.count), metadata }),
        ),
      );
      group = [];
      groupConcurrency = 0;
    };
    for (const task of tasks) {
      const concurrency = Math.min(POPULATE_CONCURRENCY, task.count);
      if (groupConcurrency + concurrency > POPULATE_CONCURRENCY) await flush();
      group.push(task);
      groupConcurrency += concurrency;
    }
    await flush();
  } finally {
    clearInterval(ticker);
    await client.close();
  }
  const seconds = (performance.now() - startMs) / 1000;
  populations.push({ what, server: server.label, objects: total, seconds, objectsPerSecond: total / seconds });
  process.stderr.write(` ${seconds.toFixed(1)} s (${(total / seconds).toFixed(0)} objects/s)\n`);
}

export const SMALL_PREFIX = 'small/';
export const SMALL_OBJECT_BYTES = 4096;

/** The 4 KiB objects GET and HEAD read. */
export function ensureSmallObjects(server: RunningServer, count: number): Promise<void> {
  return once(server, 'small objects', () =>
    populate(server, '4 KiB objects', BENCH_BUCKET, [{ prefix: SMALL_PREFIX, count }], { min: SMALL_OBJECT_BYTES, max: SMALL_OBJECT_BYTES }),
  );
}

export const LARGE_PREFIX = 'large/';

export function ensureLargeObjects(server: RunningServer, count: number, bytes: number): Promise<void> {
  return once(server, 'large objects', () => populate(server, `${bytes / (1024 * 1024)} MiB objects`, BENCH_BUCKET, [{ prefix: LARGE_PREFIX, count }], { min: bytes, max: bytes }));
}

/** Key names of the listing bucket. */
export const LIST_FLAT_PREFIX = 'a-flat/';
export const LIST_FEW_PREFIX = 'b-few/';
export const LIST_MANY_PREFIX = 'c-many/';

export function listGroupPrefix(group: string, index: number): string {
  return `${group}p-${String(index).padStart(4, '0')}/`;
}

/** The key runLoad/prepareObjects gives object `id` under `prefix`. */
export function preparedKey(prefix: string, id: number): string {
  return `${prefix}${String(id).padStart(8, '0')}`;
}

/** The listing bucket: zero-byte objects laid out as ListLayout describes. */
export function ensureListBucket(server: RunningServer, layout: ListLayout): Promise<void> {
  return once(server, 'list bucket', () => {
    const tasks: PopulateTask[] = [{ prefix: LIST_FLAT_PREFIX, count: layout.flatKeys }];
    for (let index = 0; index < layout.prefixes; index++) tasks.push({ prefix: listGroupPrefix(LIST_FEW_PREFIX, index), count: layout.keysPerPrefixFew });
    for (let index = 0; index < layout.prefixes; index++) tasks.push({ prefix: listGroupPrefix(LIST_MANY_PREFIX, index), count: layout.keysPerPrefixMany });
    return populate(server, 'the listing bucket', LIST_BUCKET, tasks, { min: 0, max: 0 });
  });
}

export const BULK_PREFIX = 'bulk/';

/** Zero-byte objects with user metadata, for the bulk-metadata walk. */
export function ensureBulkObjects(server: RunningServer, count: number): Promise<void> {
  return once(server, 'bulk objects', () =>
    populate(server, 'objects with user metadata', BULK_BUCKET, [{ prefix: BULK_PREFIX, count }], { min: 0, max: 0 }, { ...BULK_METADATA }),
  );
}

/** The judged `talus scan --metadata list` walk's own objects (issue 14's 100 000), beside the bulk ones: same bucket and metadata. */
export const SCAN_LIST_PREFIX = 'scan-list/';

export function ensureScanListObjects(server: RunningServer, count: number): Promise<void> {
  return once(server, 'scan-list objects', () =>
    populate(server, 'objects with user metadata for the list walk', BULK_BUCKET, [{ prefix: SCAN_LIST_PREFIX, count }], { min: 0, max: 0 }, { ...BULK_METADATA }),
  );
}

const DELETE_PAGES_MAX = 10_000;

/** Removes everything under `prefix` (after runs that only add, such as 64 MiB PUTs), so the disk does not fill up. */
export async function deletePrefix(server: RunningServer, bucket: string, prefix: string): Promise<number> {
  const client = clientFor(server, POPULATE_CONCURRENCY);
  let deleted = 0;
  try {
    for (let pages = 0; pages < DELETE_PAGES_MAX; pages++) {
      const page = await client.listObjectsV2(bucket, { prefix, maxKeys: 1000 });
      const outcomes = await Promise.allSettled(page.keys.map((key) => client.deleteObject(bucket, key)));
      // One retry, one at a time: s3rver's concurrent DELETEs race on removing the emptied directory (500).
      const failed = page.keys.filter((_, index) => outcomes[index]!.status === 'rejected');
      for (const key of failed) await client.deleteObject(bucket, key);
      deleted += page.keys.length;
      if (!page.isTruncated || page.keys.length === 0) return deleted;
    }
    throw new Error(`deleting ${prefix}: more than ${DELETE_PAGES_MAX} pages`);
  } finally {
    await client.close();
  }
}
