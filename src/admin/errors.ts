/**
 * Admin API errors: a code, an HTTP status and a message, answered as
 * `{"code": …, "message": …, "requestId": …}`. Errors of the layers below
 * (S3Error from the engine, PrincipalError from user management, AuthzError
 * from policy parsing) are translated here, in one place.
 */
import { AuthzError } from '../authz/index.ts';
import { PrincipalError } from '../principals/principals.ts';
import { S3Error } from '../util/s3-error.ts';

export const ADMIN_ERRORS = {
  InvalidRequest: 400,
  MalformedPolicy: 400,
  AuthenticationRequired: 401,
  InvalidSignature: 403,
  /** A bearer token unknown, revoked, expired, or whose creator's key is no longer valid. */
  InvalidToken: 403,
  AccessDenied: 403,
  NoSuchOperation: 404,
  NotFound: 404,
  MethodNotAllowed: 405,
  Conflict: 409,
  RequestTooLarge: 413,
  UnsupportedMediaType: 415,
  ServiceUnavailable: 503,
  InternalError: 500,
} as const;

export type AdminErrorCode = keyof typeof ADMIN_ERRORS;

export class AdminError extends Error {
  override name = 'AdminError';
  readonly status: number;
  constructor(readonly code: AdminErrorCode, message: string) {
    super(message);
    this.status = ADMIN_ERRORS[code];
  }
}

/** Error codes of the S3 layer that mean "no such thing" or "conflicts with the current state". */
const S3_NOT_FOUND = new Set(['NoSuchBucket', 'NoSuchKey', 'NoSuchBucketPolicy', 'NoSuchUpload']);
const S3_CONFLICT = new Set(['BucketNotEmpty', 'BucketAlreadyExists', 'BucketAlreadyOwnedByYou', 'OperationAborted']);

/** Any error thrown by a handler, as the admin API answers it. Unknown errors become InternalError without their text. */
export function toAdminError(error: unknown): AdminError {
  if (error instanceof AdminError) return error;
  if (error instanceof S3Error) {
    if (S3_NOT_FOUND.has(error.code)) return new AdminError('NotFound', error.message);
    if (S3_CONFLICT.has(error.code)) return new AdminError('Conflict', error.message);
    if (error.code === 'MalformedPolicy') return new AdminError('MalformedPolicy', error.message);
    if (error.code === 'SlowDown' || error.code === 'ServiceUnavailable') return new AdminError('ServiceUnavailable', error.message);
    if (error.status >= 400 && error.status < 500) return new AdminError('InvalidRequest', `${error.code}: ${error.message}`);
    return new AdminError('InternalError', 'internal error');
  }
  if (error instanceof AuthzError) return new AdminError('MalformedPolicy', error.message);
  if (error instanceof PrincipalError) {
    if (/^no (user|access key) /.test(error.message)) return new AdminError('NotFound', error.message);
    if (/^invalid /.test(error.message)) return new AdminError('InvalidRequest', error.message);
    return new AdminError('Conflict', error.message);
  }
  return new AdminError('InternalError', 'internal error');
}
