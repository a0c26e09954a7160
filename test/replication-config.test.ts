/** The `[replication]` table: defaults, and what is refused with the table and key named. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ConfigError, parseConfig } from '../src/config/config.ts';

const BASE = [
  ...[0, 1, 2, 3].map((i) => `[backends.d${i}]\ntype = "directory"\npath = "/srv/d${i}"`),
  '[placements.geo]\ntype = "erasure"\ndata_shards = 2\nparity_shards = 1\nbackends = ["d0", "d1", "d2"]',
].join('\n');
const parse = (replication: string) => parseConfig(`${BASE}\n[replication]\n${replication}`, { source: 'talus.toml', baseDirectory: '/' });

test('defaults: the backends placements use, 1 s, a majority, async, unencrypted', () => {
  const config = parse('');
  assert.deepEqual(config.replication, { backends: ['d0', 'd1', 'd2'], lagMs: 1_000, snapshotIntervalMs: 3_600_000, writeQuorum: 2, key: undefined, mode: 'async' });
  assert.equal(parseConfig(BASE, { source: 'talus.toml', baseDirectory: '/' }).replication, undefined);
});

test('explicit settings', () => {
  const key = Buffer.alloc(32, 9);
  const config = parse(`backends = ["d3", "d0"]\nlag = "250ms"\nsnapshot_interval = "10min"\nwrite_quorum = 1\nkey = "${key.toString('base64')}"\nmode = "quorum"`);
  assert.deepEqual(config.replication, { backends: ['d3', 'd0'], lagMs: 250, snapshotIntervalMs: 600_000, writeQuorum: 1, key, mode: 'quorum' });
});

test('refused: unknown backend, bad key, quorum above the backends, unknown mode or key', () => {
  for (const [text, message] of [
    ['backends = ["nope"]', /\[replication\] backends: no backend "nope"/],
    ['key = "c2hvcnQ="', /\[replication\] key: must be the base64 of 32 bytes/],
    ['write_quorum = 4', /\[replication\] write_quorum: must be an integer from 1 to 3/],
    ['mode = "sync"', /\[replication\] mode: must be "async" or "quorum"/],
    ['lags = "1s"', /\[replication\] lags: unknown setting/],
  ] as const) {
    assert.throws(() => parse(text), (error: unknown) => error instanceof ConfigError && message.test(error.message), text);
  }
});
