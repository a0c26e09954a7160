/** DeleteObjects: up to 1000 keys in one request, each deleted on its own, results reported per key. */
import { type PermissionCheck, requiredChecks } from '../authz/index.ts';
import { createHash } from 'node:crypto';
import { DELETE_KEYS_MAX } from '../util/limits.ts';
import { S3Error, isS3Error } from '../util/s3-error.ts';
import { document, element, listOf, objectOf, parseXml, textOf } from '../http/xml.ts';
import { readSmallBodyBytes, xmlResponse, type RequestContext, type S3Response } from './context.ts';
import { deleteConditionsOf, header } from './headers.ts';
import type { DeleteConditions } from '../meta/metadata-store.ts';
import { checkKey } from './object.ts';
import { asksGovernanceBypass, mayBypassGovernance } from './object-lock.ts';

interface DeleteTarget {
  key: string;
  versionId: string | undefined;
  /** <ETag>, <LastModifiedTime>, <Size>: the entry's conditional delete (none when absent). */
  conditions: DeleteConditions;
}

const ENTRY_CONDITION_NAMES = ['ETag', 'LastModifiedTime', 'Size'] as const;

function parseDeleteRequest(body: string): { targets: DeleteTarget[]; quiet: boolean } {
  const root = parseXml(body, 'Delete');
  const targets: DeleteTarget[] = [];
  for (const node of listOf(root['Object'])) {
    const object = objectOf(node);
    const key = textOf(object['Key']);
    if (key === undefined) throw new S3Error('MalformedXML');
    const versionId = textOf(object['VersionId']);
    const conditions = deleteConditionsOf(textOf(object['ETag']), textOf(object['LastModifiedTime']), textOf(object['Size']), ENTRY_CONDITION_NAMES);
    targets.push({ key, versionId: versionId === '' ? undefined : versionId, conditions });
  }
  if (targets.length === 0 || targets.length > DELETE_KEYS_MAX) throw new S3Error('MalformedXML');
  const quietText = textOf(root['Quiet'])?.toLowerCase();
  return { targets, quiet: quietText === 'true' };
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** XML documents are UTF-8 here; anything else is refused rather than read with replacement characters. */
function decodeUtf8(bytes: Buffer): string {
  try {
    return utf8.decode(bytes);
  } catch {
    throw new S3Error('MalformedXML');
  }
}

export async function handleDeleteObjects(context: RequestContext): Promise<S3Response> {
  const body = await readSmallBodyBytes(context);
  // Over the bytes as sent: a body that is not UTF-8 is malformed XML, not a digest mismatch.
  const md5 = header(context.headers, 'content-md5');
  if (md5 !== undefined && createHash('md5').update(body).digest('base64') !== md5) throw new S3Error('BadDigest');
  const { targets, quiet } = parseDeleteRequest(decodeUtf8(body));
  const bucket = await context.engine.getBucket(context.route.bucket);
  const bucketAccess = context.access.bucketAccess(bucket);
  // Each key is authorized on its own (s3:DeleteObject / s3:DeleteObjectVersion): a denied key is an AccessDenied entry.
  const checks = requiredChecks('DeleteObjects', { bucket: bucket.name, objects: targets });
  const asksBypass = asksGovernanceBypass(context);
  let results = '';
  for (const [index, target] of targets.entries()) {
    try {
      if (!context.access.allows(checks[index] as PermissionCheck, { bucket: bucketAccess })) throw new S3Error('AccessDenied');
      checkKey(target.key);
      const bypass = asksBypass && mayBypassGovernance(context, bucketAccess, target.key);
      const result = await context.engine.deleteObject(context.route.bucket, target.key, target.versionId, context.ownerId, target.conditions, bypass);
      if (quiet) continue;
      let inner = element('Key', target.key);
      if (target.versionId !== undefined) inner += element('VersionId', target.versionId);
      if (result.deleteMarker) {
        inner += element('DeleteMarker', true);
        if (result.versionId !== undefined) inner += element('DeleteMarkerVersionId', result.versionId);
      }
      results += `<Deleted>${inner}</Deleted>`;
    } catch (error) {
      if (!isS3Error(error)) throw error;
      results += `<Error>${element('Key', target.key)}${target.versionId === undefined ? '' : element('VersionId', target.versionId)}${element('Code', error.code)}${element('Message', error.message)}</Error>`;
    }
  }
  return xmlResponse(document('DeleteResult', results));
}
