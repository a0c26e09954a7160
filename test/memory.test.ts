/**
 * Streaming end to end: a 2 GiB PUT and its GET must grow the server's
 * resident memory by a bounded amount, far below the object's size. The
 * server runs as its own process so its memory is its own; the body is
 * generated and hashed on the fly on the client side, so no side holds the
 * object. Peak RSS is the kernel's high-water mark (VmHWM), judged against
 * its value just before the transfer: the idle process (code, the
 * TypeScript loader the tests run it with, caches) grows with every feature
 * and says nothing about streaming — it was an absolute 200 MiB bound until
 * the idle server from the sources reached 144 MiB. The suite's peak-RSS
 * target (npm run bench) is where the absolute figure is judged.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { test } from 'node:test';
import { CreateBucketCommand } from '@aws-sdk/client-s3';
import { startServerProcess } from './helpers/process.ts';
import { signRequest } from './helpers/raw.ts';
import { makeClient } from './helpers/talus.ts';

const MiB = 1024 * 1024;
const OBJECT_BYTES = 2048 * MiB;
/**
 * What the transfer may add: the write budget (32 MiB of upload bytes), GET's
 * read buffers (8 MiB), the hash pipeline, socket buffers and garbage not yet
 * collected — measured ~55 MiB; buffering the object would be gigabytes.
 */
const RSS_GROWTH_BYTES_MAX = 96 * MiB;

async function rssBytes(pid: number, field: 'VmHWM' | 'VmRSS'): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const match = new RegExp(`${field}:\\s+(\\d+) kB`).exec(status);
  assert.ok(match, `${field} in /proc status`);
  return Number(match[1]) * 1024;
}

/** 2 GiB from one random MiB, each MiB stamped with its index so no two are equal. */
function* generatedBody(): Generator<Buffer> {
  const block = randomBytes(MiB);
  for (let index = 0; index < OBJECT_BYTES / MiB; index++) {
    const chunk = Buffer.from(block);
    chunk.writeUInt32BE(index, 0);
    yield chunk;
  }
}

test('a 2 GiB PUT and GET stream through the server in bounded memory', { timeout: 300_000 }, async (t) => {
  const dataDir = await mkdtemp(join(tmpdir(), 'talus-memory-'));
  const server = await startServerProcess(dataDir);
  try {
    const client = makeClient(server.url);
    await client.send(new CreateBucketCommand({ Bucket: 'big' }));
    client.destroy();
    const before = await rssBytes(server.child.pid!, 'VmHWM');
    const url = new URL(server.url);
    const sent = createHash('sha256');
    const putHeaders = await signRequest(server.url, {
      method: 'PUT', path: '/big/two-gib', unsignedPayload: true, headers: { 'content-length': String(OBJECT_BYTES) },
    });
    const putStatus = await new Promise<number>((resolve, reject) => {
      const outgoing = request({ host: url.hostname, port: url.port, method: 'PUT', path: '/big/two-gib', headers: putHeaders }, (response) => {
        response.resume();
        response.on('end', () => resolve(response.statusCode ?? 0));
      });
      outgoing.on('error', reject);
      const body = Readable.from(generatedBody());
      body.on('data', (chunk: Buffer) => sent.update(chunk));
      body.pipe(outgoing);
    });
    assert.equal(putStatus, 200);
    const getHeaders = await signRequest(server.url, { method: 'GET', path: '/big/two-gib' });
    const received = createHash('sha256');
    let receivedBytes = 0;
    const getStatus = await new Promise<number>((resolve, reject) => {
      const outgoing = request({ host: url.hostname, port: url.port, method: 'GET', path: '/big/two-gib', headers: getHeaders }, (response) => {
        response.on('data', (chunk: Buffer) => {
          received.update(chunk);
          receivedBytes += chunk.length;
        });
        response.on('end', () => resolve(response.statusCode ?? 0));
        response.on('error', reject);
      });
      outgoing.on('error', reject);
      outgoing.end();
    });
    assert.equal(getStatus, 200);
    assert.equal(receivedBytes, OBJECT_BYTES);
    assert.equal(received.digest('hex'), sent.digest('hex'));
    const peak = await rssBytes(server.child.pid!, 'VmHWM');
    t.diagnostic(`server peak RSS ${(peak / MiB).toFixed(1)} MiB for a 2 GiB PUT and GET, ${(before / MiB).toFixed(1)} MiB before it`);
    assert.ok(peak - before < RSS_GROWTH_BYTES_MAX, `server peak RSS grew by ${((peak - before) / MiB).toFixed(1)} MiB (${(before / MiB).toFixed(1)} → ${(peak / MiB).toFixed(1)})`);
  } finally {
    await server.stop();
    await rm(dataDir, { recursive: true, force: true });
  }
});
