/**
 * The request path's authorization of a hot presigned GET, in process:
 * building the request's access (principal, facts, lazy condition keys),
 * authorizeRequest() and the engine's read gate on the found version — what
 * src/http/server.ts adds per GET. `node --import tsx bench/request-authz.bench.ts`
 */
import type { ObjectVersion, BucketRecord } from '../src/meta/types.ts';
import { type Principal, principalIdentities } from '../src/authz/index.ts';
import { RequestAccess, authorizeRequest, requestFacts, type PrincipalDirectory } from '../src/s3/access.ts';

const ROOT_ID = 'a'.repeat(64);
const USER_ID = 'b'.repeat(64);
const REQUESTS = 200_000;

const directory: PrincipalDirectory = {
  rootCanonicalId: ROOT_ID,
  lookupKey: () => undefined,
  account: () => undefined,
  grantees: { userById: () => undefined, userByEmail: () => undefined },
  canonicalIdOfKey: () => undefined,
};
const principals: [string, Principal, string][] = [
  ['root', { kind: 'root' }, ROOT_ID],
  ['owner (a user)', { kind: 'user', canonicalId: USER_ID, name: 'u', identities: principalIdentities(USER_ID, 'u') }, USER_ID],
];
const query = new Map([['X-Amz-Signature', 'abc'], ['X-Amz-Credential', 'c']]);
const request = { socket: { remoteAddress: '::ffff:127.0.0.1' }, headers: { host: 'h', 'user-agent': 'wrk' } } as never;

for (const [name, principal, ownerId] of principals) {
  const bucket: BucketRecord = Object.freeze({ name: 'b', createdMs: 0, ownerId, versioning: 'Unversioned', tags: null, access: null });
  const version = { bucket: 'b', key: 'k', versionId: 'null', isDeleteMarker: false, lastModifiedMs: 0, sizeBytes: 4096, etag: 'x', ownerId, system: {}, userMetadata: {}, checksum: null, tags: [], parts: null, segments: [] } as ObjectVersion;
  const engine = { getBucket: async () => bucket, lookupVersion: async () => version };
  for (let round = 0; round < 3; round++) {
    const start = process.hrtime.bigint();
    for (let i = 0; i < REQUESTS; i++) {
      const access = new RequestAccess(directory, principal, requestFacts(request, query, Date.now()));
      const pending = authorizeRequest(access, { operation: 'GetObject', object: 'gate' }, { bucket: 'b', key: 'k', query }, {}, engine);
      if (pending !== undefined) await pending;
      access.readGate?.(bucket, version);
    }
    console.log(`GET as ${name}: ${(Number(process.hrtime.bigint() - start) / REQUESTS / 1000).toFixed(2)} µs per request`);
  }
}
