/**
 * The console's PDF preview in a real browser (issue 13): Debian's chromium,
 * driven by playwright-core, against a real Talus. Browsers refuse their PDF
 * viewer inside the CSP sandbox objects are served with, so the console
 * draws PDFs with pdf.js, loaded only when a PDF is previewed.
 *
 * Method: two PDFs written by hand (a page with a big black rectangle; the
 * same with an /OpenAction JavaScript that would open a dialog and send a
 * request to a listener of this test), and text in Helvetica, a standard
 * font it does not embed. Preview each: the canvas holds dark pixels, pdf.js was fetched only then, and the script ran nothing (no
 * dialog, no request, no page error, no CSP violation).
 * The backends page in the same session: each backend's latency chart (an
 * SVG line over its last probes, ListBackends' latencyHistory) is drawn.
 * Skipped only where /usr/bin/chromium is missing.
 */
import { PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { type BrowserContext, type Page, chromium } from 'playwright-core';
import { AdminClient } from '../src/admin/client.ts';
import { parseConfig } from '../src/config/config.ts';
import { startTalus } from '../src/talus.ts';
import { silentLogger } from '../src/util/logger.ts';

const CHROMIUM = '/usr/bin/chromium';
const ROOT = { accessKeyId: 'PDFROOTKEY', secretAccessKey: 'pdf-root-secret-0123456789abcdef' };
const BUCKET = 'papers';

const BLACK_SQUARE = '0 0 0 rg 20 20 160 160 re f\n';
/** Text in Helvetica, one of the 14 standard fonts a PDF may use without embedding it. */
const STANDARD_FONT_TEXT = 'BT /F1 120 Tf 10 60 Td (WW) Tj ET\n';
const STANDARD_FONT_RESOURCES = '/Resources << /Font << /F1 << /Type /Font /Subtype /Type1 /BaseFont /Helvetica-Bold >> >> >> ';

/** A one-page PDF (200 × 200 points) of `drawing`; `catalogExtra` and `extraObjects` add to it. */
function handWrittenPdf({ drawing = BLACK_SQUARE, resources = '', catalogExtra = '', extraObjects = [] as string[] } = {}): Buffer {
  const objects = [
    `<< /Type /Catalog /Pages 2 0 R ${catalogExtra}>>`,
    '<< /Type /Pages /Kids [3 0 R] /Count 1 >>',
    `<< /Type /Page /Parent 2 0 R /MediaBox [0 0 200 200] /Contents 4 0 R ${resources}>>`,
    `<< /Length ${drawing.length} >>\nstream\n${drawing}endstream`,
    ...extraObjects,
  ];
  let text = '%PDF-1.4\n';
  const offsets: number[] = [];
  objects.forEach((body, index) => {
    offsets.push(Buffer.byteLength(text));
    text += `${index + 1} 0 obj\n${body}\nendobj\n`;
  });
  const xref = Buffer.byteLength(text);
  text += `xref\n0 ${objects.length + 1}\n0000000000 65535 f \n${offsets.map((offset) => `${String(offset).padStart(10, '0')} 00000 n \n`).join('')}`;
  text += `trailer\n<< /Size ${objects.length + 1} /Root 1 0 R >>\nstartxref\n${xref}\n%%EOF\n`;
  return Buffer.from(text, 'latin1');
}

/** Opens the preview of `key` and answers how many of its canvas's pixels are dark. */
async function previewDarkPixels(page: Page, key: string): Promise<number> {
  await page.locator(`tr[data-key="${key}"]`).getByRole('button', { name: 'Preview' }).click();
  const canvas = page.getByTestId('pdf-page').first();
  await canvas.waitFor({ timeout: 30_000 });
  // Rendering ends after the canvas is in place: wait for ink.
  const handle = await canvas.elementHandle();
  await page.waitForFunction((element) => {
    const canvasElement = element as HTMLCanvasElement;
    const pixels = canvasElement.getContext('2d')!.getImageData(0, 0, canvasElement.width, canvasElement.height).data;
    for (let index = 0; index < pixels.length; index += 4) if (pixels[index + 3]! > 0 && pixels[index]! < 64) return true;
    return false;
  }, handle, { timeout: 30_000 });
  return canvas.evaluate((element) => {
    const canvasElement = element as HTMLCanvasElement;
    const pixels = canvasElement.getContext('2d')!.getImageData(0, 0, canvasElement.width, canvasElement.height).data;
    let dark = 0;
    for (let index = 0; index < pixels.length; index += 4) if (pixels[index + 3]! > 0 && pixels[index]! < 64 && pixels[index + 1]! < 64 && pixels[index + 2]! < 64) dark++;
    return dark / (pixels.length / 4);
  });
}

test('PDF preview: pdf.js draws the first page on a canvas, loaded only then, and a PDF\'s JavaScript runs nothing; the backends\' latency chart', { timeout: 120_000, skip: existsSync(CHROMIUM) ? false : `${CHROMIUM} is missing (Debian's chromium package)` }, async () => {
  const dataDir = await mkdtemp(join(tmpdir(), 'talus-console-pdf-'));
  const userDataDir = await mkdtemp(join(tmpdir(), 'talus-chromium-pdf-'));
  // A directory backend probed often, for the backends page's latency chart.
  const disks = await mkdtemp(join(tmpdir(), 'talus-console-pdf-disks-'));
  await mkdir(join(disks, 'disk0'));
  const config = parseConfig(`[health]\nprobe_interval = "100ms"\n[backends.disk0]\ntype = "directory"\npath = "${join(disks, 'disk0')}"\n[placements.one]\ntype = "single"\nbackend = "disk0"\n`, { source: 'test', baseDirectory: disks });
  const talus = await startTalus({ dataDir, port: 0, address: '127.0.0.1', rootAccessKeyId: ROOT.accessKeyId, rootSecretAccessKey: ROOT.secretAccessKey, admin: { port: 0, address: '127.0.0.1' }, config, healInBackground: false, logger: silentLogger });
  const s3 = new S3Client({ endpoint: talus.url, region: 'us-east-1', forcePathStyle: true, credentials: ROOT });
  // Whatever the PDF's script would reach: a request here, or a dialog, is the script running.
  const reached: string[] = [];
  const listener = createServer((request, response) => {
    reached.push(request.url ?? '');
    response.end();
  });
  await new Promise<void>((resolve) => listener.listen(0, '127.0.0.1', resolve));
  const trap = `http://127.0.0.1:${(listener.address() as AddressInfo).port}/pdf-script-ran`;
  let context: BrowserContext | undefined;
  try {
    await new AdminClient({ endpoint: talus.adminUrl!, ...ROOT }).call('CreateBucket', { name: BUCKET });
    await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'plain.pdf', Body: handWrittenPdf(), ContentType: 'application/pdf' }));
    const script = `app.alert("pdf script ran"); this.submitForm("${trap}"); app.launchURL("${trap}", true);`;
    const scripted = handWrittenPdf({
      catalogExtra: '/OpenAction 5 0 R /Names << /JavaScript << /Names [(run) 5 0 R] >> >> ',
      extraObjects: [`<< /Type /Action /S /JavaScript /JS (${script.replaceAll('(', '\\(').replaceAll(')', '\\)')}) >>`],
    });
    await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'scripted.pdf', Body: scripted, ContentType: 'application/pdf' }));
    await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'text.pdf', Body: handWrittenPdf({ drawing: STANDARD_FONT_TEXT, resources: STANDARD_FONT_RESOURCES }), ContentType: 'application/pdf' }));

    context = await chromium.launchPersistentContext(userDataDir, {
      executablePath: CHROMIUM,
      headless: true,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
      viewport: { width: 1100, height: 900 },
    });
    const page = context.pages()[0] ?? (await context.newPage());
    const problems: string[] = [];
    const fetched: string[] = [];
    page.on('pageerror', (error) => problems.push(`page error: ${String(error)}`));
    page.on('dialog', (dialog) => {
      problems.push(`dialog: ${dialog.message()}`);
      void dialog.dismiss();
    });
    page.on('console', (message) => {
      if (process.env['PDF_DEBUG']) console.log('CONSOLE', message.type(), message.text());
      if (/Content Security Policy|Refused to/i.test(message.text())) problems.push(`CSP: ${message.text()}`);
    });
    context.on('request', (request) => fetched.push(request.url()));

    await page.goto(`${talus.adminUrl}/console/`);
    await page.getByLabel('Access key').fill(ROOT.accessKeyId);
    await page.getByLabel('Secret key').fill(ROOT.secretAccessKey);
    await page.getByRole('button', { name: 'Log in' }).click();
    await page.getByTestId('principal').waitFor();
    await page.getByRole('link', { name: BUCKET, exact: true }).click();
    await page.locator('tr[data-key="plain.pdf"]').waitFor();
    assert.ok(!fetched.some((url) => url.includes('pdf.min.mjs') || url.includes('pdf.worker')), 'pdf.js is not part of the first load');

    const dark = await previewDarkPixels(page, 'plain.pdf');
    // The rectangle covers (160/200)² = 64 % of the page.
    assert.ok(dark > 0.4 && dark < 0.8, `the rectangle is drawn (dark share ${dark})`);
    assert.ok(fetched.some((url) => url.endsWith('/console/vendor/pdf.min.mjs')), 'pdf.js loaded for the preview');
    assert.ok(page.workers().some((worker) => worker.url().endsWith('/console/vendor/pdf.worker.min.mjs')), 'its worker, a real one (the page\'s CSP allows it)');
    assert.ok(fetched.some((url) => url.includes(`/console/s3/${BUCKET}/plain.pdf`)), 'the bytes came through the console\'s download path');
    await page.getByRole('button', { name: 'Close' }).click();

    // Text in a standard font is drawn: its glyphs come from pdf.js's fonts, served on demand.
    assert.ok(await previewDarkPixels(page, 'text.pdf') > 0.05, 'text in Helvetica is drawn');
    assert.ok(fetched.some((url) => url.includes('/console/vendor/pdf-fonts/')), 'with a standard font fetched by the page');
    await page.getByRole('button', { name: 'Close' }).click();

    assert.ok(await previewDarkPixels(page, 'scripted.pdf') > 0.4, 'the scripted PDF is drawn too');
    // Give a script that would run a moment to act.
    await page.waitForTimeout(1_000);
    assert.deepEqual(reached, [], 'the PDF\'s script sent no request');
    assert.ok(!fetched.some((url) => url.includes('pdf-script-ran')));

    // The backends page: a latency chart per backend, a line through its probes.
    await page.getByRole('link', { name: 'Backends' }).click();
    const chartPath = page.locator('tr[data-backend="disk0"]').getByTestId('latency-chart').locator('path');
    await chartPath.waitFor({ timeout: 30_000 });
    const points = ((await chartPath.getAttribute('d')) ?? '').match(/[ML]/g) ?? [];
    assert.ok(points.length >= 2 && points[0] === 'M', `a line through the probes: ${points.length} points`);
    assert.deepEqual(problems, []);
  } finally {
    await context?.close();
    s3.destroy();
    listener.close();
    await talus.close();
    await rm(dataDir, { recursive: true, force: true });
    await rm(userDataDir, { recursive: true, force: true });
    await rm(disks, { recursive: true, force: true });
  }
});
