import assert from 'node:assert/strict';
import { test } from 'node:test';
import { type Acl, expandCannedAcl } from './acl.ts';
import { SERVICE_RESOURCE, type S3Action, bucketArn, missingObjectCheck, objectArn } from './actions.ts';
import { type AuthorizeInput, type BucketAccess, type Decision, type ObjectAccess, type Principal, authorize } from './authorize.ts';
import { type ConditionKeyInput, conditionKeys } from './condition-keys.ts';
import { BUILT_IN_POLICIES, type CompiledPolicy, parsePolicy, principalIdentities } from './policy.ts';
import { isPublicPolicy } from './public-access.ts';

const ROOT_ID = 'root-canonical-id';

function user(name: string, identityPolicy?: CompiledPolicy, keyPolicy?: CompiledPolicy): Principal {
  const canonicalId = `${name}-id`;
  return { kind: 'user', canonicalId, name, identities: principalIdentities(canonicalId, name), identityPolicy, keyPolicy };
}

const root: Principal = { kind: 'root' };
const anonymous: Principal = { kind: 'anonymous' };
const alice = user('alice'); // owns the bucket "alices"
const bob = user('bob');
const reader = user('reader', BUILT_IN_POLICIES.readonly);
const writer = user('writer', BUILT_IN_POLICIES.writeonly);
const admin = user('admin', BUILT_IN_POLICIES.readwrite);
const narrowedAdmin = user('admin', BUILT_IN_POLICIES.readwrite, BUILT_IN_POLICIES.readonly);
const widenedReader = user('reader', BUILT_IN_POLICIES.readonly, BUILT_IN_POLICIES.readwrite);
const fakeRoot: Principal = { kind: 'user', canonicalId: ROOT_ID, name: 'mallory', identities: principalIdentities(ROOT_ID, 'mallory') };

function bucketPolicy(bucket: string, statements: unknown[]): CompiledPolicy {
  return parsePolicy(JSON.stringify({ Version: '2012-10-17', Statement: statements }), { kind: 'bucket', bucket });
}

const ALICE = { id: 'alice-id' };
const aliceBucket: BucketAccess = { owner: 'alice-id' };
const rootBucket: BucketAccess = { owner: ROOT_ID };
const publicReadPolicy = bucketPolicy('alices', [{ Sid: 'PublicRead', Effect: 'Allow', Principal: '*', Action: 's3:GetObject', Resource: 'arn:aws:s3:::alices/*' }]);
const lockedOutPolicy = bucketPolicy('alices', [{ Sid: 'DenyAll', Effect: 'Deny', Principal: '*', Action: 's3:*', Resource: ['arn:aws:s3:::alices', 'arn:aws:s3:::alices/*'] }]);
const bobPolicy = bucketPolicy('alices', [{ Sid: 'Bob', Effect: 'Allow', Principal: { AWS: 'arn:aws:iam::bob-id:root' }, Action: ['s3:GetObject', 's3:PutObject'], Resource: 'arn:aws:s3:::alices/*' }]);
const httpsOnlyPolicy = bucketPolicy('alices', [{ Sid: 'HttpsOnly', Effect: 'Deny', Principal: '*', Action: 's3:*', Resource: 'arn:aws:s3:::alices/*', Condition: { Bool: { 'aws:SecureTransport': 'false' } } }]);
const grantReaderPut = bucketPolicy('alices', [{ Effect: 'Allow', Principal: { AWS: 'reader-id' }, Action: 's3:PutObject', Resource: 'arn:aws:s3:::alices/*' }]);
const emptyOwnerAcl: Acl = { owner: ALICE, grants: [] };
const bobWriteAcl: Acl = { owner: ALICE, grants: [{ grantee: { type: 'CanonicalUser', id: 'bob-id' }, permission: 'WRITE' }] };
const bobReadAcpAcl: Acl = { owner: { id: 'bob-id' }, grants: [{ grantee: { type: 'CanonicalUser', id: 'alice-id' }, permission: 'READ_ACP' }] };
const bobsObject: ObjectAccess = { owner: 'bob-id' };
const block = (fields: Partial<Record<'blockPublicAcls' | 'ignorePublicAcls' | 'blockPublicPolicy' | 'restrictPublicBuckets', boolean>>) => ({
  blockPublicAcls: false, ignorePublicAcls: false, blockPublicPolicy: false, restrictPublicBuckets: false, ...fields,
});

interface Case {
  name: string;
  principal: Principal;
  action: S3Action;
  resource?: string;
  bucket?: BucketAccess;
  object?: ObjectAccess;
  keys?: ConditionKeyInput;
  expected: Decision['reason'];
}

const OBJ = objectArn('alices', 'photo.jpg');
const BKT = bucketArn('alices');

const cases: Case[] = [
  // root
  { name: 'root may do anything', principal: root, action: 's3:DeleteBucket', resource: BKT, bucket: aliceBucket, expected: 'root' },
  { name: 'root is not stopped by a bucket policy deny (MinIO\'s root)', principal: root, action: 's3:GetObject', bucket: { ...aliceBucket, policy: lockedOutPolicy }, expected: 'root' },
  { name: 'a user claiming root\'s canonical ID gains nothing, even on root\'s bucket', principal: fakeRoot, action: 's3:GetObject', resource: objectArn('roots', 'k'), bucket: rootBucket, expected: 'user-claims-root-id' },
  // owner and strangers, no policy, no ACL
  { name: 'the owner reads its object', principal: alice, action: 's3:GetObject', bucket: aliceBucket, object: { owner: 'alice-id' }, expected: 'owner' },
  { name: 'the owner writes', principal: alice, action: 's3:PutObject', bucket: aliceBucket, expected: 'owner' },
  { name: 'the owner lists', principal: alice, action: 's3:ListBucket', resource: BKT, bucket: aliceBucket, expected: 'owner' },
  { name: 'the owner manages versioning', principal: alice, action: 's3:PutBucketVersioning', resource: BKT, bucket: aliceBucket, expected: 'owner' },
  { name: 'the owner reading a missing key gets past authorization (its 404)', principal: alice, action: 's3:GetObject', bucket: aliceBucket, expected: 'owner' },
  { name: 'another user cannot read', principal: bob, action: 's3:GetObject', bucket: aliceBucket, object: { owner: 'alice-id' }, expected: 'no-grant' },
  { name: 'another user cannot read a missing key either (403, not 404)', principal: bob, action: 's3:GetObject', bucket: aliceBucket, expected: 'no-grant' },
  { name: 'another user cannot list', principal: bob, action: 's3:ListBucket', resource: BKT, bucket: aliceBucket, expected: 'no-grant' },
  { name: 'another user cannot write', principal: bob, action: 's3:PutObject', bucket: aliceBucket, expected: 'no-grant' },
  { name: 'another user cannot read the ACL', principal: bob, action: 's3:GetBucketAcl', resource: BKT, bucket: aliceBucket, expected: 'no-grant' },
  { name: 'another user cannot delete the bucket', principal: bob, action: 's3:DeleteBucket', resource: BKT, bucket: aliceBucket, expected: 'no-grant' },
  { name: 'another user cannot read root\'s bucket', principal: bob, action: 's3:GetObject', resource: objectArn('roots', 'k'), bucket: rootBucket, expected: 'no-grant' },
  { name: 'anonymous cannot read', principal: anonymous, action: 's3:GetObject', bucket: aliceBucket, expected: 'no-grant' },
  // account-level
  { name: 'a user lists its own buckets', principal: bob, action: 's3:ListAllMyBuckets', resource: SERVICE_RESOURCE, expected: 'own-account' },
  { name: 'a user creates buckets', principal: bob, action: 's3:CreateBucket', resource: bucketArn('new'), expected: 'own-account' },
  { name: 'anonymous lists buckets: an empty list (ceph/s3-tests)', principal: anonymous, action: 's3:ListAllMyBuckets', resource: SERVICE_RESOURCE, expected: 'anonymous-listing' },
  { name: 'anonymous cannot create buckets', principal: anonymous, action: 's3:CreateBucket', resource: bucketArn('new'), expected: 'no-grant' },
  // built-in identity policies
  { name: 'readonly reads root\'s bucket', principal: reader, action: 's3:GetObject', resource: objectArn('roots', 'k'), bucket: rootBucket, expected: 'identity-policy' },
  { name: 'readonly cannot write root\'s bucket', principal: reader, action: 's3:PutObject', resource: objectArn('roots', 'k'), bucket: rootBucket, expected: 'no-grant' },
  { name: 'readonly cannot delete', principal: reader, action: 's3:DeleteObject', resource: objectArn('roots', 'k'), bucket: rootBucket, expected: 'no-grant' },
  { name: 'readonly cannot create buckets', principal: reader, action: 's3:CreateBucket', resource: bucketArn('new'), expected: 'identity-policy-does-not-allow' },
  { name: 'readonly cannot list (MinIO\'s readonly has GetObject only)', principal: reader, action: 's3:ListBucket', resource: bucketArn('roots'), bucket: rootBucket, expected: 'no-grant' },
  { name: 'writeonly writes', principal: writer, action: 's3:PutObject', bucket: aliceBucket, expected: 'identity-policy' },
  { name: 'writeonly cannot read', principal: writer, action: 's3:GetObject', bucket: aliceBucket, expected: 'no-grant' },
  { name: 'readwrite may do anything on any bucket', principal: admin, action: 's3:DeleteObject', bucket: aliceBucket, expected: 'identity-policy' },
  { name: 'identity and bucket policies are a union: a bucket policy grant adds to readonly', principal: reader, action: 's3:PutObject', bucket: { ...aliceBucket, policy: grantReaderPut }, expected: 'bucket-policy' },
  { name: 'an ACL grant adds to readonly too', principal: reader, action: 's3:PutObject', bucket: { ...aliceBucket, acl: { owner: ALICE, grants: [{ grantee: { type: 'CanonicalUser', id: 'reader-id' }, permission: 'WRITE' }] } }, expected: 'acl' },
  { name: 'a readonly user that owns a bucket keeps the owner\'s rights on it', principal: reader, action: 's3:PutObject', bucket: { owner: 'reader-id' }, expected: 'owner' },
  { name: 'readonly cannot list its buckets (ListAllMyBuckets is not in MinIO\'s readonly)', principal: reader, action: 's3:ListAllMyBuckets', resource: SERVICE_RESOURCE, expected: 'identity-policy-does-not-allow' },
  { name: 'readwrite lists and creates buckets', principal: admin, action: 's3:CreateBucket', resource: bucketArn('new'), expected: 'identity-policy' },
  { name: 'a bucket policy Deny applies to identity-policy users', principal: admin, action: 's3:GetObject', bucket: { ...aliceBucket, policy: httpsOnlyPolicy }, keys: { 'aws:SecureTransport': false }, expected: 'bucket-policy-explicit-deny' },
  { name: '… and not when its condition does not hold', principal: admin, action: 's3:GetObject', bucket: { ...aliceBucket, policy: httpsOnlyPolicy }, keys: { 'aws:SecureTransport': true }, expected: 'identity-policy' },
  // key policies narrow, never widen
  { name: 'a readonly key of a readwrite user cannot write', principal: narrowedAdmin, action: 's3:PutObject', bucket: aliceBucket, expected: 'key-policy-does-not-allow' },
  { name: 'a readonly key of a readwrite user reads', principal: narrowedAdmin, action: 's3:GetObject', bucket: aliceBucket, expected: 'identity-policy' },
  { name: 'a readwrite key of a readonly user still cannot write', principal: widenedReader, action: 's3:PutObject', bucket: aliceBucket, expected: 'no-grant' },
  { name: 'a readwrite key of a readonly user cannot create buckets', principal: widenedReader, action: 's3:CreateBucket', resource: bucketArn('new'), expected: 'identity-policy-does-not-allow' },
  { name: 'a key policy narrows an owner too', principal: user('alice', undefined, BUILT_IN_POLICIES.readonly), action: 's3:PutObject', bucket: aliceBucket, expected: 'key-policy-does-not-allow' },
  { name: 'a key policy narrows root too', principal: { kind: 'root', keyPolicy: BUILT_IN_POLICIES.readonly }, action: 's3:PutObject', bucket: aliceBucket, expected: 'key-policy-does-not-allow' },
  // bucket policies
  { name: 'public-read policy: anonymous reads', principal: anonymous, action: 's3:GetObject', bucket: { ...aliceBucket, policy: publicReadPolicy }, expected: 'bucket-policy' },
  { name: 'public-read policy: anonymous cannot write', principal: anonymous, action: 's3:PutObject', bucket: { ...aliceBucket, policy: publicReadPolicy }, expected: 'no-grant' },
  { name: 'public-read policy: any user reads', principal: bob, action: 's3:GetObject', bucket: { ...aliceBucket, policy: publicReadPolicy }, expected: 'bucket-policy' },
  { name: 'a policy naming bob lets bob write', principal: bob, action: 's3:PutObject', bucket: { ...aliceBucket, policy: bobPolicy }, expected: 'bucket-policy' },
  { name: 'a policy naming bob does nothing for anonymous', principal: anonymous, action: 's3:GetObject', bucket: { ...aliceBucket, policy: bobPolicy }, expected: 'no-grant' },
  { name: 'deny beats the owner\'s own rights', principal: alice, action: 's3:GetObject', bucket: { ...aliceBucket, policy: lockedOutPolicy }, expected: 'bucket-policy-explicit-deny' },
  { name: 'lock-out protection: the owner still puts its policy', principal: alice, action: 's3:PutBucketPolicy', resource: BKT, bucket: { ...aliceBucket, policy: lockedOutPolicy }, expected: 'owner' },
  { name: 'lock-out protection: the owner still reads its policy', principal: alice, action: 's3:GetBucketPolicy', resource: BKT, bucket: { ...aliceBucket, policy: lockedOutPolicy }, expected: 'owner' },
  { name: 'lock-out protection: the owner still deletes its policy', principal: alice, action: 's3:DeleteBucketPolicy', resource: BKT, bucket: { ...aliceBucket, policy: lockedOutPolicy }, expected: 'owner' },
  { name: 'lock-out protection is the owner\'s only', principal: bob, action: 's3:PutBucketPolicy', resource: BKT, bucket: { ...aliceBucket, policy: lockedOutPolicy }, expected: 'bucket-policy-explicit-deny' },
  { name: 'lock-out protection covers the policy actions only', principal: alice, action: 's3:PutBucketAcl', resource: BKT, bucket: { ...aliceBucket, policy: lockedOutPolicy }, expected: 'bucket-policy-explicit-deny' },
  // RestrictPublicBuckets
  { name: 'RestrictPublicBuckets: a public policy no longer serves anonymous', principal: anonymous, action: 's3:GetObject', bucket: { ...aliceBucket, policy: publicReadPolicy, publicAccessBlock: block({ restrictPublicBuckets: true }) }, expected: 'no-grant' },
  { name: 'RestrictPublicBuckets: nor other users', principal: bob, action: 's3:GetObject', bucket: { ...aliceBucket, policy: publicReadPolicy, policyIsPublic: isPublicPolicy(publicReadPolicy), publicAccessBlock: block({ restrictPublicBuckets: true }) }, expected: 'no-grant' },
  { name: 'RestrictPublicBuckets: a non-public policy still works', principal: bob, action: 's3:GetObject', bucket: { ...aliceBucket, policy: bobPolicy, publicAccessBlock: block({ restrictPublicBuckets: true }) }, expected: 'bucket-policy' },
  // ACLs
  { name: 'public-read bucket ACL: anonymous lists', principal: anonymous, action: 's3:ListBucket', resource: BKT, bucket: { ...aliceBucket, acl: expandCannedAcl('public-read', 'bucket', ALICE) }, expected: 'acl' },
  { name: 'public-read bucket ACL does not make objects readable', principal: anonymous, action: 's3:GetObject', bucket: { ...aliceBucket, acl: expandCannedAcl('public-read', 'bucket', ALICE) }, object: { owner: 'alice-id' }, expected: 'no-grant' },
  { name: 'public-read object ACL: anonymous reads', principal: anonymous, action: 's3:GetObject', bucket: aliceBucket, object: { owner: 'alice-id', acl: expandCannedAcl('public-read', 'object', ALICE) }, expected: 'acl' },
  { name: 'public-read object ACL: users read (AllUsers includes them)', principal: bob, action: 's3:GetObject', bucket: aliceBucket, object: { owner: 'alice-id', acl: expandCannedAcl('public-read', 'object', ALICE) }, expected: 'acl' },
  { name: 'public-read object ACL: not its ACL', principal: bob, action: 's3:GetObjectAcl', bucket: aliceBucket, object: { owner: 'alice-id', acl: expandCannedAcl('public-read', 'object', ALICE) }, expected: 'no-grant' },
  { name: 'authenticated-read: a user reads', principal: bob, action: 's3:GetObject', bucket: aliceBucket, object: { owner: 'alice-id', acl: expandCannedAcl('authenticated-read', 'object', ALICE) }, expected: 'acl' },
  { name: 'authenticated-read: anonymous does not', principal: anonymous, action: 's3:GetObject', bucket: aliceBucket, object: { owner: 'alice-id', acl: expandCannedAcl('authenticated-read', 'object', ALICE) }, expected: 'no-grant' },
  { name: 'public-read-write bucket: anonymous writes', principal: anonymous, action: 's3:PutObject', bucket: { ...aliceBucket, acl: expandCannedAcl('public-read-write', 'bucket', ALICE) }, expected: 'acl' },
  { name: 'public-read-write bucket: anonymous deletes', principal: anonymous, action: 's3:DeleteObject', bucket: { ...aliceBucket, acl: expandCannedAcl('public-read-write', 'bucket', ALICE) }, expected: 'acl' },
  { name: 'IgnorePublicAcls: public grants count for nothing', principal: anonymous, action: 's3:PutObject', bucket: { ...aliceBucket, acl: expandCannedAcl('public-read-write', 'bucket', ALICE), publicAccessBlock: block({ ignorePublicAcls: true }) }, expected: 'no-grant' },
  { name: 'bucket WRITE granted to bob: bob writes', principal: bob, action: 's3:PutObject', bucket: { ...aliceBucket, acl: bobWriteAcl }, expected: 'acl' },
  { name: 'bucket WRITE granted to bob: bob aborts uploads', principal: bob, action: 's3:AbortMultipartUpload', bucket: { ...aliceBucket, acl: bobWriteAcl }, expected: 'acl' },
  { name: 'bucket WRITE does not give DeleteObjectVersion to a non-owner (AWS)', principal: bob, action: 's3:DeleteObjectVersion', bucket: { ...aliceBucket, acl: bobWriteAcl }, expected: 'no-grant' },
  { name: 'bucket WRITE does not let bob list', principal: bob, action: 's3:ListBucket', resource: BKT, bucket: { ...aliceBucket, acl: bobWriteAcl }, expected: 'no-grant' },
  { name: 'an owner that removed its own grants cannot list', principal: alice, action: 's3:ListBucket', resource: BKT, bucket: { ...aliceBucket, acl: emptyOwnerAcl }, expected: 'no-grant' },
  { name: '… but keeps READ_ACP', principal: alice, action: 's3:GetBucketAcl', resource: BKT, bucket: { ...aliceBucket, acl: emptyOwnerAcl }, expected: 'owner' },
  { name: '… and WRITE_ACP', principal: alice, action: 's3:PutBucketAcl', resource: BKT, bucket: { ...aliceBucket, acl: emptyOwnerAcl }, expected: 'owner' },
  { name: '… and the owner-only actions', principal: alice, action: 's3:GetBucketVersioning', resource: BKT, bucket: { ...aliceBucket, acl: emptyOwnerAcl }, expected: 'owner' },
  // objects written by someone else (ObjectWriter, the default)
  { name: 'bob\'s object in alice\'s bucket: bob reads it', principal: bob, action: 's3:GetObject', bucket: aliceBucket, object: bobsObject, expected: 'owner' },
  { name: 'bob\'s object: alice (bucket owner) cannot read it (AWS)', principal: alice, action: 's3:GetObject', bucket: aliceBucket, object: bobsObject, expected: 'no-grant' },
  { name: 'bob\'s object: alice may delete it (bucket WRITE)', principal: alice, action: 's3:DeleteObject', bucket: aliceBucket, object: bobsObject, expected: 'owner' },
  { name: 'bob\'s object: bob tags it (object owner)', principal: bob, action: 's3:PutObjectTagging', bucket: aliceBucket, object: bobsObject, expected: 'owner' },
  { name: 'bob\'s object: alice cannot tag it', principal: alice, action: 's3:PutObjectTagging', bucket: aliceBucket, object: bobsObject, expected: 'no-grant' },
  { name: 'bob\'s object: READ_ACP granted to alice', principal: alice, action: 's3:GetObjectAcl', bucket: aliceBucket, object: { owner: 'bob-id', acl: bobReadAcpAcl }, expected: 'acl' },
  { name: 'bob\'s object: the object owner keeps READ_ACP', principal: bob, action: 's3:GetObjectAcl', bucket: aliceBucket, object: { owner: 'bob-id', acl: bobReadAcpAcl }, expected: 'owner' },
  { name: 'bucket-owner-full-control: alice reads bob\'s object', principal: alice, action: 's3:GetObject', bucket: aliceBucket, object: { owner: 'bob-id', acl: expandCannedAcl('bucket-owner-full-control', 'object', { id: 'bob-id' }, ALICE) }, expected: 'acl' },
  // BucketOwnerEnforced: ACLs disabled
  { name: 'ACLs disabled: a public-read object ACL grants nothing', principal: anonymous, action: 's3:GetObject', bucket: { ...aliceBucket, ownership: 'BucketOwnerEnforced' }, object: { owner: 'alice-id', acl: expandCannedAcl('public-read', 'object', ALICE) }, expected: 'no-grant' },
  { name: 'ACLs disabled: the bucket owner reads bob\'s object', principal: alice, action: 's3:GetObject', bucket: { ...aliceBucket, ownership: 'BucketOwnerEnforced' }, object: bobsObject, expected: 'owner' },
  { name: 'ACLs disabled: bob no longer reads his object', principal: bob, action: 's3:GetObject', bucket: { ...aliceBucket, ownership: 'BucketOwnerEnforced' }, object: bobsObject, expected: 'no-grant' },
  { name: 'ACLs disabled: a bucket policy still grants', principal: anonymous, action: 's3:GetObject', bucket: { ...aliceBucket, ownership: 'BucketOwnerEnforced', policy: publicReadPolicy }, expected: 'bucket-policy' },
  { name: 'BucketOwnerPreferred keeps ACLs', principal: anonymous, action: 's3:GetObject', bucket: { ...aliceBucket, ownership: 'BucketOwnerPreferred' }, object: { owner: 'alice-id', acl: expandCannedAcl('public-read', 'object', ALICE) }, expected: 'acl' },
  // copies read the source with the caller's rights
  { name: 'a copy\'s source check: bob cannot read alice\'s source', principal: bob, action: 's3:GetObject', resource: objectArn('alices', 'src'), bucket: aliceBucket, object: { owner: 'alice-id' }, expected: 'no-grant' },
];

for (const testCase of cases) {
  test(`authorize: ${testCase.name}`, () => {
    const input: AuthorizeInput = {
      principal: testCase.principal,
      action: testCase.action,
      resource: testCase.resource ?? OBJ,
      bucket: testCase.bucket,
      object: testCase.object,
      keys: conditionKeys(testCase.keys ?? {}),
      rootCanonicalId: ROOT_ID,
    };
    const decision = authorize(input);
    assert.equal(decision.reason, testCase.expected);
    assert.equal(decision.allowed, ['root', 'identity-policy', 'bucket-policy', 'owner', 'acl', 'own-account', 'anonymous-listing'].includes(testCase.expected));
  });
}

test('authorize names the deciding statement', () => {
  const decision = authorize({ principal: alice, action: 's3:GetObject', resource: OBJ, bucket: { ...aliceBucket, policy: lockedOutPolicy }, keys: conditionKeys({}), rootCanonicalId: ROOT_ID });
  assert.deepEqual(decision, { allowed: false, reason: 'bucket-policy-explicit-deny', sid: 'DenyAll' });
});

test('a missing key: 404 for those who may list it (s3:prefix = the key), 403 for others (test_head_object_404_with_policy_prefix)', () => {
  const policy = bucketPolicy('alices', [{ Effect: 'Allow', Principal: { AWS: '*' }, Action: 's3:ListBucket', Resource: 'arn:aws:s3:::alices', Condition: { StringLike: { 's3:prefix': 'public/*' } } }]);
  const answer = (principal: Principal, key: string) => {
    const check = missingObjectCheck('alices', key);
    return authorize({ principal, action: check.action, resource: check.resource, bucket: { ...aliceBucket, policy }, keys: conditionKeys({ 's3:prefix': key }), rootCanonicalId: ROOT_ID });
  };
  assert.equal(answer(bob, 'public/object').allowed, true);
  assert.equal(answer(bob, 'private/object').allowed, false);
  assert.equal(answer(anonymous, 'public/object').allowed, true);
  assert.equal(answer(alice, 'private/object').reason, 'owner');
});
