/**
 * `[replication] mode = "quorum"`: a write is acknowledged only once its
 * metadata change is on a write quorum of backends. Proved by restoring from
 * the backends right after the 200 (with a lag of ten minutes, nothing else
 * would have shipped it), against the same in async mode; and by a PUT
 * answered 503 when two of three backends cannot take the segment.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { CreateBucketCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { DirectoryBackend } from '../src/backend/directory-backend.ts';
import { parseConfig } from '../src/config/config.ts';
import { SqliteMetadataStore } from '../src/meta/sqlite/sqlite-metadata-store.ts';
import { restoreMetadata } from '../src/replication/restore.ts';
import { startTestTalus, type TestTalus } from './helpers/talus.ts';

async function waitFor(what: string, probe: () => boolean): Promise<void> {
  const deadline = Date.now() + 30_000;
  while (!probe()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

async function withGateway(mode: 'async' | 'quorum', body: (gateway: TestTalus, root: string) => Promise<void>): Promise<void> {
  const root = await mkdtemp(join(tmpdir(), `talus-repl-${mode}-`));
  const toml = [
    ...[0, 1, 2].map((i) => `[backends.d${i}]\ntype = "directory"\npath = "d${i}"`),
    '[placements.geo]\ntype = "erasure"\ndata_shards = 2\nparity_shards = 1\nbackends = ["d0", "d1", "d2"]',
    '[defaults]\nplacement = "geo"',
    `[replication]\nlag = "10min"\nmode = "${mode}"`,
  ].join('\n\n');
  const gateway = await startTestTalus({ dataDir: join(root, 'gateway'), config: parseConfig(toml, { source: 'talus.toml', baseDirectory: root }), healInBackground: false });
  try {
    // The start-up snapshot is the base every restore needs.
    await waitFor('the first snapshot', () => gateway.replication?.status.snapshotPosition !== undefined);
    await gateway.client.send(new CreateBucketCommand({ Bucket: 'bkt' }));
    await body(gateway, root);
  } finally {
    await gateway.stop();
    await rm(root, { recursive: true, force: true });
  }
}

/** The body of `key` in bucket bkt as a restore from the backends sees it now, or undefined. */
async function restoredBody(root: string, name: string, key: string): Promise<Buffer | undefined> {
  const backends = await Promise.all([0, 1, 2].map((i) => DirectoryBackend.open(`d${i}`, join(root, `d${i}`))));
  const dataDir = join(root, name);
  await restoreMetadata({ dataDir, backends, key: undefined, partial: true });
  const meta = new SqliteMetadataStore(join(dataDir, 'meta.db'));
  try {
    return (await meta.getVersion('bkt', key))?.inlineData as Buffer | undefined;
  } finally {
    await meta.close();
  }
}

test('quorum mode: the 200 comes once the change is on the backends', { timeout: 120_000 }, async () => {
  await withGateway('quorum', async (gateway, root) => {
    const body = randomBytes(4096);
    await gateway.client.send(new PutObjectCommand({ Bucket: 'bkt', Key: 'k', Body: body }));
    assert.deepEqual(await restoredBody(root, 'restored', 'k'), body);

    // Two of three backends cannot store anything: no quorum, no acknowledgement.
    for (const i of [1, 2]) {
      await rm(join(root, `d${i}`), { recursive: true, force: true });
      await writeFile(join(root, `d${i}`), 'not a directory');
    }
    await assert.rejects(gateway.client.send(new PutObjectCommand({ Bucket: 'bkt', Key: 'refused', Body: randomBytes(4096) })), (error: { $metadata?: { httpStatusCode?: number } }) => error.$metadata?.httpStatusCode === 503);
  });
});

test('async mode (the contrast): with a long lag the change is not on the backends yet', { timeout: 120_000 }, async () => {
  await withGateway('async', async (gateway, root) => {
    await gateway.client.send(new PutObjectCommand({ Bucket: 'bkt', Key: 'k', Body: randomBytes(4096) }));
    assert.equal(await restoredBody(root, 'restored', 'k'), undefined);
  });
});
