/**
 * The browser's address and transport, carried from the console to the
 * listeners it calls on the browser's behalf.
 *
 * The console (src/console/) signs a session's S3 and admin calls itself and
 * sends them over loopback, so the listener that authorizes them sees the
 * console's socket, not the browser's: `aws:SourceIp` would be 127.0.0.1 and
 * `aws:SecureTransport` the loopback hop's. So the console adds one header:
 *
 *     x-talus-console-source: <browser address> <http|https> <seal>
 *
 * where the seal is an HMAC-SHA256, under a key made at start-up and known
 * only to this server's processes, of the address, the transport and the
 * request's Authorization header. A listener believes the header only when
 * the seal is right, and drops it either way, so:
 * - a client of the S3 port cannot forge it (it lacks the key), and a header
 *   it sends is simply ignored: its request is judged by its own socket;
 * - a seal cannot be moved to another request: it covers that request's
 *   signature, which covers its method, path, headers and time.
 *
 * Cost on the hot path: one header lookup, when the header is absent.
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { IncomingHttpHeaders, IncomingMessage } from 'node:http';
import { isIP, type Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';

export const CONSOLE_SOURCE_HEADER = 'x-talus-console-source';
/** 256 bits: an HMAC key no caller can guess. */
const CONSOLE_SOURCE_KEY_BYTES = 32;

/** Where a request came from, as policies' aws:SourceIp and aws:SecureTransport see it. */
export interface RequestSource {
  sourceIp: string;
  secureTransport: boolean;
}

/** A fresh key for one server's run (the primary makes it; its workers get it with their settings). */
export function newConsoleSourceKey(): Buffer {
  return randomBytes(CONSOLE_SOURCE_KEY_BYTES);
}

/** Each connection's source, worked out at its first request: a socket's peer and transport never change. */
const socketSources = new WeakMap<Socket, Readonly<RequestSource>>();

/** The request's own socket: its remote address and whether it is TLS. Shared per connection: do not modify. */
export function socketSource(request: IncomingMessage): Readonly<RequestSource> {
  const socket = request.socket;
  let source = socketSources.get(socket);
  if (source === undefined) {
    const remote = socket.remoteAddress ?? '';
    source = Object.freeze({
      // IPv4 clients of a dual-stack socket show as ::ffff:a.b.c.d; policies name them as a.b.c.d.
      sourceIp: remote.startsWith('::ffff:') && remote.includes('.') ? remote.slice(7) : remote,
      secureTransport: (socket as Partial<TLSSocket>).encrypted === true,
    });
    // Not before the peer is known: a socket already closed has no address to keep.
    if (remote !== '') socketSources.set(socket, source);
  }
  return source;
}

/** The header's value for a request signed with `authorization`, on behalf of a browser at `source`. */
export function sealConsoleSource(key: Buffer, source: RequestSource, authorization: string): string {
  if (isIP(source.sourceIp) === 0) throw new Error(`not an IP address: ${JSON.stringify(source.sourceIp)}`);
  const transport = source.secureTransport ? 'https' : 'http';
  return `${source.sourceIp} ${transport} ${seal(key, source.sourceIp, transport, authorization)}`;
}

/**
 * The browser's source when the request carries a header sealed with `key`
 * (undefined: judge the request by its socket). Removes the header from
 * `headers` in every case, so nothing after this sees an unverified one.
 */
export function openConsoleSource(key: Buffer | undefined, headers: IncomingHttpHeaders): RequestSource | undefined {
  const value = headers[CONSOLE_SOURCE_HEADER];
  if (value === undefined) return undefined;
  delete headers[CONSOLE_SOURCE_HEADER];
  const authorization = headers.authorization;
  if (key === undefined || typeof value !== 'string' || authorization === undefined) return undefined;
  const [sourceIp, transport, given, extra] = value.split(' ');
  if (extra !== undefined || sourceIp === undefined || given === undefined || isIP(sourceIp) === 0 || (transport !== 'http' && transport !== 'https')) return undefined;
  const expected = Buffer.from(seal(key, sourceIp, transport, authorization), 'base64url');
  const presented = Buffer.from(given, 'base64url');
  if (presented.length !== expected.length || !timingSafeEqual(presented, expected)) return undefined;
  return { sourceIp, secureTransport: transport === 'https' };
}

function seal(key: Buffer, sourceIp: string, transport: string, authorization: string): string {
  return createHmac('sha256', key).update(`${sourceIp}\n${transport}\n${authorization}`).digest('base64url');
}
