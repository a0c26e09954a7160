/**
 * Every backend keeps the same contract: an object appears only once
 * committed with exactly its announced bytes, reads return exact ranges,
 * missing objects are told apart from failures, removal is idempotent. Run
 * against memory, a local directory, a remote Talus and s3rver (a
 * third-party S3 implementation from npm) through the S3 backend.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { BackendObjectMissingError, BackendSizeMismatchError, type Backend } from '../src/backend/backend.ts';
import { DirectoryBackend } from '../src/backend/directory-backend.ts';
import { MemoryBackend } from '../src/backend/memory-backend.ts';
import { S3Backend } from '../src/backend/s3-backend.ts';
import { ACCESS_KEY_ID, SECRET_ACCESS_KEY, startTestTalus, type TestTalus } from './helpers/talus.ts';

async function collect(body: AsyncIterable<Buffer>): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of body) chunks.push(chunk);
  return Buffer.concat(chunks);
}

async function keysOf(backend: Backend, prefix: string): Promise<string[]> {
  const keys: string[] = [];
  for await (const key of backend.list(prefix)) keys.push(key);
  return keys.sort();
}

interface S3rverInstance {
  run(): Promise<AddressInfo>;
  close(): Promise<void>;
}
type S3rverConstructor = new (options: { port: number; address: string; directory: string; silent: boolean }) => S3rverInstance;

const kinds: { name: string; open(): Promise<{ backend: Backend; close(): Promise<void> }> }[] = [
  {
    name: 'memory',
    open: async () => ({ backend: new MemoryBackend('memory'), close: async () => undefined }),
  },
  {
    name: 'local directory',
    async open() {
      const root = await mkdtemp(join(tmpdir(), 'talus-backend-'));
      return { backend: await DirectoryBackend.open('disk', root), close: () => rm(root, { recursive: true, force: true }) };
    },
  },
  {
    name: 'S3 (a remote Talus)',
    async open() {
      const talus: TestTalus = await startTestTalus();
      const backend = new S3Backend({ name: 'remote', endpoint: talus.url, accessKeyId: ACCESS_KEY_ID, secretAccessKey: SECRET_ACCESS_KEY, bucket: 'talus-backend', prefix: 'shards/' });
      await backend.ensureBucket();
      return {
        backend,
        async close() {
          await backend.close();
          await talus.stop();
        },
      };
    },
  },
  {
    name: 'S3 (s3rver)',
    async open() {
      const directory = await mkdtemp(join(tmpdir(), 'talus-s3rver-'));
      const S3rver = createRequire(import.meta.url)('s3rver') as S3rverConstructor;
      const s3rver = new S3rver({ port: 0, address: '127.0.0.1', directory, silent: true });
      const address = await s3rver.run();
      const backend = new S3Backend({ name: 's3rver', endpoint: `http://127.0.0.1:${address.port}`, accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER', bucket: 'talus-backend' });
      await backend.ensureBucket();
      return {
        backend,
        async close() {
          await backend.close();
          await s3rver.close();
          await rm(directory, { recursive: true, force: true });
        },
      };
    },
  },
];

for (const kind of kinds) {
  describe(`backend contract: ${kind.name}`, () => {
    let backend: Backend;
    let close: () => Promise<void>;
    before(async () => {
      ({ backend, close } = await kind.open());
    });
    after(async () => close());

    test('an object appears once committed, with exactly its bytes; ranges are exact', async () => {
      const data = randomBytes(700_001);
      const writer = backend.create('obj/a.0', data.length);
      // The writer must not keep our chunk: it is overwritten after each write, as a stripe buffer is.
      const chunk = Buffer.alloc(65_536);
      for (let at = 0; at < data.length; at += chunk.length) {
        const piece = data.subarray(at, at + chunk.length);
        piece.copy(chunk);
        await writer.write(chunk.subarray(0, piece.length));
        chunk.fill(0xee);
      }
      assert.equal(await backend.stat('obj/a.0'), undefined, 'not visible before commit');
      await writer.commit();
      assert.equal(await backend.stat('obj/a.0'), data.length);
      assert.ok((await collect(await backend.read('obj/a.0', 0, data.length))).equals(data));
      for (const [start, end] of [
        [0, 1],
        [65_535, 65_537],
        [123_456, 654_321],
        [data.length - 1, data.length],
      ] as const) {
        assert.ok((await collect(await backend.read('obj/a.0', start, end))).equals(data.subarray(start, end)), `range ${start}-${end}`);
      }
    });

    test('an empty object', async () => {
      const writer = backend.create('obj/empty', 0);
      await writer.commit();
      assert.equal(await backend.stat('obj/empty'), 0);
      assert.equal((await collect(await backend.read('obj/empty', 0, 0))).length, 0);
    });

    test('aborted and short writes leave nothing behind', async () => {
      const aborted = backend.create('obj/aborted', 10_000);
      await aborted.write(randomBytes(5000));
      await aborted.abort();
      assert.equal(await backend.stat('obj/aborted'), undefined);

      const short = backend.create('obj/short', 10_000);
      await short.write(randomBytes(9_999));
      await assert.rejects(short.commit(), BackendSizeMismatchError);
      await short.abort();
      assert.equal(await backend.stat('obj/short'), undefined);

      const long = backend.create('obj/long', 10);
      await assert.rejects(long.write(randomBytes(11)), BackendSizeMismatchError);
      await long.abort();
      assert.equal(await backend.stat('obj/long'), undefined);
    });

    test('a missing object is told apart from a failure; removal is idempotent and batched; listing by prefix', async () => {
      await assert.rejects(backend.read('obj/none', 0, 10), BackendObjectMissingError);
      assert.equal(await backend.stat('obj/none'), undefined);
      for (const key of ['list/x.1', 'list/x.2', 'list/y.1']) {
        const writer = backend.create(key, 3);
        await writer.write(Buffer.from('abc'));
        await writer.commit();
      }
      assert.deepEqual(await keysOf(backend, 'list/x'), ['list/x.1', 'list/x.2']);
      await backend.remove(['list/x.1', 'list/y.1', 'list/never-was']);
      await backend.remove(['list/x.1']);
      assert.deepEqual(await keysOf(backend, 'list/'), ['list/x.2']);
      await assert.rejects(backend.read('list/y.1', 0, 3), BackendObjectMissingError);
    });
  });
}

describe('S3 backend: large objects go up as multipart uploads', () => {
  test('against a remote Talus and s3rver: parts of 5 MiB, read back exact; an aborted upload leaves nothing', async () => {
    const talus = await startTestTalus();
    const directory = await mkdtemp(join(tmpdir(), 'talus-s3rver-mp-'));
    const S3rver = createRequire(import.meta.url)('s3rver') as S3rverConstructor;
    const s3rver = new S3rver({ port: 0, address: '127.0.0.1', directory, silent: true });
    const { port } = await s3rver.run();
    const endpoints = [
      { name: 'talus', endpoint: talus.url, accessKeyId: ACCESS_KEY_ID, secretAccessKey: SECRET_ACCESS_KEY },
      { name: 's3rver', endpoint: `http://127.0.0.1:${port}`, accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' },
    ];
    try {
      for (const endpoint of endpoints) {
        const backend = new S3Backend({ ...endpoint, bucket: 'talus-mp', multipartThresholdBytes: 6 * 1024 * 1024, partBytes: 5 * 1024 * 1024 });
        try {
          await backend.ensureBucket();
          const data = randomBytes(13 * 1024 * 1024 + 5);
          const writer = backend.create('big.0', data.length);
          for (let at = 0; at < data.length; at += 300_000) await writer.write([data.subarray(at, at + 100_000), data.subarray(at + 100_000, at + 300_000)]);
          assert.equal(await backend.stat('big.0'), undefined, `${endpoint.name}: not visible before commit`);
          await writer.commit();
          assert.equal(await backend.stat('big.0'), data.length);
          assert.ok((await collect(await backend.read('big.0', 0, data.length))).equals(data), endpoint.name);
          assert.ok((await collect(await backend.read('big.0', 5 * 1024 * 1024 - 3, 5 * 1024 * 1024 + 3))).equals(data.subarray(5 * 1024 * 1024 - 3, 5 * 1024 * 1024 + 3)));
          const aborted = backend.create('big.1', data.length);
          await aborted.write(data.subarray(0, 7 * 1024 * 1024));
          await aborted.abort();
          assert.equal(await backend.stat('big.1'), undefined, `${endpoint.name}: aborted`);
        } finally {
          await backend.close();
        }
      }
    } finally {
      await s3rver.close();
      await talus.stop();
      await rm(directory, { recursive: true, force: true });
    }
  });
});

describe('S3 backend against a misbehaving endpoint', () => {
  let server: Server;
  let endpoint: string;
  const seen: string[] = [];
  let failuresLeft = 0;
  let deleteAnswer = '';

  before(async () => {
    server = createServer((request: IncomingMessage, response) => {
      seen.push(`${request.method} ${request.url}`);
      request.resume();
      request.on('end', () => {
        if (failuresLeft > 0) {
          failuresLeft--;
          response.writeHead(503, { 'content-type': 'application/xml' }).end('<Error><Code>SlowDown</Code><Message>slow down</Message></Error>');
          return;
        }
        if (request.method === 'POST' && request.url!.endsWith('?uploads=')) {
          response.writeHead(200, { 'content-type': 'application/xml' }).end('<InitiateMultipartUploadResult><UploadId>up-1</UploadId></InitiateMultipartUploadResult>');
          return;
        }
        if (request.method === 'POST' && request.url!.includes('uploadId=')) {
          // Completion "succeeds" with 200, then reports the failure in the body, as S3 may.
          response.writeHead(200, { 'content-type': 'application/xml' }).end('<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>InternalError</Code><Message>We encountered an internal error. Please try again.</Message></Error>');
          return;
        }
        if (request.method === 'POST') {
          response.writeHead(200, { 'content-type': 'application/xml' }).end(deleteAnswer);
          return;
        }
        if (request.method === 'PUT' && request.url!.includes('partNumber=')) {
          response.writeHead(200, { etag: '"part-etag"' }).end();
          return;
        }
        if (request.method === 'DELETE') {
          response.writeHead(204).end();
          return;
        }
        response.writeHead(206, { 'content-length': '3', 'content-range': 'bytes 0-2/3' }).end('abc');
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(async () => new Promise<void>((resolve) => server.close(() => resolve())));

  const backendFor = (attempts: number): S3Backend =>
    new S3Backend({ name: 'flaky', endpoint, accessKeyId: 'k', secretAccessKey: 's', bucket: 'b', retry: { attempts, baseDelayMs: 5, maxDelayMs: 20 } });

  test('reads are retried through throttling, and give up after the last attempt', async () => {
    const backend = backendFor(4);
    try {
      seen.length = 0;
      failuresLeft = 3;
      assert.equal((await collect(await backend.read('k', 0, 3))).toString(), 'abc');
      assert.equal(seen.length, 4);
      seen.length = 0;
      failuresLeft = 4;
      await assert.rejects(backend.read('k', 0, 3), /SlowDown/);
      assert.equal(seen.length, 4);
    } finally {
      failuresLeft = 0;
      await backend.close();
    }
  });

  test('a DeleteObjects answered 200 with an <Error> document, or with per-key errors, is a failure', async () => {
    const backend = backendFor(1);
    try {
      deleteAnswer = '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>InternalError</Code><Message>We encountered an internal error</Message></Error>';
      await assert.rejects(backend.remove(['a', 'b']), /InternalError/);
      deleteAnswer = '<DeleteResult><Error><Key>b</Key><Code>AccessDenied</Code><Message>no</Message></Error></DeleteResult>';
      await assert.rejects(backend.remove(['a', 'b']), /1 of 2 deletions failed \(b: AccessDenied\)/);
      deleteAnswer = '<DeleteResult></DeleteResult>';
      await backend.remove(['a', 'b']);
      assert.ok(seen.includes('POST /b?delete='));
    } finally {
      await backend.close();
    }
  });

  test('a CompleteMultipartUpload answered 200 with an <Error> body is a failure, and the upload is aborted', async () => {
    const backend = new S3Backend({ name: 'flaky', endpoint, accessKeyId: 'k', secretAccessKey: 's', bucket: 'b', retry: { attempts: 1, baseDelayMs: 5, maxDelayMs: 20 }, multipartThresholdBytes: 5 * 1024 * 1024, partBytes: 5 * 1024 * 1024 });
    try {
      seen.length = 0;
      const writer = backend.create('k', 6 * 1024 * 1024);
      await writer.write(Buffer.alloc(6 * 1024 * 1024, 1));
      await assert.rejects(writer.commit(), /InternalError/);
      assert.deepEqual(
        seen.map((line) => line.replace(/\?.*/, (query) => query.split('&').sort().join('&'))),
        ['POST /b/k?uploads=', 'PUT /b/k?partNumber=1&uploadId=up-1', 'PUT /b/k?partNumber=2&uploadId=up-1', 'POST /b/k?uploadId=up-1', 'DELETE /b/k?uploadId=up-1'],
      );
    } finally {
      await backend.close();
    }
  });

  test('an endpoint that is down fails reads with a network error after the retries', async () => {
    const backend = new S3Backend({ name: 'down', endpoint: 'http://127.0.0.1:9', accessKeyId: 'k', secretAccessKey: 's', bucket: 'b', retry: { attempts: 2, baseDelayMs: 5, maxDelayMs: 10 } });
    try {
      await assert.rejects(backend.read('k', 0, 3), (error: unknown) => !(error instanceof BackendObjectMissingError));
    } finally {
      await backend.close();
    }
  });
});
