// A PDF's first pages drawn on canvases by pdf.js. Browsers refuse their own
// PDF viewer inside the CSP sandbox every object is served with, so the
// console renders PDFs itself. This module (and pdf.js, 0.5 MB gzipped with
// its worker) loads only when a PDF is previewed: the first load stays as it
// was.
//
// What a PDF cannot do here: run its JavaScript (pdf.js's core has no
// scripting; the viewer's sandbox, which would run it, is not loaded),
// compile code (isEvalSupported: false, and the page's CSP has no
// 'unsafe-eval'), or reach the network (its bytes are handed to pdf.js; the
// worker runs under its own file's CSP, default-src 'none'; the only fetches
// are the page's own, of pdf.js's standard fonts on this origin). Its bytes
// come through the console's own download path (/console/s3/…), authorized
// as the session's key.
import { useEffect, useRef, useState } from 'preact/hooks';
import { s3Url } from './api.js';
import { ErrorBox, html } from './html.js';

const PDFJS_URL = '/console/vendor/pdf.min.mjs';
const PDFJS_WORKER_URL = '/console/vendor/pdf.worker.min.mjs';
/** The 14 standard fonts' glyphs (assets.ts's PDF_FONTS_PATH), for PDFs that use them without embedding them. */
const STANDARD_FONTS_URL = '/console/vendor/pdf-fonts/';
/** The pages drawn: a preview, not a reader (download the whole document). */
const PREVIEW_PAGES_MAX = 3;
/** CSS pixels across a page's canvas. */
const PAGE_WIDTH_PX = 640;

let pdfjs;
async function loadPdfjs() {
  if (pdfjs === undefined) {
    pdfjs = await import(PDFJS_URL);
    pdfjs.GlobalWorkerOptions.workerSrc = PDFJS_WORKER_URL;
  }
  return pdfjs;
}

export function PdfPreview({ bucket, objectKey }) {
  const holder = useRef(null);
  const [state, setState] = useState({ pages: 0, total: 0, error: null });
  useEffect(() => {
    let cancelled = false;
    let task;
    (async () => {
      const response = await fetch(s3Url(bucket, objectKey), { credentials: 'same-origin' });
      if (!response.ok) throw new Error(`the download answered HTTP ${response.status}`);
      const data = new Uint8Array(await response.arrayBuffer());
      const { getDocument } = await loadPdfjs();
      task = getDocument({
        data,
        isEvalSupported: false,
        enableXfa: false,
        // Glyphs drawn as paths: no font is installed in the page.
        disableFontFace: true,
        standardFontDataUrl: STANDARD_FONTS_URL,
        // The page fetches the fonts (its connect-src 'self'); the worker stays without any network access.
        useWorkerFetch: false,
      });
      const document = await task.promise;
      const shown = Math.min(document.numPages, PREVIEW_PAGES_MAX);
      for (let number = 1; number <= shown && !cancelled; number++) {
        const page = await document.getPage(number);
        const unscaled = page.getViewport({ scale: 1 });
        const viewport = page.getViewport({ scale: (PAGE_WIDTH_PX / unscaled.width) * (window.devicePixelRatio || 1) });
        const canvas = window.document.createElement('canvas');
        canvas.width = Math.ceil(viewport.width);
        canvas.height = Math.ceil(viewport.height);
        canvas.dataset.testid = 'pdf-page';
        canvas.setAttribute('aria-label', `page ${number}`);
        holder.current?.append(canvas);
        await page.render({ canvasContext: canvas.getContext('2d'), viewport }).promise;
        if (!cancelled) setState({ pages: number, total: document.numPages, error: null });
      }
    })().catch((error) => !cancelled && setState((previous) => ({ ...previous, error })));
    return () => {
      cancelled = true;
      task?.destroy();
      holder.current?.replaceChildren();
    };
  }, [bucket, objectKey]);
  return html`<div class="pdf" data-testid="pdf-preview">
    <${ErrorBox} error=${state.error} />
    ${state.total > state.pages && state.pages === PREVIEW_PAGES_MAX ? html`<p class="note">The first ${state.pages} of ${state.total} pages: download it to read on.</p>` : null}
    <div ref=${holder}></div>
  </div>`;
}
