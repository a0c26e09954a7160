/**
 * Identity policies of users and keys as the store keeps them: the name of a
 * built-in policy (`readwrite`, `readonly`, `writeonly`) or IAM JSON text.
 * Validated with src/authz's parser when set, compiled once per reload.
 */
import { readFile } from 'node:fs/promises';
import { BUILT_IN_POLICIES, BUILT_IN_POLICY_TEXTS, type CompiledPolicy, POLICY_TEXT_BYTES_MAX, isAuthzError, isBuiltInPolicyName, parsePolicy } from '../authz/index.ts';

/** A policy given to the CLI is refused, with why. */
export class PolicyArgumentError extends Error {
  override name = 'PolicyArgumentError';
}

/** Compiles a stored policy (validated when it was set; throws AuthzError if the text is not a valid identity policy). */
export function compileStoredPolicy(stored: string): CompiledPolicy {
  return isBuiltInPolicyName(stored) ? BUILT_IN_POLICIES[stored] : parsePolicy(stored, { kind: 'identity' });
}

/** Validates policy text as an identity policy; returns it unchanged (stored as given, shown as given). */
export function validatePolicyText(text: string, source: string): string {
  try {
    parsePolicy(text, { kind: 'identity' });
  } catch (error) {
    if (isAuthzError(error)) throw new PolicyArgumentError(`${source} is not a valid policy: ${error.message}`);
    throw error;
  }
  return text;
}

/**
 * A `--policy` argument: a built-in name, or a path to a JSON file. Returns
 * the text to store (a built-in stays a name, so it follows Talus's
 * definition of it).
 */
export async function readPolicyArgument(argument: string): Promise<string> {
  if (isBuiltInPolicyName(argument)) return argument;
  let text: string;
  try {
    const bytes = await readFile(argument);
    if (bytes.length > POLICY_TEXT_BYTES_MAX) throw new PolicyArgumentError(`${argument} is larger than a policy may be (${POLICY_TEXT_BYTES_MAX} bytes)`);
    text = bytes.toString('utf8');
  } catch (error) {
    if (error instanceof PolicyArgumentError) throw error;
    const code = (error as NodeJS.ErrnoException).code;
    throw new PolicyArgumentError(
      `--policy ${argument}: not a built-in policy (${Object.keys(BUILT_IN_POLICY_TEXTS).join(', ')}) and not a readable file${code === undefined ? '' : ` (${code})`}`,
    );
  }
  return validatePolicyText(text, argument);
}

/** The policy's JSON document (a built-in's definition, or the stored text). */
export function policyDocument(stored: string): string {
  return isBuiltInPolicyName(stored) ? BUILT_IN_POLICY_TEXTS[stored] : stored;
}

/** For listings: '-', a built-in's name, or 'custom'. */
export function describePolicy(stored: string | null): string {
  if (stored === null) return '-';
  return isBuiltInPolicyName(stored) ? stored : 'custom';
}
