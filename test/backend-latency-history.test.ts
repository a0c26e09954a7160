/**
 * The backends' latency history (issue 13's latency chart): the server keeps
 * each backend's last LATENCY_HISTORY_SAMPLES_MAX probe latencies, and
 * ListBackends answers them, oldest first. Method: a real Talus with a
 * directory backend probed every 50 ms; poll the admin API until the history
 * is full, then see it stay at its bound while newer probes replace the
 * oldest. The ring itself: a failed probe is a sample without latency.
 */
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { test } from 'node:test';
import { AdminClient } from '../src/admin/client.ts';
import { parseConfig } from '../src/config/config.ts';
import { LATENCY_HISTORY_SAMPLES_MAX, LatencyHistory } from '../src/placement/latency-history.ts';
import { startTalus } from '../src/talus.ts';
import { silentLogger } from '../src/util/logger.ts';

const ROOT = { accessKeyId: 'LATENCYROOTKEY', secretAccessKey: 'latency-root-secret-0123456789abcdef' };

interface Sample { atMs: number; latencyMs: number | null }

test('ListBackends answers each backend\'s last probe latencies, bounded', { timeout: 90_000 }, async () => {
  const dataDir = await mkdtemp(join(tmpdir(), 'talus-latency-'));
  const disks = await mkdtemp(join(tmpdir(), 'talus-latency-disks-'));
  await mkdir(join(disks, 'disk0'));
  const config = parseConfig(`[health]\nprobe_interval = "50ms"\n[backends.disk0]\ntype = "directory"\npath = "${join(disks, 'disk0')}"\n[placements.one]\ntype = "single"\nbackend = "disk0"\n`, { source: 'test', baseDirectory: disks });
  const talus = await startTalus({ dataDir, port: 0, address: '127.0.0.1', ...{ rootAccessKeyId: ROOT.accessKeyId, rootSecretAccessKey: ROOT.secretAccessKey }, admin: { port: 0, address: '127.0.0.1' }, config, healInBackground: false, logger: silentLogger });
  const admin = new AdminClient({ endpoint: talus.adminUrl!, ...ROOT });
  const history = async (): Promise<Sample[]> => {
    const { backends } = await admin.call<{ backends: { name: string; latencyHistory: Sample[] }[] }>('ListBackends');
    assert.deepEqual(backends.map((backend) => backend.name), ['disk0']);
    return backends[0]!.latencyHistory;
  };
  try {
    const deadline = Date.now() + 60_000;
    let samples = await history();
    while (samples.length < LATENCY_HISTORY_SAMPLES_MAX && Date.now() < deadline) {
      await sleep(200);
      samples = await history();
    }
    assert.equal(samples.length, LATENCY_HISTORY_SAMPLES_MAX, 'the history fills up');
    for (const sample of samples) assert.ok(typeof sample.latencyMs === 'number' && sample.latencyMs >= 0 && sample.latencyMs < 30_000, `a measured latency: ${JSON.stringify(sample)}`);
    for (let index = 1; index < samples.length; index++) assert.ok(samples[index]!.atMs >= samples[index - 1]!.atMs, 'oldest first');
    // More probes: still bounded, the oldest gone.
    const newestBefore = samples.at(-1)!.atMs;
    let later = await history();
    while (later.at(-1)!.atMs === newestBefore && Date.now() < deadline) {
      await sleep(100);
      later = await history();
    }
    assert.equal(later.length, LATENCY_HISTORY_SAMPLES_MAX);
    assert.ok(later[0]!.atMs > samples[0]!.atMs, 'newer probes replaced the oldest');
  } finally {
    await talus.close();
    await rm(dataDir, { recursive: true, force: true });
    await rm(disks, { recursive: true, force: true });
  }
});

test('the latency ring: oldest first, a failed probe without latency, at most LATENCY_HISTORY_SAMPLES_MAX', () => {
  const ring = new LatencyHistory();
  assert.deepEqual(ring.samples(), []);
  ring.record(1, 5);
  ring.record(2, undefined);
  assert.deepEqual(ring.samples(), [{ atMs: 1, latencyMs: 5 }, { atMs: 2, latencyMs: null }]);
  for (let at = 3; at < 3 + 2 * LATENCY_HISTORY_SAMPLES_MAX; at++) ring.record(at, at / 10);
  const samples = ring.samples();
  assert.equal(samples.length, LATENCY_HISTORY_SAMPLES_MAX);
  assert.equal(samples[0]!.atMs, 3 + LATENCY_HISTORY_SAMPLES_MAX);
  assert.equal(samples.at(-1)!.atMs, 2 + 2 * LATENCY_HISTORY_SAMPLES_MAX);
  assert.throws(() => ring.record(9, -1));
});
