/**
 * A bucket's CORS configuration: Put/Get/DeleteBucketCors (the XML, validated
 * as AWS validates it), its stored form (JSON in the bucket's `cors` config
 * document) and the rule matching that preflights and actual requests share
 * (src/http/cors.ts answers them).
 * https://docs.aws.amazon.com/AmazonS3/latest/userguide/cors.html
 * https://docs.aws.amazon.com/AmazonS3/latest/API/API_CORSRule.html
 */
import type { BucketRecord } from '../meta/types.ts';
import { CORS_CONFIG_BYTES_MAX, CORS_RULES_MAX } from '../util/limits.ts';
import { S3Error } from '../util/s3-error.ts';
import { document, element, listOf, objectOf, optionalElement, parseXml, textOf } from '../http/xml.ts';
import { emptyResponse, readSmallBody, xmlResponse, type RequestContext, type S3Response } from './context.ts';

export interface CorsRule {
  id?: string;
  /** Origins, each with at most one `*` standing for any run of characters. */
  allowedOrigins: string[];
  allowedMethods: CorsMethod[];
  /** Header names (lower-cased), each with at most one `*`. */
  allowedHeaders: string[];
  exposeHeaders: string[];
  maxAgeSeconds?: number;
}

const CORS_METHODS = ['GET', 'PUT', 'POST', 'DELETE', 'HEAD'] as const;
export type CorsMethod = (typeof CORS_METHODS)[number];

/** The rule that allows a request, and how it named the origin. */
export interface CorsMatch {
  rule: CorsRule;
  /** The rule allows any origin (`*`): answered with `*` and never with credentials. */
  anyOrigin: boolean;
}

export async function handlePutBucketCors(context: RequestContext): Promise<S3Response> {
  const rules = parseCorsXml(await readSmallBody(context, CORS_CONFIG_BYTES_MAX));
  await context.engine.setBucketConfig(context.route.bucket, 'cors', JSON.stringify(rules));
  return emptyResponse(200);
}

export async function handleGetBucketCors(context: RequestContext): Promise<S3Response> {
  const rules = corsRulesOf(await context.engine.getBucket(context.route.bucket));
  if (rules === undefined) throw new S3Error('NoSuchCORSConfiguration', undefined, { BucketName: context.route.bucket });
  return xmlResponse(document('CORSConfiguration', rules.map(ruleXml).join('')));
}

export async function handleDeleteBucketCors(context: RequestContext): Promise<S3Response> {
  await context.engine.setBucketConfig(context.route.bucket, 'cors', null);
  return emptyResponse(204);
}

function ruleXml(rule: CorsRule): string {
  let inner = optionalElement('ID', rule.id);
  for (const origin of rule.allowedOrigins) inner += element('AllowedOrigin', origin);
  for (const method of rule.allowedMethods) inner += element('AllowedMethod', method);
  for (const name of rule.allowedHeaders) inner += element('AllowedHeader', name);
  for (const name of rule.exposeHeaders) inner += element('ExposeHeader', name);
  inner += optionalElement('MaxAgeSeconds', rule.maxAgeSeconds);
  return `<CORSRule>${inner}</CORSRule>`;
}

/** <CORSConfiguration><CORSRule>… → rules, or MalformedXML / InvalidRequest as AWS answers. */
export function parseCorsXml(body: string): CorsRule[] {
  const root = parseXml(body, 'CORSConfiguration');
  const nodes = listOf(root['CORSRule']);
  if (nodes.length === 0) throw new S3Error('MalformedXML');
  if (nodes.length > CORS_RULES_MAX) throw new S3Error('InvalidRequest', `The number of CORS rules should not exceed allowed limit of ${CORS_RULES_MAX} rules.`);
  return nodes.map(parseRule);
}

function parseRule(node: Parameters<typeof objectOf>[0]): CorsRule {
  const fields = objectOf(node);
  const texts = (name: string): string[] => listOf(fields[name]).map((child) => textOf(child) ?? '');
  const allowedOrigins = texts('AllowedOrigin');
  const methodNames = texts('AllowedMethod');
  if (allowedOrigins.length === 0 || methodNames.length === 0) throw new S3Error('MalformedXML');
  const allowedMethods = methodNames.map((name) => {
    if (!(CORS_METHODS as readonly string[]).includes(name)) throw new S3Error('InvalidRequest', `Found unsupported HTTP method in CORS config. Unsupported method is ${name}`);
    return name as CorsMethod;
  });
  for (const origin of allowedOrigins) checkOneWildcard(origin, 'AllowedOrigin');
  const allowedHeaders = texts('AllowedHeader').map((name) => name.toLowerCase());
  for (const name of allowedHeaders) checkOneWildcard(name, 'AllowedHeader');
  const rule: CorsRule = { allowedOrigins, allowedMethods, allowedHeaders, exposeHeaders: texts('ExposeHeader') };
  const id = textOf(fields['ID']);
  if (id !== undefined) {
    if (id.length > 255) throw new S3Error('InvalidArgument', 'The ID of a CORS rule must be at most 255 characters.');
    rule.id = id;
  }
  const maxAge = textOf(fields['MaxAgeSeconds']);
  if (maxAge !== undefined) {
    if (!/^\d{1,10}$/.test(maxAge.trim())) throw new S3Error('MalformedXML');
    rule.maxAgeSeconds = Number(maxAge.trim());
  }
  return rule;
}

function checkOneWildcard(value: string, name: string): void {
  if (value.indexOf('*') !== value.lastIndexOf('*')) throw new S3Error('InvalidRequest', `${name} "${value}" can not have more than one wildcard.`);
}

/**
 * The bucket's rules, parsed once per bucket record: records are frozen and
 * replaced when the bucket changes, so a request with an Origin header pays
 * a WeakMap lookup, not a JSON parse. `null` caches "no configuration".
 */
const parsedRules = new WeakMap<BucketRecord, readonly CorsRule[] | null>();

export function corsRulesOf(bucket: BucketRecord): readonly CorsRule[] | undefined {
  let rules = parsedRules.get(bucket);
  if (rules === undefined) {
    const stored = bucket.configs?.cors;
    rules = stored === undefined ? null : (JSON.parse(stored) as CorsRule[]);
    parsedRules.set(bucket, rules);
  }
  return rules ?? undefined;
}

/**
 * The first rule (in configuration order, as AWS evaluates them) that allows
 * `origin` with `method` and every one of `requestHeaders` (lower-cased).
 */
export function matchCorsRule(rules: readonly CorsRule[], origin: string, method: string, requestHeaders: readonly string[]): CorsMatch | undefined {
  for (const rule of rules) {
    if (!(rule.allowedMethods as readonly string[]).includes(method)) continue;
    let anyOrigin = false;
    let originAllowed = false;
    for (const pattern of rule.allowedOrigins) {
      if (pattern === '*') {
        anyOrigin = true;
        originAllowed = true;
        break;
      }
      if (wildcardMatches(pattern, origin)) {
        originAllowed = true;
        break;
      }
    }
    if (!originAllowed) continue;
    if (!requestHeaders.every((name) => rule.allowedHeaders.some((pattern) => wildcardMatches(pattern, name)))) continue;
    return { rule, anyOrigin };
  }
  return undefined;
}

/** `pattern` with at most one `*` (any run of characters, possibly empty) against `text`. */
export function wildcardMatches(pattern: string, text: string): boolean {
  const star = pattern.indexOf('*');
  if (star === -1) return pattern === text;
  const prefix = pattern.slice(0, star);
  const suffix = pattern.slice(star + 1);
  return text.length >= prefix.length + suffix.length && text.startsWith(prefix) && text.endsWith(suffix);
}
