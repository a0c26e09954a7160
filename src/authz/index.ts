/** The access-control layer's public surface (docs/ACCESS.md). */
export * from './actions.ts';
export * from './acl.ts';
export * from './admin.ts';
export * from './authorize.ts';
export * from './condition-keys.ts';
export { isKnownConditionKey, parseCidr, parseDate } from './conditions.ts';
export * from './errors.ts';
export * from './ownership.ts';
export * from './policy.ts';
export * from './public-access.ts';
export * from './request-keys.ts';
