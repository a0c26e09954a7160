/**
 * Bearer tokens for the admin API: scoped to admin operations (names or
 * `*` patterns), expiring, and acting for the access key that created them
 * — at every use the creator's key must still be valid and its principal
 * allowed the operation, so a token never reaches beyond its creator's
 * rights of the moment. The token text is shown once, when created; only
 * its SHA-256 is kept (a token is 256 random bits: no salt or slow hash is
 * needed against guessing).
 *
 * Kept in the metadata store, one row of its `settings` table per token
 * (`admin-token:<sha256>` → the record as JSON, without the hash), so every
 * node sharing a PostgreSQL store sees the same tokens: one created on a
 * node works on every other, and `talus migrate` carries them along. Each
 * use reads its row by that name, with no cache: a revocation or expiry is
 * seen by every node from the next request on. A token costs one primary-key
 * read per admin call, which admin traffic affords. Tokens that an older
 * Talus kept in DATA_DIR/admin-tokens.json are imported once at start (the
 * file is then renamed admin-tokens.json.imported), so an upgrade keeps them.
 */
import { createHash, randomBytes } from 'node:crypto';
import { open, readFile, rename } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { MetadataStore } from '../meta/metadata-store.ts';
import { AdminError } from './errors.ts';

/** Where Talus before shared tokens kept them; imported once, then renamed (TOKENS_FILE_IMPORTED). */
export const TOKENS_FILE = 'admin-tokens.json';
export const TOKENS_FILE_IMPORTED = `${TOKENS_FILE}.imported`;
/** The `settings` rows holding tokens: this prefix, then the token's SHA-256 (hex). */
export const TOKEN_SETTING_PREFIX = 'admin-token:';
/** Live tokens at most: each is a settings row that ListTokens, CreateToken and RevokeToken read all of. */
export const TOKENS_MAX = 1000;
/** A token lives at most a year: a long-lived credential should be an access key, which can be listed and disabled by its user. */
export const TOKEN_LIFETIME_SECONDS_MAX = 365 * 24 * 3600;
/** Bearer tokens start with this, so they are told from keys (and found by secret scanners). */
export const TOKEN_PREFIX = 'talus_at_';
const SCOPE_PATTERN = /^[A-Za-z*]{1,64}$/;
const HASH_PATTERN = /^[0-9a-f]{64}$/;

export interface TokenRecord {
  id: string;
  name: string;
  /** SHA-256 of the token text, hex. */
  hash: string;
  /** Admin operation names or patterns (`*` any run of characters): `List*`, `GetStorageStats`, `*`. */
  scope: string[];
  /** The key the token acts for. */
  creatorAccessKeyId: string;
  createdMs: number;
  expiresMs: number;
}

/** A token as ListTokens shows it (and as its settings row holds it): never its hash. */
export type TokenView = Omit<TokenRecord, 'hash'>;

/** The file of Talus versions before tokens moved into the metadata store. */
interface TokensFile {
  version: 1;
  tokens: TokenRecord[];
}

function hashOf(token: string): string {
  return createHash('sha256').update(token).digest('hex');
}

/** True when `operation` is covered by one of the token's scope patterns. */
export function scopeCovers(scope: readonly string[], operation: string): boolean {
  return scope.some((pattern) => new RegExp(`^${pattern.replaceAll('*', '.*')}$`).test(operation));
}

/**
 * A settings row back into a record; undefined when it is not one we wrote
 * (a damaged row must never widen a token: it is refused, as unknown).
 */
function parseRow(name: string, value: string): TokenRecord | undefined {
  const hash = name.slice(TOKEN_SETTING_PREFIX.length);
  if (!name.startsWith(TOKEN_SETTING_PREFIX) || !HASH_PATTERN.test(hash)) return undefined;
  let parsed: Partial<TokenView>;
  try {
    parsed = JSON.parse(value) as Partial<TokenView>;
  } catch {
    return undefined;
  }
  const { id, name: tokenName, scope, creatorAccessKeyId, createdMs, expiresMs } = parsed;
  if (typeof id !== 'string' || typeof tokenName !== 'string' || typeof creatorAccessKeyId !== 'string') return undefined;
  if (typeof createdMs !== 'number' || typeof expiresMs !== 'number') return undefined;
  if (!Array.isArray(scope) || !scope.every((pattern) => typeof pattern === 'string' && SCOPE_PATTERN.test(pattern))) return undefined;
  return { id, name: tokenName, hash, scope, creatorAccessKeyId, createdMs, expiresMs };
}

function rowOf(record: TokenRecord): { name: string; value: string } {
  return { name: `${TOKEN_SETTING_PREFIX}${record.hash}`, value: JSON.stringify(view(record)) };
}

export class AdminTokens {
  readonly #meta: MetadataStore;
  readonly #now: () => number;

  private constructor(meta: MetadataStore, now: () => number) {
    this.#meta = meta;
    this.#now = now;
  }

  /** The tokens of `meta`, after importing DATA_DIR/admin-tokens.json if an older Talus left one. */
  static async open(meta: MetadataStore, dataDir: string, now: () => number = Date.now): Promise<AdminTokens> {
    const tokens = new AdminTokens(meta, now);
    await tokens.#importFile(join(dataDir, TOKENS_FILE));
    return tokens;
  }

  /** The token's record when it is known and not expired; undefined otherwise (revoked, expired, never issued). */
  async lookup(token: string): Promise<TokenRecord | undefined> {
    if (!token.startsWith(TOKEN_PREFIX)) return undefined;
    const name = `${TOKEN_SETTING_PREFIX}${hashOf(token)}`;
    const value = await this.#meta.getSetting(name);
    const record = value === undefined ? undefined : parseRow(name, value);
    if (record === undefined || this.#now() >= record.expiresMs) return undefined;
    return record;
  }

  async create(request: { name: string; scope: readonly string[]; expiresInSeconds: number; creatorAccessKeyId: string }): Promise<{ token: string; record: TokenView }> {
    if (request.scope.length === 0) throw new AdminError('InvalidRequest', 'field scope needs at least one operation or pattern');
    for (const pattern of request.scope) {
      if (!SCOPE_PATTERN.test(pattern)) throw new AdminError('InvalidRequest', `field scope: ${JSON.stringify(pattern.slice(0, 64))} is not an operation name or pattern (letters and *)`);
    }
    // Counted, then written: nodes creating tokens at the same moment may together pass the limit by one each.
    if ((await this.#live()).length >= TOKENS_MAX) throw new AdminError('Conflict', `there are ${TOKENS_MAX} live tokens: revoke some first`);
    const token = `${TOKEN_PREFIX}${randomBytes(32).toString('base64url')}`;
    const nowMs = this.#now();
    const record: TokenRecord = {
      id: `tok-${randomBytes(8).toString('hex')}`,
      name: request.name,
      hash: hashOf(token),
      scope: [...new Set(request.scope)],
      creatorAccessKeyId: request.creatorAccessKeyId,
      createdMs: nowMs,
      expiresMs: nowMs + request.expiresInSeconds * 1000,
    };
    // Durable before the token is shown: if this fails, nobody ever learns a token that might exist.
    const row = rowOf(record);
    await this.#meta.putSetting(row.name, row.value);
    return { token, record: view(record) };
  }

  async list(): Promise<TokenView[]> {
    return (await this.#live()).map(view);
  }

  /** False when there is no such (live) token. */
  async revoke(id: string): Promise<boolean> {
    const found = (await this.#live()).find((record) => record.id === id);
    if (found === undefined) return false;
    return this.#meta.deleteSetting(rowOf(found).name);
  }

  /** Every live token; expired rows are deleted on the way (lookup refuses them anyway). */
  async #live(): Promise<TokenRecord[]> {
    const nowMs = this.#now();
    const live: TokenRecord[] = [];
    for (const row of await this.#meta.listSettings(TOKEN_SETTING_PREFIX)) {
      const record = parseRow(row.name, row.value);
      if (record === undefined) continue; // damaged: refused by lookup, kept for an operator to look at
      if (nowMs >= record.expiresMs) await this.#meta.deleteSetting(row.name);
      else live.push(record);
    }
    return live;
  }

  /**
   * Copies the live tokens of an older Talus's file into the store, then
   * renames the file, so it is imported once. Idempotent up to the rename: a
   * crash in between imports the same rows again at the next start.
   */
  async #importFile(path: string): Promise<void> {
    const text = await readFile(path, 'utf8').catch((error: NodeJS.ErrnoException) => {
      if (error.code === 'ENOENT') return undefined;
      throw error;
    });
    if (text === undefined) return;
    let parsed: Partial<TokensFile>;
    try {
      parsed = JSON.parse(text) as Partial<TokensFile>;
    } catch {
      throw new Error(`${path}: not valid JSON (restore it, or remove it to revoke every token it holds)`);
    }
    // Written by us: anything else is a damaged file, and guessing at it could widen a token.
    if (parsed.version !== 1 || !Array.isArray(parsed.tokens)) throw new Error(`${path}: not a Talus token file`);
    const nowMs = this.#now();
    for (const record of parsed.tokens) {
      const row = rowOf(record);
      if (parseRow(row.name, row.value) === undefined) throw new Error(`${path}: token ${JSON.stringify(String(record.id).slice(0, 64))} is damaged (restore the file, or remove it to revoke every token it holds)`);
      if (nowMs < record.expiresMs) await this.#meta.putSetting(row.name, row.value);
    }
    await rename(path, join(dirname(path), TOKENS_FILE_IMPORTED));
    // The rename survives power loss before the server answers: otherwise a revoked token could be imported again.
    const directory = await open(dirname(path), 'r');
    try {
      await directory.sync();
    } finally {
      await directory.close();
    }
  }
}

function view(record: TokenRecord): TokenView {
  const { hash: _hash, ...rest } = record;
  return rest;
}
