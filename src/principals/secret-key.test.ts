import Database from 'better-sqlite3';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { chmod, mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { SqliteMetadataStore } from '../meta/sqlite/sqlite-metadata-store.ts';
import { SECRET_KEY_FILE, SecretKeyError, openSecretBox } from './secret-key.ts';

const SECRETS = ['plain-secret-one-0123456789abcdefghij', 'plain-secret-two-0123456789abcdefghij', 'plain-secret-three-0123456789abcdefgh'];

/** Schema 2: secrets in plain text. */
function writeVersion2Database(path: string): void {
  const db = new Database(path);
  db.pragma('journal_mode = WAL');
  db.exec(`
    CREATE TABLE settings (name TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
    CREATE TABLE access_keys (access_key_id TEXT PRIMARY KEY, secret_access_key TEXT NOT NULL, created_ms INTEGER NOT NULL) WITHOUT ROWID;
    INSERT INTO settings VALUES ('schema_version', '2');
  `);
  SECRETS.forEach((secret, index) => db.prepare('INSERT INTO access_keys VALUES (?, ?, ?)').run(`KEY${index}`, secret, index));
  db.close();
}

async function plainTextIn(dataDir: string): Promise<string[]> {
  const found: string[] = [];
  for (const name of ['meta.db', 'meta.db-wal']) {
    const bytes = await readFile(join(dataDir, name)).catch(() => Buffer.alloc(0));
    for (const secret of SECRETS) if (bytes.includes(Buffer.from(secret))) found.push(`${name}: ${secret}`);
  }
  return found;
}

test('opening seals plain-text secrets and leaves no trace of them in meta.db or its WAL (secure_delete, WAL truncated)', async () => {
  const dataDir = await mkdtemp(join(tmpdir(), 'talus-seal-'));
  try {
    writeVersion2Database(join(dataDir, 'meta.db'));
    assert.equal((await plainTextIn(dataDir)).length, SECRETS.length, 'the fixture holds them');
    const meta = new SqliteMetadataStore(join(dataDir, 'meta.db'));
    const box = await openSecretBox(dataDir, meta, { env: {} });
    assert.deepEqual(await plainTextIn(dataDir), [], 'while open');
    const keys = await meta.listAccessKeys();
    assert.deepEqual(keys.map((key) => [key.accessKeyId, key.userId, box.open(key.accessKeyId, key.sealedSecret)]), SECRETS.map((secret, index) => [`KEY${index}`, null, secret]));
    assert.deepEqual(await meta.listUnsealedAccessKeys(), []);
    await meta.close();
    assert.deepEqual(await plainTextIn(dataDir), [], 'after close');
    assert.equal((await stat(join(dataDir, SECRET_KEY_FILE))).mode & 0o777, 0o600);

    const again = new SqliteMetadataStore(join(dataDir, 'meta.db'));
    try {
      const reopened = await openSecretBox(dataDir, again, { env: {} });
      const [first] = await again.listAccessKeys();
      assert.equal(first === undefined ? undefined : reopened.open(first.accessKeyId, first.sealedSecret), SECRETS[0], 'the same key, from its file');
      await assert.rejects(openSecretBox(dataDir, again, { env: { TALUS_SECRET_KEY: randomBytes(32).toString('base64') } }), SecretKeyError);
      await chmod(join(dataDir, SECRET_KEY_FILE), 0o644);
      await assert.rejects(openSecretBox(dataDir, again, { env: {} }), /accessible by other users \(mode 644\): chmod 600 it/);
      await chmod(join(dataDir, SECRET_KEY_FILE), 0o600);
      await rm(join(dataDir, SECRET_KEY_FILE));
      await assert.rejects(openSecretBox(dataDir, again, { env: {} }), /is missing and TALUS_SECRET_KEY is not set/);
    } finally {
      await again.close();
    }
  } finally {
    await rm(dataDir, { recursive: true, force: true });
  }
});

test('a store with nothing sealed yet gets a new key; racing openers agree on one', async () => {
  const dataDir = await mkdtemp(join(tmpdir(), 'talus-seal-'));
  try {
    const stores = [new SqliteMetadataStore(join(dataDir, 'meta.db')), new SqliteMetadataStore(join(dataDir, 'meta.db'))];
    const [a, b] = await Promise.all(stores.map((store) => openSecretBox(dataDir, store, { env: {} })));
    const sealed = a!.seal('K', 'secret');
    assert.equal(b!.open('K', sealed), 'secret');
    for (const store of stores) await store.close();
  } finally {
    await rm(dataDir, { recursive: true, force: true });
  }
});
