/**
 * With --workers, a bucket's access settings changed through one worker
 * take effect on every worker at once (the buckets-changed message makes the
 * others drop their cached bucket record and its compiled policy): no worker
 * keeps serving a bucket as public after its policy is deleted.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { startTalus, type RunningTalus } from '../src/talus.ts';
import { silentLogger } from '../src/util/logger.ts';
import { send, signedRequest } from './helpers/raw.ts';
import { ACCESS_KEY_ID, SECRET_ACCESS_KEY } from './helpers/talus.ts';

/** Statuses of `count` anonymous GETs, each on a new connection (node:cluster spreads them over the workers). */
async function anonymousStatuses(url: string, path: string, count: number): Promise<Set<number>> {
  const statuses = new Set<number>();
  for (let i = 0; i < count; i++) statuses.add((await send(url, 'GET', path, {})).status);
  return statuses;
}

describe('access settings with several workers', { timeout: 120_000 }, () => {
  let dataDir: string;
  let talus: RunningTalus;

  before(async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'talus-authz-workers-'));
    talus = await startTalus({ dataDir, port: 0, address: '127.0.0.1', workers: 2, rootAccessKeyId: ACCESS_KEY_ID, rootSecretAccessKey: SECRET_ACCESS_KEY, logger: silentLogger });
  });
  after(async () => {
    await talus.close();
    await rm(dataDir, { recursive: true, force: true });
  });

  test('a bucket policy put or deleted through one worker holds on all of them at once', async () => {
    assert.equal((await signedRequest(talus.url, { method: 'PUT', path: '/shared' })).status, 200);
    assert.equal((await signedRequest(talus.url, { method: 'PUT', path: '/shared/doc', body: 'public soon' })).status, 200);
    // Every worker caches the bucket (and compiles its empty settings) before the change.
    assert.deepEqual([...await anonymousStatuses(talus.url, '/shared/doc', 12)], [403]);
    const policy = JSON.stringify({ Version: '2012-10-17', Statement: [{ Effect: 'Allow', Principal: '*', Action: 's3:GetObject', Resource: 'arn:aws:s3:::shared/*' }] });
    for (let round = 0; round < 3; round++) {
      assert.equal((await signedRequest(talus.url, { method: 'PUT', path: '/shared', query: { policy: '' }, body: policy })).status, 204);
      assert.deepEqual([...await anonymousStatuses(talus.url, '/shared/doc', 12)], [200], `round ${round}: public on every worker`);
      assert.equal((await signedRequest(talus.url, { method: 'DELETE', path: '/shared', query: { policy: '' } })).status, 204);
      assert.deepEqual([...await anonymousStatuses(talus.url, '/shared/doc', 12)], [403], `round ${round}: private again on every worker`);
    }
  });
});
