/**
 * The server's heap policy (src/util/heap-policy.ts) bounds what V8 keeps of
 * old-generation garbage: a process that promotes a steady stream of
 * short-lived objects into the old generation (as listing pages did under 32
 * concurrent listers) keeps its heap near its live size plus a fixed margin,
 * where V8's own growing factor let it reach several times the live size.
 *
 * Each case runs in its own process, so the heap measured is that process's
 * only; the same churn runs without the policy as the control, so the test
 * also fails if V8 stops honouring the flag. A worker thread starts before the
 * churn: V8 resets some of its flags when an isolate starts, and the policy
 * must survive the server's own thread starts.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { PROJECT_ROOT } from './helpers/process.ts';

const MiB = 1024 * 1024;
/** ~20 MiB live, then ~400 MB of objects that each outlive a few young collections (a ring of 400 000). */
const CHURN = `
const { Worker } = await import('node:worker_threads');
if (process.env.POLICY_MODULE) (await import(process.env.POLICY_MODULE)).applyServerHeapPolicy();
const thread = new Worker('setTimeout(() => {}, 50)', { eval: true });
await new Promise((resolve) => thread.once('exit', resolve));
const live = [];
for (let i = 0; i < 200_000; i++) live.push({ i, text: 'live' + i });
const ring = new Array(400_000);
let peak = 0;
for (let i = 0; i < 4_000_000; i++) {
  ring[i % ring.length] = { i, text: 'garbage' + i, list: [i] };
  if (i % 10_000 === 0) peak = Math.max(peak, process.memoryUsage().heapTotal);
}
// live stays reachable to the end, so it is live, not garbage.
process.stdout.write(live.length === 200_000 ? String(peak) : 'lost the live set');
`;
/** Between the two (the ring alone is ~40 MiB live): with the policy 166 MiB measured, without it 394 MiB. */
const HEAP_TOTAL_BYTES_MAX = 240 * MiB;

async function peakHeapTotal(withPolicy: boolean): Promise<number> {
  const policyModule = pathToFileURL(join(PROJECT_ROOT, 'src', 'util', 'heap-policy.ts')).href;
  const { stdout } = await promisify(execFile)(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', CHURN], {
    cwd: PROJECT_ROOT,
    env: { ...process.env, NODE_OPTIONS: '', POLICY_MODULE: withPolicy ? policyModule : '' },
  });
  const peak = Number(stdout);
  assert.ok(Number.isFinite(peak) && peak > 0, `the churn printed its peak heap: ${stdout}`);
  return peak;
}

test('the server heap policy keeps old-generation garbage near the live heap, where V8 alone lets it grow', { timeout: 180_000 }, async (t) => {
  const withPolicy = await peakHeapTotal(true);
  const without = await peakHeapTotal(false);
  t.diagnostic(`peak heap total ${(withPolicy / MiB).toFixed(0)} MiB with the policy, ${(without / MiB).toFixed(0)} MiB without`);
  assert.ok(withPolicy < HEAP_TOTAL_BYTES_MAX, `with the policy the heap reached ${(withPolicy / MiB).toFixed(0)} MiB`);
  assert.ok(without > HEAP_TOTAL_BYTES_MAX, `the control: without the policy the same churn reached only ${(without / MiB).toFixed(0)} MiB (the test no longer tells the policy apart)`);
});
