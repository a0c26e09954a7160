import type { MetadataStore } from './meta/metadata-store.ts';

const ACCESS_KEY_REFRESH_MS = 2_000;

/**
 * Secrets for signature checks, in memory so the auth path never waits on the
 * store; reloaded every few seconds so keys added with `talus keys add` (by
 * another process, on the same database) work without a restart.
 */
export class AccessKeyCache {
  #secrets: Map<string, string>;
  readonly #timer: NodeJS.Timeout;

  private constructor(meta: MetadataStore, secrets: Map<string, string>) {
    this.#secrets = secrets;
    this.#timer = setInterval(() => {
      void AccessKeyCache.read(meta).then((fresh) => {
        this.#secrets = fresh;
      }, () => undefined);
    }, ACCESS_KEY_REFRESH_MS);
    this.#timer.unref();
  }

  static async load(meta: MetadataStore): Promise<AccessKeyCache> {
    return new AccessKeyCache(meta, await AccessKeyCache.read(meta));
  }

  static async read(meta: MetadataStore): Promise<Map<string, string>> {
    return new Map((await meta.listAccessKeys()).map((key) => [key.accessKeyId, key.secretAccessKey]));
  }

  lookup(accessKeyId: string): string | undefined {
    return this.#secrets.get(accessKeyId);
  }

  stop(): void {
    clearInterval(this.#timer);
  }
}
