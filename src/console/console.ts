/**
 * The console, served on the admin listener under /console/. It is a thin
 * client of the two authorized APIs and holds no privilege of its own:
 *
 * - `/console/` and its modules: static files (assets.ts).
 * - `/console/api/login|logout|session`: server-side sessions (sessions.ts).
 *   Login checks the key and secret as the signature check would (the same
 *   PrincipalCache); the secret stays in this process.
 * - `/console/api/admin/<Operation>`: the admin API, called over loopback as
 *   the session's key — SigV4-signed, so the admin listener authenticates,
 *   authorizes (`authorizeAdmin`) and audits it as any other call.
 * - `/console/s3/<bucket>/<key>?<query>`: S3 requests, signed here with the
 *   session's key and sent to the S3 listener, which checks them as any
 *   request (`authorize()`); the answer streams back. The browser cannot call
 *   the S3 listener itself: it is another origin, and the secret is not in
 *   the browser.
 * - `/console/api/share`: a presigned GET URL on the S3 listener.
 * - `/console/api/metrics`: the /metrics text, to callers allowed
 *   admin:GetServerInfo (asked of the admin API, as above).
 *
 * Every call made for a browser carries its address and transport, sealed
 * (src/http/console-source.ts): policies' aws:SourceIp and
 * aws:SecureTransport judge the browser, as AWS judges a console user's
 * calls. Login itself checks only the key and secret, as AWS's sign-in does:
 * a key whose policy refuses the browser's address logs in and is then
 * refused every action.
 *
 * Every request needs a live session (but the page and login); every
 * state-changing one also its CSRF token, and a same-origin Origin when the
 * browser sends one. Every answer carries the security headers.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { type IncomingMessage, type ServerResponse, request as httpRequest } from 'node:http';
import { AdminApiError, AdminClient } from '../admin/client.ts';
import type { AuditLog } from '../audit/audit-log.ts';
import { SigV4Signer, UNSIGNED_PAYLOAD, canonicalQueryString, encodeComponent, encodeKeyPath } from '../client/sigv4-signer.ts';
import type { PrincipalCache } from '../principals/principal-cache.ts';
import type { Logger } from '../util/logger.ts';
import { CONSOLE_SOURCE_HEADER, sealConsoleSource, socketSource } from '../http/console-source.ts';
import { consoleAssets, onDemandAsset } from './assets.ts';
import { LoginThrottle } from './login-throttle.ts';
import { PRESIGN_EXPIRES_SECONDS_MAX, presignGet } from './presign.ts';
import { type ConsoleSession, ConsoleSessions, csrfTokenMatches } from './sessions.ts';

export const CONSOLE_PATH = '/console';
const SESSION_COOKIE = 'talus_console';
const CSRF_HEADER = 'x-talus-csrf';
/** JSON bodies of console calls (admin inputs are at most 128 KiB; the admin listener bounds them again). */
const CONSOLE_JSON_BYTES_MAX = 160 * 1024;
const CREDENTIAL_LENGTH_MAX = 256;
/** S3's key length limit (1024 bytes; characters are at most that). */
const OBJECT_KEY_LENGTH_MAX = 1024;

/** Headers every console answer carries. */
const COMMON_HEADERS = {
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'cross-origin-opener-policy': 'same-origin',
} as const;
/** JSON and errors: nothing in them may run or be framed. */
const API_CSP = "default-src 'none'; frame-ancestors 'none'";
/**
 * Objects the user's S3 requests answer (downloads, previews): a sandbox
 * with an opaque origin and no script, whatever their type claims, so an
 * HTML object cannot act in the console's origin. Framable by the console
 * only (previews).
 */
const OBJECT_CSP = "sandbox; default-src 'none'; img-src 'self' data:; style-src 'unsafe-inline'; frame-ancestors 'self'";

/** Browser headers passed on to the S3 listener (besides x-amz-*, which are also signed). */
const FORWARDED_REQUEST_HEADERS = ['content-type', 'content-length', 'content-md5', 'content-disposition', 'content-encoding', 'cache-control', 'expires', 'range', 'if-match', 'if-none-match', 'if-modified-since', 'if-unmodified-since'];
/** x-amz-* headers the console sets itself (the signature's). */
const SIGNATURE_HEADERS = new Set(['x-amz-date', 'x-amz-content-sha256', 'x-amz-security-token']);
/** S3 answer headers not passed back: hop-by-hop ones, and those the console decides. */
const DROPPED_RESPONSE_HEADERS = new Set(['connection', 'keep-alive', 'transfer-encoding', 'set-cookie', 'content-security-policy', 'x-frame-options', 'referrer-policy', 'x-content-type-options']);

/** The S3 listener, as the console sees it. */
export interface ConsoleS3Listener {
  /** Where the console's S3 requests go (http://127.0.0.1:9000 for a listener on every address). */
  s3Url: string;
  /**
   * The S3 listener listens on every address: share links name the host the
   * browser reached the console at (with the S3 port), since s3Url's
   * loopback address is of no use to whoever receives the link.
   */
  s3OnEveryAddress: boolean;
  /**
   * Seals the browser's address and transport onto each call the console
   * makes for it (src/http/console-source.ts), so the listeners judge
   * aws:SourceIp and aws:SecureTransport by the browser, not by this loopback hop.
   */
  sourceKey: Buffer;
}

export interface ConsoleOptions extends ConsoleS3Listener {
  region: string;
  keys: PrincipalCache;
  audit: AuditLog;
  logger: Logger;
  /** The /metrics text, for the dashboard. */
  renderMetrics?: (() => Promise<string>) | undefined;
}

export interface Console {
  /** Serves a request whose path starts with /console. */
  handle(request: IncomingMessage, response: ServerResponse, requestId: string, rawPath: string, rawQuery: string): Promise<void>;
  readonly sessions: ConsoleSessions;
}

class ConsoleError extends Error {
  constructor(readonly status: number, readonly code: string, message: string) {
    super(message);
  }
}

export function isConsolePath(rawPath: string): boolean {
  return rawPath === CONSOLE_PATH || rawPath.startsWith(`${CONSOLE_PATH}/`);
}

export function createConsole(options: ConsoleOptions): Console {
  const sessions = new ConsoleSessions();
  const throttle = new LoginThrottle();
  const s3 = new URL(options.s3Url);

  async function handle(request: IncomingMessage, response: ServerResponse, requestId: string, rawPath: string, rawQuery: string): Promise<void> {
    try {
      await route(request, response, requestId, rawPath, rawQuery);
    } catch (error) {
      if (!request.complete) response.setHeader('connection', 'close');
      request.resume();
      const refusal = error instanceof ConsoleError ? error : error instanceof AdminApiError ? new ConsoleError(error.status || 502, error.code, error.message.slice(error.code.length + 2)) : undefined;
      if (refusal === undefined) options.logger.error('console request failed', { requestId, error: String(error) });
      sendJson(response, requestId, refusal?.status ?? 500, { code: refusal?.code ?? 'InternalError', message: refusal?.message ?? 'internal error' });
    }
  }

  async function route(request: IncomingMessage, response: ServerResponse, requestId: string, rawPath: string, rawQuery: string): Promise<void> {
    const method = request.method ?? 'GET';
    const reading = method === 'GET' || method === 'HEAD';
    if (!reading) checkOrigin(request);
    if (rawPath === CONSOLE_PATH) {
      request.resume();
      response.writeHead(302, { ...COMMON_HEADERS, location: `${CONSOLE_PATH}/`, 'content-security-policy': API_CSP, 'content-length': '0' });
      response.end();
      return;
    }
    const path = rawPath.slice(CONSOLE_PATH.length + 1);
    if (path.startsWith('s3/') || path === 's3') {
      const session = sessionOf(request, !reading);
      await forwardToS3(session, request, response, path.slice(3), rawQuery);
      return;
    }
    if (path.startsWith('api/')) {
      await api(request, response, requestId, path.slice(4), method);
      return;
    }
    if (!reading) throw new ConsoleError(405, 'MethodNotAllowed', 'the console\'s files are read with GET');
    request.resume();
    serveAsset(request, response, path);
  }

  async function api(request: IncomingMessage, response: ServerResponse, requestId: string, name: string, method: string): Promise<void> {
    const expect = (wanted: 'GET' | 'POST', what: string): void => {
      if (method !== wanted && !(wanted === 'GET' && method === 'HEAD')) throw new ConsoleError(405, 'MethodNotAllowed', `${wanted} ${what}`);
    };
    if (name === 'login') {
      expect('POST', 'to log in');
      await login(request, response, requestId);
      return;
    }
    const session = sessionOf(request, method !== 'GET' && method !== 'HEAD');
    if (name === 'session') {
      expect('GET', 'the session');
      request.resume();
      sendJson(response, requestId, 200, sessionView(session));
    } else if (name === 'logout') {
      expect('POST', 'to log out');
      request.resume();
      sessions.end(cookieOf(request));
      options.audit.record({ kind: 'admin', requestId, operation: 'ConsoleLogout', principal: session.principal, accessKeyId: session.accessKeyId, status: 200, sourceIp: socketSource(request).sourceIp });
      response.setHeader('set-cookie', `${SESSION_COOKIE}=; Path=${CONSOLE_PATH}/; HttpOnly; SameSite=Strict; Max-Age=0`);
      sendJson(response, requestId, 200, {});
    } else if (name.startsWith('admin/')) {
      expect('POST', 'admin operations');
      const input = await readJson(request);
      sendJson(response, requestId, 200, await adminCall(request, session, name.slice('admin/'.length), input));
    } else if (name === 'share') {
      expect('POST', 'to make a share link');
      sendJson(response, requestId, 200, shareLink(request, session, await readJson(request)));
    } else if (name === 'metrics') {
      expect('GET', 'the metrics');
      request.resume();
      if (options.renderMetrics === undefined) throw new ConsoleError(404, 'NotFound', 'no metrics in this process');
      // The admin API decides who may watch the server: admin:GetServerInfo.
      const server = await adminCall(request, session, 'GetServerInfo', {});
      sendJson(response, requestId, 200, { server, metrics: await options.renderMetrics() });
    } else {
      throw new ConsoleError(404, 'NotFound', 'no such console call');
    }
  }

  /** Checks the key and secret as the signature check would (the same keys), and starts a session. */
  async function login(request: IncomingMessage, response: ServerResponse, requestId: string): Promise<void> {
    const sourceIp = socketSource(request).sourceIp || undefined;
    const input = await readJson(request);
    const accessKeyId = stringField(input, 'accessKeyId');
    const secretAccessKey = stringField(input, 'secretAccessKey');
    const source = sourceIp ?? 'unknown';
    if (!throttle.allows(source)) {
      options.audit.record({ kind: 'admin', requestId, operation: 'ConsoleLogin', principal: 'anonymous', status: 429, code: 'TooManyLoginFailures', sourceIp });
      throw new ConsoleError(429, 'TooManyLoginFailures', 'too many failed logins from this address: wait a minute');
    }
    const found = options.keys.lookupKey(accessKeyId);
    if (found === undefined || !sameSecret(found.secretAccessKey, secretAccessKey)) {
      throttle.failed(source);
      // A known key's ID is worth recording; an unknown "ID" might be a secret typed in the wrong field.
      const knownId = found === undefined ? undefined : accessKeyId;
      options.audit.record({ kind: 'admin', requestId, operation: 'ConsoleLogin', principal: 'anonymous', accessKeyId: knownId, status: 403, code: 'LoginFailed', reason: found === undefined ? 'unknown, disabled or expired access key' : 'wrong secret', sourceIp });
      options.logger.warn('console login refused', { requestId, accessKeyId: knownId, sourceIp });
      throw new ConsoleError(403, 'LoginFailed', 'wrong access key or secret (or the key is disabled or expired)');
    }
    const principal = found.principal.kind === 'user' ? found.principal.name : found.principal.kind;
    const { id, session } = sessions.start(accessKeyId, secretAccessKey, principal);
    options.audit.record({ kind: 'admin', requestId, operation: 'ConsoleLogin', principal, accessKeyId, status: 200, sourceIp });
    options.logger.info('console login', { requestId, principal, accessKeyId });
    const secure = 'encrypted' in request.socket ? '; Secure' : '';
    response.setHeader('set-cookie', `${SESSION_COOKIE}=${id}; Path=${CONSOLE_PATH}/; HttpOnly; SameSite=Strict${secure}`);
    sendJson(response, requestId, 200, sessionView(session));
  }

  /** A presigned GET on the S3 listener, signed with the session's key. */
  function shareLink(request: IncomingMessage, session: ConsoleSession, input: unknown): { url: string; expiresMs: number } {
    const { expiresSeconds, versionId } = input as { expiresSeconds?: unknown; versionId?: unknown };
    if (typeof expiresSeconds !== 'number' || !Number.isInteger(expiresSeconds) || expiresSeconds < 1 || expiresSeconds > PRESIGN_EXPIRES_SECONDS_MAX) {
      throw new ConsoleError(400, 'InvalidRequest', `expiresSeconds: an integer from 1 to ${PRESIGN_EXPIRES_SECONDS_MAX}`);
    }
    const url = presignGet({
      endpoint: shareEndpoint(request),
      region: options.region,
      accessKeyId: session.accessKeyId,
      secretAccessKey: session.secretAccessKey,
      bucket: stringField(input, 'bucket'),
      key: stringField(input, 'key', OBJECT_KEY_LENGTH_MAX),
      versionId: typeof versionId === 'string' && versionId !== '' ? versionId : undefined,
      expiresSeconds,
    });
    return { url, expiresMs: Date.now() + expiresSeconds * 1000 };
  }

  /** The S3 listener as whoever receives a share link reaches it. */
  function shareEndpoint(request: IncomingMessage): string {
    const host = singleHeader(request, 'host');
    if (!options.s3OnEveryAddress || host === undefined) return options.s3Url;
    try {
      const endpoint = new URL(`http://${host}`);
      endpoint.port = s3.port;
      return endpoint.origin;
    } catch {
      return options.s3Url;
    }
  }

  /** The live session of this request; a state change must also carry its CSRF token. */
  function sessionOf(request: IncomingMessage, changes: boolean): ConsoleSession {
    const session = sessions.find(cookieOf(request));
    if (session === undefined) throw new ConsoleError(401, 'SessionRequired', 'log in (no session, or it ended or expired)');
    // A key disabled, deleted or expired since the login ends its sessions.
    const key = options.keys.lookupKey(session.accessKeyId);
    if (key === undefined || !sameSecret(key.secretAccessKey, session.secretAccessKey)) {
      sessions.endKey(session.accessKeyId);
      throw new ConsoleError(401, 'SessionRequired', 'the session\'s access key is no longer valid: log in again');
    }
    if (changes && !csrfTokenMatches(session, singleHeader(request, CSRF_HEADER))) throw new ConsoleError(403, 'InvalidCsrfToken', `a change needs the session's ${CSRF_HEADER} header`);
    return session;
  }

  /** An admin operation as the session's key: a signed call to this very listener, over loopback. */
  function adminCall(request: IncomingMessage, session: ConsoleSession, operation: string, input: unknown): Promise<unknown> {
    if (!/^[A-Za-z]{1,64}$/.test(operation)) throw new ConsoleError(404, 'NoSuchOperation', 'no such admin operation');
    const local = request.socket.localAddress ?? '127.0.0.1';
    const host = local.includes(':') ? (local.startsWith('::ffff:') ? local.slice(7) : `[${local}]`) : local;
    const browser = socketSource(request);
    const client = new AdminClient({
      endpoint: `http://${host}:${request.socket.localPort}`,
      accessKeyId: session.accessKeyId,
      secretAccessKey: session.secretAccessKey,
      region: options.region,
      addHeaders: (authorization) => ({ [CONSOLE_SOURCE_HEADER]: sealConsoleSource(options.sourceKey, browser, authorization) }),
    });
    return client.call(operation, typeof input === 'object' && input !== null ? input : {});
  }

  /** Signs the browser's S3 request with the session's key and streams it to the S3 listener and the answer back. */
  async function forwardToS3(session: ConsoleSession, request: IncomingMessage, response: ServerResponse, rawTarget: string, rawQuery: string): Promise<void> {
    const method = request.method ?? 'GET';
    let bucket: string;
    let key: string;
    const params: Record<string, string> = {};
    try {
      const slash = rawTarget.indexOf('/');
      bucket = decodeURIComponent(slash === -1 ? rawTarget : rawTarget.slice(0, slash));
      key = slash === -1 ? '' : decodeURIComponent(rawTarget.slice(slash + 1));
      for (const [name, value] of new URLSearchParams(rawQuery)) {
        if (name in params) throw new ConsoleError(400, 'InvalidRequest', `query parameter ${name} given twice`);
        if (/^x-amz-/i.test(name)) throw new ConsoleError(400, 'InvalidRequest', 'the console signs requests itself');
        params[name] = value;
      }
    } catch (error) {
      if (error instanceof ConsoleError) throw error;
      throw new ConsoleError(400, 'InvalidRequest', 'malformed S3 path or query');
    }
    const path = bucket === '' ? '/' : key === '' ? `/${encodeComponent(bucket)}` : `/${encodeComponent(bucket)}/${encodeKeyPath(key)}`;
    const query = canonicalQueryString(params);
    const headers: Record<string, string> = {};
    const signed: [string, string][] = [];
    for (const name of FORWARDED_REQUEST_HEADERS) {
      const value = singleHeader(request, name);
      if (value !== undefined) headers[name] = value;
    }
    for (const [name, value] of Object.entries(request.headers)) {
      if (!name.startsWith('x-amz-') || SIGNATURE_HEADERS.has(name) || typeof value !== 'string') continue;
      headers[name] = value;
      signed.push([name, value]);
    }
    const signer = new SigV4Signer({ accessKeyId: session.accessKeyId, secretAccessKey: session.secretAccessKey, region: options.region });
    const signature = signer.sign({ method, path, query, host: s3.host, headers: signed, payloadHash: UNSIGNED_PAYLOAD });
    Object.assign(headers, {
      host: s3.host,
      'x-amz-date': signature.amzDate,
      'x-amz-content-sha256': UNSIGNED_PAYLOAD,
      authorization: signature.authorization,
      [CONSOLE_SOURCE_HEADER]: sealConsoleSource(options.sourceKey, socketSource(request), signature.authorization),
    });
    await new Promise<void>((resolve, reject) => {
      const upstream = httpRequest({ hostname: s3.hostname.replace(/^\[|\]$/g, ''), port: s3.port, method, path: query === '' ? path : `${path}?${query}`, headers }, (answer) => {
        const passed: Record<string, string | string[]> = {};
        for (const [name, value] of Object.entries(answer.headers)) if (value !== undefined && !DROPPED_RESPONSE_HEADERS.has(name) && !name.startsWith('access-control-')) passed[name] = value;
        response.writeHead(answer.statusCode ?? 502, { ...passed, ...COMMON_HEADERS, 'content-security-policy': OBJECT_CSP, 'cache-control': 'no-store' });
        answer.pipe(response);
        answer.once('error', reject);
        response.once('close', () => {
          if (!answer.complete) answer.destroy();
          resolve();
        });
      });
      upstream.once('error', (error) => (response.headersSent ? (response.destroy(), resolve()) : reject(new ConsoleError(502, 'BadGateway', `the S3 listener did not answer: ${error.message}`))));
      // The browser went away mid-upload: stop the upload too (the S3 listener then commits nothing).
      request.once('close', () => {
        if (!request.complete) upstream.destroy();
      });
      request.pipe(upstream);
    });
  }

  function serveAsset(request: IncomingMessage, response: ServerResponse, path: string): void {
    const assets = consoleAssets();
    const file = assets.files.get(path) ?? onDemandAsset(path);
    if (file === undefined) throw new ConsoleError(404, 'NotFound', 'no such console file');
    const gzip = /\bgzip\b/.test(singleHeader(request, 'accept-encoding') ?? '');
    const headers = {
      ...COMMON_HEADERS,
      'content-type': file.type,
      'content-security-policy': path === '' ? assets.pageCsp : API_CSP,
      'x-frame-options': 'DENY',
      etag: file.etag,
      vary: 'accept-encoding',
      // The page is small and names no versioned files: revalidate each time (a 304 is cheap).
      'cache-control': 'no-cache',
    };
    if (singleHeader(request, 'if-none-match') === file.etag) {
      response.writeHead(304, headers);
      response.end();
      return;
    }
    const body = gzip ? file.gzipped : file.body;
    response.writeHead(200, { ...headers, 'content-length': String(body.length), ...(gzip ? { 'content-encoding': 'gzip' } : {}) });
    response.end(request.method === 'HEAD' ? undefined : body);
  }

  return { handle, sessions };
}

/** A cross-site page may not drive the console: when the browser names the origin, it must be this one. */
function checkOrigin(request: IncomingMessage): void {
  const origin = singleHeader(request, 'origin');
  if (origin === undefined) return;
  const host = singleHeader(request, 'host');
  if (origin !== `http://${host}` && origin !== `https://${host}`) throw new ConsoleError(403, 'CrossOriginRequest', 'the console accepts changes from its own pages only');
}

function sessionView(session: ConsoleSession): object {
  return { principal: session.principal, accessKeyId: session.accessKeyId, csrfToken: session.csrfToken };
}

function cookieOf(request: IncomingMessage): string | undefined {
  const header = request.headers.cookie;
  if (header === undefined) return undefined;
  for (const part of header.split(';')) {
    const at = part.indexOf('=');
    if (at !== -1 && part.slice(0, at).trim() === SESSION_COOKIE) return part.slice(at + 1).trim();
  }
  return undefined;
}

function sameSecret(expected: string, given: string): boolean {
  return timingSafeEqual(createHash('sha256').update(expected).digest(), createHash('sha256').update(given).digest());
}

function singleHeader(request: IncomingMessage, name: string): string | undefined {
  const value = request.headers[name];
  return typeof value === 'string' ? value : undefined;
}

function stringField(input: unknown, name: string, max = CREDENTIAL_LENGTH_MAX): string {
  const value = (input as Record<string, unknown>)[name];
  if (typeof value !== 'string' || value === '' || value.length > max) throw new ConsoleError(400, 'InvalidRequest', `${name}: a non-empty string of at most ${max} characters`);
  return value;
}

async function readJson(request: IncomingMessage): Promise<unknown> {
  const type = singleHeader(request, 'content-type') ?? '';
  // application/json cannot be sent cross-origin without a CORS preflight, which the console never grants.
  if (!/^application\/json\b/i.test(type)) throw new ConsoleError(415, 'UnsupportedMediaType', 'send application/json');
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of request) {
    total += (chunk as Buffer).length;
    if (total > CONSOLE_JSON_BYTES_MAX) throw new ConsoleError(413, 'RequestTooLarge', 'the request body is too large');
    chunks.push(chunk as Buffer);
  }
  try {
    const parsed = JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}') as unknown;
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new Error('not an object');
    return parsed;
  } catch {
    throw new ConsoleError(400, 'InvalidRequest', 'the body is not a JSON object');
  }
}

function sendJson(response: ServerResponse, requestId: string, status: number, value: unknown): void {
  if (response.headersSent) {
    response.destroy();
    return;
  }
  const body = JSON.stringify(value);
  response.writeHead(status, {
    ...COMMON_HEADERS,
    'content-type': 'application/json',
    'content-length': String(Buffer.byteLength(body)),
    'content-security-policy': API_CSP,
    'x-frame-options': 'DENY',
    'cache-control': 'no-store',
    'x-request-id': requestId,
  });
  response.end(body);
}
