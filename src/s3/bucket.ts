/** Bucket operations: create, head, delete, list, location, versioning, tagging. */
import { BUCKET_TAGS_MAX, LIST_BUCKETS_MAX } from '../util/limits.ts';
import { S3Error } from '../util/s3-error.ts';
import type { BucketAccessSettings, Tag } from '../meta/types.ts';
import { type Acl, aclFromHeaders, aclsEnabled, checkAclAllowed, parseObjectOwnershipHeader, privateAcl } from '../authz/index.ts';
import { document, element, escapeXml, listOf, objectOf, parseXml, textOf } from '../http/xml.ts';
import { emptyResponse, queryInteger, readSmallBody, xmlResponse, type RequestContext, type S3Response } from './context.ts';
import { isoDateOf, validateTags } from './headers.ts';
import { createBucketObjectLock } from './object-lock.ts';

export async function handleListBuckets(context: RequestContext): Promise<S3Response> {
  const query = context.route.query;
  const prefix = query.get('prefix') ?? '';
  const maxBuckets = queryInteger(context, 'max-buckets', LIST_BUCKETS_MAX, 1, LIST_BUCKETS_MAX);
  const token = query.get('continuation-token');
  const after = token === undefined ? '' : Buffer.from(token, 'base64url').toString('utf8');
  // The caller's own buckets; root sees every bucket (the administrator, as MinIO's root); anonymous none.
  const principal = context.access.principal;
  const buckets = principal.kind === 'anonymous' ? [] : (await context.engine.listBuckets()).filter(
    (bucket) => (principal.kind === 'root' || context.access.ownerOf(bucket.ownerId) === context.ownerId) && bucket.name.startsWith(prefix) && bucket.name > after,
  );
  const page = buckets.slice(0, maxBuckets);
  const entries = page
    .map((bucket) => `<Bucket>${element('Name', bucket.name)}${element('CreationDate', isoDateOf(bucket.createdMs))}${element('BucketRegion', context.region)}</Bucket>`)
    .join('');
  const next = buckets.length > maxBuckets ? element('ContinuationToken', Buffer.from(page.at(-1)!.name, 'utf8').toString('base64url')) : '';
  const prefixElement = query.has('prefix') ? element('Prefix', prefix) : '';
  return xmlResponse(document('ListAllMyBucketsResult', `${owner(context, context.ownerId)}<Buckets>${entries}</Buckets>${next}${prefixElement}`));
}

/** <Owner> with the canonical ID and display name of a stored owner ID. */
export function owner(context: RequestContext, ownerId: string): string {
  const shown = context.access.displayOwner(ownerId);
  return `<Owner>${element('ID', shown.id)}${element('DisplayName', shown.displayName)}</Owner>`;
}

export async function handleCreateBucket(context: RequestContext): Promise<S3Response> {
  const body = await readSmallBody(context);
  if (body.trim() !== '') {
    const configuration = parseXml(body, 'CreateBucketConfiguration');
    const location = textOf(configuration['LocationConstraint']);
    if (location !== undefined && location !== '' && location !== context.region) {
      throw new S3Error('InvalidLocationConstraint', `The specified location-constraint is not valid: ${location}`);
    }
  }
  const access = bucketAccessFromHeaders(context);
  const outcome = await context.engine.createBucket(context.route.bucket, context.ownerId, access, createBucketObjectLock(context.headers));
  if (outcome === 'already-owned') {
    // Re-creating one's bucket leaves it untouched; asking for another ACL than it has is refused rather
    // than silently ignored (Ceph RGW; ceph/s3-tests test_bucket_recreate_new_acl / _overwrite_acl).
    // Compared as grants, a missing ACL being private: `x-amz-acl: private` (rclone sends it) changes nothing.
    const existing = await context.engine.getBucket(context.route.bucket);
    const owner = { id: context.access.ownerOf(existing.ownerId) };
    if (grantsKey(existing.access?.acl ?? privateAcl(owner)) !== grantsKey(access?.acl ?? privateAcl(owner))) {
      throw new S3Error('BucketAlreadyExists', undefined, { BucketName: context.route.bucket });
    }
  }
  if (outcome === 'already-owned' && context.region !== 'us-east-1') {
    throw new S3Error('BucketAlreadyOwnedByYou', undefined, { BucketName: context.route.bucket });
  }
  return emptyResponse(200, { location: `/${context.route.bucket}` });
}

export async function handleHeadBucket(context: RequestContext): Promise<S3Response> {
  await context.engine.getBucket(context.route.bucket);
  return emptyResponse(200, { 'x-amz-bucket-region': context.region });
}

export async function handleDeleteBucket(context: RequestContext): Promise<S3Response> {
  await context.engine.deleteBucket(context.route.bucket);
  return emptyResponse(204);
}

export async function handleGetBucketLocation(context: RequestContext): Promise<S3Response> {
  await context.engine.getBucket(context.route.bucket);
  // us-east-1 is reported as an empty LocationConstraint, as S3 does.
  const region = context.region === 'us-east-1' ? '' : escapeXml(context.region);
  return xmlResponse(`<?xml version="1.0" encoding="UTF-8"?>\n<LocationConstraint xmlns="http://s3.amazonaws.com/doc/2006-03-01/">${region}</LocationConstraint>`);
}

export async function handleGetBucketVersioning(context: RequestContext): Promise<S3Response> {
  const bucket = await context.engine.getBucket(context.route.bucket);
  const status = bucket.versioning === 'Unversioned' ? '' : element('Status', bucket.versioning);
  return xmlResponse(document('VersioningConfiguration', status));
}

export async function handlePutBucketVersioning(context: RequestContext): Promise<S3Response> {
  const configuration = parseXml(await readSmallBody(context), 'VersioningConfiguration');
  const status = textOf(configuration['Status']);
  const mfaDelete = textOf(configuration['MfaDelete']);
  if (mfaDelete === 'Enabled') throw new S3Error('NotImplemented', 'MFA Delete is not supported.');
  if (status !== 'Enabled' && status !== 'Suspended') throw new S3Error('MalformedXML');
  await context.engine.setBucketVersioning(context.route.bucket, status);
  return emptyResponse(200);
}

export async function handleGetBucketTagging(context: RequestContext): Promise<S3Response> {
  const tags = await context.engine.getBucketTags(context.route.bucket);
  return xmlResponse(document('Tagging', tagSetXml(tags)));
}

export async function handlePutBucketTagging(context: RequestContext): Promise<S3Response> {
  const tags = parseTagging(await readSmallBody(context), BUCKET_TAGS_MAX);
  await context.engine.setBucketTags(context.route.bucket, tags);
  return emptyResponse(204);
}

export async function handleDeleteBucketTagging(context: RequestContext): Promise<S3Response> {
  await context.engine.getBucket(context.route.bucket);
  await context.engine.setBucketTags(context.route.bucket, null);
  return emptyResponse(204);
}

export function tagSetXml(tags: readonly Tag[]): string {
  // S3 returns tag sets ordered by key.
  const sorted = [...tags].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  return `<TagSet>${sorted.map((tag) => `<Tag>${element('Key', tag.key)}${element('Value', tag.value)}</Tag>`).join('')}</TagSet>`;
}

/** Parses a <Tagging><TagSet><Tag>… document and validates the tags. */
export function parseTagging(body: string, countMax: number): Tag[] {
  const tagging = parseXml(body, 'Tagging');
  const tagSet = tagging['TagSet'];
  if (tagSet === undefined) throw new S3Error('MalformedXML');
  const tags: Tag[] = [];
  const set = tagSet === '' ? {} : objectOf(tagSet);
  for (const node of listOf(set['Tag'])) {
    const tag = objectOf(node);
    const key = textOf(tag['Key']);
    const value = textOf(tag['Value']) ?? '';
    if (key === undefined) throw new S3Error('MalformedXML');
    tags.push({ key, value });
  }
  validateTags(tags, countMax);
  return tags;
}

/**
 * CreateBucket's x-amz-acl / x-amz-grant-* and x-amz-object-ownership: the
 * new bucket's access settings (null: private, no ownership controls).
 */
function bucketAccessFromHeaders(context: RequestContext): BucketAccessSettings | null {
  const ownershipHeader = context.headers['x-amz-object-ownership'];
  const ownership = typeof ownershipHeader === 'string' ? parseObjectOwnershipHeader(ownershipHeader) : undefined;
  const creator = context.access.displayOwner(context.ownerId);
  const requested = aclFromHeaders(context.headers, 'bucket', creator, context.access.directory.grantees);
  checkAclAllowed(ownership, requested, creator.id, 'CreateBucket');
  const settings: BucketAccessSettings = {};
  if (ownership !== undefined) settings.ownership = ownership;
  // Under BucketOwnerEnforced the accepted ACLs (private, bucket-owner-full-control) are the default: nothing to keep.
  if (requested !== undefined && aclsEnabled(ownership)) settings.acl = requested.acl;
  return Object.keys(settings).length === 0 ? null : settings;
}

/** An ACL's grants as comparable text (display names left out). */
function grantsKey(acl: Acl): string {
  return JSON.stringify(acl.grants.map((grant) => [grant.grantee.type === 'Group' ? grant.grantee.uri : grant.grantee.id, grant.permission]));
}
