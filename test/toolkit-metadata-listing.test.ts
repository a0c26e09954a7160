/**
 * One-call metadata listing (MinIO's extension): ListObjectsV2 and
 * ListObjectVersions with `metadata=true` give each <Contents> / <Version>
 * a <UserMetadata> (content-type, the stored system headers, X-Amz-Meta-*)
 * and <UserTags> (a URL query string), after StorageClass; plain listings
 * stay as they were. Through real HTTP: the AWS SDK (which ignores the
 * unknown elements, so its view must be unchanged; the raw XML it received
 * is parsed here) and raw signed requests.
 */
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import {
  CreateBucketCommand,
  DeleteObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  ListObjectVersionsCommand,
  PutBucketVersioningCommand,
  PutObjectCommand,
  S3Client,
} from '@aws-sdk/client-s3';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import { XMLParser } from 'fast-xml-parser';
import { signedRequest } from './helpers/raw.ts';
import { ACCESS_KEY_ID, SECRET_ACCESS_KEY, startTestTalus, uniqueBucket, type TestTalus } from './helpers/talus.ts';

type Handle = NodeHttpHandler['handle'];

/** The SDK's HTTP handler, keeping the last response body as text. */
class RecordingHandler extends NodeHttpHandler {
  lastBody = '';
  override async handle(...args: Parameters<Handle>): ReturnType<Handle> {
    const result = await super.handle(...args);
    const chunks: Buffer[] = [];
    for await (const chunk of result.response.body as AsyncIterable<Buffer>) chunks.push(chunk);
    const body = Buffer.concat(chunks);
    this.lastBody = body.toString('utf8');
    result.response.body = Readable.from([body]);
    return result;
  }
}

const parser = new XMLParser({
  ignoreAttributes: true,
  parseTagValue: false,
  isArray: (name) => ['Contents', 'Version', 'DeleteMarker'].includes(name),
});
type Node = Record<string, unknown>;
/** Adds metadata=true to the request before it is signed, as minio-go's WithMetadata does. */
function askMetadata<C extends { middlewareStack: { add(middleware: unknown, options: unknown): void } }>(command: C): C {
  command.middlewareStack.add(
    (next: (args: { request: { query: Record<string, string> } }) => Promise<unknown>) => async (args: { request: { query: Record<string, string> } }) => {
      args.request.query['metadata'] = 'true';
      return next(args);
    },
    { step: 'build', name: 'askMetadata' },
  );
  return command;
}

function entries(xml: string, root: string, entry: string): Node[] {
  return (((parser.parse(xml) as Node)[root] as Node)[entry] as Node[] | undefined) ?? [];
}

describe('metadata=true listings', () => {
  let talus: TestTalus;
  let bucket: string;
  let handler: RecordingHandler;
  let sdk: S3Client;

  before(async () => {
    talus = await startTestTalus();
    handler = new RecordingHandler();
    sdk = new S3Client({
      endpoint: talus.url,
      region: 'us-east-1',
      forcePathStyle: true,
      credentials: { accessKeyId: ACCESS_KEY_ID, secretAccessKey: SECRET_ACCESS_KEY },
      requestHandler: handler,
    });
    bucket = uniqueBucket('meta');
    await sdk.send(new CreateBucketCommand({ Bucket: bucket }));
    await sdk.send(
      new PutObjectCommand({
        Bucket: bucket,
        Key: 'a/described.txt',
        Body: 'hello',
        ContentType: 'text/plain',
        CacheControl: 'max-age=60',
        Metadata: { color: 'blue', 'camera-model': 'x & <y>' },
        Tagging: 'project=talus&note=two words',
      }),
    );
    await sdk.send(new PutObjectCommand({ Bucket: bucket, Key: 'b/plain', Body: 'x' }));
  });

  after(async () => {
    sdk.destroy();
    await talus.stop();
  });

  test('the SDK lists unchanged, and the XML it received carries MinIO-shaped metadata', async () => {
    const command = askMetadata(new ListObjectsV2Command({ Bucket: bucket }));
    const output = await sdk.send(command);
    assert.deepEqual(output.Contents?.map((entry) => [entry.Key, entry.Size, entry.ETag]), [
      ['a/described.txt', 5, '"5d41402abc4b2a76b9719d911017c592"'],
      ['b/plain', 1, '"9dd4e461268c8034f5c8564e155c67a6"'],
    ]);
    const xml = handler.lastBody;
    const [described, plain] = entries(xml, 'ListBucketResult', 'Contents');
    assert.deepEqual(described!['UserMetadata'], {
      'content-type': 'text/plain',
      'cache-control': 'max-age=60',
      'X-Amz-Meta-Color': 'blue',
      'X-Amz-Meta-Camera-Model': 'x & <y>',
    });
    assert.equal(new URLSearchParams(described!['UserTags'] as string).get('note'), 'two words');
    assert.equal(new URLSearchParams(described!['UserTags'] as string).get('project'), 'talus');
    // No metadata given: the content type HEAD answers; no tags: no element.
    const head = await sdk.send(new HeadObjectCommand({ Bucket: bucket, Key: 'b/plain' }));
    assert.deepEqual(plain!['UserMetadata'], { 'content-type': head.ContentType });
    assert.equal(plain!['UserTags'], undefined);
    // MinIO's order: after StorageClass.
    assert.match(xml, /<StorageClass>STANDARD<\/StorageClass><UserMetadata><content-type>text\/plain<\/content-type>/);
  });

  test('a plain listing has no metadata elements', async () => {
    await sdk.send(new ListObjectsV2Command({ Bucket: bucket }));
    assert.doesNotMatch(handler.lastBody, /UserMetadata|UserTags/);
    const other = await signedRequest(talus.url, { method: 'GET', path: `/${bucket}`, query: { 'list-type': '2', metadata: 'false' } });
    assert.equal(other.status, 200);
    assert.doesNotMatch(other.body, /UserMetadata/);
  });

  test('raw signed request: pages with max-keys, prefix and delimiter keep the metadata', async () => {
    const first = await signedRequest(talus.url, { method: 'GET', path: `/${bucket}`, query: { 'list-type': '2', metadata: 'true', 'max-keys': '1' } });
    assert.equal(first.status, 200, first.body);
    const [only] = entries(first.body, 'ListBucketResult', 'Contents');
    assert.equal(only!['Key'], 'a/described.txt');
    assert.equal((only!['UserMetadata'] as Node)['X-Amz-Meta-Color'], 'blue');
    const token = /<NextContinuationToken>([^<]+)</.exec(first.body)?.[1];
    assert.ok(token !== undefined);
    const second = await signedRequest(talus.url, {
      method: 'GET',
      path: `/${bucket}`,
      query: { 'list-type': '2', metadata: 'true', 'max-keys': '1', 'continuation-token': token },
    });
    assert.deepEqual(entries(second.body, 'ListBucketResult', 'Contents').map((entry) => entry['Key']), ['b/plain']);
    const delimited = await signedRequest(talus.url, { method: 'GET', path: `/${bucket}`, query: { 'list-type': '2', metadata: 'true', delimiter: '/' } });
    assert.match(delimited.body, /<CommonPrefixes><Prefix>a\/<\/Prefix><\/CommonPrefixes>/);
    assert.equal(entries(delimited.body, 'ListBucketResult', 'Contents').length, 0);
  });

  test('ListObjectVersions: each <Version> carries its own metadata, delete markers none', async () => {
    const versioned = uniqueBucket('metav');
    await sdk.send(new CreateBucketCommand({ Bucket: versioned }));
    await sdk.send(new PutBucketVersioningCommand({ Bucket: versioned, VersioningConfiguration: { Status: 'Enabled' } }));
    await sdk.send(new PutObjectCommand({ Bucket: versioned, Key: 'k', Body: 'v1', Metadata: { rev: 'one' } }));
    await sdk.send(new PutObjectCommand({ Bucket: versioned, Key: 'k', Body: 'v2', Metadata: { rev: 'two' }, Tagging: 't=2' }));
    await sdk.send(new DeleteObjectCommand({ Bucket: versioned, Key: 'k' }));
    const command = askMetadata(new ListObjectVersionsCommand({ Bucket: versioned }));
    const output = await sdk.send(command);
    assert.equal(output.Versions?.length, 2);
    assert.equal(output.DeleteMarkers?.length, 1);
    const versions = entries(handler.lastBody, 'ListVersionsResult', 'Version');
    assert.deepEqual(versions.map((version) => (version['UserMetadata'] as Node)['X-Amz-Meta-Rev']), ['two', 'one']);
    assert.deepEqual(versions.map((version) => version['UserTags']), ['t=2', undefined]);
    assert.doesNotMatch(/<DeleteMarker>.*?<\/DeleteMarker>/.exec(handler.lastBody)?.[0] ?? '', /UserMetadata/);
  });
});
