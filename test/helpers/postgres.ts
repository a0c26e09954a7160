/**
 * A private PostgreSQL for one test file: `initdb` (Debian's
 * /usr/lib/postgresql/15/bin, or TALUS_PG_BIN) as the postgres user into a
 * temporary directory, started on its own free port with its unix socket in
 * that directory, one database created; stopped and removed by stop().
 * Needs no running service. Tests skip with a message when the binaries (or
 * a postgres user to run them as root) are missing.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { appendFile, chmod, chown, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { freePort } from './process.ts';

const run = promisify(execFile);
const PG_BIN = process.env['TALUS_PG_BIN'] ?? '/usr/lib/postgresql/15/bin';
const START_TIMEOUT_MS = 30_000;
const DATABASE = 'talus';

export interface TestPostgres {
  /** postgres://… of the test database. */
  url: string;
  port: number;
  /** Stops the server (fast shutdown) and removes its directory. */
  stop(): Promise<void>;
}

/** Who runs PostgreSQL: it refuses to run as root, so as root the postgres user does (spawn's uid/gid). */
interface RunAs {
  uid: number;
  gid: number;
}

async function runAs(): Promise<RunAs | string> {
  if (process.getuid?.() !== 0) {
    const me = userInfo();
    return { uid: me.uid, gid: me.gid };
  }
  try {
    const { stdout } = await run('id', ['-u', 'postgres']);
    const { stdout: gid } = await run('id', ['-g', 'postgres']);
    return { uid: Number(stdout.trim()), gid: Number(gid.trim()) };
  } catch {
    return 'running as root and there is no postgres user to run PostgreSQL as';
  }
}

/** Why PostgreSQL tests cannot run here, or undefined when they can. */
export async function postgresUnavailable(): Promise<string | undefined> {
  if (!existsSync(join(PG_BIN, 'initdb')) || !existsSync(join(PG_BIN, 'postgres'))) return `no PostgreSQL binaries in ${PG_BIN} (apt-get install postgresql, or set TALUS_PG_BIN)`;
  const as = await runAs();
  return typeof as === 'string' ? as : undefined;
}

/** listenAddresses: besides 127.0.0.1 (e.g. a veth's address, for a node in a network namespace); clients on those subnets are trusted. */
export async function startTestPostgres(options: { listenAddresses?: readonly string[] } = {}): Promise<TestPostgres> {
  const as = await runAs();
  if (typeof as === 'string') throw new Error(as);
  const root = await mkdtemp(join(tmpdir(), 'talus-pg-'));
  // The postgres user must reach its directory under the temporary one.
  await chmod(root, 0o755);
  await chown(root, as.uid, as.gid);
  const dataDir = join(root, 'data');
  const exec = async (command: string, args: string[]): Promise<string> => {
    return (await run(join(PG_BIN, command), args, { cwd: root, uid: as.uid, gid: as.gid, env: { ...process.env, HOME: root } })).stdout;
  };
  let server: ChildProcess | undefined;
  const stop = async (): Promise<void> => {
    if (server !== undefined && server.exitCode === null && server.signalCode === null) {
      const exited = new Promise((resolve) => server!.once('exit', resolve));
      server.kill('SIGINT'); // fast shutdown: active transactions are rolled back
      await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, 10_000))]);
      if (server.exitCode === null && server.signalCode === null) server.kill('SIGKILL');
    }
    await rm(root, { recursive: true, force: true });
  };
  try {
    await exec('initdb', ['-D', dataDir, '-U', 'postgres', '-E', 'UTF8', '--locale=C', '--auth=trust', '--no-sync']);
    if (options.listenAddresses !== undefined) await appendFile(join(dataDir, 'pg_hba.conf'), 'host all all samenet trust\n');
    const port = await freePort();
    // fsync off: the tests kill Talus nodes, never PostgreSQL, and a loaded machine should not wait on its disk.
    server = spawn(join(PG_BIN, 'postgres'), [
      '-D', dataDir, '-p', String(port), '-k', root, '-c', `listen_addresses=${['127.0.0.1', ...(options.listenAddresses ?? [])].join(',')}`,
      '-c', 'fsync=off', '-c', 'full_page_writes=off', '-c', 'max_connections=200', '-c', 'shared_buffers=32MB',
    ], { cwd: root, uid: as.uid, gid: as.gid, env: { ...process.env, HOME: root }, stdio: ['ignore', 'ignore', 'pipe'] });
    let log = '';
    server.stderr?.on('data', (chunk: Buffer) => {
      log += chunk.toString();
      if (log.length > 64 * 1024) log = log.slice(-32 * 1024);
    });
    const deadline = Date.now() + START_TIMEOUT_MS;
    for (;;) {
      if (server.exitCode !== null) throw new Error(`postgres exited at start-up:\n${log}`);
      try {
        await exec('pg_isready', ['-h', root, '-p', String(port), '-U', 'postgres']);
        break;
      } catch {
        if (Date.now() > deadline) throw new Error(`postgres did not become ready within ${START_TIMEOUT_MS} ms:\n${log}`);
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    }
    await exec('createdb', ['-h', root, '-p', String(port), '-U', 'postgres', DATABASE]);
    return { url: `postgres://postgres@127.0.0.1:${port}/${DATABASE}`, port, stop };
  } catch (error) {
    await stop();
    throw error;
  }
}
