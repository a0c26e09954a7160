import assert from 'node:assert/strict';
import { test } from 'node:test';
import { type AdminDecision, authorizeAdmin } from './admin.ts';
import type { Principal } from './authorize.ts';
import { AuthzError } from './errors.ts';
import { BUILT_IN_POLICIES, type CompiledPolicy, parsePolicy, principalIdentities } from './policy.ts';

const ROOT_ID = 'root-canonical-id';
const identity = (statements: object[]): CompiledPolicy => parsePolicy(JSON.stringify({ Version: '2012-10-17', Statement: statements }), { kind: 'identity' });
function user(identityPolicy?: CompiledPolicy, keyPolicy?: CompiledPolicy, canonicalId = 'alice-id'): Principal {
  return { kind: 'user', canonicalId, name: 'alice', identities: principalIdentities(canonicalId, 'alice'), identityPolicy, keyPolicy };
}
const allowed = (decision: AdminDecision): boolean => decision.allowed;

test('root may call every admin operation; anonymous none', () => {
  assert.ok(allowed(authorizeAdmin({ kind: 'root' }, 'ListUsers', ROOT_ID)));
  assert.deepEqual(authorizeAdmin({ kind: 'anonymous' }, 'ListUsers', ROOT_ID), { allowed: false, reason: 'anonymous' });
});

test('a root key narrowed by its own policy calls only what that policy grants', () => {
  const onlyInfo = identity([{ Effect: 'Allow', Action: 'admin:GetServerInfo', Resource: '*' }]);
  assert.ok(allowed(authorizeAdmin({ kind: 'root', keyPolicy: onlyInfo }, 'GetServerInfo', ROOT_ID)));
  assert.equal(authorizeAdmin({ kind: 'root', keyPolicy: onlyInfo }, 'CreateUser', ROOT_ID).allowed, false);
});

test('users need an explicit admin: grant; readwrite and "Action: *" give none', () => {
  assert.deepEqual(authorizeAdmin(user(), 'ListUsers', ROOT_ID), { allowed: false, reason: 'no-identity-policy' });
  assert.deepEqual(authorizeAdmin(user(BUILT_IN_POLICIES.readwrite), 'ListUsers', ROOT_ID), { allowed: false, reason: 'not-granted' });
  const star = identity([{ Effect: 'Allow', Action: '*', Resource: '*' }]);
  assert.deepEqual(authorizeAdmin(user(star), 'ListUsers', ROOT_ID), { allowed: false, reason: 'not-granted' });
  assert.ok(allowed(authorizeAdmin(user(BUILT_IN_POLICIES.consoleAdmin), 'ListUsers', ROOT_ID)));
  const listOnly = identity([{ Effect: 'Allow', Action: 'admin:List*', Resource: '*' }]);
  assert.ok(allowed(authorizeAdmin(user(listOnly), 'ListUsers', ROOT_ID)));
  assert.equal(authorizeAdmin(user(listOnly), 'CreateUser', ROOT_ID).allowed, false);
  // An S3 resource does not cover the admin API.
  const s3Resource = identity([{ Effect: 'Allow', Action: 'admin:*', Resource: 'arn:aws:s3:::*' }]);
  assert.equal(authorizeAdmin(user(s3Resource), 'ListUsers', ROOT_ID).allowed, false);
});

test('a Deny wins, a Deny of * included; a key policy narrows its user; nobody else is root', () => {
  const denyUsers = identity([{ Effect: 'Allow', Action: 'admin:*', Resource: '*' }, { Effect: 'Deny', Action: 'admin:*User*', Resource: '*' }]);
  assert.deepEqual(authorizeAdmin(user(denyUsers), 'CreateUser', ROOT_ID), { allowed: false, reason: 'explicit-deny' });
  assert.ok(allowed(authorizeAdmin(user(denyUsers), 'ListBuckets', ROOT_ID)));
  const denyAll = identity([{ Effect: 'Allow', Action: 'admin:*', Resource: '*' }, { Effect: 'Deny', Action: '*', Resource: '*' }]);
  assert.deepEqual(authorizeAdmin(user(denyAll), 'ListBuckets', ROOT_ID), { allowed: false, reason: 'explicit-deny' });
  assert.deepEqual(authorizeAdmin(user(BUILT_IN_POLICIES.consoleAdmin, BUILT_IN_POLICIES.readonly), 'ListUsers', ROOT_ID), { allowed: false, reason: 'key-policy-does-not-allow' });
  assert.deepEqual(authorizeAdmin(user(BUILT_IN_POLICIES.consoleAdmin, undefined, ROOT_ID), 'ListUsers', ROOT_ID), { allowed: false, reason: 'user-claims-root-id' });
});

test('admin actions are refused in bucket policies and must be well-formed', () => {
  const bucketPolicy = JSON.stringify({ Version: '2012-10-17', Statement: [{ Effect: 'Allow', Principal: '*', Action: 'admin:ListUsers', Resource: 'arn:aws:s3:::b' }] });
  assert.throws(() => parsePolicy(bucketPolicy, { kind: 'bucket', bucket: 'b' }), AuthzError);
  assert.throws(() => identity([{ Effect: 'Allow', Action: 'admin:List Users', Resource: '*' }]), AuthzError);
});
