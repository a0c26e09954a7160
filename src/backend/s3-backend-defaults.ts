/**
 * An S3 backend's upload defaults, apart from the backend itself so that the
 * configuration parser can name them without loading the S3 client (undici,
 * fast-xml-parser: ~150 ms of start-up for every command that reads a config).
 */

/** Objects larger than this go up as multipart uploads (one PUT takes at most 5 GiB). */
export const MULTIPART_THRESHOLD_BYTES_DEFAULT = 1024 * 1024 * 1024;
export const PART_BYTES_DEFAULT = 128 * 1024 * 1024;
