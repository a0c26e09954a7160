/**
 * Changing a bucket's placement re-places its existing objects: written
 * locally, then moved to erasure 2+1 over three directories after a restart
 * with the new configuration, then to replica 2 over two other directories —
 * bytes identical at every step (versions and multipart objects included),
 * the old copies purged.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import {
  CompleteMultipartUploadCommand,
  CreateBucketCommand,
  CreateMultipartUploadCommand,
  GetObjectCommand,
  PutBucketVersioningCommand,
  PutObjectCommand,
  UploadPartCommand,
} from '@aws-sdk/client-s3';
import { parseConfig } from '../src/config/config.ts';
import { decodeLocation } from '../src/placement/blob-location.ts';
import { startTestTalus, type TestTalus } from './helpers/talus.ts';

const sha256 = (data: Uint8Array): string => createHash('sha256').update(data).digest('hex');

async function filesUnder(directory: string): Promise<number> {
  try {
    return (await readdir(directory, { recursive: true, withFileTypes: true })).filter((entry) => entry.isFile()).length;
  } catch {
    return 0;
  }
}

test('objects follow their bucket to a new placement, bytes unchanged, old copies purged', { timeout: 120_000 }, async () => {
  const root = await mkdtemp(join(tmpdir(), 'talus-replace-'));
  const dataDir = join(root, 'data');
  const dirs = (names: string[]): string => names.map((name) => `[backends.${name}]\ntype = "directory"\npath = "${name}"\n`).join('');
  const configs = {
    local: '',
    erasure: `${dirs(['a', 'b', 'c', 'x', 'y'])}[placements.ec]\ntype = "erasure"\ndata_shards = 2\nparity_shards = 1\nbackends = ["a", "b", "c"]\nblock_size = "16KiB"\n[buckets]\nmoving = "ec"\n`,
    replica: `${dirs(['a', 'b', 'c', 'x', 'y'])}[placements.pair]\ntype = "replica"\ncopies = 2\nbackends = ["x", "y"]\n[buckets]\nmoving = "pair"\n`,
  };
  const start = (name: keyof typeof configs): Promise<TestTalus> =>
    startTestTalus({ dataDir, config: parseConfig(configs[name], { source: `${name}.toml`, baseDirectory: root }), healInBackground: false });
  let talus = await start('local');
  try {
    await talus.client.send(new CreateBucketCommand({ Bucket: 'moving' }));
    await talus.client.send(new PutBucketVersioningCommand({ Bucket: 'moving', VersioningConfiguration: { Status: 'Enabled' } }));
    const objects: { key: string; versionId: string; body: Buffer }[] = [];
    for (const [key, size] of [
      ['one', 100_000],
      ['one', 250_001], // a second version of the same key
      ['two', 50_000],
    ] as const) {
      const body = randomBytes(size);
      const answer = await talus.client.send(new PutObjectCommand({ Bucket: 'moving', Key: key, Body: body }));
      objects.push({ key, versionId: answer.VersionId!, body });
    }
    const upload = await talus.client.send(new CreateMultipartUploadCommand({ Bucket: 'moving', Key: 'parts' }));
    const parts = [randomBytes(5 * 1024 * 1024), randomBytes(123_456)];
    const etags = [];
    for (const [i, part] of parts.entries()) etags.push((await talus.client.send(new UploadPartCommand({ Bucket: 'moving', Key: 'parts', UploadId: upload.UploadId, PartNumber: i + 1, Body: part }))).ETag!);
    const completed = await talus.client.send(
      new CompleteMultipartUploadCommand({ Bucket: 'moving', Key: 'parts', UploadId: upload.UploadId, MultipartUpload: { Parts: etags.map((ETag, i) => ({ ETag, PartNumber: i + 1 })) } }),
    );
    objects.push({ key: 'parts', versionId: completed.VersionId!, body: Buffer.concat(parts) });
    const blobCount = 5; // two versions of one, two, and two parts
    assert.equal(await filesUnder(join(dataDir, 'blobs')), blobCount);

    const checkAll = async (label: string): Promise<void> => {
      for (const { key, versionId, body } of objects) {
        const answer = await talus.client.send(new GetObjectCommand({ Bucket: 'moving', Key: key, VersionId: versionId }));
        assert.equal(sha256(await answer.Body!.transformToByteArray()), sha256(body), `${label}: ${key} ${versionId}`);
      }
    };

    for (const [config, backends] of [
      ['erasure', ['a', 'b', 'c']],
      ['replica', ['x', 'y']],
    ] as const) {
      await talus.stop();
      talus = await start(config);
      const report = await talus.placement!.healer.replaceAll();
      assert.deepEqual(report, { blobsChecked: blobCount, blobsMoved: blobCount, failures: 0 }, config);
      assert.deepEqual(await talus.placement!.healer.replaceAll(), { blobsChecked: blobCount, blobsMoved: 0, failures: 0 }, `${config}: nothing left to move`);
      await checkAll(config);
      const placed = await talus.engine.meta.listPlacedBlobs('', 100);
      const live = placed.filter((blob) => backends.every((name) => decodeLocation(blob.location).backends.includes(name)));
      assert.equal(live.length, blobCount, `${config}: every blob on ${backends.join(', ')}`);
      await talus.engine.purgeNow(Date.now() + 60_000);
      assert.equal(await filesUnder(join(dataDir, 'blobs')), 0, `${config}: the local copies are purged`);
      for (const name of ['a', 'b', 'c', 'x', 'y']) {
        const expected = (backends as readonly string[]).includes(name) ? blobCount : 0;
        assert.equal(await filesUnder(join(root, name)), expected, `${config}: backend ${name} holds ${expected} shards`);
      }
      await checkAll(`${config} after the purge`);
    }
    // Back to no configuration: the data directory holds placed objects, so the server refuses to start.
    await talus.stop();
    await assert.rejects(start('local'), /holds objects placed on backends \((x, y|y, x)\): start with the --config that declares them/);
    talus = await start('replica');
  } finally {
    await talus.stop();
    await rm(root, { recursive: true, force: true });
  }
});
