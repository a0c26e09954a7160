/**
 * The standard condition keys of one request, from plain facts the HTTP
 * front already has. Built lazily: a request that meets no policy condition
 * never builds them (see lazyConditionKeys).
 *
 * Formats follow AWS: aws:CurrentTime is ISO 8601, aws:EpochTime seconds,
 * aws:SecureTransport "true"/"false", s3:x-amz-copy-source "bucket/key"
 * (decoded, no leading slash, no versionId), tag keys per tag.
 */
import type { Principal } from './authorize.ts';
import { type ConditionKeys, lazyConditionKeys } from './condition-keys.ts';

export interface Tag {
  key: string;
  value: string;
}

export interface RequestFacts {
  /** The socket's remote address (a trusted proxy's X-Forwarded-For only if the operator configured one). */
  sourceIp: string;
  secureTransport: boolean;
  now: Date;
  /** Node's lower-cased request headers. */
  headers: Readonly<Record<string, string | string[] | undefined>>;
  /** Decoded query parameters. */
  query: ReadonlyMap<string, string>;
  principal: Principal;
  /** The addressed version's tags (reads, tagging and ACL operations on an existing object). */
  existingObjectTags?: readonly Tag[] | undefined;
  /** Tags the request sets: x-amz-tagging, or a PutObjectTagging body. */
  requestObjectTags?: readonly Tag[] | undefined;
  /** REST-HEADER, REST-QUERY-STRING (presigned) or POST. */
  authType?: 'REST-HEADER' | 'REST-QUERY-STRING' | 'POST' | undefined;
  /** Milliseconds since a presigned URL was signed. */
  signatureAgeMs?: number | undefined;
}

/** Headers whose value is its own s3: condition key, under the same name. */
const HEADER_KEYS = [
  'x-amz-acl', 'x-amz-grant-read', 'x-amz-grant-write', 'x-amz-grant-read-acp', 'x-amz-grant-write-acp', 'x-amz-grant-full-control',
  'x-amz-metadata-directive', 'x-amz-server-side-encryption', 'x-amz-server-side-encryption-aws-kms-key-id',
  'x-amz-storage-class', 'x-amz-content-sha256', 'x-amz-object-ownership',
] as const;

/** Query parameters that are s3: condition keys of listings. */
const QUERY_KEYS = ['prefix', 'delimiter', 'max-keys'] as const;

function header(headers: RequestFacts['headers'], name: string): string | undefined {
  const value = headers[name];
  return Array.isArray(value) ? value.join(',') : value;
}

/** `x-amz-copy-source` as policies see it: `bucket/key`, decoded, without a leading slash or `?versionId=`. */
export function copySourceConditionValue(raw: string): string {
  let text = raw;
  const question = text.indexOf('?');
  if (question !== -1) text = text.slice(0, question);
  try {
    text = decodeURIComponent(text);
  } catch {
    // Left as sent: the handler refuses the malformed header; the policy sees what was sent.
  }
  return text.startsWith('/') ? text.slice(1) : text;
}

/** Every standard key of the request, built on first use. */
export function requestConditionKeys(facts: RequestFacts): ConditionKeys {
  return lazyConditionKeys(() => buildKeys(facts));
}

function buildKeys(facts: RequestFacts): ConditionKeys {
  const keys = new Map<string, readonly string[]>();
  const set = (name: string, value: string | undefined) => {
    if (value !== undefined) keys.set(name, [value]);
  };
  set('aws:sourceip', facts.sourceIp);
  set('aws:securetransport', String(facts.secureTransport));
  set('aws:currenttime', facts.now.toISOString());
  set('aws:epochtime', String(Math.floor(facts.now.getTime() / 1000)));
  set('aws:referer', header(facts.headers, 'referer'));
  set('aws:useragent', header(facts.headers, 'user-agent'));
  const principal = facts.principal;
  if (principal.kind === 'user') {
    set('aws:username', principal.name);
    set('aws:userid', principal.canonicalId);
    set('aws:principaltype', 'User');
  } else if (principal.kind === 'root') {
    set('aws:principaltype', 'Account');
  } else {
    set('aws:principaltype', 'Anonymous');
  }
  for (const name of HEADER_KEYS) set(`s3:${name}`, header(facts.headers, name));
  const copySource = header(facts.headers, 'x-amz-copy-source');
  if (copySource !== undefined) set('s3:x-amz-copy-source', copySourceConditionValue(copySource));
  for (const name of QUERY_KEYS) set(`s3:${name}`, facts.query.get(name));
  set('s3:versionid', facts.query.get('versionId'));
  for (const tag of facts.existingObjectTags ?? []) set(`s3:existingobjecttag/${tag.key.toLowerCase()}`, tag.value);
  if (facts.requestObjectTags !== undefined) {
    for (const tag of facts.requestObjectTags) set(`s3:requestobjecttag/${tag.key.toLowerCase()}`, tag.value);
    keys.set('s3:requestobjecttagkeys', facts.requestObjectTags.map((tag) => tag.key));
  }
  set('s3:authtype', facts.authType);
  if (facts.authType !== undefined) set('s3:signatureversion', 'AWS4-HMAC-SHA256');
  if (facts.signatureAgeMs !== undefined) set('s3:signatureage', String(facts.signatureAgeMs));
  return keys;
}
