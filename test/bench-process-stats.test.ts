/**
 * The suite's CPU readings (bench/suite/process-stats.ts): the ticks of
 * /proc/<pid>/stat and, to the nanosecond, schedstat over every thread. A
 * real child burns a known amount of CPU on its main thread and on a worker
 * thread; both readings must see it, schedstat closer than a tick, and
 * its main thread's share must be the main thread's burn.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { test } from 'node:test';
import { ResourceWindow } from '../bench/suite/process-stats.ts';

/**
 * A child that, on each line it reads, burns `ms` of CPU on its main thread,
 * then as much on a worker thread while the main thread waits, then says
 * "done". Each burns until the process's CPU (every thread's) has grown by
 * `ms` (user and system: the loop's own getrusage calls are system time):
 * the other thread is idle meanwhile.
 */
const BURNER = `
  const { Worker } = require('node:worker_threads');
  const worker = new Worker(\`
    const { parentPort } = require('node:worker_threads');
    const burn = (ms) => { const cpu = () => { const { user, system } = process.cpuUsage(); return user + system; }; const until = cpu() + ms * 1000; while (cpu() < until) {} };
    parentPort.on('message', (ms) => { burn(ms); parentPort.postMessage('burnt'); });
    parentPort.postMessage('ready');\`, { eval: true });
  const burn = (ms) => { const cpu = () => { const { user, system } = process.cpuUsage(); return user + system; }; const until = cpu() + ms * 1000; while (cpu() < until) {} };
  worker.once('message', () => {
    require('node:readline').createInterface({ input: process.stdin }).on('line', (line) => {
      const ms = Number(line);
      burn(ms);
      worker.once('message', () => console.log('done'));
      worker.postMessage(ms);
    });
    console.log('ready');
  });
`;

const hasSchedstat = existsSync('/proc/self/schedstat');

test('a window reads the CPU a process spent, every thread of it, and schedstat to better than a tick', { skip: !hasSchedstat && 'no /proc/<pid>/schedstat (a kernel without CONFIG_SCHED_INFO)', timeout: 60_000 }, async () => {
  const child = spawn(process.execPath, ['-e', BURNER], { stdio: ['pipe', 'pipe', 'inherit'] });
  const lines = createInterface({ input: child.stdout })[Symbol.asyncIterator]();
  try {
    assert.equal((await lines.next()).value, 'ready');
    for (const ms of [300, 25]) {
      const window = ResourceWindow.begin(child.pid!);
      child.stdin.write(`${ms}\n`);
      assert.equal((await lines.next()).value, 'done');
      const usage = window.end();
      // 2 × ms burnt (main thread, then worker thread), plus a little of node's own.
      const expectedMicros = 2 * ms * 1000;
      assert.ok(usage.onCpuMicros >= expectedMicros * 0.95, `schedstat ${usage.onCpuMicros} µs of ${expectedMicros}`);
      assert.ok(usage.onCpuMicros <= expectedMicros * 1.25 + 5_000, `schedstat ${usage.onCpuMicros} µs of ${expectedMicros}`);
      // Ticks (10 ms) see the same CPU within a few ticks; schedstat is not rounded to them.
      assert.ok(Math.abs(usage.cpuMicros - usage.onCpuMicros) <= 30_000, `ticks ${usage.cpuMicros} vs schedstat ${usage.onCpuMicros}`);
      assert.notEqual(usage.onCpuMicros % 10_000, 0, 'a reading to the nanosecond, not in ticks');
      // Half of it on the main thread, half on the worker: the split sees which thread spent what (each burn
      // counts the whole process's CPU, so V8's helper threads may take a few ms of the main thread's share).
      assert.ok(usage.mainThreadOnCpuMicros >= ms * 1000 * 0.95 - 10_000, `main thread ${usage.mainThreadOnCpuMicros} µs of ${ms * 1000}`);
      assert.ok(usage.mainThreadOnCpuMicros <= ms * 1000 * 1.25 + 5_000, `main thread ${usage.mainThreadOnCpuMicros} µs of ${ms * 1000}`);
      assert.ok(usage.onCpuMicros - usage.mainThreadOnCpuMicros >= ms * 1000 * 0.95, `other threads ${usage.onCpuMicros - usage.mainThreadOnCpuMicros} µs of ${ms * 1000}`);
    }
  } finally {
    child.kill();
    await once(child, 'exit');
  }
});

/**
 * A child whose worker thread burns 200 ms of CPU at once, then waits; on a
 * line from stdin the worker ends and the main thread burns 50 ms, then
 * "done".
 */
const ENDING_WORKER = `
  const { Worker } = require('node:worker_threads');
  const burn = (ms) => { const cpu = () => { const { user, system } = process.cpuUsage(); return user + system; }; const until = cpu() + ms * 1000; while (cpu() < until) {} };
  const worker = new Worker(\`
    const { parentPort } = require('node:worker_threads');
    const burn = (ms) => { const cpu = () => { const { user, system } = process.cpuUsage(); return user + system; }; const until = cpu() + ms * 1000; while (cpu() < until) {} };
    burn(200);
    parentPort.postMessage('burnt');
    parentPort.on('message', () => process.exit(0));\`, { eval: true });
  worker.once('message', () => {
    require('node:readline').createInterface({ input: process.stdin }).once('line', () => {
      worker.once('exit', () => { burn(50); console.log('done'); });
      worker.postMessage('end');
    });
    console.log('ready');
  });
`;

test('a thread that ends inside the window does not take its lifetime\'s CPU out of the reading: the ticks stand in', { skip: !hasSchedstat && 'no /proc/<pid>/schedstat', timeout: 60_000 }, async () => {
  const child = spawn(process.execPath, ['-e', ENDING_WORKER], { stdio: ['pipe', 'pipe', 'inherit'] });
  const lines = createInterface({ input: child.stdout })[Symbol.asyncIterator]();
  try {
    assert.equal((await lines.next()).value, 'ready');
    const window = ResourceWindow.begin(child.pid!);
    child.stdin.write('end\n');
    assert.equal((await lines.next()).value, 'done');
    const usage = window.end();
    // The window saw ~50 ms (the main thread's burn, the worker's ending): the worker's 200 ms before it are not
    // subtracted (that would read 0 here), and the reading is the ticks', which keep an ended thread's time.
    assert.equal(usage.onCpuMicros, usage.cpuMicros);
    // Ticks do not say which thread: no main thread's share is made up.
    assert.equal(usage.mainThreadOnCpuMicros, 0);
    assert.ok(usage.onCpuMicros >= 40_000 && usage.onCpuMicros <= 150_000, `${usage.onCpuMicros} µs for a 50 ms burn`);
  } finally {
    child.kill();
    await once(child, 'exit');
  }
});
