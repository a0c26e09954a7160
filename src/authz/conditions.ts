/**
 * IAM condition operators, compiled once per policy into predicates over the
 * request's condition keys.
 *
 * Semantics (IAM's): within one operator block every key must hold (AND);
 * a key holds when any of the policy's values matches (OR). A negated
 * operator (StringNotEquals, NotIpAddress, …) is the negation of its positive
 * form, so it holds when the key is absent. `…IfExists` holds when the key is
 * absent. `ForAnyValue:` holds when some request value matches (false for an
 * absent key), `ForAllValues:` when every request value does (true for an
 * absent key).
 */
import { BlockList, isIP } from 'node:net';
import { type ConditionKeys, type Template, compileTemplate, resolveTemplate, resolveTemplatePattern } from './condition-keys.ts';
import { AuthzError } from './errors.ts';
import { wildcardSource } from './wildcard.ts';

export type ConditionPredicate = (keys: ConditionKeys) => boolean;

/** Compares one request value with the policy's values (already compiled). */
type ValueTest = (value: string, keys: ConditionKeys) => boolean;

interface OperatorDefinition {
  negated: boolean;
  compile: (policyValues: readonly string[], variables: boolean) => ValueTest;
}

function malformed(message: string): AuthzError {
  return new AuthzError('MalformedPolicy', message);
}

function stringTest(ignoreCase: boolean): (values: readonly string[], variables: boolean) => ValueTest {
  return (values, variables) => {
    const templates = values.map((value) => (variables ? compileTemplate(value) : { constant: value }));
    if (templates.every((template) => 'constant' in template)) {
      const set = new Set(values.map((value) => (ignoreCase ? value.toLowerCase() : value)));
      return ignoreCase ? (value) => set.has(value.toLowerCase()) : (value) => set.has(value);
    }
    return (value, keys) => templates.some((template) => {
      const resolved = resolveTemplate(template, keys);
      if (resolved === undefined) return false;
      return ignoreCase ? resolved.toLowerCase() === value.toLowerCase() : resolved === value;
    });
  };
}

function likeTest(values: readonly string[], variables: boolean): ValueTest {
  const templates: Template[] = values.map((value) => (variables ? compileTemplate(value) : { constant: value }));
  if (templates.every((template) => 'constant' in template)) {
    const regexps = values.map((value) => new RegExp(`^${wildcardSource(value)}$`));
    return (value) => regexps.some((regexp) => regexp.test(value));
  }
  return (value, keys) => templates.some((template) => resolveTemplatePattern(template, keys)?.test(value) === true);
}

function numericTest(compare: (a: number, b: number) => boolean): (values: readonly string[]) => ValueTest {
  return (values) => {
    const numbers = values.map((value) => {
      const number = Number(value);
      if (value.trim() === '' || !Number.isFinite(number)) throw malformed(`Invalid numeric value in condition: ${value}`);
      return number;
    });
    return (value) => {
      const number = Number(value);
      if (value.trim() === '' || !Number.isFinite(number)) return false;
      return numbers.some((policyNumber) => compare(number, policyNumber));
    };
  };
}

/** ISO 8601 dates or epoch seconds (IAM accepts both). */
export function parseDate(text: string): number | undefined {
  if (/^\d+$/.test(text)) return Number(text) * 1000;
  const ms = Date.parse(text);
  return Number.isNaN(ms) ? undefined : ms;
}

function dateTest(compare: (a: number, b: number) => boolean): (values: readonly string[]) => ValueTest {
  return (values) => {
    const dates = values.map((value) => {
      const ms = parseDate(value);
      if (ms === undefined) throw malformed(`Invalid date value in condition: ${value}`);
      return ms;
    });
    return (value) => {
      const ms = parseDate(value);
      return ms !== undefined && dates.some((policyMs) => compare(ms, policyMs));
    };
  };
}

function boolTest(values: readonly string[]): ValueTest {
  const set = new Set<string>(values.map((value) => {
    const lower = value.toLowerCase();
    if (lower !== 'true' && lower !== 'false') throw malformed(`Invalid boolean value in condition: ${value}`);
    return lower;
  }));
  return (value) => set.has(value.toLowerCase());
}

/** Parses `a.b.c.d[/n]` or an IPv6 address with an optional prefix; undefined when invalid. */
export function parseCidr(text: string): { address: string; prefix: number; family: 'ipv4' | 'ipv6' } | undefined {
  const slash = text.indexOf('/');
  const address = slash === -1 ? text : text.slice(0, slash);
  const version = isIP(address);
  if (version === 0) return undefined;
  const max = version === 4 ? 32 : 128;
  let prefix = max;
  if (slash !== -1) {
    const prefixText = text.slice(slash + 1);
    if (!/^\d{1,3}$/.test(prefixText)) return undefined;
    prefix = Number(prefixText);
    if (prefix > max) return undefined;
  }
  return { address, prefix, family: version === 4 ? 'ipv4' : 'ipv6' };
}

function ipTest(values: readonly string[]): ValueTest {
  const blocks = new BlockList();
  for (const value of values) {
    const cidr = parseCidr(value.trim());
    if (cidr === undefined) throw malformed(`Invalid IP address or CIDR in condition: ${value}`);
    blocks.addSubnet(cidr.address, cidr.prefix, cidr.family);
  }
  return (value) => {
    const version = isIP(value);
    if (version === 0) return false;
    return blocks.check(value, version === 4 ? 'ipv4' : 'ipv6');
  };
}

function arnLikeTest(values: readonly string[]): ValueTest {
  // ARNs compare case-sensitively, each of the six colon-separated parts on its own; wildcards do not cross a colon.
  const regexps = values.map((value) => new RegExp(`^${value.split(':').map((part) => wildcardSource(part).replaceAll('[\\s\\S]', '[^:]')).join(':')}$`));
  return (value) => regexps.some((regexp) => regexp.test(value));
}

function binaryTest(values: readonly string[]): ValueTest {
  const set = new Set(values);
  return (value) => set.has(value);
}

const POSITIVE: Record<string, (values: readonly string[], variables: boolean) => ValueTest> = {
  StringEquals: stringTest(false),
  StringEqualsIgnoreCase: stringTest(true),
  StringLike: likeTest,
  NumericEquals: numericTest((a, b) => a === b),
  NumericLessThan: numericTest((a, b) => a < b),
  NumericLessThanEquals: numericTest((a, b) => a <= b),
  NumericGreaterThan: numericTest((a, b) => a > b),
  NumericGreaterThanEquals: numericTest((a, b) => a >= b),
  DateEquals: dateTest((a, b) => a === b),
  DateLessThan: dateTest((a, b) => a < b),
  DateLessThanEquals: dateTest((a, b) => a <= b),
  DateGreaterThan: dateTest((a, b) => a > b),
  DateGreaterThanEquals: dateTest((a, b) => a >= b),
  Bool: boolTest,
  BinaryEquals: binaryTest,
  IpAddress: ipTest,
  ArnEquals: arnLikeTest,
  ArnLike: arnLikeTest,
};
const NEGATED: Record<string, string> = {
  StringNotEquals: 'StringEquals',
  StringNotEqualsIgnoreCase: 'StringEqualsIgnoreCase',
  StringNotLike: 'StringLike',
  NumericNotEquals: 'NumericEquals',
  DateNotEquals: 'DateEquals',
  NotIpAddress: 'IpAddress',
  ArnNotEquals: 'ArnEquals',
  ArnNotLike: 'ArnLike',
};

function operatorDefinition(name: string): OperatorDefinition | undefined {
  const positive = POSITIVE[name];
  if (positive !== undefined) return { negated: false, compile: positive };
  const base = NEGATED[name];
  if (base !== undefined) return { negated: true, compile: POSITIVE[base] as OperatorDefinition['compile'] };
  return undefined;
}

/** Condition keys S3 accepts in policies; tag keys and the aws: global keys by prefix. */
const KNOWN_KEYS = new Set([
  'aws:sourceip', 'aws:securetransport', 'aws:referer', 'aws:username', 'aws:userid', 'aws:currenttime', 'aws:epochtime',
  'aws:useragent', 'aws:principaltype', 'aws:principalarn', 'aws:principalaccount', 'aws:sourcearn', 'aws:sourcevpc',
  'aws:sourcevpce', 'aws:sourceowner', 'aws:sourceaccount', 'aws:principalorgid', 'aws:multifactorauthpresent',
  'aws:multifactorauthage', 'aws:tokenissuetime', 'aws:viaawsservice', 'aws:calledvia', 'aws:requestedregion',
  's3:prefix', 's3:delimiter', 's3:max-keys', 's3:x-amz-acl', 's3:x-amz-grant-read', 's3:x-amz-grant-write',
  's3:x-amz-grant-read-acp', 's3:x-amz-grant-write-acp', 's3:x-amz-grant-full-control', 's3:x-amz-copy-source',
  's3:x-amz-metadata-directive', 's3:x-amz-server-side-encryption', 's3:x-amz-server-side-encryption-aws-kms-key-id',
  's3:x-amz-storage-class', 's3:x-amz-content-sha256', 's3:versionid', 's3:locationconstraint', 's3:requestobjecttagkeys',
  's3:authtype', 's3:signatureversion', 's3:signatureage', 's3:tlsversion', 's3:x-amz-object-ownership',
  's3:object-lock-mode', 's3:object-lock-retain-until-date', 's3:object-lock-legal-hold', 's3:object-lock-remaining-retention-days',
  's3:resourceaccount', 's3:objectcreationoperation',
]);
const KNOWN_KEY_PREFIXES = ['s3:existingobjecttag/', 's3:requestobjecttag/', 'aws:requesttag/', 'aws:resourcetag/', 'aws:principaltag/'];

export function isKnownConditionKey(lowerCaseName: string): boolean {
  return KNOWN_KEYS.has(lowerCaseName) || KNOWN_KEY_PREFIXES.some((prefix) => lowerCaseName.startsWith(prefix) && lowerCaseName.length > prefix.length);
}

/** A compiled condition entry, kept for the public-policy analysis. */
export interface CompiledConditionEntry {
  operator: string;
  key: string;
  values: readonly string[];
  ifExists: boolean;
  setOperator: 'ForAnyValue' | 'ForAllValues' | undefined;
  test: ConditionPredicate;
}

/**
 * Compiles a statement's Condition block; throws MalformedPolicy for anything
 * IAM would refuse. `variables`: policy variables in values are resolved
 * (Version 2012-10-17), else `${…}` is literal text.
 */
export function compileCondition(condition: unknown, variables = true): CompiledConditionEntry[] {
  if (typeof condition !== 'object' || condition === null || Array.isArray(condition)) throw malformed('Condition must be an object');
  const entries: CompiledConditionEntry[] = [];
  for (const [operatorText, block] of Object.entries(condition as Record<string, unknown>)) {
    let name = operatorText;
    let setOperator: 'ForAnyValue' | 'ForAllValues' | undefined;
    if (name.startsWith('ForAnyValue:')) { setOperator = 'ForAnyValue'; name = name.slice('ForAnyValue:'.length); }
    else if (name.startsWith('ForAllValues:')) { setOperator = 'ForAllValues'; name = name.slice('ForAllValues:'.length); }
    const ifExists = name !== 'Null' && name.endsWith('IfExists');
    if (ifExists) name = name.slice(0, -'IfExists'.length);
    if (typeof block !== 'object' || block === null || Array.isArray(block)) throw malformed(`Invalid Condition type : ${operatorText}`);
    for (const [keyText, rawValues] of Object.entries(block as Record<string, unknown>)) {
      const key = keyText.toLowerCase();
      if (!isKnownConditionKey(key)) throw malformed('Policy has an invalid condition key');
      const values = conditionValues(rawValues);
      entries.push({ operator: name, key, values, ifExists, setOperator, test: compileEntry(operatorText, name, key, values, ifExists, setOperator, variables) });
    }
  }
  return entries;
}

function conditionValues(raw: unknown): string[] {
  const list = Array.isArray(raw) ? raw : [raw];
  if (list.length === 0) throw malformed('Condition values must not be empty');
  return list.map((value) => {
    if (typeof value === 'string') return value;
    if (typeof value === 'number' || typeof value === 'boolean') return String(value);
    throw malformed('Condition values must be strings, numbers or booleans');
  });
}

function compileEntry(operatorText: string, name: string, key: string, values: readonly string[], ifExists: boolean, setOperator: 'ForAnyValue' | 'ForAllValues' | undefined, variables: boolean): ConditionPredicate {
  if (name === 'Null') {
    const expectAbsent = boolTest(values);
    return (keys) => {
      const present = keys.get(key);
      return expectAbsent(present === undefined || present.length === 0 ? 'true' : 'false', keys);
    };
  }
  const definition = operatorDefinition(name);
  if (definition === undefined) throw malformed(`Invalid Condition type : ${operatorText}`);
  const test = definition.compile(values, variables);
  const { negated } = definition;
  // One request value against the policy's values, with the operator's polarity.
  const holdsFor = negated ? (value: string, keys: ConditionKeys) => !test(value, keys) : test;
  if (setOperator === 'ForAllValues') {
    return (keys) => {
      const present = keys.get(key);
      if (present === undefined || present.length === 0) return true;
      return present.every((value) => holdsFor(value, keys));
    };
  }
  if (setOperator === 'ForAnyValue') {
    return (keys) => {
      const present = keys.get(key);
      if (present === undefined || present.length === 0) return false;
      return present.some((value) => holdsFor(value, keys));
    };
  }
  return (keys) => {
    const present = keys.get(key);
    if (present === undefined || present.length === 0) return ifExists || negated;
    const matched = present.some((value) => test(value, keys));
    return negated ? !matched : matched;
  };
}

/** True when every entry holds. */
export function conditionsHold(entries: readonly CompiledConditionEntry[], keys: ConditionKeys): boolean {
  for (const entry of entries) if (!entry.test(keys)) return false;
  return true;
}
