/**
 * Where `talus scan` gets its keys. For now: explicit keys (flags, or the
 * library's `credentials` option), then AWS_ACCESS_KEY_ID /
 * AWS_SECRET_ACCESS_KEY. The lean client signs with static keys only (no
 * session token yet).
 *
 * SEAM: the AWS credential chain (shared config and credentials files,
 * profiles, credential_process, web identity, ECS, IMDSv2) is being built in
 * src/client/credentials/. When it lands, `resolveScanCredentials` falls back
 * to it instead of throwing, and the client takes a provider that refreshes.
 */
export interface StaticCredentials {
  accessKeyId: string;
  secretAccessKey: string;
}

export class MissingCredentialsError extends Error {
  constructor() {
    super('no credentials: pass --access-key-id and --secret-access-key, or set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY');
    this.name = 'MissingCredentialsError';
  }
}

export function resolveScanCredentials(explicit: Partial<StaticCredentials> = {}, env: NodeJS.ProcessEnv = process.env): StaticCredentials {
  if (explicit.accessKeyId !== undefined && explicit.secretAccessKey !== undefined) {
    return { accessKeyId: explicit.accessKeyId, secretAccessKey: explicit.secretAccessKey };
  }
  const accessKeyId = env['AWS_ACCESS_KEY_ID'];
  const secretAccessKey = env['AWS_SECRET_ACCESS_KEY'];
  if (accessKeyId !== undefined && accessKeyId !== '' && secretAccessKey !== undefined && secretAccessKey !== '') return { accessKeyId, secretAccessKey };
  // The credential chain (src/client/credentials/) plugs in here.
  throw new MissingCredentialsError();
}
