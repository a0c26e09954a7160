/**
 * POST Object: an HTML form upload (multipart/form-data on the bucket's URL).
 * The form is parsed as a stream: fields up to the `file` part are held
 * (bounded), then the policy and signature are checked, the key is
 * authorized for the form's signer, and the file part streams straight into
 * the engine's put, its size checked against content-length-range as bytes
 * arrive (too big stops the upload; nothing is committed). Fields after the
 * file are ignored, as AWS ignores them. Lock fields (x-amz-object-lock-*)
 * and Content-MD5 mean what PutObject's headers mean, permissions and the
 * rule that a locked upload carries Content-MD5 or a checksum included.
 * https://docs.aws.amazon.com/AmazonS3/latest/API/RESTObjectPOST.html
 */
import busboy from 'busboy';
import type { IncomingHttpHeaders } from 'node:http';
import type { Readable } from 'node:stream';
import { checkPostPolicy, parsePostPolicy, verifyPostSignature } from '../auth/post-policy.ts';
import type { Principal } from '../authz/index.ts';
import { XML_DECLARATION, element } from '../http/xml.ts';
import { OBJECT_TAGS_MAX, POST_FORM_FIELD_BYTES_MAX, POST_FORM_FIELDS_MAX, PUT_OBJECT_BYTES_MAX } from '../util/limits.ts';
import { S3Error, isS3Error } from '../util/s3-error.ts';
import { authorizeFormUpload } from './access.ts';
import { parseTagging } from './bucket.ts';
import { emptyResponse, xmlResponse, type RequestContext, type S3Response } from './context.ts';
import { formatEtag, parseAttributes, parseChecksumRequest, parseContentMd5 } from './headers.ts';
import { parseLockHeaders } from './object-lock.ts';
import { checkKey, checksumHeaders } from './object.ts';

interface FormUpload {
  /** Fields before the file, names lower-cased (AWS: field names are case-insensitive). */
  fields: Map<string, string>;
  file: Readable;
  filename: string;
}

export async function handlePostObject(context: RequestContext): Promise<S3Response> {
  const form = await readFormUntilFile(context);
  try {
    return await uploadForm(context, form);
  } finally {
    // On refusal the file was never read (or read in part): let it flow away only until the answer is out. The
    // front sees the request incomplete, answers with Connection: close, and node closes the socket once the
    // answer is written, so the rest of a large form is never read (test/fixes-post-object.test.ts).
    form.file.resume();
  }
}

async function uploadForm(context: RequestContext, form: FormUpload): Promise<S3Response> {
  const { fields } = form;
  const bucketName = context.route.bucket;
  // Form fields never choose the bucket: the URL does.
  const bucketField = fields.get('bucket');
  if (bucketField !== undefined && bucketField !== bucketName) throw new S3Error('AccessDenied', 'Invalid according to Policy: the bucket field does not name the bucket of the URL.');
  const keyTemplate = fields.get('key');
  if (keyTemplate === undefined || keyTemplate === '') {
    throw new S3Error('InvalidArgument', 'Bucket POST must contain a field named \'key\'.  If it is specified, please check the order of the fields.', { ArgumentName: 'key', ArgumentValue: '' });
  }
  // The policy judges the key as it will be stored, ${filename} replaced (AWS, Ceph RGW).
  const key = keyTemplate.replaceAll('${filename}', form.filename);
  fields.set('key', key);
  const { principal, minBytes, maxBytes } = formSigner(context, fields);
  checkKey(key);
  const headers = headersOfForm(fields);
  const tagging = fields.get('tagging');
  const tags = tagging === undefined || tagging === '' ? [] : parseTagging(tagging, OBJECT_TAGS_MAX);
  const bucket = await context.engine.getBucket(bucketName);
  // Lock fields as PutObject's headers: validated, and (by authorizeFormUpload) s3:PutObjectRetention / s3:PutObjectLegalHold.
  const lock = parseLockHeaders(headers, Date.now());
  const writer = authorizeFormUpload(context.access, principal, bucket, key, headers, tags.length > 0);
  const { ownerId, acl } = writer.objectWrite(bucket, headers);
  const attributes = parseAttributes(headers);
  attributes.tags = tags;
  const result = await context.engine.putObject({
    bucket: bucketName,
    key,
    ownerId,
    acl,
    body: { stream: sizeChecked(form.file, minBytes, Math.min(maxBytes ?? PUT_OBJECT_BYTES_MAX, PUT_OBJECT_BYTES_MAX)), trailers: new Map() },
    attributes,
    // A locked upload needs Content-MD5 or a checksum (the engine's rule for PutObject): as form fields here.
    contentMd5: parseContentMd5(headers),
    checksum: parseChecksumRequest(headers, []),
    conditions: {},
    lock,
  });
  const location = `http://${context.headers.host ?? 'localhost'}/${encodePath(bucketName)}/${encodePath(key)}`;
  const answer: Record<string, string> = { etag: formatEtag(result.etag), location, ...checksumHeaders(result.checksum, null) };
  if (result.versionId !== undefined) answer['x-amz-version-id'] = result.versionId;
  return successResponse(fields, bucketName, key, result.etag, location, answer);
}

/**
 * Who signed the form, its policy checked (expiration, conditions, fields),
 * and the file sizes the policy allows. A form with neither policy nor
 * signature is the request's own principal: anonymous, for a browser form.
 */
function formSigner(context: RequestContext, fields: ReadonlyMap<string, string>): { principal: Principal; minBytes: number; maxBytes: number | undefined } {
  const directory = context.access.directory;
  const accessKeyId = verifyPostSignature(fields, (id) => directory.lookupKey(id)?.secretAccessKey);
  if (accessKeyId === null) return { principal: context.access.principal, minBytes: 0, maxBytes: undefined };
  const found = directory.lookupKey(accessKeyId);
  if (found === undefined) throw new S3Error('InvalidAccessKeyId', undefined, { AWSAccessKeyId: accessKeyId });
  const sizes = checkPostPolicy(parsePostPolicy(fields.get('policy') as string), fields, context.route.bucket, Date.now());
  return { principal: found.principal, ...sizes };
}

/**
 * success_action_redirect (or the older `redirect`): 303 to it with bucket,
 * key and ETag in the query; else success_action_status 200 or 201 (with a
 * PostResponse document); anything else 204, as AWS answers.
 */
function successResponse(fields: ReadonlyMap<string, string>, bucket: string, key: string, etag: string, location: string, headers: Record<string, string>): S3Response {
  const redirect = fields.get('success_action_redirect') ?? fields.get('redirect');
  if (redirect !== undefined && URL.canParse(redirect)) {
    const query = `bucket=${encodeURIComponent(bucket)}&key=${encodeURIComponent(key)}&etag=${encodeURIComponent(formatEtag(etag))}`;
    return emptyResponse(303, { ...headers, location: `${redirect}${redirect.includes('?') ? '&' : '?'}${query}` });
  }
  const status = fields.get('success_action_status');
  if (status === '200') return emptyResponse(200, headers);
  if (status === '201') {
    const body = element('Location', location) + element('Bucket', bucket) + element('Key', key) + element('ETag', formatEtag(etag));
    // AWS's PostResponse carries no namespace (clients look up <Key> unqualified).
    return xmlResponse(`${XML_DECLARATION}<PostResponse>${body}</PostResponse>`, 201, headers);
  }
  return emptyResponse(204, headers);
}

function encodePath(text: string): string {
  return text.split('/').map(encodeURIComponent).join('/');
}

/** Form fields that mean what the same-named headers mean on PutObject. */
const HEADER_FIELDS = new Set([
  'content-type', 'cache-control', 'content-disposition', 'content-encoding', 'content-language', 'expires', 'content-md5',
  'x-amz-object-lock-mode', 'x-amz-object-lock-retain-until-date', 'x-amz-object-lock-legal-hold',
]);

function headersOfForm(fields: ReadonlyMap<string, string>): IncomingHttpHeaders {
  const headers: IncomingHttpHeaders = {};
  for (const [name, value] of fields) {
    if (name === 'acl') headers['x-amz-acl'] = value;
    else if (HEADER_FIELDS.has(name) || name.startsWith('x-amz-meta-') || name.startsWith('x-amz-checksum-') || name.startsWith('x-amz-grant-')) headers[name] = value;
  }
  return headers;
}

/** The file's bytes, failing (before the end, so nothing commits) outside [minBytes, maxBytes]. */
async function* sizeChecked(file: Readable, minBytes: number, maxBytes: number): AsyncGenerator<Buffer> {
  let sizeBytes = 0;
  try {
    for await (const chunk of file) {
      sizeBytes += (chunk as Buffer).length;
      if (sizeBytes > maxBytes) throw new S3Error('EntityTooLarge', 'Your proposed upload exceeds the maximum allowed size', { MaxSizeAllowed: String(maxBytes) });
      yield chunk as Buffer;
    }
  } catch (error) {
    // busboy ends a file part cut short (no closing boundary) with a plain Error: the form was malformed.
    throw isS3Error(error) ? error : new S3Error('MalformedPOSTRequest');
  }
  if (sizeBytes < minBytes) throw new S3Error('EntityTooSmall', 'Your proposed upload is smaller than the minimum allowed size', { MinSizeAllowed: String(minBytes), ProposedSize: String(sizeBytes) });
}

/**
 * Parses the form up to its `file` part and hands that part over unread
 * (busboy waits for it to be consumed: backpressure reaches the socket).
 * Every other part is a field, even one sent with a filename (as Python's
 * requests sends them), read into memory within the bounds.
 */
function readFormUntilFile(context: RequestContext): Promise<FormUpload> {
  return new Promise((resolve, reject) => {
    let parser: busboy.Busboy;
    try {
      parser = busboy({ headers: context.headers, defParamCharset: 'utf8', limits: { fieldSize: POST_FORM_FIELD_BYTES_MAX, fieldNameSize: 256 } });
    } catch {
      reject(new S3Error('MalformedPOSTRequest'));
      return;
    }
    const fields = new Map<string, string>();
    const pending: Promise<void>[] = [];
    let partCount = 0;
    let found = false;
    let file: Readable | undefined;
    const fail = (error: unknown): void => {
      if (found) return;
      found = true;
      context.request.body.unpipe(parser);
      reject(isS3Error(error) ? error : new S3Error('MalformedPOSTRequest'));
    };
    const addField = (name: string, value: string): void => {
      if (++partCount > POST_FORM_FIELDS_MAX) throw new S3Error('InvalidArgument', `A POST form may have at most ${POST_FORM_FIELDS_MAX} fields.`);
      // The first occurrence counts, as for query parameters.
      if (!fields.has(name.toLowerCase())) fields.set(name.toLowerCase(), value);
    };
    parser.on('field', (name, value, info) => {
      if (found) return;
      try {
        if (info.valueTruncated || info.nameTruncated) throw new S3Error('InvalidArgument', `The form field ${name.slice(0, 64)} is too long.`);
        addField(name, value);
      } catch (error) {
        fail(error);
      }
    });
    parser.on('file', (name, stream, info) => {
      if (found) {
        stream.resume();
        return;
      }
      if (name.toLowerCase() === 'file') {
        found = true;
        file = stream;
        // Fields sent as file parts may still be draining into memory: the form is complete once they are.
        void Promise.all(pending).then(
          () => resolve({ fields, file: stream, filename: info.filename ?? '' }),
          (error: unknown) => {
            stream.resume();
            reject(error);
          },
        );
        return;
      }
      pending.push(readFieldPart(stream).then((value) => addField(name, value)));
      pending.at(-1)?.catch(fail);
    });
    parser.on('error', fail);
    parser.on('close', () => fail(new S3Error('InvalidArgument', 'POST requires exactly one file upload per request.', { ArgumentName: 'file', ArgumentValue: '0' })));
    // pipe() does not pass errors on: a body cut short (or failing verification) must fail the file being stored.
    context.request.body.on('error', (error) => (file === undefined ? fail(error) : file.destroy(error)));
    context.request.body.pipe(parser);
  });
}

async function readFieldPart(stream: Readable): Promise<string> {
  const chunks: Buffer[] = [];
  let sizeBytes = 0;
  for await (const chunk of stream) {
    sizeBytes += (chunk as Buffer).length;
    if (sizeBytes > POST_FORM_FIELD_BYTES_MAX) {
      stream.resume();
      throw new S3Error('InvalidArgument', 'A form field is too long.');
    }
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks, sizeBytes).toString('utf8');
}
