// htm bound to Preact: JSX-like templates as tagged template literals, with
// no build step. Every ${value} in text or an attribute is set as data
// (text nodes, properties), never parsed as HTML: an object key or a
// metadata value cannot become markup.
import { h } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import htm from 'htm';

export const html = htm.bind(h);

export function formatBytes(bytes) {
  if (!Number.isFinite(bytes)) return '';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0 ? `${value} B` : `${value.toFixed(1)} ${units[unit]}`;
}

export function formatTime(iso) {
  if (!iso) return '';
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? iso : date.toLocaleString();
}

export function ErrorBox({ error }) {
  return error ? html`<div class="error" role="alert">${error.message ?? String(error)}</div>` : null;
}

/**
 * A component whose module loads when first shown (a dynamic import, allowed by
 * the page's script-src 'self'): the operators' pages and the PDF preview stay
 * out of the first load, which every user pays.
 */
export function lazyComponent(load) {
  let loaded;
  return function LazyComponent(props) {
    const [Page, setPage] = useState(() => loaded);
    const [error, setError] = useState(null);
    useEffect(() => {
      if (Page === undefined) load().then((component) => setPage(() => (loaded = component)), setError);
    }, []);
    if (error) return html`<${ErrorBox} error=${error} />`;
    return Page === undefined ? html`<p class="note">Loading…</p>` : html`<${Page} ...${props} />`;
  };
}
