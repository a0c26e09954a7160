/**
 * The console judges a key's policy conditions by the browser, not by its own
 * loopback hop (issue 13's security finding): the console signs a session's
 * S3 and admin calls and sends them from 127.0.0.1, so aws:SourceIp and
 * aws:SecureTransport must come from the browser's socket, sealed by the
 * console (src/http/console-source.ts) and believed by no one else.
 *
 * Method: the "browser" connects from 127.0.0.2 (any 127/8 address is
 * loopback on Linux), so it differs from the console's hop (127.0.0.1). A
 * user whose policy allows only 127.0.0.1/32, or only 10.0.0.0/8, is refused
 * every action through the console (it still logs in, as AWS's sign-in does);
 * the same user allowed 127.0.0.2/32 works; a SecureTransport:true policy is
 * refused over plain http; a forged header on the S3 port gains nothing; and
 * the audit log names the browser's address. With --workers, the worker
 * processes that serve S3 believe the seal as well (the key reaches them).
 */
import { ListBucketsCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { Agent, fetch } from 'undici';
import { AdminClient } from '../src/admin/client.ts';
import { startTalus } from '../src/talus.ts';

const ROOT = { accessKeyId: 'SOURCEIPROOTKEY', secretAccessKey: 'source-ip-root-secret-0123456789abcdef' };
const BROWSER_ADDRESS = '127.0.0.2';
const BUCKET = 'source-ip';
const silent = { info: () => undefined, warn: () => undefined, error: () => undefined };

/** A browser at BROWSER_ADDRESS with a console session. */
class Browser {
  readonly #dispatcher = new Agent({ localAddress: BROWSER_ADDRESS });
  #cookie = '';
  #csrf = '';
  constructor(readonly base: string) {}

  async send(method: string, path: string, json?: unknown): Promise<{ status: number; body: string }> {
    const headers: Record<string, string> = { cookie: this.#cookie, 'x-talus-csrf': this.#csrf };
    if (json !== undefined) headers['content-type'] = 'application/json';
    const response = await fetch(`${this.base}${path}`, { method, headers, body: json === undefined ? undefined : JSON.stringify(json), dispatcher: this.#dispatcher });
    return { status: response.status, body: await response.text() };
  }

  async login(credentials: { accessKeyId: string; secretAccessKey: string }): Promise<void> {
    const response = await fetch(`${this.base}/console/api/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(credentials), dispatcher: this.#dispatcher });
    assert.equal(response.status, 200, 'login checks the key and secret only, as AWS sign-in does');
    this.#cookie = response.headers.get('set-cookie')!.split(';')[0]!;
    this.#csrf = ((await response.json()) as { csrfToken: string }).csrfToken;
  }

  /** S3 ListBuckets, S3 GetObject and admin ListBuckets through the console: their statuses. */
  async tryAll(): Promise<number[]> {
    return [
      (await this.send('GET', '/console/s3/')).status,
      (await this.send('GET', `/console/s3/${BUCKET}/hello.txt`)).status,
      (await this.send('POST', '/console/api/admin/ListBuckets', {})).status,
    ];
  }

  close(): Promise<void> {
    return this.#dispatcher.close();
  }
}

function onlyFrom(cidr: string): string {
  return JSON.stringify({ Version: '2012-10-17', Statement: [{ Effect: 'Allow', Action: ['s3:*', 'admin:ListBuckets'], Resource: '*', Condition: { IpAddress: { 'aws:SourceIp': cidr } } }] });
}

const ONLY_TLS = JSON.stringify({
  Version: '2012-10-17',
  Statement: [
    { Effect: 'Allow', Action: ['s3:*', 'admin:ListBuckets'], Resource: '*' },
    { Effect: 'Deny', Action: ['s3:*', 'admin:*'], Resource: '*', Condition: { Bool: { 'aws:SecureTransport': 'false' } } },
  ],
});

test('console calls are authorized with the browser\'s address and transport, which only the console can vouch for', { timeout: 60_000 }, async () => {
  const dataDir = await mkdtemp(join(tmpdir(), 'talus-console-source-ip-'));
  const talus = await startTalus({ dataDir, port: 0, address: '127.0.0.1', rootAccessKeyId: ROOT.accessKeyId, rootSecretAccessKey: ROOT.secretAccessKey, admin: { port: 0, address: '127.0.0.1' }, logger: silent });
  const admin = new AdminClient({ endpoint: talus.adminUrl!, ...ROOT });
  const browser = new Browser(talus.adminUrl!);
  try {
    const rootS3 = new S3Client({ endpoint: talus.url, region: 'us-east-1', forcePathStyle: true, credentials: ROOT });
    await admin.call('CreateBucket', { name: BUCKET });
    await rootS3.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'hello.txt', Body: 'hello' }));
    const user = await admin.call<{ accessKeyId: string; secretAccessKey: string }>('CreateUser', { name: 'netuser', policy: onlyFrom('10.0.0.0/8') });

    // Allowed from 10.0.0.0/8 only: logs in, then every action is refused.
    await browser.login(user);
    assert.deepEqual(await browser.tryAll(), [403, 403, 403]);

    // Allowed from the console's own hop only (127.0.0.1): still refused, the browser is at 127.0.0.2.
    await admin.call('SetUserPolicy', { name: 'netuser', policy: onlyFrom('127.0.0.1/32') });
    assert.deepEqual(await browser.tryAll(), [403, 403, 403], 'the console\'s loopback hop does not stand in for the browser');

    // Allowed from the browser's address: works.
    await admin.call('SetUserPolicy', { name: 'netuser', policy: onlyFrom(`${BROWSER_ADDRESS}/32`) });
    assert.deepEqual(await browser.tryAll(), [200, 200, 200]);
    assert.equal((await browser.send('GET', `/console/s3/${BUCKET}/hello.txt`)).body, 'hello');

    // The audit log names the browser, not the console's hop, for the console's refused S3 and admin calls.
    await admin.call('SetUserPolicy', { name: 'netuser', policy: onlyFrom('10.0.0.0/8') });
    assert.deepEqual(await browser.tryAll(), [403, 403, 403]);
    const audit = await admin.call<{ entries: { kind: string; operation: string; status: number; sourceIp?: string }[] }>('QueryAuditLog', { principal: 'netuser' });
    const refusedS3 = audit.entries.find((entry) => entry.kind === 's3-denied' && entry.operation === 'GetObject');
    const refusedAdmin = audit.entries.find((entry) => entry.kind === 'admin' && entry.operation === 'ListBuckets' && entry.status === 403);
    assert.equal(refusedS3?.sourceIp, BROWSER_ADDRESS);
    assert.equal(refusedAdmin?.sourceIp, BROWSER_ADDRESS);

    // A forged header on the S3 port gains nothing: a direct client at 127.0.0.1 claiming to be a console's 10.1.2.3 is refused.
    const direct = new S3Client({ endpoint: talus.url, region: 'us-east-1', forcePathStyle: true, credentials: user });
    direct.middlewareStack.add((next) => async (args) => {
      (args.request as { headers: Record<string, string> }).headers['x-talus-console-source'] = `10.1.2.3 https ${Buffer.alloc(32, 7).toString('base64url')}`;
      return next(args);
    }, { step: 'build' });
    await assert.rejects(direct.send(new ListBucketsCommand({})), (error: Error & { $metadata?: { httpStatusCode?: number } }) => error.$metadata?.httpStatusCode === 403);
    // Nor on the admin listener.
    const forgedAdmin = new AdminClient({ endpoint: talus.adminUrl!, ...user, addHeaders: () => ({ 'x-talus-console-source': `10.1.2.3 https ${Buffer.alloc(32, 7).toString('base64url')}` }) });
    await assert.rejects(forgedAdmin.call('ListBuckets', {}), /AccessDenied/);

    // aws:SecureTransport: the browser's plain http counts, whatever the hop.
    await admin.call('SetUserPolicy', { name: 'netuser', policy: ONLY_TLS });
    assert.deepEqual(await browser.tryAll(), [403, 403, 403]);
  } finally {
    await browser.close();
    await talus.close();
    await rm(dataDir, { recursive: true, force: true });
  }
});

test('with --workers, the S3 listener\'s worker processes believe the console\'s seal too', { timeout: 90_000 }, async () => {
  const dataDir = await mkdtemp(join(tmpdir(), 'talus-console-source-ip-workers-'));
  const talus = await startTalus({ dataDir, port: 0, address: '127.0.0.1', workers: 2, rootAccessKeyId: ROOT.accessKeyId, rootSecretAccessKey: ROOT.secretAccessKey, admin: { port: 0, address: '127.0.0.1' }, logger: silent });
  const admin = new AdminClient({ endpoint: talus.adminUrl!, ...ROOT });
  const browser = new Browser(talus.adminUrl!);
  try {
    const user = await admin.call<{ accessKeyId: string; secretAccessKey: string }>('CreateUser', { name: 'netuser', policy: onlyFrom(`${BROWSER_ADDRESS}/32`) });
    await browser.login(user);
    // Workers reload keys on their own schedule: wait for the new user to be known there.
    const deadline = Date.now() + 30_000;
    let status = (await browser.send('GET', '/console/s3/')).status;
    while (status !== 200 && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 200));
      status = (await browser.send('GET', '/console/s3/')).status;
    }
    assert.equal(status, 200, 'allowed from the browser\'s address, judged in a worker');
    await admin.call('SetUserPolicy', { name: 'netuser', policy: onlyFrom('127.0.0.1/32') });
    let refused = (await browser.send('GET', '/console/s3/')).status;
    while (refused !== 403 && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 200));
      refused = (await browser.send('GET', '/console/s3/')).status;
    }
    assert.equal(refused, 403, 'the console\'s hop (127.0.0.1) does not count in a worker either');
  } finally {
    await browser.close();
    await talus.close();
    await rm(dataDir, { recursive: true, force: true });
  }
});
