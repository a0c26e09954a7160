/**
 * Connections cannot be hoarded without credentials (src/http/connection-guard.ts):
 * - a flood of more idle and slow-header sockets than CONNECTIONS_MAX (the
 *   real cap) while a probe client's signed requests are still answered;
 * - a connection that sends nothing is closed after FIRST_BYTE_TIMEOUT_MS, and
 *   one that dribbles its headers after HEADERS_TIMEOUT_MS.
 */
import { CreateBucketCommand, GetObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import assert from 'node:assert/strict';
import { execSync } from 'node:child_process';
import { connect, type Socket } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { CONNECTIONS_MAX, FIRST_BYTE_TIMEOUT_MS, HEADERS_TIMEOUT_MS } from '../src/util/limits.ts';
import { withTimeout } from './helpers/process.ts';
import { makeClient, startTestTalus, type TestTalus } from './helpers/talus.ts';

const FLOOD = CONNECTIONS_MAX + 256;
const OPEN_BATCH = 256;
/** Both ends of every flood socket live in this process. */
const DESCRIPTORS_NEEDED = 2 * FLOOD + 512;

function descriptorLimit(): number {
  try {
    const limit = execSync('ulimit -n', { shell: '/bin/sh', encoding: 'utf8' }).trim();
    return limit === 'unlimited' ? Infinity : Number(limit);
  } catch {
    return 0;
  }
}

const limit = descriptorLimit();
const floodSkip = limit >= DESCRIPTORS_NEEDED ? false : `the flood needs ${DESCRIPTORS_NEEDED} descriptors; ulimit -n is ${limit}`;

function open(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1', () => resolve(socket));
    socket.once('error', reject);
  });
}

function closed(socket: Socket): Promise<void> {
  return new Promise((resolve) => {
    if (socket.destroyed) return resolve();
    socket.once('close', () => resolve());
  });
}

describe('connection limits', () => {
  let talus: TestTalus;
  before(async () => {
    talus = await startTestTalus();
  });
  after(async () => {
    await talus.stop();
  });

  test(`a flood of ${FLOOD} idle and slow-header sockets does not lock a client out`, { timeout: 120_000, skip: floodSkip }, async () => {
    const flood: Socket[] = [];
    const dribblers: Socket[] = [];
    let shed = 0;
    const dribble = setInterval(() => {
      for (const socket of dribblers) if (!socket.destroyed) socket.write('a');
    }, 500);
    try {
      for (let opened = 0; opened < FLOOD; opened += OPEN_BATCH) {
        const batch = await Promise.all(Array.from({ length: Math.min(OPEN_BATCH, FLOOD - opened) }, () => open(talus.port)));
        for (const [index, socket] of batch.entries()) {
          socket.on('error', () => undefined);
          socket.once('close', () => shed++);
          flood.push(socket);
          // Half send nothing; half start a request and never finish its headers.
          if (index % 2 === 1) {
            socket.write(`GET / HTTP/1.1\r\nHost: 127.0.0.1:${talus.port}\r\nX-Slow: `);
            dribblers.push(socket);
          }
        }
      }
      const probe = makeClient(talus.url);
      try {
        await withTimeout(
          (async () => {
            await probe.send(new CreateBucketCommand({ Bucket: 'probe' }));
            await probe.send(new PutObjectCommand({ Bucket: 'probe', Key: 'k', Body: 'served during a flood' }));
            const got = await probe.send(new GetObjectCommand({ Bucket: 'probe', Key: 'k' }));
            assert.equal(await got.Body!.transformToString(), 'served during a flood');
          })(),
          60_000,
          'the probe client was answered',
        );
      } finally {
        probe.destroy();
      }
      const openCount = await new Promise<number>((resolve, reject) => talus.server.getConnections((error, count) => (error ? reject(error) : resolve(count))));
      assert.ok(openCount <= CONNECTIONS_MAX, `${openCount} connections open, cap ${CONNECTIONS_MAX}`);
      assert.ok(shed >= FLOOD - CONNECTIONS_MAX, `${shed} flood sockets were shed to stay under the cap`);
    } finally {
      clearInterval(dribble);
      for (const socket of flood) socket.destroy();
    }
  });

  test('a connection that sends nothing is closed after the first-byte timeout, a dribbled header after the headers timeout', { timeout: 120_000 }, async () => {
    const silent = await open(talus.port);
    const slow = await open(talus.port);
    silent.on('error', () => undefined);
    slow.on('error', () => undefined);
    let answer = '';
    slow.setEncoding('utf8').on('data', (chunk: string) => (answer += chunk));
    slow.write(`GET / HTTP/1.1\r\nHost: 127.0.0.1:${talus.port}\r\nX-Slow: `);
    const dribble = setInterval(() => slow.write('a'), 500);
    try {
      await withTimeout(closed(silent), FIRST_BYTE_TIMEOUT_MS + 20_000, 'the silent connection was closed');
      assert.ok(!slow.destroyed, 'a connection that is sending its headers is not closed for silence');
      await withTimeout(closed(slow), HEADERS_TIMEOUT_MS + 20_000, 'the slow-header connection was closed');
      assert.match(answer, /^HTTP\/1\.1 400 [^]*<Code>RequestTimeout<\/Code>/, `S3's RequestTimeout; got ${answer}`);
    } finally {
      clearInterval(dribble);
      silent.destroy();
      slow.destroy();
    }
  });
});
