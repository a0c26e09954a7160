/**
 * Prometheus metrics and the access log, scraped and read after a known
 * workload: the counters and histograms hold exactly what was done, in one
 * process and merged across `--workers 2`; the endpoint is closed without
 * its token; the access log has one line per request and no secret.
 */
import { GetObjectCommand, PutObjectCommand, CreateBucketCommand } from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { startTalus } from '../src/talus.ts';
import { silentLogger } from '../src/util/logger.ts';
import { TALUS_VERSION } from '../src/version.ts';
import { freePort, startServerProcess } from './helpers/process.ts';
import { makeClient, ACCESS_KEY_ID, SECRET_ACCESS_KEY } from './helpers/talus.ts';

const TOKEN = 'metrics-token-for-tests-0123456789';

/** `name{labels} value` lines of a scrape, as a map from the series to its value. */
function series(text: string): Map<string, number> {
  const values = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const space = line.lastIndexOf(' ');
    values.set(line.slice(0, space), Number(line.slice(space + 1)));
  }
  return values;
}

/** The known workload: 4 PUTs of 1000 bytes, 3 GETs, one GET of a missing key, one request with a wrong secret. */
async function workload(url: string): Promise<void> {
  const client = makeClient(url);
  await client.send(new CreateBucketCommand({ Bucket: 'measured' }));
  for (let i = 0; i < 4; i++) await client.send(new PutObjectCommand({ Bucket: 'measured', Key: `k${i}`, Body: Buffer.alloc(1000, i) }));
  for (let i = 0; i < 3; i++) await (await client.send(new GetObjectCommand({ Bucket: 'measured', Key: `k${i}` }))).Body!.transformToByteArray();
  await assert.rejects(client.send(new GetObjectCommand({ Bucket: 'measured', Key: 'missing' })), { name: 'NoSuchKey' });
  const wrong = makeClient(url, { accessKeyId: ACCESS_KEY_ID, secretAccessKey: 'not-the-secret-0123456789' });
  await assert.rejects(wrong.send(new GetObjectCommand({ Bucket: 'measured', Key: 'k0' })), { name: 'SignatureDoesNotMatch' });
  wrong.destroy();
  client.destroy();
}

function assertWorkload(scrape: Map<string, number>): void {
  assert.equal(scrape.get('talus_s3_requests_total{operation="CreateBucket",status="200"}'), 1);
  assert.equal(scrape.get('talus_s3_requests_total{operation="PutObject",status="200"}'), 4);
  assert.equal(scrape.get('talus_s3_requests_total{operation="GetObject",status="200"}'), 3);
  assert.equal(scrape.get('talus_s3_requests_total{operation="GetObject",status="404"}'), 1);
  // A bad signature is refused before the request is routed.
  assert.equal(scrape.get('talus_s3_requests_total{operation="Unrouted",status="403"}'), 1);
  assert.equal(scrape.get('talus_s3_auth_failures_total{reason="SignatureDoesNotMatch"}'), 1);
  assert.equal(scrape.get('talus_s3_request_duration_seconds_count{operation="PutObject"}'), 4);
  assert.equal(scrape.get('talus_s3_request_duration_seconds_bucket{operation="PutObject",le="+Inf"}'), 4);
  assert.equal(scrape.get('talus_s3_time_to_first_byte_seconds_count{operation="GetObject"}'), 4);
  assert.equal(scrape.get('talus_s3_received_bytes_total{operation="PutObject"}'), 4000);
  const sent = scrape.get('talus_s3_sent_bytes_total{operation="GetObject"}');
  assert.ok(sent !== undefined && sent >= 3000, `the three bodies (and the error document): ${sent}`);
  assert.equal(scrape.get('talus_s3_requests_in_flight'), 0);
  assert.equal(scrape.get(`talus_build_info{version="${TALUS_VERSION}",node="${process.version}"}`), 1);
  assert.ok(scrape.get('talus_disk_free_bytes')! > 0);
  assert.ok(scrape.get('talus_metadata_bytes')! > 0);
}

test('one process: /metrics holds exactly the workload, behind its token; the access log has a line per request and no secret', { timeout: 60_000 }, async () => {
  const dataDir = await mkdtemp(join(tmpdir(), 'talus-metrics-'));
  const accessLog = join(dataDir, 'access.log');
  const talus = await startTalus({
    dataDir, port: 0, address: '127.0.0.1', rootAccessKeyId: ACCESS_KEY_ID, rootSecretAccessKey: SECRET_ACCESS_KEY, logger: silentLogger,
    admin: { port: 0, address: '127.0.0.1' }, metrics: { token: TOKEN }, accessLog,
  });
  try {
    await workload(talus.url);
    const metricsUrl = `${talus.adminUrl}/metrics`;
    assert.equal((await fetch(metricsUrl)).status, 401, 'no token');
    assert.equal((await fetch(metricsUrl, { headers: { authorization: 'Bearer wrong' } })).status, 403, 'a wrong token');
    const response = await fetch(metricsUrl, { headers: { authorization: `Bearer ${TOKEN}` } });
    assert.equal(response.status, 200);
    assert.match(response.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
    const text = await response.text();
    assert.match(text, /# TYPE talus_s3_request_duration_seconds histogram/);
    assertWorkload(series(text));
    const presigned = await getSignedUrl(makeClient(talus.url), new GetObjectCommand({ Bucket: 'measured', Key: 'k3' }), { expiresIn: 60 });
    assert.equal((await fetch(presigned)).status, 200);
    const again = series(await (await fetch(metricsUrl, { headers: { authorization: `Bearer ${TOKEN}` } })).text());
    assert.equal(again.get('talus_s3_requests_total{operation="GetObject",status="200"}'), 4, 'with the presigned GET');
    assert.equal((await fetch(`${talus.adminUrl}/health/ready`)).status, 200);
    // Every metric the Grafana dashboard in docs/ queries is one the server exports.
    const dashboard = await readFile(new URL('../docs/grafana-dashboard.json', import.meta.url), 'utf8');
    const exported = new Set([...text.matchAll(/^# TYPE (\S+)/gm)].map((match) => match[1]));
    for (const [name] of dashboard.matchAll(/talus_[a-z0-9_]+/g)) assert.ok(exported.has(name.replace(/_(bucket|sum|count)$/, '')), `${name} in the dashboard`);
  } finally {
    await talus.close();
  }
  try {
    const lines = (await readFile(accessLog, 'utf8')).trim().split('\n').map((line) => JSON.parse(line) as Record<string, unknown>);
    assert.equal(lines.length, 11, 'create, 4 puts, 4 gets (one presigned), a missing key, a wrong signature');
    const put = lines.find((line) => line['operation'] === 'PutObject')!;
    assert.deepEqual(
      { bucket: put['bucket'], status: put['status'], bytesIn: put['bytesIn'], principal: put['principal'], accessKeyId: put['accessKeyId'] },
      { bucket: 'measured', status: 200, bytesIn: 1000, principal: 'root', accessKeyId: ACCESS_KEY_ID },
    );
    assert.ok(typeof put['requestId'] === 'string' && typeof put['durationMs'] === 'number' && put['remoteAddress'] !== '');
    assert.ok(lines.some((line) => line['errorCode'] === 'SignatureDoesNotMatch' && line['status'] === 403));
    const text = await readFile(accessLog, 'utf8');
    for (const secret of [SECRET_ACCESS_KEY, 'not-the-secret', 'X-Amz-Signature', 'Signature=', TOKEN]) assert.ok(!text.includes(secret), `${secret} in the access log`);
  } finally {
    await rm(dataDir, { recursive: true, force: true });
  }
});

test('--workers 2: a scrape merges both workers\' counters; the access log gets every request once', { timeout: 120_000 }, async () => {
  const dataDir = await mkdtemp(join(tmpdir(), 'talus-metrics-workers-'));
  const accessLog = join(dataDir, 'access.log');
  const adminPort = await freePort();
  const server = await startServerProcess(dataDir, undefined, ['--workers', '2', '--console-address', `127.0.0.1:${adminPort}`, '--metrics-public', '--access-log', accessLog]);
  try {
    await workload(server.url);
    const scrape = series(await (await fetch(`http://127.0.0.1:${adminPort}/metrics`)).text());
    assertWorkload(scrape);
  } finally {
    await server.stop();
  }
  try {
    const lines = (await readFile(accessLog, 'utf8')).trim().split('\n');
    assert.equal(lines.length, 10);
    for (const line of lines) JSON.parse(line);
  } finally {
    await rm(dataDir, { recursive: true, force: true });
  }
});
