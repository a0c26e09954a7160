/**
 * kill -9 of a gateway (erasure 2+1 over two local directories and a remote
 * Talus that is down) in the middle of concurrent writes and deletes: after
 * a restart no acknowledged object is lost or damaged, the repairs queued
 * for the missing region resume once it is back (`talus heal` finishes what
 * the crash left unrecorded), the purges of deleted objects resume, and
 * shards of uploads the crash cut short are reclaimed.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { test } from 'node:test';
import Database from 'better-sqlite3';
import { CreateBucketCommand, DeleteObjectCommand, GetObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { S3Backend } from '../src/backend/s3-backend.ts';
import { decodeLocation, shardKey } from '../src/placement/blob-location.ts';
import { CLI, PROJECT_ROOT, freePort, startServerProcess, type ServerProcess } from './helpers/process.ts';
import { ACCESS_KEY_ID, SECRET_ACCESS_KEY, makeClient, startTestTalus, type TestTalus } from './helpers/talus.ts';

const run = promisify(execFile);
const sha256 = (data: Uint8Array): string => createHash('sha256').update(data).digest('hex');

async function waitFor<T>(what: string, timeoutMs: number, probe: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}

test('kill -9 of the gateway during writes: nothing acknowledged is lost; repairs, purges and reclaim resume', { timeout: 240_000 }, async () => {
  const root = await mkdtemp(join(tmpdir(), 'talus-gwcrash-'));
  const regionPort = await freePort();
  let region: TestTalus | undefined;
  let gateway: ServerProcess | undefined;
  try {
    const configPath = join(root, 'talus.toml');
    await writeFile(
      configPath,
      [
        '[backends.d0]\ntype = "directory"\npath = "d0"',
        '[backends.d1]\ntype = "directory"\npath = "d1"',
        `[backends.far]\ntype = "s3"\nendpoint = "http://127.0.0.1:${regionPort}"\nbucket = "talus-shards"\naccess_key_id = "${ACCESS_KEY_ID}"\nsecret_access_key = "${SECRET_ACCESS_KEY}"`,
        '[placements.geo]\ntype = "erasure"\ndata_shards = 2\nparity_shards = 1\nbackends = ["d0", "d1", "far"]\nwrite_quorum = 2\nblock_size = "64KiB"',
        '[defaults]\nplacement = "geo"',
      ].join('\n\n'),
    );
    const dataDir = join(root, 'data');
    gateway = await startServerProcess(dataDir, undefined, ['--config', configPath]);
    let client = makeClient(gateway.url);
    await client.send(new CreateBucketCommand({ Bucket: 'crashes' }));

    // Writers and a deleter race until the kill; only what was acknowledged counts.
    const acknowledged = new Map<string, string>();
    const deleted = new Set<string>();
    const deleteSent = new Set<string>();
    let stop = false;
    const writers = Array.from({ length: 8 }, async (_, writer) => {
      for (let i = 0; !stop; i++) {
        const key = `w${writer}/${i}`;
        const body = randomBytes(100_000 + ((writer * 7919 + i * 104_729) % 400_000));
        try {
          await client.send(new PutObjectCommand({ Bucket: 'crashes', Key: key, Body: body }));
          acknowledged.set(key, sha256(body));
          if (i % 3 === 2) {
            deleteSent.add(key);
            await client.send(new DeleteObjectCommand({ Bucket: 'crashes', Key: key }));
            deleted.add(key);
          }
        } catch {
          return; // the gateway is gone
        }
      }
    });
    await waitFor('some acknowledged writes', 60_000, async () => (acknowledged.size >= 40 ? true : undefined));
    await gateway.kill9();
    stop = true;
    await Promise.all(writers);
    client.destroy();
    assert.ok(acknowledged.size >= 40);

    // The far region comes up, the gateway restarts on the same data directory.
    region = await startTestTalus({ dataDir: join(root, 'far'), port: regionPort });
    gateway = await startServerProcess(dataDir, undefined, ['--config', configPath]);
    client = makeClient(gateway.url);
    for (const [key, digest] of acknowledged) {
      if (deleteSent.has(key)) continue; // a delete the crash may or may not have let through
      try {
        const answer = await client.send(new GetObjectCommand({ Bucket: 'crashes', Key: key }));
        assert.equal(sha256(await answer.Body!.transformToByteArray()), digest, `${key} after the crash`);
      } catch (error) {
        throw new Error(`${key} after the crash: ${String(error)}\ngateway output:\n${gateway.output()}`);
      }
    }

    // On-demand healing finishes what the background started (and what the crash left unrecorded).
    const heal = await run(process.execPath, ['--import', 'tsx', CLI, 'heal', dataDir, '--config', configPath], { cwd: PROJECT_ROOT });
    assert.match(heal.stdout, /repairs: \d+ shards rebuilt, 0 failed/);
    assert.match(heal.stdout, /scan: \d+ blobs checked, \d+ shards rebuilt, 0 failed/);
    const status = await run(process.execPath, ['--import', 'tsx', CLI, 'heal', dataDir, '--status'], { cwd: PROJECT_ROOT });
    assert.match(status.stdout, /^0 shards queued for repair/, status.stdout);

    // Every live blob is fully redundant, the far region included; purges and reclaim leave exactly those shards.
    const live = (): { blobId: string; location: string }[] => {
      const db = new Database(join(dataDir, 'meta.db'), { readonly: true });
      try {
        return db.prepare("SELECT blob_id AS blobId, backend AS location FROM blobs WHERE backend != 'local'").all() as { blobId: string; location: string }[];
      } finally {
        db.close();
      }
    };
    const queuedPurges = (): number => {
      const db = new Database(join(dataDir, 'meta.db'), { readonly: true });
      try {
        return (db.prepare('SELECT count(*) AS n FROM blobs WHERE purge_after_ms IS NOT NULL').get() as { n: number }).n;
      } finally {
        db.close();
      }
    };
    const far = new S3Backend({ name: 'far', endpoint: region.url, accessKeyId: ACCESS_KEY_ID, secretAccessKey: SECRET_ACCESS_KEY, bucket: 'talus-shards' });
    try {
      await waitFor('purges, reclaim and repairs to settle', 60_000, async () => {
        const blobs = live();
        const expected = [0, 1, 2].map((shard) => new Set(blobs.map((blob) => `${blob.blobId}.${decodeLocation(blob.location).backends.indexOf(['d0', 'd1', 'far'][shard]!)}`)));
        const onDisk = async (disk: string): Promise<Set<string>> => {
          const names = new Set<string>();
          for (const fanout of await readdir(join(root, disk))) for (const name of await readdir(join(root, disk, fanout))) names.add(name);
          return names;
        };
        const farKeys = new Set<string>();
        for await (const key of far.list('')) if (!key.startsWith('talus-identity/')) farKeys.add(key); // the store's identity marker is no shard
        const actual = [await onDisk('d0'), await onDisk('d1'), farKeys];
        const same = actual.every((names, i) => names.size === expected[i]!.size && [...names].every((name) => expected[i]!.has(name)));
        return same && queuedPurges() === 0 ? true : undefined;
      });
      // No live blob belongs to a deleted key once the purger ran: the count of live blobs is the surviving objects'.
      const surviving = [...acknowledged.keys()].filter((key) => !deleteSent.has(key)).length;
      assert.ok(live().length >= surviving, `${live().length} live blobs for ${surviving} surviving objects`);
      for (const blob of live()) {
        const shard = decodeLocation(blob.location).backends.indexOf('far');
        assert.notEqual(await far.stat(shardKey(blob.blobId, shard)), undefined, `far shard of ${blob.blobId}`);
      }
    } finally {
      await far.close();
    }
    client.destroy();
  } finally {
    await gateway?.kill9().catch(() => undefined);
    await region?.stop();
    await rm(root, { recursive: true, force: true });
  }
});
