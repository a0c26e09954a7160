/**
 * Authorization on the request path: the one place that asks src/authz's
 * `authorize()` about a request. The HTTP front builds a `RequestAccess`
 * once the signature is verified (or the request is found unsigned) and calls
 * `authorizeRequest()` before any handler runs; handlers use the same object
 * for the checks that need what only they find (a GET's version, a copy's
 * source, each key of DeleteObjects), always before conditional headers.
 * Every denial is 403 AccessDenied and happens before anything changes.
 */
import type { IncomingHttpHeaders, IncomingMessage } from 'node:http';
import { socketSource } from '../http/console-source.ts';
import {
  type Acl,
  type AclOwner,
  type AuthzOperation,
  type BucketAccess,
  type CheckTarget,
  type ConditionKeys,
  type GranteeResolver,
  type ObjectAccess,
  type OperationTarget,
  type PermissionCheck,
  type Principal,
  type RequestFacts,
  type RequestedAcl,
  aclFromHeaders,
  authorize,
  checkAclAllowed,
  checkAclWrite,
  isPublicPolicy,
  missingObjectCheck,
  objectOwnerForWrite,
  parsePolicy,
  requestConditionKeys,
  requiredChecks,
} from '../authz/index.ts';
import type { ReadGate } from '../engine/types.ts';
import type { BucketRecord, ObjectVersion } from '../meta/types.ts';
import { S3Error } from '../util/s3-error.ts';

/** What the request path needs of the principals (PrincipalCache provides it). */
export interface PrincipalDirectory {
  readonly rootCanonicalId: string;
  lookupKey(accessKeyId: string): { secretAccessKey: string; principal: Principal } | undefined;
  account(canonicalId: string): { canonicalId: string; displayName: string } | undefined;
  readonly grantees: GranteeResolver;
  /** The account of an access key: owners recorded before ownership was wired are key IDs. */
  canonicalIdOfKey(accessKeyId: string): string | undefined;
}

/**
 * The canonical ID AWS gives anonymous writers (objects written through a
 * public-write ACL or policy belong to it).
 */
export const ANONYMOUS_CANONICAL_ID = '65a011a29cdf8ec533ec3d1ccaae921c';
export const ANONYMOUS_DISPLAY_NAME = 'anonymous';

/** How the front authorizes an operation before its handler runs (OPERATIONS in operations.ts). */
export type Authorization =
  /** requiredChecks(operation) on the bucket, now; a copy's source is checked later, through `copySourceGate`. */
  | { operation: AuthzOperation; object?: undefined }
  /** The addressed version is looked up and judged with its owner, ACL and tags (tagging, ACL, attributes). */
  | { operation: AuthzOperation; object: 'lookup' }
  /** GetObject/HeadObject: judged by the engine's read gate once it found the version, before conditions. */
  | { operation: AuthzOperation; object: 'gate' }
  /** DeleteObjects: each key on its own, in the handler (a denied key is an AccessDenied entry). */
  | { operation: AuthzOperation; object: 'per-key' }
  /** PostObject: the form names its signer and key; the handler calls authorizeFormUpload before the file streams. */
  | { operation: AuthzOperation; object: 'form' }
  /**
   * An operation Talus does not implement: 501 to a signed caller; anonymous is refused (no policy or ACL
   * can grant what does not exist, and a stranger learns nothing of what is implemented).
   */
  | 'none';

/**
 * Compiled access settings per cached bucket record: the bucket record is
 * frozen and replaced whenever it changes (the store's bucket cache, and the
 * buckets-changed message across workers), so a policy is compiled once per
 * load, never per request.
 */
const compiled = new WeakMap<BucketRecord, BucketAccess>();

export class RequestAccess {
  readonly principal: Principal;
  /** The caller's canonical ID: the owner of what it creates. */
  readonly canonicalId: string;
  readonly directory: PrincipalDirectory;
  readonly keys: ConditionKeys;
  readonly #facts: RequestFacts;
  /** Set by authorizeRequest for operations judged later: the GET's read gate. */
  readGate: ReadGate | undefined;
  /** x-amz-expected-bucket-owner: the request is refused unless the bucket's owner is this canonical ID. */
  expectedBucketOwner: string | undefined;

  constructor(directory: PrincipalDirectory, principal: Principal, facts: Omit<RequestFacts, 'principal'>) {
    this.directory = directory;
    this.principal = principal;
    this.canonicalId = principal.kind === 'user' ? principal.canonicalId : principal.kind === 'root' ? directory.rootCanonicalId : ANONYMOUS_CANONICAL_ID;
    // Not `{ ...facts, principal }`: V8 leaves its fast clone path when a property follows the spread,
    // and that literal alone cost 1.5-3 µs of every request (issue 17, round 3); this copy ~0.3 µs.
    this.#facts = Object.assign({}, facts, { principal });
    this.keys = requestConditionKeys(this.#facts);
  }

  /** An owner ID as stored → the canonical ID it stands for (key IDs of older records → their account). */
  ownerOf(storedOwnerId: string): string {
    return this.directory.canonicalIdOfKey(storedOwnerId) ?? storedOwnerId;
  }

  /** ID and display name for <Owner> and ACL XML. */
  displayOwner(storedOwnerId: string): { id: string; displayName: string } {
    const id = this.ownerOf(storedOwnerId);
    if (id === ANONYMOUS_CANONICAL_ID) return { id, displayName: ANONYMOUS_DISPLAY_NAME };
    return { id, displayName: this.directory.account(id)?.displayName ?? id };
  }

  /** The settings of the bucket the request addresses (x-amz-expected-bucket-owner applies). */
  bucketAccess(record: BucketRecord): BucketAccess {
    const access = this.anyBucketAccess(record);
    // AWS: a bucket whose owner is not the one the caller expects answers 403, whoever asks.
    if (this.expectedBucketOwner !== undefined && this.expectedBucketOwner !== access.owner) throw new S3Error('AccessDenied');
    return access;
  }

  /** Any bucket's settings, compiled once per cached record (a copy's source bucket too). */
  anyBucketAccess(record: BucketRecord): BucketAccess {
    let access = compiled.get(record);
    if (access === undefined) {
      access = compileBucketAccess(record, this.ownerOf(record.ownerId));
      compiled.set(record, access);
    }
    return access;
  }

  objectAccess(version: ObjectVersion): ObjectAccess {
    return { owner: this.ownerOf(version.ownerId), acl: version.acl };
  }

  /** Keys for a check on an existing version: the request's, plus the version's tags as s3:ExistingObjectTag/*. */
  keysFor(version: Pick<ObjectVersion, 'tags'> | undefined): ConditionKeys {
    if (version === undefined || version.tags.length === 0) return this.keys;
    return requestConditionKeys({ ...this.#facts, existingObjectTags: version.tags });
  }

  /**
   * The same request judged for another principal: a POST form's signer,
   * with the form's fields as the headers condition keys read (s3:x-amz-acl…).
   */
  forFormSigner(principal: Principal, formHeaders: IncomingHttpHeaders): RequestAccess {
    const access = new RequestAccess(this.directory, principal, { ...this.#facts, headers: formHeaders });
    access.expectedBucketOwner = this.expectedBucketOwner;
    return access;
  }

  /** Throws AccessDenied unless every check is allowed. */
  require(checks: readonly PermissionCheck[], targetOf: (check: PermissionCheck) => CheckTarget): void {
    for (const check of checks) if (!this.allows(check, targetOf(check))) throw new S3Error('AccessDenied');
  }

  allows(check: PermissionCheck, target: CheckTarget): boolean {
    return authorize({
      principal: this.principal,
      action: check.action,
      resource: check.resource,
      bucket: target.bucket,
      object: target.object,
      keys: target.keys ?? this.keys,
      rootCanonicalId: this.directory.rootCanonicalId,
    }).allowed;
  }

  /**
   * A read of one version (GetObject/HeadObject, a copy's source): allowed
   * with the version's owner and ACL; a missing key answers 404 only to those
   * who may list the bucket with s3:prefix = the key (AWS; docs/ACCESS.md).
   */
  versionGate(readCheck: (bucket: BucketRecord) => PermissionCheck, side: 'target' | 'source' = 'target'): ReadGate {
    return (bucket, version) => {
      const bucketAccess = side === 'target' ? this.bucketAccess(bucket) : this.anyBucketAccess(bucket);
      if (version !== undefined) {
        if (!this.allows(readCheck(bucket), { bucket: bucketAccess, object: this.objectAccess(version), keys: this.keysFor(version) })) throw new S3Error('AccessDenied');
        return;
      }
      const check = readCheck(bucket);
      const key = check.key ?? '';
      const query = new Map(this.#facts.query);
      query.set('prefix', key);
      const keys = requestConditionKeys({ ...this.#facts, query });
      if (!this.allows(missingObjectCheck(bucket.name, key), { bucket: bucketAccess, keys })) throw new S3Error('AccessDenied');
    };
  }

  /** The source side of CopyObject / UploadPartCopy, judged with the caller's rights on the source bucket. */
  copySourceGate(source: { bucket: string; key: string; versionId: string | undefined }): ReadGate {
    const check = requiredChecks('GetObject', { bucket: source.bucket, key: source.key, ...(source.versionId === undefined ? {} : { versionId: source.versionId }) })[0] as PermissionCheck;
    return this.versionGate(() => ({ ...check, side: 'source' }), 'source');
  }

  /**
   * Who owns an object the caller writes into `bucket`, and the ACL it gets
   * from x-amz-acl / x-amz-grant-* (undefined: private to its owner). Refuses
   * ACLs the bucket's ownership setting or public access block forbids.
   */
  objectWrite(bucket: BucketRecord, headers: IncomingHttpHeaders): { ownerId: string; acl: Acl | undefined } {
    const access = this.bucketAccess(bucket);
    const bucketOwner: AclOwner = this.displayOwner(access.owner);
    const writer: AclOwner = this.displayOwner(this.canonicalId);
    const canned = headers['x-amz-acl'];
    const owner = objectOwnerForWrite(access.ownership, bucketOwner, writer, typeof canned === 'string' ? canned.trim() : undefined);
    const requested = aclFromHeaders(headers, 'object', owner, this.directory.grantees, bucketOwner);
    checkRequestedAcl(access, requested);
    return { ownerId: owner.id, acl: requested?.acl };
  }
}

export function checkRequestedAcl(access: BucketAccess, requested: RequestedAcl | undefined): void {
  checkAclAllowed(access.ownership, requested, access.owner);
  checkAclWrite(access.publicAccessBlock, requested);
}

function compileBucketAccess(record: BucketRecord, owner: string): BucketAccess {
  const settings = record.access;
  if (settings === null || settings === undefined) return { owner };
  const policy = settings.policy === undefined ? undefined : parsePolicy(settings.policy, { kind: 'bucket', bucket: record.name });
  return {
    owner,
    policy,
    policyIsPublic: policy === undefined ? false : isPublicPolicy(policy),
    acl: settings.acl,
    ownership: settings.ownership,
    publicAccessBlock: settings.publicAccessBlock,
  };
}

/** The request's facts for condition keys, from the socket and the request line. */
export function requestFacts(request: IncomingMessage, query: ReadonlyMap<string, string>, nowMs: number): Omit<RequestFacts, 'principal'> {
  const presigned = query.has('X-Amz-Signature');
  const source = socketSource(request);
  // One literal with every field, so every request's facts share one shape (cheap to copy).
  return {
    sourceIp: source.sourceIp,
    secureTransport: source.secureTransport,
    nowMs,
    headers: request.headers,
    query,
    authType: presigned ? 'REST-QUERY-STRING' : request.headers.authorization !== undefined ? 'REST-HEADER' : undefined,
  };
}

/**
 * The checks every request passes before its handler: the bucket must exist
 * (NoSuchBucket comes first, as AWS answers it), then requiredChecks() on its
 * settings. Operations judged later set up their gate here. Synchronous
 * (undefined) when nothing needs the store: a hot GET pays no extra tick.
 */
export function authorizeRequest(
  access: RequestAccess,
  authorization: Authorization,
  route: { bucket: string; key: string; query: ReadonlyMap<string, string> },
  headers: IncomingHttpHeaders,
  engine: { getBucket(name: string): Promise<BucketRecord>; lookupVersion(bucket: BucketRecord, key: string, versionId: string | undefined): Promise<ObjectVersion | undefined> },
): Promise<void> | undefined {
  if (authorization === 'none') {
    if (access.principal.kind === 'anonymous') throw new S3Error('AccessDenied');
    return undefined;
  }
  const { operation } = authorization;
  const expectedOwner = headers['x-amz-expected-bucket-owner'];
  if (typeof expectedOwner === 'string') access.expectedBucketOwner = expectedOwner;
  const versionId = route.query.get('versionId');
  const target: OperationTarget = { bucket: route.bucket, key: route.key };
  if (versionId !== undefined) target.versionId = versionId;
  // Only the writes whose checks depend on them look at these headers (a hot GET scans nothing).
  if (operation === 'CreateBucket') {
    target.setsAcl = headers['x-amz-acl'] !== undefined || Object.keys(headers).some((name) => name.startsWith('x-amz-grant-'));
    target.setsObjectOwnership = headers['x-amz-object-ownership'] !== undefined;
    target.setsObjectLock = String(headers['x-amz-bucket-object-lock-enabled']).toLowerCase() === 'true';
  } else if (operation === 'PutObject' || operation === 'CopyObject' || operation === 'CreateMultipartUpload') {
    target.setsTagging = headers['x-amz-tagging'] !== undefined && (operation !== 'CopyObject' || headers['x-amz-tagging-directive'] === 'REPLACE');
    target.setsRetention = headers['x-amz-object-lock-mode'] !== undefined || headers['x-amz-object-lock-retain-until-date'] !== undefined;
    target.setsLegalHold = headers['x-amz-object-lock-legal-hold'] !== undefined;
  }
  if (operation === 'ListBuckets' || operation === 'CreateBucket') {
    // No bucket to judge against: creating is an account right (the engine answers BucketAlreadyExists).
    access.require(requiredChecks(operation, target), () => ({}));
    return undefined;
  }
  if (authorization.object === 'gate') {
    // The engine finds the bucket (NoSuchBucket first) and the version, then calls the gate: no lookup here.
    const check = requiredChecks(operation, target)[0] as PermissionCheck;
    access.readGate = access.versionGate(() => check);
    return undefined;
  }
  return authorizeOnBucket(access, authorization.object, operation, target, route, versionId, engine);
}

/**
 * POST Object, once the form's fields are read and before its file streams:
 * PutObject on the key (plus PutObjectTagging with a tagging field) for the
 * policy's signer, or for the anonymous principal of a form without one.
 * Returns the signer's access, for the write's owner and ACL.
 */
export function authorizeFormUpload(access: RequestAccess, principal: Principal, bucket: BucketRecord, key: string, formHeaders: IncomingHttpHeaders, setsTagging: boolean): RequestAccess {
  const signer = access.forFormSigner(principal, formHeaders);
  const bucketAccess = signer.bucketAccess(bucket);
  const setsRetention = formHeaders['x-amz-object-lock-mode'] !== undefined || formHeaders['x-amz-object-lock-retain-until-date'] !== undefined;
  const setsLegalHold = formHeaders['x-amz-object-lock-legal-hold'] !== undefined;
  signer.require(requiredChecks('PostObject', { bucket: bucket.name, key, setsTagging, setsRetention, setsLegalHold }), () => ({ bucket: bucketAccess }));
  return signer;
}

async function authorizeOnBucket(
  access: RequestAccess,
  object: 'lookup' | 'per-key' | 'form' | undefined,
  operation: AuthzOperation,
  target: OperationTarget,
  route: { bucket: string; key: string },
  versionId: string | undefined,
  engine: Parameters<typeof authorizeRequest>[4],
): Promise<void> {
  const bucket = await engine.getBucket(route.bucket);
  const bucketAccess = access.bucketAccess(bucket);
  if (object === 'per-key' || object === 'form') return;
  // A copy's source side is judged when the handler has found the source (copySourceGate).
  const checks = requiredChecks(operation, target).filter((check) => check.side === 'target');
  if (object === 'lookup') {
    const version = await engine.lookupVersion(bucket, route.key, versionId);
    const objectAccess = version === undefined ? undefined : access.objectAccess(version);
    const keys = access.keysFor(version);
    access.require(checks, () => ({ bucket: bucketAccess, object: objectAccess, keys }));
    return;
  }
  access.require(checks, () => ({ bucket: bucketAccess }));
}
