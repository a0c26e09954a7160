/**
 * Temporary credentials (issue 14): the lean client and `talus scan` send a
 * session token as x-amz-security-token, inside the signature. Talus issues
 * no session tokens, so the server here is a local HTTP server that checks
 * every request's SigV4 signature with an independent implementation
 * (@smithy/signature-v4, the AWS SDK's signer) given the secret and the
 * token it expects: a request whose token is missing, unsigned or different
 * fails the check.
 */
import { Sha256 } from '@aws-crypto/sha256-js';
import { SignatureV4 } from '@smithy/signature-v4';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { S3Client } from '../src/client/s3-client.ts';
import { scanObjects } from '../src/scan/scan.ts';
import { CLI, PROJECT_ROOT } from './helpers/process.ts';

const KEY = { accessKeyId: 'ASIATEMPORARY', secretAccessKey: 'temporary-secret' };
const TOKEN = 'FwoGZXIvYXdzEJr//////////wEaDG session+token/with=odd&characters';

interface Seen {
  method: string;
  url: string;
  signedHeaders: string[];
  token: string | undefined;
  /** The signature matches what @smithy/signature-v4 computes with the expected token. */
  verified: boolean;
}

/** Recomputes the request's signature from the headers it says it signed, with the expected credentials. */
async function verify(request: IncomingMessage, expectedToken: string): Promise<{ signedHeaders: string[]; verified: boolean }> {
  const authorization = request.headers['authorization'] ?? '';
  const signedHeaders = /SignedHeaders=([^,]+)/.exec(authorization)?.[1]?.split(';') ?? [];
  const signature = /Signature=([0-9a-f]+)/.exec(authorization)?.[1];
  const amzDate = String(request.headers['x-amz-date']);
  const signingDate = new Date(`${amzDate.slice(0, 4)}-${amzDate.slice(4, 6)}-${amzDate.slice(6, 8)}T${amzDate.slice(9, 11)}:${amzDate.slice(11, 13)}:${amzDate.slice(13, 15)}Z`);
  const url = new URL(request.url ?? '/', 'http://placeholder');
  const query: Record<string, string> = {};
  for (const [name, value] of url.searchParams) query[name] = value;
  const headers: Record<string, string> = {};
  for (const name of signedHeaders) headers[name] = String(request.headers[name]);
  const signer = new SignatureV4({ service: 's3', region: 'us-east-1', credentials: { ...KEY, sessionToken: expectedToken }, sha256: Sha256, uriEscapePath: false, applyChecksum: true });
  const [hostname, port] = String(request.headers['host']).split(':');
  const signed = await signer.sign(
    { method: request.method ?? 'GET', protocol: 'http:', hostname: hostname!, port: Number(port), path: url.pathname, query, headers },
    { signingDate },
  );
  const expected = /Signature=([0-9a-f]+)/.exec(String(signed.headers['authorization']))?.[1];
  return { signedHeaders, verified: signature !== undefined && signature === expected };
}

const LISTING = `<?xml version="1.0" encoding="UTF-8"?><ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>b</Name><Prefix></Prefix><KeyCount>1</KeyCount><MaxKeys>1000</MaxKeys><IsTruncated>false</IsTruncated><Contents><Key>photo.jpg</Key><LastModified>2026-12-06T07:00:00.000Z</LastModified><ETag>"0123"</ETag><Size>3</Size><StorageClass>STANDARD</StorageClass><UserMetadata><content-type>image/jpeg</content-type><X-Amz-Meta-Camera>x100v</X-Amz-Meta-Camera></UserMetadata></Contents></ListBucketResult>`;

describe('session tokens are sent and signed', () => {
  let server: Server;
  let endpoint: string;
  let expectedToken = TOKEN;
  const seen: Seen[] = [];

  before(async () => {
    server = createServer((request, response) => {
      request.resume();
      request.on('end', () => {
        void verify(request, expectedToken).then(({ signedHeaders, verified }) => {
          seen.push({ method: request.method ?? '', url: request.url ?? '', signedHeaders, token: request.headers['x-amz-security-token'] as string | undefined, verified });
          if (!verified) {
            response.statusCode = 403;
            response.setHeader('content-type', 'application/xml');
            response.end('<Error><Code>SignatureDoesNotMatch</Code><Message>signature or token mismatch</Message></Error>');
            return;
          }
          if (request.method === 'GET' && (request.url ?? '').includes('list-type=2')) {
            response.setHeader('content-type', 'application/xml');
            response.end(LISTING);
            return;
          }
          response.setHeader('etag', '"0123"');
          response.setHeader('x-amz-meta-camera', 'x100v');
          response.end();
        });
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(() => {
    server.close();
  });

  test('the lean client signs x-amz-security-token on every request; another token fails the check', async () => {
    const client = new S3Client({ endpoint, ...KEY, sessionToken: TOKEN });
    try {
      seen.length = 0;
      await client.headObject('bucket', 'dir/a key+with spaces.txt');
      await client.putObject('bucket', 'ünïcode/key', Buffer.from('bytes'), { contentType: 'text/plain', metadata: { camera: 'x100v' } });
      await client.listObjectsV2Document('bucket', { prefix: 'dir/', maxKeys: 10, metadata: true });
      assert.equal(seen.length, 3);
      for (const request of seen) {
        assert.equal(request.token, TOKEN, request.url);
        assert.ok(request.signedHeaders.includes('x-amz-security-token'), `${request.method} ${request.url}: ${request.signedHeaders.join(';')}`);
        assert.ok(request.verified, `${request.method} ${request.url}`);
      }
      // The token is part of the signature: a server expecting another one refuses.
      expectedToken = 'another-token';
      await assert.rejects(client.headObject('bucket', 'key'), (error: Error & { status?: number }) => error.status === 403);
      assert.equal(seen.at(-1)!.verified, false);
    } finally {
      expectedToken = TOKEN;
      await client.close();
    }
  });

  test('talus scan (library) signs with the session token it is given', async () => {
    seen.length = 0;
    const found = [];
    for await (const object of scanObjects({ endpoint, bucket: 'b', credentials: { ...KEY, sessionToken: TOKEN }, metadata: 'list' })) found.push(object);
    assert.deepEqual(found.map((object) => [object.key, object.userMetadata]), [['photo.jpg', { camera: 'x100v' }]]);
    assert.ok(seen.length > 0 && seen.every((request) => request.verified && request.token === TOKEN));
  });

  test('talus scan (CLI) finds AWS_SESSION_TOKEN through the credential chain', async () => {
    seen.length = 0;
    const env: NodeJS.ProcessEnv = { ...process.env, AWS_ACCESS_KEY_ID: KEY.accessKeyId, AWS_SECRET_ACCESS_KEY: KEY.secretAccessKey, AWS_SESSION_TOKEN: TOKEN };
    delete env['AWS_PROFILE'];
    const { code, stdout, stderr } = await new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
      execFile(process.execPath, ['--import', 'tsx', CLI, 'scan', 's3://b', '--endpoint', endpoint, '--metadata', 'head', '--quiet'], { cwd: PROJECT_ROOT, env, timeout: 60_000 }, (error, out, err) =>
        resolve({ code: typeof error?.code === 'number' ? error.code : error === null ? 0 : 1, stdout: out, stderr: err }),
      );
    });
    assert.equal(code, 0, stderr);
    assert.equal((JSON.parse(stdout.trim()) as { key: string }).key, 'photo.jpg');
    // A list, then a HEAD: both carried the token, signed.
    assert.deepEqual(seen.map((request) => request.method).sort(), ['GET', 'HEAD']);
    assert.ok(seen.every((request) => request.verified && request.token === TOKEN && request.signedHeaders.includes('x-amz-security-token')));
  });
});
