/**
 * The standard condition keys of one request, from plain facts the HTTP
 * front already has, each computed only when a condition asks for it.
 *
 * Formats follow AWS: aws:CurrentTime is ISO 8601, aws:EpochTime seconds,
 * aws:SecureTransport "true"/"false", s3:x-amz-copy-source "bucket/key"
 * (decoded, no leading slash, no versionId), tag keys per tag.
 */
import type { Principal } from './authorize.ts';
import type { ConditionKeys } from './condition-keys.ts';

export interface Tag {
  key: string;
  value: string;
}

export interface RequestFacts {
  /** The socket's remote address (a trusted proxy's X-Forwarded-For only if the operator configured one). */
  sourceIp: string;
  secureTransport: boolean;
  /** The request's time, ms since the epoch (Date.now() when it arrived). */
  nowMs: number;
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

/**
 * The standard keys of the request. Each key is computed when a policy
 * condition first asks for it (and remembered), so a request meeting no
 * condition pays nothing, and one meeting a condition on aws:SourceIp pays
 * for that key alone.
 */
export function requestConditionKeys(facts: RequestFacts): ConditionKeys {
  const cache = new Map<string, readonly string[] | undefined>();
  return {
    get(lowerCaseName: string): readonly string[] | undefined {
      if (cache.has(lowerCaseName)) return cache.get(lowerCaseName);
      const values = computeKey(facts, lowerCaseName);
      cache.set(lowerCaseName, values);
      return values;
    },
  };
}

function one(value: string | undefined): readonly string[] | undefined {
  return value === undefined ? undefined : [value];
}

const HEADER_KEY_SET: ReadonlySet<string> = new Set(HEADER_KEYS.map((name) => `s3:${name}`));

function computeKey(facts: RequestFacts, name: string): readonly string[] | undefined {
  const principal = facts.principal;
  switch (name) {
    case 'aws:sourceip': return one(facts.sourceIp);
    case 'aws:securetransport': return one(String(facts.secureTransport));
    case 'aws:currenttime': return one(new Date(facts.nowMs).toISOString());
    case 'aws:epochtime': return one(String(Math.floor(facts.nowMs / 1000)));
    case 'aws:referer': return one(header(facts.headers, 'referer'));
    case 'aws:useragent': return one(header(facts.headers, 'user-agent'));
    case 'aws:username': return one(principal.kind === 'user' ? principal.name : undefined);
    case 'aws:userid': return one(principal.kind === 'user' ? principal.canonicalId : undefined);
    case 'aws:principaltype': return one(principal.kind === 'user' ? 'User' : principal.kind === 'root' ? 'Account' : 'Anonymous');
    case 's3:x-amz-copy-source': {
      const copySource = header(facts.headers, 'x-amz-copy-source');
      return one(copySource === undefined ? undefined : copySourceConditionValue(copySource));
    }
    case 's3:prefix': case 's3:delimiter': case 's3:max-keys': return one(facts.query.get(name.slice(3)));
    case 's3:versionid': return one(facts.query.get('versionId'));
    case 's3:requestobjecttagkeys': return facts.requestObjectTags?.map((tag) => tag.key);
    case 's3:authtype': return one(facts.authType);
    case 's3:signatureversion': return one(facts.authType === undefined ? undefined : 'AWS4-HMAC-SHA256');
    case 's3:signatureage': return one(facts.signatureAgeMs === undefined ? undefined : String(facts.signatureAgeMs));
    default:
      if (HEADER_KEY_SET.has(name)) return one(header(facts.headers, name.slice(3)));
      if (name.startsWith('s3:existingobjecttag/')) return tagValue(facts.existingObjectTags, name.slice('s3:existingobjecttag/'.length));
      if (name.startsWith('s3:requestobjecttag/')) return tagValue(facts.requestObjectTags, name.slice('s3:requestobjecttag/'.length));
      return undefined;
  }
}

/** Condition key names are lower-cased, so the tag key matches case-insensitively (docs/ACCESS.md). */
function tagValue(tags: readonly Tag[] | undefined, lowerCaseKey: string): readonly string[] | undefined {
  const tag = tags?.find((candidate) => candidate.key.toLowerCase() === lowerCaseKey);
  return tag === undefined ? undefined : [tag.value];
}
