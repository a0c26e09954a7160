/**
 * `talus scan`: every object under a prefix with its metadata, as an async
 * iterator in key order. Two ways to get the metadata:
 *
 * - `list`: MinIO's one-call listing (`metadata=true`, Talus has it): a
 *   ListObjectsV2 page of 1000 objects carries their metadata and tags, so
 *   the scan costs one request per 1000 objects.
 * - `head`: list, then HEAD every object (and GetObjectTagging for the ones
 *   HEAD says have tags) with bounded concurrency over one keep-alive pool:
 *   what works against any S3 server.
 * - `auto` (the default) lists with `metadata=true`: a server that answers
 *   with <UserMetadata> is scanned in `list` mode. Entries listed without it
 *   are HEADed: a HEAD that succeeds shows a server that ignores the
 *   parameter (AWS, s3rver), scanned in `head` mode from then on; one denied
 *   (403: the caller may list the object but not read it, which Talus lists
 *   plainly) decides nothing. In head mode too, a denied object is yielded
 *   as listed (key, size, ETag, last-modified), as list mode yields it.
 * - `none`: the listing only (key, size, ETag, last-modified).
 */
import { availableParallelism } from 'node:os';
import { S3RequestError } from '../client/response.ts';
import type { ObjectResponse, S3Client } from '../client/s3-client.ts';
import { userMetadata } from '../client/user-metadata.ts';
import { LIST_KEYS_MAX } from '../util/limits.ts';
import { scanCredentialProvider, type StaticCredentials } from './credentials.ts';
import { receivePage, type ListedObject, type ReceivedPage, type ScannedPage } from './listing-page.ts';
import { HeadPool } from './head-pool.ts';
import { ListingClient } from './listing-client.ts';
import { ScanRequestSigner } from './request-signer.ts';
import { PROBES_IN_FLIGHT_MAX } from './key-space.ts';
import { listRemainingInParallel, type PageRequest } from './parallel-listing.ts';

export type MetadataMode = 'auto' | 'head' | 'list' | 'none';
export const METADATA_MODES: readonly MetadataMode[] = ['auto', 'head', 'list', 'none'];

export const SCAN_CONCURRENCY_DEFAULT = 64;
/** Key ranges listed at once in list and none modes (see parallel-listing.ts); 1 lists in sequence. */
export const LIST_RANGES_DEFAULT = 4;
export const LIST_RANGES_MAX = 64;
/** More requests in flight than this only queue in the pool (and in the server). */
export const SCAN_CONCURRENCY_MAX = 1024;
/**
 * HEADs pipelined per connection by default when the endpoint is on this
 * host (loopback): the scanner and the server then share the cores, and
 * what a HEAD costs each is mostly reading and writing its few hundred
 * bytes; 8 per connection halved it (10 000 HEADs from 64 in flight, 2
 * shared cores: scanner 73–84 → 43–54 µs, Talus 131–153 → 81–96 µs CPU per
 * HEAD). Since the HEAD pool writes a connection's requests of one turn in
 * one write (head-pool.ts), deeper pipelining saves a little more (cold
 * 10 000-object walks, alternated, medians of 4–6: 8 per connection,
 * scanner 61 and Talus 72 µs per HEAD; 16: 58 and 71; 32: 54 and 66). 16,
 * not 32: 64 in flight would then use 2 connections, 2 of a multi-worker
 * server's workers (since round 6, one per core at least whatever the depth:
 * loopbackHeadConnections). Elsewhere 1: a
 * remote server answers a connection's requests one after the other, so a
 * HEAD waiting on its disk would hold up those behind it.
 */
export const LOOPBACK_PIPELINING_DEFAULT = 16;
/**
 * Connections for the HEADs to an endpoint on this host: enough for
 * `concurrency` HEADs at `pipelining` each, and no fewer than this host's
 * cores (the most a server here runs usefully, `talus server --workers
 * auto`), but never more than one per HEAD in flight. A multi-worker
 * server gives each connection to one worker: 64 in flight at 16 deep on 4
 * connections left a fifth worker and beyond idle. `concurrency` bounds the
 * HEADs in flight either way; the HEAD pool spreads them over these
 * connections before it pipelines (head-pool.ts).
 */
export function loopbackHeadConnections(concurrency: number, pipelining: number, cores: number = availableParallelism()): number {
  return Math.min(concurrency, Math.max(Math.ceil(concurrency / pipelining), cores));
}
/** As the S3Client's PIPELINING_MAX (not imported: see LazyS3Client): a deeper queue on one connection only waits behind its head. */
const PIPELINING_MAX = 64;

export interface ScanOptions {
  /** 'http://127.0.0.1:9000' (scheme, host, port). */
  endpoint: string;
  bucket: string;
  prefix?: string;
  region?: string;
  /** Keys (a session token with temporary ones); default: the AWS SDKs' credential chain (environment, profiles, web identity, ECS, IMDSv2). */
  credentials?: StaticCredentials;
  /** HEAD requests in flight at most (head mode); default 64. */
  concurrency?: number;
  /** HEADs sent on one connection before the earlier ones are answered (HTTP/1.1 pipelining); default LOOPBACK_PIPELINING_DEFAULT on a loopback endpoint, else 1. */
  pipelining?: number;
  /** Default 'auto'. */
  metadata?: MetadataMode;
  /** In list and none modes, key ranges listed at once (the key space split by probing, merged in key order); default 4, 1 lists in sequence. */
  listRanges?: number;
  /** Called about once a second and at the end. */
  onProgress?: (progress: ScanProgress) => void;
  signal?: AbortSignal;
}

export interface ScannedObject {
  key: string;
  size: number;
  /** Without quotes. */
  etag: string;
  /** ISO 8601. */
  lastModified: string;
  /** Absent in 'none' mode. */
  contentType?: string;
  /** x-amz-meta-* names without the prefix, lower-cased; absent in 'none' mode. */
  userMetadata?: Record<string, string>;
  /** Absent in 'none' mode. */
  tags?: Record<string, string>;
}

export interface ScanProgress {
  /** The mode in use ('auto' until an entry listed with metadata decides 'list', or a readable one listed without decides 'head'). */
  mode: MetadataMode;
  objects: number;
  /** Objects listed so far; the total once `listingDone`. */
  listed: number;
  listingDone: boolean;
  elapsedMs: number;
  done: boolean;
}

const PROGRESS_INTERVAL_MS = 1000;
/** Finished HEADs kept waiting for an earlier, slower one, as a multiple of the concurrency (memory: a few KiB each). */
const REORDER_WINDOW_FACTOR = 4;

/** At most `limit` tasks running; the others wait their turn in order. */
class Slots {
  #free: number;
  readonly #waiting: (() => void)[] = [];

  constructor(limit: number) {
    this.#free = limit;
  }

  async run<T>(task: () => Promise<T>): Promise<T> {
    if (this.#free > 0) this.#free--;
    else await new Promise<void>((resolve) => this.#waiting.push(resolve));
    try {
      return await task();
    } finally {
      const next = this.#waiting.shift();
      if (next !== undefined) next();
      else this.#free++;
    }
  }
}

/** Scans a bucket (prefix) and yields each object in key order. */
export async function* scanObjects(options: ScanOptions): AsyncGenerator<ScannedObject, void, undefined> {
  for await (const batch of scanBatches(options)) yield* batch;
}

/**
 * Scans a bucket (prefix) and yields its objects in key order, a batch at a
 * time: a listing page's in list and none modes; in head mode each object
 * as its HEAD (and those before it) is done. One await per page instead of one per
 * object, and a small hot loop per mode: a 10 000-object walk is over
 * before V8 has optimized a large one.
 */
export async function* scanBatches(options: ScanOptions): AsyncGenerator<ScannedObject[], void, undefined> {
  const concurrency = options.concurrency ?? SCAN_CONCURRENCY_DEFAULT;
  if (!Number.isInteger(concurrency) || concurrency < 1 || concurrency > SCAN_CONCURRENCY_MAX) {
    throw new RangeError(`concurrency must be an integer from 1 to ${SCAN_CONCURRENCY_MAX}, not ${concurrency}`);
  }
  const listRanges = options.listRanges ?? LIST_RANGES_DEFAULT;
  if (!Number.isInteger(listRanges) || listRanges < 1 || listRanges > LIST_RANGES_MAX) {
    throw new RangeError(`listRanges must be an integer from 1 to ${LIST_RANGES_MAX}, not ${listRanges}`);
  }
  const requested = options.metadata ?? 'auto';
  if (!METADATA_MODES.includes(requested)) throw new RangeError(`metadata must be one of ${METADATA_MODES.join(', ')}, not ${String(requested)}`);
  const pipelining = options.pipelining ?? (isLoopback(options.endpoint) ? LOOPBACK_PIPELINING_DEFAULT : 1);
  if (!Number.isInteger(pipelining) || pipelining < 1 || pipelining > PIPELINING_MAX) {
    throw new RangeError(`pipelining must be an integer from 1 to ${PIPELINING_MAX}, not ${pipelining}`);
  }
  // Three pools. The listing's: a range or a probe per connection, a page never queued behind HEADs. The HEADs':
  // `pipelining` to a connection, on connections of their own. The listing goes over node:http (listing-client.ts:
  // undici's WebAssembly parser costs a fresh process ~0.1 s of CPU to compile). GetObjectTagging, for the
  // objects HEAD says have tags, through the S3Client, loaded on the first of them (LazyS3Client).
  // HEADs to a plain-http endpoint on this host go over head-pool.ts (one write per connection per turn of the
  // event loop, answers read with a few indexOf: the case measured, where scanner and server share the cores);
  // to any other, through the S3Client as before (pipelining 1 by default, a walk bound by the network, and
  // proxies and load balancers in between, where a hand-written HTTP parser is the riskier one).
  checkEndpoint(options.endpoint);
  const credentials = scanCredentialProvider(options.credentials);
  const headConnections = Math.ceil(concurrency / pipelining);
  const s3Client = new LazyS3Client({ endpoint: options.endpoint, region: options.region, credentials, connections: headConnections, pipelining });
  const signer = new ScanRequestSigner(new URL(options.endpoint).host, options.region ?? 'us-east-1', credentials);
  const listingClient = new ListingClient({ endpoint: options.endpoint, signer, connections: listRanges + PROBES_IN_FLIGHT_MAX });
  const headPool: HeadSource =
    new URL(options.endpoint).protocol === 'http:' && isLoopback(options.endpoint)
      ? new HeadPool({ endpoint: options.endpoint, signer, connections: loopbackHeadConnections(concurrency, pipelining), pipelining, signal: options.signal })
      : { headObject: (bucket, key) => s3Client.headObject(bucket, key, { signal: options.signal }), close: async () => undefined };
  const progress: ScanProgress = { mode: requested, objects: 0, listed: 0, listingDone: false, elapsedMs: 0, done: false };
  const started = performance.now();
  const report = (): void => {
    progress.elapsedMs = performance.now() - started;
    options.onProgress?.({ ...progress });
  };
  const timer = options.onProgress === undefined ? undefined : setInterval(report, PROGRESS_INTERVAL_MS);
  timer?.unref();
  try {
    const listing: ListingState = { metadataSeen: false };
    const pages = listPages(listingClient, options, progress, listing);
    // Head mode: HEADs are queued in key order and yielded in that order; at most `concurrency` are in flight,
    // and up to REORDER_WINDOW_FACTOR x that many wait finished behind a slow one, so one slow HEAD does not idle the rest.
    const window: WindowEntry[] = [];
    const slots = new Slots(concurrency);
    for await (const page of pages) {
      const batch: ScannedObject[] = [];
      if (progress.mode === 'list' && window.length === 0) {
        listedBatch(page, listing, batch);
      } else {
        for (const object of page.objects) {
          // 'auto' turned 'list' behind HEADs still in flight: those come first, in key order.
          if ((progress.mode === 'list' || progress.mode === 'none') && window.length > 0) {
            while (window.length > 0) {
              const done = await window.shift()!.promise;
              if (done !== undefined) batch.push(done);
            }
          }
          if (progress.mode === 'none') {
            batch.push(listedOnly(object));
          } else if (progress.mode === 'list') {
            batch.push(listedObject(object, listing));
          } else {
            // Head mode, or 'auto' undecided: a HEAD that succeeds on an entry listed without metadata decides 'head'.
            const entry: WindowEntry = { promise: undefined!, answered: false, object: undefined };
            entry.promise = slots.run(async () => {
              const headed = await headObject(headPool, s3Client, options, object);
              if (progress.mode === 'auto' && headed?.userMetadata !== undefined) progress.mode = 'head'; // read, not listed-only
              entry.object = headed;
              entry.answered = true;
              return headed;
            });
            // Awaited in order later; a failure meanwhile must not count as unhandled.
            entry.promise.catch(() => undefined);
            window.push(entry);
            if (window.length >= concurrency * REORDER_WINDOW_FACTOR) {
              const done = await window.shift()!.promise;
              if (done !== undefined) batch.push(done);
              // Handed over at once, as it comes, with those behind it already answered (answers arrive several
              // to a read): a caller acting on each object (or a person watching) should not wait for the rest
              // of the page, and a yield (and the CLI's write) per object cost more than one per run of them.
              takeAnswered(window, batch);
              if (batch.length > 0) yield countOf(progress, batch.splice(0));
            }
          }
        }
      }
      if (batch.length > 0) yield countOf(progress, batch);
    }
    while (window.length > 0) {
      const batch: ScannedObject[] = [];
      const done = await window.shift()!.promise;
      if (done !== undefined) batch.push(done);
      takeAnswered(window, batch);
      if (batch.length > 0) yield countOf(progress, batch);
    }
  } finally {
    if (timer !== undefined) clearInterval(timer);
    progress.done = true;
    report();
    await Promise.all([listingClient.close(), s3Client.close(), headPool.close()]);
  }
}

/** The S3Client's rule (http or https; scheme, host and port only), checked before any request. */
function checkEndpoint(endpoint: string): void {
  const url = new URL(endpoint);
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new TypeError(`endpoint must be http(s): ${endpoint}`);
  if (url.pathname !== '/' || url.search !== '' || url.username !== '') throw new TypeError(`endpoint takes no path, query or user: ${endpoint}`);
}

/** Where a head walk's HEADs go: head-pool.ts, or the S3Client. */
interface HeadSource {
  headObject(bucket: string, key: string): Promise<ObjectResponse>;
  close(): Promise<void>;
}

/**
 * GetObjectTagging, for the objects HEAD says have tags, and HEADs to an
 * endpoint the HEAD pool does not serve, through an S3Client made on the
 * first of them. Not before: importing the S3Client loads undici,
 * which touches the global Headers and so has node load its own undici and
 * compile that one's WebAssembly HTTP parser (~0.1 s of CPU on background
 * threads), which a walk without tags never needs.
 */
class LazyS3Client {
  readonly #options: ConstructorParameters<typeof S3Client>[0];
  #client: Promise<S3Client> | undefined;

  constructor(options: ConstructorParameters<typeof S3Client>[0]) {
    this.#options = options;
  }

  async headObject(bucket: string, key: string, options: { signal?: AbortSignal }): Promise<ObjectResponse> {
    return (await this.#loaded()).headObject(bucket, key, options);
  }

  async getObjectTagging(bucket: string, key: string, options: { signal?: AbortSignal }): Promise<{ key: string; value: string }[]> {
    return (await this.#loaded()).getObjectTagging(bucket, key, options);
  }

  #loaded(): Promise<S3Client> {
    this.#client ??= import('../client/s3-client.ts').then(({ S3Client }) => new S3Client(this.#options));
    return this.#client;
  }

  async close(): Promise<void> {
    if (this.#client !== undefined) await (await this.#client).close();
  }
}

/** 127.0.0.0/8, ::1 or localhost: the server runs on this host. */
export function isLoopback(endpoint: string): boolean {
  const host = new URL(endpoint).hostname;
  return host === 'localhost' || host === '[::1]' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}

/** A HEAD in head mode's reorder window: awaited in key order; `object` set once answered, to be taken without an await. */
interface WindowEntry {
  promise: Promise<ScannedObject | undefined>;
  answered: boolean;
  /** Undefined when answered too: the object was deleted since it was listed. */
  object: ScannedObject | undefined;
}

/** Moves the HEADs at the front of the window that are answered already into `batch`, in order. */
function takeAnswered(window: WindowEntry[], batch: ScannedObject[]): void {
  while (window.length > 0 && window[0]!.answered) {
    const { object } = window.shift()!;
    if (object !== undefined) batch.push(object);
  }
}

function countOf(progress: ScanProgress, batch: ScannedObject[]): ScannedObject[] {
  progress.objects += batch.length;
  return batch;
}

/** A list-mode page's objects, appended to `batch`: a small loop of its own, the hot path of a list-mode scan. */
function listedBatch(page: ScannedPage, listing: ListingState, batch: ScannedObject[]): void {
  for (const object of page.objects) batch.push(listedObject(object, listing));
}

function listedObject(object: ListedObject, listing: ListingState): ScannedObject {
  if (object.listedMetadata !== undefined) return withListedMetadata(object);
  // The server lists metadata, just not this object's: the caller may list it but not read it (Talus judges
  // each entry as a GetObject), so it comes as a listing shows it.
  if (listing.metadataSeen) return listedOnly(object);
  throw new Error(`the server listed ${object.key} without its metadata: it does not support metadata=true listings (use --metadata head)`);
}

/**
 * The listing's pages in key order. Decides 'auto' from the first object
 * listed, and asks for metadata while the mode is list or auto. In list and
 * none modes, where the listing is the whole scan, the keys after the first
 * page are split into up to `listRanges` ranges listed at once
 * (parallel-listing.ts); in head mode the HEADs are the work, and the pages
 * come one at a time, each next one requested before the current one is
 * handed over (so listing overlaps the caller's work).
 */
/** What the pages showed so far: whether any entry carried metadata (the server answers metadata=true). */
interface ListingState {
  metadataSeen: boolean;
}

/**
 * Notes a page's metadata and decides 'auto' for list if any entry carries
 * metadata. A page without any does not decide 'head' by itself: Talus lists
 * an entry plainly when the caller may list it but not read it, so 'auto'
 * HEADs those entries and decides 'head' only when a HEAD succeeds (a
 * readable object listed without metadata: the server ignores metadata=true).
 */
function notePage(page: ScannedPage, progress: ScanProgress, listing: ListingState): void {
  if (!listing.metadataSeen && page.objects.some((object) => object.listedMetadata !== undefined)) listing.metadataSeen = true;
  if (progress.mode === 'auto' && listing.metadataSeen) progress.mode = 'list';
}

async function* listPages(client: ListingClient, options: ScanOptions, progress: ScanProgress, listing: ListingState): AsyncGenerator<ScannedPage> {
  const prefix = options.prefix ?? '';
  const fetchPage = async (request: PageRequest): Promise<ReceivedPage> => {
    const metadata = progress.mode === 'list' || progress.mode === 'auto';
    const xml = await client.listObjectsV2Document(options.bucket, { prefix: prefix === '' ? undefined : prefix, ...request, metadata }, { signal: options.signal });
    return receivePage(xml);
  };
  /** The page after `page`, asked for the moment `page` arrives (before it is read, so the server renders one while the scan reads the other). */
  const pageAfter = (page: ReceivedPage): Promise<ReceivedPage> | undefined => {
    if (page.isTruncated && page.nextContinuationToken === undefined) throw new Error('ListObjectsV2: a truncated page without a NextContinuationToken');
    if (!page.isTruncated) return undefined;
    const next = fetchPage({ continuationToken: page.nextContinuationToken!, maxKeys: LIST_KEYS_MAX });
    // Not awaited until the page before is handed over; a failure meanwhile must not count as unhandled.
    next.catch(() => undefined);
    return next;
  };
  const firstReceived = await fetchPage({ maxKeys: LIST_KEYS_MAX });
  let next = pageAfter(firstReceived);
  const first = firstReceived.read();
  notePage(first, progress, listing);
  progress.listed += first.objects.length;
  const ranges = options.listRanges ?? LIST_RANGES_DEFAULT;
  if (next !== undefined && ranges > 1 && (progress.mode === 'list' || progress.mode === 'none')) {
    const rest = listRemainingInParallel(first, {
      ranges,
      prefix,
      pageKeysMax: LIST_KEYS_MAX,
      fetch: fetchPage,
      second: next,
      probe: async (startAfter) => {
        const xml = await client.listObjectsV2Document(options.bucket, { prefix: prefix === '' ? undefined : prefix, startAfter, maxKeys: 1 }, { signal: options.signal });
        return receivePage(xml).lastKey;
      },
      onPage: (page) => {
        progress.listed += page.objects.length;
        notePage(page, progress, listing);
      },
      onListingDone: () => (progress.listingDone = true),
    });
    yield first;
    yield* rest;
    return;
  }
  let page = first;
  for (;;) {
    if (next === undefined) progress.listingDone = true;
    yield page;
    if (next === undefined) return;
    const received = await next;
    next = pageAfter(received);
    page = received.read();
    notePage(page, progress, listing);
    progress.listed += page.objects.length;
  }
}

function listedOnly(object: ListedObject): ScannedObject {
  return { key: object.key, size: object.size, etag: object.etag, lastModified: object.lastModified };
}

function withListedMetadata(object: ListedObject): ScannedObject {
  const metadata = object.listedMetadata!;
  // One literal, in the same field order as head mode's objects (one hidden class for both).
  return { key: object.key, size: object.size, etag: object.etag, lastModified: object.lastModified, contentType: metadata.contentType, userMetadata: metadata.userMetadata, tags: metadata.tags };
}

/**
 * The object's metadata by HEAD; undefined when it was deleted since it was
 * listed (a live bucket's scan skips it, as a listing taken a moment later
 * would). An object the caller may list but not read (403) comes as the
 * listing shows it, as list mode gives it; one whose HEAD is allowed but
 * whose tags are not comes without tags.
 */
async function headObject(heads: HeadSource, client: LazyS3Client, options: ScanOptions, object: ListedObject): Promise<ScannedObject | undefined> {
  let headers: Record<string, string>;
  try {
    ({ headers } = await heads.headObject(options.bucket, object.key));
  } catch (error) {
    if (error instanceof S3RequestError && error.status === 404) return undefined;
    if (error instanceof S3RequestError && error.status === 403) return listedOnly(object);
    throw error;
  }
  const tagCount = Number(headers['x-amz-tagging-count'] ?? '0');
  const tags: Record<string, string> = {};
  try {
    if (tagCount > 0) for (const tag of await client.getObjectTagging(options.bucket, object.key, { signal: options.signal })) tags[tag.key] = tag.value;
  } catch (error) {
    if (error instanceof S3RequestError && error.status === 404) return undefined;
    if (error instanceof S3RequestError && error.status === 403) {
      return { key: object.key, size: object.size, etag: object.etag, lastModified: object.lastModified, contentType: headers['content-type'], userMetadata: userMetadata(headers) };
    }
    throw error;
  }
  return { key: object.key, size: object.size, etag: object.etag, lastModified: object.lastModified, contentType: headers['content-type'], userMetadata: userMetadata(headers), tags };
}
