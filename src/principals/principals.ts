/**
 * Managing principals: users, their access keys and policies, and root's
 * keys. What the CLI (another process, while the server runs) and start-up
 * do; the server reads the result through PrincipalCache. Secrets are sealed
 * here before they reach the store and are returned only to the one caller
 * that created them.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import type { MetadataStore } from '../meta/metadata-store.ts';
import type { AccessKeyRecord, UserRecord } from '../meta/types.ts';
import { SqliteMetadataStore } from '../meta/sqlite/sqlite-metadata-store.ts';
import { ROOT_DISPLAY_NAME } from './principal-cache.ts';
import type { SecretBox } from './secret-box.ts';
import { openSecretBox } from './secret-key.ts';

export interface Credentials {
  accessKeyId: string;
  secretAccessKey: string;
}

/** A request the operator can fix (unknown user, name taken, …): the CLI prints the message and exits 1. */
export class PrincipalError extends Error {
  override name = 'PrincipalError';
}

/** IAM's user-name alphabet and length. */
const USER_NAME = /^[\w+=,.@-]{1,64}$/;
const EMAIL = /^[^\s@]+@[^\s@]+$/;
/** AWS's access key IDs are 16–128 characters; TALUS + 16 hex. */
const ACCESS_KEY_ID_HEX_BYTES = 8;
/** 30 random bytes: 40 base64url characters, as long as AWS's secrets. */
const SECRET_BYTES = 30;

export function generateCredentials(): Credentials {
  return {
    accessKeyId: `TALUS${randomBytes(ACCESS_KEY_ID_HEX_BYTES).toString('hex').toUpperCase()}`,
    secretAccessKey: randomBytes(SECRET_BYTES).toString('base64url'),
  };
}

/** AWS's canonical user IDs are 64 hex characters. */
export function generateCanonicalId(): string {
  return randomBytes(32).toString('hex');
}

export interface KeyInfo {
  accessKeyId: string;
  /** The user's name, or ROOT_DISPLAY_NAME for root's keys. */
  owner: string;
  enabled: boolean;
  expiresMs: number | null;
  policy: string | null;
  createdMs: number;
}

export class Principals {
  readonly #meta: MetadataStore;
  readonly #box: SecretBox;

  constructor(meta: MetadataStore, box: SecretBox) {
    this.#meta = meta;
    this.#box = box;
  }

  /**
   * Opens a data directory's store and secret key for one command; `use`
   * runs with them, then the store closes. Only commands that add (`create`)
   * make a new data directory; the others refuse a path that is none (a typo
   * must not leave an empty store behind).
   */
  static async withDataDir<T>(dataDir: string, use: (principals: Principals) => Promise<T>, options: { create?: boolean } = {}): Promise<T> {
    const directory = resolve(dataDir);
    const database = join(directory, 'meta.db');
    // A scale-out node's principals live in PostgreSQL (docs/SCALE-OUT.md); DATA_DIR still holds the secret key file.
    const shared = process.env['TALUS_META'];
    if (shared !== undefined) {
      // Loaded on demand: single-node installations never need the driver.
      const { PostgresMetadataStore } = await import('../meta/postgres/postgres-metadata-store.ts');
      const meta = await PostgresMetadataStore.open(shared);
      try {
        return await use(new Principals(meta, await openSecretBox(directory, meta)));
      } finally {
        await meta.close();
      }
    }
    if (options.create === true) await mkdir(directory, { recursive: true });
    else if (!(await stat(database).then((stats) => stats.size > 0, () => false))) throw new PrincipalError(`${directory} is not a Talus data directory (no ${database})`);
    const meta = new SqliteMetadataStore(database);
    try {
      return await use(new Principals(meta, await openSecretBox(directory, meta)));
    } finally {
      await meta.close();
    }
  }

  #record(credentials: Credentials, userId: string | null, options: { policy?: string | null; expiresMs?: number | null }): AccessKeyRecord {
    return {
      accessKeyId: credentials.accessKeyId,
      userId,
      sealedSecret: this.#box.seal(credentials.accessKeyId, credentials.secretAccessKey),
      policy: options.policy ?? null,
      expiresMs: options.expiresMs ?? null,
      enabled: true,
      createdMs: Date.now(),
    };
  }

  async addUser(name: string, options: { policy?: string | null; email?: string | null } = {}): Promise<{ user: UserRecord; credentials: Credentials }> {
    if (!USER_NAME.test(name)) throw new PrincipalError(`invalid user name ${JSON.stringify(name)}: 1 to 64 of letters, digits and _+=,.@-`);
    if (name === ROOT_DISPLAY_NAME) throw new PrincipalError(`${ROOT_DISPLAY_NAME} is the root user's name`);
    const email = options.email ?? null;
    if (email !== null && !EMAIL.test(email)) throw new PrincipalError(`invalid email address ${JSON.stringify(email)}`);
    let canonicalId = generateCanonicalId();
    while (canonicalId === (await this.#meta.rootCanonicalId())) canonicalId = generateCanonicalId();
    const user: UserRecord = { canonicalId, name, email, policy: options.policy ?? null, createdMs: Date.now() };
    const credentials = generateCredentials();
    const outcome = await this.#meta.createUser(user, this.#record(credentials, canonicalId, {}));
    if (outcome === 'name-taken') throw new PrincipalError(`a user named ${name} exists`);
    if (outcome === 'email-taken') throw new PrincipalError(`another user has the email address ${email}`);
    return { user, credentials };
  }

  rootCanonicalId(): Promise<string> {
    return this.#meta.rootCanonicalId();
  }

  listUsers(): Promise<UserRecord[]> {
    return this.#meta.listUsers();
  }

  async user(name: string): Promise<UserRecord> {
    const user = (await this.#meta.listUsers()).find((candidate) => candidate.name === name);
    if (user === undefined) throw new PrincipalError(`no user named ${name}`);
    return user;
  }

  async removeUser(name: string): Promise<void> {
    const user = await this.user(name);
    const outcome = await this.#meta.deleteUser(user.canonicalId);
    if (outcome === 'owns-buckets') throw new PrincipalError(`user ${name} owns buckets: delete them (or have them deleted) first`);
    if (outcome === 'missing') throw new PrincipalError(`no user named ${name}`);
  }

  /** A new key for a user, or for root without `userName`. */
  async addKey(options: { userName?: string | undefined; policy?: string | null; expiresMs?: number | null } = {}): Promise<Credentials> {
    const userId = options.userName === undefined ? null : (await this.user(options.userName)).canonicalId;
    const credentials = generateCredentials();
    await this.#meta.putAccessKey(this.#record(credentials, userId, options));
    return credentials;
  }

  async listKeys(): Promise<KeyInfo[]> {
    const names = new Map((await this.#meta.listUsers()).map((user) => [user.canonicalId, user.name]));
    return (await this.#meta.listAccessKeys()).map((key) => ({
      accessKeyId: key.accessKeyId,
      owner: key.userId === null ? ROOT_DISPLAY_NAME : names.get(key.userId) ?? key.userId,
      enabled: key.enabled,
      expiresMs: key.expiresMs,
      policy: key.policy,
      createdMs: key.createdMs,
    }));
  }

  async #key(accessKeyId: string): Promise<AccessKeyRecord> {
    const key = (await this.#meta.listAccessKeys()).find((candidate) => candidate.accessKeyId === accessKeyId);
    if (key === undefined) throw new PrincipalError(`no access key ${accessKeyId}`);
    return key;
  }

  /** root must keep a usable key: the server prints root's credentials, and only root can manage everything. */
  async #refuseLastRootKey(key: AccessKeyRecord, doing: string): Promise<void> {
    if (key.userId !== null || !key.enabled) return;
    const others = (await this.#meta.listAccessKeys()).filter((other) => other.userId === null && other.enabled && other.accessKeyId !== key.accessKeyId);
    if (others.length === 0) throw new PrincipalError(`${key.accessKeyId} is root's last enabled key: add another (talus keys add) before you ${doing} it`);
  }

  async setKeyEnabled(accessKeyId: string, enabled: boolean): Promise<void> {
    const key = await this.#key(accessKeyId);
    if (!enabled) await this.#refuseLastRootKey(key, 'disable');
    if (!(await this.#meta.updateAccessKey(accessKeyId, { enabled }))) throw new PrincipalError(`no access key ${accessKeyId}`);
  }

  async removeKey(accessKeyId: string): Promise<void> {
    await this.#refuseLastRootKey(await this.#key(accessKeyId), 'remove');
    if (!(await this.#meta.deleteAccessKey(accessKeyId))) throw new PrincipalError(`no access key ${accessKeyId}`);
  }

  async setUserPolicy(name: string, policy: string | null): Promise<void> {
    const user = await this.user(name);
    if (!(await this.#meta.setUserPolicy(user.canonicalId, policy))) throw new PrincipalError(`no user named ${name}`);
  }

  async setKeyPolicy(accessKeyId: string, policy: string | null): Promise<void> {
    await this.#key(accessKeyId);
    if (!(await this.#meta.updateAccessKey(accessKeyId, { policy }))) throw new PrincipalError(`no access key ${accessKeyId}`);
  }

  async keyPolicy(accessKeyId: string): Promise<string | null> {
    return (await this.#key(accessKeyId)).policy;
  }

  /**
   * root's credentials at start-up: TALUS_ROOT_USER / TALUS_ROOT_PASSWORD
   * when given (stored when new or changed), else root's oldest key, else a
   * generated one (stored). Refuses a TALUS_ROOT_USER that is a user's key.
   */
  async ensureRootCredentials(given: { accessKeyId?: string | undefined; secretAccessKey?: string | undefined }): Promise<Credentials> {
    const keys = await this.#meta.listAccessKeys();
    if (given.accessKeyId !== undefined && given.secretAccessKey !== undefined) {
      const credentials = { accessKeyId: given.accessKeyId, secretAccessKey: given.secretAccessKey };
      const stored = keys.find((key) => key.accessKeyId === credentials.accessKeyId);
      if (stored !== undefined && stored.userId !== null) {
        throw new PrincipalError(`TALUS_ROOT_USER ${credentials.accessKeyId} is an access key of a user, not root's: choose another`);
      }
      // Written only when new or changed: a start-up on a full disk must not need to write.
      if (stored === undefined || this.#box.open(stored.accessKeyId, stored.sealedSecret) !== credentials.secretAccessKey) {
        const record = this.#record(credentials, null, {});
        await this.#meta.putAccessKey(stored === undefined ? record : { ...stored, sealedSecret: record.sealedSecret });
      }
      return credentials;
    }
    const existing = keys.find((key) => key.userId === null && key.enabled) ?? keys.find((key) => key.userId === null);
    if (existing !== undefined) return { accessKeyId: existing.accessKeyId, secretAccessKey: this.#box.open(existing.accessKeyId, existing.sealedSecret) };
    const credentials = generateCredentials();
    await this.#meta.putAccessKey(this.#record(credentials, null, {}));
    return credentials;
  }
}
