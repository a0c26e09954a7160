/**
 * Listings off the event loop (src/meta/sqlite/listing-threads.ts) and the
 * delimiter skip path (key-only seeks past runs of common prefixes).
 *
 * - Read-your-writes through the listing thread: the store answers listings
 *   from its thread's own read-only connection, and every listing made after
 *   a write was acknowledged shows that write (puts, overwrites, deletes),
 *   including listings fired in the same turn as the next write.
 * - The skip path lists exactly what a plain reference listing (every key in
 *   UTF-8 byte order, rolled up by hand) says, through a real server with the
 *   AWS SDK: prefixes and delimiters (one and several characters, one above
 *   0x7F), keys equal to the prefix, keys ending with the delimiter, keys
 *   above U+FFFF (whose UTF-16 order differs from byte order), start-after,
 *   pages of 1, 2 and 3 entries with continuation tokens, encoding-type=url,
 *   and ListObjectVersions.
 * - A GET completes while 32 clients list 1000-key pages (asserted to
 *   complete, not timed: speed is the benchmark's business).
 */
import {
  CreateBucketCommand,
  GetObjectCommand,
  ListObjectsV2Command,
  ListObjectVersionsCommand,
  PutObjectCommand,
  S3Client,
} from '@aws-sdk/client-s3';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { SqliteMetadataStore } from '../src/meta/sqlite/sqlite-metadata-store.ts';
import type { ObjectVersion } from '../src/meta/types.ts';
import { makeClient, startTestTalus, uniqueBucket, type TestTalus } from './helpers/talus.ts';

function version(key: string, versionId: string, etag: string): ObjectVersion {
  return {
    bucket: 'b', key, versionId, isDeleteMarker: false, lastModifiedMs: Date.now(), sizeBytes: 1, etag, ownerId: 'o',
    system: {}, userMetadata: {}, checksum: null, tags: [], parts: null, segments: [],
  };
}

async function eventually(condition: () => boolean, what: string): Promise<void> {
  for (let attempt = 0; attempt < 600; attempt++) {
    if (condition()) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  assert.fail(`timed out waiting until ${what}`);
}

test('a listing on the thread sees every write acknowledged before it was asked for', async () => {
  const directory = await mkdtemp(join(tmpdir(), 'talus-offload-'));
  const store = new SqliteMetadataStore(join(directory, 'meta.db'), { listingThreads: 1, soleWriter: true, listingOnEventLoopStepsMax: 0 }); // every listing on the thread, small ones too
  try {
    const threads = store.listingThreads;
    assert.ok(threads !== undefined, 'a file database lists on threads when asked to');
    threads.start();
    await eventually(() => threads.readyCount === 1, 'the listing thread is ready');
    await store.createBucket({ name: 'b', createdMs: 0, ownerId: 'o', versioning: 'Unversioned', tags: null });
    const list = async (): Promise<string[]> => (await store.list({ bucket: 'b', prefix: '', delimiter: '', after: '', limit: 1000 })).entries.map((entry) => entry.key);
    const expected: string[] = [];
    for (let i = 0; i < 150; i++) {
      const key = `k/${String(i).padStart(4, '0')}`;
      // The next write is asked for in the same turn as this listing: the listing may or may not show it, but must show all before.
      await store.commitVersion({ version: version(key, 'null', `e${i}`), conditions: {} });
      expected.push(key);
      const listing = list();
      const next = store.commitVersion({ version: version(`k/${String(i).padStart(4, '0')}x`, 'null', 'x'), conditions: {} });
      const keys = (await listing).filter((listed) => !listed.endsWith('x'));
      assert.deepEqual(keys, expected, `listing ${i} after its write`);
      await next;
      await store.deleteVersion('b', `k/${String(i).padStart(4, '0')}x`, 'null');
      assert.ok(!(await list()).includes(`k/${String(i).padStart(4, '0')}x`), `listing ${i} after a delete`);
    }
    // An overwrite shows its new ETag.
    await store.commitVersion({ version: version('k/0000', 'null', 'changed'), conditions: {} });
    const page = await store.list({ bucket: 'b', prefix: 'k/0000', delimiter: '', after: '', limit: 1 });
    assert.equal(page.entries[0]?.version?.etag, 'changed');
    assert.ok(threads.answered >= 300, `the thread answered ${threads.answered} listings`);
  } finally {
    await store.close();
    await rm(directory, { recursive: true, force: true });
  }
});

/** The keys of the skip-path test: prefix edge cases, bytes above 0x7F, code points above U+FFFF, XML specials. */
const KEYS = [
  'di', 'dip/x', 'dir', 'dir/', 'dir//', 'dir//c', 'dir/a', 'dir/a/', 'dir/a/b', 'dir/a//c', 'dir/a/b/c/d', 'dir/a b', 'dir/a+b',
  'dir/e/1', 'dir/é/1', 'dir/é/2', 'dir/éé', 'dir/é', 'dir/\uFFFD/y', 'dir/\u{1F600}/x', 'dir/\u{1F600}', 'dir/\uE000/z', 'dir/\uFFFF/w',
  'dir/&/<', 'dir/z', 'dir/zz/', 'dir/zz/1', 'dir/~/q', 'dis/', 'x/1', 'x/2', 'é/1', '\u{10FFFF}',
];

function byteOrder(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

interface Entry {
  key: string;
  prefix: boolean;
}

/** What a listing must return, from every key in byte order (S3's order), rolled up by hand. */
function reference(prefix: string, delimiter: string, startAfter: string): Entry[] {
  const skipUnder = delimiter !== '' && startAfter.startsWith(prefix) && startAfter.endsWith(delimiter) && startAfter.indexOf(delimiter, prefix.length) === startAfter.length - delimiter.length;
  const entries: Entry[] = [];
  for (const key of [...KEYS].sort(byteOrder)) {
    if (!key.startsWith(prefix) || byteOrder(key, startAfter) <= 0) continue;
    if (skipUnder && key.startsWith(startAfter)) continue;
    const at = delimiter === '' ? -1 : key.indexOf(delimiter, prefix.length);
    const entry = at === -1 ? { key, prefix: false } : { key: key.slice(0, at + delimiter.length), prefix: true };
    const last = entries.at(-1);
    if (last === undefined || last.key !== entry.key || last.prefix !== entry.prefix) entries.push(entry);
  }
  return entries;
}

const SHAPES: { prefix: string; delimiter: string }[] = [
  { prefix: '', delimiter: '/' },
  { prefix: 'dir/', delimiter: '/' },
  { prefix: 'dir', delimiter: '/' },
  { prefix: 'dir/a', delimiter: '/' },
  { prefix: 'dir/', delimiter: '//' },
  { prefix: 'dir/', delimiter: 'é' },
  { prefix: 'dir/\u{1F600}', delimiter: '/' },
  { prefix: '', delimiter: '' },
];

describe('listings through the server', () => {
  let talus: TestTalus;
  let bucket: string;
  before(async () => {
    talus = await startTestTalus();
    bucket = uniqueBucket();
    await talus.client.send(new CreateBucketCommand({ Bucket: bucket }));
    for (const key of KEYS) await talus.client.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: 'x' }));
  });
  after(async () => {
    await talus.stop();
  });

  async function listAll(prefix: string, delimiter: string, maxKeys: number, startAfter?: string): Promise<Entry[]> {
    const entries: Entry[] = [];
    let token: string | undefined;
    for (let pages = 0; pages < 100; pages++) {
      const page = await talus.client.send(
        new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, Delimiter: delimiter === '' ? undefined : delimiter, MaxKeys: maxKeys, ContinuationToken: token, StartAfter: startAfter, EncodingType: 'url' }),
      );
      // encoding-type=url: the SDK leaves names encoded.
      const keys = (page.Contents ?? []).map((entry) => ({ key: decodeURIComponent(entry.Key!), prefix: false }));
      const prefixes = (page.CommonPrefixes ?? []).map((entry) => ({ key: decodeURIComponent(entry.Prefix!), prefix: true }));
      const merged = [...keys, ...prefixes].sort((a, b) => byteOrder(a.key, b.key));
      assert.ok(merged.length <= maxKeys, 'a page holds at most max-keys entries');
      assert.equal(page.KeyCount, merged.length);
      entries.push(...merged);
      if (page.IsTruncated !== true) return entries;
      token = page.NextContinuationToken;
    }
    assert.fail('more than 100 pages');
  }

  test('delimiter, prefix, start-after and paging agree with a reference listing', async () => {
    for (const { prefix, delimiter } of SHAPES) {
      const whole = reference(prefix, delimiter, '');
      for (const maxKeys of [1, 2, 3, 1000]) {
        assert.deepEqual(await listAll(prefix, delimiter, maxKeys), whole, `prefix ${JSON.stringify(prefix)} delimiter ${JSON.stringify(delimiter)} max-keys ${maxKeys}`);
      }
      for (const startAfter of ['dir/', 'dir/a', 'dir/a/', 'dir/é', 'dir/\u{1F600}', 'dir/zz/0', 'e']) {
        assert.deepEqual(
          await listAll(prefix, delimiter, 2, startAfter),
          reference(prefix, delimiter, startAfter),
          `prefix ${JSON.stringify(prefix)} delimiter ${JSON.stringify(delimiter)} start-after ${JSON.stringify(startAfter)}`,
        );
      }
    }
  });

  test('ListObjectVersions rolls up and pages the same way', async () => {
    for (const { prefix, delimiter } of SHAPES) {
      const seen: Entry[] = [];
      let keyMarker: string | undefined;
      let versionIdMarker: string | undefined;
      for (let pages = 0; pages < 100; pages++) {
        const page = await talus.client.send(
          new ListObjectVersionsCommand({ Bucket: bucket, Prefix: prefix, Delimiter: delimiter === '' ? undefined : delimiter, MaxKeys: 2, KeyMarker: keyMarker, VersionIdMarker: versionIdMarker, EncodingType: 'url' }),
        );
        const keys = (page.Versions ?? []).map((entry) => ({ key: decodeURIComponent(entry.Key!), prefix: false }));
        const prefixes = (page.CommonPrefixes ?? []).map((entry) => ({ key: decodeURIComponent(entry.Prefix!), prefix: true }));
        seen.push(...[...keys, ...prefixes].sort((a, b) => byteOrder(a.key, b.key)));
        if (page.IsTruncated !== true) break;
        keyMarker = page.NextKeyMarker === undefined ? undefined : decodeURIComponent(page.NextKeyMarker);
        versionIdMarker = page.NextVersionIdMarker;
      }
      assert.deepEqual(seen, reference(prefix, delimiter, ''), `versions: prefix ${JSON.stringify(prefix)} delimiter ${JSON.stringify(delimiter)}`);
    }
  });

  test('a GET completes while 32 clients list 1000-key pages', async () => {
    const big = uniqueBucket('stall');
    await talus.client.send(new CreateBucketCommand({ Bucket: big }));
    const writer = makeClient(talus.url);
    const keys = Array.from({ length: 1500 }, (_, i) => `flat/${String(i).padStart(6, '0')}`);
    for (let i = 0; i < keys.length; i += 100) {
      await Promise.all(keys.slice(i, i + 100).map((key) => writer.send(new PutObjectCommand({ Bucket: big, Key: key, Body: '' }))));
    }
    await writer.send(new PutObjectCommand({ Bucket: big, Key: 'probe', Body: 'probe body' }));
    let listing = true;
    let pages = 0;
    const listers: S3Client[] = Array.from({ length: 32 }, () => makeClient(talus.url));
    const running = listers.map(async (client, index) => {
      let startAfter = keys[index * 15]!;
      while (listing) {
        const page = await client.send(new ListObjectsV2Command({ Bucket: big, StartAfter: startAfter, MaxKeys: 1000 }));
        pages++;
        startAfter = page.IsTruncated === true ? page.Contents!.at(-1)!.Key! : '';
      }
    });
    try {
      await eventually(() => pages >= 32, 'the listers are under way');
      for (let probe = 0; probe < 5; probe++) {
        const object = await writer.send(new GetObjectCommand({ Bucket: big, Key: 'probe' }));
        assert.equal(await object.Body?.transformToString(), 'probe body');
      }
      assert.ok(listing, 'the listers were still listing while the GETs completed');
    } finally {
      listing = false;
      await Promise.all(running);
      for (const client of [...listers, writer]) client.destroy();
    }
  });
});
