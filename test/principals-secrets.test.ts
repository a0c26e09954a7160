/**
 * Secrets at rest: a data directory from before principals (schema 2, plain-
 * text secrets) keeps working, its secrets sealed on the first start so
 * neither meta.db nor its WAL holds them; a wrong or missing secret key
 * refuses to start with a clear message; no secret and no key material
 * reaches the server's or the CLI's output.
 */
import { ListBucketsCommand } from '@aws-sdk/client-s3';
import Database from 'better-sqlite3';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rename, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { clientFor, parseCredentials, runTalusCli, talusCli, waitForAuth } from './helpers/principals.ts';
import { CLI, PROJECT_ROOT, freePort, startServerProcess, withTimeout, type ServerProcess } from './helpers/process.ts';
import { ACCESS_KEY_ID, SECRET_ACCESS_KEY } from './helpers/talus.ts';

const OLD_KEY = { accessKeyId: 'TALUSOLDSECONDKEY1', secretAccessKey: 'old-plain-text-secret-0123456789abcdef' };

/** A metadata database as Talus wrote it before principals: schema 2, secrets in plain text. */
function writeVersion2Database(path: string): void {
  const db = new Database(path);
  db.pragma('journal_mode = WAL');
  db.exec(`
    CREATE TABLE settings (name TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
    CREATE TABLE access_keys (access_key_id TEXT PRIMARY KEY, secret_access_key TEXT NOT NULL, created_ms INTEGER NOT NULL) WITHOUT ROWID;
    INSERT INTO settings VALUES ('schema_version', '2');
  `);
  const insert = db.prepare('INSERT INTO access_keys VALUES (?, ?, ?)');
  insert.run(ACCESS_KEY_ID, SECRET_ACCESS_KEY, 1);
  insert.run(OLD_KEY.accessKeyId, OLD_KEY.secretAccessKey, 2);
  db.close();
}

async function fileBytes(path: string): Promise<Buffer> {
  return readFile(path).catch(() => Buffer.alloc(0));
}

async function assertNoPlainText(dataDir: string, secrets: readonly string[], when: string): Promise<void> {
  for (const name of ['meta.db', 'meta.db-wal']) {
    const bytes = await fileBytes(join(dataDir, name));
    for (const secret of secrets) assert.ok(!bytes.includes(Buffer.from(secret)), `${when}: ${name} holds a secret in plain text`);
  }
}

/** Starts `talus server` expecting it to refuse; resolves with its exit code and output. */
function startExpectingRefusal(dataDir: string, env: NodeJS.ProcessEnv): Promise<{ code: number | null; output: string }> {
  return freePort().then((port) => new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', CLI, 'server', dataDir, '--port', String(port), '--address', '127.0.0.1', '--workers', '1'], {
      cwd: PROJECT_ROOT,
      env: { ...process.env, TALUS_ROOT_USER: ACCESS_KEY_ID, TALUS_ROOT_PASSWORD: SECRET_ACCESS_KEY, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => { output += chunk.toString(); });
    child.stderr.on('data', (chunk: Buffer) => { output += chunk.toString(); });
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    child.once('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, output });
    });
  }));
}

describe('secrets at rest', () => {
  let dataDir: string;
  let server: ServerProcess | undefined;
  let rootCanonicalId: string | undefined;
  before(async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'talus-secrets-'));
  });
  after(async () => {
    if (server !== undefined && server.child.exitCode === null) await server.stop();
    await rm(dataDir, { recursive: true, force: true });
  });

  test('a version 2 data directory starts, its keys work as root\'s, and no plain-text secret is left in meta.db or its WAL', async () => {
    writeVersion2Database(join(dataDir, 'meta.db'));
    assert.ok((await fileBytes(join(dataDir, 'meta.db'))).includes(Buffer.from(OLD_KEY.secretAccessKey)), 'the fixture holds plain text');
    server = await startServerProcess(dataDir);
    const old = clientFor(server.url, OLD_KEY);
    await old.send(new ListBucketsCommand({}));
    old.destroy();
    assert.match(await talusCli(['keys', 'list', dataDir]), new RegExp(`^${OLD_KEY.accessKeyId}\troot\tenabled`, 'm'));
    const keyFile = await stat(join(dataDir, 'talus.secret-key'));
    assert.equal(keyFile.mode & 0o777, 0o600, 'the key file is readable by its owner only');

    // New secrets, made by the CLI while the server runs, are never written in plain text either.
    const bob = parseCredentials(await talusCli(['users', 'add', 'bob', dataDir]));
    const bobKey = parseCredentials(await talusCli(['keys', 'add', dataDir, '--user', 'bob']));
    const bobClient = clientFor(server.url, bobKey);
    assert.equal(await waitForAuth(bobClient, 'accepted'), 'accepted');
    bobClient.destroy();
    const secrets = [SECRET_ACCESS_KEY, OLD_KEY.secretAccessKey, bob.secretAccessKey, bobKey.secretAccessKey];
    await assertNoPlainText(dataDir, secrets, 'while serving');
    await server.stop();
    await assertNoPlainText(dataDir, secrets, 'after shutdown');

    // Nothing secret in the server's output (beyond the root credentials it prints by design at start-up) or the CLI's.
    const keyText = (await readFile(join(dataDir, 'talus.secret-key'), 'utf8')).trim();
    const output = server.output();
    for (const secret of [OLD_KEY.secretAccessKey, bob.secretAccessKey, bobKey.secretAccessKey, keyText, Buffer.from(keyText, 'base64').toString('hex')]) {
      assert.ok(!output.includes(secret), 'the server output holds a secret or the secret key');
    }
    const users = await talusCli(['users', 'list', dataDir]);
    rootCanonicalId = /^root\t([0-9a-f]{64})\t/m.exec(users)?.[1];
    assert.ok(rootCanonicalId !== undefined, users);
    const listing = await talusCli(['keys', 'list', dataDir]) + users;
    for (const secret of [...secrets, keyText]) assert.ok(!listing.includes(secret), 'a listing shows a secret');
  });

  test('a wrong or missing secret key refuses to start (server and CLI), saying so without key material', async () => {
    const keyPath = join(dataDir, 'talus.secret-key');
    const rightKey = (await readFile(keyPath, 'utf8')).trim();
    const wrongKey = randomBytes(32).toString('base64');
    const wrong = await withTimeout(startExpectingRefusal(dataDir, { TALUS_SECRET_KEY: wrongKey }), 40_000, 'server with a wrong key');
    assert.equal(wrong.code, 1, wrong.output);
    assert.match(wrong.output, /the secret key from TALUS_SECRET_KEY does not decrypt the access key secrets/);
    assert.doesNotMatch(wrong.output, /listening/);
    for (const material of [wrongKey, rightKey, SECRET_ACCESS_KEY, OLD_KEY.secretAccessKey]) assert.ok(!wrong.output.includes(material), 'key material or a secret in the refusal');

    const badCli = await runTalusCli(['keys', 'add', dataDir], { TALUS_SECRET_KEY: wrongKey });
    assert.equal(badCli.code, 1);
    assert.match(badCli.stderr, /does not decrypt/);
    assert.doesNotMatch(badCli.stdout, /AccessKeyId/, 'no key made under a wrong secret key');

    const malformed = await startExpectingRefusal(dataDir, { TALUS_SECRET_KEY: 'c2hvcnQ=' });
    assert.equal(malformed.code, 1);
    assert.match(malformed.output, /TALUS_SECRET_KEY must hold 32 bytes in base64/);

    await rename(keyPath, `${keyPath}.away`);
    const missing = await startExpectingRefusal(dataDir, {});
    assert.equal(missing.code, 1);
    assert.match(missing.output, /talus\.secret-key is missing and TALUS_SECRET_KEY is not set: the access key secrets in .* are encrypted under that key/);
    assert.equal(await stat(keyPath).then(() => true, () => false), false, 'no new key was made in its place');

    // The key kept elsewhere, in the environment: the server starts and old keys still work.
    server = await startServerProcess(dataDir, undefined, []).catch(() => undefined);
    assert.equal(server, undefined, 'still refused without the key');
    process.env['TALUS_SECRET_KEY'] = rightKey;
    try {
      server = await startServerProcess(dataDir);
    } finally {
      delete process.env['TALUS_SECRET_KEY'];
    }
    const old = clientFor(server.url, OLD_KEY);
    await old.send(new ListBucketsCommand({}));
    old.destroy();
    await server.stop();
    const users = await talusCli(['users', 'list', dataDir], { TALUS_SECRET_KEY: rightKey });
    assert.equal(/^root\t([0-9a-f]{64})\t/m.exec(users)?.[1], rootCanonicalId, "root's canonical ID is stable across restarts");
  });

  test('commands that only read or change refuse a path that is not a data directory', async () => {
    const nowhere = join(dataDir, 'no-such-dir');
    const result = await runTalusCli(['users', 'list', nowhere]);
    assert.equal(result.code, 1);
    assert.match(result.stderr, /is not a Talus data directory/);
    assert.equal(await stat(nowhere).then(() => true, () => false), false, 'nothing created');
  });
});
