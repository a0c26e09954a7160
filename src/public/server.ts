/**
 * `talus/server`: a real Talus started in-process, for test suites (node:test,
 * Vitest, Jest) that want an S3 endpoint without a container or a mock. It is
 * the server `talus server` runs — `startTalus` with the same stores, engine
 * and HTTP front — on a loopback port of your choosing (0: an ephemeral one).
 */
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startTalus } from '../talus.ts';
import { silentLogger, type Logger } from '../util/logger.ts';

export type { Logger };

export interface StartServerOptions {
  /** Data directory, kept after close (created if missing). Absent: a temporary one (see `memory`). */
  dir?: string;
  /**
   * A throw-away store, removed on close: a fresh directory on a RAM-backed
   * tmpfs (/dev/shm) when the machine has one, else under os.tmpdir(). The
   * default when `dir` is absent; cannot be combined with `dir`.
   */
  memory?: boolean;
  /** Default 0: an ephemeral port, read it back from `endpoint`. */
  port?: number;
  /** Default 127.0.0.1: reachable from this machine only. */
  address?: string;
  /** Default us-east-1. */
  region?: string;
  /** Root credentials; generated (random) when absent, or the data directory's stored ones for an existing `dir`. */
  accessKeyId?: string;
  secretAccessKey?: string;
  /** Default: silent (a test suite's output stays its own). `jsonLogger()` logs as the CLI does. */
  logger?: Logger;
}

export interface TalusServer {
  /** 'http://127.0.0.1:<port>': give it to any S3 client with path-style addressing. */
  endpoint: string;
  port: number;
  region: string;
  accessKeyId: string;
  secretAccessKey: string;
  /** The data directory (a temporary one in memory mode, gone after close). */
  dir: string;
  /** Lets in-flight requests finish, closes the stores, and removes a temporary directory. Idempotent. */
  close(): Promise<void>;
}

/** Where memory mode puts its directory: tmpfs keeps every fsync a memory copy. */
const RAM_DIRECTORY = '/dev/shm';

export async function startServer(options: StartServerOptions = {}): Promise<TalusServer> {
  if (options.dir !== undefined && options.memory === true) throw new TypeError('startServer: give either dir or memory: true, not both');
  if ((options.accessKeyId === undefined) !== (options.secretAccessKey === undefined)) {
    throw new TypeError('startServer: give both accessKeyId and secretAccessKey, or neither');
  }
  const temporary = options.dir === undefined;
  const dir = options.dir ?? (await mkdtemp(join(await temporaryParent(), 'talus-server-')));
  const region = options.region ?? 'us-east-1';
  try {
    const talus = await startTalus({
      dataDir: dir,
      port: options.port ?? 0,
      address: options.address ?? '127.0.0.1',
      region,
      logger: options.logger ?? silentLogger,
      ...(options.accessKeyId === undefined ? {} : { rootAccessKeyId: options.accessKeyId, rootSecretAccessKey: options.secretAccessKey }),
    });
    let closing: Promise<void> | undefined;
    return {
      endpoint: talus.url,
      port: talus.port,
      region,
      accessKeyId: talus.credentials.accessKeyId,
      secretAccessKey: talus.credentials.secretAccessKey,
      dir,
      close: () =>
        (closing ??= talus.close().finally(async () => {
          if (temporary) await rm(dir, { recursive: true, force: true });
        })),
    };
  } catch (error) {
    if (temporary) await rm(dir, { recursive: true, force: true });
    throw error;
  }
}

async function temporaryParent(): Promise<string> {
  try {
    if ((await stat(RAM_DIRECTORY)).isDirectory()) return RAM_DIRECTORY;
  } catch {
    // No tmpfs here (macOS, Windows): the OS's temporary directory.
  }
  return tmpdir();
}
