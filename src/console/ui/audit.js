// The audit log: admin API calls and refused S3 requests, newest first,
// queried by time, caller and operation (the admin API's QueryAuditLog, run as the session's key).
import { useEffect, useState } from 'preact/hooks';
import { admin } from './api.js';
import { ErrorBox, formatTime, html } from './html.js';

const LIMIT = 200;

/** A datetime-local input's value as ms since the epoch, or undefined when empty. */
function msOf(value) {
  if (value === '') return undefined;
  const ms = new Date(value).getTime();
  return Number.isNaN(ms) ? undefined : ms;
}

export function AuditPage() {
  const [entries, setEntries] = useState(null);
  const [error, setError] = useState(null);
  async function query(form) {
    const input = { limit: LIMIT };
    if (form) {
      const sinceMs = msOf(form.since.value);
      const untilMs = msOf(form.until.value);
      if (sinceMs !== undefined) input.sinceMs = sinceMs;
      if (untilMs !== undefined) input.untilMs = untilMs;
      if (form.principal.value.trim() !== '') input.principal = form.principal.value.trim();
      if (form.operation.value.trim() !== '') input.operation = form.operation.value.trim();
      if (form.kind.value !== '') input.kind = form.kind.value;
    }
    setError(null);
    try {
      setEntries((await admin('QueryAuditLog', input)).entries);
    } catch (failure) {
      setError(failure);
    }
  }
  useEffect(() => {
    query(undefined);
  }, []);
  function submit(event) {
    event.preventDefault();
    query(event.currentTarget);
  }
  return html`<h1>Audit log</h1>
    <form class="row card" onSubmit=${submit}>
      <label>From <input name="since" type="datetime-local" aria-label="Since" /></label>
      <label>to <input name="until" type="datetime-local" aria-label="Until" /></label>
      <input name="principal" placeholder="caller (root, a user)" aria-label="Caller" />
      <input name="operation" placeholder="operation" aria-label="Operation" />
      <select name="kind" aria-label="Kind"><option value="">all</option><option value="admin">admin calls</option><option value="s3-denied">refused S3 requests</option></select>
      <button class="primary" type="submit">Query</button>
    </form>
    <${ErrorBox} error=${error} />
    ${entries ? html`<table data-testid="audit">
      <thead><tr><th>Time</th><th>Kind</th><th>Caller</th><th>Operation</th><th>Status</th><th>Detail</th><th>From</th></tr></thead>
      <tbody>${entries.map((entry) => html`<tr key=${entry.requestId} data-operation=${entry.operation}>
        <td>${formatTime(new Date(entry.timeMs).toISOString())}</td><td>${entry.kind}</td>
        <td>${entry.principal}${entry.accessKeyId ? html` <code>${entry.accessKeyId}</code>` : null}</td>
        <td>${entry.operation}</td><td>${entry.status}</td>
        <td class="note">${[entry.code, entry.reason, entry.bucket, entry.key].filter((part) => part).join(' · ')}${entry.droppedBefore ? ` (${entry.droppedBefore} entries dropped before)` : ''}</td>
        <td>${entry.sourceIp ?? ''}</td>
      </tr>`)}
      ${entries.length === 0 ? html`<tr><td colspan="7" class="note">No entries.</td></tr>` : null}</tbody>
    </table>${entries.length === LIMIT ? html`<p class="note">The newest ${LIMIT} shown: narrow the time to see older ones.</p>` : null}` : null}`;
}
