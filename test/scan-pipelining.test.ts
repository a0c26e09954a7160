/**
 * talus scan's HEADs are pipelined (HTTP/1.1) when the endpoint is on this
 * host: the same objects, in the same order, with the same metadata as
 * without pipelining and as list mode, over a handful of connections
 * instead of one per HEAD in flight. A TCP proxy in front of a real Talus
 * counts the connections. Denied objects under pipelining: scan-denied.test.ts
 * (its endpoint is loopback too).
 */
import assert from 'node:assert/strict';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { S3Client } from '../src/client/s3-client.ts';
import { scanObjects, type ScannedObject, type ScanOptions } from '../src/public/scan.ts';
import { ACCESS_KEY_ID, SECRET_ACCESS_KEY, startTestTalus, type TestTalus } from './helpers/talus.ts';

const CREDENTIALS = { accessKeyId: ACCESS_KEY_ID, secretAccessKey: SECRET_ACCESS_KEY };
const OBJECTS = 400;
const CONCURRENCY = 64;

interface CountingProxy {
  readonly port: number;
  /** Connections accepted since the last reset. */
  connections: number;
  close(): Promise<void>;
}

async function countingProxy(targetPort: number): Promise<CountingProxy> {
  const sockets = new Set<Socket>();
  const state = { connections: 0 };
  const server: Server = createServer((client) => {
    state.connections++;
    const upstream = connect(targetPort, '127.0.0.1');
    for (const socket of [client, upstream]) {
      sockets.add(socket);
      socket.on('close', () => sockets.delete(socket));
      socket.on('error', () => undefined);
    }
    client.pipe(upstream);
    upstream.pipe(client);
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as { port: number }).port,
    get connections() {
      return state.connections;
    },
    set connections(value: number) {
      state.connections = value;
    },
    async close() {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

async function collect(options: ScanOptions): Promise<ScannedObject[]> {
  const objects: ScannedObject[] = [];
  for await (const object of scanObjects(options)) objects.push(object);
  return objects;
}

describe('talus scan pipelines its HEADs on a loopback endpoint', () => {
  let talus: TestTalus;
  let proxy: CountingProxy;
  const bucket = 'scan-pipelining';

  before(async () => {
    talus = await startTestTalus();
    const client = new S3Client({ endpoint: talus.url, ...CREDENTIALS, connections: 16 });
    await client.createBucket(bucket);
    let next = 0;
    await Promise.all(
      Array.from({ length: 16 }, async () => {
        for (let i = next++; i < OBJECTS; i = next++) {
          await client.putObject(bucket, `k/${String(i).padStart(4, '0')}`, Buffer.from(`body ${i}`), { contentType: 'text/plain', metadata: { index: String(i), place: 'Zürich' } });
        }
      }),
    );
    await client.close();
    proxy = await countingProxy(Number(new URL(talus.url).port));
  });

  after(async () => {
    await proxy?.close();
    await talus?.close();
  });

  const scan = (options: Partial<ScanOptions>): Promise<ScannedObject[]> =>
    collect({ endpoint: `http://127.0.0.1:${proxy.port}`, bucket, prefix: 'k/', credentials: CREDENTIALS, concurrency: CONCURRENCY, ...options });

  test('head mode by default: every object, as list mode gives it, over a few connections', async () => {
    proxy.connections = 0;
    const headed = await scan({ metadata: 'head' });
    const pipelinedConnections = proxy.connections;
    const listed = await scan({ metadata: 'list' });
    assert.equal(headed.length, OBJECTS);
    assert.deepEqual(headed, listed);
    assert.deepEqual(headed[7]!.userMetadata, { index: '7', place: 'Zürich' });
    assert.equal(headed[7]!.contentType, 'text/plain');
    // 64 HEADs in flight, 8 to a connection, and the listing's: about 9, never one per HEAD.
    assert.ok(pipelinedConnections <= 16, `${pipelinedConnections} connections for ${CONCURRENCY} HEADs in flight`);
  });

  test('pipelining 1: one connection per HEAD in flight, the same objects', async () => {
    const pipelined = await scan({ metadata: 'head' });
    proxy.connections = 0;
    const unpipelined = await scan({ metadata: 'head', pipelining: 1 });
    assert.deepEqual(unpipelined, pipelined);
    assert.ok(proxy.connections > 16, `${proxy.connections} connections without pipelining`);
  });

  test('a pipelining depth out of range is refused before any request', async () => {
    proxy.connections = 0;
    await assert.rejects(scan({ metadata: 'head', pipelining: 0 }), /pipelining must be an integer/);
    await assert.rejects(scan({ metadata: 'head', pipelining: 1.5 }), /pipelining must be an integer/);
    assert.throws(() => new S3Client({ endpoint: talus.url, ...CREDENTIALS, pipelining: 65 }), /pipelining must be an integer from 1 to 64/);
    assert.equal(proxy.connections, 0);
  });
});
