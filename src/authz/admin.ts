/**
 * Who may call an admin API operation (src/admin/). Each operation is one
 * permission, `admin:<Operation>`, granted only by identity policies:
 * - root may call every operation (unless its key's own policy narrows it);
 * - a user needs an Allow naming an `admin:` pattern that covers the
 *   operation — `"Action": "*"` alone does not grant admin rights, so a
 *   policy written before the admin API existed gives none — and no Deny
 *   (a Deny of `*` does deny);
 * - an access key's own policy narrows its user's rights the same way;
 * - anonymous callers and users without an identity policy (accounts of their
 *   own) may call none.
 */
import type { Principal } from './authorize.ts';
import { type ConditionKeys, NO_CONDITION_KEYS } from './condition-keys.ts';
import { type AdminAction, type CompiledPolicy, statementApplies } from './policy.ts';

export type AdminDecision = { allowed: true } | { allowed: false; reason: AdminDenyReason };
export type AdminDenyReason = 'anonymous' | 'user-claims-root-id' | 'no-identity-policy' | 'explicit-deny' | 'not-granted' | 'key-policy-does-not-allow';

/** `admin:<operation>` as policies name it. */
export function adminAction(operation: string): AdminAction {
  return `admin:${operation}`;
}

/** The resource admin statements are matched against: `"Resource": "*"` covers it, S3 ARNs do not. */
const ADMIN_RESOURCE = 'arn:talus:admin:::*';

/** `keys`: the request's condition keys (aws:SourceIp, aws:SecureTransport, …) for statements with conditions. */
export function authorizeAdmin(principal: Principal, operation: string, rootCanonicalId: string, keys: ConditionKeys = NO_CONDITION_KEYS): AdminDecision {
  const action = adminAction(operation);
  if (principal.kind === 'anonymous') return { allowed: false, reason: 'anonymous' };
  if (principal.kind === 'user' && principal.canonicalId === rootCanonicalId) return { allowed: false, reason: 'user-claims-root-id' };
  if (principal.keyPolicy !== undefined) {
    const verdict = adminVerdict(principal.keyPolicy, action, keys);
    if (verdict !== 'allow') return { allowed: false, reason: verdict === 'deny' ? 'explicit-deny' : 'key-policy-does-not-allow' };
  }
  if (principal.kind === 'root') return { allowed: true };
  if (principal.identityPolicy === undefined) return { allowed: false, reason: 'no-identity-policy' };
  const verdict = adminVerdict(principal.identityPolicy, action, keys);
  if (verdict === 'allow') return { allowed: true };
  return { allowed: false, reason: verdict === 'deny' ? 'explicit-deny' : 'not-granted' };
}

function adminVerdict(policy: CompiledPolicy, action: AdminAction, keys: ConditionKeys): 'allow' | 'deny' | 'none' {
  let allowed = false;
  for (const statement of policy.statements) {
    if (!statementApplies(statement, { action, resource: ADMIN_RESOURCE, keys })) continue;
    if (statement.effect === 'Deny') return 'deny';
    // Only a statement that names admin actions grants them (not `*`, not NotAction).
    if (!statement.notAction && statement.actionPatterns.some((pattern) => pattern.startsWith('admin:'))) allowed = true;
  }
  return allowed ? 'allow' : 'none';
}
