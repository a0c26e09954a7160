import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import { SecretBox, SecretKeyMismatchError } from './secret-box.ts';

const SECRET = 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY';

test('a sealed secret opens under its key and access key ID only', () => {
  const box = new SecretBox(randomBytes(32));
  const sealed = box.seal('AKID1', SECRET);
  assert.equal(box.open('AKID1', sealed), SECRET);
  assert.ok(!sealed.includes(Buffer.from(SECRET)), 'no plain text in the sealed bytes');
  assert.throws(() => box.open('AKID2', sealed), SecretKeyMismatchError, 'bound to its key ID');
  assert.throws(() => new SecretBox(randomBytes(32)).open('AKID1', sealed), SecretKeyMismatchError, 'another key does not open it');
  const flipped = Buffer.from(sealed);
  flipped[20] = (flipped[20] ?? 0) ^ 1;
  assert.throws(() => box.open('AKID1', flipped), SecretKeyMismatchError, 'tampering is detected');
  assert.throws(() => box.open('AKID1', sealed.subarray(0, 10)), SecretKeyMismatchError);
});

test('every seal uses a fresh nonce', () => {
  const box = new SecretBox(randomBytes(32));
  assert.notDeepEqual(box.seal('A', SECRET), box.seal('A', SECRET));
});

test('errors carry no key material', () => {
  const key = randomBytes(32);
  const box = new SecretBox(key);
  const sealed = box.seal('AKID1', SECRET);
  try {
    new SecretBox(randomBytes(32)).open('AKID1', sealed);
    assert.fail('should not open');
  } catch (error) {
    const text = `${String(error)} ${(error as Error).stack ?? ''}`;
    assert.ok(!text.includes(key.toString('base64')) && !text.includes(key.toString('hex')) && !text.includes(SECRET));
  }
});
