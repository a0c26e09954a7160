/**
 * Who sees what in a metadata=true listing (issue 14): a listing needs only
 * s3:ListBucket, but each entry's <UserMetadata> / <UserTags> are what a
 * GetObject of it shows, so they appear only on entries the caller may read
 * (the bucket policy, the version's owner and ACL, its tags as
 * s3:ExistingObjectTag); the others are listed plainly. The bucket owner,
 * another user with a per-prefix bucket policy grant, anonymous on a
 * public-read bucket, and a versioned bucket's older versions
 * (s3:GetObjectVersion). Real server, real users, raw signed HTTP; and
 * talus scan as a user who may read only some of what it lists.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { XMLParser } from 'fast-xml-parser';
import { Principals } from '../src/principals/principals.ts';
import { scanObjects } from '../src/scan/scan.ts';
import { clientFor, waitForAuth } from './helpers/principals.ts';
import { queryString, send, signRequest, type RawResponse } from './helpers/raw.ts';
import { startTestTalus, type TestTalus } from './helpers/talus.ts';

interface Credentials {
  accessKeyId: string;
  secretAccessKey: string;
}

async function as(url: string, credentials: Credentials | undefined, method: string, path: string, options: { query?: Record<string, string>; headers?: Record<string, string>; body?: string } = {}): Promise<RawResponse> {
  const pathAndQuery = `${path}${queryString(options.query)}`;
  if (credentials === undefined) return send(url, method, pathAndQuery, options.headers ?? {}, options.body);
  const signed = await signRequest(url, { method, path, query: options.query ?? {}, headers: options.headers ?? {}, body: options.body ?? '', credentials });
  return send(url, method, pathAndQuery, signed, options.body);
}

const parser = new XMLParser({ ignoreAttributes: true, parseTagValue: false, isArray: (name) => ['Contents', 'Version'].includes(name) });
type Node = Record<string, unknown>;

/** Each listed key (or key@versionId) → the x-amz-meta-pin it shows, or null when it is listed without metadata. */
function shown(body: string, root: 'ListBucketResult' | 'ListVersionsResult'): Map<string, string | null> {
  const result = (parser.parse(body) as Node)[root] as Node;
  const entries = (result[root === 'ListBucketResult' ? 'Contents' : 'Version'] as Node[] | undefined) ?? [];
  const seen = new Map<string, string | null>();
  for (const entry of entries) {
    const name = root === 'ListBucketResult' ? String(entry['Key']) : `${String(entry['Key'])}@${entry['IsLatest'] === 'true' ? 'latest' : 'older'}`;
    const metadata = entry['UserMetadata'] as Node | undefined;
    seen.set(name, metadata === undefined ? null : String(metadata['X-Amz-Meta-Pin']));
  }
  return seen;
}

describe('metadata=true listings show metadata only where the caller may read', { timeout: 120_000 }, () => {
  let talus: TestTalus;
  let owner: Credentials;
  let other: Credentials;
  let otherId: string;

  const put = async (bucket: string, key: string, pin: string, headers: Record<string, string> = {}): Promise<void> => {
    const response = await as(talus.url, owner, 'PUT', `/${bucket}/${key}`, { body: pin, headers: { 'x-amz-meta-pin': pin, ...headers } });
    assert.equal(response.status, 200, response.body);
  };
  const list = async (credentials: Credentials | undefined, bucket: string): Promise<Map<string, string | null>> => {
    const response = await as(talus.url, credentials, 'GET', `/${bucket}`, { query: { 'list-type': '2', metadata: 'true' } });
    assert.equal(response.status, 200, response.body);
    return shown(response.body, 'ListBucketResult');
  };
  const putPolicy = async (bucket: string, statements: unknown[]): Promise<void> => {
    const response = await as(talus.url, owner, 'PUT', `/${bucket}`, { query: { policy: '' }, body: JSON.stringify({ Version: '2012-10-17', Statement: statements }) });
    assert.equal(response.status, 204, response.body);
  };

  before(async () => {
    talus = await startTestTalus();
    ({ owner, other, otherId } = await Principals.withDataDir(talus.dataDir, async (principals) => {
      const made = await principals.addUser('owner');
      const second = await principals.addUser('other');
      return { owner: made.credentials, other: second.credentials, otherId: second.user.canonicalId };
    }));
    for (const credentials of [owner, other]) {
      const client = clientFor(talus.url, credentials);
      assert.equal(await waitForAuth(client, 'accepted'), 'accepted');
      client.destroy();
    }
  });
  after(async () => {
    await talus.stop();
  });

  test('another user: a per-prefix GetObject grant, an object ACL grant and a tag condition open exactly those entries', async () => {
    const bucket = 'meta-authz-prefix';
    assert.equal((await as(talus.url, owner, 'PUT', `/${bucket}`)).status, 200);
    await put(bucket, 'shared/a', 'shared-a');
    await put(bucket, 'shared/b', 'shared-b');
    await put(bucket, 'private/c', 'private-c');
    await put(bucket, 'private/granted', 'granted', { 'x-amz-grant-read': `id="${otherId}"` });
    await put(bucket, 'tagged/yes', 'tagged-yes', { 'x-amz-tagging': 'visibility=public' });
    await put(bucket, 'tagged/no', 'tagged-no', { 'x-amz-tagging': 'visibility=internal' });
    await putPolicy(bucket, [
      { Effect: 'Allow', Principal: { AWS: otherId }, Action: 's3:ListBucket', Resource: `arn:aws:s3:::${bucket}` },
      { Effect: 'Allow', Principal: { AWS: otherId }, Action: 's3:GetObject', Resource: `arn:aws:s3:::${bucket}/shared/*` },
      {
        Effect: 'Allow', Principal: { AWS: otherId }, Action: 's3:GetObject', Resource: `arn:aws:s3:::${bucket}/tagged/*`,
        Condition: { StringEquals: { 's3:ExistingObjectTag/visibility': 'public' } },
      },
    ]);

    const seen = await list(other, bucket);
    assert.deepEqual(Object.fromEntries(seen), {
      'private/c': null,
      'private/granted': 'granted',
      'shared/a': 'shared-a',
      'shared/b': 'shared-b',
      'tagged/no': null,
      'tagged/yes': 'tagged-yes',
    });
    // What the listing shows agrees with what a read of each key is allowed.
    const agreesWithHead = async (credentials: Credentials, listed: Map<string, string | null>): Promise<void> => {
      for (const [key, pin] of listed) {
        const head = await as(talus.url, credentials, 'HEAD', `/${bucket}/${key}`);
        assert.equal(head.status, pin === null ? 403 : 200, key);
      }
    };
    await agreesWithHead(other, seen);
    // Tags are shown with the metadata, and only there.
    const raw = await as(talus.url, other, 'GET', `/${bucket}`, { query: { 'list-type': '2', metadata: 'true', prefix: 'tagged/' } });
    assert.match(raw.body, /<Key>tagged\/yes<\/Key>.*<UserTags>visibility=public<\/UserTags>/s);
    assert.doesNotMatch(raw.body, /visibility=internal/);

    // The owner sees every entry's metadata but one: an ACL of x-amz-grant-read alone gives its owner no READ (as AWS).
    const own = await list(owner, bucket);
    assert.deepEqual([...own].filter(([, pin]) => pin === null).map(([key]) => key), ['private/granted']);
    await agreesWithHead(owner, own);

    // talus scan as the other user: 'auto' finds the one-call listing, and the entries it may not read come
    // without metadata instead of failing the scan.
    const scanned: Record<string, string | null> = {};
    for await (const object of scanObjects({ endpoint: talus.url, bucket, credentials: other, metadata: 'auto' })) {
      scanned[object.key] = object.userMetadata === undefined ? null : (object.userMetadata['pin'] ?? 'none');
    }
    assert.deepEqual(scanned, Object.fromEntries(seen));
  });

  test('the owner: an explicit Deny in the bucket policy hides those entries\' metadata from the owner too', async () => {
    const bucket = 'meta-authz-deny';
    assert.equal((await as(talus.url, owner, 'PUT', `/${bucket}`)).status, 200);
    await put(bucket, 'open', 'open-pin');
    await put(bucket, 'sealed/x', 'sealed-pin');
    await putPolicy(bucket, [{ Effect: 'Deny', Principal: '*', Action: 's3:GetObject', Resource: `arn:aws:s3:::${bucket}/sealed/*` }]);
    assert.deepEqual(Object.fromEntries(await list(owner, bucket)), { open: 'open-pin', 'sealed/x': null });
    assert.equal((await as(talus.url, owner, 'GET', `/${bucket}/sealed/x`)).status, 403);
  });

  test('anonymous on a public-read bucket: metadata of public-read objects only', async () => {
    const bucket = 'meta-authz-public';
    assert.equal((await as(talus.url, owner, 'PUT', `/${bucket}`, { headers: { 'x-amz-acl': 'public-read' } })).status, 200);
    await put(bucket, 'public', 'public-pin', { 'x-amz-acl': 'public-read' });
    await put(bucket, 'private', 'private-pin');
    assert.deepEqual(Object.fromEntries(await list(undefined, bucket)), { private: null, public: 'public-pin' });
    const body = (await as(talus.url, undefined, 'GET', `/${bucket}`, { query: { 'list-type': '2', metadata: 'true' } })).body;
    assert.doesNotMatch(body, /private-pin/);
    // Without metadata=true, nobody gets any.
    const plain = await as(talus.url, owner, 'GET', `/${bucket}`, { query: { 'list-type': '2' } });
    assert.doesNotMatch(plain.body, /<UserMetadata>/);
  });

  test('ListObjectVersions: older versions need s3:GetObjectVersion, the current one s3:GetObject', async () => {
    const bucket = 'meta-authz-versions';
    assert.equal((await as(talus.url, owner, 'PUT', `/${bucket}`)).status, 200);
    const versioning = await as(talus.url, owner, 'PUT', `/${bucket}`, { query: { versioning: '' }, body: '<VersioningConfiguration><Status>Enabled</Status></VersioningConfiguration>' });
    assert.equal(versioning.status, 200, versioning.body);
    await put(bucket, 'doc', 'first');
    await put(bucket, 'doc', 'second');
    const listVersions = async (): Promise<Map<string, string | null>> => {
      const response = await as(talus.url, other, 'GET', `/${bucket}`, { query: { versions: '', metadata: 'true' } });
      assert.equal(response.status, 200, response.body);
      return shown(response.body, 'ListVersionsResult');
    };
    const listBucket = { Effect: 'Allow', Principal: { AWS: otherId }, Action: ['s3:ListBucket', 's3:ListBucketVersions'], Resource: `arn:aws:s3:::${bucket}` };
    await putPolicy(bucket, [listBucket, { Effect: 'Allow', Principal: { AWS: otherId }, Action: 's3:GetObject', Resource: `arn:aws:s3:::${bucket}/*` }]);
    assert.deepEqual(Object.fromEntries(await listVersions()), { 'doc@latest': 'second', 'doc@older': null });
    await putPolicy(bucket, [listBucket, { Effect: 'Allow', Principal: { AWS: otherId }, Action: 's3:GetObjectVersion', Resource: `arn:aws:s3:::${bucket}/*` }]);
    assert.deepEqual(Object.fromEntries(await listVersions()), { 'doc@latest': null, 'doc@older': 'first' });
  });
});
