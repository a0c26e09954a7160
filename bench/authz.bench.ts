/**
 * Cost of one authorization decision (src/authz), in-process, no I/O. The
 * hot path is an owner's GET with no bucket policy and no ACL; the other
 * lines show what policies and ACLs add. Run:
 *   node --import tsx bench/authz.bench.ts
 */
import { expandCannedAcl } from '../src/authz/acl.ts';
import { objectArn, requiredChecks } from '../src/authz/actions.ts';
import { type AuthorizeInput, type Principal, authorize } from '../src/authz/authorize.ts';
import { BUILT_IN_POLICIES, type CompiledPolicy, parsePolicy, principalIdentities } from '../src/authz/policy.ts';
import { requestConditionKeys } from '../src/authz/request-keys.ts';

const ITERATIONS = 2_000_000;

function owner(name: string, identityPolicy?: CompiledPolicy): Principal {
  const canonicalId = `${name}-canonical-id`;
  return { kind: 'user', canonicalId, name, identities: principalIdentities(canonicalId, name), identityPolicy };
}

const alice = owner('alice');
const resource = objectArn('photos', '2024/cat.jpg');
const bucketPolicy = parsePolicy(JSON.stringify({
  Version: '2012-10-17',
  Statement: [
    { Sid: 'PublicRead', Effect: 'Allow', Principal: '*', Action: 's3:GetObject', Resource: 'arn:aws:s3:::photos/public/*' },
    { Sid: 'Office', Effect: 'Allow', Principal: { AWS: 'arn:aws:iam::bob-canonical-id:root' }, Action: ['s3:GetObject', 's3:PutObject'], Resource: 'arn:aws:s3:::photos/*', Condition: { IpAddress: { 'aws:SourceIp': '192.0.2.0/24' } } },
    { Sid: 'HttpsOnly', Effect: 'Deny', Principal: '*', Action: 's3:*', Resource: 'arn:aws:s3:::photos/*', Condition: { Bool: { 'aws:SecureTransport': 'false' } } },
  ],
}), { kind: 'bucket', bucket: 'photos' });

const headers = { host: 'localhost', 'user-agent': 'aws-sdk-js/3', 'x-amz-date': '20261206T070000Z' };
const query = new Map<string, string>();
// What the wiring would build per request: the facts are at hand, the keys are built only if a condition asks.
const keysFor = () => requestConditionKeys({ sourceIp: '192.0.2.7', secureTransport: true, nowMs: Date.now(), headers, query, principal: alice });

const ROOT_ID = 'root-canonical-id';
const scenarios: [string, () => AuthorizeInput][] = [
  ['owner GET, no policy, no ACL (hot path)', () => ({ principal: alice, action: 's3:GetObject', resource, bucket: { owner: 'alice-canonical-id' }, object: { owner: 'alice-canonical-id' }, keys: keysFor(), rootCanonicalId: ROOT_ID })],
  ['owner GET, 3-statement bucket policy with conditions', () => ({ principal: alice, action: 's3:GetObject', resource, bucket: { owner: 'alice-canonical-id', policy: bucketPolicy }, object: { owner: 'alice-canonical-id' }, keys: keysFor(), rootCanonicalId: ROOT_ID })],
  ['readonly user GET (identity policy)', () => ({ principal: owner('reader', BUILT_IN_POLICIES.readonly), action: 's3:GetObject', resource, bucket: { owner: 'root' }, object: { owner: 'root' }, keys: keysFor(), rootCanonicalId: ROOT_ID })],
  ['anonymous GET, public-read object ACL', () => ({ principal: { kind: 'anonymous' }, action: 's3:GetObject', resource, bucket: { owner: 'alice-canonical-id' }, object: { owner: 'alice-canonical-id', acl: expandCannedAcl('public-read', 'object', { id: 'alice-canonical-id' }) }, keys: keysFor(), rootCanonicalId: ROOT_ID })],
];

for (const [name, makeInput] of scenarios) {
  const input = makeInput();
  let allowed = 0;
  for (let i = 0; i < 100_000; i++) if (authorize({ ...input, keys: keysFor() }).allowed) allowed++; // warm-up
  const start = process.hrtime.bigint();
  for (let i = 0; i < ITERATIONS; i++) if (authorize({ ...input, keys: keysFor() }).allowed) allowed++;
  const ns = Number(process.hrtime.bigint() - start) / ITERATIONS;
  console.log(`${name.padEnd(56)} ${(ns / 1000).toFixed(3)} us per decision${allowed === 0 ? ' (denied)' : ''}`);
}

const checksStart = process.hrtime.bigint();
for (let i = 0; i < ITERATIONS; i++) requiredChecks('GetObject', { bucket: 'photos', key: '2024/cat.jpg' });
console.log(`${'requiredChecks(GetObject)'.padEnd(56)} ${(Number(process.hrtime.bigint() - checksStart) / ITERATIONS / 1000).toFixed(3)} us`);
