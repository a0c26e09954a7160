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

/** auto's count: the cores (os.availableParallelism()), at most the cgroup's quota, at most AUTO_WORKERS_MAX; at least 1. */
export function autoWorkerCount(parallelism: number, files: CgroupCpuFiles): number {
  const limit = cgroupCpuLimit(files) ?? Number.POSITIVE_INFINITY;
  return Math.max(1, Math.min(parallelism, limit, AUTO_WORKERS_MAX));
}

/**
 * This process's cgroup CPU files. Node 20's os.availableParallelism()
 * (libuv 1.46) counts the machine's cores and ignores the quota: a pod
 * limited to 1 CPU on a 64-core node would start 64 workers.
 */
export function readCgroupCpuFiles(root = '/sys/fs/cgroup'): CgroupCpuFiles {
  return {
    v2CpuMax: readIfPresent(`${root}/cpu.max`),
    v1QuotaUs: readIfPresent(`${root}/cpu/cpu.cfs_quota_us`) ?? readIfPresent(`${root}/cpu,cpuacct/cpu.cfs_quota_us`),
    v1PeriodUs: readIfPresent(`${root}/cpu/cpu.cfs_period_us`) ?? readIfPresent(`${root}/cpu,cpuacct/cpu.cfs_period_us`),
  };
}

function readIfPresent(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
}
