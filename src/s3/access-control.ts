/**
 * The access-control operations: bucket policy and its status, bucket and
 * object ACLs, ownership controls, public access block. Authorization has
 * already happened (src/s3/access.ts); these validate the document with
 * src/authz, check what the bucket's settings forbid (BlockPublicAcls,
 * BlockPublicPolicy, BucketOwnerEnforced — for root too), and store it.
 */
import {
  type Acl,
  type AclOwner,
  type RequestedAcl,
  BUCKET_POLICY_BYTES_MAX,
  aclFromHeaders,
  bucketIsPublic,
  checkOwnershipChange,
  checkPolicyWrite,
  parseAccessControlPolicy,
  parseOwnershipControls,
  parsePolicy,
  parsePublicAccessBlock,
  privateAcl,
  renderAccessControlPolicy,
  renderOwnershipControls,
  renderPolicyStatus,
  renderPublicAccessBlock,
} from '../authz/index.ts';
import type { BucketAccessSettings, BucketRecord } from '../meta/types.ts';
import { S3Error } from '../util/s3-error.ts';
import { checkRequestedAcl } from './access.ts';
import { emptyResponse, readSmallBody, xmlResponse, type RequestContext, type S3Response } from './context.ts';

async function updateAccess(context: RequestContext, change: (settings: BucketAccessSettings) => BucketAccessSettings): Promise<void> {
  const bucket = await context.engine.getBucket(context.route.bucket);
  const next = change({ ...(bucket.access ?? {}) });
  const empty = Object.values(next).every((value) => value === undefined);
  await context.engine.setBucketAccess(context.route.bucket, empty ? null : next);
}

function without<K extends keyof BucketAccessSettings>(settings: BucketAccessSettings, name: K): BucketAccessSettings {
  const copy = { ...settings };
  delete copy[name];
  return copy;
}

// Bucket policy

export async function handleGetBucketPolicy(context: RequestContext): Promise<S3Response> {
  const bucket = await context.engine.getBucket(context.route.bucket);
  const policy = bucket.access?.policy;
  if (policy === undefined) throw new S3Error('NoSuchBucketPolicy', undefined, { BucketName: bucket.name });
  return { status: 200, headers: { 'content-type': 'application/json' }, body: policy };
}

export async function handlePutBucketPolicy(context: RequestContext): Promise<S3Response> {
  const text = await readSmallBody(context, BUCKET_POLICY_BYTES_MAX + 1, 'MalformedPolicy');
  const policy = parsePolicy(text, { kind: 'bucket', bucket: context.route.bucket });
  const bucket = await context.engine.getBucket(context.route.bucket);
  checkPolicyWrite(context.access.bucketAccess(bucket).publicAccessBlock, policy);
  await updateAccess(context, (settings) => ({ ...settings, policy: text }));
  return emptyResponse(204);
}

export async function handleDeleteBucketPolicy(context: RequestContext): Promise<S3Response> {
  await updateAccess(context, (settings) => without(settings, 'policy'));
  return emptyResponse(204);
}

export async function handleGetBucketPolicyStatus(context: RequestContext): Promise<S3Response> {
  const bucket = await context.engine.getBucket(context.route.bucket);
  const access = context.access.bucketAccess(bucket);
  return xmlResponse(renderPolicyStatus(bucketIsPublic(access.policy, access.acl, access.publicAccessBlock)));
}

// ACLs

/** The ACL a Put*Acl request asks for: its headers, or its AccessControlPolicy body, for the resource's owner. */
async function requestedAcl(context: RequestContext, target: 'bucket' | 'object', owner: AclOwner, bucketOwner: AclOwner): Promise<RequestedAcl> {
  const fromHeaders = aclFromHeaders(context.headers, target, owner, context.access.directory.grantees, bucketOwner);
  const body = await readSmallBody(context);
  if (fromHeaders !== undefined) return fromHeaders;
  const parsed = parseAccessControlPolicy(body, context.access.directory.grantees);
  // The Owner element names the resource's owner; it cannot hand the resource to someone else.
  if (parsed.owner !== undefined && parsed.owner.id !== owner.id) throw new S3Error('AccessDenied');
  return { acl: { owner, grants: parsed.grants } };
}

function renderAcl(context: RequestContext, acl: Acl | undefined, storedOwnerId: string): string {
  return renderAccessControlPolicy(acl ?? privateAcl(context.access.displayOwner(storedOwnerId)));
}

export async function handleGetBucketAcl(context: RequestContext): Promise<S3Response> {
  const bucket = await context.engine.getBucket(context.route.bucket);
  return xmlResponse(renderAcl(context, bucket.access?.acl, bucket.ownerId));
}

export async function handlePutBucketAcl(context: RequestContext): Promise<S3Response> {
  const bucket = await context.engine.getBucket(context.route.bucket);
  const owner = context.access.displayOwner(bucket.ownerId);
  const requested = await requestedAcl(context, 'bucket', owner, owner);
  checkRequestedAcl(context.access.bucketAccess(bucket), requested);
  await updateAccess(context, (settings) => ({ ...settings, acl: requested.acl }));
  return emptyResponse(200);
}

async function addressedVersion(context: RequestContext, bucket: BucketRecord) {
  const versionId = context.route.query.get('versionId');
  const version = await context.engine.lookupVersion(bucket, context.route.key, versionId);
  if (version === undefined) {
    if (versionId !== undefined) throw new S3Error('NoSuchVersion', undefined, { Key: context.route.key, VersionId: versionId });
    throw new S3Error('NoSuchKey', undefined, { Key: context.route.key });
  }
  return version;
}

function versionHeader(bucket: BucketRecord, versionId: string): Record<string, string> {
  return bucket.versioning === 'Unversioned' ? {} : { 'x-amz-version-id': versionId };
}

export async function handleGetObjectAcl(context: RequestContext): Promise<S3Response> {
  const bucket = await context.engine.getBucket(context.route.bucket);
  const version = await addressedVersion(context, bucket);
  return xmlResponse(renderAcl(context, version.acl, version.ownerId), 200, versionHeader(bucket, version.versionId));
}

export async function handlePutObjectAcl(context: RequestContext): Promise<S3Response> {
  const bucket = await context.engine.getBucket(context.route.bucket);
  const version = await addressedVersion(context, bucket);
  const owner = context.access.displayOwner(version.ownerId);
  const requested = await requestedAcl(context, 'object', owner, context.access.displayOwner(bucket.ownerId));
  checkRequestedAcl(context.access.bucketAccess(bucket), requested);
  await context.engine.setObjectAcl(bucket.name, context.route.key, version.versionId, requested.acl);
  return emptyResponse(200, versionHeader(bucket, version.versionId));
}

// Ownership controls

export async function handleGetBucketOwnershipControls(context: RequestContext): Promise<S3Response> {
  const bucket = await context.engine.getBucket(context.route.bucket);
  const ownership = bucket.access?.ownership;
  if (ownership === undefined) throw new S3Error('OwnershipControlsNotFoundError', undefined, { BucketName: bucket.name });
  return xmlResponse(renderOwnershipControls(ownership));
}

export async function handlePutBucketOwnershipControls(context: RequestContext): Promise<S3Response> {
  const ownership = parseOwnershipControls(await readSmallBody(context));
  const bucket = await context.engine.getBucket(context.route.bucket);
  const access = context.access.bucketAccess(bucket);
  checkOwnershipChange(ownership, access.acl, access.owner);
  await updateAccess(context, (settings) => ({ ...settings, ownership }));
  return emptyResponse(200);
}

export async function handleDeleteBucketOwnershipControls(context: RequestContext): Promise<S3Response> {
  await updateAccess(context, (settings) => without(settings, 'ownership'));
  return emptyResponse(204);
}

// Public access block

export async function handleGetPublicAccessBlock(context: RequestContext): Promise<S3Response> {
  const bucket = await context.engine.getBucket(context.route.bucket);
  const block = bucket.access?.publicAccessBlock;
  if (block === undefined) throw new S3Error('NoSuchPublicAccessBlockConfiguration', undefined, { BucketName: bucket.name });
  return xmlResponse(renderPublicAccessBlock(block));
}

export async function handlePutPublicAccessBlock(context: RequestContext): Promise<S3Response> {
  const publicAccessBlock = parsePublicAccessBlock(await readSmallBody(context));
  await updateAccess(context, (settings) => ({ ...settings, publicAccessBlock }));
  return emptyResponse(200);
}

export async function handleDeletePublicAccessBlock(context: RequestContext): Promise<S3Response> {
  await updateAccess(context, (settings) => without(settings, 'publicAccessBlock'));
  return emptyResponse(204);
}
