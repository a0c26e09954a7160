/**
 * A ListObjectsV2 page as `talus scan` needs it: every <Contents> with key,
 * size, ETag and last-modified and, when the server answered `metadata=true`
 * (MinIO, Talus), the <UserMetadata> and <UserTags> of each. Scanned, not
 * parsed (a general parser takes ~25 ms a page, more than the server spends
 * on it); documents a scan could misread (CDATA, comments) go through
 * fast-xml-parser.
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

export function parseScannedPage(xml: string): ScannedPage {
  if (!xml.includes('<ListBucketResult')) throw new Error('ListObjectsV2: the response is no ListBucketResult');
  const encoded = xmlElementText(xml, 'EncodingType') === 'url';
  const objects = needsFullParser(xml) ? parseContentsFully(xml, encoded) : scanContents(xml, encoded);
  const token = xmlElementText(xml, 'NextContinuationToken');
  return { objects, isTruncated: xmlElementText(xml, 'IsTruncated') === 'true', nextContinuationToken: token === '' ? undefined : token };
}

function scanContents(xml: string, encoded: boolean): ListedObject[] {
  const objects: ListedObject[] = [];
  for (let start = xml.indexOf('<Contents>'); start !== -1; start = xml.indexOf('<Contents>', start)) {
    const end = xml.indexOf('</Contents>', start);
    if (end === -1) throw new Error('ListObjectsV2: a <Contents> is not closed');
    // Searched within the entry only: a search for an element an entry lacks must not run to the end of the page.
    const entry = xml.slice(start, end);
    const field = (name: string): string => xmlElementText(entry, name) ?? '';
    const object: ListedObject = {
      key: decodeName(field('Key'), encoded),
      size: Number(field('Size')),
      etag: unquote(field('ETag')),
      lastModified: field('LastModified'),
    };
    const metadataStart = entry.indexOf('<UserMetadata>');
    if (metadataStart !== -1) {
      const metadataEnd = entry.indexOf('</UserMetadata>', metadataStart);
      const children: [string, string][] = [];
      for (const match of entry.slice(metadataStart + '<UserMetadata>'.length, metadataEnd).matchAll(/<([^\s/>]+)>([^<]*)<\/\1>/g)) {
        children.push([match[1]!, decodeXmlEntities(match[2]!)]);
      }
      object.listedMetadata = metadataOf(children, xmlElementText(entry, 'UserTags'));
    } else if (entry.includes('<UserMetadata/>')) {
      object.listedMetadata = metadataOf([], xmlElementText(entry, 'UserTags'));
    }
    objects.push(object);
    start = end + '</Contents>'.length;
  }
  return objects;
}

const parser = new XMLParser({ ignoreAttributes: true, parseTagValue: false, trimValues: false, isArray: (name) => name === 'Contents' });
type XmlNode = Record<string, unknown>;

function parseContentsFully(xml: string, encoded: boolean): ListedObject[] {
  const result = (parser.parse(xml) as XmlNode)['ListBucketResult'] as XmlNode | undefined;
  const contents = (result?.['Contents'] as XmlNode[] | undefined) ?? [];
  return contents.map((entry) => {
    const text = (name: string): string => (typeof entry[name] === 'string' ? (entry[name] as string) : '');
    const object: ListedObject = { key: decodeName(text('Key'), encoded), size: Number(text('Size')), etag: unquote(text('ETag')), lastModified: text('LastModified') };
    const metadata = entry['UserMetadata'];
    if (metadata !== undefined) {
      const children = typeof metadata === 'object' && metadata !== null ? Object.entries(metadata as XmlNode).map(([name, value]) => [name, String(value)] as [string, string]) : [];
      object.listedMetadata = metadataOf(children, typeof entry['UserTags'] === 'string' ? (entry['UserTags'] as string) : undefined);
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
  const tags: Record<string, string> = {};
  if (userTags !== undefined && userTags !== '') for (const [key, value] of new URLSearchParams(userTags)) tags[key] = value;
  return { contentType, userMetadata, tags };
}

function unquote(etag: string): string {
  return etag.length >= 2 && etag.startsWith('"') && etag.endsWith('"') ? etag.slice(1, -1) : etag;
}

/** encoding-type=url: AWS writes a space as '+' and a '+' as %2B. */
function decodeName(name: string, encoded: boolean): string {
  return encoded ? decodeURIComponent(name.replaceAll('+', ' ')) : name;
}
