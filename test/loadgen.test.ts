/**
 * The load generator (src/loadgen) against a real Talus started in-process:
 * every workload runs briefly (by operation count or a short duration) and
 * must finish without a single error on a correct server, with byte counts
 * that match the objects actually stored (the generator checks each GET's
 * length and each HEAD's content-length itself). The delete workload must
 * leave its prefix empty, mixed must exercise every operation, an unreachable
 * endpoint must give counted errors rather than a crash, and `talus bench`
 * must work as a real child process printing its JSON report.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';
import { S3Client } from '../src/client/s3-client.ts';
import {
  formatReport,
  parseDuration,
  parseSize,
  parseSizeRange,
  prepareObjects,
  runLoad,
  sizeOfObject,
  type LoadOptions,
  type LoadProgress,
  type LoadReport,
} from '../src/loadgen/index.ts';
import { ACCESS_KEY_ID, SECRET_ACCESS_KEY, startTestTalus, uniqueBucket, type TestTalus } from './helpers/talus.ts';

const ROOT = resolve(fileURLToPath(new URL('..', import.meta.url)));

async function listAll(client: S3Client, bucket: string, prefix: string): Promise<string[]> {
  const keys: string[] = [];
  let token: string | undefined;
  for (let page = 0; page < 1000; page++) {
    const result = await client.listObjectsV2(bucket, { prefix, continuationToken: token });
    keys.push(...result.keys);
    token = result.nextContinuationToken;
    if (token === undefined) return keys;
  }
  throw new Error('listing did not end');
}

function assertClean(report: LoadReport): void {
  assert.equal(report.total.errors, 0, `errors: ${report.firstErrors.join('; ')}`);
  assert.deepEqual(report.firstErrors, []);
  assert.ok(report.total.count > 0);
  assert.ok(report.client.cpuMicrosPerRequest > 0);
  assert.ok(report.total.latencyMs.p50 > 0 && report.total.latencyMs.p50 <= report.total.latencyMs.p99);
  assert.ok(report.total.latencyMs.p99 <= report.total.latencyMs.p999 && report.total.latencyMs.p999 <= report.total.latencyMs.max);
}

describe('runLoad', () => {
  let talus: TestTalus;
  let client: S3Client;
  let bucket: string;
  let base: Pick<LoadOptions, 'client' | 'bucket'>;
  before(async () => {
    talus = await startTestTalus();
    client = new S3Client({ endpoint: talus.url, accessKeyId: ACCESS_KEY_ID, secretAccessKey: SECRET_ACCESS_KEY, connections: 16 });
    bucket = uniqueBucket('loadgen');
    await client.createBucket(bucket);
    base = { client, bucket };
  });
  after(async () => {
    await client.close();
    await talus.stop();
  });

  test('put: the bytes reported are the bytes stored', async () => {
    const report = await runLoad({ ...base, workload: 'put', size: { min: 1024, max: 64 * 1024 }, concurrency: 8, operations: 120, keyPrefix: 'put/' });
    assertClean(report);
    assert.equal(report.total.count, 120);
    assert.equal(report.byOperation.length, 1);
    assert.equal(report.byOperation[0]!.operation, 'put');
    const keys = await listAll(client, bucket, 'put/');
    assert.equal(keys.length, 120);
    let stored = 0;
    for (const key of keys) stored += Number((await client.headObject(bucket, key)).headers['content-length']);
    assert.equal(report.total.bytes, stored);
    assert.ok(stored >= 120 * 1024 && stored <= 120 * 64 * 1024);
  });

  test('objects above the payload buffer stream from it, and read back whole', async () => {
    const size = parseSizeRange('17MiB-20MiB');
    const put = await runLoad({ ...base, workload: 'put', size, concurrency: 2, operations: 2, keyPrefix: 'large/' });
    assertClean(put);
    const keys = await listAll(client, bucket, 'large/');
    let stored = 0;
    for (const key of keys) stored += Number((await client.headObject(bucket, key)).headers['content-length']);
    assert.equal(put.total.bytes, stored);
    assert.ok(stored >= 2 * 17 * 1024 * 1024);
    const get = await runLoad({ ...base, workload: 'get', size, concurrency: 2, operations: 2, keyCount: 1, keyPrefix: 'large/' });
    assertClean(get);
    assert.equal(get.total.bytes, 2 * sizeOfObject(size, 0));
  });

  test('get: fixed size, bytes = count x size, progress reported', async () => {
    const progress: LoadProgress[] = [];
    const report = await runLoad({
      ...base,
      workload: 'get',
      size: { min: 4096, max: 4096 },
      concurrency: 8,
      durationMs: 600,
      keyCount: 20,
      keyPrefix: 'get/',
      progressIntervalMs: 100,
      onProgress: (update) => progress.push(update),
    });
    assertClean(report);
    assert.equal(report.total.bytes, report.total.count * 4096);
    assert.ok(report.durationMs >= 600 && report.durationMs < 2000, `${report.durationMs} ms`);
    assert.ok(progress.length >= 3, `${progress.length} progress updates`);
    assert.ok(progress.at(-1)!.operations > 0 && progress.at(-1)!.opsPerSecond > 0);
    assert.ok(Math.abs(report.byOperation[0]!.mibPerSecond - report.total.bytes / 1048576 / (report.durationMs / 1000)) < 1e-9);
  });

  test('get and head over a size range: every length checked by the generator', async () => {
    const size = parseSizeRange('1KiB-256KiB');
    const get = await runLoad({ ...base, workload: 'get', size, concurrency: 4, operations: 100, keyCount: 10, keyPrefix: 'range/' });
    assertClean(get); // no error: every body had the length of its object
    const sizes = Array.from({ length: 10 }, (_, id) => sizeOfObject(size, id));
    assert.ok(new Set(sizes).size > 1, 'objects of different sizes');
    assert.ok(get.total.bytes >= 100 * Math.min(...sizes) && get.total.bytes <= 100 * Math.max(...sizes));
    // The same objects, not prepared again: sizes are then not assumed, HEAD only counts.
    const head = await runLoad({ ...base, workload: 'head', size, concurrency: 4, operations: 100, keyCount: 10, keyPrefix: 'range/', prepare: false });
    assertClean(head);
    assert.equal(head.total.count, 100);
    assert.equal(head.total.bytes, 0);
  });

  test('a GET or HEAD that returns the wrong length is an error', async () => {
    // Another writer shrinks the only object during the run: the reads after it must be counted as errors.
    for (const workload of ['get', 'head'] as const) {
      let overwritten: Promise<unknown> | undefined;
      const report = await runLoad({
        ...base,
        workload,
        size: { min: 100, max: 100 },
        concurrency: 2,
        durationMs: 600,
        keyCount: 1,
        keyPrefix: `wrong-${workload}/`,
        progressIntervalMs: 100,
        onProgress: () => {
          overwritten ??= client.putObject(bucket, `wrong-${workload}/00000000`, Buffer.alloc(7));
        },
      });
      await overwritten;
      assert.ok(report.total.count > 0, 'reads before the overwrite succeed');
      assert.ok(report.total.errors > 0, 'reads after it fail');
      const what = workload === 'get' ? 'body' : 'content-length';
      assert.deepEqual(report.firstErrors, [`${workload}: ${what} of 7 bytes where the object has 100`]);
    }
  });

  test('delete: every prepared key deleted once, the prefix left empty', async () => {
    const keys = await prepareObjects({ ...base, keyPrefix: 'delete/', count: 40, size: { min: 10, max: 10 }, concurrency: 8 });
    assert.equal(keys.length, 40);
    assert.equal((await listAll(client, bucket, 'delete/')).length, 40);
    const report = await runLoad({ ...base, workload: 'delete', size: { min: 10, max: 10 }, concurrency: 8, durationMs: 10_000, keyCount: 40, keyPrefix: 'delete/', prepare: false });
    assertClean(report);
    assert.equal(report.total.count, 40);
    assert.ok(report.durationMs < 5000, 'the run ends when every key is gone, not at the duration');
    assert.deepEqual(await listAll(client, bucket, 'delete/'), []);
  });

  test('mixed: no errors on a correct server, every operation exercised', async () => {
    const report = await runLoad({ ...base, workload: 'mixed', size: parseSizeRange('1KiB-32KiB'), concurrency: 16, durationMs: 1500, keyCount: 30, keyPrefix: 'mixed/' });
    assertClean(report);
    assert.deepEqual(report.byOperation.map((stats) => stats.operation), ['put', 'get', 'head', 'delete']);
    for (const stats of report.byOperation) assert.ok(stats.count > 0, `${stats.operation}: ${stats.count}`);
    const sum = report.byOperation.reduce((total, stats) => total + stats.count, 0);
    assert.equal(report.total.count, sum);
    // Roughly warp's 45/15/30/10 (loose bounds: the run is short).
    const share = (operation: string): number => report.byOperation.find((stats) => stats.operation === operation)!.count / sum;
    assert.ok(share('get') > 0.3 && share('get') < 0.6, `get share ${share('get')}`);
  });

  test('mixed with a full key pool: puts overwrite live keys and reads still see right sizes', async () => {
    const report = await runLoad({
      ...base,
      workload: 'mixed',
      size: parseSizeRange('100-5000'),
      concurrency: 4,
      operations: 600,
      keyCount: 3,
      keyPrefix: 'full/',
      mix: { put: 60, get: 30, list: 10 },
      list: { maxKeys: 5 },
    });
    assertClean(report);
    assert.equal(report.total.count, 600);
    // The pool holds at most max(2 x 3, 3 + 2 x 4) = 11 keys: most puts were overwrites.
    assert.ok((await listAll(client, bucket, 'full/')).length <= 11);
    assert.ok(report.byOperation.find((stats) => stats.operation === 'list')!.count > 0);
  });

  test('list: pages of prepared keys', async () => {
    const report = await runLoad({ ...base, workload: 'list', size: { min: 1, max: 1 }, concurrency: 4, operations: 40, keyCount: 25, keyPrefix: 'list/', list: { maxKeys: 10 } });
    assertClean(report);
    assert.equal(report.total.count, 40);
    const folders = await runLoad({ ...base, workload: 'list', size: { min: 1, max: 1 }, concurrency: 2, operations: 10, keyCount: 25, keyPrefix: 'list/', prepare: false, list: { prefix: '', delimiter: '/' } });
    assertClean(folders);
  });

  test('an unreachable endpoint: errors counted with their message, no crash', async () => {
    const nowhere = new S3Client({ endpoint: 'http://127.0.0.1:1', accessKeyId: 'A', secretAccessKey: 'B', connectTimeoutMs: 1000 });
    try {
      const report = await runLoad({ client: nowhere, bucket: 'b', workload: 'put', size: { min: 10, max: 10 }, concurrency: 4, operations: 30 });
      assert.equal(report.total.count, 0);
      assert.equal(report.total.errors, 30);
      assert.ok(report.firstErrors.length >= 1 && report.firstErrors.length <= 10);
      assert.match(report.firstErrors[0]!, /^put: .*ECONNREFUSED/);
      assert.match(formatReport(report), /30 errors; first distinct ones:/);
      await assert.rejects(runLoad({ client: nowhere, bucket: 'b', workload: 'get', size: { min: 10, max: 10 }, concurrency: 2, operations: 5, keyCount: 2 }), /preparing object/);
    } finally {
      await nowhere.close();
    }
  });

  test('an abort signal ends the run early with a report of what was done', async () => {
    const aborter = new AbortController();
    setTimeout(() => aborter.abort(), 300);
    const report = await runLoad({ ...base, workload: 'put', size: { min: 10, max: 10 }, concurrency: 4, durationMs: 60_000, keyPrefix: 'abort/', signal: aborter.signal });
    assertClean(report);
    assert.ok(report.durationMs < 3000);
  });

  test('bad options are refused before any request', async () => {
    const options: LoadOptions = { ...base, workload: 'put', size: { min: 1, max: 1 }, concurrency: 1, operations: 1 };
    await assert.rejects(runLoad({ ...options, concurrency: 0 }), RangeError);
    await assert.rejects(runLoad({ ...options, concurrency: 5000 }), RangeError);
    await assert.rejects(runLoad({ ...options, operations: undefined }), /durationMs, operations/);
    await assert.rejects(runLoad({ ...options, size: { min: 2, max: 1 } }), RangeError);
    await assert.rejects(runLoad({ ...options, size: { min: 0, max: 6 * 1024 ** 3 } }), RangeError);
    await assert.rejects(runLoad({ ...options, keyCount: 10_000_001 }), RangeError);
    await assert.rejects(runLoad({ ...options, workload: 'mixed', mix: { get: 0 } }), /no operation/);
    await assert.rejects(runLoad({ ...options, workload: 'nope' as 'put' }), /unknown workload/);
  });

  test('formatReport: a table with the generator CPU line', async () => {
    const report = await runLoad({ ...base, workload: 'put', size: { min: 10, max: 10 }, concurrency: 2, operations: 20, keyPrefix: 'fmt/' });
    const text = formatReport(report);
    assert.match(text, /^workload put, concurrency 2, /);
    assert.match(text, /operation\s+ops\s+errors\s+ops\/s\s+MiB\/s\s+p50 ms\s+p99 ms\s+p999 ms/);
    assert.match(text, /\nput\s+20\s+0\s/);
    assert.match(text, /generator CPU: [\d.]+ µs per request, [\d.]+% of one core/);
  });
});

describe('sizes and durations', () => {
  test('parseSize', () => {
    assert.equal(parseSize('4096'), 4096);
    assert.equal(parseSize('4KiB'), 4096);
    assert.equal(parseSize('4kib'), 4096);
    assert.equal(parseSize('4K'), 4096);
    assert.equal(parseSize('10MiB'), 10 * 1024 * 1024);
    assert.equal(parseSize('64MiB'), 64 * 1024 * 1024);
    assert.equal(parseSize('1GiB'), 1024 ** 3);
    assert.equal(parseSize('4KB'), 4000);
    assert.equal(parseSize('10MB'), 10_000_000);
    assert.equal(parseSize('1.5KiB'), 1536);
    assert.equal(parseSize(' 0 B '), 0);
    for (const bad of ['', 'KiB', '-1', '4 XB', '1.1B', '4KiB4', '0x10', '1e3']) assert.throws(() => parseSize(bad), RangeError, bad);
  });

  test('parseSizeRange', () => {
    assert.deepEqual(parseSizeRange('4KiB'), { min: 4096, max: 4096 });
    assert.deepEqual(parseSizeRange('4KiB-10MiB'), { min: 4096, max: 10 * 1024 * 1024 });
    assert.deepEqual(parseSizeRange('0-1'), { min: 0, max: 1 });
    for (const bad of ['10MiB-4KiB', '1-2-3', '-4KiB', '4KiB-', 'a-b']) assert.throws(() => parseSizeRange(bad), RangeError, bad);
  });

  test('parseDuration', () => {
    assert.equal(parseDuration('10s'), 10_000);
    assert.equal(parseDuration('500ms'), 500);
    assert.equal(parseDuration('2m'), 120_000);
    assert.equal(parseDuration('1h'), 3_600_000);
    assert.equal(parseDuration('1m30s'), 90_000);
    assert.equal(parseDuration('1.5s'), 1500);
    for (const bad of ['', '10', 's', '10x', '10 s', '-1s', '10s5']) assert.throws(() => parseDuration(bad), RangeError, bad);
  });

  test('object sizes are log-uniform within the range and stable per id', () => {
    const range = { min: 1024, max: 1024 * 1024 };
    const sizes = Array.from({ length: 10_000 }, (_, id) => sizeOfObject(range, id));
    assert.ok(sizes.every((size) => Number.isInteger(size) && size >= range.min && size <= range.max));
    assert.equal(sizeOfObject(range, 42), sizeOfObject(range, 42));
    // Log-uniform: the median sits near the geometric mean (32 KiB), not the midpoint (512 KiB).
    const median = [...sizes].sort((a, b) => a - b)[5000]!;
    assert.ok(median > 20 * 1024 && median < 50 * 1024, `median ${median}`);
    assert.equal(sizeOfObject({ min: 7, max: 7 }, 3), 7);
  });
});

describe('talus bench (child process)', () => {
  let talus: TestTalus;
  before(async () => {
    talus = await startTestTalus();
  });
  after(async () => {
    await talus.stop();
  });

  function bench(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
    return new Promise((resolveRun, reject) => {
      const child = spawn(process.execPath, [join(ROOT, 'bin', 'talus.js'), 'bench', ...args], {
        cwd: ROOT,
        env: { ...process.env, AWS_ACCESS_KEY_ID: ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY: SECRET_ACCESS_KEY },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
      child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
      child.once('error', reject);
      child.once('close', (code) => resolveRun({ code, stdout, stderr }));
    });
  }

  test('--json prints the report; the bucket is created', async () => {
    const bucket = uniqueBucket('cli');
    const run = await bench(['--endpoint', talus.url, '--bucket', bucket, '--workload', 'get', '--size', '4KiB', '--keys', '20', '--concurrency', '8', '--duration', '2s', '--json']);
    assert.equal(run.code, 0, run.stderr);
    const report = JSON.parse(run.stdout) as LoadReport;
    assert.equal(report.workload, 'get');
    assert.equal(report.concurrency, 8);
    assert.ok(report.total.count > 0);
    assert.equal(report.total.errors, 0);
    assert.equal(report.total.bytes, report.total.count * 4096);
    assert.ok(report.durationMs >= 2000);
    assert.ok(report.client.cpuMicrosPerRequest > 0);
    assert.match(run.stderr, /preparing 20 objects/);
    // 2 s, not 1: with the deadline and the first progress tick both at 1 s, a loaded machine could end the run first.
    assert.match(run.stderr, /\d+ ops\/s, 0 errors/);
  });

  test('bad usage exits 2 with a message', async () => {
    const run = await bench(['--endpoint', talus.url, '--bucket', 'b', '--size', '4XB']);
    assert.equal(run.code, 2);
    assert.match(run.stderr, /invalid size/);
    assert.match(run.stderr, /Usage: talus bench/);
  });
});
