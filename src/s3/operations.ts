/**
 * The operation table: every routed S3 operation → its handler. The
 * `satisfies` check makes a new operation without a handler a compile error;
 * 'NotImplemented' answers 501 rather than a wrong success.
 */
import type { S3Operation } from '../http/route.ts';
import { S3Error } from '../util/s3-error.ts';
import * as bucket from './bucket.ts';
import type { Handler } from './context.ts';
import { handleDeleteObjects } from './delete-objects.ts';
import * as list from './list.ts';
import * as multipart from './multipart.ts';
import * as object from './object.ts';

async function notImplemented(): Promise<never> {
  throw new S3Error('NotImplemented');
}

export const HANDLERS = {
  ListBuckets: bucket.handleListBuckets,
  CreateBucket: bucket.handleCreateBucket,
  HeadBucket: bucket.handleHeadBucket,
  DeleteBucket: bucket.handleDeleteBucket,
  GetBucketLocation: bucket.handleGetBucketLocation,
  GetBucketVersioning: bucket.handleGetBucketVersioning,
  PutBucketVersioning: bucket.handlePutBucketVersioning,
  GetBucketTagging: bucket.handleGetBucketTagging,
  PutBucketTagging: bucket.handlePutBucketTagging,
  DeleteBucketTagging: bucket.handleDeleteBucketTagging,
  ListObjects: list.handleListObjects,
  ListObjectsV2: list.handleListObjects,
  ListObjectVersions: list.handleListObjectVersions,
  ListMultipartUploads: list.handleListMultipartUploads,
  DeleteObjects: handleDeleteObjects,
  PutObject: object.handlePutObject,
  CopyObject: object.handleCopyObject,
  GetObject: object.handleGetObject,
  GetObjectAttributes: object.handleGetObjectAttributes,
  HeadObject: object.handleHeadObject,
  DeleteObject: object.handleDeleteObject,
  GetObjectTagging: object.handleGetObjectTagging,
  PutObjectTagging: object.handlePutObjectTagging,
  DeleteObjectTagging: object.handleDeleteObjectTagging,
  CreateMultipartUpload: multipart.handleCreateMultipartUpload,
  UploadPart: multipart.handleUploadPart,
  UploadPartCopy: multipart.handleUploadPartCopy,
  CompleteMultipartUpload: multipart.handleCompleteMultipartUpload,
  AbortMultipartUpload: multipart.handleAbortMultipartUpload,
  ListParts: multipart.handleListParts,
  NotImplemented: notImplemented,
} as const satisfies Record<S3Operation, Handler>;
