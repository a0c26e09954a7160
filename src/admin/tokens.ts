/**
 * Bearer tokens for the admin API: scoped to admin operations (names or
 * `*` patterns), expiring, and acting for the access key that created them
 * — at every use the creator's key must still be valid and its principal
 * allowed the operation, so a token never reaches beyond its creator's
 * rights of the moment. The token text is shown once, when created; only
 * its SHA-256 is kept (a token is 256 random bits: no salt or slow hash is
 * needed against guessing).
 *
 * Kept in DATA_DIR/admin-tokens.json, rewritten whole and atomically
 * (temporary file, fsync, rename, fsync of the directory) on every change,
 * rather than in the metadata store: only the admin listener reads them, and
 * it runs in the one process that owns the data directory (never in
 * --workers' workers), so there is no cross-process cache to keep fresh, no
 * schema version to add, and the PostgreSQL metadata store needs nothing.
 * The file is small (TOKENS_MAX) and read once at start.
 */
import { createHash, randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFileAtomically } from '../util/atomic-file.ts';
import { AdminError } from './errors.ts';

export const TOKENS_FILE = 'admin-tokens.json';
/** Live tokens at most: each is a line in a file rewritten whole. */
export const TOKENS_MAX = 1000;
/** A token lives at most a year: a long-lived credential should be an access key, which can be listed and disabled by its user. */
export const TOKEN_LIFETIME_SECONDS_MAX = 365 * 24 * 3600;
/** Bearer tokens start with this, so they are told from keys (and found by secret scanners). */
export const TOKEN_PREFIX = 'talus_at_';
const SCOPE_PATTERN = /^[A-Za-z*]{1,64}$/;

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

/** A token as ListTokens shows it: never its hash. */
export type TokenView = Omit<TokenRecord, 'hash'>;

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

export class AdminTokens {
  readonly #path: string;
  readonly #byHash = new Map<string, TokenRecord>();
  readonly #now: () => number;
  /** Writes one at a time, each of the whole current set. */
  #writing: Promise<void> = Promise.resolve();

  private constructor(path: string, records: TokenRecord[], now: () => number) {
    this.#path = path;
    this.#now = now;
    for (const record of records) this.#byHash.set(record.hash, record);
  }

  static async open(dataDir: string, now: () => number = Date.now): Promise<AdminTokens> {
    const path = join(dataDir, TOKENS_FILE);
    const text = await readFile(path, 'utf8').catch((error: NodeJS.ErrnoException) => {
      if (error.code === 'ENOENT') return undefined;
      throw error;
    });
    if (text === undefined) return new AdminTokens(path, [], now);
    let parsed: Partial<TokensFile>;
    try {
      parsed = JSON.parse(text) as Partial<TokensFile>;
    } catch {
      throw new Error(`${path}: not valid JSON (restore it, or remove it to revoke every token)`);
    }
    // Written by us: anything else is a damaged file, and guessing at it could widen a token.
    if (parsed.version !== 1 || !Array.isArray(parsed.tokens)) throw new Error(`${path}: not a Talus token file`);
    return new AdminTokens(path, parsed.tokens, now);
  }

  /** The token's record when it is known and not expired; undefined otherwise (revoked, expired, never issued). */
  lookup(token: string): TokenRecord | undefined {
    if (!token.startsWith(TOKEN_PREFIX)) return undefined;
    const record = this.#byHash.get(hashOf(token));
    if (record === undefined || this.#now() >= record.expiresMs) return undefined;
    return record;
  }

  async create(request: { name: string; scope: readonly string[]; expiresInSeconds: number; creatorAccessKeyId: string }): Promise<{ token: string; record: TokenView }> {
    if (request.scope.length === 0) throw new AdminError('InvalidRequest', 'field scope needs at least one operation or pattern');
    for (const pattern of request.scope) {
      if (!SCOPE_PATTERN.test(pattern)) throw new AdminError('InvalidRequest', `field scope: ${JSON.stringify(pattern.slice(0, 64))} is not an operation name or pattern (letters and *)`);
    }
    this.#dropExpired();
    if (this.#byHash.size >= TOKENS_MAX) throw new AdminError('Conflict', `there are ${TOKENS_MAX} live tokens: revoke some first`);
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
    this.#byHash.set(record.hash, record);
    try {
      await this.#save();
    } catch (error) {
      // Not kept, so not valid: a token must not work until a restart forgets it.
      this.#byHash.delete(record.hash);
      throw error;
    }
    return { token, record: view(record) };
  }

  list(): TokenView[] {
    this.#dropExpired();
    return [...this.#byHash.values()].map(view);
  }

  /** False when there is no such (live) token. */
  async revoke(id: string): Promise<boolean> {
    const found = [...this.#byHash.values()].find((record) => record.id === id);
    if (found === undefined) return false;
    this.#byHash.delete(found.hash);
    await this.#save();
    return true;
  }

  #dropExpired(): void {
    const nowMs = this.#now();
    for (const [hash, record] of this.#byHash) if (nowMs >= record.expiresMs) this.#byHash.delete(hash);
  }

  /** The whole set, atomically: a crash leaves the old file or the new one, never a torn one. */
  #save(): Promise<void> {
    const write = (): Promise<void> => writeFileAtomically(this.#path, JSON.stringify({ version: 1, tokens: [...this.#byHash.values()] } satisfies TokensFile));
    const saved = this.#writing.then(write);
    this.#writing = saved.catch(() => undefined);
    return saved;
  }
}

function view(record: TokenRecord): TokenView {
  const { hash: _hash, ...rest } = record;
  return rest;
}
