/**
 * The HTTP front: node:http with streaming bodies both ways. One request path,
 * top to bottom: address → route → verify signature → authorize → handler →
 * response.
 * It is also the only place that turns an error into an HTTP response.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { verifyRequest } from '../auth/index.ts';
import { releaseFeed } from '../auth/payload.ts';
import { type Principal, isAuthzError } from '../authz/index.ts';
import type { Engine } from '../engine/engine.ts';
import { OPERATIONS } from '../s3/operations.ts';
import { type PrincipalDirectory, RequestAccess, authorizeRequest, requestFacts } from '../s3/access.ts';
import type { RequestContext, S3Response } from '../s3/context.ts';
import { isDirectBody } from '../util/direct-body.ts';
import { nextRequestNumber, requestIdOf } from '../util/ids.ts';
import {
  CONNECTIONS_MAX,
  CONNECTIONS_SWEEP_INTERVAL_MS,
  HEADER_BYTES_MAX,
  HEADERS_TIMEOUT_MS,
  KEEP_ALIVE_IDLE_TIMEOUT_MS,
  REQUEST_IDLE_TIMEOUT_MS,
} from '../util/limits.ts';
import { ConnectionGuard } from './connection-guard.ts';
import { S3Error, isS3Error } from '../util/s3-error.ts';
import type { Logger } from '../util/logger.ts';
import { answerPreflight, decorateCorsResponse } from './cors.ts';
import { answerHealthProbe } from './health.ts';
import { CONSOLE_SOURCE_HEADER, openConsoleSource } from './console-source.ts';
import type { ObservedRequest, RequestObserver } from '../metrics/observed-request.ts';
import { parseQuery, resolveAddress, route } from './route.ts';
import { element, escapeXml, XML_DECLARATION } from './xml.ts';

export interface FrontOptions {
  engine: Engine;
  /** Access keys and who they belong to (PrincipalCache). */
  principals: PrincipalDirectory;
  region: string;
  /** Base domain for virtual-host-style addressing (`<bucket>.<domain>`). */
  domain: string | undefined;
  logger: Logger;
  /** Open connections before idle ones are shed (default CONNECTIONS_MAX). */
  connectionsMax?: number;
  /** Told about every request (metrics, the access log); absent: nothing is measured. */
  observer?: RequestObserver | undefined;
  /** The key that seals the console's calls with its browser's address (console-source.ts); absent: no console's header is believed. */
  consoleSourceKey?: Buffer | undefined;
}

/** When a response's headers went out (performance.now()) and its Content-Length; filled by sendResponse/sendError. */
interface Timing {
  headersSentMs: number;
  bytesOut: number;
}

export function createS3Server(options: FrontOptions): Server {
  const guard = new ConnectionGuard(options.connectionsMax ?? CONNECTIONS_MAX);
  const server = createServer(
    {
      maxHeaderSize: HEADER_BYTES_MAX,
      // No bound on a whole request: uploads of 5 GiB over slow links are fine
      // while bytes keep coming (server.timeout below). Headers are bounded.
      requestTimeout: 0,
      headersTimeout: HEADERS_TIMEOUT_MS,
      connectionsCheckingInterval: CONNECTIONS_SWEEP_INTERVAL_MS,
      keepAliveTimeout: KEEP_ALIVE_IDLE_TIMEOUT_MS,
    },
    (request, response) => {
      guard.requestStarted(request, response);
      void handleRequest(options, request, response);
    },
  );
  server.timeout = REQUEST_IDLE_TIMEOUT_MS;
  // The cap is the guard's (it sheds idle connections at the cap instead of refusing new ones).
  guard.attach(server);
  // Expect: 100-continue is answered only once the request is authorized and
  // routed, so a refused upload is refused before its body is sent.
  server.on('checkContinue', (request: IncomingMessage, response: ServerResponse) => {
    guard.requestStarted(request, response);
    void handleRequest(options, request, response, true);
  });
  // Other Expect values are ignored, as S3 does, instead of node's 417.
  server.on('checkExpectation', (request: IncomingMessage, response: ServerResponse) => {
    guard.requestStarted(request, response);
    void handleRequest(options, request, response);
  });
  server.on('clientError', (error: NodeJS.ErrnoException, socket: Socket) => onClientError(error, socket));
  return server;
}

async function handleRequest(options: FrontOptions, request: IncomingMessage, response: ServerResponse, expectsContinue = false): Promise<void> {
  const requestNumber = nextRequestNumber();
  const requestId = requestIdOf(requestNumber);
  const rawUrl = request.url ?? '/';
  const queryStart = rawUrl.indexOf('?');
  const rawPath = queryStart === -1 ? rawUrl : rawUrl.slice(0, queryStart);
  const rawQuery = queryStart === -1 ? '' : rawUrl.slice(queryStart + 1);
  const method = request.method ?? 'GET';
  if (answerHealthProbe(request, response, rawPath, rawQuery, options.engine)) return;
  const observer = options.observer;
  const startedMs = observer === undefined ? 0 : performance.now();
  observer?.started();
  const timing: Timing = { headersSentMs: 0, bytesOut: 0 };
  let context: RequestContext | undefined;
  let errorCode: string | undefined;
  try {
    if (request.headers.origin !== undefined) await decorateCorsResponse(options.engine, options.domain, request, response, rawPath, method);
    if (method === 'OPTIONS') return await sendResponse(request, response, method, requestId, await answerPreflight(options.engine, options.domain, request, rawPath), timing);
    context = buildContext(options, request, requestId, method, rawPath, rawQuery);
    const operation = OPERATIONS[context.route.operation];
    // The one authorization of the request, before its handler (and before 100-continue: a refused upload sends no body).
    const authorizing = authorizeRequest(context.access, operation.authorization, context.route, request.headers, options.engine);
    if (authorizing !== undefined) await authorizing;
    if (expectsContinue) response.writeContinue();
    const result = await operation.handler(context);
    // Small bodies are written synchronously; only a streamed body returns a promise.
    const streaming = sendResponse(request, response, method, requestId, result, timing);
    if (streaming !== undefined) await streaming;
  } catch (error) {
    errorCode = sendError(options, request, response, method, rawPath, requestId, error, timing);
  } finally {
    releaseFeed(request);
    if (observer !== undefined) observer.finished(observed(request, response, requestId, requestNumber, method, context, startedMs, timing, errorCode));
  }
}

function observed(
  request: IncomingMessage,
  response: ServerResponse,
  requestId: string,
  requestNumber: number,
  method: string,
  context: RequestContext | undefined,
  startedMs: number,
  timing: Timing,
  errorCode: string | undefined,
): ObservedRequest {
  const finishedMs = performance.now();
  const principal = context?.access.principal;
  return {
    requestId,
    requestNumber,
    operation: context?.route.operation ?? (method === 'OPTIONS' ? 'Preflight' : 'Unrouted'),
    bucket: context?.route.bucket ?? '',
    key: context?.route.key ?? '',
    status: response.statusCode,
    startedMs,
    headersSentMs: timing.headersSentMs === 0 ? finishedMs : timing.headersSentMs,
    finishedMs,
    bytesIn: contentLength(request.headers['content-length']),
    bytesOut: timing.bytesOut,
    errorCode,
    principal: principal === undefined || principal.kind === 'anonymous' ? 'anonymous' : principal.kind === 'root' ? 'root' : principal.name,
    accessKeyId: context?.request.accessKeyId ?? undefined,
    remoteAddress: consoleCallers.get(request) ?? request.socket.remoteAddress ?? '',
  };
}

function contentLength(value: string | number | string[] | undefined | null): number {
  const bytes = typeof value === 'number' ? value : typeof value === 'string' ? Number(value) : 0;
  return Number.isSafeInteger(bytes) && bytes > 0 ? bytes : 0;
}

/** Synchronous (no await on the request path for what needs no I/O): route, signature, principal. */
function buildContext(options: FrontOptions, request: IncomingMessage, requestId: string, method: string, rawPath: string, rawQuery: string): RequestContext {
  const address = resolveAddress(rawPath, request.headers.host, options.domain);
  const routed = route(method, address, parseQuery(rawQuery), request.headers);
  const principals = options.principals;
  const verified = verifyRequest({ method, rawPath, rawQuery, headers: request.headers, body: request }, (id) => principals.lookupKey(id)?.secretAccessKey);
  // An unsigned request is the anonymous principal; a signed one is its key's (verification refused bad signatures already).
  let principal: Principal = ANONYMOUS;
  if (verified.accessKeyId !== null) {
    const found = principals.lookupKey(verified.accessKeyId);
    if (found === undefined) throw new S3Error('InvalidAccessKeyId');
    principal = found.principal;
  }
  const facts = requestFacts(request, routed.query, Date.now());
  // The console's call on a browser's behalf is judged (and logged) with the browser's address and transport.
  if (request.headers[CONSOLE_SOURCE_HEADER] !== undefined) {
    const browser = openConsoleSource(options.consoleSourceKey, request.headers);
    if (browser !== undefined) {
      facts.sourceIp = browser.sourceIp;
      facts.secureTransport = browser.secureTransport;
      consoleCallers.set(request, browser.sourceIp);
    }
  }
  const access = new RequestAccess(principals, principal, facts);
  return {
    requestId,
    method,
    route: routed,
    headers: request.headers,
    request: verified,
    ownerId: access.canonicalId,
    access,
    engine: options.engine,
    region: options.region,
  };
}

const ANONYMOUS: Principal = Object.freeze({ kind: 'anonymous' });
/** The browser behind each console call (its sealed address), for the access log and the audit of refusals. */
const consoleCallers = new WeakMap<IncomingMessage, string>();

/** Headers every response carries, errors included. */
function baseHeaders(requestId: string): Record<string, string> {
  return { 'x-amz-request-id': requestId, 'x-amz-id-2': requestId, server: 'Talus' };
}

/**
 * A string body longer than this (a listing page: ~200 KB of XML) is written
 * as a Buffer. V8 keeps strings over ~128 KiB in its large-object space,
 * freed only by a full mark-compact; node:http would flatten such a body twice
 * (its length, then headers + body as one string), leaving two dead copies
 * in the old generation per response (docs/PERFORMANCE.md, "Memory, round 3").
 */
const FLAT_STRING_BODY_CHARS_MAX = 16 * 1024;

/** Writes the response; a promise only while a streamed body is still flowing (undefined once a small body was written). */
function sendResponse(request: IncomingMessage, response: ServerResponse, method: string, requestId: string, result: S3Response, timing: Timing): Promise<void> | undefined {
  const body = result.body;
  // One header object and one writeHead: node validates and serializes it in
  // a single pass, cheaper than a setHeader per header on the small-object path.
  const headers = baseHeaders(requestId);
  Object.assign(headers, result.headers);
  // An operation that ignores its request body (DeleteObject with a body, say)
  // leaves it unread: close the connection and discard the rest, or the next
  // request on this keep-alive connection would wait behind it.
  if (!request.complete) {
    headers['connection'] = 'close';
    response.once('finish', () => drain(request));
  }
  const bytes = body === undefined || body instanceof Readable || method === 'HEAD' ? undefined : typeof body === 'string' && body.length > FLAT_STRING_BODY_CHARS_MAX ? Buffer.from(body) : body;
  if (bytes !== undefined) headers['content-length'] = String(Buffer.byteLength(bytes));
  else if (body === undefined && method !== 'HEAD') headers['content-length'] ??= '0';
  try {
    response.writeHead(result.status, headers);
    timing.headersSentMs = performance.now();
    if (method !== 'HEAD') timing.bytesOut = contentLength(headers['content-length']);
  } catch (error) {
    // An open body holds read leases on its blobs: release them before answering with the error.
    if (body instanceof Readable) body.destroy();
    throw error;
  }
  if (!(body instanceof Readable) || method === 'HEAD') {
    if (body instanceof Readable) body.destroy();
    // Small bodies (XML, inline objects) go out with the headers in one write.
    response.end(bytes);
    if (result.sent !== undefined) afterBody(response, result.sent);
    return undefined;
  }
  return streamBody(request, response, body);
}

/**
 * Tells `sent` when node lets go of a body given to end(): 'finish' comes
 * from the socket's write callback, when neither node nor libuv references
 * the bytes any more (written, or the connection torn down mid-write: so
 * `true` does not mean delivered); 'close' first means the connection ended
 * while they may still have been queued (a listing page's buffer is then
 * dropped, not reused).
 */
function afterBody(response: ServerResponse, sent: (written: boolean) => void): void {
  if (response.destroyed) {
    sent(false);
    return;
  }
  const onFinish = (): void => {
    response.off('close', onClose);
    sent(true);
  };
  const onClose = (): void => {
    response.off('finish', onFinish);
    sent(false);
  };
  response.once('finish', onFinish);
  response.once('close', onClose);
}

async function streamBody(request: IncomingMessage, response: ServerResponse, body: Readable): Promise<void> {
  try {
    if (isDirectBody(body)) await body.pipeInto(response);
    else await pipeline(body, response);
  } catch {
    // The client went away or a blob read failed mid-stream: headers are sent,
    // so the only honest signal left is to cut the connection.
    response.destroy();
    request.destroy();
  }
}

/** Answers the error; returns its S3 code (for the observer). */
function sendError(options: FrontOptions, request: IncomingMessage, response: ServerResponse, method: string, rawPath: string, requestId: string, error: unknown, timing: Timing): string {
  const s3Error = isS3Error(error)
    ? error
    : isAuthzError(error) ? new S3Error(error.code, error.message, { ...error.details }) : new S3Error('InternalError');
  logFailure(options.logger, request, method, rawPath, requestId, error, s3Error);
  if (response.headersSent) {
    response.destroy();
    return s3Error.code;
  }
  response.statusCode = s3Error.status;
  for (const [name, value] of Object.entries(baseHeaders(requestId))) response.setHeader(name, value);
  for (const [name, value] of Object.entries(s3Error.headers)) response.setHeader(name, value);
  // A request body we did not read to the end cannot be reused on this connection.
  if (!request.complete) response.setHeader('connection', 'close');
  if (method === 'HEAD' || s3Error.status === 304) {
    response.end();
    timing.headersSentMs = performance.now();
    if (!request.complete) drain(request);
    return s3Error.code;
  }
  let details = '';
  for (const [name, value] of Object.entries(s3Error.details)) details += element(name, value);
  const body = `${XML_DECLARATION}<Error>${element('Code', s3Error.code)}${element('Message', s3Error.message)}${details}<Resource>${escapeXml(rawPath)}</Resource>${element('RequestId', requestId)}</Error>`;
  response.setHeader('content-type', 'application/xml');
  timing.bytesOut = Buffer.byteLength(body);
  response.setHeader('content-length', String(timing.bytesOut));
  response.end(body);
  timing.headersSentMs = performance.now();
  if (!request.complete) drain(request);
  return s3Error.code;
}

/**
 * A client that goes away mid-request is routine (a cancelled upload, a
 * timeout on its side): one info line, no stack. Anything else the server
 * answers with a 5xx is an error worth a stack. Never logs headers: they
 * carry the signature.
 */
function logFailure(logger: Logger, request: IncomingMessage, method: string, rawPath: string, requestId: string, error: unknown, s3Error: S3Error): void {
  if (isClientAbort(request, error)) {
    logger.info('request aborted by client', { requestId, method, path: rawPath, reason: errorSummary(error) });
  } else if ((!isS3Error(error) && !isAuthzError(error)) || s3Error.status >= 500) {
    logger.error('request failed', { requestId, method, path: rawPath, error: String((error as Error)?.stack ?? error) });
  }
}

/**
 * The request failed because its connection closed before the body ended:
 * node destroys the request with an 'aborted' ECONNRESET that every stream
 * reading the body passes on unchanged (hence the identity check), or the
 * body verifier saw the request close early and answered IncompleteBody.
 */
function isClientAbort(request: IncomingMessage, error: unknown): boolean {
  if (request.complete || !request.destroyed) return false;
  if (error !== undefined && error === request.errored) return true;
  return isS3Error(error) && error.code === 'IncompleteBody';
}

function errorSummary(error: unknown): string {
  if (isS3Error(error)) return error.code;
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  const message = (error as Error | undefined)?.message ?? String(error);
  return code === undefined ? message : `${code}: ${message}`;
}

/** Errors node:http detects before a request exists, e.g. oversized headers; answered as S3 would. */
function onClientError(error: NodeJS.ErrnoException, socket: Socket): void {
  if (!socket.writable) {
    socket.destroy();
    return;
  }
  const tooLarge = error.code === 'HPE_HEADER_OVERFLOW';
  // Headers not complete within HEADERS_TIMEOUT_MS: S3's own answer to a stalled socket.
  const s3Error = error.code === 'ERR_HTTP_REQUEST_TIMEOUT'
    ? new S3Error('RequestTimeout')
    : new S3Error(tooLarge ? 'RequestHeaderSectionTooLarge' : 'InvalidRequest', tooLarge ? undefined : 'Malformed HTTP request.');
  const body = `${XML_DECLARATION}<Error>${element('Code', s3Error.code)}${element('Message', s3Error.message)}</Error>`;
  socket.end(
    `HTTP/1.1 ${s3Error.status} Bad Request\r\nContent-Type: application/xml\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
  );
}

/** Discards the rest of a request body we answered early (the verifier may still be piped to it). */
function drain(request: IncomingMessage): void {
  request.unpipe();
  request.resume();
}

// In its own module, so the admin listener closes the same way without loading the S3 server.
export { closeGracefully } from './close-gracefully.ts';
