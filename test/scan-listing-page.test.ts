/**
 * The scan's listing-page reader takes shortcuts (ETags sliced out of
 * `&quot;…&quot;`, names decoded only when they hold an escape, metadata
 * element names looked up once per page shape): on the entries where the
 * shortcuts do not apply it must read what the general parser reads.
 * Whitespace between metadata elements (a pretty-printed page) sends a page
 * to the general parser (fast-xml-parser); comments and CDATA sections are
 * taken out first. The same page read every way must agree, escapes of
 * every kind (named, decimal, hex) decoded alike.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseScannedPage } from '../src/scan/listing-page.ts';

function contents(key: string, etag: string, metadata: string): string {
  return `<Contents><Key>${key}</Key><LastModified>2026-12-06T15:41:21.789Z</LastModified><ETag>${etag}</ETag><Size>7</Size><StorageClass>STANDARD</StorageClass>${metadata}</Contents>`;
}

function page(encoded: boolean, entries: string[]): string {
  return `<?xml version="1.0" encoding="UTF-8"?>\n<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>b</Name><Prefix></Prefix><KeyCount>${entries.length}</KeyCount><MaxKeys>1000</MaxKeys>${encoded ? '<EncodingType>url</EncodingType>' : ''}<IsTruncated>false</IsTruncated>${entries.join('')}</ListBucketResult>`;
}

/** The same page with whitespace between metadata elements: a shape the scan leaves to the general parser. */
function generalParser(xml: string): string {
  return xml.replaceAll('<UserMetadata>', '<UserMetadata>\n  ');
}

const ENTRIES = [
  contents('plain/key', '&quot;d41d8cd98f00b204e9800998ecf8427e&quot;', '<UserMetadata><content-type>text/plain</content-type><X-Amz-Meta-Owner>bench</X-Amz-Meta-Owner></UserMetadata>'),
  // A multipart ETag, quotes written bare, an entity inside the quotes.
  contents('a%2Bb+c%20d', '"9b2cf535f27731c974343645a3985328-3"', '<UserMetadata><Content-Type>image/jpeg</Content-Type><X-AMZ-META-place>Zürich</X-AMZ-META-place><Cache-Control>no-cache</Cache-Control></UserMetadata><UserTags>team=blue%20sky&amp;a%26b=1%3D2</UserTags>'),
  contents('odd', '&quot;a&amp;b&quot;', '<UserMetadata></UserMetadata>'),
  contents('short', '&quot;&quot;', ''),
  contents('caf%C3%A9', 'unquoted', '<UserMetadata><x-amz-meta-owner>lower</x-amz-meta-owner><content-type>a/b</content-type></UserMetadata>'),
];

for (const encoded of [true, false]) {
  test(`the scanned page reads as the general parser does (encoding-type ${encoded ? 'url' : 'none'})`, () => {
    const xml = page(encoded, ENTRIES);
    const scanned = parseScannedPage(xml);
    const parsed = parseScannedPage(generalParser(xml));
    assert.deepEqual(scanned, parsed);
    assert.deepEqual(parseScannedPage(xml.replace('<Name>', '<!-- a comment --><Name>')), scanned);
    assert.equal(scanned.objects.length, ENTRIES.length);
  });
}

test('the shortcuts give the values S3 means', () => {
  const [plain, multipart, odd, short, unquoted] = parseScannedPage(page(true, ENTRIES)).objects;
  assert.equal(plain!.etag, 'd41d8cd98f00b204e9800998ecf8427e');
  assert.deepEqual(plain!.listedMetadata, { contentType: 'text/plain', userMetadata: { owner: 'bench' }, tags: {} });
  assert.equal(multipart!.key, 'a+b c d');
  assert.equal(multipart!.etag, '9b2cf535f27731c974343645a3985328-3');
  assert.deepEqual(multipart!.listedMetadata, { contentType: 'image/jpeg', userMetadata: { place: 'Zürich' }, tags: { team: 'blue sky', 'a&b': '1=2' } });
  assert.equal(odd!.etag, 'a&b');
  assert.equal(short!.etag, '');
  assert.equal(short!.listedMetadata, undefined);
  assert.equal(unquoted!.key, 'café');
  assert.equal(unquoted!.etag, 'unquoted');
  assert.deepEqual(unquoted!.listedMetadata, { contentType: 'a/b', userMetadata: { owner: 'lower' }, tags: {} });
});

/** Every way of writing the text 'ü😀<>&"\'' in XML, and a reference that is text, not an escape ('&amp;#252;'). */
const ESCAPED = ['&#252;&#x1F600;&lt;&gt;&amp;&quot;&apos;', '&#xfc;&#128512;&#60;&#x3E;&#38;&#34;&#x27;', 'ü😀&lt;>&amp;"\''];
const ESCAPED_TEXT = 'ü😀<>&"\'';

function escapedEntries(escaped: string): string[] {
  return [
    contents(`key-${escaped}`, `&quot;etag${escaped}&quot;`, `<UserMetadata><Content-Type>text/${escaped}</Content-Type><X-Amz-Meta-Note>${escaped}&amp;#252;</X-Amz-Meta-Note></UserMetadata><UserTags>a=1&amp;b=&#50;&#x26;c=%C3%BC</UserTags>`),
    contents(`caf&#xE9;`, '&#34;d41d8cd98f00b204e9800998ecf8427e&#34;', '<UserMetadata><X-Amz-Meta-Place>Z&#252;rich &#x1F600;</X-Amz-Meta-Place></UserMetadata>'),
  ];
}

test('escapes of every kind read the same by the scan, after a comment, in CDATA and by the general parser', () => {
  const expected = [
    { key: `key-${ESCAPED_TEXT}`, size: 7, etag: `etag${ESCAPED_TEXT}`, lastModified: '2026-12-06T15:41:21.789Z', listedMetadata: { contentType: `text/${ESCAPED_TEXT}`, userMetadata: { note: `${ESCAPED_TEXT}&#252;` }, tags: { a: '1', b: '2', c: 'ü' } } },
    { key: 'café', size: 7, etag: 'd41d8cd98f00b204e9800998ecf8427e', lastModified: '2026-12-06T15:41:21.789Z', listedMetadata: { contentType: undefined, userMetadata: { place: 'Zürich 😀' }, tags: {} } },
  ];
  for (const escaped of ESCAPED) {
    const xml = page(false, escapedEntries(escaped));
    const ways = {
      scanned: xml,
      'after a comment': xml.replace('<Name>', '<!-- <Contents><Key>not a key</Key></Contents> --><Name>'),
      'general parser': generalParser(xml),
      'general parser, after a comment': generalParser(xml).replace('<Name>', '<!-- a comment --><Name>'),
    };
    for (const [way, document] of Object.entries(ways)) assert.deepEqual(parseScannedPage(document).objects, expected, `${escaped}, ${way}`);
  }
});

test('CDATA sections are text, their content not decoded', () => {
  const cdata = page(false, [contents('<![CDATA[a&amp;b<c>]]>&#252;', '&quot;e&quot;', '<UserMetadata><X-Amz-Meta-Note>x<![CDATA[&#252;]]>y</X-Amz-Meta-Note></UserMetadata>')]);
  const escaped = page(false, [contents('a&amp;amp;b&lt;c&gt;&#252;', '&quot;e&quot;', '<UserMetadata><X-Amz-Meta-Note>x&amp;#252;y</X-Amz-Meta-Note></UserMetadata>')]);
  const expected = [{ key: 'a&amp;b<c>ü', size: 7, etag: 'e', lastModified: '2026-12-06T15:41:21.789Z', listedMetadata: { contentType: undefined, userMetadata: { note: 'x&#252;y' }, tags: {} } }];
  assert.deepEqual(parseScannedPage(escaped).objects, expected);
  assert.deepEqual(parseScannedPage(cdata).objects, expected);
  assert.deepEqual(parseScannedPage(generalParser(cdata)).objects, expected);
});
