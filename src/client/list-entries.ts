/**
 * ListObjectsV2 pages with each object's size, ETag and last-modified time
 * (list-objects.ts keeps to keys for the load generator), and ListParts
 * pages. Scanned like list-objects.ts; documents with CDATA or comments go
 * through fast-xml-parser.
 */
import { XMLParser } from 'fast-xml-parser';
import { needsFullParser, xmlElementText } from './xml-text.ts';
import { LIST_RESPONSE_BYTES_MAX } from './list-objects.ts';

/** A ListObjectsV2 page with sizes, ETags and dates, or a ListParts page of 1000 parts, stays below this. */
export const LISTED_OBJECTS_RESPONSE_BYTES_MAX = LIST_RESPONSE_BYTES_MAX;

export interface ListedObjectEntry {
  key: string;
  size: number;
  etag: string;
  lastModified: Date;
}

export interface ListedObjectsPage {
  objects: ListedObjectEntry[];
  commonPrefixes: string[];
  isTruncated: boolean;
  nextContinuationToken?: string;
}

export interface ListedPart {
  partNumber: number;
  etag: string;
  size: number;
}

const parser = new XMLParser({
  ignoreAttributes: true,
  parseTagValue: false,
  trimValues: false,
  // Numeric character references (&#252;, &#x1F600;) decode as the fast path's decodeXmlEntities decodes them.
  htmlEntities: true,
  isArray: (name) => name === 'Contents' || name === 'CommonPrefixes' || name === 'Part',
});

type XmlNode = Record<string, unknown>;

/** The blocks `<name>…</name>` of a document, each as a small record of its fields. */
function blocks(xml: string, name: string, fields: readonly string[]): Record<string, string | undefined>[] {
  if (needsFullParser(xml)) return fullBlocks(xml, name, fields);
  const out: Record<string, string | undefined>[] = [];
  const open = `<${name}>`;
  const close = `</${name}>`;
  for (let start = xml.indexOf(open); start !== -1; start = xml.indexOf(open, start)) {
    const end = xml.indexOf(close, start);
    if (end === -1) break;
    const record: Record<string, string | undefined> = {};
    for (const field of fields) record[field] = xmlElementText(xml, field, start, end);
    out.push(record);
    start = end + close.length;
  }
  return out;
}

function fullBlocks(xml: string, name: string, fields: readonly string[]): Record<string, string | undefined>[] {
  const document = parser.parse(xml) as XmlNode;
  const root = Object.values(document).find((value) => typeof value === 'object' && value !== null) as XmlNode | undefined;
  const list = root?.[name];
  if (!Array.isArray(list)) return [];
  return list.map((entry: XmlNode) => Object.fromEntries(fields.map((field) => [field, typeof entry[field] === 'string' ? (entry[field] as string) : undefined])));
}

/** encoding-type=url: '+' is a space. */
function decodeName(name: string, encoded: boolean): string {
  return encoded ? decodeURIComponent(name.replaceAll('+', ' ')) : name;
}

export function parseListedObjects(xml: string): ListedObjectsPage {
  if (!xml.includes('<ListBucketResult')) throw new Error('ListObjectsV2: the response is no ListBucketResult');
  const encoded = xmlElementText(xml, 'EncodingType') === 'url';
  const objects = blocks(xml, 'Contents', ['Key', 'Size', 'ETag', 'LastModified']).map((entry) => ({
    key: decodeName(entry['Key'] ?? '', encoded),
    size: Number(entry['Size'] ?? 0),
    etag: entry['ETag'] ?? '',
    lastModified: new Date(entry['LastModified'] ?? 0),
  }));
  const commonPrefixes = blocks(xml, 'CommonPrefixes', ['Prefix']).map((entry) => decodeName(entry['Prefix'] ?? '', encoded));
  const page: ListedObjectsPage = { objects, commonPrefixes, isTruncated: xmlElementText(xml, 'IsTruncated') === 'true' };
  const token = xmlElementText(xml, 'NextContinuationToken');
  if (token !== undefined && token !== '') page.nextContinuationToken = token;
  return page;
}

export function parseListParts(xml: string): { parts: ListedPart[]; isTruncated: boolean; nextPartNumberMarker?: string } {
  if (!xml.includes('<ListPartsResult')) throw new Error('ListParts: the response is no ListPartsResult');
  const parts = blocks(xml, 'Part', ['PartNumber', 'ETag', 'Size']).map((entry) => ({ partNumber: Number(entry['PartNumber']), etag: entry['ETag'] ?? '', size: Number(entry['Size'] ?? 0) }));
  const result: { parts: ListedPart[]; isTruncated: boolean; nextPartNumberMarker?: string } = { parts, isTruncated: xmlElementText(xml, 'IsTruncated') === 'true' };
  const marker = xmlElementText(xml, 'NextPartNumberMarker');
  if (marker !== undefined && marker !== '') result.nextPartNumberMarker = marker;
  return result;
}
