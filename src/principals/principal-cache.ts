/**
 * Who signed: access keys, their secrets and principals in memory, so the
 * auth path never waits on the store or decrypts anything. Reloaded every
 * 2 s, so changes made with the CLI (another process writing the same WAL
 * database) take effect without a restart. A reload decrypts only the
 * secrets that changed and compiles each distinct policy text once.
 *
 * Disabled keys, keys of a user that is gone and keys whose secret or policy
 * does not open or compile are left out (fail closed); an expired key is
 * refused at lookup, against the clock, whenever the last reload was.
 */
import { type CompiledPolicy, type GranteeResolver, type KnownUser, type Principal, principalIdentities } from '../authz/index.ts';
import type { MetadataStore } from '../meta/metadata-store.ts';
import type { AccessKeyRecord, UserRecord } from '../meta/types.ts';
import { compileStoredPolicy } from './policy-source.ts';
import type { SecretBox } from './secret-box.ts';

export const PRINCIPAL_REFRESH_MS = 2_000;
/** root's display name (ListBuckets <Owner>, ACL XML); no user may take it. */
export const ROOT_DISPLAY_NAME = 'root';

export interface KeyLookup {
  secretAccessKey: string;
  principal: Principal;
}

/** What ListBuckets' <Owner> and ACL XML show of a canonical ID. */
export interface AccountInfo {
  canonicalId: string;
  displayName: string;
  email: string | null;
}

interface KeyEntry extends KeyLookup {
  expiresMs: number | null;
}

interface Snapshot {
  keys: Map<string, KeyEntry>;
  /** Every key ID (disabled and expired too) → its owner's canonical ID. */
  keyOwners: Map<string, string>;
  accounts: Map<string, AccountInfo>;
  byEmail: Map<string, string>;
  byName: Map<string, string>;
}

export interface PrincipalCacheOptions {
  refreshMs?: number;
  /** The clock expiry is checked against (tests move it). */
  now?: () => number;
  /** A reload failed, or left out a key whose secret or policy is unusable (the message names the key, never a secret). */
  onProblem?: (message: string) => void;
}

export class PrincipalCache {
  readonly rootCanonicalId: string;
  #snapshot: Snapshot;
  /** Decrypted secrets by key ID, with the sealed bytes they came from: a reload decrypts only what changed. */
  #secrets = new Map<string, { sealed: Uint8Array; secret: string }>();
  /** Compiled policies by text: a reload compiles only new texts. */
  #policies = new Map<string, CompiledPolicy>();
  readonly #meta: MetadataStore;
  readonly #box: SecretBox;
  readonly #now: () => number;
  readonly #onProblem: (message: string) => void;
  readonly #timer: NodeJS.Timeout;

  private constructor(meta: MetadataStore, box: SecretBox, rootCanonicalId: string, options: PrincipalCacheOptions) {
    this.#meta = meta;
    this.#box = box;
    this.rootCanonicalId = rootCanonicalId;
    this.#now = options.now ?? Date.now;
    this.#onProblem = options.onProblem ?? (() => undefined);
    this.#snapshot = { keys: new Map(), keyOwners: new Map(), accounts: new Map(), byEmail: new Map(), byName: new Map() };
    this.#timer = setInterval(() => {
      this.reload().catch((error: unknown) => this.#onProblem(`reloading access keys failed: ${error instanceof Error ? error.message : String(error)}`));
    }, options.refreshMs ?? PRINCIPAL_REFRESH_MS);
    this.#timer.unref();
  }

  static async load(meta: MetadataStore, box: SecretBox, options: PrincipalCacheOptions = {}): Promise<PrincipalCache> {
    const cache = new PrincipalCache(meta, box, await meta.rootCanonicalId(), options);
    await cache.reload();
    return cache;
  }

  /** The key's secret and principal; undefined for unknown, disabled and expired keys. */
  lookupKey(accessKeyId: string): KeyLookup | undefined {
    const entry = this.#snapshot.keys.get(accessKeyId);
    if (entry === undefined) return undefined;
    if (entry.expiresMs !== null && this.#now() >= entry.expiresMs) return undefined;
    return entry;
  }

  /** The secret only (the auth path's SecretLookup): same rules as lookupKey. */
  lookup(accessKeyId: string): string | undefined {
    return this.lookupKey(accessKeyId)?.secretAccessKey;
  }

  /** root or a user, by canonical ID: for <Owner> and ACL XML. */
  account(canonicalId: string): AccountInfo | undefined {
    return this.#snapshot.accounts.get(canonicalId);
  }

  /** ACL grants by emailAddress (case-insensitive); undefined: UnresolvableGrantByEmailAddress. */
  canonicalIdByEmail(email: string): string | undefined {
    return this.#snapshot.byEmail.get(email.toLowerCase());
  }

  /** ACL grantees by canonical ID or email, for aclFromHeaders / parseAccessControlPolicy (root and users). */
  readonly grantees: GranteeResolver = {
    userById: (id: string): KnownUser | undefined => {
      const account = this.account(id);
      return account === undefined ? undefined : { id: account.canonicalId, displayName: account.displayName };
    },
    userByEmail: (email: string): KnownUser | undefined => {
      const id = this.canonicalIdByEmail(email);
      return id === undefined ? undefined : this.grantees.userById(id);
    },
  };

  /** A user's canonical ID by name (root: ROOT_DISPLAY_NAME). */
  canonicalIdByName(name: string): string | undefined {
    return this.#snapshot.byName.get(name);
  }

  /**
   * The canonical ID of the account an access key belongs to, disabled and
   * expired keys included: buckets and objects written before principals
   * existed record the access key ID that wrote them as their owner.
   */
  canonicalIdOfKey(accessKeyId: string): string | undefined {
    return this.#snapshot.keyOwners.get(accessKeyId);
  }

  /** Reads the store afresh (every refresh interval; tests call it to skip the wait). */
  async reload(): Promise<void> {
    const [keys, users] = await Promise.all([this.#meta.listAccessKeys(), this.#meta.listUsers()]);
    const policies = new Map<string, CompiledPolicy>();
    const secrets = new Map<string, { sealed: Uint8Array; secret: string }>();
    const compile = (text: string | null): CompiledPolicy | undefined => {
      if (text === null) return undefined;
      let policy = policies.get(text) ?? this.#policies.get(text);
      if (policy === undefined) policy = compileStoredPolicy(text);
      policies.set(text, policy);
      return policy;
    };
    const root: AccountInfo = Object.freeze({ canonicalId: this.rootCanonicalId, displayName: ROOT_DISPLAY_NAME, email: null });
    const snapshot: Snapshot = {
      keys: new Map(),
      keyOwners: new Map(),
      accounts: new Map([[root.canonicalId, root]]),
      byEmail: new Map(),
      byName: new Map([[ROOT_DISPLAY_NAME, root.canonicalId]]),
    };
    const usersById = new Map<string, { record: UserRecord; policy: CompiledPolicy | undefined; usable: boolean }>();
    for (const user of users) {
      snapshot.accounts.set(user.canonicalId, Object.freeze({ canonicalId: user.canonicalId, displayName: user.name, email: user.email }));
      snapshot.byName.set(user.name, user.canonicalId);
      if (user.email !== null) snapshot.byEmail.set(user.email.toLowerCase(), user.canonicalId);
      try {
        usersById.set(user.canonicalId, { record: user, policy: compile(user.policy), usable: true });
      } catch {
        this.#onProblem(`user ${user.name}'s policy does not compile: its keys are refused`);
        usersById.set(user.canonicalId, { record: user, policy: undefined, usable: false });
      }
    }
    for (const key of keys) {
      const owner = key.userId === null ? this.rootCanonicalId : key.userId;
      snapshot.keyOwners.set(key.accessKeyId, owner);
      if (!key.enabled) continue;
      const entry = this.#entry(key, usersById, compile, secrets);
      if (entry !== undefined) snapshot.keys.set(key.accessKeyId, entry);
    }
    this.#snapshot = snapshot;
    this.#secrets = secrets;
    this.#policies = policies;
  }

  #entry(
    key: AccessKeyRecord,
    users: ReadonlyMap<string, { record: UserRecord; policy: CompiledPolicy | undefined; usable: boolean }>,
    compile: (text: string | null) => CompiledPolicy | undefined,
    secrets: Map<string, { sealed: Uint8Array; secret: string }>,
  ): KeyEntry | undefined {
    let secret: string;
    const known = this.#secrets.get(key.accessKeyId);
    if (known !== undefined && Buffer.compare(known.sealed, key.sealedSecret) === 0) {
      secret = known.secret;
    } else {
      try {
        secret = this.#box.open(key.accessKeyId, key.sealedSecret);
      } catch {
        this.#onProblem(`access key ${key.accessKeyId} does not decrypt with this server's secret key: refused`);
        return undefined;
      }
    }
    secrets.set(key.accessKeyId, { sealed: key.sealedSecret, secret });
    let keyPolicy: CompiledPolicy | undefined;
    try {
      keyPolicy = compile(key.policy);
    } catch {
      this.#onProblem(`access key ${key.accessKeyId}'s policy does not compile: refused`);
      return undefined;
    }
    let principal: Principal;
    if (key.userId === null) {
      principal = Object.freeze({ kind: 'root', keyPolicy });
    } else {
      const user = users.get(key.userId);
      if (user === undefined || !user.usable) return undefined;
      const { canonicalId, name } = user.record;
      principal = Object.freeze({
        kind: 'user',
        canonicalId,
        name,
        identities: Object.freeze(principalIdentities(canonicalId, name)),
        identityPolicy: user.policy,
        keyPolicy,
      });
    }
    return Object.freeze({ secretAccessKey: secret, principal, expiresMs: key.expiresMs });
  }

  stop(): void {
    clearInterval(this.#timer);
  }
}
