/** The auth layer's public types: what the HTTP front hands in, and what handlers get back. */
import type { IncomingHttpHeaders } from 'node:http';
import type { Readable } from 'node:stream';

export interface AuthRequest {
  method: string;
  /** Path exactly as on the request line, still percent-encoded, e.g. '/bucket/a%20b%2Bc'. */
  rawPath: string;
  /** Query string exactly as sent, without '?', '' if none. */
  rawQuery: string;
  /** Node's lower-cased headers. */
  headers: IncomingHttpHeaders;
  /** The raw request body (node IncomingMessage). */
  body: Readable;
}

/** Returns the secret key for an access key id, or undefined if unknown. Synchronous. */
export type SecretLookup = (accessKeyId: string) => string | undefined;

export interface VerifiedRequest {
  /** Null for an anonymous request (neither an Authorization header nor presigned query parameters). */
  accessKeyId: string | null;
  /**
   * Decoded payload bytes (aws-chunked framing removed). Errors with an S3Error instead of
   * ending when anything about the payload fails verification; the error always comes
   * before 'end', so a consumer that commits on 'end' never commits a bad body.
   */
  body: Readable;
  /** x-amz-decoded-content-length for aws-chunked, else content-length; undefined if neither. */
  decodedContentLength: number | undefined;
  /** Trailer headers (lower-cased names) of an aws-chunked body; filled before body 'end'. */
  trailers: Map<string, string>;
  /** Lower-cased names from the x-amz-trailer request header, empty if none. */
  announcedTrailers: string[];
}
