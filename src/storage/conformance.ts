/**
 * The ObjectStorage conformance suite: cases that every implementation must
 * pass, written once and run (by test files) against memory, a directory,
 * a Talus server and s3rver. A target that knows it differs from S3 names
 * the case and the reason in `differences`; the runner skips exactly those
 * cases, with the reason, so a difference is visible and never a silent pass.
 */
import { strict as assert } from 'node:assert';
import { createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import {
  AlreadyExistsError,
  InvalidKeyError,
  InvalidRangeError,
  NoSuchUploadError,
  NotFoundError,
  PreconditionFailedError,
  StorageError,
  type ListOptions,
  type ListPage,
  type ObjectStorage,
} from './object-storage.ts';

export interface ConformanceCase {
  readonly name: string;
  /** Runs against a storage no other case uses at the same time; `scope` is a key prefix unique to this run. */
  run(storage: ObjectStorage, scope: string): Promise<void>;
}

const MiB = 1024 * 1024;

export async function readAll(body: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of body) chunks.push(Buffer.from(chunk));
  return Buffer.concat(chunks);
}

export async function listAll(storage: ObjectStorage, prefix: string, options: ListOptions = {}): Promise<{ keys: string[]; commonPrefixes: string[]; pages: ListPage[] }> {
  const pages: ListPage[] = [];
  for await (const page of storage.list(prefix, options)) pages.push(page);
  return { keys: pages.flatMap((page) => page.objects.map((object) => object.key)), commonPrefixes: pages.flatMap((page) => page.commonPrefixes), pages };
}

function md5Etag(bytes: Buffer): string {
  return `"${createHash('md5').update(bytes).digest('hex')}"`;
}

async function rejectsWith(promise: Promise<unknown>, type: new (...args: never[]) => Error, code: string): Promise<void> {
  await assert.rejects(promise, (error: unknown) => {
    assert.ok(error instanceof type, `expected ${type.name}, got ${String(error)}`);
    assert.equal((error as StorageError).code, code);
    return true;
  });
}

export const conformanceCases: readonly ConformanceCase[] = [
  {
    name: 'put then get and head: the bytes, size, ETag, content type and user metadata',
    async run(storage, scope) {
      const key = `${scope}/object`;
      const body = randomBytes(100_000);
      const { etag } = await storage.put(key, body, { contentType: 'text/x-test', metadata: { Colour: 'blue', note: 'a b c' } });
      assert.equal(etag, md5Etag(body));
      const info = await storage.head(key);
      assert.equal(info.key, key);
      assert.equal(info.size, body.length);
      assert.equal(info.etag, etag);
      assert.equal(info.contentType, 'text/x-test');
      assert.deepEqual(info.metadata, { colour: 'blue', note: 'a b c' });
      assert.ok(Math.abs(info.lastModified.getTime() - Date.now()) < 10 * 60_000, 'last-modified is about now');
      const got = await storage.get(key);
      assert.deepEqual(await readAll(got.body), body);
      assert.equal(got.info.size, body.length);
      assert.equal(got.info.etag, etag);
      assert.deepEqual(got.range, { start: 0, end: body.length });
    },
  },
  {
    name: 'user metadata values in UTF-8 round-trip',
    async run(storage, scope) {
      const key = `${scope}/utf8-metadata`;
      await storage.put(key, 'x', { metadata: { city: 'Zürich – 東京' } });
      assert.deepEqual((await storage.head(key)).metadata, { city: 'Zürich – 東京' });
    },
  },
  {
    name: 'put replaces an object whole; an empty object is an object',
    async run(storage, scope) {
      const key = `${scope}/replaced`;
      await storage.put(key, 'first version');
      const { etag } = await storage.put(key, Buffer.alloc(0));
      assert.equal(etag, md5Etag(Buffer.alloc(0)));
      const info = await storage.head(key);
      assert.equal(info.size, 0);
      assert.deepEqual(await readAll((await storage.get(key)).body), Buffer.alloc(0));
    },
  },
  {
    name: 'put takes a stream, with or without its size',
    async run(storage, scope) {
      const body = randomBytes(300_000);
      const chunks = [body.subarray(0, 1000), body.subarray(1000, 200_000), body.subarray(200_000)];
      await storage.put(`${scope}/sized`, Readable.from(chunks), { size: body.length });
      await storage.put(`${scope}/unsized`, Readable.from(chunks));
      for (const name of ['sized', 'unsized']) assert.deepEqual(await readAll((await storage.get(`${scope}/${name}`)).body), body, name);
    },
  },
  {
    name: 'get and head of a missing key: NotFoundError',
    async run(storage, scope) {
      await rejectsWith(storage.get(`${scope}/missing`), NotFoundError, 'NoSuchKey');
      await rejectsWith(storage.head(`${scope}/missing`), NotFoundError, 'NoSuchKey');
    },
  },
  {
    name: 'putIfAbsent creates once; then AlreadyExistsError and the object is unchanged',
    async run(storage, scope) {
      const key = `${scope}/once`;
      const { etag } = await storage.putIfAbsent(key, 'winner');
      await rejectsWith(storage.putIfAbsent(key, 'loser'), AlreadyExistsError, 'AlreadyExists');
      assert.equal((await storage.head(key)).etag, etag);
      assert.equal((await readAll((await storage.get(key)).body)).toString(), 'winner');
    },
  },
  {
    name: 'putIfAbsent racing itself: exactly one of many wins',
    async run(storage, scope) {
      const key = `${scope}/race`;
      const results = await Promise.allSettled(Array.from({ length: 8 }, (_, i) => storage.putIfAbsent(key, `writer ${i}`)));
      const won = results.filter((result) => result.status === 'fulfilled');
      assert.equal(won.length, 1, 'one winner');
      for (const result of results) if (result.status === 'rejected') assert.ok(result.reason instanceof AlreadyExistsError || (result.reason as StorageError).code === 'ConditionalRequestConflict', String(result.reason));
      assert.equal((await storage.head(key)).etag, won[0]!.value.etag);
    },
  },
  {
    name: 'putIfMatch replaces the version it names; a stale or missing one is PreconditionFailedError',
    async run(storage, scope) {
      const key = `${scope}/cas`;
      const first = await storage.put(key, 'v1');
      const second = await storage.putIfMatch(key, 'v2', first.etag);
      await rejectsWith(storage.putIfMatch(key, 'v3', first.etag), PreconditionFailedError, 'PreconditionFailed');
      assert.equal((await storage.head(key)).etag, second.etag);
      // ETags may be given without their quotes.
      await storage.putIfMatch(key, 'v4', second.etag.replaceAll('"', ''));
      assert.equal((await readAll((await storage.get(key)).body)).toString(), 'v4');
      await rejectsWith(storage.putIfMatch(`${scope}/cas-missing`, 'x', first.etag), PreconditionFailedError, 'PreconditionFailed');
    },
  },
  {
    name: 'ranged get: [start, end), open-ended, clamped at the end; a start past the end is InvalidRangeError',
    async run(storage, scope) {
      const key = `${scope}/ranged`;
      const body = randomBytes(10_000);
      await storage.put(key, body);
      const middle = await storage.get(key, { range: { start: 100, end: 1100 } });
      assert.deepEqual(await readAll(middle.body), body.subarray(100, 1100));
      assert.deepEqual(middle.range, { start: 100, end: 1100 });
      assert.equal(middle.info.size, body.length, 'the size is the whole object');
      assert.deepEqual(await readAll((await storage.get(key, { range: { start: 9_000 } })).body), body.subarray(9_000));
      const clamped = await storage.get(key, { range: { start: 9_990, end: 20_000 } });
      assert.deepEqual(await readAll(clamped.body), body.subarray(9_990));
      assert.deepEqual(clamped.range, { start: 9_990, end: 10_000 });
      assert.deepEqual(await readAll((await storage.get(key, { range: { start: 0, end: 1 } })).body), body.subarray(0, 1));
      await rejectsWith(storage.get(key, { range: { start: 10_000 } }), InvalidRangeError, 'InvalidRange');
    },
  },
  {
    name: 'list: prefix, startAfter, and UTF-8 byte order',
    async run(storage, scope) {
      // U+FFFD sorts before U+1F600 in UTF-8, after it in UTF-16.
      const names = ['a', 'b', 'b0', 'c/d', '\u{fffd}', '\u{1f600}'];
      for (const name of names) await storage.put(`${scope}/l/${name}`, name);
      await storage.put(`${scope}/lx`, 'outside the prefix');
      const all = await listAll(storage, `${scope}/l/`);
      assert.deepEqual(all.keys, names.map((name) => `${scope}/l/${name}`));
      const after = await listAll(storage, `${scope}/l/`, { startAfter: `${scope}/l/b` });
      assert.deepEqual(after.keys, all.keys.slice(2));
      const entry = all.pages[0]!.objects[0]!;
      assert.equal(entry.size, 1);
      assert.equal(entry.etag, md5Etag(Buffer.from('a')));
      assert.ok(entry.lastModified instanceof Date && !Number.isNaN(entry.lastModified.getTime()));
      assert.deepEqual((await listAll(storage, `${scope}/nothing-here/`)).keys, []);
    },
  },
  {
    name: 'list in pages of pageSize entries',
    async run(storage, scope) {
      const names = ['a', 'b', 'c', 'd', 'e/1', 'e/2', 'f'];
      for (const name of names) await storage.put(`${scope}/p/${name}`, name);
      const paged = await listAll(storage, `${scope}/p/`, { pageSize: 2 });
      assert.deepEqual(paged.keys, names.map((name) => `${scope}/p/${name}`));
      assert.deepEqual(paged.pages.map((page) => page.objects.length), [2, 2, 2, 1]);
    },
  },
  {
    name: 'list in pages: a common prefix counts as one entry of a page',
    async run(storage, scope) {
      const names = ['a', 'b', 'c', 'd', 'e/1', 'e/2', 'f'];
      for (const name of names) await storage.put(`${scope}/p/${name}`, name);
      const rolled = await listAll(storage, `${scope}/p/`, { pageSize: 2, delimiter: '/' });
      assert.deepEqual(rolled.pages.map((page) => page.objects.length + page.commonPrefixes.length), [2, 2, 2]);
      assert.deepEqual(rolled.commonPrefixes, [`${scope}/p/e/`]);
    },
  },
  {
    name: 'list with a delimiter rolls keys up into common prefixes',
    async run(storage, scope) {
      for (const name of ['top', 'dir/one', 'dir/two', 'dir/sub/three', 'other/four']) await storage.put(`${scope}/d/${name}`, name);
      const root = await listAll(storage, `${scope}/d/`, { delimiter: '/' });
      assert.deepEqual(root.keys, [`${scope}/d/top`]);
      assert.deepEqual(root.commonPrefixes, [`${scope}/d/dir/`, `${scope}/d/other/`]);
      const dir = await listAll(storage, `${scope}/d/dir/`, { delimiter: '/' });
      assert.deepEqual(dir.keys, [`${scope}/d/dir/one`, `${scope}/d/dir/two`]);
      assert.deepEqual(dir.commonPrefixes, [`${scope}/d/dir/sub/`]);
    },
  },
  {
    name: 'keys with dots, slashes, backslashes, spaces, percent signs and non-ASCII round-trip and list',
    async run(storage, scope) {
      const names = ['../escape', '..', './x', 'a//b', 'trailing/', 'back\\slash', '%2F%00', 'sp ace+plus', 'ü/東京/ok', '.hidden', 'x.obj', 'x.lock', 'x/y'];
      for (const name of names) await storage.put(`${scope}/k/${name}`, name);
      for (const name of names) assert.equal((await readAll((await storage.get(`${scope}/k/${name}`)).body)).toString(), name, name);
      const listed = (await listAll(storage, `${scope}/k/`)).keys;
      assert.deepEqual([...listed].sort(), names.map((name) => `${scope}/k/${name}`).sort());
    },
  },
  {
    name: 'an empty key, or one holding NUL, is InvalidKeyError',
    async run(storage, scope) {
      await rejectsWith(storage.put('', 'x'), InvalidKeyError, 'InvalidKey');
      await rejectsWith(storage.put(`${scope}/nul\0`, 'x'), InvalidKeyError, 'InvalidKey');
      await rejectsWith(storage.head(`${scope}/${'x'.repeat(1100)}`), InvalidKeyError, 'InvalidKey');
    },
  },
  {
    name: 'delete: the object goes; a missing key is no error',
    async run(storage, scope) {
      const key = `${scope}/doomed`;
      await storage.put(key, 'x');
      await storage.delete(key);
      await rejectsWith(storage.head(key), NotFoundError, 'NoSuchKey');
      await storage.delete(key);
      await storage.delete(`${scope}/never-was`);
    },
  },
  {
    name: 'deleteMany: more than 1000 keys in batches, and per-key errors',
    async run(storage, scope) {
      const keys = Array.from({ length: 1003 }, (_, i) => `${scope}/many/${String(i).padStart(4, '0')}`);
      for (let at = 0; at < keys.length; at += 50) await Promise.all(keys.slice(at, at + 50).map((key) => storage.put(key, 'x')));
      const errors = await storage.deleteMany([...keys, `${scope}/many/never-was`, '']);
      assert.equal(errors.length, 1);
      assert.equal(errors[0]!.key, '');
      assert.equal(errors[0]!.code, 'InvalidKey');
      assert.deepEqual((await listAll(storage, `${scope}/many/`)).keys, []);
    },
  },
  {
    name: 'multipart: parts, listParts, complete into one object with a multipart ETag',
    async run(storage, scope) {
      const key = `${scope}/multipart`;
      const first = randomBytes(5 * MiB);
      const second = randomBytes(1000);
      const upload = await storage.createMultipartUpload(key, { contentType: 'video/x-test', metadata: { part: 'yes' } });
      const one = await upload.uploadPart(1, first);
      const two = await upload.uploadPart(2, Readable.from([second]), { size: second.length });
      assert.equal(one.etag, md5Etag(first));
      const listed = await upload.listParts();
      assert.deepEqual(listed.map((part) => [part.partNumber, part.etag, part.size]), [[1, one.etag, first.length], [2, two.etag, second.length]]);
      const { etag } = await upload.complete([one, two]);
      assert.match(etag, /^"[0-9a-f]{32}-2"$/);
      const info = await storage.head(key);
      assert.equal(info.size, first.length + second.length);
      assert.equal(info.etag, etag);
      assert.equal(info.contentType, 'video/x-test');
      assert.deepEqual(info.metadata, { part: 'yes' });
      const got = await readAll((await storage.get(key, { range: { start: 5 * MiB - 10, end: 5 * MiB + 10 } })).body);
      assert.deepEqual(got, Buffer.concat([first.subarray(-10), second.subarray(0, 10)]));
    },
  },
  {
    name: 'multipart: a part below 5 MiB that is not the last is EntityTooSmall; abort drops the upload',
    async run(storage, scope) {
      const key = `${scope}/too-small`;
      const upload = await storage.createMultipartUpload(key);
      const one = await upload.uploadPart(1, 'small');
      const two = await upload.uploadPart(2, 'last');
      await assert.rejects(upload.complete([one, two]), (error: unknown) => (error as StorageError).code === 'EntityTooSmall');
      await upload.abort();
      await rejectsWith(upload.listParts(), NoSuchUploadError, 'NoSuchUpload');
      await rejectsWith(storage.head(key), NotFoundError, 'NoSuchKey');
      await upload.abort();
    },
  },
  {
    name: 'multipart: a completion with ifNoneMatch fails on an existing key and leaves it unchanged',
    async run(storage, scope) {
      const key = `${scope}/conditional-complete`;
      const { etag } = await storage.put(key, 'already here');
      const upload = await storage.createMultipartUpload(key);
      const part = await upload.uploadPart(1, 'would replace');
      await assert.rejects(upload.complete([part], { ifNoneMatch: '*' }), (error: unknown) => error instanceof AlreadyExistsError || error instanceof PreconditionFailedError);
      assert.equal((await storage.head(key)).etag, etag);
      await upload.abort();
      const fresh = await storage.createMultipartUpload(`${scope}/conditional-fresh`);
      const only = await fresh.uploadPart(1, 'new');
      await fresh.complete([only], { ifNoneMatch: '*' });
      assert.equal((await readAll((await storage.get(`${scope}/conditional-fresh`)).body)).toString(), 'new');
    },
  },
];
