/**
 * An aws-chunked encoder written from the AWS documentation with node:crypto
 * only, independent of the decoder in src/auth: signed chunks, unsigned
 * chunks with a trailer, and signed chunks with a signed trailer.
 */
import assert from 'node:assert/strict';
import { createHash, createHmac } from 'node:crypto';

export const EMPTY_SHA256 = createHash('sha256').digest('hex');
export const sha256 = (data: Buffer | string): string => createHash('sha256').update(data).digest('hex');
export const hmac = (key: Buffer | string, data: string): Buffer => createHmac('sha256', key).update(data).digest();

export function docSigningKey(secret: string, date: string, region: string): Buffer {
  return hmac(hmac(hmac(hmac(`AWS4${secret}`, date), region), 's3'), 'aws4_request');
}

export type Mode = 'signed' | 'signed-trailer' | 'unsigned-trailer';

export const CONTENT_SHA256: Record<Mode, string> = {
  signed: 'STREAMING-AWS4-HMAC-SHA256-PAYLOAD',
  'signed-trailer': 'STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER',
  'unsigned-trailer': 'STREAMING-UNSIGNED-PAYLOAD-TRAILER',
};

export interface Signing {
  key: Buffer;
  amzDate: string;
  scope: string;
  seed: string;
}

export interface Encoded {
  body: Buffer;
  chunkSignatures: string[];
  trailerSignature: string | undefined;
}

export function encode(data: Buffer, mode: Mode, chunkSize: number, trailers: [string, string][], signing: Signing | undefined): Encoded {
  const parts: Buffer[] = [];
  const chunkSignatures: string[] = [];
  let previous = signing?.seed ?? '';
  const sign = (chunk: Buffer): string => {
    assert.ok(signing !== undefined);
    const stringToSign = ['AWS4-HMAC-SHA256-PAYLOAD', signing.amzDate, signing.scope, previous, EMPTY_SHA256, sha256(chunk)].join('\n');
    previous = hmac(signing.key, stringToSign).toString('hex');
    chunkSignatures.push(previous);
    return previous;
  };
  const header = (chunk: Buffer): string => (mode === 'unsigned-trailer' ? `${chunk.length.toString(16)}\r\n` : `${chunk.length.toString(16)};chunk-signature=${sign(chunk)}\r\n`);
  for (let offset = 0; offset < data.length; offset += chunkSize) {
    const chunk = data.subarray(offset, offset + chunkSize);
    parts.push(Buffer.from(header(chunk)), chunk, Buffer.from('\r\n'));
  }
  parts.push(Buffer.from(header(Buffer.alloc(0))));
  let trailerSignature: string | undefined;
  if (mode === 'signed') {
    parts.push(Buffer.from('\r\n'));
  } else {
    let canonical = '';
    for (const [name, value] of trailers) {
      parts.push(Buffer.from(`${name}:${value}\r\n`));
      canonical += `${name}:${value}\n`;
    }
    if (mode === 'signed-trailer') {
      assert.ok(signing !== undefined);
      trailerSignature = hmac(signing.key, ['AWS4-HMAC-SHA256-TRAILER', signing.amzDate, signing.scope, previous, sha256(canonical)].join('\n')).toString('hex');
      parts.push(Buffer.from(`x-amz-trailer-signature:${trailerSignature}\r\n`));
    }
    parts.push(Buffer.from('\r\n'));
  }
  return { body: Buffer.concat(parts), chunkSignatures, trailerSignature };
}
