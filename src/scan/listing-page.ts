/**
 * A ListObjectsV2 page as `talus scan` needs it: every <Contents> with key,
 * size, ETag and last-modified and, when the server answered `metadata=true`
 * (MinIO, Talus), the <UserMetadata> and <UserTags> of each. Scanned, not
 * parsed (a general parser takes ~25 ms a page, more than the server spends
 * on it). A document with comments or CDATA sections is first rewritten
 * without them (CDATA as escaped text); one whose shape the scan does not
 * expect (pretty-printed metadata, say) goes through fast-xml-parser. Both
 * readers decode escapes with the same function (decodeXmlEntities: the five
 * named ones, decimal and hex character references), so a page reads the
 * same whichever reads it.
 */
import { XMLParser } from 'fast-xml-parser';
import { decodeXmlEntities, needsFullParser, xmlElementText } from '../client/xml-text.ts';

export interface ListedObject {
  key: string;
  size: number;
  /** Without quotes. */
  etag: string;
  /** ISO 8601, as listed. */
  lastModified: string;
  /** Present when the page carried <UserMetadata> for this entry. */
  listedMetadata?: ListedObjectMetadata;
}

export interface ListedObjectMetadata {
  contentType: string | undefined;
  /** x-amz-meta-* names without the prefix, lower-cased. */
  userMetadata: Record<string, string>;
  tags: Record<string, string>;
}

export interface ScannedPage {
  objects: ListedObject[];
  isTruncated: boolean;
  nextContinuationToken: string | undefined;
}

const USER_METADATA_PREFIX = 'x-amz-meta-';

/**
 * A page as it arrived: what a listing needs to ask for the next page, read
 * with a few indexOf before the entries are, so the next request can be on
 * its way (and the server rendering it) while this page is read.
 */
export interface ReceivedPage {
  readonly isTruncated: boolean;
  readonly nextContinuationToken: string | undefined;
  /** The last entry's key; undefined on a page without entries. */
  readonly lastKey: string | undefined;
  /** The entries: the costly part (~2 ms per 1000 entries in a warm process). */
  read(): ScannedPage;
}

export function parseScannedPage(document: string): ScannedPage {
  return receivePage(document).read();
}

export function receivePage(document: string): ReceivedPage {
  if (!document.includes('<ListBucketResult')) throw new Error('ListObjectsV2: the response is no ListBucketResult');
  // One pass for the common page, which has neither comments nor CDATA (needsFullParser makes two).
  const xml = document.includes('<!') && needsFullParser(document) ? withoutCommentsOrCdata(document) : document;
  const encoded = xmlElementText(xml, 'EncodingType') === 'url';
  const token = xmlElementText(xml, 'NextContinuationToken');
  const isTruncated = xmlElementText(xml, 'IsTruncated') === 'true';
  const nextContinuationToken = token === '' ? undefined : token;
  const lastEntry = xml.lastIndexOf('<Contents>');
  const lastKey = lastEntry === -1 ? undefined : xmlElementText(xml, 'Key', lastEntry);
  return {
    isTruncated,
    nextContinuationToken,
    lastKey: lastKey === undefined ? undefined : decodeName(lastKey, encoded),
    read: () => ({ objects: scanContents(xml, encoded) ?? parseContentsFully(xml, encoded), isTruncated, nextContinuationToken }),
  };
}

/**
 * Where the next `<name>` of a page is, remembered between entries: an
 * element an entry lacks (<UserMetadata> of an entry the caller may not
 * read, <UserTags> of an untagged one) is searched once for the rest of the
 * page, not once per entry (which would read the page to its end 1000 times).
 */
class NextElement {
  readonly #open: string;
  readonly #close: string;
  #at = -1;
  #searchedFrom = -1;

  constructor(name: string) {
    this.#open = `<${name}>`;
    this.#close = `</${name}>`;
  }

  /** The raw text of this element if it opens in [from, until), else undefined. */
  textIn(xml: string, from: number, until: number): string | undefined {
    const start = this.startIn(xml, from, until);
    if (start === -1) return undefined;
    const end = xml.indexOf(this.#close, start);
    if (end === -1 || end > until) throw new Error(`ListObjectsV2: ${this.#open} is not closed`);
    return xml.slice(start, end);
  }

  /** Where the text of this element starts if it opens in [from, until), else -1. */
  startIn(xml: string, from: number, until: number): number {
    if (this.#at < from && this.#searchedFrom < from) {
      this.#at = xml.indexOf(this.#open, from);
      this.#searchedFrom = from;
      if (this.#at === -1) this.#at = xml.length;
    }
    return this.#at < until ? this.#at + this.#open.length : -1;
  }
}

/** What a <UserMetadata> child is to the scan: the content type, a user metadata entry (its name), or neither (''). */
const CONTENT_TYPE = 'content-type';
/** Metadata element names as the scan reads them, memoized: a page repeats the same few names on every entry. Bounded, since names come from the server. */
const metadataFields = new Map<string, string>();
const METADATA_FIELDS_CACHED_MAX = 1024;

/** CONTENT_TYPE, a user metadata name ('X-Amz-Meta-Owner' -> 'owner'), or '' for another system header. */
function metadataField(name: string): string {
  let field = metadataFields.get(name);
  if (field === undefined) {
    const lower = name.toLowerCase();
    field = lower === CONTENT_TYPE ? CONTENT_TYPE : lower.startsWith(USER_METADATA_PREFIX) ? lower.slice(USER_METADATA_PREFIX.length) : '';
    if (metadataFields.size >= METADATA_FIELDS_CACHED_MAX) metadataFields.clear();
    metadataFields.set(name, field);
  }
  return field;
}

/**
 * The <UserMetadata> children of the page's entries, by position: entries
 * of one page mostly carry the same names in the same order, so a child is
 * first compared in place with the name the entry before had there (no
 * slice, no hash: slicing and looking up each name was ~5 % of a warm
 * walk's CPU); a different name is sliced and looked up, and remembered.
 */
class MetadataChildren {
  readonly #known: MetadataChild[] = [];
  /** The child `open` last read (no object per child: this is the hot loop of a list-mode scan). */
  name = '';
  field = '';

  /** Reads the tag of the child whose `<` is at `at` into `name` and `field` (metadataField); returns where its text starts, or -1 if the tag is not closed before `until`. */
  open(xml: string, at: number, position: number, until: number): number {
    const known = this.#known[position];
    if (known !== undefined && at + known.open.length <= until && xml.startsWith(known.open, at)) {
      this.name = known.name;
      this.field = known.field;
      return at + known.open.length;
    }
    const nameEnd = xml.indexOf('>', at);
    if (nameEnd === -1 || nameEnd > until) return -1;
    const name = xml.slice(at + 1, nameEnd);
    const child: MetadataChild = { open: `<${name}>`, name, field: metadataField(name) };
    if (position < METADATA_POSITIONS_KNOWN_MAX) this.#known[position] = child;
    this.name = name;
    this.field = child.field;
    return nameEnd + 1;
  }
}

interface MetadataChild {
  /** '<X-Amz-Meta-Owner>' */
  open: string;
  name: string;
  field: string;
}

/** Positions remembered per page (a server may list any number of metadata entries). */
const METADATA_POSITIONS_KNOWN_MAX = 64;

/** A listed ETag's text without its quotes: '&quot;…&quot;' as Talus and AWS write it, sliced without a regular expression. */
function listedETag(text: string): string {
  if (text.length >= 12 && text.startsWith('&quot;') && text.endsWith('&quot;') && text.indexOf('&', 6) === text.length - 6) return text.slice(6, -6);
  return unquote(decodeXmlEntities(text));
}

/**
 * One pass over the page with indexOf, no regular expression and no slice
 * per entry: 1000 entries with metadata in about a millisecond. Returns
 * undefined for a shape it does not expect (the full parser reads those).
 */
function scanContents(xml: string, encoded: boolean): ListedObject[] | undefined {
  const objects: ListedObject[] = [];
  const keyElement = new NextElement('Key');
  const sizeElement = new NextElement('Size');
  const etagElement = new NextElement('ETag');
  const lastModifiedElement = new NextElement('LastModified');
  const metadataElement = new NextElement('UserMetadata');
  const emptyMetadataElement = new NextElement('UserMetadata/');
  const tagsElement = new NextElement('UserTags');
  const children = new MetadataChildren();
  for (let start = xml.indexOf('<Contents>'); start !== -1; start = xml.indexOf('<Contents>', start)) {
    const end = xml.indexOf('</Contents>', start);
    if (end === -1) throw new Error('ListObjectsV2: a <Contents> is not closed');
    const object: ListedObject = {
      key: decodeName(decodeXmlEntities(keyElement.textIn(xml, start, end) ?? ''), encoded),
      size: Number(decodeXmlEntities(sizeElement.textIn(xml, start, end) ?? '')),
      etag: listedETag(etagElement.textIn(xml, start, end) ?? ''),
      lastModified: decodeXmlEntities(lastModifiedElement.textIn(xml, start, end) ?? ''),
    };
    const metadataStart = metadataElement.startIn(xml, start, end);
    if (metadataStart !== -1) {
      const metadata = metadataIn(xml, metadataStart, end, tagsElement.textIn(xml, start, end), children);
      if (metadata === undefined) return undefined;
      object.listedMetadata = metadata;
    } else if (emptyMetadataElement.startIn(xml, start, end) !== -1) {
      object.listedMetadata = metadataOf([], tagsElement.textIn(xml, start, end));
    }
    objects.push(object);
    start = end + '</Contents>'.length;
  }
  return objects;
}

/** The children of a <UserMetadata> whose text starts at `from`: `<Name>text</Name>` each, text without markup. */
function metadataIn(xml: string, from: number, until: number, userTags: string | undefined, children: MetadataChildren): ListedObjectMetadata | undefined {
  let contentType: string | undefined;
  const userMetadata: Record<string, string> = {};
  let at = from;
  for (let position = 0; ; position++) {
    if (xml.charCodeAt(at) !== 0x3c /* < */) return undefined;
    if (xml.startsWith('</UserMetadata>', at)) break;
    const textStart = children.open(xml, at, position, until);
    if (textStart === -1) return undefined;
    const name = children.name;
    const field = children.field;
    const valueEnd = xml.indexOf('<', textStart);
    if (valueEnd === -1 || valueEnd > until || xml.charCodeAt(valueEnd + 1) !== 0x2f /* / */ || !xml.startsWith(name, valueEnd + 2) || xml.charCodeAt(valueEnd + 2 + name.length) !== 0x3e /* > */) return undefined;
    const value = decodeXmlEntities(xml.slice(textStart, valueEnd));
    if (field === CONTENT_TYPE) contentType = value;
    else if (field !== '') userMetadata[field] = value;
    at = valueEnd + 3 + name.length;
  }
  return { contentType, userMetadata, tags: tagsOf(userTags === undefined ? undefined : decodeXmlEntities(userTags)) };
}

/**
 * The document with its comments left out and each CDATA section written as
 * escaped text, which means the same: what the scan and decodeXmlEntities
 * read exactly (fast-xml-parser would merge a section's text unescaped into
 * its element's, which decoding afterwards would then misread).
 */
function withoutCommentsOrCdata(xml: string): string {
  let text = '';
  let copiedTo = 0;
  for (let at = xml.indexOf('<!'); at !== -1; at = xml.indexOf('<!', at)) {
    if (xml.startsWith('<!--', at)) {
      const end = xml.indexOf('-->', at + 4);
      if (end === -1) throw new Error('ListObjectsV2: a comment is not closed');
      text += xml.slice(copiedTo, at);
      at = copiedTo = end + 3;
    } else if (xml.startsWith('<![CDATA[', at)) {
      const end = xml.indexOf(']]>', at + 9);
      if (end === -1) throw new Error('ListObjectsV2: a CDATA section is not closed');
      text += xml.slice(copiedTo, at) + escapeXmlText(xml.slice(at + 9, end));
      at = copiedTo = end + 3;
    } else {
      at += 2; // a declaration (<!DOCTYPE …): kept as it is
    }
  }
  return copiedTo === 0 ? xml : text + xml.slice(copiedTo);
}

function escapeXmlText(text: string): string {
  return text.replaceAll('&', '&amp;').replaceAll('<', '&lt;').replaceAll('>', '&gt;');
}

/** Entities left as written (processEntities: false): decodeXmlEntities decodes each value as the scan does. */
const parser = new XMLParser({ ignoreAttributes: true, parseTagValue: false, trimValues: false, processEntities: false, isArray: (name) => name === 'Contents' });
type XmlNode = Record<string, unknown>;

/** The general reader, for a page without comments or CDATA whose shape the scan does not expect. */
function parseContentsFully(xml: string, encoded: boolean): ListedObject[] {
  const result = (parser.parse(xml) as XmlNode)['ListBucketResult'] as XmlNode | undefined;
  const contents = (result?.['Contents'] as XmlNode[] | undefined) ?? [];
  return contents.map((entry) => {
    const text = (name: string): string => (typeof entry[name] === 'string' ? decodeXmlEntities(entry[name] as string) : '');
    const object: ListedObject = { key: decodeName(text('Key'), encoded), size: Number(text('Size')), etag: unquote(text('ETag')), lastModified: text('LastModified') };
    const metadata = entry['UserMetadata'];
    if (metadata !== undefined) {
      const children = typeof metadata === 'object' && metadata !== null ? Object.entries(metadata as XmlNode).map(([name, value]) => [name, decodeXmlEntities(String(value))] as [string, string]) : [];
      object.listedMetadata = metadataOf(children, typeof entry['UserTags'] === 'string' ? text('UserTags') : undefined);
    }
    return object;
  });
}

/** MinIO's <UserMetadata> children: content-type (any case), X-Amz-Meta-* (canonical case), and other system headers. */
function metadataOf(children: readonly (readonly [string, string])[], userTags: string | undefined): ListedObjectMetadata {
  let contentType: string | undefined;
  const userMetadata: Record<string, string> = {};
  for (const [name, value] of children) {
    const lower = name.toLowerCase();
    if (lower === 'content-type') contentType = value;
    else if (lower.startsWith(USER_METADATA_PREFIX)) userMetadata[lower.slice(USER_METADATA_PREFIX.length)] = value;
  }
  return { contentType, userMetadata, tags: tagsOf(userTags) };
}

/** <UserTags>: the tag set as a URL query string. */
function tagsOf(userTags: string | undefined): Record<string, string> {
  const tags: Record<string, string> = {};
  if (userTags !== undefined && userTags !== '') for (const [key, value] of new URLSearchParams(userTags)) tags[key] = value;
  return tags;
}

function unquote(etag: string): string {
  return etag.length >= 2 && etag.startsWith('"') && etag.endsWith('"') ? etag.slice(1, -1) : etag;
}

/** encoding-type=url: AWS writes a space as '+' and a '+' as %2B. */
function decodeName(name: string, encoded: boolean): string {
  if (!encoded || (!name.includes('%') && !name.includes('+'))) return name;
  return decodeURIComponent(name.replaceAll('+', ' '));
}
