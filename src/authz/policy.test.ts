import assert from 'node:assert/strict';
import { test } from 'node:test';
import { type S3Action, objectArn } from './actions.ts';
import { type ConditionKeyInput, conditionKeys } from './condition-keys.ts';
import { AuthzError } from './errors.ts';
import { BUCKET_POLICY_BYTES_MAX, BUILT_IN_POLICIES, POLICY_TEXT_BYTES_MAX, type PolicyPrincipal, evaluatePolicy, parsePolicy, principalIdentities } from './policy.ts';

const BUCKET = 'photos';
const ALICE: PolicyPrincipal = { anonymous: false, ids: principalIdentities('alice-id', 'alice') };
const BOB: PolicyPrincipal = { anonymous: false, ids: principalIdentities('bob-id', 'bob') };
const ANON: PolicyPrincipal = { anonymous: true };

function bucketPolicy(statements: unknown[]): string {
  return JSON.stringify({ Version: '2012-10-17', Statement: statements });
}

// ------------------------------------------------------------ validation

const malformed: [string, string, string][] = [
  ['not JSON at all', 'hello', 'Policies must be valid JSON and the first byte must be \'{\''],
  ['broken JSON', '{"Version": ', 'This policy contains invalid Json'],
  ['no Statement', '{"Version":"2012-10-17"}', 'Missing required field Statement'],
  ['empty Statement', '{"Version":"2012-10-17","Statement":[]}', 'Could not parse the policy: Statement is empty!'],
  ['bad Version', '{"Version":"2020-01-01","Statement":[]}', 'The policy must contain a valid version string'],
  ['unknown top-level field', '{"Version":"2012-10-17","Foo":1,"Statement":[]}', 'Unknown field Foo'],
  ['no Effect', bucketPolicy([{ Principal: '*', Action: 's3:GetObject', Resource: `arn:aws:s3:::${BUCKET}/*` }]), 'Missing required field Effect'],
  ['bad Effect', bucketPolicy([{ Effect: 'Maybe', Principal: '*', Action: 's3:GetObject', Resource: `arn:aws:s3:::${BUCKET}/*` }]), 'Invalid effect: Maybe'],
  ['no Principal', bucketPolicy([{ Effect: 'Allow', Action: 's3:GetObject', Resource: `arn:aws:s3:::${BUCKET}/*` }]), 'Missing required field Principal'],
  ['bad Principal type', bucketPolicy([{ Effect: 'Allow', Principal: { Service: 'x' }, Action: 's3:GetObject', Resource: `arn:aws:s3:::${BUCKET}/*` }]), 'Invalid principal in policy'],
  ['bad Principal value', bucketPolicy([{ Effect: 'Allow', Principal: { AWS: 'not an id!' }, Action: 's3:GetObject', Resource: `arn:aws:s3:::${BUCKET}/*` }]), 'Invalid principal in policy'],
  ['unknown action', bucketPolicy([{ Effect: 'Allow', Principal: '*', Action: 's3:FlyAway', Resource: `arn:aws:s3:::${BUCKET}/*` }]), 'Policy has invalid action'],
  ['other service', bucketPolicy([{ Effect: 'Allow', Principal: '*', Action: 'iam:CreateUser', Resource: `arn:aws:s3:::${BUCKET}/*` }]), 'Policy has invalid action'],
  ['wildcard matching no action', bucketPolicy([{ Effect: 'Allow', Principal: '*', Action: 's3:Fly*', Resource: `arn:aws:s3:::${BUCKET}/*` }]), 'Policy has invalid action'],
  ['resource of another bucket', bucketPolicy([{ Effect: 'Allow', Principal: '*', Action: 's3:GetObject', Resource: 'arn:aws:s3:::other/*' }]), 'Policy has invalid resource'],
  ['resource "*" in a bucket policy', bucketPolicy([{ Effect: 'Allow', Principal: '*', Action: 's3:GetObject', Resource: '*' }]), 'Policy has invalid resource'],
  ['resource not an ARN', bucketPolicy([{ Effect: 'Allow', Principal: '*', Action: 's3:GetObject', Resource: BUCKET }]), 'Policy has invalid resource'],
  ['Allow with NotPrincipal (ceph/s3-tests test_bucket_policy_allow_notprincipal)', bucketPolicy([{ Effect: 'Allow', NotPrincipal: { AWS: 'arn:aws:iam::s3tenant1:root' }, Action: 's3:ListBucket', Resource: `arn:aws:s3:::${BUCKET}` }]), 'NotPrincipal is not supported with Effect Allow'],
  ['unknown statement field', bucketPolicy([{ Effect: 'Allow', Principal: '*', Action: 's3:GetObject', Resource: `arn:aws:s3:::${BUCKET}/*`, Foo: 1 }]), 'Unknown field Foo'],
  ['unknown condition operator', bucketPolicy([{ Effect: 'Allow', Principal: '*', Action: 's3:GetObject', Resource: `arn:aws:s3:::${BUCKET}/*`, Condition: { StringSortOf: { 'aws:Referer': 'x' } } }]), 'Invalid Condition type : StringSortOf'],
  ['unknown condition key', bucketPolicy([{ Effect: 'Allow', Principal: '*', Action: 's3:GetObject', Resource: `arn:aws:s3:::${BUCKET}/*`, Condition: { StringEquals: { 'aws:Moon': 'x' } } }]), 'Policy has an invalid condition key'],
  ['bad CIDR', bucketPolicy([{ Effect: 'Allow', Principal: '*', Action: 's3:GetObject', Resource: `arn:aws:s3:::${BUCKET}/*`, Condition: { IpAddress: { 'aws:SourceIp': '10.0.0.0/33' } } }]), 'Invalid IP address or CIDR in condition: 10.0.0.0/33'],
  ['duplicate Sid', bucketPolicy([
    { Sid: 'a', Effect: 'Allow', Principal: '*', Action: 's3:GetObject', Resource: `arn:aws:s3:::${BUCKET}/*` },
    { Sid: 'a', Effect: 'Allow', Principal: '*', Action: 's3:GetObject', Resource: `arn:aws:s3:::${BUCKET}/*` }]), 'Statement IDs (SID) in a single policy must be unique.'],
  ['too large', `{"Version":"2012-10-17","Id":"${'x'.repeat(BUCKET_POLICY_BYTES_MAX)}","Statement":[]}`, 'Policy exceeds the maximum allowed document size.'],
  ['too large even before parsing', `{${' '.repeat(POLICY_TEXT_BYTES_MAX)}}`, 'Policy exceeds the maximum allowed document size.'],
];

for (const [name, text, message] of malformed) {
  test(`bucket policy refused: ${name}`, () => {
    assert.throws(() => parsePolicy(text, { kind: 'bucket', bucket: BUCKET }), (error: unknown) => {
      assert.ok(error instanceof AuthzError);
      assert.equal(error.code, 'MalformedPolicy');
      assert.equal(error.status, 400);
      assert.equal(error.message, message);
      return true;
    });
  });
}

test('identity policies may not name a principal', () => {
  assert.throws(() => parsePolicy(bucketPolicy([{ Effect: 'Allow', Principal: '*', Action: 's3:*', Resource: '*' }]), { kind: 'identity' }),
    { code: 'MalformedPolicy', message: 'Policy document should not specify a principal.' });
});

test('isKnownPrincipal refuses principals naming nobody', () => {
  const text = bucketPolicy([{ Effect: 'Allow', Principal: { AWS: 'ghost' }, Action: 's3:GetObject', Resource: `arn:aws:s3:::${BUCKET}/*` }]);
  assert.throws(() => parsePolicy(text, { kind: 'bucket', bucket: BUCKET, isKnownPrincipal: (id) => id === 'alice-id' }), { message: 'Invalid principal in policy' });
});

test('accepted forms: a single Statement object, Version 2008-10-17, a wildcard bucket, Principal lists', () => {
  parsePolicy('{"Statement":{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::photos/*"}}', { kind: 'bucket', bucket: BUCKET });
  parsePolicy(JSON.stringify({ Version: '2008-10-17', Statement: [{ Effect: 'Allow', Principal: { AWS: ['*'] }, Action: ['s3:Get*', 's3:List*'], Resource: ['arn:aws:s3:::pho*'] }] }), { kind: 'bucket', bucket: BUCKET });
  const policy = parsePolicy(bucketPolicy([{ Effect: 'Allow', Principal: { AWS: ['arn:aws:iam::alice-id:root', 'bob-id'], CanonicalUser: 'carol-id' }, Action: 's3:*', Resource: [`arn:aws:s3:::${BUCKET}`, `arn:aws:s3:::${BUCKET}/*`] }]), { kind: 'bucket', bucket: BUCKET });
  assert.equal(policy.statements.length, 1);
});

test('ceph/s3-tests forms are accepted: object actions on the bucket ARN, a tenant ARN principal, "Action": "*", arn:aws:s3:::*', () => {
  // AWS answers "Action does not apply to any resource(s) in statement" here; the suite (test_bucket_policy_multipart) expects acceptance.
  parsePolicy(bucketPolicy([{ Effect: 'Allow', Principal: { AWS: '*' }, Action: 's3:PutObject', Resource: `arn:aws:s3:::${BUCKET}` }]), { kind: 'bucket', bucket: BUCKET });
  parsePolicy(bucketPolicy([{ Effect: 'Allow', Principal: { AWS: 'arn:aws:iam::s3tenant1:root' }, Action: 's3:ListBucket', Resource: [`arn:aws:s3:::${BUCKET}`, `arn:aws:s3:::${BUCKET}/*`] }]), { kind: 'bucket', bucket: BUCKET });
  parsePolicy(bucketPolicy([{ Effect: 'Allow', Principal: { AWS: '*' }, Action: '*', Resource: [`arn:aws:s3:::${BUCKET}`, `arn:aws:s3:::${BUCKET}/*`] }]), { kind: 'bucket', bucket: BUCKET });
  parsePolicy(bucketPolicy([{ Effect: 'Allow', Principal: { AWS: '*' }, Action: 's3:ListBucket', Resource: ['arn:aws:s3:::*', 'arn:aws:s3:::*/*'] }]), { kind: 'bucket', bucket: BUCKET });
});

test('a bucket-ARN-only PutObject grant does not reach objects (test_bucket_policy_multipart)', () => {
  const policy = parsePolicy(bucketPolicy([{ Effect: 'Allow', Principal: { AWS: '*' }, Action: 's3:PutObject', Resource: `arn:aws:s3:::${BUCKET}` }]), { kind: 'bucket', bucket: BUCKET });
  assert.equal(evaluatePolicy(policy, { action: 's3:PutObject', resource: `arn:aws:s3:::${BUCKET}/mpobj`, principal: BOB, keys: conditionKeys({}) }).effect, 'None');
});

test('the size limit counts the compact document: whitespace does not count', () => {
  const statements = Array.from({ length: 120 }, (_, i) => ({ Sid: `s${i}`, Effect: 'Allow', Principal: '*', Action: 's3:GetObject', Resource: `arn:aws:s3:::${BUCKET}/prefix-${i}/*` }));
  const pretty = JSON.stringify({ Version: '2012-10-17', Statement: statements }, null, 8);
  assert.ok(Buffer.byteLength(pretty) > BUCKET_POLICY_BYTES_MAX && Buffer.byteLength(JSON.stringify(JSON.parse(pretty))) < BUCKET_POLICY_BYTES_MAX);
  assert.equal(parsePolicy(pretty, { kind: 'bucket', bucket: BUCKET }).statements.length, 120);
});

test('the stored text is kept byte for byte (GetBucketPolicy gives it back)', () => {
  const text = `{ "Version" : "2012-10-17",\n "Statement": {"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::${BUCKET}/*"} }`;
  assert.equal(parsePolicy(text, { kind: 'bucket', bucket: BUCKET }).text, text);
});

// ------------------------------------------------------------ evaluation

interface Case {
  name: string;
  statements: unknown[];
  action: S3Action;
  resource: string;
  principal: PolicyPrincipal;
  keys?: ConditionKeyInput;
  version?: string;
  expected: 'Allow' | 'Deny' | 'None';
}

const OBJ = `arn:aws:s3:::${BUCKET}/2024/cat.jpg`;
const BKT = `arn:aws:s3:::${BUCKET}`;
const publicRead = { Sid: 'PublicRead', Effect: 'Allow', Principal: '*', Action: 's3:GetObject', Resource: `arn:aws:s3:::${BUCKET}/*` };

const evaluation: Case[] = [
  // AWS example: granting read-only permission to anonymous users.
  { name: 'public read: anonymous reads', statements: [publicRead], action: 's3:GetObject', resource: OBJ, principal: ANON, expected: 'Allow' },
  { name: 'public read: not writes', statements: [publicRead], action: 's3:PutObject', resource: OBJ, principal: ANON, expected: 'None' },
  { name: 'public read: not the bucket', statements: [publicRead], action: 's3:ListBucket', resource: BKT, principal: ANON, expected: 'None' },
  { name: 'actions match case-insensitively', statements: [{ ...publicRead, Action: 'S3:getobject' }], action: 's3:GetObject', resource: OBJ, principal: ANON, expected: 'Allow' },
  { name: 'resources match case-sensitively', statements: [{ ...publicRead, Resource: `arn:aws:s3:::${BUCKET}/2024/CAT.jpg` }], action: 's3:GetObject', resource: OBJ, principal: ANON, expected: 'None' },
  { name: '? is one character', statements: [{ ...publicRead, Resource: `arn:aws:s3:::${BUCKET}/202?/cat.jpg` }], action: 's3:GetObject', resource: OBJ, principal: ANON, expected: 'Allow' },
  { name: '? is not two', statements: [{ ...publicRead, Resource: `arn:aws:s3:::${BUCKET}/20?/cat.jpg` }], action: 's3:GetObject', resource: OBJ, principal: ANON, expected: 'None' },
  { name: '* crosses slashes', statements: [{ ...publicRead, Resource: `arn:aws:s3:::${BUCKET}/*.jpg` }], action: 's3:GetObject', resource: OBJ, principal: ANON, expected: 'Allow' },
  { name: 'action wildcard s3:Get*', statements: [{ ...publicRead, Action: 's3:Get*' }], action: 's3:GetObjectVersion', resource: OBJ, principal: ANON, expected: 'Allow' },
  // Deny beats allow.
  {
    name: 'explicit deny beats allow', action: 's3:GetObject', resource: OBJ, principal: ALICE, expected: 'Deny',
    statements: [publicRead, { Sid: 'NoAlice', Effect: 'Deny', Principal: { AWS: 'arn:aws:iam::alice-id:root' }, Action: 's3:*', Resource: `arn:aws:s3:::${BUCKET}/*` }],
  },
  {
    name: 'the deny names alice only', action: 's3:GetObject', resource: OBJ, principal: BOB, expected: 'Allow',
    statements: [publicRead, { Sid: 'NoAlice', Effect: 'Deny', Principal: { AWS: 'arn:aws:iam::alice-id:root' }, Action: 's3:*', Resource: `arn:aws:s3:::${BUCKET}/*` }],
  },
  { name: 'principal by canonical ID', statements: [{ ...publicRead, Principal: { CanonicalUser: 'alice-id' } }], action: 's3:GetObject', resource: OBJ, principal: ALICE, expected: 'Allow' },
  { name: 'principal by user ARN', statements: [{ ...publicRead, Principal: { AWS: 'arn:aws:iam::alice-id:user/alice' } }], action: 's3:GetObject', resource: OBJ, principal: ALICE, expected: 'Allow' },
  { name: 'principal by MinIO-style ARN', statements: [{ ...publicRead, Principal: { AWS: 'arn:aws:iam:::user/alice' } }], action: 's3:GetObject', resource: OBJ, principal: ALICE, expected: 'Allow' },
  { name: 'a named principal is not anonymous', statements: [{ ...publicRead, Principal: { AWS: 'alice-id' } }], action: 's3:GetObject', resource: OBJ, principal: ANON, expected: 'None' },
  { name: '{"AWS":"*"} includes anonymous', statements: [{ ...publicRead, Principal: { AWS: '*' } }], action: 's3:GetObject', resource: OBJ, principal: ANON, expected: 'Allow' },
  // NotAction: deny everything except reads.
  {
    name: 'NotAction: deny all but GetObject — a put is denied', action: 's3:PutObject', resource: OBJ, principal: BOB, expected: 'Deny',
    statements: [{ Effect: 'Allow', Principal: '*', Action: 's3:*', Resource: `arn:aws:s3:::${BUCKET}/*` }, { Effect: 'Deny', Principal: '*', NotAction: 's3:GetObject', Resource: `arn:aws:s3:::${BUCKET}/*` }],
  },
  {
    name: 'NotAction: deny all but GetObject — a get is allowed', action: 's3:GetObject', resource: OBJ, principal: BOB, expected: 'Allow',
    statements: [{ Effect: 'Allow', Principal: '*', Action: 's3:*', Resource: `arn:aws:s3:::${BUCKET}/*` }, { Effect: 'Deny', Principal: '*', NotAction: 's3:GetObject', Resource: `arn:aws:s3:::${BUCKET}/*` }],
  },
  // NotPrincipal: deny everyone but alice.
  {
    name: 'NotPrincipal: alice is exempt', action: 's3:GetObject', resource: OBJ, principal: ALICE, expected: 'Allow',
    statements: [publicRead, { Effect: 'Deny', NotPrincipal: { AWS: 'arn:aws:iam::alice-id:root' }, Action: 's3:*', Resource: `arn:aws:s3:::${BUCKET}/*` }],
  },
  {
    name: 'NotPrincipal: bob is denied', action: 's3:GetObject', resource: OBJ, principal: BOB, expected: 'Deny',
    statements: [publicRead, { Effect: 'Deny', NotPrincipal: { AWS: 'arn:aws:iam::alice-id:root' }, Action: 's3:*', Resource: `arn:aws:s3:::${BUCKET}/*` }],
  },
  {
    name: 'NotPrincipal: anonymous is denied', action: 's3:GetObject', resource: OBJ, principal: ANON, expected: 'Deny',
    statements: [publicRead, { Effect: 'Deny', NotPrincipal: { AWS: 'arn:aws:iam::alice-id:root' }, Action: 's3:*', Resource: `arn:aws:s3:::${BUCKET}/*` }],
  },
  // NotResource.
  {
    name: 'NotResource: deny outside the public/ prefix', action: 's3:GetObject', resource: OBJ, principal: ANON, expected: 'Deny',
    statements: [publicRead, { Effect: 'Deny', Principal: '*', Action: 's3:GetObject', NotResource: `arn:aws:s3:::${BUCKET}/public/*` }],
  },
  // IP ranges (AWS example: allow 192.0.2.0/24 except 192.0.2.188; IPv6 too).
  ...([
    ['192.0.2.10', 'Allow'], ['::ffff:192.0.2.10', 'Allow'], ['192.0.2.188', 'None'], ['::ffff:192.0.2.188', 'None'], ['198.51.100.1', 'None'], ['not-an-ip', 'None'], ['2001:db8:1234:5678::1', 'Allow'], ['2001:db8:1234:5679::1', 'None'],
  ] as const).map(([ip, expected]): Case => ({
    name: `IpAddress/NotIpAddress: ${ip}`, action: 's3:GetObject', resource: OBJ, principal: ANON, expected, keys: { 'aws:SourceIp': ip },
    statements: [{
      Effect: 'Allow', Principal: '*', Action: 's3:*', Resource: `arn:aws:s3:::${BUCKET}/*`,
      Condition: { IpAddress: { 'aws:SourceIp': ['192.0.2.0/24', '2001:DB8:1234:5678::/64'] }, NotIpAddress: { 'aws:SourceIp': '192.0.2.188/32' } },
    }],
  })),
  { name: 'IpAddress without a source IP does not hold', action: 's3:GetObject', resource: OBJ, principal: ANON, expected: 'None', statements: [{ ...publicRead, Condition: { IpAddress: { 'aws:SourceIp': '0.0.0.0/0' } } }] },
  // aws:SecureTransport (AWS example: deny plain HTTP).
  ...([[false, 'Deny'], [true, 'Allow']] as const).map(([secure, expected]): Case => ({
    name: `Bool aws:SecureTransport=${secure}`, action: 's3:GetObject', resource: OBJ, principal: ANON, expected, keys: { 'aws:SecureTransport': secure },
    statements: [publicRead, { Effect: 'Deny', Principal: '*', Action: 's3:*', Resource: `arn:aws:s3:::${BUCKET}/*`, Condition: { Bool: { 'aws:SecureTransport': 'false' } } }],
  })),
  // Conditions with and without IfExists.
  ...([
    ['StringEquals', undefined, 'None'], ['StringEqualsIfExists', undefined, 'Allow'], ['StringEquals', 'public-read', 'Allow'],
    ['StringEqualsIfExists', 'private', 'None'], ['StringNotEquals', undefined, 'Allow'], ['StringNotEquals', 'public-read', 'None'],
  ] as const).map(([operator, acl, expected]): Case => ({
    name: `${operator} s3:x-amz-acl with ${acl ?? 'no header'}`, action: 's3:PutObject', resource: OBJ, principal: BOB, expected, keys: { 's3:x-amz-acl': acl },
    statements: [{ Effect: 'Allow', Principal: '*', Action: 's3:PutObject', Resource: `arn:aws:s3:::${BUCKET}/*`, Condition: { [operator]: { 's3:x-amz-acl': 'public-read' } } }],
  })),
  // s3:prefix on ListBucket (AWS example: restrict listing to home/).
  ...([['home/', 'Allow'], ['home/alice/', 'Allow'], ['', 'None'], [undefined, 'None']] as const).map(([prefix, expected]): Case => ({
    name: `StringLike s3:prefix ${JSON.stringify(prefix)}`, action: 's3:ListBucket', resource: BKT, principal: BOB, expected, keys: { 's3:prefix': prefix },
    statements: [{ Effect: 'Allow', Principal: '*', Action: 's3:ListBucket', Resource: BKT, Condition: { StringLike: { 's3:prefix': ['home/*', 'home/'] } } }],
  })),
  // Referer (AWS example).
  ...([['https://www.example.com/page', 'Allow'], ['https://evil.example.net/', 'None']] as const).map(([referer, expected]): Case => ({
    name: `StringLike aws:Referer ${referer}`, action: 's3:GetObject', resource: OBJ, principal: ANON, expected, keys: { 'aws:Referer': referer },
    statements: [{ ...publicRead, Condition: { StringLike: { 'aws:Referer': ['https://www.example.com/*', 'https://example.com/*'] } } }],
  })),
  { name: 'StringEqualsIgnoreCase', action: 's3:PutObject', resource: OBJ, principal: BOB, expected: 'Allow', keys: { 's3:x-amz-metadata-directive': 'replace' }, statements: [{ Effect: 'Allow', Principal: '*', Action: 's3:PutObject', Resource: `arn:aws:s3:::${BUCKET}/*`, Condition: { StringEqualsIgnoreCase: { 's3:x-amz-metadata-directive': 'REPLACE' } } }] },
  { name: 'condition key names are case-insensitive', action: 's3:PutObject', resource: OBJ, principal: BOB, expected: 'Allow', keys: { 'S3:X-Amz-Acl': 'private' }, statements: [{ Effect: 'Allow', Principal: '*', Action: 's3:PutObject', Resource: `arn:aws:s3:::${BUCKET}/*`, Condition: { StringEquals: { 's3:x-amz-ACL': 'private' } } }] },
  // Numeric: cap listings at 100 keys.
  ...([['50', 'Allow'], ['100', 'Allow'], ['1000', 'None'], ['abc', 'None']] as const).map(([maxKeys, expected]): Case => ({
    name: `NumericLessThanEquals s3:max-keys ${maxKeys}`, action: 's3:ListBucket', resource: BKT, principal: BOB, expected, keys: { 's3:max-keys': maxKeys },
    statements: [{ Effect: 'Allow', Principal: '*', Action: 's3:ListBucket', Resource: BKT, Condition: { NumericLessThanEquals: { 's3:max-keys': 100 } } }],
  })),
  // Date: valid until the end of 2030.
  ...([['2026-12-06T07:00:00Z', 'Allow'], ['2031-01-01T00:00:00Z', 'None']] as const).map(([now, expected]): Case => ({
    name: `DateLessThan aws:CurrentTime ${now}`, action: 's3:GetObject', resource: OBJ, principal: ANON, expected, keys: { 'aws:CurrentTime': now },
    statements: [{ ...publicRead, Condition: { DateLessThan: { 'aws:CurrentTime': '2031-01-01T00:00:00Z' } } }],
  })),
  { name: 'DateGreaterThan with epoch seconds', action: 's3:GetObject', resource: OBJ, principal: ANON, expected: 'Allow', keys: { 'aws:EpochTime': '1800000000' }, statements: [{ ...publicRead, Condition: { DateGreaterThan: { 'aws:EpochTime': '2020-01-01T00:00:00Z' } } }] },
  // Null.
  ...([[undefined, 'Allow'], ['AES256', 'None']] as const).map(([sse, expected]): Case => ({
    name: `Null s3:x-amz-server-side-encryption (${sse ?? 'absent'})`, action: 's3:PutObject', resource: OBJ, principal: BOB, expected, keys: { 's3:x-amz-server-side-encryption': sse },
    statements: [{ Effect: 'Allow', Principal: '*', Action: 's3:PutObject', Resource: `arn:aws:s3:::${BUCKET}/*`, Condition: { Null: { 's3:x-amz-server-side-encryption': 'true' } } }],
  })),
  // AWS example: require MFA for /taxdocuments — Talus has no MFA, so the key is absent and the Deny applies.
  {
    name: 'Null aws:MultiFactorAuthAge: no MFA → denied', action: 's3:GetObject', resource: `arn:aws:s3:::${BUCKET}/taxdocuments/2024.pdf`, principal: BOB, expected: 'Deny',
    statements: [{ Effect: 'Allow', Principal: '*', Action: 's3:GetObject', Resource: `arn:aws:s3:::${BUCKET}/*` }, { Effect: 'Deny', Principal: '*', Action: 's3:*', Resource: `arn:aws:s3:::${BUCKET}/taxdocuments/*`, Condition: { Null: { 'aws:MultiFactorAuthAge': true } } }],
  },
  {
    name: 'Null aws:MultiFactorAuthAge: outside the prefix → allowed', action: 's3:GetObject', resource: OBJ, principal: BOB, expected: 'Allow',
    statements: [{ Effect: 'Allow', Principal: '*', Action: 's3:GetObject', Resource: `arn:aws:s3:::${BUCKET}/*` }, { Effect: 'Deny', Principal: '*', Action: 's3:*', Resource: `arn:aws:s3:::${BUCKET}/taxdocuments/*`, Condition: { Null: { 'aws:MultiFactorAuthAge': true } } }],
  },
  // AWS example: list only the top level (s3:delimiter "/" and an empty prefix).
  ...([[{ 's3:prefix': '', 's3:delimiter': '/' }, 'Allow'], [{ 's3:prefix': '', 's3:delimiter': '-' }, 'None'], [{ 's3:prefix': 'a/', 's3:delimiter': '/' }, 'None']] as const).map(([keys, expected]): Case => ({
    name: `root-level listing ${JSON.stringify(keys)}`, action: 's3:ListBucket', resource: BKT, principal: BOB, expected, keys,
    statements: [{ Effect: 'Allow', Principal: '*', Action: 's3:ListBucket', Resource: BKT, Condition: { StringEquals: { 's3:prefix': [''], 's3:delimiter': ['/'] } } }],
  })),
  // Tags: ExistingObjectTag, and set operators over a multi-valued key.
  { name: 's3:ExistingObjectTag/<key>', action: 's3:GetObject', resource: OBJ, principal: BOB, expected: 'Allow', keys: { 's3:ExistingObjectTag/classification': 'public' }, statements: [{ ...publicRead, Condition: { StringEquals: { 's3:ExistingObjectTag/classification': 'public' } } }] },
  ...([[['project'], 'Allow'], [['project', 'cost'], 'Allow'], [['project', 'secret'], 'None'], [[], 'Allow']] as const).map(([tagKeys, expected]): Case => ({
    name: `ForAllValues:StringEquals s3:RequestObjectTagKeys ${JSON.stringify(tagKeys)}`, action: 's3:PutObject', resource: OBJ, principal: BOB, expected, keys: { 's3:RequestObjectTagKeys': tagKeys },
    statements: [{ Effect: 'Allow', Principal: '*', Action: 's3:PutObject', Resource: `arn:aws:s3:::${BUCKET}/*`, Condition: { 'ForAllValues:StringEquals': { 's3:RequestObjectTagKeys': ['project', 'cost'] } } }],
  })),
  ...([[['project'], 'Allow'], [['secret', 'project'], 'Allow'], [['secret'], 'None'], [[], 'None']] as const).map(([tagKeys, expected]): Case => ({
    name: `ForAnyValue:StringEquals s3:RequestObjectTagKeys ${JSON.stringify(tagKeys)}`, action: 's3:PutObject', resource: OBJ, principal: BOB, expected, keys: { 's3:RequestObjectTagKeys': tagKeys },
    statements: [{ Effect: 'Allow', Principal: '*', Action: 's3:PutObject', Resource: `arn:aws:s3:::${BUCKET}/*`, Condition: { 'ForAnyValue:StringEquals': { 's3:RequestObjectTagKeys': 'project' } } }],
  })),
  // ARN conditions.
  { name: 'ArnLike aws:SourceArn', action: 's3:PutObject', resource: OBJ, principal: BOB, expected: 'Allow', keys: { 'aws:SourceArn': 'arn:aws:s3:::logs-bucket' }, statements: [{ Effect: 'Allow', Principal: '*', Action: 's3:PutObject', Resource: `arn:aws:s3:::${BUCKET}/*`, Condition: { ArnLike: { 'aws:SourceArn': 'arn:aws:s3:::logs-*' } } }] },
  // Policy variables.
  ...([['alice', `arn:aws:s3:::${BUCKET}/home/alice/x`, 'Allow'], ['alice', `arn:aws:s3:::${BUCKET}/home/bob/x`, 'None'], [undefined, `arn:aws:s3:::${BUCKET}/home/alice/x`, 'None']] as const).map(([user, resource, expected]): Case => ({
    name: `\${aws:username} in Resource: ${user ?? 'no user'} on ${resource}`, action: 's3:GetObject', resource, principal: ALICE, expected, keys: { 'aws:username': user },
    statements: [{ Effect: 'Allow', Principal: '*', Action: 's3:GetObject', Resource: `arn:aws:s3:::${BUCKET}/home/\${aws:username}/*` }],
  })),
  { name: 'a variable value with * stays literal', action: 's3:GetObject', resource: `arn:aws:s3:::${BUCKET}/home/alice/x`, principal: ALICE, expected: 'None', keys: { 'aws:username': '*' }, statements: [{ Effect: 'Allow', Principal: '*', Action: 's3:GetObject', Resource: `arn:aws:s3:::${BUCKET}/home/\${aws:username}/*` }] },
  ...([[`arn:aws:s3:::${BUCKET}/*/alice`, 'Allow'], [`arn:aws:s3:::${BUCKET}/x/alice`, 'None']] as const).map(([resource, expected]): Case => ({
    name: `\${*} is a literal star: ${resource}`, action: 's3:GetObject', resource, principal: ALICE, expected, keys: { 'aws:username': 'alice' },
    statements: [{ Effect: 'Allow', Principal: '*', Action: 's3:GetObject', Resource: `arn:aws:s3:::${BUCKET}/\${*}/\${aws:username}` }],
  })),
  { name: 'a variable value with * stays literal in StringLike', action: 's3:ListBucket', resource: BKT, principal: ALICE, expected: 'None', keys: { 'aws:username': '*', 's3:prefix': 'home/bob/x' }, statements: [{ Effect: 'Allow', Principal: '*', Action: 's3:ListBucket', Resource: BKT, Condition: { StringLike: { 's3:prefix': 'home/${aws:username}/*' } } }] },
  { name: 'variables are literal text in a 2008-10-17 policy', action: 's3:GetObject', resource: `arn:aws:s3:::${BUCKET}/home/alice/x`, principal: ALICE, expected: 'None', keys: { 'aws:username': 'alice' }, version: '2008-10-17', statements: [{ Effect: 'Allow', Principal: '*', Action: 's3:GetObject', Resource: `arn:aws:s3:::${BUCKET}/home/\${aws:username}/*` }] },
  { name: '${aws:username} in a condition value', action: 's3:ListBucket', resource: BKT, principal: ALICE, expected: 'Allow', keys: { 'aws:username': 'alice', 's3:prefix': 'home/alice/docs' }, statements: [{ Effect: 'Allow', Principal: '*', Action: 's3:ListBucket', Resource: BKT, Condition: { StringLike: { 's3:prefix': 'home/${aws:username}/*' } } }] },
];

for (const testCase of evaluation) {
  test(`policy evaluation: ${testCase.name}`, () => {
    const text = testCase.version === undefined ? bucketPolicy(testCase.statements) : JSON.stringify({ Version: testCase.version, Statement: testCase.statements });
    const policy = parsePolicy(text, { kind: 'bucket', bucket: BUCKET });
    const verdict = evaluatePolicy(policy, { action: testCase.action, resource: testCase.resource, principal: testCase.principal, keys: conditionKeys(testCase.keys ?? {}) });
    assert.equal(verdict.effect, testCase.expected);
  });
}

test('built-in identity policies are MinIO\'s', () => {
  const keys = conditionKeys({});
  const on = (policy: keyof typeof BUILT_IN_POLICIES, action: S3Action, resource: string) => evaluatePolicy(BUILT_IN_POLICIES[policy], { action, resource, keys }).effect;
  assert.equal(on('readwrite', 's3:PutObject', OBJ), 'Allow');
  assert.equal(on('readwrite', 's3:ListAllMyBuckets', 'arn:aws:s3:::'), 'Allow');
  assert.equal(on('readwrite', 's3:CreateBucket', BKT), 'Allow');
  assert.equal(on('readonly', 's3:GetObject', OBJ), 'Allow');
  assert.equal(on('readonly', 's3:GetBucketLocation', BKT), 'Allow');
  assert.equal(on('readonly', 's3:PutObject', OBJ), 'None');
  assert.equal(on('readonly', 's3:DeleteObject', OBJ), 'None');
  assert.equal(on('writeonly', 's3:PutObject', OBJ), 'Allow');
  assert.equal(on('writeonly', 's3:GetObject', OBJ), 'None');
});

test('keys are opaque: "..", "\\", "%2e%2e" and NUL never reach another bucket\'s resource', () => {
  const otherBucket = parsePolicy(JSON.stringify({ Version: '2012-10-17', Statement: [{ Effect: 'Allow', Action: 's3:GetObject', Resource: ['arn:aws:s3:::secret/*', 'arn:aws:s3:::other/*'] }] }), { kind: 'identity' });
  const onlyPublic = parsePolicy(bucketPolicy([{ Effect: 'Allow', Principal: '*', Action: 's3:GetObject', Resource: `arn:aws:s3:::${BUCKET}/public/*` }]), { kind: 'bucket', bucket: BUCKET });
  const keys = conditionKeys({});
  for (const key of ['../secret/x', '..\\secret\\x', '%2e%2e/secret/x', 'public\u0000/../../secret/x', '../../other/x', '/../other/x']) {
    const resource = objectArn(BUCKET, key);
    assert.ok(resource.startsWith(`arn:aws:s3:::${BUCKET}/`), resource);
    assert.equal(evaluatePolicy(otherBucket, { action: 's3:GetObject', resource, keys }).effect, 'None', key);
  }
  // S3 keys are not paths: "public/../x" is a key under public/, and only there.
  assert.equal(evaluatePolicy(onlyPublic, { action: 's3:GetObject', resource: objectArn(BUCKET, 'public/../x'), principal: ANON, keys }).effect, 'Allow');
  assert.equal(evaluatePolicy(onlyPublic, { action: 's3:GetObject', resource: objectArn(BUCKET, '%2e%2e/public/x'), principal: ANON, keys }).effect, 'None');
});
