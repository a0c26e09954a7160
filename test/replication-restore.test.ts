/**
 * The gateway's disk dies: its metadata comes back from the backends.
 *
 * A gateway process stores erasure 2+1 over three directory backends and
 * replicates its metadata to them (lag 250 ms, encrypted). Objects of every
 * kind — inline small ones, striped ones, a multipart upload, versions and a
 * delete marker, a bucket policy — are written; once the lag bound has
 * passed, the gateway is killed with SIGKILL and its data directory deleted.
 * `talus restore` rebuilds it from the replicas; the server starts on it
 * without --adopt-metadata and every object reads back bit-exact. Then the
 * restored gateway purges what is deleted and heals a lost shard, as before.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { copyFile, mkdtemp, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { test } from 'node:test';
import {
  CompleteMultipartUploadCommand,
  CreateBucketCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  GetBucketPolicyCommand,
  GetObjectCommand,
  PutBucketPolicyCommand,
  PutBucketVersioningCommand,
  PutObjectCommand,
  UploadPartCommand,
  type S3Client,
} from '@aws-sdk/client-s3';
import { DirectoryBackend } from '../src/backend/directory-backend.ts';
import { CLI, PROJECT_ROOT, startServerProcess, type ServerProcess } from './helpers/process.ts';
import { makeClient } from './helpers/talus.ts';

const run = promisify(execFile);
const sha256 = (data: Uint8Array): string => createHash('sha256').update(data).digest('hex');
const LAG_MS = 250;
/** The lag bound plus generous room for one upload on a loaded machine. */
const SETTLE_MS = LAG_MS + 2_750;

async function get(client: S3Client, bucket: string, key: string, versionId?: string): Promise<Buffer> {
  const answer = await client.send(new GetObjectCommand({ Bucket: bucket, Key: key, VersionId: versionId }));
  return Buffer.from(await answer.Body!.transformToByteArray());
}

async function waitFor(what: string, timeoutMs: number, probe: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await probe())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

async function shardKeysOf(root: string): Promise<string[]> {
  const backend = await DirectoryBackend.open('probe', root);
  const keys: string[] = [];
  for await (const key of backend.list('')) if (!key.startsWith('talus-meta/') && !key.startsWith('talus-records/')) keys.push(key);
  return keys;
}

test('gateway loss: talus restore brings back every object written more than the lag bound before', { timeout: 240_000 }, async () => {
  const root = await mkdtemp(join(tmpdir(), 'talus-restore-'));
  let gateway: ServerProcess | undefined;
  try {
    const configPath = join(root, 'talus.toml');
    await writeFile(
      configPath,
      [
        '[backends.d0]\ntype = "directory"\npath = "d0"',
        '[backends.d1]\ntype = "directory"\npath = "d1"',
        '[backends.d2]\ntype = "directory"\npath = "d2"',
        '[placements.geo]\ntype = "erasure"\ndata_shards = 2\nparity_shards = 1\nbackends = ["d0", "d1", "d2"]\nblock_size = "64KiB"',
        '[defaults]\nplacement = "geo"',
        `[replication]\nlag = "${LAG_MS}ms"\nkey = "${randomBytes(32).toString('base64')}"`,
      ].join('\n\n'),
    );
    const dataDir = join(root, 'gateway');
    gateway = await startServerProcess(dataDir, undefined, ['--config', configPath]);
    let client = makeClient(gateway.url);

    const expected: { bucket: string; key: string; versionId?: string; sha256: string }[] = [];
    const put = async (bucket: string, key: string, body: Buffer): Promise<string | undefined> => {
      const answer = await client.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: body }));
      return answer.VersionId;
    };
    await client.send(new CreateBucketCommand({ Bucket: 'plain' }));
    await client.send(new CreateBucketCommand({ Bucket: 'history' }));
    await client.send(new PutBucketVersioningCommand({ Bucket: 'history', VersioningConfiguration: { Status: 'Enabled' } }));
    const policy = JSON.stringify({ Version: '2012-10-17', Statement: [{ Effect: 'Allow', Principal: '*', Action: 's3:GetObject', Resource: 'arn:aws:s3:::plain/public/*' }] });
    await client.send(new PutBucketPolicyCommand({ Bucket: 'plain', Policy: policy }));
    for (const [key, size] of [['small', 4096], ['public/tiny', 10], ['striped', 300_000], ['two-stripes', 2 * 1024 * 1024 + 3], ['to-delete', 200_000]] as const) {
      const body = randomBytes(size);
      await put('plain', key, body);
      if (key !== 'to-delete') expected.push({ bucket: 'plain', key, sha256: sha256(body) });
    }
    await client.send(new DeleteObjectCommand({ Bucket: 'plain', Key: 'to-delete' }));
    // Multipart: two parts, the first at the 5 MiB minimum.
    const parts = [randomBytes(5 * 1024 * 1024), randomBytes(777_777)];
    const { UploadId } = await client.send(new CreateMultipartUploadCommand({ Bucket: 'plain', Key: 'multi' }));
    const etags: string[] = [];
    for (const [i, part] of parts.entries()) {
      etags.push((await client.send(new UploadPartCommand({ Bucket: 'plain', Key: 'multi', UploadId, PartNumber: i + 1, Body: part }))).ETag!);
    }
    await client.send(new CompleteMultipartUploadCommand({ Bucket: 'plain', Key: 'multi', UploadId, MultipartUpload: { Parts: etags.map((ETag, i) => ({ ETag, PartNumber: i + 1 })) } }));
    expected.push({ bucket: 'plain', key: 'multi', sha256: sha256(Buffer.concat(parts)) });
    // Versions: three of one key (one small, two striped), then a delete marker on another.
    for (const size of [100, 150_000, 400_000]) {
      const body = randomBytes(size);
      const versionId = await put('history', 'doc', body);
      expected.push({ bucket: 'history', key: 'doc', versionId, sha256: sha256(body) });
    }
    const hiddenBody = randomBytes(120_000);
    const hiddenVersion = await put('history', 'hidden', hiddenBody);
    expected.push({ bucket: 'history', key: 'hidden', versionId: hiddenVersion, sha256: sha256(hiddenBody) });
    await client.send(new DeleteObjectCommand({ Bucket: 'history', Key: 'hidden' }));

    // The operator keeps the secret key apart from the data directory (docs/ACCESS.md).
    const savedSecretKey = join(root, 'saved.secret-key');
    await copyFile(join(dataDir, 'talus.secret-key'), savedSecretKey);
    await new Promise((resolve) => setTimeout(resolve, SETTLE_MS));
    await gateway.kill9();
    gateway = undefined;
    client.destroy();
    await rm(dataDir, { recursive: true, force: true });

    const restored = await run(process.execPath, ['--import', 'tsx', CLI, 'restore', dataDir, '--config', configPath, '--secret-key-file', savedSecretKey], { cwd: PROJECT_ROOT });
    const report = JSON.parse(restored.stdout) as { segmentsApplied: number; position: number };
    assert.ok(report.position > 0, restored.stderr);

    // No --adopt-metadata: the restored directory is the store's next state.
    gateway = await startServerProcess(dataDir, undefined, ['--config', configPath]);
    client = makeClient(gateway.url);
    for (const object of expected) {
      const body = await get(client, object.bucket, object.key, object.versionId);
      assert.equal(sha256(body), object.sha256, `${object.bucket}/${object.key} ${object.versionId ?? ''}`);
    }
    // Latest views, the delete marker, the deleted object, the policy.
    assert.equal(sha256(await get(client, 'history', 'doc')), expected.filter((object) => object.key === 'doc').at(-1)!.sha256);
    await assert.rejects(get(client, 'history', 'hidden'), { name: 'NoSuchKey' });
    await assert.rejects(get(client, 'plain', 'to-delete'), { name: 'NoSuchKey' });
    assert.equal((await client.send(new GetBucketPolicyCommand({ Bucket: 'plain' }))).Policy, policy);
    const anonymous = await fetch(`${gateway.url}/plain/public/tiny`);
    assert.equal(anonymous.status, 200);

    // Purges go on: the shards of a deleted object leave every backend.
    const shardsBefore = (await shardKeysOf(join(root, 'd0'))).length;
    await client.send(new DeleteObjectCommand({ Bucket: 'plain', Key: 'striped' }));
    await waitFor('the deleted object\'s shards to be purged', 30_000, async () => (await shardKeysOf(join(root, 'd0'))).length < shardsBefore);

    // Healing goes on: a lost shard is rebuilt by `talus heal` against the restored metadata.
    const victims = await shardKeysOf(join(root, 'd1'));
    const d1 = await DirectoryBackend.open('d1', join(root, 'd1'));
    await d1.remove(victims);
    const heal = await run(process.execPath, ['--import', 'tsx', CLI, 'heal', dataDir, '--config', configPath], { cwd: PROJECT_ROOT });
    assert.match(heal.stdout, /scan: \d+ blobs checked, [1-9]\d* shards rebuilt, 0 failed/);
    for (const key of victims) {
      // Every shard the heal should know of is back (the purged object's are not needed).
      if ((await stat(d1.path(key)).catch(() => undefined)) === undefined) assert.fail(`shard ${key} not rebuilt`);
    }
    await gateway.stop();
    gateway = undefined;
  } finally {
    await gateway?.kill9();
    await rm(root, { recursive: true, force: true });
  }
});
