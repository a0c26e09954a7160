/**
 * Run-time backends and placements on nodes sharing one PostgreSQL
 * (src/placement/runtime-document.ts, runtime-sync.ts): the document lives in
 * the store's `settings`, so a change made on node A is served by node B
 * within the poll bound, and one made on B by A; two nodes changing at the
 * same moment both keep their change (compare-and-set); a node that cannot
 * apply the document refuses writes once it is behind for the stale bound,
 * and writes again once it can; an S3 backend's
 * secret is sealed in the row (and in a single node's file), never in clear
 * and never answered; a restarted node starts with every change. Two
 * in-process nodes on a private PostgreSQL, a plain Talus server as the S3
 * backend, the AWS SDK and the admin API.
 */
import { CreateBucketCommand, GetObjectCommand, ListObjectsV2Command, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { access, mkdir, mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import postgres from 'postgres';
import { AdminClient } from '../src/admin/client.ts';
import { parseConfig } from '../src/config/config.ts';
import type { MetadataStore } from '../src/meta/metadata-store.ts';
import { PostgresMetadataStore } from '../src/meta/postgres/postgres-metadata-store.ts';
import { SqliteMetadataStore } from '../src/meta/sqlite/sqlite-metadata-store.ts';
import { FileRuntimeDocuments, IMPORTED_SUFFIX, RUNTIME_DOCUMENT_SETTING, SettingsRuntimeDocuments } from '../src/placement/runtime-document.ts';
import { SecretBox } from '../src/principals/secret-box.ts';
import { RUNTIME_POLL_INTERVAL_MS, RUNTIME_STALE_MAX_MS } from '../src/placement/runtime-sync.ts';
import { startTalus, type RunningTalus } from '../src/talus.ts';
import { silentLogger } from '../src/util/logger.ts';
import { makeClient } from './helpers/talus.ts';
import { postgresUnavailable, startTestPostgres, type TestPostgres } from './helpers/postgres.ts';

const ROOT = { accessKeyId: 'TALUSPLACEROOT000001', secretAccessKey: 'place-root-secret-000000000000000000000' };
const skip = await postgresUnavailable();
if (skip !== undefined) console.log(`# skipped: ${skip}`);

type Credentials = { accessKeyId: string; secretAccessKey: string };
type Layout = { placements: { name: string; backends?: string[] }[]; buckets: { name: string; placement: string }[] };

/** Generous against a loaded machine; the bound itself is RUNTIME_POLL_INTERVAL_MS plus opening a backend. */
const FOLLOW_TIMEOUT_MS = 20 * RUNTIME_POLL_INTERVAL_MS;

async function eventually(what: string, check: () => Promise<boolean>, timeoutMs = FOLLOW_TIMEOUT_MS): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check().catch(() => false))) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

async function bodyOf(s3: S3Client, bucket: string, key: string): Promise<Buffer> {
  const answer = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
  return Buffer.from(await answer.Body!.transformToByteArray());
}

function adminOf(node: RunningTalus, credentials: Credentials = ROOT): AdminClient {
  return new AdminClient({ endpoint: node.adminUrl!, ...credentials });
}

/** A plain single-node Talus: the S3 backend, with its own admin listener to make keys. */
function startPlain(dataDir: string, config?: ReturnType<typeof parseConfig>): Promise<RunningTalus> {
  return startTalus({
    dataDir, port: 0, address: '127.0.0.1', rootAccessKeyId: ROOT.accessKeyId, rootSecretAccessKey: ROOT.secretAccessKey,
    logger: silentLogger, admin: { port: 0, address: '127.0.0.1' }, healInBackground: false, ...(config === undefined ? {} : { config }),
  });
}

async function keyCount(client: S3Client, bucket: string): Promise<number> {
  return (await client.send(new ListObjectsV2Command({ Bucket: bucket }))).KeyCount ?? 0;
}

async function filesUnder(root: string): Promise<string[]> {
  return (await readdir(root, { withFileTypes: true, recursive: true })).filter((entry) => entry.isFile()).map((entry) => join(entry.parentPath, entry.name));
}

describe('run-time placement changes on two nodes sharing PostgreSQL', { skip }, () => {
  let root: string;
  let pg: TestPostgres;
  let sql: postgres.Sql;
  let remote: RunningTalus;
  let remoteS3: S3Client;
  let firstKey: Credentials;
  const nodes: RunningTalus[] = [];
  const clients: S3Client[] = [];
  const config = (): ReturnType<typeof parseConfig> => parseConfig(
    `[backends.shared]\ntype = "directory"\npath = "${join(root, 'shared')}"\n[placements.one]\ntype = "single"\nbackend = "shared"\n[defaults]\nplacement = "one"\n`,
    { source: 'test', baseDirectory: root },
  );
  const startNode = (name: string): Promise<RunningTalus> => startTalus({
    dataDir: join(root, name), port: 0, address: '127.0.0.1', rootAccessKeyId: ROOT.accessKeyId, rootSecretAccessKey: ROOT.secretAccessKey,
    logger: silentLogger, admin: { port: 0, address: '127.0.0.1' }, config: config(), healInBackground: false, metaUrl: pg.url,
  });
  const row = async (): Promise<string> => {
    const [found] = await sql<{ value: string }[]>`SELECT value FROM settings WHERE name = ${RUNTIME_DOCUMENT_SETTING}`;
    assert.ok(found !== undefined, 'the document is a settings row');
    return found.value;
  };

  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'talus-placements-shared-'));
    pg = await startTestPostgres();
    sql = postgres(pg.url, { max: 1, onnotice: () => undefined });
    process.env['TALUS_SECRET_KEY'] = randomBytes(32).toString('base64');
    remote = await startPlain(join(root, 'remote'));
    remoteS3 = makeClient(remote.url, ROOT);
    await remoteS3.send(new CreateBucketCommand({ Bucket: 'shards' }));
    firstKey = await adminOf(remote).call<Credentials>('CreateKey', {});
    for (const name of ['a', 'b']) {
      const node = await startNode(name);
      nodes.push(node);
      clients.push(makeClient(node.url, ROOT));
    }
  });

  after(async () => {
    for (const client of clients) client.destroy();
    remoteS3?.destroy();
    for (const node of nodes) await node.close();
    await remote?.close();
    await sql?.end();
    await pg?.stop();
    delete process.env['TALUS_SECRET_KEY'];
    if (root !== undefined) await rm(root, { recursive: true, force: true });
  });

  test('putSettingIf: writes only over what it expects, on both stores', async () => {
    const stores: MetadataStore[] = [await PostgresMetadataStore.open(pg.url), new SqliteMetadataStore(join(root, 'conditional.db'))];
    for (const store of stores) {
      try {
        assert.equal(await store.putSettingIf('cas-test', 'v1', undefined), true, 'created when absent');
        assert.equal(await store.putSettingIf('cas-test', 'other', undefined), false, 'not over an existing row');
        assert.equal(await store.putSettingIf('cas-test', 'v2', 'stale'), false, 'not over another value');
        assert.equal(await store.getSetting('cas-test'), 'v1');
        assert.equal(await store.putSettingIf('cas-test', 'v2', 'v1'), true, 'over the value it read');
        assert.equal(await store.getSetting('cas-test'), 'v2');
        assert.equal(await store.deleteSetting('cas-test'), true);
      } finally {
        await store.close();
      }
    }
  });

  test('added on A: B writes to the new backend within the bound, both read back; the secret is sealed in the row and never answered', async () => {
    const [a, b] = [nodes[0]!, nodes[1]!];
    const [s3A, s3B] = [clients[0]!, clients[1]!];
    await adminOf(a).call('AddBackend', { name: 'remote', type: 's3', endpoint: remote.url, bucket: 'shards', accessKeyId: firstKey.accessKeyId, secretAccessKey: firstKey.secretAccessKey });
    await adminOf(a).call('AddPlacement', { name: 'far', type: 'single', backends: ['remote'] });
    await s3A.send(new CreateBucketCommand({ Bucket: 'far-bucket' }));
    await adminOf(a).call('SetBucketPlacement', { bucket: 'far-bucket', placement: 'far' });

    const farOn = async (node: RunningTalus): Promise<boolean> => (await adminOf(node).call<Layout>('ListPlacements')).buckets.some((bucket) => bucket.name === 'far-bucket' && bucket.placement === 'far');
    assert.ok(await farOn(a), 'A answered once it applied the change');
    await eventually('B follows A\'s changes', () => farOn(b));

    const before = await keyCount(remoteS3, 'shards');
    const body = randomBytes(100_000); // above the inline limit: its bytes go to a backend
    await s3B.send(new PutObjectCommand({ Bucket: 'far-bucket', Key: 'from-b', Body: body }));
    assert.equal(await keyCount(remoteS3, 'shards'), before + 1, 'B wrote the object\'s shard to the backend A added');
    assert.ok((await bodyOf(s3A, 'far-bucket', 'from-b')).equals(body), 'read back through A');
    assert.ok((await bodyOf(s3B, 'far-bucket', 'from-b')).equals(body), 'read back through B');

    const text = await row();
    assert.ok(!text.includes(firstKey.secretAccessKey), 'the secret is not in the settings row in clear');
    assert.ok(text.includes(firstKey.accessKeyId) && text.includes('secretAccessKeySealed'), 'the backend is kept, its secret sealed');
    for (const node of [a, b]) {
      const listed = JSON.stringify(await adminOf(node).call('ListBackends'));
      assert.ok(listed.includes('"remote"') && !listed.includes(firstKey.secretAccessKey), 'ListBackends never answers the secret');
    }
    for (const path of await filesUnder(join(root, 'a'))) assert.ok(!(await readFile(path)).includes(firstKey.secretAccessKey), `${path} does not hold the secret`);
  });

  test('UpdateBackend on B is seen by A: A writes with the new key once the old one is gone', async () => {
    const [a, b] = [nodes[0]!, nodes[1]!];
    const secondKey = await adminOf(remote).call<Credentials>('CreateKey', {});
    assert.deepEqual(await adminOf(b).call('UpdateBackend', { name: 'remote', accessKeyId: secondKey.accessKeyId, secretAccessKey: secondKey.secretAccessKey }), { name: 'remote', type: 's3' });
    await adminOf(remote).call('DeleteKey', { accessKeyId: firstKey.accessKeyId });
    // Only a node that applied B's change can write there now: the first key is refused by the backend.
    const body = randomBytes(50_000);
    await eventually('A writes to the backend with B\'s new key', async () => {
      await clients[0]!.send(new PutObjectCommand({ Bucket: 'far-bucket', Key: 'from-a', Body: body }));
      return true;
    });
    assert.ok((await bodyOf(clients[1]!, 'far-bucket', 'from-a')).equals(body), 'read back through B');
    const text = await row();
    assert.ok(text.includes(secondKey.accessKeyId) && !text.includes(firstKey.accessKeyId), 'the row holds the new key');
    assert.ok(!text.includes(secondKey.secretAccessKey), 'sealed');
  });

  test('changes made on A and B at the same moment all survive (compare-and-set)', async () => {
    const [a, b] = [nodes[0]!, nodes[1]!];
    const names = Array.from({ length: 6 }, (_, index) => `race${index}`);
    // Alternating nodes, all at once: each must read, decide and write against the other's document.
    await Promise.all(names.map((name, index) => adminOf(index % 2 === 0 ? a : b).call('AddPlacement', { name, type: 'single', backends: ['shared'] })));
    const placementNames = async (node: RunningTalus): Promise<string[]> => (await adminOf(node).call<Layout>('ListPlacements')).placements.map((placement) => placement.name);
    for (const node of [a, b]) {
      await eventually('every node serves every placement', async () => {
        const known = await placementNames(node);
        return names.every((name) => known.includes(name));
      });
    }
    const kept = JSON.parse(await row()) as { placements: { name: string }[] };
    for (const name of names) assert.ok(kept.placements.some((placement) => placement.name === name), `${name} is kept`);
  });

  test('a restarted node starts with every change, and serves the objects on the run-time backend', async () => {
    await clients[1]!.destroy();
    await nodes[1]!.close();
    nodes[1] = await startNode('b');
    clients[1] = makeClient(nodes[1].url, ROOT);
    const layout = await adminOf(nodes[1]).call<Layout>('ListPlacements');
    assert.ok(layout.placements.some((placement) => placement.name === 'far' && placement.backends?.[0] === 'remote'));
    assert.ok(layout.buckets.some((bucket) => bucket.name === 'far-bucket' && bucket.placement === 'far'));
    assert.equal((await bodyOf(clients[1], 'far-bucket', 'from-b')).length, 100_000);
    assert.equal((await bodyOf(clients[1], 'far-bucket', 'from-a')).length, 50_000);
  });

  test('a node that cannot apply the shared document refuses writes after the stale bound, reads on, and writes again once it can', async () => {
    // C declares in its own talus.toml a backend that A then adds at run time: C cannot apply that document.
    const clashing = parseConfig(
      `[backends.shared]\ntype = "directory"\npath = "${join(root, 'shared')}"\n[backends.clash]\ntype = "directory"\npath = "${join(root, 'clash-c')}"\n` +
      `[placements.one]\ntype = "single"\nbackend = "shared"\n[defaults]\nplacement = "one"\n`,
      { source: 'test', baseDirectory: root },
    );
    const c = await startTalus({
      dataDir: join(root, 'c'), port: 0, address: '127.0.0.1', rootAccessKeyId: ROOT.accessKeyId, rootSecretAccessKey: ROOT.secretAccessKey,
      logger: silentLogger, admin: { port: 0, address: '127.0.0.1' }, config: clashing, healInBackground: false, metaUrl: pg.url,
    });
    const s3C = makeClient(c.url, ROOT);
    const put = async (key: string): Promise<number> => {
      try {
        await s3C.send(new PutObjectCommand({ Bucket: 'far-bucket', Key: key, Body: randomBytes(30_000) }));
        return 200;
      } catch (error) {
        return (error as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode ?? 0;
      }
    };
    try {
      assert.equal(await put('before'), 200);
      await adminOf(nodes[0]!).call('AddBackend', { name: 'clash', type: 'directory', path: join(root, 'clash-a') });
      await eventually('C refuses writes once it has been behind for the bound', async () => (await put('behind')) === 503, FOLLOW_TIMEOUT_MS + RUNTIME_STALE_MAX_MS);
      assert.match(c.engine.unreadyReason() ?? '', /not been up to date with the shared run-time placements/);
      assert.equal((await bodyOf(s3C, 'far-bucket', 'before')).length, 30_000, 'reads go on');
      await clients[0]!.send(new PutObjectCommand({ Bucket: 'far-bucket', Key: 'on-a', Body: randomBytes(30_000) })); // the nodes up to date write on

      await adminOf(nodes[0]!).call('RemoveBackend', { name: 'clash' });
      await eventually('C writes again once it could apply the document', async () => (await put('after')) === 200);
      assert.equal(c.engine.unreadyReason(), undefined);
    } finally {
      s3C.destroy();
      await c.close();
    }
  });
});

test('a single node keeps S3 backends\' secrets sealed in runtime-placements.json, and opens them again after a restart', async () => {
  const root = await mkdtemp(join(tmpdir(), 'talus-placements-sealed-'));
  const remote = await startPlain(join(root, 'remote'));
  const config = parseConfig(`[backends.base]\ntype = "directory"\npath = "${join(root, 'base')}"\n[placements.basic]\ntype = "single"\nbackend = "base"\n`, { source: 'test', baseDirectory: root });
  let node = await startPlain(join(root, 'node'), config);
  const remoteS3 = makeClient(remote.url, ROOT);
  let s3 = makeClient(node.url, ROOT);
  try {
    await remoteS3.send(new CreateBucketCommand({ Bucket: 'shards' }));
    const key = await adminOf(remote).call<Credentials>('CreateKey', {});
    await adminOf(node).call('AddBackend', { name: 'remote', type: 's3', endpoint: remote.url, bucket: 'shards', ...{ accessKeyId: key.accessKeyId, secretAccessKey: key.secretAccessKey } });
    await adminOf(node).call('AddPlacement', { name: 'far', type: 'single', backends: ['remote'] });
    const file = await readFile(join(root, 'node', 'runtime-placements.json'), 'utf8');
    assert.ok(file.includes(key.accessKeyId) && !file.includes(key.secretAccessKey), 'kept, its secret sealed');
    s3.destroy();
    await node.close();
    node = await startPlain(join(root, 'node'), config);
    s3 = makeClient(node.url, ROOT);
    await s3.send(new CreateBucketCommand({ Bucket: 'far-bucket' }));
    await adminOf(node).call('SetBucketPlacement', { bucket: 'far-bucket', placement: 'far' });
    await s3.send(new PutObjectCommand({ Bucket: 'far-bucket', Key: 'k', Body: randomBytes(60_000) }));
    assert.equal(await keyCount(remoteS3, 'shards'), 1, 'written with the secret opened from the file');
  } finally {
    s3.destroy();
    remoteS3.destroy();
    await node.close();
    await remote.close();
    await rm(root, { recursive: true, force: true });
  }
});

test('a single node\'s run-time files are imported once into a store without a document (a migrated node\'s first start with --meta), then renamed', async () => {
  const root = await mkdtemp(join(tmpdir(), 'talus-placements-import-'));
  const dataDir = join(root, 'data');
  await mkdir(dataDir);
  const box = new SecretBox(randomBytes(32));
  const meta = new SqliteMetadataStore(join(root, 'store.db'));
  try {
    const files = new FileRuntimeDocuments(dataDir, box);
    const document = {
      backends: [{ name: 'remote', type: 's3' as const, endpoint: 'http://127.0.0.1:9', bucket: 'b', region: 'us-east-1', accessKeyId: 'AKIDIMPORT', secretAccessKey: 'import-secret-in-clear', prefix: '', multipartThresholdBytes: 1 << 30, partBytes: 1 << 27 }],
      placements: [{ name: 'far', type: 'single' as const, dataShards: 1, parityShards: 0, backends: ['remote'], writeQuorum: 1, assignment: 'priority' as const, blockBytes: 1 << 20 }],
      buckets: new Map([['photos', 'far']]),
    };
    await files.write(document, await files.read());
    const shared = await SettingsRuntimeDocuments.open(meta, box, dataDir, silentLogger);
    const kept = await shared.read();
    assert.equal(kept.version, 1);
    assert.deepEqual(kept.document, document);
    const text = (await meta.getSetting(RUNTIME_DOCUMENT_SETTING))!;
    assert.ok(text.includes('AKIDIMPORT') && !text.includes('import-secret-in-clear'), 'imported, its secret sealed');
    await assert.rejects(access(join(dataDir, 'runtime-placements.json')), 'renamed');
    await access(join(dataDir, `runtime-placements.json${IMPORTED_SUFFIX}`));
    await access(join(dataDir, `bucket-placements.json${IMPORTED_SUFFIX}`));

    // Files found again beside a document: the shared one wins, the files stay as they are.
    await files.write({ ...document, buckets: new Map() }, await files.read());
    await SettingsRuntimeDocuments.open(meta, box, dataDir, silentLogger);
    assert.equal(await meta.getSetting(RUNTIME_DOCUMENT_SETTING), text);
    await access(join(dataDir, 'runtime-placements.json'));
  } finally {
    await meta.close();
    await rm(root, { recursive: true, force: true });
  }
});
