/**
 * A rendered page's buffer goes back to its listing thread for the next page
 * once the socket took its bytes (src/s3/list.ts's listingResponse, the
 * response's 'finish' in src/http/server.ts, issue 17 round 5b). Handed back
 * while a write of it were still queued, the thread would render another
 * page into memory node is still sending: a client would read another
 * page's bytes.
 *
 * So: pages of 0.2–0.7 MB (keys of ~900 bytes, 200–600 entries), 16 at a
 * time pipelined on one connection whose client does not read for 300 ms:
 * more than loopback's socket buffers take (~4 MiB), so the later pages'
 * writes stay queued while other clients' pages are rendered. Twelve such
 * clients at once, some reading slowly in small bites, some hanging up
 * mid-response or before it; every page read to its end must be byte for
 * byte the page read alone before, and buffers must have gone back to the
 * thread meanwhile (the pool is in use: on main, which has none, this
 * fails). Handing a buffer back as soon as the document is made instead of
 * on 'finish' fails it (checked: another page's bytes, or the connection
 * cut short).
 */
import { CreateBucketCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { after, before, test } from 'node:test';
import type { SqliteMetadataStore } from '../src/meta/sqlite/sqlite-metadata-store.ts';
import { queryString, signRequest } from './helpers/raw.ts';
import { startTestTalus, uniqueBucket, type TestTalus } from './helpers/talus.ts';

const KEYS_PER_GROUP = 300;
const GROUPS = ['a/', 'b/'];
const LONG = 'k'.repeat(880);

let talus: TestTalus;
let bucket: string;

before(async () => {
  talus = await startTestTalus();
  bucket = uniqueBucket('pool');
  await talus.client.send(new CreateBucketCommand({ Bucket: bucket }));
  const keys = GROUPS.flatMap((group) => Array.from({ length: KEYS_PER_GROUP }, (_, index) => `${group}${String(index).padStart(4, '0')}-${LONG}`));
  for (let start = 0; start < keys.length; start += 16) {
    await Promise.all(keys.slice(start, start + 16).map((key) => talus.client.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: 'x' }))));
  }
});

after(async () => {
  await talus.stop();
});

/** Pages of 200 entries or more: past the event loop's 128 steps, so rendered on the listing thread. */
function pageQueries(): Record<string, string>[] {
  const queries: Record<string, string>[] = [];
  for (const prefix of ['', 'a/', 'b/']) {
    for (const startAfter of ['', `${prefix === '' ? 'a/' : prefix}0050`]) {
      for (const maxKeys of ['1000', '200']) {
        for (const encodingType of ['', 'url']) {
          queries.push({ 'list-type': '2', prefix, 'max-keys': maxKeys, ...(startAfter === '' ? {} : { 'start-after': startAfter }), ...(encodingType === '' ? {} : { 'encoding-type': encodingType }) });
        }
      }
    }
  }
  return queries;
}

type Behaviour = 'whole' | 'slow' | 'abort-mid' | 'abort-before';

/**
 * Listings sent at once over one connection (HTTP pipelining: node answers
 * them in order, queueing the later ones behind the first): 'slow' pauses
 * before reading, long enough for the server's writes to fill the socket
 * buffers (~4 MiB on loopback) and queue the rest, then reads a bite at a
 * time; 'abort-mid' hangs up after the first bytes of a body, 'abort-before'
 * right after sending the requests. The bodies, for those read to the end.
 */
async function list(queries: Record<string, string>[], behaviour: Behaviour): Promise<Buffer[]> {
  const url = new URL(talus.url);
  const path = `/${bucket}`;
  let requests = '';
  for (const query of queries) {
    const headers = await signRequest(talus.url, { method: 'GET', path, query });
    requests += [`GET ${path}${queryString(query)} HTTP/1.1`, ...Object.entries(headers).map(([name, value]) => `${name}: ${value}`), '', ''].join('\r\n');
  }
  return new Promise((resolve, reject) => {
    const socket = connect(Number(url.port), url.hostname);
    const bodies: Buffer[] = [];
    let pending = Buffer.alloc(0);
    const finish = (): void => {
      socket.destroy();
      resolve(bodies);
    };
    socket.on('error', (error) => (behaviour.startsWith('abort') ? finish() : reject(error)));
    socket.on('connect', () => {
      socket.write(requests);
      if (behaviour === 'abort-before') setTimeout(finish, Math.random() * 5);
      if (behaviour === 'slow') {
        socket.pause();
        setTimeout(() => socket.resume(), 300 + Math.random() * 100);
      }
    });
    socket.on('data', (chunk: Buffer) => {
      if (behaviour === 'abort-before') return;
      pending = Buffer.concat([pending, chunk]);
      for (;;) {
        const end = pending.indexOf('\r\n\r\n');
        if (end === -1) break;
        const head = pending.subarray(0, end).toString('latin1');
        assert.match(head, /^HTTP\/1\.1 200 /, `the listing answered ${head.slice(0, 40)}`);
        const length = /\r\ncontent-length: (\d+)/i.exec(head);
        assert.ok(length !== null, 'a listing has a Content-Length');
        if (behaviour === 'abort-mid') return finish();
        const bodyEnd = end + 4 + Number(length[1]);
        if (pending.length < bodyEnd) break;
        bodies.push(Buffer.from(pending.subarray(end + 4, bodyEnd)));
        pending = pending.subarray(bodyEnd);
        if (bodies.length === queries.length) return finish();
      }
      if (behaviour === 'slow') {
        socket.pause();
        setTimeout(() => socket.resume(), Math.random() * 3);
      }
    });
    socket.on('end', () => reject(new Error(`the server closed the connection after ${bodies.length} of ${queries.length} pages`)));
  });
}

test('pages stay byte-identical while their buffers go back to the listing thread', { timeout: 180_000 }, async () => {
  const queries = pageQueries();
  const expected: Buffer[] = [];
  for (const query of queries) {
    const [page] = await list([query], 'whole');
    assert.ok(page !== undefined);
    const keyCount = Number(/<KeyCount>(\d+)<\/KeyCount>/.exec(page.toString('utf8'))?.[1]);
    assert.ok(keyCount >= 200, `${JSON.stringify(query)}: ${keyCount} keys, a page the thread renders`);
    assert.ok(page.toString('utf8').endsWith('</ListBucketResult>'), 'a whole document');
    expected.push(page);
  }
  const threads = (talus.engine.meta as SqliteMetadataStore).listingThreads!;
  const returnedBefore = threads.pageBuffersReturned;

  const CLIENTS = 12;
  const PIPELINED = 16;
  const ROUNDS = 3;
  const behaviours: Behaviour[] = ['slow', 'slow', 'whole', 'abort-mid', 'slow', 'abort-before'];
  let compared = 0;
  await Promise.all(
    Array.from({ length: CLIENTS }, async (_, client) => {
      for (let round = 0; round < ROUNDS; round++) {
        const indexes = Array.from({ length: PIPELINED }, (_, each) => (client * 7 + round * 5 + each * 3) % queries.length);
        const behaviour = behaviours[(client + round) % behaviours.length]!;
        const pages = await list(indexes.map((index) => queries[index]!), behaviour);
        for (const [at, page] of pages.entries()) {
          assert.ok(page.equals(expected[indexes[at]!]!), `${behaviour} client ${client}, round ${round}, page ${at}: ${JSON.stringify(queries[indexes[at]!])} read other bytes than the page alone`);
          compared++;
        }
      }
    }),
  );
  assert.ok(compared >= CLIENTS * ROUNDS * PIPELINED * 0.5, `${compared} pages compared`);
  assert.ok(threads.pageBuffersReturned > returnedBefore, 'written pages handed their buffers back to the thread');

  // After the hang-ups, every page once more, alone: the pool gives the same bytes.
  for (const [index, query] of queries.entries()) assert.ok((await list([query], 'whole'))[0]!.equals(expected[index]!), `${JSON.stringify(query)} after the concurrent round`);
});
