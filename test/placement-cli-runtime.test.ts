/**
 * `talus backends DATA_DIR` and `talus heal DATA_DIR` see the backends and
 * placements the admin API added at run time, as the server does: a
 * directory backend and an S3 backend (whose secret is kept sealed in the
 * data directory) added through AddBackend, objects placed on them, then the
 * commands run against the stopped server's data directory. Without
 * DATA_DIR, `talus backends` shows talus.toml's backends only.
 */
import { CreateBucketCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { AdminClient } from '../src/admin/client.ts';
import { loadConfig } from '../src/config/config.ts';
import { startTalus } from '../src/talus.ts';
import { silentLogger } from '../src/util/logger.ts';
import { CLI, PROJECT_ROOT } from './helpers/process.ts';
import { ACCESS_KEY_ID, SECRET_ACCESS_KEY, makeClient } from './helpers/talus.ts';

const run = promisify(execFile);
const ROOT = { accessKeyId: ACCESS_KEY_ID, secretAccessKey: SECRET_ACCESS_KEY };

async function cli(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return run(process.execPath, ['--import', 'tsx', CLI, ...args], { cwd: PROJECT_ROOT }).then(
    ({ stdout, stderr }) => ({ code: 0, stdout, stderr }),
    (error: { code?: number; stdout?: string; stderr?: string }) => ({ code: error.code ?? -1, stdout: error.stdout ?? '', stderr: error.stderr ?? '' }),
  );
}

const backendNames = (stdout: string): string[] => stdout.trim().split('\n').slice(1).map((line) => line.split(/\s+/)[0]!).sort();

test('talus backends and talus heal on DATA_DIR count the backends added at run time', { timeout: 180_000 }, async () => {
  const root = await mkdtemp(join(tmpdir(), 'talus-cli-runtime-'));
  const dataDir = join(root, 'data');
  const configFile = join(root, 'talus.toml');
  for (const disk of ['base', 'extra']) await mkdir(join(root, disk));
  await writeFile(configFile, '[backends.base]\ntype = "directory"\npath = "base"\n[placements.basic]\ntype = "single"\nbackend = "base"\n');
  const remote = await startTalus({ dataDir: join(root, 'remote'), port: 0, address: '127.0.0.1', rootAccessKeyId: ROOT.accessKeyId, rootSecretAccessKey: ROOT.secretAccessKey, logger: silentLogger });
  try {
    const talus = await startTalus({
      dataDir, port: 0, address: '127.0.0.1', rootAccessKeyId: ROOT.accessKeyId, rootSecretAccessKey: ROOT.secretAccessKey,
      logger: silentLogger, admin: { port: 0, address: '127.0.0.1' }, config: await loadConfig(configFile), healInBackground: false,
    });
    const s3 = makeClient(talus.url);
    try {
      const admin = new AdminClient({ endpoint: talus.adminUrl!, ...ROOT });
      await admin.call('AddBackend', { name: 'extra', type: 'directory', path: join(root, 'extra') });
      await admin.call('AddBackend', { name: 'remote', type: 's3', endpoint: remote.url, bucket: 'shards', ...ROOT });
      await admin.call('AddPlacement', { name: 'spread', type: 'replica', parityShards: 1, backends: ['extra', 'remote'] });
      await s3.send(new CreateBucketCommand({ Bucket: 'spread-bucket' }));
      await admin.call('SetBucketPlacement', { bucket: 'spread-bucket', placement: 'spread' });
      for (let index = 0; index < 3; index += 1) await s3.send(new PutObjectCommand({ Bucket: 'spread-bucket', Key: `object-${index}`, Body: randomBytes(100_000) }));
    } finally {
      s3.destroy();
      await talus.close();
    }
    // The S3 backend's secret is kept sealed, so the commands must open it with the server's key.
    assert.doesNotMatch(await readFile(join(dataDir, 'runtime-placements.json'), 'utf8'), new RegExp(SECRET_ACCESS_KEY));

    const withDataDir = await cli('backends', dataDir, '--config', configFile);
    assert.equal(withDataDir.code, 0, withDataDir.stderr + withDataDir.stdout);
    assert.deepEqual(backendNames(withDataDir.stdout), ['base', 'extra', 'remote']);
    assert.match(withDataDir.stdout, /^remote\s+s3\s+up\s/m);

    const withoutDataDir = await cli('backends', '--config', configFile);
    assert.equal(withoutDataDir.code, 0, withoutDataDir.stderr);
    assert.deepEqual(backendNames(withoutDataDir.stdout), ['base'], 'talus.toml alone names one backend');

    const notADataDir = await cli('backends', join(root, 'extra'), '--config', configFile);
    assert.notEqual(notADataDir.code, 0);
    assert.match(notADataDir.stderr, /is not a Talus data directory/);

    // Every placed blob is checked on the run-time backends and found whole.
    const heal = await cli('heal', dataDir, '--config', configFile);
    assert.equal(heal.code, 0, heal.stderr + heal.stdout);
    const scanned = /^scan: (\d+) blobs checked, 0 shards rebuilt, 0 failed$/m.exec(heal.stdout);
    assert.ok(scanned !== null, heal.stdout);
    assert.equal(Number(scanned[1]), 3);
  } finally {
    await remote.close();
    await rm(root, { recursive: true, force: true });
  }
});
