import { test } from 'node:test';
import assert from 'node:assert/strict';
import { canonicalQuery, canonicalUri, decodeComponent, splitQuery } from './uri-encode.ts';
import { canonicalHeaderValue } from './canonical.ts';

test('canonical URI: re-encoded byte by byte, never normalised', () => {
  assert.equal(canonicalUri(''), '/');
  assert.equal(canonicalUri('/'), '/');
  assert.equal(canonicalUri('/bucket/a//b/../c/./d'), '/bucket/a//b/../c/./d');
  assert.equal(canonicalUri('/bucket/a%20b%2Bc'), '/bucket/a%20b%2Bc');
  assert.equal(canonicalUri('/bucket/a b+c'), '/bucket/a%20b%2Bc');
  assert.equal(canonicalUri("/b/!*'()[]$&,;=:@"), '/b/%21%2A%27%28%29%5B%5D%24%26%2C%3B%3D%3A%40');
  assert.equal(canonicalUri('/b/%7e%41%2d'), '/b/~A-', 'unreserved bytes are decoded');
  assert.equal(canonicalUri('/b/%e2%82%ac'), '/b/%E2%82%AC', 'hex is upper-cased');
  assert.equal(canonicalUri('/b/€'), '/b/%E2%82%AC', 'raw non-ASCII is encoded as UTF-8');
  assert.equal(canonicalUri('/b/a%2Fb'), '/b/a%2Fb', 'an encoded slash stays encoded');
  assert.equal(canonicalUri('/b/100%'), '/b/100%25', 'a stray % is a literal %');
  assert.equal(canonicalUri('/b/%zz%4'), '/b/%25zz%254');
  assert.equal(canonicalUri('/b/%FF%00'), '/b/%FF%00', 'bytes that are not UTF-8 survive');
});

test('canonical query: decoded, re-encoded, sorted by name then value, + is literal', () => {
  assert.equal(canonicalQuery(splitQuery(''), false), '');
  assert.equal(canonicalQuery(splitQuery('b=2&a=1&acl'), false), 'a=1&acl=&b=2');
  assert.equal(canonicalQuery(splitQuery('a-b=1&a=2'), false), 'a=2&a-b=1', "'a' sorts before 'a-b'");
  assert.equal(canonicalQuery(splitQuery('k=b&k=a&k=a%20'), false), 'k=a&k=a%20&k=b');
  assert.equal(canonicalQuery(splitQuery('prefix=a+b%2fc&x=%7E!'), false), 'prefix=a%2Bb%2Fc&x=~%21');
  assert.equal(canonicalQuery(splitQuery('&&a=1&'), false), 'a=1');
  assert.equal(canonicalQuery(splitQuery('X-Amz-Signature=abc&X-Amz-Date=1'), true), 'X-Amz-Date=1');
  assert.equal(canonicalQuery(splitQuery('X-Amz-Signature=abc&X-Amz-Date=1'), false), 'X-Amz-Date=1&X-Amz-Signature=abc');
  assert.equal(canonicalQuery(splitQuery('a=b=c'), false), 'a=b%3Dc');
});

test('decodeComponent reads auth parameters without throwing on bad escapes', () => {
  assert.equal(decodeComponent('AKID%2F20240501%2Fus-east-1%2Fs3%2Faws4_request'), 'AKID/20240501/us-east-1/s3/aws4_request');
  assert.equal(decodeComponent('a+b'), 'a+b');
  assert.equal(decodeComponent('%E2%82%AC%zz'), '€%zz');
});

test('canonical header values: trimmed, whitespace runs collapsed, repeats joined with commas', () => {
  assert.equal(canonicalHeaderValue(undefined), '');
  assert.equal(canonicalHeaderValue('plain'), 'plain');
  assert.equal(canonicalHeaderValue('  a   b\t\tc  '), 'a b c');
  assert.equal(canonicalHeaderValue('   '), '');
  assert.equal(canonicalHeaderValue(['a ', ' b']), 'a,b');
  assert.equal(canonicalHeaderValue('"a  b"'), '"a b"');
});
