/**
 * The console's static files: the page, its style, its ES modules
 * (src/console/ui/*.js, plain JavaScript: there is no build step for the
 * browser) and the two libraries they import (preact, htm) from
 * node_modules. All are read once, at the first request, and kept in memory
 * with their gzip form: the whole set is about 60 KB uncompressed.
 *
 * pdf.js (the PDF preview's, 1.7 MB, and its standard fonts) is read and
 * compressed only when first asked for (onDemandAsset): most consoles never
 * preview a PDF.
 *
 * The page's import map is the one inline script; the Content-Security-Policy
 * admits it by its SHA-256 and nothing else inline.
 */
import { createHash } from 'node:crypto';
import { readFileSync, readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';

export interface ConsoleAsset {
  readonly type: string;
  readonly body: Buffer;
  readonly gzipped: Buffer;
  readonly etag: string;
}

export interface ConsoleAssets {
  /** By path below /console/ ('' is the page). */
  readonly files: ReadonlyMap<string, ConsoleAsset>;
  /** The page's Content-Security-Policy (with the import map's hash). */
  readonly pageCsp: string;
}

/** Where the browser modules are: two levels below the package root, from src/console/ and from dist/console/ alike. */
const UI_DIRECTORY = fileURLToPath(new URL('../../src/console/ui/', import.meta.url));

const TYPES: Record<string, string> = {
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.html': 'text/html; charset=utf-8',
};

/** The libraries, as the import map names them, and their ES module files (beside each package's main file, dist/). */
const VENDOR = [
  { name: 'preact', path: 'vendor/preact.js', file: ['preact', 'preact.module.js'] },
  { name: 'preact/hooks', path: 'vendor/preact-hooks.js', file: ['preact', '../hooks/dist/hooks.module.js'] },
  { name: 'htm', path: 'vendor/htm.js', file: ['htm', 'htm.module.js'] },
] as const;

/** Files read when first asked for, by path below /console/: pdf.js's module and its worker (pdfjs-dist's build/). */
const ON_DEMAND: ReadonlyMap<string, string> = new Map([
  ['vendor/pdf.min.mjs', 'pdfjs-dist/build/pdf.min.mjs'],
  ['vendor/pdf.worker.min.mjs', 'pdfjs-dist/build/pdf.worker.min.mjs'],
]);
/**
 * pdf.js's standard fonts (pdfjs-dist's standard_fonts/, 0.8 MB): the glyphs
 * of the 14 fonts a PDF may use without embedding them (Helvetica, Times…),
 * without which their text is not drawn. Fetched by the page, one file at a
 * time, only for a PDF that uses one.
 */
export const PDF_FONTS_PATH = 'vendor/pdf-fonts/';
const PDF_FONT_FILE = /^[A-Za-z0-9-]{1,64}\.(?:pfb|ttf)$/;
const FONT_TYPE = 'application/octet-stream';

let loaded: ConsoleAssets | undefined;
const loadedOnDemand = new Map<string, ConsoleAsset>();

export function consoleAssets(): ConsoleAssets {
  loaded ??= loadAssets();
  return loaded;
}

/** A file of ON_DEMAND or a standard font, read and compressed at its first request (undefined: no such file). */
export function onDemandAsset(path: string): ConsoleAsset | undefined {
  const cached = loadedOnDemand.get(path);
  if (cached !== undefined) return cached;
  const require = createRequire(import.meta.url);
  let found: ConsoleAsset | undefined;
  const module = ON_DEMAND.get(path);
  if (module !== undefined) {
    found = asset(TYPES['.js']!, readFileSync(require.resolve(module)));
  } else if (path.startsWith(PDF_FONTS_PATH)) {
    // The name has no slash or dot but its extension's: nothing outside standard_fonts/ can be named.
    const name = path.slice(PDF_FONTS_PATH.length);
    if (!PDF_FONT_FILE.test(name)) return undefined;
    const fonts = join(dirname(require.resolve('pdfjs-dist/build/pdf.min.mjs')), '../standard_fonts');
    if (!readdirSync(fonts).includes(name)) return undefined;
    found = asset(FONT_TYPE, readFileSync(join(fonts, name)));
  }
  if (found !== undefined) loadedOnDemand.set(path, found);
  return found;
}

function loadAssets(): ConsoleAssets {
  const files = new Map<string, ConsoleAsset>();
  const require = createRequire(import.meta.url);
  for (const name of readdirSync(UI_DIRECTORY)) {
    const type = TYPES[name.slice(name.lastIndexOf('.'))];
    if (type === undefined || name === 'index.html') continue;
    files.set(`ui/${name}`, asset(type, readFileSync(join(UI_DIRECTORY, name))));
  }
  const imports: Record<string, string> = {};
  for (const vendor of VENDOR) {
    // htm's exports hide its package.json: start from its main file.
    const dist = dirname(require.resolve(vendor.file[0]));
    files.set(vendor.path, asset(TYPES['.js']!, readFileSync(join(dist, vendor.file[1]))));
    imports[vendor.name] = `/console/${vendor.path}`;
  }
  const importMap = JSON.stringify({ imports });
  const page = readFileSync(join(UI_DIRECTORY, 'index.html'), 'utf8').replace('<!--import-map-->', `<script type="importmap">${importMap}</script>`);
  files.set('', asset(TYPES['.html']!, Buffer.from(page)));
  const importMapHash = createHash('sha256').update(importMap).digest('base64');
  return { files, pageCsp: consolePageCsp(`'sha256-${importMapHash}'`) };
}

/**
 * The console's own pages: scripts only from this origin (and the import
 * map by hash), no plugins, no framing by anyone, forms and fetches only to
 * this origin; images may be blob:/data: (previews of the user's objects).
 */
export function consolePageCsp(importMapSource: string): string {
  return [
    "default-src 'self'",
    `script-src 'self' ${importMapSource}`,
    "style-src 'self'",
    "img-src 'self' data: blob:",
    "object-src 'none'",
    "base-uri 'none'",
    "form-action 'self'",
    "frame-ancestors 'none'",
    "frame-src 'self'",
    "connect-src 'self'",
  ].join('; ');
}

function asset(type: string, body: Buffer): ConsoleAsset {
  return { type, body, gzipped: gzipSync(body, { level: 9 }), etag: `"${createHash('sha256').update(body).digest('base64url').slice(0, 22)}"` };
}
