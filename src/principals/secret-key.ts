/**
 * The key that seals access key secrets (secret-box.ts), kept apart from the
 * metadata store: TALUS_SECRET_KEY (base64 of 32 bytes) for those who keep
 * it elsewhere, else DATA_DIR/talus.secret-key, a 0600 file created on first
 * start. Opening fails closed: a store whose secrets are sealed refuses to
 * serve with a missing or wrong key, and says which and where, never what.
 * Opening also seals the plain-text secrets a Talus before version 3 of the
 * schema stored.
 */
import { randomBytes } from 'node:crypto';
import { link, open, readFile, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { MetadataStore } from '../meta/metadata-store.ts';
import { SECRET_KEY_BYTES, SecretBox, SecretKeyMismatchError } from './secret-box.ts';

export const SECRET_KEY_FILE = 'talus.secret-key';
export const SECRET_KEY_ENV = 'TALUS_SECRET_KEY';
/** Sealed into the store under a key ID no access key can have (IDs are printable), to tell a wrong key before any secret is needed. */
const CHECK_ID = '\u0000talus-secret-key-check';
const CHECK_TEXT = 'talus secret key check v1';

/** The secret key is missing, malformed, exposed or not the one the store's secrets were sealed under. */
export class SecretKeyError extends Error {
  override name = 'SecretKeyError';
}

export interface OpenSecretBoxOptions {
  /** Default process.env. */
  env?: NodeJS.ProcessEnv;
  /** Default true: create the key file when there is none and nothing is sealed yet (workers pass false: the primary did). */
  create?: boolean;
}

/** Finds (or creates) the secret key, checks it against the store, seals any plain-text secret left, and returns the box. */
export async function openSecretBox(dataDir: string, meta: MetadataStore, options: OpenSecretBoxOptions = {}): Promise<SecretBox> {
  const env = options.env ?? process.env;
  const file = join(dataDir, SECRET_KEY_FILE);
  const check = await meta.secretKeyCheck();
  const sealed = await meta.listAccessKeys();
  let key: Buffer | undefined;
  let source: string;
  const fromEnv = env[SECRET_KEY_ENV];
  if (fromEnv !== undefined && fromEnv !== '') {
    source = SECRET_KEY_ENV;
    key = decodeKey(fromEnv, source);
  } else {
    source = file;
    key = await readKeyFile(file);
    if (key === undefined) {
      if (check !== undefined || sealed.length > 0) {
        throw new SecretKeyError(
          `${file} is missing and ${SECRET_KEY_ENV} is not set: the access key secrets in ${join(dataDir, 'meta.db')} are encrypted under that key; restore the file (or set ${SECRET_KEY_ENV}) to start`,
        );
      }
      if (options.create === false) throw new SecretKeyError(`${file} is missing and ${SECRET_KEY_ENV} is not set`);
      key = await createKeyFile(file);
    }
  }
  const box = new SecretBox(key);
  const wrongKey = (): SecretKeyError =>
    new SecretKeyError(`the secret key from ${source} does not decrypt the access key secrets in ${join(dataDir, 'meta.db')}: it is not the key they were encrypted under`);
  try {
    if (check !== undefined) {
      if (box.open(CHECK_ID, check) !== CHECK_TEXT) throw wrongKey();
    } else {
      const [first] = sealed;
      if (first !== undefined) box.open(first.accessKeyId, first.sealedSecret);
      await meta.setSecretKeyCheck(box.seal(CHECK_ID, CHECK_TEXT));
    }
  } catch (error) {
    if (error instanceof SecretKeyMismatchError) throw wrongKey();
    throw error;
  }
  const unsealed = await meta.listUnsealedAccessKeys();
  await meta.sealAccessKeySecrets(unsealed.map((entry) => ({ accessKeyId: entry.accessKeyId, sealedSecret: box.seal(entry.accessKeyId, entry.secretAccessKey) })));
  return box;
}

function decodeKey(text: string, source: string): Buffer {
  const trimmed = text.trim();
  const key = Buffer.from(trimmed, 'base64');
  if (key.length !== SECRET_KEY_BYTES || !/^[A-Za-z0-9+/]+={0,2}$/.test(trimmed)) {
    throw new SecretKeyError(`${source} must hold ${SECRET_KEY_BYTES} bytes in base64 (e.g. from \`openssl rand -base64 ${SECRET_KEY_BYTES}\`)`);
  }
  return key;
}

async function readKeyFile(file: string): Promise<Buffer | undefined> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
  // As ssh refuses a private key others can read: the key is worth as much as every secret.
  const { mode } = await stat(file);
  if ((mode & 0o077) !== 0) throw new SecretKeyError(`${file} is accessible by other users (mode ${(mode & 0o777).toString(8)}): chmod 600 it`);
  return decodeKey(text, file);
}

/** Written whole under another name, then linked into place: a racing CLI and server agree on one key, and no one reads half a file. */
async function createKeyFile(file: string): Promise<Buffer> {
  const key = randomBytes(SECRET_KEY_BYTES);
  const temporary = `${file}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  const handle = await open(temporary, 'wx', 0o600);
  try {
    await handle.writeFile(`${key.toString('base64')}\n`);
    await handle.sync();
  } finally {
    await handle.close();
  }
  try {
    await link(temporary, file);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    const theirs = await readKeyFile(file);
    if (theirs === undefined) throw error;
    return theirs;
  } finally {
    await unlink(temporary);
  }
  const directory = await open(join(file, '..'), 'r');
  try {
    await directory.sync();
  } finally {
    await directory.close();
  }
  return key;
}
