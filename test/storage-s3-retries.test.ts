/**
 * S3Storage against a misbehaving endpoint (a local fake): requests that can
 * be repeated are retried on 503 with backoff; conditional writes are not
 * (a retry after a lost success would report the caller's own write as a
 * conflict); a server that stops answering is cut off by the timeout.
 */
import { strict as assert } from 'node:assert';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
import { readAll } from '../src/storage/conformance.ts';
import { openStorage } from '../src/storage/open-storage.ts';
import { StorageError } from '../src/storage/object-storage.ts';

const SLOW_DOWN = '<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>';

async function fake(handler: (request: IncomingMessage, response: ServerResponse, count: number) => void): Promise<{ url: string; requests: string[]; close(): void }> {
  const requests: string[] = [];
  const server = createServer((request, response) => {
    request.resume();
    request.on('end', () => {
      requests.push(`${request.method} ${request.url} ${request.headers['if-none-match'] ?? ''}`.trim());
      handler(request, response, requests.length);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, requests, close: () => {
      server.closeAllConnections();
      server.close();
    },
  };
}

const credentials = { accessKeyId: 'AKIAFAKE', secretAccessKey: 'fake-secret' };
const fastRetry = { attempts: 4, baseDelayMs: 5, maxDelayMs: 20 };

test('a GET answered 503 SlowDown twice is retried and succeeds', async () => {
  const server = await fake((_request, response, count) => {
    if (count <= 2) {
      response.statusCode = 503;
      response.end(SLOW_DOWN);
      return;
    }
    response.setHeader('etag', '"5d41402abc4b2a76b9719d911017c592"');
    response.setHeader('last-modified', new Date().toUTCString());
    response.end('hello');
  });
  try {
    const storage = openStorage('s3://bucket/', { endpoint: server.url, credentials, retry: fastRetry });
    const { body, info } = await storage.get('key');
    assert.equal((await readAll(body)).toString(), 'hello');
    assert.equal(info.size, 5);
    assert.equal(server.requests.length, 3);
    await storage.close();
  } finally {
    server.close();
  }
});

test('a conditional put answered 503 is not retried: the error reaches the caller after one request', async () => {
  const server = await fake((_request, response) => {
    response.statusCode = 503;
    response.end(SLOW_DOWN);
  });
  try {
    const storage = openStorage('s3://bucket/', { endpoint: server.url, credentials, retry: fastRetry });
    await assert.rejects(storage.putIfAbsent('key', 'body'), (error: unknown) => error instanceof StorageError && error.code === 'SlowDown');
    assert.deepEqual(server.requests, ['PUT /bucket/key *']);
    // The same put without a condition is retried.
    await assert.rejects(storage.put('key', 'body'));
    assert.equal(server.requests.length, 1 + fastRetry.attempts);
    await storage.close();
  } finally {
    server.close();
  }
});

test('a server that never answers is cut off by the headers timeout (and retried, then reported)', async () => {
  const server = await fake(() => undefined);
  try {
    const storage = openStorage('s3://bucket/', { endpoint: server.url, credentials, retry: { attempts: 2, baseDelayMs: 5, maxDelayMs: 5 }, headersTimeoutMs: 300 });
    const started = Date.now();
    await assert.rejects(storage.head('key'), (error: unknown) => (error as { code?: string }).code === 'UND_ERR_HEADERS_TIMEOUT');
    assert.equal(server.requests.length, 2);
    assert.ok(Date.now() - started < 20_000);
    await storage.close().catch(() => undefined);
  } finally {
    server.close();
  }
});
