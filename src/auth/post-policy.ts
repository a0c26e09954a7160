/**
 * POST Object (browser form uploads): the signature over the form's policy
 * document and the policy itself — its expiration and its conditions.
 * SigV4 (x-amz-algorithm, x-amz-credential, x-amz-date, x-amz-signature: the
 * hex HMAC of the base64 policy under the day's signing key) and, as AWS still
 * accepts and ceph/s3-tests sends, the older AWSAccessKeyId + signature
 * (base64 HMAC-SHA1 of the policy).
 * https://docs.aws.amazon.com/AmazonS3/latest/API/sigv4-HTTPPOSTConstructPolicy.html
 * https://docs.aws.amazon.com/AmazonS3/latest/API/sigv4-post-example.html
 *
 * Form field names are case-insensitive (the caller lower-cases them); values are not.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { S3Error } from '../util/s3-error.ts';
import { ALGORITHM, SCOPE_TERMINATOR, SERVICE, hmac, signatureMatches, signingKey } from './signing.ts';
import type { SecretLookup } from './types.ts';

export type PolicyCondition =
  | { kind: 'eq' | 'starts-with'; field: string; value: string }
  | { kind: 'content-length-range'; min: number; max: number };

export interface PostPolicy {
  expirationMs: number;
  conditions: PolicyCondition[];
}

/** The form's signer, or null for a form with neither policy nor signature (an anonymous upload). */
export function verifyPostSignature(fields: ReadonlyMap<string, string>, lookup: SecretLookup): string | null {
  const policy = fields.get('policy');
  const v4Signature = fields.get('x-amz-signature');
  const v2Signature = fields.get('signature');
  if (policy === undefined && v4Signature === undefined && v2Signature === undefined) return null;
  if (policy === undefined) throw new S3Error('InvalidArgument', 'Bucket POST must contain a field named \'policy\'.', { ArgumentName: 'policy' });
  if (v4Signature !== undefined) return verifyV4(fields, policy, v4Signature, lookup);
  if (v2Signature !== undefined) {
    const accessKeyId = required(fields, 'awsaccesskeyid');
    const secret = secretOf(lookup, accessKeyId);
    const expected = createHmac('sha1', secret).update(policy).digest();
    const provided = Buffer.from(v2Signature, 'base64');
    if (provided.length !== expected.length || !timingSafeEqual(provided, expected)) throw new S3Error('SignatureDoesNotMatch', undefined, { AWSAccessKeyId: accessKeyId });
    return accessKeyId;
  }
  throw new S3Error('InvalidArgument', 'Bucket POST must contain a field named \'x-amz-signature\'.', { ArgumentName: 'x-amz-signature' });
}

function verifyV4(fields: ReadonlyMap<string, string>, policy: string, signature: string, lookup: SecretLookup): string {
  const algorithm = required(fields, 'x-amz-algorithm');
  if (algorithm !== ALGORITHM) throw new S3Error('InvalidArgument', `Unsupported x-amz-algorithm ${algorithm.slice(0, 32)}.`, { ArgumentName: 'x-amz-algorithm' });
  const credential = required(fields, 'x-amz-credential');
  const amzDate = required(fields, 'x-amz-date');
  const parts = credential.split('/');
  const [scopeDate, region, service, terminator] = parts.slice(-4);
  const accessKeyId = parts.slice(0, -4).join('/');
  if (parts.length < 5 || accessKeyId === '' || !/^\d{8}$/.test(scopeDate ?? '') || !/^[a-z0-9-]{1,64}$/.test(region ?? '') || service !== SERVICE || terminator !== SCOPE_TERMINATOR) {
    throw new S3Error('InvalidArgument', 'The x-amz-credential field is mal-formed; expecting "<YOUR-AKID>/YYYYMMDD/REGION/s3/aws4_request".', { ArgumentName: 'x-amz-credential' });
  }
  if (!/^\d{8}T\d{6}Z$/.test(amzDate) || !amzDate.startsWith(scopeDate as string)) {
    throw new S3Error('InvalidArgument', 'The x-amz-date field must be yyyyMMddTHHmmssZ of the credential\'s date.', { ArgumentName: 'x-amz-date' });
  }
  const secret = secretOf(lookup, accessKeyId);
  const expected = hmac(signingKey(secret, scopeDate as string, region as string), policy);
  if (!signatureMatches(expected, signature)) throw new S3Error('SignatureDoesNotMatch', undefined, { AWSAccessKeyId: accessKeyId });
  return accessKeyId;
}

function required(fields: ReadonlyMap<string, string>, name: string): string {
  const value = fields.get(name);
  if (value === undefined) throw new S3Error('InvalidArgument', `Bucket POST must contain a field named '${name}'.`, { ArgumentName: name });
  return value;
}

function secretOf(lookup: SecretLookup, accessKeyId: string): string {
  const secret = lookup(accessKeyId);
  if (secret === undefined) throw new S3Error('InvalidAccessKeyId', undefined, { AWSAccessKeyId: accessKeyId });
  return secret;
}

/** ISO 8601 as AWS requires it in a policy, e.g. 2026-12-30T12:00:00.000Z. */
const EXPIRATION = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?Z$/;

function invalidPolicy(message: string): S3Error {
  return new S3Error('InvalidPolicyDocument', `Invalid Policy: ${message}`);
}

/** The base64 policy field → its expiration and conditions; anything malformed is 400 InvalidPolicyDocument. */
export function parsePostPolicy(base64: string): PostPolicy {
  let document: unknown;
  try {
    document = JSON.parse(Buffer.from(base64, 'base64').toString('utf8'));
  } catch {
    throw invalidPolicy('Invalid JSON.');
  }
  if (typeof document !== 'object' || document === null || Array.isArray(document)) throw invalidPolicy('Invalid JSON.');
  const { expiration, conditions } = document as Record<string, unknown>;
  if (typeof expiration !== 'string') throw invalidPolicy('Policy missing expiration.');
  if (!EXPIRATION.test(expiration) || Number.isNaN(Date.parse(expiration))) throw invalidPolicy('Invalid \'expiration\' value: must be ISO 8601 (YYYY-MM-DDThh:mm:ssZ).');
  if (!Array.isArray(conditions)) throw invalidPolicy('Policy missing conditions.');
  return { expirationMs: Date.parse(expiration), conditions: conditions.map(parseCondition) };
}

function parseCondition(node: unknown): PolicyCondition {
  if (Array.isArray(node)) {
    const operator = typeof node[0] === 'string' ? node[0].toLowerCase() : '';
    if (operator === 'content-length-range') {
      if (node.length !== 3) throw invalidPolicy('Invalid content-length-range condition: expecting ["content-length-range", min, max].');
      const min = byteCount(node[1]);
      const max = byteCount(node[2]);
      if (min > max) throw invalidPolicy('Invalid content-length-range condition: min exceeds max.');
      return { kind: 'content-length-range', min, max };
    }
    if ((operator === 'eq' || operator === 'starts-with') && node.length === 3 && typeof node[1] === 'string' && typeof node[2] === 'string' && node[1].startsWith('$')) {
      return { kind: operator, field: node[1].slice(1).toLowerCase(), value: node[2] };
    }
    throw invalidPolicy(`Invalid condition: ${JSON.stringify(node).slice(0, 128)}`);
  }
  if (typeof node === 'object' && node !== null) {
    const entries = Object.entries(node);
    const [only] = entries;
    if (entries.length === 1 && only !== undefined && typeof only[1] === 'string') return { kind: 'eq', field: only[0].toLowerCase(), value: only[1] };
  }
  throw invalidPolicy(`Invalid condition: ${JSON.stringify(node).slice(0, 128)}`);
}

function byteCount(value: unknown): number {
  const number = typeof value === 'string' && /^\d+$/.test(value) ? Number(value) : value;
  if (typeof number !== 'number' || !Number.isSafeInteger(number) || number < 0) throw invalidPolicy('Invalid content-length-range condition: expecting integers ≥ 0.');
  return number;
}

/**
 * Fields that need no condition (AWS: the signature, the file, the policy and
 * x-ignore-*; the v2 signature's own fields; checksums, which can only make
 * an upload fail, as Ceph RGW and ceph/s3-tests have it).
 */
function isExempt(name: string): boolean {
  return name === 'x-amz-signature' || name === 'file' || name === 'policy' || name === 'signature' || name === 'awsaccesskeyid'
    || name.startsWith('x-ignore-') || name.startsWith('x-amz-checksum-');
}

function denied(message: string): S3Error {
  return new S3Error('AccessDenied', `Invalid according to Policy: ${message}`);
}

/**
 * Checks the policy against the form: not expired, every condition holds
 * (`bucket` is the URL's bucket, never a form field's), and every field that
 * is not exempt is named by a condition. Returns the allowed file sizes.
 */
export function checkPostPolicy(policy: PostPolicy, fields: ReadonlyMap<string, string>, bucket: string, nowMs: number): { minBytes: number; maxBytes: number | undefined } {
  if (policy.expirationMs <= nowMs) throw denied('Policy expired.');
  const covered = new Set<string>();
  let minBytes = 0;
  let maxBytes: number | undefined;
  for (const condition of policy.conditions) {
    if (condition.kind === 'content-length-range') {
      minBytes = Math.max(minBytes, condition.min);
      maxBytes = Math.min(maxBytes ?? condition.max, condition.max);
      continue;
    }
    covered.add(condition.field);
    const actual = condition.field === 'bucket' ? bucket : (fields.get(condition.field) ?? '');
    if (!conditionHolds(condition.kind, condition.field, actual, condition.value)) {
      throw denied(`Policy Condition failed: ${JSON.stringify([condition.kind, `$${condition.field}`, condition.value])}`);
    }
  }
  for (const name of fields.keys()) {
    if (!covered.has(name) && !isExempt(name)) throw denied(`Extra input fields: ${name}`);
  }
  return { minBytes, maxBytes };
}

function conditionHolds(kind: 'eq' | 'starts-with', field: string, actual: string, value: string): boolean {
  if (kind === 'eq') return actual === value;
  // A Content-Type may list several types: each must match (AWS).
  if (field === 'content-type') return actual.split(',').every((part) => part.trim().startsWith(value));
  return actual.startsWith(value);
}
