/**
 * Backends and placements changed and removed at run time through the admin
 * API, against real servers: a Talus server whose backends are directories
 * and two other Talus servers on loopback serving as S3 backends.
 * - UpdateBackend moves a backend from server A to server B holding a copy
 *   of the same data, while a GET streams across the change, then rotates
 *   the keys it uses on B: every object keeps reading, new ones land on B.
 * - The documented path off a backend: a placement over a, b, c; a new one
 *   over a, b, d; the bucket moved to it; re-placement moves every object;
 *   RemoveBackend c refused while a placement names it and while an
 *   incomplete upload's part is on it, accepted once that part is purged;
 *   every object reads back bit-exact, also after a restart.
 * - UpdatePlacement changes a placement's geometry and the objects follow.
 * - Each new operation against every kind of caller, and its one permission;
 *   the console's backends page calls them.
 */
import { AbortMultipartUploadCommand, CreateBucketCommand, CreateMultipartUploadCommand, GetObjectCommand, ListObjectsV2Command, PutObjectCommand, UploadPartCommand, type S3Client } from '@aws-sdk/client-s3';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { AdminApiError, AdminClient } from '../src/admin/client.ts';
import { ADMIN_PATH_PREFIX } from '../src/admin/paths.ts';
import { parseConfig } from '../src/config/config.ts';
import { startTalus, type RunningTalus } from '../src/talus.ts';
import { silentLogger } from '../src/util/logger.ts';
import { ACCESS_KEY_ID, SECRET_ACCESS_KEY, makeClient } from './helpers/talus.ts';

type Credentials = { accessKeyId: string; secretAccessKey: string };
const ROOT: Credentials = { accessKeyId: ACCESS_KEY_ID, secretAccessKey: SECRET_ACCESS_KEY };
const NEW_OPERATIONS = ['UpdateBackend', 'RemoveBackend', 'UpdatePlacement'] as const;

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

async function bodyOf(s3: S3Client, bucket: string, key: string): Promise<Buffer> {
  const answer = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
  return Buffer.from(await answer.Body!.transformToByteArray());
}

async function filesUnder(root: string): Promise<string[]> {
  const found: string[] = [];
  for (const entry of await readdir(root, { withFileTypes: true, recursive: true })) if (entry.isFile()) found.push(join(entry.parentPath, entry.name));
  return found;
}

/** Only the key and secret of CreateKey's answer (UpdateBackend refuses fields it does not know). */
function keysOf({ accessKeyId, secretAccessKey }: Credentials): Credentials {
  return { accessKeyId, secretAccessKey };
}

/** A plain Talus server (a remote backend) with its own admin listener. */
function startPlain(dataDir: string): Promise<RunningTalus> {
  return startTalus({
    dataDir, port: 0, address: '127.0.0.1', rootAccessKeyId: ROOT.accessKeyId, rootSecretAccessKey: ROOT.secretAccessKey,
    logger: silentLogger, admin: { port: 0, address: '127.0.0.1' },
  });
}

describe('backends and placements changed and removed at run time', () => {
  let root: string;
  let dataDir: string;
  let talus: RunningTalus;
  let admin: AdminClient;
  let s3: S3Client;
  const remotes: RunningTalus[] = [];
  const config = (): ReturnType<typeof parseConfig> => parseConfig(
    `[backends.base]\ntype = "directory"\npath = "${join(root, 'base')}"\n[placements.basic]\ntype = "single"\nbackend = "base"\n`,
    { source: 'test', baseDirectory: root },
  );
  const start = async (): Promise<void> => {
    talus = await startTalus({
      dataDir, port: 0, address: '127.0.0.1', rootAccessKeyId: ROOT.accessKeyId, rootSecretAccessKey: ROOT.secretAccessKey,
      logger: silentLogger, admin: { port: 0, address: '127.0.0.1' }, config: config(), healInBackground: false,
    });
    admin = new AdminClient({ endpoint: talus.adminUrl!, ...ROOT });
    s3 = makeClient(talus.url);
  };
  const stop = async (): Promise<void> => {
    s3.destroy();
    await talus.close();
  };
  /** Waits for the pass StartHeal or a placement change began, and answers how it ended. */
  const settledPass = async (): Promise<{ state: string; replaced?: { blobsMoved: number; failures: number } }> => {
    let pass: { state: string; replaced?: { blobsMoved: number; failures: number } } | undefined;
    await eventually('the healing pass to end', async () => {
      pass = (await admin.call<{ pass: typeof pass }>('GetHealStatus')).pass;
      return pass !== undefined && pass !== null && !['waiting', 'running'].includes(pass.state);
    });
    return pass!;
  };

  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'talus-backends-change-'));
    dataDir = join(root, 'data');
    for (const disk of ['base', 'a', 'b', 'c', 'd']) await mkdir(join(root, disk));
    await start();
  });
  after(async () => {
    await stop();
    await Promise.all(remotes.map((remote) => remote.close()));
    await rm(root, { recursive: true, force: true });
  });

  test('UpdateBackend: moved from server A to server B holding the same data, then new keys on B; a GET in flight finishes, every object reads', async () => {
    const serverA = await startPlain(join(root, 'server-a'));
    const serverB = await startPlain(join(root, 'server-b'));
    remotes.push(serverB); // A is closed by the test
    const [clientA, clientB] = [makeClient(serverA.url), makeClient(serverB.url)];
    const adminB = new AdminClient({ endpoint: serverB.adminUrl!, ...ROOT });
    try {
      await admin.call('AddBackend', { name: 'remote', type: 's3', endpoint: serverA.url, bucket: 'shards', ...ROOT });
      await admin.call('AddPlacement', { name: 'far', type: 'single', backends: ['remote'] });
      await s3.send(new CreateBucketCommand({ Bucket: 'far-bucket' }));
      await admin.call('SetBucketPlacement', { bucket: 'far-bucket', placement: 'far' });
      const objects = new Map([['small', randomBytes(40_000)], ['large', randomBytes(16 * 1024 * 1024 + 333)]]);
      for (const [key, body] of objects) await s3.send(new PutObjectCommand({ Bucket: 'far-bucket', Key: key, Body: body }));

      // Refused changes change nothing.
      const kept = await readFile(join(dataDir, 'runtime-placements.json'), 'utf8');
      assert.match(await outcome(admin.call('UpdateBackend', { name: 'base', path: join(root, 'a') })), /^Conflict: backend base is declared in talus.toml: edit it there/);
      assert.match(await outcome(admin.call('UpdateBackend', { name: 'nowhere', endpoint: serverB.url })), /^NotFound/);
      assert.match(await outcome(admin.call('UpdateBackend', { name: 'remote' })), /^InvalidRequest: nothing to change/);
      assert.match(await outcome(admin.call('UpdateBackend', { name: 'remote', path: '/tmp' })), /^InvalidRequest: backend remote is s3: path does not apply/);
      assert.match(await outcome(admin.call('UpdateBackend', { name: 'remote', endpoint: 'http://127.0.0.1:1/path' })), /^InvalidRequest/, 'validated by the configuration parser');
      assert.equal(await readFile(join(dataDir, 'runtime-placements.json'), 'utf8'), kept);

      // A GET begun on A, paused after its first bytes.
      const inFlight = await s3.send(new GetObjectCommand({ Bucket: 'far-bucket', Key: 'large' }));
      const stream = inFlight.Body as Readable;
      const chunks: Buffer[] = [];
      const first = await new Promise<Buffer>((resolve) => stream.once('data', (chunk: Buffer) => {
        stream.pause();
        resolve(chunk);
      }));
      chunks.push(first);

      // B gets a copy of A's shards under a key of its own; the backend moves there.
      const keyB1 = keysOf(await adminB.call<Credentials>('CreateKey', {}));
      await clientB.send(new CreateBucketCommand({ Bucket: 'shards' }));
      const listed = await clientA.send(new ListObjectsV2Command({ Bucket: 'shards' }));
      assert.ok((listed.Contents ?? []).length >= 2, 'A holds the shards');
      for (const { Key } of listed.Contents ?? []) await clientB.send(new PutObjectCommand({ Bucket: 'shards', Key, Body: await bodyOf(clientA, 'shards', Key!) }));
      assert.deepEqual(await admin.call('UpdateBackend', { name: 'remote', endpoint: serverB.url, ...keyB1 }), { name: 'remote', type: 's3' });
      assert.ok(!(await readFile(join(dataDir, 'runtime-placements.json'), 'utf8')).includes(serverA.url), 'kept');

      stream.resume();
      for await (const chunk of stream) chunks.push(chunk as Buffer);
      assert.ok(Buffer.concat(chunks).equals(objects.get('large')!), 'the GET begun before the change finished, bit-exact');
      clientA.destroy();
      await serverA.close();
      for (const [key, body] of objects) assert.ok((await bodyOf(s3, 'far-bucket', key)).equals(body), `${key} reads from B`);
      const before = (await clientB.send(new ListObjectsV2Command({ Bucket: 'shards' }))).KeyCount ?? 0;
      objects.set('after-move', randomBytes(30_000));
      await s3.send(new PutObjectCommand({ Bucket: 'far-bucket', Key: 'after-move', Body: objects.get('after-move') }));
      assert.equal((await clientB.send(new ListObjectsV2Command({ Bucket: 'shards' }))).KeyCount, before + 1, 'a new object lands on B');

      // Keys rotated on B: the backend takes the new key; the old one is deleted; everything still reads and writes.
      const keyB2 = keysOf(await adminB.call<Credentials>('CreateKey', {}));
      await admin.call('UpdateBackend', { name: 'remote', ...keyB2 });
      await adminB.call('DeleteKey', { accessKeyId: keyB1.accessKeyId });
      for (const [key, body] of objects) assert.ok((await bodyOf(s3, 'far-bucket', key)).equals(body), `${key} reads with the new key`);
      await s3.send(new PutObjectCommand({ Bucket: 'far-bucket', Key: 'after-rotation', Body: randomBytes(30_000) }));
      type Backends = { backends: { name: string; state: string; lastError: string | null }[] };
      await eventually('the backend probed up with its new key', async () => (await admin.call<Backends>('ListBackends')).backends.find((backend) => backend.name === 'remote')?.state === 'up');
      const file = await readFile(join(dataDir, 'runtime-placements.json'), 'utf8');
      assert.ok(file.includes(keyB2.accessKeyId) && !file.includes(keyB1.accessKeyId), 'the new key is kept, the old one gone');
    } finally {
      clientA.destroy();
      clientB.destroy();
    }
  });

  test('off a backend: new placement over a, b, d; bucket moved; re-placement; RemoveBackend c only once nothing is on it; bit-exact, also after a restart', async () => {
    for (const name of ['a', 'b', 'c', 'd']) await admin.call('AddBackend', { name, type: 'directory', path: join(root, name) });
    await admin.call('AddPlacement', { name: 'abc', type: 'erasure', dataShards: 2, parityShards: 1, backends: ['a', 'b', 'c'] });
    await s3.send(new CreateBucketCommand({ Bucket: 'moving' }));
    await admin.call('SetBucketPlacement', { bucket: 'moving', placement: 'abc' });
    await settledPass();
    // Above the 16 KiB inline limit: each object is one blob with a shard on each of a, b, c.
    const objects = new Map<string, Buffer>();
    for (const [i, size] of [20_000, 70_001, 300_000, 1_500_000].entries()) objects.set(`k${i}`, randomBytes(size));
    for (const [key, body] of objects) await s3.send(new PutObjectCommand({ Bucket: 'moving', Key: key, Body: body }));
    // A part of an upload begun now stays on c: re-placement moves objects, not parts.
    const upload = await s3.send(new CreateMultipartUploadCommand({ Bucket: 'moving', Key: 'unfinished' }));
    await s3.send(new UploadPartCommand({ Bucket: 'moving', Key: 'unfinished', UploadId: upload.UploadId, PartNumber: 1, Body: randomBytes(50_000) }));
    assert.ok((await filesUnder(join(root, 'c'))).length >= objects.size + 1);

    assert.match(await outcome(admin.call('RemoveBackend', { name: 'c' })), /^Conflict: backend c is in use by placements abc/);
    assert.match(await outcome(admin.call('RemoveBackend', { name: 'base' })), /^Conflict: backend base is declared in talus.toml: remove it there/);
    assert.match(await outcome(admin.call('RemoveBackend', { name: 'nowhere' })), /^NotFound/);

    await admin.call('AddPlacement', { name: 'abd', type: 'erasure', dataShards: 2, parityShards: 1, backends: ['a', 'b', 'd'] });
    const moved = await admin.call<{ replacementStarted: boolean }>('SetBucketPlacement', { bucket: 'moving', placement: 'abd' });
    assert.equal(moved.replacementStarted, true);
    const pass = await settledPass();
    assert.deepEqual([pass.state, pass.replaced?.blobsMoved, pass.replaced?.failures], ['done', objects.size, 0], 're-placement moved every object');
    assert.deepEqual(await admin.call('DeletePlacement', { name: 'abc' }), {});

    assert.match(await outcome(admin.call('RemoveBackend', { name: 'c' })), /^Conflict: backend c still holds shards of \d+ blobs? /, 'the old blobs wait in the purge queue, the part stays');
    await s3.send(new AbortMultipartUploadCommand({ Bucket: 'moving', Key: 'unfinished', UploadId: upload.UploadId }));
    // The purge queue empties after its grace period (2 s); then nothing is on c.
    await eventually('RemoveBackend c to be accepted', async () => (await outcome(admin.call('RemoveBackend', { name: 'c' }))) === 'ok');
    assert.deepEqual(await filesUnder(join(root, 'c')), [], 'every shard left c');
    assert.match(await outcome(admin.call('RemoveBackend', { name: 'c' })), /^NotFound/);
    type Backends = { backends: { name: string }[] };
    assert.ok(!(await admin.call<Backends>('ListBackends')).backends.some((backend) => backend.name === 'c'));
    for (const [key, body] of objects) assert.ok((await bodyOf(s3, 'moving', key)).equals(body), key);

    await stop();
    await start();
    const names = (await admin.call<Backends>('ListBackends')).backends.map((backend) => backend.name);
    assert.ok(names.includes('d') && !names.includes('c'), `after a restart: ${names.join(', ')}`);
    const placements = (await admin.call<{ placements: { name: string }[] }>('ListPlacements')).placements.map((placement) => placement.name);
    assert.ok(placements.includes('abd') && !placements.includes('abc'));
    for (const [key, body] of objects) assert.ok((await bodyOf(s3, 'moving', key)).equals(body), `${key} after a restart`);
  });

  test('UpdatePlacement: another geometry and backends for a run-time placement; the objects follow; refusals are precise', async () => {
    await admin.call('AddPlacement', { name: 'changing', type: 'single', backends: ['a'] });
    await s3.send(new CreateBucketCommand({ Bucket: 'reshaped' }));
    await admin.call('SetBucketPlacement', { bucket: 'reshaped', placement: 'changing' });
    await settledPass();
    const objects = new Map([['x', randomBytes(90_000)], ['y', randomBytes(400_000)]]);
    for (const [key, body] of objects) await s3.send(new PutObjectCommand({ Bucket: 'reshaped', Key: key, Body: body }));

    assert.match(await outcome(admin.call('UpdatePlacement', { name: 'basic', type: 'single', backends: ['a'] })), /^Conflict: placement basic is declared in talus.toml/);
    assert.match(await outcome(admin.call('UpdatePlacement', { name: 'nowhere', type: 'single', backends: ['a'] })), /^NotFound/);
    assert.match(await outcome(admin.call('UpdatePlacement', { name: 'changing', type: 'replica', parityShards: 2, backends: ['b', 'gone'] })), /^InvalidRequest/);
    const changed = await admin.call<{ backends: string[]; writeQuorum: number; replacementStarted: boolean }>('UpdatePlacement', { name: 'changing', type: 'replica', parityShards: 1, backends: ['b', 'd'] });
    assert.deepEqual([changed.backends, changed.writeQuorum, changed.replacementStarted], [['b', 'd'], 1, true]);
    const pass = await settledPass();
    assert.deepEqual([pass.replaced?.blobsMoved, pass.replaced?.failures], [objects.size, 0]);
    for (const [key, body] of objects) assert.ok((await bodyOf(s3, 'reshaped', key)).equals(body), key);
    const listed = await admin.call<{ placements: { name: string; type: string; backends: string[] }[] }>('ListPlacements');
    assert.deepEqual(listed.placements.filter((placement) => placement.name === 'changing').map((placement) => [placement.type, placement.backends]), [['replica', ['b', 'd']]]);
    const file = JSON.parse(await readFile(join(dataDir, 'runtime-placements.json'), 'utf8')) as { placements: { name: string; backends: string[] }[] };
    assert.deepEqual(file.placements.find((placement) => placement.name === 'changing')?.backends, ['b', 'd']);
  });

  test('the console\'s backends page calls the new operations', async () => {
    const source = await (await fetch(`${talus.adminUrl}/console/ui/backends.js`)).text();
    for (const operation of NEW_OPERATIONS) assert.ok(source.includes(`'${operation}'`), operation);
  });

  test('each new operation against anonymous, a plain key, scoped and expired tokens, and admin; each is exactly its own permission', async () => {
    const call = async (operation: string, input: object, authorization?: string): Promise<{ status: number; code: string | undefined }> => {
      const response = await fetch(`${talus.adminUrl}${ADMIN_PATH_PREFIX}${operation}`, {
        method: 'POST',
        body: JSON.stringify(input),
        headers: { 'content-type': 'application/json', ...(authorization === undefined ? {} : { authorization }) },
      });
      return { status: response.status, code: (await response.json() as { code?: string }).code };
    };
    // Inputs naming nothing that exists: a granted call is answered NotFound and changes nothing.
    const inputs: Record<(typeof NEW_OPERATIONS)[number], object> = {
      UpdateBackend: { name: 'no-such-backend', endpoint: 'http://127.0.0.1:9' },
      RemoveBackend: { name: 'no-such-backend' },
      UpdatePlacement: { name: 'no-such-placement', type: 'single', backends: ['a'] },
    };
    const plain = await admin.call<Credentials>('CreateUser', { name: 'plain' });
    const scoped = await admin.call<{ token: string }>('CreateToken', { name: 'reader', scope: ['ListBackends'], expiresInSeconds: 600 });
    const expiring = await admin.call<{ token: string }>('CreateToken', { name: 'brief', scope: ['*'], expiresInSeconds: 1 });
    const wide = await admin.call<{ token: string }>('CreateToken', { name: 'changer', scope: [...NEW_OPERATIONS], expiresInSeconds: 600 });
    await new Promise((resolve) => setTimeout(resolve, 1_100));
    for (const operation of NEW_OPERATIONS) {
      const input = inputs[operation];
      assert.deepEqual(await call(operation, input), { status: 401, code: 'AuthenticationRequired' }, operation);
      assert.match(await outcome(new AdminClient({ endpoint: talus.adminUrl!, ...plain }).call(operation, input)), /^AccessDenied/, operation);
      assert.deepEqual(await call(operation, input, `Bearer ${scoped.token}`), { status: 403, code: 'AccessDenied' }, operation);
      assert.equal((await call(operation, input, `Bearer ${expiring.token}`)).code, 'InvalidToken', operation);
      assert.deepEqual(await call(operation, input, `Bearer ${wide.token}`), { status: 404, code: 'NotFound' }, `${operation}: a token scoped to it`);
      assert.match(await outcome(admin.call(operation, input)), /^NotFound/, `${operation}: root`);
    }
    // admin:<Operation> grants that operation and no other.
    for (const granted of NEW_OPERATIONS) {
      const name = `only-${granted.toLowerCase()}`;
      const policy = JSON.stringify({ Version: '2012-10-17', Statement: [{ Effect: 'Allow', Action: `admin:${granted}`, Resource: '*' }] });
      const user = new AdminClient({ endpoint: talus.adminUrl!, ...await admin.call<Credentials>('CreateUser', { name, policy }) });
      for (const operation of NEW_OPERATIONS) {
        assert.match(await outcome(user.call(operation, inputs[operation])), operation === granted ? /^NotFound/ : /^AccessDenied/, `${granted} → ${operation}`);
      }
    }
  });
});
