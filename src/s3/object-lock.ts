/**
 * S3 Object Lock on the wire: Put/GetObjectLockConfiguration (`?object-lock`),
 * Put/GetObjectRetention (`?retention`), Put/GetObjectLegalHold
 * (`?legal-hold`), the x-amz-object-lock-* headers of writes and reads, and
 * x-amz-bypass-governance-retention. The rules themselves live in
 * src/engine/object-lock.ts.
 * https://docs.aws.amazon.com/AmazonS3/latest/userguide/object-lock.html
 */
import { createHash } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import { objectArn, type BucketAccess } from '../authz/index.ts';
import {
  type BucketObjectLock,
  type DefaultRetention,
  DEFAULT_RETENTION_DAYS_MAX,
  DEFAULT_RETENTION_YEARS_MAX,
  bucketObjectLock,
  objectLockDocument,
} from '../engine/object-lock.ts';
import { document, element, objectOf, parseXml, textOf, type XmlNode } from '../http/xml.ts';
import type { BucketConfigs, BucketRecord, ObjectLockState, ObjectRetention, ObjectVersion, RetentionMode } from '../meta/types.ts';
import { S3Error } from '../util/s3-error.ts';
import { emptyResponse, readSmallBodyBytes, xmlResponse, type RequestContext, type S3Response } from './context.ts';
import { header, isoDateOf } from './headers.ts';
import { versionIdParameter } from './object.ts';

const MODES: ReadonlySet<string> = new Set<RetentionMode>(['GOVERNANCE', 'COMPLIANCE']);
/** ISO 8601 date-time as SDKs send it (fractional seconds optional, a zone required). */
const ISO_8601_DATE_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:?\d{2})$/;

// Write and read headers

/**
 * x-amz-object-lock-mode, -retain-until-date and -legal-hold of PutObject,
 * CopyObject and CreateMultipartUpload; undefined when none is present (the
 * common case costs three header lookups).
 */
export function parseLockHeaders(headers: IncomingHttpHeaders, nowMs: number): ObjectLockState | undefined {
  const mode = header(headers, 'x-amz-object-lock-mode');
  const until = header(headers, 'x-amz-object-lock-retain-until-date');
  const hold = header(headers, 'x-amz-object-lock-legal-hold');
  if (mode === undefined && until === undefined && hold === undefined) return undefined;
  const lock: ObjectLockState = {};
  if (mode !== undefined || until !== undefined) {
    if (mode === undefined || until === undefined) {
      throw new S3Error('InvalidArgument', 'x-amz-object-lock-retain-until-date and x-amz-object-lock-mode must both be supplied');
    }
    if (!MODES.has(mode)) throw new S3Error('InvalidArgument', 'Unknown wormMode directive.', { ArgumentName: 'x-amz-object-lock-mode', ArgumentValue: mode });
    lock.retention = { mode: mode as RetentionMode, retainUntilMs: futureDate(until, nowMs, 'x-amz-object-lock-retain-until-date') };
  }
  if (hold !== undefined) {
    if (hold !== 'ON' && hold !== 'OFF') {
      throw new S3Error('InvalidArgument', 'Legal Hold must be either of \'ON\' or \'OFF\'', { ArgumentName: 'x-amz-object-lock-legal-hold', ArgumentValue: hold });
    }
    lock.legalHold = hold === 'ON';
  }
  return lock;
}

function futureDate(text: string, nowMs: number, argumentName: string): number {
  const ms = ISO_8601_DATE_TIME.test(text) ? Date.parse(text) : Number.NaN;
  if (Number.isNaN(ms)) throw new S3Error('InvalidArgument', 'The retain until date must be provided in ISO 8601 format', { ArgumentName: argumentName, ArgumentValue: text });
  if (ms <= nowMs) throw new S3Error('InvalidArgument', 'The retain until date must be in the future!', { ArgumentName: argumentName, ArgumentValue: text });
  return ms;
}

/** Whether a version has any Object Lock state to show (the common GET pays this check only). */
export function hasObjectLock(version: ObjectVersion): boolean {
  return version.retention !== undefined || version.legalHold !== undefined;
}

/**
 * GET/HEAD: the version's lock as x-amz-object-lock-* headers, each shown
 * only to a caller allowed to read it (AWS: s3:GetObjectRetention for mode
 * and date, s3:GetObjectLegalHold for the hold).
 */
export function addLockHeaders(context: RequestContext, bucketRecord: BucketRecord, version: ObjectVersion, headers: Record<string, string>): void {
  const bucket = context.access.bucketAccess(bucketRecord);
  const target = { bucket, object: context.access.objectAccess(version), keys: context.access.keysFor(version) };
  const check = (action: 's3:GetObjectRetention' | 's3:GetObjectLegalHold') =>
    context.access.allows({ action, resource: objectArn(context.route.bucket, version.key), side: 'target', bucket: context.route.bucket, key: version.key }, target);
  if (version.retention !== undefined && check('s3:GetObjectRetention')) {
    headers['x-amz-object-lock-mode'] = version.retention.mode;
    headers['x-amz-object-lock-retain-until-date'] = isoDateOf(version.retention.retainUntilMs);
  }
  if (version.legalHold !== undefined && check('s3:GetObjectLegalHold')) headers['x-amz-object-lock-legal-hold'] = version.legalHold ? 'ON' : 'OFF';
}

/**
 * x-amz-bypass-governance-retention: true, from a caller who has
 * s3:BypassGovernanceRetention on the object. Without the permission the
 * header is simply not honoured: a GOVERNANCE-locked version is then refused
 * as without it, and an unlocked one is unaffected (AWS).
 */
export async function governanceBypass(context: RequestContext, key: string): Promise<boolean> {
  if (!asksGovernanceBypass(context)) return false;
  return mayBypassGovernance(context, context.access.bucketAccess(await context.engine.getBucket(context.route.bucket)), key);
}

export function asksGovernanceBypass(context: RequestContext): boolean {
  return header(context.headers, 'x-amz-bypass-governance-retention')?.toLowerCase() === 'true';
}

/** Whether the caller has s3:BypassGovernanceRetention on `key` (DeleteObjects judges it per key, on the bucket it loaded once). */
export function mayBypassGovernance(context: RequestContext, bucket: BucketAccess, key: string): boolean {
  const check = { action: 's3:BypassGovernanceRetention' as const, resource: objectArn(context.route.bucket, key), side: 'target' as const, bucket: context.route.bucket, key };
  return context.access.allows(check, { bucket });
}

/** CreateBucket's x-amz-bucket-object-lock-enabled: the new bucket's lock configuration document, if asked for. */
export function createBucketObjectLock(headers: IncomingHttpHeaders): BucketConfigs {
  const value = header(headers, 'x-amz-bucket-object-lock-enabled');
  if (value === undefined || value.toLowerCase() === 'false') return {};
  if (value.toLowerCase() !== 'true') {
    throw new S3Error('InvalidArgument', 'x-amz-bucket-object-lock-enabled must be true or false', { ArgumentName: 'x-amz-bucket-object-lock-enabled', ArgumentValue: value });
  }
  return { objectLock: objectLockDocument({ enabled: true }) };
}

// Bucket configuration

async function readDocument(context: RequestContext, root: string): Promise<Record<string, XmlNode | XmlNode[] | undefined>> {
  const body = await readSmallBodyBytes(context);
  const md5 = header(context.headers, 'content-md5');
  if (md5 !== undefined && createHash('md5').update(body).digest('base64') !== md5) throw new S3Error('BadDigest');
  return parseXml(body.toString('utf8'), root);
}

function childObject(node: XmlNode | XmlNode[] | undefined): Record<string, XmlNode | XmlNode[] | undefined> {
  return node === '' ? {} : objectOf(node);
}

function parseDefaultRetention(node: XmlNode | XmlNode[] | undefined): DefaultRetention {
  const rule = childObject(node);
  const mode = textOf(rule['Mode']);
  const days = textOf(rule['Days']);
  const years = textOf(rule['Years']);
  if (mode === undefined || !MODES.has(mode)) throw new S3Error('MalformedXML');
  if ((days === undefined) === (years === undefined)) throw new S3Error('MalformedXML');
  const text = days ?? years ?? '';
  const period = /^-?\d{1,12}$/.test(text) ? Number(text) : Number.NaN;
  if (Number.isNaN(period)) throw new S3Error('MalformedXML');
  const periodMax = days !== undefined ? DEFAULT_RETENTION_DAYS_MAX : DEFAULT_RETENTION_YEARS_MAX;
  if (period <= 0 || period > periodMax) {
    throw new S3Error('InvalidRetentionPeriod', `Default retention period must be a positive integer value of at most ${periodMax} ${days !== undefined ? 'days' : 'years'}.`);
  }
  return days !== undefined ? { mode: mode as RetentionMode, days: period } : { mode: mode as RetentionMode, years: period };
}

export async function handlePutObjectLockConfiguration(context: RequestContext): Promise<S3Response> {
  const root = await readDocument(context, 'ObjectLockConfiguration');
  if (textOf(root['ObjectLockEnabled']) !== 'Enabled') throw new S3Error('MalformedXML');
  const config: BucketObjectLock = { enabled: true };
  if (root['Rule'] !== undefined) {
    const rule = childObject(root['Rule']);
    if (rule['DefaultRetention'] === undefined) throw new S3Error('MalformedXML');
    config.defaultRetention = parseDefaultRetention(rule['DefaultRetention']);
  }
  await context.engine.setObjectLockConfiguration(context.route.bucket, config);
  return emptyResponse(200);
}

export async function handleGetObjectLockConfiguration(context: RequestContext): Promise<S3Response> {
  const config = bucketObjectLock(await context.engine.getBucket(context.route.bucket));
  if (config === undefined) throw new S3Error('ObjectLockConfigurationNotFoundError', undefined, { BucketName: context.route.bucket });
  let body = element('ObjectLockEnabled', 'Enabled');
  const rule = config.defaultRetention;
  if (rule !== undefined) {
    const period = rule.days !== undefined ? element('Days', rule.days) : element('Years', rule.years ?? 0);
    body += `<Rule><DefaultRetention>${element('Mode', rule.mode)}${period}</DefaultRetention></Rule>`;
  }
  return xmlResponse(document('ObjectLockConfiguration', body));
}

// Per-version retention and legal hold

function versionHeaders(versionId: string | undefined): Record<string, string> {
  return versionId === undefined ? {} : { 'x-amz-version-id': versionId };
}

export async function handlePutObjectRetention(context: RequestContext): Promise<S3Response> {
  const root = await readDocument(context, 'Retention');
  const mode = textOf(root['Mode']);
  const until = textOf(root['RetainUntilDate']);
  let retention: ObjectRetention | undefined;
  // An empty <Retention/> removes the retention (allowed only where shortening would be).
  if (mode !== undefined || until !== undefined) {
    if (mode === undefined || until === undefined || !MODES.has(mode)) throw new S3Error('MalformedXML');
    retention = { mode: mode as RetentionMode, retainUntilMs: futureDate(until, Date.now(), 'RetainUntilDate') };
  }
  const bypass = await governanceBypass(context, context.route.key);
  const versionId = await context.engine.setObjectRetention(context.route.bucket, context.route.key, versionIdParameter(context), retention, bypass);
  return emptyResponse(200, versionHeaders(versionId));
}

export async function handleGetObjectRetention(context: RequestContext): Promise<S3Response> {
  const lock = await context.engine.getObjectLock(context.route.bucket, context.route.key, versionIdParameter(context));
  if (lock.retention === undefined) throw new S3Error('NoSuchObjectLockConfiguration');
  const body = element('Mode', lock.retention.mode) + element('RetainUntilDate', isoDateOf(lock.retention.retainUntilMs));
  return xmlResponse(document('Retention', body), 200, versionHeaders(lock.versionId));
}

export async function handlePutObjectLegalHold(context: RequestContext): Promise<S3Response> {
  const root = await readDocument(context, 'LegalHold');
  const status = textOf(root['Status']);
  if (status !== 'ON' && status !== 'OFF') throw new S3Error('MalformedXML');
  const versionId = await context.engine.setObjectLegalHold(context.route.bucket, context.route.key, versionIdParameter(context), status === 'ON');
  return emptyResponse(200, versionHeaders(versionId));
}

export async function handleGetObjectLegalHold(context: RequestContext): Promise<S3Response> {
  const lock = await context.engine.getObjectLock(context.route.bucket, context.route.key, versionIdParameter(context));
  if (lock.legalHold === undefined) throw new S3Error('NoSuchObjectLockConfiguration');
  return xmlResponse(document('LegalHold', element('Status', lock.legalHold ? 'ON' : 'OFF')), 200, versionHeaders(lock.versionId));
}
