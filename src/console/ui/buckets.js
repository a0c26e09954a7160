// The buckets: list, create, open one by name (a key allowed into a bucket may not be allowed to list them all).
import { useEffect, useState } from 'preact/hooks';
import { listBuckets, s3 } from './api.js';
import { ErrorBox, formatTime, html } from './html.js';

export function BucketsPage() {
  const [buckets, setBuckets] = useState([]);
  const [error, setError] = useState(null);
  const [version, setVersion] = useState(0);
  useEffect(() => {
    listBuckets().then((found) => {
      setBuckets(found);
      setError(null);
    }, setError);
  }, [version]);
  async function create(event) {
    event.preventDefault();
    const name = event.currentTarget.bucket.value.trim();
    try {
      await s3('PUT', name);
      event.target.reset();
      setVersion(version + 1);
    } catch (failure) {
      setError(failure);
    }
  }
  function open(event) {
    event.preventDefault();
    const name = event.currentTarget.bucket.value.trim();
    if (name) location.hash = `#/b/${encodeURIComponent(name)}/`;
  }
  return html`<h1>Buckets</h1>
    <${ErrorBox} error=${error} />
    <div class="row">
      <form class="row" onSubmit=${create}><input name="bucket" placeholder="new-bucket" required aria-label="New bucket name" /><button class="primary" type="submit">Create bucket</button></form>
      <form class="row" onSubmit=${open}><input name="bucket" placeholder="bucket name" required aria-label="Open bucket by name" /><button type="submit">Open</button></form>
    </div>
    <table>
      <thead><tr><th>Name</th><th>Created</th></tr></thead>
      <tbody>
        ${buckets.map((bucket) => html`<tr key=${bucket.name}><td><a href=${`#/b/${encodeURIComponent(bucket.name)}/`}>${bucket.name}</a></td><td>${formatTime(bucket.created)}</td></tr>`)}
        ${buckets.length === 0 ? html`<tr><td colspan="2" class="note">No buckets.</td></tr>` : null}
      </tbody>
    </table>`;
}
