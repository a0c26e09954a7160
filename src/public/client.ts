/**
 * talus/client: the lean S3 client (undici, SigV4, keep-alive, streamed
 * bodies, timeouts) and the AWS credential chain. See docs/LIBRARY.md.
 */
export {
  S3Client,
  S3RequestError,
  userMetadata,
  DELETE_OBJECTS_KEYS_MAX,
  type S3ClientOptions,
  type PutObjectOptions,
  type GetObjectOptions,
  type RequestOptions,
  type CreateMultipartUploadOptions,
  type CompleteMultipartUploadOptions,
  type DeleteObjectsError,
  type ObjectResponse,
  type ConnectionStats,
  type ListObjectsOptions,
  type ListObjectsPage,
  type ListedObjectsPage,
  type ListedPart,
} from '../client/s3-client.ts';
export {
  RefreshingCredentials,
  REFRESH_BEFORE_EXPIRY_MS_DEFAULT,
  type AwsCredentials,
  type CredentialProvider,
  type RefreshingCredentialsOptions,
} from '../client/credentials/refreshing-credentials.ts';
export { defaultCredentialChain, type DefaultChainOptions } from '../client/credentials/default-chain.ts';
