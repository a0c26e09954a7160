/**
 * Bucket lifecycle configuration: Put/Get/DeleteBucketLifecycleConfiguration
 * (`?lifecycle`) and the x-amz-expiration header of GET, HEAD and PUT. The
 * XML is validated as AWS does and stored as the bucket's `lifecycle`
 * document; src/lifecycle/ evaluates it and its worker acts on it.
 */
import type { BucketRecord, ObjectVersion, Tag } from '../meta/types.ts';
import {
  CALENDAR_DAYS,
  currentExpiration,
  lifecycleOf,
  serializeConfiguration,
  type FilterForm,
  type LifecycleConfiguration,
  type LifecycleFilter,
  type LifecycleRule,
} from '../lifecycle/rules.ts';
import { document, element, listOf, objectOf, parseXml, textOf, type XmlNode } from '../http/xml.ts';
import { LIFECYCLE_NEWER_NONCURRENT_MAX, LIFECYCLE_RULE_ID_LENGTH_MAX, LIFECYCLE_RULES_MAX, OBJECT_TAGS_MAX } from '../util/limits.ts';
import { randomBytes } from 'node:crypto';
import { S3Error } from '../util/s3-error.ts';
import { emptyResponse, readSmallBody, xmlResponse, type RequestContext, type S3Response } from './context.ts';
import { validateTags } from './headers.ts';

type XmlObject = Record<string, XmlNode | XmlNode[] | undefined>;

const RULE_ELEMENTS = new Set([
  'ID', 'Prefix', 'Filter', 'Status', 'Expiration', 'Transition', 'Transitions', 'NoncurrentVersionTransition',
  'NoncurrentVersionTransitions', 'NoncurrentVersionExpiration', 'AbortIncompleteMultipartUpload',
]);

export async function handlePutBucketLifecycleConfiguration(context: RequestContext): Promise<S3Response> {
  const configuration = parseLifecycleConfiguration(await readSmallBody(context));
  await context.engine.setBucketConfig(context.route.bucket, 'lifecycle', serializeConfiguration(configuration));
  return emptyResponse(200);
}

export async function handleGetBucketLifecycleConfiguration(context: RequestContext): Promise<S3Response> {
  const bucket = await context.engine.getBucket(context.route.bucket);
  const configuration = lifecycleOf(bucket);
  if (configuration === undefined) throw new S3Error('NoSuchLifecycleConfiguration', undefined, { BucketName: bucket.name });
  return xmlResponse(document('LifecycleConfiguration', configuration.rules.map(ruleXml).join('')));
}

/** 204 whether or not there was a configuration, as AWS answers. */
export async function handleDeleteBucketLifecycle(context: RequestContext): Promise<S3Response> {
  await context.engine.setBucketConfig(context.route.bucket, 'lifecycle', null);
  return emptyResponse(204);
}

/**
 * Adds `x-amz-expiration` when an Expiration rule applies to the current
 * version. `bucket` is the record the engine already read for the request
 * (WriteResult.bucket, GetObjectResult.bucket): synchronous, and only a
 * property read when the bucket has no lifecycle configuration, so the
 * small-object path pays no extra lookup or await for it. The date is AWS's
 * (days counted in calendar days from the last modification, rounded up to
 * midnight UTC), also under the test time scale, as Ceph RGW reports it.
 */
export function addExpirationHeader(context: RequestContext, bucket: BucketRecord, version: ObjectVersion, headers: Record<string, string>): void {
  if (context.route.query.has('versionId')) return;
  const configuration = lifecycleOf(bucket);
  if (configuration === undefined) return;
  const expiration = currentExpiration(configuration, version, CALENDAR_DAYS);
  if (expiration === undefined) return;
  headers['x-amz-expiration'] = `expiry-date="${new Date(expiration.atMs).toUTCString()}", rule-id="${headerSafe(expiration.ruleId)}"`;
}

/** A rule ID may hold any character; a header value may not. */
function headerSafe(text: string): string {
  return /^[\x20-\x21\x23-\x7e]*$/.test(text) ? text : encodeURIComponent(text);
}

// Parsing and validation

export function parseLifecycleConfiguration(body: string): LifecycleConfiguration {
  const root = parseXml(body, 'LifecycleConfiguration');
  for (const name of Object.keys(root)) if (name !== 'Rule') throw new S3Error('MalformedXML');
  const ruleNodes = listOf(root['Rule']);
  if (ruleNodes.length === 0) throw new S3Error('MalformedXML');
  if (ruleNodes.length > LIFECYCLE_RULES_MAX) {
    throw new S3Error('InvalidArgument', `A lifecycle configuration cannot have more than ${LIFECYCLE_RULES_MAX} rules.`);
  }
  let transitions = false;
  const rules: LifecycleRule[] = [];
  const ids = new Set<string>();
  for (const node of ruleNodes) {
    const parsed = parseRule(node === '' ? {} : objectOf(node));
    transitions ||= parsed.hasTransitions;
    if (ids.has(parsed.rule.id)) throw new S3Error('InvalidArgument', 'Rule ID must be unique. Found same ID for more than one rule', { ArgumentName: 'ID', ArgumentValue: parsed.rule.id });
    ids.add(parsed.rule.id);
    rules.push(parsed.rule);
  }
  // Checked after everything else, so a bad date in a transition still answers 400 as AWS does.
  if (transitions) throw new S3Error('NotImplemented', 'Lifecycle transitions are not supported: Talus has a single storage class.');
  return { rules };
}

function parseRule(node: XmlObject): { rule: LifecycleRule; hasTransitions: boolean } {
  for (const name of Object.keys(node)) if (!RULE_ELEMENTS.has(name)) throw new S3Error('MalformedXML');
  let id = textOf(node['ID']);
  if (id === undefined || id === '') id = randomBytes(24).toString('base64url'); // AWS gives a rule without an ID a generated one
  if (id.length > LIFECYCLE_RULE_ID_LENGTH_MAX) {
    throw new S3Error('InvalidArgument', `ID length should not exceed allowed limit of ${LIFECYCLE_RULE_ID_LENGTH_MAX}`, { ArgumentName: 'ID', ArgumentValue: id.slice(0, 64) });
  }
  const status = textOf(node['Status']);
  if (status !== 'Enabled' && status !== 'Disabled') throw new S3Error('MalformedXML');
  const legacyPrefix = node['Prefix'];
  const filterNode = node['Filter'];
  if ((legacyPrefix === undefined) === (filterNode === undefined)) throw new S3Error('MalformedXML');
  const filter: LifecycleFilter = legacyPrefix !== undefined
    ? { form: 'legacy-prefix', prefix: textOf(legacyPrefix) ?? '', tags: [] }
    : parseFilter(filterNode);
  const rule: LifecycleRule = { id, enabled: status === 'Enabled', filter };
  if (node['Expiration'] !== undefined) rule.expiration = parseExpiration(node['Expiration']);
  if (node['NoncurrentVersionExpiration'] !== undefined) rule.noncurrentVersionExpiration = parseNoncurrentExpiration(node['NoncurrentVersionExpiration']);
  if (node['AbortIncompleteMultipartUpload'] !== undefined) {
    const abort = childrenOf(node['AbortIncompleteMultipartUpload'], ['DaysAfterInitiation']);
    rule.abortIncompleteMultipartUpload = { daysAfterInitiation: positiveInteger(abort['DaysAfterInitiation'], 'DaysAfterInitiation', 'AbortIncompleteMultipartUpload') };
  }
  const transitionNodes = [
    ...listOf(node['Transition']),
    ...listOf(node['Transitions']),
    ...listOf(node['NoncurrentVersionTransition']),
    ...listOf(node['NoncurrentVersionTransitions']),
  ];
  for (const transition of transitionNodes) checkTransition(transition);
  if (rule.expiration === undefined && rule.noncurrentVersionExpiration === undefined && rule.abortIncompleteMultipartUpload === undefined && transitionNodes.length === 0) {
    throw new S3Error('InvalidRequest', 'At least one action needs to be specified in a rule');
  }
  if (filter.tags.length > 0 && rule.abortIncompleteMultipartUpload !== undefined) {
    throw new S3Error('InvalidRequest', 'AbortIncompleteMultipartUpload cannot be specified with Tags.');
  }
  if (filter.tags.length > 0 && rule.expiration?.expiredObjectDeleteMarker !== undefined) {
    throw new S3Error('InvalidRequest', 'ExpiredObjectDeleteMarker cannot be specified with Tags.');
  }
  return { rule, hasTransitions: transitionNodes.length > 0 };
}

/** Filter: empty, or exactly one of Prefix, Tag, And, ObjectSizeGreaterThan, ObjectSizeLessThan. */
function parseFilter(node: XmlNode | XmlNode[] | undefined): LifecycleFilter {
  const filter = childrenOf(node, ['Prefix', 'Tag', 'And', 'ObjectSizeGreaterThan', 'ObjectSizeLessThan']);
  const present = Object.keys(filter).filter((name) => filter[name] !== undefined);
  if (present.length === 0) return { form: 'empty', prefix: '', tags: [] };
  if (present.length > 1) throw new S3Error('MalformedXML');
  switch (present[0]) {
    case 'Prefix':
      return { form: 'prefix', prefix: textOf(filter['Prefix']) ?? '', tags: [] };
    case 'Tag': {
      const tags = parseTags(filter['Tag']);
      if (tags.length !== 1) throw new S3Error('MalformedXML');
      return { form: 'tag', prefix: '', tags };
    }
    case 'ObjectSizeGreaterThan':
      return { form: 'size-greater', prefix: '', tags: [], sizeGreaterThan: size(filter['ObjectSizeGreaterThan'], 'ObjectSizeGreaterThan') };
    case 'ObjectSizeLessThan':
      return { form: 'size-less', prefix: '', tags: [], sizeLessThan: positiveSize(filter['ObjectSizeLessThan']) };
    default: {
      const and = childrenOf(filter['And'], ['Prefix', 'Tag', 'ObjectSizeGreaterThan', 'ObjectSizeLessThan']);
      const result: LifecycleFilter = { form: 'and', prefix: textOf(and['Prefix']) ?? '', tags: parseTags(and['Tag']) };
      if (and['ObjectSizeGreaterThan'] !== undefined) result.sizeGreaterThan = size(and['ObjectSizeGreaterThan'], 'ObjectSizeGreaterThan');
      if (and['ObjectSizeLessThan'] !== undefined) result.sizeLessThan = positiveSize(and['ObjectSizeLessThan']);
      if (result.sizeGreaterThan !== undefined && result.sizeLessThan !== undefined && result.sizeGreaterThan >= result.sizeLessThan) {
        throw new S3Error('InvalidArgument', 'ObjectSizeGreaterThan must be less than ObjectSizeLessThan', { ArgumentName: 'ObjectSizeGreaterThan' });
      }
      const conditions = (and['Prefix'] === undefined ? 0 : 1) + result.tags.length + (result.sizeGreaterThan === undefined ? 0 : 1) + (result.sizeLessThan === undefined ? 0 : 1);
      if (conditions < 2) throw new S3Error('MalformedXML');
      return result;
    }
  }
}

function parseTags(node: XmlNode | XmlNode[] | undefined): Tag[] {
  const tags = listOf(node).map((tagNode) => {
    const tag = childrenOf(tagNode, ['Key', 'Value']);
    const key = textOf(tag['Key']);
    const value = textOf(tag['Value']);
    if (key === undefined || value === undefined) throw new S3Error('MalformedXML');
    return { key, value };
  });
  validateTags(tags, OBJECT_TAGS_MAX);
  return tags;
}

function parseExpiration(node: XmlNode | XmlNode[] | undefined): NonNullable<LifecycleRule['expiration']> {
  const expiration = childrenOf(node, ['Days', 'Date', 'ExpiredObjectDeleteMarker']);
  const present = Object.keys(expiration).filter((name) => expiration[name] !== undefined);
  if (present.length !== 1) throw new S3Error('MalformedXML');
  if (expiration['Days'] !== undefined) return { days: positiveInteger(expiration['Days'], 'Days', 'Expiration') };
  if (expiration['Date'] !== undefined) return { dateMs: midnightDate(expiration['Date']) };
  const marker = textOf(expiration['ExpiredObjectDeleteMarker']);
  if (marker !== 'true' && marker !== 'false') throw new S3Error('MalformedXML');
  return { expiredObjectDeleteMarker: marker === 'true' };
}

function parseNoncurrentExpiration(node: XmlNode | XmlNode[] | undefined): NonNullable<LifecycleRule['noncurrentVersionExpiration']> {
  const action = childrenOf(node, ['NoncurrentDays', 'NewerNoncurrentVersions']);
  const result: NonNullable<LifecycleRule['noncurrentVersionExpiration']> = {
    noncurrentDays: positiveInteger(action['NoncurrentDays'], 'NoncurrentDays', 'NoncurrentVersionExpiration'),
  };
  if (action['NewerNoncurrentVersions'] !== undefined) {
    const newer = positiveInteger(action['NewerNoncurrentVersions'], 'NewerNoncurrentVersions', 'NoncurrentVersionExpiration');
    if (newer > LIFECYCLE_NEWER_NONCURRENT_MAX) {
      throw new S3Error('InvalidArgument', `NewerNoncurrentVersions must be between 1 and ${LIFECYCLE_NEWER_NONCURRENT_MAX}`, { ArgumentName: 'NewerNoncurrentVersions' });
    }
    result.newerNoncurrentVersions = newer;
  }
  return result;
}

/** Transitions are validated (a bad one is 400, as AWS answers), then refused as a whole with NotImplemented. */
function checkTransition(node: XmlNode): void {
  const transition = childrenOf(node, ['Days', 'Date', 'NoncurrentDays', 'NewerNoncurrentVersions', 'StorageClass']);
  if (transition['Date'] !== undefined) midnightDate(transition['Date']);
  for (const name of ['Days', 'NoncurrentDays']) {
    const text = textOf(transition[name]);
    if (text !== undefined && !/^\d+$/.test(text)) throw new S3Error('InvalidArgument', `'${name}' in a transition must be a non-negative integer`, { ArgumentName: name });
  }
}

/** An element's children, each named in `allowed` (anything else is MalformedXML); an empty element has none. */
function childrenOf(node: XmlNode | XmlNode[] | undefined, allowed: readonly string[]): XmlObject {
  if (node === '') return {};
  const children = objectOf(node);
  for (const name of Object.keys(children)) if (!allowed.includes(name)) throw new S3Error('MalformedXML');
  return children;
}

function positiveInteger(node: XmlNode | XmlNode[] | undefined, name: string, action: string): number {
  const text = textOf(node);
  if (text === undefined) throw new S3Error('MalformedXML');
  const trimmed = text.trim();
  if (!/^[+-]?\d{1,10}$/.test(trimmed)) throw new S3Error('MalformedXML');
  const value = Number(trimmed);
  if (value <= 0 || value > 2_147_483_647) {
    throw new S3Error('InvalidArgument', `'${name}' for ${action} action must be a positive integer`, { ArgumentName: name, ArgumentValue: trimmed });
  }
  return value;
}

function size(node: XmlNode | XmlNode[] | undefined, name: string): number {
  const text = textOf(node)?.trim();
  if (text === undefined || !/^\d{1,16}$/.test(text)) throw new S3Error('InvalidArgument', `${name} must be a non-negative integer`, { ArgumentName: name });
  return Number(text);
}

function positiveSize(node: XmlNode | XmlNode[] | undefined): number {
  const value = size(node, 'ObjectSizeLessThan');
  if (value === 0) throw new S3Error('InvalidArgument', 'ObjectSizeLessThan must be a positive integer', { ArgumentName: 'ObjectSizeLessThan' });
  return value;
}

/** An ISO 8601 date (or date and time) that must fall on midnight UTC, as AWS requires. */
function midnightDate(node: XmlNode | XmlNode[] | undefined): number {
  const text = textOf(node)?.trim() ?? '';
  const ms = /^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:?\d{2})?)?$/.test(text) ? Date.parse(text.length === 10 ? `${text}T00:00:00Z` : text) : NaN;
  if (Number.isNaN(ms)) throw new S3Error('InvalidArgument', 'Invalid date; the date must be in ISO 8601 format', { ArgumentName: 'Date', ArgumentValue: text.slice(0, 64) });
  if (ms % 86_400_000 !== 0) throw new S3Error('InvalidArgument', '\'Date\' must be at midnight GMT', { ArgumentName: 'Date', ArgumentValue: text.slice(0, 64) });
  return ms;
}

// Serialization (GetBucketLifecycleConfiguration)

function ruleXml(rule: LifecycleRule): string {
  let xml = element('ID', rule.id) + filterXml(rule.filter) + element('Status', rule.enabled ? 'Enabled' : 'Disabled');
  const expiration = rule.expiration;
  if (expiration !== undefined) {
    let inner = '';
    if (expiration.days !== undefined) inner = element('Days', expiration.days);
    else if (expiration.dateMs !== undefined) inner = element('Date', new Date(expiration.dateMs).toISOString());
    else if (expiration.expiredObjectDeleteMarker !== undefined) inner = element('ExpiredObjectDeleteMarker', expiration.expiredObjectDeleteMarker);
    xml += `<Expiration>${inner}</Expiration>`;
  }
  const noncurrent = rule.noncurrentVersionExpiration;
  if (noncurrent !== undefined) {
    const newer = noncurrent.newerNoncurrentVersions === undefined ? '' : element('NewerNoncurrentVersions', noncurrent.newerNoncurrentVersions);
    xml += `<NoncurrentVersionExpiration>${element('NoncurrentDays', noncurrent.noncurrentDays)}${newer}</NoncurrentVersionExpiration>`;
  }
  if (rule.abortIncompleteMultipartUpload !== undefined) {
    xml += `<AbortIncompleteMultipartUpload>${element('DaysAfterInitiation', rule.abortIncompleteMultipartUpload.daysAfterInitiation)}</AbortIncompleteMultipartUpload>`;
  }
  return `<Rule>${xml}</Rule>`;
}

const FILTER_XML: Record<FilterForm, (filter: LifecycleFilter) => string> = {
  'legacy-prefix': (filter) => element('Prefix', filter.prefix),
  empty: () => '<Filter></Filter>',
  prefix: (filter) => `<Filter>${element('Prefix', filter.prefix)}</Filter>`,
  tag: (filter) => `<Filter>${tagsXml(filter.tags)}</Filter>`,
  'size-greater': (filter) => `<Filter>${element('ObjectSizeGreaterThan', filter.sizeGreaterThan ?? 0)}</Filter>`,
  'size-less': (filter) => `<Filter>${element('ObjectSizeLessThan', filter.sizeLessThan ?? 0)}</Filter>`,
  and: (filter) => {
    let inner = filter.prefix === '' ? '' : element('Prefix', filter.prefix);
    inner += tagsXml(filter.tags);
    if (filter.sizeGreaterThan !== undefined) inner += element('ObjectSizeGreaterThan', filter.sizeGreaterThan);
    if (filter.sizeLessThan !== undefined) inner += element('ObjectSizeLessThan', filter.sizeLessThan);
    return `<Filter><And>${inner}</And></Filter>`;
  },
};

function filterXml(filter: LifecycleFilter): string {
  return FILTER_XML[filter.form](filter);
}

function tagsXml(tags: readonly Tag[]): string {
  return tags.map((tag) => `<Tag>${element('Key', tag.key)}${element('Value', tag.value)}</Tag>`).join('');
}
