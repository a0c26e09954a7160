/**
 * The console end to end in a real browser (issue 13): Debian's chromium,
 * driven by playwright-core, against a real Talus with its admin listener.
 * Log in; create a bucket; upload a 20 MiB file watching its progress reach
 * 100 % (a multipart upload from the browser) and check its bytes with the
 * AWS SDK; resume and cancel a failed multipart upload; edit metadata; navigate prefixes, pages and search by prefix; public read on and
 * off, and a hand-written bucket policy; delete a bucket; tag an object; download and compare;
 * make a share link and fetch it; restore an old version; an object key and
 * metadata holding markup, and an HTML object previewed, run no script;
 * create a read-only user, log in as it and see the upload refused; log out
 * and see the session refused afterwards; see a backend's state on the
 * backends page and add a backend there. Screenshots go to docs/console-*.png
 * with TALUS_UPDATE_SCREENSHOTS=1.
 * Skipped only where /usr/bin/chromium is missing.
 */
import { GetObjectCommand, GetObjectTaggingCommand, HeadBucketCommand, HeadObjectCommand, ListMultipartUploadsCommand, ListObjectVersionsCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { pathToFileURL } from 'node:url';
import { type BrowserContext, type Page, chromium } from 'playwright-core';
import { AdminClient } from '../src/admin/client.ts';
import { parseConfig } from '../src/config/config.ts';
import { startTalus } from '../src/talus.ts';
import { silentLogger } from '../src/util/logger.ts';

const CHROMIUM = '/usr/bin/chromium';
const ROOT = { accessKeyId: 'CONSOLEROOTKEY', secretAccessKey: 'console-root-secret-0123456789abcdef' };
/**
 * Screenshots are taken on every run; they replace docs/console-*.png (the
 * README's) only with TALUS_UPDATE_SCREENSHOTS=1, so a test run leaves the
 * checkout as it was.
 */
const SCREENSHOTS = process.env['TALUS_UPDATE_SCREENSHOTS'] === '1'
  ? new URL('../docs/', import.meta.url)
  : pathToFileURL(`${mkdtempSync(join(tmpdir(), 'talus-console-shots-'))}/`);
const BIG_BYTES = 20 * 1024 * 1024;

const sha256 = (bytes: Buffer): string => createHash('sha256').update(bytes).digest('hex');

async function bodyOf(client: S3Client, Bucket: string, Key: string, VersionId?: string): Promise<Buffer> {
  const answer = await client.send(new GetObjectCommand({ Bucket, Key, VersionId }));
  return Buffer.from(await answer.Body!.transformToByteArray());
}

async function logIn(page: Page, consoleUrl: string, accessKeyId: string, secretAccessKey: string): Promise<void> {
  await page.goto(consoleUrl);
  await page.getByLabel('Access key').fill(accessKeyId);
  await page.getByLabel('Secret key').fill(secretAccessKey);
  await page.getByRole('button', { name: 'Log in' }).click();
  await page.getByTestId('principal').waitFor();
}

function objectRow(page: Page, key: string) {
  return page.locator(`tr[data-key="${key.replaceAll('"', '\\"')}"]`);
}

test('the console in a real browser: log in, buckets, upload, prefixes, download, share, versions, users, log out', { timeout: 300_000, skip: existsSync(CHROMIUM) ? false : `${CHROMIUM} is missing (Debian's chromium package)` }, async () => {
  const dataDir = await mkdtemp(join(tmpdir(), 'talus-console-'));
  const userDataDir = await mkdtemp(join(tmpdir(), 'talus-chromium-'));
  // One directory backend and a placement over it (no bucket uses it): the backends page has something to show and to add to.
  const disks = await mkdtemp(join(tmpdir(), 'talus-console-disks-'));
  for (const disk of ['disk0', 'disk1']) await mkdir(join(disks, disk));
  const config = parseConfig(`[backends.disk0]\ntype = "directory"\npath = "${join(disks, 'disk0')}"\n[placements.one]\ntype = "single"\nbackend = "disk0"\n`, { source: 'test', baseDirectory: disks });
  const talus = await startTalus({ dataDir, port: 0, address: '127.0.0.1', rootAccessKeyId: ROOT.accessKeyId, rootSecretAccessKey: ROOT.secretAccessKey, admin: { port: 0, address: '127.0.0.1' }, config, healInBackground: false, logger: silentLogger });
  const s3 = new S3Client({ endpoint: talus.url, region: 'us-east-1', forcePathStyle: true, credentials: ROOT });
  const consoleUrl = `${talus.adminUrl}/console/`;
  let context: BrowserContext | undefined;
  try {
    context = await chromium.launchPersistentContext(userDataDir, {
      executablePath: CHROMIUM,
      headless: true,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
      viewport: { width: 1100, height: 720 },
      acceptDownloads: true,
    });
    const page = context.pages()[0] ?? (await context.newPage());
    const pageErrors: string[] = [];
    page.on('pageerror', (error) => pageErrors.push(String(error)));

    // Log in: the browser keeps a cookie its scripts cannot read, and no secret anywhere.
    await page.goto(consoleUrl);
    await page.getByLabel('Access key').waitFor();
    await page.screenshot({ path: new URL('console-login.png', SCREENSHOTS).pathname });
    await logIn(page, consoleUrl, ROOT.accessKeyId, ROOT.secretAccessKey);
    assert.equal(await page.getByTestId('principal').textContent(), 'root');
    const stored = await page.evaluate(() => JSON.stringify({ cookie: document.cookie, local: { ...localStorage }, session: { ...sessionStorage } }));
    assert.ok(!stored.includes(ROOT.secretAccessKey), 'the secret is in no browser storage');
    assert.equal(JSON.parse(stored).cookie, '', 'the session cookie is HttpOnly');
    const [rootCookie] = (await context.cookies()).filter((cookie) => cookie.name === 'talus_console');
    assert.ok(rootCookie !== undefined && rootCookie.httpOnly && rootCookie.sameSite === 'Strict');

    // Create a bucket and delete it again.
    await page.getByLabel('New bucket name').fill('scratch');
    await page.getByRole('button', { name: 'Create bucket' }).click();
    await page.getByRole('link', { name: 'scratch', exact: true }).click();
    await s3.send(new HeadBucketCommand({ Bucket: 'scratch' }));
    await page.getByRole('button', { name: 'Delete bucket' }).click();
    await page.getByRole('button', { name: 'Really delete bucket scratch' }).click();
    await page.getByRole('button', { name: 'Create bucket' }).waitFor();
    await assert.rejects(s3.send(new HeadBucketCommand({ Bucket: 'scratch' })), { name: 'NotFound' });

    // Create a bucket, open it, turn versioning on.
    const bucket = 'photos';
    await page.getByLabel('New bucket name').fill(bucket);
    await page.getByRole('button', { name: 'Create bucket' }).click();
    await page.getByRole('link', { name: bucket, exact: true }).click();
    await page.getByRole('button', { name: 'Enable versioning' }).click();
    await page.getByTestId('versioning').filter({ hasText: 'Enabled' }).waitFor();

    // Upload 20 MiB (a multipart upload from the browser), watching the progress reach 100 %.
    const big = randomBytes(BIG_BYTES);
    await page.getByTestId('upload-input').setInputFiles({ name: 'big.bin', mimeType: 'application/octet-stream', buffer: big });
    const seen = new Set<string>();
    const deadline = Date.now() + 120_000;
    while (Date.now() < deadline) {
      seen.add((await page.getByTestId('upload-percent').first().textContent()) ?? '');
      const state = await page.getByTestId('upload-state').first().textContent();
      if (state === 'done' || state === 'failed') break;
      await page.waitForTimeout(20);
    }
    assert.equal(await page.getByTestId('upload-state').first().textContent(), 'done');
    assert.equal(await page.getByTestId('upload-percent').first().textContent(), '100 %');
    assert.ok([...seen].some((text) => text !== '100 %'), `progress was seen before the end: ${[...seen].join(', ')}`);
    assert.equal(sha256(await bodyOf(s3, bucket, 'big.bin')), sha256(big), 'the stored object holds the file\'s bytes');
    await objectRow(page, 'big.bin').waitFor();

    // A multipart upload whose second part fails resumes from there, or is cancelled (its parts deleted).
    const partTwo = (url: URL): boolean => url.searchParams.get('partNumber') === '2';
    const resumable = randomBytes(9 * 1024 * 1024);
    for (const [name, finish] of [['resumed.bin', 'Resume'], ['cancelled.bin', 'Cancel upload']] as const) {
      await page.route(partTwo, (route) => route.abort());
      await page.getByTestId('upload-input').setInputFiles({ name, mimeType: 'application/octet-stream', buffer: resumable });
      const entry = page.getByTestId('upload').filter({ hasText: name });
      await entry.getByTestId('upload-state').filter({ hasText: 'failed' }).waitFor();
      await page.unroute(partTwo);
      await entry.getByRole('button', { name: finish }).click();
      await entry.getByTestId('upload-state').filter({ hasText: finish === 'Resume' ? 'done' : 'cancelled' }).waitFor();
    }
    assert.equal(sha256(await bodyOf(s3, bucket, 'resumed.bin')), sha256(resumable), 'the resumed upload holds the file\'s bytes');
    await assert.rejects(s3.send(new GetObjectCommand({ Bucket: bucket, Key: 'cancelled.bin' })), { name: 'NoSuchKey' });
    assert.equal((await s3.send(new ListMultipartUploadsCommand({ Bucket: bucket }))).Uploads, undefined, 'no upload left behind');

    // Prefixes: folders lead down, the crumbs back up; search narrows by prefix.
    await s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'docs/readme.txt', Body: 'read me', ContentType: 'text/plain' }));
    await s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'docs/2026/report.txt', Body: 'the report', ContentType: 'text/plain' }));
    await page.getByRole('button', { name: 'Refresh' }).click();
    await page.getByTestId('folder').filter({ hasText: 'docs/' }).click();
    await objectRow(page, 'docs/readme.txt').waitFor();
    await page.getByTestId('folder').filter({ hasText: '2026/' }).click();
    await objectRow(page, 'docs/2026/report.txt').waitFor();
    assert.equal(await page.getByTestId('object-name').count(), 1);
    await page.locator('h1.crumbs').getByRole('link', { name: bucket }).click();
    await objectRow(page, 'big.bin').waitFor();
    await page.getByLabel('Search by prefix').fill('bi');
    await objectRow(page, 'big.bin').waitFor();
    await page.getByTestId('folder').waitFor({ state: 'detached' });
    await page.getByLabel('Search by prefix').fill('');
    await page.getByTestId('folder').first().waitFor();

    // Paging: 50 entries a page.
    for (let index = 0; index < 51; index++) await s3.send(new PutObjectCommand({ Bucket: bucket, Key: `many/${String(index).padStart(3, '0')}`, Body: 'x' }));
    await page.getByRole('button', { name: 'Refresh' }).click();
    await page.getByTestId('folder').filter({ hasText: 'many/' }).click();
    await objectRow(page, 'many/049').waitFor();
    assert.equal(await page.getByTestId('object-name').count(), 50);
    await page.getByRole('button', { name: 'Next page' }).click();
    await objectRow(page, 'many/050').waitFor();
    assert.equal(await page.getByTestId('object-name').count(), 1);
    await page.getByRole('button', { name: 'Previous page' }).click();
    await objectRow(page, 'many/000').waitFor();
    await page.locator('h1.crumbs').getByRole('link', { name: bucket }).click();
    await objectRow(page, 'big.bin').waitFor();

    // Public read on and off: anonymous GETs follow.
    const anonymousGet = async (): Promise<number> => (await fetch(`${talus.url}/${bucket}/docs/readme.txt`)).status;
    assert.equal(await anonymousGet(), 403);
    await page.getByRole('button', { name: 'Make public' }).click();
    await page.getByTestId('public-read').filter({ hasText: 'on' }).waitFor();
    assert.equal(await anonymousGet(), 200);
    await page.getByRole('button', { name: 'Make private' }).click();
    await page.getByTestId('public-read').filter({ hasText: 'off' }).waitFor();
    assert.equal(await anonymousGet(), 403);
    // The policy editor: a policy written by hand (S3 validates it), then removed.
    await page.getByRole('button', { name: 'Edit policy' }).click();
    assert.equal(await page.getByLabel('Bucket policy').inputValue(), '');
    const docsPublic = { Version: '2012-10-17', Statement: [{ Effect: 'Allow', Principal: '*', Action: 's3:GetObject', Resource: `arn:aws:s3:::${bucket}/docs/*` }] };
    await page.getByLabel('Bucket policy').fill(JSON.stringify(docsPublic));
    await page.getByRole('button', { name: 'Save policy' }).click();
    await page.getByLabel('Bucket policy').waitFor({ state: 'detached' });
    assert.equal(await anonymousGet(), 200);
    assert.equal((await fetch(`${talus.url}/${bucket}/big.bin`, { method: 'HEAD' })).status, 403, 'only docs/ is public');
    await page.getByRole('button', { name: 'Edit policy' }).click();
    assert.match(await page.getByLabel('Bucket policy').inputValue(), /docs\/\*/);
    await page.getByLabel('Bucket policy').fill('{ not json');
    await page.getByRole('button', { name: 'Save policy' }).click();
    await page.getByRole('alert').filter({ hasText: 'MalformedPolicy' }).waitFor();
    await page.getByLabel('Bucket policy').fill('');
    await page.getByRole('button', { name: 'Save policy' }).click();
    await page.getByLabel('Bucket policy').waitFor({ state: 'detached' });
    assert.equal(await anonymousGet(), 403);
    await page.screenshot({ path: new URL('console-objects.png', SCREENSHOTS).pathname });

    // Download and compare.
    const [download] = await Promise.all([page.waitForEvent('download'), objectRow(page, 'big.bin').getByRole('link', { name: 'Download' }).click()]);
    assert.equal(sha256(await readFile((await download.path())!)), sha256(big), 'the download holds the object\'s bytes');

    // A share link (a presigned GET on the S3 listener), fetched outside the browser.
    await page.getByTestId('folder').filter({ hasText: 'docs/' }).click();
    await objectRow(page, 'docs/readme.txt').getByRole('button', { name: 'Share' }).click();
    await page.getByRole('button', { name: 'Make share link' }).click();
    const shareUrl = await page.getByTestId('share-url').inputValue();
    assert.ok(shareUrl.startsWith(`${talus.url}/${bucket}/docs/readme.txt?`), shareUrl);
    assert.match(shareUrl, /X-Amz-Expires=3600/);
    const shared = await fetch(shareUrl);
    assert.equal(shared.status, 200);
    assert.equal(await shared.text(), 'read me');
    await page.locator('h1.crumbs').getByRole('link', { name: bucket }).click();

    // Versions: restore the old one (a copy over the key, as the latest).
    await s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'notes.txt', Body: 'first draft', ContentType: 'text/plain' }));
    await s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'notes.txt', Body: 'second draft', ContentType: 'text/plain' }));
    await page.getByRole('button', { name: 'Refresh' }).click();
    await objectRow(page, 'notes.txt').getByRole('button', { name: 'Versions' }).click();
    await page.getByTestId('versions').getByRole('button', { name: 'Restore' }).click();
    await page.getByTestId('versions').locator('tbody tr').nth(2).waitFor();
    assert.equal((await bodyOf(s3, bucket, 'notes.txt')).toString(), 'first draft', 'the old version is the latest again');
    const versions = await s3.send(new ListObjectVersionsCommand({ Bucket: bucket, Prefix: 'notes.txt' }));
    assert.equal(versions.Versions?.length, 3, 'restoring added a version and lost none');
    // Download the middle version ('second draft'), then delete the oldest.
    const versionRows = page.getByTestId('versions').locator('tbody tr');
    const [versionDownload] = await Promise.all([page.waitForEvent('download'), versionRows.nth(1).getByRole('link', { name: 'Download' }).click()]);
    assert.equal((await readFile((await versionDownload.path())!)).toString(), 'second draft');
    await versionRows.nth(2).getByRole('button', { name: 'Delete version' }).click();
    await versionRows.nth(2).waitFor({ state: 'detached' });
    const remaining = await s3.send(new ListObjectVersionsCommand({ Bucket: bucket, Prefix: 'notes.txt' }));
    assert.deepEqual(remaining.Versions?.map((one) => one.VersionId), versions.Versions?.slice(0, 2).map((one) => one.VersionId), 'the oldest version is gone');
    await page.screenshot({ path: new URL('console-versions.png', SCREENSHOTS).pathname });

    // Metadata: replaced by a copy onto itself.
    await objectRow(page, 'notes.txt').getByRole('button', { name: 'Preview' }).click();
    await page.getByRole('button', { name: 'Edit metadata' }).click();
    await page.getByLabel('Content type').fill('text/markdown');
    await page.getByLabel('Metadata').fill('author=ada\nreviewed=yes');
    await page.getByRole('button', { name: 'Save metadata' }).click();
    await page.getByTestId('metadata').getByText('ada').waitFor();
    const described = await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: 'notes.txt' }));
    assert.equal(described.ContentType, 'text/markdown');
    assert.deepEqual(described.Metadata, { author: 'ada', reviewed: 'yes' });
    assert.equal((await bodyOf(s3, bucket, 'notes.txt')).toString(), 'first draft', 'the bytes are unchanged');
    // (A click beside a loading preview frame can be lost by the automation: close the panel first.)
    await page.getByTestId('object-panel').getByRole('button', { name: 'Close' }).click();
    await page.getByTestId('object-panel').waitFor({ state: 'detached' });

    // Tags: written as key=value lines, markup kept as text.
    await objectRow(page, 'notes.txt').getByRole('button', { name: 'Tags' }).click();
    await page.getByLabel('Tags').fill('project=apollo\nnote=<b>bold</b> & more');
    await page.getByRole('button', { name: 'Save tags' }).click();
    await page.getByTestId('tags-saved').waitFor();
    const tagging = await s3.send(new GetObjectTaggingCommand({ Bucket: bucket, Key: 'notes.txt' }));
    assert.deepEqual(tagging.TagSet?.map((tag) => [tag.Key, tag.Value]).sort(), [['note', '<b>bold</b> & more'], ['project', 'apollo']]);

    // Markup in a key, in metadata and in an HTML object runs nowhere.
    const xssKey = '<img src=x onerror="window.__xss=1">.txt';
    await s3.send(new PutObjectCommand({ Bucket: bucket, Key: xssKey, Body: 'x', ContentType: 'text/plain', Metadata: { note: '<script>window.__xss=2</script><img src=x onerror="window.__xss=2">' } }));
    await s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'evil.html', Body: '<html><body><h1>evil</h1><script>window.__xss=3; try { parent.__xss=3; parent.document.title="owned" } catch (e) {}</script></body></html>', ContentType: 'text/html' }));
    await page.getByRole('button', { name: 'Refresh' }).click();
    await objectRow(page, xssKey).getByRole('button', { name: 'Preview' }).click();
    await page.getByTestId('metadata').waitFor();
    assert.equal(await page.getByTestId('metadata').locator('td').textContent(), '<script>window.__xss=2</script><img src=x onerror="window.__xss=2">', 'metadata shown as text');
    assert.equal(await objectRow(page, xssKey).getByTestId('object-name').textContent(), xssKey, 'the key shown as text');
    await page.getByTestId('object-panel').getByRole('button', { name: 'Close' }).click();
    await page.getByTestId('object-panel').waitFor({ state: 'detached' });
    await objectRow(page, 'evil.html').getByRole('button', { name: 'Preview' }).click();
    const frame = page.getByTestId('preview-frame');
    await frame.waitFor();
    assert.equal(await frame.getAttribute('sandbox'), '');
    await page.frameLocator('[data-testid="preview-frame"]').locator('h1').waitFor();
    await page.waitForTimeout(300);
    assert.equal(await page.evaluate(() => (window as unknown as { __xss?: number }).__xss), undefined, 'no payload ran in the console');
    assert.equal(await page.title(), 'Talus console');
    const previewFrame = page.frames().find((one) => one.url().endsWith('/evil.html'));
    assert.ok(previewFrame !== undefined);
    assert.equal(await previewFrame.evaluate(() => (window as unknown as { __xss?: number }).__xss), undefined, 'the HTML object\'s own script did not run');
    // Opened on its own, in the console's origin, the object still runs nothing (CSP sandbox).
    await page.goto(`${talus.adminUrl}/console/s3/${bucket}/evil.html`);
    await page.locator('h1').waitFor();
    assert.equal(await page.evaluate(() => (window as unknown as { __xss?: number }).__xss), undefined, 'no script ran when opened directly');
    assert.equal(await page.evaluate(() => window.origin), 'null', 'an opaque origin, not the console\'s');
    await page.goto(consoleUrl);
    await page.getByTestId('principal').waitFor();

    // Dashboard (the /metrics counters).
    await page.getByRole('link', { name: 'Dashboard' }).click();
    await page.getByTestId('requests').waitFor();
    assert.ok(Number(await page.getByTestId('requests').textContent()) > 5);
    await page.screenshot({ path: new URL('console-dashboard.png', SCREENSHOTS).pathname });

    // Backends: the configured one's state (probed: up); add another, and see its state too.
    await page.getByRole('link', { name: 'Backends' }).click();
    await page.locator('tr[data-backend="disk0"]').getByTestId('backend-state').filter({ hasText: 'up' }).waitFor({ timeout: 30_000 });
    await page.getByLabel('Backend name').fill('disk1');
    await page.getByLabel('Backend path').fill(join(disks, 'disk1'));
    await page.getByRole('button', { name: 'Add backend' }).click();
    await page.locator('tr[data-backend="disk1"]').getByTestId('backend-state').filter({ hasText: /^(up|unknown)$/ }).waitFor();
    assert.ok((await new AdminClient({ endpoint: talus.adminUrl!, ...ROOT }).call<{ backends: { name: string }[] }>('ListBackends')).backends.some((backend) => backend.name === 'disk1'));
    await page.screenshot({ path: new URL('console-backends.png', SCREENSHOTS).pathname });

    // A read-only user, created in the console; its secret is shown once.
    await page.getByRole('link', { name: 'Users' }).click();
    await page.getByLabel('New user name').fill('reader');
    await page.getByLabel('Policy').selectOption('readonly');
    await page.getByRole('button', { name: 'Create user' }).click();
    const readerKey = (await page.getByTestId('new-access-key').textContent())!;
    const readerSecret = (await page.getByTestId('new-secret-key').textContent())!;
    await page.locator('tr[data-user="reader"]').waitFor();
    await page.screenshot({ path: new URL('console-users.png', SCREENSHOTS).pathname });
    await page.getByRole('button', { name: 'I have copied it' }).click();
    assert.equal(await page.getByTestId('new-secret').count(), 0, 'the secret is gone from the page');
    // Disable and enable the key, make and delete another user: each through the admin API.
    const adminApi = new AdminClient({ endpoint: talus.adminUrl!, ...ROOT });
    const readerRow = page.locator('tr[data-user="reader"]');
    const readerEnabled = async (): Promise<boolean | undefined> => (await adminApi.call<{ keys: { enabled: boolean }[] }>('ListKeys', { user: 'reader' })).keys[0]?.enabled;
    await readerRow.getByRole('button', { name: 'Disable' }).click();
    await readerRow.getByRole('button', { name: 'Enable' }).waitFor();
    assert.equal(await readerEnabled(), false);
    await readerRow.getByRole('button', { name: 'Enable' }).click();
    await readerRow.getByRole('button', { name: 'Disable' }).waitFor();
    assert.equal(await readerEnabled(), true);
    await page.getByLabel('New user name').fill('temporary');
    await page.getByRole('button', { name: 'Create user' }).click();
    await page.getByRole('button', { name: 'I have copied it' }).click();
    await page.locator('tr[data-user="temporary"]').getByRole('button', { name: 'Delete user' }).click();
    await page.locator('tr[data-user="temporary"]').waitFor({ state: 'detached' });
    assert.deepEqual((await adminApi.call<{ users: { name: string }[] }>('ListUsers')).users.map((user) => user.name), ['reader']);

    // Log out: the old session cookie is refused from then on.
    await page.getByRole('button', { name: 'Log out' }).click();
    await page.getByLabel('Access key').waitFor();
    const afterLogout = await fetch(`${talus.adminUrl}/console/s3/`, { headers: { cookie: `talus_console=${rootCookie.value}` } });
    assert.equal(afterLogout.status, 401, 'the ended session is refused');

    // The read-only user: the upload is refused (by the S3 listener's authorization).
    await logIn(page, consoleUrl, readerKey, readerSecret);
    assert.equal(await page.getByTestId('principal').textContent(), 'reader');
    await page.getByLabel('Open bucket by name').fill(bucket);
    await page.getByRole('button', { name: 'Open', exact: true }).click();
    await page.getByTestId('upload-input').setInputFiles({ name: 'forbidden.txt', mimeType: 'text/plain', buffer: Buffer.from('no') });
    await page.getByTestId('upload-state').filter({ hasText: 'failed' }).waitFor();
    assert.match((await page.getByTestId('upload').getByRole('alert').textContent())!, /AccessDenied/);
    await assert.rejects(s3.send(new GetObjectCommand({ Bucket: bucket, Key: 'forbidden.txt' })), { name: 'NoSuchKey' });
    await page.getByRole('button', { name: 'Log out' }).click();
    await page.getByLabel('Access key').waitFor();
    assert.deepEqual(pageErrors, []);
  } finally {
    await context?.close();
    s3.destroy();
    await talus.close();
    await rm(dataDir, { recursive: true, force: true });
    await rm(disks, { recursive: true, force: true });
    await rm(userDataDir, { recursive: true, force: true });
  }
});
