import assert from 'node:assert/strict';
import { test } from 'node:test';
import { requiredChecks } from './actions.ts';
import { type BucketAccess, type Principal, authorizeAll } from './authorize.ts';
import { parsePolicy, principalIdentities } from './policy.ts';
import { type RequestFacts, copySourceConditionValue, requestConditionKeys } from './request-keys.ts';

const ROOT_ID = 'root-id';
const alt: Principal = { kind: 'user', canonicalId: 'alt-id', name: 'alt', identities: principalIdentities('alt-id', 'alt') };

function facts(overrides: Partial<RequestFacts>): RequestFacts {
  return {
    sourceIp: '192.0.2.7', secureTransport: false, nowMs: Date.parse('2026-12-06T07:00:00Z'), headers: {}, query: new Map(), principal: alt, ...overrides,
  };
}

test('standard keys and their formats', () => {
  const keys = requestConditionKeys(facts({
    headers: { referer: 'http://www.example.com/', 'x-amz-acl': 'public-read', 'x-amz-copy-source': '/src%20bucket/a%2Fb.txt?versionId=v1', 'x-amz-grant-full-control': 'id=root-id' },
    query: new Map([['prefix', 'home/'], ['max-keys', '10'], ['versionId', 'v9']]),
    existingObjectTags: [{ key: 'Security', value: 'public' }],
    requestObjectTags: [{ key: 'project', value: 'x' }, { key: 'cost', value: 'y' }],
    authType: 'REST-QUERY-STRING',
  }));
  assert.deepEqual(keys.get('aws:sourceip'), ['192.0.2.7']);
  assert.deepEqual(keys.get('aws:securetransport'), ['false']);
  assert.deepEqual(keys.get('aws:currenttime'), ['2026-12-06T07:00:00.000Z']);
  assert.deepEqual(keys.get('aws:epochtime'), ['1796540400']);
  assert.deepEqual(keys.get('aws:referer'), ['http://www.example.com/']);
  assert.deepEqual(keys.get('aws:username'), ['alt']);
  assert.deepEqual(keys.get('aws:userid'), ['alt-id']);
  assert.deepEqual(keys.get('s3:x-amz-acl'), ['public-read']);
  assert.deepEqual(keys.get('s3:x-amz-grant-full-control'), ['id=root-id']);
  assert.deepEqual(keys.get('s3:x-amz-copy-source'), ['src bucket/a/b.txt']);
  assert.deepEqual(keys.get('s3:prefix'), ['home/']);
  assert.deepEqual(keys.get('s3:max-keys'), ['10']);
  assert.equal(keys.get('s3:delimiter'), undefined, 'absent when not sent');
  assert.deepEqual(keys.get('s3:versionid'), ['v9']);
  assert.deepEqual(keys.get('s3:existingobjecttag/security'), ['public']);
  assert.deepEqual(keys.get('s3:requestobjecttagkeys'), ['project', 'cost']);
  assert.deepEqual(keys.get('s3:authtype'), ['REST-QUERY-STRING']);
  assert.equal(requestConditionKeys(facts({ principal: { kind: 'anonymous' } })).get('aws:username'), undefined);
});

test('copy source forms', () => {
  assert.equal(copySourceConditionValue('bucket/public/foo'), 'bucket/public/foo');
  assert.equal(copySourceConditionValue('/bucket/public/foo?versionId=3'), 'bucket/public/foo');
  assert.equal(copySourceConditionValue('bucket/%E2%82%AC'), 'bucket/€');
  assert.equal(copySourceConditionValue('bucket/%zz'), 'bucket/%zz');
});

// ceph/s3-tests scenarios, end to end: the policy as the suite writes it, the keys as a request carries them.
function bucketWith(name: string, statements: unknown[]): BucketAccess {
  return { owner: ROOT_ID, policy: parsePolicy(JSON.stringify({ Version: '2012-10-17', Statement: statements }), { kind: 'bucket', bucket: name }) };
}

test('test_bucket_policy_put_obj_copy_source: PutObject allowed only when copying from public/*', () => {
  const source = bucketWith('src', [{ Effect: 'Allow', Principal: { AWS: '*' }, Action: 's3:GetObject', Resource: 'arn:aws:s3:::src/*' }]);
  const destination = bucketWith('dst', [{ Effect: 'Allow', Principal: { AWS: '*' }, Action: 's3:PutObject', Resource: 'arn:aws:s3:::dst/*', Condition: { StringLike: { 's3:x-amz-copy-source': 'src/public/*' } } }]);
  const copy = (key: string) => authorizeAll(
    requiredChecks('CopyObject', { bucket: 'dst', key: 'new', copySource: { bucket: 'src', key } }),
    { principal: alt, rootCanonicalId: ROOT_ID, keys: requestConditionKeys(facts({ headers: { 'x-amz-copy-source': `src/${key}` } })) },
    (check) => ({ bucket: check.side === 'source' ? source : destination, object: check.side === 'source' ? { owner: ROOT_ID } : undefined }),
  );
  assert.equal(copy('public/foo').allowed, true);
  assert.equal(copy('private/foo').allowed, false);
});

test('test_bucket_policy_upload_part_copy: the source is checked like CopyObject', () => {
  const source = bucketWith('src', [{ Effect: 'Allow', Principal: { AWS: '*' }, Action: 's3:GetObject', Resource: 'arn:aws:s3:::src/public/*' }]);
  const altsBucket: BucketAccess = { owner: 'alt-id' };
  const partCopy = (key: string) => authorizeAll(
    requiredChecks('UploadPartCopy', { bucket: 'altbucket', key: 'new', copySource: { bucket: 'src', key } }),
    { principal: alt, rootCanonicalId: ROOT_ID, keys: requestConditionKeys(facts({})) },
    (check) => (check.side === 'source' ? { bucket: source, object: { owner: ROOT_ID } } : { bucket: altsBucket }),
  );
  assert.equal(partCopy('public/foo').allowed, true);
  const denied = partCopy('private/foo');
  assert.equal(denied.allowed, false);
  assert.equal(denied.reason, 'no-grant');
});

test('test_bucket_policy_put_obj_grant: PutObject with x-amz-grant-full-control as the condition demands', () => {
  const bucket = bucketWith('b', [{ Effect: 'Allow', Principal: { AWS: '*' }, Action: 's3:PutObject', Resource: 'arn:aws:s3:::b/*', Condition: { StringEquals: { 's3:x-amz-grant-full-control': `id=${ROOT_ID}` } } }]);
  const put = (headers: Record<string, string>) => authorizeAll(
    requiredChecks('PutObject', { bucket: 'b', key: 'k', setsAcl: Object.keys(headers).length > 0 }),
    { principal: alt, rootCanonicalId: ROOT_ID, keys: requestConditionKeys(facts({ headers })) },
    () => ({ bucket }),
  );
  assert.equal(put({ 'x-amz-grant-full-control': `id=${ROOT_ID}` }).allowed, true);
  assert.equal(put({}).allowed, false);
});

test('test_bucket_policy_put_obj_copy_source_meta: x-amz-metadata-directive must be COPY', () => {
  const bucket = bucketWith('b', [{ Effect: 'Allow', Principal: { AWS: '*' }, Action: 's3:PutObject', Resource: 'arn:aws:s3:::b/*', Condition: { StringEquals: { 's3:x-amz-metadata-directive': 'COPY' } } }]);
  const put = (headers: Record<string, string>) => authorizeAll(requiredChecks('PutObject', { bucket: 'b', key: 'k' }), { principal: alt, rootCanonicalId: ROOT_ID, keys: requestConditionKeys(facts({ headers })) }, () => ({ bucket })).allowed;
  assert.equal(put({ 'x-amz-metadata-directive': 'COPY' }), true);
  assert.equal(put({}), false);
});

test('test_bucket_policy_get_obj_existing_tag: only objects tagged security=public', () => {
  const bucket = bucketWith('b', [{ Effect: 'Allow', Principal: { AWS: '*' }, Action: 's3:GetObject', Resource: 'arn:aws:s3:::b/*', Condition: { StringEquals: { 's3:ExistingObjectTag/security': 'public' } } }]);
  const get = (tags: { key: string; value: string }[]) => authorizeAll(requiredChecks('GetObject', { bucket: 'b', key: 'k' }), { principal: alt, rootCanonicalId: ROOT_ID, keys: requestConditionKeys(facts({ existingObjectTags: tags })) }, () => ({ bucket, object: { owner: ROOT_ID } })).allowed;
  assert.equal(get([{ key: 'security', value: 'public' }, { key: 'foo', value: 'bar' }]), true);
  assert.equal(get([{ key: 'security', value: 'private' }]), false);
  assert.equal(get([{ key: 'security1', value: 'public' }]), false);
});

test('test_bucket_policy_set_condition_operator_end_with_IfExists: referer pattern, or no referer', () => {
  const bucket = bucketWith('b', [{ Sid: 'Allow Public Access to All Objects', Effect: 'Allow', Principal: '*', Action: 's3:GetObject', Resource: 'arn:aws:s3:::b/*', Condition: { StringLikeIfExists: { 'aws:Referer': 'http://www.example.com/*' } } }]);
  const get = (headers: Record<string, string>) => authorizeAll(requiredChecks('GetObject', { bucket: 'b', key: 'foo' }), { principal: alt, rootCanonicalId: ROOT_ID, keys: requestConditionKeys(facts({ headers })) }, () => ({ bucket, object: { owner: ROOT_ID } })).allowed;
  assert.equal(get({ referer: 'http://www.example.com/' }), true);
  assert.equal(get({ referer: 'http://www.example.com/index.html' }), true);
  assert.equal(get({}), true);
  assert.equal(get({ referer: 'http://example.com' }), false);
});

test('authorizeAll: the first denial decides', () => {
  const decision = authorizeAll(
    requiredChecks('CopyObject', { bucket: 'mine', key: 'k', copySource: { bucket: 'theirs', key: 'k' } }),
    { principal: alt, rootCanonicalId: ROOT_ID, keys: requestConditionKeys(facts({})) },
    (check) => (check.side === 'source' ? { bucket: { owner: ROOT_ID }, object: { owner: ROOT_ID } } : { bucket: { owner: 'alt-id' } }),
  );
  assert.deepEqual(decision, { allowed: false, reason: 'no-grant' });
});
