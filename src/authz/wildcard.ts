/**
 * IAM wildcard patterns: `*` is any run of characters (including none, and
 * including `/` and `:`), `?` is exactly one character. Compiled once, when a
 * policy is stored; matching a literal is a string comparison, a `prefix*`
 * a startsWith, anything else one anchored RegExp.
 */
export type TextMatcher = (text: string) => boolean;

const REGEXP_SPECIALS = /[.+^${}()|[\]\\]/g;

export function hasWildcard(pattern: string): boolean {
  return pattern.includes('*') || pattern.includes('?');
}

/** The RegExp source of a pattern, without anchors. */
export function wildcardSource(pattern: string): string {
  let source = '';
  for (const char of pattern) {
    if (char === '*') source += '[\\s\\S]*';
    else if (char === '?') source += '[\\s\\S]';
    else source += char.replace(REGEXP_SPECIALS, '\\$&');
  }
  return source;
}

export function compileWildcard(pattern: string, ignoreCase: boolean): TextMatcher {
  if (pattern === '*') return () => true;
  const normalized = ignoreCase ? pattern.toLowerCase() : pattern;
  if (!hasWildcard(pattern)) {
    return ignoreCase ? (text) => text.length === normalized.length && text.toLowerCase() === normalized : (text) => text === normalized;
  }
  const firstWildcard = normalized.search(/[*?]/);
  if (firstWildcard === normalized.length - 1 && normalized.endsWith('*')) {
    const prefix = normalized.slice(0, -1);
    return ignoreCase ? (text) => text.toLowerCase().startsWith(prefix) : (text) => text.startsWith(prefix);
  }
  const regexp = new RegExp(`^${wildcardSource(pattern)}$`, ignoreCase ? 'i' : '');
  return (text) => regexp.test(text);
}

/** True when any of the matchers matches. */
export function anyMatches(matchers: readonly TextMatcher[], text: string): boolean {
  for (const matcher of matchers) if (matcher(text)) return true;
  return false;
}
