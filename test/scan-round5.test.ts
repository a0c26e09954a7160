/**
 * talus scan's head walk, round 5 (issue 14): what a HEAD costs the scanner.
 *
 * - HEADs dispatched in one turn of the event loop go out in one write per
 *   connection (src/scan/head-pool.ts), not one write per request as the
 *   undici pool wrote them: counted at the sockets' write().
 * - A head walk compiles no WebAssembly: the listing goes over node:http
 *   (src/scan/listing-client.ts), not undici, whose llhttp module cost a
 *   fresh process ~0.1 s of CPU to compile. Run in a child process, which
 *   imports nothing else.
 * - The pool against a server that closes connections under pipelined HEADs
 *   (`Connection: close` after every few answers, the rest of the pipeline
 *   dropped): every object, once, in order, with its metadata read as
 *   the undici pool read it (leading spaces dropped, trailing ones kept, a
 *   repeated header joined with ", ", UTF-8 decoded). This part guards the
 *   new transport; the undici pool passed it too.
 *
 * The output itself is unchanged: scan-pipelining.test.ts compares head and
 * list walks object for object, toolkit-scan.test.ts the CLI's lines.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { Socket, createServer, type Server } from 'node:net';
import { networkInterfaces, tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { pathToFileURL } from 'node:url';
import { EXPIRY_MARGIN_MS } from '../src/client/credentials/refreshing-credentials.ts';
import { S3Client } from '../src/client/s3-client.ts';
import { HeadPool } from '../src/scan/head-pool.ts';
import { ScanRequestSigner } from '../src/scan/request-signer.ts';
import { scanObjects, type ScannedObject, type ScanOptions } from '../src/public/scan.ts';
import { ACCESS_KEY_ID, SECRET_ACCESS_KEY, startTestTalus, type TestTalus } from './helpers/talus.ts';

const CREDENTIALS = { accessKeyId: ACCESS_KEY_ID, secretAccessKey: SECRET_ACCESS_KEY };
const OBJECTS = 64;
const REPO = join(import.meta.dirname, '..');

async function collect(options: ScanOptions): Promise<ScannedObject[]> {
  const objects: ScannedObject[] = [];
  for await (const object of scanObjects(options)) objects.push(object);
  return objects;
}

describe('talus scan head walk, round 5', () => {
  let talus: TestTalus;
  const bucket = 'scan-round5';

  before(async () => {
    talus = await startTestTalus();
    const client = new S3Client({ endpoint: talus.url, ...CREDENTIALS, connections: 16 });
    await client.createBucket(bucket);
    await Promise.all(
      Array.from({ length: OBJECTS }, (_, i) => client.putObject(bucket, `k/${String(i).padStart(4, '0')}`, Buffer.from(`body ${i}`), { contentType: 'text/plain', metadata: { index: String(i) } })),
    );
    await client.close();
  });

  after(async () => {
    await talus?.close();
  });

  test('HEADs dispatched together go out in one write per connection', async () => {
    let headWrites = 0;
    let headRequests = 0;
    const write = Socket.prototype.write;
    Socket.prototype.write = function (this: Socket, chunk: unknown, ...rest: unknown[]) {
      const text = typeof chunk === 'string' ? chunk : Buffer.isBuffer(chunk) ? chunk.toString('latin1') : '';
      if (text.startsWith('HEAD ')) {
        headWrites++;
        headRequests += text.split('\r\n\r\n').length - 1;
      }
      return (write as (...args: unknown[]) => boolean).call(this, chunk, ...rest);
    } as typeof Socket.prototype.write;
    let objects: ScannedObject[];
    try {
      // All 64 HEADs are dispatched in one turn, 8 to each of 8 connections.
      objects = await collect({ endpoint: talus.url, bucket, prefix: 'k/', credentials: CREDENTIALS, metadata: 'head', concurrency: OBJECTS, pipelining: 8 });
    } finally {
      Socket.prototype.write = write;
    }
    assert.equal(objects.length, OBJECTS);
    assert.deepEqual(objects[5]!.userMetadata, { index: '5' });
    assert.equal(headRequests, OBJECTS);
    assert.equal(headWrites, 8, `${headRequests} HEADs in ${headWrites} writes`);
  });

  test('a head walk compiles no WebAssembly', async () => {
    const directory = await mkdtemp(join(tmpdir(), 'talus-scan-round5-'));
    try {
      const script = join(directory, 'walk.mjs');
      await writeFile(
        script,
        `let compiled = 0;
const Module = WebAssembly.Module;
WebAssembly.Module = class extends Module { constructor(...args) { compiled++; super(...args); } };
for (const name of ['compile', 'instantiate', 'compileStreaming', 'instantiateStreaming']) {
  const original = WebAssembly[name];
  if (original !== undefined) WebAssembly[name] = function (...args) { compiled++; return original.apply(this, args); };
}
const { scanObjects } = await import(${JSON.stringify(pathToFileURL(join(REPO, 'src/public/scan.ts')).href)});
// Loading modules compiles some (tsx's and node's module lexers): only the walk counts.
compiled = 0;
let objects = 0;
for await (const object of scanObjects(${JSON.stringify({ endpoint: talus.url, bucket, prefix: 'k/', credentials: CREDENTIALS, metadata: 'head' })})) if (object.userMetadata?.index !== undefined) objects++;
process.stdout.write(JSON.stringify({ objects, compiled }));
`,
      );
      const child = spawn(process.execPath, ['--import', 'tsx', script], { cwd: REPO, stdio: ['ignore', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
      child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
      const code = await new Promise<number | null>((resolve) => child.once('close', resolve));
      assert.equal(code, 0, stderr);
      assert.deepEqual(JSON.parse(stdout), { objects: OBJECTS, compiled: 0 });
    } finally {
      await rm(directory, { recursive: true, force: true });
    }
  });
});

/**
 * Just enough S3 for a head walk: one ListObjectsV2 page of `count` keys and
 * HEADs, answered in order; after every `closeEvery` answers on a connection
 * it says `Connection: close` and closes, dropping what was pipelined behind.
 */
async function closingServer(count: number, closeEvery: number): Promise<{ server: Server; url: string; dropped: () => number; connections: () => number }> {
  let dropped = 0;
  let connections = 0;
  const keys = Array.from({ length: count }, (_, i) => `k/${String(i).padStart(4, '0')}`);
  const server = createServer((socket) => {
    connections++;
    let received = '';
    let answered = 0;
    let closed = false;
    socket.on('error', () => undefined);
    socket.on('data', (chunk) => {
      received += chunk.toString('latin1');
      for (let end = received.indexOf('\r\n\r\n'); end >= 0; end = received.indexOf('\r\n\r\n')) {
        const [method, target] = received.slice(0, received.indexOf('\r\n')).split(' ');
        received = received.slice(end + 4);
        if (closed) {
          dropped++;
          continue;
        }
        if (method === 'GET') {
          const contents = keys.map((key) => `<Contents><Key>${key}</Key><LastModified>2026-12-06T00:00:00.000Z</LastModified><ETag>&quot;e${key.slice(2)}&quot;</ETag><Size>3</Size></Contents>`).join('');
          const body = `<?xml version="1.0" encoding="UTF-8"?><ListBucketResult><Name>b</Name><Prefix>k/</Prefix><KeyCount>${count}</KeyCount><MaxKeys>1000</MaxKeys><IsTruncated>false</IsTruncated>${contents}</ListBucketResult>`;
          socket.write(`HTTP/1.1 200 OK\r\ncontent-type: application/xml\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
          continue;
        }
        const index = Number(target!.slice(target!.lastIndexOf('/') + 1));
        const closing = ++answered === closeEvery;
        // Odd but legal spacing, a repeated header, and UTF-8 bytes ('Zürich') as latin1 on the wire.
        socket.write(
          `HTTP/1.1 200 OK\r\nContent-Type:  text/plain \r\nX-Amz-Meta-Index:${index}\r\nx-amz-meta-place: ${Buffer.from('Zürich').toString('latin1')}\r\nx-amz-meta-twice: a\r\nx-amz-meta-twice: b\t\r\ncontent-length: 3\r\n${closing ? 'connection: close\r\n' : ''}\r\n`,
          'latin1',
        );
        if (closing) {
          closed = true;
          socket.end();
        }
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, url: `http://127.0.0.1:${(server.address() as { port: number }).port}`, dropped: () => dropped, connections: () => connections };
}

describe('the HEAD pool when the server closes connections', () => {
  test('every object once, in order, with its metadata', async () => {
    const count = 300;
    const fake = await closingServer(count, 5);
    try {
      const objects = await collect({ endpoint: fake.url, bucket: 'b', prefix: 'k/', credentials: CREDENTIALS, metadata: 'head', concurrency: 64, pipelining: 8 });
      assert.deepEqual(
        objects.map((object) => object.key),
        Array.from({ length: count }, (_, i) => `k/${String(i).padStart(4, '0')}`),
      );
      assert.deepEqual(objects[123], {
        key: 'k/0123',
        size: 3,
        etag: 'e0123',
        lastModified: '2026-12-06T00:00:00.000Z',
        contentType: 'text/plain ',
        userMetadata: { index: '123', place: 'Zürich', twice: 'a, b\t' },
        tags: {},
      });
      // Pipelined HEADs behind a closing answer were sent again on other connections.
      assert.ok(fake.dropped() > 0, 'no HEAD was pipelined behind a closing answer');
      assert.ok(fake.connections() >= count / 5, `${fake.connections()} connections`);
    } finally {
      await new Promise<void>((resolve) => fake.server.close(() => resolve()));
    }
  });
});

/**
 * A fake S3 for the HEAD pool's parser: one ListObjectsV2 page of `count`
 * keys, and HEADs answered with the bytes `answer` makes (latin1; undefined:
 * no answer), all the answers to one read of requests in one write, so that
 * pipelined answers arrive together. `host` '0.0.0.0' listens on every
 * interface.
 */
async function craftedServer(
  count: number,
  answer: (index: number, seen: number) => string | undefined,
  host = '127.0.0.1',
): Promise<{ server: Server; port: number; heads: () => number; requests: string[]; close: () => Promise<void> }> {
  let heads = 0;
  const requests: string[] = [];
  const seen = new Map<number, number>();
  const keys = Array.from({ length: count }, (_, i) => `k/${String(i).padStart(4, '0')}`);
  const sockets = new Set<import('node:net').Socket>();
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    let received = '';
    socket.on('error', () => undefined);
    socket.on('data', (chunk) => {
      received += chunk.toString('latin1');
      let out = '';
      for (let end = received.indexOf('\r\n\r\n'); end >= 0; end = received.indexOf('\r\n\r\n')) {
        const request = received.slice(0, end + 4);
        const [method, target] = request.slice(0, request.indexOf('\r\n')).split(' ');
        received = received.slice(end + 4);
        if (method === 'GET') {
          const contents = keys.map((key) => `<Contents><Key>${key}</Key><LastModified>2026-12-06T00:00:00.000Z</LastModified><ETag>&quot;e${key.slice(2)}&quot;</ETag><Size>3</Size></Contents>`).join('');
          const body = `<?xml version="1.0" encoding="UTF-8"?><ListBucketResult><Name>b</Name><Prefix>k/</Prefix><KeyCount>${count}</KeyCount><MaxKeys>1000</MaxKeys><IsTruncated>false</IsTruncated>${contents}</ListBucketResult>`;
          out += `HTTP/1.1 200 OK\r\ncontent-type: application/xml\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;
          continue;
        }
        heads++;
        requests.push(request);
        const index = Number(target!.slice(target!.lastIndexOf('/') + 1));
        const times = (seen.get(index) ?? 0) + 1;
        seen.set(index, times);
        out += answer(index, times) ?? '';
      }
      if (out !== '') socket.write(out, 'latin1');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, host, resolve));
  const close = async (): Promise<void> => {
    for (const socket of sockets) socket.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  };
  return { server, port: (server.address() as { port: number }).port, heads: () => heads, requests, close };
}

/** An S3 HEAD answer for object `index`, lines ended with `eol`. */
function headAnswer(index: number, eol = '\r\n', extra = ''): string {
  return `HTTP/1.1 200 OK${eol}content-type: text/plain${eol}x-amz-meta-index: ${index}${eol}${extra}content-length: 3${eol}${eol}`;
}

describe('the HEAD pool reads answers as strictly as llhttp', () => {
  const count = 8;
  const walk = (port: number): Promise<ScannedObject[]> =>
    collect({ endpoint: `http://127.0.0.1:${port}`, bucket: 'b', prefix: 'k/', credentials: CREDENTIALS, metadata: 'head', concurrency: count, pipelining: count });

  test('an answer whose head ends in bare LFs is malformed, not read into the next one', async () => {
    // The first answer to k/0000 ends its lines with bare LFs: read as one answer with the next, k/0000 got
    // k/0001's metadata. Malformed, the connection goes and its HEADs are sent again (answered properly then).
    const fake = await craftedServer(count, (index, seen) => headAnswer(index, index === 0 && seen === 1 ? '\n' : '\r\n'));
    try {
      const objects = await walk(fake.port);
      assert.deepEqual(
        objects.map((object) => object.userMetadata?.index),
        Array.from({ length: count }, (_, i) => String(i)),
      );
    } finally {
      await fake.close();
    }
  });

  for (const [what, extra] of [
    ['a control byte in a value', 'x-amz-meta-a: v\x01w\r\n'],
    ['a space before the colon', 'x-amz-meta-a : v\r\n'],
    ['an obsolete folded line', 'x-amz-meta-a: v\r\n\tx-amz-meta-b: w\r\n'],
    ['a bare CR in a value', 'x-amz-meta-a: v\rw\r\n'],
  ] as const) {
    test(`${what} fails the walk, as undici failed it`, async () => {
      const fake = await craftedServer(count, (index) => headAnswer(index, '\r\n', index === 0 ? extra : ''));
      try {
        await assert.rejects(walk(fake.port), /malformed/);
      } finally {
        await fake.close();
      }
    });
  }

  test('a status of 600 or more fails the walk', async () => {
    const fake = await craftedServer(count, (index) => (index === 0 ? 'HTTP/1.1 600 Odd\r\ncontent-length: 0\r\n\r\n' : headAnswer(index)));
    try {
      await assert.rejects(walk(fake.port), /status/);
    } finally {
      await fake.close();
    }
  });

  test('empty lines between answers are tolerated, as llhttp tolerates them', async () => {
    const fake = await craftedServer(count, (index) => `\r\n${headAnswer(index)}`);
    try {
      const objects = await walk(fake.port);
      assert.equal(objects.length, count);
      assert.equal(fake.heads(), count, 'no HEAD was sent again');
    } finally {
      await fake.close();
    }
  });
});

/** A raw server for the HEAD pool alone: `onHead` gets each HEAD request (in order, per connection) and its socket. */
async function rawHeadServer(onHead: (socket: import('node:net').Socket, request: string) => void): Promise<{ endpoint: string; heads: () => number; close: () => Promise<void> }> {
  let heads = 0;
  const sockets = new Set<import('node:net').Socket>();
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    let received = '';
    socket.on('data', (chunk) => {
      received += chunk.toString('latin1');
      for (let end = received.indexOf('\r\n\r\n'); end >= 0; end = received.indexOf('\r\n\r\n')) {
        heads++;
        onHead(socket, received.slice(0, end + 4));
        received = received.slice(end + 4);
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const endpoint = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  const close = async (): Promise<void> => {
    for (const socket of sockets) socket.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  };
  return { endpoint, heads: () => heads, close };
}

/** Settles as `promise` does, or rejects after `ms` (a test that would otherwise hang for the pool's 30 s). */
function within<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`still pending after ${ms} ms`)), ms)));
  return Promise.race([promise, late]).finally(() => clearTimeout(timer));
}

describe('the HEAD pool: deadlines and keys', () => {
  const poolFor = (endpoint: string, options: Partial<ConstructorParameters<typeof HeadPool>[0]> & { credentials?: ConstructorParameters<typeof ScanRequestSigner>[2] } = {}): HeadPool => {
    const signer = new ScanRequestSigner(new URL(endpoint).host, 'us-east-1', options.credentials ?? (async () => CREDENTIALS));
    return new HeadPool({ endpoint, signer, connections: 1, pipelining: 1, timeoutMs: 20_000, ...options });
  };

  test('a server trickling the head of an answer is given up after the answer deadline', async () => {
    const timers: NodeJS.Timeout[] = [];
    const fake = await rawHeadServer((socket) => {
      socket.write('HTTP/1.1 200 OK\r\n');
      timers.push(setInterval(() => socket.write('x-amz-meta-drip: 1\r\n'), 50));
    });
    const pool = poolFor(fake.endpoint, { answerDeadlineMs: 500 });
    try {
      await assert.rejects(within(pool.headObject('b', 'k'), 10_000), /no whole answer within 500 ms/);
    } finally {
      for (const timer of timers) clearInterval(timer);
      await pool.close();
      await fake.close();
    }
  });

  test('1xx answers without end fail the HEAD', async () => {
    const fake = await rawHeadServer((socket) => socket.write('HTTP/1.1 100 Continue\r\n\r\n'.repeat(1000)));
    const pool = poolFor(fake.endpoint);
    try {
      await assert.rejects(within(pool.headObject('b', 'k'), 10_000), /1xx/);
    } finally {
      await pool.close();
      await fake.close();
    }
  });

  test('a HEAD aborted while the keys are fetched is never sent', async () => {
    const fake = await rawHeadServer((socket) => socket.write('HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n'));
    const controller = new AbortController();
    const pool = poolFor(fake.endpoint, { signal: controller.signal, credentials: () => new Promise((resolve) => setTimeout(() => resolve(CREDENTIALS), 200)) });
    try {
      const head = pool.headObject('b', 'k');
      controller.abort(new Error('stop'));
      await assert.rejects(within(head, 10_000), /stop/);
      await new Promise((resolve) => setTimeout(resolve, 400));
      assert.equal(fake.heads(), 0);
    } finally {
      await pool.close();
      await fake.close();
    }
  });

  test('a queued HEAD is not signed with expired keys: the failed refresh fails it', async () => {
    // Keys usable for 400 ms, then every refresh fails. The first HEAD is answered after 800 ms; the second waits
    // behind it (one connection, no pipelining) and would have gone out signed with the expired keys.
    let calls = 0;
    const credentials = async (): Promise<typeof CREDENTIALS & { expiration: Date }> => {
      if (++calls > 1) throw new Error('refresh refused');
      return { ...CREDENTIALS, expiration: new Date(Date.now() + EXPIRY_MARGIN_MS + 400) };
    };
    let answered = 0;
    const fake = await rawHeadServer((socket) => {
      const answer = 'HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n';
      if (answered++ === 0) setTimeout(() => socket.write(answer), 800);
      else socket.write(answer);
    });
    const pool = poolFor(fake.endpoint, { credentials });
    try {
      const first = pool.headObject('b', 'k/0');
      await new Promise((resolve) => setImmediate(resolve)); // the first fetch of keys
      const second = pool.headObject('b', 'k/1');
      assert.equal((await within(first, 10_000)).status, 200);
      await assert.rejects(within(second, 10_000), /refresh refused/);
      assert.equal(fake.heads(), 1);
    } finally {
      await pool.close();
      await fake.close();
    }
  });
});

describe('HEADs to an endpoint not on this host', () => {
  const address = Object.values(networkInterfaces())
    .flat()
    .find((entry) => entry !== undefined && entry.family === 'IPv4' && !entry.internal)?.address;

  test('go through the S3Client (undici), not the hand-written HEAD pool', { skip: address === undefined ? 'no non-loopback IPv4 address' : false }, async () => {
    // Pipelined 8 deep, the HEAD pool writes a connection's 8 HEADs of one turn in one write; undici writes each.
    const count = 8;
    const fake = await craftedServer(count, (index) => headAnswer(index), '0.0.0.0');
    let headWrites = 0;
    const write = Socket.prototype.write;
    Socket.prototype.write = function (this: Socket, chunk: unknown, ...rest: unknown[]) {
      const text = typeof chunk === 'string' ? chunk : Buffer.isBuffer(chunk) ? chunk.toString('latin1') : '';
      if (text.startsWith('HEAD ')) headWrites++;
      return (write as (...args: unknown[]) => boolean).call(this, chunk, ...rest);
    } as typeof Socket.prototype.write;
    try {
      const objects = await collect({ endpoint: `http://${address}:${fake.port}`, bucket: 'b', prefix: 'k/', credentials: CREDENTIALS, metadata: 'head', concurrency: count, pipelining: count });
      assert.deepEqual(
        objects.map((object) => object.userMetadata?.index),
        Array.from({ length: count }, (_, i) => String(i)),
      );
      assert.equal(fake.heads(), count);
      assert.equal(headWrites, count, `${count} HEADs in ${headWrites} writes`);
    } finally {
      Socket.prototype.write = write;
      await fake.close();
    }
  });
});
