/**
 * The principals CLI as an operator runs it (`node --import tsx src/cli.ts
 * users|keys|policy …`, a process of its own next to a running server), and
 * polling a key until the server's 2 s reload has taken a change in.
 */
import { ListBucketsCommand, S3Client } from '@aws-sdk/client-s3';
import { execFile } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { CLI, PROJECT_ROOT } from './process.ts';

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

export function runTalusCli(args: readonly string[], env: NodeJS.ProcessEnv = {}): Promise<CliResult> {
  return new Promise((resolve) => {
    execFile(process.execPath, ['--import', 'tsx', CLI, ...args], { cwd: PROJECT_ROOT, env: { ...process.env, ...env }, timeout: 60_000 }, (error, stdout, stderr) => {
      const code = error === null ? 0 : typeof error.code === 'number' ? error.code : 1;
      resolve({ code, stdout, stderr });
    });
  });
}

/** Runs the CLI and fails with its output unless it exits 0. */
export async function talusCli(args: readonly string[], env: NodeJS.ProcessEnv = {}): Promise<string> {
  const result = await runTalusCli(args, env);
  if (result.code !== 0) throw new Error(`talus ${args.join(' ')} exited ${result.code}:\n${result.stdout}${result.stderr}`);
  return result.stdout;
}

/** The two lines `talus users add` and `talus keys add` print. */
export function parseCredentials(stdout: string): { accessKeyId: string; secretAccessKey: string } {
  const accessKeyId = /^AccessKeyId:\s+(\S+)$/m.exec(stdout)?.[1];
  const secretAccessKey = /^SecretAccessKey:\s+(\S+)$/m.exec(stdout)?.[1];
  if (accessKeyId === undefined || secretAccessKey === undefined) throw new Error(`no credentials in:\n${stdout}`);
  return { accessKeyId, secretAccessKey };
}

export function clientFor(url: string, credentials: { accessKeyId: string; secretAccessKey: string }): S3Client {
  return new S3Client({ endpoint: url, region: 'us-east-1', forcePathStyle: true, credentials, maxAttempts: 1 });
}

/**
 * 'accepted' when the server authenticated the key (a signed ListBuckets
 * answered, or refused with AccessDenied: a key whose policy does not allow
 * listing, e.g. `readonly`, is still a known key), else the error code.
 */
export async function authOutcome(client: S3Client): Promise<string> {
  try {
    await client.send(new ListBucketsCommand({}));
    return 'accepted';
  } catch (error) {
    const name = (error as Error).name;
    return name === 'AccessDenied' ? 'accepted' : name;
  }
}

/** Polls until the key gets `expected` (the server reloads keys every 2 s); returns how it ended. */
export async function waitForAuth(client: S3Client, expected: string, timeoutMs = 15_000): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  let outcome = await authOutcome(client);
  while (outcome !== expected && Date.now() < deadline) {
    await sleep(250);
    outcome = await authOutcome(client);
  }
  return outcome;
}
