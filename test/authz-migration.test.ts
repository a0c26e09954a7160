/**
 * Existing data directories keep working under access control (issue 11): a
 * schema 3 database, whose buckets and versions record the access key ID
 * that wrote them, opens as schema 4; its buckets and objects are root's and
 * private — root reads and lists them and sees itself as their owner, a new
 * user gets nothing.
 */
import Database from 'better-sqlite3';
import { CreateBucketCommand, GetObjectCommand, ListBucketsCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { Principals } from '../src/principals/principals.ts';
import { clientFor, waitForAuth } from './helpers/principals.ts';
import { errorCode, signedRequest } from './helpers/raw.ts';
import { ACCESS_KEY_ID, startTestTalus } from './helpers/talus.ts';
import { SCHEMA_VERSION } from '../src/meta/sqlite/schema.ts';

test('a schema 3 data directory: its buckets and objects are root\'s and private', { timeout: 60_000 }, async () => {
  const dataDir = await mkdtemp(join(tmpdir(), 'talus-authz-migration-'));
  try {
    let talus = await startTestTalus({ dataDir });
    await talus.client.send(new CreateBucketCommand({ Bucket: 'legacy' }));
    await talus.client.send(new PutObjectCommand({ Bucket: 'legacy', Key: 'old.txt', Body: 'written before access control' }));
    await talus.stop();

    // Back to what Talus before access control wrote: owners as access key IDs, no access column, schema 3.
    const db = new Database(join(dataDir, 'meta.db'));
    db.exec(`UPDATE buckets SET owner_id = '${ACCESS_KEY_ID}'; UPDATE versions SET owner_id = '${ACCESS_KEY_ID}';
             ALTER TABLE buckets DROP COLUMN access; UPDATE settings SET value = '3' WHERE name = 'schema_version';`);
    db.close();

    talus = await startTestTalus({ dataDir });
    try {
      const got = await talus.client.send(new GetObjectCommand({ Bucket: 'legacy', Key: 'old.txt' }));
      assert.equal(await got.Body?.transformToString(), 'written before access control');
      const rootId = await Principals.withDataDir(dataDir, (principals) => principals.rootCanonicalId());
      const listed = await talus.client.send(new ListBucketsCommand({}));
      assert.deepEqual(listed.Buckets?.map((bucket) => bucket.Name), ['legacy']);
      assert.equal(listed.Owner?.ID, rootId);
      const acl = await signedRequest(talus.url, { method: 'GET', path: '/legacy', query: { acl: '' } });
      assert.match(acl.body, new RegExp(`<Owner><ID>${rootId}</ID><DisplayName>root</DisplayName></Owner>`));
      const listing = await signedRequest(talus.url, { method: 'GET', path: '/legacy', query: { 'list-type': '2', 'fetch-owner': 'true' } });
      assert.match(listing.body, new RegExp(`<Owner><ID>${rootId}</ID>`));

      const user = await Principals.withDataDir(dataDir, (principals) => principals.addUser('newcomer'));
      const client = clientFor(talus.url, user.credentials);
      assert.equal(await waitForAuth(client, 'accepted'), 'accepted');
      client.destroy();
      assert.equal(errorCode(await signedRequest(talus.url, { method: 'GET', path: '/legacy/old.txt', credentials: user.credentials })), 'AccessDenied');
      assert.equal(errorCode(await signedRequest(talus.url, { method: 'GET', path: '/legacy', credentials: user.credentials })), 'AccessDenied');
      const schema = new Database(join(dataDir, 'meta.db'), { readonly: true });
      assert.equal((schema.prepare("SELECT value FROM settings WHERE name = 'schema_version'").get() as { value: string }).value, String(SCHEMA_VERSION));
      schema.close();
    } finally {
      await talus.stop();
    }
  } finally {
    await rm(dataDir, { recursive: true, force: true });
  }
});
