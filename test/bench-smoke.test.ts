/**
 * Keeps `npm run bench` working: runs the whole suite in smoke mode (tiny
 * runs, well under a minute) as a child process, the way a person runs it,
 * and checks its JSON report: every workload ran (or says why it was
 * skipped), every row did some operations without a single error, and every
 * target has an entry. It never asserts on speed: a benchmark is not a
 * timed test, and smoke numbers mean nothing.
 *
 * Needs wrk (Debian package `wrk`), as the suite itself does.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';
import type { SuiteReport } from '../bench/suite/report.ts';
import { TARGETS } from '../bench/suite/targets.ts';
import { WORKLOAD_IDS } from '../bench/suite/workloads/index.ts';

const ROOT = resolve(fileURLToPath(new URL('..', import.meta.url)));
/** Smoke mode takes well under a minute on 2 cores; a loaded CI machine gets ample room. */
const SUITE_TIMEOUT_MS = 5 * 60_000;

function runSuite(jsonPath: string): Promise<{ code: number | null; output: string }> {
  return new Promise((resolveRun, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'bench', 'suite.ts'), '--smoke', '--json', jsonPath], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    const keep = (chunk: Buffer): void => {
      output = (output + chunk.toString('utf8')).slice(-64 * 1024);
    };
    child.stdout.on('data', keep);
    child.stderr.on('data', keep);
    // SIGINT lets the suite stop its servers and remove its files.
    const timer = setTimeout(() => child.kill('SIGINT'), SUITE_TIMEOUT_MS);
    child.once('error', reject);
    child.once('exit', (code) => {
      clearTimeout(timer);
      resolveRun({ code, output });
    });
  });
}

test('npm run bench -- --smoke runs every workload without errors and reports every target', { timeout: SUITE_TIMEOUT_MS + 30_000 }, async () => {
  const directory = await mkdtemp(join(tmpdir(), 'talus-bench-smoke-'));
  try {
    const jsonPath = join(directory, 'report.json');
    const { code, output } = await runSuite(jsonPath);
    assert.equal(code, 0, `the suite exited with ${code}:\n${output}`);
    const report = JSON.parse(await readFile(jsonPath, 'utf8')) as SuiteReport;
    assert.equal(report.mode, 'smoke');
    assert.deepEqual(
      report.workloads.map((workload) => workload.id),
      [...WORKLOAD_IDS],
      'every workload, in order',
    );
    for (const workload of report.workloads) {
      assert.equal(workload.failed, undefined, `${workload.id} failed: ${workload.failed}`);
      if (workload.skipped !== undefined) {
        assert.equal(workload.rows.length, 0, `${workload.id} is skipped and has rows`);
        continue;
      }
      assert.ok(workload.rows.some((row) => row.server === 'talus'), `${workload.id} has a Talus row`);
      for (const row of workload.rows) {
        assert.ok(row.operations > 0, `${workload.id} on ${row.label}: no operations`);
        assert.equal(row.errors, 0, `${workload.id} on ${row.label}: ${row.errors} errors (${row.firstErrors.join('; ')})`);
      }
    }
    assert.deepEqual(
      report.targets.map((target) => target.id),
      TARGETS.map((target) => target.id),
      'every target has an entry',
    );
    for (const target of report.targets) assert.ok(target.met === true || target.met === false || target.met === null, `${target.id}: met is a boolean or null`);
  } finally {
    await rm(directory, { recursive: true, force: true });
  }
});
