// A bucket's objects: prefix navigation, paging, search by prefix, upload with
// progress, download, preview (sandboxed), versions, share links, and the
// bucket's settings (versioning, public read, quota, delete).
import { useEffect, useState } from 'preact/hooks';
import { abortUpload, admin, call, getBucketPolicy, getPublicRead, getTags, getVersioning, listObjects, listVersions, newUploadState, parsePairs, replaceMetadata, restoreVersion, resumeState, s3, s3Url, setBucketPolicy, setPublicRead, setTags, setVersioning, upload, uploadExists } from './api.js';
import { ErrorBox, formatBytes, formatTime, html, lazyComponent } from './html.js';
import { forgetUpload, isSameFile, rememberedUploadOf, rememberedUploads } from './upload-memory.js';

const PAGE_SIZE = 50;
/** pdf.js draws PDFs (browsers show none in a CSP sandbox); it loads only when a PDF is previewed. */
const PdfPreview = lazyComponent(() => import('./pdf-preview.js').then((module) => module.PdfPreview));
/** Larger PDFs are not previewed: pdf.js holds the whole file in the page's memory. */
const PREVIEW_PDF_BYTES_MAX = 32 * 1024 * 1024;
const SHARE_EXPIRIES = [
  [3600, '1 hour'],
  [86400, '1 day'],
  [7 * 86400, '7 days'],
];

const prefixHref = (bucket, prefix) => `#/b/${encodeURIComponent(bucket)}/${prefix.split('/').map(encodeURIComponent).join('/')}`;

function Crumbs({ bucket, prefix }) {
  const parts = prefix.split('/').filter((part) => part !== '');
  return html`<h1 class="crumbs"><a href="#/">Buckets</a> / <a href=${prefixHref(bucket, '')}>${bucket}</a>${parts.map((part, index) => html` / <a href=${prefixHref(bucket, `${parts.slice(0, index + 1).join('/')}/`)}>${part}</a>`)}</h1>`;
}

function BucketSettings({ bucket }) {
  const [versioning, setVersioningState] = useState(null);
  const [publicRead, setPublicReadState] = useState(null);
  const [confirmDelete, setConfirmDelete] = useState(false);
  const [error, setError] = useState(null);
  useEffect(() => {
    getVersioning(bucket).then(setVersioningState, () => setVersioningState(null));
    getPublicRead(bucket).then(setPublicReadState, () => setPublicReadState(null));
  }, [bucket]);
  async function act(action) {
    setError(null);
    try {
      await action();
    } catch (failure) {
      setError(failure);
    }
  }
  const toggleVersioning = () => act(async () => {
    const next = versioning === 'Enabled' ? 'Suspended' : 'Enabled';
    await setVersioning(bucket, next);
    setVersioningState(next);
  });
  const togglePublic = () => act(async () => {
    await setPublicRead(bucket, !publicRead);
    setPublicReadState(!publicRead);
  });
  const remove = () => act(async () => {
    await s3('DELETE', bucket);
    location.hash = '#/';
  });
  const [policy, setPolicy] = useState(null);
  const editPolicy = () => act(async () => setPolicy(policy === null ? await getBucketPolicy(bucket) : null));
  const savePolicy = (event) => {
    event.preventDefault();
    const written = event.currentTarget.policy.value;
    return act(async () => {
      await setBucketPolicy(bucket, written);
      setPolicy(null);
      setPublicReadState(await getPublicRead(bucket));
    });
  };
  return html`<div class="card">
    <div class="row">
      <span>Versioning: <b data-testid="versioning">${versioning ?? '?'}</b></span>
      <button onClick=${toggleVersioning}>${versioning === 'Enabled' ? 'Suspend versioning' : 'Enable versioning'}</button>
      <span>Public read: <b data-testid="public-read">${publicRead === null ? '?' : publicRead ? 'on' : 'off'}</b></span>
      <button onClick=${togglePublic}>${publicRead ? 'Make private' : 'Make public'}</button>
      ${confirmDelete
        ? html`<button class="danger" onClick=${remove}>Really delete bucket ${bucket}</button><button onClick=${() => setConfirmDelete(false)}>Cancel</button>`
        : html`<button class="danger" onClick=${() => setConfirmDelete(true)}>Delete bucket</button>`}
      <button onClick=${editPolicy}>${policy === null ? 'Edit policy' : 'Close policy'}</button>
    </div>
    <${BucketQuota} bucket=${bucket} />
    ${policy === null ? null : html`<form onSubmit=${savePolicy}>
      <textarea name="policy" rows="10" cols="90" aria-label="Bucket policy" spellcheck="false" value=${policy}></textarea>
      <div class="row"><button class="primary" type="submit">Save policy</button><span class="note">Empty removes the policy. S3 checks it as PutBucketPolicy does.</span></div>
    </form>`}
    <${ErrorBox} error=${error} />
  </div>`;
}

/** A limit field's value: a whole number, or null when left empty (unlimited). */
function limitValue(field) {
  const text = field.value.trim();
  return text === '' ? null : Number(text);
}

/**
 * The bucket's hard quota (admin:GetBucketQuota, admin:SetBucketQuota): what
 * it holds against its limits, and a form to change or clear them. Hidden
 * when the key may not read quotas.
 */
function BucketQuota({ bucket }) {
  const [quota, setQuota] = useState(undefined);
  const [error, setError] = useState(null);
  useEffect(() => {
    admin('GetBucketQuota', { bucket }).then(setQuota, () => setQuota(null));
  }, [bucket]);
  if (quota === undefined || quota === null) return null;
  async function change(limits) {
    setError(null);
    try {
      setQuota(await admin('SetBucketQuota', { bucket, ...limits }));
    } catch (failure) {
      setError(failure);
    }
  }
  function save(event) {
    event.preventDefault();
    const form = event.currentTarget;
    return change({ maxBytes: limitValue(form.maxBytes), maxObjects: limitValue(form.maxObjects) });
  }
  const limited = quota.usedBytes !== null;
  return html`<form class="row" data-testid="quota" onSubmit=${save}>
    <span>Quota: <b data-testid="quota-state">${limited
      ? `${formatBytes(quota.usedBytes)} of ${quota.maxBytes === null ? 'unlimited' : formatBytes(quota.maxBytes)}, ${quota.usedObjects} of ${quota.maxObjects ?? 'unlimited'} versions`
      : 'none'}</b></span>
    <input name="maxBytes" type="number" min="0" step="1" placeholder="max bytes" aria-label="Quota: maximum bytes" value=${quota.maxBytes ?? ''} />
    <input name="maxObjects" type="number" min="0" step="1" placeholder="max versions" aria-label="Quota: maximum versions" value=${quota.maxObjects ?? ''} />
    <button type="submit">Set quota</button>
    ${limited ? html`<button type="button" onClick=${() => change({})}>Clear quota</button>` : null}
    <${ErrorBox} error=${error} />
  </form>`;
}

/**
 * Uploads: drag and drop or pick files. A failed multipart upload can be
 * resumed (the parts already stored are kept) or cancelled. Each multipart
 * upload is remembered in the browser until it completes or is aborted, so
 * after the page was closed or reloaded, picking the same file again (same
 * name, size and modification time) for the same key offers to resume it,
 * and the bucket's remembered uploads are listed with Resume (pick the file)
 * and Abort.
 */
function Uploader({ bucket, prefix, onDone }) {
  const [uploads, setUploads] = useState([]);
  const [over, setOver] = useState(false);
  const [remembered, setRemembered] = useState([]);
  const [rememberedError, setRememberedError] = useState(null);
  const recall = () => setRemembered(rememberedUploads(bucket));
  useEffect(() => {
    let current = true;
    const entries = rememberedUploads(bucket);
    setRemembered(entries);
    // Forget what the server no longer has (completed or aborted elsewhere, expired by a lifecycle rule).
    Promise.all(entries.map(async (one) => {
      if (!(await uploadExists(bucket, one.key, one.uploadId))) forgetUpload(one.uploadId);
    })).then(() => current && setRemembered(rememberedUploads(bucket)), (failure) => current && setRememberedError(failure));
    return () => {
      current = false;
    };
  }, [bucket]);
  const updateEntry = (id, change) => setUploads((all) => all.map((one) => (one.id === id ? { ...one, ...change } : one)));
  function run(entry, file, state) {
    const update = (change) => updateEntry(entry.id, change);
    update({ state: 'uploading', error: null, resume: null, cancel: null, startOver: null, uploadState: state });
    upload(bucket, entry.key, file, (sent, total) => update({ percent: total === 0 ? 100 : Math.floor((sent * 100) / total) }), state)
      .then(() => {
        update({ percent: 100, state: 'done' });
        recall();
        onDone();
      }, (error) => update({
        state: 'failed',
        error,
        resume: () => run(entry, file, state),
        cancel: () => abortUpload(bucket, entry.key, state).then(() => {
          update({ state: 'cancelled', error: null, resume: null, cancel: null });
          recall();
        }, (failure) => update({ error: failure })),
      }));
  }
  /** Resumes a remembered upload with the file picked again: only the parts the server lacks (or holds wrong) are sent. */
  function resume(entry, file, known) {
    const update = (change) => updateEntry(entry.id, change);
    update({ state: 'checking', error: null, resume: null, startOver: null, uploadState: { uploadId: known.uploadId } });
    resumeState(bucket, known, file).then((state) => run(entry, file, state), (error) => {
      if (error.code !== 'NoSuchUpload') {
        update({ state: 'failed', error, resume: () => resume(entry, file, known) });
        return;
      }
      // The upload is gone (aborted, expired): forget it and upload the file afresh.
      forgetUpload(known.uploadId);
      recall();
      run(entry, file, newUploadState());
    });
  }
  function startOver(entry, file, known) {
    updateEntry(entry.id, { state: 'uploading', resume: null, startOver: null });
    abortUpload(bucket, known.key, { uploadId: known.uploadId }).then(() => {
      recall();
      run(entry, file, newUploadState());
    }, (error) => updateEntry(entry.id, { state: 'failed', error, startOver: () => startOver(entry, file, known) }));
  }
  function add(key, file) {
    const entry = { id: `${key}:${Date.now()}:${Math.random()}`, key, percent: 0, state: 'uploading', error: null, resume: null, cancel: null, startOver: null, uploadState: null };
    setUploads((all) => [entry, ...all]);
    return entry;
  }
  function start(files) {
    for (const file of files) {
      const key = prefix + file.name;
      const entry = add(key, file);
      const known = rememberedUploadOf(bucket, key, file);
      if (known === undefined) run(entry, file, newUploadState());
      else updateEntry(entry.id, { state: 'resumable', uploadState: { uploadId: known.uploadId }, resume: () => resume(entry, file, known), startOver: () => startOver(entry, file, known) });
    }
  }
  /** Resume from the list of remembered uploads: the file picked must be the one the upload was sending. */
  function resumePicked(known, file) {
    setRememberedError(null);
    if (file === undefined) return;
    if (!isSameFile(known, file)) {
      setRememberedError(new Error(`That is not the file this upload was sending: pick ${known.name} (${formatBytes(known.size)}, modified ${formatTime(new Date(known.lastModified).toISOString())}).`));
      return;
    }
    resume(add(known.key, file), file, known);
  }
  function abortRemembered(known) {
    setRememberedError(null);
    abortUpload(bucket, known.key, { uploadId: known.uploadId }).then(recall, setRememberedError);
  }
  const drop = (event) => {
    event.preventDefault();
    setOver(false);
    start([...event.dataTransfer.files]);
  };
  const active = new Set(uploads.map((one) => one.uploadState?.uploadId).filter((uploadId) => uploadId !== undefined));
  const waiting = remembered.filter((one) => !active.has(one.uploadId));
  return html`<div class=${over ? 'drop over' : 'drop'} onDragOver=${(event) => { event.preventDefault(); setOver(true); }} onDragLeave=${() => setOver(false)} onDrop=${drop}>
    Drop files here to upload them to <code>${prefix || '/'}</code>, or <input type="file" multiple aria-label="Choose files to upload" data-testid="upload-input" onChange=${(event) => { start([...event.currentTarget.files]); event.currentTarget.value = ''; }} />
    ${uploads.map((one) => html`<div class="row" key=${one.id} data-testid="upload">
      <code>${one.key}</code>
      <progress max="100" value=${one.percent}></progress>
      <span data-testid="upload-percent">${one.percent} %</span>
      <span data-testid="upload-state">${one.state}</span>
      ${one.state === 'resumable' ? html`<span class="note">An earlier upload of this file was not finished.</span>` : null}
      ${one.resume ? html`<button onClick=${one.resume}>Resume</button>` : null}
      ${one.startOver ? html`<button onClick=${one.startOver}>Start over</button>` : null}
      ${one.cancel ? html`<button onClick=${one.cancel}>Cancel upload</button>` : null}
      <${ErrorBox} error=${one.error} />
    </div>`)}
    ${waiting.length === 0 ? null : html`<div data-testid="remembered-uploads">
      <p class="note">Unfinished uploads begun in this browser: pick the same file to resume one.</p>
      ${waiting.map((one) => html`<div class="row" key=${one.uploadId} data-testid="remembered-upload" data-key=${one.key}>
        <code>${one.key}</code>
        <span>${one.name}, ${formatBytes(one.size)}, begun ${formatTime(new Date(one.startedMs).toISOString())}</span>
        <label class="button">Resume <input type="file" hidden aria-label=${`Pick ${one.name} to resume`} onChange=${(event) => { resumePicked(one, event.currentTarget.files[0]); event.currentTarget.value = ''; }} /></label>
        <button class="danger" onClick=${() => abortRemembered(one)}>Abort</button>
      </div>`)}
    </div>`}
    <${ErrorBox} error=${rememberedError} />
  </div>`;
}

function MetadataForm({ bucket, objectKey, type, metadata, onSaved }) {
  const [error, setError] = useState(null);
  async function save(event) {
    event.preventDefault();
    const form = event.currentTarget;
    setError(null);
    try {
      await replaceMetadata(bucket, objectKey, form.contentType.value.trim(), parsePairs(form.metadata.value));
      onSaved();
    } catch (failure) {
      setError(failure);
    }
  }
  return html`<form class="card" onSubmit=${save}>
    <label>Content type <input name="contentType" size="40" value=${type} aria-label="Content type" /></label>
    <textarea name="metadata" rows="4" cols="60" aria-label="Metadata" spellcheck="false" value=${metadata.map(([name, value]) => `${name.slice('x-amz-meta-'.length)}=${value}`).join('\n')}></textarea>
    <div class="row"><button class="primary" type="submit">Save metadata</button><span class="note">One name=value a line; saving copies the object onto itself (a new version where versioning is on).</span></div>
    <${ErrorBox} error=${error} />
  </form>`;
}

function Preview({ bucket, objectKey, onChange }) {
  const [head, setHead] = useState(null);
  const [error, setError] = useState(null);
  const [editing, setEditing] = useState(false);
  const [version, setVersion] = useState(0);
  useEffect(() => {
    s3('HEAD', bucket, objectKey).then((answer) => setHead(answer.headers), setError);
  }, [bucket, objectKey, version]);
  if (error) return html`<${ErrorBox} error=${error} />`;
  if (!head) return html`<p class="note">Loading…</p>`;
  const type = head.get('content-type') ?? '';
  const metadata = [...head.entries()].filter(([name]) => name.startsWith('x-amz-meta-'));
  const url = s3Url(bucket, objectKey);
  let view = html`<p class="note">No preview for ${type}: download it.</p>`;
  if (/^image\//.test(type)) view = html`<img src=${url} alt=${objectKey} />`;
  // A frame with no permissions (an opaque origin, no script); the answer also carries CSP sandbox and nosniff.
  else if (/^(text\/|application\/(json|xml)\b)|\+xml\b/.test(type)) view = html`<iframe sandbox="" src=${url} title=${objectKey} data-testid="preview-frame"></iframe>`;
  else if (/^application\/pdf\b/.test(type) && Number(head.get('content-length')) <= PREVIEW_PDF_BYTES_MAX) view = html`<${PdfPreview} bucket=${bucket} objectKey=${objectKey} key=${version} />`;
  const saved = () => {
    setEditing(false);
    setVersion((n) => n + 1);
    onChange();
  };
  return html`<div class="preview">
    <div class="row">Type <code>${type}</code>, ${formatBytes(Number(head.get('content-length')))} <button onClick=${() => setEditing(!editing)}>${editing ? 'Close metadata' : 'Edit metadata'}</button></div>
    ${editing ? html`<${MetadataForm} bucket=${bucket} objectKey=${objectKey} type=${type} metadata=${metadata} onSaved=${saved} />` : null}
    ${metadata.length > 0 ? html`<table data-testid="metadata"><tbody>${metadata.map(([name, value]) => html`<tr key=${name}><th>${name.slice('x-amz-meta-'.length)}</th><td>${value}</td></tr>`)}</tbody></table>` : null}
    ${view}
  </div>`;
}

function Versions({ bucket, objectKey, onChange }) {
  const [versions, setVersions] = useState([]);
  const [error, setError] = useState(null);
  const [version, setVersion] = useState(0);
  useEffect(() => {
    listVersions(bucket, objectKey).then(setVersions, setError);
  }, [bucket, objectKey, version]);
  async function act(action) {
    setError(null);
    try {
      await action();
      setVersion((n) => n + 1);
      onChange();
    } catch (failure) {
      setError(failure);
    }
  }
  return html`<${ErrorBox} error=${error} />
    <table data-testid="versions">
      <thead><tr><th>Version</th><th>Modified</th><th class="num">Size</th><th></th></tr></thead>
      <tbody>${versions.map((one) => html`<tr key=${one.versionId}>
        <td><code>${one.versionId}</code>${one.latest ? ' (latest)' : ''}${one.deleteMarker ? ' (delete marker)' : ''}</td>
        <td>${formatTime(one.modified)}</td>
        <td class="num">${one.deleteMarker ? '' : formatBytes(one.size)}</td>
        <td class="row">
          ${one.deleteMarker ? null : html`<a class="button" href=${s3Url(bucket, objectKey, { versionId: one.versionId })} download=${objectKey.split('/').pop()}>Download</a>`}
          ${one.latest || one.deleteMarker ? null : html`<button onClick=${() => act(() => restoreVersion(bucket, objectKey, one.versionId))}>Restore</button>`}
          <button class="danger" onClick=${() => act(() => s3('DELETE', bucket, objectKey, { versionId: one.versionId }))}>Delete version</button>
        </td>
      </tr>`)}</tbody>
    </table>`;
}

function Share({ bucket, objectKey }) {
  const [link, setLink] = useState(null);
  const [error, setError] = useState(null);
  async function make(event) {
    event.preventDefault();
    setError(null);
    try {
      setLink(await call('share', { bucket, key: objectKey, expiresSeconds: Number(event.currentTarget.expires.value) }));
    } catch (failure) {
      setError(failure);
    }
  }
  return html`<form class="row" onSubmit=${make}>
      <label>Expires in <select name="expires">${SHARE_EXPIRIES.map(([seconds, label]) => html`<option value=${seconds}>${label}</option>`)}</select></label>
      <button class="primary" type="submit">Make share link</button>
    </form>
    <${ErrorBox} error=${error} />
    ${link ? html`<p>Anyone with this link can download the object until ${new Date(link.expiresMs).toLocaleString()}:</p><input readonly size="80" value=${link.url} data-testid="share-url" onFocus=${(event) => event.currentTarget.select()} />` : null}`;
}

function Tags({ bucket, objectKey }) {
  const [tags, setTagsState] = useState(null);
  const [error, setError] = useState(null);
  const [saved, setSaved] = useState(false);
  useEffect(() => {
    getTags(bucket, objectKey).then(setTagsState, setError);
  }, [bucket, objectKey]);
  async function save(event) {
    event.preventDefault();
    setError(null);
    setSaved(false);
    const parsed = parsePairs(event.currentTarget.tags.value);
    try {
      await setTags(bucket, objectKey, parsed);
      setTagsState(parsed);
      setSaved(true);
    } catch (failure) {
      setError(failure);
    }
  }
  if (tags === null) return html`<${ErrorBox} error=${error} />`;
  return html`<form onSubmit=${save}>
    <textarea name="tags" rows="5" cols="60" aria-label="Tags" spellcheck="false" value=${tags.map(([name, value]) => `${name}=${value}`).join('\n')}></textarea>
    <div class="row"><button class="primary" type="submit">Save tags</button><span class="note">One key=value a line (at most 10).</span>${saved ? html`<span data-testid="tags-saved">Saved.</span>` : null}</div>
    <${ErrorBox} error=${error} />
  </form>`;
}

function ObjectPanel({ bucket, objectKey, mode, onClose, onChange }) {
  let body;
  if (mode === 'preview') body = html`<${Preview} bucket=${bucket} objectKey=${objectKey} onChange=${onChange} />`;
  else if (mode === 'versions') body = html`<${Versions} bucket=${bucket} objectKey=${objectKey} onChange=${onChange} />`;
  else if (mode === 'tags') body = html`<${Tags} bucket=${bucket} objectKey=${objectKey} />`;
  else body = html`<${Share} bucket=${bucket} objectKey=${objectKey} />`;
  return html`<div class="card" data-testid="object-panel">
    <div class="row"><b>${{ preview: 'Preview', versions: 'Versions', tags: 'Tags', share: 'Share' }[mode]}</b> <code>${objectKey}</code><button onClick=${onClose}>Close</button></div>
    ${body}
  </div>`;
}

export function ObjectsPage({ bucket, prefix }) {
  const [listing, setListing] = useState({ folders: [], objects: [], next: undefined });
  const [error, setError] = useState(null);
  const [version, setVersion] = useState(0);
  const [deleting, setDeleting] = useState(null);
  // Paging, search and the open panel belong to one place (bucket and prefix): derived at render, so
  // navigating resets them at once, and a search typed right after navigating is not wiped by a late reset.
  const place = `${bucket}\n${prefix}`;
  const [browse, setBrowse] = useState({ place, tokens: [undefined], search: '', panel: null });
  const { tokens, search, panel } = browse.place === place ? browse : { place, tokens: [undefined], search: '', panel: null };
  const update = (change) => setBrowse({ place, tokens, search, panel, ...change });
  const setTokens = (next) => update({ tokens: next });
  const setPanel = (next) => update({ panel: next });
  const token = tokens[tokens.length - 1];
  useEffect(() => {
    let current = true;
    listObjects(bucket, prefix + search, { token, pageSize: PAGE_SIZE }).then((found) => {
      if (!current) return;
      setListing(found);
      setError(null);
    }, (failure) => current && setError(failure));
    return () => {
      current = false;
    };
  }, [bucket, prefix, search, token, version]);
  const refresh = () => setVersion((n) => n + 1);
  async function remove(key) {
    setDeleting(null);
    try {
      await s3('DELETE', bucket, key);
      refresh();
    } catch (failure) {
      setError(failure);
    }
  }
  function newFolder(event) {
    event.preventDefault();
    const name = event.currentTarget.folder.value.trim().replace(/\/+$/, '');
    if (name) location.hash = prefixHref(bucket, `${prefix}${name}/`);
  }
  const name = (key) => key.slice(prefix.length);
  return html`<${Crumbs} bucket=${bucket} prefix=${prefix} />
    <${BucketSettings} bucket=${bucket} />
    <${Uploader} bucket=${bucket} prefix=${prefix} onDone=${refresh} />
    <div class="row">
      <input type="search" placeholder="Search by prefix" aria-label="Search by prefix" value=${search} onInput=${(event) => update({ search: event.currentTarget.value, tokens: [undefined] })} />
      <form class="row" onSubmit=${newFolder}><input name="folder" placeholder="folder" aria-label="New folder name" /><button type="submit">Open folder</button></form>
      <button onClick=${refresh}>Refresh</button>
    </div>
    <${ErrorBox} error=${error} />
    ${panel ? html`<${ObjectPanel} ...${panel} bucket=${bucket} onClose=${() => setPanel(null)} onChange=${refresh} />` : null}
    <table data-testid="objects">
      <thead><tr><th>Name</th><th class="num">Size</th><th>Modified</th><th></th></tr></thead>
      <tbody>
        ${listing.folders.map((folder) => html`<tr key=${`d:${folder}`}><td><a href=${prefixHref(bucket, folder)} data-testid="folder">${name(folder)}</a></td><td></td><td></td><td></td></tr>`)}
        ${listing.objects.map((object) => html`<tr key=${`o:${object.key}`} data-key=${object.key}>
          <td data-testid="object-name">${name(object.key)}</td>
          <td class="num">${formatBytes(object.size)}</td>
          <td>${formatTime(object.modified)}</td>
          <td class="row">
            <a class="button" href=${s3Url(bucket, object.key, { 'response-content-disposition': 'attachment' })} download=${object.key.split('/').pop()}>Download</a>
            <button onClick=${() => setPanel({ objectKey: object.key, mode: 'preview' })}>Preview</button>
            <button onClick=${() => setPanel({ objectKey: object.key, mode: 'versions' })}>Versions</button>
            <button onClick=${() => setPanel({ objectKey: object.key, mode: 'tags' })}>Tags</button>
            <button onClick=${() => setPanel({ objectKey: object.key, mode: 'share' })}>Share</button>
            ${deleting === object.key ? html`<button class="danger" onClick=${() => remove(object.key)}>Really delete</button>` : html`<button class="danger" onClick=${() => setDeleting(object.key)}>Delete</button>`}
          </td>
        </tr>`)}
        ${listing.folders.length + listing.objects.length === 0 ? html`<tr><td colspan="4" class="note">Nothing here.</td></tr>` : null}
      </tbody>
    </table>
    <div class="row">
      <button disabled=${tokens.length === 1} onClick=${() => setTokens(tokens.slice(0, -1))}>Previous page</button>
      <span class="note">Page ${tokens.length}</span>
      <button disabled=${listing.next === undefined} onClick=${() => setTokens([...tokens, listing.next])}>Next page</button>
    </div>`;
}
