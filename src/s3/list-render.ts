/**
 * The entries of a ListObjects (v1, v2) or ListObjectVersions page as XML
 * bytes: `<Contents>`, `<Version>`, `<DeleteMarker>` and `<CommonPrefixes>`,
 * in order. One function renders them on the event loop (PostgreSQL, or no
 * listing thread ready) and on a SQLite listing thread, which imports this
 * module by its URL (`LISTING_RENDERER_URL`, handed to the store by the
 * composition root: the store never imports the S3 layer), so both give the
 * same bytes. On a thread the event loop receives one transferred buffer
 * instead of a thousand entries to receive, render and encode (issue 17).
 *
 * Pure: no request context. What needs the caller's state is left out or
 * passed in: an entry's `<Owner>` (display names live in the principal
 * directory) is a hole the event loop fills (`withOwners`), and a
 * `metadata=true` entry's metadata (judged per object by authorization) is
 * rendered by a callback, only on the event loop.
 */
import { SPARE_PAGE_BUFFER_BYTES_MAX } from '../meta/metadata-store.ts';
import type { KeysPageRenderer, ListedContents, ListedVersion, ListResult, ListVersionsResult, PageRenderer, PageRendering, RenderedPage } from '../meta/metadata-store.ts';
import { escapeXml } from '../http/xml.ts';
import { assert } from '../util/assert.ts';

/** This module's own URL (.ts from the sources, .js from dist/), for the listing threads to import. */
export const LISTING_RENDERER_URL = import.meta.url;

/** `metadata=true`: the metadata a caller may see of a listed version ('' when none or not allowed); `latest`: it is the key's current version. */
export type ListedMetadataXml = (version: ListedVersion, latest: boolean) => string;

/** What encodeURIComponent leaves as it is, and '/': most keys are made of these alone. */
const URL_SAFE_NAME = /^[A-Za-z0-9\-_.!~*'()/]*$/;

/** encoding-type=url: names percent-encoded so keys with characters XML cannot carry survive; S3 leaves '/' readable. */
export function urlEncodeName(text: string): string {
  if (URL_SAFE_NAME.test(text)) return text;
  return encodeURIComponent(text).replaceAll('%2F', '/');
}

/**
 * A name as it stands in the XML: URL-encoded or not, then escaped. Most
 * keys of an encoding-type=url page need neither (what URL_SAFE_NAME allows
 * but "'", which XML escapes): one test instead of two per key.
 */
type NameXml = (name: string) => string;

const URL_AND_XML_SAFE_NAME = /^[A-Za-z0-9\-_.!~*()/]*$/;

function urlEncodedNameXml(name: string): string {
  return URL_AND_XML_SAFE_NAME.test(name) ? name : escapeXml(urlEncodeName(name));
}

function nameXmlFor(rendering: PageRendering): NameXml {
  return rendering.encodeUrl ? urlEncodedNameXml : escapeXml;
}

const STORAGE_CLASS_XML = '<StorageClass>STANDARD</StorageClass>';

/**
 * ISO 8601 with milliseconds, as `Date.toISOString` writes it, from a cache of
 * the text up to the second: the keys of a page were mostly written within a
 * few seconds, and formatting a Date per key was a tenth of a page's time.
 */
let listingSecond = { second: NaN, text: '' };

export function listingDateOf(ms: number): string {
  const second = Math.floor(ms / 1000);
  if (second !== listingSecond.second) {
    const iso = new Date(second * 1000).toISOString();
    listingSecond = { second, text: iso.slice(0, iso.length - 4) };
  }
  const millis = ms - second * 1000;
  return `${listingSecond.text}${millis < 10 ? '00' : millis < 100 ? '0' : ''}${millis}Z`;
}

/**
 * Text is encoded in segments of about this many characters, each as soon
 * as it is cut: V8 appends to a string by linking the pieces (a rope), and
 * flattening one of ~200 K characters built from ~10 000 pieces cost more
 * than building it (a 1000-key page: ~0.23 ms to flatten, ~0.15 ms to
 * build), while ropes of a few KiB flatten in a fraction. Encoded at once,
 * a segment's strings die young: a listing thread's small nursery
 * (listing-threads.ts) is not spent copying a whole page's text to keep it.
 */
const SEGMENT_CHARS = 8 * 1024;
/** A page's first buffer; it doubles as needed (a 1000-key page is ~200 KiB). */
const PAGE_BYTES_INITIAL = 16 * 1024;
/** The most UTF-8 bytes one UTF-16 code unit encodes to (a surrogate pair: 4 bytes for 2 units). */
const UTF8_BYTES_PER_UNIT_MAX = 3;
/**
 * Bytes a page's buffer leaves free before its entries and after them, so
 * the event loop writes the document's head and end around the entries in
 * place (listingDocument) instead of copying a ~200 KB page into a new
 * buffer: the copy and its garbage, external memory that brought V8's
 * mark-compacts every ~30 pages on the event loop. A head is a few hundred
 * bytes; a longer one (a long prefix or token) takes the copy.
 */
const PAGE_HEADROOM_BYTES = 1024;
const PAGE_TAILROOM_BYTES = 64;

/**
 * Page buffers a listing thread keeps for its next pages, handed back by the
 * event loop once a page's bytes were written to its socket
 * (RenderedPage.recycle, listing-threads.ts). Without them every page was a
 * new ~272 KiB buffer transferred to the event loop: external memory that
 * brought V8's mark-compacts there every ~100 pages (docs/PERFORMANCE.md,
 * "Listing, round 5b"). A thread renders one page at a time and has at most
 * POSTED_PER_THREAD_MAX (2) posted: a few cover the pages being written
 * meanwhile; more would only be resident memory.
 */
const SPARE_PAGE_BUFFERS_MAX = 4;
assert(SPARE_PAGE_BUFFER_BYTES_MAX > PAGE_HEADROOM_BYTES + 2 * 1024 * 1024, 'a 1000-key page of 1 KiB keys fits a spare');

/**
 * A thread's spare page buffers, `capacity` at most. A page's size is known
 * only once it is rendered, so `take` gives the largest spare: it fits every
 * page a smaller one fits (taking the last one back, whatever its size, had
 * a large page outgrow a small spare and drop it, while a larger one waited).
 * When full, a larger buffer offered replaces the smallest spare. A spare a
 * page outgrew is offered back (PageWriter): never dropped for being small.
 */
export class PageBufferPool {
  readonly #spares: ArrayBuffer[] = [];
  readonly #capacity: number;

  constructor(capacity: number) {
    assert(Number.isInteger(capacity) && capacity >= 1, 'a page buffer pool holds one buffer or more');
    this.#capacity = capacity;
  }

  get size(): number {
    return this.#spares.length;
  }

  /** Keeps `buffer` if it is a page buffer's size and the pool has room, or it is larger than the smallest spare (that spare is then dropped); whether kept. */
  offer(buffer: ArrayBuffer): boolean {
    // A detached buffer (byteLength 0) or one not from a PageWriter would be a bug upstream: never pooled.
    if (buffer.byteLength < PAGE_HEADROOM_BYTES + PAGE_BYTES_INITIAL || buffer.byteLength > SPARE_PAGE_BUFFER_BYTES_MAX) return false;
    if (this.#spares.includes(buffer)) return false; // offered twice would hand one buffer to two pages
    if (this.#spares.length < this.#capacity) {
      this.#spares.push(buffer);
      return true;
    }
    const smallest = this.#indexBy((a, b) => a < b);
    if (this.#spares[smallest]!.byteLength >= buffer.byteLength) return false;
    this.#spares[smallest] = buffer;
    return true;
  }

  /** The largest spare, removed from the pool; undefined when empty. */
  take(): ArrayBuffer | undefined {
    if (this.#spares.length === 0) return undefined;
    const largest = this.#indexBy((a, b) => a > b);
    const buffer = this.#spares[largest]!;
    this.#spares[largest] = this.#spares.at(-1)!;
    this.#spares.pop();
    return buffer;
  }

  /** The index of the spare whose size beats every other's by `better` (the first of equals). */
  #indexBy(better: (a: number, b: number) => boolean): number {
    let best = 0;
    for (let index = 1; index < this.#spares.length; index++) if (better(this.#spares[index]!.byteLength, this.#spares[best]!.byteLength)) best = index;
    return best;
  }
}

/** This thread's pool (a listing thread's; on the event loop it stays empty: pages rendered there are never handed back). */
export const sparePageBuffers = new PageBufferPool(SPARE_PAGE_BUFFERS_MAX);

/** Takes page buffers back (see SPARE_PAGE_BUFFERS_MAX); those the pool does not keep are left to the garbage collector. */
export function reusePageBuffers(buffers: readonly ArrayBuffer[]): void {
  for (const buffer of buffers) sparePageBuffers.offer(buffer);
}

/**
 * The page's bytes, with a hole at each owner's place: the owner
 * holeOwners[i] goes at byte holeAt[i]. Text is appended to a string and
 * encoded into the buffer every SEGMENT_CHARS and at each hole.
 */
class PageWriter {
  #text = '';
  /** A spare page buffer, else a new one (never node's shared pool: a listing thread transfers the memory, and listingDocument writes around the page). */
  #spare = sparePageBuffers.take();
  #buffer = this.#spare === undefined ? Buffer.allocUnsafeSlow(PAGE_HEADROOM_BYTES + PAGE_BYTES_INITIAL) : Buffer.from(this.#spare);
  #length = PAGE_HEADROOM_BYTES;
  readonly #holeAt: number[] = [];
  readonly #holeOwners: number[] = [];
  readonly #owners: string[] = [];
  readonly #ownerIndex = new Map<string, number>();

  write(text: string): void {
    this.#text += text;
    if (this.#text.length >= SEGMENT_CHARS) this.#encode();
  }

  owner(ownerId: string): void {
    this.#encode();
    let index = this.#ownerIndex.get(ownerId);
    if (index === undefined) {
      index = this.#owners.length;
      this.#owners.push(ownerId);
      this.#ownerIndex.set(ownerId, index);
    }
    this.#holeAt.push(this.#length - PAGE_HEADROOM_BYTES);
    this.#holeOwners.push(index);
  }

  #encode(): void {
    const text = this.#text;
    if (text === '') return;
    this.#text = '';
    this.#reserve(text.length * UTF8_BYTES_PER_UNIT_MAX);
    this.#length += this.#buffer.write(text, this.#length, 'utf8');
  }

  #reserve(bytes: number): void {
    const needed = this.#length + bytes;
    if (needed <= this.#buffer.length) return;
    const grown = Buffer.allocUnsafeSlow(Math.max(needed, this.#buffer.length * 2));
    this.#buffer.copy(grown, 0, 0, this.#length);
    this.#buffer = grown;
    // An outgrown spare goes back for a smaller page (nothing else holds it: this page's bytes are in `grown` now).
    if (this.#spare !== undefined) sparePageBuffers.offer(this.#spare);
    this.#spare = undefined;
  }

  /**
   * The UTF-8 bytes, PAGE_HEADROOM_BYTES into a buffer of their own with at
   * least PAGE_TAILROOM_BYTES free after them, and the holes' byte offsets.
   */
  finish(): Pick<RenderedPage, 'bytes' | 'ownerAt' | 'ownerIndex' | 'owners' | 'bufferReused'> {
    this.#encode();
    this.#reserve(PAGE_TAILROOM_BYTES);
    // A plain Uint8Array: postMessage transfers a Buffer's memory several times slower than a plain view's (measured 333 vs 60 µs for 200 KB).
    const bytes = new Uint8Array(this.#buffer.buffer, PAGE_HEADROOM_BYTES, this.#length - PAGE_HEADROOM_BYTES);
    return { bytes, ownerAt: Uint32Array.from(this.#holeAt), ownerIndex: Uint32Array.from(this.#holeOwners), owners: this.#owners, ...(this.#spare === undefined ? {} : { bufferReused: true }) };
  }
}

function commonPrefixXml(prefix: string, nameXml: NameXml): string {
  return `<CommonPrefixes><Prefix>${nameXml(prefix)}</Prefix></CommonPrefixes>`;
}

/**
 * One `<Contents>`, on the hot path of a 1000-key page: the date, the size
 * and the quoted ETag need no escaping pass of their own (an ETag is hex,
 * escaped once for safety, its quotes written as entities).
 */
function writeContents(out: PageWriter, version: ListedContents, nameXml: NameXml, owners: boolean, metadataXml: ((version: ListedContents, latest: boolean) => string) | undefined): void {
  const checksum = version.checksum === null ? '' : `<ChecksumAlgorithm>${escapeXml(version.checksum.algorithm)}</ChecksumAlgorithm><ChecksumType>${escapeXml(version.checksum.type)}</ChecksumType>`;
  out.write(
    `<Contents><Key>${nameXml(version.key)}</Key><LastModified>${listingDateOf(version.lastModifiedMs)}</LastModified><ETag>&quot;${escapeXml(version.etag)}&quot;</ETag>${checksum}<Size>${version.sizeBytes}</Size>`,
  );
  if (owners) out.owner(version.ownerId);
  out.write(`${STORAGE_CLASS_XML}${metadataXml === undefined ? '' : metadataXml(version, true)}</Contents>`);
}

/** One `<Version>` or `<DeleteMarker>`; ListObjectVersions always shows owners. */
function writeVersion(out: PageWriter, version: ListedVersion, isLatest: boolean, nameXml: NameXml, metadataXml: ListedMetadataXml | undefined): void {
  const common = `<Key>${nameXml(version.key)}</Key><VersionId>${escapeXml(version.versionId)}</VersionId><IsLatest>${isLatest}</IsLatest><LastModified>${listingDateOf(version.lastModifiedMs)}</LastModified>`;
  if (version.isDeleteMarker) {
    out.write(`<DeleteMarker>${common}`);
    out.owner(version.ownerId);
    out.write('</DeleteMarker>');
    return;
  }
  out.write(`<Version>${common}<ETag>&quot;${escapeXml(version.etag)}&quot;</ETag><Size>${version.sizeBytes}</Size>`);
  out.owner(version.ownerId);
  out.write(`${STORAGE_CLASS_XML}${metadataXml === undefined ? '' : metadataXml(version, isLatest)}</Version>`);
}

/** Renders a page's entries; `metadataXml` only on the event loop (metadata=true listings are not rendered on threads). */
export function renderListingPage(listing: Parameters<PageRenderer>[0], rendering: PageRendering): RenderedPage;
export function renderListingPage(listing: { kind: 'keys'; result: ListResult } | { kind: 'versions'; result: ListVersionsResult }, rendering: PageRendering, metadataXml: ListedMetadataXml | undefined): RenderedPage;
export function renderListingPage(listing: Parameters<PageRenderer>[0], rendering: PageRendering, metadataXml?: ListedMetadataXml): RenderedPage {
  // With metadata the entries are whole ListedVersions (the overload above): the callback reads their metadata.
  const contentsMetadataXml = metadataXml as ((version: ListedContents, latest: boolean) => string) | undefined;
  const nameXml = nameXmlFor(rendering);
  const out = new PageWriter();
  let lastKey: string | undefined;
  let lastVersionId: string | undefined;
  if (listing.kind === 'keys') {
    for (const entry of listing.result.entries) {
      if (entry.version === undefined) out.write(commonPrefixXml(entry.key, nameXml));
      else writeContents(out, entry.version, nameXml, rendering.owners, contentsMetadataXml);
    }
    lastKey = listing.result.entries.at(-1)?.key;
  } else {
    for (const entry of listing.result.entries) {
      if (entry.version === undefined) out.write(commonPrefixXml(entry.key, nameXml));
      else writeVersion(out, entry.version, entry.isLatest, nameXml, metadataXml);
    }
    const last = listing.result.entries.at(-1);
    lastKey = last?.key;
    lastVersionId = last?.version?.versionId;
  }
  return { ...out.finish(), entries: listing.result.entries.length, isTruncated: listing.result.isTruncated, lastKey, lastVersionId };
}

/** What a listing thread runs (see listing-thread.ts). */
export const renderPage: PageRenderer = (listing, rendering) => renderListingPage(listing, rendering);

/** renderListingPage of a key page without metadata, entry by entry: what a listing thread runs for ListObjects pages. */
export const renderKeysPage: KeysPageRenderer = (rendering) => {
  const nameXml = nameXmlFor(rendering);
  const out = new PageWriter();
  let entries = 0;
  let lastKey: string | undefined;
  return {
    add(entry) {
      if (entry.version === undefined) out.write(commonPrefixXml(entry.key, nameXml));
      else writeContents(out, entry.version, nameXml, rendering.owners, undefined);
      entries++;
      lastKey = entry.key;
    },
    finish: (isTruncated) => ({ ...out.finish(), entries, isTruncated, lastKey, lastVersionId: undefined }),
  };
};

/**
 * The whole document: `head`, the page's entries with each owner hole filled
 * by `ownerXml` (called once per distinct owner), then `tail`. Without owners
 * the head and tail are written into the room PageWriter left around the
 * entries, when they fit: no copy of the page (every RenderedPage comes from
 * a PageWriter, whose buffer is its own, transferred or not).
 */
export function listingDocumentBytes(page: RenderedPage, ownerXml: (ownerId: string) => string, head: string, tail: string): Buffer {
  const headBytes = Buffer.byteLength(head, 'utf8');
  const tailBytes = Buffer.byteLength(tail, 'utf8');
  const { bytes } = page;
  const whole = Buffer.from(bytes.buffer, 0, bytes.buffer.byteLength);
  const end = bytes.byteOffset + bytes.byteLength;
  if (page.ownerAt.length === 0 && bytes.byteOffset === PAGE_HEADROOM_BYTES && headBytes <= bytes.byteOffset && whole.length - end >= tailBytes) {
    const start = bytes.byteOffset - headBytes;
    whole.write(head, start, 'utf8');
    whole.write(tail, end, 'utf8');
    return whole.subarray(start, end + tailBytes);
  }
  const entries = fillOwners(page, ownerXml);
  const document = Buffer.allocUnsafe(headBytes + entries.length + tailBytes);
  document.write(head, 0, 'utf8');
  entries.copy(document, headBytes);
  document.write(tail, headBytes + entries.length, 'utf8');
  return document;
}

/** The page's bytes with each owner hole filled by `ownerXml` (called once per distinct owner). */
export function fillOwners(page: RenderedPage, ownerXml: (ownerId: string) => string): Buffer {
  const bytes = Buffer.from(page.bytes.buffer, page.bytes.byteOffset, page.bytes.byteLength);
  if (page.ownerAt.length === 0) return bytes;
  const owners = page.owners.map((ownerId) => Buffer.from(ownerXml(ownerId), 'utf8'));
  let total = bytes.length;
  for (const index of page.ownerIndex) total += owners[index]!.length;
  const filled = Buffer.allocUnsafe(total);
  let from = 0;
  let to = 0;
  for (let hole = 0; hole < page.ownerAt.length; hole++) {
    const at = page.ownerAt[hole]!;
    to += bytes.copy(filled, to, from, at);
    to += owners[page.ownerIndex[hole]!]!.copy(filled, to);
    from = at;
  }
  to += bytes.copy(filled, to, from);
  return filled;
}
