/** XML in and out: escaping of everything XML cannot carry literally, and parsing as any XML parser would. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { escapeXml, parseXml, textOf } from './xml.ts';

test('numeric and named character references decode (Go clients send &#34;)', () => {
  const root = parseXml('<R><E>&#34;a&#x41;&#128512;&amp;&lt;&quot;</E></R>', 'R');
  assert.equal(textOf(root['E']), '"aA😀&<"');
});

test('keys that look like numbers stay strings', () => {
  assert.equal(textOf(parseXml('<R><Key>0012</Key></R>', 'R')['Key']), '0012');
});

test('malformed documents and wrong roots are MalformedXML', () => {
  for (const text of ['', '<R>', '<R></S>', 'plain', '<R><E></R>']) assert.throws(() => parseXml(text, 'R'), { code: 'MalformedXML' }, text);
  assert.throws(() => parseXml('<S></S>', 'R'), { code: 'MalformedXML' });
});

test('escaping covers markup characters and control characters', () => {
  assert.equal(escapeXml(`a&b<c>"d'`), 'a&amp;b&lt;c&gt;&quot;d&apos;');
  assert.equal(escapeXml('x\u0001y\rz'), 'x&#1;y&#13;z');
  assert.equal(escapeXml('plain/key'), 'plain/key');
});
