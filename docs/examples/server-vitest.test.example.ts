// talus/server in a Vitest suite (vitest is not a dependency of Talus: this
// file is an example to copy; it has the same shape as server-node-test.test.ts,
// which the tests run). Vitest runs files in parallel workers: each file gets
// its own server on its own ephemeral port.
import { afterAll, beforeAll, expect, test } from 'vitest';
import { CreateBucketCommand, GetObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { startServer, type TalusServer } from 'talus/server';

let s3: TalusServer;
let client: S3Client;

beforeAll(async () => {
  s3 = await startServer({ memory: true, port: 0 });
  client = new S3Client({
    endpoint: s3.endpoint,
    region: s3.region,
    forcePathStyle: true,
    credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey },
  });
});

afterAll(async () => {
  client.destroy();
  await s3.close();
});

test('stores and returns an object', async () => {
  await client.send(new CreateBucketCommand({ Bucket: 'photos' }));
  await client.send(new PutObjectCommand({ Bucket: 'photos', Key: 'cat.txt', Body: 'meow', Metadata: { owner: 'ada' } }));
  const got = await client.send(new GetObjectCommand({ Bucket: 'photos', Key: 'cat.txt' }));
  expect(await got.Body?.transformToString()).toBe('meow');
  expect(got.Metadata?.['owner']).toBe('ada');
});
