/** Multipart upload operations. */
import { addExpirationHeader } from './lifecycle.ts';
import { type ChecksumAlgorithm, CHECKSUM_ALGORITHMS, checksumHeaderName } from '../util/checksum.ts';
import { LIST_PARTS_MAX, PART_BYTES_MAX, PART_NUMBER_MAX } from '../util/limits.ts';
import { S3Error } from '../util/s3-error.ts';
import type { CompletePartInput } from '../engine/multipart.ts';
import { document, element, listOf, objectOf, parseXml, textOf } from '../http/xml.ts';
import { emptyResponse, queryInteger, readSmallBody, xmlResponse, type RequestContext, type S3Response } from './context.ts';
import {
  formatEtag,
  header,
  isoDateOf,
  parseAttributes,
  parseChecksumAlgorithmHeader,
  parseChecksumRequest,
  parseChecksumType,
  parseContentMd5,
  parseWriteConditions,
  unquoteEtag,
} from './headers.ts';
import { checkDeclaredLength, checkKey, checksumHeaders, parseCopySource } from './object.ts';
import { parseLockHeaders } from './object-lock.ts';

function uploadIdOf(context: RequestContext): string {
  const uploadId = context.route.query.get('uploadId');
  if (uploadId === undefined || uploadId === '') throw new S3Error('NoSuchUpload');
  return uploadId;
}

function partNumberOf(context: RequestContext): number {
  const text = context.route.query.get('partNumber') ?? '';
  if (!/^\d+$/.test(text) || Number(text) < 1 || Number(text) > PART_NUMBER_MAX) {
    throw new S3Error('InvalidArgument', `Part number must be an integer between 1 and ${PART_NUMBER_MAX}, inclusive`, { ArgumentName: 'partNumber', ArgumentValue: text });
  }
  return Number(text);
}

export async function handleCreateMultipartUpload(context: RequestContext): Promise<S3Response> {
  checkKey(context.route.key);
  const { ownerId, acl } = context.access.objectWrite(await context.engine.getBucket(context.route.bucket), context.headers);
  const upload = await context.engine.createMultipartUpload({
    bucket: context.route.bucket,
    key: context.route.key,
    ownerId,
    acl,
    attributes: parseAttributes(context.headers),
    checksumAlgorithm: parseChecksumAlgorithmHeader(context.headers),
    checksumType: parseChecksumType(context.headers),
    lock: parseLockHeaders(context.headers, Date.now()),
  });
  const headers: Record<string, string> = {};
  if (upload.checksumAlgorithm !== null && upload.checksumType !== null) {
    headers['x-amz-checksum-algorithm'] = upload.checksumAlgorithm;
    headers['x-amz-checksum-type'] = upload.checksumType;
  }
  return xmlResponse(
    document('InitiateMultipartUploadResult', element('Bucket', upload.bucket) + element('Key', upload.key) + element('UploadId', upload.uploadId)),
    200,
    headers,
  );
}

export async function handleUploadPart(context: RequestContext): Promise<S3Response> {
  const partNumber = partNumberOf(context);
  checkDeclaredLength(context, PART_BYTES_MAX);
  const { part, checksumAlgorithm } = await context.engine.uploadPart({
    bucket: context.route.bucket,
    key: context.route.key,
    uploadId: uploadIdOf(context),
    partNumber,
    body: { stream: context.request.body, trailers: context.request.trailers, declaredBytes: context.request.decodedContentLength },
    contentMd5: parseContentMd5(context.headers),
    checksum: parseChecksumRequest(context.headers, context.request.announcedTrailers),
  });
  const headers: Record<string, string> = { etag: formatEtag(part.etag) };
  if (part.checksum !== null && checksumAlgorithm !== undefined) headers[checksumHeaderName(checksumAlgorithm)] = part.checksum;
  return emptyResponse(200, headers);
}

export async function handleUploadPartCopy(context: RequestContext): Promise<S3Response> {
  const partNumber = partNumberOf(context);
  await readSmallBody(context, 0);
  const source = parseCopySource(context.headers);
  // As CopyObject: the source is read with the caller's rights, judged before its conditional headers.
  source.gate = context.access.copySourceGate(source);
  const { part, sourceVersionId, checksumAlgorithm } = await context.engine.uploadPartCopy({
    bucket: context.route.bucket,
    key: context.route.key,
    uploadId: uploadIdOf(context),
    partNumber,
    source,
  });
  return xmlResponse(
    // The part's checksum in the upload's algorithm, as UploadPart answers it (S3's CopyPartResult has it too).
    document('CopyPartResult', element('LastModified', isoDateOf(part.lastModifiedMs)) + element('ETag', formatEtag(part.etag)) +
      (part.checksum === null || checksumAlgorithm === undefined ? '' : element(`Checksum${checksumAlgorithm}`, part.checksum))),
    200,
    sourceVersionId === undefined ? {} : { 'x-amz-copy-source-version-id': sourceVersionId },
  );
}

function parseCompleteParts(body: string): CompletePartInput[] {
  const root = parseXml(body, 'CompleteMultipartUpload');
  const parts: CompletePartInput[] = [];
  for (const node of listOf(root['Part'])) {
    const part = objectOf(node);
    const partNumberText = textOf(part['PartNumber']);
    const etag = textOf(part['ETag']);
    if (partNumberText === undefined || etag === undefined || !/^\d+$/.test(partNumberText)) throw new S3Error('MalformedXML');
    let checksum: string | undefined;
    for (const algorithm of CHECKSUM_ALGORITHMS) checksum ??= textOf(part[`Checksum${algorithm}`]);
    parts.push({ partNumber: Number(partNumberText), etag: unquoteEtag(etag), checksum });
  }
  if (parts.length > PART_NUMBER_MAX) throw new S3Error('MalformedXML');
  return parts;
}

export async function handleCompleteMultipartUpload(context: RequestContext): Promise<S3Response> {
  const uploadId = uploadIdOf(context);
  const parts = parseCompleteParts(await readSmallBody(context));
  let expectedChecksum: { algorithm: ChecksumAlgorithm; value: string } | undefined;
  for (const algorithm of CHECKSUM_ALGORITHMS) {
    const value = header(context.headers, checksumHeaderName(algorithm));
    if (value !== undefined) expectedChecksum = { algorithm, value };
  }
  const result = await context.engine.completeMultipartUpload({
    bucket: context.route.bucket,
    key: context.route.key,
    uploadId,
    parts,
    conditions: parseWriteConditions(context.headers),
    expectedChecksum,
    checksumType: parseChecksumType(context.headers),
  });
  const headers: Record<string, string> = {};
  if (result.versionId !== undefined) headers['x-amz-version-id'] = result.versionId;
  addExpirationHeader(context, result.bucket, result.version, headers);
  const partsCount = result.version.parts?.length ?? null;
  const checksum = checksumHeaders(result.checksum, partsCount);
  const checksumXml = Object.entries(checksum)
    .map(([name, value]) => (name === 'x-amz-checksum-type' ? element('ChecksumType', value) : element(`Checksum${name.slice('x-amz-checksum-'.length).toUpperCase()}`, value)))
    .join('');
  const location = `/${context.route.bucket}/${context.route.key.split('/').map(encodeURIComponent).join('/')}`;
  return xmlResponse(
    document(
      'CompleteMultipartUploadResult',
      element('Location', location) + element('Bucket', context.route.bucket) + element('Key', context.route.key) + element('ETag', formatEtag(result.etag)) + checksumXml,
    ),
    200,
    headers,
  );
}

export async function handleAbortMultipartUpload(context: RequestContext): Promise<S3Response> {
  await context.engine.abortMultipartUpload(context.route.bucket, context.route.key, uploadIdOf(context));
  return emptyResponse(204);
}

export async function handleListParts(context: RequestContext): Promise<S3Response> {
  const uploadId = uploadIdOf(context);
  const maxParts = queryInteger(context, 'max-parts', LIST_PARTS_MAX, 0, LIST_PARTS_MAX);
  const marker = queryInteger(context, 'part-number-marker', 0, 0, PART_NUMBER_MAX);
  const { upload, parts, isTruncated } = await context.engine.listParts(context.route.bucket, context.route.key, uploadId, marker, maxParts);
  const shown = context.access.displayOwner(upload.ownerId);
  const person = element('ID', shown.id) + element('DisplayName', shown.displayName);
  let body = element('Bucket', upload.bucket) + element('Key', upload.key) + element('UploadId', uploadId);
  body += `<Initiator>${person}</Initiator><Owner>${person}</Owner>${element('StorageClass', 'STANDARD')}`;
  body += element('PartNumberMarker', marker);
  if (parts.length > 0) body += element('NextPartNumberMarker', parts.at(-1)!.partNumber);
  body += element('MaxParts', maxParts) + element('IsTruncated', isTruncated);
  if (upload.checksumAlgorithm !== null) body += element('ChecksumAlgorithm', upload.checksumAlgorithm) + element('ChecksumType', upload.checksumType ?? 'COMPOSITE');
  for (const part of parts) {
    const checksum = part.checksum === null || upload.checksumAlgorithm === null ? '' : element(`Checksum${upload.checksumAlgorithm}`, part.checksum);
    body += `<Part>${element('PartNumber', part.partNumber)}${element('LastModified', isoDateOf(part.lastModifiedMs))}${element('ETag', formatEtag(part.etag))}${element('Size', part.sizeBytes)}${checksum}</Part>`;
  }
  return xmlResponse(document('ListPartsResult', body));
}
