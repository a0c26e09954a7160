/** Listings: ListObjects (v1, v2), ListObjectVersions, ListMultipartUploads. */
import type { ListedVersion, ListRequest, ListVersionsRequest, PageRendering, RenderedPage } from '../meta/metadata-store.ts';
import type { SystemMetadata } from '../meta/types.ts';
import { LIST_KEYS_MAX, LIST_UPLOADS_MAX } from '../util/limits.ts';
import { S3Error } from '../util/s3-error.ts';
import { requiredChecks, type OperationTarget, type PermissionCheck } from '../authz/index.ts';
import { S3_NAMESPACE, XML_DECLARATION, document, element, escapeXml, optionalElement } from '../http/xml.ts';
import { owner } from './bucket.ts';
import { queryInteger, xmlResponse, type RequestContext, type S3Response } from './context.ts';
import { isoDateOf } from './headers.ts';
import { listingDocumentBytes, renderListingPage, urlEncodeName, type ListedMetadataXml } from './list-render.ts';

/** encoding-type=url: names are percent-encoded so keys with characters XML cannot carry survive (list-render.ts). */
function encodesUrl(context: RequestContext): boolean {
  const encodingType = context.route.query.get('encoding-type');
  if (encodingType === undefined) return false;
  if (encodingType.toLowerCase() !== 'url') throw new S3Error('InvalidArgument', 'Invalid Encoding Method specified in Request', { ArgumentName: 'encoding-type', ArgumentValue: encodingType });
  return true;
}

function encoder(encodeUrl: boolean): (text: string) => string {
  return encodeUrl ? urlEncodeName : (text) => text;
}

function encodingTypeElement(context: RequestContext): string {
  return context.route.query.has('encoding-type') ? element('EncodingType', 'url') : '';
}

function storageClass(): string {
  return element('StorageClass', 'STANDARD');
}

/** `<Owner>` of an owner ID (list-render.ts leaves a hole for it: display names live in the principal directory). */
function ownerXml(context: RequestContext): (ownerId: string) => string {
  return (ownerId) => owner(context, ownerId);
}

/** Whether the caller may see this listed version's metadata and tags; `latest`: it is the key's current version. */
type MetadataFilter = (version: ListedVersion, latest: boolean) => boolean;

/**
 * MinIO's listing extension: `metadata=true` on ListObjectsV2 and
 * ListObjectVersions. Only `true` asks (MinIO reads it the same way); other
 * values list plainly (undefined). Metadata and tags are what GetObject and
 * HeadObject show, while a listing needs only s3:ListBucket: so each entry
 * shows them only if the caller may read that version (s3:GetObject on the
 * current version, s3:GetObjectVersion on older ones), judged as the read
 * itself is (bucket policy, identity and key policies, the version's owner
 * and ACL, its tags as s3:ExistingObjectTag), and is listed plainly
 * otherwise (MinIO checks each object the same way).
 */
async function metadataFilter(context: RequestContext): Promise<MetadataFilter | undefined> {
  if (context.route.query.get('metadata') !== 'true') return undefined;
  const access = context.access;
  const bucket = await context.engine.getBucket(context.route.bucket);
  const bucketAccess = access.bucketAccess(bucket);
  const noTags = access.keysFor(undefined);
  // The entries of a page mostly share one owner: compared, not hashed again (a Map lookup per entry on a fresh string).
  let storedOwner: string | undefined;
  let owner = '';
  return (version, latest) => {
    const target: OperationTarget = latest ? { bucket: bucket.name, key: version.key } : { bucket: bucket.name, key: version.key, versionId: version.versionId };
    const check = requiredChecks('GetObject', target)[0] as PermissionCheck;
    if (version.ownerId !== storedOwner) {
      storedOwner = version.ownerId;
      owner = access.ownerOf(storedOwner);
    }
    const object = { owner, acl: version.acl };
    const keys = version.tags === undefined || version.tags.length === 0 ? noTags : access.keysFor({ tags: version.tags });
    return access.allows(check, { bucket: bucketAccess, object, keys });
  };
}

/** The system metadata a listing shows, under the names MinIO gives them (lower-case header names). */
const LISTED_SYSTEM_HEADERS: readonly (readonly [keyof SystemMetadata, string])[] = [
  ['cacheControl', 'cache-control'],
  ['contentDisposition', 'content-disposition'],
  ['contentEncoding', 'content-encoding'],
  ['contentLanguage', 'content-language'],
  ['expires', 'expires'],
];

/**
 * A metadata name becomes an element name (`X-Amz-Meta-Color`): names with
 * characters HTTP allows in a header name but XML forbids in an element name
 * (!#$%&'*+^`|~) are left out of the listing, as MinIO would write an
 * unparseable document for them; HEAD still shows them.
 */
const XML_SAFE_METADATA_NAME = /^[a-z0-9._-]+$/;

/** Go's canonical header form, which MinIO's element names have: X-Amz-Meta-Foo-Bar. */
function canonicalHeaderName(lowerName: string): string {
  return lowerName.replace(/(^|-)([a-z])/g, (_match, dash: string, letter: string) => dash + letter.toUpperCase());
}

/**
 * `<X-Amz-Meta-Name>` and its closing tag for each metadata name, memoized:
 * a listing meets the same few names on every row, and building them was a
 * tenth of a metadata page's time. Bounded, since names come from clients.
 */
const metadataTags = new Map<string, readonly [string, string] | null>();
const METADATA_TAGS_CACHED_MAX = 4096;

/** The name's tags, or null for a name left out of listings (XML_SAFE_METADATA_NAME), remembered too. */
function metadataTagsOf(name: string): readonly [string, string] | null {
  let tags = metadataTags.get(name);
  if (tags === undefined) {
    const element = `X-Amz-Meta-${canonicalHeaderName(name)}`;
    tags = XML_SAFE_METADATA_NAME.test(name) ? [`<${element}>`, `</${element}>`] : null;
    if (metadataTags.size >= METADATA_TAGS_CACHED_MAX) metadataTags.clear();
    metadataTags.set(name, tags);
  }
  return tags;
}

/**
 * Printable ASCII without XML's specials (and tab, line feed): what most
 * values are, written as they are — one test where headerText and escapeXml
 * made two (four values on every entry of a metadata page).
 */
const PLAIN_XML_TEXT = /^[\t\n !#-%(-;=?-~]*$/;

/** A stored header value as a listing's element text: headerText, then escapeXml. */
function listedText(value: string): string {
  return PLAIN_XML_TEXT.test(value) ? value : escapeXml(headerText(value));
}

/**
 * `<UserMetadata>` (content-type, the other stored system headers, each
 * x-amz-meta-* as `<X-Amz-Meta-Name>`) and `<UserTags>` (the tag set as a
 * URL query string), after StorageClass, in MinIO's shape, so minio-go's
 * ObjectInfo.UserMetadata / UserTags, mc and warp read them. Empty unless the
 * listing read metadata.
 */
function listedMetadataXml(version: ListedVersion): string {
  if (version.userMetadata === undefined || version.system === undefined) return '';
  // What HEAD answers for an object stored without a Content-Type.
  let inner = `<content-type>${listedText(version.system.contentType ?? 'binary/octet-stream')}</content-type>`;
  for (const [field, name] of LISTED_SYSTEM_HEADERS) {
    const value = version.system[field];
    if (value !== undefined) inner += `<${name}>${listedText(value)}</${name}>`;
  }
  const metadata = version.userMetadata;
  for (const name in metadata) {
    const tags = metadataTagsOf(name);
    if (tags === null) continue;
    inner += tags[0] + listedText(metadata[name]!) + tags[1];
  }
  inner = `<UserMetadata>${inner}</UserMetadata>`;
  const tags = version.tags;
  if (tags === undefined || tags.length === 0) return inner;
  return inner + element('UserTags', tags.map((tag) => `${queryEscape(tag.key)}=${queryEscape(tag.value)}`).join('&'));
}

/**
 * Header values are kept as node read them, one character per byte (latin1);
 * HEAD sends those bytes back unchanged. A listing is UTF-8 XML, so the bytes
 * are decoded as the UTF-8 clients sent (as MinIO, which keeps raw bytes and
 * writes them into its XML).
 */
function headerText(value: string): string {
  // eslint-disable-next-line no-control-regex
  return /^[\x00-\x7f]*$/.test(value) ? value : Buffer.from(value, 'latin1').toString('utf8');
}

/** Go's url.QueryEscape, which MinIO's UserTags use: a space is '+'. */
function queryEscape(text: string): string {
  return encodeURIComponent(text).replace(/[!'()*]/g, (char) => `%${char.charCodeAt(0).toString(16).toUpperCase()}`).replaceAll('%20', '+');
}

function commonPrefixXml(prefix: string, encode: (text: string) => string): string {
  return `<CommonPrefixes>${element('Prefix', encode(prefix))}</CommonPrefixes>`;
}

/** A zero-size page still names a missing bucket, as S3 does. */
async function emptyPage(context: RequestContext): Promise<{ entries: never[]; isTruncated: false }> {
  await context.engine.getBucket(context.route.bucket);
  return { entries: [], isTruncated: false };
}

/** Continuation tokens are opaque to clients: the last key or prefix returned, base64url. */
function encodeToken(key: string): string {
  return Buffer.from(key, 'utf8').toString('base64url');
}

function decodeToken(token: string): string {
  if (!/^[A-Za-z0-9_-]*$/.test(token)) throw new S3Error('InvalidArgument', 'The continuation token provided is incorrect', { ArgumentName: 'continuation-token' });
  return Buffer.from(token, 'base64url').toString('utf8');
}

/**
 * What a metadata=true listing shows of each entry: its metadata when the
 * caller may read that version, else nothing (metadataFilter).
 */
function metadataXmlOf(filter: MetadataFilter | undefined): ListedMetadataXml | undefined {
  return filter === undefined ? undefined : (version, latest) => (filter(version, latest) ? listedMetadataXml(version) : '');
}

/**
 * The response: declaration, root with namespace, head elements, then the
 * page's entries (bytes) with their owners. A page's buffer goes back to
 * its listing thread (RenderedPage.recycle) once nothing reads it: at once
 * when the document is a copy, else only after the socket took its bytes
 * (S3Response.sent: reused while a write of it is queued, it would send
 * another page's bytes); a response that closes first drops it.
 */
function listingResponse(root: string, head: string, page: RenderedPage, ownerXml: (ownerId: string) => string): S3Response {
  const document = listingDocumentBytes(page, ownerXml, `${XML_DECLARATION}<${root} xmlns="${S3_NAMESPACE}">${head}`, `</${root}>`);
  const response = xmlResponse(document);
  const recycle = page.recycle;
  if (recycle === undefined) return response;
  if (document.buffer !== page.bytes.buffer) recycle();
  else response.sent = (written) => {
    if (written) recycle();
  };
  return response;
}

/**
 * The page's entries rendered: by the store where it reads them (a SQLite
 * listing thread) when it can, else here from the entries it lists.
 * metadata=true pages are always rendered here: each entry's metadata is
 * judged by authorization.
 */
async function renderedKeys(context: RequestContext, request: ListRequest, rendering: PageRendering, metadata: MetadataFilter | undefined): Promise<RenderedPage> {
  if (request.limit === 0) return renderListingPage({ kind: 'keys', result: await emptyPage(context) }, rendering);
  if (metadata === undefined) {
    const page = await context.engine.listRendered(request, rendering);
    if (page !== undefined) return page;
  }
  return renderListingPage({ kind: 'keys', result: await context.engine.list(request) }, rendering, metadataXmlOf(metadata));
}

async function renderedVersions(context: RequestContext, request: ListVersionsRequest, rendering: PageRendering, metadata: MetadataFilter | undefined): Promise<RenderedPage> {
  if (request.limit === 0) return renderListingPage({ kind: 'versions', result: await emptyPage(context) }, rendering);
  if (metadata === undefined) {
    const page = await context.engine.listVersionsRendered(request, rendering);
    if (page !== undefined) return page;
  }
  return renderListingPage({ kind: 'versions', result: await context.engine.listVersions(request) }, rendering, metadataXmlOf(metadata));
}

export async function handleListObjects(context: RequestContext): Promise<S3Response> {
  const v2 = context.route.operation === 'ListObjectsV2';
  const query = context.route.query;
  const encodeUrl = encodesUrl(context);
  const encode = encoder(encodeUrl);
  const prefix = query.get('prefix') ?? '';
  const delimiter = query.get('delimiter') ?? '';
  const maxKeys = queryInteger(context, 'max-keys', LIST_KEYS_MAX, 0, LIST_KEYS_MAX);
  const token = v2 ? query.get('continuation-token') : undefined;
  const startAfter = v2 ? (query.get('start-after') ?? '') : (query.get('marker') ?? '');
  const after = token !== undefined ? decodeToken(token) : startAfter;
  const metadata = v2 ? await metadataFilter(context) : undefined;
  const rendering: PageRendering = { encodeUrl, owners: !v2 || query.get('fetch-owner') === 'true' };
  const request: ListRequest = { bucket: context.route.bucket, prefix, delimiter, after, limit: maxKeys, ...(metadata === undefined ? {} : { withMetadata: true }) };
  const page = await renderedKeys(context, request, rendering, metadata);
  const last = page.lastKey;
  // ListObjects v1 shows Prefix as sent even with encoding-type=url (clients decode only the other fields).
  let head = element('Name', context.route.bucket) + element('Prefix', v2 ? encode(prefix) : prefix);
  if (v2) {
    head += optionalElement('ContinuationToken', token) + (query.has('start-after') ? element('StartAfter', encode(startAfter)) : '');
    head += element('KeyCount', page.entries);
    if (page.isTruncated && last !== undefined) head += element('NextContinuationToken', encodeToken(last));
  } else {
    head += element('Marker', encode(startAfter));
    if (page.isTruncated && last !== undefined && delimiter !== '') head += element('NextMarker', encode(last));
  }
  head += element('MaxKeys', maxKeys) + (delimiter === '' ? '' : element('Delimiter', encode(delimiter)));
  head += encodingTypeElement(context) + element('IsTruncated', page.isTruncated);
  return listingResponse('ListBucketResult', head, page, ownerXml(context));
}

export async function handleListObjectVersions(context: RequestContext): Promise<S3Response> {
  const query = context.route.query;
  const encodeUrl = encodesUrl(context);
  const encode = encoder(encodeUrl);
  const prefix = query.get('prefix') ?? '';
  const delimiter = query.get('delimiter') ?? '';
  const keyMarker = query.get('key-marker') ?? '';
  const versionIdMarker = query.get('version-id-marker') ?? '';
  if (versionIdMarker !== '' && keyMarker === '') {
    throw new S3Error('InvalidArgument', 'A version-id marker cannot be specified without a key marker.', { ArgumentName: 'version-id-marker' });
  }
  const maxKeys = queryInteger(context, 'max-keys', LIST_KEYS_MAX, 0, LIST_KEYS_MAX);
  const metadata = await metadataFilter(context);
  const rendering: PageRendering = { encodeUrl, owners: true };
  const request: ListVersionsRequest = { bucket: context.route.bucket, prefix, delimiter, keyMarker, versionIdMarker, limit: maxKeys, ...(metadata === undefined ? {} : { withMetadata: true }) };
  const page = await renderedVersions(context, request, rendering, metadata);
  let head = element('Name', context.route.bucket) + element('Prefix', encode(prefix)) + element('KeyMarker', encode(keyMarker)) + element('VersionIdMarker', versionIdMarker);
  if (page.isTruncated && page.lastKey !== undefined) {
    head += element('NextKeyMarker', encode(page.lastKey));
    if (page.lastVersionId !== undefined) head += element('NextVersionIdMarker', page.lastVersionId);
  }
  head += element('MaxKeys', maxKeys) + (delimiter === '' ? '' : element('Delimiter', encode(delimiter))) + encodingTypeElement(context) + element('IsTruncated', page.isTruncated);
  return listingResponse('ListVersionsResult', head, page, ownerXml(context));
}

export async function handleListMultipartUploads(context: RequestContext): Promise<S3Response> {
  const query = context.route.query;
  const encode = encoder(encodesUrl(context));
  const prefix = query.get('prefix') ?? '';
  const delimiter = query.get('delimiter') ?? '';
  const keyMarker = query.get('key-marker') ?? '';
  const uploadIdMarker = query.get('upload-id-marker') ?? '';
  const maxUploads = queryInteger(context, 'max-uploads', LIST_UPLOADS_MAX, 0, LIST_UPLOADS_MAX);
  const result = maxUploads === 0
    ? await emptyPage(context)
    : await context.engine.listMultipartUploads({ bucket: context.route.bucket, prefix, delimiter, keyMarker, uploadIdMarker, limit: maxUploads });
  let body = '';
  for (const entry of result.entries) {
    const upload = entry.upload;
    if (upload === undefined) {
      body += commonPrefixXml(entry.key, encode);
      continue;
    }
    const shown = context.access.displayOwner(upload.ownerId);
    const person = element('ID', shown.id) + element('DisplayName', shown.displayName);
    body += `<Upload>${element('Key', encode(upload.key))}${element('UploadId', upload.uploadId)}<Initiator>${person}</Initiator><Owner>${person}</Owner>${storageClass()}${element('Initiated', isoDateOf(upload.createdMs))}${upload.checksumAlgorithm === null ? '' : element('ChecksumAlgorithm', upload.checksumAlgorithm)}</Upload>`;
  }
  const last = result.entries.at(-1);
  let head = element('Bucket', context.route.bucket) + element('KeyMarker', encode(keyMarker)) + element('UploadIdMarker', uploadIdMarker);
  head += element('NextKeyMarker', result.isTruncated && last !== undefined ? encode(last.key) : '');
  head += element('NextUploadIdMarker', result.isTruncated && last?.upload !== undefined ? last.upload.uploadId : '');
  head += (delimiter === '' ? '' : element('Delimiter', encode(delimiter))) + element('Prefix', encode(prefix)) + element('MaxUploads', maxUploads);
  head += encodingTypeElement(context) + element('IsTruncated', result.isTruncated);
  return xmlResponse(document('ListMultipartUploadsResult', head + body));
}
