/**
 * The server's start-up output holds the root secret only on the start that
 * generated it: later starts, and starts given TALUS_ROOT_PASSWORD, never
 * print it, so service logs do not collect it.
 */
import { ListBucketsCommand } from '@aws-sdk/client-s3';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { CLI, PROJECT_ROOT, freePort } from './helpers/process.ts';
import { clientFor } from './helpers/principals.ts';

const READY = /Talus S3 server listening on (http:\/\/\S+)\n\s+AccessKeyId:\s+(\S+)\n\s+SecretAccessKey:\s+(.+)\n/;

/** Starts `talus server`, waits for its start-up lines, and stops it again after `use`. */
async function withServer<T>(dataDir: string, env: NodeJS.ProcessEnv, use: (start: { url: string; accessKeyId: string; secretLine: string; output: string }) => Promise<T>): Promise<T> {
  const port = await freePort();
  const childEnv = { ...process.env, ...env };
  for (const name of ['TALUS_ROOT_USER', 'TALUS_ROOT_PASSWORD'] as const) if (env[name] === undefined) delete childEnv[name];
  const child = spawn(process.execPath, ['--import', 'tsx', CLI, 'server', dataDir, '--port', String(port), '--address', '127.0.0.1', '--workers', '1'], {
    cwd: PROJECT_ROOT,
    env: childEnv,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  try {
    let output = '';
    const match = await new Promise<RegExpExecArray>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`not ready within 30 s:\n${output}`)), 30_000);
      child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
        output += chunk;
        const found = READY.exec(output);
        if (found !== null) {
          clearTimeout(timer);
          resolve(found);
        }
      });
      child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
      void exited.then(() => reject(new Error(`exited before ready:\n${output}`)));
    });
    return await use({ url: match[1]!, accessKeyId: match[2]!, secretLine: match[3]!, output });
  } finally {
    child.kill('SIGTERM');
    await exited;
  }
}

test('the generated root secret is printed on the first start only; a given one never', { timeout: 120_000 }, async () => {
  const dataDir = await mkdtemp(join(tmpdir(), 'talus-root-credentials-'));
  try {
    const first = await withServer(dataDir, {}, async ({ url, accessKeyId, secretLine }) => {
      const client = clientFor(url, { accessKeyId, secretAccessKey: secretLine });
      // The printed secret is the real one: it signs a request the server accepts.
      await client.send(new ListBucketsCommand({}));
      client.destroy();
      return { accessKeyId, secret: secretLine };
    });
    await withServer(dataDir, {}, async ({ accessKeyId, secretLine, output }) => {
      assert.equal(accessKeyId, first.accessKeyId, 'the stored root key');
      assert.ok(!output.includes(first.secret), 'a later start does not print the stored secret');
      assert.match(secretLine, /first start only/);
    });
    const given = { TALUS_ROOT_USER: 'GIVENROOTKEY', TALUS_ROOT_PASSWORD: 'given-root-secret-0123456789' };
    await withServer(dataDir, given, async ({ url, accessKeyId, secretLine, output }) => {
      assert.equal(accessKeyId, given.TALUS_ROOT_USER);
      assert.ok(!output.includes(given.TALUS_ROOT_PASSWORD), 'a given secret is not echoed');
      assert.match(secretLine, /TALUS_ROOT_PASSWORD/);
      const client = clientFor(url, { accessKeyId, secretAccessKey: given.TALUS_ROOT_PASSWORD });
      await client.send(new ListBucketsCommand({}));
      client.destroy();
    });
  } finally {
    await rm(dataDir, { recursive: true, force: true });
  }
});
