/**
 * A listing thread (see listing-threads.ts): its own read-only connection to
 * the store's database, running the same listing code as the store, one
 * request at a time, each in its own read transaction.
 *
 * Read-your-writes: a request is posted after everything the caller was told
 * is committed, and its read transaction begins when the thread takes it up,
 * so its WAL snapshot holds every such commit. The thread never keeps a read
 * transaction open between requests (asserted), which would pin an older
 * snapshot.
 */
import { readlinkSync } from 'node:fs';
import { setPriority } from 'node:os';
import { parentPort, workerData } from 'node:worker_threads';
import Database from 'better-sqlite3';
import { assert } from '../../util/assert.ts';
import type { KeysPageRenderer, ListRequest, PageRenderer, PageRendering, RenderedPage } from '../metadata-store.ts';
import { listKeysPage, listShownKeysInto, listUploads, listVersionsPage, versionsResult } from './listing.ts';
import type { ListingThreadData, ListingThreadReply, ListingThreadRequest } from './listing-threads.ts';

const data = workerData as ListingThreadData;
const port = parentPort;
if (port === null) throw new Error('listing-thread.ts runs only as a worker thread');

/**
 * The thread runs at a lower scheduling priority than the event loop (Linux
 * nice 5: about a third of its CPU share when both want a core), so on a
 * busy machine a page being read and rendered yields to the GET the event
 * loop has to answer (issue 17: probe GETs under 32 listers). Linux takes a
 * thread ID for setpriority, and /proc/thread-self names the calling thread;
 * elsewhere (or if refused) the thread keeps the process's priority.
 */
const LISTING_THREAD_NICE = 5;
try {
  setPriority(Number(readlinkSync('/proc/thread-self').split('/').at(-1)), LISTING_THREAD_NICE);
} catch {
  // Not Linux, or not allowed: the same priority as the event loop.
}

const db = new Database(data.databasePath, { readonly: true, fileMustExist: true });
// Readers in WAL mode wait only while another connection recovers the WAL; this thread may wait, the event loop does not.
db.pragma(`busy_timeout = ${data.busyTimeoutMs}`);
// The serving connection's page-cache bound (sqlite-metadata-store.ts), so a listing thread holds no more than it.
db.pragma(`cache_size = -${data.pageCacheKib}`);
// The caller's page renderer (the S3 front's XML), imported by URL: the store never imports the layers above it.
const renderer = data.rendererUrl === undefined ? undefined : ((await import(data.rendererUrl)) as { renderPage: PageRenderer; renderKeysPage: KeysPageRenderer; reusePageBuffers(buffers: readonly ArrayBuffer[]): void });
const renderPage = renderer?.renderPage;

/** A key page rendered as it is read (KeysPageRenderer: the page's entries never all live at once; its rows, packed strings, do). */
function renderedKeys(request: ListRequest, rendering: PageRendering): RenderedPage {
  const page = renderer!.renderKeysPage(rendering);
  const walked = listShownKeysInto(db, request, rendering.owners, Infinity, (entry) => page.add(entry));
  assert(walked !== undefined, 'a walk without a step limit always ends');
  return page.finish(walked.isTruncated);
}

function answer(request: ListingThreadRequest): ListingThreadReply {
  if (db.inTransaction) throw new Error('a listing thread began a request inside a read transaction');
  switch (request.kind) {
    case 'keys':
      if (request.rendering !== undefined) return { id: request.id, result: rendered(() => renderedKeys(request.request, request.rendering!)) };
      return { id: request.id, result: listKeysPage(db, request.request) };
    case 'versions':
      if (request.rendering !== undefined) return { id: request.id, result: rendered(() => renderPage!({ kind: 'versions', result: versionsResult(request.request, listVersionsPage(db, request.request)) }, request.rendering!)) };
      return { id: request.id, result: listVersionsPage(db, request.request) };
    case 'uploads':
      return { id: request.id, result: listUploads(db, request.request) };
  }
}

function rendered(render: () => RenderedPage): RenderedPage {
  if (renderPage === undefined) throw new Error('a listing thread was asked to render without a renderer');
  return render();
}

/** A rendered page's arrays move to the event loop (transferred, not copied). */
function transferOf(reply: ListingThreadReply): ArrayBuffer[] {
  if (!('result' in reply) || !('bytes' in reply.result)) return [];
  const page = reply.result;
  return [page.bytes.buffer as ArrayBuffer, page.ownerAt.buffer as ArrayBuffer, page.ownerIndex.buffer as ArrayBuffer];
}

port.on('message', (message: ListingThreadRequest | 'stop') => {
  if (message === 'stop') {
    db.close();
    port.close();
    return;
  }
  // Buffers of pages already written, for this and later pages (the renderer's pool).
  if (message.spare !== undefined) renderer?.reusePageBuffers(message.spare);
  let reply: ListingThreadReply;
  try {
    reply = answer(message);
  } catch (error) {
    reply = { id: message.id, error: error instanceof Error ? `${error.name}: ${error.message}` : String(error) };
  }
  port.postMessage(reply, transferOf(reply));
});
port.postMessage({ ready: true } satisfies ListingThreadReply);
