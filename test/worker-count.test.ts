/** --workers auto: one per core, within a container's CPU quota and AUTO_WORKERS_MAX. */
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { AUTO_WORKERS_MAX, autoWorkerCount, cgroupCpuLimit, ownCgroupPaths, readCgroupCpuLimit, selfAndAncestors } from '../src/worker-count.ts';

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
  assert.equal(autoWorkerCount(64, cgroupCpuLimit({ v2CpuMax: '100000 100000' })), 1);
  assert.equal(autoWorkerCount(64, cgroupCpuLimit({ v2CpuMax: '350000 100000' })), 4);
  assert.equal(autoWorkerCount(64, cgroupCpuLimit({ v2CpuMax: 'max 100000' })), AUTO_WORKERS_MAX);
  assert.equal(autoWorkerCount(64, cgroupCpuLimit({})), AUTO_WORKERS_MAX);
  assert.equal(autoWorkerCount(2, cgroupCpuLimit({ v2CpuMax: '800000 100000' })), 2);
  assert.equal(autoWorkerCount(2, cgroupCpuLimit({})), 2);
  assert.equal(autoWorkerCount(1, cgroupCpuLimit({})), 1);
  assert.equal(autoWorkerCount(4, cgroupCpuLimit({ v1QuotaUs: '200000', v1PeriodUs: '100000' })), 2);
});

test('/proc/self/cgroup gives the v2 path and v1 cpu controller\'s path', () => {
  assert.deepEqual(ownCgroupPaths('0::/system.slice/talus.service\n'), { v2: '/system.slice/talus.service', v1Cpu: undefined });
  assert.deepEqual(ownCgroupPaths('12:memory:/docker/abc\n4:cpu,cpuacct:/docker/abc\n1:name=systemd:/docker/abc\n0::/\n'), { v2: '/', v1Cpu: '/docker/abc' });
  assert.deepEqual(ownCgroupPaths('3:cpuset:/\n2:cpuacct:/\n1:cpu:/kubepods/pod1\n'), { v2: undefined, v1Cpu: '/kubepods/pod1' });
  assert.deepEqual(ownCgroupPaths(''), { v2: undefined, v1Cpu: undefined });
  assert.deepEqual(selfAndAncestors('/system.slice/talus.service'), ['/system.slice/talus.service', '/system.slice', '/']);
  assert.deepEqual(selfAndAncestors('/'), ['/']);
});

/** A fake /sys/fs/cgroup and /proc/self/cgroup in a temp dir; `files` maps paths under the cgroup root to contents. */
async function fakeTree(procSelfCgroup: string, files: Record<string, string>): Promise<{ root: string; proc: string; dir: string }> {
  const dir = await mkdtemp(join(tmpdir(), 'talus-cgroup-'));
  const root = join(dir, 'cgroup');
  await mkdir(root);
  for (const [path, text] of Object.entries(files)) {
    await mkdir(join(root, path, '..'), { recursive: true });
    await writeFile(join(root, path), text);
  }
  const proc = join(dir, 'self-cgroup');
  await writeFile(proc, procSelfCgroup);
  return { root, proc, dir };
}

test('the cgroup CPU limit is the tightest quota on the own cgroup and its ancestors (v2 and v1), the root files where the path is not mounted', async () => {
  const cases: [string, string, Record<string, string>, number | undefined][] = [
    ['nothing at all', '0::/\n', {}, undefined],
    ['a systemd service with CPUQuota=200% (v2)', '0::/system.slice/talus.service\n', { 'system.slice/talus.service/cpu.max': '200000 100000\n', 'system.slice/cpu.max': 'max 100000\n' }, 2],
    ['an ancestor tighter than the own cgroup (v2)', '0::/kubepods/pod1/c1\n', { 'kubepods/pod1/c1/cpu.max': 'max 100000\n', 'kubepods/pod1/cpu.max': '100000 100000\n', 'kubepods/cpu.max': '400000 100000\n' }, 1],
    ['a container in its own namespace: "/" is the root files', '0::/\n', { 'cpu.max': '300000 100000\n' }, 3],
    ['a path not in the mounted tree: the root files', '0::/elsewhere/x\n', { 'cpu.max': '100000 100000\n' }, 1],
    ['cgroup v1 with cgroupns=host', '4:cpu,cpuacct:/docker/abc\n0::/\n', { 'cpu,cpuacct/docker/abc/cpu.cfs_quota_us': '150000\n', 'cpu,cpuacct/docker/abc/cpu.cfs_period_us': '100000\n', 'cpu,cpuacct/cpu.cfs_quota_us': '-1\n', 'cpu,cpuacct/cpu.cfs_period_us': '100000\n' }, 2],
    ['cgroup v1 mounted as cpu/, the root files', '1:cpu:/\n', { 'cpu/cpu.cfs_quota_us': '300000\n', 'cpu/cpu.cfs_period_us': '100000\n' }, 3],
  ];
  for (const [name, procSelfCgroup, files, expected] of cases) {
    const tree = await fakeTree(procSelfCgroup, files);
    try {
      assert.equal(readCgroupCpuLimit(undefined, tree.root, tree.proc), expected, name);
    } finally {
      await rm(tree.dir, { recursive: true, force: true });
    }
  }
});
