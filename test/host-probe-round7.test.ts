/**
 * The suite's host probe (bench/suite/host-probe.ts) times the kernel side
 * too (issue 17, 2026-12-07): at the 01:00 quiet run its CPU-bound job read
 * full speed while every baseline cost ~35 % more per request, because what
 * slowed was sockets, wake-ups and I/O. The probe now adds a loopback TCP
 * ping-pong with an echo process of its own and 4 KiB appends + fdatasync in
 * the directory it is given. These tests run the real probe (real processes,
 * real loopback, real disk) and check its figures are there and plausible,
 * that it leaves neither a process nor a file behind, and that the table
 * shows the new figures beside `host ms` and still reads results written
 * before them. No timing is asserted beyond "positive and finite".
 */
import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { formatHostProbe, probeHost, type HostProbe } from '../bench/suite/host-probe.ts';
import type { Row } from '../bench/suite/measure.ts';
import { formatRowsTable, type WorkloadRecord } from '../bench/suite/report.ts';

const positiveFinite = (value: number | undefined, what: string): void => {
  assert.equal(typeof value, 'number', `${what} is missing`);
  assert.ok(Number.isFinite(value) && (value as number) > 0, `${what} = ${value}, expected positive and finite`);
};

/** Processes whose command line is the probe's echo process (its script listens and echoes one byte back). */
async function echoProcesses(): Promise<Set<string>> {
  const found = new Set<string>();
  for (const pid of readdirSync('/proc').filter((name) => /^\d+$/.test(name))) {
    const commandLine = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
    if (commandLine.includes('net.createServer') && commandLine.includes('process.cpuUsage()')) found.add(pid);
  }
  return found;
}

test('the probe reports the kernel side: a TCP round trip and a write + fdatasync, and leaves nothing behind', { timeout: 120_000 }, async () => {
  const directory = await mkdtemp(join(tmpdir(), 'talus-host-probe-test-'));
  try {
    const before = await echoProcesses();
    const probe = await probeHost(directory);
    assert.ok(probe !== undefined, 'the probe failed');
    // The CPU-bound job is still there, as before.
    positiveFinite(probe.ms, 'ms');
    positiveFinite(probe.loopMs, 'loopMs');
    // The kernel side.
    positiveFinite(probe.tcpRoundTripCpuMicros, 'tcpRoundTripCpuMicros');
    positiveFinite(probe.tcpRoundTripWallMicros, 'tcpRoundTripWallMicros');
    positiveFinite(probe.tcpRoundTrips, 'tcpRoundTrips');
    positiveFinite(probe.syncWriteWallMicros, 'syncWriteWallMicros');
    positiveFinite(probe.syncWriteCpuMicros, 'syncWriteCpuMicros');
    positiveFinite(probe.syncWrites, 'syncWrites');
    // Plausible: a round trip cannot take a second, nor a 4 KiB write + fdatasync a minute.
    assert.ok((probe.tcpRoundTripWallMicros as number) < 1e6, `round trip ${probe.tcpRoundTripWallMicros} µs`);
    assert.ok((probe.syncWriteWallMicros as number) < 60e6, `write + fdatasync ${probe.syncWriteWallMicros} µs`);
    assert.match(formatHostProbe(probe), /TCP round trip \d+ µs CPU \(\d+ wall\); 4 KiB write \+ fdatasync \d+ µs/);
    // The probe's file went into `directory` and was removed.
    assert.deepEqual(await readdir(directory), []);
    // Its echo process is gone by the time the probe resolves (the child waits for its exit).
    const left = [...(await echoProcesses())].filter((pid) => !before.has(pid));
    assert.deepEqual(left, [], 'the echo process outlived the probe');
  } finally {
    await rm(directory, { recursive: true, force: true });
  }
});

test('a kernel-side part that fails is left out and the other figures are kept', { timeout: 120_000 }, async () => {
  const before = await echoProcesses();
  // No such directory: the appends cannot open their file; the CPU job and the TCP part still run.
  const probe = await probeHost('/nonexistent/talus-host-probe-test');
  assert.ok(probe !== undefined, 'the whole probe was lost');
  positiveFinite(probe.ms, 'ms');
  positiveFinite(probe.tcpRoundTripCpuMicros, 'tcpRoundTripCpuMicros');
  positiveFinite(probe.tcpRoundTripWallMicros, 'tcpRoundTripWallMicros');
  assert.equal(probe.syncWriteWallMicros, undefined);
  assert.equal(probe.syncWriteCpuMicros, undefined);
  assert.equal(probe.syncWrites, undefined);
  assert.match(formatHostProbe(probe), /TCP round trip \d+ µs CPU .*; fdatasync probe failed$/);
  assert.deepEqual([...(await echoProcesses())].filter((pid) => !before.has(pid)), [], 'the echo process outlived the probe');
});

test('without the kernel side (the suite\'s --smoke mode) the probe starts no echo process and writes nothing', { timeout: 120_000 }, async () => {
  const directory = await mkdtemp(join(tmpdir(), 'talus-host-probe-test-'));
  try {
    const probe = await probeHost(directory, { kernelSide: false });
    assert.ok(probe !== undefined, 'the probe failed');
    positiveFinite(probe.ms, 'ms');
    assert.equal(probe.tcpRoundTripCpuMicros, undefined);
    assert.equal(probe.syncWriteWallMicros, undefined);
    assert.equal(probe.kernelSideSkipped, true);
    assert.match(formatHostProbe(probe), /; kernel side not probed$/);
    assert.deepEqual(await readdir(directory), []);
  } finally {
    await rm(directory, { recursive: true, force: true });
  }
});

function record(hostProbe: HostProbe): WorkloadRecord {
  const row = {
    workload: 'get-4k', server: 'talus', label: 'Talus', driver: 'wrk', serverProcesses: 1, serverCpuPercentOfOneCore: 80, serverCpuMicrosPerOperation: 95,
    serverPeakRssMiB: 150, serverStderrLines: 0, operations: 1000, errors: 0, firstErrors: [], durationMs: 1000, opsPerSecond: 1000, mibPerSecond: 3.9, latencyMs: { p50: 1, p99: 2 },
  } as unknown as Row;
  return { id: 'get-4k', title: 'GET 4 KiB', rows: [row], notes: [], hostProbe };
}

test('the table shows the kernel side beside host ms, and still reads a probe recorded before it', () => {
  const current: HostProbe = { ms: 16.2, wallMs: 30, sha256MicrosPerMiB: 640, loopMs: 11.5, repetitions: 5, tcpRoundTripCpuMicros: 41.4, tcpRoundTripWallMicros: 62, tcpRoundTrips: 1000, syncWriteWallMicros: 312.6, syncWriteCpuMicros: 20, syncWrites: 30 };
  const table = formatRowsTable([record(current)]);
  const [header, , line] = table.split('\n');
  const cells = (text: string | undefined): string[] => (text ?? '').split('|').map((cell) => cell.trim()).filter((cell, index, all) => index > 0 && index < all.length - 1);
  const headerCells = cells(header);
  const lineCells = cells(line);
  assert.equal(lineCells[headerCells.indexOf('host ms')], '16.2');
  assert.equal(lineCells[headerCells.indexOf('host RTT CPU µs')], '41');
  assert.equal(lineCells[headerCells.indexOf('host fsync µs')], '313');
  // A results file from before the kernel side (no such fields): the CPU figure alone, no error.
  const older: HostProbe = { ms: 15.9, wallMs: 28, sha256MicrosPerMiB: 630, loopMs: 11.2, repetitions: 5 };
  const olderCells = cells(formatRowsTable([record(older)]).split('\n')[2]);
  assert.equal(olderCells[headerCells.indexOf('host ms')], '15.9');
  assert.equal(olderCells[headerCells.indexOf('host RTT CPU µs')], '');
  assert.match(formatHostProbe(older), /^host probe 15\.9 ms CPU .*TCP probe failed.*fdatasync probe failed$/);
});
