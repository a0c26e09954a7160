// The buckets: list, create, open one by name (a key allowed into a bucket may
// not be allowed to list them all), with their storage statistics where the
// key may read them (admin:GetStorageStats).
import { useEffect, useState } from 'preact/hooks';
import { admin, listBuckets, s3 } from './api.js';
import { ErrorBox, formatBytes, formatTime, html } from './html.js';

/** GetStorageStats by bucket name, or null when the key may not call it (the page shows the list alone). */
async function storageStats() {
  try {
    const answer = await admin('GetStorageStats');
    return { buckets: new Map(answer.buckets.map((bucket) => [bucket.name, bucket])), disk: answer.disk, metadataBytes: answer.metadataBytes };
  } catch {
    return null;
  }
}

export function BucketsPage() {
  const [buckets, setBuckets] = useState([]);
  const [stats, setStats] = useState(null);
  const [error, setError] = useState(null);
  const [version, setVersion] = useState(0);
  useEffect(() => {
    listBuckets().then((found) => {
      setBuckets(found);
      setError(null);
    }, setError);
    storageStats().then(setStats);
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
    <table data-testid="buckets">
      <thead><tr><th>Name</th><th>Created</th>${stats ? html`<th>Placement</th><th class="num">Objects</th><th class="num">Versions</th><th class="num">Bytes</th><th class="num">Incomplete uploads</th>` : null}</tr></thead>
      <tbody>
        ${buckets.map((bucket) => {
          const counted = stats?.buckets.get(bucket.name);
          return html`<tr key=${bucket.name} data-bucket=${bucket.name}><td><a href=${`#/b/${encodeURIComponent(bucket.name)}/`}>${bucket.name}</a></td><td>${formatTime(bucket.created)}</td>
            ${stats ? html`<td>${counted?.placement ?? ''}</td><td class="num" data-testid="bucket-objects">${counted?.objects ?? ''}</td><td class="num">${counted?.versions ?? ''}</td>
              <td class="num" data-testid="bucket-bytes">${counted ? formatBytes(counted.bytes) : ''}</td><td class="num">${counted?.incompleteUploads ?? ''}</td>` : null}</tr>`;
        })}
        ${buckets.length === 0 ? html`<tr><td colspan="7" class="note">No buckets.</td></tr>` : null}
      </tbody>
    </table>
    ${stats ? html`<p class="note" data-testid="disk">Disk: ${formatBytes(stats.disk.freeBytes)} free of ${formatBytes(stats.disk.sizeBytes)}; metadata ${formatBytes(stats.metadataBytes)}. Bytes are as written, before a placement's redundancy.</p>` : null}`;
}
