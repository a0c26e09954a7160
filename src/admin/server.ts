/**
 * The admin listener (`--console-address`, default port 9001): the JSON admin
 * API at `POST /talus/admin/v1/<Operation>` and its OpenAPI document at
 * `GET /talus/admin/v1/openapi.json`.
 *
 * A request passes the same gates as an S3 request: the SigV4 signature is
 * verified by src/auth against the same keys (PrincipalCache), and the
 * operation is authorized by src/authz (`admin:<Operation>`) before its body
 * is even read. Every call is logged — operation, caller, status, never the
 * body or the answer, which may hold a new secret.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { type IncomingMessage, type Server, type ServerResponse, createServer } from 'node:http';
import type { Socket } from 'node:net';
import type { Readable } from 'node:stream';
import { verifyRequest } from '../auth/index.ts';
import { type Principal, authorizeAdmin, requestConditionKeys } from '../authz/index.ts';
import type { AuditLog } from '../audit/audit-log.ts';
import type { Engine } from '../engine/engine.ts';
import type { PrincipalCache } from '../principals/principal-cache.ts';
import type { Principals } from '../principals/principals.ts';
import { requestFacts } from '../s3/access.ts';
import { openConsoleSource } from '../http/console-source.ts';
import { newRequestId } from '../util/ids.ts';
import type { Logger } from '../util/logger.ts';
import { S3Error } from '../util/s3-error.ts';
import { AdminError, toAdminError } from './errors.ts';
import { openApiDocument } from './openapi.ts';
import { ADMIN_OPERATIONS, type AdminContext, type AdminServerInfo, isAdminOperationName } from './operations.ts';
import type { AdminStorage } from './define.ts';
import { authenticateBearer, isBearerRequest } from './bearer.ts';
import { type AdminTokens, scopeCovers } from './tokens.ts';
import { ADMIN_PATH_PREFIX, LIVE_PATH, METRICS_PATH, OPENAPI_PATH, READY_PATH } from './paths.ts';
import { type Console, type ConsoleS3Listener, createConsole, isConsolePath } from '../console/console.ts';
import { REQUEST_IDLE_TIMEOUT_MS } from '../util/limits.ts';

/** Requests in progress per socket of this listener (pipelined ones overlap); a socket with any is not closed when idle. */
const requestsInProgress = new WeakMap<Socket, number>();

/** A request body: policies (64 KiB) with room for the JSON around them. */
export const ADMIN_BODY_BYTES_MAX = 128 * 1024;

/** `GET /metrics` on the admin listener. */
export interface MetricsEndpoint {
  /** The Prometheus text of every serving process. */
  render(): Promise<string>;
  /** `Authorization: Bearer <token>` is required unless `public`. Absent and not public: the endpoint refuses everyone. */
  token?: string | undefined;
  public?: boolean | undefined;
}

export interface AdminServerOptions {
  metrics?: MetricsEndpoint | undefined;
  /** Every call and every refusal is recorded here (always on). */
  audit: AuditLog;
  principals: Principals;
  /** The keys and principals the auth path uses (reloaded every 2 s, and at once after a change made here). */
  keys: PrincipalCache;
  /** Other processes' keys (--workers): resolves once all reloaded them, after a change made here. */
  credentialsChanged?: (() => Promise<void>) | undefined;
  engine: Engine;
  server: AdminServerInfo;
  logger: Logger;
  /** The data directory's statistics, queues and backends (GetStorageStats, GetHealStatus, …). */
  storage?: AdminStorage | undefined;
  /** Bearer tokens (`Authorization: Bearer talus_at_…`); absent: only signed calls. */
  tokens?: AdminTokens | undefined;
  /** The S3 listener the console (/console/, src/console/) is a client of; absent: no console. */
  console?: ConsoleS3Listener | undefined;
}

export function createAdminServer(options: AdminServerOptions): Server {
  const spec = JSON.stringify(openApiDocument(options.server.version));
  const webConsole = consoleOf(options);
  const server = createServer((request, response) => {
    // Read as the S3 front reads it for each request (its observer): node caches the peer address on the socket
    // (`_peername`), a property that gives the socket another hidden class. Read here too, at the same point (after
    // node assigned the response), the two listeners' sockets keep one class, and node's stream and HTTP code shared
    // with every S3 request stays monomorphic; a scrape's socket without it deoptimized that code ("wrong map";
    // docs/PERFORMANCE.md, "Metrics and logs, round 6").
    void request.socket.remoteAddress;
    const socket = request.socket;
    requestsInProgress.set(socket, (requestsInProgress.get(socket) ?? 0) + 1);
    response.once('close', () => requestsInProgress.set(socket, requestsInProgress.get(socket)! - 1));
    const requestId = newRequestId();
    handle(options, spec, webConsole, request, response, requestId).catch((error: unknown) => {
      // A body left unread (refused before it was needed) would stall the connection's next request.
      if (!request.complete) response.setHeader('connection', 'close');
      sendError(response, requestId, toAdminError(error));
      if (!(error instanceof AdminError) && !(error instanceof S3Error)) options.logger.error('admin request failed', { requestId, error: String(error) });
    });
  });
  // The same idle bounds as the S3 listener's defaults: nobody holds a socket for free.
  server.headersTimeout = 20_000;
  server.requestTimeout = 120_000;
  server.keepAliveTimeout = 5_000;
  // And the S3 listener's socket idle timeout: node calls socket.setTimeout on each connection of a server that has
  // one, which gives its sockets another hidden class (see `remoteAddress` above for why that matters).
  server.timeout = REQUEST_IDLE_TIMEOUT_MS;
  // An admin operation answers in one piece when it is done (storage stats over a large store, removing a backend):
  // its socket is silent meanwhile, and must not be cut, or a client retries an operation that went on and committed.
  // Only a socket with no request in progress is closed when idle.
  server.on('timeout', (socket: Socket) => {
    if ((requestsInProgress.get(socket) ?? 0) === 0) socket.destroy();
  });
  return server;
}

async function handle(options: AdminServerOptions, spec: string, webConsole: Console | undefined, request: IncomingMessage, response: ServerResponse, requestId: string): Promise<void> {
  const url = request.url ?? '/';
  const queryAt = url.indexOf('?');
  const rawPath = queryAt === -1 ? url : url.slice(0, queryAt);
  const rawQuery = queryAt === -1 ? '' : url.slice(queryAt + 1);
  // The console: a client of this API and the S3 one, with its own sessions (src/console/).
  if (webConsole !== undefined && isConsolePath(rawPath)) return webConsole.handle(request, response, requestId, rawPath, rawQuery);
  if (rawPath === METRICS_PATH || rawPath === LIVE_PATH || rawPath === READY_PATH) {
    if (request.method !== 'GET' && request.method !== 'HEAD') throw new AdminError('MethodNotAllowed', `GET ${rawPath}`);
    request.resume();
    if (rawPath === METRICS_PATH) {
      checkMetricsAccess(options.metrics, request);
      sendText(response, requestId, 200, await options.metrics!.render(), 'text/plain; version=0.0.4; charset=utf-8');
    } else {
      // Unauthenticated, as the S3 listener's /minio/health/*: ready is 503 while the metadata store refuses writes or a placement lacks its write quorum.
      const ready = rawPath === LIVE_PATH || options.engine.unreadyReason() === undefined;
      sendText(response, requestId, ready ? 200 : 503, ready ? 'ok\n' : 'not ready\n', 'text/plain; charset=utf-8');
    }
    return;
  }
  if (rawPath === OPENAPI_PATH) {
    if (request.method !== 'GET' && request.method !== 'HEAD') throw new AdminError('MethodNotAllowed', 'GET the OpenAPI document');
    send(response, requestId, 200, spec);
    request.resume();
    return;
  }
  if (!rawPath.startsWith(ADMIN_PATH_PREFIX)) throw new AdminError('NotFound', `no such path; the admin API is under ${ADMIN_PATH_PREFIX}`);
  const name = rawPath.slice(ADMIN_PATH_PREFIX.length);
  if (!isAdminOperationName(name)) throw new AdminError('NoSuchOperation', `no admin operation ${JSON.stringify(name.slice(0, 64))}`);
  if (request.method !== 'POST') throw new AdminError('MethodNotAllowed', 'admin operations are POST requests');

  const facts = requestFacts(request, new Map(), Date.now());
  // The console's call on a browser's behalf is judged and audited with the browser's address and transport.
  const browser = openConsoleSource(options.console?.sourceKey, request.headers);
  if (browser !== undefined) Object.assign(facts, browser);
  const audit = (entry: { principal: string; accessKeyId?: string | undefined; status: number; code?: string; reason?: string }): void =>
    options.audit.record({ kind: 'admin', requestId, operation: name, sourceIp: facts.sourceIp, ...entry });
  let authenticated: { principal: Principal; body: Readable; accessKeyId: string; tokenId?: string | undefined; tokenScope?: readonly string[] };
  try {
    authenticated = isBearerRequest(request) ? await authenticateBearer(options.tokens, options.keys, request) : authenticate(options, request, rawPath, rawQuery);
  } catch (error) {
    const refusal = toAdminError(error);
    audit({ principal: 'anonymous', status: refusal.status, code: refusal.code });
    throw refusal;
  }
  const { principal, body, tokenId } = authenticated;
  // The audit names a token by its ID (never its text), a key by its ID.
  const accessKeyId = tokenId === undefined ? authenticated.accessKeyId : `token:${tokenId}`;
  // A token's scope first (never an operation that mints credentials or widens rights: what it made would outlive the
  // token), then its creator's own rights, evaluated now.
  const decision = authenticated.tokenScope !== undefined && (ADMIN_OPERATIONS[name].refusedToTokens || !scopeCovers(authenticated.tokenScope, name))
    ? { allowed: false as const, reason: 'token-scope' }
    : authorizeAdmin(principal, name, options.keys.rootCanonicalId, requestConditionKeys({ ...facts, principal }));
  const caller = describeCaller(principal);
  if (!decision.allowed) {
    options.logger.warn('admin request denied', { requestId, operation: name, caller, reason: decision.reason, sourceIp: facts.sourceIp });
    audit({ principal: caller, accessKeyId, status: 403, code: 'AccessDenied', reason: decision.reason });
    throw new AdminError('AccessDenied', `not allowed: admin:${name}`);
  }
  const input = await readJson(request, body);
  const context: AdminContext = {
    principals: options.principals,
    engine: options.engine,
    server: options.server,
    audit: options.audit,
    callerCanonicalId: principal.kind === 'user' ? principal.canonicalId : options.keys.rootCanonicalId,
    storage: options.storage,
    tokens: options.tokens,
    caller: { principal, accessKeyId: authenticated.accessKeyId, tokenId },
  };
  let answer: unknown;
  try {
    answer = await ADMIN_OPERATIONS[name].run(context, input);
  } catch (error) {
    const adminError = toAdminError(error);
    options.logger.info('admin request', { requestId, operation: name, caller, status: adminError.status, code: adminError.code });
    audit({ principal: caller, accessKeyId, status: adminError.status, code: adminError.code });
    throw adminError;
  }
  // A change to users or keys is visible to the very next request, on every worker (the caches would notice within 2 s anyway).
  if (ADMIN_OPERATIONS[name].changesCredentials) await Promise.all([options.keys.reload(), options.credentialsChanged?.()]);
  options.logger.info('admin request', { requestId, operation: name, caller, status: 200 });
  audit({ principal: caller, accessKeyId, status: 200 });
  send(response, requestId, 200, JSON.stringify(answer));
}

/** The console, when the S3 listener it is a client of is known. */
function consoleOf(options: AdminServerOptions): Console | undefined {
  if (options.console === undefined) return undefined;
  return createConsole({ ...options.console, region: options.server.region, keys: options.keys, audit: options.audit, logger: options.logger, renderMetrics: options.metrics?.render });
}

/** The signed caller, or why not. An unsigned request is refused: the admin API has no anonymous operations. */
function authenticate(options: AdminServerOptions, request: IncomingMessage, rawPath: string, rawQuery: string): { principal: Principal; body: Readable; accessKeyId: string } {
  let verified;
  try {
    verified = verifyRequest({ method: request.method ?? 'POST', rawPath, rawQuery, headers: request.headers, body: request }, (id) => options.keys.lookupKey(id)?.secretAccessKey);
  } catch (error) {
    if (error instanceof S3Error) throw new AdminError('InvalidSignature', `${error.code}: ${error.message}`);
    throw error;
  }
  if (verified.accessKeyId === null) throw new AdminError('AuthenticationRequired', 'sign the request with AWS Signature Version 4');
  const found = options.keys.lookupKey(verified.accessKeyId);
  if (found === undefined) throw new AdminError('InvalidSignature', 'InvalidAccessKeyId: the access key is unknown, disabled or expired');
  return { principal: found.principal, body: verified.body, accessKeyId: verified.accessKeyId };
}

function describeCaller(principal: Principal): string {
  return principal.kind === 'user' ? principal.name : principal.kind;
}

async function readJson(request: IncomingMessage, body: Readable): Promise<unknown> {
  const type = request.headers['content-type'];
  if (type !== undefined && !/^application\/json\b/i.test(type)) throw new AdminError('UnsupportedMediaType', 'send the input as application/json');
  const chunks: Buffer[] = [];
  let total = 0;
  try {
    for await (const chunk of body) {
      const bytes = chunk as Buffer;
      total += bytes.length;
      if (total > ADMIN_BODY_BYTES_MAX) throw new AdminError('RequestTooLarge', `the request body is larger than ${ADMIN_BODY_BYTES_MAX} bytes`);
      chunks.push(bytes);
    }
  } catch (error) {
    if (error instanceof S3Error) throw new AdminError('InvalidSignature', `${error.code}: ${error.message}`);
    throw error;
  }
  const text = Buffer.concat(chunks).toString('utf8');
  if (text.trim() === '') return {};
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw new AdminError('InvalidRequest', 'the request body is not valid JSON');
  }
}

/** Bearer token, compared in constant time; the endpoint is closed when neither a token nor public access was configured. */
function checkMetricsAccess(metrics: MetricsEndpoint | undefined, request: IncomingMessage): void {
  if (metrics === undefined) throw new AdminError('NotFound', 'no metrics in this process');
  if (metrics.public === true) return;
  if (metrics.token === undefined) throw new AdminError('AccessDenied', 'metrics are closed: set TALUS_METRICS_TOKEN (or --metrics-public)');
  const given = /^Bearer (.+)$/.exec(request.headers.authorization ?? '')?.[1];
  if (given === undefined) throw new AdminError('AuthenticationRequired', 'send Authorization: Bearer <metrics token>');
  const expected = createHash('sha256').update(metrics.token).digest();
  if (!timingSafeEqual(createHash('sha256').update(given).digest(), expected)) throw new AdminError('AccessDenied', 'wrong metrics token');
}

/**
 * Header values are strings, as the S3 front's are: node:http's header code
 * is shared by both listeners, and one number in it (a scrape's
 * Content-Length) deoptimized it for every S3 response after ("Smi" in
 * _storeHeader) and left it slower (docs/PERFORMANCE.md, "Metrics and logs,
 * round 5").
 */
function sendText(response: ServerResponse, requestId: string, status: number, body: string, type: string): void {
  const bytes = Buffer.from(body);
  response.writeHead(status, { 'content-type': type, 'content-length': String(bytes.length), 'x-request-id': requestId, 'cache-control': 'no-store' });
  // Bytes, as the S3 front ends its responses: a string took node's other path in the code both share (a "wrong
  // instance type" deopt of OutgoingMessage._send in a scraped server; docs/PERFORMANCE.md, "Metrics and logs, round 6").
  response.end(bytes);
}

function send(response: ServerResponse, requestId: string, status: number, body: string): void {
  const bytes = Buffer.from(body);
  response.writeHead(status, {
    'content-type': 'application/json',
    'content-length': String(bytes.length),
    'x-request-id': requestId,
    'cache-control': 'no-store',
    'x-content-type-options': 'nosniff',
  });
  response.end(bytes);
}

function sendError(response: ServerResponse, requestId: string, error: AdminError): void {
  if (response.headersSent) {
    response.destroy();
    return;
  }
  send(response, requestId, error.status, JSON.stringify({ code: error.code, message: error.message, requestId }));
}
