/**
 * talus scan, round 4: two shortcuts on the list-mode hot path must change
 * nothing a user sees.
 *
 * - The page reader compares each <UserMetadata> child in place with the
 *   name the entry before had at that position, instead of slicing and
 *   looking it up: entries whose names differ, come in another order, are
 *   prefixes of one another or carry more or fewer children than the entry
 *   before must read as the general parser reads them.
 * - JSON lines are written a batch at a time (one JSON.stringify of the
 *   array, cut where one object ends and the next begins): the text must be
 *   exactly the per-object lines, whatever the keys, metadata and tags hold
 *   (`},{"key":` and quotes included), and the CLI's output over a live
 *   Talus must be the library's objects, one line each.
 * - The server writes plain metadata values after one test (below), and
 *   its listing pages must stay their UTF-8 with owners in place.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { test } from 'node:test';
import { formatObject, formatObjects } from '../src/scan/format.ts';
import { parseScannedPage } from '../src/scan/listing-page.ts';
import { scanObjects, type ScannedObject } from '../src/scan/scan.ts';
import { CLI, PROJECT_ROOT } from './helpers/process.ts';
import { S3Client } from '../src/client/s3-client.ts';
import type { ListedContents } from '../src/meta/metadata-store.ts';
import { fillOwners, renderListingPage } from '../src/s3/list-render.ts';
import { ACCESS_KEY_ID, SECRET_ACCESS_KEY, startTestTalus } from './helpers/talus.ts';

function runScanCli(args: readonly string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, ['--import', 'tsx', CLI, 'scan', ...args], { cwd: PROJECT_ROOT, maxBuffer: 64 * 1024 * 1024 }, (error, stdout, stderr) => {
      resolve({ code: error === null ? 0 : typeof error.code === 'number' ? error.code : 1, stdout, stderr });
    });
  });
}

function contents(key: string, metadata: string): string {
  return `<Contents><Key>${key}</Key><LastModified>2026-12-06T15:41:21.789Z</LastModified><ETag>&quot;d41d8cd98f00b204e9800998ecf8427e&quot;</ETag><Size>7</Size><StorageClass>STANDARD</StorageClass>${metadata}</Contents>`;
}

function page(entries: string[]): string {
  return `<?xml version="1.0" encoding="UTF-8"?>\n<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>b</Name><Prefix></Prefix><KeyCount>${entries.length}</KeyCount><MaxKeys>1000</MaxKeys><IsTruncated>false</IsTruncated>${entries.join('')}</ListBucketResult>`;
}

test('metadata children read in place read as the general parser reads them, entry after entry', () => {
  const entries = [
    contents('a', '<UserMetadata><content-type>text/plain</content-type><X-Amz-Meta-A>1</X-Amz-Meta-A><X-Amz-Meta-Ab>2</X-Amz-Meta-Ab></UserMetadata>'),
    // Same names at the same places.
    contents('b', '<UserMetadata><content-type>text/html</content-type><X-Amz-Meta-A>3</X-Amz-Meta-A><X-Amz-Meta-Ab>4</X-Amz-Meta-Ab></UserMetadata>'),
    // A name that the one remembered at its place is a prefix of, and the other way round.
    contents('c', '<UserMetadata><content-type>a/b</content-type><X-Amz-Meta-Ab>5</X-Amz-Meta-Ab><X-Amz-Meta-A>6</X-Amz-Meta-A></UserMetadata>'),
    // Fewer children, then more; a system header; an escaped value.
    contents('d', '<UserMetadata><X-Amz-Meta-A>&lt;7&gt; &amp; &#252;</X-Amz-Meta-A></UserMetadata>'),
    contents('e', '<UserMetadata><content-type>x/y</content-type><X-Amz-Meta-A>8</X-Amz-Meta-A><Cache-Control>no-cache</Cache-Control><X-Amz-Meta-Zz>9</X-Amz-Meta-Zz></UserMetadata>'),
    contents('f', '<UserMetadata></UserMetadata>'),
    contents('g', ''),
    contents('h', '<UserMetadata><content-type>text/plain</content-type><X-Amz-Meta-A>10</X-Amz-Meta-A><X-Amz-Meta-Ab>11</X-Amz-Meta-Ab></UserMetadata>'),
  ];
  const xml = page(entries);
  const scanned = parseScannedPage(xml);
  // Whitespace after <UserMetadata>: the general parser reads the page.
  assert.deepEqual(scanned, parseScannedPage(xml.replaceAll('<UserMetadata>', '<UserMetadata>\n  ')));
  const metadata = scanned.objects.map((object) => object.listedMetadata);
  assert.deepEqual(metadata, [
    { contentType: 'text/plain', userMetadata: { a: '1', ab: '2' }, tags: {} },
    { contentType: 'text/html', userMetadata: { a: '3', ab: '4' }, tags: {} },
    { contentType: 'a/b', userMetadata: { ab: '5', a: '6' }, tags: {} },
    { contentType: undefined, userMetadata: { a: '<7> & ü' }, tags: {} },
    { contentType: 'x/y', userMetadata: { a: '8', zz: '9' }, tags: {} },
    { contentType: undefined, userMetadata: {}, tags: {} },
    undefined,
    { contentType: 'text/plain', userMetadata: { a: '10', ab: '11' }, tags: {} },
  ]);
});

function object(key: string, extra: Partial<ScannedObject> = {}): ScannedObject {
  return { key, size: 3, etag: 'd41d8cd98f00b204e9800998ecf8427e', lastModified: '2026-12-06T15:41:21.789Z', contentType: 'text/plain', userMetadata: {}, tags: {}, ...extra };
}

test('JSON lines of a batch are the lines of its objects, whatever their text holds', () => {
  const batch: ScannedObject[] = [
    object('plain'),
    object('},{"key":"forged"}'),
    object('a\n},{"key":b', { userMetadata: { 'x},{"key":': '},{"key":"y"', quote: '"' }, tags: { '},{"key":': '\\' } }),
    object('lone \ud800 surrogate', { contentType: undefined }),
    // Listed only (none mode, or an object the caller may not read): four fields.
    { key: 'listed-only', size: 0, etag: 'e', lastModified: '2026-12-06T15:41:21.789Z' },
    object('1', { userMetadata: { '2': 'integer-like names come first', b: 'x', '1': 'y' } }),
    object('unicode ü 😀 \u2028'),
  ];
  const expected = batch.map((one) => formatObject(one, 'jsonl')).join('');
  assert.equal(formatObjects(batch, 'jsonl'), expected);
  assert.equal(expected.split('\n').length, batch.length + 1);
  for (const one of batch) assert.equal(formatObjects([one], 'jsonl'), formatObject(one, 'jsonl'));
  assert.equal(formatObjects([], 'jsonl'), '');
  assert.equal(formatObjects(batch, 'csv'), batch.map((one) => formatObject(one, 'csv')).join(''));
  assert.deepEqual(
    formatObjects(batch, 'jsonl')
      .trimEnd()
      .split('\n')
      .map((line) => JSON.parse(line) as unknown),
    JSON.parse(JSON.stringify(batch)),
  );
});

test('talus scan --metadata list writes, line for line, the objects the library yields', async (t) => {
  const talus = await startTestTalus();
  t.after(() => talus.stop());
  const client = new S3Client({ endpoint: talus.url, accessKeyId: ACCESS_KEY_ID, secretAccessKey: SECRET_ACCESS_KEY });
  t.after(() => client.close());
  await client.createBucket('round4');
  const keys = ['},{"key":"x"', 'a"b', 'plain', 'ü/😀', 'z\\'];
  for (const [index, key] of keys.entries()) {
    await client.putObject('round4', key, Buffer.from(key), { contentType: 'text/plain', metadata: { index: String(index), 'odd-value': '},{"key":"v"' } });
  }
  const options = { endpoint: talus.url, bucket: 'round4', credentials: { accessKeyId: ACCESS_KEY_ID, secretAccessKey: SECRET_ACCESS_KEY }, metadata: 'list' as const };
  const objects: ScannedObject[] = [];
  for await (const scanned of scanObjects(options)) objects.push(scanned);
  assert.equal(objects.length, keys.length);
  const result = await runScanCli(['s3://round4', '--endpoint', talus.url, '--metadata', 'list', '--quiet', '--access-key-id', ACCESS_KEY_ID, '--secret-access-key', SECRET_ACCESS_KEY]);
  assert.equal(result.code, 0, result.stderr);
  assert.equal(result.stdout, objects.map((scanned) => formatObject(scanned, 'jsonl')).join(''));
  assert.deepEqual(
    result.stdout
      .trimEnd()
      .split('\n')
      .map((line) => (JSON.parse(line) as ScannedObject).userMetadata),
    keys
      .map((key, index) => [key, index] as const)
      .sort(([a], [b]) => (Buffer.from(a) < Buffer.from(b) ? -1 : 1))
      .map(([, index]) => ({ index: String(index), 'odd-value': '},{"key":"v"' })),
  );
});

/**
 * A listing page's bytes are its UTF-8 and each owner goes where its
 * entry's owner belongs (the holes are byte offsets, which UTF-16 units
 * would misplace after a non-ASCII key), whether the page is ASCII or not.
 */
test('listing pages, ASCII or not, are their UTF-8 with each owner in its entry', () => {
  const contents = (key: string, ownerId: string): ListedContents => ({ key, lastModifiedMs: Date.UTC(2026, 11, 6, 15, 41, 21, 789), sizeBytes: key.length, etag: 'd41d8cd98f00b204e9800998ecf8427e', ownerId, checksum: null });
  const pages = [
    ['a', 'b&c', 'plain/key'],
    ['a', 'é-ü', 'emoji-😀', 'z'],
    ['😀', 'x'],
  ];
  for (const keys of pages) {
    for (const owners of [true, false]) {
      const entries = keys.map((key, index) => ({ key, version: contents(key, `owner-${index}`) }));
      const page = renderListingPage({ kind: 'keys', result: { entries, isTruncated: false } }, { encodeUrl: false, owners });
      const text = fillOwners(page, (ownerId) => `<Owner><ID>${ownerId}</ID></Owner>`).toString('utf8');
      const expected = keys
        .map((key, index) => {
          const escaped = key.replaceAll('&', '&amp;');
          const owner = owners ? `<Owner><ID>owner-${index}</ID></Owner>` : '';
          return `<Contents><Key>${escaped}</Key><LastModified>2026-12-06T15:41:21.789Z</LastModified><ETag>&quot;d41d8cd98f00b204e9800998ecf8427e&quot;</ETag><Size>${key.length}</Size>${owner}<StorageClass>STANDARD</StorageClass></Contents>`;
        })
        .join('');
      assert.equal(text, expected, JSON.stringify({ keys, owners }));
      // A buffer of its own, to transfer (it may hold spare capacity around the page: room for the
      // document's head and end, list-render.ts): never node's shared Buffer pool, whose transfer
      // would detach every small Buffer allocated from it.
      assert.ok(page.bytes.buffer.byteLength >= page.bytes.byteOffset + page.bytes.byteLength);
      assert.notEqual(page.bytes.buffer, Buffer.from('a pooled probe').buffer, 'not the shared pool');
      const before = Buffer.from(page.bytes).toString('latin1');
      const moved = structuredClone(page.bytes, { transfer: [page.bytes.buffer as ArrayBuffer] });
      assert.equal(Buffer.from(moved).toString('latin1'), before, 'the transferred page holds the same bytes');
    }
  }
});

/**
 * A listing writes a metadata value that is printable ASCII without XML's
 * specials as it is, and any other through headerText and escapeXml: either
 * way list mode must read what HEAD answers.
 */
test('metadata values with XML specials, tabs and non-ASCII list as HEAD shows them', async (t) => {
  const talus = await startTestTalus();
  t.after(() => talus.stop());
  const client = new S3Client({ endpoint: talus.url, accessKeyId: ACCESS_KEY_ID, secretAccessKey: SECRET_ACCESS_KEY });
  t.after(() => client.close());
  await client.createBucket('round4-values');
  const values = ['plain value', `a&b<c>"d'e`, 'tab\there', 'Zürich', '~!#$%()*+,-./:;=?@[\\]^_`{|}', ''];
  for (const [index, value] of values.entries()) {
    await client.putObject('round4-values', `k${index}`, Buffer.from('x'), { contentType: index === 1 ? 'text/x;a="b&c"' : 'text/plain', metadata: { value, 'second-name': value } });
  }
  const base = { endpoint: talus.url, bucket: 'round4-values', credentials: { accessKeyId: ACCESS_KEY_ID, secretAccessKey: SECRET_ACCESS_KEY } };
  const listed: ScannedObject[] = [];
  for await (const scanned of scanObjects({ ...base, metadata: 'list' })) listed.push(scanned);
  const headed: ScannedObject[] = [];
  for await (const scanned of scanObjects({ ...base, metadata: 'head' })) headed.push(scanned);
  assert.equal(listed.length, values.length);
  assert.deepEqual(listed, headed);
  assert.deepEqual(
    listed.map((scanned) => scanned.userMetadata?.['value']),
    values.map((value) => (value === 'Zürich' ? headed[3]!.userMetadata!['value'] : value)),
  );
  assert.equal(listed[1]!.contentType, 'text/x;a="b&c"');
});
