/**
 * The one decision: may this principal perform this action on this resource?
 * A pure function of a plain description of the request and of the bucket's
 * (and object's) access settings; the wiring fetches those, this decides.
 * Every denial is answered 403 AccessDenied; `reason` is for logs and tests.
 *
 * Order (docs/ACCESS.md has the why of each rule):
 * 1. A user whose canonical ID is root's is refused (no one but root is root).
 * 2. The key's own policy, if any, must allow (it only narrows).
 * 3. root may do everything (MinIO's root).
 * 4. An explicit Deny in the bucket policy or the identity policy denies,
 *    except that the bucket owner can never be locked out of
 *    Get/Put/DeleteBucketPolicy by its bucket policy (AWS's protection).
 * 5. An Allow in the user's identity policy allows, on any bucket (the
 *    administrator's grant, as in MinIO); a Deny denies.
 * 6. Without a bucket (ListBuckets, CreateBucket): a user without an
 *    identity policy is allowed (its own account); one with an identity
 *    policy only by it; anonymous may list (nothing) and not create.
 * 7. Otherwise the bucket policy's Allow (unless RestrictPublicBuckets
 *    confines a public policy to the owner), owning the resource, or an ACL
 *    grant (unless ACLs are disabled; public grants count for nothing under
 *    IgnorePublicAcls) allows — the union of identity policy, bucket policy
 *    and ACL the issue asks for.
 * 8. Otherwise: denied.
 */
import { type Acl, type AclPrincipal, aclGrants } from './acl.ts';
import { ACTION_ACL, ACTION_KINDS, type PermissionCheck, type S3Action, ownerAlwaysHas } from './actions.ts';
import type { ConditionKeys } from './condition-keys.ts';
import { type ObjectOwnership, aclsEnabled } from './ownership.ts';
import { type CompiledPolicy, type PolicyPrincipal, evaluatePolicy } from './policy.ts';
import { type PublicAccessBlock, isPublicPolicy } from './public-access.ts';

export type Principal =
  | { kind: 'root'; keyPolicy?: CompiledPolicy | undefined }
  | { kind: 'anonymous' }
  | {
    kind: 'user';
    canonicalId: string;
    name: string;
    /** principalIdentities(canonicalId, name), computed once per key. */
    identities: readonly string[];
    /** The user's identity policy (built-in or custom); undefined: the user is an account of its own. */
    identityPolicy?: CompiledPolicy | undefined;
    /** The access key's own policy: intersected with the user's rights, never widening them. */
    keyPolicy?: CompiledPolicy | undefined;
  };

export interface BucketAccess {
  /** Canonical ID of the bucket's owner. */
  owner: string;
  policy?: CompiledPolicy | undefined;
  /** isPublicPolicy(policy), computed when the policy is stored; computed here when absent. */
  policyIsPublic?: boolean | undefined;
  /** undefined: never set, i.e. private (the owner has FULL_CONTROL). */
  acl?: Acl | undefined;
  /** undefined: no ownership controls (DEFAULT_OBJECT_OWNERSHIP, ObjectWriter). */
  ownership?: ObjectOwnership | undefined;
  publicAccessBlock?: PublicAccessBlock | undefined;
}

export interface ObjectAccess {
  /** Canonical ID of the object's (version's) owner. */
  owner: string;
  /** undefined: private to its owner. */
  acl?: Acl | undefined;
}

export interface AuthorizeInput {
  principal: Principal;
  action: S3Action;
  /** The ARN checked: bucketArn(), objectArn() or SERVICE_RESOURCE. */
  resource: string;
  /**
   * The bucket the action is on (the copy source's bucket for a copy's
   * source check); undefined for ListBuckets and for CreateBucket of a bucket
   * that does not exist.
   */
  bucket?: BucketAccess | undefined;
  /**
   * The object the action is on, when it exists (GetObject, Put/GetObjectAcl,
   * tagging, …). When absent, an object action is judged as if the object
   * were the bucket owner's and private. (GetObject/HeadObject of a missing
   * key are decided by missingObjectCheck() instead: 404 for those who may
   * list the bucket, 403 for others.)
   */
  object?: ObjectAccess | undefined;
  keys: ConditionKeys;
  /** root's canonical ID: a user principal carrying it is refused. Required, so no caller forgets the check. */
  rootCanonicalId: string;
}

export type AllowReason = 'root' | 'identity-policy' | 'bucket-policy' | 'owner' | 'acl' | 'own-account' | 'anonymous-listing';
export type DenyReason =
  | 'user-claims-root-id'
  | 'key-policy-explicit-deny'
  | 'key-policy-does-not-allow'
  | 'bucket-policy-explicit-deny'
  | 'identity-policy-explicit-deny'
  | 'identity-policy-does-not-allow'
  | 'no-grant';

export type Decision =
  | { allowed: true; reason: AllowReason; sid?: string | undefined }
  | { allowed: false; reason: DenyReason; sid?: string | undefined };

/** The actions the bucket owner keeps whatever its bucket policy says (AWS's lock-out protection). */
const POLICY_MANAGEMENT = new Set<S3Action>(['s3:GetBucketPolicy', 's3:PutBucketPolicy', 's3:DeleteBucketPolicy']);

const ANONYMOUS_POLICY_PRINCIPAL: PolicyPrincipal = { anonymous: true };
const ANONYMOUS_ACL_PRINCIPAL: AclPrincipal = { anonymous: true };

function allow(reason: AllowReason, sid?: string): Decision {
  return sid === undefined ? { allowed: true, reason } : { allowed: true, reason, sid };
}
function deny(reason: DenyReason, sid?: string): Decision {
  return sid === undefined ? { allowed: false, reason } : { allowed: false, reason, sid };
}

export function authorize(input: AuthorizeInput): Decision {
  const { principal, action, resource, bucket, keys } = input;

  if (principal.kind === 'user' && principal.canonicalId === input.rootCanonicalId) {
    return deny('user-claims-root-id');
  }

  if (principal.kind !== 'anonymous' && principal.keyPolicy !== undefined) {
    const verdict = evaluatePolicy(principal.keyPolicy, { action, resource, keys });
    if (verdict.effect === 'Deny') return deny('key-policy-explicit-deny', verdict.sid);
    if (verdict.effect === 'None') return deny('key-policy-does-not-allow');
  }

  if (principal.kind === 'root') return allow('root');

  const isBucketOwner = principal.kind === 'user' && bucket !== undefined && principal.canonicalId === bucket.owner;

  let bucketPolicyAllows = false;
  let bucketPolicySid: string | undefined;
  if (bucket?.policy !== undefined) {
    const policyPrincipal: PolicyPrincipal = principal.kind === 'user' ? { anonymous: false, ids: principal.identities } : ANONYMOUS_POLICY_PRINCIPAL;
    const verdict = evaluatePolicy(bucket.policy, { action, resource, principal: policyPrincipal, keys });
    if (verdict.effect === 'Deny' && !(isBucketOwner && POLICY_MANAGEMENT.has(action))) return deny('bucket-policy-explicit-deny', verdict.sid);
    if (verdict.effect === 'Allow') {
      bucketPolicyAllows = true;
      bucketPolicySid = verdict.sid;
    }
  }

  const identityPolicy = principal.kind === 'user' ? principal.identityPolicy : undefined;
  if (identityPolicy !== undefined) {
    const verdict = evaluatePolicy(identityPolicy, { action, resource, keys });
    if (verdict.effect === 'Deny') return deny('identity-policy-explicit-deny', verdict.sid);
    if (verdict.effect === 'Allow') return allow('identity-policy', verdict.sid);
  }

  if (bucket === undefined) {
    // ListBuckets, or CreateBucket of a new bucket. A user with an identity policy is governed by it here
    // (a readonly user creates no buckets); one without is an account of its own, which may always list its
    // own buckets and create new ones.
    if (principal.kind === 'user') return identityPolicy === undefined ? allow('own-account') : deny('identity-policy-does-not-allow');
    // Anonymous ListBuckets answers an empty list, as ceph/s3-tests expects (test_list_buckets_anonymous; AWS answers 403).
    return action === 's3:ListAllMyBuckets' ? allow('anonymous-listing') : deny('no-grant');
  }

  if (bucketPolicyAllows) {
    const restricted = bucket.publicAccessBlock?.restrictPublicBuckets === true
      && (bucket.policyIsPublic ?? (bucket.policy !== undefined && isPublicPolicy(bucket.policy)));
    if (!restricted || isBucketOwner) return allow('bucket-policy', bucketPolicySid);
  }

  if (principal.kind === 'anonymous') return aclAllows(input, undefined, false) === undefined ? deny('no-grant') : allow('acl');
  return aclOrOwnerAllows(input, principal.canonicalId, isBucketOwner);
}

function aclOrOwnerAllows(input: AuthorizeInput, canonicalId: string, isBucketOwner: boolean): Decision {
  const bucket = input.bucket as BucketAccess;
  const kind = ACTION_KINDS.get(input.action);
  if (!aclsEnabled(bucket.ownership)) {
    // ACLs disabled: the bucket owner owns the bucket and every object in it, and ACLs grant nothing.
    return isBucketOwner ? allow('owner') : deny('no-grant');
  }
  if (ownerAlwaysHas(input.action)) {
    const owner = kind === 'object' ? (input.object?.owner ?? bucket.owner) : bucket.owner;
    if (owner === canonicalId) return allow('owner');
  }
  const granted = aclAllows(input, canonicalId, isBucketOwner);
  return granted === undefined ? deny('no-grant') : allow(granted);
}

/**
 * Does the bucket's or object's ACL grant the action? A missing ACL is
 * private to its resource's owner ('owner': the common case, decided without
 * looking at any grant); undefined when nothing grants it.
 */
function aclAllows(input: AuthorizeInput, canonicalId: string | undefined, isBucketOwner: boolean): 'owner' | 'acl' | undefined {
  const bucket = input.bucket as BucketAccess;
  if (!aclsEnabled(bucket.ownership)) return undefined;
  const rule = ACTION_ACL.get(input.action);
  if (rule === undefined) return undefined;
  if (rule.granteeMustOwnBucket === true && !isBucketOwner) return undefined;
  const acl = rule.on === 'bucket' ? bucket.acl : input.object?.acl;
  if (acl === undefined) {
    const owner = rule.on === 'bucket' ? bucket.owner : (input.object?.owner ?? bucket.owner);
    return canonicalId !== undefined && owner === canonicalId ? 'owner' : undefined; // private: FULL_CONTROL to the owner only
  }
  const principal: AclPrincipal = canonicalId === undefined ? ANONYMOUS_ACL_PRINCIPAL : { anonymous: false, canonicalId };
  return aclGrants(acl, principal, rule.permission, { ignorePublicGrants: bucket.publicAccessBlock?.ignorePublicAcls === true }) ? 'acl' : undefined;
}

/** Where one check is judged: its bucket's and object's access settings. */
export interface CheckTarget {
  bucket?: BucketAccess | undefined;
  object?: ObjectAccess | undefined;
  /** Keys for this check only (e.g. a copy source's s3:ExistingObjectTag/*); the request's otherwise. */
  keys?: ConditionKeys | undefined;
}

/**
 * All of a request's checks (requiredChecks()) must be allowed: the first
 * denial decides, else the last allowance (for logs). DeleteObjects is the
 * exception the wiring handles itself: each key is answered on its own
 * (a denied key is an AccessDenied entry in the result, not a 403).
 */
export function authorizeAll(
  checks: readonly PermissionCheck[],
  common: Pick<AuthorizeInput, 'principal' | 'keys' | 'rootCanonicalId'>,
  targetOf: (check: PermissionCheck) => CheckTarget,
): Decision {
  let last: Decision = deny('no-grant');
  for (const check of checks) {
    const target = targetOf(check);
    last = authorize({ ...common, keys: target.keys ?? common.keys, action: check.action, resource: check.resource, bucket: target.bucket, object: target.object });
    if (!last.allowed) return last;
  }
  return last;
}
