/**
 * The operation table: every routed S3 operation → its handler and its
 * authorization. The `satisfies` check makes a new operation without either
 * a compile error; 'NotImplemented' answers 501 rather than a wrong success.
 */
import type { S3Operation } from '../http/route.ts';
import { S3Error } from '../util/s3-error.ts';
import type { Authorization } from './access.ts';
import * as acl from './access-control.ts';
import * as bucket from './bucket.ts';
import * as cors from './cors.ts';
import type { Handler } from './context.ts';
import { handleDeleteObjects } from './delete-objects.ts';
import * as list from './list.ts';
import * as lifecycle from './lifecycle.ts';
import * as multipart from './multipart.ts';
import * as object from './object.ts';
import { handlePostObject } from './post-object.ts';
import * as objectLock from './object-lock.ts';

async function notImplemented(): Promise<never> {
  throw new S3Error('NotImplemented');
}

/**
 * Every routed operation: its handler and how it is authorized before the
 * handler runs (src/s3/access.ts). An operation without an `authorization`
 * is a compile error, so nothing new slips past the one authorization path.
 */
export const OPERATIONS = {
  ListBuckets: { handler: bucket.handleListBuckets, authorization: { operation: 'ListBuckets' } },
  CreateBucket: { handler: bucket.handleCreateBucket, authorization: { operation: 'CreateBucket' } },
  HeadBucket: { handler: bucket.handleHeadBucket, authorization: { operation: 'HeadBucket' } },
  DeleteBucket: { handler: bucket.handleDeleteBucket, authorization: { operation: 'DeleteBucket' } },
  GetBucketLocation: { handler: bucket.handleGetBucketLocation, authorization: { operation: 'GetBucketLocation' } },
  GetBucketVersioning: { handler: bucket.handleGetBucketVersioning, authorization: { operation: 'GetBucketVersioning' } },
  PutBucketVersioning: { handler: bucket.handlePutBucketVersioning, authorization: { operation: 'PutBucketVersioning' } },
  GetBucketTagging: { handler: bucket.handleGetBucketTagging, authorization: { operation: 'GetBucketTagging' } },
  PutBucketTagging: { handler: bucket.handlePutBucketTagging, authorization: { operation: 'PutBucketTagging' } },
  DeleteBucketTagging: { handler: bucket.handleDeleteBucketTagging, authorization: { operation: 'DeleteBucketTagging' } },
  ListObjects: { handler: list.handleListObjects, authorization: { operation: 'ListObjects' } },
  ListObjectsV2: { handler: list.handleListObjects, authorization: { operation: 'ListObjectsV2' } },
  ListObjectVersions: { handler: list.handleListObjectVersions, authorization: { operation: 'ListObjectVersions' } },
  ListMultipartUploads: { handler: list.handleListMultipartUploads, authorization: { operation: 'ListMultipartUploads' } },
  DeleteObjects: { handler: handleDeleteObjects, authorization: { operation: 'DeleteObjects', object: 'per-key' } },
  PutObject: { handler: object.handlePutObject, authorization: { operation: 'PutObject' } },
  CopyObject: { handler: object.handleCopyObject, authorization: { operation: 'CopyObject' } },
  GetObject: { handler: object.handleGetObject, authorization: { operation: 'GetObject', object: 'gate' } },
  GetObjectAttributes: { handler: object.handleGetObjectAttributes, authorization: { operation: 'GetObjectAttributes', object: 'lookup' } },
  GetObjectTorrent: { handler: object.handleGetObjectTorrent, authorization: { operation: 'GetObjectTorrent', object: 'gate' } },
  HeadObject: { handler: object.handleHeadObject, authorization: { operation: 'HeadObject', object: 'gate' } },
  DeleteObject: { handler: object.handleDeleteObject, authorization: { operation: 'DeleteObject' } },
  GetObjectTagging: { handler: object.handleGetObjectTagging, authorization: { operation: 'GetObjectTagging', object: 'lookup' } },
  PutObjectTagging: { handler: object.handlePutObjectTagging, authorization: { operation: 'PutObjectTagging', object: 'lookup' } },
  DeleteObjectTagging: { handler: object.handleDeleteObjectTagging, authorization: { operation: 'DeleteObjectTagging', object: 'lookup' } },
  CreateMultipartUpload: { handler: multipart.handleCreateMultipartUpload, authorization: { operation: 'CreateMultipartUpload' } },
  UploadPart: { handler: multipart.handleUploadPart, authorization: { operation: 'UploadPart' } },
  UploadPartCopy: { handler: multipart.handleUploadPartCopy, authorization: { operation: 'UploadPartCopy' } },
  CompleteMultipartUpload: { handler: multipart.handleCompleteMultipartUpload, authorization: { operation: 'CompleteMultipartUpload' } },
  AbortMultipartUpload: { handler: multipart.handleAbortMultipartUpload, authorization: { operation: 'AbortMultipartUpload' } },
  ListParts: { handler: multipart.handleListParts, authorization: { operation: 'ListParts' } },
  GetBucketPolicy: { handler: acl.handleGetBucketPolicy, authorization: { operation: 'GetBucketPolicy' } },
  PutBucketPolicy: { handler: acl.handlePutBucketPolicy, authorization: { operation: 'PutBucketPolicy' } },
  DeleteBucketPolicy: { handler: acl.handleDeleteBucketPolicy, authorization: { operation: 'DeleteBucketPolicy' } },
  GetBucketPolicyStatus: { handler: acl.handleGetBucketPolicyStatus, authorization: { operation: 'GetBucketPolicyStatus' } },
  GetBucketAcl: { handler: acl.handleGetBucketAcl, authorization: { operation: 'GetBucketAcl' } },
  PutBucketAcl: { handler: acl.handlePutBucketAcl, authorization: { operation: 'PutBucketAcl' } },
  GetObjectAcl: { handler: acl.handleGetObjectAcl, authorization: { operation: 'GetObjectAcl', object: 'lookup' } },
  PutObjectAcl: { handler: acl.handlePutObjectAcl, authorization: { operation: 'PutObjectAcl', object: 'lookup' } },
  GetBucketOwnershipControls: { handler: acl.handleGetBucketOwnershipControls, authorization: { operation: 'GetBucketOwnershipControls' } },
  PutBucketOwnershipControls: { handler: acl.handlePutBucketOwnershipControls, authorization: { operation: 'PutBucketOwnershipControls' } },
  DeleteBucketOwnershipControls: { handler: acl.handleDeleteBucketOwnershipControls, authorization: { operation: 'DeleteBucketOwnershipControls' } },
  GetPublicAccessBlock: { handler: acl.handleGetPublicAccessBlock, authorization: { operation: 'GetPublicAccessBlock' } },
  PutPublicAccessBlock: { handler: acl.handlePutPublicAccessBlock, authorization: { operation: 'PutPublicAccessBlock' } },
  DeletePublicAccessBlock: { handler: acl.handleDeletePublicAccessBlock, authorization: { operation: 'DeletePublicAccessBlock' } },
  GetBucketCors: { handler: cors.handleGetBucketCors, authorization: { operation: 'GetBucketCors' } },
  PutBucketCors: { handler: cors.handlePutBucketCors, authorization: { operation: 'PutBucketCors' } },
  DeleteBucketCors: { handler: cors.handleDeleteBucketCors, authorization: { operation: 'DeleteBucketCors' } },
  PostObject: { handler: handlePostObject, authorization: { operation: 'PostObject', object: 'form' } },
  GetBucketLifecycleConfiguration: { handler: lifecycle.handleGetBucketLifecycleConfiguration, authorization: { operation: 'GetBucketLifecycleConfiguration' } },
  PutBucketLifecycleConfiguration: { handler: lifecycle.handlePutBucketLifecycleConfiguration, authorization: { operation: 'PutBucketLifecycleConfiguration' } },
  DeleteBucketLifecycle: { handler: lifecycle.handleDeleteBucketLifecycle, authorization: { operation: 'DeleteBucketLifecycle' } },
  GetObjectLockConfiguration: { handler: objectLock.handleGetObjectLockConfiguration, authorization: { operation: 'GetObjectLockConfiguration' } },
  PutObjectLockConfiguration: { handler: objectLock.handlePutObjectLockConfiguration, authorization: { operation: 'PutObjectLockConfiguration' } },
  GetObjectRetention: { handler: objectLock.handleGetObjectRetention, authorization: { operation: 'GetObjectRetention', object: 'lookup' } },
  PutObjectRetention: { handler: objectLock.handlePutObjectRetention, authorization: { operation: 'PutObjectRetention', object: 'lookup' } },
  GetObjectLegalHold: { handler: objectLock.handleGetObjectLegalHold, authorization: { operation: 'GetObjectLegalHold', object: 'lookup' } },
  PutObjectLegalHold: { handler: objectLock.handlePutObjectLegalHold, authorization: { operation: 'PutObjectLegalHold', object: 'lookup' } },
  NotImplemented: { handler: notImplemented, authorization: 'none' },
} as const satisfies Record<S3Operation, { handler: Handler; authorization: Authorization }>;
