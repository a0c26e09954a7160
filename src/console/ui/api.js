// The console's calls to its server: sessions, the admin API and S3, all
// under /console/. The session lives in an HttpOnly cookie this code cannot
// read; the CSRF token is kept in this module's memory only (never in
// storage) and sent with every change.
import { forgetUpload, rememberUpload } from './upload-memory.js';

let csrfToken = '';

export class ApiError extends Error {
  constructor(status, code, message) {
    super(`${code}: ${message}`);
    this.status = status;
    this.code = code;
  }
}

/** Called when the server says the session is gone (the app shows the login). */
let onSessionLost = () => {};
export function whenSessionLost(callback) {
  onSessionLost = callback;
}

function changeHeaders(extra = {}) {
  return { 'x-talus-csrf': csrfToken, ...extra };
}

async function jsonAnswer(response) {
  const text = await response.text();
  let value;
  try {
    value = text === '' ? {} : JSON.parse(text);
  } catch {
    throw new ApiError(response.status, 'InvalidResponse', `HTTP ${response.status}`);
  }
  if (response.status === 401) onSessionLost();
  if (!response.ok) throw new ApiError(response.status, value.code ?? 'Error', value.message ?? '');
  return value;
}

/** The current session ({ principal, accessKeyId, csrfToken }) or null. */
export async function currentSession() {
  const response = await fetch('/console/api/session', { credentials: 'same-origin' });
  if (response.status === 401) return null;
  const session = await jsonAnswer(response);
  csrfToken = session.csrfToken;
  return session;
}

export async function login(accessKeyId, secretAccessKey) {
  const response = await fetch('/console/api/login', {
    method: 'POST',
    credentials: 'same-origin',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ accessKeyId, secretAccessKey }),
  });
  const session = await jsonAnswer(response);
  csrfToken = session.csrfToken;
  return session;
}

export async function logout() {
  const response = await fetch('/console/api/logout', { method: 'POST', credentials: 'same-origin', headers: changeHeaders() });
  await response.text();
  csrfToken = '';
}

/** POST /console/api/<name> with a JSON body. */
export async function call(name, input = {}) {
  const response = await fetch(`/console/api/${name}`, {
    method: 'POST',
    credentials: 'same-origin',
    headers: changeHeaders({ 'content-type': 'application/json' }),
    body: JSON.stringify(input),
  });
  return jsonAnswer(response);
}

/** An admin API operation, run as the session's key. */
export const admin = (operation, input = {}) => call(`admin/${operation}`, input);

export async function metrics() {
  return jsonAnswer(await fetch('/console/api/metrics', { credentials: 'same-origin' }));
}

// --- S3, through /console/s3/ (the server signs each request with the session's key) ---

export function encodeKey(key) {
  return key.split('/').map(encodeURIComponent).join('/');
}

/** The console URL of an S3 request: /console/s3/<bucket>/<key>?<query>. */
export function s3Url(bucket = '', key = '', query = {}) {
  let url = '/console/s3/';
  if (bucket !== '') url += encodeURIComponent(bucket);
  if (key !== '') url += `/${encodeKey(key)}`;
  const pairs = Object.entries(query).filter(([, value]) => value !== undefined).map(([name, value]) => `${encodeURIComponent(name)}=${encodeURIComponent(value)}`);
  return pairs.length === 0 ? url : `${url}?${pairs.join('&')}`;
}

function errorOf(status, body) {
  const doc = new DOMParser().parseFromString(body, 'application/xml');
  let code = doc.querySelector('Error > Code')?.textContent;
  if (code === undefined) {
    try {
      code = JSON.parse(body).code;
    } catch {
      code = undefined;
    }
  }
  return new ApiError(status, code ?? `HTTP ${status}`, doc.querySelector('Error > Message')?.textContent ?? '');
}

/**
 * An S3 request; answers { status, headers, body } with the body read whole
 * (every answer fetched this way is small: listings, policies, XML), so no
 * connection is held by an unread answer. Throws ApiError with S3's code,
 * also for an error inside a 200 (CompleteMultipartUpload, CopyObject).
 */
export async function s3(method, bucket, key = '', query = {}, { headers = {}, body } = {}) {
  const reading = method === 'GET' || method === 'HEAD';
  const response = await fetch(s3Url(bucket, key, query), {
    method,
    credentials: 'same-origin',
    headers: reading ? headers : changeHeaders(headers),
    body,
  });
  const text = await response.text();
  if (response.status === 401) onSessionLost();
  if (!response.ok || /^(<\?xml[^>]*>\s*)?<Error>/.test(text)) throw errorOf(response.status, text);
  return { status: response.status, headers: response.headers, body: text };
}

export async function s3Xml(method, bucket, key, query, init) {
  const answer = await s3(method, bucket, key, query, init);
  return new DOMParser().parseFromString(answer.body, 'application/xml');
}

const text = (node, name) => node.getElementsByTagName(name)[0]?.textContent ?? '';

export async function listBuckets() {
  const doc = await s3Xml('GET', '');
  return [...doc.getElementsByTagName('Bucket')].map((node) => ({ name: text(node, 'Name'), created: text(node, 'CreationDate') }));
}

/** One page of a bucket's listing under a prefix, folders first. */
export async function listObjects(bucket, prefix, { token, pageSize = 100 } = {}) {
  const doc = await s3Xml('GET', bucket, '', { 'list-type': '2', delimiter: '/', prefix, 'max-keys': String(pageSize), 'continuation-token': token });
  return {
    folders: [...doc.getElementsByTagName('CommonPrefixes')].map((node) => text(node, 'Prefix')),
    objects: [...doc.getElementsByTagName('Contents')].map((node) => ({ key: text(node, 'Key'), size: Number(text(node, 'Size')), modified: text(node, 'LastModified') })),
    next: text(doc, 'IsTruncated') === 'true' ? text(doc, 'NextContinuationToken') : undefined,
  };
}

export async function listVersions(bucket, key) {
  const doc = await s3Xml('GET', bucket, '', { versions: '', prefix: key });
  const entries = [];
  for (const node of doc.documentElement.children) {
    if ((node.tagName !== 'Version' && node.tagName !== 'DeleteMarker') || text(node, 'Key') !== key) continue;
    entries.push({ versionId: text(node, 'VersionId'), latest: text(node, 'IsLatest') === 'true', modified: text(node, 'LastModified'), size: Number(text(node, 'Size') || 0), deleteMarker: node.tagName === 'DeleteMarker' });
  }
  return entries;
}

export async function getVersioning(bucket) {
  return text(await s3Xml('GET', bucket, '', { versioning: '' }), 'Status') || 'Off';
}

export async function setVersioning(bucket, status) {
  const body = `<VersioningConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Status>${status}</Status></VersioningConfiguration>`;
  await s3('PUT', bucket, '', { versioning: '' }, { body, headers: { 'content-type': 'application/xml' } });
}

/** The public-read preset: anyone may GET every object (the admin API's SetBucketPublicRead writes the same policy). */
export function publicReadPolicy(bucket) {
  return JSON.stringify({ Version: '2012-10-17', Statement: [{ Sid: 'TalusPublicRead', Effect: 'Allow', Principal: '*', Action: ['s3:GetObject'], Resource: [`arn:aws:s3:::${bucket}/*`] }] });
}

export async function getPublicRead(bucket) {
  try {
    const policy = (await s3('GET', bucket, '', { policy: '' })).body;
    return policy.includes('TalusPublicRead');
  } catch (error) {
    if (error.code === 'NoSuchBucketPolicy') return false;
    throw error;
  }
}

export async function setPublicRead(bucket, on) {
  if (on) await s3('PUT', bucket, '', { policy: '' }, { body: publicReadPolicy(bucket), headers: { 'content-type': 'application/json' } });
  else await s3('DELETE', bucket, '', { policy: '' });
}

export async function getBucketPolicy(bucket) {
  try {
    return (await s3('GET', bucket, '', { policy: '' })).body;
  } catch (error) {
    if (error.code === 'NoSuchBucketPolicy') return '';
    throw error;
  }
}

/** Sets the bucket policy as written (empty: removes it); S3 validates it. */
export async function setBucketPolicy(bucket, text) {
  if (text.trim() === '') await s3('DELETE', bucket, '', { policy: '' });
  else await s3('PUT', bucket, '', { policy: '' }, { body: text, headers: { 'content-type': 'application/json' } });
}

const escapeXml = (value) => value.replace(/[&<>"']/g, (char) => `&#${char.charCodeAt(0)};`);

/** An object's tags as [[key, value]]. */
export async function getTags(bucket, key) {
  const doc = await s3Xml('GET', bucket, key, { tagging: '' });
  return [...doc.getElementsByTagName('Tag')].map((node) => [text(node, 'Key'), text(node, 'Value')]);
}

export async function setTags(bucket, key, tags) {
  const body = `<Tagging xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><TagSet>${tags.map(([name, value]) => `<Tag><Key>${escapeXml(name)}</Key><Value>${escapeXml(value)}</Value></Tag>`).join('')}</TagSet></Tagging>`;
  await s3('PUT', bucket, key, { tagging: '' }, { body, headers: { 'content-type': 'application/xml' } });
}

const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
const HEADER_VALUE = /^[\x20-\x7e]*$/;

/**
 * Replaces an object's content type and user metadata: a copy onto itself
 * with x-amz-metadata-directive REPLACE (a new version where versioning is on).
 * Names must be HTTP tokens and values printable ASCII (what a header carries as is).
 */
export async function replaceMetadata(bucket, key, contentType, entries) {
  const headers = {
    'x-amz-copy-source': `/${encodeURIComponent(bucket)}/${encodeKey(key)}`,
    'x-amz-metadata-directive': 'REPLACE',
    'content-type': contentType || 'application/octet-stream',
  };
  for (const [name, value] of entries) {
    if (!HEADER_NAME.test(name)) throw new ApiError(400, 'InvalidMetadata', `metadata name ${JSON.stringify(name)}: letters, digits and - _ . only`);
    if (!HEADER_VALUE.test(value)) throw new ApiError(400, 'InvalidMetadata', `metadata ${name}: printable ASCII only here`);
    headers[`x-amz-meta-${name.toLowerCase()}`] = value;
  }
  await s3('PUT', bucket, key, {}, { headers });
}

/** 'key=value' lines → [[key, value]] (blank lines skipped). */
export function parsePairs(textValue) {
  return textValue.split('\n').map((line) => line.trim()).filter((line) => line !== '').map((line) => {
    const at = line.indexOf('=');
    return at === -1 ? [line, ''] : [line.slice(0, at).trim(), line.slice(at + 1).trim()];
  });
}

/** Restores an old version: copies it over the key, making it the latest. */
export async function restoreVersion(bucket, key, versionId) {
  await s3('PUT', bucket, key, {}, { headers: { 'x-amz-copy-source': `/${encodeURIComponent(bucket)}/${encodeKey(key)}?versionId=${encodeURIComponent(versionId)}` } });
}

// --- Uploads: one PUT up to SINGLE_PUT_MAX, else a multipart upload part by part, with progress ---

const SINGLE_PUT_MAX = 8 * 1024 * 1024;
const PART_SIZE_MIN = 8 * 1024 * 1024;
/** S3's limit of parts per upload: larger files get larger parts. */
const PARTS_MAX = 10000;

function xhrPut(url, body, contentType, onProgress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open('PUT', url);
    xhr.setRequestHeader('x-talus-csrf', csrfToken);
    if (contentType) xhr.setRequestHeader('content-type', contentType);
    xhr.upload.onprogress = (event) => onProgress(event.loaded);
    xhr.onload = () => {
      if (xhr.status >= 200 && xhr.status < 300) {
        onProgress(body.size);
        resolve(xhr.getResponseHeader('etag'));
        return;
      }
      if (xhr.status === 401) onSessionLost();
      reject(errorOf(xhr.status, xhr.responseText));
    };
    xhr.onerror = () => reject(new ApiError(0, 'NetworkError', 'the upload failed'));
    xhr.send(body);
  });
}

/** An upload's state: its uploadId, its part size, and the ETags of the parts stored (index: part number - 1; holes: not stored). */
export function newUploadState() {
  return { uploadId: undefined, partSize: undefined, etags: [] };
}

/** The part size of a file: PART_SIZE_MIN, larger where the file would need more than PARTS_MAX parts. */
const partSizeOf = (size) => Math.max(PART_SIZE_MIN, Math.ceil(size / PARTS_MAX));

/** Bytes of part `number` (from 1) of a file cut in partSize parts. */
const partBytes = (size, partSize, number) => Math.min(partSize, size - (number - 1) * partSize);

/**
 * Uploads a File to bucket/key; onProgress(bytesSent, total). A multipart
 * upload keeps its progress in `state` (newUploadState, or resumeState after
 * a reload): after a failure (the network, a part refused) calling upload
 * again with the same state sends only the parts not yet stored;
 * abortUpload gives the upload up. Each multipart upload is remembered in
 * the browser (upload-memory.js) until it completes or is aborted.
 */
export async function upload(bucket, key, file, onProgress, state = newUploadState()) {
  const type = file.type || 'application/octet-stream';
  if (file.size <= SINGLE_PUT_MAX) {
    await xhrPut(s3Url(bucket, key), file, type, (sent) => onProgress(sent, file.size));
    return;
  }
  if (state.uploadId === undefined) {
    state.partSize = partSizeOf(file.size);
    state.uploadId = text(await s3Xml('POST', bucket, key, { uploads: '' }, { headers: { 'content-type': type } }), 'UploadId');
    rememberUpload({ bucket, key, uploadId: state.uploadId, name: file.name, size: file.size, lastModified: file.lastModified, partSize: state.partSize });
  }
  const { uploadId, partSize } = state;
  const partCount = Math.ceil(file.size / partSize);
  let done = 0;
  for (let number = 1; number <= partCount; number++) if (state.etags[number - 1] !== undefined) done += partBytes(file.size, partSize, number);
  onProgress(done, file.size);
  for (let number = 1; number <= partCount; number++) {
    if (state.etags[number - 1] !== undefined) continue;
    const offset = (number - 1) * partSize;
    const part = file.slice(offset, offset + partBytes(file.size, partSize, number));
    const sentBefore = done;
    state.etags[number - 1] = await xhrPut(s3Url(bucket, key, { partNumber: String(number), uploadId }), part, undefined, (sent) => onProgress(sentBefore + sent, file.size));
    done += part.size;
  }
  const parts = state.etags.map((etag, index) => `<Part><PartNumber>${index + 1}</PartNumber><ETag>${escapeXml(etag)}</ETag></Part>`).join('');
  await s3('POST', bucket, key, { uploadId }, { body: `<CompleteMultipartUpload>${parts}</CompleteMultipartUpload>`, headers: { 'content-type': 'application/xml' } });
  forgetUpload(uploadId);
}

/** Every part the server holds of an upload (ListParts, page by page): [{ number, etag, size }]. */
async function listParts(bucket, key, uploadId) {
  const parts = [];
  let marker;
  for (;;) {
    const doc = await s3Xml('GET', bucket, key, { uploadId, 'part-number-marker': marker });
    for (const node of doc.getElementsByTagName('Part')) parts.push({ number: Number(text(node, 'PartNumber')), etag: text(node, 'ETag'), size: Number(text(node, 'Size')) });
    if (text(doc, 'IsTruncated') !== 'true') return parts;
    const next = text(doc, 'NextPartNumberMarker');
    if (next === '' || next === marker) return parts;
    marker = next;
  }
}

/**
 * The state of a remembered upload (upload-memory.js) resumed with `file`,
 * picked again: the parts the server holds (ListParts) that are what this
 * file's slice would be — the same size and an ETag equal to the slice's MD5
 * — count as stored; any other is sent again. The MD5 is what makes resuming
 * safe: a different file with the same name, size and modification time, or
 * one changed in place, would otherwise complete into an object mixing both,
 * as CompleteMultipartUpload checks only that the ETags given are the ones
 * stored. Throws ApiError NoSuchUpload when the upload is gone (completed,
 * aborted, expired by a lifecycle rule): the caller forgets it.
 */
export async function resumeState(bucket, remembered, file) {
  const { md5Hex } = await import('./md5.js');
  const { key, uploadId, partSize } = remembered;
  const partCount = Math.ceil(file.size / partSize);
  const state = { uploadId, partSize, etags: [] };
  for (const part of await listParts(bucket, key, uploadId)) {
    if (!Number.isInteger(part.number) || part.number < 1 || part.number > partCount) continue;
    if (part.size !== partBytes(file.size, partSize, part.number)) continue;
    const offset = (part.number - 1) * partSize;
    const bytes = new Uint8Array(await file.slice(offset, offset + part.size).arrayBuffer());
    if (part.etag.replaceAll('"', '') === md5Hex(bytes)) state.etags[part.number - 1] = part.etag;
  }
  return state;
}

/** Whether a remembered upload still exists on the server (a ListParts of one part; false on NoSuchUpload). */
export async function uploadExists(bucket, key, uploadId) {
  try {
    await s3('GET', bucket, key, { uploadId, 'max-parts': '1' });
    return true;
  } catch (error) {
    if (error.code === 'NoSuchUpload') return false;
    throw error;
  }
}

/** Gives up a multipart upload: its stored parts are deleted, and the browser forgets it. */
export async function abortUpload(bucket, key, state) {
  if (state.uploadId === undefined) return;
  try {
    await s3('DELETE', bucket, key, { uploadId: state.uploadId });
  } catch (error) {
    if (error.code !== 'NoSuchUpload') throw error;
  }
  forgetUpload(state.uploadId);
}
