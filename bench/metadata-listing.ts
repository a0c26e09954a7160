/**
 * What `metadata=true` costs a listing page: 1000 objects with a content
 * type and 3 user metadata entries in one bucket of a Talus server process
 * (bin/talus.js: dist/ when built, else the sources), then blocks of plain
 * and of metadata ListObjectsV2 pages of 1000 keys over the lean client
 * (keep-alive, one request at a time), alternating. Reports the median page
 * time (client's view, wall) and the server's CPU per page (from /proc: the
 * server's work alone, which a loaded machine disturbs less than wall time),
 * and their ratios (issue 14's target: at most 1.5x). With `user`, the
 * bucket belongs to a user (not root) who lists it: each entry's metadata is
 * then judged per object (s3:GetObject with the object's owner and ACL), as
 * for every caller but root.
 *
 *   node --import tsx bench/metadata-listing.ts [objects=1000] [pages=60] [root|user]
 */
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { S3Client } from '../src/client/s3-client.ts';
import { Principals } from '../src/principals/principals.ts';
import { ResourceWindow } from './suite/process-stats.ts';
import { startTalus } from './suite/servers.ts';

const objects = Number(process.argv[2] ?? 1000);
const pages = Number(process.argv[3] ?? 60);
const caller = process.argv[4] ?? 'root';
if (caller !== 'root' && caller !== 'user') throw new Error(`caller must be root or user, not ${caller}`);
const BLOCK_PAGES = 10;
const bucket = 'listing-cost';

const server = await startTalus(1);
/** A user of the server's data directory; the server takes new keys in within its 2 s reload. */
async function addUser(): Promise<{ accessKeyId: string; secretAccessKey: string }> {
  const credentials = await Principals.withDataDir(join(server.directory, 'data'), async (principals) => (await principals.addUser('lister')).credentials);
  const probe = new S3Client({ endpoint: server.endpoint, ...credentials });
  try {
    for (let tries = 0; ; tries++) {
      try {
        await probe.listObjectsV2Document('no-such-bucket-probe', { maxKeys: 1 });
      } catch (error) {
        if ((error as { code?: string }).code === 'NoSuchBucket') return credentials;
        if (tries > 100) throw error;
      }
      await sleep(200);
    }
  } finally {
    await probe.close();
  }
}

const client = new S3Client({ endpoint: server.endpoint, ...(caller === 'user' ? await addUser() : server.credentials), connections: 16 });
try {
  await client.createBucket(bucket);
  let next = 0;
  const body = Buffer.from('x'.repeat(100));
  await Promise.all(
    Array.from({ length: 16 }, async () => {
      for (let i = next++; i < objects; i = next++) {
        const key = `photos/2026/${String(i).padStart(7, '0')}.jpg`;
        await client.putObject(bucket, key, body, { contentType: 'image/jpeg', metadata: { camera: 'x100v', owner: `user-${i % 97}`, 'shot-at': '2026-12-06T07:00:00Z' } });
      }
    }),
  );
  const wall = { plain: [] as number[], metadata: [] as number[] };
  const cpuMicros = { plain: 0, metadata: 0 };
  const bytes = { plain: 0, metadata: 0 };
  const block = async (kind: 'plain' | 'metadata', measured: boolean): Promise<void> => {
    const window = ResourceWindow.begin(server.pid);
    for (let page = 0; page < BLOCK_PAGES; page++) {
      const started = performance.now();
      bytes[kind] = (await client.listObjectsV2Document(bucket, { maxKeys: 1000, metadata: kind === 'metadata' })).length;
      if (measured) wall[kind].push(performance.now() - started);
    }
    const usage = window.end();
    if (measured) cpuMicros[kind] += usage.cpuMicros;
  };
  await block('plain', false); // warm-up
  await block('metadata', false);
  for (let round = 0; round < pages / BLOCK_PAGES; round++) {
    await block('plain', true);
    await block('metadata', true);
  }
  const median = (values: number[]): number => [...values].sort((x, y) => x - y)[Math.floor(values.length / 2)]!;
  const p = median(wall.plain);
  const m = median(wall.metadata);
  const cpuPlain = cpuMicros.plain / 1000 / wall.plain.length;
  const cpuMetadata = cpuMicros.metadata / 1000 / wall.metadata.length;
  process.stdout.write(
    `${objects} keys, listed by ${caller}, ${wall.plain.length} pages each: plain ${p.toFixed(2)} ms (${(bytes.plain / 1024).toFixed(0)} KiB), ` +
      `metadata=true ${m.toFixed(2)} ms (${(bytes.metadata / 1024).toFixed(0)} KiB): ${(m / p).toFixed(2)}x wall; ` +
      `server CPU per page ${cpuPlain.toFixed(2)} vs ${cpuMetadata.toFixed(2)} ms: ${(cpuMetadata / cpuPlain).toFixed(2)}x\n`,
  );
} finally {
  await client.close();
  await server.stop();
}
