/**
 * Admin operations on what the data directory holds: storage statistics,
 * and incomplete multipart uploads (listed, and aborted through the engine's
 * abort path, so their parts' bytes reach the purge queue like an S3
 * AbortMultipartUpload's).
 */
import { stat, statfs } from 'node:fs/promises';
import { join } from 'node:path';
import type { BucketUsage } from '../meta/metadata-store.ts';
import type { UploadRecord } from '../meta/types.ts';
import { S3Error } from '../util/s3-error.ts';
import { type AdminContext, type AdminStorage, operation } from './define.ts';
import { AdminError } from './errors.ts';

/** Uploads one ListIncompleteUploads answers, and one AbortIncompleteUploads aborts, at most. */
export const INCOMPLETE_UPLOADS_PER_CALL_MAX = 1000;
const INCOMPLETE_UPLOADS_DEFAULT = 100;
/**
 * Uploads looked at per call, matching or not: a bucket with millions of
 * young uploads must not turn one call into a scan of all of them. Past it,
 * the answer is truncated and names where to go on.
 */
const UPLOADS_EXAMINED_MAX = 20_000;
const UPLOAD_PAGE = 1000;
/** Ten years: any older-than beyond is a mistake. */
const AGE_SECONDS_MAX = 10 * 365 * 24 * 3600;

const BUCKET = { type: 'string', description: 'The bucket.', required: true, maxLength: 63 } as const;

export function requireStorage(context: AdminContext): AdminStorage {
  if (context.storage === undefined) throw new AdminError('ServiceUnavailable', 'this process does not own the data directory');
  return context.storage;
}

interface PlacementUsage extends Omit<BucketUsage, 'incompleteUploads'> {
  name: string;
  buckets: number;
}

async function fileSize(path: string): Promise<number> {
  return stat(path).then((found) => found.size, () => 0);
}

interface UploadPage {
  uploads: UploadRecord[];
  /** Set when more uploads may match: pass them back as keyMarker and uploadIdMarker. */
  next: { keyMarker: string; uploadIdMarker: string } | undefined;
}

/** Uploads of `bucket` begun at or before `beforeMs`, in key order after the markers, bounded by `limit` and UPLOADS_EXAMINED_MAX. */
async function incompleteUploads(context: AdminContext, bucket: string, beforeMs: number, limit: number, keyMarker: string, uploadIdMarker: string): Promise<UploadPage> {
  const uploads: UploadRecord[] = [];
  let examined = 0;
  let marker = { keyMarker, uploadIdMarker };
  for (;;) {
    const page = await context.engine.listMultipartUploads({ bucket, prefix: '', delimiter: '', ...marker, limit: UPLOAD_PAGE });
    for (const entry of page.entries) {
      const upload = entry.upload;
      if (upload === undefined) continue;
      examined++;
      marker = { keyMarker: upload.key, uploadIdMarker: upload.uploadId };
      if (upload.createdMs <= beforeMs) uploads.push(upload);
      if (uploads.length === limit || examined === UPLOADS_EXAMINED_MAX) {
        const more = page.isTruncated || entry !== page.entries.at(-1);
        return { uploads, next: more ? marker : undefined };
      }
    }
    if (!page.isTruncated) return { uploads, next: undefined };
  }
}

const UPLOAD_FILTER = {
  bucket: BUCKET,
  olderThanSeconds: { type: 'integer', description: 'Only uploads begun at least this long ago (default 0: all).', minimum: 0, maximum: AGE_SECONDS_MAX },
  limit: { type: 'integer', description: `Uploads at most (default ${INCOMPLETE_UPLOADS_DEFAULT}).`, minimum: 1, maximum: INCOMPLETE_UPLOADS_PER_CALL_MAX },
} as const;

export const STORAGE_OPERATIONS = {
  GetStorageStats: operation({
    summary: 'Objects, versions and bytes per bucket and per placement; disk space; metadata size.',
    input: { bucket: { type: 'string', description: 'Only this bucket.', maxLength: 63 } },
    output: '{ buckets: [{ name, placement, objects, versions, deleteMarkers, bytes, incompleteUploads }], placements: [{ name, buckets, objects, versions, deleteMarkers, bytes }], disk: { freeBytes, sizeBytes }, metadataBytes }',
    async handler(context, input) {
      const storage = requireStorage(context);
      const buckets = input.bucket === undefined ? await context.engine.listBuckets() : [await context.engine.getBucket(input.bucket)];
      const placements = new Map<string, PlacementUsage>();
      const rows = [];
      // One aggregate query per bucket, one after another: the metadata store is never asked for more than one at a time.
      for (const bucket of buckets) {
        const usage = await storage.meta.bucketUsage(bucket.name);
        const placement = storage.placement?.store.bucketPlacementName(bucket.name) ?? storage.config.buckets.get(bucket.name) ?? storage.config.defaultPlacement;
        rows.push({ name: bucket.name, placement, ...usage });
        const sum = placements.get(placement) ?? { name: placement, buckets: 0, objects: 0, versions: 0, deleteMarkers: 0, bytes: 0 };
        placements.set(placement, {
          name: placement,
          buckets: sum.buckets + 1,
          objects: sum.objects + usage.objects,
          versions: sum.versions + usage.versions,
          deleteMarkers: sum.deleteMarkers + usage.deleteMarkers,
          bytes: sum.bytes + usage.bytes,
        });
      }
      const space = await statfs(storage.dataDir);
      const metadataBytes = (await fileSize(join(storage.dataDir, 'meta.db'))) + (await fileSize(join(storage.dataDir, 'meta.db-wal')));
      return {
        buckets: rows,
        placements: [...placements.values()],
        disk: { freeBytes: space.bavail * space.bsize, sizeBytes: space.blocks * space.bsize },
        metadataBytes,
      };
    },
  }),
  ListIncompleteUploads: operation({
    summary: 'Multipart uploads begun and neither completed nor aborted, in key order.',
    input: {
      ...UPLOAD_FILTER,
      keyMarker: { type: 'string', description: 'Go on after this key (a previous answer\'s nextKeyMarker).', maxLength: 1024 },
      uploadIdMarker: { type: 'string', description: 'With keyMarker: go on after this upload of that key.', maxLength: 128 },
    },
    output: '{ uploads: [{ key, uploadId, createdMs, ownerId }], nextKeyMarker?, nextUploadIdMarker? }',
    async handler(context, input) {
      const beforeMs = Date.now() - (input.olderThanSeconds ?? 0) * 1000;
      const page = await incompleteUploads(context, input.bucket, beforeMs, input.limit ?? INCOMPLETE_UPLOADS_DEFAULT, input.keyMarker ?? '', input.uploadIdMarker ?? '');
      return {
        uploads: page.uploads.map((upload) => ({ key: upload.key, uploadId: upload.uploadId, createdMs: upload.createdMs, ownerId: upload.ownerId })),
        ...(page.next === undefined ? {} : { nextKeyMarker: page.next.keyMarker, nextUploadIdMarker: page.next.uploadIdMarker }),
      };
    },
  }),
  AbortIncompleteUploads: operation({
    summary: `Aborts uploads begun at least olderThanSeconds ago, at most limit (≤ ${INCOMPLETE_UPLOADS_PER_CALL_MAX}) per call; their parts go to the purge queue.`,
    input: { ...UPLOAD_FILTER, olderThanSeconds: { ...UPLOAD_FILTER.olderThanSeconds, required: true } },
    output: '{ aborted, more }',
    async handler(context, input) {
      const beforeMs = Date.now() - input.olderThanSeconds * 1000;
      // Collected first, aborted after: aborting while paging would remove the page's marker.
      const page = await incompleteUploads(context, input.bucket, beforeMs, input.limit ?? INCOMPLETE_UPLOADS_PER_CALL_MAX, '', '');
      let aborted = 0;
      for (const upload of page.uploads) {
        try {
          await context.engine.abortMultipartUpload(input.bucket, upload.key, upload.uploadId);
          aborted++;
        } catch (error) {
          // Completed or aborted by a client meanwhile: nothing left to do.
          if (!(error instanceof S3Error && error.code === 'NoSuchUpload')) throw error;
        }
      }
      return { aborted, more: page.next !== undefined };
    },
  }),
} as const;
