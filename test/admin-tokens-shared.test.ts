/**
 * Admin bearer tokens live in the metadata store (src/admin/tokens.ts), so
 * nodes sharing one PostgreSQL share them: a token created on node A works
 * on node B; revoked on B, it is refused on A at its next use; expired, it
 * is refused on both. And a data directory an older Talus left with
 * DATA_DIR/admin-tokens.json keeps its live tokens across the upgrade: the
 * file is imported once into the (SQLite) store and renamed.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { access, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { AdminClient } from '../src/admin/client.ts';
import { ADMIN_PATH_PREFIX } from '../src/admin/paths.ts';
import { TOKENS_FILE, TOKENS_FILE_IMPORTED } from '../src/admin/tokens.ts';
import { parseConfig } from '../src/config/config.ts';
import { startTalus, type RunningTalus } from '../src/talus.ts';
import { silentLogger } from '../src/util/logger.ts';
import { postgresUnavailable, startTestPostgres, type TestPostgres } from './helpers/postgres.ts';

const ROOT = { accessKeyId: 'TALUSTOKENROOT000001', secretAccessKey: 'token-root-secret-0000000000000000000000' };
const skip = await postgresUnavailable();
if (skip !== undefined) console.log(`# skipped: ${skip}`);

/** An admin call with `Authorization: Bearer <token>`: its status and error code (if any). */
async function withToken(node: RunningTalus, token: string, operation = 'ListBuckets'): Promise<{ status: number; code: unknown }> {
  const response = await fetch(`${node.adminUrl}${ADMIN_PATH_PREFIX}${operation}`, {
    method: 'POST',
    body: '{}',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
  });
  const body = await response.json() as Record<string, unknown>;
  return { status: response.status, code: body['code'] };
}

function admin(node: RunningTalus): AdminClient {
  return new AdminClient({ endpoint: node.adminUrl!, ...ROOT });
}

describe('two nodes on one PostgreSQL', { skip }, () => {
  let root: string;
  let pg: TestPostgres;
  const nodes: RunningTalus[] = [];

  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'talus-tokens-shared-'));
    pg = await startTestPostgres();
    // Every node opens the same sealed secrets (docs/SCALE-OUT.md).
    process.env['TALUS_SECRET_KEY'] = randomBytes(32).toString('base64');
    const config = `[backends.shared]\ntype = "directory"\npath = "${join(root, 'shared')}"\n[placements.one]\ntype = "single"\nbackend = "shared"\n[defaults]\nplacement = "one"\n`;
    // One at a time: the first creates the schema and root's key, the second finds them.
    for (const name of ['a', 'b']) {
      nodes.push(await startTalus({
        dataDir: join(root, name), port: 0, address: '127.0.0.1', ...{ rootAccessKeyId: ROOT.accessKeyId, rootSecretAccessKey: ROOT.secretAccessKey },
        logger: silentLogger, admin: { port: 0, address: '127.0.0.1' }, config: parseConfig(config, { source: 'test', baseDirectory: root }),
        healInBackground: false, metaUrl: pg.url,
      }));
    }
  });

  after(async () => {
    for (const node of nodes) await node.close();
    await pg?.stop();
    delete process.env['TALUS_SECRET_KEY'];
    if (root !== undefined) await rm(root, { recursive: true, force: true });
  });

  test('created on A, works on B; revoked on B, refused on A at once; listed alike on both', async () => {
    const [a, b] = [nodes[0]!, nodes[1]!];
    const created = await admin(a).call<{ token: string; id: string }>('CreateToken', { name: 'shared', scope: ['List*'], expiresInSeconds: 600 });
    assert.deepEqual(await withToken(b, created.token), { status: 200, code: undefined });
    assert.deepEqual(await withToken(a, created.token), { status: 200, code: undefined });
    // The scope travels with it.
    assert.equal((await withToken(b, created.token, 'GetServerInfo')).code, 'AccessDenied');
    const ids = async (node: RunningTalus): Promise<string[]> => (await admin(node).call<{ tokens: { id: string }[] }>('ListTokens')).tokens.map((token) => token.id);
    assert.deepEqual(await ids(b), [created.id]);
    assert.deepEqual(await ids(a), [created.id]);

    assert.deepEqual(await admin(b).call('RevokeToken', { id: created.id }), {});
    // No cache: A reads the store at every use, so the revocation is seen by its very next request.
    assert.deepEqual(await withToken(a, created.token), { status: 403, code: 'InvalidToken' });
    assert.deepEqual(await withToken(b, created.token), { status: 403, code: 'InvalidToken' });
    assert.deepEqual(await ids(a), []);
  });

  test('expired: refused on both nodes', async () => {
    const [a, b] = [nodes[0]!, nodes[1]!];
    const brief = await admin(b).call<{ token: string }>('CreateToken', { name: 'brief', scope: ['*'], expiresInSeconds: 1 });
    assert.equal((await withToken(a, brief.token)).status, 200);
    await new Promise((resolve) => setTimeout(resolve, 1_200));
    for (const node of [a, b]) assert.deepEqual(await withToken(node, brief.token), { status: 403, code: 'InvalidToken' });
  });
});

test('an admin-tokens.json left by an older Talus is imported once into a SQLite server: live tokens keep working, expired ones do not come back', async () => {
  const root = await mkdtemp(join(tmpdir(), 'talus-tokens-import-'));
  const dataDir = join(root, 'data');
  const start = (): Promise<RunningTalus> => startTalus({
    dataDir, port: 0, address: '127.0.0.1', rootAccessKeyId: ROOT.accessKeyId, rootSecretAccessKey: ROOT.secretAccessKey,
    logger: silentLogger, admin: { port: 0, address: '127.0.0.1' }, healInBackground: false,
  });
  let node: RunningTalus | undefined;
  try {
    await mkdir(dataDir);
    // The file as Talus before shared tokens wrote it.
    const nowMs = Date.now();
    const tokenText = (label: string): string => `talus_at_${createHash('sha256').update(label).digest('base64url')}`;
    const record = (id: string, token: string, expiresMs: number): object => ({
      id, name: id, hash: createHash('sha256').update(token).digest('hex'), scope: ['List*'], creatorAccessKeyId: ROOT.accessKeyId, createdMs: nowMs - 60_000, expiresMs,
    });
    const live = tokenText('live');
    const expired = tokenText('expired');
    await writeFile(join(dataDir, TOKENS_FILE), JSON.stringify({ version: 1, tokens: [record('tok-live', live, nowMs + 600_000), record('tok-expired', expired, nowMs - 1)] }));

    node = await start();
    assert.equal((await withToken(node, live)).status, 200);
    assert.equal((await withToken(node, expired)).code, 'InvalidToken');
    assert.deepEqual((await admin(node).call<{ tokens: { id: string }[] }>('ListTokens')).tokens.map((token) => token.id), ['tok-live']);
    await assert.rejects(access(join(dataDir, TOKENS_FILE)), 'the file is renamed');
    assert.match(await readFile(join(dataDir, TOKENS_FILE_IMPORTED), 'utf8'), /tok-live/);

    // Revoked after the import: a restart does not bring it back from the renamed file.
    assert.deepEqual(await admin(node).call('RevokeToken', { id: 'tok-live' }), {});
    await node.close();
    node = await start();
    assert.equal((await withToken(node, live)).code, 'InvalidToken');
  } finally {
    await node?.close();
    await rm(root, { recursive: true, force: true });
  }
});
