/**
 * talus/storage: one ObjectStorage interface over memory, a directory and any
 * S3 endpoint, opened from a URL; a buffered multipart writer; and the
 * conformance cases every implementation passes. See docs/LIBRARY.md.
 */
export {
  AlreadyExistsError,
  InvalidKeyError,
  InvalidRangeError,
  NoSuchUploadError,
  NotFoundError,
  PreconditionFailedError,
  StorageError,
  type ByteRange,
  type CompleteOptions,
  type DeleteManyError,
  type GetOptions,
  type GetResult,
  type ListedObject,
  type ListOptions,
  type ListPage,
  type MultipartOptions,
  type MultipartUpload,
  type ObjectInfo,
  type ObjectStorage,
  type PutOptions,
  type PutResult,
  type StorageBody,
  type UploadedPart,
} from '../storage/object-storage.ts';
export { MemoryStorage } from '../storage/memory-storage.ts';
export { FileStorage, type FileStorageOptions } from '../storage/file-storage.ts';
export { S3Storage, type S3StorageOptions } from '../storage/s3-storage.ts';
export { openStorage, type OpenStorageOptions } from '../storage/open-storage.ts';
export { BufferedMultipartWriter, type BufferedMultipartWriterOptions, type WriterStats } from '../storage/multipart-writer.ts';
export { conformanceCases, type ConformanceCase } from '../storage/conformance.ts';
export type { RetryPolicy } from '../backend/retry.ts';
