/**
 * ListObjectsV2: the request's query and the parsing of its answer. Listings
 * are requested with encoding-type=url, so keys holding characters XML 1.0
 * cannot carry (control characters) survive, and decoded here.
 *
 * Parsing scans the document (~0.5 ms for 1000 keys); fast-xml-parser takes
 * ~25 ms for the same page, which would make a list workload measure the
 * client, so it is only the fallback for documents a scan may misread.
 * https://docs.aws.amazon.com/AmazonS3/latest/API/API_ListObjectsV2.html
 */
import { XMLParser } from 'fast-xml-parser';
import { LIST_KEYS_MAX } from '../util/limits.ts';
import { needsFullParser, xmlElementText } from './xml-text.ts';

export interface ListObjectsOptions {
  prefix?: string;
  delimiter?: string;
  startAfter?: string;
  continuationToken?: string;
  /** 1..1000; the server's default (1000) when absent. */
  maxKeys?: number;
  /**
   * MinIO's extension (Talus has it too): each <Contents> also carries
   * <UserMetadata> and <UserTags>. Servers without it ignore the parameter.
   * Read them with `listObjectsV2Document` (parseListObjectsPage keeps keys only).
   */
  metadata?: boolean;
}

export interface ListObjectsPage {
  keys: string[];
  commonPrefixes: string[];
  isTruncated: boolean;
  nextContinuationToken?: string;
}

/** A page of 1000 keys of 1024 bytes, each escaped up to 3x, plus the XML around it, is below this. */
export const LIST_RESPONSE_BYTES_MAX = 16 * 1024 * 1024;

export function listObjectsQuery(options: ListObjectsOptions): Record<string, string | undefined> {
  const maxKeys = options.maxKeys;
  if (maxKeys !== undefined && (!Number.isInteger(maxKeys) || maxKeys < 1 || maxKeys > LIST_KEYS_MAX)) {
    throw new RangeError(`maxKeys must be an integer from 1 to ${LIST_KEYS_MAX}, not ${maxKeys}`);
  }
  return {
    'list-type': '2',
    'encoding-type': 'url',
    prefix: options.prefix,
    delimiter: options.delimiter,
    'start-after': options.startAfter,
    'continuation-token': options.continuationToken,
    'max-keys': maxKeys === undefined ? undefined : String(maxKeys),
    metadata: options.metadata === true ? 'true' : undefined,
  };
}

// parseTagValue: false keeps '0012' a string; every field is text.
const parser = new XMLParser({
  ignoreAttributes: true,
  parseTagValue: false,
  trimValues: false,
  // Numeric character references (&#252;, &#x1F600;) decode as the fast path's decodeXmlEntities decodes them.
  htmlEntities: true,
  isArray: (name) => name === 'Contents' || name === 'CommonPrefixes',
});

type XmlNode = Record<string, unknown>;

export function parseListObjectsPage(xml: string): ListObjectsPage {
  return (needsFullParser(xml) ? undefined : scanListObjectsPage(xml)) ?? parseListObjectsPageFully(xml);
}

/** The scan: undefined when the document is not shaped as expected (then the full parser decides). */
export function scanListObjectsPage(xml: string): ListObjectsPage | undefined {
  if (!xml.includes('<ListBucketResult')) return undefined;
  const encoded = xmlElementText(xml, 'EncodingType') === 'url';
  const keys = scanEntries(xml, 'Contents', 'Key', encoded);
  const commonPrefixes = scanEntries(xml, 'CommonPrefixes', 'Prefix', encoded);
  if (keys === undefined || commonPrefixes === undefined) return undefined;
  const page: ListObjectsPage = { keys, commonPrefixes, isTruncated: xmlElementText(xml, 'IsTruncated') === 'true' };
  const token = xmlElementText(xml, 'NextContinuationToken');
  if (token !== undefined && token !== '') page.nextContinuationToken = token;
  return page;
}

/** The `field` of every `<entry>` block, or undefined if a block is not plain `<entry>...<field>x</field>...</entry>`. */
function scanEntries(xml: string, entry: string, field: string, encoded: boolean): string[] | undefined {
  const values: string[] = [];
  const open = `<${entry}>`;
  const close = `</${entry}>`;
  let blocks = 0;
  for (let start = xml.indexOf(open); start !== -1; start = xml.indexOf(open, start)) {
    const end = xml.indexOf(close, start);
    if (end === -1) return undefined;
    const value = xmlElementText(xml, field, start, end);
    if (value === undefined) return undefined;
    values.push(decodeName(value, encoded));
    blocks++;
    start = end + close.length;
  }
  // '<Contents ' with attributes, say, would have been skipped: let the parser have it.
  return countOccurrences(xml, `<${entry}`) === blocks ? values : undefined;
}

function countOccurrences(text: string, needle: string): number {
  let count = 0;
  for (let at = text.indexOf(needle); at !== -1; at = text.indexOf(needle, at + needle.length)) count++;
  return count;
}

/** The reference parser (fast-xml-parser): slow, general. */
export function parseListObjectsPageFully(xml: string): ListObjectsPage {
  const document = parser.parse(xml) as XmlNode;
  const result = document['ListBucketResult'];
  if (typeof result !== 'object' || result === null) throw new Error('ListObjectsV2: the response is no ListBucketResult');
  const node = result as XmlNode;
  const encoded = text(node['EncodingType']) === 'url';
  const keys = arrayOf(node['Contents']).map((entry) => decodeName(text(entry['Key']) ?? '', encoded));
  const commonPrefixes = arrayOf(node['CommonPrefixes']).map((entry) => decodeName(text(entry['Prefix']) ?? '', encoded));
  const page: ListObjectsPage = { keys, commonPrefixes, isTruncated: text(node['IsTruncated']) === 'true' };
  const token = text(node['NextContinuationToken']);
  if (token !== undefined && token !== '') page.nextContinuationToken = token;
  return page;
}

function text(value: unknown): string | undefined {
  if (typeof value === 'string') return value;
  // An empty element parses as ''; an element with attributes kept would be an object.
  return undefined;
}

function arrayOf(value: unknown): XmlNode[] {
  return Array.isArray(value) ? (value.filter((entry) => typeof entry === 'object' && entry !== null) as XmlNode[]) : [];
}

/** encoding-type=url: AWS writes a space as '+' and a '+' as %2B, so '+' decodes to a space. */
function decodeName(name: string, encoded: boolean): string {
  return encoded ? decodeURIComponent(name.replaceAll('+', ' ')) : name;
}
