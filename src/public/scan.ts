/**
 * `talus/scan`: every object of an S3 bucket (prefix) with its metadata, as
 * an async iterator, over the lean keep-alive client: one-call metadata
 * listings where the server offers them (Talus, MinIO), HEADs with bounded
 * concurrency elsewhere. `talus scan` is its CLI.
 */
export { scanObjects, METADATA_MODES, SCAN_CONCURRENCY_DEFAULT, SCAN_CONCURRENCY_MAX } from '../scan/scan.ts';
export type { MetadataMode, ScanOptions, ScannedObject, ScanProgress } from '../scan/scan.ts';
export { MissingCredentialsError, type StaticCredentials } from '../scan/credentials.ts';
export { formatObject, formatProgress, CSV_HEADER, type OutputFormat } from '../scan/format.ts';
