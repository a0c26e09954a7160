/**
 * CPU placement for side-by-side runs: two servers pinned to one CPU, their
 * load generators to the others. On a shared virtual machine a CPU's speed
 * for the same work swings by ±15 % from second to second (a fixed loop of
 * hashing, 140–204 ms per pass on an idle machine, 2026-12-07), and each
 * virtual CPU swings on its own: two identical servers measured in turn, or
 * at once on two CPUs, read 63–130 % of each other run by run. On one CPU,
 * taking turns every few milliseconds, both see the same swings, and their
 * ratio stays within a few percent (docs/PERFORMANCE.md, "Metrics and logs,
 * round 8").
 */
import { execFile } from 'node:child_process';
import { readdir, readFile } from 'node:fs/promises';
import { promisify } from 'node:util';
import { assert } from '../../src/util/assert.ts';

const run = promisify(execFile);
/** More CPUs than any machine this suite runs on; a bound on what is parsed. */
const CPU_ID_MAX = 4095;
/** Descendants of one server (its --workers processes); a bound on the /proc walk's result. */
const PROCESS_TREE_MAX = 256;

/** Where the two sides of a side-by-side run go: `taskset -c` lists. */
export interface SideBySidePlacement {
  /** Both servers, every thread: one CPU. */
  servers: string;
  /** The load generators: the other CPUs, or the same one on a one-CPU machine. */
  drivers: string;
}

/** The CPUs this process may run on, from a `Cpus_allowed_list` such as `0-3,8,10-11`. */
export function parseCpuList(list: string): number[] {
  const cpus: number[] = [];
  for (const part of list.trim().split(',')) {
    const match = /^(\d+)(?:-(\d+))?$/.exec(part.trim());
    assert(match !== null, `CPU list not understood: ${list}`);
    const first = Number(match[1]);
    const last = match[2] === undefined ? first : Number(match[2]);
    assert(first <= last && last <= CPU_ID_MAX, `CPU range out of bounds: ${part}`);
    for (let cpu = first; cpu <= last; cpu++) cpus.push(cpu);
  }
  assert(cpus.length > 0, 'no CPU allowed');
  return cpus;
}

/** The last allowed CPU for the servers (the first tends to take the machine's interrupts), the rest for the drivers. */
export function sideBySidePlacement(allowed: readonly number[]): SideBySidePlacement {
  assert(allowed.length > 0, 'no CPU to place on');
  const servers = allowed[allowed.length - 1]!;
  const drivers = allowed.length === 1 ? [servers] : allowed.slice(0, -1);
  return { servers: String(servers), drivers: drivers.join(',') };
}

/** The CPUs this process may run on; fails at once (before any server starts) where side-by-side runs cannot be placed: no Linux, no taskset. */
export async function allowedCpus(): Promise<number[]> {
  await run('taskset', ['--version']).catch(() => {
    throw new Error('taskset is missing: side-by-side runs pin their servers with it (Debian: util-linux)');
  });
  const status = await readFile('/proc/self/status', 'utf8');
  const line = /^Cpus_allowed_list:\s*(.+)$/m.exec(status);
  assert(line !== null, '/proc/self/status has no Cpus_allowed_list: side-by-side runs need Linux');
  // The allowed list may name CPUs that are not running (room kept for hot-plug, SMT turned off): taskset refuses those.
  const online = await readFile('/sys/devices/system/cpu/online', 'utf8').then(parseCpuList, () => undefined);
  return onlineOnly(parseCpuList(line[1]!), online);
}

/** The allowed CPUs that are also online (all of them when the online list could not be read). */
export function onlineOnly(allowed: readonly number[], online: readonly number[] | undefined): number[] {
  const running = online === undefined ? [...allowed] : allowed.filter((cpu) => online.includes(cpu));
  assert(running.length > 0, `none of the allowed CPUs ${allowed.join(',')} is online`);
  return running;
}

/** Pins every thread of one process (not the processes below it) to `cpus`. */
export async function pinProcess(pid: number, cpus: string): Promise<void> {
  await run('taskset', ['--all-tasks', '--pid', '--cpu-list', cpus, String(pid)]);
}

/** `pid` and every process below it (a --workers server's workers). */
async function processTree(pid: number): Promise<number[]> {
  const parents = new Map<number, number[]>();
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const stat = await readFile(`/proc/${entry}/stat`, 'utf8').catch(() => undefined);
    if (stat === undefined) continue;
    // The command name may hold spaces and parentheses: the fields after the last ')' are fixed.
    const parent = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    const children = parents.get(parent) ?? [];
    children.push(Number(entry));
    parents.set(parent, children);
  }
  const tree = [pid];
  for (let index = 0; index < tree.length; index++) {
    for (const child of parents.get(tree[index]!) ?? []) tree.push(child);
    assert(tree.length <= PROCESS_TREE_MAX, `more than ${PROCESS_TREE_MAX} processes under ${pid}`);
  }
  return tree;
}

/**
 * Pins every thread of `pid` and of the processes below it to `cpus`
 * (threads started later inherit the mask of the thread that starts them).
 * Returns how many processes were pinned.
 */
export async function pinProcessTree(pid: number, cpus: string): Promise<number> {
  const tree = await processTree(pid);
  let pinned = 0;
  for (const member of tree) {
    try {
      await pinProcess(member, cpus);
      pinned++;
    } catch (error) {
      // A process below the server that ended since the walk (a worker restarting) has nothing left to pin; the server itself must be pinned.
      if (member === pid || (await readFile(`/proc/${member}/stat`).then(() => true, () => false))) throw error;
    }
  }
  return pinned;
}
