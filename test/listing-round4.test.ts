/**
 * Listing, round 4 (issue 17): small listings are answered on the event
 * loop, without the hand-off to a listing thread and back, which cost more
 * than such a page itself; larger ones still go to the thread.
 *
 * - The store tries a listing on its own connection within
 *   LISTING_ON_EVENT_LOOP_STEPS_MAX rows and seeks and gives up past it (a
 *   page is never put together from two snapshots): at the limit's edge, a
 *   page of limit rows is answered on the event loop and one more goes to
 *   the thread; a page of 100 common prefixes stays on the event loop, one
 *   of 200 goes to the thread, and so does one holding a version whose
 *   metadata document is large (SQLite parses it whole). Every page, paged
 *   through to its end, is the page a thread lists and renders (a second
 *   store on the same database that sends every listing to its thread):
 *   keys and versions, with and
 *   without a delimiter, URL-encoded or not, owners shown or not, page sizes
 *   around the limit, and the markers from each page to the next.
 * - Through a server: a few-key prefix listing (v1 with markers, v2 with
 *   start-after and continuation tokens, encoding-type=url, versions with
 *   delete markers, metadata=true) lists what a reference listing says, and
 *   a server that has answered only small listings has not started its
 *   listing thread (it runs at nice 5 on Linux: no thread of the process
 *   does) until a large listing comes.
 */
import {
  CreateBucketCommand,
  DeleteObjectCommand,
  ListObjectsCommand,
  ListObjectsV2Command,
  ListObjectVersionsCommand,
  PutBucketVersioningCommand,
  PutObjectCommand,
} from '@aws-sdk/client-s3';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import type { ListRequest, ListVersionsRequest, PageRendering, RenderedPage } from '../src/meta/metadata-store.ts';
import { LISTING_ON_EVENT_LOOP_STEPS_MAX } from '../src/meta/sqlite/listing-threads.ts';
import { SqliteMetadataStore } from '../src/meta/sqlite/sqlite-metadata-store.ts';
import type { ObjectVersion } from '../src/meta/types.ts';
import { LISTING_RENDERER_URL, fillOwners } from '../src/s3/list-render.ts';
import { signedRequest } from './helpers/raw.ts';
import { startTestTalus, uniqueBucket } from './helpers/talus.ts';

const STEPS = LISTING_ON_EVENT_LOOP_STEPS_MAX;

async function eventually(condition: () => boolean, what: string): Promise<void> {
  for (let attempt = 0; attempt < 600; attempt++) {
    if (condition()) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  assert.fail(`timed out waiting until ${what}`);
}

const ownerXml = (ownerId: string): string => `<Owner><ID>${ownerId}</ID><DisplayName>name of ${ownerId}</DisplayName></Owner>`;

function pageText(page: RenderedPage | undefined): string {
  assert.ok(page !== undefined, 'a store with a listing thread renders pages');
  return fillOwners(page, ownerXml).toString('utf8');
}

/**
 * The bucket: flat/ holds STEPS + 72 keys (a page without a delimiter
 * needs as many rows as keys), few/ 100 common prefixes of 3 keys, wide/
 * 200 of 2, mix/ 5 keys of its own before 20 common prefixes of 10; some
 * keys with characters XML or URLs must escape; two versions of every
 * flat/ key, a delete marker on some.
 */
function bucketKeys(): string[] {
  const keys: string[] = [];
  const pad = (n: number, width: number): string => String(n).padStart(width, '0');
  for (let i = 0; i < STEPS + 72; i++) keys.push(`flat/${pad(i, 4)}`);
  for (let p = 0; p < 100; p++) for (let k = 0; k < 3; k++) keys.push(`few/p-${pad(p, 3)}/${k}`);
  keys.push('few/p-050/é & <ü>', 'few/😀/x', 'few/plain key');
  for (let p = 0; p < 200; p++) for (let k = 0; k < 2; k++) keys.push(`wide/${pad(p, 3)}/${k}`);
  for (let k = 0; k < 5; k++) keys.push(`mix/${k}`);
  for (let p = 0; p < 20; p++) for (let k = 0; k < 10; k++) keys.push(`mix/d${pad(p, 2)}/${k}`);
  return keys;
}

function version(key: string, versionId: string, index: number, isDeleteMarker = false): ObjectVersion {
  return {
    bucket: 'b', key, versionId, isDeleteMarker, lastModifiedMs: 1_765_000_000_000 + index * 13, sizeBytes: index, etag: `e${index}`, ownerId: index % 2 === 0 ? 'owner-a' : 'owner-b',
    system: {}, userMetadata: {}, checksum: index % 3 === 0 ? { algorithm: 'CRC32', value: 'AAAAAA==', type: 'FULL_OBJECT' } : null, tags: [], parts: null, segments: [],
  };
}

test('small listings are answered on the event loop, larger ones on the thread, with the same pages', async () => {
  const directory = await mkdtemp(join(tmpdir(), 'talus-round4-'));
  const path = join(directory, 'meta.db');
  const store = new SqliteMetadataStore(path, { listingThreads: 1, soleWriter: true, listingRendererUrl: LISTING_RENDERER_URL });
  let reference: SqliteMetadataStore | undefined;
  try {
    await store.createBucket({ name: 'b', createdMs: 0, ownerId: 'owner-a', versioning: 'Enabled', tags: null });
    let index = 0;
    for (const key of bucketKeys()) {
      await store.commitVersion({ version: version(key, `v${index}`, index++), conditions: {} });
      if (key.startsWith('flat/')) await store.commitVersion({ version: version(key, `v${index}`, index++, index % 7 === 0), conditions: {} });
    }
    // A version whose document is large (SQLite parses all of it for the checksum): never parsed on the event loop.
    await store.commitVersion({ version: { ...version('big/0', `v${index}`, index++), userMetadata: { note: 'x'.repeat(4000) } }, conditions: {} });
    await store.commitVersion({ version: version('big/1', `v${index}`, index++), conditions: {} });
    // The reference: every listing on its thread (started here, so it is ready before the first).
    const onThread = new SqliteMetadataStore(path, { listingThreads: 1, listingRendererUrl: LISTING_RENDERER_URL, listingOnEventLoopStepsMax: 0 });
    reference = onThread;
    const referenceThreads = onThread.listingThreads!;
    referenceThreads.start();
    await eventually(() => referenceThreads.readyCount === 1, 'the reference store\'s listing thread is ready');
    const threads = store.listingThreads!;
    threads.start();
    await eventually(() => threads.readyCount === 1, 'the listing thread is ready');

    // Where a page is listed: on the event loop up to the limit, on the thread past it.
    const rendering: PageRendering = { encodeUrl: false, owners: false };
    const where = async (request: ListRequest): Promise<'event loop' | 'thread'> => {
      const before = threads.answered;
      await store.listRendered(request, rendering);
      return threads.answered === before ? 'event loop' : 'thread';
    };
    const keys = (prefix: string, delimiter: string, limit: number): ListRequest => ({ bucket: 'b', prefix, delimiter, after: '', limit });
    // STEPS - 1 keys and the one that shows the page is truncated: STEPS rows.
    assert.equal(await where(keys('flat/', '', STEPS - 1)), 'event loop');
    assert.equal(await where(keys('flat/', '', STEPS)), 'thread');
    assert.equal(await where(keys('flat/', '', 1000)), 'thread');
    assert.equal(await where(keys('flat/', '/', 1000)), 'thread');
    // One row, then a key-only seek per common prefix.
    assert.equal(await where(keys('few/', '/', 1000)), 'event loop');
    assert.equal(await where(keys('wide/', '/', 1000)), 'thread');
    assert.equal(await where(keys('few/p-05', '', 1000)), 'event loop');
    assert.equal(await where(keys('big/', '', 1000)), 'thread');
    assert.equal(await where(keys('big/1', '', 1000)), 'event loop');
    const versionsBefore = threads.answered;
    await store.listVersionsRendered({ bucket: 'b', prefix: 'few/', delimiter: '/', keyMarker: '', versionIdMarker: '', limit: 1000 }, rendering);
    await store.listVersions({ bucket: 'b', prefix: 'few/p-01', delimiter: '', keyMarker: '', versionIdMarker: '', limit: 1000 });
    await store.list(keys('few/', '/', 1000));
    assert.equal(threads.answered, versionsBefore, 'small version and entry listings stay on the event loop too');
    await store.listVersions({ bucket: 'b', prefix: 'flat/', delimiter: '', keyMarker: '', versionIdMarker: '', limit: 1000 });
    assert.equal(threads.answered, versionsBefore + 1, 'a large version listing goes to the thread');

    // Every page, paged through: the bytes and markers of the thread's page.
    let pages = 0;
    for (const prefix of ['', 'flat/', 'few/', 'wide/', 'mix/', 'few/p-05', 'big/']) {
      for (const delimiter of ['', '/']) {
        for (const limit of [7, STEPS - 1, STEPS, STEPS + 1, 1000]) {
          if (limit === 7 && prefix === '') continue; // ~180 pages each, and nothing another prefix does not show
          let after = '';
          let keyMarker = '';
          let versionIdMarker = '';
          let keysDone = false;
          let versionsDone = false;
          for (let page = 0; !(keysDone && versionsDone); page++) {
            assert.ok(page < 1000, 'a listing ends');
            const pageRendering: PageRendering = { encodeUrl: page % 2 === 1, owners: page % 3 !== 1 };
            const what = JSON.stringify({ prefix, delimiter, limit, page, after, keyMarker, versionIdMarker, pageRendering });
            if (!keysDone) {
              const request: ListRequest = { bucket: 'b', prefix, delimiter, after, limit };
              const answered = referenceThreads.answered;
              const listed = await store.listRendered(request, pageRendering);
              const expected = await onThread.listRendered(request, pageRendering);
              assert.equal(referenceThreads.answered, answered + 1, 'the reference page comes from its thread');
              assert.equal(pageText(listed), pageText(expected), `keys ${what}`);
              assert.deepEqual([listed!.entries, listed!.isTruncated, listed!.lastKey], [expected!.entries, expected!.isTruncated, expected!.lastKey], `keys ${what}`);
              assert.deepEqual(await store.list(request), await onThread.list(request), `key entries ${what}`);
              keysDone = !listed!.isTruncated;
              after = listed!.lastKey ?? '';
              pages++;
            }
            if (!versionsDone) {
              const request: ListVersionsRequest = { bucket: 'b', prefix, delimiter, keyMarker, versionIdMarker, limit };
              const listed = await store.listVersionsRendered(request, pageRendering);
              const expected = await onThread.listVersionsRendered(request, pageRendering);
              assert.equal(pageText(listed), pageText(expected), `versions ${what}`);
              assert.deepEqual(
                [listed!.entries, listed!.isTruncated, listed!.lastKey, listed!.lastVersionId],
                [expected!.entries, expected!.isTruncated, expected!.lastKey, expected!.lastVersionId],
                `versions ${what}`,
              );
              assert.deepEqual(await store.listVersions(request), await onThread.listVersions(request), `version entries ${what}`);
              versionsDone = !listed!.isTruncated;
              keyMarker = listed!.lastKey ?? '';
              versionIdMarker = listed!.lastVersionId ?? '';
              pages++;
            }
          }
        }
      }
    }
    assert.ok(pages > 300, `${pages} pages compared`);
  } finally {
    await reference?.close();
    await store.close();
    await rm(directory, { recursive: true, force: true });
  }
});

/** The nice value of each of this process's threads (field 19 of its stat): the listing thread runs at 5. */
function threadNices(): number[] {
  return readdirSync('/proc/self/task').flatMap((tid) => {
    try {
      const stat = readFileSync(`/proc/self/task/${tid}/stat`, 'utf8');
      return [Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[16])];
    } catch {
      return []; // a thread that ended meanwhile
    }
  });
}

function byteOrder(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

/** What a listing returns, rolled up by hand: keys (false) and common prefixes (true) in byte order. */
function referenceListing(keys: readonly string[], prefix: string, delimiter: string, after: string): [string, boolean][] {
  const skipUnder = delimiter !== '' && after.startsWith(prefix) && after.endsWith(delimiter) && after.indexOf(delimiter, prefix.length) === after.length - delimiter.length;
  const entries: [string, boolean][] = [];
  for (const key of [...keys].sort(byteOrder)) {
    if (!key.startsWith(prefix) || byteOrder(key, after) <= 0 || (skipUnder && key.startsWith(after))) continue;
    const at = delimiter === '' ? -1 : key.indexOf(delimiter, prefix.length);
    const entry: [string, boolean] = at === -1 ? [key, false] : [key.slice(0, at + delimiter.length), true];
    const last = entries.at(-1);
    if (last === undefined || last[0] !== entry[0]) entries.push(entry);
  }
  return entries;
}

test('a server answers small listings on its event loop, correctly, and starts its listing thread for a large one', { skip: process.platform !== 'linux' && 'the listing thread is told apart by its nice value (Linux)' }, async () => {
  const talus = await startTestTalus();
  try {
    const client = talus.client;
    const bucket = uniqueBucket('round4');
    await client.send(new CreateBucketCommand({ Bucket: bucket }));
    await client.send(new PutBucketVersioningCommand({ Bucket: bucket, VersioningConfiguration: { Status: 'Enabled' } }));
    const keys: string[] = ['top', 'dir/a b', 'dir/é&<x>', 'dir/😀'];
    for (let p = 0; p < 12; p++) for (let k = 0; k < 2; k++) keys.push(`dir/p${String(p).padStart(2, '0')}/${k}`);
    await Promise.all(keys.map((key) => client.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: key, Metadata: { shown: 'yes' } }))));
    // A delete marker hides one key from ListObjects and shows in ListObjectVersions.
    await client.send(new DeleteObjectCommand({ Bucket: bucket, Key: 'dir/p03/1' }));
    const visible = keys.filter((key) => key !== 'dir/p03/1');

    for (const [prefix, delimiter] of [['dir/', '/'], ['', '/'], ['dir/p0', ''], ['dir/', '']] as const) {
      // v2, two entries a page, names URL-encoded, from a start-after.
      for (const startAfter of ['', 'dir/p05/', 'dir/a']) {
        const listed: [string, boolean][] = [];
        let token: string | undefined;
        for (let page = 0; ; page++) {
          assert.ok(page < 100, 'a listing ends');
          const answer = await client.send(
            new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, Delimiter: delimiter || undefined, MaxKeys: 2, StartAfter: startAfter || undefined, ContinuationToken: token, EncodingType: 'url' }),
          );
          const entries: [string, boolean][] = [
            ...(answer.Contents ?? []).map((entry): [string, boolean] => [decodeURIComponent(entry.Key!), false]),
            ...(answer.CommonPrefixes ?? []).map((entry): [string, boolean] => [decodeURIComponent(entry.Prefix!), true]),
          ];
          listed.push(...entries.sort((a, b) => byteOrder(a[0], b[0])));
          if (answer.IsTruncated !== true) break;
          token = answer.NextContinuationToken;
        }
        assert.deepEqual(listed, referenceListing(visible, prefix, delimiter, startAfter), `v2 ${JSON.stringify({ prefix, delimiter, startAfter })}`);
      }
      // v1, three entries a page, from each page's NextMarker (or last key).
      const listed: [string, boolean][] = [];
      let marker: string | undefined;
      for (let page = 0; ; page++) {
        assert.ok(page < 100, 'a listing ends');
        const answer = await client.send(new ListObjectsCommand({ Bucket: bucket, Prefix: prefix, Delimiter: delimiter || undefined, MaxKeys: 3, Marker: marker }));
        const entries: [string, boolean][] = [
          ...(answer.Contents ?? []).map((entry): [string, boolean] => [entry.Key!, false]),
          ...(answer.CommonPrefixes ?? []).map((entry): [string, boolean] => [entry.Prefix!, true]),
        ];
        assert.ok((answer.Contents ?? []).every((entry) => entry.Owner?.ID !== undefined), 'ListObjects v1 shows owners');
        listed.push(...entries.sort((a, b) => byteOrder(a[0], b[0])));
        if (answer.IsTruncated !== true) break;
        marker = answer.NextMarker ?? listed.at(-1)![0];
      }
      assert.deepEqual(listed, referenceListing(visible, prefix, delimiter, ''), `v1 ${JSON.stringify({ prefix, delimiter })}`);
      // Versions: every key once (one version each), the deleted one twice (its version and its delete marker).
      const versions = await client.send(new ListObjectVersionsCommand({ Bucket: bucket, Prefix: prefix, Delimiter: delimiter || undefined }));
      const versionKeys = [...(versions.Versions ?? []), ...(versions.DeleteMarkers ?? [])].map((entry) => entry.Key!).sort(byteOrder);
      const expectedKeys = referenceListing(keys, prefix, delimiter, '').filter(([, isPrefix]) => !isPrefix).map(([key]) => key);
      if (expectedKeys.includes('dir/p03/1')) expectedKeys.push('dir/p03/1');
      assert.deepEqual(versionKeys, expectedKeys.sort(byteOrder), `versions ${JSON.stringify({ prefix, delimiter })}`);
      assert.deepEqual(
        (versions.CommonPrefixes ?? []).map((entry) => entry.Prefix),
        referenceListing(keys, prefix, delimiter, '').filter(([, isPrefix]) => isPrefix).map(([key]) => key),
      );
    }
    // metadata=true (MinIO's extension), listed to the owner: each entry's metadata.
    const withMetadata = await signedRequest(talus.url, { method: 'GET', path: `/${bucket}`, query: { 'list-type': '2', prefix: 'dir/p0', metadata: 'true' } });
    assert.equal(withMetadata.status, 200);
    assert.equal(withMetadata.body.match(/<X-Amz-Meta-Shown>yes<\/X-Amz-Meta-Shown>/g)?.length, visible.filter((key) => key.startsWith('dir/p0')).length, withMetadata.body);

    // Only small listings so far: no thread at nice 5, though the first listing was long enough ago for one to be up.
    await new Promise((resolve) => setTimeout(resolve, 1000));
    assert.ok(!threadNices().includes(5), `no listing thread yet: nices ${threadNices().join(', ')}`);

    // A large listing (more keys than the event loop lists) starts the thread, and is listed correctly meanwhile.
    const many = Array.from({ length: STEPS + 20 }, (_, i) => `many/${String(i).padStart(4, '0')}`);
    for (let i = 0; i < many.length; i += 32) await Promise.all(many.slice(i, i + 32).map((key) => client.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: 'x' }))));
    const large = await client.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: 'many/' }));
    assert.deepEqual((large.Contents ?? []).map((entry) => entry.Key), many);
    await eventually(() => threadNices().includes(5), 'the listing thread runs');
    const again = await client.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: 'many/', MaxKeys: STEPS + 5 }));
    assert.deepEqual((again.Contents ?? []).map((entry) => entry.Key), many.slice(0, STEPS + 5));
  } finally {
    await talus.stop();
  }
});
