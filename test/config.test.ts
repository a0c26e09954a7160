/**
 * The configuration file fails closed: every mistake is refused with the
 * table and key named, and what it accepts is what was written.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ConfigError, LOCAL_PLACEMENT, parseConfig } from '../src/config/config.ts';

const parse = (text: string) => parseConfig(text, { source: 't.toml', baseDirectory: '/etc/talus' });
const disks = (n: number): string => Array.from({ length: n }, (_, i) => `[backends.d${i}]\ntype = "directory"\npath = "d${i}"\n`).join('');
const list = (n: number): string => `[${Array.from({ length: n }, (_, i) => `"d${i}"`).join(', ')}]`;

test('an empty file is the built-in behaviour: everything local', () => {
  const config = parse('');
  assert.equal(config.defaultPlacement, LOCAL_PLACEMENT);
  assert.deepEqual(config.placements, []);
});

test('a full configuration reads back as written, with the documented defaults', () => {
  const config = parse(`${disks(6)}
[backends.eu]
type = "s3"
endpoint = "https://s3.example.com"
bucket = "shards"
access_key_id = "AK"
secret_access_key = "SK"

[placements.ec]
type = "erasure"
data_shards = 4
parity_shards = 2
backends = ${list(6)}

[placements.copies]
type = "replica"
copies = 3
backends = ["d0", "d1", "eu"]
assignment = "priority"
block_size = "1MiB"

[placements.mixed]
type = "hybrid"
threshold = "1MiB"
small = "copies"
large = "ec"

[defaults]
placement = "mixed"

[buckets]
logs = "local"
`);
  const ec = config.placements.find((placement) => placement.name === 'ec')!;
  assert.deepEqual(ec, { name: 'ec', type: 'erasure', dataShards: 4, parityShards: 2, backends: ['d0', 'd1', 'd2', 'd3', 'd4', 'd5'], assignment: 'shuffle', writeQuorum: 5, blockBytes: 256 * 1024 });
  const copies = config.placements.find((placement) => placement.name === 'copies')!;
  assert.deepEqual(copies, { name: 'copies', type: 'replica', dataShards: 1, parityShards: 2, backends: ['d0', 'd1', 'eu'], assignment: 'priority', writeQuorum: 2, blockBytes: 1024 * 1024 });
  assert.deepEqual(config.placements.find((placement) => placement.name === 'mixed'), { name: 'mixed', type: 'hybrid', thresholdBytes: 1024 * 1024, small: 'copies', large: 'ec' });
  assert.equal(config.defaultPlacement, 'mixed');
  assert.equal(config.buckets.get('logs'), 'local');
  assert.deepEqual(config.backends.find((backend) => backend.name === 'd0'), { name: 'd0', type: 'directory', path: '/etc/talus/d0' });
  assert.equal(config.backends.find((backend) => backend.name === 'eu')!.type, 's3');
});

test('mistakes are refused with the table and key named', () => {
  const cases: [string, RegExp][] = [
    ['this is not toml', /not valid TOML/],
    ['[backends.d0]\ntype = "tape"', /\[backends.d0\] type: must be "directory" or "s3"/],
    ['[backends.d0]\ntype = "directory"', /\[backends.d0\] path: is required/],
    ['[backends.d0]\ntype = "directory"\npath = "x"\ncolour = "red"', /\[backends.d0\] colour: unknown setting/],
    ['[backends.D0]\ntype = "directory"\npath = "x"', /names are lower-case/],
    ['[backends.s]\ntype = "s3"\nendpoint = "ftp://x"\nbucket = "b"\naccess_key_id = "a"\nsecret_access_key = "s"', /endpoint: must be http/],
    [`${disks(3)}[placements.ec]\ntype = "erasure"\ndata_shards = 2\nparity_shards = 2\nbackends = ${list(3)}`, /4 shards need at least 4 backends, 3 listed/],
    [`${disks(3)}[placements.ec]\ntype = "erasure"\ndata_shards = 2\nparity_shards = 1\nbackends = ["d0", "d1", "nope"]`, /no backend "nope"/],
    [`${disks(3)}[placements.ec]\ntype = "erasure"\ndata_shards = 2\nparity_shards = 1\nbackends = ["d0", "d1", "d1"]`, /lists a backend twice/],
    [`${disks(3)}[placements.ec]\ntype = "erasure"\ndata_shards = 2\nparity_shards = 1\nbackends = ${list(3)}\nwrite_quorum = 1`, /write_quorum: must be an integer from 2 to 3/],
    [`${disks(9)}[placements.ec]\ntype = "erasure"\ndata_shards = 2\nparity_shards = 7\nbackends = ${list(9)}`, /parity_shards: must be an integer from 1 to 6/],
    [`${disks(3)}[placements.ec]\ntype = "erasure"\ndata_shards = 2\nparity_shards = 1\nbackends = ${list(3)}\nblock_size = "1000"`, /block_size: must be a multiple of 8/],
    [`${disks(3)}[placements.ec]\ntype = "erasure"\ndata_shards = 2\nparity_shards = 1\nbackends = ${list(3)}\nassignment = "random"`, /assignment: must be "shuffle" or "priority"/],
    [`${disks(2)}[placements.h]\ntype = "hybrid"\nthreshold = "1MiB"\nsmall = "local"\nlarge = "missing"`, /\[placements.h\]: no placement "missing"/],
    [`${disks(2)}[placements.h]\ntype = "hybrid"\nthreshold = "1MiB"\nsmall = "local"\nlarge = "h"`, /cannot contain another hybrid/],
    ['[placements.local]\ntype = "single"\nbackend = "x"', /"local" is built in/],
    ['[defaults]\nplacement = "fast"', /\[defaults\] placement: no placement "fast"/],
    ['[buckets]\nphotos = "fast"', /\[buckets\] photos: no placement "fast"/],
    ['[surprise]\nx = 1', /surprise: unknown setting/],
  ];
  for (const [text, message] of cases) {
    assert.throws(() => parse(text), (error: unknown) => error instanceof ConfigError && message.test(error.message), `${JSON.stringify(text)} → ${message}`);
  }
});
