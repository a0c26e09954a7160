/**
 * AWS credentials as the S3 client signs with them: fixed keys, or a
 * provider whose answers expire (STS, ECS, IMDS). Temporary credentials are
 * refreshed ahead of their expiry, in the background while the current ones
 * still serve, and at most one refresh is in flight however many requests
 * ask at once.
 */
import { assert } from '../../util/assert.ts';

export interface AwsCredentials {
  readonly accessKeyId: string;
  readonly secretAccessKey: string;
  /** Temporary credentials carry a session token (sent as x-amz-security-token). */
  readonly sessionToken?: string;
  /** When temporary credentials stop working. */
  readonly expiration?: Date;
}

/** Returns credentials; called again when the last ones near their expiry. */
export type CredentialProvider = () => Promise<AwsCredentials>;

/** Start refreshing this long before expiry (the AWS SDKs use 5 minutes too). */
export const REFRESH_BEFORE_EXPIRY_MS_DEFAULT = 5 * 60_000;
/** Credentials this close to expiry are not used at all: a request signed now may arrive after they lapse. */
export const EXPIRY_MARGIN_MS = 15_000;

export interface RefreshingCredentialsOptions {
  refreshBeforeExpiryMs?: number;
  /** The clock (tests). */
  now?: () => number;
}

export class RefreshingCredentials {
  readonly #provider: CredentialProvider | undefined;
  readonly #refreshBeforeMs: number;
  readonly #now: () => number;
  #current: AwsCredentials | undefined;
  #refreshing: Promise<AwsCredentials> | undefined;
  /** How many times the provider was called (tests, diagnostics). */
  refreshes = 0;

  constructor(source: AwsCredentials | CredentialProvider, options: RefreshingCredentialsOptions = {}) {
    this.#refreshBeforeMs = options.refreshBeforeExpiryMs ?? REFRESH_BEFORE_EXPIRY_MS_DEFAULT;
    assert(this.#refreshBeforeMs >= EXPIRY_MARGIN_MS, 'refresh before the credentials become unusable');
    this.#now = options.now ?? Date.now;
    if (typeof source === 'function') this.#provider = source;
    else this.#current = checked(source);
  }

  /**
   * Credentials usable at once, or undefined when the caller must wait for
   * `get()`. Near expiry it starts a background refresh and still answers
   * with the current ones.
   */
  peek(): AwsCredentials | undefined {
    const current = this.#current;
    if (current === undefined) return undefined;
    if (current.expiration === undefined) return current;
    const left = current.expiration.getTime() - this.#now();
    if (left <= EXPIRY_MARGIN_MS) return undefined;
    if (left <= this.#refreshBeforeMs && this.#refreshing === undefined) {
      // A failed background refresh is retried by the next caller; the current credentials serve meanwhile.
      this.#refresh().catch(() => undefined);
    }
    return current;
  }

  async get(): Promise<AwsCredentials> {
    return this.peek() ?? (await this.#refresh());
  }

  #refresh(): Promise<AwsCredentials> {
    if (this.#refreshing !== undefined) return this.#refreshing;
    const provider = this.#provider;
    if (provider === undefined) return Promise.resolve(this.#current!);
    this.refreshes++;
    const refreshing = (async () => {
      try {
        const fresh = checked(await provider());
        this.#current = fresh;
        return fresh;
      } finally {
        this.#refreshing = undefined;
      }
    })();
    this.#refreshing = refreshing;
    return refreshing;
  }
}

function checked(credentials: AwsCredentials): AwsCredentials {
  if (typeof credentials?.accessKeyId !== 'string' || credentials.accessKeyId === '' || typeof credentials.secretAccessKey !== 'string' || credentials.secretAccessKey === '') {
    throw new TypeError('credentials need an accessKeyId and a secretAccessKey');
  }
  return credentials;
}
