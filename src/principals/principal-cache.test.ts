import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import { BUILT_IN_POLICIES } from '../authz/index.ts';
import { SqliteMetadataStore } from '../meta/sqlite/sqlite-metadata-store.ts';
import { PrincipalCache, ROOT_DISPLAY_NAME } from './principal-cache.ts';
import { Principals } from './principals.ts';
import { SecretBox } from './secret-box.ts';

const KEY_POLICY = '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*"}]}';

async function setUp(): Promise<{ meta: SqliteMetadataStore; principals: Principals; box: SecretBox; clock: { now: number } }> {
  const meta = new SqliteMetadataStore(':memory:');
  const box = new SecretBox(randomBytes(32));
  return { meta, principals: new Principals(meta, box), box, clock: { now: 1_000_000 } };
}

test('lookupKey gives the secret and the authz principal of root\'s and users\' keys', async () => {
  const { meta, principals, box, clock } = await setUp();
  const root = await principals.ensureRootCredentials({});
  const { user, credentials } = await principals.addUser('alice', { policy: 'readonly', email: 'Alice@Example.com' });
  const narrowed = await principals.addKey({ userName: 'alice', policy: KEY_POLICY });
  const cache = await PrincipalCache.load(meta, box, { now: () => clock.now });
  try {
    assert.match(cache.rootCanonicalId, /^[0-9a-f]{64}$/);
    assert.equal(cache.rootCanonicalId, await meta.rootCanonicalId(), 'stable: the store keeps it');
    const rootEntry = cache.lookupKey(root.accessKeyId);
    assert.equal(rootEntry?.secretAccessKey, root.secretAccessKey);
    assert.deepEqual(rootEntry?.principal, { kind: 'root', keyPolicy: undefined });

    const entry = cache.lookupKey(credentials.accessKeyId);
    assert.equal(entry?.secretAccessKey, credentials.secretAccessKey);
    assert.equal(entry?.principal.kind, 'user');
    if (entry?.principal.kind !== 'user') return;
    assert.equal(entry.principal.canonicalId, user.canonicalId);
    assert.equal(entry.principal.name, 'alice');
    assert.ok(entry.principal.identities.includes(`arn:aws:iam::${user.canonicalId}:user/alice`));
    assert.equal(entry.principal.identityPolicy, BUILT_IN_POLICIES.readonly, 'built-ins are the compiled built-ins');
    assert.equal(entry.principal.keyPolicy, undefined);
    const narrowedEntry = cache.lookupKey(narrowed.accessKeyId);
    assert.equal(narrowedEntry?.principal.kind === 'user' ? narrowedEntry.principal.keyPolicy?.text : undefined, KEY_POLICY);
    assert.equal(cache.lookup(narrowed.accessKeyId), narrowed.secretAccessKey, 'the secret-only lookup the auth path uses today');

    assert.deepEqual(cache.account(user.canonicalId), { canonicalId: user.canonicalId, displayName: 'alice', email: 'Alice@Example.com' });
    assert.equal(cache.account(cache.rootCanonicalId)?.displayName, ROOT_DISPLAY_NAME);
    assert.equal(cache.canonicalIdByEmail('alice@example.COM'), user.canonicalId, 'emails match case-insensitively');
    assert.equal(cache.canonicalIdByEmail('nobody@example.com'), undefined);
    assert.deepEqual(cache.grantees.userByEmail('ALICE@example.com'), { id: user.canonicalId, displayName: 'alice' });
    assert.deepEqual(cache.grantees.userById(cache.rootCanonicalId), { id: cache.rootCanonicalId, displayName: ROOT_DISPLAY_NAME });
    assert.equal(cache.grantees.userById('0'.repeat(64)), undefined);
    assert.equal(cache.canonicalIdOfKey(root.accessKeyId), cache.rootCanonicalId);
    assert.equal(cache.canonicalIdOfKey(credentials.accessKeyId), user.canonicalId);
    assert.equal(cache.lookupKey('TALUSUNKNOWN'), undefined);
  } finally {
    cache.stop();
    await meta.close();
  }
});

test('disabled keys are not found after a reload; expired keys at lookup, by the clock, without one', async () => {
  const { meta, principals, box, clock } = await setUp();
  await principals.ensureRootCredentials({});
  await principals.addUser('bob');
  const expiring = await principals.addKey({ userName: 'bob', expiresMs: clock.now + 60_000 });
  const other = await principals.addKey({ userName: 'bob' });
  const cache = await PrincipalCache.load(meta, box, { now: () => clock.now, refreshMs: 3_600_000 });
  try {
    assert.ok(cache.lookupKey(expiring.accessKeyId));
    clock.now += 60_000;
    assert.equal(cache.lookupKey(expiring.accessKeyId), undefined, 'expired between reloads');
    assert.equal(cache.canonicalIdOfKey(expiring.accessKeyId) !== undefined, true, 'still known as an owner');

    await principals.setKeyEnabled(other.accessKeyId, false);
    assert.ok(cache.lookupKey(other.accessKeyId), 'until the next reload');
    await cache.reload();
    assert.equal(cache.lookupKey(other.accessKeyId), undefined);
    await principals.setKeyEnabled(other.accessKeyId, true);
    await cache.reload();
    assert.equal(cache.lookupKey(other.accessKeyId)?.secretAccessKey, other.secretAccessKey);
  } finally {
    cache.stop();
    await meta.close();
  }
});

test('a key sealed under another secret key is left out (fail closed) and reported without its secret', async () => {
  const { meta, principals, box, clock } = await setUp();
  await principals.ensureRootCredentials({});
  const foreign = await new Principals(meta, new SecretBox(randomBytes(32))).addKey();
  const problems: string[] = [];
  const cache = await PrincipalCache.load(meta, box, { now: () => clock.now, onProblem: (message) => problems.push(message) });
  try {
    assert.equal(cache.lookupKey(foreign.accessKeyId), undefined);
    assert.equal(problems.length, 1);
    assert.match(problems[0] ?? '', new RegExp(foreign.accessKeyId));
    assert.ok(!problems.join().includes(foreign.secretAccessKey));
  } finally {
    cache.stop();
    await meta.close();
  }
});

test('root credentials: the given ones are stored (sealed), a user\'s key cannot be claimed as root\'s', async () => {
  const { meta, principals } = await setUp();
  const given = { accessKeyId: 'TALUSROOTGIVEN', secretAccessKey: 'given-secret-0123456789' };
  assert.deepEqual(await principals.ensureRootCredentials(given), given);
  assert.deepEqual(await principals.ensureRootCredentials({}), given, 'the stored key is root\'s next time');
  const { credentials } = await principals.addUser('eve');
  await assert.rejects(principals.ensureRootCredentials({ accessKeyId: credentials.accessKeyId, secretAccessKey: 'x' }), /is an access key of a user/);
  await meta.close();
});
