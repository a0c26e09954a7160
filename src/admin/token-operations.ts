/** Admin operations on bearer tokens (src/admin/tokens.ts): create (the token shown once), list, revoke. */
import { operation, type AdminContext } from './define.ts';
import { AdminError } from './errors.ts';
import { TOKEN_LIFETIME_SECONDS_MAX, TOKENS_MAX, type AdminTokens } from './tokens.ts';

function requireTokens(context: AdminContext): AdminTokens {
  if (context.tokens === undefined) throw new AdminError('ServiceUnavailable', 'this server keeps no admin tokens');
  return context.tokens;
}

export const TOKEN_OPERATIONS = {
  CreateToken: operation({
    summary: 'Creates a bearer token for the admin API, scoped to operations and expiring; it acts for the calling key and never beyond that key\'s rights. The token is in this answer only.',
    input: {
      name: { type: 'string', description: 'What the token is for (shown by ListTokens).', required: true, maxLength: 128 },
      scope: { type: 'string[]', description: 'Admin operations or patterns (* any run of letters): ["List*", "GetStorageStats"], or ["*"] for all the creator may call.', required: true, maxLength: 100 },
      expiresInSeconds: { type: 'integer', description: 'Lifetime of the token.', required: true, minimum: 1, maximum: TOKEN_LIFETIME_SECONDS_MAX },
    },
    output: '{ token, id, name, scope, creatorAccessKeyId, createdMs, expiresMs }',
    refusedToTokens: true,
    async handler(context, input) {
      const tokens = requireTokens(context);
      const caller = context.caller;
      if (caller === undefined) throw new AdminError('InternalError', 'no caller');
      // A token minting tokens could outlive itself: only a signed key creates them.
      if (caller.tokenId !== undefined) throw new AdminError('AccessDenied', 'a bearer token cannot create tokens: sign the request with an access key');
      const { token, record } = await tokens.create({ name: input.name, scope: input.scope, expiresInSeconds: input.expiresInSeconds, creatorAccessKeyId: caller.accessKeyId });
      return { token, ...record };
    },
  }),
  ListTokens: operation({
    summary: `Every live admin token (at most ${TOKENS_MAX}): ID, name, scope, creator key, creation and expiry. Never the token.`,
    input: {},
    output: '{ tokens: [{ id, name, scope, creatorAccessKeyId, createdMs, expiresMs }] }',
    async handler(context) {
      return { tokens: await requireTokens(context).list() };
    },
  }),
  RevokeToken: operation({
    summary: 'Revokes an admin token: refused from the next request on.',
    input: { id: { type: 'string', description: 'The token\'s ID (from CreateToken or ListTokens).', required: true, maxLength: 64 } },
    output: '{}',
    async handler(context, input) {
      if (!(await requireTokens(context).revoke(input.id))) throw new AdminError('NotFound', `no token ${input.id}`);
      return {};
    },
  }),
} as const;
