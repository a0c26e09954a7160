/**
 * The engine: S3 semantics over a metadata store and a blob store, with no
 * HTTP in sight, so other front-ends and the gateway reuse it. This class is
 * the facade; the operations live in one module per family.
 */
import type { BlobStore } from '../blob/blob-store.ts';
import type {
  DeleteConditions,
  ListRequest,
  ListResult,
  ListUploadsRequest,
  ListUploadsResult,
  ListVersionsRequest,
  ListVersionsResult,
  MetadataStore,
} from '../meta/metadata-store.ts';
import type { Acl } from '../authz/index.ts';
import type { BucketGuard, PageRendering, RenderedPage } from '../meta/metadata-store.ts';
import type { BucketAccessSettings, BucketConfigKind, BucketConfigs, BucketQuota, BucketQuotaUsage, BucketRecord, ObjectLockState, ObjectRetention, ObjectVersion, PartRecord, Tag, UploadRecord, VersioningState } from '../meta/types.ts';
import { assert } from '../util/assert.ts';
import { S3Error } from '../util/s3-error.ts';
import { isValidBucketName } from './bucket-name.ts';
import type { EngineContext, LeaseQuery } from './context.ts';
import { Purger, purgeOnce, reclaimOrphans } from './maintenance.ts';
import * as multipart from './multipart.ts';
import * as objectLock from './object-lock.ts';
import * as objects from './objects.ts';
import { ReadLeases } from './read-leases.ts';
import type {
  CopyObjectInput,
  CopyResult,
  DeleteResult,
  GetObjectInput,
  GetObjectResult,
  PutObjectInput,
  WriteResult,
} from './types.ts';

const PURGE_INTERVAL_MS = 1_000;

export interface EngineOptions {
  onBackgroundError?: (error: unknown) => void;
  /** Leases held by other processes serving the same stores; the purger asks before removing. */
  otherLeases?: LeaseQuery;
  /** The data directory's free-space guard (DiskReserve): refuses writes that add data while the disk is full. */
  space?: SpaceGuard;
  /**
   * Another reason not to take traffic, asked at each readiness probe (a
   * placement whose write quorum is out of reach: placement/backend-health.ts's
   * missingWriteQuorum), or undefined while there is none.
   */
  unreadyReason?: () => string | undefined;
}

/** See src/disk-reserve.ts. */
export interface SpaceGuard {
  /** The error for a write that would add data, while that is refused. */
  refusal(): S3Error | undefined;
  /** Every failed write reports here: a full disk releases the reserve that keeps deletes working. */
  noteError(error: unknown): void;
}

export class Engine {
  readonly #context: EngineContext;
  readonly #purger: Purger;
  readonly #space: SpaceGuard | undefined;
  readonly #otherUnreadyReason: (() => string | undefined) | undefined;

  constructor(meta: MetadataStore, blobs: BlobStore, options: EngineOptions = {}) {
    this.#context = { meta, blobs, leases: new ReadLeases(), otherLeases: options.otherLeases };
    this.#purger = new Purger(this.#context, PURGE_INTERVAL_MS, options.onBackgroundError ?? (() => undefined));
    this.#space = options.space;
    this.#otherUnreadyReason = options.unreadyReason;
  }

  /** A write that adds data: refused up front while the disk is full; a full disk it meets is reported. */
  async #adding<T>(write: () => Promise<T>): Promise<T> {
    const refusal = this.#space?.refusal();
    if (refusal !== undefined) throw refusal;
    return this.#removing(write);
  }

  /** A write that frees space (or needs only a little metadata): always tried, its failures reported. */
  async #removing<T>(write: () => Promise<T>): Promise<T> {
    if (this.#space === undefined) return write();
    try {
      return await write();
    } catch (error) {
      this.#space.noteError(error);
      throw error;
    }
  }

  /** Read leases held by this process's GETs (a cluster worker reports them to the purging process). */
  leasedAmong(blobIds: readonly string[]): string[] {
    return blobIds.filter((id) => this.#context.leases.isLeased(id));
  }

  get meta(): MetadataStore {
    return this.#context.meta;
  }

  /** Why this engine should not take traffic (its metadata store refuses writes, a placement's write quorum is out of reach), or undefined when it is ready. */
  unreadyReason(): string | undefined {
    return this.#context.meta.unusableReason() ?? this.#otherUnreadyReason?.();
  }

  /** Reclaims crash debris, then starts background purging. Call before serving. */
  async start(options: { setAside?: (blobId: string) => Promise<void> } = {}): Promise<{ reclaimedBlobs: number }> {
    const reclaimedBlobs = await reclaimOrphans(this.#context, Date.now(), options.setAside);
    this.#purger.start();
    return { reclaimedBlobs };
  }

  async stop(): Promise<void> {
    await this.#purger.stop();
  }

  /** Runs one purge pass now (tests and `talus` maintenance commands). */
  purgeNow(nowMs?: number): Promise<number> {
    return purgeOnce(this.#context, nowMs);
  }

  // Buckets

  /**
   * Creates a bucket. Re-creating one's own bucket is 'already-owned': S3
   * answers 200 for that in us-east-1 and BucketAlreadyOwnedByYou elsewhere,
   * which the front decides; the existing bucket is left untouched either way.
   */
  async createBucket(
    name: string,
    ownerId: string,
    access: BucketAccessSettings | null = null,
    configs: BucketConfigs = {},
  ): Promise<'created' | 'already-owned'> {
    // Bad input answers as such, also while the disk is full.
    if (!isValidBucketName(name)) throw new S3Error('InvalidBucketName', undefined, { BucketName: name });
    return this.#adding(async () => {
      // Object Lock needs versions to lock: a bucket created with it has versioning on from the start, for good.
      const versioning = configs.objectLock === undefined ? 'Unversioned' : 'Enabled';
      const record: BucketRecord = { name, createdMs: Date.now(), ownerId, versioning, tags: null, access, configs };
      if ((await this.#context.meta.createBucket(record)) === 'created') return 'created';
      const existing = await this.#context.meta.getBucket(name);
      if (existing?.ownerId === ownerId) return 'already-owned';
      throw new S3Error('BucketAlreadyExists', undefined, { BucketName: name });
    });
  }

  getBucket(name: string): Promise<BucketRecord> {
    return objects.requireBucket(this.#context, name);
  }

  listBuckets(): Promise<BucketRecord[]> {
    return this.#context.meta.listBuckets();
  }

  async deleteBucket(name: string): Promise<void> {
    return this.#removing(async () => {
      const outcome = await this.#context.meta.deleteBucket(name);
      if (outcome === 'missing') throw new S3Error('NoSuchBucket', undefined, { BucketName: name });
      if (outcome === 'not-empty') throw new S3Error('BucketNotEmpty', undefined, { BucketName: name });
    });
  }

  async setBucketVersioning(name: string, state: Exclude<VersioningState, 'Unversioned'>): Promise<void> {
    return this.#adding(async () => {
      if (!(await this.#context.meta.setBucketVersioning(name, state, objectLock.versioningGuard(state)))) throw new S3Error('NoSuchBucket', undefined, { BucketName: name });
    });
  }

  /** Replaces the bucket's access settings (policy, ACL, ownership controls, public access block). */
  async setBucketAccess(name: string, access: BucketAccessSettings | null): Promise<void> {
    return this.#adding(async () => {
      if (!(await this.#context.meta.setBucketAccess(name, access))) throw new S3Error('NoSuchBucket', undefined, { BucketName: name });
    });
  }

  /** Replaces one kind of the bucket's configuration documents (null removes it); `guard` may refuse, in the same transaction. */
  async setBucketConfig(name: string, kind: BucketConfigKind, document: string | null, guard?: BucketGuard): Promise<void> {
    return this.#adding(async () => {
      if (!(await this.#context.meta.setBucketConfig(name, kind, document, guard))) throw new S3Error('NoSuchBucket', undefined, { BucketName: name });
    });
  }

  /**
   * Sets the bucket's hard quota, or clears it (null). Limits are byte and
   * object counts (null: that one unlimited); a quota with neither is none.
   * Not refused while the disk is full: it only limits writes.
   */
  async setBucketQuota(name: string, quota: BucketQuota | null): Promise<void> {
    const effective = quota === null || (quota.maxBytes === null && quota.maxObjects === null) ? null : quota;
    if (effective !== null) {
      for (const limit of [effective.maxBytes, effective.maxObjects]) assert(limit === null || (Number.isSafeInteger(limit) && limit >= 0), 'quota limits are validated by the caller');
    }
    return this.#removing(async () => {
      if (!(await this.#context.meta.setBucketQuota(name, effective))) throw new S3Error('NoSuchBucket', undefined, { BucketName: name });
    });
  }

  /** The bucket's quota and what it holds; null when it has none. */
  async getBucketQuota(name: string): Promise<BucketQuotaUsage | null> {
    await objects.requireBucket(this.#context, name);
    // From the row, not the cached record: the counters change with every write.
    return (await this.#context.meta.bucketQuota(name)) ?? null;
  }

  async getBucketTags(name: string): Promise<Tag[]> {
    const bucket = await objects.requireBucket(this.#context, name);
    if (bucket.tags === null) throw new S3Error('NoSuchTagSet', undefined, { BucketName: name });
    return bucket.tags;
  }

  async setBucketTags(name: string, tags: Tag[] | null): Promise<void> {
    return this.#adding(async () => {
      if (!(await this.#context.meta.setBucketTags(name, tags))) throw new S3Error('NoSuchBucket', undefined, { BucketName: name });
    });
  }

  // Objects

  putObject(input: PutObjectInput): Promise<WriteResult> {
    return this.#adding(() => objects.putObject(this.#context, input));
  }

  getObject(input: GetObjectInput): Promise<GetObjectResult> {
    return objects.getObject(this.#context, input);
  }

  /**
   * Deletes a version (versionId given) or adds a delete marker / removes the
   * null version, when `conditions` hold (objects.deleteObject). A version
   * under Object Lock is refused (AccessDenied) on every caller's path;
   * `bypassGovernance` lifts GOVERNANCE retention only, and only
   * authorization may set it (x-amz-bypass-governance-retention with
   * s3:BypassGovernanceRetention).
   */
  deleteObject(
    bucket: string,
    key: string,
    versionId: string | undefined,
    ownerId: string,
    conditions: DeleteConditions = {},
    bypassGovernance = false,
  ): Promise<DeleteResult> {
    return this.#removing(() => objects.deleteObject(this.#context, bucket, key, versionId, ownerId, conditions, bypassGovernance));
  }

  copyObject(input: CopyObjectInput): Promise<CopyResult> {
    return this.#adding(() => objects.copyObject(this.#context, input));
  }

  /**
   * The version a request addresses, for authorization: undefined when the
   * key has none or its latest is a delete marker (never throws NoSuchKey:
   * whether a stranger may learn that is authorization's to decide).
   */
  async lookupVersion(bucket: BucketRecord, key: string, versionId: string | undefined): Promise<ObjectVersion | undefined> {
    const version = await this.#context.meta.getVersion(bucket.name, key, versionId);
    return version === undefined || version.isDeleteMarker ? undefined : version;
  }

  /** Replaces the ACL of the addressed version; answers the version ID to show. */
  async setObjectAcl(bucket: string, key: string, versionId: string | undefined, acl: Acl | undefined): Promise<string | undefined> {
    return this.#adding(async () => {
      const bucketRecord = await objects.requireBucket(this.#context, bucket);
      const version = await objects.findVersion(this.#context, bucketRecord, key, versionId);
      if (!(await this.#context.meta.setVersionAcl(bucket, key, version.versionId, acl))) {
        throw new S3Error('NoSuchKey', undefined, { Key: key });
      }
      return objects.shownVersionId(bucketRecord, version.versionId);
    });
  }

  async getObjectTags(bucket: string, key: string, versionId: string | undefined): Promise<{ tags: Tag[]; versionId: string | undefined }> {
    const bucketRecord = await objects.requireBucket(this.#context, bucket);
    const version = await objects.findVersion(this.#context, bucketRecord, key, versionId);
    return { tags: version.tags, versionId: objects.shownVersionId(bucketRecord, version.versionId) };
  }

  async setObjectTags(bucket: string, key: string, versionId: string | undefined, tags: Tag[]): Promise<string | undefined> {
    return this.#adding(async () => {
      const bucketRecord = await objects.requireBucket(this.#context, bucket);
      const version = await objects.findVersion(this.#context, bucketRecord, key, versionId);
      if (!(await this.#context.meta.setVersionTags(bucket, key, version.versionId, tags))) {
        throw new S3Error('NoSuchKey', undefined, { Key: key });
      }
      return objects.shownVersionId(bucketRecord, version.versionId);
    });
  }

  // Object Lock (src/engine/object-lock.ts)

  /** Enables Object Lock on the bucket (versioning must be Enabled) or replaces its default retention. */
  setObjectLockConfiguration(name: string, config: objectLock.BucketObjectLock): Promise<void> {
    return this.setBucketConfig(name, 'objectLock', objectLock.objectLockDocument(config), objectLock.lockConfigurationGuard);
  }

  getObjectLock(bucket: string, key: string, versionId: string | undefined): Promise<ObjectLockState & { versionId: string | undefined }> {
    return objectLock.getObjectLock(this.#context, bucket, key, versionId);
  }

  setObjectRetention(bucket: string, key: string, versionId: string | undefined, retention: ObjectRetention | undefined, bypassGovernance: boolean): Promise<string | undefined> {
    return this.#removing(() => objectLock.setObjectRetention(this.#context, bucket, key, versionId, retention, bypassGovernance));
  }

  setObjectLegalHold(bucket: string, key: string, versionId: string | undefined, on: boolean): Promise<string | undefined> {
    return this.#removing(() => objectLock.setObjectLegalHold(this.#context, bucket, key, versionId, on));
  }

  async list(request: ListRequest): Promise<ListResult> {
    await objects.requireBucket(this.#context, request.bucket);
    return this.#context.meta.list(request);
  }

  async listVersions(request: ListVersionsRequest): Promise<ListVersionsResult> {
    await objects.requireBucket(this.#context, request.bucket);
    return this.#context.meta.listVersions(request);
  }

  /** A page rendered where the store reads it (see MetadataStore.listRendered); undefined: list() and render. */
  async listRendered(request: ListRequest, rendering: PageRendering): Promise<RenderedPage | undefined> {
    await objects.requireBucket(this.#context, request.bucket);
    return this.#context.meta.listRendered?.(request, rendering);
  }

  async listVersionsRendered(request: ListVersionsRequest, rendering: PageRendering): Promise<RenderedPage | undefined> {
    await objects.requireBucket(this.#context, request.bucket);
    return this.#context.meta.listVersionsRendered?.(request, rendering);
  }

  // Multipart uploads

  createMultipartUpload(input: multipart.CreateUploadInput): Promise<UploadRecord> {
    return this.#adding(() => multipart.createMultipartUpload(this.#context, input));
  }

  uploadPart(input: multipart.UploadPartInput): ReturnType<typeof multipart.uploadPart> {
    return this.#adding(() => multipart.uploadPart(this.#context, input));
  }

  uploadPartCopy(input: multipart.UploadPartCopyInput): ReturnType<typeof multipart.uploadPartCopy> {
    return this.#adding(() => multipart.uploadPartCopy(this.#context, input));
  }

  completeMultipartUpload(input: multipart.CompleteUploadInput): Promise<WriteResult> {
    return this.#adding(() => multipart.completeMultipartUpload(this.#context, input));
  }

  abortMultipartUpload(bucket: string, key: string, uploadId: string): Promise<void> {
    return this.#removing(() => multipart.abortMultipartUpload(this.#context, bucket, key, uploadId));
  }

  async listParts(bucket: string, key: string, uploadId: string, afterPartNumber: number, limit: number): Promise<{ upload: UploadRecord; parts: PartRecord[]; isTruncated: boolean }> {
    const upload = await multipart.requireUpload(this.#context, bucket, key, uploadId);
    const parts = await this.#context.meta.listParts(uploadId, afterPartNumber, limit + 1);
    return { upload, parts: parts.slice(0, limit), isTruncated: parts.length > limit };
  }

  async listMultipartUploads(request: ListUploadsRequest): Promise<ListUploadsResult> {
    await objects.requireBucket(this.#context, request.bucket);
    return this.#context.meta.listUploads(request);
  }
}
