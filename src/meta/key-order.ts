/**
 * S3 orders keys by their UTF-8 bytes, which is code point order. These
 * helpers compute bounds in that order for delimiter skips and prefix scans.
 */

/**
 * The smallest string greater than every string that starts with `prefix`,
 * or undefined when none exists (prefix made only of U+10FFFF).
 * Used to jump over all keys of a common prefix in one seek.
 */
export function prefixSuccessor(prefix: string): string | undefined {
  const codePoints = Array.from(prefix);
  while (codePoints.length > 0) {
    const last = codePoints.pop()!.codePointAt(0)!;
    if (last < 0x10ffff) {
      // Skip the surrogate range: those code points cannot appear in valid UTF-8.
      const next = last === 0xd7ff ? 0xe000 : last + 1;
      return codePoints.join('') + String.fromCodePoint(next);
    }
  }
  return undefined;
}

/** Compares two keys in UTF-8 byte order (JS `<` compares UTF-16 units, which differs above U+FFFF). */
export function compareKeys(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

/**
 * If `key` (under `prefix`) contains the delimiter, the common prefix it rolls
 * up into; otherwise undefined.
 */
export function commonPrefixOf(key: string, prefix: string, delimiter: string): string | undefined {
  if (delimiter === '') return undefined;
  const at = key.indexOf(delimiter, prefix.length);
  return at === -1 ? undefined : key.slice(0, at + delimiter.length);
}
