import assert from 'node:assert/strict';
import { test } from 'node:test';
import { type CannedAcl, expandCannedAcl } from './acl.ts';
import { AuthzError } from './errors.ts';
import {
  checkAclAllowed, checkOwnershipChange, objectOwnerForWrite, parseObjectOwnershipHeader, parseOwnershipControls, renderOwnershipControls,
} from './ownership.ts';
import { parsePolicy } from './policy.ts';
import { bucketIsPublic, checkAclWrite, checkPolicyWrite, isPublicPolicy, parsePublicAccessBlock, renderPolicyStatus, renderPublicAccessBlock } from './public-access.ts';

const BUCKET_OWNER = { id: 'bucket-owner' };
const WRITER = { id: 'writer' };

function code(fn: () => unknown): string | undefined {
  try {
    fn();
    return undefined;
  } catch (error) {
    assert.ok(error instanceof AuthzError, String(error));
    return error.code;
  }
}

// ------------------------------------------------------------ ownership controls

test('OwnershipControls XML round trip, as AWS renders it', () => {
  for (const ownership of ['BucketOwnerEnforced', 'BucketOwnerPreferred', 'ObjectWriter'] as const) {
    const xml = renderOwnershipControls(ownership);
    assert.equal(xml, `<?xml version="1.0" encoding="UTF-8"?>\n<OwnershipControls xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Rule><ObjectOwnership>${ownership}</ObjectOwnership></Rule></OwnershipControls>`);
    assert.equal(parseOwnershipControls(xml), ownership);
  }
});

for (const [name, xml] of [
  ['no rule', '<OwnershipControls></OwnershipControls>'],
  ['two rules', '<OwnershipControls><Rule><ObjectOwnership>ObjectWriter</ObjectOwnership></Rule><Rule><ObjectOwnership>ObjectWriter</ObjectOwnership></Rule></OwnershipControls>'],
  ['unknown value', '<OwnershipControls><Rule><ObjectOwnership>Whoever</ObjectOwnership></Rule></OwnershipControls>'],
  ['not XML', '<OwnershipControls>'],
] as const) {
  test(`OwnershipControls refused: ${name}`, () => assert.equal(code(() => parseOwnershipControls(xml)), 'MalformedXML'));
}

test('x-amz-object-ownership header', () => {
  assert.equal(parseObjectOwnershipHeader('BucketOwnerPreferred'), 'BucketOwnerPreferred');
  assert.equal(code(() => parseObjectOwnershipHeader('bucketownerenforced')), 'InvalidArgument');
});

test('BucketOwnerEnforced: only no ACL, bucket-owner-full-control or its XML equivalent (ceph/s3-tests ownership tests)', () => {
  const enforced = 'BucketOwnerEnforced';
  const canned = (name: CannedAcl, owner = BUCKET_OWNER) => ({ canned: name, acl: expandCannedAcl(name, 'object', owner, BUCKET_OWNER) });
  assert.equal(code(() => checkAclAllowed(enforced, undefined, BUCKET_OWNER.id)), undefined);
  assert.equal(code(() => checkAclAllowed(enforced, canned('bucket-owner-full-control', WRITER), BUCKET_OWNER.id)), undefined);
  assert.equal(code(() => checkAclAllowed(enforced, canned('private'), BUCKET_OWNER.id)), 'AccessControlListNotSupported');
  assert.equal(code(() => checkAclAllowed(enforced, canned('public-read'), BUCKET_OWNER.id)), 'AccessControlListNotSupported');
  // Explicit grants: accepted only when they amount to bucket-owner-full-control.
  assert.equal(code(() => checkAclAllowed(enforced, { acl: { owner: BUCKET_OWNER, grants: [{ grantee: { type: 'CanonicalUser', id: BUCKET_OWNER.id }, permission: 'FULL_CONTROL' }] } }, BUCKET_OWNER.id)), undefined);
  assert.equal(code(() => checkAclAllowed(enforced, { acl: expandCannedAcl('bucket-owner-full-control', 'object', WRITER, BUCKET_OWNER) }, BUCKET_OWNER.id)), 'AccessControlListNotSupported');
  // CreateBucket with x-amz-object-ownership BucketOwnerEnforced: private is fine, anything public is not.
  assert.equal(code(() => checkAclAllowed(enforced, canned('private'), BUCKET_OWNER.id, 'CreateBucket')), undefined);
  assert.equal(code(() => checkAclAllowed(enforced, canned('public-read'), BUCKET_OWNER.id, 'CreateBucket')), 'InvalidBucketAclWithObjectOwnership');
  // ACLs enabled: anything goes (the public access block is a separate check).
  assert.equal(code(() => checkAclAllowed('ObjectWriter', canned('public-read', WRITER), BUCKET_OWNER.id)), undefined);
  assert.equal(code(() => checkAclAllowed('BucketOwnerPreferred', canned('private', WRITER), BUCKET_OWNER.id)), undefined);
  assert.equal(code(() => checkAclAllowed(undefined, canned('public-read', WRITER), BUCKET_OWNER.id)), undefined);
});

test('BucketOwnerEnforced cannot be set while the bucket ACL grants others', () => {
  assert.equal(code(() => checkOwnershipChange('BucketOwnerEnforced', expandCannedAcl('public-read', 'bucket', BUCKET_OWNER), BUCKET_OWNER.id)), 'InvalidBucketAclWithObjectOwnership');
  assert.equal(code(() => checkOwnershipChange('BucketOwnerEnforced', expandCannedAcl('private', 'bucket', BUCKET_OWNER), BUCKET_OWNER.id)), undefined);
  assert.equal(code(() => checkOwnershipChange('ObjectWriter', expandCannedAcl('public-read', 'bucket', BUCKET_OWNER), BUCKET_OWNER.id)), undefined);
});

test('who owns a new object', () => {
  assert.equal(objectOwnerForWrite('BucketOwnerEnforced', BUCKET_OWNER, WRITER, undefined), BUCKET_OWNER);
  assert.equal(objectOwnerForWrite('BucketOwnerPreferred', BUCKET_OWNER, WRITER, 'bucket-owner-full-control'), BUCKET_OWNER);
  assert.equal(objectOwnerForWrite('BucketOwnerPreferred', BUCKET_OWNER, WRITER, 'private'), WRITER);
  assert.equal(objectOwnerForWrite('ObjectWriter', BUCKET_OWNER, WRITER, 'bucket-owner-full-control'), WRITER);
  assert.equal(objectOwnerForWrite(undefined, BUCKET_OWNER, WRITER, undefined), WRITER);
});

// ------------------------------------------------------------ public access block

test('PublicAccessBlock XML: absent elements are false; round trip', () => {
  const config = parsePublicAccessBlock('<PublicAccessBlockConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><BlockPublicAcls>TRUE</BlockPublicAcls><RestrictPublicBuckets>true</RestrictPublicBuckets></PublicAccessBlockConfiguration>');
  assert.deepEqual(config, { blockPublicAcls: true, ignorePublicAcls: false, blockPublicPolicy: false, restrictPublicBuckets: true });
  assert.equal(renderPublicAccessBlock(config), '<?xml version="1.0" encoding="UTF-8"?>\n<PublicAccessBlockConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><BlockPublicAcls>true</BlockPublicAcls><IgnorePublicAcls>false</IgnorePublicAcls><BlockPublicPolicy>false</BlockPublicPolicy><RestrictPublicBuckets>true</RestrictPublicBuckets></PublicAccessBlockConfiguration>');
  assert.deepEqual(parsePublicAccessBlock(renderPublicAccessBlock(config)), config);
});

test('PublicAccessBlock refused: a value other than true/false, an unknown element', () => {
  assert.equal(code(() => parsePublicAccessBlock('<PublicAccessBlockConfiguration><BlockPublicAcls>yes</BlockPublicAcls></PublicAccessBlockConfiguration>')), 'MalformedXML');
  assert.equal(code(() => parsePublicAccessBlock('<PublicAccessBlockConfiguration><BlockEverything>true</BlockEverything></PublicAccessBlockConfiguration>')), 'MalformedXML');
});

test('BlockPublicAcls refuses public ACLs only', () => {
  const block = { blockPublicAcls: true, ignorePublicAcls: false, blockPublicPolicy: false, restrictPublicBuckets: false };
  const requested = (name: CannedAcl) => ({ canned: name, acl: expandCannedAcl(name, 'object', WRITER) });
  assert.equal(code(() => checkAclWrite(block, requested('public-read'))), 'AccessDenied');
  assert.equal(code(() => checkAclWrite(block, requested('public-read-write'))), 'AccessDenied');
  assert.equal(code(() => checkAclWrite(block, requested('authenticated-read'))), 'AccessDenied');
  assert.equal(code(() => checkAclWrite(block, requested('private'))), undefined);
  assert.equal(code(() => checkAclWrite(block, undefined)), undefined);
  assert.equal(code(() => checkAclWrite(undefined, requested('public-read'))), undefined);
});

function policy(statement: Record<string, unknown>) {
  return parsePolicy(JSON.stringify({ Version: '2012-10-17', Statement: [{ Effect: 'Allow', Resource: 'arn:aws:s3:::b/*', Action: 's3:GetObject', ...statement }] }), { kind: 'bucket', bucket: 'b' });
}

const publicCases: [string, Record<string, unknown>, boolean][] = [
  ['Principal "*"', { Principal: '*' }, true],
  ['Principal {"AWS":"*"}', { Principal: { AWS: '*' } }, true],
  ['a named principal', { Principal: { AWS: 'arn:aws:iam::alt-id:root' } }, false],
  ['a Deny for everyone', { Principal: '*', Effect: 'Deny' }, false],
  ['a tenant ARN (ceph/s3-tests)', { Principal: { AWS: 'arn:aws:iam::s3tenant1:root' }, Action: 's3:ListBucket', Resource: ['arn:aws:s3:::b', 'arn:aws:s3:::b/*'] }, false],
  ['a /32 range (ceph/s3-tests)', { Principal: { AWS: '*' }, Action: 's3:ListBucket', Resource: 'arn:aws:s3:::b', Condition: { IpAddress: { 'aws:SourceIp': '10.0.0.0/32' } } }, false],
  ['ListBucket for everyone (ceph/s3-tests)', { Principal: { AWS: '*' }, Action: 's3:ListBucket', Resource: 'arn:aws:s3:::b' }, true],
  ['restricted to a CIDR', { Principal: '*', Condition: { IpAddress: { 'aws:SourceIp': '192.0.2.0/24' } } }, false],
  ['restricted to 0.0.0.0/0', { Principal: '*', Condition: { IpAddress: { 'aws:SourceIp': '0.0.0.0/0' } } }, true],
  ['a fixed aws:SourceArn', { Principal: '*', Condition: { ArnEquals: { 'aws:SourceArn': 'arn:aws:s3:::logs' } } }, false],
  ['a wildcard aws:SourceArn', { Principal: '*', Condition: { ArnLike: { 'aws:SourceArn': 'arn:aws:s3:::*' } } }, true],
  ['a fixed aws:SourceVpc', { Principal: '*', Condition: { StringEquals: { 'aws:SourceVpc': 'vpc-1' } } }, false],
  ['an IfExists condition', { Principal: '*', Condition: { StringEqualsIfExists: { 'aws:SourceAccount': '1234' } } }, true],
  ['a condition on a key anyone sets (Referer)', { Principal: '*', Condition: { StringEquals: { 'aws:Referer': 'https://example.com/' } } }, true],
  ['only a non-exposing action', { Principal: '*', Action: 's3:CreateBucket', Resource: 'arn:aws:s3:::b' }, false],
];
for (const [name, statement, expected] of publicCases) {
  test(`public policy? ${name} → ${expected}`, () => {
    const compiled = policy(statement);
    assert.equal(isPublicPolicy(compiled), expected);
    const block = { blockPublicAcls: false, ignorePublicAcls: false, blockPublicPolicy: true, restrictPublicBuckets: false };
    assert.equal(code(() => checkPolicyWrite(block, compiled)), expected ? 'AccessDenied' : undefined);
  });
}

test('IsPublic counts a public bucket ACL too (ceph/s3-tests), unless IgnorePublicAcls', () => {
  assert.equal(bucketIsPublic(undefined, undefined), false);
  assert.equal(bucketIsPublic(undefined, expandCannedAcl('private', 'bucket', BUCKET_OWNER)), false);
  assert.equal(bucketIsPublic(undefined, expandCannedAcl('public-read', 'bucket', BUCKET_OWNER)), true);
  assert.equal(bucketIsPublic(undefined, expandCannedAcl('authenticated-read', 'bucket', BUCKET_OWNER)), true);
  assert.equal(bucketIsPublic(undefined, expandCannedAcl('public-read', 'bucket', BUCKET_OWNER), { blockPublicAcls: false, ignorePublicAcls: true, blockPublicPolicy: false, restrictPublicBuckets: false }), false);
  assert.equal(bucketIsPublic(policy({ Principal: '*' }), undefined), true);
});

test('GetBucketPolicyStatus body', () => {
  assert.equal(renderPolicyStatus(true), '<?xml version="1.0" encoding="UTF-8"?>\n<PolicyStatus xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><IsPublic>true</IsPublic></PolicyStatus>');
});
