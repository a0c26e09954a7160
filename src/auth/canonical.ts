/**
 * The SigV4 canonical request:
 *   METHOD \n URI \n QUERY \n (name:value \n)* \n signed;header;names \n payload-hash
 */
import type { IncomingHttpHeaders } from 'node:http';
import { S3Error } from '../util/s3-error.ts';

/** Values that need no trimming or whitespace collapsing (the common case). */
const CLEAN_VALUE = /^(?:[^\s]+(?: [^\s]+)*)?$/;
const WHITESPACE_RUN = /[ \t\r\n]+/g;

/**
 * Trims and collapses runs of whitespace to one space. Node joins repeated
 * headers with ', ' while SigV4 joins them with ','; node keeps arrays only
 * for a few names, so a repeated custom header may not verify (clients do not
 * send those in practice).
 */
export function canonicalHeaderValue(value: string | string[] | undefined): string {
  if (value === undefined) return '';
  const joined = typeof value === 'string' ? value : value.map(canonicalHeaderValue).join(',');
  if (CLEAN_VALUE.test(joined)) return joined;
  const collapsed = joined.replace(WHITESPACE_RUN, ' ');
  const start = collapsed.startsWith(' ') ? 1 : 0;
  const end = collapsed.endsWith(' ') ? collapsed.length - 1 : collapsed.length;
  return start >= end ? '' : collapsed.slice(start, end);
}

export function buildCanonicalRequest(
  method: string,
  uri: string,
  query: string,
  headers: IncomingHttpHeaders,
  signedHeaders: readonly string[],
  payloadHash: string,
): string {
  let out = `${method}\n${uri}\n${query}\n`;
  for (const name of signedHeaders) {
    let value = headers[name];
    // Some proxies consume 'Expect: 100-continue' the client signed; it can only have been that value.
    if (value === undefined && name === 'expect') value = '100-continue';
    out += `${name}:${canonicalHeaderValue(value)}\n`;
  }
  return `${out}\n${signedHeaders.join(';')}\n${payloadHash}`;
}

/**
 * AWS requires 'host' and every x-amz-* header present to be signed
 * (x-amz-content-sha256 excepted: its value is in the canonical request
 * anyway); otherwise anyone on the path could add or change them, e.g.
 * replay a signed PUT against another bucket by changing Host.
 */
export function checkSignedHeadersCover(headers: IncomingHttpHeaders, signedHeaders: readonly string[]): void {
  const missing: string[] = [];
  if (!signedHeaders.includes('host')) missing.push('host');
  for (const name in headers) {
    if (name.startsWith('x-amz-') && name !== 'x-amz-content-sha256' && !signedHeaders.includes(name)) missing.push(name);
  }
  if (missing.length > 0) {
    throw new S3Error('AccessDenied', 'There were headers present in the request which were not signed', { HeadersNotSigned: missing.join(', ') });
  }
}
