/**
 * talus scan's HEADs to a loopback endpoint, round 6: `concurrency` HEADs in
 * flight at most, spread over enough connections that a multi-worker server
 * (one connection, one worker) gets work for each of its workers — at least
 * one per core of this host, at most one per HEAD in flight — rather than
 * ceil(concurrency ÷ pipelining) connections each filled to the pipelining
 * depth (64 at 16 deep: 4 connections, whatever the server's workers).
 * A TCP proxy in front of a real Talus counts the connections that carry
 * HEADs and the HEADs sent and not yet answered.
 */
import assert from 'node:assert/strict';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { availableParallelism } from 'node:os';
import { after, before, describe, test } from 'node:test';
import { S3Client } from '../src/client/s3-client.ts';
import { HeadPool } from '../src/scan/head-pool.ts';
import { ScanRequestSigner } from '../src/scan/request-signer.ts';
import { LOOPBACK_PIPELINING_DEFAULT, loopbackHeadConnections } from '../src/scan/scan.ts';
import { scanObjects, type ScannedObject, type ScanOptions } from '../src/public/scan.ts';
import { ACCESS_KEY_ID, SECRET_ACCESS_KEY, startTestTalus, type TestTalus } from './helpers/talus.ts';

const CREDENTIALS = { accessKeyId: ACCESS_KEY_ID, secretAccessKey: SECRET_ACCESS_KEY };
const OBJECTS = 256;
const END_OF_HEAD = '\r\n\r\n';

/** Counts the connections whose first request is a HEAD, and the HEADs outstanding over all of them (the most seen). */
interface HeadCountingProxy {
  readonly port: number;
  headConnections: number;
  heads: number;
  inFlightMax: number;
  reset(): void;
  close(): Promise<void>;
}

/** Occurrences of END_OF_HEAD in a stream read in chunks (a marker split over two chunks counted once). */
function headEnds(): (chunk: Buffer) => number {
  let tail = '';
  return (chunk) => {
    const text = tail + chunk.toString('latin1');
    let count = 0;
    for (let at = text.indexOf(END_OF_HEAD); at >= 0; at = text.indexOf(END_OF_HEAD, at + END_OF_HEAD.length)) count++;
    // Keep what could begin a marker (not a whole one: counted already).
    const last = text.lastIndexOf(END_OF_HEAD);
    tail = text.slice(Math.max(last + END_OF_HEAD.length, text.length - (END_OF_HEAD.length - 1)));
    return count;
  };
}

async function headCountingProxy(targetPort: number): Promise<HeadCountingProxy> {
  const sockets = new Set<Socket>();
  const state = { headConnections: 0, heads: 0, inFlight: 0, inFlightMax: 0 };
  const server: Server = createServer((client) => {
    const upstream = connect(targetPort, '127.0.0.1');
    for (const socket of [client, upstream]) {
      sockets.add(socket);
      socket.on('close', () => sockets.delete(socket));
      socket.on('error', () => undefined);
    }
    // HEAD requests and their answers have no body: each request and each answer ends with one empty line.
    let kind: 'unknown' | 'head' | 'other' = 'unknown';
    const requests = headEnds();
    const answers = headEnds();
    client.on('data', (chunk: Buffer) => {
      if (kind === 'unknown') {
        kind = chunk.toString('latin1', 0, 5) === 'HEAD ' ? 'head' : 'other';
        if (kind === 'head') state.headConnections++;
      }
      if (kind === 'head') {
        const sent = requests(chunk);
        state.heads += sent;
        state.inFlight += sent;
        state.inFlightMax = Math.max(state.inFlightMax, state.inFlight);
      }
      upstream.write(chunk);
    });
    upstream.on('data', (chunk: Buffer) => {
      if (kind === 'head') state.inFlight -= answers(chunk);
      client.write(chunk);
    });
    client.on('end', () => upstream.end());
    upstream.on('end', () => client.end());
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as { port: number }).port,
    get headConnections() {
      return state.headConnections;
    },
    get heads() {
      return state.heads;
    },
    get inFlightMax() {
      return state.inFlightMax;
    },
    reset() {
      Object.assign(state, { headConnections: 0, heads: 0, inFlight: 0, inFlightMax: 0 });
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

describe('talus scan: HEAD connections follow the concurrency', () => {
  let talus: TestTalus;
  let proxy: HeadCountingProxy;
  const bucket = 'scan-round6';

  before(async () => {
    talus = await startTestTalus();
    const client = new S3Client({ endpoint: talus.url, ...CREDENTIALS, connections: 16 });
    await client.createBucket(bucket);
    let next = 0;
    await Promise.all(
      Array.from({ length: 16 }, async () => {
        for (let i = next++; i < OBJECTS; i = next++) {
          await client.putObject(bucket, `k/${String(i).padStart(4, '0')}`, Buffer.from(`body ${i}`), { contentType: 'text/plain', metadata: { index: String(i) } });
        }
      }),
    );
    await client.close();
    proxy = await headCountingProxy(Number(new URL(talus.url).port));
  });

  after(async () => {
    await proxy?.close();
    await talus?.close();
  });

  test('the connection count: one per core at least, one per HEAD in flight at most, enough for the pipelining depth', () => {
    // 64 in flight, 16 deep: 4 connections were enough for the depth, but an 8-core host may run 8 workers.
    assert.equal(loopbackHeadConnections(64, 16, 8), 8);
    assert.equal(loopbackHeadConnections(64, 16, 2), 4);
    assert.equal(loopbackHeadConnections(8, 16, 8), 8);
    assert.equal(loopbackHeadConnections(8, 16, 16), 8);
    assert.equal(loopbackHeadConnections(1024, 16, 8), 64);
    assert.equal(loopbackHeadConnections(32, 1, 2), 32);
  });

  for (const concurrency of [8, 32]) {
    test(`--concurrency ${concurrency}: at most ${concurrency} HEADs in flight, over one connection per core or more`, async () => {
      proxy.reset();
      const objects = await collect({ endpoint: `http://127.0.0.1:${proxy.port}`, bucket, prefix: 'k/', credentials: CREDENTIALS, concurrency, metadata: 'head' });
      assert.equal(objects.length, OBJECTS);
      assert.deepEqual(objects[17]!.userMetadata, { index: '17' });
      assert.equal(proxy.heads, OBJECTS);
      assert.ok(proxy.inFlightMax <= concurrency, `${proxy.inFlightMax} HEADs in flight for --concurrency ${concurrency}`);
      // Every connection allowed is used: 256 HEADs keep them all busy.
      const expected = Math.min(concurrency, Math.max(Math.ceil(concurrency / LOOPBACK_PIPELINING_DEFAULT), availableParallelism()));
      assert.equal(proxy.headConnections, expected, `HEAD connections at --concurrency ${concurrency}`);
      // Before: ceil(concurrency ÷ 16), one connection for 8 in flight, whatever the cores.
      if (availableParallelism() > 1) assert.ok(proxy.headConnections > 1, `${proxy.headConnections} connection(s)`);
    });
  }

  test('the HEAD pool spreads HEADs dispatched together over every connection allowed before pipelining', async () => {
    const endpoint = `http://127.0.0.1:${proxy.port}`;
    const signer = new ScanRequestSigner(new URL(endpoint).host, 'us-east-1', async () => CREDENTIALS);
    await signer.keys();
    const pool = new HeadPool({ endpoint, signer, connections: 8, pipelining: 16 });
    proxy.reset();
    try {
      const answers = await Promise.all(Array.from({ length: 8 }, (_, i) => pool.headObject(bucket, `k/${String(i).padStart(4, '0')}`)));
      assert.deepEqual(
        answers.map((answer) => answer.headers['x-amz-meta-index']),
        Array.from({ length: 8 }, (_, i) => String(i)),
      );
    } finally {
      await pool.close();
    }
    // Before: all 8 pipelined on the first connection.
    assert.equal(proxy.headConnections, 8);
    assert.equal(proxy.heads, 8);
  });
});
