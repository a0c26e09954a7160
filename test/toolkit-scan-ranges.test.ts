/**
 * talus scan lists in parallel (issue 14): in list and none modes the keys
 * after the first page are split into ranges by probing (key-space.ts),
 * listed at once and merged back in key order (parallel-listing.ts). Against
 * an in-memory S3 listing (start-after, continuation tokens, max-keys as S3
 * answers them): every key exactly once, in order, for sequential, random
 * and skewed key sets; ranges of similar size; a range's last page asks only
 * for what it has left; a failed range fails the scan. Then end to end on a
 * real Talus, through the CLI. And the page parser on entries listed without
 * metadata (keys the caller may not read) next to entries with it.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { after, before, describe, test } from 'node:test';
import { S3Client } from '../src/client/s3-client.ts';
import { KeyFractions, splitKeySpace } from '../src/scan/key-space.ts';
import { parseScannedPage, type ScannedPage } from '../src/scan/listing-page.ts';
import { listRemainingInParallel, type PageRequest } from '../src/scan/parallel-listing.ts';
import { CLI, PROJECT_ROOT } from './helpers/process.ts';
import { ACCESS_KEY_ID, SECRET_ACCESS_KEY, startTestTalus, type TestTalus } from './helpers/talus.ts';

/** A bucket's sorted keys, listed as S3 lists them. */
class FakeListing {
  readonly keys: string[];
  readonly requests: PageRequest[] = [];
  probes = 0;
  keysServed = 0;
  failStartAfter: string | undefined;

  constructor(keys: Iterable<string>) {
    this.keys = [...new Set(keys)].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
  }

  #firstAfter(startAfter: string): number {
    let low = 0;
    let high = this.keys.length;
    while (low < high) {
      const middle = (low + high) >> 1;
      if (Buffer.compare(Buffer.from(this.keys[middle]!), Buffer.from(startAfter)) <= 0) low = middle + 1;
      else high = middle;
    }
    return low;
  }

  page = async (request: PageRequest): Promise<ScannedPage> => {
    this.requests.push(request);
    await new Promise((resolve) => setImmediate(resolve));
    if (this.failStartAfter !== undefined && request.startAfter === this.failStartAfter) throw new Error('range listing failed');
    const after = request.continuationToken ?? request.startAfter ?? '';
    const from = this.#firstAfter(after);
    const keys = this.keys.slice(from, from + request.maxKeys);
    this.keysServed += keys.length;
    const isTruncated = from + keys.length < this.keys.length;
    return { objects: keys.map((key) => ({ key, size: 0, etag: 'e', lastModified: '' })), isTruncated, nextContinuationToken: isTruncated ? keys.at(-1) : undefined };
  };

  probe = async (startAfter: string): Promise<string | undefined> => {
    this.probes++;
    return this.keys[this.#firstAfter(startAfter)];
  };
}

async function listAll(listing: FakeListing, ranges: number, prefix = ''): Promise<string[]> {
  const first = await listing.page({ maxKeys: 1000 });
  const keys = first.objects.map((object) => object.key);
  if (!first.isTruncated) return keys;
  let done = false;
  for await (const page of listRemainingInParallel(first, { ranges, prefix, pageKeysMax: 1000, fetch: listing.page, probe: listing.probe, onListingDone: () => (done = true) })) {
    for (const object of page.objects) keys.push(object.key);
  }
  await new Promise((resolve) => setImmediate(resolve));
  assert.ok(done, 'onListingDone was called');
  return keys;
}

const sequential = (count: number, prefix = 'bulk/'): string[] => Array.from({ length: count }, (_, i) => `${prefix}${String(i).padStart(8, '0')}`);
/** Deterministic pseudo-random hex keys. */
function randomHex(count: number): string[] {
  let state = 12345;
  return Array.from({ length: count }, () => {
    state = (state * 1103515245 + 12345) % 2 ** 31;
    return `data/${state.toString(16).padStart(8, '0')}/${(state % 977).toString(36)}.bin`;
  });
}

describe('splitting the key space', () => {
  test('fractions follow key order, and their strings are ASCII start-after boundaries in that order', () => {
    const fractions = new KeyFractions('bulk/', sequential(1000));
    const keys = sequential(5000).filter((_, i) => i % 97 === 0);
    const values = keys.map((key) => fractions.of(key));
    for (let i = 1; i < values.length; i++) assert.ok(values[i]! > values[i - 1]!, `${keys[i]} after ${keys[i - 1]}`);
    let previous = '';
    for (let i = 0n; i <= 64n; i++) {
      const text = fractions.stringOf((fractions.one * i) / 64n);
      assert.match(text, /^bulk\/[\x20-\x7e]+$/);
      assert.ok(text >= previous);
      previous = text;
    }
  });

  for (const [name, keys] of [
    ['sequential numbers', sequential(10_000)],
    ['random hex', randomHex(12_000)],
    ['skewed: most keys under one long shared run', [...sequential(9000, 'logs/2026/12/06/'), ...sequential(300, 'logs/2027/'), 'logs/zzz']],
    ['non-ASCII keys', sequential(6000).map((key, i) => `${key}-${i % 3 === 0 ? 'ünïcödé' : 'plain'}-😀`)],
  ] as const) {
    test(`${name}: every key once, in order; ranges in use`, async () => {
      const listing = new FakeListing(keys);
      const listed = await listAll(listing, 4, name === 'skewed: most keys under one long shared run' ? 'logs/' : '');
      assert.equal(listed.length, listing.keys.length);
      assert.deepEqual(listed, listing.keys);
      assert.ok(listing.requests.some((request) => request.startAfter !== undefined), 'some range started after a boundary');
      // Little is listed twice: the page in flight when the split lands, and each range's last page, which asks
      // for about what the first page's density says it has left (keys with irregular tails fool that a little).
      assert.ok(listing.keysServed <= listing.keys.length * 1.15 + 1500, `${listing.keysServed} keys served for ${listing.keys.length}`);
    });
  }

  test('ranges are of similar size (sequential keys)', async () => {
    const listing = new FakeListing(sequential(20_000));
    const first = await listing.page({ maxKeys: 1000 });
    const split = await splitKeySpace('bulk/', first.objects.map((object) => object.key), 4, listing.probe);
    assert.ok(split !== undefined);
    assert.equal(split.boundaries.length, 3);
    const edges = [first.objects.at(-1)!.key, ...split.boundaries, '\u{10ffff}'];
    const sizes = edges.slice(1).map((edge, i) => listing.keys.filter((key) => key > edges[i]! && key <= edge).length);
    assert.ok(Math.max(...sizes) <= 2 * Math.min(...sizes), `range sizes ${sizes.join(', ')}`);
    assert.ok(listing.probes <= 40, `${listing.probes} probes`);
  });

  test('few keys after the first page: no split, one listing', async () => {
    const listing = new FakeListing(sequential(2500));
    const listed = await listAll(listing, 4);
    assert.deepEqual(listed, listing.keys);
    assert.ok(listing.requests.every((request) => request.startAfter === undefined));
  });

  test('a range that fails fails the listing', async () => {
    const listing = new FakeListing(sequential(10_000));
    const first = await listing.page({ maxKeys: 1000 });
    const split = await splitKeySpace('', first.objects.map((object) => object.key), 4, listing.probe);
    listing.failStartAfter = split!.boundaries[1];
    await assert.rejects(listAll(listing, 4), /range listing failed/);
  });
});

describe('the page parser', () => {
  test('entries listed without metadata next to entries with it, entities, tags, an empty <UserMetadata/>', () => {
    const entry = (key: string, extra: string): string => `<Contents><Key>${key}</Key><LastModified>2026-12-06T07:00:00.000Z</LastModified><ETag>&quot;abc&quot;</ETag><Size>3</Size><StorageClass>STANDARD</StorageClass>${extra}</Contents>`;
    const xml = `<?xml version="1.0" encoding="UTF-8"?><ListBucketResult><Name>b</Name><IsTruncated>false</IsTruncated>${[
      entry('a%26b', '<UserMetadata><content-type>text/plain</content-type><X-Amz-Meta-Note>x &lt; y &amp; z</X-Amz-Meta-Note></UserMetadata><UserTags>team=blue+sky&amp;a%26b=1%3D2</UserTags>'),
      entry('hidden', ''),
      entry('also-hidden', ''),
      entry('empty', '<UserMetadata/>'),
      entry('last', '<UserMetadata><content-type>image/jpeg</content-type></UserMetadata>'),
    ].join('')}<EncodingType>url</EncodingType></ListBucketResult>`;
    const page = parseScannedPage(xml);
    assert.deepEqual(
      page.objects.map((object) => [object.key, object.etag, object.listedMetadata]),
      [
        ['a&b', 'abc', { contentType: 'text/plain', userMetadata: { note: 'x < y & z' }, tags: { team: 'blue sky', 'a&b': '1=2' } }],
        ['hidden', 'abc', undefined],
        ['also-hidden', 'abc', undefined],
        ['empty', 'abc', { contentType: undefined, userMetadata: {}, tags: {} }],
        ['last', 'abc', { contentType: 'image/jpeg', userMetadata: {}, tags: {} }],
      ],
    );
  });
});

describe('talus scan --list-ranges on a real Talus', { timeout: 180_000 }, () => {
  let talus: TestTalus;
  const bucket = 'scan-ranges';
  const count = 4600;

  before(async () => {
    talus = await startTestTalus();
    const client = new S3Client({ endpoint: talus.url, accessKeyId: ACCESS_KEY_ID, secretAccessKey: SECRET_ACCESS_KEY, connections: 32 });
    await client.createBucket(bucket);
    let next = 0;
    await Promise.all(
      Array.from({ length: 32 }, async () => {
        for (let i = next++; i < count; i = next++) await client.putObject(bucket, `k/${String(i).padStart(6, '0')}`, Buffer.alloc(0), { metadata: { n: String(i) } });
      }),
    );
    await client.close();
  });
  after(async () => {
    await talus.stop();
  });

  const scan = (ranges: number): Promise<{ code: number; stdout: string; stderr: string }> =>
    new Promise((resolve) => {
      execFile(
        process.execPath,
        ['--import', 'tsx', CLI, 'scan', `s3://${bucket}/k/`, '--endpoint', talus.url, '--metadata', 'list', '--list-ranges', String(ranges), '--quiet'],
        { cwd: PROJECT_ROOT, env: { ...process.env, AWS_ACCESS_KEY_ID: ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY: SECRET_ACCESS_KEY }, maxBuffer: 64 * 1024 * 1024, timeout: 120_000 },
        (error, stdout, stderr) => resolve({ code: error === null ? 0 : typeof error.code === 'number' ? error.code : 1, stdout, stderr }),
      );
    });

  test('4 ranges write exactly what one listing writes: every object once, in key order, with its metadata', async () => {
    const [one, four] = await Promise.all([scan(1), scan(4)]);
    assert.equal(one.code, 0, one.stderr);
    assert.equal(four.code, 0, four.stderr);
    const lines = four.stdout.trimEnd().split('\n');
    assert.equal(lines.length, count);
    lines.forEach((line, i) => {
      const object = JSON.parse(line) as { key: string; userMetadata: Record<string, string> };
      assert.equal(object.key, `k/${String(i).padStart(6, '0')}`);
      assert.equal(object.userMetadata['n'], String(i));
    });
    assert.equal(four.stdout, one.stdout);
  });
});
