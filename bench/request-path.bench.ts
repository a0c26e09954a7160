/**
 * CPU per request of Talus's whole HTTP path, in process and without the
 * kernel: node:http's parsing, routing, SigV4, authorization, the engine's
 * lookup, the response headers and body. Requests are pushed into in-memory
 * duplex "sockets" handed to the real server (`server.emit('connection')`),
 * so no syscall, wake-up or scheduler enters the figure. On the shared
 * 2-core machine end-to-end CPU per request swings by ±20 % between bursts;
 * this measures what a change to Talus's own code does to the part that
 * code decides.
 *
 *   npm run build   # the servers run from dist/ (tsx's output of some constructs is slower)
 *   node --import tsx bench/request-path.bench.ts get|head|delete [--compare OTHER_CHECKOUT] [--bare] [--rounds N] [--requests N]
 *
 * get: presigned 4 KiB GETs (as wrk sends them in the suite); head:
 * header-signed HEADs; delete: header-signed DELETEs (as the load generator
 * sends them in the suite's delete-4k), each of a 4 KiB object that exists:
 * every round (and the warm-up) first PUTs its own keys, unmeasured, and
 * deletes each once. The CPU per DELETE includes the commit and its WAL
 * fdatasync (a syscall, the one the durability wait needs). --compare: a
 * second checkout (built) run in the same process, blocks alternated, paired
 * ratios printed. --bare: node:http
 * answering every request with the same headers and body, as the suite's
 * ceiling does. --profile PREFIX: a CPU profile of each measured block only
 * (not the warm-up, not a DELETE block's PUTs), sampled every 100 µs, written
 * to PREFIX-<subject>-<round>.cpuprofile.
 */
import { createServer, type Server } from 'node:http';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { Session } from 'node:inspector/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Duplex } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { GetObjectCommand, S3Client as SdkClient } from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import { S3Client } from '../src/client/s3-client.ts';
import { EMPTY_SHA256, SigV4Signer } from '../src/client/sigv4-signer.ts';
import { silentLogger } from '../src/util/logger.ts';

// The SDK only presigns here; its notice about future Node versions would only clutter the output.
process.env['AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED'] ??= 'true';

const KEYS = 256;
const OBJECT_BYTES = 4096;
/** Connections in flight at once: several requests per turn of the event loop, as under load. */
const CONNECTIONS = 16;
const WARM_UP_REQUESTS = 20_000;
const DELETE_WARM_UP_REQUESTS = 6_000;
const DELETE_PUT_CONNECTIONS = 32;
const CREDENTIALS = { accessKeyId: 'BENCHACCESSKEY', secretAccessKey: 'bench-secret-key-0123456789' };

const { positionals, values } = parseArgs({
  allowPositionals: true,
  options: { compare: { type: 'string' }, bare: { type: 'boolean' }, rounds: { type: 'string', default: '12' }, requests: { type: 'string', default: '5000' }, profile: { type: 'string' } },
});
const workload = positionals[0] === 'head' ? 'head' : positionals[0] === 'delete' ? 'delete' : 'get';
const rounds = Number(values.rounds);
const requestsPerRound = Number(values.requests);
/** DELETE consumes its keys: each block PUTs that many objects first, so the warm-up is smaller. */
const warmUpRequests = workload === 'delete' ? DELETE_WARM_UP_REQUESTS : WARM_UP_REQUESTS;
/** The status every answer must have. */
const expectedStatus = workload === 'delete' ? '204' : '200';

interface Subject {
  name: string;
  server: Server;
  requests: string[];
  /** delete: makes `count` objects to delete and returns the requests that delete them, each once (unmeasured). */
  prepareDeletes?(count: number): Promise<string[]>;
  close(): Promise<void>;
}

/** Talus from `checkout`'s dist/, with KEYS objects of OBJECT_BYTES, and the raw requests to send it. */
async function talusSubject(checkout: string): Promise<Subject> {
  const { startTalus } = (await import(join(checkout, 'dist', 'talus.js'))) as typeof import('../src/talus.ts');
  const dataDir = await mkdtemp(join(tmpdir(), 'talus-request-path-'));
  const talus = await startTalus({ dataDir, port: 0, address: '127.0.0.1', rootAccessKeyId: CREDENTIALS.accessKeyId, rootSecretAccessKey: CREDENTIALS.secretAccessKey, workers: 1, logger: silentLogger });
  const endpoint = new URL(talus.url);
  const client = new S3Client({ endpoint: talus.url, ...CREDENTIALS, connections: 16 });
  await client.createBucket('bench');
  const body = Buffer.alloc(OBJECT_BYTES, 120);
  for (let i = 0; i < KEYS; i++) await client.putObject('bench', keyOf(i), body);
  await client.close();
  const requests: string[] = [];
  let block = 0;
  const prepareDeletes = async (count: number): Promise<string[]> => {
    const prefix = `delete-${block++}/`;
    const writer = new S3Client({ endpoint: talus.url, ...CREDENTIALS, connections: DELETE_PUT_CONNECTIONS });
    let next = 0;
    const put = async (): Promise<void> => {
      while (next < count) await writer.putObject('bench', `${prefix}${String(next++).padStart(8, '0')}`, body);
    };
    await Promise.all(Array.from({ length: DELETE_PUT_CONNECTIONS }, put));
    await writer.close();
    const signer = new SigV4Signer({ ...CREDENTIALS, region: 'us-east-1' });
    const deletes: string[] = [];
    for (let i = 0; i < count; i++) {
      const path = `/bench/${prefix}${String(i).padStart(8, '0')}`;
      const { amzDate, authorization } = signer.sign({ method: 'DELETE', path, query: '', host: endpoint.host, payloadHash: EMPTY_SHA256 });
      deletes.push(`DELETE ${path} HTTP/1.1\r\nHost: ${endpoint.host}\r\nx-amz-content-sha256: ${EMPTY_SHA256}\r\nx-amz-date: ${amzDate}\r\nAuthorization: ${authorization}\r\n\r\n`);
    }
    return deletes;
  };
  if (workload === 'get') {
    const sdk = new SdkClient({ endpoint: talus.url, region: 'us-east-1', forcePathStyle: true, credentials: CREDENTIALS });
    for (let i = 0; i < KEYS; i++) {
      const url = new URL(await getSignedUrl(sdk, new GetObjectCommand({ Bucket: 'bench', Key: keyOf(i) }), { expiresIn: 3600 }));
      requests.push(`GET ${url.pathname}${url.search} HTTP/1.1\r\nHost: ${endpoint.host}\r\n\r\n`);
    }
    sdk.destroy();
  } else {
    // Signed now, sent for a minute at most: well within the allowed clock skew.
    // delete: what the bare server is sent (Talus's DELETEs come from prepareDeletes, one block at a time).
    const method = workload === 'delete' ? 'DELETE' : 'HEAD';
    const signer = new SigV4Signer({ ...CREDENTIALS, region: 'us-east-1' });
    for (let i = 0; i < KEYS; i++) {
      const path = `/bench/${keyOf(i)}`;
      const { amzDate, authorization } = signer.sign({ method, path, query: '', host: endpoint.host, payloadHash: EMPTY_SHA256 });
      requests.push(`${method} ${path} HTTP/1.1\r\nHost: ${endpoint.host}\r\nx-amz-content-sha256: ${EMPTY_SHA256}\r\nx-amz-date: ${amzDate}\r\nAuthorization: ${authorization}\r\n\r\n`);
    }
  }
  return {
    name: checkout,
    server: talus.server!,
    requests,
    prepareDeletes: workload === 'delete' ? prepareDeletes : undefined,
    close: async () => {
      await talus.close();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

/** node:http answering with the headers and body Talus gives a 4 KiB object, doing nothing else. */
function bareSubject(requests: string[]): Subject {
  const payload = Buffer.alloc(OBJECT_BYTES, 120);
  const headers = {
    'x-amz-request-id': '6A2C1F0000000001', 'x-amz-id-2': '6A2C1F0000000001', server: 'Talus', 'last-modified': 'Sun, 06 Dec 2026 16:00:04 GMT',
    etag: '"8b9f0ad0bbc93d3d8cc0c3a4d9fe4ec1"', 'accept-ranges': 'bytes', 'content-type': 'binary/octet-stream', 'content-length': String(OBJECT_BYTES),
  };
  // What Talus answers a DELETE: 204 and no body.
  const deleteHeaders = { 'x-amz-request-id': '6A2C1F0000000001', 'x-amz-id-2': '6A2C1F0000000001', server: 'Talus', 'content-length': '0' };
  const server = createServer({ keepAliveTimeout: 60_000 }, (request, response) => {
    if (request.method === 'DELETE') {
      response.writeHead(204, deleteHeaders);
      response.end();
      return;
    }
    response.writeHead(200, headers);
    response.end(request.method === 'HEAD' ? undefined : payload);
  });
  // It deletes nothing: the same requests serve every block.
  return { name: 'bare node:http', server, requests, close: async () => undefined };
}

function keyOf(i: number): string {
  return `small/${String(i).padStart(8, '0')}`;
}

/** The client end of one connection: reads a whole response (headers, then Content-Length bytes unless HEAD), then asks for the next. */
class MemorySocket extends Duplex {
  readonly remoteAddress = '127.0.0.1';
  readonly remotePort = 40_000;
  onResponse: () => void = () => undefined;
  #received = 0;
  #expected = -1;

  override _read(): void {}

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: () => void): void {
    this.#take(chunk);
    callback();
  }

  override _writev(chunks: { chunk: Buffer }[], callback: () => void): void {
    for (const { chunk } of chunks) this.#take(chunk);
    callback();
  }

  #take(chunk: Buffer): void {
    if (chunk.length === 0) return;
    if (this.#expected < 0) {
      const text = chunk.toString('latin1');
      if (text.slice(9, 12) !== expectedStatus) throw new Error(`unexpected response: ${text.slice(0, 400)}`);
      const length = /content-length: (\d+)/i.exec(text);
      const bodyBytes = workload === 'get' && length !== null ? Number(length[1]) : 0;
      this.#expected = text.indexOf('\r\n\r\n') + 4 + bodyBytes;
      this.#received = chunk.length;
    } else {
      this.#received += chunk.length;
    }
    if (this.#received < this.#expected) return;
    this.#expected = -1;
    this.onResponse();
  }

  setTimeout(): this {
    return this;
  }
  setNoDelay(): this {
    return this;
  }
  setKeepAlive(): this {
    return this;
  }
}

const profiler = values.profile === undefined ? undefined : new Session();
if (profiler !== undefined) {
  profiler.connect();
  await profiler.post('Profiler.enable');
  await profiler.post('Profiler.setSamplingInterval', { interval: 100 });
}

/** µs of this process's CPU per request over `count` requests on CONNECTIONS connections; `profileName`: profile this block. */
async function run(subject: Subject, count: number, profileName?: string): Promise<number> {
  // DELETE: this block's own keys, each deleted once, made before the CPU is counted.
  const requests = subject.prepareDeletes === undefined ? subject.requests : await subject.prepareDeletes(count);
  const pick = (i: number, c: number): string => (subject.prepareDeletes === undefined ? requests[(i * 7 + c) % KEYS]! : requests[i]!);
  let sent = 0;
  let answered = 0;
  if (profileName !== undefined) await profiler?.post('Profiler.start');
  const start = process.cpuUsage();
  const sockets: MemorySocket[] = [];
  await new Promise<void>((resolveRun) => {
    for (let c = 0; c < CONNECTIONS; c++) {
      const socket = new MemorySocket();
      sockets.push(socket);
      const next = (): void => {
        if (sent >= count) return;
        socket.push(pick(sent++, c));
      };
      socket.onResponse = () => {
        answered++;
        if (answered === count) resolveRun();
        else next();
      };
      subject.server.emit('connection', socket);
      next();
    }
  });
  const used = process.cpuUsage(start);
  if (profileName !== undefined && profiler !== undefined) {
    const { profile } = await profiler.post('Profiler.stop');
    await writeFile(`${values.profile}-${profileName}.cpuprofile`, JSON.stringify(profile));
  }
  for (const socket of sockets) socket.destroy();
  return (used.user + used.system) / count;
}

function summary(values: number[]): string {
  const sorted = [...values].sort((a, b) => a - b);
  return `min ${sorted[0]!.toFixed(2)}, median ${sorted[Math.floor(sorted.length / 2)]!.toFixed(2)} µs/request`;
}

const here = resolve(fileURLToPath(new URL('..', import.meta.url)));
const subjects = [await talusSubject(here)];
if (values.compare !== undefined) subjects.push(await talusSubject(resolve(values.compare)));
if (values.bare === true) subjects.push(bareSubject(subjects[0]!.requests));
for (const subject of subjects) await run(subject, warmUpRequests);
const measured = subjects.map((): number[] => []);
for (let round = 0; round < rounds; round++) {
  const order = subjects.map((_, i) => i);
  if (round % 2 === 1) order.reverse();
  for (const i of order) measured[i]!.push(await run(subjects[i]!, requestsPerRound, values.profile === undefined ? undefined : `${i}-${round}`));
}
const described = { get: 'presigned GET', head: 'header-signed HEAD', delete: 'header-signed DELETE' }[workload];
console.log(`${described} of 4 KiB objects, ${CONNECTIONS} in-memory connections, ${rounds} rounds of ${requestsPerRound}:`);
subjects.forEach((subject, i) => console.log(`  ${subject.name}: ${summary(measured[i]!)}`));
for (let i = 1; i < subjects.length; i++) {
  const ratios = measured[i]!.map((value, round) => value / measured[0]![round]!);
  console.log(`  ${subjects[i]!.name} ÷ ${subjects[0]!.name}, paired by round: median ${[...ratios].sort((a, b) => a - b)[Math.floor(ratios.length / 2)]!.toFixed(3)}`);
}
for (const subject of subjects) await subject.close();
