// The multipart uploads this browser began and has not finished, remembered
// in localStorage so that one can be resumed after the page was closed or
// reloaded: where it goes (bucket, key, uploadId), which file it sends (name,
// size, lastModified) and how it was cut (partSize). Nothing else — no
// credential, no part data: the session stays in its HttpOnly cookie, and
// the parts the server holds are asked for again (ListParts) at resume.

const STORAGE_KEY = 'talus.console.uploads';
/** Entries kept at most (the oldest go first): a bound on what one page reads and checks. */
const ENTRIES_MAX = 100;
/**
 * Entries older than this are forgotten (not aborted). Talus keeps an
 * incomplete upload until it is aborted or a lifecycle rule's
 * AbortIncompleteMultipartUpload removes it — the server has no lifetime of
 * its own — so this is the browser's: an upload unfinished for 30 days is
 * left to the operator (Queues: incomplete uploads) and the lifecycle rules.
 */
const REMEMBER_MS_MAX = 30 * 24 * 3600 * 1000;

function isEntry(value) {
  return typeof value === 'object' && value !== null
    && typeof value.bucket === 'string' && typeof value.key === 'string' && typeof value.uploadId === 'string'
    && typeof value.name === 'string' && Number.isSafeInteger(value.size) && Number.isSafeInteger(value.lastModified)
    && Number.isSafeInteger(value.partSize) && value.partSize > 0 && Number.isSafeInteger(value.startedMs);
}

/** The entries still young enough; anything unreadable counts as nothing remembered. */
function readAll() {
  let values;
  try {
    values = JSON.parse(localStorage.getItem(STORAGE_KEY) ?? '[]');
  } catch {
    return [];
  }
  if (!Array.isArray(values)) return [];
  const oldest = Date.now() - REMEMBER_MS_MAX;
  return values.filter((value) => isEntry(value) && value.startedMs >= oldest);
}

function writeAll(entries) {
  try {
    if (entries.length === 0) localStorage.removeItem(STORAGE_KEY);
    else localStorage.setItem(STORAGE_KEY, JSON.stringify(entries.slice(-ENTRIES_MAX)));
  } catch {
    // Storage full or refused (a private window's policy): the upload still runs, it just cannot be resumed after a reload.
  }
}

/** Remembers an upload just created (entry: bucket, key, uploadId, name, size, lastModified, partSize). */
export function rememberUpload(entry) {
  const remembered = { ...entry, startedMs: Date.now() };
  if (!isEntry(remembered)) throw new Error('rememberUpload: incomplete entry');
  writeAll([...readAll().filter((one) => one.uploadId !== entry.uploadId), remembered]);
}

/** Forgets an upload (completed, aborted, or gone from the server). */
export function forgetUpload(uploadId) {
  writeAll(readAll().filter((one) => one.uploadId !== uploadId));
}

/** The bucket's remembered uploads, oldest first. */
export function rememberedUploads(bucket) {
  const entries = readAll();
  writeAll(entries);
  return entries.filter((one) => one.bucket === bucket);
}

/** Whether a picked file is the one a remembered upload was sending: same name, size and modification time. */
export function isSameFile(entry, file) {
  return entry.name === file.name && entry.size === file.size && entry.lastModified === file.lastModified;
}

/** The newest remembered upload of this file to bucket/key, or undefined. */
export function rememberedUploadOf(bucket, key, file) {
  return rememberedUploads(bucket).reverse().find((one) => one.key === key && isSameFile(one, file));
}
