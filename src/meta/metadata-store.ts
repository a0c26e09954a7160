/**
 * The metadata store: the one ordered place where every request's control
 * part happens. Each mutating method is one atomic transaction that checks
 * its conditions and commits, so concurrent requests serialize here and
 * nowhere else. Methods are async so a PostgreSQL implementation fits the
 * same interface; the embedded SQLite one answers synchronously underneath.
 */
import type { Acl } from '../authz/index.ts';
import type {
  AccessKeyRecord,
  BucketAccessSettings,
  BucketConfigKind,
  BucketQuota,
  BucketQuotaUsage,
  BucketRecord,
  ObjectChecksum,
  ObjectLockState,
  ObjectVersion,
  PartRecord,
  Segment,
  Tag,
  UnsealedAccessKey,
  UploadRecord,
  UserRecord,
  VersioningState,
} from './types.ts';
import { S3Error } from '../util/s3-error.ts';

/**
 * A mutation ran and its transaction committed, but the store could not
 * confirm it reached the disk (the WAL fdatasync failed, or the database
 * was deleted or replaced under it). It may be visible now and may or may
 * not survive a restart: callers must not delete the bytes it references
 * (start-up reclaim decides from what the metadata kept), and must not
 * acknowledge it. Answered as 503: the store refuses writes from now on,
 * and the client should retry (elsewhere, or after the operator acted).
 */
export class CommitOutcomeUnknownError extends S3Error {
  constructor(cause: unknown) {
    super('ServiceUnavailable', `The write may not be durable and was not acknowledged; this server refuses writes until its metadata store is restored. (${cause instanceof Error ? cause.message : String(cause)})`);
    this.name = 'CommitOutcomeUnknownError';
    this.cause = cause;
  }
}

/**
 * The store refuses every mutation: a WAL sync failed (the kernel may have
 * dropped pages), or the database file it has open is no longer the one at
 * its path. Nothing was committed. Reads keep working from what it has open.
 */
export class MetadataUnavailableError extends S3Error {
  constructor(readonly reason: string) {
    super('ServiceUnavailable', `The metadata store refuses writes: ${reason}`);
    this.name = 'MetadataUnavailableError';
  }
}

/**
 * A check run inside a mutation's transaction on the record it is about to
 * change (S3 Object Lock: a locked version is never removed, a lock-enabled
 * bucket never suspends versioning). It throws (an S3Error) to refuse: the
 * transaction then changes nothing. Synchronous, and must not touch the store.
 */
export type VersionGuard = (version: ObjectVersion) => void;
export type BucketGuard = (bucket: BucketRecord) => void;

/**
 * Preconditions judged inside the commit's transaction against the key's
 * current version (its latest, unless that is a delete marker), so no other
 * write can come between the check and the change. All given must hold.
 */
export interface CommitConditions {
  /** Commit only if the key has no current (non-delete-marker) version. */
  ifNoneMatchStar?: boolean;
  /** Commit only if the current version's ETag is none of these (unquoted; '*' is any). */
  ifNoneMatch?: readonly string[];
  /** Commit only if there is a current version and its ETag equals this (unquoted; '*' is any). */
  ifMatch?: string;
  /** Commit only if there is a current version last modified in this second (x-amz-if-match-last-modified-time). */
  ifMatchLastModifiedMs?: number;
  /** Commit only if there is a current version of this size (x-amz-if-match-size). */
  ifMatchSizeBytes?: number;
  /**
   * Commit only if there is a current version and this holds for the whole
   * version (tags and metadata included). Lifecycle re-judges its rule here:
   * PutObjectTagging changes a version's tags but not its ETag, size or time,
   * so the other conditions cannot tell a version re-tagged out of a rule.
   * Pure and synchronous; must not touch the store.
   */
  ifSelected?: (version: ObjectVersion) => boolean;
}

/** A conditional delete's preconditions (DeleteObject headers, DeleteObjects' <ETag>, <LastModifiedTime>, <Size>). */
export type DeleteConditions = Pick<CommitConditions, 'ifMatch' | 'ifMatchLastModifiedMs' | 'ifMatchSizeBytes' | 'ifSelected'> & {
  /**
   * Delete the named version only while it is not its key's latest (lifecycle's
   * noncurrent expiry: a version promoted to current by a concurrent delete
   * of the one above it is no longer noncurrent, so it stays).
   */
  ifNoncurrent?: boolean;
};

export type DeleteOutcome =
  | { status: 'deleted'; removed: ObjectVersion }
  | { status: 'precondition-failed' }
  /** Nothing to delete (no such version, or a condition named a key with no current version). */
  | { status: 'no-such-key' };

export type CommitOutcome =
  | { status: 'committed'; replaced: ObjectVersion | null }
  /** `currentModifiedMs`: when the version that failed the condition was written (undefined: no current version). */
  | { status: 'precondition-failed'; currentModifiedMs?: number }
  | { status: 'no-such-key' }
  | { status: 'no-such-bucket' }
  | { status: 'no-such-upload' }
  | { status: 'invalid-part' };

export interface CommitRequest {
  version: ObjectVersion;
  conditions: CommitConditions;
  /** Completing a multipart upload: the upload and its parts are consumed in the same transaction. */
  completesUploadId?: string;
  /**
   * The version's Object Lock state, decided in the commit's transaction from
   * the bucket's `objectLock` document as it is then (undefined: none). The
   * engine read the bucket when the request began; a
   * PutObjectLockConfiguration may have set a default retention while the
   * body was streaming, and the version must get it. The store replaces the
   * version's retention and legal hold with what this returns. Pure and
   * synchronous; must not touch the store.
   */
  lockFor?: (objectLockDocument: string | undefined) => ObjectLockState;
}

export interface ListRequest {
  bucket: string;
  prefix: string;
  delimiter: string;
  /** Return keys strictly after this one ('' for the start). */
  after: string;
  limit: number;
  /** Also read each version's system and user metadata and tags (ListObjectsV2 `metadata=true`); costs a JSON cut per row. */
  withMetadata?: boolean;
}

/**
 * What a listing shows of a version: its columns and checksum, without the
 * rest of its metadata document (user metadata, tags, parts, segments),
 * which listings never need and would cost a JSON parse per row.
 */
export type ListedVersion = Pick<ObjectVersion, 'bucket' | 'key' | 'versionId' | 'isDeleteMarker' | 'lastModifiedMs' | 'sizeBytes' | 'etag' | 'ownerId' | 'checksum'> &
  Partial<ListedMetadata>;

/**
 * What a listing asked `withMetadata` adds to each version (system, user
 * metadata and tags present then; the ACL when the version has one, so the
 * listing can judge per object who may see them).
 */
export type ListedMetadata = Pick<ObjectVersion, 'system' | 'userMetadata' | 'tags' | 'acl'>;

export interface ListEntry {
  key: string;
  /** Set for keys; undefined for a common prefix. */
  version?: ListedVersion;
}

export interface ListResult {
  /** Keys and common prefixes interleaved in order. */
  entries: ListEntry[];
  isTruncated: boolean;
}

export interface ListVersionsRequest {
  bucket: string;
  prefix: string;
  delimiter: string;
  keyMarker: string;
  versionIdMarker: string;
  limit: number;
  /** As ListRequest.withMetadata. */
  withMetadata?: boolean;
}

export interface VersionListEntry {
  key: string;
  version?: ListedVersion;
  isLatest: boolean;
}

export interface ListVersionsResult {
  entries: VersionListEntry[];
  isTruncated: boolean;
}

/**
 * A listing page rendered where it was read (a SQLite listing thread), so the
 * event loop gets one transferred buffer instead of a thousand entries to
 * receive, render and encode (issue 17). The renderer is the caller's
 * (`PageRenderer`, the S3 front's XML); the store only runs it. `owners`: the
 * entries show their owner, whose display name lives with the caller: the
 * page then has a hole at each `ownerAt` byte offset for
 * `owners[ownerIndex[i]]`.
 */
export interface PageRendering {
  encodeUrl: boolean;
  owners: boolean;
}

/**
 * A rendered page's buffer is kept for reuse only up to this size (a
 * 1000-key page of 1 KiB keys fits, with list-render.ts's 1 KiB of
 * headroom): the listing threads' spare pools, on the event loop and on each
 * thread, hold at most a few of these.
 */
export const SPARE_PAGE_BUFFER_BYTES_MAX = 1024 + 2 * 1024 * 1024 + 128 * 1024;

export interface RenderedPage {
  /** UTF-8 of the page's entries, in order, owners left out (see PageRendering). */
  bytes: Uint8Array;
  ownerAt: Uint32Array;
  ownerIndex: Uint32Array;
  owners: string[];
  entries: number;
  isTruncated: boolean;
  /** The last entry's key (or common prefix), and its version ID when it is a version: the next page's markers. */
  lastKey: string | undefined;
  lastVersionId: string | undefined;
  /**
   * Hands `bytes.buffer` back to the listing threads (whichever takes the
   * next request; the buffers are interchangeable), for a next page: called at most once, and only when nothing reads
   * the buffer any more (its bytes written to the socket, or copied).
   * Absent on pages rendered on the event loop; never called: garbage.
   */
  recycle?: () => void;
  /** Rendered into a spare buffer, one an earlier page handed back (recycle): counted by the listing threads. */
  bufferReused?: true;
}

/**
 * What a ListObjects entry shows of a key: a page rendered on a listing
 * thread reads only these columns (each column read costs ~0.25 ms per
 * 1000 rows in better-sqlite3); `ownerId` is '' when the page shows no owners.
 */
export type ListedContents = Pick<ListedVersion, 'key' | 'lastModifiedMs' | 'sizeBytes' | 'etag' | 'ownerId'> & { checksum: Pick<ObjectChecksum, 'algorithm' | 'type'> | null };

export interface ListedContentsResult {
  entries: { key: string; version?: ListedContents }[];
  isTruncated: boolean;
}

/** What renders a page from entries: the same function on the event loop and on a listing thread, so both give the same bytes. */
export type PageRenderer = (listing: { kind: 'keys'; result: ListedContentsResult } | { kind: 'versions'; result: ListVersionsResult }, rendering: PageRendering) => RenderedPage;

/**
 * A key page rendered entry by entry, as it is read, with the same bytes as
 * PageRenderer's: a page's entries then never all live at once (a listing
 * thread's small young generation spent ~0.6 ms a 1000-key page copying
 * them when it held them all, issue 17).
 */
export type KeysPageRenderer = (rendering: PageRendering) => { add(entry: ListedContentsResult['entries'][number]): void; finish(isTruncated: boolean): RenderedPage };

export interface ListUploadsRequest {
  bucket: string;
  prefix: string;
  delimiter: string;
  keyMarker: string;
  uploadIdMarker: string;
  limit: number;
}

export interface ListUploadsResult {
  entries: { key: string; upload?: UploadRecord }[];
  isTruncated: boolean;
}

export interface PurgeEntry {
  blobId: string;
  /** As Segment.location: absent for the local blob store. */
  location?: string;
}

/** A shard of a placed blob queued for rewriting. */
export interface RepairEntry {
  blobId: string;
  shard: number;
  reason: string;
  recordedMs: number;
  attempts: number;
  /** The blob's location while metadata references it; undefined once it is gone (nothing left to repair). */
  location: string | undefined;
}

export interface RepairSummary {
  /** Shards of live blobs waiting to be rewritten. */
  pending: number;
  /** Entries whose blob is not (or no longer) referenced: dropped once old enough (an upload may still be committing). */
  unreferenced: number;
  oldestRecordedMs: number | undefined;
  /** The first few, oldest first. */
  sample: RepairEntry[];
}

/**
 * What one bucket holds (the admin API's GetStorageStats), counted by the
 * store with aggregate queries over the bucket's index range: no row is
 * loaded into memory, so its time grows with the bucket's versions but its
 * memory does not. A store whose queries block the event loop (SQLite) may
 * count in steps of whole keys; writes made meanwhile may or may not be
 * counted. A store with asynchronous queries (PostgreSQL) can use one.
 */
export interface BucketUsage {
  /** Keys whose latest version is an object, not a delete marker: what ListObjects shows. */
  objects: number;
  /** Every version that is not a delete marker, latest or not. */
  versions: number;
  deleteMarkers: number;
  /** The sizes of those versions added up: bytes as clients wrote them, before placement's redundancy. */
  bytes: number;
  /** Multipart uploads begun and neither completed nor aborted (their parts not counted in bytes). */
  incompleteUploads: number;
}

/** The durable purge queue: blobs nobody references any more, waiting for (or past) their grace period. */
export interface PurgeQueueSummary {
  blobs: number;
  /** When the earliest-queued blob becomes (or became) due; undefined when the queue is empty. */
  oldestDueMs: number | undefined;
}

/** A blob recorded with a placement location (for the healing scanner). */
export interface PlacedBlob {
  blobId: string;
  location: string;
}

export interface MetadataStore {
  // Principals (src/principals/ seals and opens the secrets; the store keeps ciphertext)
  /** root's canonical ID: 64 hex characters chosen when the database was created (or upgraded), stable for its life. */
  rootCanonicalId(): Promise<string>;
  /** Inserts or replaces a key. */
  putAccessKey(record: AccessKeyRecord): Promise<void>;
  /** Every key with a sealed secret, oldest first. */
  listAccessKeys(): Promise<AccessKeyRecord[]>;
  /** Changes a key's state or policy; false if there is no such key. */
  updateAccessKey(accessKeyId: string, changes: { enabled?: boolean; policy?: string | null }): Promise<boolean>;
  deleteAccessKey(accessKeyId: string): Promise<boolean>;
  /** Keys still holding a plain-text secret (written before secrets were sealed). */
  listUnsealedAccessKeys(): Promise<UnsealedAccessKey[]>;
  /** Replaces plain-text secrets by sealed ones, overwriting the plain text in the database file (secure_delete) and emptying the WAL. */
  sealAccessKeySecrets(sealed: readonly { accessKeyId: string; sealedSecret: Uint8Array }[]): Promise<void>;
  /** A value sealed under the secret key, to tell a wrong key at start-up before any secret is needed. */
  secretKeyCheck(): Promise<Uint8Array | undefined>;
  setSecretKeyCheck(check: Uint8Array): Promise<void>;
  /**
   * Rows of the `settings` table whose name starts with `prefix`, by name:
   * small operator records every node sharing the store must see alike
   * (admin bearer tokens: src/admin/tokens.ts). Few rows per prefix.
   */
  listSettings(prefix: string): Promise<{ name: string; value: string }[]>;
  getSetting(name: string): Promise<string | undefined>;
  /** Creates or replaces one row. */
  putSetting(name: string, value: string): Promise<void>;
  /**
   * Compare-and-set of one row: writes `value` only while the row holds
   * `expected` (undefined: only while there is no row), in one statement, so
   * of two nodes replacing the same value at once one wins and the other is
   * told (false) instead of overwriting it. (src/placement/runtime-document.ts)
   */
  putSettingIf(name: string, value: string, expected: string | undefined): Promise<boolean>;
  /** False if there was no such row. */
  deleteSetting(name: string): Promise<boolean>;
  /** Creates a user with its first key, atomically. */
  createUser(user: UserRecord, firstKey: AccessKeyRecord): Promise<'created' | 'name-taken' | 'email-taken'>;
  listUsers(): Promise<UserRecord[]>;
  setUserPolicy(canonicalId: string, policy: string | null): Promise<boolean>;
  /**
   * Removes a user and its keys, atomically; refused ('owns-buckets') while
   * a bucket's owner is the user (by canonical ID, or by one of its access
   * key IDs, as buckets were recorded before principals existed).
   */
  deleteUser(canonicalId: string): Promise<'deleted' | 'owns-buckets' | 'missing'>;

  // Buckets
  createBucket(record: BucketRecord): Promise<'created' | 'exists'>;
  getBucket(name: string): Promise<BucketRecord | undefined>;
  listBuckets(): Promise<BucketRecord[]>;
  /** Deletes an empty bucket (no versions, no delete markers); aborts its in-progress uploads. */
  deleteBucket(name: string): Promise<'deleted' | 'not-empty' | 'missing'>;
  setBucketVersioning(name: string, state: VersioningState, guard?: BucketGuard): Promise<boolean>;
  setBucketTags(name: string, tags: Tag[] | null): Promise<boolean>;
  /** Replaces the bucket's access settings (policy, ACL, ownership controls, public access block). */
  setBucketAccess(name: string, access: BucketAccessSettings | null): Promise<boolean>;
  /** Replaces one kind of the bucket's configuration documents (null removes it); false when the bucket is missing. */
  setBucketConfig(name: string, kind: BucketConfigKind, document: string | null, guard?: BucketGuard): Promise<boolean>;
  /**
   * Sets the bucket's hard quota (null clears it); false when the bucket is
   * missing. Where the bucket had none, what it holds is counted in the same
   * transaction (excluding every commit and delete into it meanwhile), and
   * from then on every commit and delete keeps the counters and commits
   * judge them (src/meta/quota.ts).
   */
  setBucketQuota(name: string, quota: BucketQuota | null): Promise<boolean>;
  /** The bucket's quota and its counters; undefined when it has none or is missing. */
  bucketQuota(name: string): Promise<BucketQuotaUsage | undefined>;

  // Objects
  /** The given version, or the latest one (possibly a delete marker) when versionId is undefined. */
  getVersion(bucket: string, key: string, versionId?: string): Promise<ObjectVersion | undefined>;
  /**
   * Makes a version visible: checks conditions, consumes the upload if any,
   * replaces the existing null version when the new one is 'null', demotes the
   * previous latest, and queues the bytes nobody references any more for purge.
   * In a bucket with a quota, refuses (QuotaExceededError, nothing changed)
   * what would grow it past the quota, judged in the same transaction.
   */
  commitVersion(request: CommitRequest): Promise<CommitOutcome>;
  /** Removes one version for good; if it was the latest, the next newest becomes latest. `guard` may refuse, in the same transaction. */
  deleteVersion(bucket: string, key: string, versionId: string, guard?: VersionGuard): Promise<ObjectVersion | undefined>;
  /**
   * deleteVersion when `conditions` hold for that version (judged in the same
   * transaction, before `guard`); 'no-such-key' when the version does not exist.
   */
  deleteVersionIf(bucket: string, key: string, versionId: string, conditions: DeleteConditions, guard?: VersionGuard): Promise<DeleteOutcome>;
  /**
   * Replaces one version's Object Lock state with what `update` makes of the
   * current version, read in the same transaction (so the check of the old
   * lock and the change are one step); `update` throws to refuse. False when
   * the version is gone.
   */
  updateVersionLock(bucket: string, key: string, versionId: string, update: (current: ObjectVersion) => ObjectLockState): Promise<boolean>;
  setVersionTags(bucket: string, key: string, versionId: string, tags: Tag[]): Promise<boolean>;
  /** Replaces one version's ACL (undefined: private to its owner). */
  setVersionAcl(bucket: string, key: string, versionId: string, acl: Acl | undefined): Promise<boolean>;
  list(request: ListRequest): Promise<ListResult>;
  listVersions(request: ListVersionsRequest): Promise<ListVersionsResult>;
  /**
   * A page rendered by `rendering` where it is read, or undefined when this
   * store cannot (PostgreSQL, no listing thread ready): then list() and render.
   */
  listRendered?(request: ListRequest, rendering: PageRendering): Promise<RenderedPage | undefined>;
  listVersionsRendered?(request: ListVersionsRequest, rendering: PageRendering): Promise<RenderedPage | undefined>;

  // Multipart uploads
  createUpload(record: UploadRecord): Promise<void>;
  getUpload(bucket: string, key: string, uploadId: string): Promise<UploadRecord | undefined>;
  /**
   * Records a part (replacing an earlier one with the same number); false if the upload is gone. In a bucket with a
   * quota the part's bytes (less the replaced part's) count from this transaction on, and a part past the quota
   * throws QuotaExceededError, recording nothing; abortUpload and the completing commit release them.
   */
  putPart(part: PartRecord): Promise<boolean>;
  listParts(uploadId: string, afterPartNumber: number, limit: number): Promise<PartRecord[]>;
  abortUpload(bucket: string, key: string, uploadId: string): Promise<boolean>;
  listUploads(request: ListUploadsRequest): Promise<ListUploadsResult>;

  // Blob life cycle
  /** True when metadata references the blob (live or queued for purge); reclaim removes the blobs it does not know. */
  isBlobKnown(blobId: string): Promise<boolean>;
  /** Blobs queued for removal whose grace period has passed. */
  takePurgeBatch(nowMs: number, limit: number): Promise<PurgeEntry[]>;
  completePurge(blobIds: string[]): Promise<void>;
  /** Moves queued blobs to the back of the purge queue (not due before `untilMs`). */
  postponePurge(blobIds: string[], untilMs: number): Promise<void>;

  // Repairs of placed blobs
  /** Queues shards for repair, durably (a shard already queued keeps its place). */
  recordRepairs(requests: readonly { blobId: string; shard: number; reason: string }[]): Promise<void>;
  /** Queued repairs due by `nowMs`, oldest first. */
  takeRepairs(nowMs: number, limit: number): Promise<RepairEntry[]>;
  completeRepairs(entries: readonly { blobId: string; shard: number }[]): Promise<void>;
  postponeRepairs(entries: readonly { blobId: string; shard: number }[], untilMs: number): Promise<void>;
  repairSummary(sampleMax: number): Promise<RepairSummary>;
  /**
   * Points a version's segment at a copy of its bytes in another blob (re-placement),
   * queueing the old blob for purge. False, changing nothing, if the version
   * is gone or no longer references `oldBlobId`.
   */
  replaceSegment(bucket: string, key: string, versionId: string, oldBlobId: string, replacement: Segment): Promise<boolean>;
  /** Drops every repair of these blobs (they are gone). */
  forgetRepairs(blobIds: readonly string[]): Promise<void>;
  /** Live placed blobs in blob ID order after `afterBlobId`. */
  listPlacedBlobs(afterBlobId: string, limit: number): Promise<PlacedBlob[]>;

  // Statistics (the admin API)
  /** One bucket's counts (all zero for a bucket that does not exist): aggregate queries, bounded memory. */
  bucketUsage(bucket: string): Promise<BucketUsage>;
  /** The purge queue's length, counted over its index. */
  purgeQueueSummary(): Promise<PurgeQueueSummary>;
  /**
   * Blobs with a shard on `backend` (their recorded location names it):
   * live ones, parts of incomplete uploads, and those queued for purge
   * (repairs are of such blobs). The admin API's RemoveBackend refuses
   * while any remain. A scan of every blob: bounded memory, not time.
   */
  countBlobsOnBackend(backend: string): Promise<number>;
  /**
   * RemoveBackend with force: unless a live blob (an object's or a part's)
   * has a shard on `backend`, every blob queued for purge that names it
   * names `gone` in its place (the purger removes no shard there), in one
   * transaction. Answers the live blobs found (then nothing changed) and
   * the purge-queue entries rewritten.
   */
  releaseBackendFromPurgeQueue(backend: string, gone: string): Promise<{ live: number; released: number }>;
  /** Up to `limit` live blobs (objects' or parts') with a shard on `backend`: what UpdateBackend and orphan reclaim look for there. */
  sampleBlobsOnBackend(backend: string, limit: number): Promise<PlacedBlob[]>;

  /**
   * Why the store refuses writes (a failed WAL sync, a database deleted or
   * replaced under it), checked afresh; undefined while it is usable. What
   * the readiness probe reports.
   */
  unusableReason(): string | undefined;

  close(): Promise<void>;
}
