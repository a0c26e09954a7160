/**
 * Access control lists: the model (an owner and grants), canned ACLs
 * expanded as AWS expands them, `x-amz-grant-*` headers, the
 * AccessControlPolicy XML in both directions, and "does this ACL grant this
 * permission to this principal".
 *
 * Email grants are resolved to canonical IDs when an ACL is set (AWS does the
 * same: GetAcl shows the canonical user), so a stored ACL holds only
 * CanonicalUser and Group grantees.
 */
import { XMLParser, XMLValidator } from 'fast-xml-parser';
import { ACL_PERMISSIONS, type AclPermission } from './actions.ts';
import { AuthzError } from './errors.ts';

export const ALL_USERS_URI = 'http://acs.amazonaws.com/groups/global/AllUsers';
export const AUTHENTICATED_USERS_URI = 'http://acs.amazonaws.com/groups/global/AuthenticatedUsers';
export const LOG_DELIVERY_URI = 'http://acs.amazonaws.com/groups/s3/LogDelivery';
export const GROUP_URIS: readonly string[] = [ALL_USERS_URI, AUTHENTICATED_USERS_URI, LOG_DELIVERY_URI];

/** AWS: "You can have up to 100 grants in an ACL." */
export const ACL_GRANTS_MAX = 100;

export interface AclOwner {
  id: string;
  displayName?: string;
}

export type Grantee =
  | { type: 'CanonicalUser'; id: string; displayName?: string }
  | { type: 'Group'; uri: string };

export interface Grant {
  grantee: Grantee;
  permission: AclPermission;
}

export interface Acl {
  owner: AclOwner;
  grants: readonly Grant[];
}

/**
 * An ACL a request asks for: `acl` as it would be stored, and `canned` when
 * it came from x-amz-acl (ownership rules look at the canned name).
 */
export interface RequestedAcl {
  canned?: CannedAcl | undefined;
  acl: Acl;
}

/** A user as the resolver knows it. */
export interface KnownUser {
  id: string;
  displayName: string;
}

/** Looks up grantees named by ID or email; both synchronous (the wiring serves them from memory). */
export interface GranteeResolver {
  userById(id: string): KnownUser | undefined;
  userByEmail(email: string): KnownUser | undefined;
}

// ---------------------------------------------------------------- canned ACLs

export const CANNED_ACLS = [
  'private', 'public-read', 'public-read-write', 'authenticated-read', 'bucket-owner-read', 'bucket-owner-full-control',
  'log-delivery-write',
] as const;
export type CannedAcl = (typeof CANNED_ACLS)[number];

export function isCannedAcl(text: string): text is CannedAcl {
  return (CANNED_ACLS as readonly string[]).includes(text);
}

function ownerGrant(owner: AclOwner): Grant {
  const grantee: Grantee = { type: 'CanonicalUser', id: owner.id };
  if (owner.displayName !== undefined) grantee.displayName = owner.displayName;
  return { grantee, permission: 'FULL_CONTROL' };
}

function groupGrant(uri: string, permission: AclPermission): Grant {
  return { grantee: { type: 'Group', uri }, permission };
}

/**
 * A canned ACL as AWS expands it. `owner` is the resource's owner; for an
 * object, `bucketOwner` is the bucket's (bucket-owner-read and
 * bucket-owner-full-control add it, unless it is the object's owner).
 * On a bucket, the bucket-owner-* ACLs are plain `private`, and on an object
 * `log-delivery-write` is too (AWS ignores what does not apply).
 */
export function expandCannedAcl(canned: CannedAcl, target: 'bucket' | 'object', owner: AclOwner, bucketOwner?: AclOwner): Acl {
  const grants: Grant[] = [ownerGrant(owner)];
  switch (canned) {
    case 'private':
      break;
    case 'public-read':
      grants.push(groupGrant(ALL_USERS_URI, 'READ'));
      break;
    case 'public-read-write':
      grants.push(groupGrant(ALL_USERS_URI, 'READ'), groupGrant(ALL_USERS_URI, 'WRITE'));
      break;
    case 'authenticated-read':
      grants.push(groupGrant(AUTHENTICATED_USERS_URI, 'READ'));
      break;
    case 'bucket-owner-read':
    case 'bucket-owner-full-control':
      if (target === 'object' && bucketOwner !== undefined && bucketOwner.id !== owner.id) {
        const grant = ownerGrant(bucketOwner);
        grants.push(canned === 'bucket-owner-read' ? { ...grant, permission: 'READ' } : grant);
      }
      break;
    case 'log-delivery-write':
      if (target === 'bucket') grants.push(groupGrant(LOG_DELIVERY_URI, 'WRITE'), groupGrant(LOG_DELIVERY_URI, 'READ_ACP'));
      break;
  }
  return { owner, grants };
}

/** The ACL a resource has when none was ever set: its owner has FULL_CONTROL. */
export function privateAcl(owner: AclOwner): Acl {
  return { owner, grants: [ownerGrant(owner)] };
}

// ---------------------------------------------------------------- x-amz-grant-* headers

export const GRANT_HEADERS: Readonly<Record<string, AclPermission>> = {
  'x-amz-grant-read': 'READ',
  'x-amz-grant-write': 'WRITE',
  'x-amz-grant-read-acp': 'READ_ACP',
  'x-amz-grant-write-acp': 'WRITE_ACP',
  'x-amz-grant-full-control': 'FULL_CONTROL',
};

/** `id="…"`, or unquoted `id=…` as ceph/s3-tests and RGW send it. */
const GRANT_ITEM = /^\s*(id|uri|emailaddress)\s*=\s*(?:"([^"]*)"|([^",\s]+))\s*$/i;

function invalidArgument(message: string, name: string, value: string): AuthzError {
  return new AuthzError('InvalidArgument', message, { ArgumentName: name, ArgumentValue: value });
}

/**
 * The ACL an upload or bucket creation asks for through its headers:
 * `x-amz-acl` (canned) or `x-amz-grant-*` (lists of `id="…"`, `uri="…"`,
 * `emailAddress="…"`), never both. Undefined when neither is present (the
 * resource gets the default, private). With grant headers the ACL holds
 * exactly the grants listed (AWS does not add the owner's FULL_CONTROL).
 */
export function aclFromHeaders(
  headers: Readonly<Record<string, string | string[] | undefined>>,
  target: 'bucket' | 'object',
  owner: AclOwner,
  resolver: GranteeResolver,
  bucketOwner?: AclOwner,
): RequestedAcl | undefined {
  const cannedHeader = headerValue(headers, 'x-amz-acl');
  const grantHeaders = Object.keys(GRANT_HEADERS).filter((name) => headerValue(headers, name) !== undefined);
  if (cannedHeader !== undefined && grantHeaders.length > 0) {
    throw new AuthzError('InvalidRequest', 'Specifying both Canned ACLs and Header Grants is not allowed');
  }
  if (cannedHeader !== undefined) {
    const canned = cannedHeader.trim();
    if (!isCannedAcl(canned)) throw invalidArgument('Invalid canned ACL', 'x-amz-acl', cannedHeader);
    return { canned, acl: expandCannedAcl(canned, target, owner, bucketOwner) };
  }
  if (grantHeaders.length === 0) return undefined;
  const grants: Grant[] = [];
  for (const name of grantHeaders) {
    const value = headerValue(headers, name) as string;
    const permission = GRANT_HEADERS[name] as AclPermission;
    for (const item of value.split(',')) {
      const match = GRANT_ITEM.exec(item);
      if (match === null) throw invalidArgument(`Invalid grant: ${item.trim()}`, name, value);
      const kind = (match[1] as string).toLowerCase();
      const text = (match[2] ?? match[3]) as string;
      grants.push({ grantee: resolveGrantee(kind === 'id' ? 'CanonicalUser' : kind === 'uri' ? 'Group' : 'AmazonCustomerByEmail', text, resolver, name), permission });
    }
  }
  if (grants.length > ACL_GRANTS_MAX) throw new AuthzError('InvalidArgument', `An ACL can have at most ${ACL_GRANTS_MAX} grants`);
  return { acl: { owner, grants } };
}

function headerValue(headers: Readonly<Record<string, string | string[] | undefined>>, name: string): string | undefined {
  const value = headers[name];
  return Array.isArray(value) ? value.join(',') : value;
}

function resolveGrantee(type: string, value: string, resolver: GranteeResolver, argumentName: string): Grantee {
  switch (type) {
    case 'CanonicalUser': {
      const user = resolver.userById(value);
      if (user === undefined) throw invalidArgument('Invalid id', argumentName === 'AccessControlList' ? 'CanonicalUser/ID' : argumentName, value);
      return { type: 'CanonicalUser', id: user.id, displayName: user.displayName };
    }
    case 'AmazonCustomerByEmail': {
      const user = resolver.userByEmail(value);
      if (user === undefined) throw new AuthzError('UnresolvableGrantByEmailAddress', undefined, { EmailAddress: value });
      return { type: 'CanonicalUser', id: user.id, displayName: user.displayName };
    }
    case 'Group':
      if (!GROUP_URIS.includes(value)) throw invalidArgument('Invalid group uri', argumentName === 'AccessControlList' ? 'Group/URI' : argumentName, value);
      return { type: 'Group', uri: value };
    default:
      throw new AuthzError('MalformedACLError');
  }
}

// ---------------------------------------------------------------- AccessControlPolicy XML

const S3_NAMESPACE = 'http://s3.amazonaws.com/doc/2006-03-01/';
const XSI_NAMESPACE = 'http://www.w3.org/2001/XMLSchema-instance';

const ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&apos;' };
/** As src/http/xml.ts escapes (kept here so this layer imports nothing above it), control characters included. */
function escapeXml(text: string): string {
  // eslint-disable-next-line no-control-regex
  return text.replace(/[&<>"'\u0000-\u0008\u000b\u000c\u000e-\u001f\r]/g, (char) => ESCAPES[char] ?? `&#${char.charCodeAt(0)};`);
}

function ownerXml(owner: AclOwner): string {
  const name = owner.displayName === undefined ? '' : `<DisplayName>${escapeXml(owner.displayName)}</DisplayName>`;
  return `<Owner><ID>${escapeXml(owner.id)}</ID>${name}</Owner>`;
}

function granteeXml(grantee: Grantee): string {
  const open = `<Grantee xmlns:xsi="${XSI_NAMESPACE}" xsi:type="${grantee.type}">`;
  if (grantee.type === 'Group') return `${open}<URI>${escapeXml(grantee.uri)}</URI></Grantee>`;
  const name = grantee.displayName === undefined ? '' : `<DisplayName>${escapeXml(grantee.displayName)}</DisplayName>`;
  return `${open}<ID>${escapeXml(grantee.id)}</ID>${name}</Grantee>`;
}

/**
 * GetBucketAcl / GetObjectAcl's body, as AWS renders it, except for the
 * order: group grants come first (stable otherwise), as Ceph RGW lists them.
 * ceph/s3-tests depends on it: its check_grants compares in order when the
 * first grant has no DisplayName, and cannot sort a list mixing groups
 * (no DisplayName) with users.
 */
export function renderAccessControlPolicy(acl: Acl): string {
  const ordered = [...acl.grants.filter((grant) => grant.grantee.type === 'Group'), ...acl.grants.filter((grant) => grant.grantee.type !== 'Group')];
  const grants = ordered.map((grant) => `<Grant>${granteeXml(grant.grantee)}<Permission>${grant.permission}</Permission></Grant>`).join('');
  return `<?xml version="1.0" encoding="UTF-8"?>\n<AccessControlPolicy xmlns="${S3_NAMESPACE}">${ownerXml(acl.owner)}<AccessControlList>${grants}</AccessControlList></AccessControlPolicy>`;
}

const aclParser = new XMLParser({
  ignoreAttributes: false,
  attributeNamePrefix: '@_',
  removeNSPrefix: true,
  parseTagValue: false,
  parseAttributeValue: false,
  trimValues: true,
  processEntities: true,
  htmlEntities: true,
  isArray: (name) => name === 'Grant',
});

type XmlObject = Record<string, unknown>;

function child(node: unknown, name: string): unknown {
  return typeof node === 'object' && node !== null && !Array.isArray(node) ? (node as XmlObject)[name] : undefined;
}

function text(node: unknown): string | undefined {
  if (node === undefined) return undefined;
  if (typeof node === 'string') return node;
  if (typeof node === 'object' && node !== null && Object.keys(node).length === 0) return '';
  if (typeof node === 'object' && node !== null && '#text' in node) return String((node as XmlObject)['#text']);
  throw new AuthzError('MalformedACLError');
}

/**
 * Parses a PutBucketAcl / PutObjectAcl body. The Owner element is optional
 * here (the wiring compares it with the resource's owner when present);
 * grantees are resolved and validated as AWS does: an unknown ID is
 * InvalidArgument, an unknown email UnresolvableGrantByEmailAddress, an
 * unknown group URI InvalidArgument, anything malformed MalformedACLError.
 */
export function parseAccessControlPolicy(xml: string, resolver: GranteeResolver): { owner: AclOwner | undefined; grants: Grant[] } {
  if (xml.trim() === '' || XMLValidator.validate(xml) !== true) throw new AuthzError('MalformedACLError');
  let parsed: unknown;
  try {
    parsed = aclParser.parse(xml);
  } catch {
    throw new AuthzError('MalformedACLError');
  }
  const root = child(parsed, 'AccessControlPolicy');
  if (root === undefined || typeof root !== 'object' || root === null) throw new AuthzError('MalformedACLError');
  let owner: AclOwner | undefined;
  const ownerNode = child(root, 'Owner');
  if (ownerNode !== undefined) {
    const id = text(child(ownerNode, 'ID'));
    if (id === undefined || id === '') throw new AuthzError('MalformedACLError');
    owner = { id };
    const displayName = text(child(ownerNode, 'DisplayName'));
    if (displayName !== undefined) owner.displayName = displayName;
  }
  const list = child(root, 'AccessControlList');
  const grantNodes = list === undefined || list === '' ? [] : child(list, 'Grant');
  if (list !== undefined && list !== '' && grantNodes === undefined && Object.keys(list as XmlObject).length > 0) throw new AuthzError('MalformedACLError');
  const grants: Grant[] = [];
  for (const node of (grantNodes ?? []) as unknown[]) {
    const granteeNode = child(node, 'Grantee');
    const permission = text(child(node, 'Permission'));
    if (granteeNode === undefined || permission === undefined || !(ACL_PERMISSIONS as readonly string[]).includes(permission)) {
      throw new AuthzError('MalformedACLError');
    }
    const type = child(granteeNode, '@_type');
    if (typeof type !== 'string') throw new AuthzError('MalformedACLError');
    let value: string | undefined;
    if (type === 'CanonicalUser') value = text(child(granteeNode, 'ID'));
    else if (type === 'Group') value = text(child(granteeNode, 'URI'));
    else if (type === 'AmazonCustomerByEmail') value = text(child(granteeNode, 'EmailAddress'));
    else throw new AuthzError('MalformedACLError');
    if (value === undefined || value === '') throw new AuthzError('MalformedACLError');
    grants.push({ grantee: resolveGrantee(type, value, resolver, 'AccessControlList'), permission: permission as AclPermission });
  }
  if (grants.length > ACL_GRANTS_MAX) throw new AuthzError('InvalidArgument', `An ACL can have at most ${ACL_GRANTS_MAX} grants`);
  return { owner, grants };
}

// ---------------------------------------------------------------- checks

/** Who asks, as ACLs see it. */
export type AclPrincipal = { anonymous: true } | { anonymous: false; canonicalId: string };

export interface AclCheckOptions {
  /** Public access block IgnorePublicAcls: grants to AllUsers and AuthenticatedUsers count for nothing. */
  ignorePublicGrants?: boolean;
}

/** Does the ACL grant `permission` (or FULL_CONTROL) to the principal, directly or through a group? */
export function aclGrants(acl: Acl, principal: AclPrincipal, permission: AclPermission, options: AclCheckOptions = {}): boolean {
  for (const grant of acl.grants) {
    if (grant.permission !== permission && grant.permission !== 'FULL_CONTROL') continue;
    const grantee = grant.grantee;
    if (grantee.type === 'CanonicalUser') {
      if (!principal.anonymous && grantee.id === principal.canonicalId) return true;
    } else if (grantee.uri === ALL_USERS_URI) {
      if (options.ignorePublicGrants !== true) return true;
    } else if (grantee.uri === AUTHENTICATED_USERS_URI) {
      if (!principal.anonymous && options.ignorePublicGrants !== true) return true;
    }
    // LogDelivery: no Talus principal is the log delivery service.
  }
  return false;
}

/** An ACL is public when it grants anything to AllUsers or AuthenticatedUsers (AWS's definition). */
export function isPublicAcl(acl: Acl): boolean {
  return acl.grants.some((grant) => grant.grantee.type === 'Group' && (grant.grantee.uri === ALL_USERS_URI || grant.grantee.uri === AUTHENTICATED_USERS_URI));
}
