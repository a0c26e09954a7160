/**
 * IAM policy documents: parsed and validated once (bucket policies are
 * refused with MalformedPolicy and the message S3 gives), compiled into
 * matchers, then evaluated per request without re-reading the JSON.
 *
 * Matching: actions case-insensitively, resources case-sensitively, both with
 * `*` and `?`; resources may use policy variables (`${aws:username}`).
 */
import { ALL_ACTIONS, type S3Action } from './actions.ts';
import { type ConditionKeys, type Template, compileTemplate, resolveTemplatePattern } from './condition-keys.ts';
import { type CompiledConditionEntry, compileCondition, conditionsHold } from './conditions.ts';
import { AuthzError } from './errors.ts';
import { type TextMatcher, anyMatches, compileWildcard, wildcardSource } from './wildcard.ts';

/**
 * AWS: "Bucket policies are limited to 20 KB in size", counted without the
 * document's insignificant whitespace (observed: a pretty-printed policy
 * over 20 KiB is accepted when its compact form is within it).
 */
export const BUCKET_POLICY_BYTES_MAX = 20 * 1024;
/** A policy text of any kind, whitespace included: bounds the parse work before the compact size is known. */
export const POLICY_TEXT_BYTES_MAX = 256 * 1024;
/**
 * Identity policies (users' and keys'). AWS's managed-policy limit is 6,144
 * characters without whitespace; MinIO accepts far larger. We take the bucket
 * policy's 20 KiB: generous for hand-written policies, still bounded.
 */
export const IDENTITY_POLICY_BYTES_MAX = 20 * 1024;
/** Statements per policy: bounds per-request evaluation work (a 20 KiB document holds far fewer anyway). */
export const POLICY_STATEMENTS_MAX = 256;

export const POLICY_VERSIONS = ['2012-10-17', '2008-10-17'] as const;

export type PolicyKind = 'bucket' | 'identity';
export type Effect = 'Allow' | 'Deny';

export interface ParsePolicyOptions {
  kind: PolicyKind;
  /** Bucket policies: the bucket it is attached to (every Resource must be in it, as S3 requires). */
  bucket?: string;
  /** Optional: refuses principals naming nobody known (S3 answers "Invalid principal in policy"). */
  isKnownPrincipal?: (principal: string) => boolean;
}

interface CompiledResource {
  /** Literal or wildcard pattern, compiled; undefined when it uses variables. */
  matcher?: TextMatcher;
  template?: Template;
}

export interface CompiledPrincipal {
  /** `"*"` or `{"AWS": "*"}`: everyone, anonymous included. */
  anyone: boolean;
  /** Exact identities named (canonical IDs, IAM-style ARNs). */
  ids: ReadonlySet<string>;
}

export interface CompiledStatement {
  sid: string | undefined;
  effect: Effect;
  /** Action or NotAction patterns (lower-cased) with the NotAction flag. */
  actionPatterns: readonly string[];
  notAction: boolean;
  actions: readonly TextMatcher[];
  resourcePatterns: readonly string[];
  notResource: boolean;
  resources: readonly CompiledResource[];
  /** Absent in identity policies. */
  principal: CompiledPrincipal | undefined;
  notPrincipal: boolean;
  conditions: readonly CompiledConditionEntry[];
}

export interface CompiledPolicy {
  kind: PolicyKind;
  /** The document exactly as stored: GetBucketPolicy gives these bytes back (as s3-tests expects). */
  text: string;
  version: string | undefined;
  statements: readonly CompiledStatement[];
}

/** Who is asking, as policies see it: anonymous, or the list of identities a principal entry may name. */
export type PolicyPrincipal = { anonymous: true } | { anonymous: false; ids: readonly string[] };

/**
 * An admin API operation's permission (`admin:<Operation>`, src/admin/).
 * Only identity policies may name them, and only an explicit `admin:` pattern
 * grants one: `"Action": "*"` does not (src/authz/admin.ts).
 */
export type AdminAction = `admin:${string}`;

export interface PolicyRequest {
  action: S3Action | AdminAction;
  resource: string;
  /** Required for bucket policies (statements name principals); ignored by identity policies. */
  principal?: PolicyPrincipal;
  keys: ConditionKeys;
}

export interface PolicyVerdict {
  /** 'None' when no statement applies (an implicit deny). */
  effect: Effect | 'None';
  /** The deciding statement's Sid (the first Deny, else the first Allow), for logs. */
  sid?: string | undefined;
}

function malformed(message: string): AuthzError {
  return new AuthzError('MalformedPolicy', message);
}

/** MinIO's wording; S3's own message for this case is not on record. */
const TOO_LARGE = 'Policy exceeds the maximum allowed document size.';

const STATEMENT_FIELDS = new Set(['Sid', 'Effect', 'Principal', 'NotPrincipal', 'Action', 'NotAction', 'Resource', 'NotResource', 'Condition']);
const DOCUMENT_FIELDS = new Set(['Version', 'Id', 'Statement']);

/** Parses, validates and compiles a policy document. Throws AuthzError('MalformedPolicy') with S3's message. */
export function parsePolicy(text: string, options: ParsePolicyOptions): CompiledPolicy {
  if (Buffer.byteLength(text, 'utf8') > POLICY_TEXT_BYTES_MAX) throw malformed(TOO_LARGE);
  if (!text.trimStart().startsWith('{')) throw malformed('Policies must be valid JSON and the first byte must be \'{\'');
  let document: unknown;
  try {
    document = JSON.parse(text);
  } catch {
    throw malformed('This policy contains invalid Json');
  }
  const limit = options.kind === 'bucket' ? BUCKET_POLICY_BYTES_MAX : IDENTITY_POLICY_BYTES_MAX;
  if (Buffer.byteLength(JSON.stringify(document), 'utf8') > limit) throw malformed(TOO_LARGE);
  if (typeof document !== 'object' || document === null || Array.isArray(document)) throw malformed('This policy contains invalid Json');
  const fields = document as Record<string, unknown>;
  for (const name of Object.keys(fields)) if (!DOCUMENT_FIELDS.has(name)) throw malformed(`Unknown field ${name}`);
  const version = fields['Version'];
  if (version !== undefined && (typeof version !== 'string' || !(POLICY_VERSIONS as readonly string[]).includes(version))) {
    throw malformed('The policy must contain a valid version string');
  }
  if (fields['Id'] !== undefined && typeof fields['Id'] !== 'string') throw malformed('Id must be a string');
  const rawStatements = fields['Statement'];
  if (rawStatements === undefined) throw malformed('Missing required field Statement');
  const list = Array.isArray(rawStatements) ? rawStatements : [rawStatements];
  if (list.length === 0) throw malformed('Could not parse the policy: Statement is empty!');
  if (list.length > POLICY_STATEMENTS_MAX) throw malformed(`Policies cannot have more than ${POLICY_STATEMENTS_MAX} statements`);
  const sids = new Set<string>();
  const statements = list.map((raw) => {
    const statement = compileStatement(raw, options, version as string | undefined);
    if (statement.sid !== undefined && statement.sid !== '') {
      if (sids.has(statement.sid)) throw malformed('Statement IDs (SID) in a single policy must be unique.');
      sids.add(statement.sid);
    }
    return statement;
  });
  return { kind: options.kind, text, version: version as string | undefined, statements };
}

function stringList(value: unknown, field: string, invalid: string): string[] {
  const list = Array.isArray(value) ? value : [value];
  if (list.length === 0) throw malformed(invalid);
  for (const item of list) if (typeof item !== 'string') throw malformed(`${field} must be a string or an array of strings`);
  return list as string[];
}

function compileStatement(raw: unknown, options: ParsePolicyOptions, version: string | undefined): CompiledStatement {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw malformed('Statement must be an object');
  const fields = raw as Record<string, unknown>;
  for (const name of Object.keys(fields)) if (!STATEMENT_FIELDS.has(name)) throw malformed(`Unknown field ${name}`);
  const sid = fields['Sid'];
  if (sid !== undefined && typeof sid !== 'string') throw malformed('Sid must be a string');
  const effect = fields['Effect'];
  if (effect === undefined) throw malformed('Missing required field Effect');
  if (effect !== 'Allow' && effect !== 'Deny') throw malformed(`Invalid effect: ${String(effect)}`);

  if ((fields['Action'] === undefined) === (fields['NotAction'] === undefined)) {
    throw malformed(fields['Action'] === undefined ? 'Missing required field Action' : 'Statement cannot have both Action and NotAction');
  }
  const notAction = fields['NotAction'] !== undefined;
  const actionPatterns = stringList(notAction ? fields['NotAction'] : fields['Action'], 'Action', 'Policy has invalid action').map((pattern) => validateAction(pattern, options.kind));

  if ((fields['Resource'] === undefined) === (fields['NotResource'] === undefined)) {
    throw malformed(fields['Resource'] === undefined ? 'Missing required field Resource' : 'Statement cannot have both Resource and NotResource');
  }
  const notResource = fields['NotResource'] !== undefined;
  const resourcePatterns = stringList(notResource ? fields['NotResource'] : fields['Resource'], 'Resource', 'Policy has invalid resource');
  for (const pattern of resourcePatterns) validateResource(pattern, options);

  let principal: CompiledPrincipal | undefined;
  let notPrincipal = false;
  const hasPrincipal = fields['Principal'] !== undefined || fields['NotPrincipal'] !== undefined;
  if (options.kind === 'identity') {
    if (hasPrincipal) throw malformed('Policy document should not specify a principal.');
  } else {
    if (!hasPrincipal) throw malformed('Missing required field Principal');
    if (fields['Principal'] !== undefined && fields['NotPrincipal'] !== undefined) throw malformed('Statement cannot have both Principal and NotPrincipal');
    notPrincipal = fields['NotPrincipal'] !== undefined;
    // IAM does not support NotPrincipal with Allow (it would grant everyone but a few); S3 refuses it.
    if (notPrincipal && effect === 'Allow') throw malformed('NotPrincipal is not supported with Effect Allow');
    principal = compilePrincipal(notPrincipal ? fields['NotPrincipal'] : fields['Principal'], options);
  }

  // Policy variables exist from version 2012-10-17 on; in older documents `${` is literal text.
  const variables = version === '2012-10-17';
  const conditions = fields['Condition'] === undefined ? [] : compileCondition(fields['Condition'], variables);
  return {
    sid: sid as string | undefined,
    effect,
    actionPatterns,
    notAction,
    actions: actionPatterns.map((pattern) => compileWildcard(pattern, true)),
    resourcePatterns,
    notResource,
    resources: resourcePatterns.map((pattern) => compileResource(pattern, variables)),
    principal,
    notPrincipal,
    conditions,
  };
}

/**
 * `*`, or `s3:` followed by a pattern matching at least one S3 action, or (in
 * identity policies) `admin:` followed by a pattern of operation names.
 * Returns it lower-cased.
 */
function validateAction(pattern: string, kind: PolicyKind): string {
  if (pattern === '*') return '*';
  const lower = pattern.toLowerCase();
  if (kind === 'identity' && /^admin:[a-z0-9*?]+$/.test(lower)) return lower;
  if (!lower.startsWith('s3:')) throw malformed('Policy has invalid action');
  const matcher = compileWildcard(lower, true);
  if (!ALL_ACTIONS.some((action) => matcher(action))) throw malformed('Policy has invalid action');
  return lower;
}

const ARN_PREFIX = 'arn:aws:s3:::';

function validateResource(pattern: string, options: ParsePolicyOptions): void {
  if (pattern === '*') {
    if (options.kind === 'bucket') throw malformed('Policy has invalid resource');
    return;
  }
  if (!pattern.startsWith(ARN_PREFIX) || pattern.length === ARN_PREFIX.length) throw malformed('Policy has invalid resource');
  if (options.kind === 'bucket' && options.bucket !== undefined) {
    // The bucket part (up to the first '/') must be able to name this bucket.
    const rest = pattern.slice(ARN_PREFIX.length);
    const slash = rest.indexOf('/');
    const bucketPart = slash === -1 ? rest : rest.slice(0, slash);
    const couldNameBucket = new RegExp(`^${wildcardSource(bucketPart)}$`).test(options.bucket)
      || (slash === -1 && new RegExp(`^${wildcardSource(rest)}$`).test(`${options.bucket}/x`));
    if (!couldNameBucket) throw malformed('Policy has invalid resource');
  }
}

function compileResource(pattern: string, variables: boolean): CompiledResource {
  if (variables && pattern.includes('${')) return { template: compileTemplate(pattern) };
  return { matcher: compileWildcard(pattern, false) };
}

const PRINCIPAL_ID = /^[A-Za-z0-9][A-Za-z0-9._@+=,-]{0,127}$/;
const PRINCIPAL_ARN = /^arn:aws:iam::([A-Za-z0-9._-]{0,128}):(root|user\/[\w+=,.@/-]{1,512})$/;

function compilePrincipal(raw: unknown, options: ParsePolicyOptions): CompiledPrincipal {
  if (raw === '*') return { anyone: true, ids: new Set() };
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw malformed('Invalid principal in policy');
  const ids = new Set<string>();
  let anyone = false;
  const entries = Object.entries(raw as Record<string, unknown>);
  if (entries.length === 0) throw malformed('Invalid principal in policy');
  for (const [type, value] of entries) {
    if (type !== 'AWS' && type !== 'CanonicalUser') throw malformed('Invalid principal in policy');
    for (const id of stringList(value, 'Principal', 'Invalid principal in policy')) {
      if (id === '*' && type === 'AWS') { anyone = true; continue; }
      if (!PRINCIPAL_ID.test(id) && !PRINCIPAL_ARN.test(id)) throw malformed('Invalid principal in policy');
      if (options.isKnownPrincipal !== undefined && !options.isKnownPrincipal(id)) throw malformed('Invalid principal in policy');
      ids.add(id);
    }
  }
  return { anyone, ids };
}

/**
 * The identities a user may be named by in a Principal element: its canonical
 * ID (CanonicalUser, or AWS as an account ID), `arn:aws:iam::ID:root`,
 * `arn:aws:iam::ID:user/NAME` and MinIO's `arn:aws:iam:::user/NAME`.
 * Computed once per key by the wiring, not per request.
 */
export function principalIdentities(canonicalId: string, name: string): string[] {
  return [canonicalId, `arn:aws:iam::${canonicalId}:root`, `arn:aws:iam::${canonicalId}:user/${name}`, `arn:aws:iam:::user/${name}`];
}

function principalMatches(statement: CompiledStatement, principal: PolicyPrincipal | undefined): boolean {
  const compiled = statement.principal;
  if (compiled === undefined) return true; // identity policy: the principal is whoever it is attached to
  let named = compiled.anyone;
  if (!named && principal !== undefined && !principal.anonymous) {
    for (const id of principal.ids) if (compiled.ids.has(id)) { named = true; break; }
  }
  return statement.notPrincipal ? !named : named;
}

function resourceMatches(resource: CompiledResource, arn: string, keys: ConditionKeys): boolean {
  if (resource.matcher !== undefined) return resource.matcher(arn);
  return resolveTemplatePattern(resource.template as Template, keys)?.test(arn) === true;
}

/** Does this statement apply to the request (action, resource, principal, conditions)? */
export function statementApplies(statement: CompiledStatement, request: PolicyRequest): boolean {
  const actionNamed = anyMatches(statement.actions, request.action);
  if (actionNamed === statement.notAction) return false;
  let resourceNamed = false;
  for (const resource of statement.resources) if (resourceMatches(resource, request.resource, request.keys)) { resourceNamed = true; break; }
  if (resourceNamed === statement.notResource) return false;
  if (!principalMatches(statement, request.principal)) return false;
  return conditionsHold(statement.conditions, request.keys);
}

/** IAM evaluation within one policy: any applicable Deny wins, else any applicable Allow, else None. */
export function evaluatePolicy(policy: CompiledPolicy, request: PolicyRequest): PolicyVerdict {
  let allowSid: string | undefined;
  let allowed = false;
  for (const statement of policy.statements) {
    if (!statementApplies(statement, request)) continue;
    if (statement.effect === 'Deny') return { effect: 'Deny', sid: statement.sid };
    if (!allowed) { allowed = true; allowSid = statement.sid; }
  }
  return allowed ? { effect: 'Allow', sid: allowSid } : { effect: 'None' };
}

/** MinIO's built-in identity policies, under the same names. */
export const BUILT_IN_POLICY_TEXTS = {
  readwrite: '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["s3:*"],"Resource":["arn:aws:s3:::*"]}]}',
  readonly: '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["s3:GetBucketLocation","s3:GetObject"],"Resource":["arn:aws:s3:::*"]}]}',
  writeonly: '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["s3:PutObject"],"Resource":["arn:aws:s3:::*"]}]}',
  // MinIO's name for the administrator: every S3 action and every admin API operation.
  consoleAdmin: '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["admin:*","s3:*"],"Resource":["*"]}]}',
} as const;
export type BuiltInPolicyName = keyof typeof BUILT_IN_POLICY_TEXTS;

export const BUILT_IN_POLICIES: Readonly<Record<BuiltInPolicyName, CompiledPolicy>> = {
  readwrite: parsePolicy(BUILT_IN_POLICY_TEXTS.readwrite, { kind: 'identity' }),
  readonly: parsePolicy(BUILT_IN_POLICY_TEXTS.readonly, { kind: 'identity' }),
  writeonly: parsePolicy(BUILT_IN_POLICY_TEXTS.writeonly, { kind: 'identity' }),
  consoleAdmin: parsePolicy(BUILT_IN_POLICY_TEXTS.consoleAdmin, { kind: 'identity' }),
};

export function isBuiltInPolicyName(name: string): name is BuiltInPolicyName {
  return Object.hasOwn(BUILT_IN_POLICY_TEXTS, name);
}
