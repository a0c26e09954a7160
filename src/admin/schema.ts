/**
 * The admin API's input shapes: flat JSON objects of strings, integers,
 * booleans and string lists. One definition serves three purposes — the
 * request validator, the handler's TypeScript type (`InputOf`), and the
 * OpenAPI document (`toJsonSchema`) — so the spec cannot drift from what the
 * server accepts. Deliberately this small: every operation's input is a flat
 * record, and a general JSON Schema validator (ajv) would be 30× the code for
 * features no operation uses.
 */
import { AdminError } from './errors.ts';

export interface FieldSpec {
  type: 'string' | 'integer' | 'boolean' | 'string[]' | 'string|null' | 'integer|null';
  description: string;
  required?: boolean;
  /** Allowed values of a string field. */
  enum?: readonly string[];
  /** Longest string (or list) accepted: every field is bounded. */
  maxLength?: number;
  minimum?: number;
  maximum?: number;
}

export type InputSpec = Readonly<Record<string, FieldSpec>>;

type ValueOf<F extends FieldSpec> = F['type'] extends 'string'
  ? F['enum'] extends readonly (infer E)[] ? E : string
  : F['type'] extends 'integer' ? number
  : F['type'] extends 'boolean' ? boolean
  : F['type'] extends 'string[]' ? string[]
  : F['type'] extends 'integer|null' ? number | null
  : string | null;

type RequiredKeys<S extends InputSpec> = { [K in keyof S]: S[K]['required'] extends true ? K : never }[keyof S];
type OptionalKeys<S extends InputSpec> = Exclude<keyof S, RequiredKeys<S>>;

/** The validated input a handler receives. */
export type InputOf<S extends InputSpec> = { [K in RequiredKeys<S>]: ValueOf<S[K]> } & { [K in OptionalKeys<S>]?: ValueOf<S[K]> };

/** Strings without a declared maxLength: long enough for a policy document, still bounded. */
const STRING_LENGTH_DEFAULT_MAX = 20 * 1024;
const LIST_LENGTH_DEFAULT_MAX = 1000;

/** Checks `body` against `spec`: unknown fields, wrong types and out-of-range values are InvalidRequest naming the field. */
export function validateInput<S extends InputSpec>(spec: S, body: unknown): InputOf<S> {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new AdminError('InvalidRequest', 'the request body must be a JSON object');
  const record = body as Record<string, unknown>;
  for (const name of Object.keys(record)) {
    if (!Object.hasOwn(spec, name)) throw new AdminError('InvalidRequest', `unknown field ${JSON.stringify(name)}`);
  }
  for (const [name, field] of Object.entries(spec)) {
    const value = record[name];
    if (value === undefined) {
      if (field.required === true) throw new AdminError('InvalidRequest', `missing field ${name}`);
      continue;
    }
    checkField(name, field, value);
  }
  return record as InputOf<S>;
}

function checkField(name: string, field: FieldSpec, value: unknown): void {
  const invalid = (why: string): AdminError => new AdminError('InvalidRequest', `field ${name} ${why}`);
  switch (field.type) {
    case 'string|null':
      if (value === null) return;
      checkString(value, field, invalid);
      return;
    case 'string':
      checkString(value, field, invalid);
      return;
    case 'integer|null':
      if (value === null) return;
      checkInteger(value, field, invalid);
      return;
    case 'integer':
      checkInteger(value, field, invalid);
      return;
    case 'boolean':
      if (typeof value !== 'boolean') throw invalid('must be true or false');
      return;
    case 'string[]':
      if (!Array.isArray(value)) throw invalid('must be a list of strings');
      if (value.length > (field.maxLength ?? LIST_LENGTH_DEFAULT_MAX)) throw invalid('has too many entries');
      for (const item of value) checkString(item, { ...field, enum: undefined, maxLength: STRING_LENGTH_DEFAULT_MAX }, invalid);
      return;
  }
}

function checkInteger(value: unknown, field: FieldSpec, invalid: (why: string) => AdminError): void {
  if (typeof value !== 'number' || !Number.isSafeInteger(value)) throw invalid('must be an integer');
  if (field.minimum !== undefined && value < field.minimum) throw invalid(`must be at least ${field.minimum}`);
  if (field.maximum !== undefined && value > field.maximum) throw invalid(`must be at most ${field.maximum}`);
}

function checkString(value: unknown, field: FieldSpec, invalid: (why: string) => AdminError): void {
  if (typeof value !== 'string') throw invalid('must be a string');
  if (value.length > (field.maxLength ?? STRING_LENGTH_DEFAULT_MAX)) throw invalid('is too long');
  if (field.enum !== undefined && !field.enum.includes(value)) throw invalid(`must be one of ${field.enum.join(', ')}`);
}

/** The JSON Schema (OpenAPI 3.1 dialect) of an input or output shape. */
export function toJsonSchema(spec: InputSpec): Record<string, unknown> {
  const properties: Record<string, unknown> = {};
  const required: string[] = [];
  for (const [name, field] of Object.entries(spec)) {
    properties[name] = fieldSchema(field);
    if (field.required === true) required.push(name);
  }
  return { type: 'object', additionalProperties: false, properties, ...(required.length > 0 ? { required } : {}) };
}

function fieldSchema(field: FieldSpec): Record<string, unknown> {
  const common = { description: field.description };
  switch (field.type) {
    case 'string':
      return { ...common, type: 'string', ...(field.enum !== undefined ? { enum: [...field.enum] } : {}), maxLength: field.maxLength ?? STRING_LENGTH_DEFAULT_MAX };
    case 'string|null':
      return { ...common, type: ['string', 'null'], maxLength: field.maxLength ?? STRING_LENGTH_DEFAULT_MAX };
    case 'integer|null':
      return { ...common, type: ['integer', 'null'], ...(field.minimum !== undefined ? { minimum: field.minimum } : {}), ...(field.maximum !== undefined ? { maximum: field.maximum } : {}) };
    case 'integer':
      return { ...common, type: 'integer', ...(field.minimum !== undefined ? { minimum: field.minimum } : {}), ...(field.maximum !== undefined ? { maximum: field.maximum } : {}) };
    case 'boolean':
      return { ...common, type: 'boolean' };
    case 'string[]':
      return { ...common, type: 'array', items: { type: 'string' }, maxItems: field.maxLength ?? LIST_LENGTH_DEFAULT_MAX };
  }
}
