/**
 * A POST upload from a real browser (issue 12): Debian's chromium, driven by
 * playwright-core, opens a plain HTML page served from another origin, picks
 * a file in an <input type=file> and POSTs it with a signed policy through
 * XMLHttpRequest to a Talus bucket whose CORS rules allow that origin. The
 * upload reports progress, the answer is readable (ETag exposed) and the
 * object holds the file's bytes. From an origin no rule allows, the browser
 * withholds the answer. Skipped only where /usr/bin/chromium is missing.
 */
import { GetObjectCommand, PutBucketCorsCommand } from '@aws-sdk/client-s3';
import assert from 'node:assert/strict';
import { createHmac, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { chromium } from 'playwright-core';
import { signedRequest } from './helpers/raw.ts';
import { ACCESS_KEY_ID, SECRET_ACCESS_KEY, startTestTalus, uniqueBucket } from './helpers/talus.ts';

const CHROMIUM = '/usr/bin/chromium';

/** SigV4 POST policy fields for uploads under browser/, computed here from first principles. */
function policyFields(bucket: string): [string, string][] {
  const amzDate = new Date().toISOString().replace(/[-:]/g, '').replace(/\.\d{3}/, '');
  const credential = `${ACCESS_KEY_ID}/${amzDate.slice(0, 8)}/us-east-1/s3/aws4_request`;
  const policy = {
    expiration: new Date(Date.now() + 600_000).toISOString(),
    conditions: [{ bucket }, ['starts-with', '$key', 'browser/'], ['content-length-range', 1, 16 * 1024 * 1024], { 'x-amz-algorithm': 'AWS4-HMAC-SHA256' }, { 'x-amz-credential': credential }, { 'x-amz-date': amzDate }],
  };
  const encoded = Buffer.from(JSON.stringify(policy)).toString('base64');
  let key: Buffer | string = `AWS4${SECRET_ACCESS_KEY}`;
  for (const part of [amzDate.slice(0, 8), 'us-east-1', 's3', 'aws4_request']) key = createHmac('sha256', key).update(part).digest();
  const signature = createHmac('sha256', key).update(encoded).digest('hex');
  return [['key', 'browser/${filename}'], ['x-amz-algorithm', 'AWS4-HMAC-SHA256'], ['x-amz-credential', credential], ['x-amz-date', amzDate], ['policy', encoded], ['x-amz-signature', signature]];
}

function page(target: string, fields: [string, string][]): string {
  return `<!doctype html><html><body><input type="file" id="file"><script>
window.upload = () => new Promise((resolve) => {
  const data = new FormData();
  for (const [name, value] of ${JSON.stringify(fields)}) data.append(name, value);
  data.append('file', document.getElementById('file').files[0]);
  const xhr = new XMLHttpRequest();
  const progress = [];
  xhr.upload.onprogress = (event) => progress.push(event.loaded);
  xhr.onload = () => resolve({ status: xhr.status, etag: xhr.getResponseHeader('ETag'), progress });
  xhr.onerror = () => resolve({ status: xhr.status, error: true, progress });
  xhr.open('POST', ${JSON.stringify(target)});
  xhr.send(data);
});
</script></body></html>`;
}

async function listen(server: Server): Promise<string> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

interface UploadResult {
  status: number;
  etag?: string | null;
  error?: boolean;
  progress: number[];
}

test('a browser on another origin uploads a file with a POST form, as the bucket\'s CORS rules allow', { timeout: 180_000, skip: existsSync(CHROMIUM) ? false : `${CHROMIUM} is missing (Debian's chromium package)` }, async () => {
  const talus = await startTestTalus();
  const bucket = uniqueBucket('browser');
  const pages = createServer((request, response) => {
    response.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
    response.end(page(`${talus.url}/${bucket}`, policyFields(bucket)));
  });
  const strangerPages = createServer(pages.listeners('request')[0] as Parameters<typeof createServer>[1]);
  const userDataDir = await mkdtemp(join(tmpdir(), 'talus-chromium-'));
  let context: Awaited<ReturnType<typeof chromium.launchPersistentContext>> | undefined;
  try {
    const allowedOrigin = await listen(pages);
    const strangerOrigin = await listen(strangerPages);
    assert.equal((await signedRequest(talus.url, { method: 'PUT', path: `/${bucket}` })).status, 200);
    await talus.client.send(new PutBucketCorsCommand({
      Bucket: bucket,
      CORSConfiguration: { CORSRules: [{ AllowedOrigins: [allowedOrigin], AllowedMethods: ['POST', 'GET'], AllowedHeaders: ['*'], ExposeHeaders: ['ETag'] }] },
    }));
    context = await chromium.launchPersistentContext(userDataDir, {
      executablePath: CHROMIUM,
      headless: true,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
    });
    const file = randomBytes(3 * 1024 * 1024);

    const allowed = await context.newPage();
    await allowed.goto(allowedOrigin);
    await allowed.setInputFiles('#file', { name: 'photo.bin', mimeType: 'application/octet-stream', buffer: file });
    const result = (await allowed.evaluate('upload()')) as UploadResult;
    assert.equal(result.status, 204, JSON.stringify(result));
    assert.ok(result.progress.length > 0, 'the upload reported progress');
    assert.equal(result.progress.at(-1), Math.max(...result.progress));
    assert.match(String(result.etag), /^"[0-9a-f]{32}"$/, 'the exposed ETag is readable');
    const stored = await talus.client.send(new GetObjectCommand({ Bucket: bucket, Key: 'browser/photo.bin' }));
    assert.ok(Buffer.from(await stored.Body!.transformToByteArray()).equals(file), 'the object holds the file\'s bytes');

    // An origin no rule names: the browser withholds the answer from the page.
    const stranger = await context.newPage();
    await stranger.goto(strangerOrigin);
    await stranger.setInputFiles('#file', { name: 'stranger.bin', mimeType: 'application/octet-stream', buffer: Buffer.from('not for you') });
    const blocked = (await stranger.evaluate('upload()')) as UploadResult;
    assert.equal(blocked.error, true, JSON.stringify(blocked));
    assert.equal(blocked.status, 0);
  } finally {
    await context?.close();
    pages.close();
    strangerPages.close();
    await talus.stop();
    await rm(userDataDir, { recursive: true, force: true });
  }
});
