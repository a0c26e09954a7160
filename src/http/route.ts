/**
 * Routing as data: method + "is there a key" + sub-resource keyword + a
 * tie-breaking header → one S3 operation, named as AWS names it. Only
 * addressing is decided here; each handler reads its own parameters.
 */
import type { IncomingHttpHeaders } from 'node:http';
import { S3Error } from '../util/s3-error.ts';

export type S3Operation =
  | 'ListBuckets'
  | 'CreateBucket'
  | 'HeadBucket'
  | 'DeleteBucket'
  | 'GetBucketLocation'
  | 'GetBucketVersioning'
  | 'PutBucketVersioning'
  | 'GetBucketTagging'
  | 'PutBucketTagging'
  | 'DeleteBucketTagging'
  | 'ListObjects'
  | 'ListObjectsV2'
  | 'ListObjectVersions'
  | 'ListMultipartUploads'
  | 'DeleteObjects'
  | 'PutObject'
  | 'CopyObject'
  | 'GetObject'
  | 'GetObjectAttributes'
  | 'GetObjectTorrent'
  | 'HeadObject'
  | 'DeleteObject'
  | 'GetObjectTagging'
  | 'PutObjectTagging'
  | 'DeleteObjectTagging'
  | 'CreateMultipartUpload'
  | 'UploadPart'
  | 'UploadPartCopy'
  | 'CompleteMultipartUpload'
  | 'AbortMultipartUpload'
  | 'ListParts'
  | 'GetBucketPolicy'
  | 'PutBucketPolicy'
  | 'DeleteBucketPolicy'
  | 'GetBucketPolicyStatus'
  | 'GetBucketAcl'
  | 'PutBucketAcl'
  | 'GetObjectAcl'
  | 'PutObjectAcl'
  | 'GetBucketOwnershipControls'
  | 'PutBucketOwnershipControls'
  | 'DeleteBucketOwnershipControls'
  | 'GetPublicAccessBlock'
  | 'PutPublicAccessBlock'
  | 'DeletePublicAccessBlock'
  | 'GetBucketCors'
  | 'PutBucketCors'
  | 'DeleteBucketCors'
  | 'PostObject'
  | 'GetBucketLifecycleConfiguration'
  | 'PutBucketLifecycleConfiguration'
  | 'DeleteBucketLifecycle'
  | 'GetObjectLockConfiguration'
  | 'PutObjectLockConfiguration'
  | 'GetObjectRetention'
  | 'PutObjectRetention'
  | 'GetObjectLegalHold'
  | 'PutObjectLegalHold'
  | 'NotImplemented';

export interface S3Route {
  operation: S3Operation;
  /** '' for service-level requests. */
  bucket: string;
  /** '' when the request addresses the bucket itself. */
  key: string;
  /** Decoded query parameters ('+' is a space, as S3 decodes them). */
  query: ReadonlyMap<string, string>;
}

/** Sub-resources Talus does not implement yet: they must answer NotImplemented, never a wrong success. */
const UNSUPPORTED_SUBRESOURCES = new Set([
  'website', 'logging', 'notification', 'replication',
  'encryption', 'accelerate',
  'requestPayment', 'analytics', 'metrics', 'inventory', 'intelligent-tiering', 'restore', 'select',
  'torrent', 'session', 'renameObject',
]);

/** Sub-resources of buckets only: on an object they are not implemented. */
const BUCKET_ONLY_SUBRESOURCES = ['cors', 'policy', 'policyStatus', 'ownershipControls', 'publicAccessBlock', 'lifecycle'];

export function parseQuery(rawQuery: string): Map<string, string> {
  const query = new Map<string, string>();
  if (rawQuery === '') return query;
  for (const pair of rawQuery.split('&')) {
    if (pair === '') continue;
    const equals = pair.indexOf('=');
    const name = decodeQueryComponent(equals === -1 ? pair : pair.slice(0, equals));
    const value = equals === -1 ? '' : decodeQueryComponent(pair.slice(equals + 1));
    if (!query.has(name)) query.set(name, value);
  }
  return query;
}

function decodeQueryComponent(text: string): string {
  const spaced = text.includes('+') ? text.replaceAll('+', ' ') : text;
  if (!spaced.includes('%')) return spaced;
  try {
    return decodeURIComponent(spaced);
  } catch {
    throw new S3Error('InvalidArgument', 'The query string is not valid percent-encoding.');
  }
}

function decodePath(text: string): string {
  if (!text.includes('%')) return text;
  try {
    return decodeURIComponent(text);
  } catch {
    throw new S3Error('InvalidURI');
  }
}

/**
 * Splits a request into bucket and key. With a domain configured, a Host of
 * `<bucket>.<domain>` selects virtual-host style; otherwise path style.
 */
export function resolveAddress(rawPath: string, host: string | undefined, domain: string | undefined): { bucket: string; key: string } {
  if (domain !== undefined && host !== undefined) {
    const hostname = host.replace(/:\d+$/, '').toLowerCase();
    if (hostname.endsWith(`.${domain}`)) {
      const bucket = hostname.slice(0, -(domain.length + 1));
      return { bucket, key: decodePath(rawPath.slice(1)) };
    }
  }
  const path = rawPath.slice(1);
  const slash = path.indexOf('/');
  if (slash === -1) return { bucket: decodePath(path), key: '' };
  return { bucket: decodePath(path.slice(0, slash)), key: decodePath(path.slice(slash + 1)) };
}

export function route(method: string, address: { bucket: string; key: string }, query: ReadonlyMap<string, string>, headers: IncomingHttpHeaders): S3Route {
  const operation = chooseOperation(method, address.bucket, address.key, query, headers['x-amz-copy-source'] !== undefined, method === 'POST' && isFormUpload(headers));
  return { operation, bucket: address.bucket, key: address.key, query };
}

/** An HTML form upload (POST Object) is a POST of multipart/form-data to the bucket. */
function isFormUpload(headers: IncomingHttpHeaders): boolean {
  const type = headers['content-type'];
  return type !== undefined && type.slice(0, 19).toLowerCase() === 'multipart/form-data';
}

function chooseOperation(method: string, bucket: string, key: string, query: ReadonlyMap<string, string>, hasCopySource: boolean, formUpload: boolean): S3Operation {
  // An object's torrent is answered (404, no torrents served); everything else ?torrent stays unsupported.
  if (method === 'GET' && key !== '' && bucket !== '' && query.has('torrent')) return 'GetObjectTorrent';
  for (const name of query.keys()) if (UNSUPPORTED_SUBRESOURCES.has(name)) return 'NotImplemented';
  const objectLock = objectLockOperation(method, key, query);
  if (objectLock !== undefined) return objectLock;
  if (bucket === '') return method === 'GET' ? 'ListBuckets' : 'NotImplemented';
  if (key === '') return formUpload ? 'PostObject' : bucketOperation(method, query);
  if (BUCKET_ONLY_SUBRESOURCES.some((name) => query.has(name))) return 'NotImplemented';
  switch (method) {
    case 'PUT':
      if (query.has('acl')) return 'PutObjectAcl';
      if (query.has('uploadId') && query.has('partNumber')) return hasCopySource ? 'UploadPartCopy' : 'UploadPart';
      if (query.has('tagging')) return 'PutObjectTagging';
      return hasCopySource ? 'CopyObject' : 'PutObject';
    case 'GET':
      if (query.has('acl')) return 'GetObjectAcl';
      if (query.has('uploadId')) return 'ListParts';
      if (query.has('tagging')) return 'GetObjectTagging';
      if (query.has('attributes')) return 'GetObjectAttributes';
      return 'GetObject';
    case 'HEAD':
      return 'HeadObject';
    case 'DELETE':
      if (query.has('acl')) return 'NotImplemented';
      if (query.has('uploadId')) return 'AbortMultipartUpload';
      if (query.has('tagging')) return 'DeleteObjectTagging';
      return 'DeleteObject';
    case 'POST':
      if (query.has('uploads')) return 'CreateMultipartUpload';
      if (query.has('uploadId')) return 'CompleteMultipartUpload';
      return 'NotImplemented';
    default:
      return 'NotImplemented';
  }
}

function bucketOperation(method: string, query: ReadonlyMap<string, string>): S3Operation {
  switch (method) {
    case 'PUT':
      if (query.has('lifecycle')) return 'PutBucketLifecycleConfiguration';
      if (query.has('policy')) return 'PutBucketPolicy';
      if (query.has('acl')) return 'PutBucketAcl';
      if (query.has('ownershipControls')) return 'PutBucketOwnershipControls';
      if (query.has('publicAccessBlock')) return 'PutPublicAccessBlock';
      if (query.has('policyStatus')) return 'NotImplemented';
      if (query.has('versioning')) return 'PutBucketVersioning';
      if (query.has('tagging')) return 'PutBucketTagging';
      if (query.has('cors')) return 'PutBucketCors';
      return 'CreateBucket';
    case 'GET':
      if (query.has('lifecycle')) return 'GetBucketLifecycleConfiguration';
      if (query.has('policy')) return 'GetBucketPolicy';
      if (query.has('policyStatus')) return 'GetBucketPolicyStatus';
      if (query.has('acl')) return 'GetBucketAcl';
      if (query.has('ownershipControls')) return 'GetBucketOwnershipControls';
      if (query.has('publicAccessBlock')) return 'GetPublicAccessBlock';
      if (query.has('location')) return 'GetBucketLocation';
      if (query.has('versioning')) return 'GetBucketVersioning';
      if (query.has('tagging')) return 'GetBucketTagging';
      if (query.has('cors')) return 'GetBucketCors';
      if (query.has('versions')) return 'ListObjectVersions';
      if (query.has('uploads')) return 'ListMultipartUploads';
      if (query.get('list-type') === '2') return 'ListObjectsV2';
      return 'ListObjects';
    case 'HEAD':
      return 'HeadBucket';
    case 'DELETE':
      if (query.has('lifecycle')) return 'DeleteBucketLifecycle';
      if (query.has('policy')) return 'DeleteBucketPolicy';
      if (query.has('ownershipControls')) return 'DeleteBucketOwnershipControls';
      if (query.has('publicAccessBlock')) return 'DeletePublicAccessBlock';
      if (query.has('acl') || query.has('policyStatus')) return 'NotImplemented';
      if (query.has('tagging')) return 'DeleteBucketTagging';
      if (query.has('cors')) return 'DeleteBucketCors';
      return 'DeleteBucket';
    case 'POST':
      if (query.has('delete')) return 'DeleteObjects';
      return 'NotImplemented';
    default:
      return 'NotImplemented';
  }
}

/**
 * Object Lock's sub-resources: `object-lock` on a bucket, `retention` and
 * `legal-hold` on an object, GET and PUT only. Any other combination is
 * NotImplemented, so a DELETE ?object-lock never falls through to DeleteBucket.
 * Undefined when the request names none of them.
 */
function objectLockOperation(method: string, key: string, query: ReadonlyMap<string, string>): S3Operation | undefined {
  if (query.has('object-lock')) {
    if (key !== '') return 'NotImplemented';
    return method === 'PUT' ? 'PutObjectLockConfiguration' : method === 'GET' ? 'GetObjectLockConfiguration' : 'NotImplemented';
  }
  if (query.has('retention')) {
    if (key === '') return 'NotImplemented';
    return method === 'PUT' ? 'PutObjectRetention' : method === 'GET' ? 'GetObjectRetention' : 'NotImplemented';
  }
  if (query.has('legal-hold')) {
    if (key === '') return 'NotImplemented';
    return method === 'PUT' ? 'PutObjectLegalHold' : method === 'GET' ? 'GetObjectLegalHold' : 'NotImplemented';
  }
  return undefined;
}
