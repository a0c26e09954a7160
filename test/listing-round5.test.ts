/**
 * Rendered key listings read each row as one packed string
 * (`size,last-modified,checksum,etag,[owner,]key`, src/meta/sqlite/listing.ts,
 * issue 17 round 5): the pages must stay the bytes the event loop renders
 * from store.list() (each row's JSON document parsed, the path PostgreSQL
 * also takes).
 *
 * The rows are made to break a careless split: keys holding commas, a key
 * made of commas, a key beginning with '[' (what a fallback row begins
 * with), an ETag and an owner holding a comma (Talus writes neither: those
 * rows come as a JSON array), an empty ETag, sizes and dates at their edges,
 * a checksum beside user metadata named "checksum", a multipart object whose
 * parts have checksums but which has none itself, and a document over the
 * event loop's 1 KiB parse limit. Every page shape (prefix, delimiter,
 * encoding-type=url or not, owners or not, 1, 3 and 1000 entries, a start
 * after a key) is compared twice: every listing on the listing thread, then
 * every listing on the event loop's guarded statements (the thread takes
 * what they give up).
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import type { PageRendering } from '../src/meta/metadata-store.ts';
import { SqliteMetadataStore } from '../src/meta/sqlite/sqlite-metadata-store.ts';
import type { ObjectVersion } from '../src/meta/types.ts';
import { LISTING_RENDERER_URL, fillOwners, listingDocumentBytes, renderListingPage } from '../src/s3/list-render.ts';

const HEX_ETAG = 'd41d8cd98f00b204e9800998ecf8427e';

/** Keys and what makes each one's row unusual. */
const ROWS: { key: string; change?: (version: ObjectVersion) => void }[] = [
  { key: ',' },
  { key: ',,,' },
  { key: '0,1,2', change: (v) => (v.sizeBytes = 5 * 1024 ** 4) },
  { key: '[x', change: (v) => (v.lastModifiedMs = 5) },
  { key: '[', change: (v) => (v.lastModifiedMs = 0) },
  { key: 'a,b', change: (v) => (v.etag = 'e,1') },
  { key: 'dir/a,', change: (v) => (v.ownerId = 'own,er') },
  { key: 'dir/b', change: (v) => (v.etag = '') },
  { key: 'dir/c/d', change: (v) => (v.checksum = { algorithm: 'SHA256', value: 'AAAA', type: 'FULL_OBJECT' }) },
  { key: 'dir/e,f/g', change: (v) => ((v.checksum = { algorithm: 'CRC32C', value: 'AAAA', type: 'COMPOSITE' }), (v.userMetadata = { checksum: 'not,the one' })) },
  { key: 'meta-checksum', change: (v) => (v.userMetadata = { checksum: '{"algorithm":"CRC32"}' }) },
  { key: 'multipart', change: (v) => (v.parts = [{ partNumber: 1, sizeBytes: 5, etag: HEX_ETAG, checksum: 'AAAA' }]) },
  { key: 'oversized,doc', change: (v) => ((v.userMetadata = { big: 'x'.repeat(2000) }), (v.checksum = { algorithm: 'CRC32', value: 'AAAA', type: 'FULL_OBJECT' })) },
  { key: 'é,ü' },
  { key: 'emoji-😀,' },
  { key: 'ctl\u0001,x' },
  { key: 'nul\u0000,x' },
  { key: 'sp ace,%2F' },
  { key: 'z' },
];

function version(key: string, index: number): ObjectVersion {
  return {
    bucket: 'b', key, versionId: `v${index}`, isDeleteMarker: false, lastModifiedMs: 1_765_000_000_000 + index * 1_037, sizeBytes: index, etag: HEX_ETAG, ownerId: index % 2 === 0 ? 'owner-a' : 'owner-b',
    system: {}, userMetadata: {}, checksum: null, tags: [], parts: null, segments: [],
  };
}

const ownerXml = (ownerId: string): string => `<Owner><ID>${ownerId}</ID><DisplayName>name of ${ownerId}</DisplayName></Owner>`;

async function eventually(condition: () => boolean, what: string): Promise<void> {
  for (let attempt = 0; attempt < 600; attempt++) {
    if (condition()) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  assert.fail(`timed out waiting until ${what}`);
}

async function openStore(path: string, onEventLoopStepsMax: number): Promise<SqliteMetadataStore> {
  const store = new SqliteMetadataStore(path, { listingThreads: 1, soleWriter: true, listingRendererUrl: LISTING_RENDERER_URL, listingOnEventLoopStepsMax: onEventLoopStepsMax });
  const threads = store.listingThreads!;
  threads.start();
  await eventually(() => threads.readyCount === 1, 'the listing thread is ready');
  return store;
}

/** Every page shape against the event loop's own rendering of store.list(); how many pages were compared. */
async function comparePages(store: SqliteMetadataStore, where: string): Promise<number> {
  let pages = 0;
  for (const [prefix, delimiter] of [['', ''], ['', '/'], ['', ','], ['dir/', ''], ['dir/', '/'], ['[', ''], [',', '']] as const) {
    for (const after of ['', ',', 'a,b']) {
      for (const limit of [1, 3, 1000]) {
        for (const encodeUrl of [false, true]) {
          for (const owners of [false, true]) {
            const rendering: PageRendering = { encodeUrl, owners };
            const request = { bucket: 'b', prefix, delimiter, after, limit };
            const rendered = await store.listRendered(request, rendering);
            assert.ok(rendered !== undefined, 'the store renders key pages');
            const entries = await store.list(request);
            const reference = renderListingPage({ kind: 'keys', result: entries }, rendering, undefined);
            const shape = `${where} ${JSON.stringify({ prefix, delimiter, after, limit, rendering })}`;
            assert.equal(fillOwners(rendered, ownerXml).toString('utf8'), fillOwners(reference, ownerXml).toString('utf8'), shape);
            assert.deepEqual([rendered.entries, rendered.isTruncated, rendered.lastKey], [entries.entries.length, entries.isTruncated, entries.entries.at(-1)?.key], shape);
            pages++;
          }
        }
      }
    }
  }
  return pages;
}

test('rendered key pages read as packed rows are the pages rendered from whole rows', async () => {
  const directory = await mkdtemp(join(tmpdir(), 'talus-round5-'));
  const path = join(directory, 'meta.db');
  let store = await openStore(path, 0); // every listing on the thread
  try {
    await store.createBucket({ name: 'b', createdMs: 0, ownerId: 'owner-a', versioning: 'Unversioned', tags: null });
    for (const [index, { key, change }] of ROWS.entries()) {
      const made = version(key, index);
      change?.(made);
      await store.commitVersion({ version: made, conditions: {} });
    }

    const answeredBefore = store.listingThreads!.answered;
    const onThread = await comparePages(store, 'thread');
    // Each shape asks twice (rendered, and store.list() for the reference), both on the thread.
    assert.equal(store.listingThreads!.answered - answeredBefore, 2 * onThread, 'every page came from the thread');

    // What the pages show of the unusual rows, once, from the thread.
    const whole = fillOwners((await store.listRendered({ bucket: 'b', prefix: '', delimiter: '', after: '', limit: 1000 }, { encodeUrl: false, owners: true }))!, ownerXml).toString('utf8');
    assert.match(whole, /<Key>a,b<\/Key><LastModified>[^<]+<\/LastModified><ETag>&quot;e,1&quot;<\/ETag><Size>5<\/Size><Owner><ID>owner-b<\/ID>/);
    assert.match(whole, /<Key>dir\/a,<\/Key>.*?<Owner><ID>own,er<\/ID>/);
    assert.match(whole, /<Key>0,1,2<\/Key>.*?<Size>5497558138880<\/Size>/);
    assert.match(whole, /<Key>\[x<\/Key><LastModified>1970-01-01T00:00:00.005Z<\/LastModified>/);
    assert.match(whole, /<Key>dir\/b<\/Key><LastModified>[^<]+<\/LastModified><ETag>&quot;&quot;<\/ETag>/);
    assert.match(whole, /<Key>dir\/e,f\/g<\/Key>.*?<ChecksumAlgorithm>CRC32C<\/ChecksumAlgorithm><ChecksumType>COMPOSITE<\/ChecksumType><Size>/);
    assert.match(whole, /<Key>meta-checksum<\/Key><LastModified>[^<]+<\/LastModified><ETag>&quot;[0-9a-f]+&quot;<\/ETag><Size>/);
    assert.match(whole, /<Key>multipart<\/Key><LastModified>[^<]+<\/LastModified><ETag>&quot;[0-9a-f]+&quot;<\/ETag><Size>/);
    assert.match(whole, /<Key>oversized,doc<\/Key>.*?<ChecksumAlgorithm>CRC32<\/ChecksumAlgorithm>/);
    assert.equal(whole.match(/<Contents>/g)?.length, ROWS.length);
    await store.close();

    // The same pages from the event loop's guarded statements, which give up at the oversized document.
    store = await openStore(path, 100_000);
    const threadBefore = store.listingThreads!.answered;
    const onEventLoop = await comparePages(store, 'event loop');
    const toThread = store.listingThreads!.answered - threadBefore;
    assert.ok(toThread > 0 && toThread < 2 * onEventLoop, `pages past the oversized document went to the thread (${toThread} of ${2 * onEventLoop})`);
  } finally {
    await store.close();
    await rm(directory, { recursive: true, force: true });
  }
});

test('a listing document is written around its page in place when its head fits, and copied otherwise, with the same bytes', () => {
  const entries = ['a', 'é,ü', 'z'].map((key, index) => ({ key, version: { key, lastModifiedMs: 1_765_000_000_123, sizeBytes: index, etag: HEX_ETAG, ownerId: `owner-${index}`, checksum: null } }));
  const tail = '</ListBucketResult>';
  for (const owners of [false, true]) {
    for (const head of ['<?xml version="1.0" encoding="UTF-8"?><ListBucketResult><Name>b</Name>', `<ListBucketResult><Prefix>${'é'.repeat(2000)}</Prefix>`]) {
      const page = renderListingPage({ kind: 'keys', result: { entries, isTruncated: false } }, { encodeUrl: false, owners });
      const expected = head + fillOwners(page, ownerXml).toString('utf8') + tail;
      const document = listingDocumentBytes(page, ownerXml, head, tail);
      assert.equal(document.toString('utf8'), expected, JSON.stringify({ owners, headBytes: Buffer.byteLength(head) }));
      const inPlace = !owners && Buffer.byteLength(head) <= 1024;
      assert.equal(document.buffer === page.bytes.buffer, inPlace, `written in place: ${inPlace}`);
    }
  }
});
