/**
 * The admin API on its own listener, as its callers meet it: signed JSON
 * calls over real HTTP, every operation against every kind of caller, the
 * one-permission-per-operation mapping, bad input, the OpenAPI document, the
 * `talus admin` CLI, and logs that never hold a secret.
 */
import { CreateBucketCommand, GetObjectCommand, ListBucketsCommand, ListObjectVersionsCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { AdminApiError, AdminClient } from '../src/admin/client.ts';
import { ADMIN_OPERATIONS } from '../src/admin/operations.ts';
import { ADMIN_PATH_PREFIX, OPENAPI_PATH } from '../src/admin/paths.ts';
import { startTalus, type RunningTalus } from '../src/talus.ts';
import type { Logger } from '../src/util/logger.ts';
import { TALUS_VERSION } from '../src/version.ts';
import { clientFor, runTalusCli } from './helpers/principals.ts';
import { send, signRequest } from './helpers/raw.ts';
import { freePort, startServerProcess } from './helpers/process.ts';
import { ACCESS_KEY_ID, SECRET_ACCESS_KEY, makeClient } from './helpers/talus.ts';

type Credentials = { accessKeyId: string; secretAccessKey: string };
const ROOT: Credentials = { accessKeyId: ACCESS_KEY_ID, secretAccessKey: SECRET_ACCESS_KEY };

/** Every line the server logged, to prove no secret is among them. */
const logged: string[] = [];
const capturingLogger: Logger = {
  info: (message, fields) => logged.push(JSON.stringify({ message, ...fields })),
  warn: (message, fields) => logged.push(JSON.stringify({ message, ...fields })),
  error: (message, fields) => logged.push(JSON.stringify({ message, ...fields })),
};

/** An input each operation accepts, naming things that do not exist (so a granted call changes nothing that matters). */
const SAMPLE_INPUTS: Record<keyof typeof ADMIN_OPERATIONS, object> = {
  GetServerInfo: {},
  ListUsers: {},
  CreateUser: { name: 'made-by-sample' },
  DeleteUser: { name: 'nobody-here' },
  SetUserPolicy: { name: 'nobody-here', policy: null },
  ListKeys: {},
  CreateKey: { user: 'nobody-here' },
  UpdateKey: { accessKeyId: 'TALUSNOSUCHKEY', enabled: true },
  DeleteKey: { accessKeyId: 'TALUSNOSUCHKEY' },
  ListBuckets: {},
  CreateBucket: { name: 'sample-made-bucket' },
  DeleteBucket: { name: 'no-such-bucket-here' },
  SetBucketVersioning: { name: 'no-such-bucket-here', status: 'Enabled' },
  GetBucketPolicy: { name: 'no-such-bucket-here' },
  SetBucketPolicy: { name: 'no-such-bucket-here', policy: null },
  SetBucketPublicRead: { name: 'no-such-bucket-here', publicRead: false },
  SetBucketQuota: { bucket: 'no-such-bucket-here', maxBytes: null },
  GetBucketQuota: { bucket: 'no-such-bucket-here' },
  QueryAuditLog: { limit: 1 },
  GetStorageStats: { bucket: 'no-such-bucket-here' },
  ListIncompleteUploads: { bucket: 'no-such-bucket-here' },
  AbortIncompleteUploads: { bucket: 'no-such-bucket-here', olderThanSeconds: 86400 },
  GetHealStatus: {},
  StartHeal: {},
  CancelHeal: {},
  ListBackends: {},
  CreateToken: { name: 'made-by-sample', scope: ['GetServerInfo'], expiresInSeconds: 60 },
  ListTokens: {},
  RevokeToken: { id: 'tok-nosuchtoken' },
  ListPlacements: {},
  SetBucketPlacement: { bucket: 'no-such-bucket-here', placement: 'local' },
  AddBackend: { name: 'sample-disk', type: 'directory', path: '/nonexistent-sample' },
  AddPlacement: { name: 'sample-placement', type: 'single', backends: ['nowhere'] },
  DeletePlacement: { name: 'no-such-placement' },
  UpdateBackend: { name: 'no-such-backend', path: '/nonexistent-sample' },
  RemoveBackend: { name: 'no-such-backend' },
  UpdatePlacement: { name: 'no-such-placement', type: 'single', backends: ['nowhere'] },
  ReloadConfig: {},
  ProbeEndpoints: { endpoints: ['http://127.0.0.1:9'], probes: 1 },
  RecommendPlacement: { endpoints: ['http://127.0.0.1:9'], probes: 1, k: 1, m: 0 },
};

async function outcome(client: AdminClient, operation: string, input: object): Promise<string> {
  try {
    await client.call(operation, input);
    return 'ok';
  } catch (error) {
    if (error instanceof AdminApiError) return error.code;
    throw error;
  }
}

describe('admin API', () => {
  let dataDir: string;
  let talus: RunningTalus;
  let adminUrl: string;
  let root: AdminClient;
  const as = (credentials: Credentials): AdminClient => new AdminClient({ endpoint: adminUrl, ...credentials });

  before(async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'talus-admin-'));
    talus = await startTalus({
      dataDir, port: 0, address: '127.0.0.1', rootAccessKeyId: ROOT.accessKeyId, rootSecretAccessKey: ROOT.secretAccessKey,
      logger: capturingLogger, admin: { port: 0, address: '127.0.0.1' },
    });
    assert.ok(talus.adminUrl !== undefined);
    adminUrl = talus.adminUrl;
    root = as(ROOT);
  });
  after(async () => {
    await talus.close();
    await rm(dataDir, { recursive: true, force: true });
  });

  test('GetServerInfo answers the version; the OpenAPI document lists every operation with its input schema', async () => {
    const info = await root.call<{ version: string; uptimeMs: number; workers: number }>('GetServerInfo');
    assert.equal(info.version, TALUS_VERSION);
    assert.equal(info.workers, 1);
    const response = await fetch(`${adminUrl}${OPENAPI_PATH}`);
    assert.equal(response.status, 200);
    const spec = await response.json() as { openapi: string; paths: Record<string, { post: { operationId: string; requestBody: { content: { 'application/json': { schema: { properties: Record<string, unknown> } } } } } }> };
    assert.equal(spec.openapi, '3.1.0');
    assert.deepEqual(Object.keys(spec.paths).sort(), Object.keys(ADMIN_OPERATIONS).map((name) => `${ADMIN_PATH_PREFIX}${name}`).sort());
    const createUser = spec.paths[`${ADMIN_PATH_PREFIX}CreateUser`]!.post;
    assert.equal(createUser.operationId, 'CreateUser');
    assert.deepEqual(Object.keys(createUser.requestBody.content['application/json'].schema.properties).sort(), ['email', 'name', 'policy']);
  });

  test('anonymous, a wrong signature, a plain user, a readwrite user: refused for every operation, nothing changed', async () => {
    const plain = await root.call<Credentials>('CreateUser', { name: 'plain' });
    const readwrite = await root.call<Credentials>('CreateUser', { name: 'rw', policy: 'readwrite' });
    const wrongSecret = as({ accessKeyId: ROOT.accessKeyId, secretAccessKey: 'not-the-secret-0123456789' });
    for (const [name, input] of Object.entries(SAMPLE_INPUTS)) {
      const anonymous = await fetch(`${adminUrl}${ADMIN_PATH_PREFIX}${name}`, { method: 'POST', body: JSON.stringify(input), headers: { 'content-type': 'application/json' } });
      assert.equal(anonymous.status, 401, name);
      assert.equal((await anonymous.json() as { code: string }).code, 'AuthenticationRequired');
      assert.equal(await outcome(wrongSecret, name, input), 'InvalidSignature', name);
      assert.equal(await outcome(as(plain), name, input), 'AccessDenied', name);
      assert.equal(await outcome(as(readwrite), name, input), 'AccessDenied', name);
    }
    const users = await root.call<{ users: { name: string }[] }>('ListUsers');
    assert.ok(!users.users.some((user) => user.name === 'made-by-sample'), 'no refused CreateUser took effect');
    const buckets = await root.call<{ buckets: { name: string }[] }>('ListBuckets');
    assert.ok(!buckets.buckets.some((bucket) => bucket.name === 'sample-made-bucket'));
  });

  test('each operation is exactly one permission: a user granted admin:<Op> may call <Op> and nothing else', async () => {
    const operator = await root.call<Credentials>('CreateUser', { name: 'operator' });
    const client = as(operator);
    for (const granted of Object.keys(SAMPLE_INPUTS)) {
      const policy = JSON.stringify({ Version: '2012-10-17', Statement: [{ Effect: 'Allow', Action: `admin:${granted}`, Resource: '*' }] });
      await root.call('SetUserPolicy', { name: 'operator', policy });
      for (const [name, input] of Object.entries(SAMPLE_INPUTS)) {
        const result = await outcome(client, name, input);
        if (name === granted) assert.notEqual(result, 'AccessDenied', `admin:${granted} allows ${name}`);
        else assert.equal(result, 'AccessDenied', `admin:${granted} must not allow ${name}`);
      }
    }
    // consoleAdmin (MinIO's administrator policy) allows every operation; a readonly key of that user none.
    await root.call('SetUserPolicy', { name: 'operator', policy: 'consoleAdmin' });
    const narrowed = await root.call<Credentials>('CreateKey', { user: 'operator', policy: 'readonly' });
    for (const [name, input] of Object.entries(SAMPLE_INPUTS)) {
      if (name === 'CreateUser' || name === 'CreateBucket') continue;
      assert.notEqual(await outcome(client, name, input), 'AccessDenied', name);
      assert.equal(await outcome(as(narrowed), name, input), 'AccessDenied', name);
    }
  });

  test('users and keys: created, usable on S3 at once, disabled, narrowed, deleted', async () => {
    const alice = await root.call<Credentials & { canonicalId: string }>('CreateUser', { name: 'alice', email: 'alice@example.com' });
    assert.match(alice.accessKeyId, /^TALUS/);
    const s3 = clientFor(talus.url, alice);
    await s3.send(new ListBucketsCommand({}));
    const listed = await root.call<{ users: { name: string; keys: number; email: string | null; createdMs: number }[] }>('ListUsers');
    const listedAlice = listed.users.find((user) => user.name === 'alice');
    assert.ok(listedAlice !== undefined && listedAlice.createdMs <= Date.now());
    assert.deepEqual(listedAlice, { name: 'alice', canonicalId: alice.canonicalId, email: 'alice@example.com', policy: null, createdMs: listedAlice.createdMs, keys: 1 });
    const second = await root.call<Credentials & { expiresMs: number }>('CreateKey', { user: 'alice', expiresInSeconds: 3600 });
    assert.ok(second.expiresMs > Date.now());
    const keys = await root.call<{ keys: { accessKeyId: string; secretAccessKey?: string }[] }>('ListKeys', { user: 'alice' });
    assert.deepEqual(keys.keys.map((key) => key.accessKeyId).sort(), [alice.accessKeyId, second.accessKeyId].sort());
    assert.ok(keys.keys.every((key) => key.secretAccessKey === undefined), 'listings never carry secrets');

    await root.call('UpdateKey', { accessKeyId: alice.accessKeyId, enabled: false });
    await assert.rejects(s3.send(new ListBucketsCommand({})), /InvalidAccessKeyId|access key/i);
    await root.call('UpdateKey', { accessKeyId: alice.accessKeyId, enabled: true });
    await s3.send(new ListBucketsCommand({}));
    await root.call('DeleteKey', { accessKeyId: second.accessKeyId });
    await assert.rejects(clientFor(talus.url, second).send(new ListBucketsCommand({})), /InvalidAccessKeyId|access key/i);
    assert.equal(await outcome(root, 'DeleteKey', { accessKeyId: second.accessKeyId }), 'NotFound');
    assert.equal(await outcome(root, 'CreateUser', { name: 'alice' }), 'Conflict');
    assert.equal(await outcome(root, 'CreateUser', { name: 'bad name!' }), 'InvalidRequest');
    assert.equal(await outcome(root, 'SetUserPolicy', { name: 'alice', policy: '{"Statement":"nope"}' }), 'MalformedPolicy');
    // root's last enabled key cannot be disabled or removed.
    assert.equal(await outcome(root, 'UpdateKey', { accessKeyId: ROOT.accessKeyId, enabled: false }), 'Conflict');
    s3.destroy();
  });

  test('buckets: created for a user, public-read preset, versioning, policy, refused deletes', async () => {
    const bob = await root.call<Credentials>('CreateUser', { name: 'bob' });
    assert.deepEqual(await root.call('CreateBucket', { name: 'bobs-bucket', owner: 'bob' }), { name: 'bobs-bucket', owner: 'bob' });
    assert.equal(await outcome(root, 'CreateBucket', { name: 'bobs-bucket' }), 'Conflict');
    assert.equal(await outcome(root, 'CreateBucket', { name: 'Not_A_Bucket' }), 'InvalidRequest');
    const s3 = clientFor(talus.url, bob);
    await s3.send(new PutObjectCommand({ Bucket: 'bobs-bucket', Key: 'hello.txt', Body: 'hi' }));
    const anonymousGet = (): Promise<number> => fetch(`${talus.url}/bobs-bucket/hello.txt`).then(async (response) => (await response.arrayBuffer(), response.status));
    assert.equal(await anonymousGet(), 403);
    const preset = await root.call<{ policy: string }>('SetBucketPublicRead', { name: 'bobs-bucket', publicRead: true });
    assert.equal(await anonymousGet(), 200);
    assert.deepEqual(await root.call('GetBucketPolicy', { name: 'bobs-bucket' }), { policy: preset.policy });
    await root.call('SetBucketPublicRead', { name: 'bobs-bucket', publicRead: false });
    assert.equal(await anonymousGet(), 403);
    assert.equal(await outcome(root, 'SetBucketPolicy', { name: 'bobs-bucket', policy: '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::other/*"}]}' }), 'MalformedPolicy');
    await root.call('SetBucketVersioning', { name: 'bobs-bucket', status: 'Enabled' });
    const listed = await root.call<{ buckets: { name: string; owner: string; versioning: string; hasPolicy: boolean; createdMs: number }[] }>('ListBuckets');
    const listedBucket = listed.buckets.find((bucket) => bucket.name === 'bobs-bucket');
    assert.ok(listedBucket !== undefined);
    assert.deepEqual(listedBucket, { name: 'bobs-bucket', createdMs: listedBucket.createdMs, owner: 'bob', versioning: 'Enabled', hasPolicy: false, quota: null });
    assert.equal(await outcome(root, 'DeleteBucket', { name: 'bobs-bucket' }), 'Conflict', 'not empty');
    assert.equal(await outcome(root, 'DeleteUser', { name: 'bob' }), 'Conflict', 'owns a bucket');
    assert.equal((await s3.send(new GetObjectCommand({ Bucket: 'bobs-bucket', Key: 'hello.txt' }))).ContentLength, 2, 'nothing refused changed the object');
    s3.destroy();
  });

  test('bad requests: unknown fields, wrong types, not JSON, unknown operations, wrong methods, oversized bodies', async () => {
    assert.equal(await outcome(root, 'ListUsers', { surprise: 1 }), 'InvalidRequest');
    assert.equal(await outcome(root, 'SetBucketVersioning', { name: 'x', status: 'Maybe' }), 'InvalidRequest');
    assert.equal(await outcome(root, 'CreateKey', { expiresInSeconds: 'soon' }), 'InvalidRequest');
    assert.equal(await outcome(root, 'DeleteUser', {}), 'InvalidRequest');
    assert.equal(await outcome(root, 'NoSuchThing', {}), 'NoSuchOperation');
    const signedRaw = async (method: string, path: string, body: string, contentType = 'application/json') => {
      const headers = await signRequest(adminUrl, { method, path, headers: { 'content-type': contentType }, body });
      const response = await send(adminUrl, method, path, headers, body);
      return { status: response.status, code: (JSON.parse(response.body) as { code: string }).code };
    };
    assert.deepEqual(await signedRaw('POST', `${ADMIN_PATH_PREFIX}ListUsers`, '{not json'), { status: 400, code: 'InvalidRequest' });
    assert.deepEqual(await signedRaw('POST', `${ADMIN_PATH_PREFIX}ListUsers`, '{}', 'text/plain'), { status: 415, code: 'UnsupportedMediaType' });
    assert.deepEqual(await signedRaw('GET', `${ADMIN_PATH_PREFIX}ListUsers`, ''), { status: 405, code: 'MethodNotAllowed' });
    assert.deepEqual(await signedRaw('POST', `${ADMIN_PATH_PREFIX}SetUserPolicy`, JSON.stringify({ name: 'x', policy: 'p'.repeat(200 * 1024) })), { status: 413, code: 'RequestTooLarge' });
    // A body that is not the one signed.
    const headers = await signRequest(adminUrl, { method: 'POST', path: `${ADMIN_PATH_PREFIX}ListUsers`, headers: { 'content-type': 'application/json' }, body: '{}' });
    const tampered = await send(adminUrl, 'POST', `${ADMIN_PATH_PREFIX}ListUsers`, headers, '{ }');
    assert.equal((JSON.parse(tampered.body) as { code: string }).code, 'InvalidSignature');
  });

  test('the audit log holds admin calls and refused requests, queryable by caller, operation, kind and time; no secret in it', async () => {
    const since = Date.now();
    const carol = await root.call<Credentials>('CreateUser', { name: 'carol' });
    assert.equal(await outcome(as(carol), 'ListUsers', {}), 'AccessDenied');
    // An S3 request refused for who sent it: carol may not read root's bucket; a wrong secret is refused too.
    await root.call('CreateBucket', { name: 'roots-bucket' });
    const carolS3 = clientFor(talus.url, carol);
    await assert.rejects(carolS3.send(new ListObjectVersionsCommand({ Bucket: 'roots-bucket' })), { name: 'AccessDenied' });
    carolS3.destroy();
    const { entries } = await root.call<{ entries: { kind: string; operation: string; principal: string; status: number; code?: string; reason?: string; bucket?: string; timeMs: number }[] }>('QueryAuditLog', { sinceMs: since });
    assert.ok(entries.every((entry, i) => i === 0 || entries[i - 1]!.timeMs >= entry.timeMs), 'newest first');
    assert.ok(entries.some((entry) => entry.kind === 'admin' && entry.operation === 'CreateUser' && entry.principal === 'root' && entry.status === 200));
    assert.ok(entries.some((entry) => entry.kind === 'admin' && entry.operation === 'ListUsers' && entry.principal === 'carol' && entry.code === 'AccessDenied' && entry.reason === 'no-identity-policy'));
    assert.ok(entries.some((entry) => entry.kind === 's3-denied' && entry.operation === 'ListObjectVersions' && entry.principal === 'carol' && entry.bucket === 'roots-bucket' && entry.status === 403));
    const carols = await root.call<{ entries: { principal: string }[] }>('QueryAuditLog', { sinceMs: since, principal: 'carol' });
    assert.ok(carols.entries.length >= 2 && carols.entries.every((entry) => entry.principal === 'carol'));
    const creates = await root.call<{ entries: { operation: string }[] }>('QueryAuditLog', { sinceMs: since, operation: 'CreateUser', limit: 1 });
    assert.deepEqual(creates.entries.map((entry) => entry.operation), ['CreateUser']);
    assert.deepEqual((await root.call<{ entries: unknown[] }>('QueryAuditLog', { sinceMs: Date.now() + 60_000 })).entries, []);
    const files = await readdir(join(dataDir, 'audit'));
    for (const file of files) {
      const text = await readFile(join(dataDir, 'audit', file), 'utf8');
      for (const secret of [ROOT.secretAccessKey, carol.secretAccessKey]) assert.ok(!text.includes(secret), `a secret in ${file}`);
    }
  });

  test('talus admin is a client of the API', async () => {
    const endpoint = ['--endpoint', adminUrl];
    const env = { AWS_ACCESS_KEY_ID: ROOT.accessKeyId, AWS_SECRET_ACCESS_KEY: ROOT.secretAccessKey };
    const created = await runTalusCli(['admin', 'CreateUser', '--json', '{"name":"from-cli"}', ...endpoint], env);
    assert.equal(created.code, 0, created.stderr);
    assert.equal((JSON.parse(created.stdout) as { name: string }).name, 'from-cli');
    const refused = await runTalusCli(['admin', 'CreateUser', '--json', '{"name":"from-cli"}', ...endpoint], env);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /Conflict/);
    const anonymous = await runTalusCli(['admin', 'ListUsers', ...endpoint], { AWS_ACCESS_KEY_ID: '', AWS_SECRET_ACCESS_KEY: '' });
    assert.notEqual(anonymous.code, 0);
  });

  test('no secret in any log line', async () => {
    const secrets = [ROOT.secretAccessKey];
    const made = await root.call<Credentials>('CreateUser', { name: 'logcheck' });
    secrets.push(made.secretAccessKey);
    await outcome(as({ accessKeyId: made.accessKeyId, secretAccessKey: 'wrong-secret-0123456789' }), 'ListUsers', {});
    await outcome(as(made), 'ListUsers', {});
    assert.ok(logged.some((line) => line.includes('admin request denied')), 'denials are logged');
    assert.ok(logged.some((line) => line.includes('"operation":"CreateUser"')), 'calls are logged');
    for (const line of logged) for (const secret of secrets) assert.ok(!line.includes(secret), `a secret in: ${line}`);
    for (const line of logged) assert.ok(!/Signature=|AWS4-HMAC-SHA256 Credential/.test(line), `a signature in: ${line}`);
  });
});

test('with --workers 2 the primary serves the admin API, and bucket changes reach every worker at once', { timeout: 120_000 }, async () => {
  const dataDir = await mkdtemp(join(tmpdir(), 'talus-admin-workers-'));
  const adminPort = await freePort();
  const server = await startServerProcess(dataDir, undefined, ['--workers', '2', '--console-address', `127.0.0.1:${adminPort}`]);
  try {
    assert.match(server.output(), new RegExp(`Admin API:\\s+http://127\\.0\\.0\\.1:${adminPort}/`));
    const admin = new AdminClient({ endpoint: `http://127.0.0.1:${adminPort}`, ...ROOT });
    assert.equal((await admin.call<{ workers: number }>('GetServerInfo')).workers, 2);
    const s3 = makeClient(server.url);
    await s3.send(new CreateBucketCommand({ Bucket: 'cached' }));
    // Both workers read (and cache) the bucket record while it is unversioned.
    for (let i = 0; i < 8; i++) await s3.send(new PutObjectCommand({ Bucket: 'cached', Key: `warm-${i}`, Body: 'x' }));
    await admin.call('SetBucketVersioning', { name: 'cached', status: 'Enabled' });
    for (let i = 0; i < 8; i++) await s3.send(new PutObjectCommand({ Bucket: 'cached', Key: 'k', Body: String(i) }));
    const versions = await s3.send(new ListObjectVersionsCommand({ Bucket: 'cached', Prefix: 'k' }));
    assert.equal(versions.Versions?.length, 8, 'every PUT after the change made a version, on either worker');
    s3.destroy();
  } finally {
    await server.stop();
    await rm(dataDir, { recursive: true, force: true });
  }
});
