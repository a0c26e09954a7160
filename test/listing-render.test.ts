/**
 * Listing pages rendered on the listing thread (issue 17) are the bytes the
 * event loop renders from the same entries.
 *
 * A store with one listing thread and the S3 front's renderer holds keys
 * that exercise escaping and URL encoding (XML specials, a space, '%',
 * non-ASCII, a key above U+FFFF, a control character), checksums and none,
 * two owners, several versions and delete markers under versioning, and a
 * few common prefixes. For each shape (keys and versions; prefixes, among
 * one of them only U+10FFFF, which has no successor; delimiter or not;
 * encoding-type=url or not; owners shown or not; truncated pages of 1 and 3
 * entries and a whole page) the page the thread rendered, its owners filled
 * in, must equal renderListingPage over store.list()/listVersions() (the
 * event loop's path, also PostgreSQL's), and its markers (count, truncation,
 * last key and version) must agree with the entries. On Linux the listing
 * thread runs at nice 5 and the event loop at 0.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import type { PageRendering } from '../src/meta/metadata-store.ts';
import { SqliteMetadataStore } from '../src/meta/sqlite/sqlite-metadata-store.ts';
import type { ObjectVersion } from '../src/meta/types.ts';
import { LISTING_RENDERER_URL, fillOwners, renderListingPage } from '../src/s3/list-render.ts';

const KEYS = ['a&b<c>"d\'e', 'dir/one', 'dir/two', 'dir2/x', 'plain', 'sp ace', 'per%2Fcent', 'é-ü', 'emoji-😀', 'ctl\u0001x', 'z/last'];

function version(key: string, versionId: string, index: number, isDeleteMarker = false): ObjectVersion {
  return {
    bucket: 'b', key, versionId, isDeleteMarker, lastModifiedMs: 1_765_000_000_000 + index * 37, sizeBytes: index, etag: `e${index}`, ownerId: index % 2 === 0 ? 'owner-a' : 'owner-b',
    system: {}, userMetadata: {}, checksum: index % 3 === 0 ? { algorithm: 'CRC32', value: 'AAAAAA==', type: 'FULL_OBJECT' } : null, tags: [], parts: null, segments: [],
  };
}

async function eventually(condition: () => boolean, what: string): Promise<void> {
  for (let attempt = 0; attempt < 600; attempt++) {
    if (condition()) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  assert.fail(`timed out waiting until ${what}`);
}

/** The nice value of one of this process's threads (field 19 of its stat). */
function niceOf(tid: string): number {
  const stat = readFileSync(`/proc/self/task/${tid}/stat`, 'utf8');
  return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[16]);
}

function threadNices(): number[] {
  return readdirSync('/proc/self/task').map(niceOf);
}

const ownerXml = (ownerId: string): string => `<Owner><ID>${ownerId}</ID><DisplayName>name of ${ownerId}</DisplayName></Owner>`;

test('a page rendered on the listing thread is the page the event loop renders', async () => {
  const directory = await mkdtemp(join(tmpdir(), 'talus-render-'));
  const store = new SqliteMetadataStore(join(directory, 'meta.db'), { listingThreads: 1, soleWriter: true, listingRendererUrl: LISTING_RENDERER_URL, listingOnEventLoopStepsMax: 0 }); // every page from the thread, small ones too
  try {
    const threads = store.listingThreads!;
    threads.start();
    await eventually(() => threads.readyCount === 1, 'the listing thread is ready');
    if (process.platform === 'linux') {
      // The thread yields to the event loop when both want a core: it runs at nice 5, the process's other threads do not.
      assert.ok(threadNices().includes(5), `a thread at nice 5 among ${threadNices().join(', ')}`);
      assert.equal(niceOf(String(process.pid)), 0);
    }
    await store.createBucket({ name: 'b', createdMs: 0, ownerId: 'owner-a', versioning: 'Enabled', tags: null });
    let index = 0;
    for (const key of KEYS) {
      for (let copy = 0; copy < 2; copy++) await store.commitVersion({ version: version(key, `v${index}`, index++), conditions: {} });
    }
    await store.commitVersion({ version: version('plain', `v${index}`, index++, true), conditions: {} });

    const answeredBefore = threads.answered;
    let pages = 0;
    for (const [prefix, delimiter] of [['', ''], ['', '/'], ['dir', ''], ['dir/', ''], ['emoji', ''], ['\u{10FFFF}', ''], ['d', '/']] as const) {
      for (const limit of [1, 3, 1000]) {
        for (const encodeUrl of [false, true]) {
          for (const owners of [false, true]) {
            const rendering: PageRendering = { encodeUrl, owners };
            const keysRequest = { bucket: 'b', prefix, delimiter, after: '', limit };
            const onThread = await store.listRendered(keysRequest, rendering);
            assert.ok(onThread !== undefined, 'the thread renders key pages');
            const entries = await store.list(keysRequest);
            const onLoop = renderListingPage({ kind: 'keys', result: entries }, rendering, undefined);
            assert.equal(fillOwners(onThread, ownerXml).toString('utf8'), fillOwners(onLoop, ownerXml).toString('utf8'), `keys ${JSON.stringify({ prefix, delimiter, limit, rendering })}`);
            assert.deepEqual([onThread.entries, onThread.isTruncated, onThread.lastKey], [entries.entries.length, entries.isTruncated, entries.entries.at(-1)?.key]);

            const versionsRequest = { bucket: 'b', prefix, delimiter, keyMarker: '', versionIdMarker: '', limit };
            const versionsOnThread = await store.listVersionsRendered(versionsRequest, rendering);
            assert.ok(versionsOnThread !== undefined, 'the thread renders version pages');
            const versions = await store.listVersions(versionsRequest);
            const versionsOnLoop = renderListingPage({ kind: 'versions', result: versions }, rendering, undefined);
            assert.equal(fillOwners(versionsOnThread, ownerXml).toString('utf8'), fillOwners(versionsOnLoop, ownerXml).toString('utf8'), `versions ${JSON.stringify({ prefix, delimiter, limit, rendering })}`);
            assert.deepEqual(
              [versionsOnThread.entries, versionsOnThread.isTruncated, versionsOnThread.lastKey, versionsOnThread.lastVersionId],
              [versions.entries.length, versions.isTruncated, versions.entries.at(-1)?.key, versions.entries.at(-1)?.version?.versionId],
            );
            pages += 4;
          }
        }
      }
    }
    // Every page, rendered or not, came from the thread: the comparison is thread against event-loop rendering.
    assert.equal(threads.answered - answeredBefore, pages);
    const whole = fillOwners((await store.listRendered({ bucket: 'b', prefix: '', delimiter: '', after: '', limit: 1000 }, { encodeUrl: true, owners: true }))!, ownerXml).toString('utf8');
    assert.match(whole, /<Key>a%26b%3Cc%3E%22d&apos;e<\/Key>/);
    assert.match(whole, /<Key>ctl%01x<\/Key>/);
    assert.match(whole, /<ChecksumAlgorithm>CRC32<\/ChecksumAlgorithm><ChecksumType>FULL_OBJECT<\/ChecksumType>/);
    assert.match(whole, /<DisplayName>name of owner-b<\/DisplayName>/);
  } finally {
    await store.close();
    await rm(directory, { recursive: true, force: true });
  }
});
