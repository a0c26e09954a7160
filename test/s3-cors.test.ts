/**
 * CORS (issue 12): Put/Get/DeleteBucketCors with the SDK, the XML validated
 * as AWS validates it; OPTIONS preflights matched against the rules in order
 * and refused when nothing matches; Access-Control-* headers on actual
 * requests (signed, presigned, anonymous, and on their 403/404 answers);
 * Access-Control-Allow-Credentials only for origins a rule names.
 */
import { CreateBucketCommand, DeleteBucketCorsCommand, GetBucketCorsCommand, GetObjectCommand, PutBucketCorsCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { Principals } from '../src/principals/principals.ts';
import { clientFor, waitForAuth } from './helpers/principals.ts';
import { errorCode, send, signedRequest, type RawResponse } from './helpers/raw.ts';
import { startTestTalus, uniqueBucket, type TestTalus } from './helpers/talus.ts';

const RULES_XML = `<CORSConfiguration>
  <CORSRule><ID>app</ID><AllowedOrigin>https://app.example</AllowedOrigin><AllowedMethod>GET</AllowedMethod><AllowedMethod>PUT</AllowedMethod>
    <AllowedHeader>x-amz-*</AllowedHeader><AllowedHeader>content-type</AllowedHeader><ExposeHeader>ETag</ExposeHeader><MaxAgeSeconds>600</MaxAgeSeconds></CORSRule>
  <CORSRule><AllowedOrigin>https://*.example.org</AllowedOrigin><AllowedMethod>GET</AllowedMethod></CORSRule>
  <CORSRule><AllowedOrigin>*</AllowedOrigin><AllowedMethod>HEAD</AllowedMethod><AllowedMethod>GET</AllowedMethod></CORSRule>
</CORSConfiguration>`;

describe('CORS', { timeout: 120_000 }, () => {
  let talus: TestTalus;
  const bucket = uniqueBucket('cors');
  const bare = uniqueBucket('nocors');

  function raw(method: string, path: string, headers: Record<string, string>, body?: string): Promise<RawResponse> {
    return send(talus.url, method, path, headers, body);
  }

  before(async () => {
    talus = await startTestTalus();
    for (const name of [bucket, bare]) assert.equal((await signedRequest(talus.url, { method: 'PUT', path: `/${name}` })).status, 200);
    const put = await signedRequest(talus.url, { method: 'PUT', path: `/${bucket}`, query: { cors: '' }, body: RULES_XML });
    assert.equal(put.status, 200, put.body);
    assert.equal((await signedRequest(talus.url, { method: 'PUT', path: `/${bucket}/object`, body: 'hello' })).status, 200);
  });
  after(async () => {
    await talus.stop();
  });

  test('Put, Get and Delete with the SDK; NoSuchCORSConfiguration when there is none', async () => {
    const name = uniqueBucket('cors-sdk');
    assert.equal((await signedRequest(talus.url, { method: 'PUT', path: `/${name}` })).status, 200);
    await assert.rejects(talus.client.send(new GetBucketCorsCommand({ Bucket: name })), { name: 'NoSuchCORSConfiguration' });
    const rules = [
      { ID: 'one', AllowedOrigins: ['https://a.example', 'https://*.b.example'], AllowedMethods: ['GET', 'POST'], AllowedHeaders: ['*'], ExposeHeaders: ['ETag', 'x-amz-version-id'], MaxAgeSeconds: 30 },
      { AllowedOrigins: ['*'], AllowedMethods: ['HEAD'] },
    ];
    await talus.client.send(new PutBucketCorsCommand({ Bucket: name, CORSConfiguration: { CORSRules: rules } }));
    const got = await talus.client.send(new GetBucketCorsCommand({ Bucket: name }));
    assert.deepEqual(got.CORSRules, [
      { ID: 'one', AllowedOrigins: ['https://a.example', 'https://*.b.example'], AllowedMethods: ['GET', 'POST'], AllowedHeaders: ['*'], ExposeHeaders: ['ETag', 'x-amz-version-id'], MaxAgeSeconds: 30 },
      { AllowedOrigins: ['*'], AllowedMethods: ['HEAD'] },
    ]);
    await talus.client.send(new DeleteBucketCorsCommand({ Bucket: name }));
    await assert.rejects(talus.client.send(new GetBucketCorsCommand({ Bucket: name })), { name: 'NoSuchCORSConfiguration' });
  });

  test('bad configurations are refused and change nothing', async () => {
    const cases: [string, string, string][] = [
      ['<CORSConfiguration><CORSRule><AllowedOrigin>*</AllowedOrigin><AllowedMethod>PATCH</AllowedMethod></CORSRule></CORSConfiguration>', 'InvalidRequest', 'unsupported method'],
      ['<CORSConfiguration><CORSRule><AllowedOrigin>*.*</AllowedOrigin><AllowedMethod>GET</AllowedMethod></CORSRule></CORSConfiguration>', 'InvalidRequest', 'two wildcards'],
      ['<CORSConfiguration><CORSRule><AllowedMethod>GET</AllowedMethod></CORSRule></CORSConfiguration>', 'MalformedXML', 'no origin'],
      ['<CORSConfiguration></CORSConfiguration>', 'MalformedXML', 'no rule'],
      ['<CORSConfiguration><CORSRule>', 'MalformedXML', 'not XML'],
      [`<CORSConfiguration>${'<CORSRule><AllowedOrigin>*</AllowedOrigin><AllowedMethod>GET</AllowedMethod></CORSRule>'.repeat(101)}</CORSConfiguration>`, 'InvalidRequest', '101 rules'],
      [`<CORSConfiguration><CORSRule><ID>${'x'.repeat(70 * 1024)}</ID><AllowedOrigin>*</AllowedOrigin><AllowedMethod>GET</AllowedMethod></CORSRule></CORSConfiguration>`, 'MaxMessageLengthExceeded', 'over 64 KiB'],
    ];
    for (const [body, code, what] of cases) {
      const response = await signedRequest(talus.url, { method: 'PUT', path: `/${bucket}`, query: { cors: '' }, body });
      assert.equal(response.status, 400, what);
      assert.equal(errorCode(response), code, what);
    }
    const still = await talus.client.send(new GetBucketCorsCommand({ Bucket: bucket }));
    assert.equal(still.CORSRules?.length, 3);
  });

  test('a preflight is answered from the first matching rule', async () => {
    const allowed = await raw('OPTIONS', `/${bucket}/object`, {
      origin: 'https://app.example',
      'access-control-request-method': 'PUT',
      'access-control-request-headers': 'Content-Type, X-Amz-Date',
    });
    assert.equal(allowed.status, 200);
    assert.equal(allowed.headers['access-control-allow-origin'], 'https://app.example');
    assert.equal(allowed.headers['access-control-allow-methods'], 'GET, PUT');
    assert.equal(allowed.headers['access-control-allow-headers'], 'content-type, x-amz-date');
    assert.equal(allowed.headers['access-control-max-age'], '600');
    assert.equal(allowed.headers['access-control-expose-headers'], 'ETag');
    assert.equal(allowed.headers['access-control-allow-credentials'], 'true');
    assert.match(String(allowed.headers['vary']), /Origin/);
    // A wildcard origin pattern echoes the origin; `*` answers `*` and never with credentials.
    const wildcard = await raw('OPTIONS', `/${bucket}`, { origin: 'https://cdn.example.org', 'access-control-request-method': 'GET' });
    assert.equal(wildcard.status, 200);
    assert.equal(wildcard.headers['access-control-allow-origin'], 'https://cdn.example.org');
    const any = await raw('OPTIONS', `/${bucket}/object`, { origin: 'https://elsewhere.test', 'access-control-request-method': 'HEAD' });
    assert.equal(any.status, 200);
    assert.equal(any.headers['access-control-allow-origin'], '*');
    assert.equal(any.headers['access-control-allow-methods'], 'HEAD, GET');
    assert.equal(any.headers['access-control-allow-credentials'], undefined);
  });

  test('a preflight nothing allows is 403; without Origin or the method it is 400', async () => {
    const refusals: [Record<string, string>, string][] = [
      [{ origin: 'https://elsewhere.test', 'access-control-request-method': 'PUT' }, 'method no rule allows that origin'],
      [{ origin: 'https://app.example', 'access-control-request-method': 'DELETE' }, 'method not allowed'],
      [{ origin: 'https://app.example', 'access-control-request-method': 'PUT', 'access-control-request-headers': 'authorization' }, 'header not allowed'],
      [{ origin: 'https://example.org', 'access-control-request-method': 'PUT' }, 'pattern does not match'],
    ];
    for (const [headers, what] of refusals) {
      const response = await raw('OPTIONS', `/${bucket}/object`, headers);
      assert.equal(response.status, 403, what);
      assert.equal(errorCode(response), 'AccessForbidden', what);
      assert.match(response.body, /CORSResponse: This CORS request is not allowed/);
      assert.equal(response.headers['access-control-allow-origin'], undefined, what);
    }
    const noRules = await raw('OPTIONS', `/${bare}/object`, { origin: 'https://app.example', 'access-control-request-method': 'GET' });
    assert.equal(noRules.status, 403);
    assert.equal((await raw('OPTIONS', `/${bucket}/object`, { 'access-control-request-method': 'GET' })).status, 400);
    assert.equal((await raw('OPTIONS', `/${bucket}/object`, { origin: 'https://app.example' })).status, 400);
  });

  test('actual requests carry the headers: signed, presigned, anonymous, and their 403/404 answers', async () => {
    const origin = { origin: 'https://app.example' };
    const signed = await signedRequest(talus.url, { method: 'GET', path: `/${bucket}/object`, headers: origin });
    assert.equal(signed.status, 200);
    assert.equal(signed.headers['access-control-allow-origin'], 'https://app.example');
    assert.equal(signed.headers['access-control-allow-methods'], 'GET, PUT');
    assert.equal(signed.headers['access-control-expose-headers'], 'ETag');
    assert.equal(signed.headers['access-control-allow-credentials'], 'true');
    assert.match(String(signed.headers['vary']), /Origin/);

    const url = new URL(await getSignedUrl(talus.client, new GetObjectCommand({ Bucket: bucket, Key: 'object' }), { expiresIn: 300 }));
    const presigned = await raw('GET', `${url.pathname}${url.search}`, origin);
    assert.equal(presigned.status, 200);
    assert.equal(presigned.body, 'hello');
    assert.equal(presigned.headers['access-control-allow-origin'], 'https://app.example');
    const putUrl = new URL(await getSignedUrl(talus.client, new PutObjectCommand({ Bucket: bucket, Key: 'from-browser' }), { expiresIn: 300 }));
    const presignedPut = await raw('PUT', `${putUrl.pathname}${putUrl.search}`, { ...origin, 'content-length': '2' }, 'hi');
    assert.equal(presignedPut.status, 200);
    assert.equal(presignedPut.headers['access-control-allow-origin'], 'https://app.example');

    const anonymousDenied = await raw('GET', `/${bucket}/object`, origin);
    assert.equal(anonymousDenied.status, 403);
    assert.equal(anonymousDenied.headers['access-control-allow-origin'], 'https://app.example');
    const missing = await signedRequest(talus.url, { method: 'GET', path: `/${bucket}/no-such-key`, headers: origin });
    assert.equal(missing.status, 404);
    assert.equal(missing.headers['access-control-allow-origin'], 'https://app.example');

    // An origin no rule allows for this method gets nothing, credentials least of all.
    const stranger = await signedRequest(talus.url, { method: 'PUT', path: `/${bucket}/x`, headers: { origin: 'https://evil.test' }, body: 'x' });
    assert.equal(stranger.status, 200);
    assert.equal(stranger.headers['access-control-allow-origin'], undefined);
    assert.equal(stranger.headers['access-control-allow-credentials'], undefined);
    // `*` matches any origin for GET: `*` back, no credentials.
    const anyOrigin = await signedRequest(talus.url, { method: 'GET', path: `/${bucket}/object`, headers: { origin: 'https://evil.test' } });
    assert.equal(anyOrigin.headers['access-control-allow-origin'], '*');
    assert.equal(anyOrigin.headers['access-control-allow-credentials'], undefined);
    // No Origin, no CORS headers.
    const plain = await signedRequest(talus.url, { method: 'GET', path: `/${bucket}/object` });
    assert.equal(plain.headers['access-control-allow-origin'], undefined);
  });

  test('an actual request is matched by its own method, not by an Access-Control-Request-Method it carries (as AWS)', async () => {
    // DELETE is allowed to no origin; PUT only to https://app.example.
    const deleteAsGet = await raw('DELETE', `/${bucket}/object`, { origin: 'https://app.example', 'access-control-request-method': 'GET' });
    assert.equal(deleteAsGet.headers['access-control-allow-origin'], undefined, 'no rule allows DELETE');
    const putAsGet = await raw('PUT', `/${bucket}/object`, { origin: 'https://cdn.example.org', 'access-control-request-method': 'GET', 'content-length': '0' });
    assert.equal(putAsGet.headers['access-control-allow-origin'], undefined, 'the *.example.org rule allows GET only');
    const getAsDelete = await raw('GET', `/${bucket}/object`, { origin: 'https://cdn.example.org', 'access-control-request-method': 'DELETE' });
    assert.equal(getAsDelete.headers['access-control-allow-origin'], 'https://cdn.example.org', 'GET is what the rule allows');
    assert.equal(getAsDelete.headers['access-control-allow-methods'], 'GET');
  });

  test('Put/Get/DeleteBucketCors: the owner and root may, another user and anonymous may not', async () => {
    const other = await Principals.withDataDir(talus.dataDir, async (principals) => (await principals.addUser('cors-other')).credentials);
    const otherClient = clientFor(talus.url, other);
    assert.equal(await waitForAuth(otherClient, 'accepted'), 'accepted');
    try {
      await assert.rejects(otherClient.send(new GetBucketCorsCommand({ Bucket: bucket })), { name: 'AccessDenied' });
      await assert.rejects(otherClient.send(new DeleteBucketCorsCommand({ Bucket: bucket })), { name: 'AccessDenied' });
      const anonymous = await raw('PUT', `/${bucket}?cors`, { 'content-length': String(RULES_XML.length) }, RULES_XML);
      assert.equal(anonymous.status, 403);
      assert.equal((await raw('GET', `/${bucket}?cors`, {})).status, 403);
      const mine = uniqueBucket('cors-mine');
      await otherClient.send(new CreateBucketCommand({ Bucket: mine }));
      await otherClient.send(new PutBucketCorsCommand({ Bucket: mine, CORSConfiguration: { CORSRules: [{ AllowedOrigins: ['*'], AllowedMethods: ['GET'] }] } }));
      // Root may read any bucket's configuration.
      const byRoot = await talus.client.send(new GetBucketCorsCommand({ Bucket: mine }));
      assert.equal(byRoot.CORSRules?.length, 1);
    } finally {
      otherClient.destroy();
    }
  });
});
