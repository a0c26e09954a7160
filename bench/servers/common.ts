/**
 * What the baseline servers share: their configuration (a JSON file written
 * by the suite, since captured response bodies can exceed the size of one
 * command-line argument), the ready line the suite waits for, the cluster of
 * processes when the suite runs Talus with several, and exiting when the
 * suite goes away.
 */
import cluster from 'node:cluster';
import { readFileSync } from 'node:fs';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';

/** The line the suite waits for on stdout (bench/suite/servers.ts parses it). */
export const READY_PREFIX = 'listening on ';
/** More processes than this is a mistake, not a benchmark on this kind of machine. */
export const WORKERS_MAX = 64;

/**
 * PUT bytes the bytes ceiling (bytes-ceiling.ts) keeps on disk, per
 * process; beyond it, it deletes its oldest files. Here so the suite can
 * count it in the free space a 64 MiB PUT row needs (large-objects.ts).
 * Not unlinking each file at once is what makes the ceiling fair: a file removed right after its fsync frees its page-cache
 * pages, and the next PUT's writes land in those very pages, already mapped.
 * Talus keeps every object, so its writes take fresh pages, and on this
 * kind of VM (free pages reported to the host, virtio-balloon
 * page_reporting) a fresh page faults on the host on first touch: 64 MiB
 * written into kept files cost 150-180 ms of CPU, into files unlinked after
 * each write 23-31 ms (/tmp measurement in docs/PERFORMANCE.md, "64 MiB
 * PUT, round 3"). 8 GiB outlasts a quick run's 8 s of writing per side at
 * ~500 MiB/s, not a full run's 36 s (the row's note says so), and still
 * bounds the disk a long run can fill.
 */
export const BYTES_CEILING_KEPT_BYTES_MAX = 8 * 1024 * 1024 * 1024;

/** A response to replay: what Talus answered to the same request. */
export interface CapturedResponse {
  status: number;
  headers: Record<string, string>;
  /** The body, base64; absent for none. */
  bodyBase64?: string;
}

export interface BaselineConfig {
  port: number;
  address: string;
  /** Processes answering on the port: 1, or N through node:cluster. */
  workers: number;
}

export function readConfig<T extends BaselineConfig>(): T {
  const path = process.argv[2];
  if (path === undefined) throw new Error('usage: node --import tsx bench/servers/<server>.ts CONFIG.json');
  const config = JSON.parse(readFileSync(path, 'utf8')) as T;
  if (!Number.isInteger(config.port) || config.port < 0 || config.port > 65535) throw new Error(`bad port ${config.port}`);
  if (!Number.isInteger(config.workers) || config.workers < 1 || config.workers > WORKERS_MAX) throw new Error(`bad workers ${config.workers}`);
  return config;
}

/**
 * Runs `listen` in this process (one worker) or in `workers` forked
 * processes sharing the port, and prints the ready line once all listen.
 * `setUp` runs once before (in the primary of a cluster, which does
 * nothing else; its workers exit with it).
 */
export function serve(config: BaselineConfig, listen: () => Server, setUp: () => Promise<void> = async () => undefined): void {
  exitWithParent();
  if (config.workers === 1) {
    void setUp().then(() => {
      const server = listen();
      server.listen(config.port, config.address, () => announce(server.address() as AddressInfo));
    }, fail);
    return;
  }
  if (cluster.isPrimary) {
    void setUp().then(() => forkWorkers(config.workers), fail);
    return;
  }
  // A worker: the primary shares one listening socket among all of them.
  listen().listen(config.port, config.address);
}

function forkWorkers(workers: number): void {
  let listening = 0;
  cluster.on('listening', (_worker, address) => {
    listening++;
    if (listening === workers) announce({ address: address.address ?? '127.0.0.1', port: address.port, family: 'IPv4' });
  });
  cluster.on('exit', (worker, code, signal) => {
    if (code !== 0 && signal !== 'SIGTERM') fail(new Error(`worker ${worker.process.pid} exited (${code ?? signal})`));
  });
  for (let index = 0; index < workers; index++) cluster.fork();
  const stop = (): void => {
    for (const worker of Object.values(cluster.workers ?? {})) worker?.process.kill('SIGTERM');
    process.exit(0);
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}

export function announce(address: AddressInfo): void {
  process.stdout.write(`${READY_PREFIX}http://${address.address}:${address.port}\n`);
}

/** The suite holds our stdin open; when it ends (the suite exited, even by SIGKILL), so do we. */
export function exitWithParent(): void {
  if (!cluster.isPrimary) return; // workers exit when the primary's IPC channel closes
  process.stdin.on('end', () => process.exit(0));
  process.stdin.on('error', () => process.exit(0));
  process.stdin.resume();
}

export function fail(error: unknown): never {
  process.stderr.write(`${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exit(1);
}
