/**
 * The scan's listing-page reader takes shortcuts (ETags sliced out of
 * `&quot;…&quot;`, names decoded only when they hold an escape, metadata
 * element names looked up once per page shape): on the entries where the
 * shortcuts do not apply it must read what the general parser reads. A
 * comment in a document sends it to the general parser (fast-xml-parser),
 * so the same page read both ways must agree.
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
    const parsed = parseScannedPage(xml.replace('<Name>', '<!-- sends the page to the general parser --><Name>'));
    assert.deepEqual(scanned, parsed);
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
