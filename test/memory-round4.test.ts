/**
 * Freed Buffer memory goes back to the kernel (src/util/freed-memory.ts).
 *
 * Goal: after heavy traffic a server process's brk heap held 60–78 MiB while
 * only 7–24 MiB of Buffers were alive, because glibc returns only the top of
 * its heap and a few small allocations still alive above the freed chunks
 * pin everything below. The releaser must give those pages back.
 *
 * Method: a child process (its memory is its own) fragments its malloc heap
 * the way socket chunks do — 64 KiB Buffers, each followed by a small Buffer
 * that stays alive — frees the large ones and collects them, then reads the
 * resident size of its brk heap ([heap] in /proc/self/smaps) before and after
 * the FreedMemoryReleaser's first check. The control runs the same churn with
 * no releaser, so the test also fails if glibc starts returning that memory on
 * its own (then the releaser is not needed). Linux with glibc only: where the
 * release is not possible (musl), releaseFreedMemory must say so.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { PROJECT_ROOT } from './helpers/process.ts';

const MiB = 1024 * 1024;
const CHURN = `
const { readFileSync } = await import('node:fs');
function brkResidentBytes() {
  const smaps = readFileSync('/proc/self/smaps', 'utf8');
  const start = smaps.indexOf('[heap]');
  if (start < 0) return 0;
  return Number(/Rss:\\s+(\\d+) kB/.exec(smaps.slice(start))[1]) * 1024;
}
const releasing = process.env.RELEASER_MODULE ? await import(process.env.RELEASER_MODULE) : undefined;
// Started before the churn, as a server starts it: its baseline is the process's size then. Checks every 200 ms, not every second.
const releaser = releasing === undefined ? undefined : new releasing.FreedMemoryReleaser(200, 16 * 1024 * 1024);
const pins = [];
let chunks = [];
for (let i = 0; i < 1200; i++) {
  chunks.push(Buffer.allocUnsafeSlow(64 * 1024).fill(1));
  pins.push(Buffer.allocUnsafeSlow(256).fill(2));
}
const peak = brkResidentBytes();
chunks = undefined;
for (let i = 0; i < 4; i++) globalThis.gc();
// Synchronously after the collections: no check of the releaser has run since the churn began.
const freed = brkResidentBytes();
await new Promise((resolve) => setTimeout(resolve, 1000));
releaser?.stop();
process.stdout.write(JSON.stringify({ peak, freed, after: brkResidentBytes(), releases: releaser?.releases ?? 0, pins: pins.length }));
`;

interface Churn {
  peak: number;
  freed: number;
  after: number;
  releases: number;
}

async function churn(withReleaser: boolean, releaserModule: string): Promise<Churn> {
  const { stdout } = await promisify(execFile)(process.execPath, ['--expose-gc', '--import', 'tsx', '--input-type=module', '-e', CHURN], {
    cwd: PROJECT_ROOT,
    env: { ...process.env, NODE_OPTIONS: '', RELEASER_MODULE: withReleaser ? releaserModule : '' },
  });
  return JSON.parse(stdout) as Churn;
}

const GLIBC = process.platform === 'linux' && (process.report.getReport() as { header?: { glibcVersionRuntime?: string } }).header?.glibcVersionRuntime !== undefined;

test('the freed-memory releaser gives a fragmented heap back to the kernel, which glibc alone keeps', { timeout: 120_000, skip: !GLIBC || !existsSync('/proc/self/smaps') ? 'needs Linux with glibc' : false }, async (t) => {
  const releaserModule = pathToFileURL(join(PROJECT_ROOT, 'src', 'util', 'freed-memory.ts')).href;
  const released = await churn(true, releaserModule);
  const control = await churn(false, releaserModule);
  t.diagnostic(`brk heap resident, MiB: with the releaser ${JSON.stringify(released)}; without ${JSON.stringify(control)}`);
  // ~75 MiB of chunks were allocated; the pins (300 KiB) are all that stays alive.
  assert.ok(released.peak > 60 * MiB && control.peak > 60 * MiB, 'the churn filled the brk heap');
  assert.ok(control.after > 50 * MiB, `the control: glibc kept ${(control.after / MiB).toFixed(0)} MiB on its own (the test no longer tells the releaser apart)`);
  assert.ok(released.freed > 50 * MiB, 'before the releaser ran, the freed chunks were still resident');
  assert.equal(released.releases, 1, 'one release for one growth: memory still in use is not released again each check');
  assert.ok(released.after < 16 * MiB, `after the release the brk heap kept ${(released.after / MiB).toFixed(0)} MiB resident`);
});

test('releaseFreedMemory answers whether this process can release at all', { timeout: 60_000 }, async () => {
  const { releaseFreedMemory } = await import('../src/util/freed-memory.ts');
  // Twice: the second call must answer the same (a failure turns it off for good, a success stays on).
  const first = releaseFreedMemory();
  assert.equal(releaseFreedMemory(), first);
  if (GLIBC && (process.arch === 'x64' || process.arch === 'arm64')) assert.equal(first, true, 'glibc on x86-64/AArch64 Linux releases');
});
