/**
 * SigV4 header auth for `talus scan`'s own requests (head-pool.ts,
 * listing-client.ts): the S3Client's signer over the scan's credential
 * provider, one signer per set of keys (its signing key is derived once a
 * day). Payloads are empty (GET, HEAD), so the payload hash is the empty
 * SHA-256.
 */
import { RefreshingCredentials, type AwsCredentials, type CredentialProvider } from '../client/credentials/refreshing-credentials.ts';
import { EMPTY_SHA256, SigV4Signer } from '../client/sigv4-signer.ts';

export { EMPTY_SHA256 };

export interface SignedRequest {
  readonly amzDate: string;
  readonly authorization: string;
  /** x-amz-security-token to send (signed), for temporary keys. */
  readonly sessionToken: string | undefined;
}

export class ScanRequestSigner {
  /** The Host header as sent and signed ('127.0.0.1:9000'). */
  readonly host: string;
  readonly #region: string;
  readonly #credentials: RefreshingCredentials;
  #signer: SigV4Signer | undefined;
  #signerCredentials: AwsCredentials | undefined;

  constructor(host: string, region: string, credentials: CredentialProvider) {
    this.host = host;
    this.#region = region;
    this.#credentials = new RefreshingCredentials(credentials);
  }

  /** Whether keys are at hand (else `keys()` first: a first fetch, or an expired set). */
  get ready(): boolean {
    return this.#credentials.peek() !== undefined;
  }

  async keys(): Promise<void> {
    await this.#credentials.get();
  }

  /** Signs a bodiless request; `path` and `query` exactly as sent, in canonical encoding. */
  sign(method: 'GET' | 'HEAD', path: string, query: string): SignedRequest {
    // Callers check `ready` (else await `keys()`) just before: the last keys serve only should they lapse in between.
    const credentials = this.#credentials.peek() ?? this.#signerCredentials;
    if (credentials === undefined) throw new Error('scan: signing before the credentials are known');
    if (this.#signerCredentials !== credentials || this.#signer === undefined) {
      this.#signer = new SigV4Signer({ accessKeyId: credentials.accessKeyId, secretAccessKey: credentials.secretAccessKey, region: this.#region });
      this.#signerCredentials = credentials;
    }
    const token = credentials.sessionToken;
    const signature = this.#signer.sign({ method, path, query, host: this.host, headers: token === undefined ? undefined : [['x-amz-security-token', token]], payloadHash: EMPTY_SHA256 });
    return { amzDate: signature.amzDate, authorization: signature.authorization, sessionToken: token };
  }
}
