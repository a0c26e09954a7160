/**
 * The request's condition keys: name → values. Names are case-insensitive
 * in IAM, so they are stored lower-cased; a key may carry several values
 * (multi-valued keys such as s3:RequestObjectTagKeys), each a string as IAM
 * compares them.
 */
import { wildcardSource } from './wildcard.ts';

export interface ConditionKeys {
  /** Values of a key, by its lower-cased name; undefined when the request has no such key. */
  get(lowerCaseName: string): readonly string[] | undefined;
}

export type ConditionKeyInput = Record<string, string | number | boolean | readonly string[] | undefined>;

/** Builds the map from any-case names; undefined values are left out (the key is absent). */
export function conditionKeys(input: ConditionKeyInput): ConditionKeys {
  const keys = new Map<string, readonly string[]>();
  for (const [name, value] of Object.entries(input)) {
    if (value === undefined) continue;
    keys.set(name.toLowerCase(), typeof value === 'object' ? value : [String(value)]);
  }
  return keys;
}

export const NO_CONDITION_KEYS: ConditionKeys = new Map<string, readonly string[]>();

/**
 * Policy variables `${aws:username}` etc. in resources and condition values
 * (IAM: `${*}`, `${?}` and `${$}` stand for the literal characters). A text
 * without `${` is a constant and costs nothing per request.
 */
export type Template = { constant: string } | { parts: readonly TemplatePart[] };
export type TemplatePart = { text: string } | { literal: string } | { variable: string };

const VARIABLE = /\$\{([^}]*)\}/g;

export function compileTemplate(text: string): Template {
  if (!text.includes('${')) return { constant: text };
  const parts: TemplatePart[] = [];
  let last = 0;
  for (const match of text.matchAll(VARIABLE)) {
    const start = match.index ?? 0;
    if (start > last) parts.push({ text: text.slice(last, start) });
    const name = (match[1] ?? '').trim();
    if (name === '*' || name === '?' || name === '$') parts.push({ literal: name });
    else parts.push({ variable: name.toLowerCase() });
    last = start + match[0].length;
  }
  if (last < text.length) parts.push({ text: text.slice(last) });
  return { parts };
}

/**
 * Resolves a template to plain text; undefined when a variable's key is
 * absent or multi-valued (IAM: the statement then does not match).
 */
export function resolveTemplate(template: Template, keys: ConditionKeys): string | undefined {
  if ('constant' in template) return template.constant;
  let out = '';
  for (const part of template.parts) {
    if ('text' in part) out += part.text;
    else if ('literal' in part) out += part.literal;
    else {
      const value = singleValue(keys, part.variable);
      if (value === undefined) return undefined;
      out += value;
    }
  }
  return out;
}

function singleValue(keys: ConditionKeys, name: string): string | undefined {
  const values = keys.get(name);
  return values === undefined || values.length !== 1 ? undefined : values[0];
}

/** RegExp metacharacters, `*` and `?` included: escapes text that must match literally. */
const REGEXP_SPECIALS = /[.+^${}()|[\]\\*?]/g;

/**
 * Resolves a template used as a wildcard pattern into an anchored RegExp:
 * `*` and `?` of the policy's own text are wildcards; those of `${*}`/`${?}`
 * and of variable values are literal (a user named `*` matches only `*`).
 */
export function resolveTemplatePattern(template: Template, keys: ConditionKeys): RegExp | undefined {
  if ('constant' in template) return new RegExp(`^${wildcardSource(template.constant)}$`);
  let source = '';
  for (const part of template.parts) {
    if ('text' in part) source += wildcardSource(part.text);
    else if ('literal' in part) source += part.literal.replace(REGEXP_SPECIALS, '\\$&');
    else {
      const value = singleValue(keys, part.variable);
      if (value === undefined) return undefined;
      source += value.replace(REGEXP_SPECIALS, '\\$&');
    }
  }
  return new RegExp(`^${source}$`);
}

/**
 * Condition keys built on first use: most requests meet no policy with a
 * Condition (or no policy at all), so the wiring need not build the map for
 * them.
 */
export function lazyConditionKeys(build: () => ConditionKeys): ConditionKeys {
  let built: ConditionKeys | undefined;
  return {
    get(lowerCaseName: string): readonly string[] | undefined {
      built ??= build();
      return built.get(lowerCaseName);
    },
  };
}
