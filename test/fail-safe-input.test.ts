/**
 * Input that is not what it should be, answered precisely and logged
 * sparingly:
 * - a DeleteObjects body that is not UTF-8 is MalformedXML even when its
 *   Content-MD5 is right (the digest is over the bytes sent, not over a
 *   decoded string), and a wrong Content-MD5 is BadDigest;
 * - an upload the client abandons mid-body is logged once, at info level,
 *   without a stack, and no log line carries a secret; a real failure is
 *   still logged at error level with its stack.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, rm, unlink } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { startTalus, type RunningTalus } from '../src/talus.ts';
import { CONTENT_SHA256, docSigningKey, encode } from './helpers/aws-chunked.ts';
import { listBlobFiles } from './helpers/process.ts';
import { errorCode, signedRequest, signRequest } from './helpers/raw.ts';
import { ACCESS_KEY_ID, SECRET_ACCESS_KEY } from './helpers/talus.ts';

const MiB = 1024 * 1024;
const BUCKET = 'fail-safe-input';

interface LogLine {
  level: string;
  message: string;
  text: string;
}

describe('bad input and aborted uploads', () => {
  let talus: RunningTalus;
  let dataDir: string;
  const lines: LogLine[] = [];
  const record = (level: string) => (message: string, fields: Record<string, unknown> = {}) => {
    lines.push({ level, message, text: JSON.stringify({ level, message, ...fields }) });
  };

  before(async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'talus-fail-safe-input-'));
    talus = await startTalus({
      dataDir,
      port: 0,
      address: '127.0.0.1',
      rootAccessKeyId: ACCESS_KEY_ID,
      rootSecretAccessKey: SECRET_ACCESS_KEY,
      logger: { info: record('info'), warn: record('warn'), error: record('error') },
    });
    assert.equal((await signedRequest(talus.url, { method: 'PUT', path: `/${BUCKET}` })).status, 200);
  });
  after(async () => {
    await talus.close();
    await rm(dataDir, { recursive: true, force: true });
  });

  async function deleteObjects(body: Buffer, contentMd5: string) {
    return signedRequest(talus.url, { method: 'POST', path: `/${BUCKET}`, query: { delete: '' }, body, headers: { 'content-md5': contentMd5, 'content-type': 'application/xml' } });
  }
  const md5 = (bytes: Buffer): string => createHash('md5').update(bytes).digest('base64');

  test('DeleteObjects: a body that is not UTF-8 is MalformedXML, a wrong Content-MD5 is BadDigest', async () => {
    const invalid = Buffer.concat([Buffer.from('<Delete><Object><Key>k'), Buffer.from([0xff, 0xfe, 0xc3]), Buffer.from('</Key></Object></Delete>')]);
    const malformed = await deleteObjects(invalid, md5(invalid));
    assert.equal(malformed.status, 400, malformed.body);
    assert.equal(errorCode(malformed), 'MalformedXML');
    const wrongDigest = await deleteObjects(invalid, md5(Buffer.from('something else')));
    assert.equal(wrongDigest.status, 400, wrongDigest.body);
    assert.equal(errorCode(wrongDigest), 'BadDigest');
    // Valid UTF-8 beyond ASCII is hashed over the same bytes and accepted.
    assert.equal((await signedRequest(talus.url, { method: 'PUT', path: `/${BUCKET}/caf%C3%A9`, body: Buffer.from('x') })).status, 200);
    const valid = Buffer.from('<Delete><Object><Key>café</Key></Object></Delete>', 'utf8');
    const deleted = await deleteObjects(valid, md5(valid));
    assert.equal(deleted.status, 200, deleted.body);
    assert.match(deleted.body, /<Deleted><Key>café<\/Key><\/Deleted>/);
    assert.equal((await signedRequest(talus.url, { method: 'HEAD', path: `/${BUCKET}/caf%C3%A9` })).status, 404);
  });

  /** Sends `head` and `partial` on a raw connection, then closes it (FIN) or resets it (RST). */
  async function abandon(headers: Record<string, string>, path: string, partial: Buffer, reset: boolean): Promise<void> {
    const url = new URL(talus.url);
    const socket = connect(Number(url.port), url.hostname);
    socket.on('error', () => undefined);
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
    let head = `PUT ${path} HTTP/1.1\r\n`;
    for (const [name, value] of Object.entries(headers)) head += `${name}: ${value}\r\n`;
    await new Promise<void>((resolve) => socket.write(`${head}\r\n`, () => resolve()));
    await new Promise<void>((resolve) => socket.write(partial, () => resolve()));
    // Let the server start on the body before the client goes.
    await new Promise((resolve) => setTimeout(resolve, 200));
    if (reset) socket.resetAndDestroy();
    else socket.destroy();
  }

  async function linesAbout(path: string): Promise<LogLine[]> {
    const deadline = Date.now() + 10_000;
    while (!lines.some((line) => line.text.includes(`"${path}"`))) {
      if (Date.now() > deadline) throw new Error(`no log line about ${path}; lines:\n${lines.map((line) => line.text).join('\n')}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    // A second line about the same request would come right after the first.
    await new Promise((resolve) => setTimeout(resolve, 300));
    return lines.filter((line) => line.text.includes(`"${path}"`));
  }

  test('an abandoned upload is logged once at info level, without a stack or a secret', async () => {
    const secrets = new Set<string>([SECRET_ACCESS_KEY]);
    const remember = (headers: Record<string, string>): Record<string, string> => {
      secrets.add(headers['authorization']!);
      secrets.add(/Signature=([0-9a-f]{64})/.exec(headers['authorization']!)![1]!);
      return headers;
    };
    const uploads: { name: string; path: string; send(path: string): Promise<void> }[] = [
      {
        // Long enough to hash on a thread and write a blob before the client goes.
        name: 'unsigned 2 MiB, closed',
        path: `/${BUCKET}/unsigned-closed`,
        async send(path) {
          const headers = remember(await signRequest(talus.url, { method: 'PUT', path, unsignedPayload: true, headers: { 'content-length': String(2 * MiB) } }));
          await abandon(headers, path, randomBytes(MiB + 4321), false);
        },
      },
      {
        name: 'signed body, reset',
        path: `/${BUCKET}/signed-reset`,
        async send(path) {
          const body = randomBytes(200_000);
          const headers = remember(await signRequest(talus.url, { method: 'PUT', path, body, headers: { 'content-length': String(body.length) } }));
          await abandon(headers, path, body.subarray(0, 100_000), true);
        },
      },
      {
        name: 'aws-chunked with chunk signatures, closed',
        path: `/${BUCKET}/chunked-closed`,
        async send(path) {
          const data = randomBytes(2 * MiB);
          const headers: Record<string, string> = {
            'content-encoding': 'aws-chunked',
            'x-amz-content-sha256': CONTENT_SHA256.signed,
            'x-amz-decoded-content-length': String(data.length),
          };
          const signed = remember(await signRequest(talus.url, { method: 'PUT', path, headers }));
          const amzDate = signed['x-amz-date']!;
          const date = amzDate.slice(0, 8);
          const key = docSigningKey(SECRET_ACCESS_KEY, date, 'us-east-1');
          secrets.add(key.toString('hex'));
          const seed = /Signature=([0-9a-f]{64})/.exec(signed['authorization']!)![1]!;
          const encoded = encode(data, 'signed', 64 * 1024, [], { key, amzDate, scope: `${date}/us-east-1/s3/aws4_request`, seed });
          for (const signature of encoded.chunkSignatures) secrets.add(signature);
          await abandon({ ...signed, 'content-length': String(encoded.body.length) }, path, encoded.body.subarray(0, 700_000), false);
        },
      },
    ];
    for (const upload of uploads) {
      await upload.send(upload.path);
      const about = await linesAbout(upload.path);
      assert.equal(about.length, 1, `${upload.name}: one line, got:\n${about.map((line) => line.text).join('\n')}`);
      assert.equal(about[0]!.level, 'info', `${upload.name}: ${about[0]!.text}`);
      assert.equal(about[0]!.message, 'request aborted by client');
      assert.doesNotMatch(about[0]!.text, /\\n\s+at |stack/, `${upload.name}: no stack trace`);
      assert.equal((await signedRequest(talus.url, { method: 'HEAD', path: upload.path })).status, 404, `${upload.name}: nothing became visible`);
    }
    assert.deepEqual(lines.filter((line) => line.level === 'error').map((line) => line.text), [], 'no error lines');
    for (const line of lines) {
      for (const secret of secrets) assert.ok(!line.text.includes(secret), `a log line carries a secret: ${line.text}`);
    }
  });

  test('a failure that is not the client leaving is still logged at error level, with its stack', async () => {
    const path = `/${BUCKET}/lost-blob`;
    const before = new Set(await listBlobFiles(dataDir));
    assert.equal((await signedRequest(talus.url, { method: 'PUT', path, body: randomBytes(100_000) })).status, 200);
    const written = (await listBlobFiles(dataDir)).filter((file) => !before.has(file));
    assert.equal(written.length, 1);
    await unlink(join(dataDir, 'blobs', written[0]!));
    const get = await signedRequest(talus.url, { method: 'GET', path });
    assert.ok(get.status >= 500, `status ${get.status}`);
    const about = await linesAbout(path);
    assert.equal(about.length, 1, about.map((line) => line.text).join('\n'));
    assert.equal(about[0]!.level, 'error');
    assert.match(about[0]!.text, /\\n\s+at /, 'with its stack');
  });
});
