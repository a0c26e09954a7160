/**
 * What each `talus` process loads (issues 14 and 17): src/cli.ts imports a
 * subcommand's module only when it runs, so `talus scan` does not pay for
 * the server, and --workers' primary (which serves no S3) does not carry the
 * S3 request stack. Observed from outside: a module loader hook, given to the
 * process with --import, writes every module URL it loads to a file.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { CLI, PROJECT_ROOT, freePort } from './helpers/process.ts';
import { ACCESS_KEY_ID, SECRET_ACCESS_KEY } from './helpers/talus.ts';

const START_TIMEOUT_MS = 60_000;
let directory: string;
let traceImport: string;

before(async () => {
  directory = await mkdtemp(join(tmpdir(), 'talus-cli-lazy-'));
  // A load hook in its own thread appends each URL; the --import script registers it.
  await writeFile(join(directory, 'hooks.mjs'), `import { appendFileSync } from 'node:fs';
export async function load(url, context, next) {
  if (url.startsWith('file:')) appendFileSync(process.env.TALUS_TEST_TRACE, url + '\\n');
  return next(url, context);
}
`);
  traceImport = join(directory, 'trace.mjs');
  await writeFile(traceImport, `import { register } from 'node:module';\nregister(${JSON.stringify(new URL(`file://${join(directory, 'hooks.mjs')}`).href)});\n`);
});

after(async () => {
  await rm(directory, { recursive: true, force: true });
});

/** The source modules (paths under src/) a process loaded. */
async function loadedSources(traceFile: string): Promise<string[]> {
  const lines = (await readFile(traceFile, 'utf8')).split('\n').filter((line) => line !== '');
  const marker = `${new URL(`file://${PROJECT_ROOT}/src/`).href}`;
  return lines.filter((url) => url.startsWith(marker)).map((url) => url.slice(marker.length));
}

function spawnTraced(args: readonly string[], traceFile: string) {
  return spawn(process.execPath, ['--import', 'tsx', '--import', traceImport, CLI, ...args], {
    cwd: PROJECT_ROOT,
    env: { ...process.env, TALUS_TEST_TRACE: traceFile, TALUS_ROOT_USER: ACCESS_KEY_ID, TALUS_ROOT_PASSWORD: SECRET_ACCESS_KEY },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
}

test('talus scan --help and talus users --help load neither the server nor the admin API', async () => {
  for (const [command, own] of [['scan', 'scan/cli.ts'], ['users', 'principals/cli.ts']] as const) {
    const traceFile = join(directory, `${command}.trace`);
    const child = spawnTraced([command, '--help'], traceFile);
    child.stdout.resume();
    child.stderr.resume();
    await new Promise((resolveExit) => child.once('exit', resolveExit));
    const loaded = await loadedSources(traceFile);
    assert.ok(loaded.includes(own), `${command}: the trace holds its own module (${loaded.join(', ')})`);
    for (const heavy of ['talus.ts', 'http/server.ts', 'admin/listener.ts', 'config/config.ts', 'cluster.ts']) {
      assert.ok(!loaded.includes(heavy), `talus ${command} --help loaded ${heavy}`);
    }
  }
});

test('the primary of --workers 2 does not load the S3 request stack nor the PostgreSQL client', async () => {
  const traceFile = join(directory, 'primary.trace');
  const port = await freePort();
  const child = spawnTraced(['server', join(directory, 'data'), '--port', String(port), '--address', '127.0.0.1', '--workers', '2', '--console-address', '127.0.0.1:0'], traceFile);
  let output = '';
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
  const exited = new Promise((resolveExit) => child.once('exit', resolveExit));
  try {
    await new Promise<void>((resolveReady, reject) => {
      const timer = setTimeout(() => reject(new Error(`not ready within ${START_TIMEOUT_MS} ms:\n${output}`)), START_TIMEOUT_MS);
      child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
        output += chunk;
        if (output.includes('Talus S3 server listening on') && output.includes('Admin API:')) {
          clearTimeout(timer);
          resolveReady();
        }
      });
      child.once('exit', (code) => reject(new Error(`exited with ${code}:\n${output}`)));
    });
    // Workers get their own execArgv (cluster.ts), without the hook: the trace is the primary's alone.
    const loaded = await loadedSources(traceFile);
    for (const needed of ['cluster.ts', 'admin/listener.ts', 'meta/sqlite/sqlite-metadata-store.ts']) {
      assert.ok(loaded.includes(needed), `the primary loads ${needed}`);
    }
    assert.ok(!loaded.includes('cluster-worker.ts'), 'the trace is the primary\'s');
    for (const unused of ['http/server.ts', 's3/operations.ts', 's3/object.ts', 'meta/postgres/shared-node.ts']) {
      assert.ok(!loaded.includes(unused), `the primary loaded ${unused}`);
    }
  } finally {
    child.kill('SIGTERM');
    await exited;
  }
});
