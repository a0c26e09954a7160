/**
 * Replication stays opt-in (docs/PLACEMENT.md, "Replication by default?"),
 * but a gateway that places objects on remote backends without it is told
 * at start-up that its data directory is then the only way to them. Method:
 * parse configurations (remote placement without [replication]; the same
 * with it; directories only; a remote backend no placement uses), ask which
 * remote backends are unreplicated, and open replication for a real store
 * with a logger that records: the warning names exactly those backends, and
 * nothing is said when there is nothing to say.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { parseConfig, type TalusConfig } from '../src/config/config.ts';
import { SqliteMetadataStore } from '../src/meta/sqlite/sqlite-metadata-store.ts';
import { openReplication, unreplicatedRemoteBackends } from '../src/replication/cli.ts';
import type { Logger } from '../src/util/logger.ts';

const REMOTE = (name: string): string => `[backends.${name}]\ntype = "s3"\nendpoint = "https://${name}.example.com"\nbucket = "shards"\naccess_key_id = "AK"\nsecret_access_key = "SK"\n`;
const DISK = (name: string): string => `[backends.${name}]\ntype = "directory"\npath = "${name}"\n`;
const EC = (backends: string[]): string => `[placements.ec]\ntype = "erasure"\ndata_shards = 2\nparity_shards = 1\nbackends = ${JSON.stringify(backends)}\n[defaults]\nplacement = "ec"\n`;

function parse(text: string): TalusConfig {
  return parseConfig(text, { source: 'talus.toml', baseDirectory: '/srv/talus' });
}

test('remote backends of placements without [replication] are named; with it, or with directories only, none', () => {
  const gateway = `${DISK('d0')}${REMOTE('eu')}${REMOTE('us')}${REMOTE('spare')}${EC(['d0', 'eu', 'us'])}`;
  assert.deepEqual(unreplicatedRemoteBackends(parse(gateway)), ['eu', 'us']);
  assert.deepEqual(unreplicatedRemoteBackends(parse(`${gateway}[replication]\n`)), []);
  assert.deepEqual(unreplicatedRemoteBackends(parse(`${DISK('d0')}${DISK('d1')}${DISK('d2')}${EC(['d0', 'd1', 'd2'])}`)), []);
  assert.deepEqual(unreplicatedRemoteBackends(parse('')), []);
});

test('the server warns once at start-up when such backends exist, and says nothing otherwise', async () => {
  const root = await mkdtemp(join(tmpdir(), 'talus-replication-advice-'));
  try {
    for (const [text, expected] of [
      [`${REMOTE('eu')}${REMOTE('us')}${REMOTE('ap')}${EC(['eu', 'us', 'ap'])}`, ['eu', 'us', 'ap']],
      [`${DISK('d0')}${DISK('d1')}${DISK('d2')}${EC(['d0', 'd1', 'd2'])}`, undefined],
    ] as const) {
      const warnings: { message: string; fields: Record<string, unknown> | undefined }[] = [];
      const logger: Logger = { info: () => {}, error: () => {}, warn: (message, fields) => warnings.push({ message, fields }) };
      const meta = new SqliteMetadataStore(join(root, `meta-${warnings.length}-${Date.now()}.db`));
      try {
        const replicator = await openReplication({ config: parse(text), dataDir: root, meta, placedBackends: [], workers: 1, logger });
        assert.equal(replicator, undefined);
      } finally {
        await meta.close();
      }
      if (expected === undefined) {
        assert.deepEqual(warnings, []);
      } else {
        assert.equal(warnings.length, 1);
        assert.match(warnings[0]!.message, /metadata is not replicated.*\[replication\]/);
        assert.deepEqual(warnings[0]!.fields, { backends: expected });
      }
    }
  } finally {
    await rm(root, { recursive: true, force: true });
  }
});
