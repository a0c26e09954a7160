/**
 * Routing table: every operation from method + path + query + the copy-source
 * header, in path style and virtual-host style, plus unsupported
 * sub-resources, which must route to NotImplemented.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseQuery, resolveAddress, route, type S3Operation } from './route.ts';

const CASES: [string, string, S3Operation, Record<string, string>?][] = [
  ['GET', '/', 'ListBuckets'],
  ['PUT', '/b', 'CreateBucket'],
  ['HEAD', '/b', 'HeadBucket'],
  ['DELETE', '/b', 'DeleteBucket'],
  ['GET', '/b?location', 'GetBucketLocation'],
  ['GET', '/b?versioning', 'GetBucketVersioning'],
  ['PUT', '/b?versioning', 'PutBucketVersioning'],
  ['GET', '/b?tagging', 'GetBucketTagging'],
  ['PUT', '/b?tagging', 'PutBucketTagging'],
  ['DELETE', '/b?tagging', 'DeleteBucketTagging'],
  ['GET', '/b', 'ListObjects'],
  ['GET', '/b?list-type=2&prefix=x', 'ListObjectsV2'],
  ['GET', '/b?versions', 'ListObjectVersions'],
  ['GET', '/b?uploads', 'ListMultipartUploads'],
  ['POST', '/b?delete', 'DeleteObjects'],
  ['PUT', '/b/k', 'PutObject'],
  ['PUT', '/b/k', 'CopyObject', { 'x-amz-copy-source': '/src/key' }],
  ['GET', '/b/k', 'GetObject'],
  ['HEAD', '/b/k', 'HeadObject'],
  ['DELETE', '/b/k', 'DeleteObject'],
  ['GET', '/b/k?tagging', 'GetObjectTagging'],
  ['GET', '/b/k?attributes', 'GetObjectAttributes'],
  ['PUT', '/b/k?tagging', 'PutObjectTagging'],
  ['DELETE', '/b/k?tagging', 'DeleteObjectTagging'],
  ['POST', '/b/k?uploads', 'CreateMultipartUpload'],
  ['PUT', '/b/k?partNumber=1&uploadId=u', 'UploadPart'],
  ['PUT', '/b/k?partNumber=1&uploadId=u', 'UploadPartCopy', { 'x-amz-copy-source': '/src/key' }],
  ['POST', '/b/k?uploadId=u', 'CompleteMultipartUpload'],
  ['DELETE', '/b/k?uploadId=u', 'AbortMultipartUpload'],
  ['GET', '/b/k?uploadId=u', 'ListParts'],
  ['GET', '/b?cors', 'GetBucketCors'],
  ['PUT', '/b?cors', 'PutBucketCors'],
  ['DELETE', '/b?cors', 'DeleteBucketCors'],
  ['GET', '/b/k?cors', 'NotImplemented'],
  ['POST', '/b', 'PostObject', { 'content-type': 'multipart/form-data; boundary=x' }],
  ['POST', '/b', 'NotImplemented', { 'content-type': 'application/x-www-form-urlencoded' }],
  ['GET', '/b?acl', 'GetBucketAcl'],
  ['PUT', '/b/k?acl', 'PutObjectAcl'],
  ['GET', '/b/k?policy', 'NotImplemented'],
  ['DELETE', '/b/k?acl', 'NotImplemented'],
  ['GET', '/b?lifecycle', 'GetBucketLifecycleConfiguration'],
  ['PUT', '/b?lifecycle', 'PutBucketLifecycleConfiguration'],
  ['DELETE', '/b?lifecycle', 'DeleteBucketLifecycle'],
  ['GET', '/b/k?lifecycle', 'NotImplemented'],
  ['GET', '/b?object-lock', 'GetObjectLockConfiguration'],
  ['PUT', '/b?object-lock', 'PutObjectLockConfiguration'],
  ['DELETE', '/b?object-lock', 'NotImplemented'],
  ['GET', '/b/k?object-lock', 'NotImplemented'],
  ['GET', '/b/k?retention&versionId=v', 'GetObjectRetention'],
  ['PUT', '/b/k?retention', 'PutObjectRetention'],
  ['DELETE', '/b/k?retention', 'NotImplemented'],
  ['PUT', '/b?retention', 'NotImplemented'],
  ['GET', '/b/k?legal-hold', 'GetObjectLegalHold'],
  ['PUT', '/b/k?legal-hold', 'PutObjectLegalHold'],
  ['DELETE', '/b/k?legal-hold', 'NotImplemented'],
  ['PUT', '/b?legal-hold', 'NotImplemented'],
  ['POST', '/b', 'NotImplemented'],
  ['PATCH', '/b/k', 'NotImplemented'],
];

function routePath(method: string, pathAndQuery: string, headers: Record<string, string>, host?: string, domain?: string) {
  const [path = '/', query = ''] = pathAndQuery.split('?');
  return route(method, resolveAddress(path, host, domain), parseQuery(query), headers);
}

test('path-style routing covers every operation', () => {
  for (const [method, path, operation, headers] of CASES) {
    assert.equal(routePath(method, path, headers ?? {}).operation, operation, `${method} ${path}`);
  }
});

test('virtual-host-style routing gives the same operations', () => {
  for (const [method, path, operation, headers] of CASES) {
    if (path === '/') continue;
    const virtualPath = path.replace(/^\/b/, '') || '/';
    const routed = routePath(method, virtualPath.startsWith('/') ? virtualPath : `/${virtualPath}`, headers ?? {}, 'b.s3.example.com:9000', 's3.example.com');
    assert.equal(routed.operation, operation, `${method} ${virtualPath}`);
    assert.equal(routed.bucket, 'b');
  }
});

test('keys are percent-decoded exactly once; + in a path is literal; + in a query is a space', () => {
  const routed = routePath('GET', '/b/a%20b+c%2Bd/%F0%9F%98%80//x?prefix=p+q%2B', {});
  assert.equal(routed.key, 'a b+c+d/😀//x');
  assert.equal(routed.query.get('prefix'), 'p q+');
});

test('malformed percent-encoding is an S3 error, not a crash', () => {
  assert.throws(() => routePath('GET', '/b/%E0%A4%A', {}), { code: 'InvalidURI' });
  assert.throws(() => routePath('GET', '/b?prefix=%zz', {}), { code: 'InvalidArgument' });
});
