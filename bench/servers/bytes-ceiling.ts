/**
 * The ceiling for bytes: node:http that streams a PUT body into a new file
 * and fsyncs it before answering (the durability Talus promises, minus its
 * directory fsync and metadata commit), and streams one prepared file to the
 * socket for a GET, with Talus's read size. Headers are the ones Talus sent
 * for the same request. PUT files are kept, up to BYTES_CEILING_KEPT_BYTES_MAX
 * per process (common.ts says why), so runs of any length do not fill the
 * disk. Run by the suite:
 *   node --import tsx bench/servers/bytes-ceiling.ts CONFIG.json
 */
import { randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { open, unlink } from 'node:fs/promises';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { BYTES_CEILING_KEPT_BYTES_MAX as KEPT_BYTES_MAX, readConfig, serve, type BaselineConfig, type CapturedResponse } from './common.ts';

export interface BytesCeilingConfig extends BaselineConfig {
  /** Where PUT bodies and the GET file go. */
  directory: string;
  put: CapturedResponse;
  get: CapturedResponse;
  /** Size of the file every GET streams. */
  getFileBytes: number;
}

/** Talus reads blobs in 256 KiB chunks (src/blob/fs/fs-blob-store.ts): the same here. */
const READ_CHUNK_BYTES = 256 * 1024;
const WRITE_CHUNK_BYTES = 1024 * 1024;

const config = readConfig<BytesCeilingConfig>();
const getFile = join(config.directory, 'get-object');
let putCounter = 0;
const keptFiles: { path: string; bytes: number }[] = [];
let keptBytes = 0;

async function createGetFile(): Promise<void> {
  const chunk = randomBytes(WRITE_CHUNK_BYTES);
  const handle = await open(getFile, 'w');
  try {
    for (let written = 0; written < config.getFileBytes; written += chunk.length) {
      await handle.write(chunk, 0, Math.min(chunk.length, config.getFileBytes - written));
    }
    await handle.sync();
  } finally {
    await handle.close();
  }
}

async function put(request: IncomingMessage, response: ServerResponse): Promise<void> {
  const path = join(config.directory, `put-${process.pid}-${putCounter++}`);
  // flush: fsync before close (Node ≥ 20.10), so the answer comes after the bytes are durable.
  const file = createWriteStream(path, { flush: true, highWaterMark: WRITE_CHUNK_BYTES });
  try {
    await pipeline(request, file);
  } catch (error) {
    void unlink(path).catch(() => undefined);
    throw error;
  }
  response.writeHead(config.put.status, config.put.headers);
  response.end();
  keep(path, file.bytesWritten);
}

/** Keeps a written file, removing the oldest beyond KEPT_BYTES_MAX. */
function keep(path: string, bytes: number): void {
  keptFiles.push({ path, bytes });
  keptBytes += bytes;
  while (keptBytes > KEPT_BYTES_MAX && keptFiles.length > 1) {
    const oldest = keptFiles.shift()!;
    keptBytes -= oldest.bytes;
    void unlink(oldest.path).catch(() => undefined);
  }
}

async function get(response: ServerResponse): Promise<void> {
  response.writeHead(config.get.status, config.get.headers);
  await pipeline(createReadStream(getFile, { highWaterMark: READ_CHUNK_BYTES }), response);
}

function onRequest(request: IncomingMessage, response: ServerResponse): void {
  const done = request.method === 'PUT' ? put(request, response) : request.method === 'GET' ? get(response) : undefined;
  if (done === undefined) {
    response.writeHead(405, { 'content-length': '0' });
    response.end();
    return;
  }
  done.catch((error: unknown) => {
    process.stderr.write(`bytes-ceiling: ${request.method} failed: ${String(error)}\n`);
    response.destroy();
  });
}

serve(config, () => createServer({ keepAliveTimeout: 60_000 }, onRequest), createGetFile);
