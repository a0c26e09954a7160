// A small dashboard from the same counters as /metrics (needs admin:GetServerInfo).
import { useEffect, useRef, useState } from 'preact/hooks';
import { metrics } from './api.js';
import { ErrorBox, formatBytes, html } from './html.js';

const REFRESH_MS = 5000;

/** Prometheus text → [{ name, labels, value }] (the subset this page reads: no escapes in label values needed). */
function parseMetrics(text) {
  const samples = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const match = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!match) continue;
    const labels = {};
    for (const pair of (match[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[pair[1]] = pair[2];
    samples.push({ name: match[1], labels, value: Number(match[3]) });
  }
  return samples;
}

function summarize(samples) {
  const sum = (name, filter = () => true) => samples.filter((sample) => sample.name === name && filter(sample.labels)).reduce((total, sample) => total + sample.value, 0);
  const durationCount = sum('talus_s3_request_duration_seconds_count');
  return {
    requests: sum('talus_s3_requests_total'),
    errors: sum('talus_s3_requests_total', (labels) => Number(labels.status) >= 400),
    bytesIn: sum('talus_s3_received_bytes_total'),
    bytesOut: sum('talus_s3_sent_bytes_total'),
    inFlight: sum('talus_s3_requests_in_flight'),
    meanLatencyMs: durationCount === 0 ? 0 : (sum('talus_s3_request_duration_seconds_sum') / durationCount) * 1000,
    authFailures: sum('talus_s3_auth_failures_total'),
    diskFree: sum('talus_disk_free_bytes'),
    diskSize: sum('talus_disk_size_bytes'),
    metadata: sum('talus_metadata_bytes'),
    backendErrors: sum('talus_backend_errors_total'),
    degradedReads: sum('talus_degraded_reads_total'),
  };
}

export function DashboardPage() {
  const [state, setState] = useState(null);
  const [error, setError] = useState(null);
  const previous = useRef(null);
  useEffect(() => {
    let stopped = false;
    async function load() {
      try {
        const answer = await metrics();
        const now = summarize(parseMetrics(answer.metrics));
        const before = previous.current;
        const seconds = before ? (Date.now() - before.at) / 1000 : 0;
        const rate = before && seconds > 0 ? Math.max(0, (now.requests - before.summary.requests) / seconds) : null;
        previous.current = { at: Date.now(), summary: now };
        if (!stopped) {
          setState({ server: answer.server, summary: now, rate });
          setError(null);
        }
      } catch (failure) {
        if (!stopped) setError(failure);
      }
    }
    load();
    const timer = setInterval(load, REFRESH_MS);
    return () => {
      stopped = true;
      clearInterval(timer);
    };
  }, []);
  if (!state) return html`<h1>Dashboard</h1><${ErrorBox} error=${error} />`;
  const { server, summary, rate } = state;
  const stat = (label, value, id) => html`<div class="stat"><span class="note">${label}</span><b data-testid=${id}>${value}</b></div>`;
  return html`<h1>Dashboard</h1>
    <p class="note">Talus ${server.version}, up ${Math.round(server.uptimeMs / 1000)} s, ${server.workers} process(es), region ${server.region}. Refreshed every ${REFRESH_MS / 1000} s.</p>
    <${ErrorBox} error=${error} />
    <div class="stats">
      ${stat('S3 requests', summary.requests, 'requests')}
      ${stat('Requests per second', rate === null ? '…' : rate.toFixed(1), 'rate')}
      ${stat('Errors (4xx/5xx)', summary.errors, 'errors')}
      ${stat('Mean latency', `${summary.meanLatencyMs.toFixed(1)} ms`, 'latency')}
      ${stat('In flight', summary.inFlight, 'in-flight')}
      ${stat('Bytes in', formatBytes(summary.bytesIn), 'bytes-in')}
      ${stat('Bytes out', formatBytes(summary.bytesOut), 'bytes-out')}
      ${stat('Refused (auth)', summary.authFailures, 'auth-failures')}
      ${stat('Disk free', `${formatBytes(summary.diskFree)} of ${formatBytes(summary.diskSize)}`, 'disk')}
      ${stat('Metadata', formatBytes(summary.metadata), 'metadata')}
      ${stat('Backend errors', summary.backendErrors, 'backend-errors')}
      ${stat('Degraded reads', summary.degradedReads, 'degraded-reads')}
    </div>`;
}
