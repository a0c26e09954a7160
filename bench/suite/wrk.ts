/**
 * wrk (the Debian package, 4.1) as the driver for the small-object ceilings:
 * native, so at 64 connections the server, not the client, is the limit.
 * It sends presigned URLs, cycling over a list of them (several keys; each
 * thread starts at a different place), with a fixed body for PUT.
 *
 * wrk 4.1 cannot parse responses to HEAD (it waits for the announced body),
 * so HEAD goes through the suite's load generator instead.
 */
import { execFile } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { assert } from '../../src/util/assert.ts';

const run = promisify(execFile);

/** wrk takes whole seconds. */
export const WRK_SECONDS_MIN = 1;
export const WRK_SECONDS_MAX = 3600;
const WRK_OUTPUT_BYTES_MAX = 1024 * 1024;
/** Slower responses count as timeouts (errors); far above any p99 we expect. */
const WRK_TIMEOUT_SECONDS = 10;
const URLS_MAX = 10_000;
/** Scripts written by this process, for their names. */
let scriptsWritten = 0;

export interface WrkOptions {
  /** Presigned URLs, all on one origin. */
  urls: string[];
  method: 'GET' | 'PUT';
  /** PUT body size (bytes of 'x'). */
  bodyBytes?: number;
  /** Object bytes per successful request, for MiB/s. */
  objectBytes: number;
  connections: number;
  threads: number;
  seconds: number;
  /** Where the Lua script is written. */
  scriptDirectory: string;
  /** Runs wrk under `taskset -c CPUS` (side-by-side runs, placement.ts); anywhere when absent. */
  cpus?: string;
}

export interface WrkResult {
  /** Successful (2xx/3xx) responses. */
  operations: number;
  errors: number;
  errorDetail: string[];
  durationMs: number;
  opsPerSecond: number;
  mibPerSecond: number;
  latencyMs: { p50: number; p99: number };
}

export class WrkMissingError extends Error {
  override name = 'WrkMissingError';
}

/** Fails with a clear message when wrk is not installed. */
export async function checkWrk(): Promise<string> {
  try {
    const { stdout, stderr } = await run('wrk', ['--version'], { maxBuffer: WRK_OUTPUT_BYTES_MAX }).catch((error: { stdout?: string; stderr?: string; code?: unknown }) => {
      // wrk --version prints its banner and exits 1.
      if (typeof error.code === 'number') return { stdout: error.stdout ?? '', stderr: error.stderr ?? '' };
      throw error;
    });
    // 'wrk debian/4.1.0-3+b2 [epoll] Copyright (C) 2012 Will Glozer' → 'wrk debian/4.1.0-3+b2 [epoll]'
    return `${stdout}${stderr}`.split('\n')[0]!.replace(/\s*Copyright.*$/, '').trim();
  } catch {
    throw new WrkMissingError('wrk is not installed: the small-object ceilings need it (Debian/Ubuntu: apt-get install wrk)');
  }
}

export async function runWrk(options: WrkOptions): Promise<WrkResult> {
  assert(options.urls.length > 0 && options.urls.length <= URLS_MAX, 'wrk: 1 to URLS_MAX URLs');
  assert(Number.isInteger(options.seconds) && options.seconds >= WRK_SECONDS_MIN && options.seconds <= WRK_SECONDS_MAX, 'wrk: whole seconds');
  const origin = new URL(options.urls[0]!).origin;
  for (const url of options.urls) assert(new URL(url).origin === origin, 'wrk: one origin');
  // Numbered: two runs started in the same millisecond (side by side, observability.ts) each need their own script, with their own server's URLs.
  const script = join(options.scriptDirectory, `wrk-${options.method.toLowerCase()}-${process.pid}-${Date.now()}-${++scriptsWritten}.lua`);
  await writeFile(script, luaScript(options));
  const wrkArgs = [`-t${options.threads}`, `-c${options.connections}`, `-d${options.seconds}s`, `--timeout`, `${WRK_TIMEOUT_SECONDS}s`, '--latency', '-s', script, options.urls[0]!];
  const { stdout } = options.cpus === undefined
    ? await run('wrk', wrkArgs, { maxBuffer: WRK_OUTPUT_BYTES_MAX })
    : await run('taskset', ['--cpu-list', options.cpus, 'wrk', ...wrkArgs], { maxBuffer: WRK_OUTPUT_BYTES_MAX });
  return parseWrkOutput(stdout, options.objectBytes);
}

function luaScript(options: WrkOptions): string {
  const paths = options.urls.map((url) => {
    const parsed = new URL(url);
    return JSON.stringify(`${parsed.pathname}${parsed.search}`);
  });
  const lines = [
    `wrk.method = "${options.method}"`,
    `local paths = { ${paths.join(', ')} }`,
    'local threads = 0',
    'function setup(thread) thread:set("thread_index", threads); threads = threads + 1 end',
    'local position = 0',
    'function init(args) position = ((thread_index or 0) * 7919) % #paths end',
    'function request()',
    '  position = position % #paths + 1',
    '  return wrk.format(nil, paths[position])',
    'end',
  ];
  if (options.bodyBytes !== undefined) {
    lines.push(`wrk.body = string.rep("x", ${options.bodyBytes})`, `wrk.headers["Content-Type"] = "application/octet-stream"`);
  }
  return `${lines.join('\n')}\n`;
}

const TIME_UNIT_MS: Record<string, number> = { us: 0.001, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

function timeMs(value: string, unit: string): number {
  const factor = TIME_UNIT_MS[unit];
  return factor === undefined ? Number.NaN : Number(value) * factor;
}

export function parseWrkOutput(stdout: string, objectBytes: number): WrkResult {
  const totals = /(\d+) requests in ([\d.]+)(us|ms|s|m|h)/.exec(stdout);
  if (totals === null) throw new Error(`wrk output not understood:\n${stdout}`);
  const requests = Number(totals[1]);
  const durationMs = timeMs(totals[2]!, totals[3]!);
  const latency = (label: string): number => {
    const match = new RegExp(`^\\s*${label}%\\s+([\\d.]+)(us|ms|s|m)`, 'm').exec(stdout);
    return match === null ? Number.NaN : timeMs(match[1]!, match[2]!);
  };
  const non2xx = Number(/Non-2xx or 3xx responses: (\d+)/.exec(stdout)?.[1] ?? 0);
  const socket = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(stdout);
  const socketErrors = socket === null ? 0 : Number(socket[1]) + Number(socket[2]) + Number(socket[3]) + Number(socket[4]);
  const errorDetail: string[] = [];
  if (non2xx > 0) errorDetail.push(`${non2xx} non-2xx/3xx responses`);
  if (socket !== null && socketErrors > 0) errorDetail.push(socket[0]);
  const operations = requests - non2xx;
  const seconds = durationMs / 1000;
  return {
    operations,
    errors: non2xx + socketErrors,
    errorDetail,
    durationMs,
    opsPerSecond: seconds > 0 ? operations / seconds : 0,
    mibPerSecond: seconds > 0 ? (operations * objectBytes) / (1024 * 1024) / seconds : 0,
    latencyMs: { p50: latency('50'), p99: latency('99') },
  };
}
