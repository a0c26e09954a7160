// Heal and purge queues, and incomplete multipart uploads: thin client of the
// admin API's GetHealStatus, StartHeal, CancelHeal, ListIncompleteUploads and
// AbortIncompleteUploads (each run as the session's key).
import { useEffect, useState } from 'preact/hooks';
import { admin } from './api.js';
import { ErrorBox, formatTime, html } from './html.js';

const REFRESH_MS = 3000;
const DAY_SECONDS = 86400;
const when = (ms) => (ms === null || ms === undefined ? '–' : formatTime(new Date(ms).toISOString()));

function HealQueues() {
  const [status, setStatus] = useState(null);
  const [error, setError] = useState(null);
  const [version, setVersion] = useState(0);
  useEffect(() => {
    let stopped = false;
    const load = () => admin('GetHealStatus').then((answer) => !stopped && setStatus(answer), (failure) => !stopped && setError(failure));
    load();
    const timer = setInterval(load, REFRESH_MS);
    return () => {
      stopped = true;
      clearInterval(timer);
    };
  }, [version]);
  async function act(operation, input) {
    setError(null);
    try {
      await admin(operation, input);
    } catch (failure) {
      setError(failure);
    }
    setVersion((n) => n + 1);
  }
  const pass = status?.pass;
  // CancelHeal also stops the background pass once it has work in hand (its scan or re-placement, or repairs under way).
  const background = status?.background;
  const backgroundBusy = background?.running === true && (background.phase === 'scan' || background.phase === 'replace' || (background.phase === 'repairs' && background.progress));
  return html`<h1>Heal and purge queues</h1>
    <${ErrorBox} error=${error} />
    ${status ? html`<div class="stats">
      <div class="stat"><span class="note">Shards to repair</span><b data-testid="repairs-pending">${status.repairs.pending}</b></div>
      <div class="stat"><span class="note">Oldest repair queued</span><b>${when(status.repairs.oldestRecordedMs)}</b></div>
      <div class="stat"><span class="note">Blobs to purge</span><b data-testid="purge-blobs">${status.purge.blobs}</b></div>
      <div class="stat"><span class="note">Next purge due</span><b>${when(status.purge.oldestDueMs)}</b></div>
      <div class="stat"><span class="note">Healing pass</span><b data-testid="heal-pass">${pass ? pass.state : 'none'}</b></div>
      ${background ? html`<div class="stat"><span class="note">Background healing</span><b data-testid="heal-background">${background.running ? background.phase : 'idle'}</b></div>` : null}
    </div>
    ${background ? html`<p class="note">Next background scan ${when(background.nextScanMs)}${background.cancelledMs ? `; last cancelled ${when(background.cancelledMs)}` : ''}.</p>` : null}
    ${pass ? html`<p class="note">Pass begun ${when(pass.startedMs)}${pass.deep ? ' (deep)' : ''}${pass.finishedMs ? `, ended ${when(pass.finishedMs)}` : ''}.</p>` : null}
    <div class="row">
      <button class="primary" disabled=${!status.placements} onClick=${() => act('StartHeal', {})}>Start heal</button>
      <button disabled=${!status.placements} onClick=${() => act('StartHeal', { deep: true })}>Start deep heal</button>
      <button disabled=${pass?.state !== 'running' && pass?.state !== 'waiting' && !backgroundBusy} onClick=${() => act('CancelHeal', {})}>Cancel heal</button>
      ${status.placements ? null : html`<span class="note">No placements are configured: nothing to heal.</span>`}
    </div>
    ${status.repairs.sample.length > 0 ? html`<table data-testid="repair-sample"><thead><tr><th>Queued repair (blob)</th><th>Shard</th><th>Reason</th><th>Attempts</th><th>Recorded</th></tr></thead><tbody>
      ${status.repairs.sample.map((entry) => html`<tr key=${`${entry.blobId}/${entry.shard}`}><td><code>${entry.blobId}</code></td><td>${entry.shard}</td><td>${entry.reason}</td><td>${entry.attempts}</td><td>${when(entry.recordedMs)}</td></tr>`)}
    </tbody></table>` : null}` : null}`;
}

function IncompleteUploads() {
  const [bucket, setBucket] = useState('');
  const [uploads, setUploads] = useState(null);
  const [message, setMessage] = useState(null);
  const [error, setError] = useState(null);
  async function list(event) {
    event?.preventDefault();
    const name = event ? event.currentTarget.bucketName.value.trim() : bucket;
    setBucket(name);
    setError(null);
    try {
      setUploads((await admin('ListIncompleteUploads', { bucket: name, limit: 200 })).uploads);
    } catch (failure) {
      setError(failure);
    }
  }
  async function abort(event) {
    event.preventDefault();
    const days = Number(event.currentTarget.days.value);
    setError(null);
    try {
      let aborted = 0;
      for (;;) {
        const answer = await admin('AbortIncompleteUploads', { bucket, olderThanSeconds: Math.round(days * DAY_SECONDS) });
        aborted += answer.aborted;
        if (!answer.more) break;
      }
      setMessage(`${aborted} upload(s) aborted.`);
      await list();
    } catch (failure) {
      setError(failure);
    }
  }
  return html`<h2>Incomplete multipart uploads</h2>
    <form class="row" onSubmit=${list}><input name="bucketName" placeholder="bucket" required aria-label="Bucket of uploads" /><button type="submit">List uploads</button></form>
    <${ErrorBox} error=${error} />
    ${message ? html`<p class="note" data-testid="abort-result">${message}</p>` : null}
    ${uploads ? html`<table data-testid="uploads">
      <thead><tr><th>Key</th><th>Upload</th><th>Begun</th></tr></thead>
      <tbody>${uploads.map((upload) => html`<tr key=${upload.uploadId}><td>${upload.key}</td><td><code>${upload.uploadId}</code></td><td>${when(upload.createdMs)}</td></tr>`)}
      ${uploads.length === 0 ? html`<tr><td colspan="3" class="note">No incomplete uploads in ${bucket}.</td></tr>` : null}</tbody>
    </table>
    <form class="row" onSubmit=${abort}><label>Abort those older than <input name="days" type="number" min="0" step="any" value="7" aria-label="Older than days" class="narrow" /> days</label><button class="danger" type="submit">Abort uploads</button></form>` : null}`;
}

export function QueuesPage() {
  return html`<${HealQueues} /><${IncompleteUploads} />`;
}
