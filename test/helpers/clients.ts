/**
 * Helpers for driving real third-party S3 clients (AWS CLI, rclone, s3cmd,
 * curl) against a Talus test server: a child-process runner with a hard
 * timeout, an isolated environment (temporary HOME, explicit credentials,
 * no inherited AWS_* / RCLONE_* / proxy settings), per-client configuration,
 * and file-tree fixtures with byte-exact comparison.
 */
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { dirname, join, relative, sep } from 'node:path';
import { ACCESS_KEY_ID, SECRET_ACCESS_KEY } from './talus.ts';

/** Debian's AWS CLI, by absolute path: a pyenv shim may shadow it on PATH. */
export const AWS = '/usr/bin/aws';
export const RCLONE = '/usr/bin/rclone';
export const S3CMD = '/usr/bin/s3cmd';
export const CURL = '/usr/bin/curl';

/** Hard limit for one client invocation: a hung client fails its test instead of hanging the run. */
export const CLIENT_TIMEOUT_MS = 120_000;

export interface RunResult {
  command: string;
  /** Exit code; null when the process was killed (e.g. by the timeout). */
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
}

/** Runs a program without a shell; resolves whatever the exit code (use `ok` to require success). */
export function run(file: string, args: readonly string[], env: NodeJS.ProcessEnv, options: { timeoutMs?: number; cwd?: string } = {}): Promise<RunResult> {
  const command = [file, ...args].map((part) => (/^[\w@%+=:,./-]+$/.test(part) ? part : `'${part.replaceAll("'", "'\\''")}'`)).join(' ');
  return new Promise((resolveRun) => {
    execFile(
      file,
      [...args],
      { env, cwd: options.cwd, timeout: options.timeoutMs ?? CLIENT_TIMEOUT_MS, killSignal: 'SIGKILL', maxBuffer: 64 * 1024 * 1024, encoding: 'utf8' },
      (error, stdout, stderr) => {
        const failure = error as (NodeJS.ErrnoException & { code?: number | string; killed?: boolean; signal?: NodeJS.Signals | null }) | null;
        const code = failure === null ? 0 : typeof failure.code === 'number' ? failure.code : null;
        if (failure !== null && typeof failure.code === 'string') stderr += `\n[spawn error: ${failure.code}: ${failure.message}]`;
        resolveRun({ command, code, signal: failure?.signal ?? null, stdout, stderr, timedOut: failure?.killed === true && code === null });
      },
    );
  });
}

export function describeRun(result: RunResult): string {
  const how = result.timedOut ? 'timed out and was killed' : result.code === null ? `was killed by ${result.signal}` : `exited with ${result.code}`;
  return `\`${result.command}\` ${how}\n--- stdout ---\n${result.stdout.slice(-4000)}\n--- stderr ---\n${result.stderr.slice(-4000)}`;
}

/** Throws (an assertion-style error with the client's output) unless the command exited 0. */
export function ok(result: RunResult): RunResult {
  if (result.code !== 0) throw new Error(describeRun(result));
  return result;
}

/**
 * The environment every client runs in: the parent's PATH and locale, a
 * temporary HOME, the test credentials, and nothing else that could steer a
 * client (AWS_* such as AWS_CA_BUNDLE, which breaks rclone; RCLONE_*;
 * proxies; S3CMD_*).
 */
export function clientEnv(home: string, extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [name, value] of Object.entries(process.env)) {
    if (/^(AWS_|RCLONE_|S3CMD|PYTHON(PATH|HOME)$)/i.test(name)) continue;
    if (/^(https?|all|no)_proxy$/i.test(name)) continue;
    env[name] = value;
  }
  Object.assign(env, {
    HOME: home,
    LC_ALL: 'C.UTF-8',
    LANG: 'C.UTF-8',
    AWS_ACCESS_KEY_ID: ACCESS_KEY_ID,
    AWS_SECRET_ACCESS_KEY: SECRET_ACCESS_KEY,
    AWS_DEFAULT_REGION: 'us-east-1',
    AWS_REGION: 'us-east-1',
    AWS_EC2_METADATA_DISABLED: 'true',
    AWS_CONFIG_FILE: join(home, '.aws', 'config'),
    AWS_SHARED_CREDENTIALS_FILE: join(home, '.aws', 'credentials'),
    AWS_PAGER: '',
    NO_PROXY: '*',
    no_proxy: '*',
    ...extra,
  });
  return env;
}

/** ~/.aws/config inside the temporary HOME: path-style addressing, no pager. */
export async function writeAwsConfig(home: string): Promise<void> {
  await mkdir(join(home, '.aws'), { recursive: true });
  await writeFile(join(home, '.aws', 'config'), '[default]\nregion = us-east-1\noutput = json\ns3 =\n  addressing_style = path\n');
  await writeFile(join(home, '.aws', 'credentials'), '');
}

/** rclone remote `talus:` configured entirely through environment variables. */
export function rcloneEnv(home: string, endpoint: string): NodeJS.ProcessEnv {
  return clientEnv(home, {
    RCLONE_CONFIG: join(home, 'rclone-does-not-exist.conf'),
    RCLONE_CONFIG_TALUS_TYPE: 's3',
    RCLONE_CONFIG_TALUS_PROVIDER: 'Other',
    RCLONE_CONFIG_TALUS_ENDPOINT: endpoint,
    RCLONE_CONFIG_TALUS_REGION: 'us-east-1',
    RCLONE_CONFIG_TALUS_ACCESS_KEY_ID: ACCESS_KEY_ID,
    RCLONE_CONFIG_TALUS_SECRET_ACCESS_KEY: SECRET_ACCESS_KEY,
    RCLONE_CONFIG_TALUS_FORCE_PATH_STYLE: 'true',
  });
}

/** An s3cmd config file for a path-style, plain-HTTP, SigV4 endpoint; returns its path. */
export async function writeS3cmdConfig(directory: string, hostPort: string): Promise<string> {
  const path = join(directory, 's3cmd.cfg');
  await writeFile(
    path,
    [
      '[default]',
      `access_key = ${ACCESS_KEY_ID}`,
      `secret_key = ${SECRET_ACCESS_KEY}`,
      `host_base = ${hostPort}`,
      `host_bucket = ${hostPort}`,
      'bucket_location = us-east-1',
      'use_https = False',
      'check_ssl_certificate = False',
      'signature_v2 = False',
      'multipart_chunk_size_mb = 5',
      'progress_meter = False',
      'guess_mime_type = True',
      '',
    ].join('\n'),
  );
  return path;
}

export function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

export async function sha256File(path: string): Promise<string> {
  return sha256(await readFile(path));
}

/**
 * Relative paths (always '/'-separated) of a directory tree's regular files,
 * each with its size and SHA-256.
 */
export async function hashTree(root: string): Promise<Map<string, { size: number; sha256: string }>> {
  const result = new Map<string, { size: number; sha256: string }>();
  async function walk(directory: string): Promise<void> {
    for (const entry of await readdir(directory, { withFileTypes: true })) {
      const full = join(directory, entry.name);
      if (entry.isDirectory()) await walk(full);
      else if (entry.isFile()) {
        const data = await readFile(full);
        result.set(relative(root, full).split(sep).join('/'), { size: data.length, sha256: sha256(data) });
      }
    }
  }
  await walk(root);
  return new Map([...result.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

/**
 * Relative paths of the sync fixture: nested directories and names with
 * spaces, '+', unicode (NFC), and other characters that need URL encoding.
 */
export const TREE_FILES: readonly string[] = [
  'a.txt',
  'with space.txt',
  'plus+sign.bin',
  'plus+and space+.txt',
  'ünïcødé-файл.txt',
  '日本語/ファイル 名.txt',
  'emoji 🎉 party.txt',
  'empty.txt',
  'medium.bin',
  'nested/deeper/deepest/leaf.dat',
  'nested/x y/z+w.txt',
  'nested/a/b/c/d/e.txt',
  'dir with space/inner file.txt',
  'UPPER/Mixed.Case',
  'dots..name...txt',
  "quote's (1).txt",
  'amp&equals=comma,semi;.txt',
  'tilde~at@dollar$.txt',
  'percent%20literal.txt',
  'hash#bang!.txt',
];

/** Writes the sync fixture under `root`: small random files, one empty, one of 300 KiB. */
export async function writeTree(root: string): Promise<void> {
  for (const [index, name] of TREE_FILES.entries()) {
    const path = join(root, ...name.split('/'));
    await mkdir(dirname(path), { recursive: true });
    const size = name === 'empty.txt' ? 0 : name === 'medium.bin' ? 300 * 1024 + 7 : 100 + index * 37;
    await writeFile(path, randomBytes(size));
  }
}
