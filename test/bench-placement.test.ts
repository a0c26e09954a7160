/**
 * CPU placement for the side-by-side observability row (bench/suite/placement.ts):
 * Linux CPU lists read, servers and drivers placed, and a real process tree
 * pinned with taskset.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { readdir, readFile } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import { test } from 'node:test';
import { allowedCpus, onlineOnly, parseCpuList, pinProcessTree, sideBySidePlacement } from '../bench/suite/placement.ts';

test('parseCpuList reads single CPUs, ranges and both mixed, as /proc/<pid>/status writes them', () => {
  assert.deepEqual(parseCpuList('0'), [0]);
  assert.deepEqual(parseCpuList('7'), [7]);
  assert.deepEqual(parseCpuList('0-3'), [0, 1, 2, 3]);
  assert.deepEqual(parseCpuList('2-2'), [2]);
  assert.deepEqual(parseCpuList('0-3,8,10-11'), [0, 1, 2, 3, 8, 10, 11]);
  assert.deepEqual(parseCpuList('1,3,5'), [1, 3, 5]);
  // As read from the file: a tab before, a newline after.
  assert.deepEqual(parseCpuList('0-1\n'), [0, 1]);
  assert.deepEqual(parseCpuList(' 0-1,4 \n'), [0, 1, 4]);
  assert.deepEqual(parseCpuList('4095'), [4095]);
});

test('parseCpuList refuses what is not a CPU list, reversed ranges and absurd CPU ids', () => {
  for (const list of ['', ' \n', 'a', '0-', '-1', '1,,2', '1,', '0-3,x', '1.5', '0x3', '3-1', '4096', '0-4096', '99999999999999999999', '0-1000000000']) {
    assert.throws(() => parseCpuList(list), /CPU (list not understood|range out of bounds)/, JSON.stringify(list));
  }
});

test('sideBySidePlacement puts both servers on the last allowed CPU and the drivers on the others (the same one when alone)', () => {
  assert.deepEqual(sideBySidePlacement([0, 1]), { servers: '1', drivers: '0' });
  assert.deepEqual(sideBySidePlacement([0, 1, 2, 3]), { servers: '3', drivers: '0,1,2' });
  assert.deepEqual(sideBySidePlacement([5]), { servers: '5', drivers: '5' });
  assert.deepEqual(sideBySidePlacement([2, 7]), { servers: '7', drivers: '2' });
  assert.deepEqual(sideBySidePlacement(parseCpuList('0-3,8,10-11')), { servers: '11', drivers: '0,1,2,3,8,10' });
  assert.throws(() => sideBySidePlacement([]), /no CPU/);
});

const hasTaskset = process.platform === 'linux' && spawnSync('taskset', ['--version']).status === 0;

/** `Cpus_allowed_list` of every thread of `pid`. */
async function threadCpuLists(pid: number): Promise<string[]> {
  const lists: string[] = [];
  for (const task of await readdir(`/proc/${pid}/task`)) {
    const status = await readFile(`/proc/${pid}/task/${task}/status`, 'utf8').catch(() => undefined);
    if (status === undefined) continue; // a thread that ended meanwhile
    const line = /^Cpus_allowed_list:\s*(.+)$/m.exec(status);
    assert.ok(line !== null, `no Cpus_allowed_list for thread ${task} of ${pid}`);
    lists.push(line[1]!.trim());
  }
  assert.ok(lists.length > 0, `no thread of ${pid}`);
  return lists;
}

async function processCpuList(pid: number): Promise<string> {
  const line = /^Cpus_allowed_list:\s*(.+)$/m.exec(await readFile(`/proc/${pid}/status`, 'utf8'));
  assert.ok(line !== null);
  return line[1]!.trim();
}

async function parentOf(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
  return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
}

function killQuietly(pid: number | undefined): void {
  if (pid === undefined) return;
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // already gone
  }
}

test('pinProcessTree pins a process and the process below it, every thread, to the CPU given', { skip: !hasTaskset && 'needs Linux and taskset', timeout: 20_000 }, async () => {
  const cpus = await allowedCpus();
  const cpu = String(cpus.at(-1)!);
  // A child that starts a grandchild and says its pid; the grandchild says when it runs (its threads started). Both idle
  // for 10 s at most: left over if this test dies, they end.
  const code = [
    "const { spawn } = require('node:child_process');",
    "const grandchild = spawn(process.execPath, ['-e', 'console.log(\\'ready\\'); setTimeout(() => {}, 10000)'], { stdio: ['ignore', 'inherit', 'inherit'] });",
    "grandchild.on('spawn', () => console.log('grandchild ' + grandchild.pid));",
    'setTimeout(() => {}, 10000);',
  ].join('\n');
  const child = spawn(process.execPath, ['-e', code], { stdio: ['ignore', 'pipe', 'inherit'] });
  let grandchildPid: number | undefined;
  try {
    const said: string[] = [];
    const lines = createInterface({ input: child.stdout });
    lines.on('line', (line) => said.push(line));
    const exited = once(child, 'exit');
    let gone = false;
    void exited.then(() => (gone = true));
    for (const started = Date.now(); said.length < 2 && !gone && Date.now() - started < 10_000;) await new Promise((resolve) => setTimeout(resolve, 20));
    assert.equal(said.length, 2, `the child says its grandchild's pid, the grandchild that it runs: ${JSON.stringify(said)}`);
    assert.ok(said.includes('ready'), JSON.stringify(said));
    const pidLine = said.find((line) => line.startsWith('grandchild '));
    assert.ok(pidLine !== undefined, JSON.stringify(said));
    grandchildPid = Number(pidLine.slice('grandchild '.length));
    assert.ok(Number.isInteger(grandchildPid) && grandchildPid > 0, pidLine);
    const childPid = child.pid!;
    assert.equal(await parentOf(grandchildPid), childPid, 'the grandchild is the child\'s');
    // Before: both may run where this process may (more than the one CPU, on a machine with several).
    const before = await processCpuList(process.pid);
    assert.equal(await processCpuList(childPid), before);
    assert.equal(await processCpuList(grandchildPid), before);

    assert.equal(await pinProcessTree(childPid, cpu), 2);

    for (const pid of [childPid, grandchildPid]) {
      assert.equal(await processCpuList(pid), cpu, `process ${pid}`);
      const threads = await threadCpuLists(pid);
      assert.ok(threads.length > 1, `node runs several threads (${threads.length})`);
      assert.deepEqual(threads, threads.map(() => cpu), `every thread of ${pid}`);
    }
    // This process is left as it was.
    assert.equal(await processCpuList(process.pid), before);
  } finally {
    // The grandchild, even when it never said its pid.
    const children = child.pid === undefined ? '' : await readFile(`/proc/${child.pid}/task/${child.pid}/children`, 'utf8').catch(() => '');
    for (const pid of new Set([grandchildPid, ...children.split(' ').filter((word) => word.trim() !== '').map(Number)])) killQuietly(pid);
    killQuietly(child.pid);
    child.stdout.destroy();
  }
});

test('onlineOnly keeps the allowed CPUs that are online (taskset refuses the others), all of them when the online list is unknown', () => {
  // A VM that allows CPUs kept for hot-plug: allowed 0-3, online 0-1.
  assert.deepEqual(onlineOnly([0, 1, 2, 3], [0, 1]), [0, 1]);
  assert.deepEqual(sideBySidePlacement(onlineOnly([0, 1, 2, 3], [0, 1])), { servers: '1', drivers: '0' });
  assert.deepEqual(onlineOnly([2, 7], [0, 1, 2, 3, 4, 5, 6, 7]), [2, 7]);
  assert.deepEqual(onlineOnly([0, 1], undefined), [0, 1]);
  assert.throws(() => onlineOnly([4, 5], [0, 1]), /none of the allowed CPUs 4,5 is online/);
});

test('allowedCpus lists only CPUs this machine runs: each is in /sys/devices/system/cpu/online', { skip: spawnSync('taskset', ['--version']).status !== 0 && 'taskset is missing' }, async () => {
  const online = parseCpuList(await readFile('/sys/devices/system/cpu/online', 'utf8'));
  const allowed = await allowedCpus();
  assert.ok(allowed.length > 0);
  for (const cpu of allowed) assert.ok(online.includes(cpu), `CPU ${cpu} is online`);
});
