/**
 * What `metadata=true` costs a listing page: 1000 objects with user metadata
 * in one bucket of an in-process Talus, then alternating plain and metadata
 * ListObjectsV2 pages of 1000 keys over the lean client (keep-alive, one
 * request at a time). Reports the median page time of each and their ratio
 * (issue 14's target: at most 1.5x), in wall time and in CPU time of this
 * process (server and client both run here); on a loaded machine the CPU
 * ratio is the steadier one.
 *
 *   node --import tsx bench/metadata-listing.ts [objects=1000] [rounds=40]
 */
import { performance } from 'node:perf_hooks';
import { S3Client } from '../src/client/s3-client.ts';
import { startServer } from '../src/public/server.ts';

const objects = Number(process.argv[2] ?? 1000);
const rounds = Number(process.argv[3] ?? 40);
const bucket = 'listing-cost';

const server = await startServer({ memory: true });
const client = new S3Client({ endpoint: server.endpoint, accessKeyId: server.accessKeyId, secretAccessKey: server.secretAccessKey, connections: 16 });
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
  const plain: number[] = [];
  const withMetadata: number[] = [];
  const plainCpu: number[] = [];
  const withMetadataCpu: number[] = [];
  const cpuMs = (): number => {
    const usage = process.cpuUsage();
    return (usage.user + usage.system) / 1000;
  };
  let plainBytes = 0;
  let metadataBytes = 0;
  for (let round = 0; round < rounds + 3; round++) {
    const [a, aCpu] = [performance.now(), cpuMs()];
    plainBytes = (await client.listObjectsV2Document(bucket, { maxKeys: 1000 })).length;
    const [b, bCpu] = [performance.now(), cpuMs()];
    metadataBytes = (await client.listObjectsV2Document(bucket, { maxKeys: 1000, metadata: true })).length;
    const [c, cCpu] = [performance.now(), cpuMs()];
    if (round < 3) continue; // warm-up
    plain.push(b - a);
    withMetadata.push(c - b);
    plainCpu.push(bCpu - aCpu);
    withMetadataCpu.push(cCpu - bCpu);
  }
  const median = (values: number[]): number => [...values].sort((x, y) => x - y)[Math.floor(values.length / 2)]!;
  const p = median(plain);
  const m = median(withMetadata);
  process.stdout.write(
    `${objects} keys, median of ${rounds} pages: plain ${p.toFixed(2)} ms (${(plainBytes / 1024).toFixed(0)} KiB), ` +
      `metadata=true ${m.toFixed(2)} ms (${(metadataBytes / 1024).toFixed(0)} KiB): ${(m / p).toFixed(2)}x; ` +
      `CPU per page ${median(plainCpu).toFixed(2)} ms vs ${median(withMetadataCpu).toFixed(2)} ms: ${(median(withMetadataCpu) / median(plainCpu)).toFixed(2)}x\n`,
  );
} finally {
  await client.close();
  await server.close();
}
