/**
 * Object operations over real HTTP with the AWS SDK at default settings
 * (which sends aws-chunked bodies with CRC trailers): metadata round-trips,
 * ranges, conditional reads and writes, Content-MD5, odd keys, deletes,
 * copies and object tagging.
 */
import {
  CopyObjectCommand,
  CreateBucketCommand,
  DeleteObjectCommand,
  DeleteObjectsCommand,
  DeleteObjectTaggingCommand,
  GetObjectCommand,
  GetObjectTaggingCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  PutObjectTaggingCommand,
} from '@aws-sdk/client-s3';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { startTestTalus, uniqueBucket, type TestTalus } from './helpers/talus.ts';

type SdkError = Error & { $metadata?: { httpStatusCode?: number } };

function status(code: number) {
  return (error: SdkError): boolean => {
    assert.equal(error.$metadata?.httpStatusCode, code, `${error.name}: ${error.message}`);
    return true;
  };
}

describe('objects', () => {
  let talus: TestTalus;
  let bucket: string;
  before(async () => {
    talus = await startTestTalus();
    bucket = uniqueBucket();
    await talus.client.send(new CreateBucketCommand({ Bucket: bucket }));
  });
  after(async () => {
    await talus.stop();
  });

  async function getText(key: string, extra: Record<string, unknown> = {}): Promise<string> {
    const response = await talus.client.send(new GetObjectCommand({ Bucket: bucket, Key: key, ...extra }));
    return response.Body!.transformToString();
  }

  test('PUT then GET returns the bytes, ETag and every stored header', async () => {
    const body = randomBytes(100_000);
    const put = await talus.client.send(
      new PutObjectCommand({
        Bucket: bucket,
        Key: 'meta/object.bin',
        Body: body,
        ContentType: 'application/x-test',
        CacheControl: 'max-age=60',
        ContentDisposition: 'attachment; filename="x.bin"',
        ContentEncoding: 'identity',
        ContentLanguage: 'en-GB',
        Expires: new Date('2030-01-01T00:00:00Z'),
        Metadata: { color: 'blue', 'two-words': 'hello world' },
      }),
    );
    const md5 = createHash('md5').update(body).digest('hex');
    assert.equal(put.ETag, `"${md5}"`);
    const got = await talus.client.send(new GetObjectCommand({ Bucket: bucket, Key: 'meta/object.bin' }));
    assert.deepEqual(Buffer.from(await got.Body!.transformToByteArray()), body);
    assert.equal(got.ETag, `"${md5}"`);
    assert.equal(got.ContentLength, body.length);
    assert.equal(got.ContentType, 'application/x-test');
    assert.equal(got.CacheControl, 'max-age=60');
    assert.equal(got.ContentDisposition, 'attachment; filename="x.bin"');
    assert.equal(got.ContentEncoding, 'identity');
    assert.equal(got.ContentLanguage, 'en-GB');
    assert.equal(got.ExpiresString ?? got.Expires?.toUTCString(), 'Tue, 01 Jan 2030 00:00:00 GMT');
    assert.deepEqual(got.Metadata, { color: 'blue', 'two-words': 'hello world' });
    assert.ok(got.LastModified instanceof Date);
    const head = await talus.client.send(new HeadObjectCommand({ Bucket: bucket, Key: 'meta/object.bin' }));
    assert.equal(head.ContentLength, body.length);
    assert.equal(head.ETag, `"${md5}"`);
    assert.deepEqual(head.Metadata, { color: 'blue', 'two-words': 'hello world' });
  });

  test('an empty object round-trips', async () => {
    await talus.client.send(new PutObjectCommand({ Bucket: bucket, Key: 'empty', Body: '' }));
    const got = await talus.client.send(new GetObjectCommand({ Bucket: bucket, Key: 'empty' }));
    assert.equal(got.ContentLength, 0);
    assert.equal(got.ETag, '"d41d8cd98f00b204e9800998ecf8427e"');
    assert.equal(await got.Body!.transformToString(), '');
  });

  test('keys with odd characters round-trip exactly', async () => {
    const keys = ['../x', 'a//b', 'with space', 'plus+sign', 'percent%20', 'emoji-😀-ü', 'a', 'a/b', 'q?uestion#hash', 'tilde~*', `${'k'.repeat(1000)}`, 'é'.repeat(510)];
    for (const key of keys) await talus.client.send(new PutObjectCommand({ Bucket: bucket, Key: `odd/${key}`, Body: key }));
    for (const key of keys) assert.equal(await getText(`odd/${key}`), key, key);
    const listed = await talus.client.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: 'odd/' }));
    const listedKeys = new Set(listed.Contents?.map((entry) => entry.Key));
    for (const key of keys) assert.ok(listedKeys.has(`odd/${key}`), key);
  });

  test('a key over 1024 bytes answers KeyTooLongError', async () => {
    await assert.rejects(talus.client.send(new PutObjectCommand({ Bucket: bucket, Key: 'k'.repeat(1025), Body: 'x' })), { name: 'KeyTooLongError' });
  });

  test('GET of a missing key answers NoSuchKey; of a missing bucket NoSuchBucket', async () => {
    await assert.rejects(talus.client.send(new GetObjectCommand({ Bucket: bucket, Key: 'nope' })), { name: 'NoSuchKey' });
    await assert.rejects(talus.client.send(new GetObjectCommand({ Bucket: uniqueBucket('nobucket'), Key: 'nope' })), { name: 'NoSuchBucket' });
    await assert.rejects(talus.client.send(new HeadObjectCommand({ Bucket: bucket, Key: 'nope' })), status(404));
  });

  test('ranges: closed, open-ended, suffix, clamped, unsatisfiable', async () => {
    const body = Buffer.from('0123456789abcdefghij');
    await talus.client.send(new PutObjectCommand({ Bucket: bucket, Key: 'range', Body: body }));
    const cases: [string, string, string][] = [
      ['bytes=0-4', '01234', 'bytes 0-4/20'],
      ['bytes=15-', 'fghij', 'bytes 15-19/20'],
      ['bytes=-3', 'hij', 'bytes 17-19/20'],
      ['bytes=18-100', 'ij', 'bytes 18-19/20'],
      ['bytes=-50', '0123456789abcdefghij', 'bytes 0-19/20'],
    ];
    for (const [range, expected, contentRange] of cases) {
      const got = await talus.client.send(new GetObjectCommand({ Bucket: bucket, Key: 'range', Range: range }));
      assert.equal(got.$metadata.httpStatusCode, 206, range);
      assert.equal(got.ContentRange, contentRange, range);
      assert.equal(await got.Body!.transformToString(), expected, range);
    }
    await assert.rejects(talus.client.send(new GetObjectCommand({ Bucket: bucket, Key: 'range', Range: 'bytes=20-' })), (error: SdkError) => {
      assert.equal(error.name, 'InvalidRange');
      assert.equal(error.$metadata?.httpStatusCode, 416);
      return true;
    });
  });

  test('conditional GET: If-Match, If-None-Match, If-Modified-Since, If-Unmodified-Since', async () => {
    const put = await talus.client.send(new PutObjectCommand({ Bucket: bucket, Key: 'cond', Body: 'conditional' }));
    const etag = put.ETag!;
    const past = new Date(Date.now() - 3_600_000);
    const future = new Date(Date.now() + 3_600_000);
    assert.equal(await getText('cond', { IfMatch: etag }), 'conditional');
    await assert.rejects(talus.client.send(new GetObjectCommand({ Bucket: bucket, Key: 'cond', IfMatch: '"0000"' })), status(412));
    await assert.rejects(talus.client.send(new GetObjectCommand({ Bucket: bucket, Key: 'cond', IfNoneMatch: etag })), status(304));
    assert.equal(await getText('cond', { IfNoneMatch: '"0000"' }), 'conditional');
    await assert.rejects(talus.client.send(new GetObjectCommand({ Bucket: bucket, Key: 'cond', IfModifiedSince: future })), status(304));
    assert.equal(await getText('cond', { IfModifiedSince: past }), 'conditional');
    await assert.rejects(talus.client.send(new GetObjectCommand({ Bucket: bucket, Key: 'cond', IfUnmodifiedSince: past })), status(412));
    assert.equal(await getText('cond', { IfUnmodifiedSince: future }), 'conditional');
    await assert.rejects(talus.client.send(new HeadObjectCommand({ Bucket: bucket, Key: 'cond', IfNoneMatch: etag })), status(304));
    // If-Match true overrides a false If-Unmodified-Since (RFC 9110 order).
    assert.equal(await getText('cond', { IfMatch: etag, IfUnmodifiedSince: past }), 'conditional');
  });

  test('conditional PUT: If-None-Match * creates once; If-Match replaces only the matching version', async () => {
    await talus.client.send(new PutObjectCommand({ Bucket: bucket, Key: 'cput', Body: 'first', IfNoneMatch: '*' }));
    await assert.rejects(talus.client.send(new PutObjectCommand({ Bucket: bucket, Key: 'cput', Body: 'second', IfNoneMatch: '*' })), status(412));
    assert.equal(await getText('cput'), 'first');
    const head = await talus.client.send(new HeadObjectCommand({ Bucket: bucket, Key: 'cput' }));
    await assert.rejects(talus.client.send(new PutObjectCommand({ Bucket: bucket, Key: 'cput', Body: 'third', IfMatch: '"ffff"' })), status(412));
    await talus.client.send(new PutObjectCommand({ Bucket: bucket, Key: 'cput', Body: 'fourth', IfMatch: head.ETag }));
    assert.equal(await getText('cput'), 'fourth');
    await assert.rejects(talus.client.send(new PutObjectCommand({ Bucket: bucket, Key: 'cput-missing', Body: 'x', IfMatch: head.ETag })), status(404));
    await assert.rejects(talus.client.send(new GetObjectCommand({ Bucket: bucket, Key: 'cput-missing' })), { name: 'NoSuchKey' });
  });

  test('Content-MD5: a match stores, a mismatch answers BadDigest and stores nothing', async () => {
    const body = Buffer.from('digest me');
    const md5 = createHash('md5').update(body).digest('base64');
    await talus.client.send(new PutObjectCommand({ Bucket: bucket, Key: 'md5-ok', Body: body, ContentMD5: md5 }));
    assert.equal(await getText('md5-ok'), 'digest me');
    const wrong = createHash('md5').update('other').digest('base64');
    await assert.rejects(talus.client.send(new PutObjectCommand({ Bucket: bucket, Key: 'md5-bad', Body: body, ContentMD5: wrong })), { name: 'BadDigest' });
    await assert.rejects(talus.client.send(new GetObjectCommand({ Bucket: bucket, Key: 'md5-bad' })), { name: 'NoSuchKey' });
  });

  test('user metadata over 2 KB answers MetadataTooLarge', async () => {
    await assert.rejects(
      talus.client.send(new PutObjectCommand({ Bucket: bucket, Key: 'bigmeta', Body: 'x', Metadata: { big: 'v'.repeat(2100) } })),
      { name: 'MetadataTooLarge' },
    );
    await assert.rejects(talus.client.send(new HeadObjectCommand({ Bucket: bucket, Key: 'bigmeta' })), status(404));
  });

  test('response-content-* overrides the returned headers', async () => {
    await talus.client.send(new PutObjectCommand({ Bucket: bucket, Key: 'override', Body: 'x', ContentType: 'text/plain' }));
    const got = await talus.client.send(
      new GetObjectCommand({ Bucket: bucket, Key: 'override', ResponseContentType: 'application/json', ResponseContentDisposition: 'inline', ResponseCacheControl: 'no-cache' }),
    );
    assert.equal(got.ContentType, 'application/json');
    assert.equal(got.ContentDisposition, 'inline');
    assert.equal(got.CacheControl, 'no-cache');
  });

  test('overwriting replaces the object', async () => {
    await talus.client.send(new PutObjectCommand({ Bucket: bucket, Key: 'over', Body: 'one' }));
    await talus.client.send(new PutObjectCommand({ Bucket: bucket, Key: 'over', Body: 'two' }));
    assert.equal(await getText('over'), 'two');
  });

  test('DeleteObject is idempotent; DeleteObjects deletes many and reports each', async () => {
    await talus.client.send(new PutObjectCommand({ Bucket: bucket, Key: 'del/1', Body: '1' }));
    await talus.client.send(new DeleteObjectCommand({ Bucket: bucket, Key: 'del/1' }));
    await talus.client.send(new DeleteObjectCommand({ Bucket: bucket, Key: 'del/1' }));
    await assert.rejects(talus.client.send(new GetObjectCommand({ Bucket: bucket, Key: 'del/1' })), { name: 'NoSuchKey' });
    const keys = Array.from({ length: 25 }, (_, i) => `del/many-${i}`);
    for (const key of keys) await talus.client.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: key }));
    const result = await talus.client.send(new DeleteObjectsCommand({ Bucket: bucket, Delete: { Objects: [...keys, 'del/never-existed'].map((Key) => ({ Key })) } }));
    assert.equal(result.Deleted?.length, 26);
    assert.equal(result.Errors, undefined);
    const listed = await talus.client.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: 'del/' }));
    assert.equal(listed.KeyCount, 0);
    await talus.client.send(new PutObjectCommand({ Bucket: bucket, Key: 'del/quiet', Body: 'q' }));
    const quiet = await talus.client.send(new DeleteObjectsCommand({ Bucket: bucket, Delete: { Objects: [{ Key: 'del/quiet' }], Quiet: true } }));
    assert.equal(quiet.Deleted, undefined);
    await assert.rejects(talus.client.send(new HeadObjectCommand({ Bucket: bucket, Key: 'del/quiet' })), status(404));
  });

  test('CopyObject: COPY keeps metadata, REPLACE replaces it, encoded source keys work', async () => {
    await talus.client.send(new PutObjectCommand({ Bucket: bucket, Key: 'copy/src ü+%', Body: 'copied', ContentType: 'text/x-src', Metadata: { a: '1' } }));
    const source = `${bucket}/${encodeURIComponent('copy/src ü+%')}`;
    const copied = await talus.client.send(new CopyObjectCommand({ Bucket: bucket, Key: 'copy/dst', CopySource: source }));
    assert.ok(copied.CopyObjectResult?.ETag);
    const head = await talus.client.send(new HeadObjectCommand({ Bucket: bucket, Key: 'copy/dst' }));
    assert.equal(head.ContentType, 'text/x-src');
    assert.deepEqual(head.Metadata, { a: '1' });
    assert.equal(await getText('copy/dst'), 'copied');
    await talus.client.send(new CopyObjectCommand({ Bucket: bucket, Key: 'copy/dst2', CopySource: source, MetadataDirective: 'REPLACE', ContentType: 'text/x-new', Metadata: { b: '2' } }));
    const replaced = await talus.client.send(new HeadObjectCommand({ Bucket: bucket, Key: 'copy/dst2' }));
    assert.equal(replaced.ContentType, 'text/x-new');
    assert.deepEqual(replaced.Metadata, { b: '2' });
  });

  test('CopyObject onto itself needs REPLACE; copy-source conditions answer 412', async () => {
    const put = await talus.client.send(new PutObjectCommand({ Bucket: bucket, Key: 'copy/self', Body: 'self', Metadata: { v: '1' } }));
    assert.deepEqual((await talus.client.send(new HeadObjectCommand({ Bucket: bucket, Key: 'copy/self' }))).Metadata, { v: '1' });
    const source = `${bucket}/copy/self`;
    await assert.rejects(talus.client.send(new CopyObjectCommand({ Bucket: bucket, Key: 'copy/self', CopySource: source })), { name: 'InvalidRequest' });
    await talus.client.send(new CopyObjectCommand({ Bucket: bucket, Key: 'copy/self', CopySource: source, MetadataDirective: 'REPLACE', Metadata: { v: '2' } }));
    const head = await talus.client.send(new HeadObjectCommand({ Bucket: bucket, Key: 'copy/self' }));
    assert.deepEqual(head.Metadata, { v: '2' });
    assert.equal(await getText('copy/self'), 'self');
    await assert.rejects(talus.client.send(new CopyObjectCommand({ Bucket: bucket, Key: 'copy/c1', CopySource: source, CopySourceIfMatch: '"nope"' })), status(412));
    await assert.rejects(talus.client.send(new CopyObjectCommand({ Bucket: bucket, Key: 'copy/c2', CopySource: source, CopySourceIfNoneMatch: put.ETag })), status(412));
    await talus.client.send(new CopyObjectCommand({ Bucket: bucket, Key: 'copy/c3', CopySource: source, CopySourceIfMatch: put.ETag }));
    await assert.rejects(talus.client.send(new CopyObjectCommand({ Bucket: bucket, Key: 'copy/c4', CopySource: `${bucket}/copy/absent` })), { name: 'NoSuchKey' });
  });

  test('object tagging: header on PUT, put/get/delete, tag count on GET, InvalidTag', async () => {
    await talus.client.send(new PutObjectCommand({ Bucket: bucket, Key: 'tagged', Body: 't', Tagging: 'a=1&b=two%20words' }));
    const tags = await talus.client.send(new GetObjectTaggingCommand({ Bucket: bucket, Key: 'tagged' }));
    assert.deepEqual(tags.TagSet, [{ Key: 'a', Value: '1' }, { Key: 'b', Value: 'two words' }]);
    const got = await talus.client.send(new GetObjectCommand({ Bucket: bucket, Key: 'tagged' }));
    assert.equal(got.TagCount, 2);
    await talus.client.send(new PutObjectTaggingCommand({ Bucket: bucket, Key: 'tagged', Tagging: { TagSet: [{ Key: 'c', Value: '3' }] } }));
    assert.deepEqual((await talus.client.send(new GetObjectTaggingCommand({ Bucket: bucket, Key: 'tagged' }))).TagSet, [{ Key: 'c', Value: '3' }]);
    // GET/HEAD headers are kept per cached version: a tagging change must show at once.
    assert.equal((await talus.client.send(new HeadObjectCommand({ Bucket: bucket, Key: 'tagged' }))).TagCount, 1);
    await talus.client.send(new DeleteObjectTaggingCommand({ Bucket: bucket, Key: 'tagged' }));
    assert.deepEqual((await talus.client.send(new GetObjectTaggingCommand({ Bucket: bucket, Key: 'tagged' }))).TagSet, []);
    assert.equal((await talus.client.send(new GetObjectCommand({ Bucket: bucket, Key: 'tagged' }))).TagCount, undefined);
    const eleven = Array.from({ length: 11 }, (_, i) => ({ Key: `k${i}`, Value: 'v' }));
    await assert.rejects(talus.client.send(new PutObjectTaggingCommand({ Bucket: bucket, Key: 'tagged', Tagging: { TagSet: eleven } })), { name: 'InvalidTag' });
    await assert.rejects(talus.client.send(new GetObjectTaggingCommand({ Bucket: bucket, Key: 'untagged-missing' })), { name: 'NoSuchKey' });
  });
});
