/**
 * The admin API's second way in: `Authorization: Bearer <token>`
 * (src/admin/tokens.ts). A token stands for the key that created it: the
 * caller's principal is that key's, looked up now (a key deleted, disabled
 * or expired since takes its tokens with it), and the server then checks the
 * token's scope and that principal's own admin rights.
 */
import type { IncomingMessage } from 'node:http';
import type { Readable } from 'node:stream';
import type { Principal } from '../authz/index.ts';
import type { PrincipalCache } from '../principals/principal-cache.ts';
import { AdminError } from './errors.ts';
import type { AdminTokens } from './tokens.ts';

const BEARER = /^Bearer +(\S+)\s*$/;

export function isBearerRequest(request: IncomingMessage): boolean {
  return /^Bearer /.test(request.headers.authorization ?? '');
}

export interface BearerCaller {
  principal: Principal;
  body: Readable;
  /** The creator's key. */
  accessKeyId: string;
  tokenId: string;
  tokenScope: readonly string[];
}

/** Who the token acts for, or why not (InvalidToken: unknown, revoked, expired, malformed, or its creator's key is gone). */
export async function authenticateBearer(tokens: AdminTokens | undefined, keys: PrincipalCache, request: IncomingMessage): Promise<BearerCaller> {
  const token = BEARER.exec(request.headers.authorization ?? '')?.[1];
  if (tokens === undefined || token === undefined) throw new AdminError('InvalidToken', 'the bearer token is not valid');
  const record = await tokens.lookup(token);
  if (record === undefined) throw new AdminError('InvalidToken', 'the bearer token is unknown, revoked or expired');
  const creator = keys.lookupKey(record.creatorAccessKeyId);
  if (creator === undefined) throw new AdminError('InvalidToken', 'the key that created this token is deleted, disabled or expired');
  return { principal: creator.principal, body: request, accessKeyId: record.creatorAccessKeyId, tokenId: record.id, tokenScope: record.scope };
}
