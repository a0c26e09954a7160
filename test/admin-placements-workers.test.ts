/**
 * Run-time placement changes with --workers 2: the primary serves the admin
 * API and keeps each change in the data directory; both worker processes,
 * which serve every S3 request, apply it before the admin call answers. So
 * writes served by either worker right after AddBackend, AddPlacement and
 * SetBucketPlacement land on the new backend; after UpdatePlacement on the
 * new definition; and a worker started after the changes (one killed and
 * replaced) serves them too.
 */
import { CreateBucketCommand, GetObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import assert from 'node:assert/strict';
import cluster from 'node:cluster';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readdir, rm } from 'node:fs/promises';
import { Agent } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { AdminClient } from '../src/admin/client.ts';
import { parseConfig } from '../src/config/config.ts';
import { startTalus } from '../src/talus.ts';
import { silentLogger } from '../src/util/logger.ts';
import { ACCESS_KEY_ID, SECRET_ACCESS_KEY } from './helpers/talus.ts';

const ROOT = { accessKeyId: ACCESS_KEY_ID, secretAccessKey: SECRET_ACCESS_KEY };

async function filesIn(directory: string): Promise<number> {
  return (await readdir(directory, { recursive: true, withFileTypes: true })).filter((entry) => entry.isFile()).length;
}

test('with --workers 2, backends and placements changed through the admin API are used by writes either worker serves', { timeout: 180_000 }, async () => {
  const root = await mkdtemp(join(tmpdir(), 'talus-placements-workers-'));
  for (const disk of ['base', 'x', 'y']) await mkdir(join(root, disk));
  const talus = await startTalus({
    dataDir: join(root, 'data'), port: 0, address: '127.0.0.1', workers: 2, rootAccessKeyId: ROOT.accessKeyId, rootSecretAccessKey: ROOT.secretAccessKey,
    logger: silentLogger, admin: { port: 0, address: '127.0.0.1' }, healInBackground: false,
    config: parseConfig(`[backends.base]\ntype = "directory"\npath = "${join(root, 'base')}"\n[placements.basic]\ntype = "single"\nbackend = "base"\n`, { source: 'test', baseDirectory: root }),
  });
  // A new connection per request, so the kernel spreads them over both workers.
  const s3 = new S3Client({ endpoint: talus.url, region: 'us-east-1', forcePathStyle: true, credentials: ROOT, requestHandler: { httpAgent: new Agent({ keepAlive: false }) } });
  const admin = new AdminClient({ endpoint: talus.adminUrl!, ...ROOT });
  /** Writes `count` objects; answers which workers served them (the request ID's process prefix). */
  const writeMany = async (prefix: string, count: number): Promise<{ served: Set<string>; bodies: Map<string, Buffer> }> => {
    const served = new Set<string>();
    const bodies = new Map<string, Buffer>();
    for (let i = 0; i < count; i++) {
      const body = randomBytes(40_000 + i);
      const answer = await s3.send(new PutObjectCommand({ Bucket: 'spread', Key: `${prefix}${i}`, Body: body }));
      served.add(answer.$metadata.requestId!.slice(0, 6));
      bodies.set(`${prefix}${i}`, body);
    }
    return { served, bodies };
  };
  try {
    await s3.send(new CreateBucketCommand({ Bucket: 'spread' }));
    await admin.call('AddBackend', { name: 'x', type: 'directory', path: join(root, 'x') });
    await admin.call('AddPlacement', { name: 'onx', type: 'single', backends: ['x'] });
    await admin.call('SetBucketPlacement', { bucket: 'spread', placement: 'onx' });
    const first = await writeMany('first-', 12);
    assert.equal(first.served.size, 2, 'both workers took writes');
    assert.equal(await filesIn(join(root, 'x')), 12, 'every write, whichever worker served it, went to the new backend at once');
    assert.equal(await filesIn(join(root, 'base')), 0);

    await admin.call('AddBackend', { name: 'y', type: 'directory', path: join(root, 'y') });
    await admin.call('UpdatePlacement', { name: 'onx', type: 'replica', parityShards: 1, backends: ['x', 'y'] });
    const second = await writeMany('second-', 12);
    assert.equal(second.served.size, 2);
    // The primary re-places the first objects meanwhile (a copy on y each); wait for that pass.
    type Pass = { pass: { state: string; replaced?: { blobsMoved: number } } | null };
    for (;;) {
      const { pass } = await admin.call<Pass>('GetHealStatus');
      if (pass !== null && !['waiting', 'running'].includes(pass.state)) break;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    assert.equal(await filesIn(join(root, 'y')), 24, 'the changed placement: a copy of every new object on y, and of every re-placed one');

    // A worker started after the changes reads them at its start.
    const workers = Object.values(cluster.workers ?? {});
    assert.equal(workers.length, 2);
    const victim = workers[0]!;
    // Writes wait for its exit to be seen: a connection handed to it before would never be answered.
    const exited = new Promise((resolve) => victim.once('exit', resolve));
    victim.process.kill('SIGKILL');
    await exited;
    const bodies = new Map([...first.bodies, ...second.bodies]);
    // Until the replacement serves, the other worker takes every request: write until a new process answers.
    const known = new Set([...first.served, ...second.served]);
    let round = 0;
    let fresh = false;
    const deadline = Date.now() + 60_000;
    while (!fresh) {
      assert.ok(Date.now() < deadline, 'the replacement worker serves within a minute');
      const more = await writeMany(`round${round++}-`, 4);
      for (const [key, body] of more.bodies) bodies.set(key, body);
      fresh = [...more.served].some((worker) => !known.has(worker));
    }
    const fourth = await writeMany('fourth-', 16);
    for (const [key, body] of fourth.bodies) bodies.set(key, body);
    assert.ok([...fourth.served].some((worker) => !known.has(worker)), 'the new worker served some of these');
    assert.equal(await filesIn(join(root, 'y')), bodies.size, 'every object has a copy on y: re-placed, or written since UpdatePlacement (the new worker\'s too)');
    for (const [key, body] of bodies) {
      const read = await s3.send(new GetObjectCommand({ Bucket: 'spread', Key: key }));
      assert.ok(Buffer.from(await read.Body!.transformToByteArray()).equals(body), key);
    }
  } finally {
    s3.destroy();
    await talus.close();
    await rm(root, { recursive: true, force: true });
  }
});
