/**
 * The last resort: the gateway's disk dies and no metadata replica survives.
 *
 * A gateway stores erasure 2+1 over three directory backends and replicates
 * its metadata to them. Striped objects, a multipart upload and three
 * versions of one key are written; once their object records are on the
 * backends, the gateway is killed with SIGKILL, its data directory deleted,
 * and every metadata replica too (`talus restore` has nothing left).
 * `talus recover --scan` rebuilds the metadata from the records and the
 * shards: the server starts on it without --adopt-metadata and every object
 * reads back bit-exact, versions in their order. A blob whose record is gone
 * is reported, not invented, and so is one whose shards are gone. The recovered store purges and heals as before.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { test } from 'node:test';
import {
  CompleteMultipartUploadCommand,
  CreateBucketCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  ListObjectVersionsCommand,
  PutBucketVersioningCommand,
  PutObjectCommand,
  UploadPartCommand,
  type S3Client,
} from '@aws-sdk/client-s3';
import { DirectoryBackend } from '../src/backend/directory-backend.ts';
import { decodeObjectRecord } from '../src/replication/object-record.ts';
import { CLI, PROJECT_ROOT, startServerProcess, type ServerProcess } from './helpers/process.ts';
import { makeClient } from './helpers/talus.ts';

const run = promisify(execFile);
const sha256 = (data: Uint8Array): string => createHash('sha256').update(data).digest('hex');

async function get(client: S3Client, bucket: string, key: string, versionId?: string): Promise<Buffer> {
  const answer = await client.send(new GetObjectCommand({ Bucket: bucket, Key: key, VersionId: versionId }));
  return Buffer.from(await answer.Body!.transformToByteArray());
}

async function keysUnder(root: string, prefix: string): Promise<string[]> {
  const backend = await DirectoryBackend.open('probe', root);
  const keys: string[] = [];
  for await (const key of backend.list(prefix)) keys.push(key);
  return keys;
}

async function waitFor(what: string, timeoutMs: number, probe: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await probe())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

test('no replica left: talus recover --scan rebuilds every recorded object from the records and shards', { timeout: 240_000 }, async () => {
  const root = await mkdtemp(join(tmpdir(), 'talus-recover-'));
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
        '[replication]\nlag = "250ms"',
      ].join('\n\n'),
    );
    const dataDir = join(root, 'gateway');
    gateway = await startServerProcess(dataDir, undefined, ['--config', configPath]);
    let client = makeClient(gateway.url);

    const expected: { bucket: string; key: string; versionId?: string; sha256: string }[] = [];
    const put = async (bucket: string, key: string, body: Buffer): Promise<string | undefined> =>
      (await client.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: body, ContentType: 'application/x-test', Metadata: { origin: key } }))).VersionId;
    await client.send(new CreateBucketCommand({ Bucket: 'plain' }));
    await client.send(new CreateBucketCommand({ Bucket: 'history' }));
    await client.send(new PutBucketVersioningCommand({ Bucket: 'history', VersioningConfiguration: { Status: 'Enabled' } }));
    for (const [key, size] of [['striped', 300_000], ['dir/two-stripes', 2 * 1024 * 1024 + 3]] as const) {
      const body = randomBytes(size);
      await put('plain', key, body);
      expected.push({ bucket: 'plain', key, sha256: sha256(body) });
    }
    const parts = [randomBytes(5 * 1024 * 1024), randomBytes(777_777)];
    const { UploadId } = await client.send(new CreateMultipartUploadCommand({ Bucket: 'plain', Key: 'multi' }));
    const etags: string[] = [];
    for (const [i, part] of parts.entries()) {
      etags.push((await client.send(new UploadPartCommand({ Bucket: 'plain', Key: 'multi', UploadId, PartNumber: i + 1, Body: part }))).ETag!);
    }
    await client.send(new CompleteMultipartUploadCommand({ Bucket: 'plain', Key: 'multi', UploadId, MultipartUpload: { Parts: etags.map((ETag, i) => ({ ETag, PartNumber: i + 1 })) } }));
    expected.push({ bucket: 'plain', key: 'multi', sha256: sha256(Buffer.concat(parts)) });
    const versionIds: string[] = [];
    for (const size of [50_000, 150_000, 400_000]) {
      const body = randomBytes(size);
      const versionId = (await put('history', 'doc', body))!;
      versionIds.push(versionId);
      expected.push({ bucket: 'history', key: 'doc', versionId, sha256: sha256(body) });
    }
    await put('plain', 'broken', randomBytes(100_000));
    await put('plain', 'unrecorded', randomBytes(100_000));

    // 9 blobs (two, two parts, three versions, two more), each with a record on all three backends.
    await waitFor('the object records', 60_000, async () => (await Promise.all(['d0', 'd1', 'd2'].map((d) => keysUnder(join(root, d), 'talus-records/')))).every((keys) => keys.length === 9));
    await gateway.kill9();
    gateway = undefined;
    client.destroy();
    await rm(dataDir, { recursive: true, force: true });
    // Nothing for `talus restore`: every metadata replica is gone; and one blob loses its record everywhere.
    const records = (await keysUnder(join(root, 'd0'), 'talus-records/')).sort();
    const newest = records.at(-1)!;
    // 'broken' loses two of its three shards: its record survives, its bytes do not.
    const brokenBlob = records.at(-2)!.slice('talus-records/'.length);
    for (const d of ['d0', 'd1', 'd2']) {
      const backend = await DirectoryBackend.open(d, join(root, d));
      const brokenShards = d === 'd2' ? [] : (await keysUnder(join(root, d), brokenBlob));
      await backend.remove([...(await keysUnder(join(root, d), 'talus-meta/')), newest, ...brokenShards]);
    }
    await assert.rejects(run(process.execPath, ['--import', 'tsx', CLI, 'restore', dataDir, '--config', configPath], { cwd: PROJECT_ROOT }));
    await rm(dataDir, { recursive: true, force: true });

    const recovered = await run(process.execPath, ['--import', 'tsx', CLI, 'recover', '--scan', dataDir, '--config', configPath], { cwd: PROJECT_ROOT });
    const report = JSON.parse(recovered.stdout) as { versionsRecovered: number; buckets: number; unrecordedBlobs: number; unrecordedBlobIds: string[]; versionsUnrecoverable: { bucket: string; key: string; reason: string }[] };
    assert.equal(report.versionsRecovered, 6, recovered.stderr);
    assert.equal(report.buckets, 2);
    assert.deepEqual(
      report.versionsUnrecoverable.map((version) => [version.bucket, version.key, version.reason]),
      [['plain', 'broken', `blob ${brokenBlob}: 1 sound shard(s) of the 2 needed`]],
    );
    assert.deepEqual(report.unrecordedBlobIds, [newest.slice('talus-records/'.length)]);

    gateway = await startServerProcess(dataDir, undefined, ['--config', configPath]);
    client = makeClient(gateway.url);
    for (const object of expected) {
      const body = await get(client, object.bucket, object.key, object.versionId);
      assert.equal(sha256(body), object.sha256, `${object.bucket}/${object.key} ${object.versionId ?? ''}`);
    }
    const head = await client.send(new GetObjectCommand({ Bucket: 'plain', Key: 'striped' }));
    assert.equal(head.ContentType, 'application/x-test');
    assert.deepEqual(head.Metadata, { origin: 'striped' });
    await head.Body!.transformToByteArray();
    // The latest version is the last written; the versions list newest first, as before.
    assert.equal(sha256(await get(client, 'history', 'doc')), expected.at(-1)!.sha256);
    const listed = await client.send(new ListObjectVersionsCommand({ Bucket: 'history' }));
    assert.deepEqual(listed.Versions!.map((version) => [version.VersionId, version.IsLatest]), [
      [versionIds[2], true],
      [versionIds[1], false],
      [versionIds[0], false],
    ]);
    await assert.rejects(get(client, 'plain', 'unrecorded'), { name: 'NoSuchKey' });
    await assert.rejects(get(client, 'plain', 'broken'), { name: 'NoSuchKey' });
    // A new write works on the recovered store.
    await put('plain', 'after', randomBytes(20_000));
    // Purges go on: a deleted object's shards and record leave every backend.
    const d0 = await DirectoryBackend.open('d0', join(root, 'd0'));
    let stripedRecord: string | undefined;
    for (const key of await keysUnder(join(root, 'd0'), 'talus-records/')) {
      const record = decodeObjectRecord(await readFile(d0.path(key)));
      if (record.kind !== 'pointer' && record.version.key === 'striped') stripedRecord = key;
    }
    assert.ok(stripedRecord !== undefined, 'the recovered object kept its record');
    await client.send(new DeleteObjectCommand({ Bucket: 'plain', Key: 'striped' }));
    await waitFor('the deleted object\'s record to be purged', 30_000, async () => !(await keysUnder(join(root, 'd0'), 'talus-records/')).includes(stripedRecord!));
    await gateway.stop();
    gateway = undefined;
    // Healing goes on: a lost shard is rebuilt by `talus heal` against the recovered metadata.
    const d1 = await DirectoryBackend.open('d1', join(root, 'd1'));
    const victims = (await keysUnder(join(root, 'd1'), '')).filter((key) => /^[0-9a-z]{29}\.\d+$/.test(key));
    await d1.remove(victims);
    const heal = await run(process.execPath, ['--import', 'tsx', CLI, 'heal', dataDir, '--config', configPath], { cwd: PROJECT_ROOT });
    assert.match(heal.stdout, /scan: \d+ blobs checked, [1-9]\d* shards rebuilt, 0 failed/);
  } finally {
    await gateway?.kill9();
    await rm(root, { recursive: true, force: true });
  }
});
