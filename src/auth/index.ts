/** SigV4 verification: the auth layer's public surface. */
export type { AuthRequest, SecretLookup, VerifiedRequest } from './types.ts';
export { verifyRequest } from './verify.ts';
