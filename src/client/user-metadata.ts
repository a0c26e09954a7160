/** User metadata of GET and HEAD answers (without undici: `talus scan` reads HEADs over its own connections). */

const ASCII = /^[\x20-\x7e]*$/;

/** User metadata of a GET or HEAD response, names without the prefix, values decoded as UTF-8. */
export function userMetadata(headers: Record<string, string>): Record<string, string> {
  const metadata: Record<string, string> = {};
  for (const name in headers) {
    if (!name.startsWith('x-amz-meta-')) continue;
    const value = headers[name]!;
    metadata[name.slice('x-amz-meta-'.length)] = ASCII.test(value) ? value : Buffer.from(value, 'latin1').toString('utf8');
  }
  return metadata;
}
