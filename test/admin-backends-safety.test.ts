/**
 * Run-time backend changes that must not lose or destroy data, against a
 * real server whose backends are directories:
 * - RemoveBackend while a PUT that chose the backend is still streaming:
 *   the PUT is refused (503, retryable), never acknowledged with a shard on
 *   the removed backend; a retry lands on the placement's new backend.
 * - AddBackend through a symlink to the data directory or to another
 *   backend's directory is refused (real paths are compared).
 * - RemoveBackend with force drops a backend that only purge-queue entries
 *   still name (a dead backend whose shards can never be deleted).
 * - UpdateBackend to a location without this backend's blobs is refused
 *   unless forced; orphan reclaim leaves a backend without this store's
 *   identity marker alone.
 */
import { AbortMultipartUploadCommand, CreateBucketCommand, CreateMultipartUploadCommand, DeleteObjectCommand, GetObjectCommand, PutObjectCommand, UploadPartCommand, type S3Client } from '@aws-sdk/client-s3';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { request as httpRequest } from 'node:http';
import { cp, mkdir, mkdtemp, readdir, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { AdminApiError, AdminClient } from '../src/admin/client.ts';
import { parseConfig } from '../src/config/config.ts';
import { startTalus, type RunningTalus } from '../src/talus.ts';
import { silentLogger } from '../src/util/logger.ts';
import { signRequest } from './helpers/raw.ts';
import { ACCESS_KEY_ID, SECRET_ACCESS_KEY, makeClient } from './helpers/talus.ts';

const ROOT = { accessKeyId: ACCESS_KEY_ID, secretAccessKey: SECRET_ACCESS_KEY };

async function outcome(call: Promise<unknown>): Promise<string> {
  try {
    await call;
    return 'ok';
  } catch (error) {
    if (error instanceof AdminApiError) return error.message; // "<code>: <message>"
    throw error;
  }
}

async function filesUnder(root: string): Promise<string[]> {
  const found: string[] = [];
  for (const entry of await readdir(root, { withFileTypes: true, recursive: true })) if (entry.isFile()) found.push(join(entry.parentPath, entry.name));
  return found;
}

async function eventually(what: string, check: () => Promise<boolean>, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** A PUT whose body is sent in two halves, the second when `finish` is called; resolves to the status. */
async function slowPut(baseUrl: string, bucket: string, key: string, body: Buffer): Promise<{ finish: () => Promise<{ status: number; body: string }> }> {
  const url = new URL(baseUrl);
  const path = `/${bucket}/${key}`;
  const headers = await signRequest(baseUrl, { method: 'PUT', path, unsignedPayload: true, headers: { 'content-length': String(body.length) } });
  let rest: () => void = () => undefined;
  const answered = new Promise<{ status: number; body: string }>((resolve, reject) => {
    const outgoing = httpRequest({ host: url.hostname, port: url.port, method: 'PUT', path, headers, agent: false }, (response) => {
      const chunks: Buffer[] = [];
      response.on('data', (chunk: Buffer) => chunks.push(chunk));
      response.on('end', () => resolve({ status: response.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
      response.on('error', reject);
    });
    outgoing.on('error', reject);
    const half = body.length >> 1;
    outgoing.write(body.subarray(0, half));
    rest = () => outgoing.end(body.subarray(half));
  });
  return {
    finish: () => {
      rest();
      return answered;
    },
  };
}

describe('run-time backend changes keep data safe', () => {
  let root: string;
  let dataDir: string;
  let talus: RunningTalus;
  let admin: AdminClient;
  let s3: S3Client;

  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'talus-backends-safety-'));
    dataDir = join(root, 'data');
    for (const disk of ['base', 'c', 'd']) await mkdir(join(root, disk));
    const config = parseConfig(`[backends.base]\ntype = "directory"\npath = "${join(root, 'base')}"\n[placements.basic]\ntype = "single"\nbackend = "base"\n`, { source: 'test', baseDirectory: root });
    talus = await startTalus({
      dataDir, port: 0, address: '127.0.0.1', rootAccessKeyId: ROOT.accessKeyId, rootSecretAccessKey: ROOT.secretAccessKey,
      logger: silentLogger, admin: { port: 0, address: '127.0.0.1' }, config, healInBackground: false,
    });
    admin = new AdminClient({ endpoint: talus.adminUrl!, ...ROOT });
    s3 = makeClient(talus.url);
  });
  after(async () => {
    s3.destroy();
    await talus.close();
    await rm(root, { recursive: true, force: true });
  });

  test('RemoveBackend during a PUT that chose it: the PUT is refused with 503, not acknowledged with a lost shard; a retry lands on the new backend', async () => {
    await admin.call('AddBackend', { name: 'c', type: 'directory', path: join(root, 'c') });
    await admin.call('AddBackend', { name: 'd', type: 'directory', path: join(root, 'd') });
    await admin.call('AddPlacement', { name: 'moving', type: 'single', backends: ['c'] });
    await s3.send(new CreateBucketCommand({ Bucket: 'inflight' }));
    await admin.call('SetBucketPlacement', { bucket: 'inflight', placement: 'moving' });

    const body = randomBytes(2 * 1024 * 1024);
    const put = await slowPut(talus.url, 'inflight', 'object', body);
    // The first half is in: the blob's writer chose backend c.
    for (let waited = 0; waited < 100 && (await filesUnder(join(root, 'c'))).length === 0; waited++) await new Promise((resolve) => setTimeout(resolve, 100));
    assert.ok((await filesUnder(join(root, 'c'))).length > 0, 'the PUT writes its shard to c');

    await admin.call('UpdatePlacement', { name: 'moving', type: 'single', backends: ['d'] });
    assert.equal(await outcome(admin.call('RemoveBackend', { name: 'c' })), 'ok', 'nothing committed names c yet');
    const answer = await put.finish();
    assert.equal(answer.status, 503, `the PUT is refused, not acknowledged: ${answer.status} ${answer.body}`);
    assert.match(answer.body, /<Code>ServiceUnavailable<\/Code>/);
    await assert.rejects(s3.send(new GetObjectCommand({ Bucket: 'inflight', Key: 'object' })), (error: Error) => error.name === 'NoSuchKey');

    // The client's retry follows the placement to d, and reads back.
    await s3.send(new PutObjectCommand({ Bucket: 'inflight', Key: 'object', Body: body }));
    const read = await s3.send(new GetObjectCommand({ Bucket: 'inflight', Key: 'object' }));
    assert.ok(Buffer.from(await read.Body!.transformToByteArray()).equals(body));
    assert.ok((await filesUnder(join(root, 'd'))).length > 0);
  });

  test('AddBackend through a symlink to the data directory or to another backend\'s directory is refused', async () => {
    await symlink(dataDir, join(root, 'link-to-data'));
    await symlink(join(root, 'base'), join(root, 'link-to-base'));
    await mkdir(join(root, 'real-parent'));
    await symlink(join(root, 'real-parent'), join(root, 'link-to-parent'));
    assert.match(await outcome(admin.call('AddBackend', { name: 'direct', type: 'directory', path: dataDir })), /^InvalidRequest: a directory backend may not be the data directory/);
    assert.match(await outcome(admin.call('AddBackend', { name: 'vialink', type: 'directory', path: join(root, 'link-to-data') })), /^InvalidRequest: a directory backend may not be the data directory/);
    assert.match(await outcome(admin.call('AddBackend', { name: 'vialink2', type: 'directory', path: join(root, 'link-to-data', 'blobs', 'x') })), /^InvalidRequest: a directory backend may not be the data directory/);
    assert.match(await outcome(admin.call('AddBackend', { name: 'sharing', type: 'directory', path: join(root, 'link-to-base') })), /^InvalidRequest: backend base's directory/);
    // A path through a symlink to somewhere else is fine, and is not yet there (created when opened).
    assert.equal(await outcome(admin.call('AddBackend', { name: 'elsewhere', type: 'directory', path: join(root, 'link-to-parent', 'new') })), 'ok');
    assert.match(await outcome(admin.call('AddBackend', { name: 'twice', type: 'directory', path: join(root, 'real-parent', 'new') })), /^InvalidRequest: backend elsewhere's directory/);
    const kept = (await admin.call<{ backends: { name: string }[] }>('ListBackends')).backends.map((backend) => backend.name);
    for (const refused of ['direct', 'vialink', 'vialink2', 'sharing', 'twice']) assert.ok(!kept.includes(refused), `${refused} was not added`);
  });
  test('RemoveBackend with force: refused while a live part uses the backend, then drops what only the purge queue still names there', async () => {
    await mkdir(join(root, 'e'));
    await admin.call('AddBackend', { name: 'e', type: 'directory', path: join(root, 'e') });
    await admin.call('AddPlacement', { name: 'on-e', type: 'single', backends: ['e'] });
    await s3.send(new CreateBucketCommand({ Bucket: 'dying' }));
    await admin.call('SetBucketPlacement', { bucket: 'dying', placement: 'on-e' });
    const kept = randomBytes(300_000);
    await s3.send(new PutObjectCommand({ Bucket: 'dying', Key: 'kept', Body: kept }));
    await s3.send(new PutObjectCommand({ Bucket: 'dying', Key: 'deleted', Body: randomBytes(300_000) }));
    await s3.send(new DeleteObjectCommand({ Bucket: 'dying', Key: 'deleted' })); // its blob waits in the purge queue (grace period)
    const upload = await s3.send(new CreateMultipartUploadCommand({ Bucket: 'dying', Key: 'unfinished' }));
    await s3.send(new UploadPartCommand({ Bucket: 'dying', Key: 'unfinished', UploadId: upload.UploadId, PartNumber: 1, Body: randomBytes(200_000) }));

    // Objects move off e; the part of the incomplete upload stays there (live).
    await admin.call('UpdatePlacement', { name: 'on-e', type: 'single', backends: ['base'] });
    const settled = (): Promise<void> => eventually('re-placement to end', async () => {
      const pass = (await admin.call<{ pass?: { state: string } | null }>('GetHealStatus')).pass;
      return pass !== undefined && pass !== null && !['waiting', 'running'].includes(pass.state);
    });
    // A pass begun before the change may have gone past the objects already: one more, begun after it.
    await settled();
    await admin.call('StartHeal', {});
    await settled();
    // The backend dies: its shards can never be deleted.
    await rm(join(root, 'e'), { recursive: true, force: true });
    await writeFile(join(root, 'e'), 'not a directory any more');

    assert.match(await outcome(admin.call('RemoveBackend', { name: 'e' })), /^Conflict: backend e still holds shards of \d+ blobs? \(objects, parts of incomplete uploads, or blobs waiting in the purge queue\)/);
    assert.match(await outcome(admin.call('RemoveBackend', { name: 'e', force: true })), /^Conflict: backend e still holds shards of 1 live blob/);
    await s3.send(new AbortMultipartUploadCommand({ Bucket: 'dying', Key: 'unfinished', UploadId: upload.UploadId }));
    assert.match(await outcome(admin.call('RemoveBackend', { name: 'e' })), /^Conflict/, 'without force the purge queue still holds it');
    assert.equal(await outcome(admin.call('RemoveBackend', { name: 'e', force: true })), 'ok');
    const names = (await admin.call<{ backends: { name: string }[] }>('ListBackends')).backends.map((backend) => backend.name);
    assert.ok(!names.includes('e'));
    const read = await s3.send(new GetObjectCommand({ Bucket: 'dying', Key: 'kept' }));
    assert.ok(Buffer.from(await read.Body!.transformToByteArray()).equals(kept));
    // The name is free again, and a new e is a new backend.
    await mkdir(join(root, 'e2'));
    assert.equal(await outcome(admin.call('AddBackend', { name: 'e', type: 'directory', path: join(root, 'e2') })), 'ok');
  });
  test('UpdateBackend to a location without the backend\'s blobs is refused unless forced; the same data elsewhere is accepted', async () => {
    await mkdir(join(root, 'f'));
    await admin.call('AddBackend', { name: 'f', type: 'directory', path: join(root, 'f') });
    await admin.call('AddPlacement', { name: 'on-f', type: 'single', backends: ['f'] });
    await s3.send(new CreateBucketCommand({ Bucket: 'moved' }));
    await admin.call('SetBucketPlacement', { bucket: 'moved', placement: 'on-f' });
    const body = randomBytes(100_000);
    await s3.send(new PutObjectCommand({ Bucket: 'moved', Key: 'object', Body: body }));

    assert.match(await outcome(admin.call('UpdateBackend', { name: 'f', path: join(root, 'f-typo') })), /^Conflict: the new location of backend f does not hold 1 of 1 shards recorded on it/);
    assert.ok((await admin.call<{ backends: { name: string }[] }>('ListBackends')).backends.some((backend) => backend.name === 'f'));
    const read = async (): Promise<Buffer> => Buffer.from(await (await s3.send(new GetObjectCommand({ Bucket: 'moved', Key: 'object' }))).Body!.transformToByteArray());
    assert.ok((await read()).equals(body), 'the refused change changed nothing');

    await cp(join(root, 'f'), join(root, 'f-copy'), { recursive: true });
    assert.equal(await outcome(admin.call('UpdateBackend', { name: 'f', path: join(root, 'f-copy') })), 'ok');
    assert.ok((await read()).equals(body));
    assert.equal(await outcome(admin.call('UpdateBackend', { name: 'f', path: join(root, 'f-empty'), force: true })), 'ok', 'force takes it anyway');
  });
});
