import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  ALL_USERS_URI, AUTHENTICATED_USERS_URI, type Acl, type CannedAcl, type GranteeResolver, LOG_DELIVERY_URI, aclFromHeaders, aclGrants,
  expandCannedAcl, isPublicAcl, parseAccessControlPolicy, renderAccessControlPolicy,
} from './acl.ts';
import { AuthzError } from './errors.ts';

const OWNER = { id: 'owner-id', displayName: 'owner' };
const BUCKET_OWNER = { id: 'bucket-owner-id', displayName: 'bob' };
const USERS = new Map([['owner-id', { id: 'owner-id', displayName: 'owner' }], ['alt-id', { id: 'alt-id', displayName: 'alt' }]]);
const resolver: GranteeResolver = {
  userById: (id) => USERS.get(id),
  userByEmail: (email) => (email === 'alt@example.com' ? USERS.get('alt-id') : undefined),
};

function summary(acl: Acl): string[] {
  return acl.grants.map((grant) => `${grant.grantee.type === 'Group' ? grant.grantee.uri.split('/').pop() : grant.grantee.id}:${grant.permission}`);
}

const canned: [CannedAcl, 'bucket' | 'object', string[]][] = [
  ['private', 'bucket', ['owner-id:FULL_CONTROL']],
  ['public-read', 'bucket', ['owner-id:FULL_CONTROL', 'AllUsers:READ']],
  ['public-read-write', 'object', ['owner-id:FULL_CONTROL', 'AllUsers:READ', 'AllUsers:WRITE']],
  ['authenticated-read', 'object', ['owner-id:FULL_CONTROL', 'AuthenticatedUsers:READ']],
  ['bucket-owner-read', 'object', ['owner-id:FULL_CONTROL', 'bucket-owner-id:READ']],
  ['bucket-owner-full-control', 'object', ['owner-id:FULL_CONTROL', 'bucket-owner-id:FULL_CONTROL']],
  ['bucket-owner-full-control', 'bucket', ['owner-id:FULL_CONTROL']],
  ['log-delivery-write', 'bucket', ['owner-id:FULL_CONTROL', 'LogDelivery:WRITE', 'LogDelivery:READ_ACP']],
  ['log-delivery-write', 'object', ['owner-id:FULL_CONTROL']],
];
for (const [name, target, expected] of canned) {
  test(`canned ACL ${name} on a ${target}`, () => {
    assert.deepEqual(summary(expandCannedAcl(name, target, OWNER, BUCKET_OWNER)), expected);
  });
}

test('bucket-owner-full-control by the bucket owner itself adds nothing', () => {
  assert.deepEqual(summary(expandCannedAcl('bucket-owner-full-control', 'object', OWNER, OWNER)), ['owner-id:FULL_CONTROL']);
});

// ------------------------------------------------------------ grant headers

test('grant headers: id, uri, emailAddress lists; exactly the grants listed', () => {
  const acl = aclFromHeaders({
    'x-amz-grant-read': `uri="${ALL_USERS_URI}", id="alt-id"`,
    'x-amz-grant-write-acp': 'emailAddress="alt@example.com"',
    'x-amz-grant-full-control': 'id="owner-id"',
  }, 'object', OWNER, resolver);
  assert.ok(acl !== undefined);
  assert.equal(acl.canned, undefined);
  assert.deepEqual(summary(acl.acl), ['AllUsers:READ', 'alt-id:READ', 'alt-id:WRITE_ACP', 'owner-id:FULL_CONTROL']);
  assert.equal(acl.acl.grants[1]?.grantee.type === 'CanonicalUser' && acl.acl.grants[1].grantee.displayName, 'alt');
});

test('grant headers: unquoted values, as ceph/s3-tests sends them', () => {
  const acl = aclFromHeaders({ 'x-amz-grant-read': 'id=alt-id', 'x-amz-grant-write': `uri=${ALL_USERS_URI}` }, 'bucket', OWNER, resolver);
  assert.deepEqual(summary((acl as { acl: Acl }).acl), ['alt-id:READ', 'AllUsers:WRITE']);
});

test('no ACL headers: undefined (the default, private)', () => {
  assert.equal(aclFromHeaders({ 'content-type': 'text/plain' }, 'object', OWNER, resolver), undefined);
});

test('x-amz-acl expands the canned ACL and keeps its name', () => {
  const requested = aclFromHeaders({ 'x-amz-acl': 'public-read' }, 'bucket', OWNER, resolver);
  assert.equal(requested?.canned, 'public-read');
  assert.deepEqual(summary((requested as { acl: Acl }).acl), ['owner-id:FULL_CONTROL', 'AllUsers:READ']);
});

const headerErrors: [string, Record<string, string>, string, string][] = [
  ['canned and grants together', { 'x-amz-acl': 'private', 'x-amz-grant-read': 'id="alt-id"' }, 'InvalidRequest', 'Specifying both Canned ACLs and Header Grants is not allowed'],
  ['unknown canned ACL', { 'x-amz-acl': 'public' }, 'InvalidArgument', 'Invalid canned ACL'],
  ['unknown id', { 'x-amz-grant-read': 'id="nobody"' }, 'InvalidArgument', 'Invalid id'],
  ['unknown group', { 'x-amz-grant-read': 'uri="http://acs.amazonaws.com/groups/global/Everyone"' }, 'InvalidArgument', 'Invalid group uri'],
  ['unknown email', { 'x-amz-grant-read': 'emailAddress="ghost@example.com"' }, 'UnresolvableGrantByEmailAddress', 'The e-mail address you provided does not match any account on record.'],
  ['a value with a space', { 'x-amz-grant-read': 'id=alt id' }, 'InvalidArgument', 'Invalid grant: id=alt id'],
  ['unknown grantee type', { 'x-amz-grant-read': 'user="alt-id"' }, 'InvalidArgument', 'Invalid grant: user="alt-id"'],
];
for (const [name, headers, code, message] of headerErrors) {
  test(`grant headers refused: ${name}`, () => {
    assert.throws(() => aclFromHeaders(headers, 'object', OWNER, resolver), (error: unknown) => {
      assert.ok(error instanceof AuthzError);
      assert.equal(error.code, code);
      assert.equal(error.message, message);
      return true;
    });
  });
}

// ------------------------------------------------------------ XML

// AWS's document, with group grants first (as RGW orders them; ceph/s3-tests' check_grants needs it).
const AWS_XML = '<?xml version="1.0" encoding="UTF-8"?>\n<AccessControlPolicy xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Owner><ID>owner-id</ID><DisplayName>owner</DisplayName></Owner><AccessControlList>'
  + '<Grant><Grantee xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:type="Group"><URI>http://acs.amazonaws.com/groups/global/AllUsers</URI></Grantee><Permission>READ</Permission></Grant>'
  + '<Grant><Grantee xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:type="CanonicalUser"><ID>owner-id</ID><DisplayName>owner</DisplayName></Grantee><Permission>FULL_CONTROL</Permission></Grant>'
  + '</AccessControlList></AccessControlPolicy>';

test('renders AccessControlPolicy as AWS does, group grants first', () => {
  assert.equal(renderAccessControlPolicy(expandCannedAcl('public-read', 'bucket', OWNER)), AWS_XML);
});

test('XML round trip: render → parse → render is identical', () => {
  const acl: Acl = {
    owner: OWNER,
    grants: [
      { grantee: { type: 'Group', uri: AUTHENTICATED_USERS_URI }, permission: 'READ' },
      { grantee: { type: 'Group', uri: LOG_DELIVERY_URI }, permission: 'WRITE' },
      { grantee: { type: 'CanonicalUser', id: 'alt-id', displayName: 'alt' }, permission: 'WRITE_ACP' },
    ],
  };
  const xml = renderAccessControlPolicy(acl);
  const parsed = parseAccessControlPolicy(xml, resolver);
  assert.deepEqual(parsed.owner, OWNER);
  assert.equal(renderAccessControlPolicy({ owner: parsed.owner ?? OWNER, grants: parsed.grants }), xml);
});

test('parses what boto3 sends: another namespace prefix, whitespace, an email grantee, no Owner', () => {
  const xml = `<AccessControlPolicy xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
    <AccessControlList>
      <Grant>
        <Grantee xmlns:x="http://www.w3.org/2001/XMLSchema-instance" x:type="AmazonCustomerByEmail"><EmailAddress>alt@example.com</EmailAddress></Grantee>
        <Permission>READ</Permission>
      </Grant>
    </AccessControlList>
  </AccessControlPolicy>`;
  const parsed = parseAccessControlPolicy(xml, resolver);
  assert.equal(parsed.owner, undefined);
  assert.deepEqual(parsed.grants, [{ grantee: { type: 'CanonicalUser', id: 'alt-id', displayName: 'alt' }, permission: 'READ' }]);
});

test('an empty AccessControlList is no grants', () => {
  assert.deepEqual(parseAccessControlPolicy('<AccessControlPolicy><Owner><ID>owner-id</ID></Owner><AccessControlList/></AccessControlPolicy>', resolver).grants, []);
});

const xmlErrors: [string, string, string][] = [
  ['not XML', 'nope', 'MalformedACLError'],
  ['wrong root', '<Foo/>', 'MalformedACLError'],
  ['bad permission', grantXml('CanonicalUser', '<ID>alt-id</ID>', 'EVERYTHING'), 'MalformedACLError'],
  ['no xsi:type', '<AccessControlPolicy><AccessControlList><Grant><Grantee><ID>alt-id</ID></Grantee><Permission>READ</Permission></Grant></AccessControlList></AccessControlPolicy>', 'MalformedACLError'],
  ['unknown xsi:type', grantXml('Robot', '<ID>alt-id</ID>', 'READ'), 'MalformedACLError'],
  ['unknown canonical ID', grantXml('CanonicalUser', '<ID>nobody</ID>', 'READ'), 'InvalidArgument'],
  ['unknown group', grantXml('Group', '<URI>http://example.com/group</URI>', 'READ'), 'InvalidArgument'],
  ['unknown email', grantXml('AmazonCustomerByEmail', '<EmailAddress>ghost@example.com</EmailAddress>', 'READ'), 'UnresolvableGrantByEmailAddress'],
];
function grantXml(type: string, inner: string, permission: string): string {
  return `<AccessControlPolicy><Owner><ID>owner-id</ID></Owner><AccessControlList><Grant><Grantee xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:type="${type}">${inner}</Grantee><Permission>${permission}</Permission></Grant></AccessControlList></AccessControlPolicy>`;
}
for (const [name, xml, code] of xmlErrors) {
  test(`AccessControlPolicy refused: ${name}`, () => {
    assert.throws(() => parseAccessControlPolicy(xml, resolver), (error: unknown) => error instanceof AuthzError && error.code === code);
  });
}

// ------------------------------------------------------------ checks

test('ACL checks: direct grants, groups, FULL_CONTROL, IgnorePublicAcls', () => {
  const acl: Acl = {
    owner: OWNER,
    grants: [
      { grantee: { type: 'CanonicalUser', id: 'owner-id' }, permission: 'FULL_CONTROL' },
      { grantee: { type: 'CanonicalUser', id: 'alt-id' }, permission: 'READ_ACP' },
      { grantee: { type: 'Group', uri: AUTHENTICATED_USERS_URI }, permission: 'READ' },
    ],
  };
  const alt = { anonymous: false as const, canonicalId: 'alt-id' };
  const anonymous = { anonymous: true as const };
  assert.equal(aclGrants(acl, { anonymous: false, canonicalId: 'owner-id' }, 'WRITE_ACP'), true);
  assert.equal(aclGrants(acl, alt, 'READ_ACP'), true);
  assert.equal(aclGrants(acl, alt, 'WRITE_ACP'), false);
  assert.equal(aclGrants(acl, alt, 'READ'), true, 'through AuthenticatedUsers');
  assert.equal(aclGrants(acl, anonymous, 'READ'), false, 'anonymous is not authenticated');
  assert.equal(aclGrants(acl, alt, 'READ', { ignorePublicGrants: true }), false);
  assert.equal(isPublicAcl(acl), true);
  assert.equal(isPublicAcl(expandCannedAcl('bucket-owner-full-control', 'object', OWNER, BUCKET_OWNER)), false);
  assert.equal(isPublicAcl(expandCannedAcl('log-delivery-write', 'bucket', OWNER)), false);
});
