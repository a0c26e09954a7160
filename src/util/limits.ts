/**
 * Every bound of the S3 API and of our own, in one place. Units come before
 * the qualifier (`KEY_BYTES_MAX`), so related names sort together.
 * The relations between them are checked once, at module load.
 */
import { assert } from './assert.ts';

export const KiB = 1024;
export const MiB = 1024 * KiB;
export const GiB = 1024 * MiB;

// S3 API bounds (AWS documentation).
export const KEY_BYTES_MAX = 1024;
export const BUCKET_NAME_LENGTH_MIN = 3;
export const BUCKET_NAME_LENGTH_MAX = 63;
export const USER_METADATA_BYTES_MAX = 2 * KiB;
export const LIST_KEYS_MAX = 1000;
export const LIST_BUCKETS_MAX = 10_000;
export const DELETE_KEYS_MAX = 1000;
export const PART_NUMBER_MAX = 10_000;
export const PART_BYTES_MIN = 5 * MiB;
export const PART_BYTES_MAX = 5 * GiB;
export const OBJECT_BYTES_MAX = 5 * 1024 * GiB;
export const PUT_OBJECT_BYTES_MAX = 5 * GiB;
export const PRESIGN_EXPIRY_SECONDS_MAX = 604_800;
export const CLOCK_SKEW_MS_MAX = 15 * 60 * 1000;
export const OBJECT_TAGS_MAX = 10;
export const BUCKET_TAGS_MAX = 50;
export const TAG_KEY_LENGTH_MAX = 128;
export const TAG_VALUE_LENGTH_MAX = 256;
/** PutBucketCors: at most 100 rules, in a body of at most 64 KiB (AWS). */
export const CORS_RULES_MAX = 100;
export const CORS_CONFIG_BYTES_MAX = 64 * KiB;

// Our own bounds.
/** Total bytes of request headers node:http accepts (S3 allows 8 KiB of user metadata headers plus the rest). */
export const HEADER_BYTES_MAX = 16 * KiB;
/** XML request bodies (DeleteObjects with 1000 keys of 1024 bytes is ~1.1 MiB). */
export const XML_BODY_BYTES_MAX = 2 * MiB;
/**
 * POST Object forms: the fields before the file are held in memory until it
 * starts, so their number and sizes are bounded (AWS bounds the policy and
 * the fields to about 20 KiB each; its SDKs send a dozen fields).
 */
export const POST_FORM_FIELDS_MAX = 64;
export const POST_FORM_FIELD_BYTES_MAX = 20 * KiB;
/** aws-chunked: one chunk header line, one trailer block. */
export const CHUNK_HEADER_BYTES_MAX = 4 * KiB;
export const TRAILER_BYTES_MAX = 4 * KiB;
/** Largest data chunk an aws-chunked upload may declare (SDKs send 64 KiB; allow far more, bounded). */
export const CHUNK_DATA_BYTES_MAX = 16 * MiB;
/** Multipart uploads listed per page, parts per page. */
export const LIST_UPLOADS_MAX = 1000;
export const LIST_PARTS_MAX = 1000;
/** Purge queue: entries taken per batch, and the delay before a replaced blob may be removed. */
export const PURGE_BATCH_MAX = 256;
export const PURGE_GRACE_MS = 2_000;
/** A purge entry that could not be done now (blob being read, removal failed) is retried this much later. */
export const PURGE_RETRY_MS = 1_000;
/**
 * Objects up to this size keep their bytes in the metadata store, committed
 * in the same transaction as their version: a small PUT costs no blob file
 * and no fsyncs of its own, a small GET one row lookup and one socket write.
 * A write buffers at most this much before it spills into a blob, so the
 * memory it may hold is bounded by this times the connection limit (64 MiB).
 */
export const INLINE_BYTES_MAX = 16 * KiB;
/** Open client connections per process; see the connection block below for what happens at the cap. */
export const CONNECTIONS_MAX = 4_096;
/** Lifecycle configurations (AWS): rules per bucket, a rule ID's length, NewerNoncurrentVersions' bound. */
export const LIFECYCLE_RULES_MAX = 1000;
export const LIFECYCLE_RULE_ID_LENGTH_MAX = 255;
export const LIFECYCLE_NEWER_NONCURRENT_MAX = 100;
/**
 * The lifecycle worker (src/lifecycle/worker.ts) does bounded work per pass,
 * so one huge bucket never holds the event loop or the metadata store for
 * long: at most this many versions and uploads examined, and this many
 * deletes (each one metadata transaction), then it resumes there next pass.
 */
export const LIFECYCLE_EXAMINED_PER_PASS = 10_000;
export const LIFECYCLE_DELETES_PER_PASS = 1_000;
/** Versions or uploads read per listing page by the worker. */
export const LIFECYCLE_PAGE_SIZE = 500;
/**
 * Time between the starts of two lifecycle scans of every bucket, with
 * calendar days: due times fall on midnight UTC, so an hourly scan acts
 * within the hour. Passes within a scan follow each other after a pause.
 */
export const LIFECYCLE_SCAN_INTERVAL_MS = 3_600_000;
export const LIFECYCLE_PASS_PAUSE_MS = 250;
/** With a test time scale: a scan every tenth of a lifecycle day, within these bounds. */
export const LIFECYCLE_SCALED_SCAN_INTERVAL_MS_MIN = 200;
export const LIFECYCLE_SCALED_SCAN_INTERVAL_MS_MAX = 60_000;
/** Shutdown: how long in-flight requests may take to finish after SIGTERM. */
export const SHUTDOWN_GRACE_MS = 30_000;
/** Idle socket timeout for slow or stalled clients. */
export const REQUEST_IDLE_TIMEOUT_MS = 120_000;

// Connections (src/http/connection-guard.ts, src/http/server.ts). Idle and
// slow-header sockets cost an attacker nothing and need no credentials, so
// none of them may hold a slot for long, and at CONNECTIONS_MAX they are
// shed (oldest first) to make room for a new connection; a connection with a
// request in flight never is.
/** A connection that has sent no byte by then is closed: clients send their request at once. */
export const FIRST_BYTE_TIMEOUT_MS = 10_000;
/**
 * node:http's headersTimeout: a request's headers (at most HEADER_BYTES_MAX)
 * must be complete this long after the connection opened (or, kept alive,
 * after the request's first byte); else RequestTimeout and close.
 * `requestTimeout: 0` (uploads may take hours) would otherwise turn it off.
 */
export const HEADERS_TIMEOUT_MS = 20_000;
/** How often node:http checks headersTimeout (its default, 30 s, would let headers linger up to 50 s) and the guard sweeps silent connections. */
export const CONNECTIONS_SWEEP_INTERVAL_MS = 1_000;
/** Idle keep-alive between requests (node's default, stated): clients reuse a connection within milliseconds or not at all. */
export const KEEP_ALIVE_IDLE_TIMEOUT_MS = 5_000;

assert(FIRST_BYTE_TIMEOUT_MS < HEADERS_TIMEOUT_MS && HEADERS_TIMEOUT_MS < REQUEST_IDLE_TIMEOUT_MS, 'connection timeouts nest');
assert(PART_BYTES_MIN < PART_BYTES_MAX, 'part bounds');
assert(PUT_OBJECT_BYTES_MAX <= OBJECT_BYTES_MAX, 'object bounds');
assert(DELETE_KEYS_MAX * (KEY_BYTES_MAX + 64) < XML_BODY_BYTES_MAX, 'a full DeleteObjects body fits the XML limit');
assert(USER_METADATA_BYTES_MAX < HEADER_BYTES_MAX, 'user metadata fits the header limit');
