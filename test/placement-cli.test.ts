/**
 * `talus backends` probes what it is told to trust: state, latency, free
 * space, and whether conditional writes are honoured (Talus honours them,
 * s3rver accepts the header and ignores it) — and exits 1 while any backend
 * is down.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { test } from 'node:test';
import { CLI, PROJECT_ROOT } from './helpers/process.ts';
import { ACCESS_KEY_ID, SECRET_ACCESS_KEY, startTestTalus } from './helpers/talus.ts';

const run = promisify(execFile);

test('talus backends: state, latency, space and conditional-write support of each backend', { timeout: 120_000 }, async () => {
  const root = await mkdtemp(join(tmpdir(), 'talus-backends-cli-'));
  const talus = await startTestTalus();
  type S3rver = { run(): Promise<AddressInfo>; close(): Promise<void> };
  const S3rverClass = createRequire(import.meta.url)('s3rver') as new (options: object) => S3rver;
  const s3rver = new S3rverClass({ port: 0, address: '127.0.0.1', directory: join(root, 's3rver'), silent: true });
  const { port } = await s3rver.run();
  try {
    const s3 = (name: string, endpoint: string, key: string, secret: string): string =>
      `[backends.${name}]\ntype = "s3"\nendpoint = "${endpoint}"\nbucket = "talus-shards"\naccess_key_id = "${key}"\nsecret_access_key = "${secret}"\n`;
    const config = join(root, 'talus.toml');
    const bucketsReady = async (): Promise<void> => {
      // The backends' buckets exist once a server has opened them; create them here as the server would.
      const { S3Backend } = await import('../src/backend/s3-backend.ts');
      for (const [endpoint, key, secret] of [
        [talus.url, ACCESS_KEY_ID, SECRET_ACCESS_KEY],
        [`http://127.0.0.1:${port}`, 'S3RVER', 'S3RVER'],
      ] as const) {
        const backend = new S3Backend({ name: 'setup', endpoint, accessKeyId: key, secretAccessKey: secret, bucket: 'talus-shards' });
        await backend.ensureBucket();
        await backend.close();
      }
    };
    await bucketsReady();
    await writeFile(
      config,
      `[backends.disk]\ntype = "directory"\npath = "disk"\n${s3('peer', talus.url, ACCESS_KEY_ID, SECRET_ACCESS_KEY)}${s3('s3rver', `http://127.0.0.1:${port}`, 'S3RVER', 'S3RVER')}${s3('gone', 'http://127.0.0.1:9', 'k', 's')}`,
    );
    const result = await run(process.execPath, ['--import', 'tsx', CLI, 'backends', '--config', config], { cwd: PROJECT_ROOT }).then(
      () => assert.fail('exit 0 with a backend down'),
      (error: { code?: number; stdout?: string }) => error,
    );
    assert.equal(result.code, 1);
    const lines = result.stdout!.trim().split('\n');
    assert.match(lines[0]!, /^backend\s+type\s+state\s+latency\s+free space\s+conditional writes\s+error$/);
    const row = (name: string): string => lines.find((line) => line.startsWith(`${name} `))!;
    assert.match(row('disk'), /^disk\s+directory\s+up\s+[\d.]+ ms\s+[\d.]+ GiB\s+n\/a$/);
    assert.match(row('peer'), /^peer\s+s3\s+up\s+[\d.]+ ms\s+honoured$/);
    assert.match(row('s3rver'), /^s3rver\s+s3\s+up\s+[\d.]+ ms\s+IGNORED$/);
    assert.match(row('gone'), /^gone\s+s3\s+down\s+.*ECONNREFUSED/);
  } finally {
    await s3rver.close();
    await talus.stop();
    await rm(root, { recursive: true, force: true });
  }
});
