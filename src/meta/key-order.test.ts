/** Key ordering helpers: UTF-8 byte order and the successor used to skip a common prefix. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { commonPrefixOf, compareKeys, prefixSuccessor } from './key-order.ts';

test('compareKeys orders by UTF-8 bytes, not UTF-16 units', () => {
  // U+FF5E (3 UTF-8 bytes, EF BD 9E) sorts before U+1F600 (F0 9F 98 80) in UTF-8,
  // but after it in UTF-16 (0xFF5E > 0xD83D).
  assert.ok(compareKeys('\uFF5E', '😀') < 0);
  assert.ok('\uFF5E' > '😀');
  assert.equal(compareKeys('a', 'a'), 0);
});

test('prefixSuccessor is greater than every key with the prefix and not greater than the next', () => {
  for (const prefix of ['a/', 'dir/', 'x\uD7FF', 'é/', '😀/']) {
    const successor = prefixSuccessor(prefix)!;
    for (const suffix of ['', 'zzz', '\u{10FFFF}', '😀']) assert.ok(compareKeys(prefix + suffix, successor) < 0, `${prefix}${suffix}`);
    assert.ok(!successor.startsWith(prefix));
  }
  assert.equal(prefixSuccessor('a/'), 'a0');
  assert.equal(prefixSuccessor('\uD7FF'), '\uE000');
  assert.equal(prefixSuccessor('\u{10FFFF}'), undefined);
});

test('commonPrefixOf rolls a key up to the first delimiter after the prefix', () => {
  assert.equal(commonPrefixOf('a/b/c', '', '/'), 'a/');
  assert.equal(commonPrefixOf('a/b/c', 'a/', '/'), 'a/b/');
  assert.equal(commonPrefixOf('a/b', 'a/', '/'), undefined);
  assert.equal(commonPrefixOf('a--b--c', '', '--'), 'a--');
  assert.equal(commonPrefixOf('abc', '', ''), undefined);
});
