/**
 * Records of the metadata store. They describe S3 things (buckets, versions,
 * uploads) and where their bytes live (segments of blobs); nothing here knows
 * about HTTP. The shapes already carry what versioning and multi-backend
 * placement need: every version has its own ID and its own list of segments,
 * and every blob is tracked with the backend that holds it.
 */
import type { Acl, ObjectOwnership, PublicAccessBlock } from '../authz/index.ts';
import type { ChecksumAlgorithm, ChecksumType } from '../util/checksum.ts';

export type VersioningState = 'Unversioned' | 'Enabled' | 'Suspended';

/** The version ID of objects written while versioning is off or suspended. */
export const NULL_VERSION_ID = 'null';

export interface Tag {
  key: string;
  value: string;
}

/** S3 Object Lock retention modes: GOVERNANCE yields to a permitted bypass, COMPLIANCE to nobody. */
export type RetentionMode = 'GOVERNANCE' | 'COMPLIANCE';

/** A version's retention (S3 Object Lock): it may not be deleted before `retainUntilMs`. */
export interface ObjectRetention {
  mode: RetentionMode;
  retainUntilMs: number;
}

/**
 * A version's Object Lock state, kept in its metadata document. Absent
 * fields: never set (GetObjectRetention / GetObjectLegalHold answer
 * NoSuchObjectLockConfiguration); `legalHold: false` is a hold set to OFF.
 */
export interface ObjectLockState {
  retention?: ObjectRetention | undefined;
  legalHold?: boolean | undefined;
}

/**
 * Locked: a legal hold is on, or a retention has not expired. Here, below the
 * engine, because the store holds one invariant of its own: a commit never
 * replaces a locked version (src/engine/object-lock.ts has the rest).
 */
export function isLockedAt(lock: ObjectLockState, nowMs: number): boolean {
  return lock.legalHold === true || (lock.retention !== undefined && lock.retention.retainUntilMs > nowMs);
}

/** Replaces a version's lock fields with `lock`'s (absent ones removed). */
export function setLockState(version: ObjectLockState, lock: ObjectLockState): void {
  if (lock.retention === undefined) delete version.retention;
  else version.retention = lock.retention;
  if (lock.legalHold === undefined) delete version.legalHold;
  else version.legalHold = lock.legalHold;
}

export interface BucketRecord {
  name: string;
  createdMs: number;
  ownerId: string;
  versioning: VersioningState;
  tags: Tag[] | null;
  /** Who may do what with the bucket (docs/ACCESS.md); null: private to its owner, no policy, no controls. */
  access?: BucketAccessSettings | null;
  /**
   * The bucket's sub-resource configurations (CORS, lifecycle, object lock),
   * each the JSON document its S3 module wrote (src/s3/), absent when not set.
   * Each kind is its own column, so concurrent Put* of different kinds never
   * lose each other's change.
   */
  configs?: BucketConfigs;
  /** The bucket's hard quota (admin API SetBucketQuota); absent: none. */
  quota?: BucketQuota;
}

/**
 * A bucket's hard quota: limits on what its versions hold, each null when
 * not limited (at least one is set). Counted as Garage and MinIO count
 * stored data: every version that is not a delete marker, current or not,
 * at the size clients wrote; incomplete multipart uploads' parts are not
 * counted until their completion.
 */
export interface BucketQuota {
  maxBytes: number | null;
  maxObjects: number | null;
}

/** A quota with what the bucket holds now (the store keeps these counters while a quota is set). */
export interface BucketQuotaUsage extends BucketQuota {
  usedBytes: number;
  usedObjects: number;
}

/** The kinds of bucket configuration stored as documents, one column each. */
export const BUCKET_CONFIG_KINDS = ['cors', 'lifecycle', 'objectLock'] as const;
export type BucketConfigKind = (typeof BUCKET_CONFIG_KINDS)[number];
export type BucketConfigs = Readonly<Partial<Record<BucketConfigKind, string>>>;

/**
 * A bucket's access settings as stored (one JSON document in buckets.access).
 * The policy is kept as the text that was sent (GetBucketPolicy returns it);
 * the front compiles it once per cached record.
 */
export interface BucketAccessSettings {
  policy?: string;
  acl?: Acl;
  ownership?: ObjectOwnership;
  publicAccessBlock?: PublicAccessBlock;
}

/** A run of an object's bytes stored in one blob. An object's bytes are its segments in order. */
export interface Segment {
  blobId: string;
  sizeBytes: number;
  /** Where the blob lives: absent for the local blob store, else its placement layout (src/placement/layout-descriptor.ts). */
  location?: string;
}

export interface ObjectChecksum {
  algorithm: ChecksumAlgorithm;
  /** base64 of the digest; for COMPOSITE multipart checksums without the "-N" suffix. */
  value: string;
  type: ChecksumType;
}

/** Parts of a completed multipart object, kept for GET ?partNumber and checksums. */
export interface PartSummary {
  partNumber: number;
  sizeBytes: number;
  etag: string;
  checksum?: string;
}

/** Content-* and friends: stored as sent, returned on GET/HEAD. */
export interface SystemMetadata {
  contentType?: string;
  cacheControl?: string;
  contentDisposition?: string;
  contentEncoding?: string;
  contentLanguage?: string;
  expires?: string;
}

export interface ObjectVersion {
  bucket: string;
  key: string;
  versionId: string;
  isDeleteMarker: boolean;
  lastModifiedMs: number;
  sizeBytes: number;
  /** Hex MD5, or "<hex>-<parts>" for multipart; without quotes. */
  etag: string;
  /** Canonical ID of the version's owner (the access key ID, for versions written before ownership was wired). */
  ownerId: string;
  /** The version's ACL; absent: private to its owner. */
  acl?: Acl;
  system: SystemMetadata;
  /** x-amz-meta-* without the prefix, names lower-cased. */
  userMetadata: Record<string, string>;
  checksum: ObjectChecksum | null;
  tags: Tag[];
  parts: PartSummary[] | null;
  segments: Segment[];
  /**
   * The bytes of a small object, kept in the metadata store instead of a blob
   * (then `segments` is empty). Present on versions read by key; listings
   * leave it out, as they never read bodies.
   */
  inlineData?: Buffer;
  /** The multipart upload this version completed, so a retried CompleteMultipartUpload can answer again. */
  completedUploadId?: string;
  /** S3 Object Lock retention (src/engine/object-lock.ts); absent: none. */
  retention?: ObjectRetention;
  /** S3 Object Lock legal hold; absent: never set. */
  legalHold?: boolean;
}

export interface UploadRecord {
  uploadId: string;
  bucket: string;
  key: string;
  createdMs: number;
  ownerId: string;
  /** The ACL the completed object gets (x-amz-acl / x-amz-grant-* of CreateMultipartUpload). */
  acl?: Acl;
  system: SystemMetadata;
  userMetadata: Record<string, string>;
  tags: Tag[];
  checksumAlgorithm: ChecksumAlgorithm | null;
  checksumType: ChecksumType | null;
  /** The Object Lock settings the completed object gets (x-amz-object-lock-* of CreateMultipartUpload). */
  retention?: ObjectRetention;
  legalHold?: boolean;
}

export interface PartRecord {
  uploadId: string;
  partNumber: number;
  sizeBytes: number;
  etag: string;
  lastModifiedMs: number;
  /** base64 digest of the upload's checksum algorithm, if it has one. */
  checksum: string | null;
  blobId: string;
  /** As Segment.location. */
  location?: string;
}

/**
 * An access key. Its secret is kept sealed (AES-256-GCM, src/principals/
 * secret-box.ts) under a key the store never sees: the store holds
 * ciphertext only.
 */
export interface AccessKeyRecord {
  accessKeyId: string;
  /** Canonical ID of the user the key belongs to; null: one of root's keys. */
  userId: string | null;
  /** nonce ‖ ciphertext ‖ GCM tag, sealed with the access key ID as associated data. */
  sealedSecret: Uint8Array;
  /** The key's own policy: a built-in policy's name or IAM JSON text; null: none (the user's rights). */
  policy: string | null;
  /** The key stops working at this time; null: never. */
  expiresMs: number | null;
  enabled: boolean;
  createdMs: number;
}

/** A user (not root): an account of its own for ownership, named in ACLs by its canonical ID. */
export interface UserRecord {
  /** 64 lower-case hex characters, as AWS's canonical user IDs. */
  canonicalId: string;
  /** Unique; the display name in ListBuckets' <Owner> and ACL XML. */
  name: string;
  /** For ACL grants by emailAddress; unique (case-insensitively) when set. */
  email: string | null;
  /** Identity policy: a built-in policy's name or IAM JSON text; null: none (an account of its own). */
  policy: string | null;
  createdMs: number;
}

/** A key written by a Talus before secrets were sealed, still in plain text (sealed on the next start). */
export interface UnsealedAccessKey {
  accessKeyId: string;
  secretAccessKey: string;
}
