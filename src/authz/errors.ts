/**
 * Errors the access-control layer gives for bad input (policies, ACLs,
 * ownership and public-access-block documents). Authorization itself never
 * throws: it returns a decision, and every denial is 403 AccessDenied.
 *
 * These codes are not all in util/s3-error.ts yet; the wiring adds the
 * missing ones there (status and default message below are AWS's) and turns
 * an AuthzError into an S3Error with the same code, status and message.
 */
export const AUTHZ_ERRORS = {
  AccessDenied: [403, 'Access Denied'],
  AccessControlListNotSupported: [400, 'The bucket does not allow ACLs'],
  InvalidArgument: [400, 'Invalid Argument'],
  InvalidBucketAclWithObjectOwnership: [400, 'Bucket cannot have ACLs set with ObjectOwnership\'s BucketOwnerEnforced setting'],
  InvalidRequest: [400, 'Invalid Request'],
  MalformedACLError: [400, 'The XML you provided was not well-formed or did not validate against our published schema'],
  MalformedPolicy: [400, 'Policies must be valid JSON and the first byte must be \'{\''],
  MalformedXML: [400, 'The XML you provided was not well-formed or did not validate against our published schema.'],
  UnresolvableGrantByEmailAddress: [400, 'The e-mail address you provided does not match any account on record.'],
  NoSuchBucketPolicy: [404, 'The bucket policy does not exist'],
  OwnershipControlsNotFoundError: [404, 'The bucket ownership controls were not found'],
  NoSuchPublicAccessBlockConfiguration: [404, 'The public access block configuration was not found'],
} as const satisfies Record<string, readonly [number, string]>;

export type AuthzErrorCode = keyof typeof AUTHZ_ERRORS;

export class AuthzError extends Error {
  override name = 'AuthzError';
  readonly code: AuthzErrorCode;
  readonly status: number;
  /** Extra elements for the <Error> document (ArgumentName, ArgumentValue, …), as AWS gives them. */
  readonly details: Readonly<Record<string, string>>;

  constructor(code: AuthzErrorCode, message?: string, details: Record<string, string> = {}) {
    const [status, defaultMessage] = AUTHZ_ERRORS[code];
    super(message ?? defaultMessage);
    this.code = code;
    this.status = status;
    this.details = details;
  }
}

export function isAuthzError(error: unknown): error is AuthzError {
  return error instanceof AuthzError;
}
