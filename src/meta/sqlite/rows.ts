/** Row <-> record mapping for the SQLite store: hot columns are columns, the rest one JSON document. */
import type { Acl } from '../../authz/index.ts';
import type { ChecksumAlgorithm, ChecksumType } from '../../util/checksum.ts';
import type { ListedVersion } from '../metadata-store.ts';
import type { ObjectChecksum, ObjectRetention, ObjectVersion, PartSummary, Segment, SystemMetadata, Tag, UploadRecord } from '../types.ts';

/** The columns of `versions` every query reads. */
interface VersionColumns {
  seq: number;
  bucket: string;
  key: string;
  version_id: string;
  is_latest: number;
  is_delete_marker: number;
  size_bytes: number;
  etag: string;
  last_modified_ms: number;
  owner_id: string;
}

export interface VersionRow extends VersionColumns {
  meta: string;
  /** The inline bytes, joined from `inline_data` when the query reads a body (null: kept in blobs). */
  inline_data?: Buffer | null;
}

/** A listing's row: the columns, and the checksum cut out of the metadata document by SQLite. */
export interface ListedVersionRow extends VersionColumns {
  /** JSON of the checksum object, or null. */
  checksum: string | null;
}

/** The listing columns; `json_extract` hands over only the checksum, not the whole document. */
export const LISTED_VERSION_COLUMNS =
  "seq, bucket, key, version_id, is_latest, is_delete_marker, size_bytes, etag, last_modified_ms, owner_id, json_extract(meta, '$.checksum') AS checksum";

function columnsOf(row: VersionColumns): Omit<ListedVersion, 'checksum'> {
  return {
    bucket: row.bucket,
    key: row.key,
    versionId: row.version_id,
    isDeleteMarker: row.is_delete_marker === 1,
    lastModifiedMs: row.last_modified_ms,
    sizeBytes: row.size_bytes,
    etag: row.etag,
    ownerId: row.owner_id,
  };
}

export function rowToListedVersion(row: ListedVersionRow): ListedVersion {
  return { ...columnsOf(row), checksum: row.checksum === null ? null : (JSON.parse(row.checksum) as ObjectChecksum) };
}

interface VersionMeta {
  system: SystemMetadata;
  userMetadata: Record<string, string>;
  checksum: ObjectChecksum | null;
  tags: Tag[];
  parts: PartSummary[] | null;
  segments: Segment[];
  completedUploadId?: string;
  acl?: Acl;
  retention?: ObjectRetention;
  legalHold?: boolean;
}

/**
 * The meta document as stored: JSON.stringify's output, without whitespace.
 * Rendered listings rely on that — a document without the text
 * `"checksum":{` is taken to have no checksum, unparsed
 * (sqlite/listing.ts) — so any other writer of this column (a migration, a
 * restore, another engine's text form such as PostgreSQL's jsonb::text)
 * must produce the same compact text.
 */
export function versionMeta(version: ObjectVersion): string {
  const meta: VersionMeta = {
    system: version.system,
    userMetadata: version.userMetadata,
    checksum: version.checksum,
    tags: version.tags,
    parts: version.parts,
    segments: version.segments,
  };
  if (version.completedUploadId !== undefined) meta.completedUploadId = version.completedUploadId;
  if (version.acl !== undefined) meta.acl = version.acl;
  if (version.retention !== undefined) meta.retention = version.retention;
  if (version.legalHold !== undefined) meta.legalHold = version.legalHold;
  return JSON.stringify(meta);
}

export function rowToVersion(row: VersionRow): ObjectVersion {
  const meta = JSON.parse(row.meta) as VersionMeta;
  // One object built in place: conditional spreads made an empty literal and a copy per optional field
  // (rowToVersion was ~3.8 KB of garbage per overwriting PUT in a sampling heap profile, issue 17).
  const version: ObjectVersion = {
    bucket: row.bucket,
    key: row.key,
    versionId: row.version_id,
    isDeleteMarker: row.is_delete_marker === 1,
    lastModifiedMs: row.last_modified_ms,
    sizeBytes: row.size_bytes,
    etag: row.etag,
    ownerId: row.owner_id,
    system: meta.system,
    userMetadata: meta.userMetadata,
    checksum: meta.checksum,
    tags: meta.tags,
    parts: meta.parts,
    segments: meta.segments,
  };
  if (meta.completedUploadId !== undefined) version.completedUploadId = meta.completedUploadId;
  if (meta.acl !== undefined) version.acl = meta.acl;
  if (meta.retention !== undefined) version.retention = meta.retention;
  if (meta.legalHold !== undefined) version.legalHold = meta.legalHold;
  if (row.inline_data !== undefined && row.inline_data !== null) version.inlineData = row.inline_data;
  return version;
}

export interface UploadRow {
  upload_id: string;
  bucket: string;
  key: string;
  created_ms: number;
  owner_id: string;
  meta: string;
}

interface UploadMeta {
  system: SystemMetadata;
  userMetadata: Record<string, string>;
  tags: Tag[];
  checksumAlgorithm: ChecksumAlgorithm | null;
  checksumType: ChecksumType | null;
  acl?: Acl;
  retention?: ObjectRetention;
  legalHold?: boolean;
}

export function uploadMeta(upload: UploadRecord): string {
  const meta: UploadMeta = {
    system: upload.system,
    userMetadata: upload.userMetadata,
    tags: upload.tags,
    checksumAlgorithm: upload.checksumAlgorithm,
    checksumType: upload.checksumType,
  };
  if (upload.acl !== undefined) meta.acl = upload.acl;
  if (upload.retention !== undefined) meta.retention = upload.retention;
  if (upload.legalHold !== undefined) meta.legalHold = upload.legalHold;
  return JSON.stringify(meta);
}

export function rowToUpload(row: UploadRow): UploadRecord {
  const meta = JSON.parse(row.meta) as UploadMeta;
  return {
    uploadId: row.upload_id,
    bucket: row.bucket,
    key: row.key,
    createdMs: row.created_ms,
    ownerId: row.owner_id,
    ...meta,
  };
}
