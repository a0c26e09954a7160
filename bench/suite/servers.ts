/**
 * The servers under test, each a child process so /proc can tell its CPU and
 * memory apart from the load generator's: Talus as an operator starts it
 * (`node bin/talus.js server DIR`), and the baselines from bench/servers/.
 * Every server gets a fresh temporary directory, waits for its ready line,
 * and is stopped (SIGTERM, then SIGKILL) with its directory removed — also
 * when the suite fails or is interrupted (cleanup.ts).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { BareHttpConfig } from '../servers/bare-http.ts';
import type { BytesCeilingConfig } from '../servers/bytes-ceiling.ts';
import type { S3rverConfig } from '../servers/s3rver.ts';
import { isShuttingDown, registerCleanup, temporaryDirectory } from './cleanup.ts';

export const ROOT = resolve(fileURLToPath(new URL('../..', import.meta.url)));

export type ServerKind = 'talus' | 'bare-http' | 'bytes-fsync' | 's3rver';

export interface Credentials {
  accessKeyId: string;
  secretAccessKey: string;
}

export const TALUS_CREDENTIALS: Credentials = { accessKeyId: 'BENCHACCESSKEY', secretAccessKey: 'bench-secret-key-0123456789' };
export const S3RVER_CREDENTIALS: Credentials = { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' };
/** The baselines do not check signatures; any key will do. */
const BASELINE_CREDENTIALS: Credentials = TALUS_CREDENTIALS;

export const SERVER_LABELS: Record<ServerKind, string> = {
  talus: 'Talus',
  'bare-http': 'bare node:http',
  'bytes-fsync': 'bytes ceiling',
  s3rver: 's3rver',
};

const START_TIMEOUT_MS = 60_000;
const STOP_TIMEOUT_MS = 15_000;
/** How much of a server's output is kept for error messages. */
const OUTPUT_KEPT_BYTES = 16 * 1024;
const ERROR_LINES_KEPT = 10;
const READY = /listening on (http:\/\/[^\s/]+)/;

export interface RunningServer {
  readonly kind: ServerKind;
  /** For tables: 'Talus', 'Talus, 2 workers', 'bare node:http'… */
  readonly label: string;
  readonly endpoint: string;
  readonly credentials: Credentials;
  readonly pid: number;
  /** Processes asked for (--workers or the cluster size). */
  readonly workers: number;
  /** Temporary directory of the server (data dir for Talus and s3rver). */
  readonly directory: string;
  /** The last output lines (stdout and stderr), for failure messages. */
  output(): string;
  /** Lines the server wrote to stderr (Talus logs errors there as JSON lines): how many, and the first few. */
  stderrLines(): { count: number; first: string[] };
  /** Runs of setup done on this server (see setup.ts), so each is done once. */
  readonly prepared: Map<string, Promise<unknown>>;
  stop(): Promise<void>;
}

/** extra: more server arguments (--config, --meta…) and the table label they deserve (the scale-out workloads); root: another checkout's Talus, nodeArgs: options of node itself (bench/ab.ts). */

export async function startTalus(
  workers: number,
  extra: { args?: readonly string[]; label?: string; env?: Record<string, string>; root?: string; nodeArgs?: readonly string[] } = {},
): Promise<RunningServer> {
  const directory = await temporaryDirectory('talus-bench-');
  try {
    const port = await freePort();
    const args = [...(extra.nodeArgs ?? []), join(extra.root ?? ROOT, 'bin', 'talus.js'), 'server', join(directory.path, 'data'), '--port', String(port), '--address', '127.0.0.1', ...(extra.args ?? [])];
    // Always explicit: the server's own default may be several workers (`--workers auto`).
    args.push('--workers', String(workers));
    const env = { ...process.env, ...extra.env, TALUS_ROOT_USER: TALUS_CREDENTIALS.accessKeyId, TALUS_ROOT_PASSWORD: TALUS_CREDENTIALS.secretAccessKey };
    const label = extra.label ?? (workers > 1 ? `Talus, ${workers} workers` : 'Talus');
    return await launch({ kind: 'talus', label, args, env, credentials: TALUS_CREDENTIALS, workers, directory, watchStdin: false });
  } catch (error) {
    await directory.remove();
    throw error;
  }
}

export type BaselineSettings =
  | { kind: 'bare-http'; workers: number; responses: BareHttpConfig['responses'] }
  | { kind: 'bytes-fsync'; workers: number; put: BytesCeilingConfig['put']; get: BytesCeilingConfig['get']; getFileBytes: number }
  | { kind: 's3rver' };

export async function startBaseline(settings: BaselineSettings): Promise<RunningServer> {
  const directory = await temporaryDirectory(`talus-bench-${settings.kind}-`);
  try {
    const workers = settings.kind === 's3rver' ? 1 : settings.workers;
    const common = { port: workers > 1 ? await freePort() : 0, address: '127.0.0.1', workers };
    let config: BareHttpConfig | BytesCeilingConfig | S3rverConfig;
    if (settings.kind === 'bare-http') config = { ...common, responses: settings.responses };
    else if (settings.kind === 'bytes-fsync') config = { ...common, directory: directory.path, put: settings.put, get: settings.get, getFileBytes: settings.getFileBytes };
    else config = { ...common, directory: directory.path };
    const configPath = join(directory.path, 'config.json');
    await writeFile(configPath, JSON.stringify(config));
    const script = { 'bare-http': 'bare-http.ts', 'bytes-fsync': 'bytes-ceiling.ts', s3rver: 's3rver.ts' }[settings.kind];
    const args = ['--import', 'tsx', join(ROOT, 'bench', 'servers', script), configPath];
    // s3rver encrypts continuation tokens with DES, which OpenSSL 3 only offers through its legacy provider:
    // without it every truncated ListObjectsV2 page is a 500.
    if (settings.kind === 's3rver') args.unshift('--openssl-legacy-provider');
    const label = workers > 1 ? `${SERVER_LABELS[settings.kind]}, ${workers} processes` : SERVER_LABELS[settings.kind];
    const credentials = settings.kind === 's3rver' ? S3RVER_CREDENTIALS : BASELINE_CREDENTIALS;
    return await launch({ kind: settings.kind, label, args, env: process.env, credentials, workers, directory, watchStdin: true });
  } catch (error) {
    await directory.remove();
    throw error;
  }
}

interface LaunchOptions {
  kind: ServerKind;
  label: string;
  args: string[];
  env: NodeJS.ProcessEnv;
  credentials: Credentials;
  workers: number;
  directory: { path: string; remove: () => Promise<void> };
  /** Our scripts exit when their stdin closes (the suite died); Talus is not ours to change. */
  watchStdin: boolean;
}

async function launch(options: LaunchOptions): Promise<RunningServer> {
  if (isShuttingDown()) throw new Error(`not starting ${options.label}: the suite is stopping`);
  const startMs = performance.now();
  const child = spawn(process.execPath, options.args, {
    cwd: ROOT,
    env: options.env,
    stdio: [options.watchStdin ? 'pipe' : 'ignore', 'pipe', 'pipe'],
  });
  const log = new OutputLog();
  child.stdout!.setEncoding('utf8');
  child.stderr!.setEncoding('utf8');
  child.stderr!.on('data', (chunk: string) => log.add(chunk, true));
  const exited = new Promise<string>((resolveExit) => child.once('exit', (code, signal) => resolveExit(`exited with ${code ?? signal}`)));
  const stop = (): Promise<void> => stopChild(child, exited);
  const unregister = registerCleanup(`${options.label} (pid ${child.pid})`, async () => {
    await stop();
    await options.directory.remove();
  });
  try {
    const endpoint = await waitForReady(child, log, exited);
    process.stderr.write(`  started ${options.label} (pid ${child.pid}) in ${((performance.now() - startMs) / 1000).toFixed(1)} s\n`);
    return {
      kind: options.kind,
      label: options.label,
      endpoint,
      credentials: options.credentials,
      pid: child.pid!,
      workers: options.workers,
      directory: options.directory.path,
      output: () => log.text(),
      stderrLines: () => log.stderrLines(),
      prepared: new Map(),
      stop: async () => {
        unregister();
        const stopMs = performance.now();
        await stop();
        await options.directory.remove();
        process.stderr.write(`  stopped ${options.label} in ${((performance.now() - stopMs) / 1000).toFixed(1)} s\n`);
      },
    };
  } catch (error) {
    unregister();
    await stop();
    throw new Error(`${options.label} did not start: ${error instanceof Error ? error.message : String(error)}\n${log.text()}`);
  }
}

function waitForReady(child: ChildProcess, log: OutputLog, exited: Promise<string>): Promise<string> {
  return new Promise<string>((resolveReady, reject) => {
    let stdout = '';
    let ready = false;
    const timer = setTimeout(() => reject(new Error(`no ready line within ${START_TIMEOUT_MS} ms`)), START_TIMEOUT_MS);
    child.stdout!.on('data', (chunk: string) => {
      log.add(chunk, false);
      if (ready) return;
      stdout = (stdout + chunk).slice(-OUTPUT_KEPT_BYTES);
      const match = READY.exec(stdout);
      if (match === null) return;
      ready = true;
      clearTimeout(timer);
      resolveReady(match[1]!.replace('0.0.0.0', '127.0.0.1'));
    });
    void exited.then((how) => {
      clearTimeout(timer);
      reject(new Error(how));
    });
  });
}

async function stopChild(child: ChildProcess, exited: Promise<string>): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill('SIGTERM');
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<'late'>((resolveLate) => {
    timer = setTimeout(() => resolveLate('late'), STOP_TIMEOUT_MS);
  });
  const outcome = await Promise.race([exited, late]);
  clearTimeout(timer);
  if (outcome === 'late') {
    child.kill('SIGKILL');
    await exited;
  }
}

/** Output kept bounded: the tail, and the first lines written to stderr. */
class OutputLog {
  #tail = '';
  #errorCount = 0;
  readonly #firstErrors: string[] = [];
  #partial = '';

  add(chunk: string, fromStderr: boolean): void {
    this.#tail = (this.#tail + chunk).slice(-OUTPUT_KEPT_BYTES);
    if (!fromStderr) return;
    const lines = (this.#partial + chunk).split('\n');
    this.#partial = lines.pop()!.slice(-OUTPUT_KEPT_BYTES);
    for (const line of lines) {
      if (line.trim() === '') continue;
      this.#errorCount++;
      if (this.#firstErrors.length < ERROR_LINES_KEPT) this.#firstErrors.push(line.slice(0, 500));
    }
  }

  text(): string {
    return this.#tail;
  }

  stderrLines(): { count: number; first: string[] } {
    return { count: this.#errorCount, first: [...this.#firstErrors] };
  }
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
