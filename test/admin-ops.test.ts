/**
 * The admin API's operations on storage and its machinery, against a real
 * server with a placement over two directory backends: storage statistics
 * counted exactly after a known workload; incomplete uploads listed, paged
 * and aborted through the engine (their bytes leave the disk); a healing
 * pass on demand that restores deleted shards; backends with state and free
 * space; and bearer tokens — scoped, expiring, revocable, never beyond
 * their creator's rights at the moment of use, stored only hashed, and kept
 * across a restart.
 */
import { AbortMultipartUploadCommand, CreateBucketCommand, CreateMultipartUploadCommand, DeleteObjectCommand, GetObjectCommand, ListMultipartUploadsCommand, PutBucketVersioningCommand, PutObjectCommand, UploadPartCommand, type S3Client } from '@aws-sdk/client-s3';
import assert from 'node:assert/strict';
import Database from 'better-sqlite3';
import { createHash } from 'node:crypto';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { mkdir, mkdtemp, readFile, readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { AdminApiError, AdminClient } from '../src/admin/client.ts';
import { ADMIN_OPERATIONS } from '../src/admin/operations.ts';
import { ADMIN_PATH_PREFIX } from '../src/admin/paths.ts';
import { TOKEN_SETTING_PREFIX } from '../src/admin/tokens.ts';
import { parseConfig } from '../src/config/config.ts';
import { startTalus, type RunningTalus } from '../src/talus.ts';
import { silentLogger } from '../src/util/logger.ts';
import { freePort } from './helpers/process.ts';
import { runTalusCli } from './helpers/principals.ts';
import { ACCESS_KEY_ID, SECRET_ACCESS_KEY, makeClient } from './helpers/talus.ts';

type Credentials = { accessKeyId: string; secretAccessKey: string };
const ROOT: Credentials = { accessKeyId: ACCESS_KEY_ID, secretAccessKey: SECRET_ACCESS_KEY };

async function outcome(call: Promise<unknown>): Promise<string> {
  try {
    await call;
    return 'ok';
  } catch (error) {
    if (error instanceof AdminApiError) return error.code;
    throw error;
  }
}

/** Every file under `root`, recursively. */
async function filesUnder(root: string): Promise<string[]> {
  const found: string[] = [];
  for (const entry of await readdir(root, { withFileTypes: true, recursive: true })) {
    if (entry.isFile()) found.push(join(entry.parentPath, entry.name));
  }
  return found.sort();
}

/**
 * A TCP proxy to `target` that holds every chunk `delayMs` in each direction:
 * a Talus server as seen from a region that far away (a round trip costs 2 × delayMs more).
 */
async function delayingProxy(target: URL, delayMs: number): Promise<{ url: string; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  const relay = (from: Socket, to: Socket): void => {
    from.on('data', (chunk) => setTimeout(() => to.writable && to.write(chunk), delayMs));
    from.on('end', () => setTimeout(() => to.end(), delayMs));
    from.on('error', () => to.destroy());
  };
  const server: Server = createServer((client) => {
    const upstream = connect(Number(target.port), target.hostname);
    for (const socket of [client, upstream]) {
      sockets.add(socket);
      socket.on('close', () => sockets.delete(socket));
    }
    relay(client, upstream);
    relay(upstream, client);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  return {
    url: `http://127.0.0.1:${port}`,
    close: () => new Promise((resolve) => {
      for (const socket of sockets) socket.destroy();
      server.close(() => resolve());
    }),
  };
}

async function eventually(what: string, check: () => Promise<boolean>, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

describe('admin operations', () => {
  let root: string;
  let dataDir: string;
  let disks: string[];
  let talus: RunningTalus;
  let admin: AdminClient;
  let s3: S3Client;
  /** Closed last: backends added through them stay up for the tests after. */
  const proxies: { close(): Promise<void> }[] = [];
  const as = (credentials: Credentials): AdminClient => new AdminClient({ endpoint: talus.adminUrl!, ...credentials });
  /** An admin call with `Authorization: Bearer <token>`: the answer's status and JSON. */
  const withToken = async (token: string, operation: string, input: object = {}): Promise<{ status: number; body: Record<string, unknown> }> => {
    const response = await fetch(`${talus.adminUrl}${ADMIN_PATH_PREFIX}${operation}`, {
      method: 'POST',
      body: JSON.stringify(input),
      headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
    });
    return { status: response.status, body: await response.json() as Record<string, unknown> };
  };
  const config = (): ReturnType<typeof parseConfig> => parseConfig(
    `[backends.disk0]\ntype = "directory"\npath = "${disks[0]}"\n[backends.disk1]\ntype = "directory"\npath = "${disks[1]}"\n` +
      `[placements.copies]\ntype = "replica"\ncopies = 2\nbackends = ["disk0", "disk1"]\n[buckets]\nplaced = "copies"\n`,
    { source: 'test', baseDirectory: root },
  );
  const start = async (): Promise<void> => {
    talus = await startTalus({
      dataDir, port: 0, address: '127.0.0.1', rootAccessKeyId: ROOT.accessKeyId, rootSecretAccessKey: ROOT.secretAccessKey,
      logger: silentLogger, admin: { port: 0, address: '127.0.0.1' }, config: config(), healInBackground: false,
    });
    admin = as(ROOT);
    s3 = makeClient(talus.url);
  };

  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'talus-admin-ops-'));
    dataDir = join(root, 'data');
    disks = [join(root, 'disk0'), join(root, 'disk1')];
    for (const disk of disks) await mkdir(disk);
    await start();
  });
  after(async () => {
    s3.destroy();
    await talus.close();
    await Promise.all(proxies.map((proxy) => proxy.close()));
    await rm(root, { recursive: true, force: true });
  });

  test('GetStorageStats counts objects, versions, delete markers, bytes and uploads per bucket and per placement', async () => {
    await s3.send(new CreateBucketCommand({ Bucket: 'plain' }));
    await s3.send(new CreateBucketCommand({ Bucket: 'placed' }));
    await s3.send(new PutBucketVersioningCommand({ Bucket: 'plain', VersioningConfiguration: { Status: 'Enabled' } }));
    await s3.send(new PutObjectCommand({ Bucket: 'plain', Key: 'a', Body: Buffer.alloc(1000, 1) }));
    await s3.send(new PutObjectCommand({ Bucket: 'plain', Key: 'a', Body: Buffer.alloc(300, 2) })); // a second version of a
    await s3.send(new PutObjectCommand({ Bucket: 'plain', Key: 'b', Body: Buffer.alloc(50, 3) }));
    await s3.send(new DeleteObjectCommand({ Bucket: 'plain', Key: 'b' })); // b: hidden by a delete marker, its version kept
    await s3.send(new CreateMultipartUploadCommand({ Bucket: 'plain', Key: 'big' }));
    await s3.send(new PutObjectCommand({ Bucket: 'placed', Key: 'x', Body: Buffer.alloc(70_000, 4) }));

    const stats = await admin.call<{
      buckets: { name: string; placement: string; objects: number; versions: number; deleteMarkers: number; bytes: number; incompleteUploads: number }[];
      placements: { name: string; buckets: number; objects: number; versions: number; bytes: number }[];
      disk: { freeBytes: number; sizeBytes: number };
      metadataBytes: number;
    }>('GetStorageStats');
    const byName = new Map(stats.buckets.map((bucket) => [bucket.name, bucket]));
    assert.deepEqual(byName.get('plain'), { name: 'plain', placement: 'local', objects: 1, versions: 3, deleteMarkers: 1, bytes: 1350, incompleteUploads: 1 });
    assert.deepEqual(byName.get('placed'), { name: 'placed', placement: 'copies', objects: 1, versions: 1, deleteMarkers: 0, bytes: 70_000, incompleteUploads: 0 });
    const copies = stats.placements.find((placement) => placement.name === 'copies');
    assert.deepEqual(copies, { name: 'copies', buckets: 1, objects: 1, versions: 1, deleteMarkers: 0, bytes: 70_000 });
    assert.ok(stats.disk.freeBytes > 0 && stats.disk.sizeBytes >= stats.disk.freeBytes);
    assert.ok(stats.metadataBytes >= (await stat(join(dataDir, 'meta.db'))).size);

    const one = await admin.call<{ buckets: { name: string }[] }>('GetStorageStats', { bucket: 'placed' });
    assert.deepEqual(one.buckets.map((bucket) => bucket.name), ['placed']);
    assert.equal(await outcome(admin.call('GetStorageStats', { bucket: 'nope-not-here' })), 'NotFound');
  });

  test('incomplete uploads: listed by age and paged; aborted in bounded batches through the engine, their parts\' bytes removed', async () => {
    await s3.send(new CreateBucketCommand({ Bucket: 'uploads' }));
    const blobsBefore = (await filesUnder(join(dataDir, 'blobs'))).length;
    const ids: string[] = [];
    for (const key of ['k1', 'k2', 'k3']) {
      const { UploadId } = await s3.send(new CreateMultipartUploadCommand({ Bucket: 'uploads', Key: key }));
      await s3.send(new UploadPartCommand({ Bucket: 'uploads', Key: key, UploadId, PartNumber: 1, Body: Buffer.alloc(40_000, 7) }));
      ids.push(UploadId!);
    }
    assert.equal((await filesUnder(join(dataDir, 'blobs'))).length, blobsBefore + 3, 'each part is a blob on disk');

    type Listing = { uploads: { key: string; uploadId: string; createdMs: number }[]; nextKeyMarker?: string; nextUploadIdMarker?: string };
    assert.deepEqual((await admin.call<Listing>('ListIncompleteUploads', { bucket: 'uploads', olderThanSeconds: 3600 })).uploads, [], 'none is an hour old');
    const first = await admin.call<Listing>('ListIncompleteUploads', { bucket: 'uploads', limit: 2 });
    assert.deepEqual(first.uploads.map((upload) => [upload.key, upload.uploadId]), [['k1', ids[0]], ['k2', ids[1]]]);
    assert.equal(first.nextKeyMarker, 'k2');
    const rest = await admin.call<Listing>('ListIncompleteUploads', { bucket: 'uploads', keyMarker: first.nextKeyMarker, uploadIdMarker: first.nextUploadIdMarker });
    assert.deepEqual(rest.uploads.map((upload) => upload.key), ['k3']);
    assert.equal(rest.nextKeyMarker, undefined);

    assert.deepEqual(await admin.call('AbortIncompleteUploads', { bucket: 'uploads', olderThanSeconds: 3600 }), { aborted: 0, more: false });
    assert.deepEqual(await admin.call('AbortIncompleteUploads', { bucket: 'uploads', olderThanSeconds: 0, limit: 2 }), { aborted: 2, more: true });
    const left = await s3.send(new ListMultipartUploadsCommand({ Bucket: 'uploads' }));
    assert.deepEqual(left.Uploads?.map((upload) => upload.Key), ['k3']);
    assert.deepEqual(await admin.call('AbortIncompleteUploads', { bucket: 'uploads', olderThanSeconds: 0 }), { aborted: 1, more: false });
    // Through the engine's abort path: the parts' blobs are queued for purge and removed after the grace period.
    await eventually('the aborted parts\' blobs to be purged', async () => (await filesUnder(join(dataDir, 'blobs'))).length === blobsBefore);
    await assert.rejects(s3.send(new AbortMultipartUploadCommand({ Bucket: 'uploads', Key: 'k1', UploadId: ids[0] })), /NoSuchUpload|does not exist/);
    assert.equal(await outcome(admin.call('AbortIncompleteUploads', { bucket: 'nope-not-here', olderThanSeconds: 0 })), 'NotFound');
  });

  test('ListBackends shows each backend\'s state, latency, free space and placements', async () => {
    type Backends = { backends: { name: string; type: string; state: string; latencyMs: number | null; freeBytes: number | null; placements: string[] }[] };
    await eventually('both backends probed up', async () => (await admin.call<Backends>('ListBackends')).backends.every((backend) => backend.state === 'up'));
    const { backends } = await admin.call<Backends>('ListBackends');
    assert.deepEqual(backends.map((backend) => [backend.name, backend.type, backend.placements]), [['disk0', 'directory', ['copies']], ['disk1', 'directory', ['copies']]]);
    for (const backend of backends) {
      assert.ok(backend.freeBytes !== null && backend.freeBytes > 0, backend.name);
      assert.ok(backend.latencyMs !== null && backend.latencyMs >= 0, backend.name);
    }
  });

  test('StartHeal runs a pass now that restores a backend\'s deleted shards; GetHealStatus reports it; CancelHeal with none running', async () => {
    await s3.send(new PutObjectCommand({ Bucket: 'placed', Key: 'heal-me', Body: Buffer.alloc(90_000, 9) }));
    const shardsBefore = await filesUnder(disks[1]!);
    const shards = shardsBefore.filter((path) => !path.includes('talus-probe'));
    assert.ok(shards.length >= 2, 'the placed objects have shards on disk1');
    for (const shard of shards) await rm(shard);

    type Status = { placements: boolean; repairs: { pending: number }; purge: { blobs: number }; pass: { state: string; deep: boolean; scan?: { shardsRebuilt: number } } | null };
    const before = await admin.call<Status>('GetHealStatus');
    assert.equal(before.placements, true);
    assert.equal(before.pass, null, 'no pass asked for yet');
    assert.deepEqual(await admin.call('CancelHeal'), { cancelled: false });
    assert.deepEqual(await admin.call('StartHeal', { deep: true }), { started: true });
    let status = before;
    await eventually('the pass to finish', async () => {
      status = await admin.call<Status>('GetHealStatus');
      return status.pass !== null && !['waiting', 'running'].includes(status.pass.state);
    });
    assert.equal(status.pass!.state, 'done');
    assert.equal(status.pass!.deep, true);
    assert.equal(status.pass!.scan!.shardsRebuilt, shards.length);
    assert.deepEqual(await filesUnder(disks[1]!), shardsBefore, 'every deleted shard is back');
    assert.equal(status.repairs.pending, 0);
  });

  test('bearer tokens: shown once, stored hashed, scoped, refused once expired or revoked', async () => {
    const created = await admin.call<{ token: string; id: string; scope: string[]; expiresMs: number }>('CreateToken', { name: 'dashboard', scope: ['List*', 'GetStorageStats'], expiresInSeconds: 600 });
    assert.match(created.token, /^talus_at_/);
    assert.deepEqual(created.scope, ['List*', 'GetStorageStats']);
    assert.equal((await withToken(created.token, 'ListBuckets')).status, 200);
    assert.equal((await withToken(created.token, 'GetStorageStats')).status, 200);
    const outOfScope = await withToken(created.token, 'CreateUser', { name: 'should-not-exist' });
    assert.deepEqual([outOfScope.status, outOfScope.body['code']], [403, 'AccessDenied']);
    assert.deepEqual([(await withToken('talus_at_not-a-token', 'ListBuckets')).body['code']], ['InvalidToken']);

    // Listed without the token; the metadata store holds only its hash.
    const listed = await admin.call<{ tokens: Record<string, unknown>[] }>('ListTokens');
    const entry = listed.tokens.find((token) => token['id'] === created.id)!;
    assert.deepEqual(Object.keys(entry).sort(), ['createdMs', 'creatorAccessKeyId', 'expiresMs', 'id', 'name', 'scope']);
    assert.equal(entry['creatorAccessKeyId'], ROOT.accessKeyId);
    const database = new Database(join(dataDir, 'meta.db'), { readonly: true });
    try {
      const rows = database.prepare('SELECT name, value FROM settings').all() as { name: string; value: string }[];
      assert.ok(rows.every((row) => !`${row.name} ${row.value}`.includes(created.token.slice('talus_at_'.length))), 'the token text is not stored');
      assert.ok(rows.some((row) => row.name === `${TOKEN_SETTING_PREFIX}${createHash('sha256').update(created.token).digest('hex')}`), 'its hash is');
    } finally {
      database.close();
    }

    // A token cannot mint tokens, even with every operation in scope.
    const all = await admin.call<{ token: string }>('CreateToken', { name: 'all', scope: ['*'], expiresInSeconds: 600 });
    assert.equal((await withToken(all.token, 'CreateToken', { name: 'x', scope: ['*'], expiresInSeconds: 60 })).body['code'], 'AccessDenied');
    // Nor leave a credential or a wider right behind that would outlive it.
    assert.equal((await withToken(all.token, 'CreateUser', { name: 'made-by-token' })).body['code'], 'AccessDenied');
    assert.equal((await withToken(all.token, 'CreateKey', {})).body['code'], 'AccessDenied');
    assert.equal((await withToken(all.token, 'SetUserPolicy', { name: 'nobody', policy: 'consoleAdmin' })).body['code'], 'AccessDenied');
    assert.equal((await withToken(all.token, 'UpdateKey', { accessKeyId: 'TALUSNOSUCHKEY', enabled: true })).body['code'], 'AccessDenied');
    assert.equal((await withToken(all.token, 'ListUsers')).status, 200);

    // Expired.
    const brief = await admin.call<{ token: string }>('CreateToken', { name: 'brief', scope: ['*'], expiresInSeconds: 1 });
    assert.equal((await withToken(brief.token, 'ListBuckets')).status, 200);
    await new Promise((resolve) => setTimeout(resolve, 1_200));
    assert.deepEqual([(await withToken(brief.token, 'ListBuckets')).status, (await withToken(brief.token, 'ListBuckets')).body['code']], [403, 'InvalidToken']);

    // Revoked.
    assert.deepEqual(await admin.call('RevokeToken', { id: created.id }), {});
    assert.equal((await withToken(created.token, 'ListBuckets')).body['code'], 'InvalidToken');
    assert.equal(await outcome(admin.call('RevokeToken', { id: created.id })), 'NotFound');
    assert.equal(await outcome(admin.call('CreateToken', { name: 'bad', scope: ['List Users'], expiresInSeconds: 60 })), 'InvalidRequest');
  });

  test('every operation against tokens: scoped to one operation, expired, and created by a key without admin rights', async () => {
    const scoped = await admin.call<{ token: string }>('CreateToken', { name: 'one', scope: ['GetServerInfo'], expiresInSeconds: 600 });
    const expiring = await admin.call<{ token: string }>('CreateToken', { name: 'expiring', scope: ['*'], expiresInSeconds: 1 });
    const plain = await admin.call<Credentials>('CreateUser', { name: 'plain-creator' });
    // A user without admin rights may not create tokens; a root key's token given to it would be root's — so the user's own key signs here.
    assert.equal(await outcome(as(plain).call('CreateToken', { name: 'x', scope: ['*'], expiresInSeconds: 60 })), 'AccessDenied');
    await admin.call('SetUserPolicy', { name: 'plain-creator', policy: JSON.stringify({ Version: '2012-10-17', Statement: [{ Effect: 'Allow', Action: 'admin:CreateToken', Resource: '*' }] }) });
    const powerless = await as(plain).call<{ token: string }>('CreateToken', { name: 'powerless', scope: ['*'], expiresInSeconds: 600 });
    await new Promise((resolve) => setTimeout(resolve, 1_100));
    for (const name of Object.keys(ADMIN_OPERATIONS)) {
      // Refused before the body is read, so an empty input serves every operation.
      const viaScoped = await withToken(scoped.token, name);
      if (name === 'GetServerInfo') assert.equal(viaScoped.status, 200);
      else assert.deepEqual([viaScoped.status, viaScoped.body['code']], [403, 'AccessDenied'], name);
      assert.deepEqual([(await withToken(expiring.token, name)).body['code']], ['InvalidToken'], name);
      // Its creator may call CreateToken, but no token may.
      assert.equal((await withToken(powerless.token, name)).body['code'], 'AccessDenied', name);
    }
  });

  test('a token never reaches beyond its creator\'s rights at the moment of use, and dies with its key', async () => {
    const policy = (actions: string[]): string => JSON.stringify({ Version: '2012-10-17', Statement: [{ Effect: 'Allow', Action: actions, Resource: '*' }] });
    const ops = await admin.call<Credentials>('CreateUser', { name: 'ops', policy: policy(['admin:ListBuckets', 'admin:CreateToken']) });
    const { token } = await as(ops).call<{ token: string }>('CreateToken', { name: 'wide', scope: ['*'], expiresInSeconds: 600 });
    assert.equal((await withToken(token, 'ListBuckets')).status, 200);
    assert.equal((await withToken(token, 'ListUsers')).body['code'], 'AccessDenied', 'scope * does not exceed the creator');
    await admin.call('SetUserPolicy', { name: 'ops', policy: policy(['admin:ListUsers']) });
    assert.equal((await withToken(token, 'ListBuckets')).body['code'], 'AccessDenied', 'the creator lost the right: so did the token');
    assert.equal((await withToken(token, 'ListUsers')).status, 200);
    await admin.call('DeleteKey', { accessKeyId: ops.accessKeyId });
    assert.equal((await withToken(token, 'ListUsers')).body['code'], 'InvalidToken', 'the creator\'s key is gone');
  });

  test('region discovery: latency measured through delaying proxies ranks the endpoints; a placement is proposed over the best', async () => {
    // The same Talus server behind three "regions" 0, 60 and 150 ms away (each way), and one that does not answer.
    const near = await delayingProxy(new URL(talus.url), 0);
    const middle = await delayingProxy(new URL(talus.url), 60);
    const far = await delayingProxy(new URL(talus.url), 150);
    proxies.push(near, middle, far);
    const closedPort = await freePort();
    {
      type Latency = { endpoint: string; region: string | null; answered: number; failed: number; p50Ms: number | null; p95Ms: number | null; p99Ms: number | null; jitterMs: number | null; error?: string };
      const { endpoints } = await admin.call<{ endpoints: Latency[] }>('ProbeEndpoints', { endpoints: [far.url, `http://127.0.0.1:${closedPort}`, middle.url, near.url], probes: 3 });
      assert.deepEqual(endpoints.map((result) => result.endpoint), [near.url, middle.url, far.url, `http://127.0.0.1:${closedPort}`], 'best first, the unreachable last');
      for (const [result, delayMs] of [[endpoints[1]!, 60], [endpoints[2]!, 150]] as const) {
        assert.equal(result.answered, 3);
        assert.ok(result.p50Ms! >= 2 * delayMs, `${result.endpoint}: p50 ${result.p50Ms} ms includes the injected ${2 * delayMs} ms`);
        assert.ok(result.p50Ms! <= result.p95Ms! && result.p95Ms! <= result.p99Ms!);
        assert.ok(result.jitterMs! >= 0);
      }
      assert.deepEqual([endpoints[3]!.answered, endpoints[3]!.p50Ms, endpoints[3]!.error], [0, null, 'ECONNREFUSED']);

      // A provider's template: here the "region" is the proxy's port.
      const port = (url: string): string => new URL(url).port;
      const recommended = await admin.call<{ placement: { type: string; backends: { name: string; endpoint: string; region: string }[] }; toml: string }>('RecommendPlacement', {
        template: 'http://127.0.0.1:{region}', regions: [port(far.url), port(near.url), port(middle.url), String(closedPort)], probes: 3, k: 1, m: 1, name: 'nearby',
      });
      assert.equal(recommended.placement.type, 'replica');
      assert.deepEqual(recommended.placement.backends.map((backend) => backend.region), [port(near.url), port(middle.url)]);
      // The proposal is a configuration Talus accepts once credentials and a bucket are filled in.
      const parsed = parseConfig(recommended.toml.replaceAll('FILL-IN', 'talus-data'), { source: 'recommendation', baseDirectory: root });
      assert.deepEqual(parsed.placements.map((placement) => placement.name), ['nearby']);
      assert.deepEqual(parsed.backends.map((backend) => backend.type === 's3' && backend.endpoint).sort(), [near.url, middle.url].sort());
      assert.equal(await outcome(admin.call('RecommendPlacement', { endpoints: [near.url, `http://127.0.0.1:${closedPort}`], probes: 1, k: 2, m: 1 })), 'Conflict');
      assert.equal(await outcome(admin.call('ProbeEndpoints', { endpoints: ['file:///etc/passwd'] })), 'InvalidRequest');
      assert.equal(await outcome(admin.call('ProbeEndpoints', { template: 'http://no-placeholder', regions: ['a'] })), 'InvalidRequest');

      // On request, the backends and the placement are created: here S3 backends on this very server, through the proxies.
      const created = await admin.call<{ created: boolean; placement: { backends: { name: string }[] } }>('RecommendPlacement', {
        endpoints: [far.url, near.url, middle.url], probes: 2, k: 1, m: 1, name: 'nearby', create: true, bucket: 'region-shards', ...ROOT,
      });
      assert.equal(created.created, true);
      const names = created.placement.backends.map((backend) => backend.name);
      await eventually('the created backends probed up', async () => {
        const { backends } = await admin.call<{ backends: { name: string; state: string }[] }>('ListBackends');
        return names.every((name) => backends.find((backend) => backend.name === name)?.state === 'up');
      });
      await s3.send(new CreateBucketCommand({ Bucket: 'far-away' }));
      await admin.call('SetBucketPlacement', { bucket: 'far-away', placement: 'nearby' });
      const body = Buffer.alloc(30_000, 3);
      await s3.send(new PutObjectCommand({ Bucket: 'far-away', Key: 'k', Body: body }));
      const read = await s3.send(new GetObjectCommand({ Bucket: 'far-away', Key: 'k' }));
      assert.ok(Buffer.from(await read.Body!.transformToByteArray()).equals(body));
      // One copy through each proxy, stored as objects of the backends' bucket (the second may settle after the acknowledgement: quorum 1 of 2).
      await eventually('both copies stored', async () => (await admin.call<{ buckets: { objects: number }[] }>('GetStorageStats', { bucket: 'region-shards' })).buckets[0]!.objects === 2);
    }
  });

  test('SetBucketPlacement: new objects go to the new placement at once, existing ones are re-placed, and the choice is kept', async () => {
    await s3.send(new CreateBucketCommand({ Bucket: 'movable' }));
    const old = Buffer.alloc(80_000, 5);
    await s3.send(new PutObjectCommand({ Bucket: 'movable', Key: 'old', Body: old }));
    const shardsBefore = (await filesUnder(disks[0]!)).length;
    assert.equal(await outcome(admin.call('SetBucketPlacement', { bucket: 'movable', placement: 'nowhere' })), 'NotFound');
    assert.equal(await outcome(admin.call('SetBucketPlacement', { bucket: 'nope-not-here', placement: 'copies' })), 'NotFound');

    assert.deepEqual(await admin.call('SetBucketPlacement', { bucket: 'movable', placement: 'copies' }), { bucket: 'movable', placement: 'copies', replacementStarted: true });
    type Status = { pass: { state: string; replaced?: { blobsMoved: number } } };
    let status: Status | undefined;
    await eventually('the re-placement pass to finish', async () => {
      status = await admin.call<Status>('GetHealStatus');
      return !['waiting', 'running'].includes(status.pass.state);
    });
    assert.equal(status!.pass.state, 'done');
    assert.equal(status!.pass.replaced!.blobsMoved, 1, 'the existing object moved');
    assert.equal((await filesUnder(disks[0]!)).length, shardsBefore + 1, 'its shard is on disk0 now');
    await s3.send(new PutObjectCommand({ Bucket: 'movable', Key: 'new', Body: Buffer.alloc(60_000, 6) }));
    assert.equal((await filesUnder(disks[0]!)).length, shardsBefore + 2, 'a new object goes to the new placement at once');
    const read = await s3.send(new GetObjectCommand({ Bucket: 'movable', Key: 'old' }));
    assert.ok(Buffer.from(await read.Body!.transformToByteArray()).equals(old));

    const listed = await admin.call<{ defaultPlacement: string; placements: { name: string; type: string; backends: string[] }[]; buckets: { name: string; placement: string }[] }>('ListPlacements');
    assert.equal(listed.defaultPlacement, 'local');
    assert.deepEqual(listed.placements.filter((placement) => placement.name === 'copies').map((placement) => [placement.type, placement.backends]), [['replica', ['disk0', 'disk1']]]);
    assert.equal(listed.buckets.find((bucket) => bucket.name === 'movable')?.placement, 'copies');
    const stats = await admin.call<{ buckets: { name: string; placement: string }[] }>('GetStorageStats', { bucket: 'movable' });
    assert.equal(stats.buckets[0]!.placement, 'copies');
  });

  test('AddBackend and AddPlacement take effect without a restart; DeletePlacement only for an unused run-time placement', async () => {
    const disk2 = join(root, 'disk2');
    await mkdir(disk2);
    assert.deepEqual(await admin.call('AddBackend', { name: 'disk2', type: 'directory', path: disk2 }), { name: 'disk2', type: 'directory' });
    assert.equal(await outcome(admin.call('AddBackend', { name: 'disk2', type: 'directory', path: disk2 })), 'Conflict');
    assert.equal(await outcome(admin.call('AddBackend', { name: 'Bad Name', type: 'directory', path: disk2 })), 'InvalidRequest');
    for (const path of [dataDir, join(dataDir, 'blobs'), root, disks[0]!, join(disk2, 'inner')]) assert.equal(await outcome(admin.call('AddBackend', { name: 'overlapping', type: 'directory', path })), 'InvalidRequest', path);
    assert.equal(await outcome(admin.call('AddBackend', { name: 'remote', type: 's3', endpoint: 'http://127.0.0.1:1/path', bucket: 'b', accessKeyId: 'a', secretAccessKey: 's' })), 'InvalidRequest');
    type Backends = { backends: { name: string; state: string; placements: string[] }[] };
    await eventually('disk2 probed up', async () => (await admin.call<Backends>('ListBackends')).backends.find((backend) => backend.name === 'disk2')?.state === 'up');

    // Validated as talus.toml is: an unknown backend, too few backends for the shards.
    assert.equal(await outcome(admin.call('AddPlacement', { name: 'bad', type: 'replica', parityShards: 1, backends: ['disk0', 'nowhere'] })), 'InvalidRequest');
    assert.equal(await outcome(admin.call('AddPlacement', { name: 'bad', type: 'erasure', dataShards: 2, parityShards: 2, backends: ['disk0', 'disk1', 'disk2'] })), 'InvalidRequest');
    const added = await admin.call<{ writeQuorum: number }>('AddPlacement', { name: 'three', type: 'replica', parityShards: 2, backends: ['disk0', 'disk1', 'disk2'] });
    assert.equal(added.writeQuorum, 2, 'the default write quorum, filled in by the configuration parser');
    assert.equal(await outcome(admin.call('AddPlacement', { name: 'three', type: 'single', backends: ['disk2'] })), 'Conflict');
    await admin.call('AddPlacement', { name: 'kept', type: 'single', backends: ['disk2'] });

    await s3.send(new CreateBucketCommand({ Bucket: 'widened' }));
    await admin.call('SetBucketPlacement', { bucket: 'widened', placement: 'three' });
    const before = (await filesUnder(disk2)).length;
    await s3.send(new PutObjectCommand({ Bucket: 'widened', Key: 'k', Body: Buffer.alloc(50_000, 8) }));
    assert.equal((await filesUnder(disk2)).length, before + 1, 'the new backend holds a copy');
    assert.deepEqual((await admin.call<Backends>('ListBackends')).backends.find((backend) => backend.name === 'disk2')?.placements, ['three', 'kept']);

    assert.equal(await outcome(admin.call('DeletePlacement', { name: 'three' })), 'Conflict', 'a bucket uses it');
    // A bucket deleted while on a placement does not hold it for ever.
    await s3.send(new CreateBucketCommand({ Bucket: 'short-lived' }));
    await admin.call('SetBucketPlacement', { bucket: 'short-lived', placement: 'kept' });
    await admin.call('DeleteBucket', { name: 'short-lived' });
    assert.deepEqual(await admin.call('DeletePlacement', { name: 'kept' }), {});
    await admin.call('AddPlacement', { name: 'kept', type: 'single', backends: ['disk2'] });
    assert.equal(await outcome(admin.call('DeletePlacement', { name: 'copies' })), 'Conflict', 'declared in talus.toml');
    assert.equal(await outcome(admin.call('DeletePlacement', { name: 'nowhere' })), 'NotFound');
    await admin.call('SetBucketPlacement', { bucket: 'widened', placement: 'copies' });
    assert.deepEqual(await admin.call('DeletePlacement', { name: 'three' }), {});
    const read = await s3.send(new GetObjectCommand({ Bucket: 'widened', Key: 'k' }));
    assert.equal((await read.Body!.transformToByteArray()).length, 50_000, 'objects written under a removed placement still read');
    const file = JSON.parse(await readFile(join(dataDir, 'runtime-placements.json'), 'utf8')) as { backends: { name: string }[]; placements: { name: string }[] };
    assert.deepEqual([file.backends.at(-1)!.name, file.placements.map((placement) => placement.name)], ['disk2', ['nearby', 'kept']]);
  });

  test('CancelHeal stops the pass StartHeal began, at its next blob', async () => {
    // A backend 300 ms away each way: every shard the scan checks there takes at least 600 ms.
    const slow = await delayingProxy(new URL(talus.url), 300);
    proxies.push(slow);
    await admin.call('AddBackend', { name: 'slow', type: 's3', endpoint: slow.url, bucket: 'slow-shards', ...ROOT });
    await admin.call('AddPlacement', { name: 'slowone', type: 'single', backends: ['slow'] });
    await s3.send(new CreateBucketCommand({ Bucket: 'slow-bucket' }));
    await admin.call('SetBucketPlacement', { bucket: 'slow-bucket', placement: 'slowone' });
    type Status = { pass: { state: string; replaced?: object } };
    const settled = async (): Promise<Status> => {
      let status: Status | undefined;
      await eventually('the pass to end', async () => {
        status = await admin.call<Status>('GetHealStatus');
        return !['waiting', 'running'].includes(status.pass.state);
      });
      return status!;
    };
    await settled(); // the re-placement pass SetBucketPlacement started
    // Above the inline limit (16 KiB), so each is a blob on the slow backend.
    for (let i = 0; i < 3; i++) await s3.send(new PutObjectCommand({ Bucket: 'slow-bucket', Key: `k${i}`, Body: Buffer.alloc(40_000, i) }));

    assert.deepEqual(await admin.call('StartHeal', {}), { started: true });
    assert.equal(await outcome(admin.call('StartHeal', {})), 'Conflict', 'one pass at a time');
    assert.deepEqual(await admin.call('CancelHeal'), { cancelled: true });
    const status = await settled();
    assert.equal(status.pass.state, 'cancelled');
    assert.equal(status.pass.replaced, undefined, 'stopped before its last phase');
    assert.deepEqual(await admin.call('CancelHeal'), { cancelled: false }, 'nothing left to cancel');
  });

  test('after a restart: tokens (kept hashed), backends and placements added, and buckets\' placements chosen at run time are still there', async () => {
    const { token } = await admin.call<{ token: string }>('CreateToken', { name: 'lasting', scope: ['GetServerInfo'], expiresInSeconds: 600 });
    s3.destroy();
    await talus.close();
    await start();
    assert.equal((await withToken(token, 'GetServerInfo')).status, 200);
    assert.equal((await withToken(token, 'ListBuckets')).body['code'], 'AccessDenied');
    // So do a bucket's placement chosen at run time, and backends and placements added at run time.
    const listed = await admin.call<{ placements: { name: string }[]; buckets: { name: string; placement: string }[] }>('ListPlacements');
    assert.equal(listed.buckets.find((bucket) => bucket.name === 'movable')?.placement, 'copies');
    assert.deepEqual(listed.placements.map((placement) => placement.name), ['copies', 'nearby', 'kept', 'slowone']);
    const backends = await admin.call<{ backends: { name: string }[] }>('ListBackends');
    assert.deepEqual(backends.backends.map((backend) => backend.name).slice(0, 2), ['disk0', 'disk1']);
    assert.equal(backends.backends.length, 6, 'disk0, disk1, two S3 backends, disk2 and slow');
    // AdminClient and `talus admin` (TALUS_ADMIN_TOKEN) send it.
    assert.equal((await new AdminClient({ endpoint: talus.adminUrl!, token }).call<{ workers: number }>('GetServerInfo')).workers, 1);
    const cli = await runTalusCli(['admin', 'GetServerInfo', '--endpoint', talus.adminUrl!], { TALUS_ADMIN_TOKEN: token, AWS_ACCESS_KEY_ID: '', AWS_SECRET_ACCESS_KEY: '' });
    assert.equal(cli.code, 0, cli.stderr);
    // Calls with tokens are audited by the token's ID, never its text.
    const entries = await admin.call<{ entries: { accessKeyId?: string; operation: string }[] }>('QueryAuditLog', { operation: 'GetServerInfo', limit: 10 });
    assert.ok(entries.entries.some((entry) => entry.accessKeyId?.startsWith('token:tok-') === true));
    for (const file of await readdir(join(dataDir, 'audit'))) assert.ok(!(await readFile(join(dataDir, 'audit', file), 'utf8')).includes(token.slice('talus_at_'.length)));

    // A talus.toml that now declares a backend added at run time too: the start fails, naming the file, rather than guess.
    s3.destroy();
    await talus.close();
    const clashing = parseConfig(`[backends.disk2]\ntype = "directory"\npath = "${join(root, 'disk2')}"\n`, { source: 'test', baseDirectory: root });
    await assert.rejects(
      startTalus({ dataDir, port: 0, address: '127.0.0.1', rootAccessKeyId: ROOT.accessKeyId, rootSecretAccessKey: ROOT.secretAccessKey, logger: silentLogger, config: { ...config(), backends: [...config().backends, ...clashing.backends] } }),
      /runtime-placements\.json: backend disk2 is declared in the configuration too/,
    );
    await start();
  });
});
