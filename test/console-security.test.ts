/**
 * The console's security over plain HTTP (issue 13): a login with a wrong
 * secret is refused and audit-logged; the session cookie is HttpOnly,
 * SameSite=Strict and random; every change needs the session's own CSRF
 * token (and no foreign Origin); logout and a disabled key end sessions;
 * objects come back sandboxed (an HTML object cannot run script in the
 * console's origin); every answer carries the security headers; failed
 * logins are throttled; and no secret reaches a log line, the audit log, or any answer after the login.
 */
import { CreateBucketCommand, GetObjectCommand, HeadBucketCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { AdminClient } from '../src/admin/client.ts';
import { LOGIN_FAILURES_MAX, LOGIN_WINDOW_MS, LoginThrottle } from '../src/console/login-throttle.ts';
import { CONSOLE_SESSION_IDLE_MS, CONSOLE_SESSION_LIFETIME_MS, CONSOLE_SESSIONS_MAX, CONSOLE_SESSIONS_PER_KEY_MAX, ConsoleSessions } from '../src/console/sessions.ts';
import { type RunningTalus, startTalus } from '../src/talus.ts';
import type { Logger } from '../src/util/logger.ts';

const ROOT = { accessKeyId: 'SECURITYROOTKEY', secretAccessKey: 'security-root-secret-9876543210fedcba' };
const WRONG_SECRET = 'not-the-secret-but-close-9876543210';

interface Answer {
  status: number;
  headers: Headers;
  text: string;
}

class ConsoleCaller {
  readonly seen: Answer[] = [];
  cookie = '';
  csrf = '';
  constructor(readonly base: string) {}

  async send(method: string, path: string, options: { body?: string; json?: unknown; headers?: Record<string, string>; csrf?: string | false } = {}): Promise<Answer> {
    const headers: Record<string, string> = { ...options.headers };
    if (this.cookie !== '') headers['cookie'] = this.cookie;
    const token = options.csrf === undefined ? this.csrf : options.csrf;
    if (token !== false && token !== '') headers['x-talus-csrf'] = token;
    let body = options.body;
    if (options.json !== undefined) {
      headers['content-type'] = 'application/json';
      body = JSON.stringify(options.json);
    }
    const response = await fetch(`${this.base}${path}`, { method, headers, body, redirect: 'manual' });
    const answer = { status: response.status, headers: response.headers, text: await response.text() };
    this.seen.push(answer);
    return answer;
  }

  async login(accessKeyId: string, secretAccessKey: string): Promise<Answer> {
    const answer = await this.send('POST', '/console/api/login', { json: { accessKeyId, secretAccessKey }, csrf: false });
    if (answer.status === 200) {
      this.cookie = answer.headers.get('set-cookie')!.split(';')[0]!;
      this.csrf = (JSON.parse(answer.text) as { csrfToken: string }).csrfToken;
    }
    return answer;
  }
}

function capturingLogger(lines: string[]): Logger {
  const write = (level: string) => (message: string, fields: Record<string, unknown> = {}) => lines.push(JSON.stringify({ level, message, ...fields }));
  return { info: write('info'), warn: write('warn'), error: write('error') };
}

function assertSecurityHeaders(answer: Answer, what: string): void {
  const csp = answer.headers.get('content-security-policy') ?? '';
  assert.ok(csp !== '', `${what}: a Content-Security-Policy`);
  const scriptSources = /(?:^|;\s*)script-src ([^;]*)/.exec(csp)?.[1] ?? '';
  assert.ok(!scriptSources.includes('unsafe-inline') && !scriptSources.includes('unsafe-eval'), `${what}: no inline script, no eval`);
  assert.ok(/(?:^|;\s*)default-src /.test(csp) || csp.startsWith('sandbox'), `${what}: a default source`);
  assert.equal(answer.headers.get('x-content-type-options'), 'nosniff', `${what}: nosniff`);
  assert.equal(answer.headers.get('referrer-policy'), 'no-referrer', `${what}: no referrer`);
}

async function start(lines: string[]): Promise<{ talus: RunningTalus; dataDir: string; s3: S3Client }> {
  const dataDir = await mkdtemp(join(tmpdir(), 'talus-console-security-'));
  const talus = await startTalus({ dataDir, port: 0, address: '127.0.0.1', rootAccessKeyId: ROOT.accessKeyId, rootSecretAccessKey: ROOT.secretAccessKey, admin: { port: 0, address: '127.0.0.1' }, logger: capturingLogger(lines) });
  const s3 = new S3Client({ endpoint: talus.url, region: 'us-east-1', forcePathStyle: true, credentials: ROOT });
  return { talus, dataDir, s3 };
}

test('console sessions, CSRF, sandboxed objects, security headers, and no secret in logs or answers', { timeout: 120_000 }, async () => {
  const lines: string[] = [];
  const { talus, dataDir, s3 } = await start(lines);
  const adminApi = new AdminClient({ endpoint: talus.adminUrl!, ...ROOT });
  const secrets: string[] = [ROOT.secretAccessKey, WRONG_SECRET];
  try {
    const root = new ConsoleCaller(talus.adminUrl!);

    // The page: strict CSP (scripts from this origin, the import map by hash), no framing, nosniff, no referrer.
    const page = await root.send('GET', '/console/');
    assert.equal(page.status, 200);
    assertSecurityHeaders(page, 'the page');
    const pageCsp = page.headers.get('content-security-policy')!;
    assert.match(pageCsp, /script-src 'self' 'sha256-[A-Za-z0-9+/=]+'(;|$)/);
    assert.match(pageCsp, /frame-ancestors 'none'/);
    assert.match(pageCsp, /object-src 'none'/);
    assert.equal(page.headers.get('x-frame-options'), 'DENY');
    assert.match(page.text, /<script type="importmap">/);
    assert.doesNotMatch(page.text.replace(/<script type="importmap">[^<]*<\/script>/, ''), /<script(?![^>]*\bsrc=)[^>]*>/, 'no inline script but the import map');
    assertSecurityHeaders(await root.send('GET', '/console/ui/app.js'), 'a module');
    assertSecurityHeaders(await root.send('GET', '/console/vendor/preact.js'), 'preact');

    // Without a session nothing but the page and login answers.
    const anonymous = await root.send('GET', '/console/s3/');
    assert.equal(anonymous.status, 401);
    assertSecurityHeaders(anonymous, 'a refusal');
    assert.equal((await root.send('POST', '/console/api/admin/ListUsers', { json: {} })).status, 401);

    // A wrong secret: refused, no cookie, audit-logged with the key (never the secret).
    const wrong = await root.login(ROOT.accessKeyId, WRONG_SECRET);
    assert.equal(wrong.status, 403);
    assert.equal(JSON.parse(wrong.text).code, 'LoginFailed');
    assert.equal(wrong.headers.get('set-cookie'), null);
    const unknown = await root.login('NOSUCHKEY', WRONG_SECRET);
    assert.equal(unknown.status, 403);
    const failures = await adminApi.call<{ entries: { status: number; accessKeyId?: string; code?: string; principal: string }[] }>('QueryAuditLog', { operation: 'ConsoleLogin' });
    assert.equal(failures.entries.length, 2);
    assert.deepEqual(failures.entries.map((entry) => [entry.status, entry.code, entry.accessKeyId, entry.principal]), [
      [403, 'LoginFailed', undefined, 'anonymous'],
      [403, 'LoginFailed', ROOT.accessKeyId, 'anonymous'],
    ]);

    // The right secret: a session cookie the page's scripts cannot read, same-site only, 256 random bits.
    const login = await root.login(ROOT.accessKeyId, ROOT.secretAccessKey);
    assert.equal(login.status, 200);
    assertSecurityHeaders(login, 'the login');
    const cookie = login.headers.get('set-cookie')!;
    assert.match(cookie, /^talus_console=[A-Za-z0-9_-]{43}; Path=\/console\/; HttpOnly; SameSite=Strict$/);
    assert.ok(!login.text.includes(ROOT.secretAccessKey), 'the login answer holds no secret');
    const loginAnswer = JSON.parse(login.text) as { principal: string; csrfToken: string };
    assert.equal(loginAnswer.principal, 'root');
    assert.match(loginAnswer.csrfToken, /^[A-Za-z0-9_-]{43}$/);
    secrets.push(root.cookie.slice('talus_console='.length), root.csrf);

    // Another session of the same key: its CSRF token does not open the first.
    const other = new ConsoleCaller(talus.adminUrl!);
    assert.equal((await other.login(ROOT.accessKeyId, ROOT.secretAccessKey)).status, 200);
    assert.notEqual(other.csrf, root.csrf);
    assert.notEqual(other.cookie, root.cookie);

    // CSRF: a change without the token, with another session's, or from a foreign origin is refused and changes nothing.
    const noToken = await root.send('PUT', '/console/s3/csrf-bucket', { csrf: false });
    assert.equal(noToken.status, 403);
    assert.equal(JSON.parse(noToken.text).code, 'InvalidCsrfToken');
    assert.equal((await root.send('PUT', '/console/s3/csrf-bucket', { csrf: other.csrf })).status, 403);
    assert.equal((await root.send('PUT', '/console/s3/csrf-bucket', { headers: { origin: 'http://evil.example' } })).status, 403);
    // The S3 listener is the same site (another port) and serves objects as they are: its origin is foreign too.
    assert.equal((await root.send('PUT', '/console/s3/csrf-bucket', { headers: { origin: talus.url } })).status, 403);
    assert.equal((await root.send('POST', '/console/api/admin/CreateUser', { json: { name: 'mallory' }, csrf: false })).status, 403);
    assert.equal((await root.send('POST', '/console/api/share', { json: { bucket: 'csrf-bucket', key: 'k', expiresSeconds: 60 }, csrf: other.csrf })).status, 403);
    assert.equal((await root.send('POST', '/console/api/logout', { csrf: false })).status, 403);
    await assert.rejects(s3.send(new HeadBucketCommand({ Bucket: 'csrf-bucket' })), { name: 'NotFound' });
    assert.deepEqual((await adminApi.call<{ users: unknown[] }>('ListUsers')).users, []);
    // With its own token, the same requests work.
    assert.equal((await root.send('PUT', '/console/s3/csrf-bucket', { headers: { origin: talus.adminUrl! } })).status, 200);
    await s3.send(new HeadBucketCommand({ Bucket: 'csrf-bucket' }));

    // Keys and queries with spaces, '+', '%', non-ASCII and slashes reach S3 as written (the console re-encodes what it signs).
    const oddKey = 'odd dir/a+b%20c é/ü?.txt';
    const encodedOddKey = oddKey.split('/').map(encodeURIComponent).join('/');
    assert.equal((await root.send('PUT', `/console/s3/csrf-bucket/${encodedOddKey}`, { body: 'odd', headers: { 'x-amz-meta-note': 'plain' } })).status, 200);
    const oddObject = await s3.send(new GetObjectCommand({ Bucket: 'csrf-bucket', Key: oddKey }));
    assert.equal(await oddObject.Body!.transformToString(), 'odd');
    assert.equal(oddObject.Metadata?.['note'], 'plain', 'x-amz-* headers are passed on (and signed)');
    const oddListing = await root.send('GET', `/console/s3/csrf-bucket?list-type=2&prefix=${encodeURIComponent('odd dir/a+b%20')}`);
    assert.equal(oddListing.status, 200);
    assert.match(oddListing.text, /<KeyCount>1<\/KeyCount>/);

    // An admin operation through the console is an admin API call by the session's key (audited as such).
    const created = await root.send('POST', '/console/api/admin/CreateUser', { json: { name: 'reader', policy: 'readonly' } });
    assert.equal(created.status, 200);
    const reader = JSON.parse(created.text) as { accessKeyId: string; secretAccessKey: string };
    secrets.push(reader.secretAccessKey);
    const createdEntry = (await adminApi.call<{ entries: { principal: string; accessKeyId: string; status: number }[] }>('QueryAuditLog', { operation: 'CreateUser' })).entries[0];
    assert.deepEqual([createdEntry?.principal, createdEntry?.accessKeyId, createdEntry?.status], ['root', ROOT.accessKeyId, 200]);

    // The reader's session: S3 and admin refusals come from the listeners' own authorization.
    const readerSession = new ConsoleCaller(talus.adminUrl!);
    assert.equal((await readerSession.login(reader.accessKeyId, reader.secretAccessKey)).status, 200);
    const refusedPut = await readerSession.send('PUT', '/console/s3/csrf-bucket/file.txt', { body: 'no' });
    assert.equal(refusedPut.status, 403);
    assert.match(refusedPut.text, /<Code>AccessDenied<\/Code>/);
    const refusedAdmin = await readerSession.send('POST', '/console/api/admin/ListUsers', { json: {} });
    assert.equal(refusedAdmin.status, 403);
    assert.equal(JSON.parse(refusedAdmin.text).code, 'AccessDenied');
    assert.equal((await readerSession.send('GET', '/console/api/metrics')).status, 403, 'the dashboard needs admin:GetServerInfo');
    // Disabling the key ends its sessions.
    await adminApi.call('UpdateKey', { accessKeyId: reader.accessKeyId, enabled: false });
    assert.equal((await readerSession.send('GET', '/console/api/session')).status, 401);

    // An HTML object comes back sandboxed (opaque origin, no script) and never sniffed.
    await s3.send(new CreateBucketCommand({ Bucket: 'site' }));
    await s3.send(new PutObjectCommand({ Bucket: 'site', Key: 'evil.html', Body: '<script>alert(document.cookie)</script>', ContentType: 'text/html' }));
    const evil = await root.send('GET', '/console/s3/site/evil.html');
    assert.equal(evil.status, 200);
    assert.equal(evil.headers.get('content-type'), 'text/html');
    const objectCsp = evil.headers.get('content-security-policy')!;
    assert.match(objectCsp, /^sandbox(;|$)/, 'sandboxed without allow-scripts or allow-same-origin');
    assert.doesNotMatch(objectCsp, /allow-/);
    assert.match(objectCsp, /default-src 'none'/);
    assertSecurityHeaders(evil, 'an object');
    // Error answers from S3 are sandboxed as well.
    const missing = await root.send('GET', '/console/s3/site/nothing');
    assert.equal(missing.status, 404);
    assert.match(missing.headers.get('content-security-policy')!, /^sandbox/);

    // A share link: a presigned GET on the S3 listener, signed by the session's key.
    const share = await root.send('POST', '/console/api/share', { json: { bucket: 'site', key: 'evil.html', expiresSeconds: 120 } });
    assert.equal(share.status, 200);
    const shareUrl = (JSON.parse(share.text) as { url: string }).url;
    assert.ok(shareUrl.startsWith(`${talus.url}/site/evil.html?`));
    assert.equal((await fetch(shareUrl)).status, 200);
    assert.equal((await fetch(shareUrl.replace(/X-Amz-Signature=[0-9a-f]+/, `X-Amz-Signature=${'0'.repeat(64)}`))).status, 403);

    // Logout ends the session: its cookie and token are refused afterwards; the other session lives on.
    const logout = await root.send('POST', '/console/api/logout');
    assert.equal(logout.status, 200);
    assert.match(logout.headers.get('set-cookie')!, /Max-Age=0/);
    assert.equal((await root.send('GET', '/console/api/session')).status, 401);
    assert.equal((await root.send('GET', '/console/s3/')).status, 401);
    assert.equal((await root.send('PUT', '/console/s3/after-logout')).status, 401);
    await assert.rejects(s3.send(new HeadBucketCommand({ Bucket: 'after-logout' })), { name: 'NotFound' });
    assert.equal((await other.send('GET', '/console/api/session')).status, 200);

    // Guessing is throttled: after 10 failures from one address in a minute, even the right secret is refused for a while.
    const guesser = new ConsoleCaller(talus.adminUrl!);
    for (let attempt = 2; attempt < LOGIN_FAILURES_MAX; attempt++) assert.equal((await guesser.login(ROOT.accessKeyId, WRONG_SECRET)).status, 403);
    const throttled = await guesser.login(ROOT.accessKeyId, ROOT.secretAccessKey);
    assert.equal(throttled.status, 429);
    assert.equal(JSON.parse(throttled.text).code, 'TooManyLoginFailures');
    assert.equal(throttled.headers.get('set-cookie'), null);

    // No secret (keys' secrets, the wrong secret tried, session IDs, CSRF tokens) in a log line or the audit log;
    // no answer after a login holds the logged-in key's secret.
    const auditFiles = await readdir(join(dataDir, 'audit'));
    const auditText = (await Promise.all(auditFiles.map((name) => readFile(join(dataDir, 'audit', name), 'utf8')))).join('');
    assert.ok(auditText.includes('ConsoleLogin') && auditText.includes('ConsoleLogout'));
    for (const secret of secrets) {
      assert.ok(!lines.some((line) => line.includes(secret)), 'no secret in a log line');
      assert.ok(!auditText.includes(secret), 'no secret in the audit log');
    }
    for (const answer of [...root.seen, ...other.seen, ...readerSession.seen]) {
      assert.ok(!answer.text.includes(ROOT.secretAccessKey), 'no answer holds root\'s secret');
      assert.ok(![...answer.headers.values()].some((value) => value.includes(ROOT.secretAccessKey)));
    }
  } finally {
    s3.destroy();
    await talus.close();
    await rm(dataDir, { recursive: true, force: true });
  }
});

test('console sessions are bounded and expire when idle and at their absolute lifetime', () => {
  let now = 1_000_000;
  const sessions = new ConsoleSessions(() => now);
  const idle = sessions.start('K1', 'secret-1', 'root');
  now += CONSOLE_SESSION_IDLE_MS - 1;
  assert.ok(sessions.find(idle.id) !== undefined, 'used just before the idle limit');
  now += CONSOLE_SESSION_IDLE_MS;
  assert.equal(sessions.find(idle.id), undefined, 'idle too long');

  const busy = sessions.start('K1', 'secret-1', 'root');
  const born = now;
  while (now - born < CONSOLE_SESSION_LIFETIME_MS - CONSOLE_SESSION_IDLE_MS / 2) {
    now += CONSOLE_SESSION_IDLE_MS / 2;
    assert.ok(sessions.find(busy.id) !== undefined);
  }
  now = born + CONSOLE_SESSION_LIFETIME_MS;
  assert.equal(sessions.find(busy.id), undefined, 'past the absolute lifetime, however busy');

  const first = sessions.start('K1', 'secret-1', 'root');
  const second = sessions.start('K1', 'secret-1', 'root');
  sessions.find(first.id);
  for (let index = 0; index < CONSOLE_SESSIONS_MAX - 1; index++) sessions.start(`K${index + 2}`, 'secret-2', 'alice');
  assert.equal(sessions.size, CONSOLE_SESSIONS_MAX);
  assert.equal(sessions.find(second.id), undefined, 'the least recently used session went');
  assert.ok(sessions.find(first.id) !== undefined, 'a recently used one stays');
  // One key logging in over and over ends only its own oldest sessions, never another key's.
  const flood = Array.from({ length: CONSOLE_SESSIONS_PER_KEY_MAX + 4 }, () => sessions.start('K-flood', 'secret-f', 'mallory'));
  assert.deepEqual(flood.map((started) => sessions.find(started.id) !== undefined), flood.map((_, index) => index >= 4));
  assert.ok(sessions.find(first.id) !== undefined, 'another key\'s session survives the flood');
  assert.equal(sessions.find('not-a-session'), undefined);
  sessions.end(first.id);
  assert.equal(sessions.find(first.id), undefined);
});

test('failed console logins are throttled per source address, for one window', () => {
  let now = 5_000_000;
  const throttle = new LoginThrottle(() => now);
  for (let index = 0; index < LOGIN_FAILURES_MAX; index++) {
    assert.ok(throttle.allows('10.0.0.1'));
    throttle.failed('10.0.0.1');
  }
  assert.equal(throttle.allows('10.0.0.1'), false);
  assert.ok(throttle.allows('10.0.0.2'), 'other addresses are not held back');
  now += LOGIN_WINDOW_MS;
  assert.ok(throttle.allows('10.0.0.1'), 'the window ended');
});
