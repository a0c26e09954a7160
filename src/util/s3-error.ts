/**
 * S3 errors: one table from code to HTTP status and default message, and one
 * error class. Rendering to XML happens in exactly one place (src/http).
 * Branch on `code`, never on a message.
 * https://docs.aws.amazon.com/AmazonS3/latest/API/ErrorResponses.html
 */
export const S3_ERRORS = {
  AccessDenied: [403, 'Access Denied'],
  NoSuchPublicAccessBlockConfiguration: [404, 'The public access block configuration was not found'],
  OwnershipControlsNotFoundError: [404, 'The bucket ownership controls were not found'],
  NoSuchBucketPolicy: [404, 'The bucket policy does not exist'],
  NoSuchLifecycleConfiguration: [404, 'The lifecycle configuration does not exist'],
  UnresolvableGrantByEmailAddress: [400, 'The e-mail address you provided does not match any account on record.'],
  MalformedPolicy: [400, 'Policies must be valid JSON and the first byte must be \'{\''],
  MalformedACLError: [400, 'The XML you provided was not well-formed or did not validate against our published schema'],
  InvalidBucketAclWithObjectOwnership: [400, 'Bucket cannot have ACLs set with ObjectOwnership\'s BucketOwnerEnforced setting'],
  AccessControlListNotSupported: [400, 'The bucket does not allow ACLs'],
  AuthorizationHeaderMalformed: [400, 'The authorization header is malformed.'],
  AuthorizationQueryParametersError: [400, 'Error parsing the X-Amz-Credential parameter.'],
  BadDigest: [400, 'The Content-MD5 or checksum value that you specified did not match what the server received.'],
  BucketAlreadyExists: [409, 'The requested bucket name is not available.'],
  BucketAlreadyOwnedByYou: [409, 'Your previous request to create the named bucket succeeded and you already own it.'],
  BucketNotEmpty: [409, 'The bucket you tried to delete is not empty.'],
  EntityTooLarge: [400, 'Your proposed upload exceeds the maximum allowed object size.'],
  EntityTooSmall: [400, 'Your proposed upload is smaller than the minimum allowed object size.'],
  ExpiredToken: [400, 'The provided token has expired.'],
  IncompleteBody: [400, 'You did not provide the number of bytes specified by the Content-Length HTTP header.'],
  InternalError: [500, 'We encountered an internal error. Please try again.'],
  InvalidAccessKeyId: [403, 'The AWS access key ID you provided does not exist in our records.'],
  InvalidArgument: [400, 'Invalid Argument'],
  InvalidBucketName: [400, 'The specified bucket is not valid.'],
  InvalidBucketState: [409, 'The request is not valid with the current state of the bucket.'],
  InvalidRetentionPeriod: [400, 'The retention period must be a positive integer.'],
  NoSuchObjectLockConfiguration: [404, 'The specified object does not have a ObjectLock configuration'],
  ObjectLockConfigurationNotFoundError: [404, 'Object Lock configuration does not exist for this bucket'],
  InvalidDigest: [400, 'The Content-MD5 you specified is not valid.'],
  InvalidLocationConstraint: [400, 'The specified location constraint is not valid.'],
  InvalidPart: [400, 'One or more of the specified parts could not be found. The part might not have been uploaded, or the specified entity tag might not have matched the part\'s entity tag.'],
  InvalidPartOrder: [400, 'The list of parts was not in ascending order. The parts list must be specified in order by part number.'],
  InvalidRange: [416, 'The requested range is not satisfiable'],
  InvalidRequest: [400, 'Invalid Request'],
  InvalidTag: [400, 'The tag provided was not a valid tag.'],
  KeyTooLongError: [400, 'Your key is too long.'],
  MaxMessageLengthExceeded: [400, 'Your request was too big.'],
  InvalidURI: [400, 'Couldn\'t parse the specified URI.'],
  MalformedXML: [400, 'The XML you provided was not well-formed or did not validate against our published schema.'],
  MetadataTooLarge: [400, 'Your metadata headers exceed the maximum allowed metadata size.'],
  MethodNotAllowed: [405, 'The specified method is not allowed against this resource.'],
  MissingContentLength: [411, 'You must provide the Content-Length HTTP header.'],
  MissingSecurityHeader: [400, 'Your request is missing a required header.'],
  InvalidPartNumber: [416, 'The requested partnumber is not satisfiable'],
  NoSuchBucket: [404, 'The specified bucket does not exist.'],
  NoSuchKey: [404, 'The specified key does not exist.'],
  NoSuchTagSet: [404, 'The TagSet does not exist.'],
  NoSuchUpload: [404, 'The specified multipart upload does not exist. The upload ID might be invalid, or the multipart upload might have been aborted or completed.'],
  NoSuchVersion: [404, 'The specified version does not exist.'],
  NotImplemented: [501, 'A header or operation that you provided implies functionality that is not implemented.'],
  NotModified: [304, 'Not Modified'],
  PreconditionFailed: [412, 'At least one of the preconditions that you specified did not hold.'],
  RequestHeaderSectionTooLarge: [400, 'Your request header section exceeds the maximum allowed size.'],
  RequestTimeTooSkewed: [403, 'The difference between the request time and the server\'s time is too large.'],
  RequestTimeout: [400, 'Your socket connection to the server was not read from or written to within the timeout period.'],
  ServiceUnavailable: [503, 'Please reduce your request rate.'],
  SlowDown: [503, 'Please reduce your request rate.'],
  SignatureDoesNotMatch: [403, 'The request signature we calculated does not match the signature you provided. Check your key and signing method.'],
  XAmzContentSHA256Mismatch: [400, 'The provided \'x-amz-content-sha256\' header does not match what was computed.'],
  ConditionalRequestConflict: [409, 'A conflicting operation occurred. Retry the request.'],
  NoSuchCORSConfiguration: [404, 'The CORS configuration does not exist'],
  // AWS's answer to a refused CORS preflight: code AccessForbidden, message naming CORSResponse.
  AccessForbidden: [403, 'CORSResponse: This CORS request is not allowed. This is usually because the evalution of Origin, request method / Access-Control-Request-Method or Access-Control-Request-Headers are not whitelisted by the resource\'s CORS spec.'],
  InvalidPolicyDocument: [400, 'Invalid Policy: Invalid JSON.'],
  MalformedPOSTRequest: [400, 'The body of your POST request is not well-formed multipart/form-data.'],
  // MinIO's code for a write past a bucket's hard quota (src/meta/quota.ts).
  XMinioAdminBucketQuotaExceeded: [400, 'Bucket quota exceeded'],
} as const satisfies Record<string, readonly [number, string]>;

export type S3ErrorCode = keyof typeof S3_ERRORS;

export class S3Error extends Error {
  override name = 'S3Error';
  readonly code: S3ErrorCode;
  readonly status: number;
  /** Extra elements rendered inside <Error> (e.g. ArgumentName, Key, BucketName). */
  readonly details: Readonly<Record<string, string>>;
  /** Extra response headers (e.g. x-amz-delete-marker on a 404 for a deleted key). */
  readonly headers: Readonly<Record<string, string>>;

  constructor(code: S3ErrorCode, message?: string, details: Record<string, string> = {}, headers: Record<string, string> = {}) {
    const [status, defaultMessage] = S3_ERRORS[code];
    super(message ?? defaultMessage);
    this.code = code;
    this.status = status;
    this.details = details;
    this.headers = headers;
  }
}

export function isS3Error(error: unknown): error is S3Error {
  return error instanceof S3Error;
}

/**
 * The disk holding the data directory is full (ENOSPC, EDQUOT, SQLITE_FULL).
 *
 * 503 SlowDown, not MinIO's 507 XMinioStorageFull: the AWS SDKs (v3's
 * TRANSIENT_ERROR_STATUS_CODES, botocore, the Go and Java SDKs) retry 500,
 * 502, 503 and 504 and the SlowDown code with backoff, but not 507, which
 * they fail at once; MinIO's own clients retry 503 too. Space returns
 * without a restart (DELETE still works, see DiskReserve), so a retry later
 * can succeed, and the message says why it failed.
 */
export class StorageFullError extends S3Error {
  constructor(detail: string) {
    super('SlowDown', `Insufficient storage: the server's disk is full (${detail}). Delete objects or free space, then retry.`);
    this.name = 'StorageFullError';
  }
}

/**
 * The server cannot write where it keeps its data (EACCES, EPERM, EROFS):
 * an operator's problem, not the request's, and one that a fix of
 * permissions or a remount cures without a restart. 503 like MinIO's answer
 * for a drive it cannot use; the full reason goes to the log, not the client.
 */
export class StorageUnwritableError extends S3Error {
  constructor(readonly reason: string) {
    super('ServiceUnavailable', 'The server cannot write to its storage right now; the operator has been told. Retry later.');
    this.name = 'StorageUnwritableError';
    // The log gets the stack (server.ts logs every 5xx): it names the path and errno.
    this.stack = `${this.stack ?? ''}\nCaused by: ${reason}`;
  }
}

const DISK_FULL_CODES = new Set(['ENOSPC', 'EDQUOT', 'SQLITE_FULL']);
const UNWRITABLE_CODES = new Set(['EACCES', 'EPERM', 'EROFS', 'SQLITE_READONLY', 'SQLITE_CANTOPEN', 'SQLITE_PERM']);

function codeOf(error: unknown): string | undefined {
  const code = typeof error === 'object' && error !== null ? (error as { code?: unknown }).code : undefined;
  return typeof code === 'string' ? code : undefined;
}

/** True for a full disk, whichever layer said so (node:fs, SQLite, or a StorageFullError already). */
export function isDiskFull(error: unknown): boolean {
  if (error instanceof StorageFullError) return true;
  const code = codeOf(error);
  return code !== undefined && DISK_FULL_CODES.has(code);
}

/**
 * Turns a file-system or SQLite error about the storage itself into its
 * precise S3 error; returns anything else unchanged.
 */
export function storageError(error: unknown): unknown {
  if (error instanceof S3Error) return error;
  const code = codeOf(error);
  if (code === undefined) return error;
  if (DISK_FULL_CODES.has(code)) return new StorageFullError(code);
  if (UNWRITABLE_CODES.has(code)) return new StorageUnwritableError(`${code}: ${(error as Error).message}`);
  return error;
}
