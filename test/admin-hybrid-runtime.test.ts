/**
 * Hybrid placements added, changed and removed at run time, against a real
 * server over directory backends a, b and c:
 * - AddPlacement of a hybrid over two run-time striped placements (small on
 *   b, large on c); a bucket put on it writes a small object to b and a
 *   large one to c;
 * - UpdatePlacement raises its threshold: re-placement moves the large
 *   object to b;
 * - DeletePlacement of a striped placement the hybrid holds is refused
 *   (Conflict naming the hybrid); an unused hybrid is deleted;
 * - a restart keeps the hybrid as changed;
 * - ReloadConfig applies a hybrid added to talus.toml, then its change
 *   (both were refused before).
 */
import { CreateBucketCommand, GetObjectCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { AdminApiError, AdminClient } from '../src/admin/client.ts';
import { loadConfig } from '../src/config/config.ts';
import { startTalus, type RunningTalus } from '../src/talus.ts';
import { silentLogger } from '../src/util/logger.ts';
import { ACCESS_KEY_ID, SECRET_ACCESS_KEY, makeClient } from './helpers/talus.ts';

const ROOT = { accessKeyId: ACCESS_KEY_ID, secretAccessKey: SECRET_ACCESS_KEY };
/** Above INLINE_BYTES_MAX (16 KiB): kept in a blob, not in the metadata. */
const SMALL = randomBytes(30_000);
const LARGE = randomBytes(100_000);

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

/** talus.toml: backends a, b, c under `root`, a single placement pa on a, and `extra` lines. */
function toml(root: string, extra: string[] = []): string {
  return [
    ...['a', 'b', 'c'].flatMap((name) => [`[backends.${name}]`, 'type = "directory"', `path = "${join(root, name)}"`]),
    '[placements.pa]', 'type = "single"', 'backend = "a"',
    ...extra,
    '',
  ].join('\n');
}

describe('hybrid placements at run time', () => {
  let root: string;
  let configPath: string;
  let talus: RunningTalus;
  let admin: AdminClient;
  let s3: S3Client;
  const placement = async (name: string): Promise<Record<string, unknown> | undefined> =>
    (await admin.call<{ placements: Record<string, unknown>[] }>('ListPlacements')).placements.find((candidate) => candidate['name'] === name);

  async function start(): Promise<void> {
    talus = await startTalus({
      dataDir: join(root, 'data'), port: 0, address: '127.0.0.1', ...{ rootAccessKeyId: ROOT.accessKeyId, rootSecretAccessKey: ROOT.secretAccessKey },
      logger: silentLogger, admin: { port: 0, address: '127.0.0.1' }, config: await loadConfig(configPath), configPath, healInBackground: false,
    });
    admin = new AdminClient({ endpoint: talus.adminUrl!, ...ROOT });
    s3 = makeClient(talus.url);
  }

  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'talus-hybrid-'));
    for (const disk of ['a', 'b', 'c']) await mkdir(join(root, disk));
    configPath = join(root, 'talus.toml');
    await writeFile(configPath, toml(root));
    await start();
    await s3.send(new CreateBucketCommand({ Bucket: 'mixed' }));
  });
  after(async () => {
    s3.destroy();
    await talus.close();
    await rm(root, { recursive: true, force: true });
  });

  test('AddPlacement of a hybrid over two run-time placements: small objects to one, large to the other', async () => {
    await admin.call('AddPlacement', { name: 'onb', type: 'single', backends: ['b'] });
    await admin.call('AddPlacement', { name: 'onc', type: 'single', backends: ['c'] });
    // Refused as talus.toml's parser refuses them, changing nothing.
    assert.match(await outcome(admin.call('AddPlacement', { name: 'bad', type: 'hybrid', small: 'onb', large: 'nowhere', thresholdBytes: 1 })), /^InvalidRequest: .*no placement "nowhere"/);
    assert.match(await outcome(admin.call('AddPlacement', { name: 'bad', type: 'hybrid', small: 'onb', large: 'onc' })), /^InvalidRequest: a hybrid placement needs small, large and thresholdBytes/);
    assert.match(await outcome(admin.call('AddPlacement', { name: 'bad', type: 'hybrid', small: 'onb', large: 'onc', thresholdBytes: 1, backends: ['a'] })), /^InvalidRequest: .*backends do not apply/);
    assert.equal(await placement('bad'), undefined);

    const added = await admin.call('AddPlacement', { name: 'sized', type: 'hybrid', small: 'onb', large: 'onc', thresholdBytes: 50_000 });
    assert.deepEqual(added, { name: 'sized', type: 'hybrid', small: 'onb', large: 'onc', thresholdBytes: 50_000 });
    assert.match(await outcome(admin.call('AddPlacement', { name: 'nested', type: 'hybrid', small: 'sized', large: 'onc', thresholdBytes: 1 })), /^InvalidRequest: .*cannot contain another hybrid/);

    await admin.call('SetBucketPlacement', { bucket: 'mixed', placement: 'sized' });
    await s3.send(new PutObjectCommand({ Bucket: 'mixed', Key: 'small', Body: SMALL }));
    await s3.send(new PutObjectCommand({ Bucket: 'mixed', Key: 'large', Body: LARGE }));
    assert.equal(await fileCount(join(root, 'b')), 1, 'the small object is on b');
    assert.equal(await fileCount(join(root, 'c')), 1, 'the large object is on c');
    const stats = await admin.call<{ placements: { name: string; objects: number }[] }>('GetStorageStats', { bucket: 'mixed' });
    assert.deepEqual(stats.placements.map(({ name, objects }) => ({ name, objects })), [{ name: 'sized', objects: 2 }]);
  });

  test('UpdatePlacement raises the threshold: re-placement moves the large object to the small placement', async () => {
    const updated = await admin.call('UpdatePlacement', { name: 'sized', type: 'hybrid', small: 'onb', large: 'onc', thresholdBytes: 200_000 });
    assert.equal(updated['thresholdBytes'], 200_000);
    assert.equal(updated['replacementStarted'], true);
    await eventually('the large object to move to b', async () => (await fileCount(join(root, 'b'))) === 2);
    await eventually('its shard on c to be purged', async () => (await fileCount(join(root, 'c'))) === 0);
    assert.ok((await bodyOf(s3, 'mixed', 'small')).equals(SMALL));
    assert.ok((await bodyOf(s3, 'mixed', 'large')).equals(LARGE));
  });

  test('DeletePlacement: a striped placement the hybrid holds is refused; an unused hybrid goes', async () => {
    assert.equal(await outcome(admin.call('DeletePlacement', { name: 'onb' })), 'Conflict: placement onb is in use: hybrid placement sized holds it as its small placement (UpdatePlacement or DeletePlacement sized first)');
    assert.equal(await outcome(admin.call('DeletePlacement', { name: 'onc' })), 'Conflict: placement onc is in use: hybrid placement sized holds it as its large placement (UpdatePlacement or DeletePlacement sized first)');
    assert.match(await outcome(admin.call('DeletePlacement', { name: 'sized' })), /^Conflict: placement sized is in use: bucket mixed uses it/);
    await admin.call('AddPlacement', { name: 'spare', type: 'hybrid', small: 'pa', large: 'onc', thresholdBytes: 1_000 });
    assert.match(await outcome(admin.call('UpdatePlacement', { name: 'onc', type: 'hybrid', small: 'pa', large: 'onb', thresholdBytes: 1 })), /^Conflict: placement onc is held by hybrid placement sized/);
    assert.equal(await outcome(admin.call('DeletePlacement', { name: 'spare' })), 'ok');
    assert.equal(await placement('spare'), undefined);
    assert.ok(await placement('onb'));
  });

  test('a restart keeps the hybrid as changed', async () => {
    s3.destroy();
    await talus.close();
    await start();
    assert.deepEqual(await placement('sized'), { name: 'sized', type: 'hybrid', small: 'onb', large: 'onc', thresholdBytes: 200_000 });
    assert.equal(await placement('spare'), undefined);
    await s3.send(new PutObjectCommand({ Bucket: 'mixed', Key: 'huge', Body: randomBytes(300_000) }));
    assert.equal(await fileCount(join(root, 'c')), 1, 'an object above the new threshold goes to c');
    assert.ok((await bodyOf(s3, 'mixed', 'large')).equals(LARGE));
  });

  test('ReloadConfig applies a hybrid added to talus.toml, and its change', async () => {
    await s3.send(new CreateBucketCommand({ Bucket: 'filed' }));
    const withHybrid = (threshold: number): string => toml(root, ['[placements.th]', 'type = "hybrid"', `threshold = ${threshold}`, 'small = "pa"', 'large = "pb"', '[placements.pb]', 'type = "single"', 'backend = "b"', '[buckets]', 'filed = "th"']);
    await writeFile(configPath, withHybrid(50_000));
    const report = await admin.call<Record<string, unknown>>('ReloadConfig');
    assert.deepEqual(report['placements'], { added: ['th', 'pb'], changed: [], removed: [] });
    assert.deepEqual(await placement('th'), { name: 'th', type: 'hybrid', small: 'pa', large: 'pb', thresholdBytes: 50_000 });
    const onA = await fileCount(join(root, 'a'));
    const onB = await fileCount(join(root, 'b'));
    await s3.send(new PutObjectCommand({ Bucket: 'filed', Key: 'small', Body: SMALL }));
    await s3.send(new PutObjectCommand({ Bucket: 'filed', Key: 'large', Body: LARGE }));
    assert.equal(await fileCount(join(root, 'a')), onA + 1, 'the small object is on a');
    assert.equal(await fileCount(join(root, 'b')), onB + 1, 'the large object is on b');

    await writeFile(configPath, withHybrid(200_000));
    const changed = await admin.call<Record<string, unknown>>('ReloadConfig');
    assert.deepEqual(changed['placements'], { added: [], changed: ['th'], removed: [] });
    assert.equal(changed['replacementStarted'], true);
    await eventually('the large object to move to a', async () => (await fileCount(join(root, 'a'))) === onA + 2);
    assert.ok((await bodyOf(s3, 'filed', 'large')).equals(LARGE));
  });
});
