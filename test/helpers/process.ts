/**
 * Runs Talus as a child process (`node --import tsx src/cli.ts server ...`),
 * the way an operator would, so a test can kill it with SIGKILL mid-write and
 * start it again on the same data directory. Also small file-system helpers
 * for looking at the data directory from outside.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readdir } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ACCESS_KEY_ID, SECRET_ACCESS_KEY } from './talus.ts';

const ROOT = resolve(fileURLToPath(new URL('../..', import.meta.url)));
export const CLI = join(ROOT, 'src', 'cli.ts');
export const PROJECT_ROOT = ROOT;
const READY = /Talus S3 server listening on (http:\/\/\S+)/;
const START_TIMEOUT_MS = 30_000;
const STOP_TIMEOUT_MS = 40_000;

export interface ServerProcess {
  child: ChildProcess;
  url: string;
  port: number;
  dataDir: string;
  /** Everything the process wrote to stdout and stderr so far (for failure messages). */
  output(): string;
  /** Resolves with the exit code or signal once the process is gone. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** SIGKILL: no shutdown code runs. Resolves when the process is gone. */
  kill9(): Promise<void>;
  /** SIGTERM: the server finishes in-flight requests and closes its stores. Rejects if it does not exit cleanly in time. */
  stop(): Promise<void>;
}

/** A TCP port that was free a moment ago on 127.0.0.1. */
export function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const probe = createServer();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const address = probe.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      probe.close(() => resolvePort(port));
    });
  });
}

/**
 * Starts the server on `port` (a free one if not given) and resolves once it
 * prints its ready line (`--workers 1` unless extraArgs name --workers or
 * `workersDefault` asks for the server's default). Rejects, with the process output, if it exits or
 * does not become ready within 30 s.
 */
export async function startServerProcess(dataDir: string, port?: number, extraArgs: readonly string[] = [], options: { workersDefault?: boolean } = {}): Promise<ServerProcess> {
  const listenPort = port ?? (await freePort());
  // One process unless the test asks for workers (the server's own default is one per core): tests not about workers stay as cheap as they were.
  const workers = extraArgs.includes('--workers') || options.workersDefault === true ? [] : ['--workers', '1'];
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', CLI, 'server', dataDir, '--port', String(listenPort), '--address', '127.0.0.1', ...workers, ...extraArgs],
    {
      cwd: ROOT,
      env: { ...process.env, TALUS_ROOT_USER: ACCESS_KEY_ID, TALUS_ROOT_PASSWORD: SECRET_ACCESS_KEY },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let output = '';
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolveExit) => {
    child.once('exit', (code, signal) => resolveExit({ code, signal }));
  });
  const url = await new Promise<string>((resolveReady, reject) => {
    let stdout = '';
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`server did not become ready within ${START_TIMEOUT_MS} ms; output:\n${output}`));
    }, START_TIMEOUT_MS);
    child.stdout!.setEncoding('utf8');
    child.stderr!.setEncoding('utf8');
    child.stdout!.on('data', (chunk: string) => {
      output += chunk;
      stdout += chunk;
      const match = READY.exec(stdout);
      if (match !== null) {
        clearTimeout(timer);
        resolveReady(match[1]!);
      }
    });
    child.stderr!.on('data', (chunk: string) => {
      output += chunk;
    });
    void exited.then(({ code, signal }) => {
      clearTimeout(timer);
      reject(new Error(`server exited before it was ready (code ${code}, signal ${signal}); output:\n${output}`));
    });
  });
  return {
    child,
    url,
    port: Number(new URL(url).port),
    dataDir,
    output: () => output,
    exited,
    async kill9() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await withTimeout(exited, 10_000, 'server did not die after SIGKILL');
    },
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) {
        throw new Error(`server had already exited (code ${child.exitCode}, signal ${child.signalCode}); output:\n${output}`);
      }
      child.kill('SIGTERM');
      let result: { code: number | null; signal: NodeJS.Signals | null };
      try {
        result = await withTimeout(exited, STOP_TIMEOUT_MS, 'server did not exit after SIGTERM');
      } catch (error) {
        child.kill('SIGKILL');
        throw error;
      }
      if (result.code !== 0) throw new Error(`server exited with code ${result.code}, signal ${result.signal} after SIGTERM; output:\n${output}`);
    },
  };
}

export async function withTimeout<T>(promise: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`${message} (${ms} ms)`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** Every committed blob file under `<dataDir>/blobs/<xx>/`. */
export async function listBlobFiles(dataDir: string): Promise<string[]> {
  const root = join(dataDir, 'blobs');
  const files: string[] = [];
  for (const fanout of await readdir(root, { withFileTypes: true })) {
    // Only the fanout directories: partial/ holds uploads in flight.
    if (!fanout.isDirectory() || !/^[0-9a-f]{2}$/.test(fanout.name)) continue;
    for (const entry of await readdir(join(root, fanout.name), { withFileTypes: true })) {
      files.push(join(fanout.name, entry.name));
    }
  }
  return files.sort();
}

export async function countBlobFiles(dataDir: string): Promise<number> {
  return (await listBlobFiles(dataDir)).length;
}
