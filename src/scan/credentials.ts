/**
 * Where `talus scan` gets its keys: explicit keys (flags, or the library's
 * `credentials` option, with a session token if they are temporary), else the
 * AWS SDKs' credential chain of talus/client (src/client/credentials/):
 * AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN, shared
 * config and credentials files with profiles and credential_process, web
 * identity, ECS, IMDSv2 — refreshed before they expire. A session token is
 * sent, signed, as x-amz-security-token.
 */
import { defaultCredentialChain } from '../client/credentials/default-chain.ts';
import type { AwsCredentials, CredentialProvider } from '../client/credentials/refreshing-credentials.ts';

export interface StaticCredentials {
  accessKeyId: string;
  secretAccessKey: string;
  /** Temporary credentials' token (x-amz-security-token). */
  sessionToken?: string;
}

export class MissingCredentialsError extends Error {
  constructor(cause?: unknown) {
    const why = cause instanceof Error ? ` (${cause.message})` : '';
    super(`no credentials: pass --access-key-id and --secret-access-key, set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or configure a profile${why}`, { cause });
    this.name = 'MissingCredentialsError';
  }
}

/** Both keys given explicitly (flags): those, with the session token if one was given; otherwise undefined (the chain decides). */
export function explicitScanCredentials(explicit: Partial<StaticCredentials>): StaticCredentials | undefined {
  if (explicit.accessKeyId === undefined || explicit.secretAccessKey === undefined) return undefined;
  const credentials: StaticCredentials = { accessKeyId: explicit.accessKeyId, secretAccessKey: explicit.secretAccessKey };
  if (explicit.sessionToken !== undefined) credentials.sessionToken = explicit.sessionToken;
  return credentials;
}

/**
 * The provider a scan signs with: the given keys, or the credential chain,
 * whose failure (nothing configured anywhere) becomes a MissingCredentialsError.
 */
export function scanCredentialProvider(given: StaticCredentials | undefined, env: NodeJS.ProcessEnv = process.env): CredentialProvider {
  // The chain's first source, read here without loading the SDK's chain (~40 ms of imports before the first request).
  given ??= environmentCredentials(env);
  if (given !== undefined) {
    const fixed: AwsCredentials = { accessKeyId: given.accessKeyId, secretAccessKey: given.secretAccessKey, ...(given.sessionToken === undefined ? {} : { sessionToken: given.sessionToken }) };
    return async () => fixed;
  }
  const chain = defaultCredentialChain();
  return async () => {
    try {
      return await chain();
    } catch (error) {
      throw new MissingCredentialsError(error);
    }
  };
}

/** AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN, as the SDK's chain reads them first (not when AWS_PROFILE names a profile). */
function environmentCredentials(env: NodeJS.ProcessEnv): StaticCredentials | undefined {
  const accessKeyId = env['AWS_ACCESS_KEY_ID'];
  const secretAccessKey = env['AWS_SECRET_ACCESS_KEY'];
  if ((env['AWS_PROFILE'] ?? '') !== '' || accessKeyId === undefined || accessKeyId === '' || secretAccessKey === undefined || secretAccessKey === '') return undefined;
  const sessionToken = env['AWS_SESSION_TOKEN'];
  return { accessKeyId, secretAccessKey, ...(sessionToken === undefined || sessionToken === '' ? {} : { sessionToken }) };
}
