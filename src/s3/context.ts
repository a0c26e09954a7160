/** What an S3 handler gets (a verified, routed request) and what it returns (a response description). */
import type { IncomingHttpHeaders } from 'node:http';
import type { Readable } from 'node:stream';
import type { VerifiedRequest } from '../auth/index.ts';
import type { Engine } from '../engine/engine.ts';
import type { RequestAccess } from './access.ts';
import type { S3Route } from '../http/route.ts';
import { XML_BODY_BYTES_MAX } from '../util/limits.ts';
import { S3Error, type S3ErrorCode } from '../util/s3-error.ts';

export interface RequestContext {
  readonly requestId: string;
  readonly method: string;
  readonly route: S3Route;
  readonly headers: IncomingHttpHeaders;
  readonly request: VerifiedRequest;
  /** The caller's canonical ID (root's, a user's, or anonymous'): the owner of what it creates. */
  readonly ownerId: string;
  /** Who the caller is and what it may do: the request's authorization (src/s3/access.ts). */
  readonly access: RequestAccess;
  readonly engine: Engine;
  readonly region: string;
}

export interface S3Response {
  status: number;
  headers: Record<string, string>;
  body?: string | Buffer | Readable;
  /**
   * Called once when node holds the body no more: `true` once node and
   * libuv no longer reference its bytes (the response's 'finish': written,
   * or the connection torn down mid-write; not proof of delivery), `false` when the
   * response closed first (node may still have held them then). Not called
   * when the response failed before its headers were sent.
   */
  sent?: (written: boolean) => void;
}

export type Handler = (context: RequestContext) => Promise<S3Response>;

export function xmlResponse(body: string | Buffer, status = 200, headers: Record<string, string> = {}): S3Response {
  return { status, headers: { 'content-type': 'application/xml', ...headers }, body };
}

export function emptyResponse(status: number, headers: Record<string, string> = {}): S3Response {
  return { status, headers };
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * Reads a small request body (XML or JSON documents), bounded; the verified
 * stream checks signatures as it goes. Documents are UTF-8: a body that is not
 * is refused with `malformed`, never read with replacement characters (which
 * would store a different text than the one sent).
 */
export async function readSmallBody(context: RequestContext, limitBytes = XML_BODY_BYTES_MAX, malformed: S3ErrorCode = 'MalformedXML'): Promise<string> {
  const bytes = await readSmallBodyBytes(context, limitBytes);
  try {
    return utf8.decode(bytes);
  } catch {
    throw new S3Error(malformed);
  }
}

/** The bytes of a small request body, as sent (for a Content-MD5 over them). */
export async function readSmallBodyBytes(context: RequestContext, limitBytes = XML_BODY_BYTES_MAX): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of context.request.body) {
    const buffer = chunk as Buffer;
    total += buffer.length;
    if (total > limitBytes) throw new S3Error('MaxMessageLengthExceeded');
    chunks.push(buffer);
  }
  return Buffer.concat(chunks, total);
}

export function queryValue(context: RequestContext, name: string): string | undefined {
  return context.route.query.get(name);
}

/** Parses an integer query parameter within [min, max]; absent gives the default. */
export function queryInteger(context: RequestContext, name: string, fallback: number, min: number, max: number): number {
  const value = context.route.query.get(name);
  if (value === undefined) return fallback;
  if (!/^-?\d+$/.test(value)) throw new S3Error('InvalidArgument', `Provided ${name} not an integer or within integer range`, { ArgumentName: name, ArgumentValue: value });
  const number = Number(value);
  if (number < min) throw new S3Error('InvalidArgument', `Argument ${name} must be an integer between ${min} and ${max}`, { ArgumentName: name, ArgumentValue: value });
  return Math.min(number, max);
}
