/**
 * Resuming a console upload after the page was closed (issue 13: "large
 * files as presigned multipart uploads from the browser (resumable)"), in
 * Debian's chromium driven by playwright-core against a real Talus. A 17 MiB
 * file (three parts at the console's 8 MiB part size) fails after its first
 * part (the second part's PUT is aborted by the test), the page is closed, a
 * new one opened: picking the same file offers to resume, and resuming sends
 * only parts 2 and 3 (the test counts the part PUTs); the object holds the
 * file's bytes (AWS SDK) and the browser forgets the upload. A file with the
 * same name and size but another modification time is not resumed against
 * the old upload; one with the same name, size and time but other bytes is
 * offered it, and the MD5 check sends all its parts again. The remembered
 * uploads are listed: one gone from the server is forgotten, one aborted
 * there is deleted. The MD5 itself is checked against node:crypto.
 * Skipped only where /usr/bin/chromium is missing.
 */
import { GetObjectCommand, ListMultipartUploadsCommand, S3Client, CreateBucketCommand, AbortMultipartUploadCommand } from '@aws-sdk/client-s3';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { type BrowserContext, type Page, chromium } from 'playwright-core';
import { startTalus } from '../src/talus.ts';
import { silentLogger } from '../src/util/logger.ts';

const CHROMIUM = '/usr/bin/chromium';
const ROOT = { accessKeyId: 'RESUMEROOTKEY', secretAccessKey: 'resume-root-secret-0123456789abcdef' };
const MiB = 1024 * 1024;
/** Three parts at the console's part size (8 MiB: 8 + 8 + 1). */
const FILE_BYTES = 17 * MiB;
const STORAGE_KEY = 'talus.console.uploads';

const sha256 = (bytes: Uint8Array): string => createHash('sha256').update(bytes).digest('hex');

test('md5.js agrees with node:crypto around block and padding boundaries', async () => {
  // The browser module is plain JavaScript without declarations: imported by URL, typed here.
  const { md5Hex } = (await import(new URL('../src/console/ui/md5.js', import.meta.url).href)) as { md5Hex: (bytes: Uint8Array) => string };
  for (const length of [0, 1, 55, 56, 57, 63, 64, 65, 119, 120, 128, 1000, 65_537]) {
    const bytes = randomBytes(length);
    assert.equal(md5Hex(new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.length)), createHash('md5').update(bytes).digest('hex'), `${length} bytes`);
  }
});

test('the console resumes a multipart upload after the page was closed', { timeout: 180_000, skip: existsSync(CHROMIUM) ? false : `${CHROMIUM} is missing (Debian's chromium package)` }, async () => {
  const dataDir = await mkdtemp(join(tmpdir(), 'talus-resume-'));
  const userDataDir = await mkdtemp(join(tmpdir(), 'talus-resume-chromium-'));
  const files = await mkdtemp(join(tmpdir(), 'talus-resume-files-'));
  const talus = await startTalus({ dataDir, port: 0, address: '127.0.0.1', rootAccessKeyId: ROOT.accessKeyId, rootSecretAccessKey: ROOT.secretAccessKey, admin: { port: 0, address: '127.0.0.1' }, healInBackground: false, logger: silentLogger });
  const s3 = new S3Client({ endpoint: talus.url, region: 'us-east-1', forcePathStyle: true, credentials: ROOT });
  const bucket = 'resumes';
  const bucketUrl = `${talus.adminUrl}/console/#/b/${bucket}/`;
  let context: BrowserContext | undefined;
  const pageErrors: string[] = [];
  try {
    await s3.send(new CreateBucketCommand({ Bucket: bucket }));
    // The same name in three directories: the original, another modification time, the original's time but other bytes.
    const write = async (directory: string, bytes: Buffer, mtime: Date): Promise<string> => {
      await mkdir(join(files, directory));
      const path = join(files, directory, 'resume.bin');
      await writeFile(path, bytes);
      await utimes(path, mtime, mtime);
      return path;
    };
    const original = randomBytes(FILE_BYTES);
    const other = randomBytes(FILE_BYTES);
    const forged = randomBytes(FILE_BYTES);
    const originalTime = new Date('2026-01-02T03:04:05Z');
    const originalPath = await write('a', original, originalTime);
    const otherPath = await write('b', other, new Date('2026-02-03T04:05:06Z'));
    const forgedPath = await write('c', forged, originalTime);

    context = await chromium.launchPersistentContext(userDataDir, { executablePath: CHROMIUM, headless: true, args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'] });
    // Every part PUT, whatever page sends it: [uploadId, partNumber].
    const partPuts: Array<[string, string]> = [];
    context.on('request', (request) => {
      const url = new URL(request.url());
      if (request.method() === 'PUT' && url.searchParams.has('partNumber')) partPuts.push([url.searchParams.get('uploadId')!, url.searchParams.get('partNumber')!]);
    });
    const remembered = async (page: Page): Promise<Array<Record<string, unknown>>> => JSON.parse((await page.evaluate((key) => localStorage.getItem(key), STORAGE_KEY)) ?? '[]');
    const entry = (page: Page) => page.getByTestId('upload').first();
    const finished = async (page: Page, state: string): Promise<void> => {
      await entry(page).getByTestId('upload-state').filter({ hasText: new RegExp(`^(${state}|failed)$`) }).waitFor({ timeout: 120_000 });
      assert.equal(await entry(page).getByTestId('upload-state').textContent(), state, String(await entry(page).textContent()));
    };
    /** Opens the bucket in a fresh page (the old one closed), logging in once. */
    let page = context.pages()[0] ?? (await context.newPage());
    const reopen = async (): Promise<Page> => {
      // The new page first: chromium ends its session (its session cookies) with its last page.
      const closing = page;
      page = await context!.newPage();
      await closing.close();
      page.on('pageerror', (error) => pageErrors.push(String(error)));
      page.on('console', (message) => pageErrors.push(message.text()));
      await page.goto(bucketUrl);
      await page.getByTestId('upload-input').waitFor();
      return page;
    };
    await page.goto(`${talus.adminUrl}/console/`);
    await page.getByLabel('Access key').fill(ROOT.accessKeyId);
    await page.getByLabel('Secret key').fill(ROOT.secretAccessKey);
    await page.getByRole('button', { name: 'Log in' }).click();
    await page.getByTestId('principal').waitFor();
    /** Uploads a file whose part `failing` cannot be sent: the upload fails, remembered. */
    const failAt = async (path: string, failing: string): Promise<string> => {
      const cut = (url: URL): boolean => url.searchParams.get('partNumber') === failing;
      await page.route(cut, (route) => route.abort());
      await page.getByTestId('upload-input').setInputFiles(path);
      await finished(page, 'failed');
      await page.unroute(cut);
      const entries = await remembered(page);
      assert.equal(entries.length > 0, true, 'the failed upload is remembered');
      return String(entries.at(-1)!['uploadId']);
    };

    // 1. The network is cut after the first part; the page is closed; the same file picked again resumes with parts 2 and 3.
    page = await reopen();
    const firstUpload = await failAt(originalPath, '2');
    const [stored] = await remembered(page);
    assert.deepEqual(Object.keys(stored!).sort(), ['bucket', 'key', 'lastModified', 'name', 'partSize', 'size', 'startedMs', 'uploadId']);
    assert.equal(stored!['lastModified'], originalTime.getTime());
    assert.ok(!JSON.stringify(stored).includes(ROOT.secretAccessKey));
    page = await reopen();
    await page.getByTestId('remembered-upload').filter({ hasText: 'resume.bin' }).waitFor();
    partPuts.length = 0;
    await page.getByTestId('upload-input').setInputFiles(originalPath);
    await entry(page).getByTestId('upload-state').filter({ hasText: 'resumable' }).waitFor();
    await entry(page).getByRole('button', { name: 'Resume' }).click();
    await finished(page, 'done');
    assert.deepEqual(partPuts, [[firstUpload, '2'], [firstUpload, '3']], 'only the missing parts were sent');
    const stored1 = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: 'resume.bin' }));
    assert.equal(sha256(await stored1.Body!.transformToByteArray()), sha256(original), 'the object holds the file\'s bytes');
    assert.deepEqual(await remembered(page), [], 'the completed upload is forgotten');

    // 2. Another file with the same name (and size) but another modification time is not resumed against the old upload.
    const secondUpload = await failAt(originalPath, '2');
    page = await reopen();
    partPuts.length = 0;
    await page.getByTestId('upload-input').setInputFiles(otherPath);
    await finished(page, 'done');
    assert.equal(partPuts.length, 3);
    assert.ok(partPuts.every(([uploadId]) => uploadId !== secondUpload), 'a new upload, not the remembered one');
    const stored2 = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: 'resume.bin' }));
    assert.equal(sha256(await stored2.Body!.transformToByteArray()), sha256(other));
    assert.deepEqual((await remembered(page)).map((one) => one['uploadId']), [secondUpload], 'the old upload is still remembered');

    // 3. Same name, size and time but other bytes: offered the old upload, whose stored part fails the MD5 check and is sent again.
    partPuts.length = 0;
    await page.getByTestId('upload-input').setInputFiles(forgedPath);
    await entry(page).getByTestId('upload-state').filter({ hasText: 'resumable' }).waitFor();
    await entry(page).getByRole('button', { name: 'Resume' }).click();
    await finished(page, 'done');
    assert.deepEqual(partPuts, [[secondUpload, '1'], [secondUpload, '2'], [secondUpload, '3']], 'every part sent: the stored one was another file\'s');
    const stored3 = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: 'resume.bin' }));
    assert.equal(sha256(await stored3.Body!.transformToByteArray()), sha256(forged));
    assert.deepEqual(await remembered(page), []);

    // 4. The list of remembered uploads: one aborted elsewhere is forgotten, one aborted from the list is deleted.
    const goneUpload = await failAt(originalPath, '1');
    await s3.send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: 'resume.bin', UploadId: goneUpload }));
    const keptUpload = await failAt(otherPath, '1');
    page = await reopen();
    const listed = page.getByTestId('remembered-upload');
    // Shown at once from memory, then checked against the server: the one gone is forgotten and leaves the list.
    await page.waitForFunction(([key, uploadId]) => (JSON.parse(localStorage.getItem(key!) ?? '[]') as Array<{ uploadId: string }>).every((one) => one.uploadId !== uploadId), [STORAGE_KEY, goneUpload]);
    await page.waitForFunction(() => document.querySelectorAll('[data-testid="remembered-upload"]').length === 1);
    await listed.getByRole('button', { name: 'Abort' }).click();
    await listed.waitFor({ state: 'detached' });
    assert.deepEqual(await remembered(page), []);
    const left = await s3.send(new ListMultipartUploadsCommand({ Bucket: bucket }));
    assert.equal(left.Uploads?.some((one) => one.UploadId === keptUpload) ?? false, false, 'the upload aborted from the list is gone');
    assert.equal(left.Uploads, undefined, 'no upload left behind');
  } catch (error) {
    if (pageErrors.length > 0) console.log('the pages said:', pageErrors);
    throw error;
  } finally {
    await context?.close();
    s3.destroy();
    await talus.close();
    await rm(dataDir, { recursive: true, force: true });
    await rm(userDataDir, { recursive: true, force: true });
    await rm(files, { recursive: true, force: true });
  }
});
