/** --workers auto: one per core, within a container's CPU quota and AUTO_WORKERS_MAX. */
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { AUTO_WORKERS_MAX, autoWorkerCount, cgroupCpuLimit, readCgroupCpuFiles } from '../src/worker-count.ts';

test('a cgroup v2 cpu.max quota is rounded up to whole cores; "max" is no limit', () => {
  assert.equal(cgroupCpuLimit({ v2CpuMax: '100000 100000\n' }), 1);
  assert.equal(cgroupCpuLimit({ v2CpuMax: '150000 100000\n' }), 2);
  assert.equal(cgroupCpuLimit({ v2CpuMax: '50000 100000\n' }), 1);
  assert.equal(cgroupCpuLimit({ v2CpuMax: '400000 100000' }), 4);
  assert.equal(cgroupCpuLimit({ v2CpuMax: 'max 100000\n' }), undefined);
  assert.equal(cgroupCpuLimit({ v2CpuMax: '' }), undefined);
  assert.equal(cgroupCpuLimit({ v2CpuMax: 'garbage' }), undefined);
});

test('a cgroup v1 cfs quota is rounded up to whole cores; -1 is no limit', () => {
  assert.equal(cgroupCpuLimit({ v1QuotaUs: '200000\n', v1PeriodUs: '100000\n' }), 2);
  assert.equal(cgroupCpuLimit({ v1QuotaUs: '250000\n', v1PeriodUs: '100000\n' }), 3);
  assert.equal(cgroupCpuLimit({ v1QuotaUs: '-1\n', v1PeriodUs: '100000\n' }), undefined);
  assert.equal(cgroupCpuLimit({ v1QuotaUs: '200000\n' }), undefined);
  assert.equal(cgroupCpuLimit({}), undefined);
});

test('auto is the fewest of the cores, the quota and AUTO_WORKERS_MAX', () => {
  assert.equal(AUTO_WORKERS_MAX, 8);
  // A pod limited to 1 CPU on a 64-core node: one process.
  assert.equal(autoWorkerCount(64, { v2CpuMax: '100000 100000' }), 1);
  assert.equal(autoWorkerCount(64, { v2CpuMax: '350000 100000' }), 4);
  assert.equal(autoWorkerCount(64, { v2CpuMax: 'max 100000' }), AUTO_WORKERS_MAX);
  assert.equal(autoWorkerCount(64, {}), AUTO_WORKERS_MAX);
  assert.equal(autoWorkerCount(2, { v2CpuMax: '800000 100000' }), 2);
  assert.equal(autoWorkerCount(2, {}), 2);
  assert.equal(autoWorkerCount(1, {}), 1);
  assert.equal(autoWorkerCount(4, { v1QuotaUs: '200000', v1PeriodUs: '100000' }), 2);
});

test('the cgroup files are read where v2 and v1 keep them', async () => {
  const root = await mkdtemp(join(tmpdir(), 'talus-cgroup-'));
  try {
    assert.deepEqual(readCgroupCpuFiles(root), { v2CpuMax: undefined, v1QuotaUs: undefined, v1PeriodUs: undefined });
    await mkdir(join(root, 'cpu,cpuacct'));
    await writeFile(join(root, 'cpu,cpuacct', 'cpu.cfs_quota_us'), '300000\n');
    await writeFile(join(root, 'cpu,cpuacct', 'cpu.cfs_period_us'), '100000\n');
    assert.equal(cgroupCpuLimit(readCgroupCpuFiles(root)), 3);
    await writeFile(join(root, 'cpu.max'), '100000 100000\n');
    assert.equal(cgroupCpuLimit(readCgroupCpuFiles(root)), 1);
  } finally {
    await rm(root, { recursive: true, force: true });
  }
});
