/**
 * The credential chain of the AWS SDKs, from @aws-sdk/credential-provider-node
 * (maintained by AWS; measured at ~40 ms to import, so it is imported only
 * when a client is made without credentials). In the SDK's order:
 *   1. environment: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN
 *      (skipped when AWS_PROFILE is set);
 *   2. SSO token cache of the profile;
 *   3. a web identity token file (AWS_WEB_IDENTITY_TOKEN_FILE, AWS_ROLE_ARN):
 *      AssumeRoleWithWebIdentity at STS (AWS_ENDPOINT_URL_STS overrides STS);
 *   4. shared config and credentials files (AWS_PROFILE, AWS_CONFIG_FILE,
 *      AWS_SHARED_CREDENTIALS_FILE, ~/.aws/*): static keys, role chains,
 *      credential_process;
 *   5. ECS container credentials (AWS_CONTAINER_CREDENTIALS_FULL_URI or
 *      _RELATIVE_URI, with AWS_CONTAINER_AUTHORIZATION_TOKEN[_FILE]);
 *   6. EC2 instance metadata, IMDSv2 (AWS_EC2_METADATA_SERVICE_ENDPOINT,
 *      AWS_EC2_METADATA_DISABLED).
 * Each call after the first asks the chain again (forceRefresh): the caller,
 * RefreshingCredentials, decides when, so the SDK's own cache does not hand
 * back credentials about to expire.
 */
import type { AwsCredentials, CredentialProvider } from './refreshing-credentials.ts';

export interface DefaultChainOptions {
  /** A profile of the shared files; default AWS_PROFILE, else 'default'. */
  profile?: string;
  /** Per-request timeout of the ECS and IMDS sources, ms (the SDK's default is 1 s). */
  timeoutMs?: number;
  /** Tries of the ECS and IMDS sources (the SDK's default is 0 retries). */
  maxRetries?: number;
}

type SdkProvider = (options?: { forceRefresh?: boolean }) => Promise<{ accessKeyId: string; secretAccessKey: string; sessionToken?: string; expiration?: Date }>;

export function defaultCredentialChain(options: DefaultChainOptions = {}): CredentialProvider {
  let sdkProvider: Promise<SdkProvider> | undefined;
  let asked = false;
  return async (): Promise<AwsCredentials> => {
    sdkProvider ??= import('@aws-sdk/credential-provider-node').then(({ defaultProvider }) =>
      defaultProvider({
        ...(options.profile === undefined ? {} : { profile: options.profile }),
        ...(options.timeoutMs === undefined ? {} : { timeout: options.timeoutMs }),
        ...(options.maxRetries === undefined ? {} : { maxRetries: options.maxRetries }),
      }) as SdkProvider,
    );
    const provider = await sdkProvider;
    const identity = await provider(asked ? { forceRefresh: true } : undefined);
    asked = true;
    return {
      accessKeyId: identity.accessKeyId,
      secretAccessKey: identity.secretAccessKey,
      ...(identity.sessionToken === undefined ? {} : { sessionToken: identity.sessionToken }),
      ...(identity.expiration === undefined ? {} : { expiration: identity.expiration }),
    };
  };
}
