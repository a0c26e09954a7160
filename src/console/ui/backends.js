// Backends and placements, region discovery: thin client of the admin API's
// ListBackends, ListPlacements, AddBackend, UpdateBackend, RemoveBackend,
// AddPlacement, UpdatePlacement, DeletePlacement, SetBucketPlacement,
// ProbeEndpoints and RecommendPlacement (each run as the session's key).
import { useEffect, useState } from 'preact/hooks';
import { admin } from './api.js';
import { ErrorBox, formatBytes, html } from './html.js';

const REFRESH_MS = 5000;
const lines = (value) => value.split(/[\s,]+/).map((item) => item.trim()).filter((item) => item !== '');
const ms = (value) => (value === null || value === undefined ? '–' : `${value.toFixed(1)} ms`);

/** A bar per endpoint or backend: latency relative to the slowest shown. */
function LatencyBar({ value, max }) {
  if (value === null || value === undefined || !(max > 0)) return null;
  return html`<span class="bar" style=${{ width: `${Math.max(2, Math.round((value / max) * 100))}%` }}></span>`;
}

const CHART_WIDTH = 160;
const CHART_HEIGHT = 32;

/**
 * The last probes' latencies (ListBackends' latencyHistory, oldest first) as
 * an SVG line, scaled from 0 to the highest: a failed probe breaks the line.
 * The x axis is time, so a pause in probing shows as a longer segment.
 */
function LatencyChart({ samples }) {
  const measured = samples.filter((sample) => sample.latencyMs !== null);
  if (measured.length === 0) return null;
  const highest = Math.max(...measured.map((sample) => sample.latencyMs)) || 1;
  const firstMs = samples[0].atMs;
  const spanMs = samples[samples.length - 1].atMs - firstMs || 1;
  let path = '';
  let drawing = false;
  for (const sample of samples) {
    if (sample.latencyMs === null) {
      drawing = false;
      continue;
    }
    const x = ((sample.atMs - firstMs) / spanMs) * CHART_WIDTH;
    const y = CHART_HEIGHT - 1 - (sample.latencyMs / highest) * (CHART_HEIGHT - 2);
    path += `${drawing ? 'L' : 'M'}${x.toFixed(1)} ${y.toFixed(1)}`;
    drawing = true;
  }
  const failed = samples.length - measured.length;
  const label = `last ${samples.length} probes: ${ms(Math.min(...measured.map((sample) => sample.latencyMs)))} to ${ms(highest)}${failed > 0 ? `, ${failed} failed` : ''}`;
  return html`<svg class="latency-chart" data-testid="latency-chart" width=${CHART_WIDTH} height=${CHART_HEIGHT} viewBox=${`0 0 ${CHART_WIDTH} ${CHART_HEIGHT}`} role="img" aria-label=${label}>
    <title>${label}</title>
    <path d=${path} />
  </svg>`;
}

function useAction(setError, refresh) {
  return async (action) => {
    setError(null);
    try {
      const answer = await action();
      refresh();
      return answer;
    } catch (failure) {
      setError(failure);
      return undefined;
    }
  };
}

function AddBackendForm({ act }) {
  const [type, setType] = useState('directory');
  async function submit(event) {
    event.preventDefault();
    const form = event.currentTarget;
    const input = { name: form.backendName.value.trim(), type };
    if (type === 'directory') input.path = form.path.value.trim();
    else {
      Object.assign(input, { endpoint: form.endpoint.value.trim(), bucket: form.s3bucket.value.trim(), accessKeyId: form.s3key.value.trim(), secretAccessKey: form.s3secret.value });
      if (form.region.value.trim() !== '') input.region = form.region.value.trim();
    }
    if (await act(() => admin('AddBackend', input))) form.reset();
  }
  return html`<form class="row card" onSubmit=${submit} autocomplete="off">
    <input name="backendName" placeholder="name" required aria-label="Backend name" />
    <select name="type" aria-label="Backend type" value=${type} onChange=${(event) => setType(event.currentTarget.value)}><option value="directory">directory</option><option value="s3">s3</option></select>
    ${type === 'directory'
      ? html`<input name="path" placeholder="/absolute/path" required aria-label="Backend path" size="30" />`
      : html`<input name="endpoint" placeholder="https://s3.example.com" required aria-label="Backend endpoint" />
        <input name="s3bucket" placeholder="bucket" required aria-label="Backend bucket" />
        <input name="region" placeholder="region" aria-label="Backend region" />
        <input name="s3key" placeholder="access key" required aria-label="Backend access key" />
        <input name="s3secret" type="password" placeholder="secret" required aria-label="Backend secret key" autocomplete="new-password" />`}
    <button class="primary" type="submit">Add backend</button>
  </form>`;
}

/** Another endpoint, keys or path for the same data (UpdateBackend); empty fields stay as they are. */
function EditBackendForm({ act, backend, done }) {
  async function submit(event) {
    event.preventDefault();
    const form = event.currentTarget;
    const fields = backend.type === 'directory' ? ['path'] : ['endpoint', 'bucket', 'region', 'accessKeyId', 'secretAccessKey'];
    const input = { name: backend.name };
    for (const field of fields) if (form[field].value.trim() !== '') input[field] = form[field].value.trim();
    if (await act(() => admin('UpdateBackend', input))) done();
  }
  return html`<form class="row card" onSubmit=${submit} autocomplete="off" data-testid="edit-backend">
    <b>${backend.name}</b>
    ${backend.type === 'directory'
      ? html`<input name="path" placeholder="/new/absolute/path" required aria-label="New backend path" size="30" />`
      : html`<input name="endpoint" placeholder="endpoint" aria-label="New backend endpoint" />
        <input name="bucket" placeholder="bucket" aria-label="New backend bucket" />
        <input name="region" placeholder="region" aria-label="New backend region" />
        <input name="accessKeyId" placeholder="access key" aria-label="New backend access key" />
        <input name="secretAccessKey" type="password" placeholder="secret" aria-label="New backend secret key" autocomplete="new-password" />`}
    <button class="primary" type="submit">Save</button>
    <button type="button" onClick=${done}>Cancel</button>
    <span class="note">It must reach the same data: objects name their backends.</span>
  </form>`;
}

function AddPlacementForm({ act, backends }) {
  const [type, setType] = useState('erasure');
  async function submit(event) {
    event.preventDefault();
    const form = event.currentTarget;
    const input = { name: form.placementName.value.trim(), type };
    if (type === 'hybrid') {
      // By size over two existing placements: blobs under the threshold go to small.
      Object.assign(input, { small: form.small.value.trim(), large: form.large.value.trim(), thresholdBytes: Number(form.thresholdBytes.value) });
    } else {
      input.backends = lines(form.backends.value);
      if (type === 'erasure') input.dataShards = Number(form.dataShards.value);
      if (type !== 'single') input.parityShards = Number(form.parityShards.value);
      if (form.writeQuorum.value !== '') input.writeQuorum = Number(form.writeQuorum.value);
    }
    // A run-time placement's new definition (UpdatePlacement): its objects follow through re-placement.
    if (await act(() => admin(form.replace.checked ? 'UpdatePlacement' : 'AddPlacement', input))) form.reset();
  }
  return html`<form class="row card" onSubmit=${submit}>
    <input name="placementName" placeholder="name" required aria-label="Placement name" />
    <select aria-label="Placement type" value=${type} onChange=${(event) => setType(event.currentTarget.value)}><option value="erasure">erasure</option><option value="replica">replica</option><option value="single">single</option><option value="hybrid">hybrid</option></select>
    ${type === 'erasure' ? html`<input name="dataShards" type="number" min="1" placeholder="data" required aria-label="Data shards" class="narrow" />` : null}
    ${type === 'erasure' || type === 'replica' ? html`<input name="parityShards" type="number" min="0" placeholder=${type === 'replica' ? 'copies − 1' : 'parity'} required aria-label="Parity shards" class="narrow" />` : null}
    ${type === 'hybrid'
      ? html`<input name="small" placeholder="small placement" required aria-label="Placement for small objects" />
        <input name="thresholdBytes" type="number" min="0" placeholder="threshold (bytes)" required aria-label="Threshold in bytes" />
        <input name="large" placeholder="large placement" required aria-label="Placement for large objects" />`
      : html`<input name="backends" placeholder=${backends.slice(0, 3).join(', ') || 'backend names'} required aria-label="Placement backends" />
        <input name="writeQuorum" type="number" min="1" placeholder="quorum" aria-label="Write quorum" class="narrow" />`}
    <label class="note"><input name="replace" type="checkbox" aria-label="Replace the placement of this name" /> replace the one of this name</label>
    <button class="primary" type="submit">Add or replace placement</button>
  </form>`;
}

function SetBucketPlacementForm({ act, placements }) {
  async function submit(event) {
    event.preventDefault();
    const form = event.currentTarget;
    if (await act(() => admin('SetBucketPlacement', { bucket: form.bucketName.value.trim(), placement: form.placement.value }))) form.reset();
  }
  return html`<form class="row card" onSubmit=${submit}>
    <input name="bucketName" placeholder="bucket" required aria-label="Bucket to place" />
    <select name="placement" aria-label="Bucket placement"><option value="local">local</option>${placements.map((placement) => html`<option value=${placement.name}>${placement.name}</option>`)}</select>
    <button type="submit">Set bucket placement</button>
  </form>`;
}

export function BackendsPage() {
  const [backends, setBackends] = useState([]);
  const [layout, setLayout] = useState({ defaultPlacement: null, placements: [], buckets: [] });
  const [error, setError] = useState(null);
  const [version, setVersion] = useState(0);
  const [editing, setEditing] = useState(null);
  useEffect(() => {
    let stopped = false;
    const load = () => Promise.all([admin('ListBackends'), admin('ListPlacements')]).then(([listed, placed]) => {
      if (stopped) return;
      setBackends(listed.backends);
      setLayout(placed);
    }, (failure) => !stopped && setError(failure));
    load();
    const timer = setInterval(load, REFRESH_MS);
    return () => {
      stopped = true;
      clearInterval(timer);
    };
  }, [version]);
  const act = useAction(setError, () => setVersion((n) => n + 1));
  const slowest = Math.max(0, ...backends.map((backend) => backend.latencyMs ?? 0));
  return html`<h1>Backends and placements</h1>
    <${ErrorBox} error=${error} />
    <table data-testid="backends">
      <thead><tr><th>Backend</th><th>Type</th><th>State</th><th>Latency</th><th></th><th>Last probes</th><th>Free</th><th>Placements</th><th>Last error</th><th></th></tr></thead>
      <tbody>
        ${backends.map((backend) => html`<tr key=${backend.name} data-backend=${backend.name}>
          <td><b>${backend.name}</b></td><td>${backend.type}</td>
          <td data-testid="backend-state" class=${`state-${backend.state}`}>${backend.state}</td>
          <td class="num">${ms(backend.latencyMs)}</td><td class="chart"><${LatencyBar} value=${backend.latencyMs} max=${slowest} /></td>
          <td><${LatencyChart} samples=${backend.latencyHistory ?? []} /></td>
          <td class="num">${backend.freeBytes === null ? '–' : formatBytes(backend.freeBytes)}</td>
          <td>${backend.placements.join(', ')}</td><td class="note">${backend.lastError ?? ''}</td>
          <td><button onClick=${() => setEditing(backend)}>Edit</button>
            <button class="danger" onClick=${() => confirm(`Remove backend ${backend.name}?`) && act(() => admin('RemoveBackend', { name: backend.name }))}>Remove</button></td>
        </tr>`)}
        ${backends.length === 0 ? html`<tr><td colspan="10" class="note">No backends (objects are stored in the data directory; placements need talus.toml, --config).</td></tr>` : null}
      </tbody>
    </table>
    ${editing === null ? null : html`<${EditBackendForm} key=${editing.name} act=${act} backend=${editing} done=${() => setEditing(null)} />`}
    <h2>Add a backend</h2>
    <${AddBackendForm} act=${act} />
    <h2>Placements</h2>
    <table data-testid="placements">
      <thead><tr><th>Placement</th><th>Type</th><th>Shards</th><th>Backends</th><th>Write quorum</th><th></th></tr></thead>
      <tbody>${layout.placements.map((placement) => html`<tr key=${placement.name} data-placement=${placement.name}>
        <td><b>${placement.name}</b>${placement.name === layout.defaultPlacement ? html` <span class="note">(default)</span>` : null}</td>
        <td>${placement.type}</td>
        <td>${placement.type === 'hybrid' ? `${placement.small} below ${formatBytes(placement.thresholdBytes)}, else ${placement.large}` : `${placement.dataShards} + ${placement.parityShards}`}</td>
        <td>${(placement.backends ?? []).join(', ')}</td><td>${placement.writeQuorum ?? ''}</td>
        <td><button class="danger" onClick=${() => act(() => admin('DeletePlacement', { name: placement.name }))}>Delete</button></td>
      </tr>`)}</tbody>
    </table>
    <h2>Add or change a placement</h2>
    <${AddPlacementForm} act=${act} backends=${backends.map((backend) => backend.name)} />
    <h2>Buckets' placements</h2>
    <table data-testid="bucket-placements">
      <thead><tr><th>Bucket</th><th>Placement</th></tr></thead>
      <tbody>${layout.buckets.map((bucket) => html`<tr key=${bucket.name} data-bucket=${bucket.name}><td>${bucket.name}</td><td>${bucket.placement ?? 'local'}</td></tr>`)}</tbody>
    </table>
    <${SetBucketPlacementForm} act=${act} placements=${layout.placements} />
    <${RegionDiscovery} />`;
}

/** Probes candidate endpoints (a list, or a template with {region} and a region list) and recommends a placement over the best. */
function RegionDiscovery() {
  const [result, setResult] = useState(null);
  const [recommendation, setRecommendation] = useState(null);
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  function inputOf(form) {
    const input = { probes: Number(form.probes.value) || 5 };
    if (form.template.value.trim() !== '') Object.assign(input, { template: form.template.value.trim(), regions: lines(form.regions.value) });
    else input.endpoints = lines(form.endpoints.value);
    return input;
  }
  async function run(operation, form, extra) {
    setBusy(true);
    setError(null);
    try {
      const answer = await admin(operation, { ...inputOf(form), ...extra });
      setResult(answer.endpoints);
      if (operation === 'RecommendPlacement') setRecommendation(answer);
    } catch (failure) {
      setError(failure);
    } finally {
      setBusy(false);
    }
  }
  function probe(event) {
    event.preventDefault();
    run('ProbeEndpoints', event.currentTarget);
  }
  function recommend(event) {
    const form = event.currentTarget.form;
    const extra = { k: Number(form.k.value), m: Number(form.m.value) };
    if (form.recommendName.value.trim() !== '') extra.name = form.recommendName.value.trim();
    run('RecommendPlacement', form, extra);
  }
  const slowest = Math.max(0, ...(result ?? []).map((endpoint) => endpoint.p99Ms ?? 0));
  return html`<h2>Region discovery</h2>
    <form class="card" onSubmit=${probe}>
      <div class="row"><textarea name="endpoints" rows="3" cols="50" placeholder="one endpoint per line: https://s3.eu-west-1.example.com" aria-label="Endpoints"></textarea></div>
      <div class="row"><span class="note">or</span><input name="template" placeholder="https://s3.{region}.example.com" aria-label="Endpoint template" size="34" /><input name="regions" placeholder="eu-west-1, us-east-1" aria-label="Regions" /></div>
      <div class="row"><label>Probes <input name="probes" type="number" min="1" max="20" value="5" aria-label="Probes" class="narrow" /></label>
        <button class="primary" type="submit" disabled=${busy}>Probe endpoints</button>
        <label>k <input name="k" type="number" min="1" value="2" aria-label="Data shards k" class="narrow" /></label>
        <label>m <input name="m" type="number" min="0" value="1" aria-label="Parity shards m" class="narrow" /></label>
        <input name="recommendName" placeholder="placement name" aria-label="Recommended placement name" />
        <button type="button" disabled=${busy} onClick=${recommend}>Recommend placement</button></div>
    </form>
    <${ErrorBox} error=${error} />
    ${result ? html`<table data-testid="probes">
      <thead><tr><th>Endpoint</th><th>Region</th><th>Answered</th><th>p50</th><th>p95</th><th>p99</th><th>Jitter</th><th></th><th>Error</th></tr></thead>
      <tbody>${result.map((endpoint) => html`<tr key=${endpoint.endpoint} data-endpoint=${endpoint.endpoint}>
        <td><code>${endpoint.endpoint}</code></td><td>${endpoint.region ?? ''}</td><td class="num">${endpoint.answered}/${endpoint.answered + endpoint.failed}</td>
        <td class="num" data-testid="p50">${ms(endpoint.p50Ms)}</td><td class="num">${ms(endpoint.p95Ms)}</td><td class="num">${ms(endpoint.p99Ms)}</td><td class="num">${ms(endpoint.jitterMs)}</td>
        <td class="chart"><${LatencyBar} value=${endpoint.p99Ms} max=${slowest} /></td><td class="note">${endpoint.error ?? ''}</td>
      </tr>`)}</tbody>
    </table>` : null}
    ${recommendation ? html`<div class="card" data-testid="recommendation">
      <p>Recommended: <b>${recommendation.placement.type}</b> ${recommendation.placement.dataShards} + ${recommendation.placement.parityShards} over ${recommendation.placement.backends.length} endpoints. Add it to talus.toml (fill in the bucket and keys):</p>
      <pre>${recommendation.toml}</pre>
    </div>` : null}`;
}
