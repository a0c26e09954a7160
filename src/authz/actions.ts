/**
 * What each S3 operation needs: the IAM action(s) (AWS's names, from
 * "Required permissions for Amazon S3 API operations"), the resource ARN, and
 * which ACL permission on the bucket or the object grants the action.
 *
 * Data, not code: `OPERATION_ACTIONS` is the table; `requiredChecks()` turns
 * one request into the list of checks that must each be allowed (several for
 * DeleteObjects, one per key; two sides for CopyObject and UploadPartCopy).
 */

export type AclPermission = 'READ' | 'WRITE' | 'READ_ACP' | 'WRITE_ACP' | 'FULL_CONTROL';
export const ACL_PERMISSIONS: readonly AclPermission[] = ['READ', 'WRITE', 'READ_ACP', 'WRITE_ACP', 'FULL_CONTROL'];

/** What an action acts on: nothing in particular (ListAllMyBuckets), a bucket, or an object. */
export type ResourceKind = 'service' | 'bucket' | 'object';

/**
 * Every S3 action a policy may name (the Service Authorization Reference's
 * bucket, object and account-level actions; those Talus does not serve are
 * listed too, so real-world policies naming them are accepted, and they
 * simply never match a request).
 */
const OBJECT_ACTIONS = [
  'AbortMultipartUpload', 'BypassGovernanceRetention', 'DeleteObject', 'DeleteObjectTagging', 'DeleteObjectVersion',
  'DeleteObjectVersionTagging', 'GetObject', 'GetObjectAcl', 'GetObjectAttributes', 'GetObjectLegalHold',
  'GetObjectRetention', 'GetObjectTagging', 'GetObjectTorrent', 'GetObjectVersion', 'GetObjectVersionAcl',
  'GetObjectVersionAttributes', 'GetObjectVersionForReplication', 'GetObjectVersionTagging', 'GetObjectVersionTorrent',
  'InitiateReplication', 'ListMultipartUploadParts', 'ObjectOwnerOverrideToBucketOwner', 'PutObject', 'PutObjectAcl',
  'PutObjectLegalHold', 'PutObjectRetention', 'PutObjectTagging', 'PutObjectVersionAcl', 'PutObjectVersionTagging',
  'ReplicateDelete', 'ReplicateObject', 'ReplicateTags', 'RestoreObject',
] as const;
const BUCKET_ACTIONS = [
  'CreateBucket', 'DeleteBucket', 'DeleteBucketPolicy', 'DeleteBucketWebsite', 'GetAccelerateConfiguration',
  'GetAnalyticsConfiguration', 'GetBucketAcl', 'GetBucketCORS', 'GetBucketLocation', 'GetBucketLogging',
  'GetBucketNotification', 'GetBucketObjectLockConfiguration', 'GetBucketOwnershipControls', 'GetBucketPolicy',
  'GetBucketPolicyStatus', 'GetBucketPublicAccessBlock', 'GetBucketRequestPayment', 'GetBucketTagging',
  'GetBucketVersioning', 'GetBucketWebsite', 'GetEncryptionConfiguration', 'GetIntelligentTieringConfiguration',
  'GetInventoryConfiguration', 'GetLifecycleConfiguration', 'GetMetricsConfiguration', 'GetReplicationConfiguration',
  'ListBucket', 'ListBucketMultipartUploads', 'ListBucketVersions', 'PutAccelerateConfiguration',
  'PutAnalyticsConfiguration', 'PutBucketAcl', 'PutBucketCORS', 'PutBucketLogging', 'PutBucketNotification',
  'PutBucketObjectLockConfiguration', 'PutBucketOwnershipControls', 'PutBucketPolicy', 'PutBucketPublicAccessBlock',
  'PutBucketRequestPayment', 'PutBucketTagging', 'PutBucketVersioning', 'PutBucketWebsite', 'PutEncryptionConfiguration',
  'PutIntelligentTieringConfiguration', 'PutInventoryConfiguration', 'PutLifecycleConfiguration',
  'PutMetricsConfiguration', 'PutReplicationConfiguration',
] as const;
const SERVICE_ACTIONS = [
  'ListAllMyBuckets', 'GetAccountPublicAccessBlock', 'PutAccountPublicAccessBlock', 'ListAccessPoints', 'CreateJob',
  'ListJobs', 'ListStorageLensConfigurations',
] as const;

export type S3Action = `s3:${(typeof OBJECT_ACTIONS | typeof BUCKET_ACTIONS | typeof SERVICE_ACTIONS)[number]}`;

/** Every known action → the kind of resource it acts on. */
export const ACTION_KINDS: ReadonlyMap<S3Action, ResourceKind> = new Map<S3Action, ResourceKind>([
  ...OBJECT_ACTIONS.map((name) => [`s3:${name}`, 'object'] as [S3Action, ResourceKind]),
  ...BUCKET_ACTIONS.map((name) => [`s3:${name}`, 'bucket'] as [S3Action, ResourceKind]),
  ...SERVICE_ACTIONS.map((name) => [`s3:${name}`, 'service'] as [S3Action, ResourceKind]),
]);
export const ALL_ACTIONS: readonly S3Action[] = [...ACTION_KINDS.keys()];

/**
 * Which ACL permission grants an action, and on which ACL (AWS's
 * "Mapping of ACL permissions and access policy permissions"). `FULL_CONTROL`
 * grants all of them. Actions absent here are never granted by an ACL: only
 * the resource's owner has them implicitly, and policies may grant them.
 * Choices beyond AWS's table (docs/ACCESS.md): bucket WRITE also grants
 * AbortMultipartUpload and ListMultipartUploadParts (whoever may upload may
 * finish or abandon the upload), object READ also grants GetObjectAttributes
 * and GetObjectTagging (as Ceph RGW does).
 */
export interface AclGrantRule {
  on: 'bucket' | 'object';
  permission: AclPermission;
  /** AWS: bucket WRITE grants s3:DeleteObjectVersion only when the grantee is the bucket owner. */
  granteeMustOwnBucket?: true;
}
export const ACTION_ACL: ReadonlyMap<S3Action, AclGrantRule> = new Map<S3Action, AclGrantRule>([
  ['s3:ListBucket', { on: 'bucket', permission: 'READ' }],
  ['s3:ListBucketVersions', { on: 'bucket', permission: 'READ' }],
  ['s3:ListBucketMultipartUploads', { on: 'bucket', permission: 'READ' }],
  ['s3:PutObject', { on: 'bucket', permission: 'WRITE' }],
  ['s3:DeleteObject', { on: 'bucket', permission: 'WRITE' }],
  ['s3:DeleteObjectVersion', { on: 'bucket', permission: 'WRITE', granteeMustOwnBucket: true }],
  ['s3:AbortMultipartUpload', { on: 'bucket', permission: 'WRITE' }],
  ['s3:ListMultipartUploadParts', { on: 'bucket', permission: 'WRITE' }],
  ['s3:GetBucketAcl', { on: 'bucket', permission: 'READ_ACP' }],
  ['s3:PutBucketAcl', { on: 'bucket', permission: 'WRITE_ACP' }],
  ['s3:GetObject', { on: 'object', permission: 'READ' }],
  ['s3:GetObjectVersion', { on: 'object', permission: 'READ' }],
  ['s3:GetObjectAttributes', { on: 'object', permission: 'READ' }],
  ['s3:GetObjectVersionAttributes', { on: 'object', permission: 'READ' }],
  ['s3:GetObjectTagging', { on: 'object', permission: 'READ' }],
  ['s3:GetObjectVersionTagging', { on: 'object', permission: 'READ' }],
  ['s3:GetObjectTorrent', { on: 'object', permission: 'READ' }],
  ['s3:GetObjectAcl', { on: 'object', permission: 'READ_ACP' }],
  ['s3:GetObjectVersionAcl', { on: 'object', permission: 'READ_ACP' }],
  ['s3:PutObjectAcl', { on: 'object', permission: 'WRITE_ACP' }],
  ['s3:PutObjectVersionAcl', { on: 'object', permission: 'WRITE_ACP' }],
]);

/**
 * Actions the owner of the resource always has, whatever its ACL says (AWS:
 * the owner always has READ_ACP and WRITE_ACP; the bucket owner always
 * manages its bucket's policy, ownership controls and public access block).
 * With its default ACL (FULL_CONTROL to itself) an owner has everything else
 * too; an owner that removed its own grant keeps only these and the
 * owner-only actions (those no ACL can grant).
 */
export function ownerAlwaysHas(action: S3Action): boolean {
  const rule = ACTION_ACL.get(action);
  return rule === undefined || rule.permission === 'READ_ACP' || rule.permission === 'WRITE_ACP';
}

export function bucketArn(bucket: string): string {
  return `arn:aws:s3:::${bucket}`;
}
export function objectArn(bucket: string, key: string): string {
  return `arn:aws:s3:::${bucket}/${key}`;
}
/**
 * The resource of actions on no bucket (ListAllMyBuckets). AWS requires
 * `"Resource": "*"` for them; `arn:aws:s3:::` is matched by both `*` and
 * `arn:aws:s3:::*` (MinIO's built-in policies), so either grants it.
 */
export const SERVICE_RESOURCE = 'arn:aws:s3:::';

/** Operations Talus routes (src/http/route.ts) plus those issue 11 adds. */
export type AuthzOperation =
  | 'ListBuckets' | 'CreateBucket' | 'HeadBucket' | 'DeleteBucket' | 'GetBucketLocation'
  | 'GetBucketVersioning' | 'PutBucketVersioning' | 'GetBucketTagging' | 'PutBucketTagging' | 'DeleteBucketTagging'
  | 'ListObjects' | 'ListObjectsV2' | 'ListObjectVersions' | 'ListMultipartUploads' | 'DeleteObjects'
  | 'PutObject' | 'CopyObject' | 'GetObject' | 'GetObjectAttributes' | 'HeadObject' | 'DeleteObject'
  | 'GetObjectTagging' | 'PutObjectTagging' | 'DeleteObjectTagging'
  | 'CreateMultipartUpload' | 'UploadPart' | 'UploadPartCopy' | 'CompleteMultipartUpload' | 'AbortMultipartUpload' | 'ListParts'
  | 'GetBucketPolicy' | 'PutBucketPolicy' | 'DeleteBucketPolicy' | 'GetBucketPolicyStatus'
  | 'GetBucketAcl' | 'PutBucketAcl' | 'GetObjectAcl' | 'PutObjectAcl'
  | 'GetBucketOwnershipControls' | 'PutBucketOwnershipControls' | 'DeleteBucketOwnershipControls'
  | 'GetPublicAccessBlock' | 'PutPublicAccessBlock' | 'DeletePublicAccessBlock'
  | 'GetBucketCors' | 'PutBucketCors' | 'DeleteBucketCors' | 'PostObject'
  | 'GetBucketLifecycleConfiguration' | 'PutBucketLifecycleConfiguration' | 'DeleteBucketLifecycle'
  | 'GetObjectLockConfiguration' | 'PutObjectLockConfiguration'
  | 'GetObjectRetention' | 'PutObjectRetention' | 'GetObjectLegalHold' | 'PutObjectLegalHold'
  | 'GetObjectTorrent';

/**
 * The table. `versioned` is the action used instead when the request names a
 * versionId (AWS: GetObjectVersion, DeleteObjectVersion, …). `kind` says
 * which ARN the check is on.
 */
export interface OperationRule {
  kind: ResourceKind;
  action: S3Action;
  versioned?: S3Action;
}
export const OPERATION_ACTIONS: Readonly<Record<AuthzOperation, OperationRule>> = {
  ListBuckets: { kind: 'service', action: 's3:ListAllMyBuckets' },
  CreateBucket: { kind: 'bucket', action: 's3:CreateBucket' },
  HeadBucket: { kind: 'bucket', action: 's3:ListBucket' },
  DeleteBucket: { kind: 'bucket', action: 's3:DeleteBucket' },
  GetBucketLocation: { kind: 'bucket', action: 's3:GetBucketLocation' },
  GetBucketVersioning: { kind: 'bucket', action: 's3:GetBucketVersioning' },
  PutBucketVersioning: { kind: 'bucket', action: 's3:PutBucketVersioning' },
  GetBucketTagging: { kind: 'bucket', action: 's3:GetBucketTagging' },
  PutBucketTagging: { kind: 'bucket', action: 's3:PutBucketTagging' },
  DeleteBucketTagging: { kind: 'bucket', action: 's3:PutBucketTagging' },
  ListObjects: { kind: 'bucket', action: 's3:ListBucket' },
  ListObjectsV2: { kind: 'bucket', action: 's3:ListBucket' },
  ListObjectVersions: { kind: 'bucket', action: 's3:ListBucketVersions' },
  ListMultipartUploads: { kind: 'bucket', action: 's3:ListBucketMultipartUploads' },
  // Checked per key (requiredChecks expands target.objects); the POST itself needs nothing more.
  DeleteObjects: { kind: 'object', action: 's3:DeleteObject', versioned: 's3:DeleteObjectVersion' },
  PutObject: { kind: 'object', action: 's3:PutObject' },
  CopyObject: { kind: 'object', action: 's3:PutObject' },
  GetObject: { kind: 'object', action: 's3:GetObject', versioned: 's3:GetObjectVersion' },
  HeadObject: { kind: 'object', action: 's3:GetObject', versioned: 's3:GetObjectVersion' },
  GetObjectAttributes: { kind: 'object', action: 's3:GetObjectAttributes', versioned: 's3:GetObjectVersionAttributes' },
  DeleteObject: { kind: 'object', action: 's3:DeleteObject', versioned: 's3:DeleteObjectVersion' },
  GetObjectTagging: { kind: 'object', action: 's3:GetObjectTagging', versioned: 's3:GetObjectVersionTagging' },
  PutObjectTagging: { kind: 'object', action: 's3:PutObjectTagging', versioned: 's3:PutObjectVersionTagging' },
  DeleteObjectTagging: { kind: 'object', action: 's3:DeleteObjectTagging', versioned: 's3:DeleteObjectVersionTagging' },
  CreateMultipartUpload: { kind: 'object', action: 's3:PutObject' },
  UploadPart: { kind: 'object', action: 's3:PutObject' },
  UploadPartCopy: { kind: 'object', action: 's3:PutObject' },
  CompleteMultipartUpload: { kind: 'object', action: 's3:PutObject' },
  AbortMultipartUpload: { kind: 'object', action: 's3:AbortMultipartUpload' },
  ListParts: { kind: 'object', action: 's3:ListMultipartUploadParts' },
  GetBucketPolicy: { kind: 'bucket', action: 's3:GetBucketPolicy' },
  PutBucketPolicy: { kind: 'bucket', action: 's3:PutBucketPolicy' },
  DeleteBucketPolicy: { kind: 'bucket', action: 's3:DeleteBucketPolicy' },
  GetBucketPolicyStatus: { kind: 'bucket', action: 's3:GetBucketPolicyStatus' },
  GetBucketAcl: { kind: 'bucket', action: 's3:GetBucketAcl' },
  PutBucketAcl: { kind: 'bucket', action: 's3:PutBucketAcl' },
  GetObjectAcl: { kind: 'object', action: 's3:GetObjectAcl', versioned: 's3:GetObjectVersionAcl' },
  PutObjectAcl: { kind: 'object', action: 's3:PutObjectAcl', versioned: 's3:PutObjectVersionAcl' },
  GetBucketOwnershipControls: { kind: 'bucket', action: 's3:GetBucketOwnershipControls' },
  PutBucketOwnershipControls: { kind: 'bucket', action: 's3:PutBucketOwnershipControls' },
  DeleteBucketOwnershipControls: { kind: 'bucket', action: 's3:PutBucketOwnershipControls' },
  GetPublicAccessBlock: { kind: 'bucket', action: 's3:GetBucketPublicAccessBlock' },
  PutPublicAccessBlock: { kind: 'bucket', action: 's3:PutBucketPublicAccessBlock' },
  DeletePublicAccessBlock: { kind: 'bucket', action: 's3:PutBucketPublicAccessBlock' },
  GetBucketCors: { kind: 'bucket', action: 's3:GetBucketCORS' },
  PutBucketCors: { kind: 'bucket', action: 's3:PutBucketCORS' },
  DeleteBucketCors: { kind: 'bucket', action: 's3:PutBucketCORS' },
  // An HTML form upload writes an object as PutObject does (judged once the form names the key: s3/post-object.ts).
  PostObject: { kind: 'object', action: 's3:PutObject' },
  GetBucketLifecycleConfiguration: { kind: 'bucket', action: 's3:GetLifecycleConfiguration' },
  PutBucketLifecycleConfiguration: { kind: 'bucket', action: 's3:PutLifecycleConfiguration' },
  // AWS: DeleteBucketLifecycle needs s3:PutLifecycleConfiguration (there is no delete action).
  DeleteBucketLifecycle: { kind: 'bucket', action: 's3:PutLifecycleConfiguration' },
  GetObjectLockConfiguration: { kind: 'bucket', action: 's3:GetBucketObjectLockConfiguration' },
  PutObjectLockConfiguration: { kind: 'bucket', action: 's3:PutBucketObjectLockConfiguration' },
  // AWS has no *Version* variants of these: the same action covers a versionId.
  GetObjectRetention: { kind: 'object', action: 's3:GetObjectRetention' },
  PutObjectRetention: { kind: 'object', action: 's3:PutObjectRetention' },
  GetObjectLegalHold: { kind: 'object', action: 's3:GetObjectLegalHold' },
  PutObjectLegalHold: { kind: 'object', action: 's3:PutObjectLegalHold' },
  GetObjectTorrent: { kind: 'object', action: 's3:GetObjectTorrent', versioned: 's3:GetObjectVersionTorrent' },
};

/** What the wiring knows about the request that changes which checks apply. */
export interface OperationTarget {
  bucket: string;
  key?: string;
  versionId?: string;
  /** DeleteObjects: every key of the request body (each checked as DeleteObject). */
  objects?: readonly { key: string; versionId?: string }[];
  /**
   * CreateBucket: x-amz-acl or any x-amz-grant-* header is present (adds s3:PutBucketAcl, as AWS).
   * Object writes with ACL headers need no s3:PutObjectAcl: AWS documents it, but ceph/s3-tests
   * (test_bucket_policy_put_obj_grant) expects s3:PutObject alone to suffice; policies restrict
   * such writes with the s3:x-amz-acl and s3:x-amz-grant-* condition keys instead.
   */
  setsAcl?: boolean;
  /** x-amz-tagging is present (PutObject, CreateMultipartUpload; CopyObject with x-amz-tagging-directive REPLACE). */
  setsTagging?: boolean;
  /** CreateBucket with x-amz-object-ownership. */
  setsObjectOwnership?: boolean;
  /** CreateBucket with x-amz-bucket-object-lock-enabled: true (adds s3:PutBucketObjectLockConfiguration and s3:PutBucketVersioning, as AWS). */
  setsObjectLock?: boolean;
  /** x-amz-object-lock-mode / -retain-until-date on an object write (adds s3:PutObjectRetention, as AWS). */
  setsRetention?: boolean;
  /** x-amz-object-lock-legal-hold on an object write (adds s3:PutObjectLegalHold, as AWS). */
  setsLegalHold?: boolean;
  /** CopyObject and UploadPartCopy: the parsed x-amz-copy-source. */
  copySource?: { bucket: string; key: string; versionId?: string };
}

/**
 * One check: `action` on `resource`, evaluated against the bucket named
 * `bucket` (the copy source's bucket for side 'source': its policy, ACLs and
 * owner decide, with the caller's rights).
 */
export interface PermissionCheck {
  action: S3Action;
  resource: string;
  side: 'target' | 'source';
  bucket: string;
  /** The object the check is on, for object actions (its ACL and owner decide). */
  key?: string;
  versionId?: string;
}

/**
 * The check that decides 404 or 403 for GetObject/HeadObject of a key that
 * does not exist (AWS: 404 only to those who may list the bucket). The wiring
 * sets s3:prefix to the key, as RGW does (ceph/s3-tests
 * test_head_object_404_with_policy_prefix relies on it).
 */
export function missingObjectCheck(bucket: string, key: string): PermissionCheck {
  return { action: 's3:ListBucket', resource: bucketArn(bucket), side: 'target', bucket, key };
}

/** Every check one request needs; all must be allowed. */
export function requiredChecks(operation: AuthzOperation, target: OperationTarget): PermissionCheck[] {
  const rule = OPERATION_ACTIONS[operation];
  if (rule.kind === 'service') return [{ action: rule.action, resource: SERVICE_RESOURCE, side: 'target', bucket: '' }];
  if (rule.kind === 'bucket') {
    const checks: PermissionCheck[] = [{ action: rule.action, resource: bucketArn(target.bucket), side: 'target', bucket: target.bucket }];
    if (operation === 'CreateBucket') {
      if (target.setsAcl === true) checks.push({ action: 's3:PutBucketAcl', resource: bucketArn(target.bucket), side: 'target', bucket: target.bucket });
      if (target.setsObjectOwnership === true) checks.push({ action: 's3:PutBucketOwnershipControls', resource: bucketArn(target.bucket), side: 'target', bucket: target.bucket });
      if (target.setsObjectLock === true) {
        checks.push({ action: 's3:PutBucketObjectLockConfiguration', resource: bucketArn(target.bucket), side: 'target', bucket: target.bucket });
        checks.push({ action: 's3:PutBucketVersioning', resource: bucketArn(target.bucket), side: 'target', bucket: target.bucket });
      }
    }
    return checks;
  }
  if (operation === 'DeleteObjects') {
    return (target.objects ?? []).map((object) => objectCheck(rule, target.bucket, object.key, object.versionId, 'target'));
  }
  const key = target.key ?? '';
  const checks = [objectCheck(rule, target.bucket, key, target.versionId, 'target')];
  const writesObject = operation === 'PutObject' || operation === 'CopyObject' || operation === 'CreateMultipartUpload' || operation === 'PostObject';
  if (writesObject && target.setsTagging === true) checks.push({ action: 's3:PutObjectTagging', resource: objectArn(target.bucket, key), side: 'target', bucket: target.bucket, key });
  if (writesObject && target.setsRetention === true) checks.push({ action: 's3:PutObjectRetention', resource: objectArn(target.bucket, key), side: 'target', bucket: target.bucket, key });
  if (writesObject && target.setsLegalHold === true) checks.push({ action: 's3:PutObjectLegalHold', resource: objectArn(target.bucket, key), side: 'target', bucket: target.bucket, key });
  if ((operation === 'CopyObject' || operation === 'UploadPartCopy') && target.copySource !== undefined) {
    const source = target.copySource;
    checks.push(objectCheck(OPERATION_ACTIONS.GetObject, source.bucket, source.key, source.versionId, 'source'));
  }
  return checks;
}

function objectCheck(rule: OperationRule, bucket: string, key: string, versionId: string | undefined, side: 'target' | 'source'): PermissionCheck {
  const action = versionId !== undefined && rule.versioned !== undefined ? rule.versioned : rule.action;
  const check: PermissionCheck = { action, resource: objectArn(bucket, key), side, bucket, key };
  if (versionId !== undefined) check.versionId = versionId;
  return check;
}
