/**
 * The admin API's operations: `POST /talus/admin/v1/<Operation>` with a JSON
 * body, in the style of Garage's admin API v2. Each entry is the one
 * definition of an operation — its input shape (validated, typed and
 * published in the OpenAPI document from the same object), its permission
 * (`admin:<Operation>`, src/authz/admin.ts) and its handler. Handlers call
 * the same layers the CLI and the S3 API do (Principals, Engine); none has a
 * privilege of its own.
 */
import {
  AuthzError,
  BUILT_IN_POLICY_TEXTS,
  checkPolicyWrite,
  isBuiltInPolicyName,
  parsePolicy,
} from '../authz/index.ts';
import { AUDIT_QUERY_LIMIT_MAX } from '../audit/audit-log.ts';
import type { BucketRecord } from '../meta/types.ts';
import { validatePolicyText } from '../principals/policy-source.ts';
import { ROOT_DISPLAY_NAME } from '../principals/principal-cache.ts';
import { AdminError } from './errors.ts';
import { type AdminContext, type AdminOperation, operation } from './define.ts';
import { PLACEMENT_OPERATIONS } from './placement-operations.ts';
import { QUOTA_OPERATIONS } from './quota-operations.ts';
import { REGION_OPERATIONS } from './region-operations.ts';
import { RUNTIME_CONFIG_OPERATIONS } from './runtime-config-operations.ts';
import { BACKEND_CHANGE_OPERATIONS } from './backend-change-operations.ts';
import { RELOAD_OPERATIONS } from './reload-operations.ts';
import { STORAGE_OPERATIONS } from './storage-operations.ts';
import { TOKEN_OPERATIONS } from './token-operations.ts';

export type { AdminContext, AdminOperation, AdminServerInfo } from './define.ts';

/** Longest policy text accepted (the identity-policy limit, with whitespace). */
const POLICY_TEXT_MAX = 64 * 1024;
/** Keys expire at most ten years out (the CLI's `--expires` limit). */
const KEY_LIFETIME_SECONDS_MAX = 10 * 365 * 24 * 3600;

const POLICY_FIELD = {
  type: 'string|null',
  description: `An identity policy: a built-in name (${Object.keys(BUILT_IN_POLICY_TEXTS).join(', ')}) or IAM JSON text; null for none.`,
  maxLength: POLICY_TEXT_MAX,
} as const;

/** A built-in name stays a name (it follows Talus's definition); JSON text is validated as an identity policy. */
function storedPolicy(policy: string | null | undefined): string | null {
  if (policy === undefined || policy === null) return null;
  if (isBuiltInPolicyName(policy)) return policy;
  try {
    return validatePolicyText(policy, 'policy');
  } catch (error) {
    throw new AdminError('MalformedPolicy', (error as Error).message);
  }
}

function bucketView(bucket: BucketRecord, ownerName: (canonicalId: string) => string) {
  return {
    name: bucket.name,
    createdMs: bucket.createdMs,
    owner: ownerName(bucket.ownerId),
    versioning: bucket.versioning,
    hasPolicy: bucket.access?.policy !== undefined,
    quota: bucket.quota ?? null,
  };
}

async function ownerNames(context: AdminContext): Promise<(canonicalId: string) => string> {
  const root = await context.principals.rootCanonicalId();
  const names = new Map((await context.principals.listUsers()).map((user) => [user.canonicalId, user.name]));
  return (canonicalId) => (canonicalId === root ? ROOT_DISPLAY_NAME : names.get(canonicalId) ?? canonicalId);
}

/** The bucket policy that lets anyone read every object (the console's "public read" preset). */
export function publicReadPolicy(bucket: string): string {
  return JSON.stringify({
    Version: '2012-10-17',
    Statement: [{ Sid: 'TalusPublicRead', Effect: 'Allow', Principal: '*', Action: ['s3:GetObject'], Resource: [`arn:aws:s3:::${bucket}/*`] }],
  });
}

async function setBucketPolicy(context: AdminContext, name: string, policy: string | null): Promise<void> {
  const bucket = await context.engine.getBucket(name);
  const settings = { ...(bucket.access ?? {}) };
  if (policy === null) {
    delete settings.policy;
  } else {
    let compiled;
    try {
      compiled = parsePolicy(policy, { kind: 'bucket', bucket: name });
      checkPolicyWrite(settings.publicAccessBlock, compiled);
    } catch (error) {
      if (error instanceof AuthzError && error.code === 'AccessDenied') throw new AdminError('Conflict', 'the bucket\'s public access block forbids a public policy');
      if (error instanceof AuthzError) throw new AdminError('MalformedPolicy', error.message);
      throw error;
    }
    settings.policy = policy;
  }
  const empty = Object.values(settings).every((value) => value === undefined);
  await context.engine.setBucketAccess(name, empty ? null : settings);
}

const BUCKET_NAME = { type: 'string', description: 'The bucket.', required: true, maxLength: 63 } as const;
const USER_NAME = { type: 'string', description: 'The user\'s name.', required: true, maxLength: 64 } as const;
const ACCESS_KEY_ID = { type: 'string', description: 'The access key ID.', required: true, maxLength: 128 } as const;

export const ADMIN_OPERATIONS = {
  GetServerInfo: operation({
    summary: 'Version, start time, region and process count of the server.',
    input: {},
    output: '{ version, startedMs, uptimeMs, region, workers }',
    async handler(context) {
      return { ...context.server, uptimeMs: Date.now() - context.server.startedMs };
    },
  }),

  // Users, keys and policies

  ListUsers: operation({
    summary: 'Every user with its canonical ID, email, policy and key count.',
    input: {},
    output: '{ users: [{ name, canonicalId, email, policy, createdMs, keys }] }',
    async handler(context) {
      const keys = await context.principals.listKeys();
      const users = await context.principals.listUsers();
      return {
        users: users.map((user) => ({
          name: user.name,
          canonicalId: user.canonicalId,
          email: user.email,
          policy: user.policy,
          createdMs: user.createdMs,
          keys: keys.filter((key) => key.owner === user.name).length,
        })),
      };
    },
  }),
  CreateUser: operation({
    summary: 'Creates a user with one access key. The secret is in this answer only.',
    input: {
      name: USER_NAME,
      email: { type: 'string|null', description: 'An email address (ACL grants may name it).', maxLength: 256 },
      policy: POLICY_FIELD,
    },
    output: '{ name, canonicalId, accessKeyId, secretAccessKey }',
    changesCredentials: true,
    refusedToTokens: true,
    async handler(context, input) {
      const { user, credentials } = await context.principals.addUser(input.name, { policy: storedPolicy(input.policy), email: input.email ?? null });
      return { name: user.name, canonicalId: user.canonicalId, ...credentials };
    },
  }),
  DeleteUser: operation({
    summary: 'Deletes a user and its keys (refused while it owns buckets).',
    input: { name: USER_NAME },
    output: '{}',
    changesCredentials: true,
    async handler(context, input) {
      await context.principals.removeUser(input.name);
      return {};
    },
  }),
  SetUserPolicy: operation({
    summary: 'Sets (or with null, removes) a user\'s identity policy.',
    input: { name: USER_NAME, policy: { ...POLICY_FIELD, required: true } },
    output: '{}',
    changesCredentials: true,
    refusedToTokens: true,
    async handler(context, input) {
      await context.principals.setUserPolicy(input.name, storedPolicy(input.policy));
      return {};
    },
  }),
  ListKeys: operation({
    summary: 'Every access key (never its secret) with owner, state, expiry and policy.',
    input: { user: { type: 'string', description: 'Only this user\'s keys (root for root\'s).', maxLength: 64 } },
    output: '{ keys: [{ accessKeyId, owner, enabled, expiresMs, policy, createdMs }] }',
    async handler(context, input) {
      const keys = await context.principals.listKeys();
      return { keys: input.user === undefined ? keys : keys.filter((key) => key.owner === input.user) };
    },
  }),
  CreateKey: operation({
    summary: 'Creates an access key for a user (root\'s without one). The secret is in this answer only.',
    input: {
      user: { type: 'string', description: 'The user; absent: a root key.', maxLength: 64 },
      policy: POLICY_FIELD,
      expiresInSeconds: { type: 'integer', description: 'Lifetime of the key.', minimum: 1, maximum: KEY_LIFETIME_SECONDS_MAX },
    },
    output: '{ accessKeyId, secretAccessKey, expiresMs }',
    changesCredentials: true,
    refusedToTokens: true,
    async handler(context, input) {
      const expiresMs = input.expiresInSeconds === undefined ? null : Date.now() + input.expiresInSeconds * 1000;
      const credentials = await context.principals.addKey({ userName: input.user, policy: storedPolicy(input.policy), expiresMs });
      return { ...credentials, expiresMs };
    },
  }),
  UpdateKey: operation({
    summary: 'Enables or disables an access key, or sets its own policy (null removes it).',
    input: {
      accessKeyId: ACCESS_KEY_ID,
      enabled: { type: 'boolean', description: 'false disables the key (root\'s last enabled key cannot be).' },
      policy: POLICY_FIELD,
    },
    output: '{}',
    changesCredentials: true,
    refusedToTokens: true,
    async handler(context, input) {
      if (input.enabled === undefined && input.policy === undefined) throw new AdminError('InvalidRequest', 'nothing to change: give enabled or policy');
      if (input.policy !== undefined) await context.principals.setKeyPolicy(input.accessKeyId, storedPolicy(input.policy));
      if (input.enabled !== undefined) await context.principals.setKeyEnabled(input.accessKeyId, input.enabled);
      return {};
    },
  }),
  DeleteKey: operation({
    summary: 'Deletes an access key (root\'s last enabled key cannot be).',
    input: { accessKeyId: ACCESS_KEY_ID },
    output: '{}',
    changesCredentials: true,
    async handler(context, input) {
      await context.principals.removeKey(input.accessKeyId);
      return {};
    },
  }),

  // Buckets

  ListBuckets: operation({
    summary: 'Every bucket with owner, creation time, versioning and whether it has a policy.',
    input: {},
    output: '{ buckets: [{ name, createdMs, owner, versioning, hasPolicy, quota: { maxBytes, maxObjects } | null }] }',
    async handler(context) {
      const names = await ownerNames(context);
      return { buckets: (await context.engine.listBuckets()).map((bucket) => bucketView(bucket, names)) };
    },
  }),
  CreateBucket: operation({
    summary: 'Creates a bucket, owned by the named user or by the caller.',
    input: { name: BUCKET_NAME, owner: { type: 'string', description: 'The owning user\'s name (root for root); absent: the caller.', maxLength: 64 } },
    output: '{ name, owner }',
    async handler(context, input) {
      let ownerId = context.callerCanonicalId;
      if (input.owner === ROOT_DISPLAY_NAME) ownerId = await context.principals.rootCanonicalId();
      else if (input.owner !== undefined) ownerId = (await context.principals.user(input.owner)).canonicalId;
      if ((await context.engine.createBucket(input.name, ownerId)) === 'already-owned') throw new AdminError('Conflict', `bucket ${input.name} exists`);
      const names = await ownerNames(context);
      return { name: input.name, owner: names(ownerId) };
    },
  }),
  DeleteBucket: operation({
    summary: 'Deletes an empty bucket.',
    input: { name: BUCKET_NAME },
    output: '{}',
    async handler(context, input) {
      await context.engine.deleteBucket(input.name);
      return {};
    },
  }),
  SetBucketVersioning: operation({
    summary: 'Enables or suspends versioning.',
    input: { name: BUCKET_NAME, status: { type: 'string', description: 'The new state.', required: true, enum: ['Enabled', 'Suspended'] } },
    output: '{}',
    async handler(context, input) {
      await context.engine.setBucketVersioning(input.name, input.status);
      return {};
    },
  }),
  GetBucketPolicy: operation({
    summary: 'The bucket policy\'s text (null when none).',
    input: { name: BUCKET_NAME },
    output: '{ policy }',
    async handler(context, input) {
      return { policy: (await context.engine.getBucket(input.name)).access?.policy ?? null };
    },
  }),
  SetBucketPolicy: operation({
    summary: 'Sets the bucket policy (null removes it), validated as PutBucketPolicy does.',
    input: { name: BUCKET_NAME, policy: { type: 'string|null', description: 'Bucket policy JSON, or null.', required: true, maxLength: POLICY_TEXT_MAX } },
    output: '{}',
    async handler(context, input) {
      await setBucketPolicy(context, input.name, input.policy);
      return {};
    },
  }),
  SetBucketPublicRead: operation({
    summary: 'The public-read preset: a bucket policy letting anyone GET every object, or none.',
    input: { name: BUCKET_NAME, publicRead: { type: 'boolean', description: 'true sets the preset, false removes the bucket policy.', required: true } },
    output: '{ policy }',
    async handler(context, input) {
      const policy = input.publicRead ? publicReadPolicy(input.name) : null;
      await setBucketPolicy(context, input.name, policy);
      return { policy };
    },
  }),

  ...QUOTA_OPERATIONS,

  // Audit log

  QueryAuditLog: operation({
    summary: 'Admin calls and refused requests (authentication, authorization), newest first.',
    input: {
      sinceMs: { type: 'integer', description: 'Only entries at or after this time (ms since the epoch).', minimum: 0 },
      untilMs: { type: 'integer', description: 'Only entries at or before this time.', minimum: 0 },
      principal: { type: 'string', description: 'Only this caller (root, anonymous, or a user\'s name).', maxLength: 64 },
      operation: { type: 'string', description: 'Only this operation (an admin or S3 operation name).', maxLength: 64 },
      kind: { type: 'string', description: 'admin calls or refused S3 requests.', enum: ['admin', 's3-denied'] },
      limit: { type: 'integer', description: `Entries at most (default 100).`, minimum: 1, maximum: AUDIT_QUERY_LIMIT_MAX },
    },
    output: '{ entries: [{ timeMs, kind, requestId, operation, principal, accessKeyId, status, code, reason, bucket, key, sourceIp }] }',
    async handler(context, input) {
      return { entries: await context.audit.query(input) };
    },
  }),

  // Storage, incomplete uploads, heal and purge queues, backends, tokens, region discovery (the families' own modules)

  ...STORAGE_OPERATIONS,
  ...PLACEMENT_OPERATIONS,
  ...RUNTIME_CONFIG_OPERATIONS,
  ...BACKEND_CHANGE_OPERATIONS,
  ...RELOAD_OPERATIONS,
  ...TOKEN_OPERATIONS,
  ...REGION_OPERATIONS,
} as const satisfies Record<string, AdminOperation>;

export type AdminOperationName = keyof typeof ADMIN_OPERATIONS;

export function isAdminOperationName(name: string): name is AdminOperationName {
  return Object.hasOwn(ADMIN_OPERATIONS, name);
}
