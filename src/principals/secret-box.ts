/**
 * Access key secrets at rest. SigV4 needs the plain secret to compute the
 * signature, so secrets cannot be hashed: they are sealed with AES-256-GCM
 * under a key kept apart from the metadata store (secret-key.ts), each with a
 * fresh random nonce and the access key ID as associated data, so a sealed
 * secret copied onto another key's row does not open.
 */
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { assert } from '../util/assert.ts';

/** AES-256: the key is 32 bytes. */
export const SECRET_KEY_BYTES = 32;
/** GCM's recommended 96-bit nonce; random per secret (far fewer than 2^32 seals per key). */
const NONCE_BYTES = 12;
const TAG_BYTES = 16;

/** A sealed value did not open: the key is not the one it was sealed under, or the bytes were changed. */
export class SecretKeyMismatchError extends Error {
  override name = 'SecretKeyMismatchError';
}

export class SecretBox {
  readonly #key: Buffer;

  constructor(key: Uint8Array) {
    assert(key.length === SECRET_KEY_BYTES, 'the secret key is 32 bytes');
    this.#key = Buffer.from(key);
  }

  /** nonce ‖ ciphertext ‖ tag. */
  seal(accessKeyId: string, secret: string): Buffer {
    const nonce = randomBytes(NONCE_BYTES);
    const cipher = createCipheriv('aes-256-gcm', this.#key, nonce);
    cipher.setAAD(Buffer.from(accessKeyId, 'utf8'));
    const ciphertext = Buffer.concat([cipher.update(secret, 'utf8'), cipher.final()]);
    return Buffer.concat([nonce, ciphertext, cipher.getAuthTag()]);
  }

  /** The secret, or SecretKeyMismatchError (which names the key ID only, never key material). */
  open(accessKeyId: string, sealed: Uint8Array): string {
    if (sealed.length < NONCE_BYTES + TAG_BYTES) throw new SecretKeyMismatchError(`the sealed secret of access key ${accessKeyId} is truncated`);
    const bytes = Buffer.from(sealed);
    const decipher = createDecipheriv('aes-256-gcm', this.#key, bytes.subarray(0, NONCE_BYTES));
    decipher.setAAD(Buffer.from(accessKeyId, 'utf8'));
    decipher.setAuthTag(bytes.subarray(bytes.length - TAG_BYTES));
    try {
      return Buffer.concat([decipher.update(bytes.subarray(NONCE_BYTES, bytes.length - TAG_BYTES)), decipher.final()]).toString('utf8');
    } catch {
      throw new SecretKeyMismatchError(`the secret of access key ${accessKeyId} does not open with this secret key`);
    }
  }
}
