/**
 * How many processes `talus server --workers auto` (the default) starts:
 * one per core the server may use, where a container's CPU quota counts as
 * well as the cores the machine has.
 */
import { readFileSync } from 'node:fs';

/**
 * auto starts at most this many workers, however many cores there are:
 * - the gain was measured on 2 cores only (docs/PERFORMANCE.md, "Default
 *   worker count"); beyond that it is untested;
 * - every write commits through SQLite's one writer, which more processes
 *   only queue behind;
 * - every worker keeps its own caches, heap and SQLite connection (about
 *   125-150 MiB resident each), so 64 workers on a big node cost 8-10 GiB.
 * An explicit --workers N (up to WORKERS_MAX) asks for more.
 */
export const AUTO_WORKERS_MAX = 8;

/** The CPU quota as its cgroup files state it; undefined where a file is absent. */
export interface CgroupCpuFiles {
  /** cgroup v2's cpu.max: "QUOTA PERIOD" or "max PERIOD". */
  v2CpuMax?: string | undefined;
  /** cgroup v1's cpu.cfs_quota_us (-1: no limit) and cpu.cfs_period_us. */
  v1QuotaUs?: string | undefined;
  v1PeriodUs?: string | undefined;
}

/**
 * The cores a cgroup CPU quota allows, rounded up (a quota of 1.5 CPUs keeps
 * two processes busy part of the time); undefined where there is no limit or
 * the files say nothing readable.
 */
export function cgroupCpuLimit(files: CgroupCpuFiles): number | undefined {
  if (files.v2CpuMax !== undefined) {
    const [quota, period] = files.v2CpuMax.trim().split(/\s+/);
    return quotaCores(quota, period);
  }
  if (files.v1QuotaUs !== undefined && files.v1PeriodUs !== undefined) return quotaCores(files.v1QuotaUs.trim(), files.v1PeriodUs.trim());
  return undefined;
}

function quotaCores(quota: string | undefined, period: string | undefined): number | undefined {
  if (quota === undefined || quota === 'max' || period === undefined) return undefined;
  const quotaUs = Number(quota);
  const periodUs = Number(period);
  // cgroup v1 says "no limit" with -1.
  if (!Number.isFinite(quotaUs) || !Number.isFinite(periodUs) || quotaUs <= 0 || periodUs <= 0) return undefined;
  return Math.max(1, Math.ceil(quotaUs / periodUs));
}

/** auto's count: the cores (os.availableParallelism()), at most the cgroup's CPU limit (cores), at most AUTO_WORKERS_MAX; at least 1. */
export function autoWorkerCount(parallelism: number, cpuLimit: number | undefined): number {
  return Math.max(1, Math.min(parallelism, cpuLimit ?? Number.POSITIVE_INFINITY, AUTO_WORKERS_MAX));
}

/** Reads a file's text; undefined where it is absent or unreadable. */
export type ReadFile = (path: string) => string | undefined;

/** This process's cgroup paths, from /proc/self/cgroup: the v2 one ("0::PATH") and v1's cpu controller's ("N:cpu,cpuacct:PATH"). */
export function ownCgroupPaths(procSelfCgroup: string): { v2: string | undefined; v1Cpu: string | undefined } {
  let v2: string | undefined;
  let v1Cpu: string | undefined;
  for (const line of procSelfCgroup.split('\n')) {
    const match = /^(\d+):([^:]*):(\/.*)$/.exec(line.trim());
    if (match === null) continue;
    const [, hierarchy, controllers, path] = match as unknown as [string, string, string, string];
    if (hierarchy === '0' && controllers === '') v2 = path;
    else if (controllers.split(',').includes('cpu')) v1Cpu = path;
  }
  return { v2, v1Cpu };
}

/** `path` and each of its ancestors, up to and including "/". */
export function selfAndAncestors(path: string): string[] {
  const parts = path.split('/').filter((part) => part !== '' && part !== '.' && part !== '..');
  return Array.from({ length: parts.length + 1 }, (_, depth) => `/${parts.slice(0, parts.length - depth).join('/')}`);
}

/**
 * The CPU limit (cores, rounded up) of this process's cgroup: the tightest
 * quota on its own cgroup and every ancestor up to the mount root, cgroup v2
 * (cpu.max) and v1 (cpu.cfs_quota_us / cpu.cfs_period_us) alike; undefined
 * where none is set. A systemd service's CPUQuota= sits on
 * /system.slice/NAME.service, a container's without its own cgroup namespace
 * on its path in the host's tree: reading the mount root only missed both.
 * Where the path is not in the mounted tree (a container's own cgroup
 * namespace shows "/"; a private mount of another), the root's files count.
 *
 * Node 20's os.availableParallelism() (libuv 1.46) counts the machine's cores
 * and ignores the quota: a pod limited to 1 CPU on a 64-core node would start
 * 64 workers.
 */
export function readCgroupCpuLimit(read: ReadFile = readIfPresent, root = '/sys/fs/cgroup', procSelfCgroup = '/proc/self/cgroup'): number | undefined {
  const paths = ownCgroupPaths(read(procSelfCgroup) ?? '');
  const limits: (number | undefined)[] = [];
  for (const path of selfAndAncestors(paths.v2 ?? '/')) {
    limits.push(cgroupCpuLimit({ v2CpuMax: read(`${root}${trailing(path)}cpu.max`) }));
  }
  for (const mount of [`${root}/cpu`, `${root}/cpu,cpuacct`]) {
    for (const path of selfAndAncestors(paths.v1Cpu ?? '/')) {
      const directory = `${mount}${trailing(path)}`;
      limits.push(cgroupCpuLimit({ v1QuotaUs: read(`${directory}cpu.cfs_quota_us`), v1PeriodUs: read(`${directory}cpu.cfs_period_us`) }));
    }
  }
  const set = limits.filter((limit): limit is number => limit !== undefined);
  return set.length === 0 ? undefined : Math.min(...set);
}

/** "/" stays "/", "/a/b" becomes "/a/b/": a directory to append a file name to. */
function trailing(path: string): string {
  return path === '/' ? '/' : `${path}/`;
}

function readIfPresent(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
}
