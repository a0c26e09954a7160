/**
 * talus.toml reloaded without a restart (ReloadConfig, SIGHUP), against a
 * real server whose backends are directories:
 * - a backend and a placement added to the file and a bucket's placement line
 *   moved: new writes land on the new placement, old objects move there;
 * - a backend removed from the file while blobs are on it, and a malformed
 *   file: refused, saying why, nothing changed;
 * - the operation against every kind of caller;
 * - SIGHUP on a server process with --workers does what the operation does:
 *   the primary reloads and tells the workers, which serve the writes.
 */
import { CreateBucketCommand, GetObjectCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { AdminApiError, AdminClient } from '../src/admin/client.ts';
import { ADMIN_PATH_PREFIX } from '../src/admin/paths.ts';
import { loadConfig } from '../src/config/config.ts';
import { startTalus, type RunningTalus } from '../src/talus.ts';
import { silentLogger } from '../src/util/logger.ts';
import { ACCESS_KEY_ID, SECRET_ACCESS_KEY, makeClient } from './helpers/talus.ts';
import { startServerProcess } from './helpers/process.ts';

type Credentials = { accessKeyId: string; secretAccessKey: string };
const ROOT: Credentials = { accessKeyId: ACCESS_KEY_ID, secretAccessKey: SECRET_ACCESS_KEY };

async function outcome(call: Promise<unknown>): Promise<string> {
  try {
    await call;
    return 'ok';
  } catch (error) {
    if (error instanceof AdminApiError) return error.message; // "<code>: <message>"
    throw error;
  }
}

async function eventually(what: string, check: () => Promise<boolean>, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

async function fileCount(directory: string): Promise<number> {
  return (await readdir(directory, { withFileTypes: true, recursive: true })).filter((entry) => entry.isFile()).length;
}

async function bodyOf(s3: S3Client, bucket: string, key: string): Promise<Buffer> {
  const answer = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
  return Buffer.from(await answer.Body!.transformToByteArray());
}

/** talus.toml over directory backends under `root`: `backends` by name, one single placement `p<name>` over each. */
function toml(root: string, backends: string[], defaultPlacement: string, buckets: Record<string, string> = {}): string {
  return [
    ...backends.flatMap((name) => [`[backends.${name}]`, 'type = "directory"', `path = "${join(root, name)}"`, `[placements.p${name}]`, 'type = "single"', `backend = "${name}"`]),
    '[defaults]', `placement = "${defaultPlacement}"`,
    '[buckets]', ...Object.entries(buckets).map(([bucket, placement]) => `${bucket} = "${placement}"`),
    '',
  ].join('\n');
}

describe('ReloadConfig: talus.toml applied without a restart', () => {
  let root: string;
  let configPath: string;
  let talus: RunningTalus;
  let admin: AdminClient;
  let s3: S3Client;
  const objects = new Map([['one', randomBytes(30_000)], ['two', randomBytes(70_000)]]);
  const placements = (): Promise<unknown> => admin.call('ListPlacements');

  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'talus-reload-'));
    for (const disk of ['a', 'b']) await mkdir(join(root, disk));
    configPath = join(root, 'talus.toml');
    await writeFile(configPath, toml(root, ['a'], 'pa'));
    talus = await startTalus({
      dataDir: join(root, 'data'), port: 0, address: '127.0.0.1', rootAccessKeyId: ROOT.accessKeyId, rootSecretAccessKey: ROOT.secretAccessKey,
      logger: silentLogger, admin: { port: 0, address: '127.0.0.1' }, config: await loadConfig(configPath), configPath, healInBackground: false,
    });
    admin = new AdminClient({ endpoint: talus.adminUrl!, ...ROOT });
    s3 = makeClient(talus.url);
    for (const bucket of ['moving', 'staying']) await s3.send(new CreateBucketCommand({ Bucket: bucket }));
    for (const [key, body] of objects) for (const bucket of ['moving', 'staying']) await s3.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: body }));
  });
  after(async () => {
    s3.destroy();
    await talus.close();
    await rm(root, { recursive: true, force: true });
  });

  test('a backend and a placement added, a bucket\'s line moved: new writes land there and old objects follow', async () => {
    assert.equal(await fileCount(join(root, 'b')), 0);
    const onA = await fileCount(join(root, 'a'));
    await writeFile(configPath, toml(root, ['a', 'b'], 'pa', { moving: 'pb' }));
    const report = await admin.call<Record<string, unknown>>('ReloadConfig');
    assert.deepEqual(report['backends'], { added: ['b'], changed: [], removed: [] });
    assert.deepEqual(report['placements'], { added: ['pb'], changed: [], removed: [] });
    assert.deepEqual(report['buckets'], ['moving: pa → pb']);
    assert.deepEqual(report['needsRestart'], []);

    // The re-placement the reload started moves the moved bucket's old objects to b (and purges their shards on a).
    await eventually('the old objects to move to b', async () => (await fileCount(join(root, 'b'))) === objects.size);
    await eventually('their shards on a to be purged', async () => (await fileCount(join(root, 'a'))) === onA - objects.size);
    await s3.send(new PutObjectCommand({ Bucket: 'moving', Key: 'new', Body: randomBytes(40_000) }));
    assert.equal(await fileCount(join(root, 'b')), objects.size + 1, 'a new object of the moved bucket is written to b');
    await s3.send(new PutObjectCommand({ Bucket: 'staying', Key: 'new', Body: randomBytes(40_000) }));
    assert.equal(await fileCount(join(root, 'a')), onA - objects.size + 1, 'the other bucket still writes to a');
    for (const [key, body] of objects) for (const bucket of ['moving', 'staying']) assert.ok((await bodyOf(s3, bucket, key)).equals(body), `${bucket}/${key}`);
  });

  test('a backend removed from the file while blobs are on it, and a malformed file: refused, nothing changed', async () => {
    const before = await placements();
    await writeFile(configPath, toml(root, ['b'], 'pb', { moving: 'pb' }));
    assert.match(await outcome(admin.call('ReloadConfig')), /^Conflict: talus.toml not reloaded, nothing changed: backend a is gone from talus.toml but still holds shards of \d+ blobs/);
    assert.deepEqual(await placements(), before);
    const onA = await fileCount(join(root, 'a'));
    await s3.send(new PutObjectCommand({ Bucket: 'staying', Key: 'after-refusal', Body: randomBytes(40_000) }));
    assert.equal(await fileCount(join(root, 'a')), onA + 1, 'the default placement is still pa');

    await writeFile(configPath, `${toml(root, ['a', 'b'], 'pa', { moving: 'pb' })}[backends.c\n`);
    assert.match(await outcome(admin.call('ReloadConfig')), /^InvalidRequest: talus.toml not reloaded, nothing changed: .*not valid TOML/);
    await writeFile(configPath, toml(root, ['a', 'b'], 'nowhere', { moving: 'pb' }));
    assert.match(await outcome(admin.call('ReloadConfig')), /^InvalidRequest: talus.toml not reloaded, nothing changed: .*nowhere/);
    assert.deepEqual(await placements(), before);

    // The file as it was but for [health], read only at a start: named as needing a restart, nothing else changed.
    await writeFile(configPath, `${toml(root, ['a', 'b'], 'pa', { moving: 'pb' })}[health]\nprobe_interval = "7s"\n`);
    const report = await admin.call<Record<string, unknown>>('ReloadConfig');
    assert.deepEqual([report['backends'], report['placements'], report['buckets'], report['defaultPlacement']], [{ added: [], changed: [], removed: [] }, { added: [], changed: [], removed: [] }, [], undefined]);
    assert.deepEqual(report['needsRestart'], ['[health]']);
    assert.deepEqual(await placements(), before);
  });

  test('the default placement changed: buckets without a line of their own write to it and their objects follow; then backend a, empty, leaves', async () => {
    await writeFile(configPath, toml(root, ['a', 'b'], 'pb', { moving: 'pb' }));
    const report = await admin.call<Record<string, unknown>>('ReloadConfig');
    assert.equal(report['defaultPlacement'], 'pa → pb');
    assert.equal((await admin.call<{ defaultPlacement: string }>('ListPlacements')).defaultPlacement, 'pb');
    // The other bucket's objects follow the default to b.
    await eventually('every object to leave a', async () => (await fileCount(join(root, 'a'))) === 0);
    const onB = await fileCount(join(root, 'b'));
    await s3.send(new CreateBucketCommand({ Bucket: 'fresh' }));
    await s3.send(new PutObjectCommand({ Bucket: 'fresh', Key: 'first', Body: randomBytes(40_000) }));
    assert.equal(await fileCount(join(root, 'b')), onB + 1, 'a new bucket\'s object is written to b');
    for (const [key, body] of objects) assert.ok((await bodyOf(s3, 'staying', key)).equals(body), `staying/${key}`);

    // With nothing left on it, backend a (and its placement) leave with the file.
    await writeFile(configPath, toml(root, ['b'], 'pb', { moving: 'pb' }));
    const removal = await admin.call<Record<string, unknown>>('ReloadConfig');
    assert.deepEqual([removal['backends'], removal['placements']], [{ added: [], changed: [], removed: ['a'] }, { added: [], changed: [], removed: ['pa'] }]);
    assert.deepEqual((await admin.call<{ backends: { name: string }[] }>('ListBackends')).backends.map((backend) => backend.name), ['b']);
  });

  test('anonymous, a plain key, a token of another scope and an expired token are refused; a token scoped to it and admin reload', async () => {
    const call = async (input: object, authorization?: string): Promise<{ status: number; code: string | undefined }> => {
      const response = await fetch(`${talus.adminUrl}${ADMIN_PATH_PREFIX}ReloadConfig`, {
        method: 'POST', body: JSON.stringify(input), headers: { 'content-type': 'application/json', ...(authorization === undefined ? {} : { authorization }) },
      });
      return { status: response.status, code: (await response.json() as { code?: string }).code };
    };
    const plain = await admin.call<Credentials>('CreateUser', { name: 'plain' });
    const other = await admin.call<{ token: string }>('CreateToken', { name: 'reader', scope: ['ListBackends'], expiresInSeconds: 600 });
    const expiring = await admin.call<{ token: string }>('CreateToken', { name: 'brief', scope: ['*'], expiresInSeconds: 1 });
    const scoped = await admin.call<{ token: string }>('CreateToken', { name: 'reloader', scope: ['ReloadConfig'], expiresInSeconds: 600 });
    await new Promise((resolve) => setTimeout(resolve, 1_100));
    assert.deepEqual(await call({}), { status: 401, code: 'AuthenticationRequired' });
    assert.match(await outcome(new AdminClient({ endpoint: talus.adminUrl!, ...plain }).call('ReloadConfig')), /^AccessDenied/);
    assert.deepEqual(await call({}, `Bearer ${other.token}`), { status: 403, code: 'AccessDenied' });
    assert.equal((await call({}, `Bearer ${expiring.token}`)).code, 'InvalidToken');
    assert.equal((await call({}, `Bearer ${scoped.token}`)).status, 200);
    assert.equal(await outcome(admin.call('ReloadConfig')), 'ok');
  });
});

describe('SIGHUP reloads talus.toml as ReloadConfig does', () => {
  test('a bucket\'s line moved to a new backend\'s placement: after SIGHUP new writes (served by --workers) land there', { timeout: 120_000 }, async () => {
    const root = await mkdtemp(join(tmpdir(), 'talus-sighup-'));
    for (const disk of ['a', 'b']) await mkdir(join(root, disk));
    const configPath = join(root, 'talus.toml');
    await writeFile(configPath, toml(root, ['a'], 'pa'));
    const server = await startServerProcess(join(root, 'data'), undefined, ['--config', configPath, '--console-address', 'none', '--workers', '2']);
    const s3 = makeClient(server.url);
    try {
      await s3.send(new CreateBucketCommand({ Bucket: 'hup' }));
      await s3.send(new PutObjectCommand({ Bucket: 'hup', Key: 'before', Body: randomBytes(40_000) }));
      assert.equal(await fileCount(join(root, 'b')), 0);
      await writeFile(configPath, toml(root, ['a', 'b'], 'pa', { hup: 'pb' }));
      server.child.kill('SIGHUP');
      await eventually('the reload to be logged', async () => server.output().includes('talus.toml reloaded'));
      await eventually('the old object to move to b', async () => (await fileCount(join(root, 'b'))) === 1);
      // Served by a worker: it applied the reload before the primary logged it.
      await s3.send(new PutObjectCommand({ Bucket: 'hup', Key: 'after', Body: randomBytes(40_000) }));
      assert.equal(await fileCount(join(root, 'b')), 2, 'the new object is written to b');

      // A malformed file: refused, logged, and the server keeps serving as before.
      await writeFile(configPath, `${toml(root, ['a', 'b'], 'pa')}[backends.c\n`);
      server.child.kill('SIGHUP');
      await eventually('the refusal to be logged', async () => server.output().includes('talus.toml not reloaded'));
      await s3.send(new PutObjectCommand({ Bucket: 'hup', Key: 'still', Body: randomBytes(40_000) }));
      assert.equal(await fileCount(join(root, 'b')), 3, 'the bucket still writes to b');
    } finally {
      s3.destroy();
      await server.stop();
      await rm(root, { recursive: true, force: true });
    }
  });
});
