/**
 * The filesystem ObjectStorage beyond the conformance suite: conditional
 * writes race-free across processes, keys that cannot leave the root, stale
 * locks of dead processes, atomic replacement under concurrent reads.
 */
import { strict as assert } from 'node:assert';
import { execFile, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readdir, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { objectPaths } from '../src/storage/file-layout.ts';
import { FileStorage } from '../src/storage/file-storage.ts';
import { readAll, listAll } from '../src/storage/conformance.ts';
import { PROJECT_ROOT } from './helpers/process.ts';

const run = promisify(execFile);
const RACER = join(PROJECT_ROOT, 'test', 'fixtures', 'storage-racer.ts');

async function racers(root: string, mode: string, key: string, count: number, rounds = 0): Promise<Record<string, number | boolean>[]> {
  const runs = Array.from({ length: count }, (_, id) => run(process.execPath, ['--import', 'tsx', RACER, root, mode, key, String(id), String(rounds)], { cwd: PROJECT_ROOT, timeout: 120_000 }));
  return (await Promise.all(runs)).map(({ stdout }) => JSON.parse(stdout.trim()) as Record<string, number | boolean>);
}

async function walk(directory: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(directory, { withFileTypes: true })) {
    const path = join(directory, entry.name);
    if (entry.isDirectory()) out.push(...(await walk(path)));
    else out.push(path);
  }
  return out;
}

describe('FileStorage', () => {
  let parent: string;
  let root: string;
  let storage: FileStorage;

  before(async () => {
    parent = await mkdtemp(join(tmpdir(), 'talus-file-storage-'));
    root = join(parent, 'root');
    storage = new FileStorage(root);
  });
  after(async () => {
    await rm(parent, { recursive: true, force: true });
  });

  test('putIfAbsent raced by six processes: exactly one creates the object, and its bytes are the winner\'s', async () => {
    const results = await racers(root, 'absent', 'race/absent', 6);
    assert.equal(results.filter((result) => result['won'] === true).length, 1, JSON.stringify(results));
    const text = (await readAll((await storage.get('race/absent')).body)).toString();
    assert.match(text, /^writer \d$/);
  });

  test('putIfMatch as compare-and-swap from four processes: no increment of a shared counter is lost', async () => {
    await storage.put('race/counter', '0');
    const results = await racers(root, 'counter', 'race/counter', 4, 25);
    assert.deepEqual(results.map((result) => result['increments']), [25, 25, 25, 25]);
    assert.equal((await readAll((await storage.get('race/counter')).body)).toString(), '100');
  });

  test('keys with .., absolute paths and backslashes stay inside the root', async () => {
    const keys = ['../escape', '../../escape2', '/etc/escape3', '..\\..\\escape4', 'a/../../escape5', '.', '..'];
    for (const key of keys) await storage.put(key, key);
    assert.deepEqual(await readdir(parent), ['root'], 'nothing was written beside the root');
    for (const file of await walk(root)) assert.ok(!relative(root, file).startsWith('..'), file);
    for (const key of keys) assert.equal((await readAll((await storage.get(key)).body)).toString(), key);
    for (const key of keys) {
      const { object } = objectPaths(key);
      assert.ok(!object.split('/').some((name) => name === '..' || name === '.'), object);
    }
  });

  test('a 1024-byte key of one segment (longer than a file name) round-trips and lists', async () => {
    const key = `long/${'é'.repeat(509)}`; // 5 + 1018 bytes
    assert.equal(Buffer.byteLength(key), 1023);
    await storage.put(key, 'long');
    assert.equal((await storage.head(key)).size, 4);
    assert.deepEqual((await listAll(storage, 'long/')).keys, [key]);
    await storage.delete(key);
    assert.deepEqual((await listAll(storage, 'long/')).keys, []);
  });

  test('a lock left by a dead process is broken; a live holder\'s lock is waited for', async () => {
    const dead = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))']).stdout.toString();
    const { lock, directory } = objectPaths('locked/key');
    await mkdir(join(root, directory), { recursive: true });
    const { hostname } = await import('node:os');
    await writeFile(join(root, lock), `${dead} ${hostname()} feedfacefeedface\n`);
    await storage.put('locked/key', 'after a crash');
    assert.equal((await readAll((await storage.get('locked/key')).body)).toString(), 'after a crash');

    await writeFile(join(root, lock), `${process.pid} ${hostname()} 0123456789abcdef\n`);
    const impatient = new FileStorage(root, { lockWaitMs: 300 });
    await assert.rejects(impatient.put('locked/key', 'blocked'), (error: unknown) => (error as { code?: string }).code === 'SlowDown');
    assert.equal((await readAll((await storage.get('locked/key')).body)).toString(), 'after a crash', 'nothing changed');
    await rm(join(root, lock));
  });

  test('replacement is atomic: concurrent readers see one whole version or the other, and no temporary file is left', async () => {
    const versions = [randomBytes(1 << 20), randomBytes(1 << 20)];
    await storage.put('atomic', versions[0]!);
    let stop = false;
    let reads = 0;
    const reader = (async () => {
      while (!stop) {
        const bytes = await readAll((await storage.get('atomic')).body);
        assert.ok(bytes.equals(versions[0]!) || bytes.equals(versions[1]!), 'a whole version');
        reads++;
      }
    })();
    for (let i = 0; i < 20; i++) await storage.put('atomic', versions[i % 2]!);
    stop = true;
    await reader;
    assert.ok(reads > 0);
    assert.deepEqual(await readdir(join(root, '.talus-storage', 'tmp')), []);
  });

  test('temporary files a crash left behind (untouched for an hour) are swept by the next process; fresh ones are not', async () => {
    const tmp = join(root, '.talus-storage', 'tmp');
    await writeFile(join(tmp, 'crashed.tmp'), 'half an object');
    await writeFile(join(tmp, 'in-progress.tmp'), 'being written');
    const hourAgo = new Date(Date.now() - 2 * 60 * 60_000);
    await utimes(join(tmp, 'crashed.tmp'), hourAgo, hourAgo);
    await new FileStorage(root).put('sweep', 'x');
    assert.deepEqual(await readdir(tmp), ['in-progress.tmp']);
    await rm(join(tmp, 'in-progress.tmp'));
  });

  test('a failed condition leaves no temporary file and no lock', async () => {
    await storage.put('clean', 'x');
    await assert.rejects(storage.putIfAbsent('clean', 'y'));
    await assert.rejects(storage.putIfMatch('clean', 'y', '"0"'));
    assert.deepEqual(await readdir(join(root, '.talus-storage', 'tmp')), []);
    assert.ok(!(await readdir(root)).some((name) => name.endsWith('.lock')));
  });
});
