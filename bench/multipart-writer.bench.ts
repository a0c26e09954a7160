/**
 * BufferedMultipartWriter against @aws-sdk/lib-storage's Upload: one stream
 * of --size bytes (default 1 GiB) in 64 KiB appends, uploaded to the same
 * Talus server (a child process) with the same part size (8 MiB) and
 * concurrency (4), alternating runs:
 *
 *   npm run build && node --import tsx bench/multipart-writer.bench.ts [--size 1GiB] [--rounds 2]
 *
 * Prints MiB/s, the client's CPU seconds and its peak RSS growth per run,
 * and the writer's median throughput as a ratio to Upload's.
 */
import { S3Client as AwsS3Client } from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { parseArgs } from 'node:util';
import { S3Client } from '../src/client/s3-client.ts';
import { BufferedMultipartWriter } from '../src/storage/multipart-writer.ts';
import { S3Storage } from '../src/storage/s3-storage.ts';
import { startTalus } from './suite/servers.ts';

const PART_BYTES = 8 * 1024 * 1024;
const CONCURRENCY = 4;
const APPEND_BYTES = 64 * 1024;

const { values } = parseArgs({ options: { size: { type: 'string', default: '1GiB' }, rounds: { type: 'string', default: '2' } } });
const totalBytes = parseSize(values.size);
const rounds = Number(values.rounds);

function parseSize(text: string): number {
  const match = /^(\d+)(KiB|MiB|GiB)?$/.exec(text);
  if (match === null) throw new Error(`--size: ${text}`);
  return Number(match[1]) * ({ KiB: 1024, MiB: 1024 ** 2, GiB: 1024 ** 3 }[match[2] ?? ''] ?? 1);
}

/** The stream: 64 KiB views of one random MiB, so producing it costs nothing measurable. */
const pattern = randomBytes(1024 * 1024);
function source(): Readable {
  return Readable.from(
    (function* chunks() {
      for (let at = 0; at < totalBytes; at += APPEND_BYTES) {
        const offset = at % pattern.length;
        yield pattern.subarray(offset, offset + Math.min(APPEND_BYTES, totalBytes - at));
      }
    })(),
  );
}

interface Run {
  name: string;
  seconds: number;
  cpuSeconds: number;
  rssGrowthMiB: number;
}

async function measure(name: string, upload: () => Promise<void>): Promise<Run> {
  globalThis.gc?.();
  const rssBefore = process.memoryUsage().rss;
  let rssPeak = rssBefore;
  const sampler = setInterval(() => (rssPeak = Math.max(rssPeak, process.memoryUsage().rss)), 20);
  const cpu = process.cpuUsage();
  const start = performance.now();
  await upload();
  const seconds = (performance.now() - start) / 1000;
  const used = process.cpuUsage(cpu);
  clearInterval(sampler);
  return { name, seconds, cpuSeconds: (used.user + used.system) / 1e6, rssGrowthMiB: (rssPeak - rssBefore) / 1024 / 1024 };
}

const server = await startTalus(1);
try {
  const admin = new S3Client({ endpoint: server.endpoint, ...server.credentials });
  await admin.createBucket('bench');
  await admin.close();
  const storage = new S3Storage({ endpoint: server.endpoint, bucket: 'bench', ...server.credentials });
  const aws = new AwsS3Client({ endpoint: server.endpoint, region: 'us-east-1', forcePathStyle: true, credentials: server.credentials });
  const runs: Run[] = [];
  for (let round = 0; round < rounds; round++) {
    const order = round % 2 === 0 ? ['writer', 'lib-storage'] : ['lib-storage', 'writer'];
    for (const name of order) {
      const run =
        name === 'writer'
          ? await measure('BufferedMultipartWriter', async () => {
              const writer = new BufferedMultipartWriter(storage, 'writer', { partSize: PART_BYTES, concurrency: CONCURRENCY });
              await pipeline(source(), writer);
            })
          : await measure('@aws-sdk/lib-storage Upload', async () => {
              await new Upload({ client: aws, params: { Bucket: 'bench', Key: 'lib-storage', Body: source() }, partSize: PART_BYTES, queueSize: CONCURRENCY }).done();
            });
      runs.push(run);
      process.stdout.write(`${run.name.padEnd(28)} ${(totalBytes / 1024 / 1024 / run.seconds).toFixed(0).padStart(6)} MiB/s  ${run.seconds.toFixed(2)} s  client CPU ${run.cpuSeconds.toFixed(2)} s  client RSS +${run.rssGrowthMiB.toFixed(0)} MiB\n`);
    }
  }
  const median = (name: string): number => {
    const speeds = runs.filter((run) => run.name === name).map((run) => totalBytes / run.seconds).sort((a, b) => a - b);
    return speeds[Math.floor(speeds.length / 2)]!;
  };
  const cpu = (name: string): number => runs.filter((run) => run.name === name).reduce((sum, run) => sum + run.cpuSeconds, 0);
  process.stdout.write(
    `\n${(totalBytes / 1024 ** 3).toFixed(2)} GiB, parts of ${PART_BYTES / 1024 / 1024} MiB, concurrency ${CONCURRENCY}, ${rounds} rounds: ` +
      `writer/lib-storage throughput ${(median('BufferedMultipartWriter') / median('@aws-sdk/lib-storage Upload')).toFixed(2)}x, ` +
      `client CPU ${(cpu('BufferedMultipartWriter') / cpu('@aws-sdk/lib-storage Upload')).toFixed(2)}x\n`,
  );
  await storage.close();
  aws.destroy();
} finally {
  await server.stop();
}
