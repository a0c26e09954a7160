import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { S3Operation } from '../http/route.ts';
import { ACTION_ACL, ACTION_KINDS, type AuthzOperation, OPERATION_ACTIONS, SERVICE_RESOURCE, requiredChecks } from './actions.ts';

// Compile-time: every operation the router knows has an entry (a new route without one fails tsc).
const routed: Record<Exclude<S3Operation, 'NotImplemented'>, unknown> = OPERATION_ACTIONS satisfies Record<AuthzOperation, unknown>;

test('every routed operation maps to known actions of the right kind', () => {
  for (const [operation, rule] of Object.entries(routed as typeof OPERATION_ACTIONS)) {
    assert.equal(ACTION_KINDS.get(rule.action), rule.kind, `${operation}: ${rule.action}`);
    if (rule.versioned !== undefined) assert.equal(ACTION_KINDS.get(rule.versioned), rule.kind, `${operation}: ${rule.versioned}`);
  }
  for (const action of ACTION_ACL.keys()) assert.ok(ACTION_KINDS.has(action), action);
});

const cases: [string, AuthzOperation, Parameters<typeof requiredChecks>[1], [string, string, string][]][] = [
  ['ListBuckets', 'ListBuckets', { bucket: '' }, [['s3:ListAllMyBuckets', SERVICE_RESOURCE, 'target']]],
  ['CreateBucket', 'CreateBucket', { bucket: 'b' }, [['s3:CreateBucket', 'arn:aws:s3:::b', 'target']]],
  ['CreateBucket with an ACL and ownership', 'CreateBucket', { bucket: 'b', setsAcl: true, setsObjectOwnership: true }, [
    ['s3:CreateBucket', 'arn:aws:s3:::b', 'target'], ['s3:PutBucketAcl', 'arn:aws:s3:::b', 'target'], ['s3:PutBucketOwnershipControls', 'arn:aws:s3:::b', 'target']]],
  ['HeadBucket is ListBucket', 'HeadBucket', { bucket: 'b' }, [['s3:ListBucket', 'arn:aws:s3:::b', 'target']]],
  ['ListObjectsV2', 'ListObjectsV2', { bucket: 'b' }, [['s3:ListBucket', 'arn:aws:s3:::b', 'target']]],
  ['ListObjectVersions', 'ListObjectVersions', { bucket: 'b' }, [['s3:ListBucketVersions', 'arn:aws:s3:::b', 'target']]],
  ['ListMultipartUploads', 'ListMultipartUploads', { bucket: 'b' }, [['s3:ListBucketMultipartUploads', 'arn:aws:s3:::b', 'target']]],
  ['DeleteBucketTagging is PutBucketTagging', 'DeleteBucketTagging', { bucket: 'b' }, [['s3:PutBucketTagging', 'arn:aws:s3:::b', 'target']]],
  ['GetObject', 'GetObject', { bucket: 'b', key: 'k/1' }, [['s3:GetObject', 'arn:aws:s3:::b/k/1', 'target']]],
  ['GetObject of a version', 'GetObject', { bucket: 'b', key: 'k', versionId: 'v1' }, [['s3:GetObjectVersion', 'arn:aws:s3:::b/k', 'target']]],
  ['HeadObject is GetObject', 'HeadObject', { bucket: 'b', key: 'k' }, [['s3:GetObject', 'arn:aws:s3:::b/k', 'target']]],
  ['DeleteObject of a version', 'DeleteObject', { bucket: 'b', key: 'k', versionId: 'v' }, [['s3:DeleteObjectVersion', 'arn:aws:s3:::b/k', 'target']]],
  ['PutObject with ACL headers needs PutObject only (ceph/s3-tests), with tagging also PutObjectTagging', 'PutObject', { bucket: 'b', key: 'k', setsAcl: true, setsTagging: true }, [
    ['s3:PutObject', 'arn:aws:s3:::b/k', 'target'], ['s3:PutObjectTagging', 'arn:aws:s3:::b/k', 'target']]],
  ['DeleteObjects: each key as DeleteObject(Version)', 'DeleteObjects', { bucket: 'b', objects: [{ key: 'a' }, { key: 'b', versionId: 'v' }] }, [
    ['s3:DeleteObject', 'arn:aws:s3:::b/a', 'target'], ['s3:DeleteObjectVersion', 'arn:aws:s3:::b/b', 'target']]],
  ['CopyObject reads the source with the caller\'s rights', 'CopyObject', { bucket: 'd', key: 'k', copySource: { bucket: 's', key: 'src' } }, [
    ['s3:PutObject', 'arn:aws:s3:::d/k', 'target'], ['s3:GetObject', 'arn:aws:s3:::s/src', 'source']]],
  ['CopyObject from a version', 'CopyObject', { bucket: 'd', key: 'k', copySource: { bucket: 's', key: 'src', versionId: 'v' } }, [
    ['s3:PutObject', 'arn:aws:s3:::d/k', 'target'], ['s3:GetObjectVersion', 'arn:aws:s3:::s/src', 'source']]],
  ['UploadPartCopy checks the source like CopyObject', 'UploadPartCopy', { bucket: 'd', key: 'k', copySource: { bucket: 's', key: 'src' } }, [
    ['s3:PutObject', 'arn:aws:s3:::d/k', 'target'], ['s3:GetObject', 'arn:aws:s3:::s/src', 'source']]],
  ['CreateMultipartUpload is PutObject', 'CreateMultipartUpload', { bucket: 'b', key: 'k' }, [['s3:PutObject', 'arn:aws:s3:::b/k', 'target']]],
  ['UploadPart is PutObject', 'UploadPart', { bucket: 'b', key: 'k' }, [['s3:PutObject', 'arn:aws:s3:::b/k', 'target']]],
  ['CompleteMultipartUpload is PutObject', 'CompleteMultipartUpload', { bucket: 'b', key: 'k' }, [['s3:PutObject', 'arn:aws:s3:::b/k', 'target']]],
  ['AbortMultipartUpload', 'AbortMultipartUpload', { bucket: 'b', key: 'k' }, [['s3:AbortMultipartUpload', 'arn:aws:s3:::b/k', 'target']]],
  ['ListParts', 'ListParts', { bucket: 'b', key: 'k' }, [['s3:ListMultipartUploadParts', 'arn:aws:s3:::b/k', 'target']]],
  ['GetObjectAcl of a version', 'GetObjectAcl', { bucket: 'b', key: 'k', versionId: 'v' }, [['s3:GetObjectVersionAcl', 'arn:aws:s3:::b/k', 'target']]],
  ['DeleteBucketOwnershipControls is PutBucketOwnershipControls', 'DeleteBucketOwnershipControls', { bucket: 'b' }, [['s3:PutBucketOwnershipControls', 'arn:aws:s3:::b', 'target']]],
  ['DeletePublicAccessBlock is PutBucketPublicAccessBlock', 'DeletePublicAccessBlock', { bucket: 'b' }, [['s3:PutBucketPublicAccessBlock', 'arn:aws:s3:::b', 'target']]],
  ['GetBucketPolicyStatus', 'GetBucketPolicyStatus', { bucket: 'b' }, [['s3:GetBucketPolicyStatus', 'arn:aws:s3:::b', 'target']]],
];

for (const [name, operation, target, expected] of cases) {
  test(`requiredChecks: ${name}`, () => {
    assert.deepEqual(requiredChecks(operation, target).map((check) => [check.action, check.resource, check.side]), expected);
  });
}
