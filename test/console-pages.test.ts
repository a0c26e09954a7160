/**
 * The console's operations pages over HTTP (issue 13): backends and
 * placements, region discovery, heal and purge queues, incomplete uploads,
 * storage statistics and the audit log. Each page is a thin client of the
 * admin API through the console's signed forwarding: this test checks that
 * the pages' modules are served, and makes the very calls they make
 * (`/console/api/admin/<Operation>` with the session's cookie and CSRF
 * token) against a server with a placement over two directory backends —
 * as root they act, as a read-only user they are refused and change nothing
 * (the console is never a privileged path). The pages themselves run in
 * test/browser-console.test.ts.
 */
import { CreateBucketCommand, CreateMultipartUploadCommand, ListMultipartUploadsCommand, S3Client } from '@aws-sdk/client-s3';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { AdminClient } from '../src/admin/client.ts';
import { parseConfig } from '../src/config/config.ts';
import { startTalus } from '../src/talus.ts';
import { silentLogger } from '../src/util/logger.ts';

const ROOT = { accessKeyId: 'PAGESROOTKEY', secretAccessKey: 'pages-root-secret-0123456789abcdef' };

/** A logged-in console session, calling the admin API as the browser does. */
class ConsoleSession {
  #cookie = '';
  #csrf = '';
  constructor(readonly base: string) {}

  async login(accessKeyId: string, secretAccessKey: string): Promise<void> {
    const response = await fetch(`${this.base}/console/api/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ accessKeyId, secretAccessKey }) });
    assert.equal(response.status, 200, await response.clone().text());
    this.#cookie = response.headers.get('set-cookie')!.split(';')[0]!;
    this.#csrf = ((await response.json()) as { csrfToken: string }).csrfToken;
  }

  /** POST /console/api/admin/<operation>: the status and the JSON answer. */
  async admin(operation: string, input: object = {}): Promise<{ status: number; body: Record<string, unknown> }> {
    const response = await fetch(`${this.base}/console/api/admin/${operation}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', cookie: this.#cookie, 'x-talus-csrf': this.#csrf },
      body: JSON.stringify(input),
    });
    return { status: response.status, body: (await response.json()) as Record<string, unknown> };
  }

  /** An admin call that must succeed: its answer. */
  async ok<T = Record<string, unknown>>(operation: string, input: object = {}): Promise<T> {
    const answer = await this.admin(operation, input);
    assert.equal(answer.status, 200, `${operation}: ${JSON.stringify(answer.body)}`);
    return answer.body as T;
  }
}

interface BackendRow { name: string; type: string; state: string; latencyMs: number | null; freeBytes: number | null; placements: string[] }

test('the console pages for backends, placements, region discovery, queues, uploads, storage and the audit log', { timeout: 120_000 }, async () => {
  const root = await mkdtemp(join(tmpdir(), 'talus-console-pages-'));
  const disks = ['disk0', 'disk1', 'disk2'].map((name) => join(root, name));
  for (const disk of disks) await mkdir(disk);
  const config = parseConfig(
    `[backends.disk0]\ntype = "directory"\npath = "${disks[0]}"\n[backends.disk1]\ntype = "directory"\npath = "${disks[1]}"\n` +
      `[placements.copies]\ntype = "replica"\ncopies = 2\nbackends = ["disk0", "disk1"]\n`,
    { source: 'test', baseDirectory: root },
  );
  const talus = await startTalus({
    dataDir: join(root, 'data'), port: 0, address: '127.0.0.1', rootAccessKeyId: ROOT.accessKeyId, rootSecretAccessKey: ROOT.secretAccessKey,
    admin: { port: 0, address: '127.0.0.1' }, config, healInBackground: false, logger: silentLogger,
  });
  const s3 = new S3Client({ endpoint: talus.url, region: 'us-east-1', forcePathStyle: true, credentials: ROOT });
  try {
    // The pages are served as modules of the console, linked from its navigation.
    const base = talus.adminUrl!;
    for (const [module, operations] of [
      ['backends.js', ['ListBackends', 'ListPlacements', 'AddBackend', 'AddPlacement', 'SetBucketPlacement', 'ProbeEndpoints', 'RecommendPlacement']],
      ['queues.js', ['GetHealStatus', 'StartHeal', 'CancelHeal', 'ListIncompleteUploads', 'AbortIncompleteUploads']],
      ['audit.js', ['QueryAuditLog']],
      ['buckets.js', ['GetStorageStats']],
    ] as const) {
      const response = await fetch(`${base}/console/ui/${module}`);
      assert.equal(response.status, 200, module);
      const source = await response.text();
      for (const operation of operations) assert.ok(source.includes(`'${operation}'`), `${module} calls ${operation}`);
    }
    const app = await (await fetch(`${base}/console/ui/app.js`)).text();
    for (const route of ['#/backends', '#/queues', '#/audit']) assert.ok(app.includes(route), `the navigation links ${route}`);

    const asRoot = new ConsoleSession(base);
    await asRoot.login(ROOT.accessKeyId, ROOT.secretAccessKey);

    // Backends: state, latency, free space, the placements using each.
    const { backends } = await asRoot.ok<{ backends: BackendRow[] }>('ListBackends');
    assert.deepEqual(backends.map((backend) => backend.name).sort(), ['disk0', 'disk1']);
    for (const backend of backends) {
      assert.ok(['up', 'down', 'unknown'].includes(backend.state));
      assert.equal(backend.type, 'directory');
      assert.ok(typeof backend.freeBytes === 'number' && backend.freeBytes > 0);
      assert.deepEqual(backend.placements, ['copies']);
    }

    // Add a backend and a placement over it; place a bucket there.
    assert.deepEqual(await asRoot.ok('AddBackend', { name: 'disk2', type: 'directory', path: disks[2] }), { name: 'disk2', type: 'directory' });
    assert.ok((await asRoot.ok<{ backends: BackendRow[] }>('ListBackends')).backends.some((backend) => backend.name === 'disk2'));
    await asRoot.ok('AddPlacement', { name: 'wide', type: 'erasure', dataShards: 2, parityShards: 1, backends: ['disk0', 'disk1', 'disk2'] });
    await s3.send(new CreateBucketCommand({ Bucket: 'placed' }));
    const moved = await asRoot.ok('SetBucketPlacement', { bucket: 'placed', placement: 'wide' });
    assert.equal(moved['placement'], 'wide');
    const layout = await asRoot.ok<{ placements: { name: string; dataShards: number; parityShards: number }[]; buckets: { name: string; placement: string }[] }>('ListPlacements');
    const wide = layout.placements.find((placement) => placement.name === 'wide');
    assert.deepEqual([wide?.dataShards, wide?.parityShards], [2, 1]);
    assert.equal(layout.buckets.find((bucket) => bucket.name === 'placed')?.placement, 'wide');

    // Region discovery: probe endpoints (this server's S3 listener, twice over), p50/p95/p99/jitter; a recommendation.
    const probed = await asRoot.ok<{ endpoints: { endpoint: string; answered: number; p50Ms: number; p95Ms: number; p99Ms: number; jitterMs: number }[] }>('ProbeEndpoints', { endpoints: [talus.url, `${talus.url}/`], probes: 3 });
    assert.equal(probed.endpoints.length, 2);
    for (const endpoint of probed.endpoints) {
      assert.equal(endpoint.answered, 3);
      assert.ok(endpoint.p50Ms >= 0 && endpoint.p95Ms >= endpoint.p50Ms && endpoint.p99Ms >= endpoint.p95Ms && endpoint.jitterMs >= 0);
    }
    const recommended = await asRoot.ok<{ placement: { type: string; dataShards: number; parityShards: number }; toml: string; created: boolean }>('RecommendPlacement', { endpoints: [talus.url, `${talus.url}/`], probes: 2, k: 1, m: 1 });
    assert.equal(recommended.placement.type, 'replica');
    assert.equal(recommended.created, false);
    assert.match(recommended.toml, /\[placements\./);

    // Heal and purge queues: status, start, cancel.
    const status = await asRoot.ok<{ placements: boolean; repairs: { pending: number }; purge: { blobs: number } }>('GetHealStatus');
    assert.equal(status.placements, true);
    assert.equal(typeof status.repairs.pending, 'number');
    assert.equal(typeof status.purge.blobs, 'number');
    assert.deepEqual(await asRoot.ok('StartHeal'), { started: true });
    assert.equal(typeof (await asRoot.ok('CancelHeal'))['cancelled'], 'boolean');

    // Incomplete uploads: listed, then aborted (older than 0 days).
    const { UploadId } = await s3.send(new CreateMultipartUploadCommand({ Bucket: 'placed', Key: 'half/done.bin' }));
    const listed = await asRoot.ok<{ uploads: { key: string; uploadId: string }[] }>('ListIncompleteUploads', { bucket: 'placed', limit: 200 });
    assert.deepEqual(listed.uploads.map((upload) => [upload.key, upload.uploadId]), [['half/done.bin', UploadId]]);
    assert.deepEqual(await asRoot.ok('AbortIncompleteUploads', { bucket: 'placed', olderThanSeconds: 0 }), { aborted: 1, more: false });
    assert.equal((await s3.send(new ListMultipartUploadsCommand({ Bucket: 'placed' }))).Uploads, undefined);

    // Storage statistics for the buckets page.
    const stats = await asRoot.ok<{ buckets: { name: string; placement: string; objects: number }[]; disk: { freeBytes: number } }>('GetStorageStats');
    assert.deepEqual(stats.buckets.map((bucket) => [bucket.name, bucket.placement, bucket.objects]), [['placed', 'wide', 0]]);
    assert.ok(stats.disk.freeBytes > 0);

    // The audit log by time, caller and operation: the console's calls are there as root's own.
    const since = Date.now() - 60_000;
    const audit = await asRoot.ok<{ entries: { operation: string; principal: string; accessKeyId: string; status: number }[] }>('QueryAuditLog', { sinceMs: since, principal: 'root', operation: 'AddBackend' });
    assert.deepEqual(audit.entries.map((entry) => [entry.operation, entry.principal, entry.accessKeyId, entry.status]), [['AddBackend', 'root', ROOT.accessKeyId, 200]]);
    assert.deepEqual((await asRoot.ok<{ entries: unknown[] }>('QueryAuditLog', { untilMs: since })).entries, []);

    // A read-only user's console: every one of these refused by the admin API, nothing changed.
    const { accessKeyId, secretAccessKey } = await new AdminClient({ endpoint: base, ...ROOT }).call('CreateUser', { name: 'viewer', policy: 'readonly' }) as { accessKeyId: string; secretAccessKey: string };
    const viewer = new ConsoleSession(base);
    await viewer.login(accessKeyId, secretAccessKey);
    for (const [operation, input] of [
      ['ListBackends', {}],
      ['AddBackend', { name: 'sneaky', type: 'directory', path: join(root, 'sneaky') }],
      ['AddPlacement', { name: 'sneaky', type: 'single', backends: ['disk0'] }],
      ['SetBucketPlacement', { bucket: 'placed', placement: 'copies' }],
      ['ProbeEndpoints', { endpoints: [talus.url] }],
      ['StartHeal', {}],
      ['AbortIncompleteUploads', { bucket: 'placed', olderThanSeconds: 0 }],
      ['QueryAuditLog', {}],
      ['GetStorageStats', {}],
    ] as const) {
      const answer = await viewer.admin(operation, input);
      assert.equal(answer.status, 403, operation);
      assert.equal(answer.body['code'], 'AccessDenied', operation);
    }
    const after = await asRoot.ok<{ placements: { name: string }[]; buckets: { name: string; placement: string }[] }>('ListPlacements');
    assert.ok(!after.placements.some((placement) => placement.name === 'sneaky'));
    assert.equal(after.buckets.find((bucket) => bucket.name === 'placed')?.placement, 'wide');
    assert.ok(!(await asRoot.ok<{ backends: BackendRow[] }>('ListBackends')).backends.some((backend) => backend.name === 'sneaky'));
  } finally {
    s3.destroy();
    await talus.close();
    await rm(root, { recursive: true, force: true });
  }
});
